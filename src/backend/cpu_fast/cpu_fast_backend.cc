#include "backend/cpu_fast/cpu_fast_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/expert_groups.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu_fast/amx_gemm.h"
#include "backend/cpu_fast/kernels_fast.h"
#include "backend/cpu_fast/kernels_mxfp4_i8.h"
#include "backend/cpu_fast/kernels_q8.h"
#include "backend/cpu_fast/spin_pool.h"
#include "core/dtypes.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gptoss {
namespace {

// Forwards every op to the exact backend except the matmuls, which run on cpu_fast kernels over
// this backend's own thread pool (the exact backend's pool sleeps meanwhile).
class CpuFastBackend final : public Backend {
 public:
  // profile: time every op and print the table at destruction (GPTOSS_CPU_FAST_PROFILE).
  // i8: the int8 expert GEMVs of 1-2 token calls (I8Choice; kFromEnv reads GPTOSS_CPU_FAST_MOE_I8).
  enum class I8 { kFromEnv, kOff, kOn };
  CpuFastBackend(int threads, bool profile, I8 i8 = I8::kFromEnv)
      : simd_(cpu_fast::simd_limit()),
        exact_(make_cpu_backend(threads)),
        pool_(threads, spin_time()),
        amx_(amx_wanted()),
        i8_(i8_wanted(i8)),
        hugepage_(hugepage_wanted()),
        profile_(profile) {
    if (simd_.error) std::fprintf(stderr, "cpu-fast: %s\n", simd_.error);
    if (const char* e = cpu_fast::bf16_prefetch().error) std::fprintf(stderr, "cpu-fast: %s\n", e);
    if (const char* v = std::getenv("GPTOSS_CPU_FAST_DECODE_TILE")) {
      decode_tile_ = std::string(v) == "equal" ? kEqualTasks
                                               : std::max(0L, std::strtol(v, nullptr, 10)) / 4 * 4;
    }
  }
  ~CpuFastBackend() override {
    if (!profile_) return;
    double total = 0.0;
    for (const auto& [op, p] : prof_) total += p.seconds;
    std::fprintf(stderr, "cpu-fast op profile (GPTOSS_CPU_FAST_PROFILE): %.3f s in ops\n", total);
    std::fprintf(stderr, "  simd: %s%s\n", cpu_fast::simd_target(), simd_.avx2 ? " (GPTOSS_CPU_FAST_SIMD=avx2)" : "");
    if (amx_.on) {
      std::fprintf(stderr, "  amx: on (%d bf16 parts, from %d tokens)\n", amx_.parts, amx_.min_tokens);
    } else {
      std::fprintf(stderr, "  amx: off (%s)\n", amx_.reason);
    }
    if (decode_tile_ > 0) {
      std::fprintf(stderr, "  moe decode tasks: %lld rows (GPTOSS_CPU_FAST_DECODE_TILE)\n",
                   static_cast<long long>(decode_tile_));
    } else if (decode_tile_ == kEqualTasks) {
      std::fprintf(
          stderr,
          "  moe decode tasks: rows / (2 x %d threads) per expert (GPTOSS_CPU_FAST_DECODE_TILE)\n",
          pool_.size());
    } else {
      std::fprintf(
          stderr,
          "  moe decode tasks: largest first, 1 / (2 x %d threads) of the experts' rows left\n",
          pool_.size());
    }
    if (hugepage_.on) {
      std::fprintf(stderr,
                   "  weights: MADV_HUGEPAGE on %.0f MB (GPTOSS_CPU_FAST_HUGEPAGE=0: off)\n",
                   static_cast<double>(hugepage_bytes_) / 1e6);
    } else {
      std::fprintf(stderr, "  weights: no MADV_HUGEPAGE (%s)\n", hugepage_.reason);
    }
    std::fprintf(stderr, "  bf16 gemv prefetch: %s\n", cpu_fast::bf16_prefetch().why);
    if (i8_.on && i8_.gemm) {
      std::fprintf(stderr,
                   "  moe int8: on (%s, %d int8 parts, every call: GEMVs up to %d tokens, the GEMM "
                   "above)\n",
                   cpu_fast::mxfp4_i8_target(), i8_.parts, kI8MaxTokens);
    } else if (i8_.on) {
      std::fprintf(stderr, "  moe int8: on (%s, %d int8 parts, calls of up to %d tokens; larger: f32, %s)\n",
                   cpu_fast::mxfp4_i8_target(), i8_.parts, kI8MaxTokens, i8_.no_gemm);
    } else {
      std::fprintf(stderr, "  moe int8: off (%s)\n", i8_.reason);
    }
    for (const auto& [op, p] : prof_) {
      std::fprintf(stderr, "  %-40s %8ld calls %9.3f s %5.1f%%  %8.3f ms/call\n", op.c_str(), p.calls, p.seconds,
                   100.0 * p.seconds / total, 1e3 * p.seconds / static_cast<double>(p.calls));
    }
  }

  std::string name() const override { return "cpu-fast"; }

  Expected<Buffer> alloc(size_t bytes) override { return exact_->alloc(bytes); }
  Expected<Buffer> upload_weight(const void* host, size_t bytes) override {
    if (hugepage_.on) advise_hugepage(host, bytes);
    return exact_->upload_weight(host, bytes);
  }
  Status download(const void* src, size_t bytes, void* host) override { return exact_->download(src, bytes, host); }
  Status zero(void* dst, size_t bytes) override { return exact_->zero(dst, bytes); }
  Status sync() override { return exact_->sync(); }

