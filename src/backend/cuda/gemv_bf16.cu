// bf16-weight GEMV for decode: one warp per output row, 16-byte streaming loads (a whole row of up to
// 4096 columns in flight per warp), the input rows staged in shared memory by a prologue (plain copy or
// fused RMSNorm), and epilogues for plain/accumulating stores and for q/k/v with RoPE and the KV-cache
// write.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/x16.cuh"

namespace gptoss::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 16;  // 16 x 16 B per lane: 4096 bf16 columns in one round of loads
// Batch-1 shape (set_gemv_variant(1)): 12 loads per lane (3072 columns per round) so that a thread
// fits in 80 registers and 3 blocks of 8 warps share an SM: the qkv (320 blocks) and o_proj (360
// blocks) grids then run in one wave instead of 1.2-1.4.
constexpr int kUnrollSmall = 12;
int g_gemv_variant = kGemvDefault;

// Sum over the block of one value per thread, for up to kMaxGemvTokens values; result in every thread.
template <int T>
__device__ void block_sum(float v[T], float* red /* [kWarps][T] */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int t = 0; t < T; ++t) v[t] = warp_sum(v[t]);
  __syncthreads();
  if (lane == 0) {
#pragma unroll
    for (int t = 0; t < T; ++t) red[warp * T + t] = v[t];
  }
  __syncthreads();
#pragma unroll
  for (int t = 0; t < T; ++t) {
    float s = 0.0f;
    for (int w = 0; w < kWarps; ++w) s += red[w * T + t];
    v[t] = s;
  }
}

// The RMSNorm gain of this thread's first columns (4 per slot, the float4 mapping of stage_input),
// loaded before pdl_wait (it is a weight): loaded inside the normalization loop the loads were
// serialized behind the shared-memory stores (the router's same loop went 9.8 -> 7.4 us this way).
constexpr int kGainLoads = 3;  // 3 x 256 x 4 = 3072 columns; wider rows load the rest in the loop
struct GainPrefetch {
  uint2 g[kGainLoads];
};
__device__ __forceinline__ GainPrefetch prefetch_gain(const GemvInput& in, int cols) {
  GainPrefetch p;
#pragma unroll
  for (int i = 0; i < kGainLoads; ++i) {
    const int c = threadIdx.x * 4 + i * kThreads * 4;
    p.g[i] = in.norm_gain != nullptr && c < cols ? __ldg(reinterpret_cast<const uint2*>(in.norm_gain + c))
                                                 : make_uint2(0, 0);
  }
  return p;
}

