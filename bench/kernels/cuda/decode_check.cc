// Whole-model agreement on the GPU machine: the exact CPU forward pass (model/forward.cc on the cpu
// backend) against (a) the same forward pass on the cuda backend and (b) the fused, graph-captured
// decode engine fed one token per step. Prints the max relative error (max |a - b| / max |cpu| over
// all logits of a row, worst row) and how many rows agree on the argmax. Exits 1 when an error
// exceeds --tol or any argmax differs.
//   gptoss_cuda_decode_check MODEL_DIR --tokens 1,2,3 [--tol 1e-4] [--threads N] [--batch 8,16,64 --seqs D]
// --batch: also decode batches of n sequences per step (graph), slot b feeding sequence b % D
// (sequence j's tokens are (tokens[i] + 7919 j) mod vocab, each checked against its own CPU forward
// pass), with the MoE layers on the per-slot GEMVs and on the grouped GEMM in tiles of 8, 16 and 64
// slots, the latter with the dense projections on the GEMM too (DecodeOptions::moe_gemm_min_batch,
// moe_gemm_tile_slots, dense_gemm_min_batch).
// --trace MIN_T: both forward passes through TraceBackend (each op's output read back): per row the op
// path's logits error, per layer the hidden state's error after attention and after the MoE block (worst
// row), the router's top-k sets (every row whose set differs, with the cpu's logits and the gap between
// its k-th and (k+1)-th), and every f32_matmul of at least MIN_T rows checked against float64 on its own
// inputs (cpu and cuda).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "core/dtypes.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/decode_engine.h"
#include "backend/cuda/kernels.h"
#include "model/forward.h"
#include "model/model_files.h"

using namespace gptoss;

namespace {

std::vector<uint32_t> parse_ids(const std::string& s) {
  std::vector<uint32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    ids.push_back(static_cast<uint32_t>(std::strtoul(s.substr(i, j - i).c_str(), nullptr, 10)));
    i = j + 1;
  }
  return ids;
}

// What TraceBackend read back from one forward pass.
struct Trace {
  std::vector<std::vector<float>> hidden;  // x after each f32_add: layer l's attention (2l), MoE (2l + 1)
  std::vector<std::vector<float>> router;  // router logits [T][E] per layer
  std::vector<std::vector<int32_t>> idx;   // top-k [T][k] per layer
  struct Gemm {
    int call, N, K, T;
    double rel;  // max |got - ref| / max |ref|, ref in float64 from the op's own inputs
    int t, n;    // where the max is
    double got, ref;
  };
  std::vector<Gemm> gemm;
  int matmul_calls = 0;
};

float weight_at(const std::vector<uint8_t>& raw, ElemType type, size_t i) {
  if (type == ElemType::kBF16) {
    uint16_t h;
    std::memcpy(&h, raw.data() + 2 * i, 2);
    return bf16_to_f32(h);
  }
  float f;
  std::memcpy(&f, raw.data() + 4 * i, 4);
  return f;
}

