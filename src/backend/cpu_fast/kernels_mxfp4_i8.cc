// MXFP4 x int8 GEMV (kernels_mxfp4_i8.h): x86-64 AVX-512 VNNI and AVX2 bodies chosen by CPUID at
// run time (function target attributes; the file needs no special compile flags).
//
// Layout of a quantized activation vector of nb = cols / 32 blocks, ng = ceil(nb / 4) groups of 4
// blocks (blocks past nb are zero), for part p = 0 (q1) and 1 (q2, the residual):
//   q_p    [ng][128] int8: per group, the 16 even elements of blocks 4g..4g+3 (64 bytes: block k
//          at 16k), then their 16 odd elements (64 bytes). A weight block's low nibbles are its
//          even elements and its high nibbles its odd ones, so 64 code bytes (4 blocks) meet the
//          even half after one table look-up of the low nibbles and the odd half after one of the
//          high.
//   corr_p [ng][16] int32: -12 * (the 4 even + 4 odd q_p lane i's dot product covers); the weights
//          enter the u8 x s8 dot products as (2 * E2M1 + 12) in [0, 24], and corr removes the
//          12 * sum(q) this adds, so each int32 lane holds an exact sum of 2 * E2M1 * q.
//          Two more for the AVX-512 body with 2 parts: corr_2 = corr_0 + (corr_1 >> 8) (floor) and
//          corr_3 = (corr_1 & 255) << 24, so that VPSHLDD(a, corr_3, 8) = 256 * a + (corr_1 & 255)
//          (the low byte of a << 8 is zero): the 256 * S(q1) + corr_1 step in one uop, not two.
//   dh_p   [ng * 4] f32: d_b / 2 (the 1/2 undoes the doubled codes), and d_b / 512 for part 2.
// An int32 lane i of a group belongs to block 4g + i / 4; per group and row: acc += f32(lane sums)
// * (2^(e_b - 127) * dh_b) lane-wise, then one horizontal sum per row at the end. With 2 parts
// the lane sums are 256 * S(q1) + S(q2) (|.| < 2^23, exact in int32 and in f32) and the scale
// dh_1 = d_b / 512.
#include "backend/cpu_fast/kernels_mxfp4_i8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "backend/cpu_fast/kernels_fast.h"

#if defined(__x86_64__) || defined(_M_X64)
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized on their own _mm*_undefined_* helpers when
// inlined (GCC bug 105593, fixed in 12.3/13): silenced for this file's intrinsics only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#define GPTOSS_I8_X86 1
#endif

namespace gptoss::cpu_fast {
namespace {

int64_t groups_of(int64_t cols) { return (cols / 32 + 3) / 4; }
int64_t q_offset(int64_t ng, int part) { return part * ng * 128; }
int64_t corr_offset(int64_t ng, int part) { return ng * 256 + part * ng * 64; }
int64_t dh_offset(int64_t ng, int part) { return ng * 512 + part * ((ng * 16 + 63) / 64 * 64); }

// 2 * E2M1 + 12 for each nibble: the unsigned weight codes of the dot products.
constexpr uint8_t kOffsetCodes[16] = {12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0};
constexpr int kOffset = 12;
// kOffsetCodes 4 times over: the 64-byte VPERMB table (its first 32 bytes the 2 x 16 VPSHUFB one),
// built once here and not per tile (the byte loop was ~10% of a 2-row tile's time).
struct LutBytes {
  alignas(64) uint8_t b[64];
  constexpr LutBytes() : b{} {
    for (int i = 0; i < 64; ++i) b[i] = kOffsetCodes[i & 15];
  }
};
constexpr LutBytes kLut;

#ifdef GPTOSS_I8_X86

// Per tile of up to 4 rows and T tokens: s[t][r][b] = 2^(e_rb - 127) * dh_t[b] for b < ng * 4
// (0 past the row's nb blocks). e = 0 gives 0 (2^-127 exactly would be subnormal; either way the
// block's products are below 6 * 2^-127 * max|x|).
template <int T>
__attribute__((target("avx2,fma"))) inline void row_scales(const float* const* dh,
                                                           const uint8_t* sc, int64_t nb,
                                                           int64_t ng, float* s) {
  for (int t = 0; t < T; ++t) {
    float* st = s + static_cast<int64_t>(t) * ng * 4;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
      int64_t e8;
      std::memcpy(&e8, sc + b, 8);
      const __m256i e = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(e8));
      const __m256 p = _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
      _mm256_storeu_ps(st + b, _mm256_mul_ps(p, _mm256_loadu_ps(dh[t] + b)));
    }
    for (; b < nb; ++b) {
      const uint32_t bits = static_cast<uint32_t>(sc[b]) << 23;
      float p;
      std::memcpy(&p, &bits, sizeof p);
      st[b] = p * dh[t][b];
    }
    for (; b < ng * 4; ++b) st[b] = 0.0f;
  }
}

// A tile's scales for RR rows x T tokens (row_scales) into s: row r, token t, block b at
// [(r * T + t) * ng * 4 + b].
template <int P, int T, int RR>
__attribute__((target("avx2,fma"))) inline const float* tile_scales(const uint8_t* const* act,
                                                                    const uint8_t* sc, int64_t nb,
                                                                    int64_t ng, float* s) {
  const float* dh[2] = {reinterpret_cast<const float*>(act[0] + dh_offset(ng, P - 1)),
                        reinterpret_cast<const float*>(act[T - 1] + dh_offset(ng, P - 1))};
  for (int r = 0; r < RR; ++r) row_scales<T>(dh, sc + r * nb, nb, ng, s + r * T * ng * 4);
  return s;
}
// The same in a per-thread buffer of T * RR * ng * 4 floats.
template <int P, int T, int RR>
__attribute__((target("avx2,fma"))) inline const float* tile_scales(const uint8_t* const* act,
                                                                    const uint8_t* sc, int64_t nb,
                                                                    int64_t ng) {
  thread_local std::vector<float> sbuf;
  const auto need = static_cast<size_t>(T * RR * ng * 4);
  if (sbuf.size() < need) sbuf.resize(need);
  return tile_scales<P, T, RR>(act, sc, nb, ng, sbuf.data());
}

__attribute__((target("avx2,fma"))) inline float sum8(__m256 v) {
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 d = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_movehdup_ps(d)));
}

// ---- AVX-512 VNNI (+ VBMI for the 64-entry byte table, VBMI2 for VPSHLDD, BW) -------------
#define GPTOSS_I8_AVX512 "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx512vbmi2,avx2,fma"

