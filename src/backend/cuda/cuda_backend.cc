#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <cstring>
#include <vector>

#include "backend/cuda/elementwise.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/moe_gemm.h"
#include "backend/cuda/prefill.h"

namespace gptoss {
namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  ~CudaBackend() override {
    if (stream_ != nullptr) {
      for (auto& sc : scratch_) {
        if (sc.p != nullptr) cudaFreeAsync(sc.p, stream_);
      }
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
    if (!profile_.empty()) {
      std::fprintf(stderr, "cuda backend profile (GPTOSS_CUDA_PROFILE, each op synchronized):\n");
      for (const auto& [name, v] : profile_) std::fprintf(stderr, "  %-28s %8.2f ms %7d calls\n", name.c_str(), v.first * 1e3, v.second);
    }
    cuda::gemm_destroy(gemm_);
    cudaFree(meta_);
    if (bad_ids_ != nullptr) cudaFreeHost(bad_ids_);
  }

  Status init() {
    if (auto e = cudaSetDevice(device_); e != cudaSuccess) return Error("cuda: cudaSetDevice({}): {}", device_, cudaGetErrorString(e));
    if (auto e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking); e != cudaSuccess) {
      return Error("cuda: cudaStreamCreate: {}", cudaGetErrorString(e));
    }
    // Scratch comes from the device's stream-ordered pool (scratch()); freed blocks stay in the pool
    // so that growing a scratch buffer costs no device synchronization and no new mapping.
    cudaMemPool_t pool = nullptr;
    if (cudaDeviceGetDefaultMemPool(&pool, device_) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    cudaGetLastError();
    // Out-of-range expert ids met by the grouped MoE ops (moe_group_slots' `bad`, 4 ints per op kind)
    // land in mapped host memory, read by sync() with no copy.
    if (auto e = cudaHostAlloc(reinterpret_cast<void**>(&bad_ids_), sizeof(int32_t) * 8, cudaHostAllocMapped);
        e != cudaSuccess) {
      return Error("cuda: cudaHostAlloc of the expert-id check flags: {}", cudaGetErrorString(e));
    }
    std::memset(bad_ids_, 0, sizeof(int32_t) * 8);
    if (auto e = cudaHostGetDevicePointer(reinterpret_cast<void**>(&bad_ids_dev_), bad_ids_, 0); e != cudaSuccess) {
      return Error("cuda: cudaHostGetDevicePointer: {}", cudaGetErrorString(e));
    }
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, device_);
    name_ = std::string("cuda:") + prop.name;
    // Ops with at least this many token rows take the cuBLAS prefill path (prefill.h); 0 = never.
    if (const char* v = std::getenv("GPTOSS_CUDA_PREFILL_MIN_T"); v != nullptr) prefill_min_t_ = std::atoi(v);
    // 2: activations as two bf16 parts (16 significant bits; faster, less exact); default 3.
    if (const char* v = std::getenv("GPTOSS_CUDA_PREFILL_PARTS"); v != nullptr && std::atoi(v) == 2) parts_ = 2;
    // The dense prefill GEMMs (gemm_matmul) take the high bf16 part of x in K chunks of at most this many
    // columns (one cuBLAS batch entry each; the chunks' products summed in f32 by sum3_bias_split): the tensor
    // cores' accumulation over K = 2880 in one chain is ~10x less exact than f32 (NOTES v21). 0: K in
    // one chunk (before v21). Default 512.
    if (const char* v = std::getenv("GPTOSS_CUDA_PREFILL_KCHUNK"); v != nullptr) prefill_kchunk_ = std::atoi(v);
    // Attention of many tokens of one sequence (prefill) through attention_prefill with this many tokens
    // per block (4 or 8); 0: the flash-decoding kernel per token (before v23). Default 8.
    if (const char* v = std::getenv("GPTOSS_CUDA_PREFILL_ATTN"); v != nullptr) {
      prefill_attn_tq_ = std::atoi(v) == 4 ? 4 : std::atoi(v) == 0 ? 0 : 8;
    }
    // 0: q, k and v as three prefill GEMMs (f32_matmuls; before v23). Default 1: one.
    if (const char* v = std::getenv("GPTOSS_CUDA_PREFILL_QKV"); v != nullptr && std::atoi(v) == 0) fuse_qkv_ = false;
    // 1: synchronize around each op and print the time per op kind when the backend is destroyed.
    if (const char* v = std::getenv("GPTOSS_CUDA_PROFILE"); v != nullptr && std::atoi(v) == 1) profiling_ = true;
    // 1: keep every expert matrix decoded to bf16 after its first prefill use (4x the MXFP4 bytes:
    // ~38 GB for gpt-oss-20b) instead of decoding the used experts in every MoE op. Skipped (per
    // matrix) when it would leave less than 8 GiB of device memory free.
    if (const char* v = std::getenv("GPTOSS_CUDA_PREFILL_EXPERT_CACHE"); v != nullptr && std::atoi(v) == 1) {
      expert_cache_on_ = true;
    }
    // cublas: the MoE ops of many tokens decode each used expert to bf16 and run one cuBLAS GEMM per
    // expert (the path before moe_gemm.h; also taken with the expert cache). Default: the grouped
    // MXFP4 GEMM (moe_gemm.h).
    if (const char* v = std::getenv("GPTOSS_CUDA_PREFILL_MOE"); v != nullptr && std::string(v) == "cublas") {
      moe_cublas_ = true;
    }
    // x16: prefill matmuls through the x16 kernel (moe_gemm.h dense_gemm_x16) on an fp16 copy of each
    // matrix made at its first prefill use (3x more exact); cublas (default): cuBLAS GEMMs over three
    // bf16 parts of x.
    if (const char* v = std::getenv("GPTOSS_CUDA_PREFILL_DENSE"); v != nullptr) dense_cublas_ = std::string(v) != "x16";
    return Status::ok();
  }