// Forwards every call to `inner`; reads back what Trace holds (synchronizing after each such op).
class TraceBackend : public Backend {
 public:
  TraceBackend(Backend& inner, Trace& t, int gemm_min_t) : b_(inner), t_(t), gemm_min_t_(gemm_min_t) {}
  std::string name() const override { return b_.name(); }
  Expected<Buffer> alloc(size_t bytes) override { return b_.alloc(bytes); }
  Expected<Buffer> upload_weight(const void* host, size_t bytes) override { return b_.upload_weight(host, bytes); }
  Status download(const void* src, size_t bytes, void* host) override { return b_.download(src, bytes, host); }
  Status zero(void* dst, size_t bytes) override { return b_.zero(dst, bytes); }
  Status upload(const void* host, size_t bytes, void* dst) override { return b_.upload(host, bytes, dst); }
  Status sync() override { return b_.sync(); }
  void f32_embed(const Weight& table, std::span<const uint32_t> tokens, float* out) override {
    b_.f32_embed(table, tokens, out);
  }
  void f32_rmsnorm(const float* x, int T, const Weight& gain, float eps, float* out) override {
    b_.f32_rmsnorm(x, T, gain, eps, out);
  }
  void f32_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out) override {
    b_.f32_matmul(x, T, w, bias, out);
    const int call = t_.matmul_calls++;
    if (gemm_min_t_ <= 0 || T < gemm_min_t_) return;
    const int N = static_cast<int>(w.rows), K = static_cast<int>(w.cols);
    const auto xv = fetch<float>(x, size_t(T) * K), ov = fetch<float>(out, size_t(T) * N);
    const auto wv = fetch<uint8_t>(w.buf.data, size_t(N) * K * elem_size(w.type));
    std::vector<uint8_t> bv;
    if (bias != nullptr) bv = fetch<uint8_t>(bias->buf.data, size_t(N) * elem_size(bias->type));
    const unsigned nth = std::max(1u, std::thread::hardware_concurrency());
    struct Part {
      double d = 0, m = 0, got = 0, ref = 0;
      int t = 0, n = 0;
    };
    std::vector<Part> parts(nth);
    std::vector<std::thread> pool;
    for (unsigned p = 0; p < nth; ++p) {
      pool.emplace_back([&, p] {
        Part& r = parts[p];
        std::vector<double> wr(K);
        for (int n = static_cast<int>(p); n < N; n += static_cast<int>(nth)) {
          for (int k = 0; k < K; ++k) wr[k] = weight_at(wv, w.type, size_t(n) * K + k);
          const double b0 = bias != nullptr ? weight_at(bv, bias->type, n) : 0.0;
          for (int t = 0; t < T; ++t) {
            double acc = b0;
            const float* xr = xv.data() + size_t(t) * K;
            for (int k = 0; k < K; ++k) acc += double(xr[k]) * wr[k];
            const double got = ov[size_t(t) * N + n], d = std::isfinite(got) ? std::fabs(got - acc) : INFINITY;
            r.m = std::fmax(r.m, std::fabs(acc));
            if (d > r.d) r.d = d, r.t = t, r.n = n, r.got = got, r.ref = acc;
          }
        }
      });
    }
    for (auto& th : pool) th.join();
    Part all;
    for (const Part& r : parts) {
      all.m = std::fmax(all.m, r.m);
      if (r.d >= all.d) all.d = r.d, all.t = r.t, all.n = r.n, all.got = r.got, all.ref = r.ref;
    }
    t_.gemm.push_back({call, N, K, T, all.d / std::fmax(all.m, 1e-30), all.t, all.n, all.got, all.ref});
  }
  void f32_rope_yarn(float* x, int T, int heads, int head_dim, std::span<const int32_t> positions,
                     const RopeTable& rope) override {
    b_.f32_rope_yarn(x, T, heads, head_dim, positions, rope);
  }
  void f32_kv_store(const KvLayer& kv, const float* k, const float* v, int T, std::span<const int32_t> slots,
                    std::span<const int32_t> positions) override {
    b_.f32_kv_store(kv, k, v, T, slots, positions);
  }
  void f32_sdpa_sink_window(const float* q, int T, int heads, const KvLayer& kv, std::span<const int32_t> slots,
                            std::span<const int32_t> positions, const Weight& sinks, int window, float scale,
                            float* out) override {
    b_.f32_sdpa_sink_window(q, T, heads, kv, slots, positions, sinks, window, scale, out);
  }
  void f32_topk_softmax(const float* logits, int T, int n, int k, int32_t* idx, float* weight) override {
    b_.f32_topk_softmax(logits, T, n, k, idx, weight);
    t_.router.push_back(fetch<float>(logits, size_t(T) * n));
    t_.idx.push_back(fetch<int32_t>(idx, size_t(T) * k));
  }
  void f32_mxfp4w_moe_matmul_swiglu(const float* x, int T, int k, const int32_t* idx, const Mxfp4Experts& w1,
                                    const Weight& b1, float limit, float alpha, float* h) override {
    b_.f32_mxfp4w_moe_matmul_swiglu(x, T, k, idx, w1, b1, limit, alpha, h);
  }
  void f32_mxfp4w_moe_matmul_accumulate(const float* h, int T, int k, const int32_t* idx, const float* weight,
                                        const Mxfp4Experts& w2, const Weight& b2, float* out) override {
    b_.f32_mxfp4w_moe_matmul_accumulate(h, T, k, idx, weight, w2, b2, out);
  }
  void f32_add(float* x, const float* y, size_t n) override {
    b_.f32_add(x, y, n);
    t_.hidden.push_back(fetch<float>(x, n));
  }
  void f32_gather_rows(const float* x, int cols, std::span<const int32_t> rows, float* out) override {
    b_.f32_gather_rows(x, cols, rows, out);
  }

 private:
  template <typename T>
  std::vector<T> fetch(const void* p, size_t n) {
    std::vector<T> v(n);
    Status st = b_.sync();
    if (st.is_ok()) st = b_.download(p, n * sizeof(T), v.data());
    if (!st.is_ok()) {
      std::fprintf(stderr, "trace: read back failed: %s\n", st.message().c_str());
      std::exit(2);
    }
    return v;
  }
  Backend& b_;
  Trace& t_;
  int gemm_min_t_;
};

