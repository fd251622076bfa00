// Small kernels around the big GEMVs: the fused MoE router (RMSNorm + logits + top-k + softmax), the
// embedding lookup, the greedy argmax over the vocabulary, and deterministic fills for benches/tests.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/x16.cuh"

namespace gptoss::cuda {
namespace {

constexpr int kRouterWarps = 8;  // expert rows per block
constexpr int kMaxExperts = 256;

constexpr int kPer = kMaxExperts / 32;

// acc + the dot product of 8 bf16 weights (one 16-byte load) with x[0..7], in index order.
__device__ __forceinline__ float dot8_bf16(const uint4& v, const float* x, float acc) {
  acc = fmaf(bf16_lo(v.x), x[0], acc);
  acc = fmaf(bf16_hi(v.x), x[1], acc);
  acc = fmaf(bf16_lo(v.y), x[2], acc);
  acc = fmaf(bf16_hi(v.y), x[3], acc);
  acc = fmaf(bf16_lo(v.z), x[4], acc);
  acc = fmaf(bf16_hi(v.z), x[5], acc);
  acc = fmaf(bf16_lo(v.w), x[6], acc);
  return fmaf(bf16_hi(v.w), x[7], acc);
}

// Top k and softmax of token t's logits lg (global: read through L2, written by other blocks), by one warp.
template <bool kGlobal>
__device__ __forceinline__ void topk_softmax(const float* lg, int experts, int k, int t, int lane, int32_t* idx,
                                             float* weight) {
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int ee = lane + 32 * j;
    v[j] = ee < experts ? (kGlobal ? __ldcg(lg + ee) : lg[ee]) : -INFINITY;
  }
  warp_topk_softmax<kPer>(v, experts, k, idx + t * k, weight + t * k);
}

// The router's end, for both forms: `xs` holds the normalized x of token t; this block writes columns
// [c0, c1) of its x16 row (and of xn), and, where `select`, xn_inv and the top k from the logits lg.
// `between` runs before the block's exchange of the row maximum (the cluster form's barrier, after
// which block 0 holds all logits).
template <bool kGlobal, typename F>
__device__ __forceinline__ void router_tail(const float* xs, int cols, int c0, int c1, int experts, int k, int t,
                                            float* red, float* xn, uint32_t* xn16, float* xn_inv, int32_t* idx,
                                            float* weight, const float* lg, bool select, F&& between) {
  const int p = x16_store_row_block(xs, cols, c0, c1, xn16 + static_cast<size_t>(t) * x16_row_words(cols),
                                    xn != nullptr ? xn + static_cast<size_t>(t) * cols : nullptr, red, between);
  if (!select) return;
  if (threadIdx.x == 0) xn_inv[t] = ldexpf(1.0f, -p);
  if ((threadIdx.x >> 5) == 0) topk_softmax<kGlobal>(lg, experts, k, t, threadIdx.x & 31, idx, weight);
}

// 1 / sqrt(mean of squares + eps) over a block of kWarps warps, each thread holding a partial sum of
// squares ss (red: kWarps floats of shared memory; the warps' sums are added in warp order).
template <int kWarps>
__device__ __forceinline__ float block_rms_inv(float ss, float* red, int cols, float eps) {
  ss = warp_sum(ss);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < kWarps; ++i) total += red[i];
  return 1.0f / sqrtf(total / static_cast<float>(cols) + eps);
}

// The parts router kernels 2 (router_kernel) and 4 (router_cluster_kernel) share, as the same instructions
// in the same order (variant 4's bits are variant 2's: lab check `router r4 == r2 bits`). A block has
// kRouterWarps warps; warp w computes expert e's logit.
constexpr int kRowLoads = 12;  // 12 x 32 x 8 = 3072 >= 2880 columns: a whole gpt-oss router row per warp
constexpr int kXLoads = 3;     // 3 x 256 x 4 = 3072 >= 2880 columns; wider rows take the loops below