// Fills xs[T][cols] with the nT input rows (rows nT..T-1 zero).
template <int T>
__device__ void stage_input(const GemvInput& in, int cols, int nT, float* xs, float* red, const GainPrefetch& gp) {
  float ss[T];
#pragma unroll
  for (int t = 0; t < T; ++t) {
    ss[t] = 0.0f;
#pragma unroll 4
    for (int c = threadIdx.x * 4; c < cols; c += kThreads * 4) {
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (t < nT) v = *reinterpret_cast<const float4*>(in.x + static_cast<size_t>(t) * in.x_stride + c);
      *reinterpret_cast<float4*>(xs + t * cols + c) = v;
      ss[t] += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  }
  if (in.norm_gain == nullptr) {
    __syncthreads();
    return;
  }
  block_sum<T>(ss, red);
#pragma unroll
  for (int t = 0; t < T; ++t) {
    const float r = 1.0f / sqrtf(ss[t] / static_cast<float>(cols) + in.norm_eps);
#pragma unroll
    for (int i = 0; i < kGainLoads; ++i) {
      const int c = threadIdx.x * 4 + i * kThreads * 4;
      if (c < cols) {
        float4* p = reinterpret_cast<float4*>(xs + t * cols + c);
        float4 v = *p;
        v.x = (v.x * r) * bf16_lo(gp.g[i].x);
        v.y = (v.y * r) * bf16_hi(gp.g[i].x);
        v.z = (v.z * r) * bf16_lo(gp.g[i].y);
        v.w = (v.w * r) * bf16_hi(gp.g[i].y);
        *p = v;
      }
    }
    for (int c = threadIdx.x * 4 + kGainLoads * kThreads * 4; c < cols; c += kThreads * 4) {
#pragma unroll
      for (int j = 0; j < 4; ++j) xs[t * cols + c + j] = (xs[t * cols + c + j] * r) * bf16_to_f32(in.norm_gain[c + j]);
    }
  }
  __syncthreads();
}

// A row segment of 32 * kU uint4 (8 bf16 each) per warp, one load per lane and slot.
template <int kU>
__device__ __forceinline__ void load_seg(const uint16_t* wrow, int seg, int n8, uint4 (&wv)[kU]) {
  const int lane = threadIdx.x & 31;
  const uint4* w = reinterpret_cast<const uint4*>(wrow);
#pragma unroll
  for (int u = 0; u < kU; ++u) {
    const int i = seg + lane + 32 * u;
    wv[u] = i < n8 ? ld_stream16(w + i) : make_uint4(0, 0, 0, 0);
  }
}

template <int T, int kU>
__device__ __forceinline__ void fma_seg(const uint4 (&wv)[kU], const float* xs, int cols, int seg, int n8,
                                        float acc[T]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int u = 0; u < kU; ++u) {
    const int i = seg + lane + 32 * u;
    if (i < n8) {
#pragma unroll
      for (int t = 0; t < T; ++t) {
        const float4 a = *reinterpret_cast<const float4*>(xs + t * cols + 8 * i);
        const float4 b = *reinterpret_cast<const float4*>(xs + t * cols + 8 * i + 4);
        float s = acc[t];
        s = fmaf(bf16_lo(wv[u].x), a.x, s);
        s = fmaf(bf16_hi(wv[u].x), a.y, s);
        s = fmaf(bf16_lo(wv[u].y), a.z, s);
        s = fmaf(bf16_hi(wv[u].y), a.w, s);
        s = fmaf(bf16_lo(wv[u].z), b.x, s);
        s = fmaf(bf16_hi(wv[u].z), b.y, s);
        s = fmaf(bf16_lo(wv[u].w), b.z, s);
        s = fmaf(bf16_hi(wv[u].w), b.w, s);
        acc[t] = s;
      }
    }
  }
}

// acc[t] += W[row, :] . xs[t, :] over this lane's share (the caller reduces across the warp). wv holds
// the row's first segment on entry (loaded early, before the input prologue).
template <int T, int kU>
__device__ __forceinline__ void dot_row(const uint16_t* wrow, const float* xs, int cols, float acc[T],
                                        uint4 (&wv)[kU]) {
  const int n8 = cols >> 3;
  for (int seg = 0; seg < n8; seg += 32 * kU) {
    if (seg > 0) load_seg<kU>(wrow, seg, n8, wv);
    fma_seg<T, kU>(wv, xs, cols, seg, n8, acc);
  }
}

// kRP > 0: the router folded in (gemv_bf16_router, T == 1): each lane carries the partial router dot
// products of experts lane + 32 j (j < kRP) over the warp's output rows; see kernels.h.
template <int T, int kU = kUnroll, int kMinBlocks = 1, int kRP = 0>
__global__ void __launch_bounds__(kThreads, kMinBlocks) gemv_kernel(const uint16_t* __restrict__ w, const uint16_t* __restrict__ bias,
                                                        int rows, int cols, GemvInput in, int nT, float* out,
                                                        int out_stride, bool accumulate, RouterFold rf) {
  static_assert(kRP == 0 || T == 1, "the router fold is for one token");
  const TimelineBlock timeline(kTimelineGemv);
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);
  __shared__ float red[kWarps * T];
  const int lane = threadIdx.x & 31, n8 = cols >> 3, stride = gridDim.x * kWarps;
  int row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  uint4 wv[kU];
  if (row < rows) load_seg<kU>(w + static_cast<size_t>(row) * cols, 0, n8, wv);  // in flight during the prologue
  const GainPrefetch gp = prefetch_gain(in, cols);
  // Router fold: this lane's router weights and the MLP norm gain of the warp's row (weights: before the wait).
  float rwv[kRP > 0 ? kRP : 1], rg = 0.0f, racc[kRP > 0 ? kRP : 1], rss = 0.0f;
  auto load_router = [&](int r) {
#pragma unroll
    for (int j = 0; j < kRP; ++j) {
      const int e = lane + 32 * j;
      rwv[j] = e < rf.experts ? bf16_to_f32(rf.wr[static_cast<size_t>(e) * rows + r]) : 0.0f;
    }
    rg = bf16_to_f32(rf.gain[r]);
  };
  if constexpr (kRP > 0) {
#pragma unroll
    for (int j = 0; j < kRP; ++j) racc[j] = 0.0f;
    if (row < rows) load_router(row);
  }
  pdl_wait();
  timeline.waited();
  pdl_allow_dependents();
  stage_input<T>(in, cols, nT, xs, red, gp);
  for (; row < rows; row += stride) {
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; ++t) acc[t] = 0.0f;
    dot_row<T, kU>(w + static_cast<size_t>(row) * cols, xs, cols, acc, wv);
    if (row + stride < rows) load_seg<kU>(w + static_cast<size_t>(row + stride) * cols, 0, n8, wv);
