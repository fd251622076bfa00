// MXFP4 expert GEMV on int8 dot products (the cpu-fast decode path of GPTOSS_CPU_FAST_MOE_I8).
//
// The E2M1 values doubled are exact int8 {0, 1, 2, 3, 4, 6, 8, 12, -0, -1, ..., -12}; the
// activation vector is quantized per 32-element block to int8 (d = max|x| / 127, q1 = round(x / d),
// Q8_0 style), optionally with a second int8 term for the residual (q2 = round((x - d q1) * 256 /
// d), so x ~ d (q1 + q2 / 256)); a block's dot product is then an exact int32 sum of int8 products
// (VPDPBUSD on AVX-512 VNNI, VPMADDUBSW + VPMADDWD on AVX2), scaled once by 2^(e - 128) * d in f32.
//
// Error: the weights are used exactly; only the activation rounding costs accuracy. Per element
// |x - x_q| <= max|x_block| / 254 with one part, <= max|x_block| / (127 * 256) with two (d / 512,
// or d / 256 where the residual's code clamps at 127), plus the f32 rounding of d; so per row
//   |out - exact| <= sum_b E_b * sum_{i in b} |w_i|   (+ f32 summation rounding),
// E_b that per-element bound: what the gtest checks. Typical errors are far smaller (the roundings
// are independent).
//
// Each activation vector is quantized alone (quantize_mxfp4_i8_act), so a token's result does not
// depend on the other tokens of the call.
#pragma once

#include <cstdint>

namespace gptoss::cpu_fast {

// True where the int8 kernel runs on this CPU (x86-64 with AVX-512 BW + VBMI + VBMI2 + VNNI, or
// AVX2 + FMA); mxfp4_i8_target() names the variant ("avx512-vnni", "avx2") or why not ("no AVX2",
// "not x86-64").
bool mxfp4_i8_usable();
const char* mxfp4_i8_target();

// Bytes of one quantized activation vector of `cols` (a multiple of 32) elements.
int64_t mxfp4_i8_act_bytes(int64_t cols);

// Quantizes x[cols] (natural order) into out (mxfp4_i8_act_bytes(cols) bytes, 64-byte aligned):
// per block b, d_b = max|x_b| / 127 (0 for an all-zero block), q1 = round-to-nearest-even(x / d_b),
// q2 = round((x - d_b q1) * 256 / d_b) clamped to [-127, 127]. Both parts are stored; the GEMV
// picks how many it uses.
void quantize_mxfp4_i8_act(const float* x, int64_t cols, uint8_t* out);
// The portable loop that quantize_mxfp4_i8_act runs without the AVX-512 VNNI body (which gives the
// same bytes; tests hold it to this).
void quantize_mxfp4_i8_act_portable(const float* x, int64_t cols, uint8_t* out);

// The dequantized activations d_b * (q1 + q2 / 256) (parts 2) or d_b * q1 (parts 1), natural order,
// for tests: xd[cols].
void dequantize_mxfp4_i8_act(const uint8_t* act, int64_t cols, int parts, double* xd);

// out[t * ldo + r] = sum_i xd_t[i] * mxfp4(row r)[i] for t < T (1 or 2), r < rows, with xd_t the
// activations dequantized from `parts` (1 or 2) int8 terms: consecutive
// MXFP4 rows of `cols` elements (16 code bytes per 32, element 2j in the low nibble of byte j) and
// their E8M0 scales (cols / 32 per row); act[t] from quantize_mxfp4_i8_act. Requires
// mxfp4_i8_usable(). A token's outputs are the same bits whether T is 1 or 2.
void gemv_mxfp4_i8(const uint8_t* const* act, int T, int parts, const uint8_t* blocks,
                   const uint8_t* scales, int64_t cols, int64_t rows, float* out, int64_t ldo);

// The same with a named body ("avx512-vnni" or "avx2"), for tests and the kernel bench; false (and
// nothing written) where that body cannot run here. GPTOSS_CPU_FAST_MOE_I8_TARGET=avx2 makes
// gemv_mxfp4_i8 itself use the AVX2 body.
bool gemv_mxfp4_i8_on(const char* target, const uint8_t* const* act, int T, int parts,
                      const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                      float* out, int64_t ldo);

// The same products for any T >= 1 tokens (prefill: one expert's tokens) on the AVX-512 VNNI body
// only (mxfp4_i8_gemm_usable()): out[t * ldo + r] = sum_i xd_t[i] * mxfp4(row r)[i], gact[t] the
// token's activations repacked by pack_mxfp4_i8_gemm_act (mxfp4_i8_gemm_act_bytes, 64-byte
// aligned) for the same `parts`. The codes of a few rows go through the table once for several
// tokens (register tiles of rows x tokens). Each token's outputs are gemv_mxfp4_i8's bits for that
// token (the same exact integer sums, scaled and added in the same order; the GEMM scales by
// 2^(e - 127) and then by d, which equals the GEMV's one product 2^(e - 127) * d wherever that is
// a normal float).
bool mxfp4_i8_gemm_usable();
int64_t mxfp4_i8_gemm_act_bytes(int64_t cols, int parts);
void pack_mxfp4_i8_gemm_act(const uint8_t* act, int64_t cols, int parts, uint8_t* out);
void gemm_mxfp4_i8(const uint8_t* const* gact, int T, int parts, const uint8_t* blocks,
                   const uint8_t* scales, int64_t cols, int64_t rows, float* out, int64_t ldo);

}  // namespace gptoss::cpu_fast