// The horizontal sum of a row's 16 lanes (GCC 12's _mm512_reduce_add_ps trips
// -Wmaybe-uninitialized in its own header): the GEMV's and the GEMM's one order.
__attribute__((target(GPTOSS_I8_AVX512))) inline float sum16(__m512 v) {
  const __m512 h = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  return sum8(_mm512_castps512_ps256(h));
}

// RR rows (at w[r], scales sc[r]) x T tokens over ng groups; out[t * ldo + r]. With 2 parts the
// combine 256 * S(q1) + S(q2) is one VPSHLDD (corr_2, corr_3). The lab forms of commit 2b7fdc6 (a
// shift and an add; the high nibbles by VPMULTISHIFTQB) are in bench/kernels/cpu/
// bench_mxfp4_stream.cc, held to this body's bits there.
//
// Inlined into its caller's row loop (rows_in_order), the tile's scales in a stack buffer (up to
// kStackGroups groups): streaming from DRAM on one thread, 21.2 GB/s median against 20.3 (16.7-20.8)
// as a function called per tile on a per-thread heap buffer, which the lab's own copy of this
// kernel (23 GB/s) had shown to be slow; either change alone did not help
// (bench/results/cpu-20b-vs-llamacpp.md, stop 22).
//
// kQ0 >= 0 (one token only: avx512_rows_at): the codes come in by aligned loads. The checkpoints'
// tensors start wherever the safetensors header ends (the gpt-oss-20b files: 32, 24 and 48 bytes
// past a 64-byte line) and 1440-byte rows alternate by 32 bytes, so most 64-byte code loads span two
// lines; tile row r then starts (kQ0 + 4 r) % 8 qwords past a line, and each group's codes are the
// row's two lines shifted by one VALIGNQ, the second line kept for the next group: the same bytes,
// so the same bits. Two threads streaming 1440-row calls from DRAM (lab, stop 24,
// bench/results/cpu-20b-vs-llamacpp.md): +5-7% in fast-bus seconds (42.4 vs 39.7 GB/s with the rows
// 24 bytes past a line, 44.0 vs 41.8 at 32; faster in 10 of 10 alternations each), one thread hot in
// L2 -4% (the extra shuffle); with two tokens (each load used twice) slower, so T = 2 keeps unaligned
// loads. In the model (random 20b, tg32, quiet window 14:18-14:30 of stop 25, one binary with a lab
// switch): the expert ops ~6% faster (gate_up lower in 23 of 29 pairs, down in 20), decode faster in
// all 5 pairs run in fast-bus seconds (+4.7% median) and in 9 of 13 slow ones.
constexpr int64_t kStackGroups = 64;
// Bytes [8 q, 8 q + 64) of the 128 bytes lo:hi, q = 1..7 (an immediate per case).
__attribute__((target(GPTOSS_I8_AVX512), always_inline)) inline __m512i qwords_from(int q, __m512i lo,
                                                                                   __m512i hi) {
  switch (q) {
    case 1: return _mm512_alignr_epi64(hi, lo, 1);
    case 2: return _mm512_alignr_epi64(hi, lo, 2);
    case 3: return _mm512_alignr_epi64(hi, lo, 3);
    case 4: return _mm512_alignr_epi64(hi, lo, 4);
    case 5: return _mm512_alignr_epi64(hi, lo, 5);
    case 6: return _mm512_alignr_epi64(hi, lo, 6);
    default: return _mm512_alignr_epi64(hi, lo, 7);
  }
}
template <int P, int T, int RR, int kQ0 = -1>
__attribute__((target(GPTOSS_I8_AVX512), always_inline)) inline void tile_avx512(
    const uint8_t* const* act, const uint8_t* w, const uint8_t* sc, int64_t nb, int64_t ng, float* out,
    int64_t ldo, const uint8_t* pf, int64_t pf_bytes) {
  // The table repeats every 16 bytes: VPERMB uses index bits 0-5, so bits 4-5 (the other nibble
  // after the 16-bit shift, or the high nibble itself) do not matter and need no mask.
  const __m512i lut = _mm512_load_si512(kLut.b);
  const __m512i sidx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const int64_t row_bytes = nb * 16;
  alignas(64) float stack_scales[T * RR * kStackGroups * 4];
  const float* sb = ng <= kStackGroups ? tile_scales<P, T, RR>(act, sc, nb, ng, stack_scales)
                                       : tile_scales<P, T, RR>(act, sc, nb, ng);
  // The prefetch range's lines spread evenly over the groups: lines [g L / ng, (g + 1) L / ng).
  const int64_t pf_total = pf ? (pf_bytes + 63) / 64 : 0;
  int64_t pf_next = 0;
  const int64_t full = nb / 4;
  const __mmask64 tail_mask = (nb % 4) ? (~0ull >> (64 - 16 * (nb % 4))) : ~0ull;
  // Each part's codes and corrections per token (corr_2, corr_3: the VPSHLDD form with 2 parts).
  const uint8_t* xq[P][T];
  const uint8_t* cq[P][T];
  for (int q = 0; q < P; ++q) {
    for (int t = 0; t < T; ++t) {
      xq[q][t] = act[t] + q_offset(ng, q);
      cq[q][t] = act[t] + corr_offset(ng, P == 2 ? 2 + q : q);
    }
  }
  __m512 acc[T][RR];
  for (int t = 0; t < T; ++t) {
    for (int r = 0; r < RR; ++r) acc[t][r] = _mm512_setzero_ps();
  }
  // kQ0 >= 0: the line at or before each row's start (line0) and the row's last line loaded (line).
  // Only lines inside the row are loaded (the line at or before its start may belong to another
  // buffer, which ASan reports): the first group, and a last full one whose next line passes the
  // row's end, take unaligned loads; the aligned groups start at g = 1 with line0 + 64.
  const uint8_t* line0[RR];
  __m512i line[RR];
  if constexpr (kQ0 >= 0) {
    for (int r = 0; r < RR; ++r) {
      line0[r] = w + r * row_bytes - 8 * ((kQ0 + 4 * r) % 8);
      line[r] = _mm512_setzero_si512();
    }
  }
  // One group of 4 blocks of every row per step; the last group may be partial (masked code loads).
  // A plain loop: as a lambda called per group, GCC kept the accumulators in memory (a store and
  // a load per row and group).
  for (int64_t g = 0; g < ng; ++g) {
    const bool tail = g == full;
    for (const int64_t e = (g + 1) * pf_total / ng; pf_next < e; ++pf_next) {
      _mm_prefetch(reinterpret_cast<const char*>(pf + pf_next * 64), _MM_HINT_T0);
    }
    __m512i xlo[P][T], xhi[P][T], corr[P][T];
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) {
#pragma GCC unroll 2
      for (int t = 0; t < T; ++t) {
        xlo[q][t] = _mm512_load_si512(xq[q][t] + g * 128);
        xhi[q][t] = _mm512_load_si512(xq[q][t] + g * 128 + 64);
        corr[q][t] = _mm512_load_si512(cq[q][t] + g * 64);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RR; ++r) {
      const uint8_t* p = w + r * row_bytes + g * 64;
      __m512i v;
      if (tail || kQ0 < 0) {
        v = tail ? _mm512_maskz_loadu_epi8(tail_mask, p) : _mm512_loadu_si512(p);
      } else if (const int q = (kQ0 + 4 * r) % 8; q == 0) {
        v = _mm512_load_si512(p);
      } else if (g == 0 || 64 * (g + 2) > 8 * q + row_bytes) {
        v = _mm512_loadu_si512(p);
      } else {  // lines line0 + 64 g and line0 + 64 (g + 1), both inside the row
        if (g == 1) line[r] = _mm512_load_si512(line0[r] + 64);
        const __m512i next = _mm512_load_si512(line0[r] + (g + 1) * 64);
        v = qwords_from(q, line[r], next);
        line[r] = next;
      }
      const __m512i lo = _mm512_permutexvar_epi8(v, lut);
      const __m512i hi = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), lut);
#pragma GCC unroll 2
      for (int t = 0; t < T; ++t) {
        __m512i a = _mm512_dpbusd_epi32(corr[0][t], lo, xlo[0][t]);
        a = _mm512_dpbusd_epi32(a, hi, xhi[0][t]);
        if constexpr (P == 2) {  // 256 * (part 1) + part 2, exact in int32
          a = _mm512_shldi_epi32(a, corr[1][t], 8);
          a = _mm512_dpbusd_epi32(a, lo, xlo[1][t]);
          a = _mm512_dpbusd_epi32(a, hi, xhi[1][t]);
        }
        const __m512 s = _mm512_permutexvar_ps(
            sidx, _mm512_castps128_ps512(_mm_loadu_ps(sb + (r * T + t) * ng * 4 + g * 4)));
        acc[t][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), s, acc[t][r]);
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    for (int r = 0; r < RR; ++r) out[t * ldo + r] = sum16(acc[t][r]);
  }
}