  void f32_embed(const Weight& table, std::span<const uint32_t> tokens, float* out) override {
    Timed tm(this, "embed", static_cast<int>(tokens.size()));
    exact_->f32_embed(table, tokens, out);
  }
  void f32_rmsnorm(const float* x, int T, const Weight& gain, float eps, float* out) override {
    Timed tm(this, "rmsnorm", T);
    exact_->f32_rmsnorm(x, T, gain, eps, out);
  }
  void f32_rope_yarn(float* x, int T, int heads, int head_dim, std::span<const int32_t> positions,
                     const RopeTable& rope) override {
    Timed tm(this, "rope", T);
    exact_->f32_rope_yarn(x, T, heads, head_dim, positions, rope);
  }
  void f32_kv_store(const KvLayer& kv, const float* k, const float* v, int T, std::span<const int32_t> slots,
                    std::span<const int32_t> positions) override {
    Timed tm(this, "kv_store", T);
    exact_->f32_kv_store(kv, k, v, T, slots, positions);
  }
  void f32_sdpa_sink_window(const float* q, int T, int heads, const KvLayer& kv, std::span<const int32_t> slots,
                            std::span<const int32_t> positions, const Weight& sinks, int window, float scale,
                            float* out) override {
    Timed tm(this, "attention", T);
    // Work items (token, kv head): the key/value rows are found once and serve the kv head's
    // group of query heads.
    const int D = kv.head_dim, group = heads / kv.kv_heads;
    const size_t row = static_cast<size_t>(kv.kv_heads) * D;
    const int items = T * kv.kv_heads;
    const int per = std::max(1, items / (8 * pool_.size()));
    pool_.run((items + per - 1) / per, [&](int task) {
      thread_local std::vector<const float*> krows, vrows;
      thread_local std::vector<float> scores;
      for (int it = task * per; it < std::min(items, (task + 1) * per); ++it) {
        const int t = it / kv.kv_heads, j = it % kv.kv_heads;
        const int p = positions[t];
        const int first = window > 0 ? std::max(0, p - window + 1) : 0;
        const int n = p - first + 1;
        krows.resize(n);
        vrows.resize(n);
        scores.resize(static_cast<size_t>(group) * n);
        for (int i = 0; i < n; ++i) {
          const size_t at = kv_row(kv, slots[t], first + i) * row + static_cast<size_t>(j) * D;
          krows[i] = kv.k.as<float>() + at;
          vrows[i] = kv.v.as<float>() + at;
        }
        float sink[64];
        for (int h0 = j * group; h0 < (j + 1) * group; h0 += 64) {
          const int G = std::min(64, (j + 1) * group - h0);
          for (int g = 0; g < G; ++g) sink[g] = cpu::weight_at(sinks, h0 + g);
          const size_t o = (static_cast<size_t>(t) * heads + h0) * D;
          cpu_fast::attend_group(q + o, G, D, krows.data(), vrows.data(), n, scale, sink, scores.data(), out + o);
        }
      }
    });
  }
  void f32_topk_softmax(const float* logits, int T, int n, int k, int32_t* idx, float* weight) override {
    Timed tm(this, "topk_softmax", T);
    exact_->f32_topk_softmax(logits, T, n, k, idx, weight);
  }
  void f32_add(float* x, const float* y, size_t n) override {
    Timed tm(this, "add", 0);
    exact_->f32_add(x, y, n);
  }
  void f32_gather_rows(const float* x, int cols, std::span<const int32_t> rows, float* out) override {
    Timed tm(this, "gather_rows", static_cast<int>(rows.size()));
    exact_->f32_gather_rows(x, cols, rows, out);
  }

  void f32_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out) override {
    Timed tm(this, "matmul", T, w.rows);
    if (w.type == ElemType::kQ8_0) {  // --dense-weights q8
      cpu_fast::f32_q8_0w_matmul(x, T, w, bias, out, pool_);
      return;
    }
    if (w.type != ElemType::kBF16) {
      exact_->f32_matmul(x, T, w, bias, out);
      return;
    }
    if (T > 1 && amx_.on && T >= amx_.min_tokens) {
      matmul_amx(x, T, w, bias, out);
      return;
    }
    const int64_t N = w.rows, K = w.cols;
    const float* xp = chunk_order(xp_, x, T, K);
    const auto* wd = w.buf.as<uint16_t>();
    auto add_bias = [&](int64_t r0, int64_t n, float* o) { add_bias_rows(bias, r0, n, o); };
    if (T == 1) {
      const MatmulOut one[] = {{&w, bias, out}};
      gemv_rows(xp, K, one);
      return;
    }
    // Several tokens: tasks of 16 rows, each widened to f32 once, then every token passes over them
    // (gemm_bf16_rows).
    std::vector<const float*> xs(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) xs[t] = xp + static_cast<int64_t>(t) * K;
    constexpr int64_t kTile = 16;
    pool_.run(static_cast<int>((N + kTile - 1) / kTile), [&](int i) {
      const int64_t r0 = i * kTile, n = std::min(kTile, N - r0);
      cpu_fast::gemm_bf16_rows(xs.data(), T, wd + r0 * K, K, K, n, out + r0, N);
      for (int t = 0; t < T; ++t) add_bias(r0, n, out + static_cast<int64_t>(t) * N + r0);
    });
  }

  // q, k and v on one input. Decode (one token, bf16 weights of one width): one pool job over all
  // the matrices' rows, x put in chunk order once, the tasks row_ranges' over the rows of all of
  // them in order (a task cut where a matrix ends): two pool jobs, two task ramps and two chunk
  // orderings fewer per layer than three f32_matmul calls, and the same bits (every row's sum is
  // gemv_bf16's over the same x, whatever the split; MatmulsAreTheMatmulsBits). Else one call each.
  void f32_matmuls(const float* x, int T, std::span<const MatmulOut> outs) override {
    const bool one_job = T == 1 && outs.size() > 1 && std::all_of(outs.begin(), outs.end(), [&](const MatmulOut& m) {
      return m.w->type == ElemType::kBF16 && m.w->cols == outs[0].w->cols;
    });
    if (!one_job) {
      Backend::f32_matmuls(x, T, outs);
      return;
    }
    int64_t N = 0;
    for (const MatmulOut& m : outs) N += m.w->rows;
    Timed tm(this, "matmuls", T, N);
    const int64_t K = outs[0].w->cols;
    gemv_rows(chunk_order(xp_, x, 1, K), K, outs);
  }

