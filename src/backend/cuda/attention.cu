// Flash-decoding attention with per-head sinks and an optional sliding window (head_dim 64, any GQA
// ratio): one block per (KV head, query token, split), one warp per query head of the group, the
// group's keys and values staged once per tile in shared memory. The last block of a (token, KV head)
// to finish combines the splits' partials with the sinks (a counter per pair, reset by that block).
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace gptoss::cuda {
namespace {

constexpr int kHeadDim = 64;
constexpr int kTile = 32;
constexpr int kMaxClusterSplits = 16;  // a cluster of 16 blocks (non-portable size, allowed on Hopper)
int g_attention_variant = kAttentionDefault;

// One warp combines head h's nsplit partials pp[s * 66 + (m, l, acc[64])] with its sink into o[64]:
// M = max(sink, m_s), den = e^(sink - M) + sum l_s e^(m_s - M), o = sum acc_s e^(m_s - M) / den.
template <typename Load>
__device__ __forceinline__ void combine_splits(const float* pp, int nsplit, const uint16_t* sinks, int h, int lane,
                                               float* o, Load&& load) {
  constexpr int stride = kHeadDim + 2;
  // Lane s holds split s's max and denominator (nsplit <= 32); the outputs are summed over splits.
  const float sink = bf16_to_f32(sinks[h]);
  const float ms = lane < nsplit ? load(pp + lane * stride) : -INFINITY;
  const float ls = lane < nsplit ? load(pp + lane * stride + 1) : 0.0f;
  const float mx = fmaxf(sink, warp_max(ms));
  const float f = expf(ms - mx);  // 0 for empty splits (m = -inf) and lanes past nsplit
  const float den = expf(sink - mx) + warp_sum(ls * f);
  float o0 = 0.0f, o1 = 0.0f;
#pragma unroll 4
  for (int s = 0; s < nsplit; ++s) {
    const float fs = __shfl_sync(0xffffffffu, f, s);
    o0 += load(pp + s * stride + 2 + lane) * fs;
    o1 += load(pp + s * stride + 2 + lane + 32) * fs;
  }
  o[lane] = o0 / den;
  o[lane + 32] = o1 / den;
}

// combine_splits with kBatch splits' outputs requested at once (v20: 16 splits per L2 round trip instead of
// ~4; at 32 splits 2 round trips instead of 8), the max and denominator loads beside the first batch's. The
// same arithmetic in the same order.
template <int kBatch, typename Load>
__device__ __forceinline__ void combine_splits_batched(const float* pp, int nsplit, const uint16_t* sinks, int h,
                                                       int lane, float* o, Load&& load) {
  constexpr int stride = kHeadDim + 2;
  const float sink = bf16_to_f32(sinks[h]);
  float a0[kBatch], a1[kBatch];
#pragma unroll
  for (int i = 0; i < kBatch; ++i) {
    a0[i] = i < nsplit ? load(pp + i * stride + 2 + lane) : 0.0f;
    a1[i] = i < nsplit ? load(pp + i * stride + 2 + lane + 32) : 0.0f;
  }
  const float ms = lane < nsplit ? load(pp + lane * stride) : -INFINITY;
  const float ls = lane < nsplit ? load(pp + lane * stride + 1) : 0.0f;
  const float mx = fmaxf(sink, warp_max(ms));
  const float f = expf(ms - mx);  // 0 for empty splits (m = -inf) and lanes past nsplit
  const float den = expf(sink - mx) + warp_sum(ls * f);
  float o0 = 0.0f, o1 = 0.0f;
  for (int s0 = 0; s0 < nsplit; s0 += kBatch) {
    if (s0 > 0) {
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        a0[i] = s0 + i < nsplit ? load(pp + (s0 + i) * stride + 2 + lane) : 0.0f;
        a1[i] = s0 + i < nsplit ? load(pp + (s0 + i) * stride + 2 + lane + 32) : 0.0f;
      }
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (s0 + i < nsplit) {
        const float fs = __shfl_sync(0xffffffffu, f, s0 + i);
        o0 += a0[i] * fs;
        o1 += a1[i] * fs;
      }
    }
  }
  o[lane] = o0 / den;
  o[lane + 32] = o1 / den;
}

// kCluster (v10, attention variant 1): the nsplit blocks of a (KV head, token) form one thread-block
// cluster; each writes its partials into block 0's shared memory and block 0 combines them after the
// cluster barrier (same arithmetic, no partials in global memory, fence or counter).
//
// kPre (v10, attention variant 2; only where the caller says so and blocks have 256 threads): the
// cached keys and values of the block's first tile, all but the current position's, are loaded into
// registers before griddepcontrol.wait (the step's positions and slots are inputs of the whole step,
// and rows before the current position were written by earlier steps), so they arrive while the qkv
// kernel finishes; the current position's row is read after the wait.
template <bool kCluster, bool kPre = false>
__global__ void attention_partials_kernel(const float* __restrict__ q, int q_heads, int kv_heads,
                                          const float* __restrict__ k_cache, const float* __restrict__ v_cache,
                                          int capacity, const int32_t* __restrict__ pos,
                                          const int32_t* __restrict__ slot, int window, float scale,
                                          const uint16_t* __restrict__ sinks, int nsplit, float* __restrict__ part,
                                          int32_t* __restrict__ counters, float* __restrict__ attn_out,
                                          KvPages pages) {
  const TimelineBlock timeline(kTimelineAttention);
  const int kvh = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
  const int group = q_heads / kv_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = kvh * group + warp;
  __shared__ float ks[kTile][kHeadDim + 1];
  __shared__ __align__(16) float vs[kTile][kHeadDim];
  extern __shared__ float qs[];  // [group][64], then (kCluster) cpart [group][nsplit][66]

  if constexpr (!kPre) {
    pdl_wait();
    timeline.waited();
  }
  const int p = pos[t];
  const int lo = window > 0 ? max(0, p - window + 1) : 0;
  const int n = p + 1 - lo;
  const int chunk = (n + nsplit - 1) / nsplit;
  const int begin = lo + split * chunk;
  const int end = min(p + 1, begin + chunk);
  const int sl = slot[t];
  constexpr int kPreLoads = kTile * kHeadDim / 4 / 256;  // float4 per thread and tile with 256 threads
  float4 pk[kPre ? kPreLoads : 1], pv[kPre ? kPreLoads : 1];
  if constexpr (kPre) {
#pragma unroll
    for (int i = 0; i < kPreLoads; ++i) {
      const int e = threadIdx.x + 256 * i, j = e / (kHeadDim / 4), d = 4 * (e % (kHeadDim / 4));
      pk[i] = pv[i] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (begin + j < end && begin + j != p) {
        const size_t off = (kv_cache_row(sl, begin + j, capacity, pages) * kv_heads + kvh) * kHeadDim + d;
        pk[i] = *reinterpret_cast<const float4*>(k_cache + off);
        pv[i] = *reinterpret_cast<const float4*>(v_cache + off);
      }
    }
    pdl_wait();
    timeline.waited();
  }
  pdl_allow_dependents();
  if constexpr (kCluster) asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");

  const float* qrow = q + (static_cast<size_t>(t) * q_heads + h) * kHeadDim;
  qs[warp * kHeadDim + lane] = qrow[lane];
  qs[warp * kHeadDim + lane + 32] = qrow[lane + 32];

  float m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
  for (int k0 = begin; k0 < end; k0 += kTile) {
    __syncthreads();
    if (kPre && k0 == begin) {
#pragma unroll
      for (int i = 0; i < kPreLoads; ++i) {
        const int e = threadIdx.x + 256 * i, j = e / (kHeadDim / 4), d = 4 * (e % (kHeadDim / 4));
        float4 kv = pk[i], vv = pv[i];
        if (k0 + j == p) {  // this step's row, written by the qkv kernel
          const size_t off = (kv_cache_row(sl, p, capacity, pages) * kv_heads + kvh) * kHeadDim + d;
          kv = *reinterpret_cast<const float4*>(k_cache + off);
          vv = *reinterpret_cast<const float4*>(v_cache + off);
        }
        ks[j][d] = kv.x, ks[j][d + 1] = kv.y, ks[j][d + 2] = kv.z, ks[j][d + 3] = kv.w;
        *reinterpret_cast<float4*>(&vs[j][d]) = vv;
      }
    } else {
#pragma unroll 4
    for (int e = threadIdx.x; e < kTile * kHeadDim / 4; e += blockDim.x) {
      const int j = e / (kHeadDim / 4), d = 4 * (e % (kHeadDim / 4));
      float4 kv = make_float4(0.f, 0.f, 0.f, 0.f), vv = kv;
      if (k0 + j < end) {
        const size_t off = (kv_cache_row(sl, k0 + j, capacity, pages) * kv_heads + kvh) * kHeadDim + d;
        kv = *reinterpret_cast<const float4*>(k_cache + off);
        vv = *reinterpret_cast<const float4*>(v_cache + off);
      }
      ks[j][d] = kv.x, ks[j][d + 1] = kv.y, ks[j][d + 2] = kv.z, ks[j][d + 3] = kv.w;
      *reinterpret_cast<float4*>(&vs[j][d]) = vv;
    }
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
  constexpr int stride = kHeadDim + 2;
  if constexpr (kCluster) {
    auto cluster = cooperative_groups::this_cluster();
    float* cpart = qs + group * kHeadDim;
    asm volatile("barrier.cluster.wait.aligned;" ::: "memory");  // every block of the cluster has started
    float* dst = cluster.map_shared_rank(cpart, 0) + (warp * nsplit + split) * stride;
    if (lane == 0) {
      dst[0] = m;
      dst[1] = l;
    }
    dst[2 + lane] = acc0;
    dst[2 + lane + 32] = acc1;
    cluster.sync();
    if (split != 0) return;
    combine_splits(cpart + warp * nsplit * stride, nsplit, sinks, h, lane,
                   attn_out + (static_cast<size_t>(t) * q_heads + h) * kHeadDim, [](const float* p) { return *p; });
    return;
  }
  float* out = part + ((static_cast<size_t>(t) * q_heads + h) * nsplit + split) * stride;
  if (lane == 0) {
    out[0] = m;
    out[1] = l;
  }
  out[2 + lane] = acc0;
  out[2 + lane + 32] = acc1;

  // The last split to finish combines: M = max(sink, m_s), den = e^(sink-M) + sum l_s e^(m_s-M).
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&counters[t * kv_heads + kvh], 1) == nsplit - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  combine_splits(part + (static_cast<size_t>(t) * q_heads + h) * nsplit * stride, nsplit, sinks, h, lane,
                 attn_out + (static_cast<size_t>(t) * q_heads + h) * kHeadDim, [](const float* p) { return __ldcg(p); });
  if (threadIdx.x == 0) counters[t * kv_heads + kvh] = 0;
}

// v20 (attention variants 3-11; blocks of 256 threads = 8 query heads per KV head, where the caller passes
// kv_ready): the split count follows the token's own positions. A split gets at least min_chunk positions, so
// a (token, KV head) has nact = ceil(n / chunk) active splits of the nsplit launched (chunk = max(ceil(n /
// nsplit), min_chunk)); the other blocks exit before the wait. With one active split the block adds the sink
// and writes its output itself (no partials, fence, counter or combine); otherwise the last of the nact blocks
// combines as kernel 0. Tiles are double-buffered in registers: the first tile (less this step's row) is
// requested before griddepcontrol.wait as in variant 2, each next tile while the current one is multiplied.
// trigger: where the block lets the next kernel launch (griddepcontrol.launch_dependents): -2 as -1 where the
// token's attention span n <= 256 and as 0 elsewhere, -1 at its start
// (before its wait: the next kernel's weight loads then overlap the qkv kernel's tail), 0 right after the wait
// (as kernels 0-2), 1 once q and its first tile are in shared memory, 2 once its partial (or output) is
// written. kDot4: q.k as 4 partial sums of 16 products (chains of 16 FMAs instead of 64), (0 + 1) + (2 + 3).
// combine: 0 as kernel 0, 1 combine_splits_batched, 2 by attention_combine_kernel (launched next), 3 as 1 with
// the last block found by one atom.acq_rel.gpu of thread 0 after a block barrier instead of every thread's
// __threadfence (fence.sc) before and after a relaxed atomic (release / acquire patterns of the PTX memory
// model, the barrier carrying the block's writes).
template <bool kDot4>
__global__ void __launch_bounds__(256) attention_tiles_kernel(
    const float* __restrict__ q, int q_heads, int kv_heads, const float* __restrict__ k_cache,
    const float* __restrict__ v_cache, int capacity, const int32_t* __restrict__ pos, const int32_t* __restrict__ slot,
    int window, float scale, const uint16_t* __restrict__ sinks, int nsplit, float* __restrict__ part,
    int32_t* __restrict__ counters, float* __restrict__ attn_out, KvPages pages, int min_chunk, int trigger,
    int combine) {
  const TimelineBlock timeline(kTimelineAttention);
  constexpr int kGroup = 8;
  constexpr int kLoads = kTile * kHeadDim / 4 / 256;  // float4 of K (and of V) per thread and tile
  const int kvh = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = kvh * kGroup + warp;
  __shared__ float ks[kTile][kHeadDim + 1];
  __shared__ __align__(16) float vs[kTile][kHeadDim];
  __shared__ float qs[kGroup * kHeadDim];

  const int p = pos[t];
  const int lo = window > 0 ? max(0, p - window + 1) : 0;
  const int n = p + 1 - lo;
  const int chunk = max((n + nsplit - 1) / nsplit, min_chunk);
  const int nact = (n + chunk - 1) / chunk;
  if (split >= nact) return;  // no positions for this block
  if (trigger == -1 || (trigger == -2 && n <= 256)) pdl_allow_dependents();
  const int begin = lo + split * chunk;
  const int end = min(p + 1, begin + chunk);
  const int sl = slot[t];
  float4 pk[kLoads], pv[kLoads];
  // Requests tile k0's rows into pk / pv (zeros past the split's end; this step's row p left out while
  // skip_p: before the wait it may not be written yet).
  auto request = [&](int k0, bool skip_p) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int e = threadIdx.x + 256 * i, j = e / (kHeadDim / 4), d = 4 * (e % (kHeadDim / 4));
      pk[i] = pv[i] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (k0 + j < end && !(skip_p && k0 + j == p)) {
        const size_t off = (kv_cache_row(sl, k0 + j, capacity, pages) * kv_heads + kvh) * kHeadDim + d;
        pk[i] = *reinterpret_cast<const float4*>(k_cache + off);
        pv[i] = *reinterpret_cast<const float4*>(v_cache + off);
      }
    }
  };
  request(begin, true);
  pdl_wait();
  timeline.waited();
  if (trigger == 0 || (trigger == -2 && n > 256)) pdl_allow_dependents();

  const float* qrow = q + (static_cast<size_t>(t) * q_heads + h) * kHeadDim;
  qs[warp * kHeadDim + lane] = qrow[lane];
  qs[warp * kHeadDim + lane + 32] = qrow[lane + 32];

  float m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
  for (int k0 = begin; k0 < end; k0 += kTile) {
    __syncthreads();  // the previous tile's ks / vs are consumed
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int e = threadIdx.x + 256 * i, j = e / (kHeadDim / 4), d = 4 * (e % (kHeadDim / 4));
      float4 kv = pk[i], vv = pv[i];
      if (k0 == begin && k0 + j == p) {  // this step's row, written by the qkv kernel
        const size_t off = (kv_cache_row(sl, p, capacity, pages) * kv_heads + kvh) * kHeadDim + d;
        kv = *reinterpret_cast<const float4*>(k_cache + off);
        vv = *reinterpret_cast<const float4*>(v_cache + off);
      }
      ks[j][d] = kv.x, ks[j][d + 1] = kv.y, ks[j][d + 2] = kv.z, ks[j][d + 3] = kv.w;
      *reinterpret_cast<float4*>(&vs[j][d]) = vv;
    }
    if (k0 + kTile < end) request(k0 + kTile, false);  // in flight while this tile is multiplied
    __syncthreads();
    if (trigger == 1 && k0 == begin) pdl_allow_dependents();
    float s = -INFINITY;
    if (k0 + lane < end) {
      const float* qw = qs + warp * kHeadDim;
      float dot;
      if constexpr (kDot4) {
        float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
#pragma unroll
        for (int d = 0; d < 16; ++d) {
          d0 = fmaf(qw[d], ks[lane][d], d0);
          d1 = fmaf(qw[d + 16], ks[lane][d + 16], d1);
          d2 = fmaf(qw[d + 32], ks[lane][d + 32], d2);
          d3 = fmaf(qw[d + 48], ks[lane][d + 48], d3);
        }
        dot = (d0 + d1) + (d2 + d3);
      } else {
        dot = 0.0f;
#pragma unroll 16
        for (int d = 0; d < kHeadDim; ++d) dot = fmaf(qw[d], ks[lane][d], dot);
      }
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
  float* o = attn_out + (static_cast<size_t>(t) * q_heads + h) * kHeadDim;
  if (nact == 1) {  // combine_splits' arithmetic for one split, from registers
    const float sink = bf16_to_f32(sinks[h]);
    const float mx = fmaxf(sink, m);
    const float f = expf(m - mx);
    const float den = expf(sink - mx) + l * f;
    o[lane] = (acc0 * f) / den;
    o[lane + 32] = (acc1 * f) / den;
    if (trigger == 2) pdl_allow_dependents();
    return;
  }
  constexpr int stride = kHeadDim + 2;
  float* pp = part + (static_cast<size_t>(t) * q_heads + h) * nsplit * stride;
  float* out = pp + split * stride;
  if (lane == 0) {
    out[0] = m;
    out[1] = l;
  }
  out[2 + lane] = acc0;
  out[2 + lane + 32] = acc1;
  if (trigger == 2) pdl_allow_dependents();
  if (combine == 2) return;  // attention_combine_kernel, launched next, combines
  __shared__ bool last;
  if (combine == 3) {  // the counter as one acq_rel atomic of thread 0 after the block's barrier, no fences
    __syncthreads();
    if (threadIdx.x == 0) {
      int old;
      asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], 1;"
                   : "=r"(old)
                   : "l"(counters + t * kv_heads + kvh)
                   : "memory");
      last = old == nact - 1;
    }
    __syncthreads();
    if (!last) return;
    combine_splits_batched<16>(pp, nact, sinks, h, lane, o, [](const float* x) { return __ldcg(x); });
    if (threadIdx.x == 0) counters[t * kv_heads + kvh] = 0;
    return;
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&counters[t * kv_heads + kvh], 1) == nact - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (combine == 1) {
    combine_splits_batched<16>(pp, nact, sinks, h, lane, o, [](const float* x) { return __ldcg(x); });
  } else {
    combine_splits(pp, nact, sinks, h, lane, o, [](const float* x) { return __ldcg(x); });
  }
  if (threadIdx.x == 0) counters[t * kv_heads + kvh] = 0;
}