#pragma unroll
    for (int t = 0; t < T; ++t) acc[t] = warp_sum(acc[t]);
    const float b = bias ? bf16_to_f32(bias[row]) : 0.0f;
    float nv = 0.0f;
#pragma unroll
    for (int t = 0; t < T; ++t) {
      if (lane == t && t < nT) {
        float* o = out + static_cast<size_t>(t) * out_stride + row;
        nv = accumulate ? *o + (acc[t] + b) : acc[t] + b;
        *o = nv;
      }
    }
    if constexpr (kRP > 0) {
      nv = __shfl_sync(0xffffffffu, nv, 0);  // the row's new value, as stored
      const float gx = rg * nv;
      rss = fmaf(nv, nv, rss);
#pragma unroll
      for (int j = 0; j < kRP; ++j) racc[j] = fmaf(rwv[j], gx, racc[j]);
      if (row + stride < rows) load_router(row + stride);
    }
  }
  if constexpr (kRP > 0) {
    const int E = rf.experts, warp = threadIdx.x >> 5;
    __shared__ float rred[kWarps * (32 * kRP + 1)];
    __shared__ bool last;
#pragma unroll
    for (int j = 0; j < kRP; ++j) {
      if (lane + 32 * j < E) rred[warp * (E + 1) + lane + 32 * j] = racc[j];
    }
    if (lane == 0) rred[warp * (E + 1) + E] = rss;
    __syncthreads();
    const int nb = static_cast<int>(gridDim.x);
    for (int e = threadIdx.x; e <= E; e += kThreads) {  // partial [E + 1][blocks]
      float s = 0.0f;
      for (int i = 0; i < kWarps; ++i) s += rred[i * (E + 1) + e];
      rf.partial[static_cast<size_t>(e) * nb + blockIdx.x] = s;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(rf.counter, 1) == static_cast<int>(gridDim.x) - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (threadIdx.x == 0) *rf.counter = 0;
    // This block's share of the updated row and of the gain (12 x 256 >= 2880 columns), in flight while
    // the partials are summed.
    constexpr int kRowIn = 12;
    float xv[kRowIn];
    uint16_t gv[kRowIn];
#pragma unroll
    for (int i = 0; i < kRowIn; ++i) {
      const int c = threadIdx.x + i * kThreads;
      xv[i] = c < rows ? __ldcg(out + c) : 0.0f;
      gv[i] = c < rows ? rf.gain[c] : 0;
    }
    // The blocks' partials in a fixed order: warp i takes e = i, i + 8, ...; lane l adds blocks l, l + 32, ...
    // in turn (12 loads in flight), then the lanes' sums in warp_sum's butterfly order.
    float* lg = xs + rows;  // [E + 1] after the normalized row (the launcher sizes xs for both)
    for (int e = warp; e <= E; e += kWarps) {
      const float* pe = rf.partial + static_cast<size_t>(e) * nb;
      constexpr int kIn = 12;
      float v[kIn];
#pragma unroll
      for (int i = 0; i < kIn; ++i) v[i] = lane + 32 * i < nb ? __ldcg(pe + lane + 32 * i) : 0.0f;
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < kIn; ++i) s += v[i];
      for (int i = lane + 32 * kIn; i < nb; i += 32) s += __ldcg(pe + i);
      s = warp_sum(s);
      if (lane == 0) lg[e] = s;
    }
    __syncthreads();
    const float r = 1.0f / sqrtf(lg[E] / static_cast<float>(rows) + rf.eps);
#pragma unroll
    for (int i = 0; i < kRowIn; ++i) {
      const int c = threadIdx.x + i * kThreads;
      if (c < rows) xs[c] = (xv[i] * r) * bf16_to_f32(gv[i]);
    }
    for (int c = threadIdx.x + kRowIn * kThreads; c < rows; c += kThreads) {
      xs[c] = (__ldcg(out + c) * r) * bf16_to_f32(rf.gain[c]);
    }
    for (int e = threadIdx.x; e < E; e += kThreads) {
      const float v = lg[e] * r + (rf.br != nullptr ? bf16_to_f32(rf.br[e]) : 0.0f);
      lg[e] = v;
      if (rf.logits != nullptr) rf.logits[e] = v;
    }
    __syncthreads();
    const int p = x16_store_row_block(xs, rows, 0, rows, rf.xn16, rf.xn, red, [] { __syncthreads(); });
    if (threadIdx.x == 0) *rf.xn_inv = ldexpf(1.0f, -p);
    if (warp == 0) {
      float v[kRP];
#pragma unroll
      for (int j = 0; j < kRP; ++j) v[j] = lane + 32 * j < E ? lg[lane + 32 * j] : -INFINITY;
      warp_topk_softmax<kRP>(v, E, rf.k, rf.idx, rf.weight);
    }
  }
}

