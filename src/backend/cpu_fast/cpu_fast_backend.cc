#include "backend/cpu_fast/cpu_fast_backend.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu_fast/kernels_fast.h"
#include "core/dtypes.h"

namespace gptoss {
namespace {

// The (token, slot) pairs routed to each expert, and the experts used at all (ascending).
struct ExpertGroups {
  std::vector<std::vector<int32_t>> pairs;
  std::vector<int32_t> used;
};

ExpertGroups group_by_expert(const int32_t* idx, int T, int k, int64_t experts) {
  ExpertGroups g;
  g.pairs.resize(static_cast<size_t>(experts));
  for (int32_t p = 0; p < T * k; ++p) g.pairs[idx[p]].push_back(p);
  for (int32_t e = 0; e < experts; ++e) {
    if (!g.pairs[e].empty()) g.used.push_back(e);
  }
  return g;
}

// Forwards every op to the exact backend except the matmuls, which run on cpu_fast kernels over
// this backend's own thread pool (the exact backend's pool sleeps meanwhile).
class CpuFastBackend final : public Backend {
 public:
  explicit CpuFastBackend(int threads) : exact_(make_cpu_backend(threads)), pool_(threads) {}

  std::string name() const override { return "cpu-fast"; }

  Expected<Buffer> alloc(size_t bytes) override { return exact_->alloc(bytes); }
  Expected<Buffer> upload_weight(const void* host, size_t bytes) override {
    return exact_->upload_weight(host, bytes);
  }
  Status download(const void* src, size_t bytes, void* host) override { return exact_->download(src, bytes, host); }
  Status zero(void* dst, size_t bytes) override { return exact_->zero(dst, bytes); }
  Status sync() override { return exact_->sync(); }

  void f32_embed(const Weight& table, std::span<const uint32_t> tokens, float* out) override {
    exact_->f32_embed(table, tokens, out);
  }
  void f32_rmsnorm(const float* x, int T, const Weight& gain, float eps, float* out) override {
    exact_->f32_rmsnorm(x, T, gain, eps, out);
  }
  void f32_rope_yarn(float* x, int T, int heads, int head_dim, std::span<const int32_t> positions,
                     const RopeTable& rope) override {
    exact_->f32_rope_yarn(x, T, heads, head_dim, positions, rope);
  }
  void f32_kv_store(const KvLayer& kv, const float* k, const float* v, int T, std::span<const int32_t> slots,
                    std::span<const int32_t> positions) override {
    exact_->f32_kv_store(kv, k, v, T, slots, positions);
  }
  void f32_sdpa_sink_window(const float* q, int T, int heads, const KvLayer& kv, std::span<const int32_t> slots,
                            std::span<const int32_t> positions, const Weight& sinks, int window, float scale,
                            float* out) override {
    exact_->f32_sdpa_sink_window(q, T, heads, kv, slots, positions, sinks, window, scale, out);
  }
  void f32_topk_softmax(const float* logits, int T, int n, int k, int32_t* idx, float* weight) override {
    exact_->f32_topk_softmax(logits, T, n, k, idx, weight);
  }
  void f32_add(float* x, const float* y, size_t n) override { exact_->f32_add(x, y, n); }
  void f32_gather_rows(const float* x, int cols, std::span<const int32_t> rows, float* out) override {
    exact_->f32_gather_rows(x, cols, rows, out);
  }

  void f32_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out) override {
    const int64_t N = w.rows, K = w.cols;
    if (w.type != ElemType::kBF16) {
      exact_->f32_matmul(x, T, w, bias, out);
      return;
    }
    // Over output features, so decode (T = 1) streams the weight once across all threads. With
    // several tokens a row is widened to f32 once and reused for every token.
    cpu::parallel_for(static_cast<size_t>(N), static_cast<size_t>(K * T), pool_, [&](size_t b, size_t e) {
      std::vector<float> row(T > 1 ? static_cast<size_t>(K) : 0);
      for (size_t r = b; r < e; ++r) {
        const auto* wr = static_cast<const uint16_t*>(w.row(static_cast<int64_t>(r)));
        const float bv = bias ? cpu::weight_at(*bias, static_cast<int64_t>(r)) : 0.0f;
        if (T == 1) {
          out[r] = cpu_fast::dot_bf16(x, wr, K) + bv;
          continue;
        }
        cpu_fast::bf16_to_f32(wr, K, row.data());
        for (int t = 0; t < T; ++t) out[t * N + static_cast<int64_t>(r)] = cpu_fast::dot_f32(x + t * K, row.data(), K) + bv;
      }
    });
  }

