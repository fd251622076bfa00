// Prefill kernels and the cuBLAS wrapper declared in prefill.h.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/prefill.h"

namespace gptoss::cuda {
namespace {

__device__ __forceinline__ uint16_t bf16_rn(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }

__global__ void split3_kernel(const float* __restrict__ x, int cols, const int32_t* __restrict__ rows, int n,
                              int parts, uint16_t* __restrict__ out) {
  const int i = blockIdx.x;
  const size_t src = rows != nullptr ? static_cast<size_t>(rows[i]) : static_cast<size_t>(i);
  const float* xr = x + src * cols;
  const size_t part = static_cast<size_t>(n) * cols;
  uint16_t* o = out + static_cast<size_t>(i) * cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = xr[c];
    const uint16_t h = bf16_rn(v);
    const float r = v - bf16_to_f32(h);  // exact: v and h share the top bits
    const uint16_t m = bf16_rn(r);
    const uint16_t l = bf16_rn(r - bf16_to_f32(m));
    o[c] = h;
    o[part + c] = m;
    if (parts == 3) o[2 * part + c] = l;
  }
}

// One thread per MXFP4 block of 32 values. The E2M1 table sits in shared memory (8 words in 8
// banks): a __constant__ table serializes a warp's differing indices.
__global__ void mxfp4_to_bf16_kernel(const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                                     const int32_t* __restrict__ experts, int rows, int nb, size_t per_expert,
                                     size_t total, uint16_t* __restrict__ out) {
  __shared__ float kE2m1[8];
  if (threadIdx.x < 8) {
    const float tab[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      if (q == static_cast<int>(threadIdx.x)) kE2m1[q] = tab[q];
    }
  }
  __syncthreads();
  const size_t g = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= total) return;
  const size_t u = g / per_expert, in_e = g % per_expert;
  const size_t src = static_cast<size_t>(experts[u]) * per_expert + in_e;  // block index in the tensor
  const uint4 codes = *reinterpret_cast<const uint4*>(blocks + src * 16);
  const float s = e8m0_to_f32(scales[src]);
  const uint32_t words[4] = {codes.x, codes.y, codes.z, codes.w};
  uint32_t packed[16];
#pragma unroll
  for (int w = 0; w < 4; ++w) {
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const uint32_t byte = (words[w] >> (8 * b)) & 0xffu;
      float v0 = kE2m1[byte & 7u] * s, v1 = kE2m1[(byte >> 4) & 7u] * s;
      if (byte & 0x8u) v0 = -v0;
      if (byte & 0x80u) v1 = -v1;
      // Exact values: the top half of the f32 is the bf16 (denormals too).
      packed[4 * w + b] = (__float_as_uint(v0) >> 16) | (__float_as_uint(v1) & 0xffff0000u);
    }
  }
  uint4* o = reinterpret_cast<uint4*>(out + (u * per_expert + in_e) * 32);
#pragma unroll
  for (int q = 0; q < 4; ++q) o[q] = make_uint4(packed[4 * q], packed[4 * q + 1], packed[4 * q + 2], packed[4 * q + 3]);
  (void)rows;
}

__global__ void sum3_bias_kernel(const float* __restrict__ y, int n, int N, const uint16_t* __restrict__ bias,
                                 int parts, SplitOut so) {
  const size_t total = static_cast<size_t>(n) * N, part = total;
  for (size_t g = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < total;
       g += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float v = y[g];
    for (int p = 1; p < parts; ++p) v += y[p * part + g];
    const size_t row = g / N;
    const int c = static_cast<int>(g - row * N);
    if (bias != nullptr) v += bf16_to_f32(bias[c]);
    int s = 0, c0 = 0;
    while (s + 1 < so.count && c >= so.end[s]) c0 = so.end[s++];
    so.out[s][row * static_cast<size_t>(so.end[s] - c0) + (c - c0)] = v;
  }
}

