// Small kernels around the big GEMVs: the fused MoE router (RMSNorm + logits + top-k + softmax), the
// embedding lookup, the greedy argmax over the vocabulary, and deterministic fills for benches/tests.
#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace gptoss::cuda {
namespace {

constexpr int kRouterThreads = 1024;
constexpr int kMaxExperts = 256;

__global__ void __launch_bounds__(kRouterThreads)
    router_kernel(const float* __restrict__ x, int x_stride, const uint16_t* __restrict__ gain, float eps,
                  const uint16_t* __restrict__ wr, const uint16_t* __restrict__ br, int experts, int cols, int k,
                  float* __restrict__ xn, int32_t* __restrict__ idx, float* __restrict__ weight) {
  extern __shared__ float xs[];  // [cols]
  __shared__ float logits[kMaxExperts];
  __shared__ float red[32];
  const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* xr = x + static_cast<size_t>(t) * x_stride;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = xr[c];
    xs[c] = v;
    ss += v * v;
  }
  ss = warp_sum(ss);
  if (lane == 0) red[warp] = ss;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += red[w];
  const float r = 1.0f / sqrtf(total / static_cast<float>(cols) + eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = (xs[c] * r) * bf16_to_f32(gain[c]);
    xs[c] = v;
    xn[static_cast<size_t>(t) * cols + c] = v;
  }
  __syncthreads();
  for (int e = warp; e < experts; e += blockDim.x >> 5) {
    const uint4* w = reinterpret_cast<const uint4*>(wr + static_cast<size_t>(e) * cols);
    float acc = 0.0f;
    for (int i = lane; i < cols / 8; i += 32) {
      const uint4 v = __ldg(w + i);
      const float* xv = xs + 8 * i;
      acc = fmaf(bf16_lo(v.x), xv[0], acc);
      acc = fmaf(bf16_hi(v.x), xv[1], acc);
      acc = fmaf(bf16_lo(v.y), xv[2], acc);
      acc = fmaf(bf16_hi(v.y), xv[3], acc);
      acc = fmaf(bf16_lo(v.z), xv[4], acc);
      acc = fmaf(bf16_hi(v.z), xv[5], acc);
      acc = fmaf(bf16_lo(v.w), xv[6], acc);
      acc = fmaf(bf16_hi(v.w), xv[7], acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) logits[e] = acc + (br ? bf16_to_f32(br[e]) : 0.0f);
  }
  __syncthreads();
  if (warp != 0) return;
  // Top-k by repeated warp argmax (ties to the lower index), then softmax over the k values.
  constexpr int kPer = kMaxExperts / 32;
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int e = lane + 32 * j;
    v[j] = e < experts ? logits[e] : -INFINITY;
  }
  float sel_val[8];
  int sel_idx[8];
  for (int r = 0; r < k; ++r) {
    float best = -INFINITY;
    int best_e = 0x7fffffff;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int e = lane + 32 * j;
      if (e < experts && (v[j] > best || (v[j] == best && e < best_e))) best = v[j], best_e = e;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
      if (ob > best || (ob == best && oe < best_e)) best = ob, best_e = oe;
    }
    sel_val[r] = best;
    sel_idx[r] = best_e;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      if (lane + 32 * j == best_e) v[j] = -INFINITY;
    }
  }
  if (lane == 0) {
    float sum = 0.0f, w[8];
    for (int r = 0; r < k; ++r) {
      w[r] = expf(sel_val[r] - sel_val[0]);
      sum += w[r];
    }
    for (int r = 0; r < k; ++r) {
      idx[t * k + r] = sel_idx[r];
      weight[t * k + r] = w[r] / sum;
    }
  }
}

__global__ void embed_kernel(const uint16_t* __restrict__ table, int cols, const int32_t* __restrict__ tokens,
                             float* __restrict__ out) {
  const int t = blockIdx.x;
  const uint16_t* row = table + static_cast<size_t>(tokens[t]) * cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[static_cast<size_t>(t) * cols + c] = bf16_to_f32(row[c]);
}

__global__ void argmax_kernel(const float* __restrict__ logits, int n, int32_t* __restrict__ out) {
  __shared__ float bv[32];
  __shared__ int bi[32];
  const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* row = logits + static_cast<size_t>(t) * n;
  float best = -INFINITY;
  int best_i = 0x7fffffff;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const float v = row[i];
    if (v > best || (v == best && i < best_i)) best = v, best_i = i;
  }
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
    out[t] = best_i == 0x7fffffff ? 0 : best_i;
  }
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

}  // namespace

int router_topk(const float* x, int x_stride, const uint16_t* gain, float eps, const uint16_t* wr, const uint16_t* br,
                int experts, int cols, int k, int T, float* xn, int32_t* idx, float* weight, cudaStream_t stream) {
  if (T <= 0) return 0;
  if (experts > kMaxExperts || k > 8 || k > experts) return static_cast<int>(cudaErrorInvalidValue);
  const size_t smem = static_cast<size_t>(cols) * sizeof(float);
  if (smem > 48 * 1024) {
    cudaFuncSetAttribute(router_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  }
  router_kernel<<<T, kRouterThreads, smem, stream>>>(x, x_stride, gain, eps, wr, br, experts, cols, k, xn, idx, weight);
  return static_cast<int>(cudaGetLastError());
}

int embed_bf16(const uint16_t* table, int cols, const int32_t* tokens, int T, float* out, cudaStream_t stream) {
  if (T <= 0) return 0;
  embed_kernel<<<T, 256, 0, stream>>>(table, cols, tokens, out);
  return static_cast<int>(cudaGetLastError());
}

int argmax_rows(const float* logits, int n, int T, int32_t* out, cudaStream_t stream) {
  if (T <= 0) return 0;
  argmax_kernel<<<T, 1024, 0, stream>>>(logits, n, out);
  return static_cast<int>(cudaGetLastError());
}

int fill_bf16_uniform(uint16_t* p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  fill_bf16_kernel<<<1024, 256, 0, stream>>>(p, n, seed, lo, hi);
  return static_cast<int>(cudaGetLastError());
}

int fill_u8_uniform(uint8_t* p, size_t n, uint64_t seed, int lo, int hi, cudaStream_t stream) {
  fill_u8_kernel<<<1024, 256, 0, stream>>>(p, n, seed, lo, hi);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace gptoss::cuda
