// The decode attention's per-tile step (attention.cu) and the attention of one KV head for one token as the
// qkv kernel runs it where the attention is folded into it (attention variant 4, gemv_bf16.cu; NOTES v30).
// Included only by .cu files.
#pragma once

#include "backend/cuda/common.cuh"
#include "backend/cuda/kv_pages.h"

namespace gptoss::cuda {

constexpr int kAttnHeadDim = 64;
constexpr int kAttnTile = 32;

// One 32-position tile of a query head (one warp) after the tile's keys and values are in ks / vs: lane j's
// score q . k_j (valid: position j is inside the split), the online softmax update of the running max m and
// denominator l, and the value rows weighted into acc0 / acc1 (output dims lane and lane + 32).
__device__ __forceinline__ void tile_step(const float* qw, const float (*ks)[kAttnHeadDim + 1],
                                          const float (*vs)[kAttnHeadDim], bool valid, float scale, int lane, float& m,
                                          float& l, float& acc0, float& acc1) {
  float s = -INFINITY;
  if (valid) {
    float dot = 0.0f;
#pragma unroll 16
    for (int d = 0; d < kAttnHeadDim; ++d) dot = fmaf(qw[d], ks[lane][d], dot);
    s = dot * scale;
  }
  const float m_new = fmaxf(m, warp_max(s));
  const float corr = expf(m - m_new);
  const float pr = valid ? expf(s - m_new) : 0.0f;
  l = l * corr + warp_sum(pr);
  acc0 *= corr;
  acc1 *= corr;
#pragma unroll 8
  for (int j = 0; j < kAttnTile; ++j) {
    const float pj = __shfl_sync(0xffffffffu, pr, j);
    acc0 = fmaf(pj, vs[j][lane], acc0);
    acc1 = fmaf(pj, vs[j][lane + 32], acc1);
  }
  m = m_new;
}

// The attention folded into the qkv kernel (attention variant 4): what attention_tiles_kernel computes for one
// (token, KV head) with nsplit splits, run by one block of 256 threads (warp w = query head 8 kvh + w) after this
// step's q rows and this step's K/V row of the KV head are written (by the qkv kernel's blocks; read here through
// L2). The splits are attention_tiles_kernel's (chunk = max(ceil(n / nsplit), 32), nact = ceil(n / chunk) <=
// kFoldMaxSplits), each split's tiles in order with tile_step, then the splits combined as the kernel's last block
// does (combine_splits_batched: f_s = e^(m_s - M), den = e^(sink - M) + warp_sum(l_s f_s), o = sum_s acc_s f_s /
// den in split order; one split: the one-split formula), from registers: the same bits. The first tile, less row p,
// arrives in pk / pv (requested by the caller); smem holds ks, vs and qs (fold_smem_floats floats).
constexpr int kFoldMaxSplits = 8;
constexpr int kFoldLoads = kAttnTile * kAttnHeadDim / 4 / 256;  // float4 of K (and of V) per thread and tile
constexpr int fold_smem_floats() { return kAttnTile * (kAttnHeadDim + 1) + kAttnTile * kAttnHeadDim + 8 * kAttnHeadDim; }

struct FoldSpan {
  int p, lo, n, chunk, nact, sl;
  bool noload;  // diagnostic attention variant 8 (wrong results by design): no cached K / V read (zeros)
};
__device__ __forceinline__ FoldSpan fold_span(int p, int window, int nsplit, int sl) {
  FoldSpan s;
  s.p = p;
  s.lo = window > 0 ? max(0, p - window + 1) : 0;
  s.n = p + 1 - s.lo;
  s.chunk = max((s.n + nsplit - 1) / nsplit, kAttnTile);
  s.nact = (s.n + s.chunk - 1) / s.chunk;
  s.sl = sl;
  s.noload = false;
  return s;
}

// Requests the rows k0 .. min(k0 + 32, end) - 1 of KV head kvh into pk / pv (zeros past end; row p left out while
// skip_p).
__device__ __forceinline__ void fold_request(const float* k_cache, const float* v_cache, int capacity,
                                             const KvPages& pages, int kv_heads, int kvh, const FoldSpan& s, int k0,
                                             int end, bool skip_p, float4 (&pk)[kFoldLoads],
                                             float4 (&pv)[kFoldLoads]) {
#pragma unroll
  for (int i = 0; i < kFoldLoads; ++i) {
    const int e = threadIdx.x + 256 * i, j = e / (kAttnHeadDim / 4), d = 4 * (e % (kAttnHeadDim / 4));
    pk[i] = pv[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (!s.noload && k0 + j < end && !(skip_p && k0 + j == s.p)) {
      const size_t off = (kv_cache_row(s.sl, k0 + j, capacity, pages) * kv_heads + kvh) * kAttnHeadDim + d;
      pk[i] = *reinterpret_cast<const float4*>(k_cache + off);
      pv[i] = *reinterpret_cast<const float4*>(v_cache + off);
    }
  }
}

__device__ __forceinline__ void fold_attention(const float* q, int kv_heads, const float* k_cache,
                                               const float* v_cache, int capacity, const KvPages& pages, int kvh,
                                               const FoldSpan& s, float scale, const uint16_t* sinks, float* attn_out,
                                               float4 (&pk)[kFoldLoads], float4 (&pv)[kFoldLoads], float* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = kvh * 8 + warp;
  auto ks = reinterpret_cast<float (*)[kAttnHeadDim + 1]>(smem);
  auto vs = reinterpret_cast<float (*)[kAttnHeadDim]>(smem + kAttnTile * (kAttnHeadDim + 1));
  float* qs = smem + kAttnTile * (kAttnHeadDim + 1) + kAttnTile * kAttnHeadDim;
  const float* qrow = q + static_cast<size_t>(h) * kAttnHeadDim;  // written by other blocks: through L2
  qs[warp * kAttnHeadDim + lane] = __ldcg(qrow + lane);
  qs[warp * kAttnHeadDim + lane + 32] = __ldcg(qrow + lane + 32);
  float ms = -INFINITY, ls = 0.0f;  // lane i: split i's max and denominator
  float a0[kFoldMaxSplits], a1[kFoldMaxSplits];
  float m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
  // Not unrolled: one copy of the tile loop's code (a0 / a1 then live in local memory, two stores per split).
#pragma unroll 1
  for (int sp = 0; sp < kFoldMaxSplits; ++sp) {
    a0[sp] = a1[sp] = 0.0f;
    if (sp < s.nact) {
      const int begin = s.lo + sp * s.chunk, end = min(s.p + 1, begin + s.chunk);
      m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
      for (int k0 = begin; k0 < end; k0 += kAttnTile) {
        __syncthreads();  // the previous tile's ks / vs are consumed
#pragma unroll
        for (int i = 0; i < kFoldLoads; ++i) {
          const int e = threadIdx.x + 256 * i, j = e / (kAttnHeadDim / 4), d = 4 * (e % (kAttnHeadDim / 4));
          float4 kv = pk[i], vv = pv[i];
          if (!s.noload && k0 + j == s.p) {  // this step's row, written by this kernel's k / v blocks
            const size_t off = (kv_cache_row(s.sl, s.p, capacity, pages) * kv_heads + kvh) * kAttnHeadDim + d;
            kv = __ldcg(reinterpret_cast<const float4*>(k_cache + off));
            vv = __ldcg(reinterpret_cast<const float4*>(v_cache + off));
          }
          ks[j][d] = kv.x, ks[j][d + 1] = kv.y, ks[j][d + 2] = kv.z, ks[j][d + 3] = kv.w;
          *reinterpret_cast<float4*>(&vs[j][d]) = vv;
        }
        // The next tile (this split's or the next split's first) in flight while this one is multiplied.
        if (k0 + kAttnTile < end) {
          fold_request(k_cache, v_cache, capacity, pages, kv_heads, kvh, s, k0 + kAttnTile, end, true, pk, pv);
        } else if (sp + 1 < s.nact) {
          const int nb = begin + s.chunk;
          fold_request(k_cache, v_cache, capacity, pages, kv_heads, kvh, s, nb, min(s.p + 1, nb + s.chunk), true, pk,
                       pv);
        }
        __syncthreads();
        tile_step(qs + warp * kAttnHeadDim, ks, vs, k0 + lane < end, scale, lane, m, l, acc0, acc1);
      }
      a0[sp] = acc0, a1[sp] = acc1;
      if (lane == sp) ms = m, ls = l;
    }
  }
  float* o = attn_out + static_cast<size_t>(h) * kAttnHeadDim;
  const float sink = bf16_to_f32(sinks[h]);
  if (s.nact == 1) {  // attention_tiles_kernel's one-split formula
    const float mx = fmaxf(sink, m);
    const float f = expf(m - mx);
    const float den = expf(sink - mx) + l * f;
    o[lane] = (acc0 * f) / den;
    o[lane + 32] = (acc1 * f) / den;
    return;
  }
  // split_weights and combine_splits_batched's sums, in split order.
  const float mx = fmaxf(sink, warp_max(ms));
  const float f = expf(ms - mx);
  const float den = expf(sink - mx) + warp_sum(ls * f);
  float o0 = 0.0f, o1 = 0.0f;
#pragma unroll
  for (int sp = 0; sp < kFoldMaxSplits; ++sp) {
    if (sp < s.nact) {
      const float fs = __shfl_sync(0xffffffffu, f, sp);
      o0 += a0[sp] * fs;
      o1 += a1[sp] * fs;
    }
  }
  o[lane] = o0 / den;
  o[lane + 32] = o1 / den;
}

}  // namespace gptoss::cuda