// ---- AVX-512 VNNI GEMM: TT tokens x RR rows per register tile -----------------------------------
// The activations in the GEMM's layout (pack_mxfp4_i8_gemm_act): per group one run of
// gemm_group_bytes(P) bytes, 64 each: q1 even, q1 odd, [q2 even, q2 odd,] the correction (corr_2
// with 2 parts, corr_0 with 1), [corr_3,] and the group's 4 scales dh spread to 16 f32 lanes (lane
// i: block 4g + i / 4; 1.0 for dh = 0, whose block's sums are 0), so that a token is one pointer
// and its group one offset. After the groups, 64 bytes of GemmActRange.
constexpr int64_t gemm_group_bytes(int P) { return P == 2 ? 7 * 64 : 4 * 64; }
// The exponent fields of a token's packed dh (all normal: min, max), or bad (a dh not a normal
// float: NaN from a non-finite activation, or subnormal), for the exponent-add scaling.
struct GemmActRange {
  int32_t min_exp, max_exp, bad;
};

// Per group the RR rows' codes go through the table once (lo, hi) for all TT tokens. A lane's
// integer sum is exact, the same integer as tile_avx512's, and is scaled by the GEMV's
// s = 2^(e - 127) * dh in one FMA, s formed without rounding wherever it is a normal float:
//  - kExpAdd: s = dh with (e - 127) added to its exponent field (one integer add; pw holds
//    (e - 127) << 23), for tiles whose scales and tokens' dh keep every s normal (gemm_rows_avx512
//    checks), the common case: the multiply pipes are the GEMM's limit on Zen 4 (12% faster);
//  - else (f32(sum) * 2^(e - 127)) * dh (the power of 2 exact; pw holds 2^(e - 127), 0 for e = 0
//    as row_scales).
// So per (row, token) the same FMAs in the same order and the same horizontal sum as the GEMV:
// its bits. A dh = 0 block (packed as 1.0) has sum 0 and adds +0 either way. pw: the tile's row
// scales spread to lanes (gemm_row_scales), [g][r][16].
template <int P, int RR, bool kExpAdd, int TT>
__attribute__((target(GPTOSS_I8_AVX512))) void gemm_tile_avx512(const uint8_t* const* gact,
                                                                const uint8_t* w, const float* pw,
                                                                int64_t nb, int64_t ng, float* out,
                                                                int64_t ldo) {
  constexpr int64_t S = gemm_group_bytes(P);
  const __m512i lut = _mm512_load_si512(kLut.b);
  const int64_t row_bytes = nb * 16;
  const int64_t full = nb / 4;
  const __mmask64 tail_mask = (nb % 4) ? (~0ull >> (64 - 16 * (nb % 4))) : ~0ull;
  const uint8_t* wr[RR];
  for (int r = 0; r < RR; ++r) wr[r] = w + r * row_bytes;
  __m512 acc[TT][RR];
  for (int t = 0; t < TT; ++t) {
    for (int r = 0; r < RR; ++r) acc[t][r] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < ng; ++g) {
    const bool tail = g == full;
    __m512i lo[RR], hi[RR];
#pragma GCC unroll 4
    for (int r = 0; r < RR; ++r) {
      const uint8_t* p = wr[r] + g * 64;
      const __m512i v = tail ? _mm512_maskz_loadu_epi8(tail_mask, p) : _mm512_loadu_si512(p);
      lo[r] = _mm512_permutexvar_epi8(v, lut);
      hi[r] = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), lut);
    }
    const float* pg = pw + g * RR * 16;
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) {
      const uint8_t* x = gact[t] + g * S;
      const __m512i x0 = _mm512_load_si512(x), x1 = _mm512_load_si512(x + 64);
      __m512i x2 = x0, x3 = x1, c3 = x0;
      if constexpr (P == 2) {
        x2 = _mm512_load_si512(x + 128);
        x3 = _mm512_load_si512(x + 192);
        c3 = _mm512_load_si512(x + 320);
      }
      const __m512i c = _mm512_load_si512(x + (P == 2 ? 256 : 128));
      const __m512 d = _mm512_load_ps(x + (P == 2 ? 384 : 192));
#pragma GCC unroll 4
      for (int r = 0; r < RR; ++r) {
        __m512i a = _mm512_dpbusd_epi32(c, lo[r], x0);
        a = _mm512_dpbusd_epi32(a, hi[r], x1);
        if constexpr (P == 2) {  // 256 * (part 1) + part 2, exact in int32
          a = _mm512_shldi_epi32(a, c3, 8);
          a = _mm512_dpbusd_epi32(a, lo[r], x2);
          a = _mm512_dpbusd_epi32(a, hi[r], x3);
        }
        if constexpr (kExpAdd) {
          const __m512 sc = _mm512_castsi512_ps(
              _mm512_add_epi32(_mm512_castps_si512(d), _mm512_load_si512(pg + r * 16)));
          acc[t][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), sc, acc[t][r]);
        } else {
          const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(a), _mm512_load_ps(pg + r * 16));
          acc[t][r] = _mm512_fmadd_ps(f, d, acc[t][r]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < TT; ++t) {
#pragma GCC unroll 4
    for (int r = 0; r < RR; ++r) out[t * ldo + r] = sum16(acc[t][r]);
  }
}

