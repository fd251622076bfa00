// gptoss_cuda_timeline [steps [gate_up down [router [attention [gemv]]]]]: where a batch-1 graph decode step's time
// goes, kernel by kernel (bench/kernels/cuda/NOTES.md v13; the variants as kernels.h's set_*_variant). The
// kernels, built with GPTOSS_CUDA_TIMELINE, stamp %globaltimer per block (kernels.h set_timeline):
// start, return of griddepcontrol.wait, end. Blocks are grouped into launches here (a kind's records
// in start order, `blocks` at a time: launches of one kind never overlap, there are other kernels
// between them), launches ordered by their first start. Per launch:
//   early    = first wait return - first block start (how early PDL launched it: weight loads overlap)
//   handoff  = first wait return - the previous launch's last block end
//   spread   = last wait return - first wait return
//   busy     = last block end - first wait return (its work once its input is there)
//   gap      = the next launch's first start - this launch's last end (negative: overlap)
//   fend / mend (means only) = the first / median block end - first wait return (NOTES v20: is a
//            launch's busy time all its blocks' or a few late ones'?)
// and the HBM view: the bytes a kernel must read / busy. Random 20b weights (seed 7, as the bench).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/decode_engine.h"
#include "backend/cuda/kernels.h"
#include "bench_model.h"
#include "cuda_check.h"

using namespace gptoss;
using namespace gptoss::cuda;

namespace {

struct Launch {
  uint32_t kind = 0, blocks = 0;
  double s0 = 0, s1 = 0, w0 = 0, w1 = 0, e1 = 0;  // us from the step's first start
  double e0 = 0, em = 0;                          // first and median block end
  int layer = -1;
  double bytes = 0;
};

const char* kind_name(uint32_t k, int layer) {
  switch (k) {
    case kTimelineQkv: return "qkv";
    case kTimelineAttention: return "attention";
    case kTimelineGemv: return layer >= 0 ? "o_proj" : "unembedding";
    case kTimelineRouter: return "router";
    case kTimelineGateUp: return "gate_up";
    case kTimelineDown: return "down";
    case kTimelineArgmax: return "argmax";
    default: return "?";
  }
}

void step(DecodeEngine& eng, int32_t* tok, int pos) {
  std::vector<int32_t> t{*tok}, p{pos}, s{0};
  eng.set_inputs(t, p, s);
  auto st = eng.launch(1, true);
  if (st) st = eng.sync();
  if (!st) std::fprintf(stderr, "%s\n", st.message().c_str()), std::exit(2);
  *tok = eng.next_tokens_host()[0];
}

// The launches of one recorded step, in chain order, with layers and bytes filled in.
std::vector<Launch> launches(std::vector<TimelineRecord> rec, const ModelConfig& c, const ModelWeights& W, int pos) {
  std::sort(rec.begin(), rec.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
  const unsigned long long t0 = rec.empty() ? 0 : rec.front().start;
  auto us = [&](unsigned long long t) { return t ? (double(t) - double(t0)) * 1e-3 : -1.0; };
  std::map<uint32_t, std::vector<const TimelineRecord*>> by_kind;
  for (const auto& r : rec) by_kind[r.kind].push_back(&r);
  std::vector<Launch> out;
  for (auto& [kind, v] : by_kind) {
    for (size_t i = 0; i < v.size();) {
      Launch L;
      L.kind = kind, L.blocks = v[i]->blocks;
      L.s0 = 1e30, L.w0 = 1e30;
      const size_t end = std::min(v.size(), i + v[i]->blocks);
      std::vector<double> ends;
      for (; i < end; ++i) {
        const TimelineRecord& r = *v[i];
        L.s0 = std::min(L.s0, us(r.start)), L.s1 = std::max(L.s1, us(r.start));
        if (r.wait) L.w0 = std::min(L.w0, us(r.wait)), L.w1 = std::max(L.w1, us(r.wait));
        L.e1 = std::max(L.e1, us(r.end));
        if (r.wait) ends.push_back(us(r.end));  // blocks that exit before their wait (v20) left out
      }
      std::sort(ends.begin(), ends.end());
      L.e0 = ends.empty() ? L.e1 : ends.front(), L.em = ends.empty() ? L.e1 : ends[ends.size() / 2];
      if (L.w0 > 1e29) L.w0 = L.w1 = L.s0;
      out.push_back(L);
    }
  }
  std::sort(out.begin(), out.end(), [](const Launch& a, const Launch& b) { return a.s0 < b.s0; });
  const double H = c.hidden_size, I = c.intermediate_size, K = c.experts_per_token, mx = 17.0 / 32;
  int layer = -1;
  for (Launch& L : out) {
    if (L.kind == kTimelineQkv) ++layer;
    L.layer = layer;
    switch (L.kind) {
      case kTimelineQkv: L.bytes = 2.0 * (c.num_heads + 2 * c.num_kv_heads) * 64 * H; break;
      case kTimelineAttention: {
        const bool sliding = W.layers[std::max(layer, 0)].sliding;
        const int n = sliding ? std::min(pos + 1, c.sliding_window) : pos + 1;
        L.bytes = 2.0 * n * c.num_kv_heads * 64 * 4;  // f32 K and V
        break;
      }
      case kTimelineGemv: L.bytes = 2.0 * H * c.num_heads * 64; break;
      case kTimelineRouter: L.bytes = 2.0 * c.num_experts * H; break;
      case kTimelineGateUp: L.bytes = K * 2 * I * H * mx; break;
      case kTimelineDown: L.bytes = K * H * I * mx; break;
      default: break;
    }
  }
  // The GEMV after the last layer's down is the unembedding; it and argmax belong to no layer.
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].kind == kTimelineGemv && out[i - 1].kind == kTimelineDown) {
      out[i].layer = -1, out[i].bytes = 2.0 * c.vocab_size * H;
    }
    if (out[i].kind == kTimelineArgmax) out[i].layer = -1;
  }
  return out;
}