__device__ __forceinline__ float swiglu(float gate, float up, float limit, float alpha) {
  gate = fminf(gate, limit);
  up = fmaxf(fminf(up, limit), -limit);
  return (up + 1.0f) * (gate * (1.0f / (1.0f + expf(-(gate * alpha)))));
}

__global__ void moe_swiglu_kernel(const float* __restrict__ y, int n, int N, const int32_t* __restrict__ dst,
                                  const int32_t* __restrict__ expert, const uint16_t* __restrict__ bias, float limit,
                                  float alpha, int parts, float* __restrict__ h) {
  const int i = blockIdx.x, I = N / 2;
  const size_t part = static_cast<size_t>(n) * N;
  const float* yr = y + static_cast<size_t>(i) * N;
  const uint16_t* b = bias + static_cast<size_t>(expert[i]) * N;
  float* hr = h + static_cast<size_t>(dst[i]) * I;
  for (int u = threadIdx.x; u < I; u += blockDim.x) {
    const int g = 2 * u;
    float gate = yr[g] + yr[part + g], up = yr[g + 1] + yr[part + g + 1];
    if (parts == 3) gate += yr[2 * part + g], up += yr[2 * part + g + 1];
    gate += bf16_to_f32(b[g]);
    up += bf16_to_f32(b[g + 1]);
    hr[u] = swiglu(gate, up, limit, alpha);
  }
}

__global__ void moe_down_kernel(const float* __restrict__ y, int n, int N, const int32_t* __restrict__ dst,
                                const int32_t* __restrict__ expert, const uint16_t* __restrict__ bias,
                                int parts, float* __restrict__ ys) {
  const int i = blockIdx.x;
  const size_t part = static_cast<size_t>(n) * N;
  const float* yr = y + static_cast<size_t>(i) * N;
  const uint16_t* b = bias + static_cast<size_t>(expert[i]) * N;
  float* o = ys + static_cast<size_t>(dst[i]) * N;
  for (int c = threadIdx.x; c < N; c += blockDim.x) {
    float v = yr[c] + yr[part + c];
    if (parts == 3) v += yr[2 * part + c];
    o[c] = v + bf16_to_f32(b[c]);
  }
}

constexpr int kMaxK = 8;

__global__ void moe_combine_kernel(const float* __restrict__ ys, const int32_t* __restrict__ idx,
                                   const float* __restrict__ weight, int k, int N, float* __restrict__ out,
                                   bool add_to_out) {
  const int t = blockIdx.x;
  int order[kMaxK];
  for (int j = 0; j < k; ++j) order[j] = j;
  for (int a = 1; a < k; ++a) {  // insertion sort by expert id (stable: ties keep slot order)
    const int v = order[a];
    int b = a - 1;
    while (b >= 0 && idx[t * k + order[b]] > idx[t * k + v]) {
      order[b + 1] = order[b];
      --b;
    }
    order[b + 1] = v;
  }
  for (int c = threadIdx.x; c < N; c += blockDim.x) {
    float acc = 0.0f;
    for (int q = 0; q < k; ++q) {
      const int j = order[q];
      acc += ys[(static_cast<size_t>(t) * k + j) * N + c] * weight[t * k + j];
    }
    float* o = out + static_cast<size_t>(t) * N + c;
    *o = add_to_out ? *o + acc : acc;
  }
}

int grid_for(size_t total, int block) {
  const size_t g = (total + block - 1) / block;
  return static_cast<int>(g < 65535u * 16u ? g : 65535u * 16u);
}

}  // namespace

int split3_bf16(const float* x, int cols, const int32_t* rows, int n, uint16_t* out, cudaStream_t stream, int parts) {
  if (n > 0) split3_kernel<<<n, 256, 0, stream>>>(x, cols, rows, n, parts, out);
  return static_cast<int>(cudaGetLastError());
}

