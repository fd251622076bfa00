// Highway kernels of the cpu-fast backend (runtime dispatch: one binary, best SIMD target of the
// machine). They compute the same sums as the exact kernels in backend/cpu/kernels.h with the same
// decoded weight values (bf16 and MXFP4 are exact in f32); only the order of additions differs.
#pragma once

#include <cstdint>

namespace gptoss::cpu_fast {

// sum_i x[i] * bf16(w[i]).
float dot_bf16(const float* x, const uint16_t* w, int64_t n);
// sum_i x[i] * w[i].
float dot_f32(const float* x, const float* w, int64_t n);
// out[i] = bf16(w[i]) as f32.
void bf16_to_f32(const uint16_t* w, int64_t n, float* out);

// Decodes an MXFP4 row of `cols` (a multiple of 32) elements to int8 codes at twice their E2M1
// value ({0,1,2,3,4,6,8,12} and negatives), in element order; the scale is applied by dot_mxfp4_i8.
void mxfp4_row_to_i8(const uint8_t* blocks, int64_t cols, int8_t* out);
// sum_i x[i] * value_i for a row decoded by mxfp4_row_to_i8 with E8M0 scales [cols/32].
float dot_mxfp4_i8(const float* x, const int8_t* q, const uint8_t* scales, int64_t cols);

// The SIMD target the dispatch chose on this machine (e.g. "AVX3", "AVX2", "NEON").
const char* simd_target();

}  // namespace gptoss::cpu_fast
