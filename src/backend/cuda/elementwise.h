// Launchers of the unfused CUDA ops behind the Backend interface (see kernels.h for conventions:
// device pointers, f32 activations, bf16 gains, metadata arrays in device memory, cudaError_t as int).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cuda/kv_pages.h"

typedef struct CUstream_st* cudaStream_t;

namespace gptoss::cuda {

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * gain, rows of n.
int rmsnorm(const float* x, int T, int n, const uint16_t* gain, float eps, float* out, cudaStream_t stream);
// YaRN RoPE in place on rows of heads * head_dim, pairs (i, i + head_dim / 2).
int rope_inplace(float* x, int T, int heads, int head_dim, const int32_t* pos, const float* inv_freq,
                 float concentration, cudaStream_t stream);
// cache[slot[t], pos[t] % capacity, :] = row t, for K and V rows of `width` floats (paged: the row
// kv_pages.h finds for (slot[t], pos[t])).
int kv_store(float* k_cache, float* v_cache, int capacity, int width, const float* k, const float* v, int T,
             const int32_t* slot, const int32_t* pos, cudaStream_t stream, KvPages pages = {});
// rope_inplace on q [T, q_heads * head_dim], and on k [T, kv_heads * head_dim] into the cache rows that kv_store
// would write, v copied there as kv_store does: one launch, the same values.
int rope_qk_store(float* q, int q_heads, const float* k, const float* v, int kv_heads, int head_dim, int T,
                  const int32_t* pos, const float* inv_freq, float concentration, float* k_cache, float* v_cache,
                  int capacity, const int32_t* slot, cudaStream_t stream, KvPages pages = {});
// Top-k (descending, ties to the lower index) of each row of n <= 256 logits, softmax over the k.
int topk_softmax(const float* logits, int T, int n, int k, int32_t* idx, float* weight, cudaStream_t stream);
int add_inplace(float* x, const float* y, size_t n, cudaStream_t stream);
int gather_rows(const float* x, int cols, const int32_t* rows, int n, float* out, cudaStream_t stream);

}  // namespace gptoss::cuda