int mxfp4_to_bf16(const uint8_t* blocks, const uint8_t* scales, const int32_t* experts, int n, int rows, int cols,
                  uint16_t* out, cudaStream_t stream) {
  const int nb = cols / 32;
  const size_t per_expert = static_cast<size_t>(rows) * nb, total = per_expert * n;
  if (total > 0) {
    const size_t grid = (total + 255) / 256;
    mxfp4_to_bf16_kernel<<<static_cast<unsigned>(grid), 256, 0, stream>>>(blocks, scales, experts, rows, nb,
                                                                          per_expert, total, out);
  }
  return static_cast<int>(cudaGetLastError());
}

int sum3_bias_split(const float* y, int n, int N, const uint16_t* bias, const SplitOut& out, cudaStream_t stream,
                    int parts) {
  if (out.count < 1 || out.count > 4 || out.end[out.count - 1] != N) return static_cast<int>(cudaErrorInvalidValue);
  const size_t total = static_cast<size_t>(n) * N;
  if (total > 0) sum3_bias_kernel<<<grid_for(total, 256), 256, 0, stream>>>(y, n, N, bias, parts, out);
  return static_cast<int>(cudaGetLastError());
}

int moe_swiglu_epilogue(const float* y, int n, int N, const int32_t* dst, const int32_t* expert, const uint16_t* bias,
                        float limit, float alpha, float* h, cudaStream_t stream, int parts) {
  if (n > 0) moe_swiglu_kernel<<<n, 256, 0, stream>>>(y, n, N, dst, expert, bias, limit, alpha, parts, h);
  return static_cast<int>(cudaGetLastError());
}

int moe_down_epilogue(const float* y, int n, int N, const int32_t* dst, const int32_t* expert, const uint16_t* bias,
                      float* ys, cudaStream_t stream, int parts) {
  if (n > 0) moe_down_kernel<<<n, 256, 0, stream>>>(y, n, N, dst, expert, bias, parts, ys);
  return static_cast<int>(cudaGetLastError());
}

int moe_combine(const float* ys, const int32_t* idx, const float* weight, int T, int k, int N, float* out,
                cudaStream_t stream, bool add_to_out) {
  if (k > kMaxK) return static_cast<int>(cudaErrorInvalidValue);
  if (T > 0) moe_combine_kernel<<<T, 256, 0, stream>>>(ys, idx, weight, k, N, out, add_to_out);
  return static_cast<int>(cudaGetLastError());
}

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

struct Gemm {
  cublasHandle_t handle = nullptr;
  void* workspace = nullptr;
};

Gemm* gemm_create(cudaStream_t stream, int* status) {
  auto* g = new Gemm;
  cublasStatus_t s = cublasCreate(&g->handle);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(g->handle, stream);
  // 32 MiB of workspace (what cuBLAS advises on Hopper) so no algorithm is ruled out for lack of it.
  if (s == CUBLAS_STATUS_SUCCESS && cudaMalloc(&g->workspace, kWorkspaceBytes) != cudaSuccess) s = CUBLAS_STATUS_ALLOC_FAILED;
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetWorkspace(g->handle, g->workspace, kWorkspaceBytes);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(g->handle, CUBLAS_DEFAULT_MATH);
  *status = static_cast<int>(s);
  if (s != CUBLAS_STATUS_SUCCESS) {
    gemm_destroy(g);
    return nullptr;
  }
  return g;
}

void gemm_destroy(Gemm* g) {
  if (g == nullptr) return;
  if (g->handle != nullptr) cublasDestroy(g->handle);
  cudaFree(g->workspace);
  delete g;
}

int gemm_bf16(Gemm* g, const uint16_t* w, int m, int k, const uint16_t* a, long long stride_a, int n, float* c,
              long long stride_c, int batch, int ld, long long stride_w) {
  const float one = 1.0f, zero = 0.0f;
  if (ld == 0) ld = k;
  // Column-major view: C^T[m][n] = W^T(k x m)^T . A^T(k x n).
  const cublasStatus_t s = cublasGemmStridedBatchedEx(
      g->handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, w, CUDA_R_16BF, ld, stride_w, a, CUDA_R_16BF, ld, stride_a,
      &zero, c, CUDA_R_32F, m, stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  return static_cast<int>(s);
}

}  // namespace gptoss::cuda