// The scales of `rows` rows spread to lanes for gemm_tile_avx512: pw[(g * rows + r) * 16 + i] for
// block 4g + i / 4: 2^(e - 127) as f32 bits (0 past nb, as row_scales), or with exp_add (e - 127)
// << 23 (0 past nb: s = dh there, times a sum of 0). pw 64-byte aligned.
__attribute__((target(GPTOSS_I8_AVX512))) void gemm_row_scales(const uint8_t* sc, int64_t nb,
                                                               int64_t ng, int64_t rows,
                                                               bool exp_add, float* pw) {
  const __m128i spread = _mm_set_epi8(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512i bias = _mm512_set1_epi32(exp_add ? 127 : 0);
  // Past nb: e = 127 gives shift 0 (exp_add); e = 0 gives 0.0 (the multiply form).
  const uint32_t pad = exp_add ? 0x7f7f7f7fu : 0u;
  const int64_t full = nb / 4;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* sr = sc + r * nb;
    for (int64_t g = 0; g < ng; ++g) {
      uint32_t e4 = pad;
      if (g < full) {
        std::memcpy(&e4, sr + 4 * g, 4);
      } else {
        std::memcpy(&e4, sr + 4 * g, static_cast<size_t>(nb - 4 * g));
      }
      const __m128i e = _mm_shuffle_epi8(_mm_cvtsi32_si128(static_cast<int>(e4)), spread);
      const __m512i v = _mm512_sub_epi32(_mm512_cvtepu8_epi32(e), bias);
      _mm512_store_si512(pw + (g * rows + r) * 16, _mm512_slli_epi32(v, 23));
    }
  }
}

// The smallest and largest of n bytes.
__attribute__((target(GPTOSS_I8_AVX512))) void byte_range(const uint8_t* p, int64_t n, int32_t* lo,
                                                          int32_t* hi) {
  __m512i mn = _mm512_set1_epi8(-1), mx = _mm512_setzero_si512();
  for (int64_t i = 0; i < n; i += 64) {
    const __mmask64 m = n - i >= 64 ? ~0ull : (~0ull >> (64 - (n - i)));
    mn = _mm512_min_epu8(mn, _mm512_mask_loadu_epi8(_mm512_set1_epi8(-1), m, p + i));
    mx = _mm512_max_epu8(mx, _mm512_maskz_loadu_epi8(m, p + i));
  }
  __m256i mn32 = _mm256_min_epu8(_mm512_castsi512_si256(mn), _mm512_extracti64x4_epi64(mn, 1));
  __m256i mx32 = _mm256_max_epu8(_mm512_castsi512_si256(mx), _mm512_extracti64x4_epi64(mx, 1));
  const __m128i mn16 =
      _mm_min_epu8(_mm256_castsi256_si128(mn32), _mm256_extracti128_si256(mn32, 1));
  const __m128i mx16 =
      _mm_max_epu8(_mm256_castsi256_si128(mx32), _mm256_extracti128_si256(mx32, 1));
  // MINPOS over the bytes widened to 16 bits (the max as 255 - the min of 255 - x).
  const __m128i lo16 =
      _mm_min_epu16(_mm_cvtepu8_epi16(mn16), _mm_cvtepu8_epi16(_mm_srli_si128(mn16, 8)));
  const __m128i nx = _mm_sub_epi8(_mm_set1_epi8(-1), mx16);
  const __m128i hi16 =
      _mm_min_epu16(_mm_cvtepu8_epi16(nx), _mm_cvtepu8_epi16(_mm_srli_si128(nx, 8)));
  *lo = _mm_extract_epi16(_mm_minpos_epu16(lo16), 0);
  *hi = 255 - _mm_extract_epi16(_mm_minpos_epu16(hi16), 0);
}

// All rows x T tokens on gemm_tile_avx512: rows in tiles of RR (then single rows), each tile's
// scales spread once, its codes (RR * cols / 2 bytes, in L1) read once per TT tokens.
using GemmTileFn = void (*)(const uint8_t* const*, const uint8_t*, const float*, int64_t, int64_t,
                            float*, int64_t);
template <int P, int RR, bool E, int... Ts>
constexpr GemmTileFn kGemmTiles[sizeof...(Ts)] = {gemm_tile_avx512<P, RR, E, Ts + 1>...};
template <int P, int RR, int TT, int... Ts>
void gemm_rows_avx512(std::integer_sequence<int, Ts...>, const uint8_t* const* gact, int T,
                      const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                      float* out, int64_t ldo) {
  const int64_t nb = cols / 32, ng = groups_of(cols), rb = nb * 16;
  struct alignas(64) Lanes {
    float f[16];
  };
  thread_local std::vector<Lanes> pw;
  pw.resize(static_cast<size_t>(RR * ng));
  // The tokens' dh exponent range (GemmActRange after the groups).
  int32_t dmin = 255, dmax = 0;
  bool bad = false;
  for (int t = 0; t < T; ++t) {
    GemmActRange a;
    std::memcpy(&a, gact[t] + ng * gemm_group_bytes(P), sizeof a);
    dmin = std::min(dmin, a.min_exp);
    dmax = std::max(dmax, a.max_exp);
    bad = bad || a.bad != 0;
  }
  // Exponent add where every s = 2^(e - 127) * dh of a tile is normal: e in [1, 254] and the sum
  // of the exponent fields dh + e - 127 in [1, 254]; checked for all rows at once, else per tile.
  auto exp_ok = [&](const uint8_t* sc, int64_t n) {
    int32_t emin, emax;
    byte_range(sc, n, &emin, &emax);
    return !bad && emin >= 1 && emax <= 254 && dmin + emin - 127 >= 1 && dmax + emax - 127 <= 254;
  };
  const bool all_exp = exp_ok(scales, rows * nb);
  for (int64_t r0 = 0; r0 < rows;) {
    const int64_t rr = rows - r0 >= RR ? RR : 1;
    const bool exp_add = all_exp || exp_ok(scales + r0 * nb, rr * nb);
    gemm_row_scales(scales + r0 * nb, nb, ng, rr, exp_add, pw.data()->f);
    const GemmTileFn* tiles =
        rr == RR ? (exp_add ? kGemmTiles<P, RR, true, Ts...> : kGemmTiles<P, RR, false, Ts...>)
                 : (exp_add ? kGemmTiles<P, 1, true, Ts...> : kGemmTiles<P, 1, false, Ts...>);
    for (int t0 = 0; t0 < T; t0 += TT) {
      const int tt = std::min(TT, T - t0);
      tiles[tt - 1](gact + t0, blocks + r0 * rb, pw.data()->f, nb, ng, out + t0 * ldo + r0, ldo);
    }
    r0 += rr;
  }
}

