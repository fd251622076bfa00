// Exact single-row kernels of the cpu backend: f32 activations, weights decoded exactly (bf16 and
// MXFP4 values are representable in f32). Row-level so that tests and other backends can compare
// against them directly; cpu_backend.cc spreads them over threads.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"

namespace gptoss::cpu {

// Element i of a dense weight (bf16, f32 or Q8_0) as f32.
float weight_at(const Weight& w, int64_t i);

// sum_i x[i] * w[i] for a row of a dense weight of the given type (Q8_0: n a multiple of 32,
// the row dequantized exactly first).
float dot_f32(const float* x, const void* w_row, ElemType w_type, int64_t n);

// Decodes one MXFP4 row of `cols` elements (cols/32 blocks of 16 code bytes, cols/32 scale bytes).
void mxfp4_row_to_f32(const uint8_t* blocks, const uint8_t* scales, int64_t cols, float* out);

// y = x / sqrt(mean(x^2) + eps) * gain, for one row of n.
void rmsnorm_row(const float* x, const Weight& gain, float eps, int64_t n, float* y);

// Rotates one token's heads (heads * head_dim floats) at position pos: pairs (i, i + head_dim/2).
void rope_row(float* x, int heads, int head_dim, int32_t pos, const RopeTable& rope);

// Indices of the k largest values (descending; ties go to the lower index) and the softmax over them.
void topk_softmax_row(const float* logits, int n, int k, int32_t* idx, float* weight);

// The clamped SwiGLU of gpt-oss for one (gate, up) pair.
float swiglu(float gate, float up, float limit, float alpha);

// Softmax over scores[0..n) plus one extra "sink" logit that only enlarges the denominator:
// probs[t] = exp(s_t - M) / (sum_t exp(s_t - M) + exp(sink - M)), M = max(max_t s_t, sink).
void sink_softmax(const float* scores, int n, float sink, float* probs);

}  // namespace gptoss::cpu
