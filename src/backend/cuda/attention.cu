// Flash-decoding attention with per-head sinks and an optional sliding window (head_dim 64, any GQA
// ratio): one block per (KV head, query token, split), one warp per query head of the group, the
// group's keys and values staged once per tile in shared memory. Partials are combined by
// attention_combine or by the o-projection GEMV's prologue.
#include <cuda_runtime.h>

#include <cfloat>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace gptoss::cuda {
namespace {

constexpr int kHeadDim = 64;
constexpr int kTile = 32;

__global__ void attention_partials_kernel(const float* __restrict__ q, int q_heads, int kv_heads,
                                          const float* __restrict__ k_cache, const float* __restrict__ v_cache,
                                          int capacity, const int32_t* __restrict__ pos,
                                          const int32_t* __restrict__ slot, int window, float scale, int nsplit,
                                          float* __restrict__ part) {
  const int kvh = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
  const int group = q_heads / kv_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = kvh * group + warp;
  __shared__ float ks[kTile][kHeadDim + 1];
  __shared__ float vs[kTile][kHeadDim];
  extern __shared__ float qs[];  // [group][64]

  const int p = pos[t];
  const int lo = window > 0 ? max(0, p - window + 1) : 0;
  const int n = p + 1 - lo;
  const int chunk = (n + nsplit - 1) / nsplit;
  const int begin = lo + split * chunk;
  const int end = min(p + 1, begin + chunk);

  const float* qrow = q + (static_cast<size_t>(t) * q_heads + h) * kHeadDim;
  qs[warp * kHeadDim + lane] = qrow[lane];
  qs[warp * kHeadDim + lane + 32] = qrow[lane + 32];

  const size_t seq_base = static_cast<size_t>(slot[t]) * capacity;
  float m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
  for (int k0 = begin; k0 < end; k0 += kTile) {
    __syncthreads();
    for (int e = threadIdx.x; e < kTile * kHeadDim; e += blockDim.x) {
      const int j = e / kHeadDim, d = e % kHeadDim;
      float kv = 0.0f, vv = 0.0f;
      if (k0 + j < end) {
        const size_t off = ((seq_base + (k0 + j) % capacity) * kv_heads + kvh) * kHeadDim + d;
        kv = k_cache[off];
        vv = v_cache[off];
      }
      ks[j][d] = kv;
      vs[j][d] = vv;
    }
    __syncthreads();
    float s = -INFINITY;
    if (k0 + lane < end) {
      float dot = 0.0f;
#pragma unroll 16
      for (int d = 0; d < kHeadDim; ++d) dot = fmaf(qs[warp * kHeadDim + d], ks[lane][d], dot);
      s = dot * scale;
    }
    const float m_new = fmaxf(m, warp_max(s));
    const float corr = expf(m - m_new);
    const float pr = k0 + lane < end ? expf(s - m_new) : 0.0f;
    l = l * corr + warp_sum(pr);
    acc0 *= corr;
    acc1 *= corr;
#pragma unroll 8
    for (int j = 0; j < kTile; ++j) {
      const float pj = __shfl_sync(0xffffffffu, pr, j);
      acc0 = fmaf(pj, vs[j][lane], acc0);
      acc1 = fmaf(pj, vs[j][lane + 32], acc1);
    }
    m = m_new;
  }
  float* out = part + ((static_cast<size_t>(t) * q_heads + h) * nsplit + split) * (kHeadDim + 2);
  if (lane == 0) {
    out[0] = m;
    out[1] = l;
  }
  out[2 + lane] = acc0;
  out[2 + lane + 32] = acc1;
}

__global__ void attention_combine_kernel(const float* __restrict__ part, const uint16_t* __restrict__ sinks,
                                         int heads, int nsplit, float* __restrict__ out) {
  const int th = blockIdx.x, h = th % heads, lane = threadIdx.x;
  const int stride = kHeadDim + 2;
  const float* p = part + static_cast<size_t>(th) * nsplit * stride;
  const float sink = bf16_to_f32(sinks[h]);
  float m = sink;
  for (int s = 0; s < nsplit; ++s) m = fmaxf(m, p[s * stride]);
  float den = expf(sink - m), o0 = 0.0f, o1 = 0.0f;
  for (int s = 0; s < nsplit; ++s) {
    const float f = expf(p[s * stride] - m);
    den += p[s * stride + 1] * f;
    o0 += p[s * stride + 2 + lane] * f;
    o1 += p[s * stride + 2 + lane + 32] * f;
  }
  out[static_cast<size_t>(th) * kHeadDim + lane] = o0 / den;
  out[static_cast<size_t>(th) * kHeadDim + lane + 32] = o1 / den;
}

}  // namespace

int attention_partials(const float* q, int T, int q_heads, int kv_heads, const float* k_cache, const float* v_cache,
                       int capacity, const int32_t* pos, const int32_t* slot, int window, float scale, int nsplit,
                       float* part, cudaStream_t stream) {
  if (T <= 0) return 0;
  const int group = q_heads / kv_heads;
  const dim3 grid(kv_heads, T, nsplit);
  attention_partials_kernel<<<grid, 32 * group, group * kHeadDim * sizeof(float), stream>>>(
      q, q_heads, kv_heads, k_cache, v_cache, capacity, pos, slot, window, scale, nsplit, part);
  return static_cast<int>(cudaGetLastError());
}

int attention_combine(const float* part, const uint16_t* sinks, int T, int heads, int nsplit, float* out,
                      cudaStream_t stream) {
  if (T <= 0) return 0;
  attention_combine_kernel<<<T * heads, 32, 0, stream>>>(part, sinks, heads, nsplit, out);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace gptoss::cuda