// One warp per (head, pair i): rows i and i + 32 of the head, rotated together.
template <int T, int kU = kUnroll, int kMinBlocks = 1>
__global__ void __launch_bounds__(kThreads, kMinBlocks) qkv_rope_kernel(QkvRopeArgs a, GemvInput in, int nT) {
  const TimelineBlock timeline(kTimelineQkv);
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);
  __shared__ float red[kWarps * T];
  const int lane = threadIdx.x & 31, n8 = a.cols >> 3;
  const int heads = a.q_heads + 2 * a.kv_heads;
  auto row_ptr = [&](int task, int second) {
    const int hh = task >> 5, r = (task & 31) + 32 * second;
    if (hh < a.q_heads) return a.wq + static_cast<size_t>(hh * 64 + r) * a.cols;
    if (hh < a.q_heads + a.kv_heads) return a.wk + static_cast<size_t>((hh - a.q_heads) * 64 + r) * a.cols;
    return a.wv + static_cast<size_t>((hh - a.q_heads - a.kv_heads) * 64 + r) * a.cols;
  };
  int task = blockIdx.x * kWarps + (threadIdx.x >> 5);
  uint4 wv[kU];
  if (task < heads * 32) load_seg<kU>(row_ptr(task, 0), 0, n8, wv);  // in flight during the prologue
  const GainPrefetch gp = prefetch_gain(in, a.cols);
  pdl_allow_dependents();  // v21h: attention's blocks start while qkv waits (their pre-wait loads are K / V tiles)
  pdl_wait();
  timeline.waited();
  stage_input<T>(in, a.cols, nT, xs, red, gp);
  for (; task < heads * 32; task += gridDim.x * kWarps) {
    const int hh = task >> 5, i = task & 31;
    const uint16_t* w;
    const uint16_t* b;
    int local;
    if (hh < a.q_heads) {
      w = a.wq, b = a.bq, local = hh;
    } else if (hh < a.q_heads + a.kv_heads) {
      w = a.wk, b = a.bk, local = hh - a.q_heads;
    } else {
      w = a.wv, b = a.bv, local = hh - a.q_heads - a.kv_heads;
    }
    const int r1 = local * 64 + i, r2 = r1 + 32;
    float acc1[T], acc2[T];
#pragma unroll
    for (int t = 0; t < T; ++t) acc1[t] = acc2[t] = 0.0f;
    dot_row<T, kU>(w + static_cast<size_t>(r1) * a.cols, xs, a.cols, acc1, wv);
    load_seg<kU>(w + static_cast<size_t>(r2) * a.cols, 0, n8, wv);
    dot_row<T, kU>(w + static_cast<size_t>(r2) * a.cols, xs, a.cols, acc2, wv);
    if (task + gridDim.x * kWarps < heads * 32) load_seg<kU>(row_ptr(task + gridDim.x * kWarps, 0), 0, n8, wv);
#pragma unroll
    for (int t = 0; t < T; ++t) {
      acc1[t] = warp_sum(acc1[t]);
      acc2[t] = warp_sum(acc2[t]);
    }
    const float b1 = b ? bf16_to_f32(b[r1]) : 0.0f, b2 = b ? bf16_to_f32(b[r2]) : 0.0f;
#pragma unroll
    for (int t = 0; t < T; ++t) {
      if (lane != t || t >= nT) continue;
      float x1 = acc1[t] + b1, x2 = acc2[t] + b2;
      const int p = a.pos[t];
      if (hh < a.q_heads + a.kv_heads) {
        const float phi = static_cast<float>(p) * a.inv_freq[i];
        float s, c;
        sincosf(phi, &s, &c);
        c *= a.concentration;
        s *= a.concentration;
        const float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
        x1 = y1, x2 = y2;
      }
      if (hh < a.q_heads) {
        float* q = a.q_out + static_cast<size_t>(t) * a.q_heads * 64;
        q[r1] = x1;
        q[r2] = x2;
      } else {
        const size_t base = (kv_cache_row(a.slot[t], p, a.capacity, a.pages) * a.kv_heads + local) * 64;
        float* cache = hh < a.q_heads + a.kv_heads ? a.k_cache : a.v_cache;
        cache[base + i] = x1;
        cache[base + i + 32] = x2;
      }
    }
  }
}

