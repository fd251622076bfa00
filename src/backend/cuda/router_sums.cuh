// Router variant 5 (kernels.h RouterFold::sums, NOTES v32): the router's 33 sums as exact fixed-point numbers that
// o_proj's blocks add into by integer atomics, and their reading and top-k selection in the MoE kernels.
//
// A sum is a fixed-point number with kSumFrac fraction bits held as kRouterSumLimbs int64 words; word i has weight
// 2^(24 i - kSumFrac). An f32 value m 2^e (m < 2^24) goes into ONE word: m shifted by its bit position mod 24 (< 2^47),
// so each block adds one atomic per value, and a word stays exact for up to 2^16 additions. Integer addition makes
// the sum independent of the order of the blocks: the same bits every launch. The blocks add into kRouterSumCopies
// copies (block b into copy b % copies, each copy on its own 128-byte lines) to spread the atomics over more L2
// lines; the reader adds the copies' words (exact) before converting. Parts below 2^-88 are dropped (truncated toward
// zero); values of 2^80 or more (|x'| >= 2^40, far beyond a real residual) saturate.
#pragma once

#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace gptoss::cuda {

inline constexpr int kSumFrac = 88;
inline constexpr int kRouterSumCopies = 4;

// Words of one copy of the sums of `experts` experts (+ the sum of squares), padded to whole 128-byte lines.
__host__ __device__ __forceinline__ int router_sums_copy_words(int experts) {
  return ((experts + 1) * kRouterSumLimbs + 15) & ~15;
}

// acc[0, kRouterSumLimbs) += v exactly (one fire-and-forget integer atomic).
__device__ __forceinline__ void router_sum_add(unsigned long long* acc, float v) {
  const uint32_t u = __float_as_uint(v);
  const uint32_t ex = (u >> 23) & 0xffu;
  uint32_t m = u & 0x7fffffu;
  int b;  // the bit position of m's lowest bit in the fixed-point number
  if (ex != 0) {
    m |= 0x800000u;
    b = static_cast<int>(ex) - 150 + kSumFrac;
  } else {
    b = -149 + kSumFrac;
  }
  unsigned long long w;
  int i;
  if (b < 0) {
    w = b > -24 ? (m >> -b) : 0u;
    i = 0;
  } else if (b + 24 > 24 * kRouterSumLimbs) {  // saturate (|v| >= 2^80, or inf / NaN)
    w = 0xffffffull << 23;
    i = kRouterSumLimbs - 1;
  } else {
    i = b / 24;
    w = static_cast<unsigned long long>(m) << (b - 24 * i);
  }
  if (w == 0) return;
  if (u >> 31) w = 0ull - w;
  atomicAdd(acc + i, w);
}

// The block's threads stage the sums (the copies' words added, exact) into s[(experts + 1) * kRouterSumLimbs]
// (shared). kL2: through L2 (__ldcg: down reads them before its wait); else plain loads (gate_up, after its wait:
// the 7 blocks on an SM share them through L1 instead of all asking the same few L2 lines). Ends with a block barrier.
template <bool kL2>
__device__ __forceinline__ void router_sums_stage(const RouterFold& rs, long long* s) {
  const int n = (rs.experts + 1) * kRouterSumLimbs, stride = router_sums_copy_words(rs.experts);
  for (int w = threadIdx.x; w < n; w += blockDim.x) {
    long long v[kRouterSumCopies];
#pragma unroll
    for (int c = 0; c < kRouterSumCopies; ++c) {
      const unsigned long long* p = rs.sums + static_cast<size_t>(c) * stride + w;
      v[c] = static_cast<long long>(kL2 ? __ldcg(p) : *p);
    }
    long long t = 0;
#pragma unroll
    for (int c = 0; c < kRouterSumCopies; ++c) t += v[c];
    s[w] = t;
  }
  __syncthreads();
}

// Sum j (staged by router_sums_stage) as f32: its words as doubles (rounded where above 2^53), added from the top
// word down, then rounded to f32.
__device__ __forceinline__ float router_sum_value(const long long* s, int j) {
  double t = 0.0;
#pragma unroll
  for (int i = kRouterSumLimbs - 1; i >= 0; --i) {
    const double scale = __longlong_as_double(static_cast<long long>(1023 + 24 * i - kSumFrac) << 52);
    t += static_cast<double>(s[j * kRouterSumLimbs + i]) * scale;
  }
  return static_cast<float>(t);
}

// 1 / rms of the row from its sum of squares (sum `experts`).
__device__ __forceinline__ float router_sums_rms_inv(const RouterFold& rs, const long long* s, int cols) {
  const float ss = router_sum_value(s, rs.experts);
  return 1.0f / sqrtf(ss / static_cast<float>(cols) + rs.eps);
}

// One warp: the logits (lane e < experts: sum_e * r + bias_e, `bias` loaded by the caller) and their top k and
// softmax (warp_topk_softmax: descending, ties to the lower index) into idx[0, k) / weight[0, k) by lane 0; the
// logits also to `logits` where not null.
__device__ __forceinline__ void router_sums_select(const RouterFold& rs, const long long* s, float r, float bias,
                                                   int32_t* idx, float* weight, float* logits) {
  const int lane = threadIdx.x & 31;
  float v[1];
  v[0] = -INFINITY;
  if (lane < rs.experts) {
    v[0] = router_sum_value(s, lane) * r + bias;
    if (logits != nullptr) logits[lane] = v[0];
  }
  warp_topk_softmax<1>(v, rs.experts, rs.k, idx, weight);
}

// One warp, every lane: the expert of rank `slot` (descending logits, ties to the lower index: warp_topk_softmax's
// order) by one pass (lane e counts the logits ranked above its own, as router variant 4 does), no block barrier;
// lg: 32 floats of shared memory of this warp. Where `weights` is not null, lane 0 also writes the top k's ids and
// their softmax (warp_topk_softmax's formula and order) to idx / weight, and the logits to `logits` (not null).
__device__ __forceinline__ int router_sums_rank(const RouterFold& rs, const long long* s, float r, float bias, int slot,
                                                float* lg, bool write, float* logits) {
  const int lane = threadIdx.x & 31;
  const float v = lane < rs.experts ? router_sum_value(s, lane) * r + bias : -INFINITY;
  lg[lane] = v;
  __syncwarp();
  int rank = 0;
  for (int j = 0; j < rs.experts; ++j) {
    const float o = lg[j];
    rank += (o > v || (o == v && j < lane)) ? 1 : 0;
  }
  const unsigned mine = __ballot_sync(0xffffffffu, lane < rs.experts && rank == slot);
  if (write) {
    if (logits != nullptr && lane < rs.experts) logits[lane] = v;
    __syncwarp();
    if (lane < rs.experts && rank < rs.k) lg[rank] = v, rs.idx[rank] = lane;  // lg reused: the top k's values
    __syncwarp();
    if (lane == 0) {
      float sum = 0.0f, w[8];
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        if (q >= rs.k) break;
        w[q] = expf(lg[q] - lg[0]);
        sum += w[q];
      }
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        if (q >= rs.k) break;
        rs.weight[q] = w[q] / sum;
      }
    }
  }
  return __ffs(mine) - 1;
}

}  // namespace gptoss::cuda