// ---- AVX2 (VPSHUFB table, VPMADDUBSW + VPMADDWD) ---------------------------------------------
// Half a group (2 blocks, 32 code bytes) per step; the int16 sums of the even and odd halves
// (|2 * (24 * 127) * 2| < 2^15) are added before widening, so the int32 lanes are exact as above.
template <int P, int T, int RR>
__attribute__((target("avx2,fma"))) void tile_avx2(const uint8_t* const* act, const uint8_t* w,
                                                   const uint8_t* sc, int64_t nb, int64_t ng,
                                                   float* out, int64_t ldo, const uint8_t* pf,
                                                   int64_t pf_bytes) {
  const __m256i lut = _mm256_load_si256(reinterpret_cast<const __m256i*>(kLut.b));
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i sidx[2] = {_mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0),
                           _mm256_set_epi32(3, 3, 3, 3, 2, 2, 2, 2)};
  const int64_t row_bytes = nb * 16;
  const float* sb = tile_scales<P, T, RR>(act, sc, nb, ng);
  const int64_t pf_lines = pf ? (pf_bytes + 64 * ng - 1) / (64 * ng) : 0;
  __m256 acc[T][RR];
  for (int t = 0; t < T; ++t) {
    for (int r = 0; r < RR; ++r) acc[t][r] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t l = 0; l < pf_lines; ++l) {
      const int64_t o = (g * pf_lines + l) * 64;
      if (o < pf_bytes) _mm_prefetch(reinterpret_cast<const char*>(pf + o), _MM_HINT_T0);
    }
    for (int h = 0; h < 2; ++h) {
      const int64_t b0 = 4 * g + 2 * h;  // first block of this half
      if (b0 >= nb) break;
      __m256i xlo[P][T], xhi[P][T], corr[P][T];
      for (int q = 0; q < P; ++q) {
        for (int t = 0; t < T; ++t) {
          const uint8_t* aq = act[t] + q_offset(ng, q) + g * 128 + 32 * h;
          xlo[q][t] = _mm256_load_si256(reinterpret_cast<const __m256i*>(aq));
          xhi[q][t] = _mm256_load_si256(reinterpret_cast<const __m256i*>(aq + 64));
          corr[q][t] = _mm256_load_si256(
              reinterpret_cast<const __m256i*>(act[t] + corr_offset(ng, q) + g * 64 + 32 * h));
        }
      }
      for (int r = 0; r < RR; ++r) {
        const uint8_t* p = w + r * row_bytes + b0 * 16;
        const __m256i v =
            b0 + 2 <= nb
                ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                : _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, nib));
        const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
        for (int t = 0; t < T; ++t) {
          const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo[0][t]),
                                               _mm256_maddubs_epi16(hi, xhi[0][t]));
          __m256i a = _mm256_add_epi32(_mm256_madd_epi16(s16, ones), corr[0][t]);
          if constexpr (P == 2) {  // 256 * (part 1) + part 2, exact in int32
            const __m256i s16b = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo[1][t]),
                                                  _mm256_maddubs_epi16(hi, xhi[1][t]));
            a = _mm256_add_epi32(_mm256_slli_epi32(a, 8),
                                 _mm256_add_epi32(_mm256_madd_epi16(s16b, ones), corr[1][t]));
          }
          const __m256 s = _mm256_permutevar8x32_ps(
              _mm256_castps128_ps256(_mm_loadu_ps(sb + (r * T + t) * ng * 4 + g * 4)), sidx[h]);
          acc[t][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), s, acc[t][r]);
        }
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    for (int r = 0; r < RR; ++r) out[t * ldo + r] = sum8(acc[t][r]);
  }
}

// All rows in tiles of 4 then single rows (kTile4, kTile1: one body's tile_* for RR = 4 and 1); a
// tile prefetches the next tile's codes while it runs and the next tile's scales before it
// starts; the first tile's codes are prefetched here.
using TileFn = void (*)(const uint8_t* const*, const uint8_t*, const uint8_t*, int64_t, int64_t,
                        float*, int64_t, const uint8_t*, int64_t);
template <TileFn kTile4, TileFn kTile1>
void rows_in_tiles(const uint8_t* const* act, const uint8_t* blocks, const uint8_t* scales,
                   int64_t cols, int64_t rows, float* out, int64_t ldo) {
  const int64_t nb = cols / 32, ng = groups_of(cols), rb = nb * 16;
  for (int64_t o = 0; o < std::min<int64_t>(rows, 4) * rb; o += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(blocks + o), _MM_HINT_T0);
  }
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const int64_t next = std::min<int64_t>(rows - (r + 4), 4);
    if (next > 0) _mm_prefetch(reinterpret_cast<const char*>(scales + (r + 4) * nb), _MM_HINT_T0);
    kTile4(act, blocks + r * rb, scales + r * nb, nb, ng, out + r, ldo,
           next > 0 ? blocks + (r + 4) * rb : nullptr, next * rb);
  }
  for (; r < rows; ++r)
    kTile1(act, blocks + r * rb, scales + r * nb, nb, ng, out + r, ldo, nullptr, 0);
}

