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

// The splits' weights in a combine: lane s holds split s's max and denominator (nsplit <= 32) from its
// partial pp[s * 66 + (m, l, ...)]; f = e^(m_s - M) (0 for empty splits and lanes past nsplit) and the
// denominator den = e^(sink - M) + sum l_s f_s, with M = max(sink, m_s).
template <typename Load>
__device__ __forceinline__ void split_weights(const float* pp, int nsplit, float sink, int lane, Load& load, float& f,
                                              float& den) {
  constexpr int stride = kHeadDim + 2;
  const float ms = lane < nsplit ? load(pp + lane * stride) : -INFINITY;
  const float ls = lane < nsplit ? load(pp + lane * stride + 1) : 0.0f;
  const float mx = fmaxf(sink, warp_max(ms));
  f = expf(ms - mx);
  den = expf(sink - mx) + warp_sum(ls * f);
}

// One warp combines head h's nsplit partials pp[s * 66 + (m, l, acc[64])] with its sink into o[64]:
// M = max(sink, m_s), den = e^(sink - M) + sum l_s e^(m_s - M), o = sum acc_s e^(m_s - M) / den.
template <typename Load>
__device__ __forceinline__ void combine_splits(const float* pp, int nsplit, const uint16_t* sinks, int h, int lane,
                                               float* o, Load&& load) {
  constexpr int stride = kHeadDim + 2;
  const float sink = bf16_to_f32(sinks[h]);
  float f, den;
  split_weights(pp, nsplit, sink, lane, load, f, den);
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

// One 32-position tile of a query head (one warp) after the tile's keys and values are in ks / vs: lane j's
// score q . k_j (valid: position j is inside the split), the online softmax update of the running max m and
// denominator l, and the value rows weighted into acc0 / acc1 (output dims lane and lane + 32).
__device__ __forceinline__ void tile_step(const float* qw, const float (*ks)[kHeadDim + 1], const float (*vs)[kHeadDim],
                                          bool valid, float scale, int lane, float& m, float& l, float& acc0,
                                          float& acc1) {
  float s = -INFINITY;
  if (valid) {
    float dot = 0.0f;
#pragma unroll 16
    for (int d = 0; d < kHeadDim; ++d) dot = fmaf(qw[d], ks[lane][d], dot);
    s = dot * scale;
  }
  const float m_new = fmaxf(m, warp_max(s));
  const float corr = expf(m - m_new);
  const float pr = valid ? expf(s - m_new) : 0.0f;
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

// combine_splits with kBatch splits' outputs requested at once (v20: 16 splits per L2 round trip instead of
// ~4; at 32 splits 2 round trips instead of 8), the max and denominator loads beside the first batch's. The
// same arithmetic in the same order (the same bits).
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
  float f, den;
  split_weights(pp, nsplit, sink, lane, load, f, den);
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
    tile_step(qs + warp * kHeadDim, ks, vs, k0 + lane < end, scale, lane, m, l, acc0, acc1);
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

// Attention variant 3 (NOTES v20, the default; blocks of 256 threads = 8 query heads per KV head, where the
// caller passes kv_ready): kernel 2's tiles with three changes, each measured in the decode graph.
// - Splits follow the token's own span n: each gets at least one 32-position tile, so a (token, KV head) has
//   nact = ceil(n / chunk) active splits of the nsplit launched (chunk = max(ceil(n / nsplit), 32)); the other
//   blocks exit at once. One active split adds the sink and writes its output itself.
// - The next kernel (o_proj) may launch at the block's start where n <= kEarlySpan (its weight loads then
//   overlap the qkv kernel's tail), after the wait elsewhere (at long spans the blocks' own pre-wait K/V loads
//   are larger and the early o_proj slowed them).
// - The last split is found by one atom.acq_rel.gpu of thread 0 after a block barrier (release / acquire of the
//   PTX memory model, the barrier carrying the block's partial writes) instead of every thread's
//   __threadfence (fence.sc) around a relaxed atomic; it requests 16 splits' outputs at once.
// The first tile (less this step's row) is requested before griddepcontrol.wait as in kernel 2; each further
// tile (a split longer than 32 positions: n > 32 * nsplit) while the current one is multiplied.
constexpr int kEarlySpan = 256;

__global__ void __launch_bounds__(256) attention_tiles_kernel(
    const float* __restrict__ q, int q_heads, int kv_heads, const float* __restrict__ k_cache,
    const float* __restrict__ v_cache, int capacity, const int32_t* __restrict__ pos, const int32_t* __restrict__ slot,
    int window, float scale, const uint16_t* __restrict__ sinks, int nsplit, float* __restrict__ part,
    int32_t* __restrict__ counters, float* __restrict__ attn_out, KvPages pages) {
  const TimelineBlock timeline(kTimelineAttention);
  constexpr int kGroup = 8;
  constexpr int kLoads = kTile * kHeadDim / 4 / 256;  // float4 of K (and of V) per thread and tile
  const int kvh = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = kvh * kGroup + warp;
  __shared__ float ks[kTile][kHeadDim + 1];
  __shared__ __align__(16) float vs[kTile][kHeadDim];
  __shared__ float qs[kGroup * kHeadDim];
  __shared__ bool last;

  const int p = pos[t];
  const int lo = window > 0 ? max(0, p - window + 1) : 0;
  const int n = p + 1 - lo;
  const int chunk = max((n + nsplit - 1) / nsplit, kTile);
  const int nact = (n + chunk - 1) / chunk;
  if (split >= nact) return;  // no positions for this block
  if (n <= kEarlySpan) pdl_allow_dependents();
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
  if (n > kEarlySpan) pdl_allow_dependents();

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
    tile_step(qs + warp * kHeadDim, ks, vs, k0 + lane < end, scale, lane, m, l, acc0, acc1);
  }
  float* o = attn_out + (static_cast<size_t>(t) * q_heads + h) * kHeadDim;
  if (nact == 1) {  // combine_splits' arithmetic for one split, from registers
    const float sink = bf16_to_f32(sinks[h]);
    const float mx = fmaxf(sink, m);
    const float f = expf(m - mx);
    const float den = expf(sink - mx) + l * f;
    o[lane] = (acc0 * f) / den;
    o[lane + 32] = (acc1 * f) / den;
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
  __syncthreads();  // the block's partial writes before thread 0's release
  if (threadIdx.x == 0) {
    int old;
    asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], 1;"
                 : "=r"(old)
                 : "l"(counters + t * kv_heads + kvh)
                 : "memory");
    last = old == nact - 1;
  }
  __syncthreads();  // thread 0's acquire before the block's partial reads
  if (!last) return;
  combine_splits_batched<16>(pp, nact, sinks, h, lane, o, [](const float* x) { return __ldcg(x); });
  if (threadIdx.x == 0) counters[t * kv_heads + kvh] = 0;
}