// Before griddepcontrol.wait (neither depends on x): expert e's router row in flight (kRowLoads 16-byte
// loads per lane; router_dot reads the rest of longer rows) and the RMSNorm gain of this thread's columns
// (4 per slot).
__device__ __forceinline__ void router_prologue(const uint16_t* wr, const uint16_t* gain, int e, int experts, int cols,
                                                int lane, uint4 (&wrow)[kRowLoads], uint2 (&gv)[kXLoads]) {
  const uint4* w = reinterpret_cast<const uint4*>(wr + static_cast<size_t>(e) * cols);
#pragma unroll
  for (int u = 0; u < kRowLoads; ++u) {
    const int i = lane + 32 * u;
    wrow[u] = e < experts && i < cols / 8 ? __ldg(w + i) : make_uint4(0, 0, 0, 0);
  }
  const int per = blockDim.x * 4;
#pragma unroll
  for (int i = 0; i < kXLoads; ++i) {
    const int c = threadIdx.x * 4 + i * per;
    gv[i] = c < cols ? __ldg(reinterpret_cast<const uint2*>(gain + c)) : make_uint2(0, 0);
  }
}

// After the wait: xs[0, cols) = RMSNorm(xr) * gain, by the whole block (red: kRouterWarps floats of shared
// memory; xs is complete only after the caller's next block barrier). Returns the largest |xs[c]| over the
// columns this thread wrote (variant 4's x16 scale; kernel 2 ignores it and the compiler drops it).
__device__ __forceinline__ float router_normalize(const float* xr, const uint16_t* gain, const uint2 (&gv)[kXLoads],
                                                  int cols, float eps, float* xs, float* red) {
  const int per = blockDim.x * 4;
  float ss = 0.0f;
  float4 xv[kXLoads];
#pragma unroll
  for (int i = 0; i < kXLoads; ++i) {
    const int c = threadIdx.x * 4 + i * per;
    xv[i] = c < cols ? *reinterpret_cast<const float4*>(xr + c) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
#pragma unroll
  for (int i = 0; i < kXLoads; ++i) ss += xv[i].x * xv[i].x + xv[i].y * xv[i].y + xv[i].z * xv[i].z + xv[i].w * xv[i].w;
  for (int c = threadIdx.x * 4 + kXLoads * per; c < cols; c += per) {
    const float4 v = *reinterpret_cast<const float4*>(xr + c);
    *reinterpret_cast<float4*>(xs + c) = v;
    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  const float r = block_rms_inv<kRouterWarps>(ss, red, cols, eps);
  float mx = 0.0f;
#pragma unroll
  for (int i = 0; i < kXLoads; ++i) {
    const int c = threadIdx.x * 4 + i * per;
    if (c < cols) {
      float4 v;
      v.x = (xv[i].x * r) * bf16_lo(gv[i].x);
      v.y = (xv[i].y * r) * bf16_hi(gv[i].x);
      v.z = (xv[i].z * r) * bf16_lo(gv[i].y);
      v.w = (xv[i].w * r) * bf16_hi(gv[i].y);
      *reinterpret_cast<float4*>(xs + c) = v;
      mx = fmaxf(mx, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
    }
  }
  for (int c = threadIdx.x + kXLoads * per; c < cols; c += blockDim.x) {
    xs[c] = (xs[c] * r) * bf16_to_f32(gain[c]);
    mx = fmaxf(mx, fabsf(xs[c]));
  }
  return mx;
}

// Expert e's logit before the bias, in every lane: its router row (wrow from router_prologue, then the rest
// of a longer row) . xs, each lane's 8-column dots in column order, then the warp sum.
__device__ __forceinline__ float router_dot(const uint4 (&wrow)[kRowLoads], const uint16_t* wr, int e, int cols,
                                            const float* xs, int lane) {
  const uint4* w = reinterpret_cast<const uint4*>(wr + static_cast<size_t>(e) * cols);
  float acc = 0.0f;
  auto dot8 = [&](const uint4& v, int i) { acc = dot8_bf16(v, xs + 8 * i, acc); };
#pragma unroll
  for (int u = 0; u < kRowLoads; ++u) {
    if (lane + 32 * u < cols / 8) dot8(wrow[u], lane + 32 * u);
  }
#pragma unroll 4
  for (int i = lane + 32 * kRowLoads; i < cols / 8; i += 32) dot8(__ldg(w + i), i);
  return warp_sum(acc);
}

// grid (ceil(E / 8), T): every block normalizes x[t] and computes 8 router logits; the last block of a
// token to finish (a counter per token, reset by that block) selects the top k, takes the softmax and
// writes the normalized x in x16 form for the expert kernels.
//
// kCluster (v10, router variant 2): the blocks of a token form one thread-block cluster; each block
// writes its logits into block 0's shared memory (distributed shared memory) instead of global memory
// plus a fence and a counter, block 0 selects the top k after the cluster barrier, and every block
// writes its share of the x16 row (each has the whole normalized x).
template <bool kCluster>
__global__ void __launch_bounds__(kRouterWarps * 32)
    router_kernel(const float* __restrict__ x, int x_stride, const uint16_t* __restrict__ gain, float eps,
                  const uint16_t* __restrict__ wr, const uint16_t* __restrict__ br, int experts, int cols, int k,
                  float* __restrict__ xn, uint32_t* __restrict__ xn16, float* __restrict__ xn_inv,
                  float* __restrict__ logits, int32_t* __restrict__ counters, int32_t* __restrict__ idx,
                  float* __restrict__ weight) {
  extern __shared__ float xs[];  // [cols]
  __shared__ float red[kRouterWarps];
  __shared__ bool last;
  __shared__ float cl_logits[kCluster ? kMaxExperts : 1];
  const TimelineBlock timeline(kTimelineRouter);
  const int t = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int e = blockIdx.x * kRouterWarps + warp;
  const float* xr = x + static_cast<size_t>(t) * x_stride;
  // This warp's router row and the RMSNorm gain, in flight before anything else: they do not depend on x.
  uint4 wrow[kRowLoads];
  uint2 gv[kXLoads];
  router_prologue(wr, gain, e, experts, cols, lane, wrow, gv);
  pdl_wait();
  timeline.waited();
  pdl_allow_dependents();
  if constexpr (kCluster) asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  router_normalize(xr, gain, gv, cols, eps, xs, red);
  __syncthreads();
  // Every block of the cluster has started (its shared memory exists) once this returns.
  if constexpr (kCluster) asm volatile("barrier.cluster.wait.aligned;" ::: "memory");
  if (e < experts) {
    const float acc = router_dot(wrow, wr, e, cols, xs, lane);
    if (lane == 0) {
      const float lv = acc + (br ? bf16_to_f32(br[e]) : 0.0f);
      logits[static_cast<size_t>(t) * experts + e] = lv;
      if constexpr (kCluster) cooperative_groups::this_cluster().map_shared_rank(cl_logits, 0)[e] = lv;
    }
  }
  if constexpr (kCluster) {
    // Every block writes its share of the x16 row (each has the whole normalized x); block 0 selects.
    const auto cluster = cooperative_groups::this_cluster();
    const int rank = static_cast<int>(cluster.block_rank()), n = static_cast<int>(cluster.num_blocks());
    // The barrier: the logits have landed in block 0 (and every block has passed its last use of red).
    router_tail<false>(xs, cols, rank * cols / n, (rank + 1) * cols / n, experts, k, t, red, xn, xn16, xn_inv, idx,
                       weight, cl_logits, rank == 0, [&] { cluster.sync(); });
    return;
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&counters[t], 1) == static_cast<int>(gridDim.x) - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x == 0) counters[t] = 0;
  router_tail<true>(xs, cols, 0, cols, experts, k, t, red, xn, xn16, xn_inv, idx, weight,
                    logits + static_cast<size_t>(t) * experts, true, [] { __syncthreads(); });
}

// v17 (router variant 4): kernel 2's blocks and sums with a shorter chain after griddepcontrol.wait. Block 0's
// mbarrier (initialized, and armed for the other blocks' logits, before the wait) collects the logits: the
// other blocks send theirs with st.async ... complete_tx, block 0's warps store theirs and arrive (st.async
// within a one-block cluster is an invalid shared write to compute-sanitizer), so only block 0 waits for
// them (no second cluster barrier); the cluster's arrive comes before the wait too; each thread takes the
// largest |normalized x| of its own columns while normalizing, so p needs no second pass over xs and no
// extra block barrier; and the top k come from one pass of warp 0 (each lane, one expert, counts the logits
// ranked above its own: E <= 32) instead of k rounds of shuffles. Same sums in the same order as kernel 2:
// identical logits, ids, weights and x16 row (lab check `router r4 == r2 bits`).
__global__ void __launch_bounds__(kRouterWarps * 32)
    router_cluster_kernel(const float* __restrict__ x, int x_stride, const uint16_t* __restrict__ gain, float eps,
                          const uint16_t* __restrict__ wr, const uint16_t* __restrict__ br, int experts, int cols,
                          int k, float* __restrict__ xn, uint32_t* __restrict__ xn16, float* __restrict__ xn_inv,
                          float* __restrict__ logits, int32_t* __restrict__ idx, float* __restrict__ weight) {
  extern __shared__ float xs[];  // [cols]
  __shared__ float red[kRouterWarps], redm[kRouterWarps];
  __shared__ float cl_logits[32];
  __shared__ float sel_w[8];
  __shared__ int sel_e[8];
  __shared__ __align__(8) uint64_t bar;
  const TimelineBlock timeline(kTimelineRouter);
  const int t = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rank = static_cast<int>(blockIdx.x), nb = static_cast<int>(gridDim.x);  // cluster (nb, 1, 1)
  const int e = rank * kRouterWarps + warp;
  const float* xr = x + static_cast<size_t>(t) * x_stride;
  if (rank == 0 && threadIdx.x == 0) {  // arrivals: this one (with the remote bytes) and block 0's rows' warps
    const int local = min(experts, kRouterWarps);
    mbar_init(&bar, 1 + local);
    mbar_arrive_expect_tx(&bar, (experts - local) * 4);
  }
  uint4 wrow[kRowLoads];
  uint2 gv[kXLoads];
  router_prologue(wr, gain, e, experts, cols, lane, wrow, gv);
  const float bias = br != nullptr && e < experts ? bf16_to_f32(br[e]) : 0.0f;
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  pdl_wait();
  timeline.waited();
  pdl_allow_dependents();
  float mx = warp_max(router_normalize(xr, gain, gv, cols, eps, xs, red));
  if (lane == 0) redm[warp] = mx;
  __syncthreads();
  // Block 0's mbarrier is initialized (every block arrived before its wait).
  asm volatile("barrier.cluster.wait.aligned;" ::: "memory");
  if (e < experts) {
    const float acc = router_dot(wrow, wr, e, cols, xs, lane);
    if (lane == 0) {
      const float lv = acc + bias;
      logits[static_cast<size_t>(t) * experts + e] = lv;
      if (rank == 0) {
        cl_logits[e] = lv;
        mbar_arrive(&bar);
      } else {
        uint32_t dst, rbar;
        asm("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(dst) : "r"(smem_addr(&cl_logits[e])));
        asm("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(rbar) : "r"(smem_addr(&bar)));
        asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];" ::"r"(dst),
                     "r"(__float_as_uint(lv)), "r"(rbar)
                     : "memory");
      }
    }
  }
  // This block's share of the x16 row (and of xn), p from every warp's maximum.
  for (int i = 0; i < kRouterWarps; ++i) mx = fmaxf(mx, redm[i]);
  const int p = x16_exponent(mx);
  const float up = ldexpf(1.0f, p);
  uint32_t* row16 = xn16 + static_cast<size_t>(t) * x16_row_words(cols);
  const int c0 = rank * cols / nb, c1 = (rank + 1) * cols / nb;
  for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
    x16_store(row16, c, xs[c] * up);
    if (xn != nullptr) xn[static_cast<size_t>(t) * cols + c] = xs[c];
  }
  if (rank != 0 || warp != 0) return;
  if (lane == 0) xn_inv[t] = ldexpf(1.0f, -p);
  mbar_wait(&bar, 0);
  // Lane j: expert j's place among the logits (descending, ties to the lower index), the largest logit.
  const float v = lane < experts ? cl_logits[lane] : -INFINITY;
  float top = -INFINITY;
  int place = 0;
#pragma unroll 8
  for (int j = 0; j < experts; ++j) {
    const float o = cl_logits[j];
    top = fmaxf(top, o);
    place += o > v || (o == v && j < lane);
  }
  if (lane < experts && place < k) sel_w[place] = expf(v - top), sel_e[place] = lane;
  __syncwarp();
  if (lane < k) {
    float sum = 0.0f;
    for (int q = 0; q < k; ++q) sum += sel_w[q];
    idx[t * k + lane] = sel_e[lane];
    weight[t * k + lane] = sel_w[lane] / sum;
  }
}

// The router in one block of 1024 threads per token (v10): the whole router matrix (E x cols bf16,
// 184 KB for gpt-oss-20b) is copied into shared memory with cp.async before griddepcontrol.wait, so
// it streams in while the previous kernel runs (o_proj leaves SMs free); after the wait the chain is
// x -> RMSNorm -> logits -> top-k inside one block, with no cross-block counter, fence or second
// pass over global memory. Each logit is summed in the same order as router_kernel's.
constexpr int kBlockThreads = 1024;

__global__ void __launch_bounds__(kBlockThreads)
    router_block_kernel(const float* __restrict__ x, int x_stride, const uint16_t* __restrict__ gain, float eps,
                        const uint16_t* __restrict__ wr, const uint16_t* __restrict__ br, int experts, int cols, int k,
                        float* __restrict__ xn, uint32_t* __restrict__ xn16, float* __restrict__ xn_inv,
                        float* __restrict__ logits, int32_t* __restrict__ idx, float* __restrict__ weight) {
  extern __shared__ __align__(16) uint4 wsm[];  // [experts * cols / 8] then xs [cols] f32, ls [experts] f32
  constexpr int kWarps = kBlockThreads / 32;
  __shared__ float red[kWarps], redm[kWarps];
  const int t = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row_vecs = cols / 8, nvec = experts * row_vecs;
  float* xs = reinterpret_cast<float*>(wsm + nvec);
  float* ls = xs + cols;
  {
    const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(wsm));
    const uint4* src = reinterpret_cast<const uint4*>(wr);
    for (int i = threadIdx.x; i < nvec; i += kBlockThreads) {
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(base + 16u * i), "l"(src + i) : "memory");
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
  }
  const int c0 = threadIdx.x * 4;  // this thread's 4 columns (more in the loops for cols > 4096)
  const uint2 gv = c0 < cols ? __ldg(reinterpret_cast<const uint2*>(gain + c0)) : make_uint2(0, 0);
  const float bias = br != nullptr && threadIdx.x < experts ? bf16_to_f32(br[threadIdx.x]) : 0.0f;
  pdl_wait();
  pdl_allow_dependents();
  const float* xr = x + static_cast<size_t>(t) * x_stride;
  const float4 xv = c0 < cols ? *reinterpret_cast<const float4*>(xr + c0) : make_float4(0.f, 0.f, 0.f, 0.f);
  float ss = xv.x * xv.x + xv.y * xv.y + xv.z * xv.z + xv.w * xv.w;
  for (int c = c0 + 4 * kBlockThreads; c < cols; c += 4 * kBlockThreads) {
    const float4 v = *reinterpret_cast<const float4*>(xr + c);
    *reinterpret_cast<float4*>(xs + c) = v;
    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  const float r = block_rms_inv<kWarps>(ss, red, cols, eps);
  float mx = 0.0f;
  if (c0 < cols) {
    float4 v;
    v.x = (xv.x * r) * bf16_lo(gv.x);
    v.y = (xv.y * r) * bf16_hi(gv.x);
    v.z = (xv.z * r) * bf16_lo(gv.y);
    v.w = (xv.w * r) * bf16_hi(gv.y);
    *reinterpret_cast<float4*>(xs + c0) = v;
    mx = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
  }
  for (int c = c0 + 4 * kBlockThreads; c < cols; c += 4 * kBlockThreads) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      xs[c + q] = (xs[c + q] * r) * bf16_to_f32(gain[c + q]);
      mx = fmaxf(mx, fabsf(xs[c + q]));
    }
  }
  mx = warp_max(mx);
  if (lane == 0) redm[warp] = mx;
  asm volatile("cp.async.wait_all;" ::: "memory");
  __syncthreads();
  for (int i = 0; i < kWarps; ++i) mx = fmaxf(mx, redm[i]);
  // The normalized x in x16 form for the expert kernels (and as f32 when asked).
  const int p = x16_exponent(mx);
  const float up = ldexpf(1.0f, p);
  uint32_t* row16 = xn16 + static_cast<size_t>(t) * x16_row_words(cols);
  for (int c = threadIdx.x; c < cols; c += kBlockThreads) {
    x16_store(row16, c, xs[c] * up);
    if (xn != nullptr) xn[static_cast<size_t>(t) * cols + c] = xs[c];
  }
  if (threadIdx.x == 0) xn_inv[t] = ldexpf(1.0f, -p);
  for (int e = warp; e < experts; e += kWarps) {
    const uint4* w = wsm + static_cast<size_t>(e) * row_vecs;
    float acc = 0.0f;
    for (int i = lane; i < row_vecs; i += 32) {
      acc = dot8_bf16(w[i], xs + 8 * i, acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) ls[e] = acc;
  }
  __syncthreads();
  if (threadIdx.x < experts) {
    ls[threadIdx.x] += bias;  // as router_kernel: the bias added to the warp's sum
    if (logits != nullptr) logits[static_cast<size_t>(t) * experts + threadIdx.x] = ls[threadIdx.x];
  }
  __syncthreads();
  if (warp == 0) topk_softmax<false>(ls, experts, k, t, lane, idx, weight);
}