// v20 (combine 2 of attention_tiles_kernel: variants 22, 23): the splits' partials combined by a kernel of its
// own, one block of 8 warps per (KV head, token), instead of the last split's block (whose __threadfence and
// counter atomic each cost an L2 round trip while o_proj's weight loads fill the memory system). It lets the
// next kernel launch at its start, so o_proj's loads begin as before; every block waits for the attention
// kernel (so that this grid's completion, which the next kernel waits for, implies that kernel's), then the
// (token, KV head)s with more than one active split (same chunk rule) combine as combine_splits_batched.
__global__ void __launch_bounds__(256) attention_combine_kernel(const int32_t* __restrict__ pos, int window,
                                                                int q_heads, int kv_heads, int nsplit, int min_chunk,
                                                                const float* __restrict__ part,
                                                                const uint16_t* __restrict__ sinks,
                                                                float* __restrict__ attn_out) {
  pdl_allow_dependents();
  const int kvh = blockIdx.x, t = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = kvh * (q_heads / kv_heads) + warp;
  const int p = pos[t];
  const int lo = window > 0 ? max(0, p - window + 1) : 0;
  const int n = p + 1 - lo;
  const int chunk = max((n + nsplit - 1) / nsplit, min_chunk);
  const int nact = (n + chunk - 1) / chunk;
  pdl_wait();
  if (nact == 1) return;  // the one active split wrote its output
  constexpr int stride = kHeadDim + 2;
  combine_splits_batched<16>(part + (static_cast<size_t>(t) * q_heads + h) * nsplit * stride, nact, sinks, h, lane,
                             attn_out + (static_cast<size_t>(t) * q_heads + h) * kHeadDim,
                             [](const float* x) { return __ldcg(x); });
}