  void f32_mxfp4w_moe_matmul_swiglu(const float* x, int T, int k, const int32_t* idx, const Mxfp4Experts& w1,
                                    const Weight& b1, float limit, float alpha, float* h) override {
    Timed tm(this, "moe gate_up+swiglu", T);
    const int64_t rows = w1.rows, cols = w1.cols, I = rows / 2;
    const MoePath path = moe_path(T);
    const bool i8 = path != MoePath::kF32;
    const float* xp = i8 ? nullptr : chunk_order(xp_, x, T, cols);
    const ExpertGroups g = group_by_expert(idx, T, k, w1.experts);
    if (i8) quantize_i8(x, T, cols, path == MoePath::kI8Gemm, g, k);
    // h[pair, j] = swiglu(gate row 2j, up row 2j + 1) of the pair's token: tiles of fused rows.
    // AMX prefill: AVX-512 SwiGLU (exp within 2 ulp). The int8 calls use one SwiGLU whatever T, so
    // that a token gets the same bits alone as beside other tokens (GEMV or GEMM): the AVX-512 one
    // where the int8 GEMM runs (i8_.vector_swiglu), else the scalar one.
    const bool vector_swiglu = i8 ? i8_.vector_swiglu : T > 1 && amx_.on;
    run_experts(g, w1, T == 1 ? decode_tile(rows) : 32, [&](int32_t ex, int64_t r0, int64_t n, const std::vector<int32_t>& pairs,
                                             const float* y, int64_t ldy) {
      if (vector_swiglu) {
        thread_local std::vector<float> bias;
        bias.resize(static_cast<size_t>(n));
        for (int64_t r = 0; r < n; ++r) bias[r] = cpu::weight_at(b1, ex * rows + r0 + r);
        for (size_t p = 0; p < pairs.size(); ++p) {
          cpu_fast::avx512_swiglu_pairs(y + static_cast<int64_t>(p) * ldy, bias.data(), n, limit, alpha,
                                        h + static_cast<int64_t>(pairs[p]) * I + r0 / 2);
        }
        return;
      }
      for (size_t p = 0; p < pairs.size(); ++p) {
        float* hp = h + static_cast<int64_t>(pairs[p]) * I + r0 / 2;
        const float* yp = y + static_cast<int64_t>(p) * ldy;
        for (int64_t j = 0; j < n / 2; ++j) {
          const float gate = yp[2 * j] + cpu::weight_at(b1, ex * rows + r0 + 2 * j);
          const float up = yp[2 * j + 1] + cpu::weight_at(b1, ex * rows + r0 + 2 * j + 1);
          hp[j] = cpu::swiglu(gate, up, limit, alpha);
        }
      }
    }, [&](int32_t pair) { return xp + static_cast<int64_t>(pair / k) * cols; },
       [&](int32_t pair) { return x + static_cast<int64_t>(pair / k) * cols; },
       i8 ? I8Input([&](int32_t pair) { return i8_act(pair / k); }) : I8Input(),
       path == MoePath::kI8Gemm ? I8Input([&](int32_t pair) { return i8_gemm_act(pair / k); }) : I8Input());
  }

  void f32_mxfp4w_moe_matmul_accumulate(const float* h, int T, int k, const int32_t* idx, const float* weight,
                                        const Mxfp4Experts& w2, const Weight& b2, float* out) override {
    Timed tm(this, "moe down+sum", T);
    const int64_t rows = w2.rows, cols = w2.cols;
    const MoePath path = moe_path(T);
    const bool i8 = path != MoePath::kF32;
    const float* hp = i8 ? nullptr : chunk_order(hp_, h, T * k, cols);
    const ExpertGroups g = group_by_expert(idx, T, k, w2.experts);
    if (i8) quantize_i8(h, T * k, cols, path == MoePath::kI8Gemm, g, 1);
    // y[pair, r] = W2[expert] row r . h[pair], then each token's weighted sum in increasing expert
    // order (as the exact path adds them), bias included.
    y_.resize(static_cast<size_t>(T) * k * rows);
    float* y = y_.data();
    run_experts(g, w2, T == 1 ? decode_tile(rows) : 32, [&](int32_t ex, int64_t r0, int64_t n, const std::vector<int32_t>& pairs,
                                             const float* yt, int64_t ldy) {
      thread_local std::vector<float> bias;
      bias.resize(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) bias[r] = cpu::weight_at(b2, ex * rows + r0 + r);
      for (size_t p = 0; p < pairs.size(); ++p) {
        float* yo = y + static_cast<int64_t>(pairs[p]) * rows + r0;
        const float* yi = yt + static_cast<int64_t>(p) * ldy;
        for (int64_t r = 0; r < n; ++r) yo[r] = yi[r] + bias[r];
      }
    }, [&](int32_t pair) { return hp + static_cast<int64_t>(pair) * cols; },
       [&](int32_t pair) { return h + static_cast<int64_t>(pair) * cols; },
       i8 ? I8Input([&](int32_t pair) { return i8_act(pair); }) : I8Input(),
       path == MoePath::kI8Gemm ? I8Input([&](int32_t pair) { return i8_gemm_act(pair); }) : I8Input());
    auto combine = [&](size_t b, size_t e) {
      std::vector<int32_t> order(static_cast<size_t>(k));
      for (size_t t = b; t < e; ++t) {
        for (int j = 0; j < k; ++j) order[j] = j;
        std::sort(order.begin(), order.end(), [&](int32_t a, int32_t c) { return idx[t * k + a] < idx[t * k + c]; });
        float* o = out + t * rows;
        for (int64_t r = 0; r < rows; ++r) o[r] = 0.0f;
        for (const int32_t j : order) {
          const float wj = weight[t * k + j];
          const float* yj = y + (static_cast<int64_t>(t) * k + j) * rows;
          for (int64_t r = 0; r < rows; ++r) o[r] += yj[r] * wj;
        }
      }
    };
    if (T <= 4) {
      combine(0, static_cast<size_t>(T));
      return;
    }
    const int per = std::max(1, T / (4 * pool_.size()));
    pool_.run((T + per - 1) / per, [&](int i) {
      combine(static_cast<size_t>(i) * per, static_cast<size_t>(std::min(T, (i + 1) * per)));
    });
  }

 private:
  // GPTOSS_CPU_FAST_SPIN_US: how long idle workers poll for the next op (default 50 us, about the
  // gap between two ops of a decode step; 0 makes them sleep at once).
  static std::chrono::microseconds spin_time() {
    const char* v = std::getenv("GPTOSS_CPU_FAST_SPIN_US");
    return std::chrono::microseconds(v ? std::max(0L, std::strtol(v, nullptr, 10)) : 50L);
  }

  // Wall time of each op by name (ops are synchronous here), when GPTOSS_CPU_FAST_PROFILE is set.
  struct ProfileEntry {
    double seconds = 0.0;
    long calls = 0;
  };
  class Timed {
   public:
    Timed(CpuFastBackend* be, const char* op, int T, int64_t rows = 0)
        : be_(be->profile_ ? be : nullptr), op_(op), T_(T), rows_(rows) {
      if (be_) t0_ = std::chrono::steady_clock::now();
    }
    ~Timed() {
      if (!be_) return;
      std::string key = rows_ ? std::string(op_) + " rows=" + std::to_string(rows_) : std::string(op_);
      if (T_ > 0) key += T_ == 1 ? " T=1" : " T>1";
      ProfileEntry& e = be_->prof_[key];
      e.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
      ++e.calls;
    }