// Shared memory of router_block_kernel, or 0 where it does not apply (the matrix does not fit).
size_t router_block_smem(int experts, int cols) {
  const size_t bytes = static_cast<size_t>(experts) * cols * 2 + static_cast<size_t>(cols) * 4 + experts * 4;
  return experts <= kBlockThreads && bytes <= 200 * 1024 ? bytes : 0;
}

int g_router_variant = kRouterDefault;

__global__ void embed_kernel(const uint16_t* __restrict__ table, int cols, const int32_t* __restrict__ tokens,
                             float* __restrict__ out) {
  const int t = blockIdx.x;
  const uint16_t* row = table + static_cast<size_t>(tokens[t]) * cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[static_cast<size_t>(t) * cols + c] = bf16_to_f32(row[c]);
}

// The block's best (value, index) from every thread's (ties to the lower index; NaN never wins), for
// thread 0: its index returned (0x7fffffff when no element compared, e.g. all NaN), its value in *value;
// bv / bi: 32 entries of shared memory.
__device__ __forceinline__ int argmax_block(float best, int best_i, float* bv, int* bi, float* value) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (ob > best || (ob == best && oi < best_i)) best = ob, best_i = oi;
  }
  if (lane == 0) bv[warp] = best, bi[warp] = best_i;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) {
      if (bv[w] > best || (bv[w] == best && bi[w] < best_i)) best = bv[w], best_i = bi[w];
    }
  }
  *value = best;
  return best_i;
}

