// Grouped MoE GEMM for prefill (moe_gemm.cu): every used expert in one launch, MXFP4 weights decoded in
// registers (no bf16 copy), inputs in x16 form (x16.cuh, staged by stage_x16 in kernels.h), f32 results
// equal to an f32 GEMM on the decoded weights up to one rounding per 32-element block. Plain C++ types,
// so any translation unit can include this.
#pragma once

#include <cstddef>
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace gptoss::cuda {

// Slots per token tile: the host cuts each expert's sorted slots into tiles of at most this many.
inline constexpr int kMoeGemmTileSlots = 64;

// For every tile i (tiles = [3][n_tiles]: expert e, first sorted slot f, count n <= kMoeGemmTileSlots)
// and sorted slots s in [f, f + n): y[r] = sum_c W_e[r, c] * x[src[s], c] + bias[e, r] over the rows r
// of expert e (W: MXFP4 blocks [E, rows, cols/32, 16] + E8M0 scales [E, rows, cols/32]; x as x16 rows
// with x_inv[row] = 2^-p; bias bf16 [E, rows]). swiglu_out: out[dst[s], u] = swiglu(y[2u], y[2u + 1])
// (clamped, limit/alpha) into out [*, rows / 2]; else out[dst[s], r] = y[r] into out [*, rows].
// cols % 32 == 0. Returns the launch error (cudaError_t) as an int.
int moe_gemm_mxfp4(const uint32_t* x16, const float* x_inv, const int32_t* src, const int32_t* dst,
                   const int32_t* tiles, int n_tiles, const uint8_t* blocks, const uint8_t* scales,
                   const uint16_t* bias, int rows, int cols, bool swiglu_out, float limit, float alpha, float* out,
                   cudaStream_t stream);

// Dynamic shared memory of one block for `cols` inputs.
size_t moe_gemm_smem_bytes(int cols);

}  // namespace gptoss::cuda