  void f32_mxfp4w_moe_matmul_swiglu(const float* x, int T, int k, const int32_t* idx, const Mxfp4Experts& w1,
                                    const Weight& b1, float limit, float alpha, float* h) override {
    const int64_t rows = w1.rows, cols = w1.cols, nb = cols / kMxfp4BlockElems;
    const int64_t I = rows / 2;
    const ExpertGroups g = group_by_expert(idx, T, k, w1.experts);
    // One work item = one (expert, output pair): its gate and up rows (adjacent) are decoded once
    // and applied to every (token, slot) routed to that expert, with the bias and SwiGLU fused.
    const size_t work = g.used.size() * static_cast<size_t>(I);
    const size_t per_item = static_cast<size_t>(cols) * 2 * (1 + static_cast<size_t>(T) * k / g.used.size());
    const uint8_t* blocks = w1.blocks.as<uint8_t>();
    const uint8_t* scales = w1.scales.as<uint8_t>();
    cpu::parallel_for(work, per_item, pool_, [&](size_t b, size_t e) {
      std::vector<int8_t> q(static_cast<size_t>(cols) * 2);
      for (size_t w = b; w < e; ++w) {
        // Pair-major, expert-minor: each thread streams through all used experts at once (one
        // stream per expert), which keeps more memory requests in flight than one expert at a time.
        const int32_t ex = g.used[w % g.used.size()];
        const int64_t j = static_cast<int64_t>(w / g.used.size());
        const size_t gate_index = static_cast<size_t>(ex * rows + 2 * j);
        // Gate and up rows are adjacent: one decode call covers both.
        cpu_fast::mxfp4_row_to_i8(blocks + gate_index * nb * kMxfp4BlockBytes, 2 * cols, q.data());
        const uint8_t* gate_scales = scales + gate_index * nb;
        const float gate_bias = cpu::weight_at(b1, ex * rows + 2 * j);
        const float up_bias = cpu::weight_at(b1, ex * rows + 2 * j + 1);
        for (const int32_t pair : g.pairs[ex]) {
          const float* xt = x + static_cast<int64_t>(pair / k) * cols;
          const float gate = cpu_fast::dot_mxfp4_i8(xt, q.data(), gate_scales, cols) + gate_bias;
          const float up = cpu_fast::dot_mxfp4_i8(xt, q.data() + cols, gate_scales + nb, cols) + up_bias;
          h[pair * I + j] = cpu::swiglu(gate, up, limit, alpha);
        }
      }
    });
  }

  void f32_mxfp4w_moe_matmul_accumulate(const float* h, int T, int k, const int32_t* idx, const float* weight,
                                        const Mxfp4Experts& w2, const Weight& b2, float* out) override {
    const int64_t rows = w2.rows, cols = w2.cols, nb = cols / kMxfp4BlockElems;
    const ExpertGroups g = group_by_expert(idx, T, k, w2.experts);
    std::vector<int32_t> slot_of(static_cast<size_t>(w2.experts), -1);
    for (size_t u = 0; u < g.used.size(); ++u) slot_of[g.used[u]] = static_cast<int32_t>(u);
    // Each token sums its experts in increasing expert order, as the exact path does.
    std::vector<int32_t> order(static_cast<size_t>(T) * k);
    for (int t = 0; t < T; ++t) {
      int32_t* o = order.data() + static_cast<size_t>(t) * k;
      for (int j = 0; j < k; ++j) o[j] = j;
      std::sort(o, o + k, [&](int32_t a, int32_t c) { return idx[t * k + a] < idx[t * k + c]; });
    }
    // One work item = one output row: row r of every used expert is decoded once, then every
    // token's weighted sum (bias included) is formed from the decoded rows.
    const size_t per_item = static_cast<size_t>(cols) * (g.used.size() + static_cast<size_t>(T) * k);
    const uint8_t* blocks = w2.blocks.as<uint8_t>();
    const uint8_t* scales = w2.scales.as<uint8_t>();
    cpu::parallel_for(static_cast<size_t>(rows), per_item, pool_, [&](size_t b, size_t e) {
      std::vector<int8_t> q(g.used.size() * static_cast<size_t>(cols));
      for (size_t rr = b; rr < e; ++rr) {
        const int64_t r = static_cast<int64_t>(rr);
        for (size_t u = 0; u < g.used.size(); ++u) {
          const size_t row_index = static_cast<size_t>(g.used[u] * rows + r);
          cpu_fast::mxfp4_row_to_i8(blocks + row_index * nb * kMxfp4BlockBytes, cols, q.data() + u * cols);
        }
        for (int t = 0; t < T; ++t) {
          float acc = 0.0f;
          for (int s = 0; s < k; ++s) {
            const int j = order[static_cast<size_t>(t) * k + s];
            const int32_t ex = idx[t * k + j];
            const size_t row_index = static_cast<size_t>(ex * rows + r);
            const float y = cpu_fast::dot_mxfp4_i8(h + (static_cast<int64_t>(t) * k + j) * cols,
                                                   q.data() + static_cast<size_t>(slot_of[ex]) * cols,
                                                   scales + row_index * nb, cols) +
                            cpu::weight_at(b2, ex * rows + r);
            acc += y * weight[t * k + j];
          }
          out[t * rows + r] = acc;
        }
      }
    });
  }

 private:
  std::unique_ptr<Backend> exact_;
  cpu::ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_fast_backend(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuFastBackend>(threads);
}

}  // namespace gptoss