// One block per row: the row's first 16-byte aligned element on read as float4 with kLoads loads in
// flight per thread, the 0-3 elements before it and the 0-3 after the last whole float4 one by one (v13:
// 10.5 us for the 20b's 201088 logits on an H100; the scalar loop it replaced kept about one load in
// flight per thread: 46 us, NOTES v13).
constexpr int kArgmaxSlice = 4096;  // columns per block of the split argmax (a multiple of 4)
constexpr int kArgmaxSplitThreads = 256;
__host__ __device__ __forceinline__ int argmax_blocks(int n) { return (n + kArgmaxSlice - 1) / kArgmaxSlice; }

// grid (S, T): block s of row t takes columns [s * kArgmaxSlice, ...) (S = 1: the whole row); with S > 1 each
// block's (max, index) goes to part[t * S + s] and the row's last block to finish reduces them in order.
__global__ void argmax_kernel(const float* __restrict__ logits, int n, int32_t* __restrict__ out, uint64_t* part,
                              uint32_t* counters) {
  __shared__ float bv[32];
  __shared__ int bi[32];
  __shared__ bool last;
  const int t = blockIdx.y, s = blockIdx.x, S = gridDim.x;
  const TimelineBlock timeline(kTimelineArgmax);
  pdl_wait();
  timeline.waited();
  const int lo = S == 1 ? 0 : s * kArgmaxSlice, len = S == 1 ? n : min(kArgmaxSlice, n - lo);
  const float* row = logits + static_cast<size_t>(t) * n + lo;
  float best = -INFINITY;
  int best_i = 0x7fffffff;
  auto consider = [&](float v, int i) {
    if (v > best || (v == best && i < best_i)) best = v, best_i = i;
  };
  constexpr int kLoads = 8;
  const int head = min(len, static_cast<int>((16 - (reinterpret_cast<uintptr_t>(row) & 15)) & 15) / 4);
  const int tid = static_cast<int>(threadIdx.x);
  if (tid < head) consider(__ldcg(row + tid), lo + tid);
  const float4* r4 = reinterpret_cast<const float4*>(row + head);
  const int n4 = (len - head) / 4, step = static_cast<int>(blockDim.x);
  for (int base = tid; base < n4; base += kLoads * step) {
    float4 v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int i = base + u * step;
      if (i < n4) v[u] = __ldcg(r4 + i);
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int i = base + u * step, e = lo + head + 4 * i;
      if (i < n4) consider(v[u].x, e), consider(v[u].y, e + 1), consider(v[u].z, e + 2), consider(v[u].w, e + 3);
    }
  }
  for (int i = head + 4 * n4 + tid; i < len; i += step) consider(__ldcg(row + i), lo + i);
  const int r = argmax_block(best, best_i, bv, bi, &best);
  if (S == 1) {
    if (threadIdx.x == 0) out[t] = r == 0x7fffffff ? 0 : r;
    return;
  }
  if (threadIdx.x == 0) {
    __stcg(reinterpret_cast<unsigned long long*>(part) + static_cast<size_t>(t) * S + s,
           (static_cast<unsigned long long>(static_cast<uint32_t>(r)) << 32) | __float_as_uint(best));
    __threadfence();
    last = atomicAdd(counters + t, 1u) == static_cast<uint32_t>(S - 1);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // The blocks' maxima in block order (each the first of its slice's largest): the row's first largest.
  float rb = -INFINITY;
  int ri = 0x7fffffff;
  for (int q = tid; q < S; q += step) {
    const unsigned long long p = __ldcg(reinterpret_cast<const unsigned long long*>(part) + static_cast<size_t>(t) * S + q);
    const float pv = __uint_as_float(static_cast<uint32_t>(p));
    const int pi = static_cast<int>(p >> 32);
    if (pv > rb || (pv == rb && pi < ri)) rb = pv, ri = pi;
  }
  const int rr = argmax_block(rb, ri, bv, bi, &rb);
  if (threadIdx.x == 0) out[t] = rr == 0x7fffffff ? 0 : rr, counters[t] = 0;
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void fill_bf16_kernel(uint16_t* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = splitmix64(seed * 0x100000001b3ull + i);
    const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
    const float v = lo + (hi - lo) * u;
    p[i] = static_cast<uint16_t>(__float_as_uint(v) >> 16);  // truncation is fine for random data
  }
}