   private:
    CpuFastBackend* be_;
    const char* op_;
    int T_;
    int64_t rows_;
    std::chrono::steady_clock::time_point t0_;
  };

  // Tasks of a decode (T = 1) expert matmul. Each task's first tile starts cold (its lines
  // requested at once, then the next tile's while it runs), so tasks are long: with 64-row tasks
  // each thread's stream jumped every 98 KB (tasks of rows / (2 * threads) rows per expert
  // were 5.8% faster, bench/results/cpu-mxfp4-gemv.md). Equal tasks end the op badly: the thread
  // that finishes first waited for the other's last task, ~0.1 ms of gate_up's ~2.1 ms on 2 threads
  // (measured 2026-11-27, the caller's wait alone). Default: largest first over the used experts'
  // rows in expert order, each task 1 / (2 * threads) of the rows still left (a multiple of 4, at
  // least 64, cut at the expert's end), as row_ranges does for the bf16 GEMVs: long streams first,
  // short tasks last. GPTOSS_CPU_FAST_DECODE_TILE=N: tasks of N rows; =equal: rows / (2 * threads)
  // rows per expert (the split before). No split changes any sum
  // (DecodeRowSplitDoesNotChangeResults).
  static constexpr int64_t kEqualTasks = -1;
  static constexpr int64_t kMinDecodeRows = 64;
  int64_t decode_tile_ = 0;  // > 0: rows per task; 0: largest first; kEqualTasks
  int64_t decode_tile(int64_t rows) const {
    if (decode_tile_ != kEqualTasks) return decode_tile_;
    return std::max<int64_t>(kMinDecodeRows,
                             rows / (2 * static_cast<int64_t>(pool_.size())) / 4 * 4);
  }
  static constexpr int kTokenBlock = 64;  // tokens per GEMM pass over a weight tile (fit in L2)
  static constexpr size_t kGemvMaxPairs = 2;  // up to this many tokens an expert runs as GEMVs

  // Task boundaries of a T = 1 GEMV over n rows (task i: rows [at[i], at[i + 1])), largest first:
  // each task takes 1 / (2 * threads) of the rows still left (a multiple of 4 rows, at least
  // min_rows), so every thread starts on a large contiguous range, a thread slowed by other load
  // takes fewer rows, and the op ends on small tasks: the first thread done waits for at most one
  // small task of the other (with equal tasks of n / 32 rows it waited half of one on average,
  // ~1 ms of the unembedding's ~50). The pool hands tasks out in index order.
  const std::vector<int64_t>& row_ranges(int64_t n, int64_t min_rows) {
    ranges_.assign(1, 0);
    const int64_t parts = 2 * static_cast<int64_t>(pool_.size());
    for (int64_t r = 0; r < n;) {
      r += std::min(n - r, std::max(min_rows, (n - r) / parts / 4 * 4));
      ranges_.push_back(r);
    }
    return ranges_;
  }

  // The decode bf16 GEMV of one token (x in chunk order, K columns) against the rows of every
  // matrix in outs, in order, as one pool job: contiguous row ranges, each streamed once, largest
  // first (row_ranges over all the rows; a task is cut where a matrix ends), bias added.
  void gemv_rows(const float* xp, int64_t K, std::span<const MatmulOut> outs) {
    int64_t N = 0;
    for (const MatmulOut& m : outs) N += m.w->rows;
    const std::vector<int64_t>& at = row_ranges(N, 64);
    pool_.run(static_cast<int>(at.size() - 1), [&](int i) {
      int64_t first = 0;  // the first row of matrix m among all rows
      for (const MatmulOut& m : outs) {
        const int64_t b = std::max(at[i], first), e = std::min(at[i + 1], first + m.w->rows);
        if (b < e) {
          const int64_t r0 = b - first, n = e - b;
          cpu_fast::gemv_bf16(xp, m.w->buf.as<uint16_t>() + r0 * K, K, K, n, m.out + r0);
          add_bias_rows(m.bias, r0, n, m.out + r0);
        }
        first += m.w->rows;
      }
    });
  }

  // o[r] += bias[r0 + r] for r < n (no bias: nothing).
  static void add_bias_rows(const Weight* bias, int64_t r0, int64_t n, float* o) {
    if (bias) {
      for (int64_t r = 0; r < n; ++r) o[r] += cpu::weight_at(*bias, r0 + r);
    }
  }

  // x rows [T, n] in chunk order, in a buffer of this backend.
  static const float* chunk_order(std::vector<float>& buf, const float* x, int T, int64_t n) {
    buf.resize(static_cast<size_t>(T) * n);
    for (int t = 0; t < T; ++t) cpu_fast::to_chunk_order(x + t * n, n, buf.data() + t * n);
    return buf.data();
  }

