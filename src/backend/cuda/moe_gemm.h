// Grouped MoE GEMM for prefill and batched decode (moe_gemm.cu): every used expert in one launch,
// MXFP4 weights decoded in registers (no bf16 copy), inputs in x16 form (x16.cuh, staged by stage_x16
// in kernels.h), f32 results equal to an f32 GEMM on the decoded weights up to one rounding per
// 32-element block. Plain C++ types, so any translation unit can include this.
#pragma once

#include <cstddef>
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace gptoss::cuda {

// Slots per token tile: each expert's sorted slots are cut into tiles of at most this many.
inline constexpr int kMoeGemmTileSlots = 64;
inline constexpr int kMoeGemmDefaultShape = 5;  // NOTES v50: 3 blocks an SM, 2 stages, scales by cp.async

// The most tiles S slots over E experts can need (the length of each row of `tiles` below).
// tile_slots: slots per tile, kMoeGemmTileSlots, or 8 / 16 for decode batches (moe_gemm_mxfp4 has
// blocks of 8 and 16 slots; the grouping and the GEMM of one MoE op must use the same value).
int moe_gemm_max_tiles(int S, int E, int tile_slots = kMoeGemmTileSlots);

// Groups the S = T * k slots of idx [T, k] by expert on the device (E <= 256): sorted [2][S] gets per
// sorted slot its input row (the token s / k when gate_up, else the slot s) and its destination slot s;
// tiles [3 * moe_gemm_max_tiles(S, E) + 1] gets rows expert / first sorted slot / count of each tile,
// then the number of tiles. Ids outside [0, E) are dropped; when `bad` (4 ints the device can write,
// e.g. mapped host memory, zeroed by the caller) is not null they are reported there: bad[0] += their
// count, and the first one counted writes its id, its slot and E to bad[1..3]. No host synchronization.
int moe_group_slots(const int32_t* idx, int S, int k, int E, bool gate_up, int32_t* sorted, int32_t* tiles,
                    cudaStream_t stream, int tile_slots = kMoeGemmTileSlots, int32_t* bad = nullptr);

// For every tile i < tiles[3 * max_tiles] (expert e = tiles[i], first sorted slot f = tiles[max_tiles + i],
// count n = tiles[2 * max_tiles + i] <= kMoeGemmTileSlots) and sorted slots s in [f, f + n): y[r] =
// sum_c W_e[r, c] * x[src[s], c] + bias[e, r] over the rows r of expert e (W: MXFP4 blocks
// [E, rows, cols/32, 16] + E8M0 scales [E, rows, cols/32]; x as x16 rows with x_inv[row] = 2^-p; bias
// bf16 [E, rows]). swiglu_out: out[dst[s], u] = swiglu(y[2u], y[2u + 1]) (clamped, limit/alpha) into
// out [*, rows / 2]; else out[dst[s], r] = y[r] into out [*, rows]. cols % 32 == 0. Returns the launch
// error (cudaError_t) as an int. GPTOSS_CUDA_MOE_GEMM_SHAPE (0..5; moe_gemm.cu) overrides the
// block shape kMoeGemmDefaultShape; all shapes compute the same sums in the same order. tile_slots
// 8 or 16 (count <= tile_slots): blocks of 128 rows x 8 or 16 slots (decode batches), same sums.
int moe_gemm_mxfp4(const uint32_t* x16, const float* x_inv, const int32_t* src, const int32_t* dst,
                   const int32_t* tiles, int max_tiles, const uint8_t* blocks, const uint8_t* scales,
                   const uint16_t* bias, int rows, int cols, bool swiglu_out, float limit, float alpha, float* out,
                   cudaStream_t stream, int tile_slots = kMoeGemmTileSlots);

// The same kernel for a dense matrix (prefill projections): w as fp16 rows scaled by powers of two
// (f16_rows: exact for every bf16 value down to 2^-38 of its row's largest), x as x16 rows [T]:
// out[t, r] = sum_c w[r, c] * x[t, c] (+ bias[r], bf16, may be null), f32 sums of exact products
// rounded once per 32 columns. cols % 32 == 0.
int f16_rows(const uint16_t* w_bf16, int rows, int cols, uint16_t* w16, float* w_inv, cudaStream_t stream);
// Token tiles of 16 slots for T <= 16, 32 for T <= 32, else 64. Grids too small to fill the GPU (k, v,
// router: 8-32 blocks of 128 rows) split K over dense_gemm_splits(T, rows, cols) blocks (at least 4
// MXFP4-size blocks of K each) whose partial sums go to ws [splits][T][rows] and are added in split
// order (+ bias) by a second kernel; ws == nullptr: no split. GPTOSS_CUDA_DENSE_GEMM_SHAPE=3 picks
// 256-row blocks of 16 warps (moe_gemm.cu) instead of 128-row blocks of 8 for the 64-slot tiles.
int dense_gemm_splits(int T, int rows, int cols);
// add_to_out (ws set): out += the product (+ bias), added by the split sum (over one split where the grid needs
// none), the same values as a separate add of the product; ws then holds max(1, splits) x T x rows floats.
int dense_gemm_x16(const uint32_t* x16, const float* x_inv, int T, const uint16_t* w16, const float* w_inv,
                   const uint16_t* bias, int rows, int cols, float* out, float* ws, cudaStream_t stream,
                   bool add_to_out = false);

}  // namespace gptoss::cuda