// Prefill (NOTES v23): TQ query tokens of one sequence at consecutive positions p0 + t0 .. per block,
// 8 warps = the 8 query heads of a KV head; each 32-position K/V tile of [lo of the first token, the
// last token's position] is staged once in shared memory for all TQ tokens. Per token the arithmetic
// is tile_step's (scores by fmaf over d in order, the online softmax update, values by fmaf over the
// tile's positions in order) over the tiles that hold any of its positions, the others masked; then
// the sink as in attention_tiles_kernel's one-split case. Register blocking: each key element read
// from shared memory serves the TQ tokens' scores, each value element their outputs.
template <int TQ>
__global__ void __launch_bounds__(256) attention_prefill_kernel(
    const float* __restrict__ q, int T, int q_heads, int kv_heads, const float* __restrict__ k_cache,
    const float* __restrict__ v_cache, int capacity, int p0, int sl, int window, float scale,
    const uint16_t* __restrict__ sinks, float* __restrict__ attn_out, KvPages pages) {
  constexpr int kGroup = 8;
  const int kvh = blockIdx.x, t0 = blockIdx.y * TQ;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = kvh * kGroup + warp;
  const int nt = min(TQ, T - t0);
  __shared__ float ks[kTile][kHeadDim + 1];
  __shared__ __align__(16) float vs[kTile][kHeadDim];
  __shared__ __align__(16) float qs[kGroup][TQ][kHeadDim];
  __shared__ __align__(16) float ps[kGroup][TQ][kTile];
  pdl_wait();
  pdl_allow_dependents();
#pragma unroll
  for (int i = 0; i < TQ; ++i) {
    const float* qrow = q + (static_cast<size_t>(t0 + min(i, nt - 1)) * q_heads + h) * kHeadDim;
    qs[warp][i][lane] = qrow[lane];
    qs[warp][i][lane + 32] = qrow[lane + 32];
  }
  const int p_first = p0 + t0, p_last = p_first + nt - 1;
  const int lo_first = window > 0 ? max(0, p_first - window + 1) : 0;
  float m[TQ], l[TQ], acc0[TQ], acc1[TQ];
#pragma unroll
  for (int i = 0; i < TQ; ++i) m[i] = -INFINITY, l[i] = 0.0f, acc0[i] = 0.0f, acc1[i] = 0.0f;
  for (int k0 = lo_first; k0 <= p_last; k0 += kTile) {
    __syncthreads();  // the previous tile's ks / vs are consumed
    for (int e = threadIdx.x; e < kTile * kHeadDim / 4; e += 256) {
      const int j = e / (kHeadDim / 4), d = 4 * (e % (kHeadDim / 4));
      float4 kv = make_float4(0.f, 0.f, 0.f, 0.f), vv = kv;
      if (k0 + j <= p_last) {
        const size_t off = (kv_cache_row(sl, k0 + j, capacity, pages) * kv_heads + kvh) * kHeadDim + d;
        kv = *reinterpret_cast<const float4*>(k_cache + off);
        vv = *reinterpret_cast<const float4*>(v_cache + off);
      }
      ks[j][d] = kv.x, ks[j][d + 1] = kv.y, ks[j][d + 2] = kv.z, ks[j][d + 3] = kv.w;
      *reinterpret_cast<float4*>(&vs[j][d]) = vv;
    }
    __syncthreads();
    // Scores: lane = position k0 + lane.
    float dot[TQ];
#pragma unroll
    for (int i = 0; i < TQ; ++i) dot[i] = 0.0f;
#pragma unroll 4
    for (int d4 = 0; d4 < kHeadDim; d4 += 4) {
      const float k_0 = ks[lane][d4], k_1 = ks[lane][d4 + 1], k_2 = ks[lane][d4 + 2], k_3 = ks[lane][d4 + 3];
#pragma unroll
      for (int i = 0; i < TQ; ++i) {
        const float4 qv = *reinterpret_cast<const float4*>(&qs[warp][i][d4]);
        dot[i] = fmaf(qv.x, k_0, dot[i]);
        dot[i] = fmaf(qv.y, k_1, dot[i]);
        dot[i] = fmaf(qv.z, k_2, dot[i]);
        dot[i] = fmaf(qv.w, k_3, dot[i]);
      }
    }
    // The online softmax per token; tokens with none of their positions in this tile skip it (warp-uniform).
    bool live[TQ];
#pragma unroll
    for (int i = 0; i < TQ; ++i) {
      const int pi = p_first + i, loi = window > 0 ? max(0, pi - window + 1) : 0;
      live[i] = i < nt && k0 <= pi && k0 + kTile - 1 >= loi;
      float pr = 0.0f;
      if (live[i]) {
        const bool valid = k0 + lane >= loi && k0 + lane <= pi;
        const float sc = valid ? dot[i] * scale : -INFINITY;
        const float m_new = fmaxf(m[i], warp_max(sc));
        const float corr = expf(m[i] - m_new);
        pr = valid ? expf(sc - m_new) : 0.0f;
        l[i] = l[i] * corr + warp_sum(pr);
        acc0[i] *= corr;
        acc1[i] *= corr;
        m[i] = m_new;
      }
      ps[warp][i][lane] = pr;
    }
    __syncwarp();
    // Values: lane = output dims lane and lane + 32.
#pragma unroll 2
    for (int j4 = 0; j4 < kTile; j4 += 4) {
      float4 pv[TQ];
#pragma unroll
      for (int i = 0; i < TQ; ++i) pv[i] = *reinterpret_cast<const float4*>(&ps[warp][i][j4]);
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        const float v0 = vs[j4 + jj][lane], v1 = vs[j4 + jj][lane + 32];
#pragma unroll
        for (int i = 0; i < TQ; ++i) {
          const float pj = jj == 0 ? pv[i].x : jj == 1 ? pv[i].y : jj == 2 ? pv[i].z : pv[i].w;
          if (live[i]) {
            acc0[i] = fmaf(pj, v0, acc0[i]);
            acc1[i] = fmaf(pj, v1, acc1[i]);
          }
        }
      }
    }
    __syncwarp();  // ps is rewritten by the next tile
  }
  const float sink = bf16_to_f32(sinks[h]);