// Worst row's max |a - b| / max |a| over rows of `cols`; *row gets the row.
double worst_row(const std::vector<float>& a, const std::vector<float>& b, int cols, int* row) {
  double worst = 0;
  *row = 0;
  for (size_t r = 0; r < a.size() / cols; ++r) {
    double d = 0, m = 0;
    for (int i = 0; i < cols; ++i) {
      const double x = a[r * cols + i], y = b[r * cols + i];
      d = std::fmax(d, std::isfinite(y) ? std::fabs(x - y) : INFINITY);
      m = std::fmax(m, std::fabs(x));
    }
    if (d / std::fmax(m, 1e-30) > worst) worst = d / std::fmax(m, 1e-30), *row = static_cast<int>(r);
  }
  return worst;
}

void print_gemms(const char* who, const Trace& t, int layers) {
  const char* kinds[5] = {"q", "k", "v", "o", "router"};
  double worst[6] = {0, 0, 0, 0, 0, 0};
  int at[6] = {0, 0, 0, 0, 0, 0};
  for (const Trace::Gemm& g : t.gemm) {
    const int kind = g.call >= 5 * layers ? 5 : g.call % 5;
    if (g.rel >= worst[kind]) worst[kind] = g.rel, at[kind] = static_cast<int>(&g - t.gemm.data());
  }
  for (int kind = 0; kind < 6; ++kind) {
    if (t.gemm.empty()) break;
    const Trace::Gemm& g = t.gemm[at[kind]];
    std::printf("trace: %s matmul %-7s vs float64 of its inputs: worst %.3e (layer %d, %dx%d, T %d, row %d col %d: %.9g vs %.9g)\n",
                who, kind == 5 ? "unembed" : kinds[kind], worst[kind], g.call / 5, g.N, g.K, g.T, g.t, g.n, g.got, g.ref);
  }
}