  // For every used expert and range of rows r0 .. r0 + n (tiles of `tile` rows; tile 0: largest
  // first, decode_tile): y[p, r] = row r0 + r . input(pairs[p]) for all pairs routed to that
  // expert, handed to emit(expert, r0, n, pairs, y, ldy). Tasks are (expert, rows) in expert order
  // (decode_tile), taken dynamically by the pool's threads. Few pairs: MXFP4 GEMV straight from the
  // blocks; more: the tile is decoded to f32 once and multiplied as a GEMM (or, with AMX from
  // amx_.min_tokens pairs on, decoded to bf16 and multiplied on the tiles against the expert's
  // activations, packed once from natural_input(pair)). With i8_input set (moe_path), every pair
  // runs on its quantized activations instead: the int8 GEMV on i8_input(pair), two pairs per pass
  // over the tile, or (i8_gemm_input set, experts with 3+ pairs) the int8 GEMM over all the
  // expert's pairs on i8_gemm_input(pair) (the GEMV's bits per pair).
  using I8Input = std::function<const uint8_t*(int32_t)>;
  template <typename Emit, typename Input, typename NaturalInput>
  void run_experts(const ExpertGroups& g, const Mxfp4Experts& w, int64_t tile, Emit&& emit, Input&& input,
                   NaturalInput&& natural_input, const I8Input& i8_input, const I8Input& i8_gemm_input) {
    const int64_t rows = w.rows, cols = w.cols, nb = cols / kMxfp4BlockElems;
    const bool amx = !i8_input && pack_experts_amx(g, cols, natural_input);
    if (amx) tile = kAmxRows;
    // Tasks (expert, first row, rows): tiles of `tile` rows per expert, or (tile 0) largest first.
    tasks_.clear();
    if (tile > 0) {
      for (const int32_t ex : g.used) {
        for (int64_t r0 = 0; r0 < rows; r0 += tile)
          tasks_.push_back({ex, r0, std::min(tile, rows - r0)});
      }
    } else {
      const int64_t parts = 2 * static_cast<int64_t>(pool_.size());
      int64_t left = static_cast<int64_t>(g.used.size()) * rows, r0 = 0;
      for (size_t e = 0; left > 0;) {
        const int64_t n = std::min(rows - r0, std::max(kMinDecodeRows, left / parts / 4 * 4));
        tasks_.push_back({g.used[e], r0, n});
        left -= n;
        r0 += n;
        if (r0 == rows) {
          ++e;
          r0 = 0;
        }
      }
    }
    const uint8_t* blocks = w.blocks.as<uint8_t>();
    const uint8_t* scales = w.scales.as<uint8_t>();
    pool_.run(static_cast<int>(tasks_.size()), [&](int i) {
      const int32_t ex = tasks_[static_cast<size_t>(i)].ex;
      const int64_t r0 = tasks_[static_cast<size_t>(i)].r0, n = tasks_[static_cast<size_t>(i)].n;
      const std::vector<int32_t>& pairs = g.pairs[ex];
      const size_t first = static_cast<size_t>(ex * rows + r0);
      const uint8_t* bl = blocks + first * nb * kMxfp4BlockBytes;
      const uint8_t* sc = scales + first * nb;
      thread_local std::vector<float> yt, panel;
      thread_local std::vector<const float*> xs;
      yt.resize(pairs.size() * static_cast<size_t>(n));
      // Experts with 1-2 pairs take the GEMVs (the same bits): they stream the rows in memory order
      // with a prefetch, the GEMM's 4-row tiles do not (batched decode of 4 sequences was ~15% slower
      // with every expert on the GEMM).
      if (i8_gemm_input && pairs.size() > kGemvMaxPairs) {
        thread_local std::vector<const uint8_t*> acts;
        acts.resize(pairs.size());
        for (size_t p = 0; p < pairs.size(); ++p) acts[p] = i8_gemm_input(pairs[p]);
        cpu_fast::gemm_mxfp4_i8(acts.data(), static_cast<int>(pairs.size()), i8_.parts, bl, sc, cols, n,
                                yt.data(), n);
      } else if (i8_input) {
        for (size_t p0 = 0; p0 < pairs.size(); p0 += 2) {
          const size_t pn = std::min<size_t>(2, pairs.size() - p0);
          const uint8_t* acts[2] = {i8_input(pairs[p0]), i8_input(pairs[p0 + pn - 1])};
          cpu_fast::gemv_mxfp4_i8(acts, static_cast<int>(pn), i8_.parts, bl, sc, cols, n, yt.data() + p0 * n,
                                  static_cast<int64_t>(n));
        }
      } else if (pairs.size() <= kGemvMaxPairs) {
        for (size_t p = 0; p < pairs.size(); ++p)
          cpu_fast::gemv_mxfp4(input(pairs[p]), bl, sc, cols, n, yt.data() + p * n);
      } else if (amx && amx_x_at_[ex] != kNotPacked) {
        thread_local std::vector<uint16_t> panel16;
        panel16.resize(static_cast<size_t>(n * cols));
        cpu_fast::amx_mxfp4_rows_to_bf16(bl, sc, cols, n, panel16.data(), cols);
        cpu_fast::amx_gemm_bf16w(xa_.data() + amx_x_at_[ex], static_cast<int64_t>(pairs.size()), amx_.parts,
                                 panel16.data(), cols, n, cols, yt.data(), n);
      } else {
        panel.resize(static_cast<size_t>(n * cols));
        cpu_fast::mxfp4_rows_to_f32(bl, sc, cols, n, panel.data());
        xs.resize(pairs.size());
        for (size_t p = 0; p < pairs.size(); ++p) xs[p] = input(pairs[p]);
        for (size_t p0 = 0; p0 < pairs.size(); p0 += kTokenBlock) {
          const int64_t pn = std::min<int64_t>(kTokenBlock, static_cast<int64_t>(pairs.size() - p0));
          cpu_fast::gemm_f32(xs.data() + p0, pn, panel.data(), cols, n, cols, yt.data() + p0 * n, n);
        }
      }
      emit(ex, r0, n, pairs, yt.data(), n);
    });
  }

  // AMX prefill (amx_gemm.h): GPTOSS_CPU_FAST_AMX=0 turns it off; GPTOSS_CPU_FAST_AMX_PARTS (2 or
  // 3, default 3) bf16 terms per activation; GPTOSS_CPU_FAST_AMX_MIN_TOKENS (default 3): matmuls of
  // at least that many tokens and experts with at least that many pairs use it.
  struct AmxChoice {
    bool on = false;
    int parts = 3;
    int min_tokens = 3;
    const char* reason = "";
  };
  static AmxChoice amx_wanted() {
    AmxChoice c;
    const char* v = std::getenv("GPTOSS_CPU_FAST_AMX");
    if (v && std::string(v) == "0") {
      c.reason = "GPTOSS_CPU_FAST_AMX=0";
      return c;
    }
    if (cpu_fast::simd_limit().avx2) {
      c.reason = "GPTOSS_CPU_FAST_SIMD=avx2";
      return c;
    }
    if (!cpu_fast::amx_usable()) {
      c.reason = cpu_fast::amx_unusable_reason();
      return c;
    }
    c.on = true;
    if (const char* p = std::getenv("GPTOSS_CPU_FAST_AMX_PARTS")) c.parts = std::strtol(p, nullptr, 10) == 2 ? 2 : 3;
    if (const char* m = std::getenv("GPTOSS_CPU_FAST_AMX_MIN_TOKENS")) {
      c.min_tokens = std::max(static_cast<int>(kGemvMaxPairs) + 1, static_cast<int>(std::strtol(m, nullptr, 10)));
    }
    return c;
  }