void print_launch(const Launch& L, const Launch* prev, const Launch* next) {
  const double handoff = prev ? L.w0 - prev->e1 : 0.0, gap = next ? next->s0 - L.e1 : 0.0;
  const double busy = L.e1 - L.w0;
  std::printf("%5d %-12s %6u %9.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %8.2f %8.1f\n", L.layer,
              kind_name(L.kind, L.layer), L.blocks, L.s0, L.w0 - L.s0, handoff, L.w1 - L.w0, L.s1 - L.s0, busy, gap,
              L.bytes / 1e6, busy > 0 ? L.bytes / (busy * 1e-6) / 1e9 : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  if (argc > 3) set_moe_variant(std::atoi(argv[2]), std::atoi(argv[3]));  // read when the graph is captured
  if (argc > 4) set_router_variant(std::atoi(argv[4]));                   // NOTES v17
  if (argc > 5) set_attention_variant(std::atoi(argv[5]));                // NOTES v20
  if (argc > 6) set_gemv_variant(std::atoi(argv[6]));                     // NOTES v29
  if (cuda_device_count() == 0) return std::fprintf(stderr, "gptoss_cuda_timeline: no CUDA device\n"), 2;
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  auto model = random_20b_model();
  if (!model) return std::fprintf(stderr, "%s\n", model.status().message().c_str()), 2;
  const ModelConfig& c = model->config;
  const ModelWeights& W = model->weights;
  set_pdl(true);
  DecodeOptions opt;
  opt.max_batch = 64;  // as the lab's decode rows
  opt.max_context = 640;
  auto eng = DecodeEngine::create(c, W, opt);
  if (!eng) return std::fprintf(stderr, "%s\n", eng.status().message().c_str()), 2;
  constexpr uint32_t kCap = 1u << 17;
  TimelineRecord* rec = nullptr;
  uint32_t* count = nullptr;
  CK(cudaMalloc(&rec, sizeof(TimelineRecord) * kCap));
  CK(cudaMalloc(&count, sizeof(uint32_t)));
  int32_t tok = 1000;
  for (int p = 0; p < 4; ++p) step(**eng, &tok, p);  // graph capture, warm-up

  // Cost of the stamps: 64 steps off / on / off / on (wall clock of the steps, host loop included).
  auto timed = [&](bool on, int first) {
    CK(set_timeline(on ? rec : nullptr, count, kCap));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    CK(cudaEventRecord(a));
    for (int p = first; p < first + 64; ++p) {
      if (on) CK(cudaMemset(count, 0, 4));
      step(**eng, &tok, p);
    }
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(set_timeline(nullptr, count, 0));
    return 64e3 / ms;
  };
  const double t_off = timed(false, 4), t_on = timed(true, 68), t_off2 = timed(false, 132), t_on2 = timed(true, 196);
  std::printf("decode tok/s, positions 4..259 in blocks of 64: stamps off %.1f, on %.1f, off %.1f, on %.1f\n", t_off,
              t_on, t_off2, t_on2);

  for (int first : {260, 600}) {
    for (int p = 260; p < first; ++p) step(**eng, &tok, p);
    std::map<std::pair<int, uint32_t>, std::vector<Launch>> acc;  // (chain index) -> per step
    std::vector<Launch> last;
    double resolution = 1e30;
    for (int s = 0; s < steps; ++s) {
      const int pos = first + s;
      CK(cudaMemset(count, 0, 4));
      CK(set_timeline(rec, count, kCap));
      step(**eng, &tok, pos);
      CK(set_timeline(nullptr, count, 0));
      uint32_t n = 0;
      CK(cudaMemcpy(&n, count, 4, cudaMemcpyDeviceToHost));
      if (n > kCap) return std::fprintf(stderr, "timeline: %u records, capacity %u\n", n, kCap), 2;
      std::vector<TimelineRecord> h(n);
      CK(cudaMemcpy(h.data(), rec, sizeof(TimelineRecord) * n, cudaMemcpyDeviceToHost));
      std::vector<unsigned long long> ts;
      for (const auto& r : h) ts.push_back(r.start), ts.push_back(r.end);
      std::sort(ts.begin(), ts.end());
      for (size_t i = 1; i < ts.size(); ++i) {
        if (ts[i] > ts[i - 1]) resolution = std::min(resolution, double(ts[i] - ts[i - 1]));
      }
      last = launches(std::move(h), c, W, pos);
      for (size_t i = 0; i < last.size(); ++i) acc[{static_cast<int>(i), last[i].kind}].push_back(last[i]);
    }
    std::printf("\n== positions %d..%d: %d steps, %zu launches per step, smallest timer step seen %.0f ns\n", first,
                first + steps - 1, steps, last.size(), resolution);
    std::printf("step %d: first start -> last end %.2f us\n", first + steps - 1, last.back().e1 - last.front().s0);
    std::printf("%5s %-12s %6s %9s %7s %7s %7s %7s %7s %7s %8s %8s\n", "layer", "kernel", "blocks", "start", "early",
                "handoff", "wspread", "lstart", "busy", "gap", "MB", "GB/s");
    for (size_t i = 0; i < last.size(); ++i) {
      if (last[i].layer > 2 && last[i].layer != 12 && last[i].layer != c.num_layers - 1) continue;
      print_launch(last[i], i ? &last[i - 1] : nullptr, i + 1 < last.size() ? &last[i + 1] : nullptr);
    }
    // Per kernel kind, the mean over layers 1..L-1 and all recorded steps.
    std::printf("\nmean over layers 1..%d and %d steps (us):\n%-12s %7s %7s %7s %7s %7s %7s %8s %8s %7s %7s\n",
                c.num_layers - 1, steps, "kernel", "early", "handoff", "wspread", "lstart", "busy", "gap", "MB",
                "GB/s", "fend", "mend");
    struct Sum {
      double early = 0, handoff = 0, spread = 0, lstart = 0, busy = 0, gap = 0, bytes = 0, fend = 0, mend = 0;
      int n = 0;
    };
    std::map<uint32_t, Sum> sums;
    double total_busy = 0, total_handoff = 0, total_step = 0;
    for (int s = 0; s < steps; ++s) {
      std::vector<Launch> v;
      for (auto& [key, ls] : acc) {
        if (s < static_cast<int>(ls.size())) v.push_back(ls[s]);
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const double busy = v[i].e1 - v[i].w0;
        total_busy += busy;
        if (i) total_handoff += v[i].w0 - v[i - 1].e1;
        if (v[i].layer < 1) continue;
        Sum& S = sums[v[i].kind];
        S.early += v[i].w0 - v[i].s0, S.spread += v[i].w1 - v[i].w0, S.lstart += v[i].s1 - v[i].s0, S.busy += busy;
        if (i) S.handoff += v[i].w0 - v[i - 1].e1;
        if (i + 1 < v.size()) S.gap += v[i + 1].s0 - v[i].e1;
        S.fend += v[i].e0 - v[i].w0, S.mend += v[i].em - v[i].w0;
        S.bytes += v[i].bytes, ++S.n;
      }
      total_step += v.back().e1 - v.front().s0;
    }
    double layer_sum = 0;
    for (auto& [kind, S] : sums) {
      const double n = S.n;
      layer_sum += S.busy / n + S.handoff / n;
      std::printf("%-12s %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %8.2f %8.1f %7.2f %7.2f\n", kind_name(kind, 0),
                  S.early / n, S.handoff / n, S.spread / n, S.lstart / n, S.busy / n, S.gap / n, S.bytes / n / 1e6,
                  S.bytes / S.busy * 1e-3, S.fend / n, S.mend / n);
    }
    std::printf("per layer (busy + handoff of its kernels): %.2f us; per step: %.2f us, of it busy %.2f, handoffs "
                "%.2f\n",
                layer_sum, total_step / steps, total_busy / steps, total_handoff / steps);
  }
  CK(cudaFree(rec));
  CK(cudaFree(count));
  return 0;
}