  std::string name() const override { return name_; }

  Expected<Buffer> alloc(size_t bytes) override {
    void* p = nullptr;
    if (auto e = cudaMalloc(&p, std::max<size_t>(bytes, 1)); e != cudaSuccess) {
      return Error("cuda: cudaMalloc of {} bytes failed: {}", bytes, cudaGetErrorString(e));
    }
    Buffer b;
    b.mem = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
    b.data = p;
    b.bytes = bytes;
    return b;
  }

  Expected<Buffer> upload_weight(const void* host, size_t bytes) override {
    GPTOSS_ASSIGN_OR_RETURN(Buffer b, alloc(bytes));
    if (auto e = cudaMemcpy(b.data, host, bytes, cudaMemcpyHostToDevice); e != cudaSuccess) {
      return Error("cuda: uploading {} bytes of weights failed: {}", bytes, cudaGetErrorString(e));
    }
    return b;
  }

  // Complete when it returns (the KV page table: the graph decode engine reads it from its own stream).
  Status upload(const void* host, size_t bytes, void* dst) override {
    if (bytes == 0) return err_;
    if (auto e = cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream_); e != cudaSuccess) {
      fail("upload", e);
    }
    return sync();
  }

  Status download(const void* src, size_t bytes, void* host) override {
    if (auto e = cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream_); e != cudaSuccess) {
      fail("download", e);
    }
    return sync();
  }

  Status zero(void* dst, size_t bytes) override {
    if (auto e = cudaMemsetAsync(dst, 0, bytes, stream_); e != cudaSuccess) fail("zero", e);
    return err_;
  }

  Status sync() override {
    if (auto e = cudaStreamSynchronize(stream_); e != cudaSuccess) fail("sync", e);
    check_expert_ids();
    return err_;
  }

  void f32_embed(const Weight& table, std::span<const uint32_t> tokens, float* out) override {
    Lap lap(this, "embed");
    if (!bf16(table, "embedding")) return;
    const int32_t* d = meta(0, tokens.data(), tokens.size());
    check("embed", cuda::embed_bf16(table.buf.as<uint16_t>(), static_cast<int>(table.cols), d,
                                    static_cast<int>(tokens.size()), out, stream_));
  }

  void f32_rmsnorm(const float* x, int T, const Weight& gain, float eps, float* out) override {
    Lap lap(this, "rmsnorm");
    if (!bf16(gain, "rmsnorm gain")) return;
    check("rmsnorm", cuda::rmsnorm(x, T, static_cast<int>(gain.cols), gain.buf.as<uint16_t>(), eps, out, stream_));
  }

  void f32_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out) override {
    Lap lap(this, prefill(T) ? "matmul gemm" : "matmul gemv");
    if (!bf16(w, "matmul weight") || (bias != nullptr && !bf16(*bias, "matmul bias"))) return;
    if (w.cols % 8 != 0) return fail_msg(fmt::format("matmul: {} columns is not a multiple of 8", w.cols));
    if (prefill(T)) {
      if (!dense_cublas_ && w.cols % 32 == 0) {
        if (const DenseF16* d = dense_f16(w); d != nullptr) return dense_x16(x, T, *d, w, bias, out);
      }
      return gemm_matmul(x, T, w, bias, out);
    }
    cuda::GemvInput in;
    in.x = x;
    in.x_stride = static_cast<int>(w.cols);
    check("matmul", cuda::gemv_bf16(w.buf.as<uint16_t>(), bias ? bias->buf.as<uint16_t>() : nullptr,
                                    static_cast<int>(w.rows), static_cast<int>(w.cols), in, T, out,
                                    static_cast<int>(w.rows), false, stream_));
  }

  void f32_rope_yarn(float* x, int T, int heads, int head_dim, std::span<const int32_t> positions,
                     const RopeTable& rope) override {
    Lap lap(this, "rope");
    const int32_t* pos = meta(0, positions.data(), positions.size());
    const float* inv = meta_floats(1, rope.inv_freq.data(), rope.inv_freq.size());
    check("rope", cuda::rope_inplace(x, T, heads, head_dim, pos, inv, rope.concentration, stream_));
  }

  void f32_kv_store(const KvLayer& kv, const float* k, const float* v, int T, std::span<const int32_t> slots,
                    std::span<const int32_t> positions) override {
    Lap lap(this, "kv_store");
    const int32_t* s = meta(0, slots.data(), slots.size());
    const int32_t* p = meta(1, positions.data(), positions.size());
    check("kv_store", cuda::kv_store(kv.k.as<float>(), kv.v.as<float>(), kv.capacity, kv.kv_heads * kv.head_dim, k, v,
                                     T, s, p, stream_, {kv.page_table_device, kv.page_size, kv.pages_per_slot}));
  }

  void f32_sdpa_sink_window(const float* q, int T, int heads, const KvLayer& kv, std::span<const int32_t> slots,
                            std::span<const int32_t> positions, const Weight& sinks, int window, float scale,
                            float* out) override {
    Lap lap(this, "sdpa");
    if (!bf16(sinks, "sinks")) return;
    if (kv.head_dim != 64) return fail_msg(fmt::format("sdpa: head_dim {} (the cuda kernels need 64)", kv.head_dim));
    const cuda::KvPages pages{kv.page_table_device, kv.page_size, kv.pages_per_slot};
    if (prefill(T) && prefill_attn_tq_ > 0 && heads == 8 * kv.kv_heads && one_run(slots, positions)) {
      check("sdpa", cuda::attention_prefill(q, T, heads, kv.kv_heads, kv.k.as<float>(), kv.v.as<float>(), kv.capacity,
                                            positions[0], slots[0], window, scale, sinks.buf.as<uint16_t>(), out,
                                            stream_, prefill_attn_tq_, pages));
      return;
    }
    int max_pos = 0;
    for (int32_t p : positions) max_pos = std::max(max_pos, static_cast<int>(p));
    const int span = window > 0 ? std::min(window, max_pos + 1) : max_pos + 1;
    const int nsplit = std::clamp(span / 256, 1, 16);
    float* part = scratch<float>(0, static_cast<size_t>(T) * heads * nsplit * 66);
    int32_t* counters = scratch<int32_t>(1, static_cast<size_t>(T) * kv.kv_heads, /*zeroed=*/true);
    if (part == nullptr || counters == nullptr) return;
    const int32_t* s = meta(0, slots.data(), slots.size());
    const int32_t* p = meta(1, positions.data(), positions.size());
    check("sdpa", cuda::attention(q, T, heads, kv.kv_heads, kv.k.as<float>(), kv.v.as<float>(), kv.capacity, p, s,
                                  window, scale, sinks.buf.as<uint16_t>(), nsplit, part, counters, out, stream_,
                                  false, pages));
  }

  void f32_topk_softmax(const float* logits, int T, int n, int k, int32_t* idx, float* weight) override {
    Lap lap(this, "topk");
    check("topk_softmax", cuda::topk_softmax(logits, T, n, k, idx, weight, stream_));
  }

  void f32_mxfp4w_moe_matmul_swiglu(const float* x, int T, int k, const int32_t* idx, const Mxfp4Experts& w1,
                                    const Weight& b1, float limit, float alpha, float* h) override {
    Lap lap(this, prefill(T) ? "moe gate_up total" : "moe gate_up kernel");
    if (!bf16(b1, "expert bias")) return;
    if (prefill(T)) return gemm_moe(x, T, k, idx, nullptr, w1, b1, limit, alpha, h);
    const int cols = static_cast<int>(w1.cols);
    uint32_t* x16 = scratch<uint32_t>(2, cuda::x16_bytes(T, cols) / 4);
    float* inv = scratch<float>(3, T);
    if (x16 == nullptr || inv == nullptr) return;
    check("moe stage", cuda::stage_x16(x, cols, T, cols, x16, inv, stream_));
    check("moe gate_up", cuda::moe_gate_up_swiglu(x16, inv, idx, T, k, w1.blocks.as<uint8_t>(), w1.scales.as<uint8_t>(),
                                                  b1.buf.as<uint16_t>(), static_cast<int>(w1.rows), cols, limit, alpha,
                                                  h, nullptr, stream_));
  }

  void f32_mxfp4w_moe_matmul_accumulate(const float* h, int T, int k, const int32_t* idx, const float* weight,
                                        const Mxfp4Experts& w2, const Weight& b2, float* out) override {
    Lap lap(this, prefill(T) ? "moe down total" : "moe down kernel");
    if (!bf16(b2, "expert bias")) return;
    if (prefill(T)) return gemm_moe(h, T, k, idx, weight, w2, b2, 0.0f, 0.0f, out);
    const int cols = static_cast<int>(w2.cols);
    uint32_t* h16 = scratch<uint32_t>(2, cuda::x16_bytes(T * k, cols) / 4);
    float* inv = scratch<float>(3, static_cast<size_t>(T) * k);
    if (h16 == nullptr || inv == nullptr) return;
    check("moe stage", cuda::stage_x16(h, cols, T * k, cols, h16, inv, stream_));
    check("moe down", cuda::moe_down_accumulate(h16, inv, idx, weight, T, k, w2.blocks.as<uint8_t>(),
                                                w2.scales.as<uint8_t>(), b2.buf.as<uint16_t>(),
                                                static_cast<int>(w2.rows), cols, out, false, stream_));
  }

  void f32_add(float* x, const float* y, size_t n) override {
    Lap lap(this, "add");
    check("add", cuda::add_inplace(x, y, n, stream_));
  }

  void f32_gather_rows(const float* x, int cols, std::span<const int32_t> rows, float* out) override {
    Lap lap(this, "gather");
    const int32_t* r = meta(0, rows.data(), rows.size());
    check("gather_rows", cuda::gather_rows(x, cols, r, static_cast<int>(rows.size()), out, stream_));
  }

 private:
  // Times an op (GPTOSS_CUDA_PROFILE=1): synchronizes at its start and end; sub() splits off a phase.
  struct Lap {
    CudaBackend* b;
    const char* name;
    std::chrono::steady_clock::time_point t0;
    Lap(CudaBackend* be, const char* n) : b(be), name(n) {
      if (b->profiling_) {
        cudaStreamSynchronize(b->stream_);
        t0 = std::chrono::steady_clock::now();
      }
    }
    void sub(const char* phase) {
      if (!b->profiling_) return;
      cudaStreamSynchronize(b->stream_);
      const auto t1 = std::chrono::steady_clock::now();
      auto& v = b->profile_[std::string(name) + ": " + phase];
      v.first += std::chrono::duration<double>(t1 - t0).count();
      v.second += 1;
      t0 = t1;
    }
    ~Lap() { sub("rest"); }
  };

  bool prefill(int T) const { return prefill_min_t_ > 0 && T >= prefill_min_t_; }
  // Whether the T rows are one sequence at consecutive positions (what attention_prefill takes).
  static bool one_run(std::span<const int32_t> slots, std::span<const int32_t> positions) {
    for (size_t t = 1; t < positions.size(); ++t) {
      if (slots[t] != slots[0] || positions[t] != positions[0] + static_cast<int32_t>(t)) return false;
    }
    return !positions.empty() && slots.size() == positions.size();
  }

  cuda::Gemm* gemm() {
    if (gemm_ == nullptr) {
      int status = 0;
      gemm_ = cuda::gemm_create(stream_, &status);
      if (gemm_ == nullptr) fail_msg(fmt::format("cublas init failed (status {})", status));
    }
    return gemm_;
  }
  void check_blas(const char* op, int status) {
    if (status != 0) fail_msg(fmt::format("{}: cublas status {}", op, status));
  }

  // Chunks of K for gemm_matmul: the fewest c with K / c a multiple of 8 and <= prefill_kchunk_ (1 when
  // that is 0 or no such c exists).
  int k_chunks(int K) const {
    if (prefill_kchunk_ <= 0) return 1;
    for (int c = 1; c <= K / 8; ++c) {
      if (K % c == 0 && (K / c) % 8 == 0 && K / c <= prefill_kchunk_) return c;
    }
    return 1;
  }

  // out[T, N] = x . w^T (+ bias) over the bf16 parts of x (split3_bf16: [parts][T][K]): the high part
  // in c chunks of K (a batch of c GEMMs of T rows), the lower parts (2^-8 and 2^-16 of it) in one GEMM
  // of (parts - 1) * T rows; the c + parts - 1 products summed in f32. c = 1: one GEMM of parts * T rows.
  void gemm_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out) {
    cuda::SplitOut so;
    so.count = 1;
    so.end[0] = static_cast<int>(w.rows);
    so.out[0] = out;
    gemm_matmul(x, T, w.buf.as<uint16_t>(), static_cast<int>(w.rows), static_cast<int>(w.cols),
                bias ? bias->buf.as<uint16_t>() : nullptr, so);
  }
  // The same for a bf16 matrix wp [N][K] (bias: N bf16 or null), its output columns in segments (so).
  void gemm_matmul(const float* x, int T, const uint16_t* wp, int N, int K, const uint16_t* bias,
                   const cuda::SplitOut& so) {
    const int c = k_chunks(K), kc = K / c;
    const size_t TN = static_cast<size_t>(T) * N;
    cuda::Gemm* g = gemm();
    uint16_t* a = scratch<uint16_t>(6, static_cast<size_t>(3) * T * K);
    float* y = scratch<float>(7, static_cast<size_t>(c + 2) * TN);
    if (g == nullptr || a == nullptr || y == nullptr) return;
    check("prefill split", cuda::split3_bf16(x, K, nullptr, T, a, stream_, parts_));
    if (c == 1) {
      check_blas("prefill matmul", cuda::gemm_bf16(g, wp, N, K, a, 0, parts_ * T, y, 0, 1));
    } else {
      check_blas("prefill matmul", cuda::gemm_bf16(g, wp, N, kc, a, kc, T, y, static_cast<long long>(TN), c, K, kc));
      check_blas("prefill matmul", cuda::gemm_bf16(g, wp, N, K, a + static_cast<size_t>(T) * K, 0, (parts_ - 1) * T,
                                                   y + c * TN, 0, 1));
    }
    check("prefill sum", cuda::sum3_bias_split(y, T, N, bias, so, stream_, c + parts_ - 1));
  }

  // q, k and v (any 2-4 bf16 matrices of one input, with biases or without) as one prefill GEMM over their
  // rows side by side: one split of x, one batch of chunk products, one sum writing each matrix's
  // columns to its output. The rows are used in place where they already sit back to back (the fused
  // qkv of original/ checkpoints), else copied once into one matrix at the first use (+ the matrices'
  // bytes of device memory; skipped, as dense_f16, when that would leave less than 4 GiB free).
  // GPTOSS_CUDA_PREFILL_QKV=0: each matrix alone (before v23).
  void f32_matmuls(const float* x, int T, std::span<const MatmulOut> outs) override {
    if (!prefill(T) || !dense_cublas_ || !fuse_qkv_ || outs.size() < 2 || outs.size() > 4) {
      return Backend::f32_matmuls(x, T, outs);
    }
    const int K = static_cast<int>(outs[0].w->cols);
    const bool biased = outs[0].bias != nullptr;
    cuda::SplitOut so;
    int N = 0;
    for (size_t i = 0; i < outs.size(); ++i) {
      const MatmulOut& m = outs[i];
      if (m.w->type != ElemType::kBF16 || m.w->cols != K || (m.bias != nullptr) != biased ||
          (biased && (m.bias->type != ElemType::kBF16 || m.bias->rows * m.bias->cols != m.w->rows))) {
        return Backend::f32_matmuls(x, T, outs);
      }
      N += static_cast<int>(m.w->rows);
      so.end[i] = N;
      so.out[i] = m.out;
    }
    so.count = static_cast<int>(outs.size());
    // Each matrix's buffer must hold exactly its rows (a row_slice does), each bias its N values.
    std::vector<const Buffer*> wb, bb;
    for (const MatmulOut& m : outs) {
      if (m.w->buf.bytes != static_cast<size_t>(m.w->rows) * K * 2 ||
          (biased && m.bias->buf.bytes != static_cast<size_t>(m.w->rows) * 2)) {
        return Backend::f32_matmuls(x, T, outs);
      }
      wb.push_back(&m.w->buf);
      if (biased) bb.push_back(&m.bias->buf);
    }
    const uint16_t* w = fused(wb);
    const uint16_t* b = biased ? fused(bb) : nullptr;
    if (w == nullptr || (biased && b == nullptr)) return Backend::f32_matmuls(x, T, outs);
    Lap lap(this, "matmul gemm fused");
    gemm_matmul(x, T, w, N, K, b, so);
  }

  // The MoE ops for many tokens: (token, expert) slots grouped by expert on the host (idx is read
  // back), each used expert decoded to bf16 once, one GEMM per expert over its slots (three parts
  // as a batch of 3). weight == nullptr: gate_up + SwiGLU into out = h [T, k, rows / 2]; else down
  // + bias, weighted sum over each token's experts into out [T, rows].
  void gemm_moe(const float* x, int T, int k, const int32_t* idx, const float* weight, const Mxfp4Experts& w,
                const Weight& bias, float limit, float alpha, float* out) {
    const int S = T * k, N = static_cast<int>(w.rows), K = static_cast<int>(w.cols), E = static_cast<int>(w.experts);
    cuda::Gemm* g = gemm();
    if (g == nullptr) return;
    Lap lap(this, weight == nullptr ? "moe gate_up gemm" : "moe down gemm");
    lap.sub("before");
    if (!moe_cublas_ && !expert_cache_on_) return grouped_moe(x, T, k, idx, weight, w, bias, limit, alpha, out, lap);
    if (!group_slots(idx, S, k, E, weight == nullptr)) return;
    const std::vector<int>& off = off_;
    const uint16_t* cached = cached_experts(w);
    const int32_t* d_sorted = meta(0, sorted_.data(), sorted_.size());
    const int32_t* d_used = meta(1, used_.data(), used_.size());
    const int U = cached != nullptr ? 0 : static_cast<int>(used_.size());
    uint16_t* a = scratch<uint16_t>(6, static_cast<size_t>(parts_) * S * K);
    float* y = scratch<float>(7, static_cast<size_t>(parts_) * S * N);
    uint16_t* wd = scratch<uint16_t>(8, static_cast<size_t>(U) * N * K);
    if (d_sorted == nullptr || d_used == nullptr || a == nullptr || y == nullptr || wd == nullptr) return;
    lap.sub("group (host)");
    check("prefill moe split", cuda::split3_bf16(x, K, d_sorted, S, a, stream_, parts_));
    lap.sub("split");
    check("prefill moe decode", cuda::mxfp4_to_bf16(w.blocks.as<uint8_t>(), w.scales.as<uint8_t>(), d_used, U, N, K,
                                                   wd, stream_));
    lap.sub("decode experts");
    for (int u = 0; u < static_cast<int>(used_.size()); ++u) {
      const int e = used_[u], n = off[e + 1] - off[e];
      const uint16_t* we = cached != nullptr ? cached + static_cast<size_t>(e) * N * K : wd + static_cast<size_t>(u) * N * K;
      check_blas("prefill moe gemm",
                 cuda::gemm_bf16(g, we, N, K, a + static_cast<size_t>(off[e]) * K,
                                 static_cast<long long>(S) * K, n, y + static_cast<size_t>(off[e]) * N,
                                 static_cast<long long>(S) * N, parts_));
    }
    lap.sub("gemms");
    const uint16_t* b = bias.buf.as<uint16_t>();
    if (weight == nullptr) {
      check("prefill moe swiglu", cuda::moe_swiglu_epilogue(y, S, N, d_sorted + S, d_sorted + 2 * S, b, limit, alpha,
                                                            out, stream_, parts_));
      return;
    }
    float* ys = scratch<float>(9, static_cast<size_t>(S) * N);
    if (ys == nullptr) return;
    check("prefill moe down", cuda::moe_down_epilogue(y, S, N, d_sorted + S, d_sorted + 2 * S, b, ys, stream_, parts_));
    check("prefill moe combine", cuda::moe_combine(ys, idx, weight, T, k, N, out, stream_));
  }

  // Reads idx back and groups the S = T * k (token, expert) slots by expert, slots in token order:
  // sorted_ = [source row of the input (the token for gate_up, the slot for down) | destination slot |
  // expert] per sorted slot, off_[e] = first sorted slot of expert e, used_ = the experts with slots.
  bool group_slots(const int32_t* idx, int S, int k, int E, bool gate_up) {
    host_idx_.resize(S);
    if (!download(idx, sizeof(int32_t) * S, host_idx_.data()).is_ok()) return false;
    off_.assign(E + 1, 0);
    for (int s = 0; s < S; ++s) {
      const int e = host_idx_[s];
      if (e < 0 || e >= E) {
        fail_msg(fmt::format("moe: expert id {} out of range [0, {})", e, E));
        return false;
      }
      ++off_[e + 1];
    }
    used_.clear();
    for (int e = 0; e < E; ++e) {
      if (off_[e + 1] > 0) used_.push_back(e);
      off_[e + 1] += off_[e];
    }
    sorted_.assign(static_cast<size_t>(3) * S, 0);
    std::vector<int> fill(off_.begin(), off_.end() - 1);
    for (int s = 0; s < S; ++s) {
      const int e = host_idx_[s], i = fill[e]++;
      sorted_[i] = gate_up ? s / k : s;
      sorted_[S + i] = s;
      sorted_[2 * S + i] = e;
    }
    return true;
  }

  // The MoE ops for many tokens through the grouped MXFP4 GEMM (moe_gemm.h), with no host
  // synchronization: the slots grouped by expert on the device, the input rows staged once in x16
  // form, one launch over all (expert, slot tile, row tile). gate_up writes h through the fused
  // SwiGLU; down writes each slot's projection (+ bias) and moe_combine sums them per token in
  // expert-id order (the CPU exact path's order).
  void grouped_moe(const float* x, int T, int k, const int32_t* idx, const float* weight, const Mxfp4Experts& w,
                   const Weight& bias, float limit, float alpha, float* out, Lap& lap) {
    const int S = T * k, N = static_cast<int>(w.rows), K = static_cast<int>(w.cols), E = static_cast<int>(w.experts);
    const bool gate_up = weight == nullptr;
    const int max_tiles = cuda::moe_gemm_max_tiles(S, E), in_rows = gate_up ? T : S;
    int32_t* sorted = scratch<int32_t>(10, static_cast<size_t>(2) * S);
    int32_t* tiles = scratch<int32_t>(11, static_cast<size_t>(3) * max_tiles + 1);
    uint32_t* x16 = scratch<uint32_t>(2, cuda::x16_bytes(in_rows, K) / 4);
    float* inv = scratch<float>(3, in_rows);
    float* ys = gate_up ? out : scratch<float>(9, static_cast<size_t>(S) * N);
    if (sorted == nullptr || tiles == nullptr || x16 == nullptr || inv == nullptr || ys == nullptr) return;
    check("prefill moe group", cuda::moe_group_slots(idx, S, k, E, gate_up, sorted, tiles, stream_,
                                                     cuda::kMoeGemmTileSlots, bad_ids_dev_ + (gate_up ? 0 : 4)));
    lap.sub("group");
    check("prefill moe stage", cuda::stage_x16(x, K, in_rows, K, x16, inv, stream_));
    lap.sub("stage x16");
    check("prefill moe gemm", cuda::moe_gemm_mxfp4(x16, inv, sorted, sorted + S, tiles, max_tiles,
                                                   w.blocks.as<uint8_t>(), w.scales.as<uint8_t>(),
                                                   bias.buf.as<uint16_t>(), N, K, gate_up, limit, alpha, ys, stream_));
    lap.sub("grouped gemm");
    if (!gate_up) check("prefill moe combine", cuda::moe_combine(ys, idx, weight, T, k, N, out, stream_));
  }

  // Whether b's memory is still the one remembered as o (a cache entry keyed by address stays valid).
  static bool still_owned(const std::weak_ptr<void>& o, const Buffer& b) {
    return !o.owner_before(b.mem) && !b.mem.owner_before(o) && (b.mem == nullptr || !o.expired());
  }

  // Several device buffers back to back for f32_matmuls (the rows of q, k and v; their biases): in place
  // when they already are (one owner, each starting where the previous ends), else a copy made at the
  // first use. Keyed by the first buffer's address; the owners are remembered as in dense_f16_.
  struct Fused {
    std::vector<std::weak_ptr<void>> owners;
    std::vector<const void*> parts;  // each buffer's address, to tell another set at the same first address
    std::shared_ptr<void> copy;
    const uint16_t* data = nullptr;
  };
  const uint16_t* fused(const std::vector<const Buffer*>& bufs) {
    auto it = fused_.find(bufs[0]->data);
    if (it != fused_.end()) {
      bool same = it->second.parts.size() == bufs.size();
      for (size_t i = 0; same && i < bufs.size(); ++i) {
        same = it->second.parts[i] == bufs[i]->data && still_owned(it->second.owners[i], *bufs[i]);
      }
      if (same) return it->second.data;
      fused_.erase(it);
    }
    Fused& f = fused_[bufs[0]->data];
    size_t bytes = 0;
    bool in_place = true;
    for (size_t i = 0; i < bufs.size(); ++i) {
      f.owners.push_back(bufs[i]->mem);
      f.parts.push_back(bufs[i]->data);
      bytes += bufs[i]->bytes;
      in_place = in_place && (i == 0 || (bufs[i]->mem == bufs[0]->mem &&
                                         static_cast<const uint8_t*>(bufs[i]->data) ==
                                             static_cast<const uint8_t*>(bufs[i - 1]->data) + bufs[i - 1]->bytes));
    }
    if (in_place) return f.data = static_cast<const uint16_t*>(bufs[0]->data);
    size_t free_b = 0, total_b = 0;
    void* p = nullptr;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess || free_b < bytes + (size_t(4) << 30) ||
        cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    f.copy = std::shared_ptr<void>(p, [](void* v) { cudaFree(v); });
    size_t off = 0;
    for (const Buffer* b : bufs) {
      check("prefill fused rows", static_cast<int>(cudaMemcpyAsync(static_cast<uint8_t*>(p) + off, b->data, b->bytes,
                                                                   cudaMemcpyDeviceToDevice, stream_)));
      off += b->bytes;
    }
    return f.data = static_cast<const uint16_t*>(p);
  }

  // A dense matrix as fp16 rows scaled by powers of two (f16_rows), made at its first prefill use:
  // as many bytes as the bf16 matrix. Null (the cuBLAS path is taken) when it would leave less than
  // 4 GiB of device memory free.
  // Entries are keyed by address and remember the weight's owner (Buffer::mem), so a matrix freed and
  // another allocated at the same address is not taken for the old one.
  struct DenseF16 {
    std::weak_ptr<void> owner;
    std::shared_ptr<void> w16, w_inv;
  };
  const DenseF16* dense_f16(const Weight& w) {
    auto it = dense_f16_.find(w.buf.data);
    if (it != dense_f16_.end()) {
      if (still_owned(it->second.owner, w.buf)) {
        return it->second.w16 ? &it->second : nullptr;
      }
      dense_f16_.erase(it);
    }
    DenseF16& d = dense_f16_[w.buf.data];
    d.owner = w.buf.mem;
    const size_t bytes = static_cast<size_t>(w.rows) * w.cols * 2;
    size_t free_b = 0, total_b = 0;
    void* p = nullptr;
    void* q = nullptr;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess || free_b < bytes + (size_t(4) << 30) ||
        cudaMalloc(&p, bytes) != cudaSuccess || cudaMalloc(&q, static_cast<size_t>(w.rows) * 4) != cudaSuccess) {
      cudaGetLastError();
      cudaFree(p);
      return nullptr;
    }
    d.w16 = std::shared_ptr<void>(p, [](void* v) { cudaFree(v); });
    d.w_inv = std::shared_ptr<void>(q, [](void* v) { cudaFree(v); });
    check("prefill dense f16", cuda::f16_rows(w.buf.as<uint16_t>(), static_cast<int>(w.rows), static_cast<int>(w.cols),
                                              static_cast<uint16_t*>(p), static_cast<float*>(q), stream_));
    return &d;
  }

  // out[T, N] = x . w^T (+ bias) through the x16 kernel: x staged in x16 form, w from dense_f16.
  void dense_x16(const float* x, int T, const DenseF16& d, const Weight& w, const Weight* bias, float* out) {
    const int N = static_cast<int>(w.rows), K = static_cast<int>(w.cols);
    uint32_t* x16 = scratch<uint32_t>(2, cuda::x16_bytes(T, K) / 4);
    float* inv = scratch<float>(3, T);
    const int splits = cuda::dense_gemm_splits(T, N, K);
    float* ws = splits > 1 ? scratch<float>(7, static_cast<size_t>(splits) * T * N) : nullptr;
    if (x16 == nullptr || inv == nullptr || (splits > 1 && ws == nullptr)) return;
    check("prefill matmul stage", cuda::stage_x16(x, K, T, K, x16, inv, stream_));
    check("prefill matmul", cuda::dense_gemm_x16(x16, inv, T, static_cast<const uint16_t*>(d.w16.get()),
                                                 static_cast<const float*>(d.w_inv.get()),
                                                 bias ? bias->buf.as<uint16_t>() : nullptr, N, K, out, ws, stream_));
  }

  // The bf16 copy of all of w's experts (GPTOSS_CUDA_PREFILL_EXPERT_CACHE=1), decoded on first use;
  // null when the cache is off or the memory is not there.
  const uint16_t* cached_experts(const Mxfp4Experts& w) {
    if (!expert_cache_on_) return nullptr;
    auto it = expert_cache_.find(w.blocks.data);
    if (it != expert_cache_.end()) return static_cast<const uint16_t*>(it->second.get());
    const size_t bytes = static_cast<size_t>(w.experts) * w.rows * w.cols * 2;
    size_t free_b = 0, total_b = 0;
    void* p = nullptr;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess || free_b < bytes + (size_t(8) << 30) ||
        cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      expert_cache_[w.blocks.data] = nullptr;
      return nullptr;
    }
    std::vector<int32_t> all(static_cast<size_t>(w.experts));
    for (size_t e = 0; e < all.size(); ++e) all[e] = static_cast<int32_t>(e);
    const int32_t* d_all = meta(1, all.data(), all.size());
    check("prefill expert cache", cuda::mxfp4_to_bf16(w.blocks.as<uint8_t>(), w.scales.as<uint8_t>(), d_all,
                                                     static_cast<int>(w.experts), static_cast<int>(w.rows),
                                                     static_cast<int>(w.cols), static_cast<uint16_t*>(p), stream_));
    auto& slot = expert_cache_[w.blocks.data];
    slot = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
    return static_cast<const uint16_t*>(p);
  }

  // Small host arrays travel to one of a few device slots; the stream orders each copy after the
  // kernels that read the slot's previous contents.
  static constexpr size_t kMetaSlotBytes = 1 << 20;
  static constexpr int kMetaSlots = 2;

  const int32_t* meta(int slot, const void* host, size_t count) {
    return static_cast<const int32_t*>(meta_copy(slot, host, count * 4));
  }
  const float* meta_floats(int slot, const float* host, size_t count) {
    return static_cast<const float*>(meta_copy(slot, host, count * 4));
  }
  const void* meta_copy(int slot, const void* host, size_t bytes) {
    if (meta_ == nullptr) {
      if (auto e = cudaMalloc(&meta_, kMetaSlotBytes * kMetaSlots); e != cudaSuccess) {
        fail("metadata buffer", e);
        return nullptr;
      }
    }
    if (bytes > kMetaSlotBytes) {
      fail_msg(fmt::format("{} bytes of per-token metadata in one op (limit {})", bytes, kMetaSlotBytes));
      return nullptr;
    }
    void* dst = static_cast<uint8_t*>(meta_) + slot * kMetaSlotBytes;
    if (bytes > 0) {
      if (auto e = cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream_); e != cudaSuccess) {
        fail("metadata upload", e);
      }
    }
    return dst;
  }

  // Device scratch `which`, grown on demand, stream-ordered (cudaFreeAsync / cudaMallocAsync on the
  // backend's stream: the old block is reused only after the kernels queued before it).
  // zeroed: cleared when (re)allocated; kernels that use it leave it zero.
  template <typename T>
  T* scratch(int which, size_t count, bool zeroed = false) {
    Scratch& sc = scratch_[which];
    const size_t need = std::max<size_t>(count * sizeof(T), 16);
    if (need > sc.bytes) {
      if (sc.p != nullptr) cudaFreeAsync(sc.p, stream_);
      sc = Scratch{};
      if (auto e = cudaMallocAsync(&sc.p, need, stream_); e != cudaSuccess) {
        fail("scratch", e);
        return nullptr;
      }
      sc.bytes = need;
      if (zeroed) cudaMemsetAsync(sc.p, 0, need, stream_);
    }
    return static_cast<T*>(sc.p);
  }

  // After a stream synchronization: fails with the op, the count and an example of the expert ids
  // outside [0, E) that the grouped MoE ops dropped since the last check (their slots were not
  // computed), and clears the flags.
  void check_expert_ids() {
    volatile int32_t* f = bad_ids_;
    for (int op = 0; op < 2; ++op) {
      volatile int32_t* b = f + 4 * op;
      if (b[0] == 0) continue;
      fail_msg(fmt::format("{}: {} (token, expert) slot(s) had an expert id outside [0, {}) (id {} at slot {}); "
                           "their outputs were not computed",
                           op == 0 ? "prefill moe gate_up (f32_mxfp4w_moe_matmul_swiglu)"
                                   : "prefill moe down (f32_mxfp4w_moe_matmul_accumulate)",
                           static_cast<int>(b[0]), static_cast<int>(b[3]), static_cast<int>(b[1]),
                           static_cast<int>(b[2])));
      for (int q = 0; q < 4; ++q) b[q] = 0;
    }
  }

  bool bf16(const Weight& w, const char* what) {
    if (w.type == ElemType::kBF16) return true;
    fail_msg(fmt::format("{}: the cuda backend takes bf16 dense weights (this one is f32)", what));
    return false;
  }
  void check(const char* op, int err) {
    if (err != 0) fail(op, static_cast<cudaError_t>(err));
  }
  void fail(const char* op, cudaError_t e) {
    fail_msg(fmt::format("{}: {}", op, cudaGetErrorString(e)));
  }
  void fail_msg(const std::string& message) {
    if (err_.is_ok()) err_ = Status::error("cuda backend: " + message);
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  std::string name_;
  Status err_;
  void* meta_ = nullptr;
  int32_t* bad_ids_ = nullptr;      // mapped host memory: [gate_up | down][count, id, slot, E]
  int32_t* bad_ids_dev_ = nullptr;  // the same memory as the device sees it
  struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
  };
  Scratch scratch_[12];
  int prefill_min_t_ = 8;
  int prefill_attn_tq_ = 8;
  bool fuse_qkv_ = true;
  int parts_ = 3;
  int prefill_kchunk_ = 512;
  bool profiling_ = false;
  bool expert_cache_on_ = false;
  bool moe_cublas_ = false;
  bool dense_cublas_ = true;
  std::map<const void*, std::shared_ptr<void>> expert_cache_;
  std::map<const void*, DenseF16> dense_f16_;
  std::map<const void*, Fused> fused_;
  std::map<std::string, std::pair<double, int>> profile_;
  cuda::Gemm* gemm_ = nullptr;
  std::vector<int32_t> host_idx_, sorted_, used_;
  std::vector<int> off_;
};

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

bool cuda_memory_info(int device, size_t* free_bytes, size_t* total_bytes, std::string* name) {
  cudaDeviceProp prop{};
  if (device < 0 || device >= cuda_device_count() || cudaSetDevice(device) != cudaSuccess ||
      cudaMemGetInfo(free_bytes, total_bytes) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  *name = prop.name;
  return true;
}

Expected<std::unique_ptr<Backend>> make_cuda_backend(int device) {
  const int n = cuda_device_count();
  if (n == 0) return Error("--device cuda: no CUDA device is available here");
  if (device < 0 || device >= n) return Error("--device cuda: device {} does not exist ({} present)", device, n);
  auto b = std::make_unique<CudaBackend>(device);
  GPTOSS_RETURN_IF_ERROR(b->init());
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace gptoss