// All rows RR at a time (kTileRR, then kTile1 for the rows % RR left), in the order of memory: the
// AVX-512 body's order. A 4-row tile of neighbouring rows (rows_in_tiles) reads 4 code streams
// 1440 bytes apart, interleaved in the same 4 KB pages, which the hardware prefetchers follow badly
// on AMD Zen 4 (bench/kernels/cpu/bench_mxfp4_stream.cc, bench/results/cpu-mxfp4-gemv.md); RR = 1
// or 2 keeps the codes one forward stream (2 when RR = 2, one row apart), with a software prefetch
// kDist bytes ahead of each tile's own range (0: none; the hardware prefetchers alone). A row's
// sums are the same in any order: the same bits as rows_in_tiles. AVX-512 only: the tiles are
// inlined here (tile_avx512).
template <TileFn kTileRR, int RR, TileFn kTile1, int64_t kDist>
__attribute__((target(GPTOSS_I8_AVX512))) void rows_in_order(const uint8_t* const* act,
                                                            const uint8_t* blocks,
                                                            const uint8_t* scales, int64_t cols,
                                                            int64_t rows, float* out, int64_t ldo) {
  const int64_t nb = cols / 32, ng = groups_of(cols), rb = nb * 16;
  const uint8_t* end = blocks + rows * rb;
  auto pf_of = [&](int64_t r, int64_t n) {  // the range kDist bytes past rows [r, r + n)
    const uint8_t* p = blocks + r * rb + kDist;
    return std::pair<const uint8_t*, int64_t>(kDist > 0 && p < end ? p : nullptr,
                                              kDist > 0 && p < end ? std::min(n * rb, end - p) : 0);
  };
  for (int64_t o = 0; o < std::min(kDist, rows * rb); o += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(blocks + o), _MM_HINT_T0);
  }
  int64_t r = 0;
  for (; r + RR <= rows; r += RR) {
    const auto [pf, pf_bytes] = pf_of(r, RR);
    kTileRR(act, blocks + r * rb, scales + r * nb, nb, ng, out + r, ldo, pf, pf_bytes);
  }
  for (; r < rows; ++r) {
    const auto [pf, pf_bytes] = pf_of(r, 1);
    kTile1(act, blocks + r * rb, scales + r * nb, nb, ng, out + r, ldo, pf, pf_bytes);
  }
}

enum class Variant { kNone, kAvx2, kAvx512 };

Variant pick() {
  __builtin_cpu_init();
  // GPTOSS_CPU_FAST_MOE_I8_TARGET=avx2 forces the AVX2 body (tests of both on one machine), as
  // does GPTOSS_CPU_FAST_SIMD=avx2 (every cpu-fast kernel as on an AVX2 machine, simd_limit).
  const char* force = std::getenv("GPTOSS_CPU_FAST_MOE_I8_TARGET");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if ((force && std::strcmp(force, "avx2") == 0) || simd_limit().avx2) return avx2 ? Variant::kAvx2 : Variant::kNone;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") && avx2) {
    return Variant::kAvx512;
  }
  return avx2 ? Variant::kAvx2 : Variant::kNone;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#else
enum class Variant { kNone };
Variant pick() { return Variant::kNone; }
#endif

Variant variant() {
  static const Variant v = pick();
  return v;
}

}  // namespace

bool mxfp4_i8_usable() { return variant() != Variant::kNone; }

const char* mxfp4_i8_target() {
#ifdef GPTOSS_I8_X86
  switch (variant()) {
    case Variant::kAvx512:
      return "avx512-vnni";
    case Variant::kAvx2:
      return "avx2";
    default:
      return "no AVX2";
  }
#else
  return "not x86-64";
#endif
}

int64_t mxfp4_i8_act_bytes(int64_t cols) {
  const int64_t ng = groups_of(cols);
  return dh_offset(ng, 2);
}

namespace {

// The VPSHLDD form of 256 * corr_0 + corr_1 (layout above); |corr| <= 12 * 8 * 127.
void finish_corr(uint8_t* out, int64_t ng, int32_t* const* corr) {
  auto* corr_hi = reinterpret_cast<int32_t*>(out + corr_offset(ng, 2));
  auto* corr_lo = reinterpret_cast<uint32_t*>(out + corr_offset(ng, 3));
  for (int64_t i = 0; i < ng * 16; ++i) {
    corr_hi[i] = corr[0][i] + (corr[1][i] >> 8);
    corr_lo[i] = (static_cast<uint32_t>(corr[1][i]) & 255u) << 24;
  }
}

#ifdef GPTOSS_I8_X86
// quantize_mxfp4_i8_act's blocks on AVX-512: the same operations per element (max |x|, d = amax /
// 127, id = 1 / d, q1 = round-to-nearest-even(x * id) clamped, r = fma(-d, q1, x), q2 =
// round((r * id) * 256) clamped; VCVTPS2DQ rounds as lrint and turns NaN into INT_MIN as lrintf
// does, clamped to -127 either way), so the same bytes as the portable loop.
__attribute__((target(GPTOSS_I8_AVX512))) void quantize_blocks_avx512(const float* x, int64_t nb,
                                                                      int64_t ng, uint8_t* out,
                                                                      int32_t* const* corr,
                                                                      float* const* dh) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * 32), x1 = _mm512_loadu_ps(x + b * 32 + 16);
    // Finite: |x| <= FLT_MAX, false for NaN (unordered) and infinities.
    const __m512 a0 = _mm512_abs_ps(x0), a1 = _mm512_abs_ps(x1);
    const __m512 big = _mm512_set1_ps(std::numeric_limits<float>::max());
    const bool finite = (_mm512_cmp_ps_mask(a0, big, _CMP_LE_OQ) &
                         _mm512_cmp_ps_mask(a1, big, _CMP_LE_OQ)) == 0xffff;
    const __m512 m = _mm512_max_ps(a0, a1);
    const __m256 m8 =
        _mm256_max_ps(_mm512_castps512_ps256(m),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(m), 1)));
    const __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    const __m128 m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    const float amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
    const float d = finite ? amax / 127.0f : 0.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    const __m512 vd = _mm512_set1_ps(d), vid = _mm512_set1_ps(id), k256 = _mm512_set1_ps(256.0f);
    __m512i q[2][2];  // [part][elements 0-15, 16-31]
    for (int h = 0; h < 2; ++h) {
      const __m512 v = h ? x1 : x0;
      const __m512i q1 =
          _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, vid)), lo), hi);
      const __m512 r = _mm512_fnmadd_ps(vd, _mm512_cvtepi32_ps(q1), v);
      q[0][h] = q1;
      q[1][h] = _mm512_min_epi32(
          _mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_mul_ps(r, vid), k256)), lo), hi);
    }
    const int64_t g = b / 4, k = b % 4;
    for (int part = 0; part < 2; ++part) {
      const __m512i qe = _mm512_permutex2var_epi32(q[part][0], even, q[part][1]);
      const __m512i qo = _mm512_permutex2var_epi32(q[part][0], odd, q[part][1]);
      uint8_t* qp = out + q_offset(ng, part) + g * 128 + 16 * k;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qp), _mm512_cvtepi32_epi8(qe));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qp + 64), _mm512_cvtepi32_epi8(qo));
      // corr lane 4k + i: -12 * the sum of the even and odd elements 4i..4i+3.
      alignas(64) int32_t sum[16];
      _mm512_store_si512(sum, _mm512_add_epi32(qe, qo));
      for (int i = 0; i < 4; ++i) {
        corr[part][g * 16 + 4 * k + i] =
            -kOffset * (sum[4 * i] + sum[4 * i + 1] + sum[4 * i + 2] + sum[4 * i + 3]);
      }
    }
    dh[0][b] = finite ? 0.5f * d : std::numeric_limits<float>::quiet_NaN();
    dh[1][b] = dh[0][b] / 256.0f;
  }
}
#endif