  // The int8 expert GEMVs (kernels_mxfp4_i8.h) for MoE calls of at most kI8MaxTokens tokens (decode
  // of one or two sequences): on by default where their AVX-512 VNNI body runs (on AMD Zen 4, where
  // the f32 kernel is compute-bound, decode is faster with them: docs/cpu-fast-int8-experts.md),
  // off by default with the AVX2 body (not measured); GPTOSS_CPU_FAST_MOE_I8=0 turns them off, =1
  // on wherever the CPU has a body. They round the activations (within the bound of that doc);
  // within one call each token is quantized alone. Larger calls (prefill, batched decode of 3+
  // sequences) run the int8 GEMM where its AVX-512 VNNI body runs (the GEMVs' bits per token, so
  // prefill == decode; GPTOSS_CPU_FAST_MOE_I8_GEMM=0 turns it off), else the f32 / AMX paths,
  // and then a token's logits differ between a 1-2 token call and a larger one within that bound.
  static constexpr int kI8MaxTokens = 2;
  struct I8Choice {
    bool on = false;
    bool gemm = false;  // calls of more than kI8MaxTokens tokens on the int8 GEMM
    bool vector_swiglu = false;  // with gemm: every int8 call's SwiGLU on AVX-512 (avx512_swiglu_pairs)
    int parts = 2;
    const char* reason = "";
    const char* no_gemm = "";  // why not, when on
  };
  static I8Choice i8_wanted(I8 mode) {
    I8Choice c;
    const char* env = mode == I8::kFromEnv ? std::getenv("GPTOSS_CPU_FAST_MOE_I8") : nullptr;
    if (mode != I8::kFromEnv && mode != I8::kOn) {
      c.reason = "off for this backend";
      return c;
    }
    if (env && std::string(env) == "0") {
      c.reason = "GPTOSS_CPU_FAST_MOE_I8=0";
      return c;
    }
    if (!cpu_fast::mxfp4_i8_usable()) {
      c.reason = cpu_fast::mxfp4_i8_target();
      return c;
    }
    if (mode == I8::kFromEnv && !env && std::string(cpu_fast::mxfp4_i8_target()) != "avx512-vnni") {
      c.reason = "the default with the AVX2 body; GPTOSS_CPU_FAST_MOE_I8=1 turns it on";
      return c;
    }
    c.on = true;
    if (const char* p = std::getenv("GPTOSS_CPU_FAST_MOE_I8_PARTS")) c.parts = std::strtol(p, nullptr, 10) == 1 ? 1 : 2;
    const char* gemm = mode == I8::kFromEnv ? std::getenv("GPTOSS_CPU_FAST_MOE_I8_GEMM") : nullptr;
    if (gemm && std::string(gemm) == "0") {
      c.no_gemm = "GPTOSS_CPU_FAST_MOE_I8_GEMM=0";
    } else if (!cpu_fast::mxfp4_i8_gemm_usable()) {
      c.no_gemm = "the int8 GEMM needs the AVX-512 VNNI body";
    } else {
      c.gemm = true;
      c.vector_swiglu = cpu_fast::avx512_swiglu_usable();
    }
    return c;
  }
  // The int8 path of a MoE call of T tokens: GEMVs (kI8Gemv: 1-2 tokens), the GEMM (kI8Gemm: more,
  // where it runs) or none (kF32).
  enum class MoePath { kF32, kI8Gemv, kI8Gemm };
  MoePath moe_path(int T) const {
    if (!i8_.on) return MoePath::kF32;
    if (T <= kI8MaxTokens) return MoePath::kI8Gemv;
    return i8_.gemm ? MoePath::kI8Gemm : MoePath::kF32;
  }

  // Quantizes n activation rows of `cols` (each alone). Without gemm: every row into qa_ (the GEMVs'
  // layout). With gemm: every row repacked for the GEMM into qg_, and into qa_ also the rows that
  // experts of at most kGemvMaxPairs pairs read (those run the GEMVs; pair p reads row p / row_div),
  // at the slots in slot_.
  void quantize_i8(const float* x, int n, int64_t cols, bool gemm, const ExpertGroups& g, int row_div) {
    qbytes_ = cpu_fast::mxfp4_i8_act_bytes(cols);
    gbytes_ = gemm ? cpu_fast::mxfp4_i8_gemm_act_bytes(cols, i8_.parts) : 0;
    gemm_ = gemm;
    int32_t slots = n;
    if (gemm) {
      slot_.assign(static_cast<size_t>(n), -1);
      slots = 0;
      for (const int32_t ex : g.used) {
        if (g.pairs[ex].size() > kGemvMaxPairs) continue;
        for (const int32_t pair : g.pairs[ex]) {
          int32_t& s = slot_[static_cast<size_t>(pair / row_div)];
          if (s < 0) s = slots++;
        }
      }
      qg_.resize(static_cast<size_t>(n * gbytes_ / 64));
    }
    qa_.resize(static_cast<size_t>(slots * qbytes_ / 64));
    auto one = [&](int i) {
      const float* xi = x + i * cols;
      if (!gemm) {
        cpu_fast::quantize_mxfp4_i8_act(xi, cols, i8_act(i));
        return;
      }
      thread_local std::vector<Line> q;
      uint8_t* qp = nullptr;
      if (slot_[static_cast<size_t>(i)] >= 0) {
        qp = i8_act(i);
      } else {
        q.resize(static_cast<size_t>(qbytes_ / 64));
        qp = reinterpret_cast<uint8_t*>(q.data());
      }
      cpu_fast::quantize_mxfp4_i8_act(xi, cols, qp);
      cpu_fast::pack_mxfp4_i8_gemm_act(qp, cols, i8_.parts, i8_gemm_act(i));
    };
    if (n == 1) {
      one(0);
    } else {
      pool_.run(n, one);
    }
  }
  // A row's quantized activations: the GEMVs' layout (with the GEMM: only rows given a slot), the
  // GEMM's.
  uint8_t* i8_act(int32_t row) {
    const int64_t at = gemm_ ? slot_[static_cast<size_t>(row)] : row;
    return reinterpret_cast<uint8_t*>(qa_.data()) + at * qbytes_;
  }
  uint8_t* i8_gemm_act(int32_t row) { return reinterpret_cast<uint8_t*>(qg_.data()) + row * gbytes_; }