int launch_gemv(const uint16_t* w, const uint16_t* bias, int rows, int cols, const GemvInput& in, int nT,
                float* out, int out_stride, bool accumulate, cudaStream_t stream) {
  const int blocks = std::min((rows + kWarps - 1) / kWarps, sm_count() * 8);
  const int T = nT <= 1 ? 1 : nT <= 2 ? 2 : 4;
  const size_t smem = static_cast<size_t>(T) * cols * sizeof(float);
  switch (T) {
    case 1:
      // Shape 1 only where its grid fits one wave at 3 blocks per SM (it lost 4% on the unembedding).
      if (g_gemv_variant == 1 && blocks <= 3 * sm_count()) {
        allow_smem(gemv_kernel<1, kUnrollSmall, 3>, smem);
        launch_pdl(gemv_kernel<1, kUnrollSmall, 3>, blocks, kThreads, smem, stream, w, bias, rows, cols, in, nT, out,
                   out_stride, accumulate, RouterFold{});
      } else {
        allow_smem(gemv_kernel<1>, smem);
        launch_pdl(gemv_kernel<1>, blocks, kThreads, smem, stream, w, bias, rows, cols, in, nT, out, out_stride,
                   accumulate, RouterFold{});
      }
      break;
    case 2:
      allow_smem(gemv_kernel<2>, smem);
      launch_pdl(gemv_kernel<2>, blocks, kThreads, smem, stream, w, bias, rows, cols, in, nT, out, out_stride,
                 accumulate, RouterFold{});
      break;
    default:
      allow_smem(gemv_kernel<4>, smem);
      launch_pdl(gemv_kernel<4>, blocks, kThreads, smem, stream, w, bias, rows, cols, in, nT, out, out_stride,
                 accumulate, RouterFold{});
      break;
  }
  return static_cast<int>(cudaGetLastError());
}

// The input rows of tokens [t0, t0 + n).
GemvInput offset_input(GemvInput in, int t0) {
  in.x += static_cast<size_t>(t0) * in.x_stride;
  return in;
}

}  // namespace

GPTOSS_CUDA_TIMELINE_SETTER(set_timeline_gemv)

