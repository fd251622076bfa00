// Q8_0 weight kernels of the cpu-fast backend (Highway, runtime dispatch), for the attention and
// unembedding matrices that --dense-weights q8 converts at load (core/q8_0.h: 34-byte blocks of an
// fp16 scale d and 32 int8 codes q). The int8 codes are widened to f32 in registers and multiplied
// with f32 activations, so the only difference from the exact path (which dequantizes d * q, exact
// in f32, and sums) is the order of the f32 additions: the weights' 8-bit rounding is the whole
// accuracy cost of the format.
//
// Every output (token t, row r) is computed by the same sequence of operations whatever the batch:
// per block b, s_b = sum_i q_bi * x_ti lane-wise, acc += s_b * d_b, then a sum of the lanes. So a
// token gets the same bits decoded alone (GEMV) as inside a prefill batch (GEMM). Activations are
// in natural order (not the chunk order of kernels_fast.h): int8 codes need no even/odd split.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace gptoss::cpu_fast {

class SpinPool;

// out[r] = sum_i x[i] * w_r[i] for `rows` consecutive Q8_0 rows of `cols` (a multiple of 32) at w.
void gemv_q8_0(const float* x, const uint8_t* w, int64_t cols, int64_t rows, float* out);

// out[t * ldo + r] = sum_i x[t][i] * w_r[i] for t < T, r < rows; bitwise equal to gemv_q8_0 of each
// token.
void gemm_q8_0(const float* const* x, int64_t T, const uint8_t* w, int64_t cols, int64_t rows, float* out,
               int64_t ldo);

// Backend::f32_matmul for a kQ8_0 weight (cols a multiple of 32), over the pool's threads:
// out[T, w.rows] = x[T, w.cols] . w^T (+ bias).
void f32_q8_0w_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out, SpinPool& pool);

}  // namespace gptoss::cpu_fast