  // Weights stay in the model files' mapping (the exact backend borrows it). How the page cache
  // holds them matters: decode of the random 20b on the 2-vCPU VM ran 4.30 tok/s over order-0 (4
  // KB, scattered) pages against 5.83 over 2 MB folios (bench/results/cpu-20b-vs-llamacpp.md), and
  // which one a load gets depends on how the pages came into the cache. On Linux the 2 MB-aligned
  // interior of each weight's range is marked MADV_HUGEPAGE: a page fault on a part not yet cached
  // then reads its 2 MB-aligned neighbourhood as one PMD-size folio and maps it with one entry, in
  // whatever order the model touches the weights (after a cold 8-token decode 82% of the mapping
  // was PMD-mapped, 15% without). Pages already cached keep their folios (MADV_COLLAPSE of file
  // pages needs a kernel built with CONFIG_READ_ONLY_THP_FOR_FS). GPTOSS_CPU_FAST_HUGEPAGE=0 turns
  // it off.
  struct HugepageChoice {
    bool on = false;
    const char* reason = "";
  };
  static HugepageChoice hugepage_wanted() {
    HugepageChoice c;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const char* v = std::getenv("GPTOSS_CPU_FAST_HUGEPAGE");
    c.on = !(v && std::string(v) == "0");
    c.reason = c.on ? "" : "GPTOSS_CPU_FAST_HUGEPAGE=0";
#else
    c.reason = "not Linux";
#endif
    return c;
  }
  void advise_hugepage(const void* host, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t kHuge = uintptr_t{2} << 20;
    const auto at = reinterpret_cast<uintptr_t>(host);
    const uintptr_t first = (at + kHuge - 1) & ~(kHuge - 1), end = (at + bytes) & ~(kHuge - 1);
    // A failure (e.g. THP compiled out) leaves the pages as they were: nothing to report.
    if (end > first && madvise(reinterpret_cast<void*>(first), end - first, MADV_HUGEPAGE) == 0) {
      hugepage_bytes_ += end - first;
    }
#else
    (void)host;
    (void)bytes;
#endif
  }

  static constexpr int64_t kAmxRows = 64;  // weight rows per AMX task (bf16 panel in L2)
  static constexpr size_t kNotPacked = ~size_t{0};

  // The bf16 matmul of T tokens on AMX: x split and packed once (tasks: 16-token tiles), then
  // tasks of kAmxRows weight rows read in place.
  void matmul_amx(const float* x, int T, const Weight& w, const Weight* bias, float* out) {
    const int64_t N = w.rows, K = w.cols;
    xa_.resize(cpu_fast::amx_packed_x_elems(T, K, amx_.parts));
    std::vector<const float*> xs(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) xs[t] = x + static_cast<int64_t>(t) * K;
    pool_.run((T + 15) / 16, [&](int i) {
      cpu_fast::amx_pack_x(xs.data(), T, K, amx_.parts, 16 * i, std::min(T, 16 * (i + 1)), xa_.data());
    });
    const auto* wd = w.buf.as<uint16_t>();
    pool_.run(static_cast<int>((N + kAmxRows - 1) / kAmxRows), [&](int i) {
      const int64_t r0 = i * kAmxRows, n = std::min(kAmxRows, N - r0);
      cpu_fast::amx_gemm_bf16w(xa_.data(), T, amx_.parts, wd + r0 * K, K, n, K, out + r0, N);
      if (bias) {
        float b[kAmxRows];
        for (int64_t r = 0; r < n; ++r) b[r] = cpu::weight_at(*bias, r0 + r);
        for (int t = 0; t < T; ++t) {
          float* o = out + static_cast<int64_t>(t) * N + r0;
          for (int64_t r = 0; r < n; ++r) o[r] += b[r];
        }
      }
    });
  }

  // Packs the activations of every expert with at least amx_.min_tokens pairs for AMX (tasks:
  // experts) and records where (amx_x_at_); false when no expert qualifies or AMX is off.
  template <typename NaturalInput>
  bool pack_experts_amx(const ExpertGroups& g, int64_t cols, NaturalInput&& natural_input) {
    if (!amx_.on) return false;
    amx_x_at_.assign(g.pairs.size(), kNotPacked);
    size_t total = 0;
    for (const int32_t ex : g.used) {
      const size_t P = g.pairs[ex].size();
      if (P <= kGemvMaxPairs || P < static_cast<size_t>(amx_.min_tokens)) continue;
      amx_x_at_[ex] = total;
      total += cpu_fast::amx_packed_x_elems(static_cast<int64_t>(P), cols, amx_.parts);
    }
    if (total == 0) return false;
    xa_.resize(total);
    pool_.run(static_cast<int>(g.used.size()), [&](int i) {
      const int32_t ex = g.used[static_cast<size_t>(i)];
      if (amx_x_at_[ex] == kNotPacked) return;
      const std::vector<int32_t>& pairs = g.pairs[ex];
      thread_local std::vector<const float*> xs;
      xs.resize(pairs.size());
      for (size_t p = 0; p < pairs.size(); ++p) xs[p] = natural_input(pairs[p]);
      const auto P = static_cast<int64_t>(pairs.size());
      cpu_fast::amx_pack_x(xs.data(), P, cols, amx_.parts, 0, P, xa_.data() + amx_x_at_[ex]);
    });
    return true;
  }