void print_trace(const Trace& c, const Trace& g, int layers, int T, int E, int k) {
  print_gemms("cpu ", c, layers);
  print_gemms("cuda", g, layers);
  if (c.hidden.size() != g.hidden.size() || c.router.size() != g.router.size()) {
    std::printf("trace: op counts differ (adds %zu / %zu, routers %zu / %zu)\n", c.hidden.size(), g.hidden.size(),
                c.router.size(), g.router.size());
    return;
  }
  const int H = static_cast<int>(c.hidden[0].size() / T);
  double min_gap = INFINITY;
  int gap_l = 0, gap_t = 0, first_flip_l = -1;
  for (int l = 0; l < layers && 2 * l + 1 < static_cast<int>(c.hidden.size()); ++l) {
    int ra = 0, rm = 0;
    const double ea = worst_row(c.hidden[2 * l], g.hidden[2 * l], H, &ra);
    const double em = worst_row(c.hidden[2 * l + 1], g.hidden[2 * l + 1], H, &rm);
    int rr = 0;
    const double er = worst_row(c.router[l], g.router[l], E, &rr);
    std::string flips;
    for (int t = 0; t < T; ++t) {
      std::vector<int> order(E);
      std::iota(order.begin(), order.end(), 0);
      const float* lc = c.router[l].data() + size_t(t) * E;
      const float* lg = g.router[l].data() + size_t(t) * E;
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return lc[a] > lc[b]; });
      const double gap = double(lc[order[k - 1]]) - lc[order[k]];
      if (gap < min_gap) min_gap = gap, gap_l = l, gap_t = t;
      std::vector<int32_t> sc(c.idx[l].begin() + t * k, c.idx[l].begin() + (t + 1) * k);
      std::vector<int32_t> sg(g.idx[l].begin() + t * k, g.idx[l].begin() + (t + 1) * k);
      std::sort(sc.begin(), sc.end());
      std::sort(sg.begin(), sg.end());
      if (sc == sg) continue;
      if (first_flip_l < 0) first_flip_l = l;
      flips += " t" + std::to_string(t);
      std::printf("trace: layer %d row %d top-%d differs: cpu", l, t, k);
      for (int32_t e : sc) std::printf(" %d", e);
      std::printf(", cuda");
      for (int32_t e : sg) std::printf(" %d", e);
      std::printf("; cpu logits of its top %d:", k + 2);
      for (int j = 0; j < k + 2 && j < E; ++j) std::printf(" e%d %.9g (cuda %.9g)", order[j], lc[order[j]], lg[order[j]]);
      std::printf("; cpu gap k-th to (k+1)-th %.3e\n", gap);
    }
    std::printf("trace: layer %2d hidden after attention %.3e (row %d), after moe %.3e (row %d); router logits %.3e (row %d);"
                " top-%d differs at%s\n",
                l, ea, ra, em, rm, er, rr, k, flips.empty() ? " no row" : flips.c_str());
  }
  std::printf("trace: smallest cpu router gap (k-th to (k+1)-th logit) %.3e at layer %d row %d; first top-k difference: %s\n",
              min_gap, gap_l, gap_t, first_flip_l < 0 ? "none" : ("layer " + std::to_string(first_flip_l)).c_str());
}

Expected<std::vector<float>> run_forward(const std::string& dir, Backend& be, const std::vector<uint32_t>& ids) {
  GPTOSS_ASSIGN_OR_RETURN(ModelFiles files, open_model_dir(dir));
  GPTOSS_ASSIGN_OR_RETURN(auto model, Model::create(std::move(files), be));
  KvCacheOptions ko;
  ko.max_context = static_cast<int>(ids.size()) + 8;
  GPTOSS_ASSIGN_OR_RETURN(KvCache cache, model->new_cache(ko));
  GPTOSS_ASSIGN_OR_RETURN(int seq, cache.new_sequence());
  ForwardPiece piece{seq, ids, true};
  std::vector<float> logits;
  GPTOSS_RETURN_IF_ERROR(model->forward({&piece, 1}, cache, &logits));
  return logits;
}

struct Agreement {
  double worst_rel = 0;
  int argmax_same = 0;
  int rows = 0;
};