void set_gemv_variant(int v) { g_gemv_variant = v == 1 ? 1 : 0; }

int gemv_bf16(const uint16_t* w, const uint16_t* bias, int rows, int cols, const GemvInput& in, int T, float* out,
              int out_stride, bool accumulate, cudaStream_t stream) {
  for (int t0 = 0; t0 < T; t0 += kMaxGemvTokens) {
    const int n = std::min(kMaxGemvTokens, T - t0);
    const int err = launch_gemv(w, bias, rows, cols, offset_input(in, t0), n, out + static_cast<size_t>(t0) * out_stride,
                                out_stride, accumulate, stream);
    if (err != 0) return err;
  }
  return 0;
}

size_t router_fold_partials(int rows, int experts) {
  return static_cast<size_t>((rows + kWarps - 1) / kWarps) * (experts + 1);
}

int gemv_bf16_router(const uint16_t* w, const uint16_t* bias, int rows, int cols, const GemvInput& in, float* out,
                     const RouterFold& rf, cudaStream_t stream) {
  if (rf.experts < 1 || rf.experts > 256 || rf.k < 1 || rf.k > 8 || rf.k > rf.experts || in.norm_gain != nullptr) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  const int blocks = std::min((rows + kWarps - 1) / kWarps, sm_count() * 8);
  const size_t smem = static_cast<size_t>(std::max(cols, rows + rf.experts + 1)) * sizeof(float);
  auto go = [&](auto kernel) {
    allow_smem(kernel, smem);
    launch_pdl(kernel, blocks, kThreads, smem, stream, w, bias, rows, cols, in, 1, out, rows, true, rf);
  };
  // More than 32 experts: 8 router accumulators per lane do not fit shape 1's 80 registers (spills).
  if (rf.experts > 32) {
    go(gemv_kernel<1, kUnroll, 1, 8>);
  } else if (g_gemv_variant == 1 && blocks <= 3 * sm_count()) {
    go(gemv_kernel<1, kUnrollSmall, 3, 1>);
  } else {
    go(gemv_kernel<1, kUnroll, 1, 1>);
  }
  return static_cast<int>(cudaGetLastError());
}

int qkv_rope_store(const QkvRopeArgs& args, const GemvInput& in, int T, cudaStream_t stream) {
  const int tasks = (args.q_heads + 2 * args.kv_heads) * 32;
  const int blocks = std::min((tasks + kWarps - 1) / kWarps, sm_count() * 8);
  for (int t0 = 0; t0 < T; t0 += kMaxGemvTokens) {
    const int n = std::min(kMaxGemvTokens, T - t0);
    QkvRopeArgs a = args;
    a.pos += t0;
    a.slot += t0;
    a.q_out += static_cast<size_t>(t0) * args.q_heads * 64;
    const GemvInput x = offset_input(in, t0);
    const int Tk = n <= 1 ? 1 : n <= 2 ? 2 : 4;
    const size_t smem = static_cast<size_t>(Tk) * args.cols * sizeof(float);
    switch (Tk) {
      case 1:
        if (g_gemv_variant == 1 && blocks <= 3 * sm_count()) {
          allow_smem(qkv_rope_kernel<1, kUnrollSmall, 3>, smem);
          launch_pdl(qkv_rope_kernel<1, kUnrollSmall, 3>, blocks, kThreads, smem, stream, a, x, n);
        } else {
          allow_smem(qkv_rope_kernel<1>, smem);
          launch_pdl(qkv_rope_kernel<1>, blocks, kThreads, smem, stream, a, x, n);
        }
        break;
      case 2:
        allow_smem(qkv_rope_kernel<2>, smem);
        launch_pdl(qkv_rope_kernel<2>, blocks, kThreads, smem, stream, a, x, n);
        break;
      default:
        allow_smem(qkv_rope_kernel<4>, smem);
        launch_pdl(qkv_rope_kernel<4>, blocks, kThreads, smem, stream, a, x, n);
        break;
    }
    const int err = static_cast<int>(cudaGetLastError());
    if (err != 0) return err;
  }
  return 0;
}

}  // namespace gptoss::cuda
