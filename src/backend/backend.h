// The op interface every backend implements (cpu/ exact, cuda/ fast). A backend never knows what a
// transformer is: it owns memory (activations, KV, uploaded weights) and runs ops named by data
// type and shape; model/ composes them into the gpt-oss forward pass.
//
// Conventions:
// - Activation pointers (float*, int32_t*) are backend memory from alloc(); matrices are dense
//   row-major, "T" is the number of token rows in the batch.
// - Small per-token metadata (token ids, positions, sequence slots) is passed as host spans; a device
//   backend copies it as it sees fit.
// - Ops return nothing: shapes are validated once when the model binds its weights. Asynchronous
//   backends report launch/runtime failures from sync().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "core/status.h"

namespace gptoss {

// kQ8_0: GGUF's 8-bit blocks (core/q8_0.h), 34 bytes per 32 weights along a row; only dense
// weight matrices converted at load (--dense-weights q8) have it.
enum class ElemType : uint8_t { kF32, kBF16, kU8, kI32, kQ8_0 };

// Bytes per element of the plain types (0 for the block type kQ8_0: use row_bytes).
inline size_t elem_size(ElemType type) {
  switch (type) {
    case ElemType::kF32: return 4;
    case ElemType::kBF16: return 2;
    case ElemType::kU8: return 1;
    case ElemType::kI32: return 4;
    case ElemType::kQ8_0: return 0;
  }
  return 0;
}

// Bytes of a row of `cols` elements (for kQ8_0 cols is a multiple of 32).
inline size_t row_bytes(ElemType type, int64_t cols) {
  if (type == ElemType::kQ8_0) return static_cast<size_t>(cols / 32) * 34;
  return static_cast<size_t>(cols) * elem_size(type);
}

// Bytes in a backend's memory. `mem` keeps them alive (null for borrowed memory such as a weight
// in a file mapping that the model keeps open).
struct Buffer {
  std::shared_ptr<void> mem;
  void* data = nullptr;
  size_t bytes = 0;

  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// A read-only dense weight: a matrix [rows, cols] (out x in for a projection), or a table of
// vectors. type is kBF16 or kF32, or kQ8_0 for matrices converted at load.
struct Weight {
  Buffer buf;
  ElemType type = ElemType::kBF16;
  int64_t rows = 0;
  int64_t cols = 0;

  // Rows [begin, begin + count), sharing the memory (the fused qkv of original/ checkpoints).
  Weight row_slice(int64_t begin, int64_t count) const {
    Weight w = *this;
    const size_t rb = row_bytes(type, cols);
    w.buf.data = static_cast<uint8_t*>(buf.data) + static_cast<size_t>(begin) * rb;
    w.buf.bytes = static_cast<size_t>(count) * rb;
    w.rows = count;
    return w;
  }
  const void* row(int64_t r) const {
    return static_cast<const uint8_t*>(buf.data) + static_cast<size_t>(r) * row_bytes(type, cols);
  }
};

// MXFP4 expert matrices as the checkpoints store them: blocks [experts, rows, cols/32, 16] (element
// 2j in the low nibble of byte j of a block) and E8M0 scales [experts, rows, cols/32].
struct Mxfp4Experts {
  Buffer blocks;
  Buffer scales;
  int64_t experts = 0;
  int64_t rows = 0;
  int64_t cols = 0;
};

// One layer's KV memory: K and V, each [rows][kv_heads][head_dim] f32, one row per stored position.
// - Contiguous (page_size 0): rows = slots * capacity; position p of a slot lives at row
//   slot * capacity + p % capacity (a ring buffer when capacity is smaller than the context).
// - Paged (page_size > 0): rows = pages * page_size, a pool shared by all slots; position p of a slot
//   lives at row page_table[slot * pages_per_slot + p / page_size] * page_size + p % page_size.
//   The table is host memory (cpu backends read it); page_table_device is the same table in backend
//   memory (device backends read it), refreshed by KvCache::sync_page_table before a step that
//   changed it. capacity is then the positions one slot can address (the context).
struct KvLayer {
  Buffer k;
  Buffer v;
  int slots = 0;
  int capacity = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int page_size = 0;
  int pages = 0;           // pool size (paged)
  int pages_per_slot = 0;  // table row length (paged)
  const int32_t* page_table = nullptr;
  const int32_t* page_table_device = nullptr;
};

// The row of (slot, position) in a KvLayer's K or V (multiply by kv_heads * head_dim for floats).
inline size_t kv_row(const KvLayer& kv, int slot, int position) {
  if (kv.page_size == 0) return static_cast<size_t>(slot) * kv.capacity + position % kv.capacity;
  const int32_t page = kv.page_table[static_cast<size_t>(slot) * kv.pages_per_slot + position / kv.page_size];
  return static_cast<size_t>(page) * kv.page_size + position % kv.page_size;
}

// YaRN-scaled rotary embedding: inv_freq has head_dim/2 entries; cos and sin are multiplied by
// `concentration`. Pairs are (i, i + head_dim/2).
struct RopeTable {
  std::span<const float> inv_freq;
  float concentration = 1.0f;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory.
  virtual Expected<Buffer> alloc(size_t bytes) = 0;
  // Makes host bytes that outlive the backend's use of them (a mapped weight) usable by ops.
  // The cpu backend borrows them in place; a device backend copies them.
  virtual Expected<Buffer> upload_weight(const void* host, size_t bytes) = 0;
  virtual Status download(const void* src, size_t bytes, void* host) = 0;
  virtual Status zero(void* dst, size_t bytes) = 0;
  // Copies host bytes into backend memory from alloc() (ordered with the ops queued after it; the
  // host bytes may change once it returns). Host-memory backends copy in place.
  virtual Status upload(const void* host, size_t bytes, void* dst) {
    if (bytes > 0) std::memcpy(dst, host, bytes);
    return Status::ok();
  }
  // Waits for queued ops; reports any failure they hit.
  virtual Status sync() = 0;