Agreement compare(const std::vector<float>& ref, const std::vector<float>& got, int V) {
  Agreement a;
  a.rows = static_cast<int>(ref.size() / V);
  for (int r = 0; r < a.rows; ++r) {
    double maxd = 0, maxr = 0;
    int ar = 0, ag = 0;
    for (int i = 0; i < V; ++i) {
      const float x = ref[size_t(r) * V + i], y = got[size_t(r) * V + i];
      maxd = std::fmax(maxd, std::fabs(double(x) - y));
      if (!std::isfinite(y)) maxd = INFINITY;
      maxr = std::fmax(maxr, std::fabs(double(x)));
      if (x > ref[size_t(r) * V + ar]) ar = i;
      if (y > got[size_t(r) * V + ag]) ag = i;
    }
    a.worst_rel = std::fmax(a.worst_rel, maxd / std::fmax(maxr, 1e-30));
    a.argmax_same += ar == ag;
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::string(argv[2]) != "--tokens") {
    std::fprintf(stderr,
                 "usage: gptoss_cuda_decode_check MODEL_DIR --tokens 1,2,3 [--tol X] [--threads N] [--shapes G,GU,DN]\n"
                 "  [--nsplit FULL,SLIDING] [--trace MIN_T]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const auto ids = parse_ids(argv[3]);
  double tol = 1e-4;
  int threads = 0, seqs = 1, nsplit[2] = {0, 0}, trace = 0;
  std::vector<uint32_t> batches;
  for (int i = 4; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--tol") tol = std::atof(argv[i + 1]);
    if (std::string(argv[i]) == "--threads") threads = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--batch") batches = parse_ids(argv[i + 1]);
    if (std::string(argv[i]) == "--seqs") seqs = std::max(1, std::atoi(argv[i + 1]));
    if (std::string(argv[i]) == "--trace") trace = std::max(1, std::atoi(argv[i + 1]));
    if (std::string(argv[i]) == "--nsplit") {  // the decode engine's attention splits: FULL,SLIDING
      if (std::sscanf(argv[i + 1], "%d,%d", &nsplit[0], &nsplit[1]) != 2) {
        std::fprintf(stderr, "--nsplit wants FULL,SLIDING\n");
        return 2;
      }
      std::printf("attention splits: %d full, %d sliding\n", nsplit[0], nsplit[1]);
    }
    if (std::string(argv[i]) == "--shapes") {  // kernel shapes (kernels.h: set_*_variant); R, A optional
      int g = 0, gu = 0, dn = 0, r = cuda::kRouterDefault, a = cuda::kAttentionDefault;
      if (std::sscanf(argv[i + 1], "%d,%d,%d,%d,%d", &g, &gu, &dn, &r, &a) < 3) {
        std::fprintf(stderr, "--shapes wants G,GU,DN[,R[,A]]\n");
        return 2;
      }
      cuda::set_gemv_variant(g);
      cuda::set_moe_variant(gu, dn);
      cuda::set_router_variant(r);
      cuda::set_attention_variant(a);
      std::printf("kernel shapes: gemv %d, gate_up %d, down %d, router %d, attention %d\n", g, gu, dn, r, a);
    }
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  };
  auto cpu = make_cpu_backend(threads);
  auto gpu = make_cuda_backend(0);
  if (!gpu) return fail(gpu.status());
  Trace trace_cpu, trace_gpu;
  TraceBackend tcpu(*cpu, trace_cpu, trace), tgpu(**gpu, trace_gpu, trace);
  auto ref = run_forward(dir, trace > 0 ? static_cast<Backend&>(tcpu) : *cpu, ids);
  if (!ref) return fail(ref.status());
  auto cm = run_forward(dir, trace > 0 ? static_cast<Backend&>(tgpu) : **gpu, ids);
  if (!cm) return fail(cm.status());

  auto files = open_model_dir(dir);
  if (!files) return fail(files.status());
  const int V = files->config.vocab_size;
  if (trace > 0) {
    const int T = static_cast<int>(ids.size());
    std::printf("trace: op path logits vs cpu per row:");
    for (int t = 0; t < T; ++t) {
      int r = 0;
      const std::vector<float> a(ref->begin() + size_t(t) * V, ref->begin() + size_t(t + 1) * V);
      const std::vector<float> b(cm->begin() + size_t(t) * V, cm->begin() + size_t(t + 1) * V);
      std::printf(" %d:%.2e", t, worst_row(a, b, V, &r));
    }
    std::printf("\n");
    print_trace(trace_cpu, trace_gpu, files->config.num_layers, T, files->config.num_experts,
                files->config.experts_per_token);
  }
  auto weights = bind_weights(*files, **gpu);
  if (!weights) return fail(weights.status());
  cuda::DecodeOptions opt;
  opt.max_batch = 2;
  opt.max_context = static_cast<int>(ids.size()) + 8;
  opt.nsplit = nsplit[0], opt.nsplit_sliding = nsplit[1];
  auto eng = cuda::DecodeEngine::create(files->config, *weights, opt);
  if (!eng) return fail(eng.status());
  std::vector<float> dec(ids.size() * V), dec_eager(ids.size() * V);
  for (int pass = 0; pass < 2; ++pass) {  // graph, then eager launches into the other KV slot
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t tok = static_cast<int32_t>(ids[i]), pos = static_cast<int32_t>(i), slot = pass;
      auto st = (*eng)->step({&tok, 1}, {&pos, 1}, {&slot, 1}, (pass == 0 ? dec : dec_eager).data() + i * V, nullptr,
                             pass == 0);
      if (!st) return fail(st);
    }
  }
  const Agreement a = compare(*ref, *cm, V), b = compare(*ref, dec, V), e = compare(dec, dec_eager, V);
  std::printf("model %s, %zu tokens, vocab %d\n", dir.c_str(), ids.size(), V);
  std::printf("cuda backend (model/forward.cc) vs cpu: max rel err %.3e, argmax %d/%d\n", a.worst_rel, a.argmax_same,
              a.rows);
  std::printf("cuda decode engine (graph) vs cpu:      max rel err %.3e, argmax %d/%d\n", b.worst_rel, b.argmax_same,
              b.rows);
  std::printf("cuda decode engine eager vs graph:      max rel err %.3e, argmax %d/%d\n", e.worst_rel, e.argmax_same,
              e.rows);
  bool ok = a.worst_rel <= tol && b.worst_rel <= tol && a.argmax_same == a.rows && b.argmax_same == b.rows &&
            e.worst_rel == 0.0;
  if (!batches.empty()) {
    // CPU references of the D sequences (sequence 0 is `ids`, already computed).
    const size_t P = ids.size();
    std::vector<std::vector<uint32_t>> seq_ids(seqs, ids);
    std::vector<std::vector<float>> refs(seqs);
    refs[0] = *ref;
    for (int j = 1; j < seqs; ++j) {
      for (auto& t : seq_ids[j]) t = static_cast<uint32_t>((uint64_t(t) + 7919u * uint64_t(j)) % uint64_t(V));
      auto r = run_forward(dir, *cpu, seq_ids[j]);
      if (!r) return fail(r.status());
      refs[j] = std::move(*r);
    }
    for (uint32_t n : batches) {
      const char* names[4] = {"gemv", "gemm8", "gemm16", "gemm64"};
      for (int path = 0; path < 4; ++path) {  // GEMV MoE, then the grouped GEMM in tiles of 8, 16, 64 slots
        cuda::DecodeOptions bo;
        bo.max_batch = static_cast<int>(n);
        bo.max_context = static_cast<int>(P) + 8;
        bo.nsplit = nsplit[0], bo.nsplit_sliding = nsplit[1];
        bo.moe_gemm_min_batch = path == 0 ? 1 << 30 : 1;
        bo.moe_gemm_tile_slots = path == 0 ? 0 : path == 3 ? 64 : 4 << path;
        bo.dense_gemm_min_batch = path == 0 ? 1 << 30 : 1;  // the dense GEMMs along with the MoE GEMM
        auto be = cuda::DecodeEngine::create(files->config, *weights, bo);
        if (!be) return fail(be.status());
        std::vector<float> out(size_t(n) * P * V), step_logits(size_t(n) * V);
        std::vector<int32_t> tok(n), pos(n), slot(n);
        for (size_t i = 0; i < P; ++i) {
          for (uint32_t b = 0; b < n; ++b) {
            tok[b] = static_cast<int32_t>(seq_ids[b % seqs][i]), pos[b] = static_cast<int32_t>(i);
            slot[b] = static_cast<int32_t>(b);
          }
          auto st = (*be)->step(tok, pos, slot, step_logits.data(), nullptr, true);
          if (!st) return fail(st);
          for (uint32_t b = 0; b < n; ++b) {
            std::copy_n(step_logits.data() + size_t(b) * V, V, out.data() + (size_t(b) * P + i) * V);
          }
        }
        double worst = 0;
        int same = 0, rows = 0;
        for (uint32_t b = 0; b < n; ++b) {
          const std::vector<float> got(out.begin() + size_t(b) * P * V, out.begin() + size_t(b + 1) * P * V);
          const Agreement g = compare(refs[b % seqs], got, V);
          worst = std::fmax(worst, g.worst_rel);
          same += g.argmax_same;
          rows += g.rows;
        }
        std::printf("cuda decode engine batch %2u, moe %-6s vs cpu: max rel err %.3e, argmax %d/%d (%d sequences)\n",
                    n, names[path], worst, same, rows, seqs);
        ok = ok && worst <= tol && same == rows;
      }
    }
  }
  std::printf("decode check: %s (tol %.1e)\n", ok ? "ok" : "FAILED", tol);
  return ok ? 0 : 1;
}