// The portable loop over the blocks (every CPU; the AVX-512 body writes the same bytes).
void quantize_blocks_portable(const float* x, int64_t nb, int64_t ng, uint8_t* out,
                              int32_t* const* corr, float* const* dh) {
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    bool finite = true;
    for (int i = 0; i < 32; ++i) {
      amax = std::max(amax, std::fabs(xb[i]));
      finite = finite && std::isfinite(xb[i]);
    }
    const float d = finite ? amax / 127.0f : 0.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    const int64_t g = b / 4, k = b % 4;
    for (int j = 0; j < 16; ++j) {
      for (int odd = 0; odd < 2; ++odd) {
        const float v = xb[2 * j + odd];
        const auto q1 = static_cast<int8_t>(std::clamp(std::lrint(v * id), -127L, 127L));
        // The residual (|r| <= d / 2 up to rounding) in steps of d / 256, rounded once (a fused
        // multiply-add, as the AVX-512 body; a separate multiply and subtract gave other q2 bytes
        // where GCC contracted one form and not the other).
        const float r = std::fma(-d, static_cast<float>(q1), v);
        const auto q2 = static_cast<int8_t>(std::clamp(std::lrint(r * id * 256.0f), -127L, 127L));
        const int8_t qs[2] = {q1, q2};
        for (int part = 0; part < 2; ++part) {
          reinterpret_cast<int8_t*>(out + q_offset(ng, part))[g * 128 + 64 * odd + 16 * k + j] =
              qs[part];
          corr[part][g * 16 + 4 * k + j / 4] -= kOffset * qs[part];
        }
      }
    }
    // A non-finite activation makes the block's products NaN, as in the f32 path (NaN * w).
    dh[0][b] = finite ? 0.5f * d : std::numeric_limits<float>::quiet_NaN();
    dh[1][b] = dh[0][b] / 256.0f;
  }
}

// Zeroes out (the padding blocks stay zero), quantizes the blocks with `blocks`, then the
// corrections' VPSHLDD form.
using QuantizeBlocksFn = void (*)(const float*, int64_t, int64_t, uint8_t*, int32_t* const*,
                                  float* const*);
void quantize_with(QuantizeBlocksFn blocks, const float* x, int64_t cols, uint8_t* out) {
  const int64_t nb = cols / 32, ng = groups_of(cols);
  std::memset(out, 0, static_cast<size_t>(mxfp4_i8_act_bytes(cols)));
  int32_t* corr[2] = {reinterpret_cast<int32_t*>(out + corr_offset(ng, 0)),
                      reinterpret_cast<int32_t*>(out + corr_offset(ng, 1))};
  float* dh[2] = {reinterpret_cast<float*>(out + dh_offset(ng, 0)),
                  reinterpret_cast<float*>(out + dh_offset(ng, 1))};
  blocks(x, nb, ng, out, corr, dh);
  finish_corr(out, ng, corr);
}

}  // namespace

void quantize_mxfp4_i8_act(const float* x, int64_t cols, uint8_t* out) {
#ifdef GPTOSS_I8_X86
  if (variant() == Variant::kAvx512) {
    quantize_with(quantize_blocks_avx512, x, cols, out);
    return;
  }
#endif
  quantize_with(quantize_blocks_portable, x, cols, out);
}

void quantize_mxfp4_i8_act_portable(const float* x, int64_t cols, uint8_t* out) {
  quantize_with(quantize_blocks_portable, x, cols, out);
}

void dequantize_mxfp4_i8_act(const uint8_t* act, int64_t cols, int parts, double* xd) {
  const int64_t nb = cols / 32, ng = groups_of(cols);
  const auto* dh = reinterpret_cast<const float*>(act + dh_offset(ng, 0));
  for (int64_t b = 0; b < nb; ++b) {
    for (int j = 0; j < 16; ++j) {
      for (int odd = 0; odd < 2; ++odd) {
        const int64_t at = (b / 4) * 128 + 64 * odd + 16 * (b % 4) + j;
        const double q1 = reinterpret_cast<const int8_t*>(act + q_offset(ng, 0))[at];
        const double q2 =
            parts == 2 ? reinterpret_cast<const int8_t*>(act + q_offset(ng, 1))[at] : 0.0;
        xd[b * 32 + 2 * j + odd] = 2.0 * dh[b] * (q1 + q2 / 256.0);
      }
    }
  }
}

