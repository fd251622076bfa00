// The fp16 hi/lo form ("x16") in which the MXFP4 expert kernels take their input rows: per MXFP4 block
// of 32 inputs, 36 words: 16 words of hi halves, 16 of lo halves (x - hi), 4 unused. Within each group
// of 8 elements the order is 0,4,1,5,2,6,3,7 (the pairing of e2m1_direct, common.cuh). Values are
// x * 2^p with p chosen so that max |x| * 2^p < 2^14 (fp16 keeps both halves normal), and 2^-p is kept
// beside the row; hi + lo carries 22 significant bits, so the tensor-core products are those of f32.
#pragma once

#include <cuda_fp16.h>

#include "backend/cuda/common.cuh"

namespace gptoss::cuda {

constexpr int kX16BlockWords = 36;

__host__ __device__ __forceinline__ int x16_padded_blocks(int nb) { return (nb + 3) & ~3; }
__host__ __device__ __forceinline__ size_t x16_row_words(int cols) {
  return static_cast<size_t>(x16_padded_blocks(cols >> 5)) * kX16BlockWords;
}

// p for a row whose largest magnitude is mx.
__device__ __forceinline__ int x16_exponent(float mx) {
  int e = 0;
  frexpf(mx, &e);  // mx < 2^e (e = 0 for mx = 0)
  return max(-126, min(126, 14 - e));
}

__device__ __forceinline__ void x16_store(uint32_t* row16, int c, float v) {
  const int b = c >> 5, j = c & 31, grp = j >> 3, el = j & 7;
  const int perm = el < 4 ? 2 * el : 2 * (el - 4) + 1;
  const __half hi = __float2half_rn(v);
  const __half lo = __float2half_rn(v - __half2float(hi));
  __half* h = reinterpret_cast<__half*>(row16);
  h[b * kX16BlockWords * 2 + grp * 8 + perm] = hi;
  h[b * kX16BlockWords * 2 + 32 + grp * 8 + perm] = lo;
}

// A block's share of one x16 row: p from the largest |xs[c]| over the whole row (shared memory, every
// thread of the block takes part; red holds one float per warp), then columns [c0, c1) of the x16
// row (and of xn, as f32, when not null). `between` runs after each warp's max and before the
// exchange through red (the router's cluster barrier). Returns p.
template <typename F>
__device__ __forceinline__ int x16_store_row_block(const float* xs, int cols, int c0, int c1, uint32_t* row16, float* xn,
                                                   float* red, F&& between) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  float mx = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, fabsf(xs[c]));
  mx = warp_max(mx);
  between();
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  for (int i = 0; i < warps; ++i) mx = fmaxf(mx, red[i]);
  const int p = x16_exponent(mx);
  const float up = ldexpf(1.0f, p);
  for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
    x16_store(row16, c, xs[c] * up);
    if (xn != nullptr) xn[c] = xs[c];
  }
  return p;
}

}  // namespace gptoss::cuda
