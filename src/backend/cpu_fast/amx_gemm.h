// Prefill GEMMs of the cpu-fast backend on Intel AMX (TDPBF16PS: bf16 x bf16 products, f32
// accumulation in the tile registers), kept near f32 accuracy.
//
// Weights (bf16, or MXFP4 decoded to bf16: E2M1 x 2^e is exact in bf16) are the A operand, one
// weight row per tile row in natural element order, loaded in place. Activations are f32: each
// row x is split into `parts` bf16 terms x = h + m (+ l), h = bf16(x), m = bf16(x - h),
// l = bf16(x - h - m) (round to nearest even), and every term is multiplied into the same f32
// accumulator. bf16 x bf16 products are exact in f32, so with 3 parts (24 significant bits, all
// of an f32) the sums differ from an f32 dot product only in the order of additions; with 2 parts
// each x loses its bits below 2^-16 |x| or so.
//
// AMX treats bf16 denormals (|v| < 2^-126) as zero and rounds to nearest even whatever MXCSR
// says; weights or activation terms that small contribute nothing, as they nearly do in f32.
//
// x86-64 Linux only (CPUID + arch_prctl for the tile data permission); elsewhere amx_usable() is
// false and nothing else may be called.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gptoss::cpu_fast {

// The CPU has AMX-BF16 and AVX-512 BW/BF16, the kernel granted this process the tile data state,
// and a small GEMM against a float64 reference passed at first call. Cached.
bool amx_usable();
// Why amx_usable() is false ("" when it is true), e.g. "no AMX-BF16 in CPUID".
const char* amx_unusable_reason();

// uint16_t elements of the packed activations of T rows of K values split into `parts` (2 or 3).
size_t amx_packed_x_elems(int64_t T, int64_t K, int parts);

// Splits rows x[t] (K f32 each, t < T) into `parts` bf16 terms in the tile layout amx_gemm reads
// (zero-padded to 16 rows and 32 columns). Rows [t0, t1) only, with t0 a multiple of 16, so that
// threads can pack disjoint row ranges of one buffer; t1 = T pads the tail.
void amx_pack_x(const float* const* x, int64_t T, int64_t K, int parts, int64_t t0, int64_t t1, uint16_t* packed);

// out[t * ldo + r] = sum_i x[t][i] * w[r * ldw + i] for t < T, r < R (bf16 weights, natural
// order). x: as packed by amx_pack_x. Any K, R and T (tails are padded through a copy).
void amx_gemm_bf16w(const uint16_t* packed_x, int64_t T, int parts, const uint16_t* w, int64_t ldw, int64_t R,
                    int64_t K, float* out, int64_t ldo);

// Decodes `rows` MXFP4 rows of `cols` values (a multiple of 32; as in kernels_fast.h) to bf16 in
// natural order, row r at out + r * ldo. Exact.
void amx_mxfp4_rows_to_bf16(const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                            uint16_t* out, int64_t ldo);

// h[j] = swiglu(y[2j] + bias[2j], y[2j + 1] + bias[2j + 1]) for j < n / 2 (n even), the clamped
// SwiGLU of backend/cpu/kernels.h (gate <= limit, |up| <= limit, gate * sigmoid(alpha gate) *
// (up + 1)) with an AVX-512 exp within 2 ulp of expf. For the AMX prefill's gate_up outputs; it
// needs AVX-512, which amx_usable() implies.
void avx512_swiglu_pairs(const float* y, const float* bias, int64_t n, float limit, float alpha, float* h);
// Whether avx512_swiglu_pairs runs here with or without AMX (a build with this file's AVX-512 code
// and a CPU with AVX-512 F/BW/VL/BF16, e.g. AMD Zen 4): the int8 expert paths use it there.
bool avx512_swiglu_usable();

}  // namespace gptoss::cpu_fast