  const cpu_fast::SimdLimit simd_;  // first: applied before any kernel is chosen (GPTOSS_CPU_FAST_SIMD)
  std::unique_ptr<Backend> exact_;
  cpu_fast::SpinPool pool_;
  const AmxChoice amx_;
  const I8Choice i8_;
  const HugepageChoice hugepage_;
  size_t hugepage_bytes_ = 0;  // weight bytes marked MADV_HUGEPAGE
  struct alignas(64) Line {
    uint8_t b[64];
  };
  std::vector<Line> qa_;  // int8-quantized activation rows, the GEMVs' layout (64-byte aligned)
  std::vector<Line> qg_;  // the same repacked for the GEMM
  std::vector<int32_t> slot_;  // with the GEMM: a row's slot in qa_ (-1: none)
  int64_t qbytes_ = 0, gbytes_ = 0;  // bytes per row of qa_, qg_
  bool gemm_ = false;  // whether the last quantize_i8 was for the GEMM
  std::vector<uint16_t> xa_;        // activations packed for AMX
  std::vector<size_t> amx_x_at_;    // per expert: offset of its packed activations in xa_
  std::vector<float> xp_, hp_, y_;  // activations in chunk order; expert outputs per (token, slot)
  std::vector<int64_t> ranges_;     // row_ranges' boundaries
  struct ExpertTask {
    int32_t ex;
    int64_t r0, n;
  };
  std::vector<ExpertTask> tasks_;  // run_experts' tasks
  const bool profile_;
  std::map<std::string, ProfileEntry> prof_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_fast_backend(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuFastBackend>(threads, std::getenv("GPTOSS_CPU_FAST_PROFILE") != nullptr);
}

namespace {

bool run_self_check() {
  // Fixed pseudo-random inputs: bf16 weights ~ +-1/16, MXFP4 codes with scales 2^-6..2^-3.
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  auto uniform = [&] { return static_cast<float>(next() >> 8) / 16777216.0f * 2.0f - 1.0f; };
  constexpr int T = 5, K = 4, E = 4;
  constexpr int64_t H = 320, I = 96, N = 37;
  std::vector<uint16_t> wd(N * H), bias(2 * I * E + H * E + N);
  for (auto& v : wd) v = f32_to_bf16(uniform() / 16.0f);
  for (auto& v : bias) v = f32_to_bf16(uniform());
  std::vector<uint8_t> b1(E * 2 * I * H / 2), s1(E * 2 * I * H / 32), b2(E * H * I / 2), s2(E * H * I / 32);
  for (auto* v : {&b1, &b2}) for (auto& x : *v) x = static_cast<uint8_t>(next() >> 24);
  for (auto* v : {&s1, &s2}) for (auto& x : *v) x = static_cast<uint8_t>(121 + (next() >> 30));
  auto weight = [](void* data, int64_t rows, int64_t cols) {
    Weight w;
    w.buf.data = data;
    w.rows = rows;
    w.cols = cols;
    return w;
  };
  auto experts = [](std::vector<uint8_t>& blocks, std::vector<uint8_t>& scales, int64_t rows, int64_t cols) {
    Mxfp4Experts m;
    m.blocks.data = blocks.data();
    m.scales.data = scales.data();
    m.experts = E;
    m.rows = rows;
    m.cols = cols;
    return m;
  };
  const Weight w = weight(wd.data(), N, H), wb = weight(bias.data(), 1, N);
  const Weight bb1 = weight(bias.data() + N, E, 2 * I), bb2 = weight(bias.data() + N + 2 * I * E, E, H);
  const Mxfp4Experts w1 = experts(b1, s1, 2 * I, H), w2 = experts(b2, s2, H, I);
  std::vector<float> x(T * H);
  for (auto& v : x) v = uniform();
  std::vector<int32_t> idx(T * K);
  std::vector<float> route(T * K, 1.0f / K);
  for (int i = 0; i < T * K; ++i) idx[i] = (i / K + i % K) % E;
  auto exact = make_cpu_backend(1);
  // Never prints a profile; the int8 expert GEMVs are checked on their own below.
  auto fast = std::make_unique<CpuFastBackend>(1, false, CpuFastBackend::I8::kOff);
  // |error| <= 1e-4 * (1 + |exact|): summation order alone stays orders of magnitude below.
  auto close = [](const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (!(std::fabs(a[i] - b[i]) <= 1e-4f * (1.0f + std::fabs(a[i])))) return false;
    }
    return true;
  };
  for (int t : {1, T}) {
    std::vector<float> me(t * N), mf(t * N), he(t * K * I), hf(t * K * I), oe(t * H), of(t * H);
    exact->f32_matmul(x.data(), t, w, &wb, me.data());
    fast->f32_matmul(x.data(), t, w, &wb, mf.data());
    exact->f32_mxfp4w_moe_matmul_swiglu(x.data(), t, K, idx.data(), w1, bb1, 7.0f, 1.702f, he.data());
    fast->f32_mxfp4w_moe_matmul_swiglu(x.data(), t, K, idx.data(), w1, bb1, 7.0f, 1.702f, hf.data());
    exact->f32_mxfp4w_moe_matmul_accumulate(he.data(), t, K, idx.data(), route.data(), w2, bb2, oe.data());
    fast->f32_mxfp4w_moe_matmul_accumulate(he.data(), t, K, idx.data(), route.data(), w2, bb2, of.data());
    if (!close(me, mf) || !close(he, hf) || !close(oe, of)) return false;
  }
  if (!cpu_fast::mxfp4_i8_usable()) return true;
  // The int8 expert GEMVs (1-2 token calls) and GEMM (T = 5, where it runs): activations rounded to
  // 8 bits per 32-block, so a looser bound: max |fast - exact| <= kI8Tol * max |exact| over the
  // SwiGLU outputs and over the layer outputs (measured on the Sapphire Rapids VM: 0.011, AVX-512
  // body); a wrong table, layout or dispatch gives errors of the outputs' own size.
  auto fast8 = std::make_unique<CpuFastBackend>(1, false, CpuFastBackend::I8::kOn);
  constexpr float kI8Tol = 5e-2f;
  float worst = 0.0f;
  for (int t : {1, 2, T}) {
    std::vector<float> he(t * K * I), hf(t * K * I), oe(t * H), of(t * H);
    exact->f32_mxfp4w_moe_matmul_swiglu(x.data(), t, K, idx.data(), w1, bb1, 7.0f, 1.702f, he.data());
    fast8->f32_mxfp4w_moe_matmul_swiglu(x.data(), t, K, idx.data(), w1, bb1, 7.0f, 1.702f, hf.data());
    exact->f32_mxfp4w_moe_matmul_accumulate(he.data(), t, K, idx.data(), route.data(), w2, bb2, oe.data());
    fast8->f32_mxfp4w_moe_matmul_accumulate(he.data(), t, K, idx.data(), route.data(), w2, bb2, of.data());
    for (const auto& [e, f] : {std::pair{&he, &hf}, std::pair{&oe, &of}}) {
      float err = 0.0f, mag = 0.0f;
      for (size_t i = 0; i < e->size(); ++i) {
        err = std::max(err, std::fabs((*e)[i] - (*f)[i]));
        mag = std::max(mag, std::fabs((*e)[i]));
      }
      worst = std::max(worst, err / mag);
    }
  }
  return worst <= kI8Tol;
}

}  // namespace

bool cpu_fast_self_check() {
  static const bool ok = run_self_check();
  return ok;
}

}  // namespace gptoss
