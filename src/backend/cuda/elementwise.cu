// Unfused ops of the Backend interface (the general path; the decode engine uses fused kernels):
// RMSNorm, RoPE in place, KV store, top-k softmax, add, gather.
#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/elementwise.h"

namespace gptoss::cuda {
namespace {

__global__ void rmsnorm_kernel(const float* __restrict__ x, int n, const uint16_t* __restrict__ gain, float eps,
                               float* __restrict__ out) {
  __shared__ float red[32];
  const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* xr = x + static_cast<size_t>(t) * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  ss = warp_sum(ss);
  if (lane == 0) red[warp] = ss;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += red[w];
  const float r = 1.0f / sqrtf(total / static_cast<float>(n) + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    out[static_cast<size_t>(t) * n + i] = (xr[i] * r) * bf16_to_f32(gain[i]);
  }
}

// The rotation of one pair (a, b) by (c, s), rounded as the compiler contracted rope_kernel's a * c - b * s and
// b * c + a * s (products b * s and a * s rounded alone), written out so that every kernel rotating pairs gets the
// same bits.
__device__ __forceinline__ void rope_rotate(float a, float b, float c, float s, float* x, float* y) {
  *x = __fmaf_rn(a, c, -__fmul_rn(b, s));
  *y = __fmaf_rn(b, c, __fmul_rn(a, s));
}

__global__ void rope_kernel(float* __restrict__ x, int heads, int head_dim, const int32_t* __restrict__ pos,
                            const float* __restrict__ inv_freq, float concentration) {
  const int t = blockIdx.x, half = head_dim / 2;
  float* row = x + static_cast<size_t>(t) * heads * head_dim;
  for (int e = threadIdx.x; e < heads * half; e += blockDim.x) {
    const int h = e / half, i = e % half;
    float s, c;
    sincosf(static_cast<float>(pos[t]) * inv_freq[i], &s, &c);
    c *= concentration;
    s *= concentration;
    float* v = row + h * head_dim;
    rope_rotate(v[i], v[i + half], c, s, &v[i], &v[i + half]);
  }
}

// rope_kernel on token t's q row (in place) and k row (into the cache), and its v row copied to the cache: the same
// arithmetic as rope_kernel then kv_store_kernel, in one launch.
__global__ void rope_qk_store_kernel(float* __restrict__ q, int q_heads, const float* __restrict__ k,
                                     const float* __restrict__ v, int kv_heads, int head_dim,
                                     const int32_t* __restrict__ pos, const float* __restrict__ inv_freq,
                                     float concentration, float* __restrict__ kc, float* __restrict__ vc, int capacity,
                                     const int32_t* __restrict__ slot, KvPages pages) {
  const int t = blockIdx.x, half = head_dim / 2, width = kv_heads * head_dim;
  const size_t base = kv_cache_row(slot[t], pos[t], capacity, pages) * width;
  float* qrow = q + static_cast<size_t>(t) * q_heads * head_dim;
  const float* krow = k + static_cast<size_t>(t) * width;
  for (int e = threadIdx.x; e < (q_heads + kv_heads) * half; e += blockDim.x) {
    const int h = e / half, i = e % half;
    float s, c;
    sincosf(static_cast<float>(pos[t]) * inv_freq[i], &s, &c);
    c *= concentration;
    s *= concentration;
    const bool is_q = h < q_heads;
    const float* src = is_q ? qrow + h * head_dim : krow + (h - q_heads) * head_dim;
    float* dst = is_q ? qrow + h * head_dim : kc + base + (h - q_heads) * head_dim;
    rope_rotate(src[i], src[i + half], c, s, &dst[i], &dst[i + half]);
  }
  for (int i = threadIdx.x; i < width; i += blockDim.x) vc[base + i] = v[static_cast<size_t>(t) * width + i];
}

__global__ void kv_store_kernel(float* __restrict__ kc, float* __restrict__ vc, int capacity, int width,
                                const float* __restrict__ k, const float* __restrict__ v, const int32_t* __restrict__ slot,
                                const int32_t* __restrict__ pos, KvPages pages) {
  const int t = blockIdx.x;
  const size_t base = kv_cache_row(slot[t], pos[t], capacity, pages) * width;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    kc[base + i] = k[static_cast<size_t>(t) * width + i];
    vc[base + i] = v[static_cast<size_t>(t) * width + i];
  }
}

// One warp per row; n <= 256, k <= 8.
__global__ void topk_softmax_kernel(const float* __restrict__ logits, int n, int k, int32_t* __restrict__ idx,
                                    float* __restrict__ weight) {
  const int t = blockIdx.x, lane = threadIdx.x;
  constexpr int kPer = 8;
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int e = lane + 32 * j;
    v[j] = e < n ? logits[static_cast<size_t>(t) * n + e] : -INFINITY;
  }
  warp_topk_softmax<kPer>(v, n, k, idx + t * k, weight + t * k);
}