// v20 (attention variants 12-15): the split's cached keys and values staged in shared memory by cp.async before
// griddepcontrol.wait, up to max_tiles tiles (min_chunk = 32 * max_tiles positions per split, as variants 3-5:
// the other splits' blocks idle), so that after the wait only q and this step's row are read before the
// output; a split longer than that (n > nsplit * min_chunk) stages its further rounds after the wait. K rows
// padded to 68 floats: the q.k reads them as float4 (8 lanes a phase, distinct bank quads), one FMA chain in
// d order as the other kernels. kW warps per query head (256 * kW threads) share a split's tiles (tile i to
// warp i mod kW) and combine their states in shared memory; then one active split writes its output with
// the sink, several combine as kernel 0.
constexpr int kKStride = kHeadDim + 4;

__device__ __forceinline__ void cp_async16_zfill(float* smem, const float* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.commit_group;\n\tcp.async.wait_group 0;" ::: "memory");
}

__host__ __device__ constexpr size_t staged_smem_floats(int max_tiles, int w) {
  return static_cast<size_t>(max_tiles) * kTile * (kKStride + kHeadDim) + 8 * kHeadDim + w * 8 * (kHeadDim + 2);
}

template <int kW>
__global__ void __launch_bounds__(256 * kW) attention_staged_kernel(
    const float* __restrict__ q, int q_heads, int kv_heads, const float* __restrict__ k_cache,
    const float* __restrict__ v_cache, int capacity, const int32_t* __restrict__ pos, const int32_t* __restrict__ slot,
    int window, float scale, const uint16_t* __restrict__ sinks, int nsplit, float* __restrict__ part,
    int32_t* __restrict__ counters, float* __restrict__ attn_out, KvPages pages, int max_tiles, bool batched) {
  const TimelineBlock timeline(kTimelineAttention);
  constexpr int kGroup = 8, kThreads = 256 * kW;
  const int kvh = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int head = warp % kGroup, sub = warp / kGroup;
  const int h = kvh * kGroup + head;
  extern __shared__ __align__(16) float sm[];
  float* ks = sm;                                  // [max_tiles * 32][kKStride]
  float* vs = ks + max_tiles * kTile * kKStride;   // [max_tiles * 32][64]
  float* qs = vs + max_tiles * kTile * kHeadDim;   // [8][64]
  float* red = qs + kGroup * kHeadDim;             // [kW][8][66]

  const int p = pos[t];
  const int lo = window > 0 ? max(0, p - window + 1) : 0;
  const int n = p + 1 - lo;
  const int chunk = max((n + nsplit - 1) / nsplit, max_tiles * kTile);
  const int nact = (n + chunk - 1) / chunk;
  if (split >= nact) return;  // no positions for this block
  const int begin = lo + split * chunk;
  const int end = min(p + 1, begin + chunk);
  const int ntiles = (end - begin + kTile - 1) / kTile;
  const int sl = slot[t];
  // Stages tiles first, first + 1, ... (at most max_tiles) into ks / vs; rows past the split's end as zeros,
  // row p left out while skip_p (before the wait it may not be written yet).
  auto stage = [&](int first, bool skip_p) {
    const int r0 = begin + first * kTile;
    const int rows = min(ntiles - first, max_tiles) * kTile;
    for (int e = threadIdx.x; e < rows * (kHeadDim / 4); e += kThreads) {
      const int j = e / (kHeadDim / 4), d = 4 * (e % (kHeadDim / 4));
      const int row = r0 + j;
      if (skip_p && row == p) continue;
      const bool valid = row < end;
      const size_t off =
          valid ? (kv_cache_row(sl, row, capacity, pages) * kv_heads + kvh) * kHeadDim + d : 0;
      cp_async16_zfill(ks + j * kKStride + d, k_cache + off, valid);
      cp_async16_zfill(vs + j * kHeadDim + d, v_cache + off, valid);
    }
  };
  stage(0, true);
  pdl_wait();
  timeline.waited();
  pdl_allow_dependents();
  if (threadIdx.x < kGroup * kHeadDim / 4) {  // the group's q rows are contiguous
    const float4* qg = reinterpret_cast<const float4*>(q + (static_cast<size_t>(t) * q_heads + kvh * kGroup) * kHeadDim);
    reinterpret_cast<float4*>(qs)[threadIdx.x] = qg[threadIdx.x];
  } else if (threadIdx.x < kGroup * kHeadDim / 4 + kHeadDim / 4 && p - begin < max_tiles * kTile) {
    const int d = 4 * (threadIdx.x - kGroup * kHeadDim / 4), j = p - begin;  // this step's row
    const size_t off = (kv_cache_row(sl, p, capacity, pages) * kv_heads + kvh) * kHeadDim + d;
    *reinterpret_cast<float4*>(ks + j * kKStride + d) = *reinterpret_cast<const float4*>(k_cache + off);
    *reinterpret_cast<float4*>(vs + j * kHeadDim + d) = *reinterpret_cast<const float4*>(v_cache + off);
  }
  cp_async_wait_all();
  __syncthreads();

  float m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
  const float4* q4 = reinterpret_cast<const float4*>(qs + head * kHeadDim);
  for (int first = 0; first < ntiles; first += max_tiles) {
    if (first > 0) {  // a split longer than max_tiles tiles: the next round, after the wait
      __syncthreads();
      stage(first, false);
      cp_async_wait_all();
      __syncthreads();
    }
    const int nt = min(ntiles - first, max_tiles);
    for (int i = sub; i < nt; i += kW) {
      const int k0 = begin + (first + i) * kTile;
      const float* kt = ks + i * kTile * kKStride;
      const float* vt = vs + i * kTile * kHeadDim;
      float s = -INFINITY;
      if (k0 + lane < end) {
        const float4* k4 = reinterpret_cast<const float4*>(kt + lane * kKStride);
        float dot = 0.0f;
#pragma unroll
        for (int d4 = 0; d4 < kHeadDim / 4; ++d4) {
          const float4 a = q4[d4], b = k4[d4];
          dot = fmaf(a.x, b.x, dot);
          dot = fmaf(a.y, b.y, dot);
          dot = fmaf(a.z, b.z, dot);
          dot = fmaf(a.w, b.w, dot);
        }
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
        acc0 = fmaf(pj, vt[j * kHeadDim + lane], acc0);
        acc1 = fmaf(pj, vt[j * kHeadDim + lane + 32], acc1);
      }
      m = m_new;
    }
  }
  constexpr int stride = kHeadDim + 2;
  if constexpr (kW > 1) {  // the kW warps of a head: M = max m_w, l = sum l_w e^(m_w - M), acc likewise
    float* r = red + (sub * kGroup + head) * stride;
    if (lane == 0) r[0] = m, r[1] = l;
    r[2 + lane] = acc0;
    r[2 + lane + 32] = acc1;
    __syncthreads();
    if (sub == 0) {
      float mx = m;
#pragma unroll
      for (int w = 1; w < kW; ++w) mx = fmaxf(mx, red[(w * kGroup + head) * stride]);
      const float f0 = expf(m - mx);
      l *= f0, acc0 *= f0, acc1 *= f0;
#pragma unroll
      for (int w = 1; w < kW; ++w) {
        const float* rw = red + (w * kGroup + head) * stride;
        const float fw = expf(rw[0] - mx);  // 0 for a warp without tiles (m = -inf)
        l = fmaf(rw[1], fw, l);
        acc0 = fmaf(rw[2 + lane], fw, acc0);
        acc1 = fmaf(rw[2 + lane + 32], fw, acc1);
      }
      m = mx;
    }
  }
  float* o = attn_out + (static_cast<size_t>(t) * q_heads + h) * kHeadDim;
  if (nact == 1) {  // combine_splits' arithmetic for one split, from registers
    if (sub != 0) return;
    const float sink = bf16_to_f32(sinks[h]);
    const float mx = fmaxf(sink, m);
    const float f = expf(m - mx);
    const float den = expf(sink - mx) + l * f;
    o[lane] = (acc0 * f) / den;
    o[lane + 32] = (acc1 * f) / den;
    return;
  }
  float* pp = part + (static_cast<size_t>(t) * q_heads + h) * nsplit * stride;
  if (sub == 0) {
    float* out = pp + split * stride;
    if (lane == 0) {
      out[0] = m;
      out[1] = l;
    }
    out[2 + lane] = acc0;
    out[2 + lane + 32] = acc1;
  }
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&counters[t * kv_heads + kvh], 1) == nact - 1;
  __syncthreads();
  if (!last || sub != 0) return;
  __threadfence();
  if (batched) {
    combine_splits_batched<16>(pp, nact, sinks, h, lane, o, [](const float* x) { return __ldcg(x); });
  } else {
    combine_splits(pp, nact, sinks, h, lane, o, [](const float* x) { return __ldcg(x); });
  }
  if (threadIdx.x == 0) counters[t * kv_heads + kvh] = 0;
}

}  // namespace