  // out[t, :] = table[tokens[t], :] as f32 (out is [T, table.cols]).
  virtual void f32_embed(const Weight& table, std::span<const uint32_t> tokens, float* out) = 0;
  // out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * gain, rows of n = gain.cols.
  virtual void f32_rmsnorm(const float* x, int T, const Weight& gain, float eps, float* out) = 0;
  // out[T, w.rows] = x[T, w.cols] . w^T (+ bias); kernels f32_bf16w_matmul / f32_f32w_matmul.
  virtual void f32_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out) = 0;
  // Several matrices on one input (q, k and v): f32_matmul(x, T, *m.w, m.bias, m.out) for each m, which
  // is what this default does; a backend may run them as one product.
  struct MatmulOut {
    const Weight* w;
    const Weight* bias;
    float* out;
  };
  virtual void f32_matmuls(const float* x, int T, std::span<const MatmulOut> outs) {
    for (const MatmulOut& m : outs) f32_matmul(x, T, *m.w, m.bias, m.out);
  }
  // Rotates heads of head_dim (rows of heads*head_dim) in place at the given absolute positions.
  virtual void f32_rope_yarn(float* x, int T, int heads, int head_dim, std::span<const int32_t> positions,
                             const RopeTable& rope) = 0;
  // Stores k/v rows [T, kv_heads*head_dim] at (slots[t], positions[t]).
  virtual void f32_kv_store(const KvLayer& kv, const float* k, const float* v, int T,
                            std::span<const int32_t> slots, std::span<const int32_t> positions) = 0;
  // Causal attention with one sink logit per query head, over the keys stored for slots[t] at
  // positions max(0, p - window + 1) .. p (window 0 = all). q and out are [T, heads*head_dim];
  // query head h reads KV head h / (heads / kv_heads). scores = (q.k) * scale; sinks unscaled.
  virtual void f32_sdpa_sink_window(const float* q, int T, int heads, const KvLayer& kv,
                                    std::span<const int32_t> slots, std::span<const int32_t> positions,
                                    const Weight& sinks, int window, float scale, float* out) = 0;
  // Top-k of each row of logits [T, n] (descending, ties to the lower index), then softmax over the
  // k selected values: idx and weight are [T, k].
  virtual void f32_topk_softmax(const float* logits, int T, int n, int k, int32_t* idx,
                                float* weight) = 0;
  // h[t, j, :] = swiglu(W1[idx[t, j]] . x[t] + b1[idx[t, j]]) for j < k, where the fused rows
  // interleave gate (even) and up (odd): gate = min(g, limit), up = clamp(u, -limit, limit),
  // h = gate * sigmoid(alpha * gate) * (up + 1). h is [T, k, w1.rows / 2].
  virtual void f32_mxfp4w_moe_matmul_swiglu(const float* x, int T, int k, const int32_t* idx,
                                            const Mxfp4Experts& w1, const Weight& b1, float limit,
                                            float alpha, float* h) = 0;
  // out[t] = sum_j weight[t, j] * (W2[idx[t, j]] . h[t, j] + b2[idx[t, j]]), out is [T, w2.rows].
  virtual void f32_mxfp4w_moe_matmul_accumulate(const float* h, int T, int k, const int32_t* idx,
                                                const float* weight, const Mxfp4Experts& w2,
                                                const Weight& b2, float* out) = 0;
  // x[i] += y[i]
  virtual void f32_add(float* x, const float* y, size_t n) = 0;
  // out[i, :] = x[rows[i], :] for rows of `cols` floats.
  virtual void f32_gather_rows(const float* x, int cols, std::span<const int32_t> rows, float* out) = 0;
};

}  // namespace gptoss