__global__ void fill_u8_kernel(uint8_t* p, size_t n, uint64_t seed, int lo, int hi) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = splitmix64(seed * 0x100000001b3ull + i);
    p[i] = static_cast<uint8_t>(lo + static_cast<int>((r >> 32) % static_cast<uint64_t>(hi - lo + 1)));
  }
}

__global__ void noop_kernel() {}

bool g_pdl = true;

}  // namespace

bool pdl_enabled() { return g_pdl; }
void set_router_variant(int v) { g_router_variant = v >= 0 && v <= 4 ? v : 0; }
int router_variant() { return g_router_variant; }
void set_pdl(bool on) { g_pdl = on; }

GPTOSS_CUDA_TIMELINE_SETTER(set_timeline_router)

int set_timeline(TimelineRecord* rec, uint32_t* count, uint32_t capacity) {
#ifdef GPTOSS_CUDA_TIMELINE
  const TimelineLog log{rec, count, rec != nullptr ? capacity : 0};
  for (int (*set)(const TimelineLog&) : {set_timeline_attention, set_timeline_gemv, set_timeline_moe,
                                         set_timeline_router}) {
    if (const int e = set(log)) return e;
  }
  return 0;
#else
  (void)rec, (void)count, (void)capacity;
  return static_cast<int>(cudaErrorNotSupported);
#endif
}