int attention(const float* q, int T, int q_heads, int kv_heads, const float* k_cache, const float* v_cache,
              int capacity, const int32_t* pos, const int32_t* slot, int window, float scale, const uint16_t* sinks,
              int nsplit, float* part, int32_t* counters, float* out, cudaStream_t stream, bool kv_ready,
              KvPages pages) {
  if (T <= 0) return 0;
  if (nsplit < 1 || nsplit > 32 || q_heads % kv_heads != 0 || q_heads / kv_heads > 32) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  const int group = q_heads / kv_heads;
  const dim3 grid(kv_heads, T, nsplit);
  const int av = g_attention_variant;
  if (g_attention_variant == 1 && nsplit <= kMaxClusterSplits) {
    auto kernel = attention_partials_kernel<true>;
    const size_t smem = group * kHeadDim * sizeof(float) + static_cast<size_t>(group) * nsplit * (kHeadDim + 2) * 4;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (nsplit > 8) cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    launch_pdl_cluster(kernel, grid, dim3(32 * group), dim3(1, 1, nsplit), smem, stream, q, q_heads, kv_heads, k_cache,
                       v_cache, capacity, pos, slot, window, scale, sinks, nsplit, part, counters, out, pages);
    return static_cast<int>(cudaGetLastError());
  }
  if (((av >= 3 && av <= 11) || av == 16 || av >= 18) && kv_ready && group == 8) {  // v20: 256 threads
    // {min_chunk, trigger, dot4, combine} of variants 3..11, 16, 18..25
    constexpr int kShapes[][4] = {{kTile, 0, 0, 0}, {2 * kTile, 0, 0, 0}, {4 * kTile, 0, 0, 0}, {kTile, 0, 1, 0},
                                  {kTile, 1, 0, 0}, {kTile, 2, 0, 0},     {1, 1, 0, 0},         {1, 0, 0, 0},
                                  {1, 2, 0, 0},     {kTile, 0, 0, 1},     {2 * kTile, 0, 0, 1}, {kTile, -1, 0, 0},
                                  {kTile, -1, 0, 1}, {kTile, -2, 0, 1},   {kTile, 0, 0, 2},     {kTile, -2, 0, 2},
                                  {kTile, -2, 0, 3}, {kTile, 0, 0, 3}};
    const int* v = kShapes[av < 12 ? av - 3 : av == 16 ? 9 : av - 8];
    launch_pdl(v[2] ? attention_tiles_kernel<true> : attention_tiles_kernel<false>, grid, dim3(256), 0, stream, q,
               q_heads, kv_heads, k_cache, v_cache, capacity, pos, slot, window, scale, sinks, nsplit, part, counters,
               out, pages, v[0], v[1], v[3]);
    if (v[3] == 2) {
      const cudaError_t e = cudaGetLastError();
      if (e != cudaSuccess) return static_cast<int>(e);
      launch_pdl(attention_combine_kernel, dim3(kv_heads, T), dim3(256), 0, stream, pos, window, q_heads, kv_heads,
                 nsplit, v[0], part, sinks, out);
    }
    return static_cast<int>(cudaGetLastError());
  }
  if (((av >= 12 && av <= 15) || av == 17) && kv_ready && group == 8) {  // v20: staged
    // {max_tiles, warps per head, batched combine} of variants 12..15, 17
    constexpr int kStaged[][3] = {{2, 1, 0}, {4, 1, 0}, {4, 2, 0}, {2, 2, 0}, {0, 0, 0}, {2, 2, 1}};
    const int* v = kStaged[g_attention_variant - 12];
    auto kernel = v[1] == 2 ? attention_staged_kernel<2> : attention_staged_kernel<1>;
    const size_t smem = staged_smem_floats(v[0], v[1]) * sizeof(float);
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    launch_pdl(kernel, grid, dim3(256 * v[1]), smem, stream, q, q_heads, kv_heads, k_cache, v_cache, capacity, pos,
               slot, window, scale, sinks, nsplit, part, counters, out, pages, v[0], v[2] != 0);
    return static_cast<int>(cudaGetLastError());
  }
  const bool pre = g_attention_variant == 2 && kv_ready && group == 8;  // 256 threads per block
  launch_pdl(pre ? attention_partials_kernel<false, true> : attention_partials_kernel<false, false>, grid,
             dim3(32 * group), group * kHeadDim * sizeof(float), stream, q, q_heads, kv_heads, k_cache, v_cache,
             capacity, pos, slot, window, scale, sinks, nsplit, part, counters, out, pages);
  return static_cast<int>(cudaGetLastError());
}

GPTOSS_CUDA_TIMELINE_SETTER(set_timeline_attention)

void set_attention_variant(int v) { g_attention_variant = v >= 0 && v < kAttentionVariants ? v : 0; }

}  // namespace gptoss::cuda