#pragma unroll
  for (int i = 0; i < TQ; ++i) {
    if (i >= nt) continue;
    const float mx = fmaxf(sink, m[i]);
    const float f = expf(m[i] - mx);
    const float den = expf(sink - mx) + l[i] * f;
    float* o = attn_out + (static_cast<size_t>(t0 + i) * q_heads + h) * kHeadDim;
    o[lane] = (acc0[i] * f) / den;
    o[lane + 32] = (acc1[i] * f) / den;
  }
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
  if (g_attention_variant == 1 && nsplit <= kMaxClusterSplits) {
    auto kernel = attention_partials_kernel<true>;
    const size_t smem = group * kHeadDim * sizeof(float) + static_cast<size_t>(group) * nsplit * (kHeadDim + 2) * 4;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (nsplit > 8) cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    launch_pdl_cluster(kernel, grid, dim3(32 * group), dim3(1, 1, nsplit), smem, stream, q, q_heads, kv_heads, k_cache,
                       v_cache, capacity, pos, slot, window, scale, sinks, nsplit, part, counters, out, pages);
    return static_cast<int>(cudaGetLastError());
  }
  if (g_attention_variant == 3 && kv_ready && group == 8) {  // 256 threads per block
    launch_pdl(attention_tiles_kernel, grid, dim3(256), 0, stream, q, q_heads, kv_heads, k_cache, v_cache, capacity,
               pos, slot, window, scale, sinks, nsplit, part, counters, out, pages);
    return static_cast<int>(cudaGetLastError());
  }
  const bool pre = g_attention_variant == 2 && kv_ready && group == 8;  // 256 threads per block
  launch_pdl(pre ? attention_partials_kernel<false, true> : attention_partials_kernel<false, false>, grid,
             dim3(32 * group), group * kHeadDim * sizeof(float), stream, q, q_heads, kv_heads, k_cache, v_cache,
             capacity, pos, slot, window, scale, sinks, nsplit, part, counters, out, pages);
  return static_cast<int>(cudaGetLastError());
}

int attention_prefill(const float* q, int T, int q_heads, int kv_heads, const float* k_cache, const float* v_cache,
                      int capacity, int p0, int slot, int window, float scale, const uint16_t* sinks, float* out,
                      cudaStream_t stream, int tokens_per_block, KvPages pages) {
  if (T <= 0) return 0;
  if (q_heads != 8 * kv_heads) return static_cast<int>(cudaErrorInvalidValue);
  const auto launch = [&](auto kernel, int tq) {
    launch_pdl(kernel, dim3(kv_heads, (T + tq - 1) / tq), dim3(256), 0, stream, q, T, q_heads, kv_heads, k_cache,
               v_cache, capacity, p0, slot, window, scale, sinks, out, pages);
    return static_cast<int>(cudaGetLastError());
  };
  switch (tokens_per_block) {
    case 4: return launch(attention_prefill_kernel<4>, 4);
    case 8: return launch(attention_prefill_kernel<8>, 8);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

GPTOSS_CUDA_TIMELINE_SETTER(set_timeline_attention)

void set_attention_variant(int v) { g_attention_variant = v >= 0 && v < kAttentionVariants ? v : 0; }

}  // namespace gptoss::cuda
