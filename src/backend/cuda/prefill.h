// Prefill (many tokens per op) on tensor cores through cuBLAS, kept near-exact: f32 activations are
// split into three bf16 parts (hi + mid + lo carry 24 significant bits, i.e. every f32 except
// denormal tails), each multiplied by the bf16 weights with f32 accumulation (bf16 x bf16 products
// are exact in f32), and the three partial products summed in f32 by the epilogues below. The tensor
// cores' f32 accumulation over a long K in one chain rounds ~10x coarser than f32 (2-5e-6 relative at
// K = 2880 on the H100, NOTES v21), so the dense matmuls take the high part in K chunks. MXFP4
// experts are decoded to bf16 first (E2M1 x E8M0 is exact in bf16, denormals included; scale 255 is
// inf as on the CPU). Kernels return cudaGetLastError() as an int, like kernels.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace gptoss::cuda {

// `parts` (3, or 2 for the faster, less exact form: hi + mid carry 16 bits) is the number of bf16
// parts of each activation; y arrays below are [parts][n][N].
// out[p][i][:] = part p of x[rows ? rows[i] : i][:] for p < parts (bf16 bits, [parts][n][cols]).
int split3_bf16(const float* x, int cols, const int32_t* rows, int n, uint16_t* out, cudaStream_t stream,
                int parts = 3);
// out[u] = bf16 decode of expert experts[u] ([rows][cols], cols % 32 == 0), for u < n.
int mxfp4_to_bf16(const uint8_t* blocks, const uint8_t* scales, const int32_t* experts, int n, int rows, int cols,
                  uint16_t* out, cudaStream_t stream);
// The f32 sum of parts products: row i of y[0] + y[1] + ... + y[parts - 1] (+ bias), y is [parts][n][N]
// (any parts >= 1: also the bf16 parts of each of several K chunks), written in column segments:
// columns [end[s - 1], end[s]) (end[-1] = 0) of row i go to out[s][i][:], rows of end[s] - end[s - 1]
// floats, for s < count <= 4 (end[count - 1] == N; one segment: out[0] is [n][N]).
struct SplitOut {
  int count = 0;
  int end[4] = {};
  float* out[4] = {};
};
int sum3_bias_split(const float* y, int n, int N, const uint16_t* bias, const SplitOut& out, cudaStream_t stream,
                    int parts = 3);
// For sorted slot i (expert expert[i], destination slot dst[i]): gate/up = sum3 + bias of the
// interleaved rows, h[dst[i]][u] = swiglu(gate_u, up_u). y is [3][n][N], h is [*][N / 2].
int moe_swiglu_epilogue(const float* y, int n, int N, const int32_t* dst, const int32_t* expert,
                        const uint16_t* bias, float limit, float alpha, float* h, cudaStream_t stream,
                        int parts = 3);
// ys[dst[i]][:] = sum3 + bias[expert[i]] (the down projection of each (token, expert) slot).
int moe_down_epilogue(const float* y, int n, int N, const int32_t* dst, const int32_t* expert,
                      const uint16_t* bias, float* ys, cudaStream_t stream, int parts = 3);
// out[t][:] = sum over j of weight[t][j] * ys[t * k + j][:], the experts taken in increasing id
// order (the CPU exact path's order); add_to_out: out[t][:] += that sum (a residual add in the same launch).
int moe_combine(const float* ys, const int32_t* idx, const float* weight, int T, int k, int N, float* out,
                cudaStream_t stream, bool add_to_out = false);

// Column-major cuBLAS wrapper for row-major C[batch][n][m] = A[batch][n][k] . W[m][k]^T with bf16 A
// and W, f32 C and f32 accumulation; A, C and W advance by stride_a / stride_c / stride_w elements per
// batch. ld (0: k) is the row length of A and W in memory (> k: batch b is K chunk b of the rows, with
// stride_a = stride_w = k).
// Returns 0 or a cuBLAS status (> 0). The handle is created on first use.
struct Gemm;
Gemm* gemm_create(cudaStream_t stream, int* status);
void gemm_destroy(Gemm* g);
int gemm_bf16(Gemm* g, const uint16_t* w, int m, int k, const uint16_t* a, long long stride_a, int n, float* c,
              long long stride_c, int batch, int ld = 0, long long stride_w = 0);

}  // namespace gptoss::cuda