int noop_kernel_launch(cudaStream_t stream) {
  noop_kernel<<<1, 32, 0, stream>>>();
  return static_cast<int>(cudaGetLastError());
}

// The largest cluster of router_kernel<true> blocks a launch may form here: 8 (the portable size), or 16 where the
// device allows that non-portable size for it (H100 / H200), so that 128 experts (gpt-oss-120b: 16 blocks of 8
// warps) take the cluster form instead of the counter one. Asked once, for blocks with up to 48 KB of shared memory.
int router_cluster_limit() {
  static const int limit = [] {
    if (cudaFuncSetAttribute(router_kernel<true>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
      cudaGetLastError();
      return 8;
    }
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 16, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(16, 1, 1);
    cfg.blockDim = dim3(kRouterWarps * 32);
    cfg.dynamicSmemBytes = 48 * 1024;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    int n = 0;
    if (cudaOccupancyMaxPotentialClusterSize(&n, router_kernel<true>, &cfg) != cudaSuccess) {
      cudaGetLastError();
      return 8;
    }
    return n >= 16 ? 16 : 8;
  }();
  return limit;
}

int router_topk(const float* x, int x_stride, const uint16_t* gain, float eps, const uint16_t* wr, const uint16_t* br,
                int experts, int cols, int k, int T, float* xn, uint32_t* xn16, float* xn_inv, float* logits,
                int32_t* counters, int32_t* idx, float* weight, cudaStream_t stream) {
  if (T <= 0) return 0;
  if (experts > kMaxExperts || k > 8 || k > experts || cols % 32 != 0 || x_stride % 4 != 0) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  if (const size_t bsmem = router_block_smem(experts, cols); g_router_variant == 1 && bsmem > 0) {
    cudaFuncSetAttribute(router_block_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bsmem));
    launch_pdl(router_block_kernel, dim3(1, T), dim3(kBlockThreads), bsmem, stream, x, x_stride, gain, eps, wr, br,
               experts, cols, k, xn, xn16, xn_inv, logits, idx, weight);
    return static_cast<int>(cudaGetLastError());
  }
  const size_t smem = static_cast<size_t>(cols) * sizeof(float);
  if (smem > 48 * 1024) {
    cudaFuncSetAttribute(router_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  }
  const dim3 grid((experts + kRouterWarps - 1) / kRouterWarps, T);
  if (g_router_variant == 4 && experts <= 32) {
    if (smem > 48 * 1024) {
      cudaFuncSetAttribute(router_cluster_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    }
    launch_pdl_cluster(router_cluster_kernel, grid, dim3(kRouterWarps * 32), dim3(grid.x, 1, 1), smem, stream, x,
                       x_stride, gain, eps, wr, br, experts, cols, k, xn, xn16, xn_inv, logits, idx, weight);
    return static_cast<int>(cudaGetLastError());
  }
  // 3 here: the caller did not fold; 4: more than 32 experts (NOTES v36: 128 experts in a cluster of 16).
  if (g_router_variant >= 2 && (grid.x <= 8 || (smem <= 48 * 1024 && static_cast<int>(grid.x) <= router_cluster_limit()))) {
    if (smem > 48 * 1024) {
      cudaFuncSetAttribute(router_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    }
    launch_pdl_cluster(router_kernel<true>, grid, dim3(kRouterWarps * 32), dim3(grid.x, 1, 1), smem, stream, x, x_stride,
                       gain, eps, wr, br, experts, cols, k, xn, xn16, xn_inv, logits, counters, idx, weight);
    return static_cast<int>(cudaGetLastError());
  }
  launch_pdl(router_kernel<false>, grid, dim3(kRouterWarps * 32), smem, stream, x, x_stride, gain, eps, wr, br, experts,
             cols, k, xn, xn16, xn_inv, logits, counters, idx, weight);
  return static_cast<int>(cudaGetLastError());
}

int embed_bf16(const uint16_t* table, int cols, const int32_t* tokens, int T, float* out, cudaStream_t stream) {
  if (T <= 0) return 0;
  embed_kernel<<<T, 256, 0, stream>>>(table, cols, tokens, out);
  return static_cast<int>(cudaGetLastError());
}

int argmax_rows(const float* logits, int n, int T, int32_t* out, cudaStream_t stream, uint64_t* part,
                uint32_t* counters) {
  if (T <= 0) return 0;
  if (reinterpret_cast<uintptr_t>(logits) % 4 != 0) return static_cast<int>(cudaErrorInvalidValue);
  const int S = part != nullptr && counters != nullptr ? argmax_blocks(n) : 1;
  launch_pdl(argmax_kernel, dim3(S, T), dim3(S == 1 ? 1024 : kArgmaxSplitThreads), 0, stream, logits, n, out, part,
             counters);
  return static_cast<int>(cudaGetLastError());
}

size_t argmax_scratch(int n, int T) { return static_cast<size_t>(argmax_blocks(n)) * T; }

int fill_bf16_uniform(uint16_t* p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  fill_bf16_kernel<<<1024, 256, 0, stream>>>(p, n, seed, lo, hi);
  return static_cast<int>(cudaGetLastError());
}

int fill_u8_uniform(uint8_t* p, size_t n, uint64_t seed, int lo, int hi, cudaStream_t stream) {
  fill_u8_kernel<<<1024, 256, 0, stream>>>(p, n, seed, lo, hi);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace gptoss::cuda
