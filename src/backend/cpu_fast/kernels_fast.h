// Highway kernels of the cpu-fast backend (runtime dispatch: one binary, best SIMD target of the
// machine). They compute the same sums as the exact kernels in backend/cpu/kernels.h with the same
// decoded weight values (bf16 and MXFP4 are exact in f32); only the order of additions differs.
//
// "Chunk order": a vector of n values is split into 32-element chunks and each chunk is stored as
// its 16 even elements followed by its 16 odd elements; a tail of n % 32 elements stays in order.
// It is the order in which the kernels find weights in memory without shuffling them (the two
// bf16 of a 32-bit word, the two nibbles of an MXFP4 byte), so activations are put in chunk order
// once (to_chunk_order) and every weight row is then consumed in place. A dot product of two
// vectors both in chunk order equals the dot product in natural order.
#pragma once

#include <cstdint>

namespace gptoss::cpu_fast {

// xp = x in chunk order (x and xp must not overlap); from_chunk_order is the inverse.
void to_chunk_order(const float* x, int64_t n, float* xp);
void from_chunk_order(const float* xp, int64_t n, float* x);

// out[r] = sum_i x[i] * bf16(w[r * stride + i]) for r < rows; xp is x in chunk order.
void gemv_bf16(const float* xp, const uint16_t* w, int64_t stride, int64_t n, int64_t rows, float* out);

// gemv_bf16's software prefetch (the same sums whatever it is): `ahead` steps of 64 bytes per row,
// __builtin_prefetch locality `hint` (3: PREFETCHT0 into L1, 2: PREFETCHT1 into L2). Chosen once per
// process: GPTOSS_CPU_FAST_BF16_PREFETCH=l1 (T0, 16 steps: best on Sapphire Rapids,
// bench/results/cpu-bf16-gemv.md) or l2 (T1, 48 steps: best on AMD Zen 4, where T0 at 16 steps
// streams ~40% slower); unset, l2 on AMD CPUs and l1 elsewhere. `why` says which and why (for the
// profile); an unknown value of the variable is an error (`error` names it) and gemv_bf16 then
// keeps the default.
struct Bf16Prefetch {
  int64_t ahead = 16;
  int hint = 3;
  const char* why = "";
  const char* error = nullptr;
};
Bf16Prefetch bf16_prefetch_for(const char* env, bool amd);  // the rule above, for tests
Bf16Prefetch bf16_prefetch();                               // this process's choice (cached)

// gemv_bf16's variants for bench/kernels/cpu (the same sums): tile_rows 0 = widen through an L1
// buffer (the first kernel), 1, 4 or 8 = widened in registers, that many rows per tile; ahead = the
// software prefetch distance in 64-byte steps of each row (0: none); hint = __builtin_prefetch's
// locality (3: PREFETCHT0 into L1, 2: T1 into L2, 1: T2, 0: NTA).
void gemv_bf16_lab(const float* xp, const uint16_t* w, int64_t stride, int64_t n, int64_t rows, float* out,
                   int64_t ahead, int64_t tile_rows, int hint);

// out[r] = sum_i x[i] * mxfp4(row r)[i] for r < rows: consecutive MXFP4 rows of `cols` (a multiple
// of 32) elements (16 bytes per 32 elements; element 2j in the low nibble of byte j of a block) and
// their E8M0 scales (cols / 32 per row); xp is x in chunk order.
void gemv_mxfp4(const float* xp, const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                float* out);
// gemv_mxfp4's software prefetch variants for bench/kernels/cpu (the same sums): ahead = -1 requests
// the next 4-row tile while a tile runs (one line per block step, from the tile's start); 0 none;
// ahead > 0 requests each line `ahead` block steps (of 64 bytes: a 16-byte block of each of the
// tile's 4 rows) before it is used, in the order the tiles consume memory. AVX3 and AVX2 kernels;
// the other targets' buffered path has no software prefetch and ignores it.
void gemv_mxfp4_lab(const float* xp, const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                    float* out, int64_t ahead);

// Decodes `rows` weight rows to f32 in chunk order, row r at out + r * n (bf16: row stride `stride`).
void bf16_rows_to_f32(const uint16_t* w, int64_t stride, int64_t n, int64_t rows, float* out);
void mxfp4_rows_to_f32(const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows, float* out);

// out[t * ldo + r] = sum_i x[t][i] * w[r * ldw + i] for t < T, r < R (f32 rows of n; any common
// order of the i, e.g. both in chunk order).
void gemm_f32(const float* const* x, int64_t T, const float* w, int64_t ldw, int64_t R, int64_t n, float* out,
              int64_t ldo);

// out[t * ldo + r] = row r of the bf16 rows at w (stride elements apart) . x[t] (chunk order), for
// t < T, r < R: gemm_f32's bits over bf16_rows_to_f32's rows (AVX-512: R <= 16 rows in the vector
// lanes, no horizontal sums).
void gemm_bf16_rows(const float* const* x, int64_t T, const uint16_t* w, int64_t stride, int64_t n, int64_t R,
                    float* out, int64_t ldo);

// Attention of G query heads (q[g * D ..], sharing one KV head) over n keys/values (rows at k[i],
// v[i]), head g with sink logit sinks[g]: s_gi = (q_g . k_i) * scale; p_g = softmax([s_g0 ..
// s_g(n-1), sink_g]) without the sink's column; out[g * D ..] = sum_i p_gi v_i. scores: G * n floats.
void attend_group(const float* q, int64_t G, int64_t D, const float* const* k, const float* const* v, int64_t n,
                  float scale, const float* sinks, float* scores, float* out);

// sum_i x[i] * w[i].
float dot_f32(const float* x, const float* w, int64_t n);

// The SIMD target the dispatch chose on this machine (e.g. "AVX3", "AVX2", "NEON").
const char* simd_target();

// GPTOSS_CPU_FAST_SIMD=avx2 (x86-64): run the cpu-fast kernels as on a CPU with AVX2 + FMA and no
// AVX-512, to test and time that code on an AVX-512 machine: Highway's targets above AVX2 off
// (hwy::DisableTargets, for the whole process), the int8 MXFP4 kernel's AVX2 body, no AMX. Read
// once, at the first call (the backend's constructor, before any kernel runs); error names a value
// it does not know (then nothing is limited).
struct SimdLimit {
  bool avx2 = false;
  const char* error = nullptr;
};
SimdLimit simd_limit();

}  // namespace gptoss::cpu_fast