__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    x[i] += y[i];
  }
}

__global__ void gather_kernel(const float* __restrict__ x, int cols, const int32_t* __restrict__ rows,
                              float* __restrict__ out) {
  const int i = blockIdx.x;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    out[static_cast<size_t>(i) * cols + c] = x[static_cast<size_t>(rows[i]) * cols + c];
  }
}

int last_error() { return static_cast<int>(cudaGetLastError()); }

}  // namespace

int rmsnorm(const float* x, int T, int n, const uint16_t* gain, float eps, float* out, cudaStream_t stream) {
  if (T <= 0) return 0;
  rmsnorm_kernel<<<T, 256, 0, stream>>>(x, n, gain, eps, out);
  return last_error();
}

int rope_inplace(float* x, int T, int heads, int head_dim, const int32_t* pos, const float* inv_freq,
                 float concentration, cudaStream_t stream) {
  if (T <= 0) return 0;
  rope_kernel<<<T, 256, 0, stream>>>(x, heads, head_dim, pos, inv_freq, concentration);
  return last_error();
}

int rope_qk_store(float* q, int q_heads, const float* k, const float* v, int kv_heads, int head_dim, int T,
                  const int32_t* pos, const float* inv_freq, float concentration, float* k_cache, float* v_cache,
                  int capacity, const int32_t* slot, cudaStream_t stream, KvPages pages) {
  if (T <= 0) return 0;
  rope_qk_store_kernel<<<T, 256, 0, stream>>>(q, q_heads, k, v, kv_heads, head_dim, pos, inv_freq, concentration,
                                              k_cache, v_cache, capacity, slot, pages);
  return last_error();
}

int kv_store(float* k_cache, float* v_cache, int capacity, int width, const float* k, const float* v, int T,
             const int32_t* slot, const int32_t* pos, cudaStream_t stream, KvPages pages) {
  if (T <= 0) return 0;
  kv_store_kernel<<<T, 256, 0, stream>>>(k_cache, v_cache, capacity, width, k, v, slot, pos, pages);
  return last_error();
}

int topk_softmax(const float* logits, int T, int n, int k, int32_t* idx, float* weight, cudaStream_t stream) {
  if (T <= 0) return 0;
  if (n > 256 || k > 8 || k > n) return static_cast<int>(cudaErrorInvalidValue);
  topk_softmax_kernel<<<T, 32, 0, stream>>>(logits, n, k, idx, weight);
  return last_error();
}

int add_inplace(float* x, const float* y, size_t n, cudaStream_t stream) {
  if (n == 0) return 0;
  add_kernel<<<256, 256, 0, stream>>>(x, y, n);
  return last_error();
}

int gather_rows(const float* x, int cols, const int32_t* rows, int n, float* out, cudaStream_t stream) {
  if (n <= 0) return 0;
  gather_kernel<<<n, 256, 0, stream>>>(x, cols, rows, out);
  return last_error();
}

}  // namespace gptoss::cuda
