#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "backend/cpu/expert_groups.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/parallel.h"
#include "core/dtypes.h"

namespace gptoss {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}

  std::string name() const override { return "cpu"; }

  Expected<Buffer> alloc(size_t bytes) override {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) return Error("cpu backend: out of memory allocating {} bytes", bytes);
    Buffer b;
    b.mem = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
    b.data = p;
    b.bytes = bytes;
    return b;
  }

  Expected<Buffer> upload_weight(const void* host, size_t bytes) override {
    Buffer b;  // borrowed: the mapping is kept open by the model's files
    b.data = const_cast<void*>(host);
    b.bytes = bytes;
    return b;
  }

  Status download(const void* src, size_t bytes, void* host) override {
    if (bytes == 0) return Status::ok();  // an empty vector's data() may be null (UBSan)
    std::memcpy(host, src, bytes);
    return Status::ok();
  }

  Status zero(void* dst, size_t bytes) override {
    if (bytes == 0) return Status::ok();
    std::memset(dst, 0, bytes);
    return Status::ok();
  }

  Status sync() override { return Status::ok(); }

  void f32_embed(const Weight& table, std::span<const uint32_t> tokens, float* out) override {
    const int64_t n = table.cols;
    for (size_t t = 0; t < tokens.size(); ++t) {
      const int64_t base = static_cast<int64_t>(tokens[t]) * n;
      for (int64_t i = 0; i < n; ++i) out[t * n + i] = cpu::weight_at(table, base + i);
    }
  }

  void f32_rmsnorm(const float* x, int T, const Weight& gain, float eps, float* out) override {
    const int64_t n = gain.cols;
    for (int t = 0; t < T; ++t) cpu::rmsnorm_row(x + t * n, gain, eps, n, out + t * n);
  }

  void f32_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out) override {
    const int64_t N = w.rows, K = w.cols;
    // Split over output features so that decode (T = 1) uses every thread too.
    cpu::parallel_for(static_cast<size_t>(N), static_cast<size_t>(K * T), pool_,
                      [&](size_t b, size_t e) {
                        for (size_t r = b; r < e; ++r) {
                          const void* wr = w.row(static_cast<int64_t>(r));
                          const float bv = bias ? cpu::weight_at(*bias, static_cast<int64_t>(r)) : 0.0f;
                          for (int t = 0; t < T; ++t) {
                            float acc = cpu::dot_f32(x + t * K, wr, w.type, K);
                            out[t * N + static_cast<int64_t>(r)] = bias ? acc + bv : acc;
                          }
                        }
                      });
  }

  void f32_rope_yarn(float* x, int T, int heads, int head_dim, std::span<const int32_t> positions,
                     const RopeTable& rope) override {
    for (int t = 0; t < T; ++t) {
      cpu::rope_row(x + static_cast<size_t>(t) * heads * head_dim, heads, head_dim, positions[t], rope);
    }
  }

  void f32_kv_store(const KvLayer& kv, const float* k, const float* v, int T,
                    std::span<const int32_t> slots, std::span<const int32_t> positions) override {
    const size_t row = static_cast<size_t>(kv.kv_heads) * kv.head_dim;
    for (int t = 0; t < T; ++t) {
      const size_t at = kv_row(kv, slots[t], positions[t]) * row;
      std::memcpy(kv.k.as<float>() + at, k + t * row, row * sizeof(float));
      std::memcpy(kv.v.as<float>() + at, v + t * row, row * sizeof(float));
    }
  }

  void f32_sdpa_sink_window(const float* q, int T, int heads, const KvLayer& kv,
                            std::span<const int32_t> slots, std::span<const int32_t> positions,
                            const Weight& sinks, int window, float scale, float* out) override {
    const int D = kv.head_dim;
    const int group = heads / kv.kv_heads;
    const size_t row = static_cast<size_t>(kv.kv_heads) * D;
    const size_t work = static_cast<size_t>(T) * heads;
    const size_t span_max = static_cast<size_t>(window > 0 ? std::min(window, kv.capacity) : kv.capacity);
    cpu::parallel_for(work, span_max * D * 2, pool_, [&](size_t b, size_t e) {
      std::vector<float> scores;
      for (size_t w = b; w < e; ++w) {
        const int t = static_cast<int>(w / heads), h = static_cast<int>(w % heads);
        const int p = positions[t];
        const int first = window > 0 ? std::max(0, p - window + 1) : 0;
        const int n = p - first + 1;
        const float* qh = q + (static_cast<size_t>(t) * heads + h) * D;
        const int j = h / group;
        scores.resize(n);
        for (int i = 0; i < n; ++i) {
          const size_t at = kv_row(kv, slots[t], first + i) * row + static_cast<size_t>(j) * D;
          scores[i] = cpu::dot_f32(qh, kv.k.as<float>() + at, ElemType::kF32, D) * scale;
        }
        cpu::sink_softmax(scores.data(), n, cpu::weight_at(sinks, h), scores.data());
        float* o = out + (static_cast<size_t>(t) * heads + h) * D;
        std::fill(o, o + D, 0.0f);
        for (int i = 0; i < n; ++i) {
          const float* vr =
              kv.v.as<float>() + kv_row(kv, slots[t], first + i) * row + static_cast<size_t>(j) * D;
          for (int d = 0; d < D; ++d) o[d] += scores[i] * vr[d];
        }
      }
    });
  }

  void f32_topk_softmax(const float* logits, int T, int n, int k, int32_t* idx, float* weight) override {
    for (int t = 0; t < T; ++t) cpu::topk_softmax_row(logits + t * n, n, k, idx + t * k, weight + t * k);
  }

  void f32_mxfp4w_moe_matmul_swiglu(const float* x, int T, int k, const int32_t* idx,
                                    const Mxfp4Experts& w1, const Weight& b1, float limit, float alpha,
                                    float* h) override {
    const int64_t rows = w1.rows, cols = w1.cols, nb = cols / kMxfp4BlockElems;
    const int64_t I = rows / 2;
    const ExpertGroups g = group_by_expert(idx, T, k, w1.experts);
    // One work item = one (expert, output pair): its gate and up rows are decoded once and applied
    // to every (token, slot) routed to that expert.
    const size_t work = g.used.size() * static_cast<size_t>(I);
    const size_t per_item = static_cast<size_t>(cols) * 2 * (1 + static_cast<size_t>(T) * k / g.used.size());
    cpu::parallel_for(work, per_item, pool_, [&](size_t b, size_t e) {
      std::vector<float> gate_row(static_cast<size_t>(cols)), up_row(static_cast<size_t>(cols));
      for (size_t w = b; w < e; ++w) {
        const int32_t ex = g.used[w / I];
        const int64_t j = static_cast<int64_t>(w % I);
        const size_t gate_index = static_cast<size_t>(ex * rows + 2 * j);
        cpu::mxfp4_row_to_f32(w1.blocks.as<uint8_t>() + gate_index * nb * kMxfp4BlockBytes,
                              w1.scales.as<uint8_t>() + gate_index * nb, cols, gate_row.data());
        cpu::mxfp4_row_to_f32(w1.blocks.as<uint8_t>() + (gate_index + 1) * nb * kMxfp4BlockBytes,
                              w1.scales.as<uint8_t>() + (gate_index + 1) * nb, cols, up_row.data());
        const float gate_bias = cpu::weight_at(b1, ex * rows + 2 * j);
        const float up_bias = cpu::weight_at(b1, ex * rows + 2 * j + 1);
        for (const int32_t pair : g.pairs[ex]) {
          const float* xt = x + static_cast<int64_t>(pair / k) * cols;
          const float gate = cpu::dot_f32(xt, gate_row.data(), ElemType::kF32, cols) + gate_bias;
          const float up = cpu::dot_f32(xt, up_row.data(), ElemType::kF32, cols) + up_bias;
          h[pair * I + j] = cpu::swiglu(gate, up, limit, alpha);
        }
      }
    });
  }

  void f32_mxfp4w_moe_matmul_accumulate(const float* h, int T, int k, const int32_t* idx,
                                        const float* weight, const Mxfp4Experts& w2, const Weight& b2,
                                        float* out) override {
    const int64_t rows = w2.rows, cols = w2.cols, nb = cols / kMxfp4BlockElems;
    const ExpertGroups g = group_by_expert(idx, T, k, w2.experts);
    std::vector<int32_t> slot_of(static_cast<size_t>(w2.experts), -1);
    for (size_t u = 0; u < g.used.size(); ++u) slot_of[g.used[u]] = static_cast<int32_t>(u);
    // Each token sums its experts in increasing expert order, as transformers does.
    std::vector<int32_t> order(static_cast<size_t>(T) * k);
    for (int t = 0; t < T; ++t) {
      int32_t* o = order.data() + static_cast<size_t>(t) * k;
      for (int j = 0; j < k; ++j) o[j] = j;
      std::sort(o, o + k, [&](int32_t a, int32_t c) { return idx[t * k + a] < idx[t * k + c]; });
    }
    // One work item = one output row: row r of every used expert is decoded once, then every
    // token's weighted sum is formed from the decoded rows.
    const size_t per_item = static_cast<size_t>(cols) * (g.used.size() + static_cast<size_t>(T) * k);
    cpu::parallel_for(static_cast<size_t>(rows), per_item, pool_, [&](size_t b, size_t e) {
      std::vector<float> decoded(g.used.size() * static_cast<size_t>(cols));
      for (size_t rr = b; rr < e; ++rr) {
        const int64_t r = static_cast<int64_t>(rr);
        for (size_t u = 0; u < g.used.size(); ++u) {
          const size_t row_index = static_cast<size_t>(g.used[u] * rows + r);
          cpu::mxfp4_row_to_f32(w2.blocks.as<uint8_t>() + row_index * nb * kMxfp4BlockBytes,
                                w2.scales.as<uint8_t>() + row_index * nb, cols, decoded.data() + u * cols);
        }
        for (int t = 0; t < T; ++t) {
          float acc = 0.0f;
          for (int q = 0; q < k; ++q) {
            const int j = order[static_cast<size_t>(t) * k + q];
            const int32_t ex = idx[t * k + j];
            const float y = cpu::dot_f32(h + (static_cast<int64_t>(t) * k + j) * cols,
                                         decoded.data() + static_cast<size_t>(slot_of[ex]) * cols,
                                         ElemType::kF32, cols) +
                            cpu::weight_at(b2, ex * rows + r);
            acc += y * weight[t * k + j];
          }
          out[t * rows + r] = acc;
        }
      }
    });
  }

  void f32_add(float* x, const float* y, size_t n) override {
    for (size_t i = 0; i < n; ++i) x[i] += y[i];
  }

  void f32_gather_rows(const float* x, int cols, std::span<const int32_t> rows, float* out) override {
    for (size_t i = 0; i < rows.size(); ++i) {
      std::memcpy(out + i * cols, x + static_cast<size_t>(rows[i]) * cols, sizeof(float) * cols);
    }
  }

 private:
  cpu::ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace gptoss