namespace {

#ifdef GPTOSS_I8_X86
// The AVX-512 body's rows per tile and software prefetch distance (rows_in_order).
constexpr int kAvx512Rows = 2;
constexpr int64_t kAvx512Dist = 4096;
// The AVX-512 GEMM's register tile: rows x tokens.
constexpr int kGemmRows = 4, kGemmTokens = 3;
#endif

// The body for (variant, P, T), or nullptr where none runs.
using RowsFn = void (*)(const uint8_t* const*, const uint8_t*, const uint8_t*, int64_t, int64_t,
                        float*, int64_t);
#ifdef GPTOSS_I8_X86
// The AVX-512 body for (P, T), its codes loaded as kQ0 says (tile_avx512; -1: unaligned loads).
// With kQ0 >= 0 every tile (and the single row left of an odd count) starts at an even row: the
// call's first row's offset in a line is every tile's.
static_assert(kAvx512Rows == 2, "tile_avx512's kQ0 assumes tiles of 2 rows");
template <int P, int T, int kQ0>
constexpr RowsFn avx512_rows() {
  return rows_in_order<tile_avx512<P, T, kAvx512Rows, kQ0>, kAvx512Rows, tile_avx512<P, T, 1, kQ0>,
                       kAvx512Dist>;
}
// Aligned code loads where the rows alternate by 32 bytes (cols / 32 * 16 = 32 mod 64, as 2880
// columns' 1440-byte rows) and the call's first row starts on a qword; else unaligned ones.
template <int P, int T, int... Qs>
RowsFn avx512_rows_at(const uint8_t* blocks, int64_t cols, std::integer_sequence<int, Qs...>) {
  static constexpr RowsFn kAligned[] = {avx512_rows<P, T, Qs>()...};
  const auto at = reinterpret_cast<uintptr_t>(blocks);
  if (cols / 32 * 16 % 64 == 32 && at % 8 == 0) return kAligned[at % 64 / 8];
  return avx512_rows<P, T, -1>();
}
#endif
template <int P>
RowsFn rows_fn(Variant v, int T, [[maybe_unused]] const uint8_t* blocks, [[maybe_unused]] int64_t cols) {
  [[maybe_unused]] const bool two = T == 2;
  switch (v) {
#ifdef GPTOSS_I8_X86
    case Variant::kAvx512:
      // Two tokens use each code load twice: aligned loads were slower there (lab, stop 24).
      return two ? avx512_rows<P, 2, -1>()
                 : avx512_rows_at<P, 1>(blocks, cols, std::make_integer_sequence<int, 8>{});
    case Variant::kAvx2:
      return two ? rows_in_tiles<tile_avx2<P, 2, 4>, tile_avx2<P, 2, 1>>
                 : rows_in_tiles<tile_avx2<P, 1, 4>, tile_avx2<P, 1, 1>>;
#endif
    default:
      return nullptr;
  }
}

// The body a test or bench names ("avx512-vnni", "avx2") where it can run here, else kNone.
Variant named_variant(const char* target) {
#ifdef GPTOSS_I8_X86
  const Variant best = variant();
  if (std::strcmp(target, "avx512-vnni") == 0 && best == Variant::kAvx512) return Variant::kAvx512;
  // AVX2 runs wherever the AVX-512 body does (or the dispatch chose it).
  if (std::strcmp(target, "avx2") == 0 && best != Variant::kNone) return Variant::kAvx2;
#endif
  (void)target;
  return Variant::kNone;
}

bool run(Variant v, const uint8_t* const* act, int T, int parts, const uint8_t* blocks,
         const uint8_t* scales, int64_t cols, int64_t rows, float* out, int64_t ldo) {
  const RowsFn fn = parts == 2 ? rows_fn<2>(v, T, blocks, cols) : rows_fn<1>(v, T, blocks, cols);
  if (fn == nullptr) return false;
  fn(act, blocks, scales, cols, rows, out, ldo);
  return true;
}

}  // namespace

void gemv_mxfp4_i8(const uint8_t* const* act, int T, int parts, const uint8_t* blocks,
                   const uint8_t* scales, int64_t cols, int64_t rows, float* out, int64_t ldo) {
  // Callers check mxfp4_i8_usable().
  if (!run(variant(), act, T, parts, blocks, scales, cols, rows, out, ldo)) std::abort();
}

bool gemv_mxfp4_i8_on(const char* target, const uint8_t* const* act, int T, int parts,
                      const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                      float* out, int64_t ldo) {
  return run(named_variant(target), act, T, parts, blocks, scales, cols, rows, out, ldo);
}

bool mxfp4_i8_gemm_usable() {
#ifdef GPTOSS_I8_X86
  return variant() == Variant::kAvx512;
#else
  return false;
#endif
}

int64_t mxfp4_i8_gemm_act_bytes(int64_t cols, int parts) {
#ifdef GPTOSS_I8_X86
  return groups_of(cols) * gemm_group_bytes(parts == 2 ? 2 : 1) + 64;
#else
  (void)cols, (void)parts;
  return 0;
#endif
}

void pack_mxfp4_i8_gemm_act(const uint8_t* act, int64_t cols, int parts, uint8_t* out) {
#ifdef GPTOSS_I8_X86
  const int64_t ng = groups_of(cols);
  const int P = parts == 2 ? 2 : 1;
  const auto* dh = reinterpret_cast<const float*>(act + dh_offset(ng, P - 1));
  GemmActRange range{255, 0, 0};
  for (int64_t b = 0; b < ng * 4; ++b) {
    const float v = dh[b] == 0.0f ? 1.0f : dh[b];
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    const auto e = static_cast<int32_t>((bits >> 23) & 255);
    range.min_exp = std::min(range.min_exp, e);
    range.max_exp = std::max(range.max_exp, e);
    if (e == 0 || e == 255) range.bad = 1;
  }
  std::memset(out + ng * gemm_group_bytes(P), 0, 64);
  std::memcpy(out + ng * gemm_group_bytes(P), &range, sizeof range);
  for (int64_t g = 0; g < ng; ++g) {
    uint8_t* o = out + g * gemm_group_bytes(P);
    for (int q = 0; q < P; ++q) std::memcpy(o + 128 * q, act + q_offset(ng, q) + g * 128, 128);
    for (int q = 0; q < P; ++q) {
      std::memcpy(o + 128 * P + 64 * q, act + corr_offset(ng, P == 2 ? 2 + q : 0) + g * 64, 64);
    }
    auto* d = reinterpret_cast<float*>(o + 192 * P);
    for (int i = 0; i < 16; ++i) d[i] = dh[4 * g + i / 4] == 0.0f ? 1.0f : dh[4 * g + i / 4];
  }
#else
  (void)act, (void)cols, (void)parts, (void)out;
#endif
}

void gemm_mxfp4_i8(const uint8_t* const* gact, int T, int parts, const uint8_t* blocks,
                   const uint8_t* scales, int64_t cols, int64_t rows, float* out, int64_t ldo) {
#ifdef GPTOSS_I8_X86
  if (mxfp4_i8_gemm_usable()) {
    constexpr int TT = kGemmTokens;
    const auto tts = std::make_integer_sequence<int, TT>();
    if (parts == 2) {
      gemm_rows_avx512<2, kGemmRows, TT>(tts, gact, T, blocks, scales, cols, rows, out, ldo);
    } else {
      gemm_rows_avx512<1, kGemmRows, TT>(tts, gact, T, blocks, scales, cols, rows, out, ldo);
    }
    return;
  }
#endif
  (void)gact, (void)T, (void)parts, (void)blocks, (void)scales, (void)cols, (void)rows, (void)out,
      (void)ldo;
  std::abort();  // callers check mxfp4_i8_gemm_usable()
}

}  // namespace gptoss::cpu_fast
