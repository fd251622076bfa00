// Runtime-dispatched (Highway foreach_target) bodies of kernels_fast.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu_fast/kernels_fast.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifndef GPTOSS_CPU_FAST_KERNELS_TABLES
#define GPTOSS_CPU_FAST_KERNELS_TABLES
namespace gptoss::cpu_fast::detail {

// E8M0 scale byte -> 2^(e - 127) (exact; e = 255 gives inf like ldexp), and half of it for the
// doubled int8 codes.
struct Scales {
  float full[256];
  float half[256];
  Scales() {
    for (int e = 0; e < 256; ++e) {
      full[e] = std::ldexp(1.0f, e - 127);
      half[e] = std::ldexp(1.0f, e - 128);
    }
  }
};
const Scales kScales;

alignas(64) const float kE2M1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                     -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
alignas(16) const int8_t kDoubledE2M1[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// For each scale byte e, the 16 E2M1 values times 2^(e - 127), each rounded as the f32 product
// kE2M1[i] * kScales.full[e] (the same bits a kernel multiplying at run time gets): a GEMV loads
// a block's table (one 64-byte line, 16 KB in all, the few scales a layer uses stay in L1)
// instead of multiplying it, one vector uop less per block and row.
//
// magnitude_xor (AVX2, whose VPERMPS has 8 entries): entry m < 8 is table[e][m] (the positive
// magnitude) with its bits XORed with m << 28, so that XORing a looked-up entry with nibble << 28
// (nibble = sign << 3 | m) cancels the index bits and leaves the sign in bit 31: the bits of
// table[e][nibble] for every nibble (negating an f32 is flipping bit 31, exactly).
struct ScaledE2M1 {
  alignas(64) float table[256][16];
  alignas(32) float magnitude_xor[256][8];
  ScaledE2M1() {
    for (int e = 0; e < 256; ++e) {
      for (int i = 0; i < 16; ++i) table[e][i] = kE2M1[i] * kScales.full[e];
      for (uint32_t m = 0; m < 8; ++m) {
        uint32_t bits;
        std::memcpy(&bits, &table[e][m], sizeof bits);
        bits ^= m << 28;
        std::memcpy(&magnitude_xor[e][m], &bits, sizeof bits);
      }
    }
  }
};
const ScaledE2M1 kScaledE2M1;

inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace gptoss::cpu_fast::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace gptoss::cpu_fast::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace dt = gptoss::cpu_fast::detail;

// At most 16 f32 lanes so that lane counts always divide the 16 even / 16 odd halves of a chunk.
using DF = hn::CappedTag<float, 16>;

// ---- Decoding weights to f32 in chunk order --------------------------------------------------
// bf16: a 32-bit load of two bf16 words (2i, 2i+1): shifting left by 16 gives element 2i as f32,
// masking the low half gives element 2i + 1. No shuffles: the even/odd split is chunk order.
// Rows of n elements at w + r * stride go to out + r * ldo.
void Bf16Decode(const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n, int64_t rows, float* HWY_RESTRICT out,
                int64_t ldo) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto hi = hn::Set(du, 0xFFFF0000u);
  const int64_t chunks = n / 32;
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* wr = w + r * stride;
    float* o = out + r * ldo;
    for (int64_t c = 0; c < chunks; ++c) {
      for (int64_t l = 0; l < 16; l += N) {
        const auto u = hn::LoadU(du, reinterpret_cast<const uint32_t*>(wr + 32 * c + 2 * l));
        hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(u)), df, o + 32 * c + l);
        hn::StoreU(hn::BitCast(df, hn::And(u, hi)), df, o + 32 * c + 16 + l);
      }
    }
    for (int64_t i = chunks * 32; i < n; ++i) o[i] = dt::bf16_bits_to_f32(wr[i]);
  }
}

// MXFP4: byte j of a block holds elements 2j (low nibble) and 2j + 1 (high nibble), so the low
// nibbles are the block's 16 even elements and the high nibbles its 16 odd ones: chunk order.
// `nblk` blocks of each of `rows` rows (row r's blocks start at block r * row_blocks) go to
// out + r * ldo; every value is E2M1 * 2^(e - 127), exactly as the exact path decodes it.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// 16 f32 lanes: a block's 16 bytes widen to 16 lanes and a 16-entry f32 table (the E2M1 values
// times the block scale, ScaledE2M1) is looked up by each nibble (VPERMPS).
void Mxfp4Decode(const uint8_t* HWY_RESTRICT blocks, const uint8_t* HWY_RESTRICT scales, int64_t row_blocks,
                 int64_t rows, int64_t nblk, float* HWY_RESTRICT out, int64_t ldo) {
  const hn::Full512<float> df;
  const hn::Full512<int32_t> di;
  const hn::Full128<uint8_t> d8;
  const auto mask = hn::Set(di, 15);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* bl = blocks + r * row_blocks * 16;
    const uint8_t* sc = scales + r * row_blocks;
    float* o = out + r * ldo;
    for (int64_t b = 0; b < nblk; ++b) {
      const auto scaled = hn::Load(df, dt::kScaledE2M1.table[sc[b]]);
      const auto v = hn::BitCast(di, hn::PromoteTo(hn::Full512<uint32_t>(), hn::LoadU(d8, bl + 16 * b)));
      hn::StoreU(hn::TableLookupLanes(scaled, hn::IndicesFromVec(df, hn::And(v, mask))), df, o + 32 * b);
      hn::StoreU(hn::TableLookupLanes(scaled, hn::IndicesFromVec(df, hn::ShiftRight<4>(v))), df, o + 32 * b + 16);
    }
  }
}
#else
// Other targets: the nibbles become int8 codes at twice their value (a 16-byte table lookup,
// PSHUFB / TBL), widened to f32 and multiplied by half the scale.
void Mxfp4Decode(const uint8_t* HWY_RESTRICT blocks, const uint8_t* HWY_RESTRICT scales, int64_t row_blocks,
                 int64_t rows, int64_t nblk, float* HWY_RESTRICT out, int64_t ldo) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  alignas(16) int8_t q[32];
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* bl = blocks + r * row_blocks * 16;
    const uint8_t* sc = scales + r * row_blocks;
    float* o = out + r * ldo;
    for (int64_t b = 0; b < nblk; ++b) {
      const uint8_t* blk = bl + 16 * b;
#if HWY_TARGET == HWY_SCALAR
      for (int j = 0; j < 16; ++j) {
        q[j] = dt::kDoubledE2M1[blk[j] & 0x0f];
        q[16 + j] = dt::kDoubledE2M1[blk[j] >> 4];
      }
#else
      const hn::Full128<uint8_t> du8;
      const hn::Full128<int8_t> di8;
      const auto table = hn::Load(di8, dt::kDoubledE2M1);
      const auto v = hn::LoadU(du8, blk);
      hn::StoreU(hn::TableLookupBytes(table, hn::BitCast(di8, hn::And(v, hn::Set(du8, uint8_t{0x0f})))), di8, q);
      hn::StoreU(hn::TableLookupBytes(table, hn::BitCast(di8, hn::ShiftRight<4>(v))), di8, q + 16);
#endif
      const auto s = hn::Set(df, dt::kScales.half[sc[b]]);
      for (int64_t i = 0; i < 32; i += N) {
        hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(d32, hn::LoadU(d8, q + i))), s), df, o + 32 * b + i);
      }
    }
  }
}
#endif

void Bf16RowsToF32(const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n, int64_t rows, float* HWY_RESTRICT out) {
  Bf16Decode(w, stride, n, rows, out, n);
}

void Mxfp4RowsToF32(const uint8_t* HWY_RESTRICT blocks, const uint8_t* HWY_RESTRICT scales, int64_t cols, int64_t rows,
                    float* HWY_RESTRICT out) {
  Mxfp4Decode(blocks, scales, cols / 32, rows, cols / 32, out, cols);
}

// ---- f32 GEMM ---------------------------------------------------------------------------------
// Every output (token t, row r) is one f32 accumulator vector over the inner blocks of kBlock
// elements, reduced per block and added up block by block, whatever the tile shape or the number
// of tokens: results do not depend on the batch. The GEMVs below use the same tiles on weights
// decoded kBlock at a time, so a token gets the same bits alone (decode) or in a batch (prefill).
constexpr int64_t kBlock = 256;

// A TR x RR tile of out (TR tokens, RR weight rows; at most 4 x 4 = 16 accumulators) over the inner
// range [k0, k1): each loaded activation vector feeds RR FMAs and each weight vector TR. The tile's
// sums are stored (add = false) or added to out.
template <int TR, int RR>
HWY_INLINE void GemmTile(const float* const* x, const float* HWY_RESTRICT w, int64_t ldw, int64_t k0, int64_t k1,
                         bool add, float* HWY_RESTRICT out, int64_t ldo) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const float* x0 = x[0];
  const float* x1 = x[TR > 1 ? 1 : 0];
  const float* x2 = x[TR > 2 ? 2 : 0];
  const float* x3 = x[TR > 3 ? 3 : 0];
  const float* w0 = w;
  const float* w1 = w + (RR > 1 ? ldw : 0);
  const float* w2 = w + (RR > 2 ? 2 * ldw : 0);
  const float* w3 = w + (RR > 3 ? 3 * ldw : 0);
  auto c00 = hn::Zero(df), c01 = c00, c02 = c00, c03 = c00;
  auto c10 = c00, c11 = c00, c12 = c00, c13 = c00;
  auto c20 = c00, c21 = c00, c22 = c00, c23 = c00;
  auto c30 = c00, c31 = c00, c32 = c00, c33 = c00;
  int64_t i = k0;
  for (; i + N <= k1; i += N) {
    const auto v0 = hn::LoadU(df, w0 + i);
    const auto v1 = RR > 1 ? hn::LoadU(df, w1 + i) : v0;
    const auto v2 = RR > 2 ? hn::LoadU(df, w2 + i) : v0;
    const auto v3 = RR > 3 ? hn::LoadU(df, w3 + i) : v0;
#define GPTOSS_GEMM_ROW(t, xt)                                  \
  {                                                             \
    const auto u = hn::LoadU(df, xt + i);                       \
    c##t##0 = hn::MulAdd(u, v0, c##t##0);                       \
    if constexpr (RR > 1) c##t##1 = hn::MulAdd(u, v1, c##t##1); \
    if constexpr (RR > 2) c##t##2 = hn::MulAdd(u, v2, c##t##2); \
    if constexpr (RR > 3) c##t##3 = hn::MulAdd(u, v3, c##t##3); \
  }
    GPTOSS_GEMM_ROW(0, x0)
    if constexpr (TR > 1) GPTOSS_GEMM_ROW(1, x1)
    if constexpr (TR > 2) GPTOSS_GEMM_ROW(2, x2)
    if constexpr (TR > 3) GPTOSS_GEMM_ROW(3, x3)
#undef GPTOSS_GEMM_ROW
  }
  const float* xs[4] = {x0, x1, x2, x3};
  const float* ws[4] = {w0, w1, w2, w3};
  auto tail = [&](int t, int r) {
    float s = 0.0f;
    for (int64_t j = i; j < k1; ++j) s += xs[t][j] * ws[r][j];
    return s;
  };
#define GPTOSS_GEMM_OUT(t, r)                                                        \
  if (t < TR && r < RR) {                                                            \
    const float v = hn::GetLane(hn::SumOfLanes(df, c##t##r)) + tail(t, r);           \
    out[t * ldo + r] = add ? out[t * ldo + r] + v : v;                               \
  }
  GPTOSS_GEMM_OUT(0, 0) GPTOSS_GEMM_OUT(0, 1) GPTOSS_GEMM_OUT(0, 2) GPTOSS_GEMM_OUT(0, 3)
  GPTOSS_GEMM_OUT(1, 0) GPTOSS_GEMM_OUT(1, 1) GPTOSS_GEMM_OUT(1, 2) GPTOSS_GEMM_OUT(1, 3)
  GPTOSS_GEMM_OUT(2, 0) GPTOSS_GEMM_OUT(2, 1) GPTOSS_GEMM_OUT(2, 2) GPTOSS_GEMM_OUT(2, 3)
  GPTOSS_GEMM_OUT(3, 0) GPTOSS_GEMM_OUT(3, 1) GPTOSS_GEMM_OUT(3, 2) GPTOSS_GEMM_OUT(3, 3)
#undef GPTOSS_GEMM_OUT
}

void GemmF32(const float* const* x, int64_t T, const float* HWY_RESTRICT w, int64_t ldw, int64_t R, int64_t n,
             float* HWY_RESTRICT out, int64_t ldo) {
  // Blocks of the inner dimension small enough that the R weight rows of a block stay in L1 while
  // every 4-token tile passes over them (each tile's activations are reused by all row tiles).
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    const int64_t k1 = std::min(n, k0 + kBlock);
    const bool add = k0 > 0;
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) {
      int64_t r = 0;
      for (; r + 4 <= R; r += 4) GemmTile<4, 4>(x + t, w + r * ldw, ldw, k0, k1, add, out + t * ldo + r, ldo);
      for (; r < R; ++r) GemmTile<4, 1>(x + t, w + r * ldw, ldw, k0, k1, add, out + t * ldo + r, ldo);
    }
    for (; t < T; ++t) {
      int64_t r = 0;
      for (; r + 4 <= R; r += 4) GemmTile<1, 4>(x + t, w + r * ldw, ldw, k0, k1, add, out + t * ldo + r, ldo);
      for (; r < R; ++r) GemmTile<1, 1>(x + t, w + r * ldw, ldw, k0, k1, add, out + t * ldo + r, ldo);
    }
  }
}

// ---- bf16 GEMM of up to 16 rows: GemmF32's sums, the rows in the vector lanes --------------
// Several tokens against up to 16 bf16 weight rows (prefill's dense matmuls). GemmF32 keeps each
// output's inner products in the lanes of one accumulator and reduces it per kBlock (16 horizontal
// sums per 4 x 4 tile and block). AVX-512 computes the same sums with the 16 rows in the lanes
// instead: the rows widened into a k-major panel (element i of row r at wt[i * 16 + r]); lane l of
// GemmF32's accumulator (elements l, l + 16, ... of a block) is here one accumulator vector for all
// 16 rows, and the reduction (lanes l + l + 8, then + 4, + 2, + 1: SumOfLanes4's order) is vector
// adds: the same bits (tests: ResultsDoNotDependOnTheBatch, GemmBf16RowsIsGemmF32).
constexpr int64_t kGemmTokenBlock = 64;  // tokens per pass over the rows (their x stays in L2)

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// wt[i * 16 + r] = row r's element i in chunk order (rows >= R: 0), n a multiple of 32: a gather of
// the 16 rows' 32-bit words (2q, 2q + 1) of a chunk gives elements q (<< 16) and 16 + q (high half).
HWY_INLINE void Bf16RowsToKMajor(const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n, int64_t R,
                                 float* HWY_RESTRICT wt) {
  const __mmask16 m = static_cast<__mmask16>(R >= 16 ? 0xFFFFu : (1u << R) - 1u);
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(static_cast<int32_t>(stride * 2)));
  const __m512i hi = _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  for (int64_t c = 0; c < n / 32; ++c) {
    for (int64_t q = 0; q < 16; ++q) {
      const __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, w + 32 * c + 2 * q, 1);
      _mm512_storeu_si512(wt + (32 * c + q) * 16, _mm512_slli_epi32(g, 16));
      _mm512_storeu_si512(wt + (32 * c + 16 + q) * 16, _mm512_and_si512(g, hi));
    }
  }
}

// GemmF32's lanes L and L + 8 of TT tokens over S steps of 16 elements from k0 (wt at k0), added.
template <int TT, int L>
HWY_INLINE void KMajorLanes(const float* const* x, int64_t k0, const float* HWY_RESTRICT wt, int64_t S,
                            __m512 (&s)[TT]) {
  __m512 a[TT], b[TT];
#pragma GCC unroll 4
  for (int t = 0; t < TT; ++t) a[t] = b[t] = _mm512_setzero_ps();
  for (int64_t j = 0; j < S; ++j) {
    const float* wj = wt + (16 * j + L) * 16;
    const __m512 wa = _mm512_loadu_ps(wj), wb = _mm512_loadu_ps(wj + 8 * 16);
#pragma GCC unroll 4
    for (int t = 0; t < TT; ++t) {
      const float* xj = x[t] + k0 + 16 * j + L;
      a[t] = _mm512_fmadd_ps(_mm512_set1_ps(xj[0]), wa, a[t]);
      b[t] = _mm512_fmadd_ps(_mm512_set1_ps(xj[8]), wb, b[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < TT; ++t) s[t] = _mm512_add_ps(a[t], b[t]);
}

// Lanes H, H + 2, H + 4, H + 6 (each with its + 8): ((H + 4) + (H + 2 + H + 6)).
template <int TT, int H>
HWY_INLINE void KMajorHalf(const float* const* x, int64_t k0, const float* HWY_RESTRICT wt, int64_t S,
                           __m512 (&s2)[TT]) {
  __m512 s8a[TT], s8b[TT], s4[TT];
  KMajorLanes<TT, H>(x, k0, wt, S, s8a);
  KMajorLanes<TT, H + 4>(x, k0, wt, S, s8b);
#pragma GCC unroll 4
  for (int t = 0; t < TT; ++t) s4[t] = _mm512_add_ps(s8a[t], s8b[t]);
  KMajorLanes<TT, H + 2>(x, k0, wt, S, s8a);
  KMajorLanes<TT, H + 6>(x, k0, wt, S, s8b);
#pragma GCC unroll 4
  for (int t = 0; t < TT; ++t) s2[t] = _mm512_add_ps(s4[t], _mm512_add_ps(s8a[t], s8b[t]));
}

// TT tokens' outputs for the 16 rows (mask m) over one block: stored (add = false) or added.
template <int TT>
HWY_INLINE void KMajorTile(const float* const* x, int64_t k0, const float* HWY_RESTRICT wt, int64_t S, bool add,
                           __mmask16 m, float* HWY_RESTRICT out, int64_t ldo) {
  __m512 s0[TT], s1[TT];
  KMajorHalf<TT, 0>(x, k0, wt, S, s0);
  KMajorHalf<TT, 1>(x, k0, wt, S, s1);
#pragma GCC unroll 4
  for (int t = 0; t < TT; ++t) {
    // + 0.0f as GemmTile's empty tail adds it (a -0 sum becomes +0).
    __m512 v = _mm512_add_ps(_mm512_add_ps(s0[t], s1[t]), _mm512_setzero_ps());
    if (add) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, out + t * ldo), v);
    _mm512_mask_storeu_ps(out + t * ldo, m, v);
  }
}
#endif

void GemmBf16Rows(const float* const* x, int64_t T, const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n,
                  int64_t R, float* HWY_RESTRICT out, int64_t ldo) {
  thread_local std::vector<float> panel;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (R <= 16 && n % 32 == 0) {
    panel.resize(static_cast<size_t>(16 * n));
    Bf16RowsToKMajor(w, stride, n, R, panel.data());
    const __mmask16 m = static_cast<__mmask16>(R >= 16 ? 0xFFFFu : (1u << R) - 1u);
    for (int64_t t0 = 0; t0 < T; t0 += kGemmTokenBlock) {
      const int64_t t1 = std::min(T, t0 + kGemmTokenBlock);
      for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
        const int64_t S = (std::min(n, k0 + kBlock) - k0) / 16;
        const float* wk = panel.data() + k0 * 16;
        int64_t t = t0;
        for (; t + 4 <= t1; t += 4) KMajorTile<4>(x + t, k0, wk, S, k0 > 0, m, out + t * ldo, ldo);
        for (; t < t1; ++t) KMajorTile<1>(x + t, k0, wk, S, k0 > 0, m, out + t * ldo, ldo);
      }
    }
    return;
  }
#endif
  panel.resize(static_cast<size_t>(R * n));
  Bf16Decode(w, stride, n, R, panel.data(), n);
  for (int64_t t0 = 0; t0 < T; t0 += kGemmTokenBlock) {
    GemmF32(x + t0, std::min(kGemmTokenBlock, T - t0), panel.data(), n, R, n, out + t0 * ldo, ldo);
  }
}

// ---- GEMV (one token): decode kBlock elements of 4 rows into L1, then the GEMM tile --------------
template <typename Decode>
HWY_INLINE void GemvByBlocks(const float* HWY_RESTRICT xp, int64_t n, int64_t rows, float* HWY_RESTRICT out,
                             Decode&& decode) {
  HWY_ALIGN float buf[4 * kBlock];
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    const int64_t rr = std::min<int64_t>(4, rows - r0);
    for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
      const int64_t kn = std::min(kBlock, n - k0);
      decode(r0, rr, k0, kn, buf);
      const float* xk = xp + k0;
      if (rr == 4) {
        GemmTile<1, 4>(&xk, buf, kBlock, 0, kn, k0 > 0, out + r0, 0);
      } else {
        for (int64_t j = 0; j < rr; ++j) GemmTile<1, 1>(&xk, buf + j * kBlock, kBlock, 0, kn, k0 > 0, out + r0 + j, 0);
      }
    }
  }
}

// The bf16 GEMV through an L1 buffer: kBlock elements of 4 rows widened to f32, then the GEMM tile.
// Rows whose length is not a multiple of 32 (chunk order keeps their tail in natural order) take
// this path; GemvBf16Fused below computes the same sums for the others.
void GemvBf16Buffered(const float* HWY_RESTRICT xp, const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n,
                      int64_t rows, float* HWY_RESTRICT out) {
  GemvByBlocks(xp, n, rows, out, [&](int64_t r0, int64_t rr, int64_t k0, int64_t kn, float* buf) {
    Bf16Decode(w + r0 * stride + k0, stride, kn, rr, buf, kBlock);
  });
}

// Software prefetch of the fused MXFP4 GEMVs below. Prefetches [p, p + bytes) one line at a time.
HWY_INLINE void PrefetchRange(const uint8_t* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) hwy::Prefetch(p + o);
}
// Before the loop: the first tile's scales, and its blocks (ahead < 0: all of them; ahead > 0: the
// first `ahead` blocks of each of its rows).
HWY_INLINE void PrefetchFirst(const uint8_t* blocks, const uint8_t* scales, int64_t nb, int64_t rows, int64_t ahead) {
  const int64_t rr = std::min(rows, int64_t{4});
  PrefetchRange(scales, rr * nb);
  if (ahead < 0) {
    PrefetchRange(blocks, rr * nb * 16);
    return;
  }
  for (int64_t j = 0; j < rr; ++j) PrefetchRange(blocks + j * nb * 16, std::min(ahead, nb) * 16);
}
// ahead > 0, at block step b of the 4-row tile of rows [r, r + 4): the line of block b + ahead of
// row r + (b & 3), in this tile or, past the row end, in the tiles after it; the order in which
// the tiles consume memory, so every request is `ahead` steps (ahead * 64 bytes) before its use.
// Row j's request advances 4 blocks (64 bytes) every 4 steps: each line of each row once.
HWY_INLINE void PrefetchAhead(const uint8_t* blocks, int64_t nb, int64_t rows, int64_t r, int64_t b,
                              int64_t ahead) {
  int64_t pb = b + ahead, tr = r;
  while (pb >= nb) {
    pb -= nb;
    tr += 4;
  }
  const int64_t row = tr + (b & 3);
  if (row < rows) hwy::Prefetch(blocks + (row * nb + pb) * 16);
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// The sums of the lanes of a0..a3 in lanes 0, 4, 8 and 12, with the additions grouped exactly as
// SumOfLanes (GCC's _mm512_reduce_add_ps, used by GemmTile) groups them for one vector: halves of
// 256 bits, then of 128, then lanes (0 + 2) + (1 + 3); addition is commutative, so the bits are the
// same (the batch-invariance test checks it). Four vectors share the shuffles: 10 vector uops
// instead of ~28; a GEMV reduces each row once per 8 blocks, so this saves ~0.6 uop per block and row.
HWY_INLINE __m512 SumOfLanes4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  // [a0 lo256 + hi256, a1 lo256 + hi256], the same for a2, a3.
  const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
  // One 128-bit chunk per vector: its 256-bit sum's low half + high half.
  const __m512 t = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 u = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));  // (0 + 2), (1 + 3)
  return _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(2, 3, 0, 1)));
}

// AVX-512: the same arithmetic as decoding a block into the buffer and running GemmTile<1, 4> over
// it (one accumulator per row, evens then odds of each block, reduced per kBlock), with the decoded
// vectors kept in registers. VPERMPS reads only the low 4 bits of each index, so the high nibble's
// bits above them need no mask.
//
// Per block and row: VPMOVZXBD, 2 VPERMPS, a shift and 2 FMAs (6 vector uops on ports 0 and 5, the
// scaled table is loaded, see ScaledE2M1), ~3 cycles: one core computes about as fast as it can
// stream (~12 GB/s of MXFP4 at 2.1 GHz). Without help a core stalls on each cache miss and its
// arithmetic and its reads take turns (4-5 GB/s per core measured, 8.4 GB/s in the model on 2
// cores). Software prefetch keeps the reads ahead: a 4-row tile is one contiguous range of
// 4 * nb * 16 bytes, so while it runs, the next tile's bytes are requested one cache line per block
// step (64 bytes a step, as fast as the tile consumes its own) and its scales at its start; the
// first tile of a call is requested before the loop.
void GemvMxfp4Ahead(const float* HWY_RESTRICT xp, const uint8_t* HWY_RESTRICT blocks,
                    const uint8_t* HWY_RESTRICT scales, int64_t cols, int64_t rows, float* HWY_RESTRICT out,
                    int64_t ahead) {
  const hn::Full512<float> df;
  const hn::Full128<uint8_t> d8;
  const hn::Full512<uint32_t> du;
  const int64_t nb = cols / 32;
  auto step = [&](const uint8_t* blk, uint8_t e, hn::Vec512<float> xe, hn::Vec512<float> xo, hn::Vec512<float> acc) {
    const __m512 scaled = _mm512_load_ps(dt::kScaledE2M1.table[e]);
    const __m512i v = hn::PromoteTo(du, hn::LoadU(d8, blk)).raw;
    acc = hn::MulAdd(xe, hn::Vec512<float>{_mm512_permutexvar_ps(v, scaled)}, acc);
    return hn::MulAdd(xo, hn::Vec512<float>{_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), scaled)}, acc);
  };
  const int64_t tile_bytes = 4 * nb * 16;
  PrefetchFirst(blocks, scales, nb, rows, ahead);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const uint8_t* b0 = blocks + r * nb * 16;
    const uint8_t* s0 = scales + r * nb;
    // The next full tile (the last one re-requests its own lines, which are already in cache).
    const bool more = r + 8 <= rows;
    const uint8_t* next = more ? b0 + tile_bytes : b0;
    if (more) PrefetchRange(s0 + 4 * nb, 4 * nb);
    for (int64_t k0 = 0; k0 < cols; k0 += kBlock) {
      const int64_t b1 = std::min(cols, k0 + kBlock) / 32;
      auto a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t b = k0 / 32; b < b1; ++b) {
        if (ahead < 0) {
          hwy::Prefetch(next + 64 * b);
        } else if (ahead > 0) {
          PrefetchAhead(blocks, nb, rows, r, b, ahead);
        }
        const auto xe = hn::LoadU(df, xp + 32 * b), xo = hn::LoadU(df, xp + 32 * b + 16);
        a0 = step(b0 + 16 * b, s0[b], xe, xo, a0);
        a1 = step(b0 + 16 * (nb + b), s0[nb + b], xe, xo, a1);
        a2 = step(b0 + 16 * (2 * nb + b), s0[2 * nb + b], xe, xo, a2);
        a3 = step(b0 + 16 * (3 * nb + b), s0[3 * nb + b], xe, xo, a3);
      }
      HWY_ALIGN float v[16];
      _mm512_store_ps(v, SumOfLanes4(a0.raw, a1.raw, a2.raw, a3.raw));
      const bool add = k0 > 0;
      for (int j = 0; j < 4; ++j) out[r + j] = add ? out[r + j] + (v[4 * j] + 0.0f) : v[4 * j] + 0.0f;
    }
  }
  for (; r < rows; ++r) {
    const uint8_t* b0 = blocks + r * nb * 16;
    const uint8_t* s0 = scales + r * nb;
    for (int64_t k0 = 0; k0 < cols; k0 += kBlock) {
      const int64_t b1 = std::min(cols, k0 + kBlock) / 32;
      auto a0 = hn::Zero(df);
      for (int64_t b = k0 / 32; b < b1; ++b) {
        a0 = step(b0 + 16 * b, s0[b], hn::LoadU(df, xp + 32 * b), hn::LoadU(df, xp + 32 * b + 16), a0);
      }
      const float v0 = hn::GetLane(hn::SumOfLanes(df, a0)) + 0.0f;
      out[r] = k0 > 0 ? out[r] + v0 : v0;
    }
  }
}
#elif HWY_TARGET == HWY_AVX2
// AVX2: the same sums as GemvByBlocks + GemmTile<1, 4> (one 8-lane accumulator per row, per block
// evens 0-7, evens 8-15, odds 0-7, odds 8-15, reduced per kBlock with SumOfLanes), the weights
// decoded in registers: VPMOVZXBD of 8 bytes, VPERMPS of the 8 scaled magnitudes (index bits 2:0)
// and an XOR with nibble << 28 (magnitude_xor: sign into bit 31). 20 vector uops per block and
// row on 3 ports instead of decoding through an L1 buffer (9 -> ~7 cycles per block measured).
// The next 4-row tile is prefetched as in the AVX-512 kernel.
void GemvMxfp4Ahead(const float* HWY_RESTRICT xp, const uint8_t* HWY_RESTRICT blocks,
                    const uint8_t* HWY_RESTRICT scales, int64_t cols, int64_t rows, float* HWY_RESTRICT out,
                    int64_t ahead) {
  const hn::Full256<float> df;
  const int64_t nb = cols / 32;
  auto weights = [](__m256 t, __m256i idx) {
    return _mm256_xor_ps(_mm256_permutevar8x32_ps(t, idx), _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
  };
  auto step = [&](const uint8_t* blk, uint8_t e, const __m256* x, __m256 acc) {
    const __m256 t = _mm256_load_ps(dt::kScaledE2M1.magnitude_xor[e]);
    const __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk)));
    const __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 8)));
    acc = _mm256_fmadd_ps(x[0], weights(t, v0), acc);
    acc = _mm256_fmadd_ps(x[1], weights(t, v1), acc);
    acc = _mm256_fmadd_ps(x[2], weights(t, _mm256_srli_epi32(v0, 4)), acc);
    return _mm256_fmadd_ps(x[3], weights(t, _mm256_srli_epi32(v1, 4)), acc);
  };
  auto finish = [&](__m256 acc, bool add, float* o) {
    const float v = hn::GetLane(hn::SumOfLanes(df, hn::Vec256<float>{acc})) + 0.0f;
    *o = add ? *o + v : v;
  };
  const int64_t tile_bytes = 4 * nb * 16;
  PrefetchFirst(blocks, scales, nb, rows, ahead);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const uint8_t* b0 = blocks + r * nb * 16;
    const uint8_t* s0 = scales + r * nb;
    const bool more = r + 8 <= rows;
    const uint8_t* next = more ? b0 + tile_bytes : b0;
    if (more) PrefetchRange(s0 + 4 * nb, 4 * nb);
    for (int64_t k0 = 0; k0 < cols; k0 += kBlock) {
      const int64_t b1 = std::min(cols, k0 + kBlock) / 32;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t b = k0 / 32; b < b1; ++b) {
        if (ahead < 0) {
          hwy::Prefetch(next + 64 * b);
        } else if (ahead > 0) {
          PrefetchAhead(blocks, nb, rows, r, b, ahead);
        }
        const __m256 x[4] = {_mm256_loadu_ps(xp + 32 * b), _mm256_loadu_ps(xp + 32 * b + 8),
                             _mm256_loadu_ps(xp + 32 * b + 16), _mm256_loadu_ps(xp + 32 * b + 24)};
        a0 = step(b0 + 16 * b, s0[b], x, a0);
        a1 = step(b0 + 16 * (nb + b), s0[nb + b], x, a1);
        a2 = step(b0 + 16 * (2 * nb + b), s0[2 * nb + b], x, a2);
        a3 = step(b0 + 16 * (3 * nb + b), s0[3 * nb + b], x, a3);
      }
      finish(a0, k0 > 0, out + r);
      finish(a1, k0 > 0, out + r + 1);
      finish(a2, k0 > 0, out + r + 2);
      finish(a3, k0 > 0, out + r + 3);
    }
  }
  for (; r < rows; ++r) {
    const uint8_t* b0 = blocks + r * nb * 16;
    const uint8_t* s0 = scales + r * nb;
    for (int64_t k0 = 0; k0 < cols; k0 += kBlock) {
      const int64_t b1 = std::min(cols, k0 + kBlock) / 32;
      __m256 a0 = _mm256_setzero_ps();
      for (int64_t b = k0 / 32; b < b1; ++b) {
        const __m256 x[4] = {_mm256_loadu_ps(xp + 32 * b), _mm256_loadu_ps(xp + 32 * b + 8),
                             _mm256_loadu_ps(xp + 32 * b + 16), _mm256_loadu_ps(xp + 32 * b + 24)};
        a0 = step(b0 + 16 * b, s0[b], x, a0);
      }
      finish(a0, k0 > 0, out + r);
    }
  }
}
#else
void GemvMxfp4Ahead(const float* HWY_RESTRICT xp, const uint8_t* HWY_RESTRICT blocks,
                    const uint8_t* HWY_RESTRICT scales, int64_t cols, int64_t rows, float* HWY_RESTRICT out,
                    int64_t /*ahead: no software prefetch on the buffered path*/) {
  const int64_t nb = cols / 32;
  GemvByBlocks(xp, cols, rows, out, [&](int64_t r0, int64_t rr, int64_t k0, int64_t kn, float* buf) {
    Mxfp4Decode(blocks + (r0 * nb + k0 / 32) * 16, scales + r0 * nb + k0 / 32, nb, rr, kn / 32, buf, kBlock);
  });
}
#endif

// Software prefetch distance of the MXFP4 GEMV in block steps (kernels_fast.h: gemv_mxfp4_lab).
constexpr int64_t kMxfp4Ahead = -1;

void GemvMxfp4(const float* HWY_RESTRICT xp, const uint8_t* HWY_RESTRICT blocks, const uint8_t* HWY_RESTRICT scales,
               int64_t cols, int64_t rows, float* HWY_RESTRICT out) {
  GemvMxfp4Ahead(xp, blocks, scales, cols, rows, out, kMxfp4Ahead);
}

// ---- bf16 GEMV with the weights widened in registers --------------------------------------------
// The same FMAs in the same order as GemvBf16Buffered (Bf16Decode into the buffer, then
// GemmTile<1, 4>): per row one accumulator of N lanes; per 32-element chunk the 16 / N vectors of
// its even elements (the shifted 32-bit words) in order, then those of its odd elements (the masked
// words); reduced with SumOfLanes per kBlock, + 0.0f (GemmTile's empty tail), added to the row's
// sum of the previous blocks. The tile's row count does not enter any row's sum, so kRows rows per
// tile give the same bits as 4, and so do the GEMM tiles of prefill (batch-invariance test).
//
// Without the buffer a 64-byte chunk of a row costs one load, a shift, a mask and two FMAs (AVX-512),
// against that plus two 64-byte stores and two loads of the buffer. Software prefetch requests the
// chunk `ahead` steps further in the order the tiles consume memory (a step is one chunk of each of
// the tile's rows; past the end of a tile's rows it is the next tile's chunk), one cache line per
// row and step: the hardware prefetchers track few streams and stop at every 4 KB page, here the
// loads are requested (and their pages walked) well before they are used. ahead = 0: no prefetch.
// Fixed-width targets only (the tile keeps arrays of vectors; SVE's vectors are sizeless): SVE
// targets take the buffered path.
#if !HWY_HAVE_SCALABLE
template <int kRows, int kLocality>
HWY_INLINE void Bf16FusedTile(const float* HWY_RESTRICT xp, const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n,
                              int64_t rows, int64_t r0, int64_t ahead, float* HWY_RESTRICT out) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  using V = hn::Vec<DF>;
  constexpr int64_t N = static_cast<int64_t>(hn::MaxLanes(DF()));
  static_assert(16 % N == 0, "lanes divide the 16 evens / 16 odds of a chunk");
  constexpr int64_t L = 16 / N;  // vectors per half chunk
  const auto hi = hn::Set(du, 0xFFFF0000u);
  const int64_t chunks = n / 32;
  const uint16_t* wr[kRows];
  for (int j = 0; j < kRows; ++j) wr[j] = w + (r0 + j) * stride;
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    const int64_t c1 = std::min(n, k0 + kBlock) / 32;
    V acc[kRows];
    for (int j = 0; j < kRows; ++j) acc[j] = hn::Zero(df);
    for (int64_t c = k0 / 32; c < c1; ++c) {
      if (ahead > 0) {
        // Chunk c + ahead of this tile's rows, or of the next tile's once past the row end.
        const int64_t pc = c + ahead;
        const int64_t pr = pc < chunks ? r0 : r0 + kRows;
        const int64_t pcc = pc < chunks ? pc : pc - chunks;
        if (pcc < chunks) {
          for (int j = 0; j < kRows; ++j) {
            if (pr + j < rows) __builtin_prefetch(w + (pr + j) * stride + 32 * pcc, 0, kLocality);
          }
        }
      }
      const float* xc = xp + 32 * c;
      V u[kRows][L];
      for (int j = 0; j < kRows; ++j) {
        for (int64_t l = 0; l < L; ++l) {
          u[j][l] = hn::BitCast(df, hn::LoadU(du, reinterpret_cast<const uint32_t*>(wr[j] + 32 * c + 2 * N * l)));
        }
      }
      for (int64_t l = 0; l < L; ++l) {
        const V xe = hn::LoadU(df, xc + N * l);
        for (int j = 0; j < kRows; ++j) {
          acc[j] = hn::MulAdd(xe, hn::BitCast(df, hn::ShiftLeft<16>(hn::BitCast(du, u[j][l]))), acc[j]);
        }
      }
      for (int64_t l = 0; l < L; ++l) {
        const V xo = hn::LoadU(df, xc + 16 + N * l);
        for (int j = 0; j < kRows; ++j) {
          acc[j] = hn::MulAdd(xo, hn::BitCast(df, hn::And(hn::BitCast(du, u[j][l]), hi)), acc[j]);
        }
      }
    }
    const bool add = k0 > 0;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    if constexpr (kRows % 4 == 0) {
      for (int j = 0; j < kRows; j += 4) {
        HWY_ALIGN float v[16];
        _mm512_store_ps(v, SumOfLanes4(acc[j].raw, acc[j + 1].raw, acc[j + 2].raw, acc[j + 3].raw));
        for (int i = 0; i < 4; ++i) {
          float& o = out[r0 + j + i];
          o = add ? o + (v[4 * i] + 0.0f) : v[4 * i] + 0.0f;
        }
      }
      continue;
    }
#endif
    for (int j = 0; j < kRows; ++j) {
      const float v = hn::GetLane(hn::SumOfLanes(df, acc[j])) + 0.0f;
      float& o = out[r0 + j];
      o = add ? o + v : v;
    }
  }
}

// tile_rows: 1, 4 or 8 rows per tile (the same sums); kLocality: __builtin_prefetch's (3: into L1,
// PREFETCHT0; 2: L2, T1; 1: T2; 0: NTA).
template <int kLocality>
void GemvBf16Fused(const float* HWY_RESTRICT xp, const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n,
                   int64_t rows, int64_t ahead, int64_t tile_rows, float* HWY_RESTRICT out) {
  if (ahead > 0) {
    // The first `ahead` steps of the first tile, requested before the loop.
    const int64_t first = std::min<int64_t>(ahead, n / 32);
    for (int64_t j = 0; j < std::min<int64_t>(rows, tile_rows); ++j) {
      for (int64_t c = 0; c < first; ++c) __builtin_prefetch(w + j * stride + 32 * c, 0, kLocality);
    }
  }
  int64_t r = 0;
  if (tile_rows == 8) {
    for (; r + 8 <= rows; r += 8) Bf16FusedTile<8, kLocality>(xp, w, stride, n, rows, r, ahead, out);
  }
  if (tile_rows >= 4) {
    for (; r + 4 <= rows; r += 4) Bf16FusedTile<4, kLocality>(xp, w, stride, n, rows, r, ahead, out);
  }
  for (; r < rows; ++r) Bf16FusedTile<1, kLocality>(xp, w, stride, n, rows, r, ahead, out);
}

#endif  // !HWY_HAVE_SCALABLE

// ahead / hint: bf16_prefetch() (kernels_fast.h); hint 2 is PREFETCHT1, anything else T0.
void GemvBf16(const float* HWY_RESTRICT xp, const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n, int64_t rows,
              float* HWY_RESTRICT out, int64_t ahead, int hint) {
#if HWY_HAVE_SCALABLE
  (void)ahead;
  (void)hint;
  GemvBf16Buffered(xp, w, stride, n, rows, out);
#else
  if (n % 32 != 0) {
    GemvBf16Buffered(xp, w, stride, n, rows, out);
    return;
  }
  if (hint == 2) {
    GemvBf16Fused<2>(xp, w, stride, n, rows, ahead, 4, out);
  } else {
    GemvBf16Fused<3>(xp, w, stride, n, rows, ahead, 4, out);
  }
#endif
}

// The bench's variants (kernels_fast.h: gemv_bf16_lab).
void GemvBf16Lab(const float* HWY_RESTRICT xp, const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n, int64_t rows,
                 float* HWY_RESTRICT out, int64_t ahead, int64_t tile_rows, int hint) {
#if HWY_HAVE_SCALABLE
  (void)ahead;
  (void)tile_rows;
  (void)hint;
  GemvBf16Buffered(xp, w, stride, n, rows, out);
#else
  if (tile_rows == 0 || n % 32 != 0) {
    GemvBf16Buffered(xp, w, stride, n, rows, out);
    return;
  }
  switch (hint) {
    case 0: GemvBf16Fused<0>(xp, w, stride, n, rows, ahead, tile_rows, out); break;
    case 1: GemvBf16Fused<1>(xp, w, stride, n, rows, ahead, tile_rows, out); break;
    case 2: GemvBf16Fused<2>(xp, w, stride, n, rows, ahead, tile_rows, out); break;
    default: GemvBf16Fused<3>(xp, w, stride, n, rows, ahead, tile_rows, out); break;
  }
#endif
}

float DotF32(const float* x, const float* w, int64_t n) {
  float s;
  GemmTile<1, 1>(&x, w, 0, 0, n, false, &s, 0);
  return s;
}

}  // namespace gptoss::cpu_fast::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "backend/cpu_fast/kernels_fast.h"

namespace gptoss::cpu_fast {

HWY_EXPORT(GemvBf16);
HWY_EXPORT(GemvBf16Lab);
HWY_EXPORT(GemvMxfp4);
HWY_EXPORT(GemvMxfp4Ahead);
HWY_EXPORT(Bf16RowsToF32);
HWY_EXPORT(Mxfp4RowsToF32);
HWY_EXPORT(GemmF32);
HWY_EXPORT(GemmBf16Rows);
HWY_EXPORT(DotF32);

void to_chunk_order(const float* x, int64_t n, float* xp) {
  const int64_t chunks = n / 32;
  for (int64_t c = 0; c < chunks; ++c) {
    for (int j = 0; j < 16; ++j) {
      xp[32 * c + j] = x[32 * c + 2 * j];
      xp[32 * c + 16 + j] = x[32 * c + 2 * j + 1];
    }
  }
  for (int64_t i = chunks * 32; i < n; ++i) xp[i] = x[i];
}

void from_chunk_order(const float* xp, int64_t n, float* x) {
  const int64_t chunks = n / 32;
  for (int64_t c = 0; c < chunks; ++c) {
    for (int j = 0; j < 16; ++j) {
      x[32 * c + 2 * j] = xp[32 * c + j];
      x[32 * c + 2 * j + 1] = xp[32 * c + 16 + j];
    }
  }
  for (int64_t i = chunks * 32; i < n; ++i) x[i] = xp[i];
}

Bf16Prefetch bf16_prefetch_for(const char* env, bool amd) {
  // Steps of 64 bytes per row (a step is one chunk of each of the tile's 4 rows).
  const Bf16Prefetch l1{16, 3, "l1: PREFETCHT0, 16 steps (GPTOSS_CPU_FAST_BF16_PREFETCH=l1)", nullptr};
  const Bf16Prefetch l2{48, 2, "l2: PREFETCHT1, 48 steps (GPTOSS_CPU_FAST_BF16_PREFETCH=l2)", nullptr};
  if (env != nullptr && std::strcmp(env, "l1") == 0) return l1;
  if (env != nullptr && std::strcmp(env, "l2") == 0) return l2;
  // The CPU's default is one of the two settings above (the same numbers), said to be the default.
  Bf16Prefetch d = amd ? l2 : l1;
  d.why = amd ? "l2: PREFETCHT1, 48 steps (the default on AMD CPUs)"
              : "l1: PREFETCHT0, 16 steps (the default on non-AMD CPUs)";
  if (env != nullptr) d.error = "GPTOSS_CPU_FAST_BF16_PREFETCH must be l1 or l2; the default is used";
  return d;
}

Bf16Prefetch bf16_prefetch() {
  static const Bf16Prefetch p = [] {
    bool amd = false;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    // Vendor string "AuthenticAMD" in EBX, EDX, ECX of leaf 0.
    if (__get_cpuid(0, &a, &b, &c, &d) != 0) {
      amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;
    }
#endif
    return bf16_prefetch_for(std::getenv("GPTOSS_CPU_FAST_BF16_PREFETCH"), amd);
  }();
  return p;
}

void gemv_bf16(const float* xp, const uint16_t* w, int64_t stride, int64_t n, int64_t rows, float* out) {
  const Bf16Prefetch p = bf16_prefetch();
  HWY_DYNAMIC_DISPATCH(GemvBf16)(xp, w, stride, n, rows, out, p.ahead, p.hint);
}
void gemv_bf16_lab(const float* xp, const uint16_t* w, int64_t stride, int64_t n, int64_t rows, float* out,
                   int64_t ahead, int64_t tile_rows, int hint) {
  HWY_DYNAMIC_DISPATCH(GemvBf16Lab)(xp, w, stride, n, rows, out, ahead, tile_rows, hint);
}
void gemv_mxfp4(const float* xp, const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                float* out) {
  HWY_DYNAMIC_DISPATCH(GemvMxfp4)(xp, blocks, scales, cols, rows, out);
}
void gemv_mxfp4_lab(const float* xp, const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                    float* out, int64_t ahead) {
  HWY_DYNAMIC_DISPATCH(GemvMxfp4Ahead)(xp, blocks, scales, cols, rows, out, ahead);
}
void bf16_rows_to_f32(const uint16_t* w, int64_t stride, int64_t n, int64_t rows, float* out) {
  HWY_DYNAMIC_DISPATCH(Bf16RowsToF32)(w, stride, n, rows, out);
}
void mxfp4_rows_to_f32(const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows, float* out) {
  HWY_DYNAMIC_DISPATCH(Mxfp4RowsToF32)(blocks, scales, cols, rows, out);
}
void gemm_f32(const float* const* x, int64_t T, const float* w, int64_t ldw, int64_t R, int64_t n, float* out,
              int64_t ldo) {
  HWY_DYNAMIC_DISPATCH(GemmF32)(x, T, w, ldw, R, n, out, ldo);
}
void gemm_bf16_rows(const float* const* x, int64_t T, const uint16_t* w, int64_t stride, int64_t n, int64_t R,
                    float* out, int64_t ldo) {
  HWY_DYNAMIC_DISPATCH(GemmBf16Rows)(x, T, w, stride, n, R, out, ldo);
}
float dot_f32(const float* x, const float* w, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotF32)(x, w, n); }

SimdLimit simd_limit() {
  static const SimdLimit limit = [] {
    SimdLimit l;
    const char* v = std::getenv("GPTOSS_CPU_FAST_SIMD");
    if (v == nullptr) return l;
#if HWY_ARCH_X86
    if (std::strcmp(v, "avx2") == 0) {
      hwy::DisableTargets(HWY_AVX2 - 1);  // every x86 target above AVX2 (lower bits are better)
      l.avx2 = true;
      return l;
    }
    l.error = "GPTOSS_CPU_FAST_SIMD must be avx2; ignored";
#else
    l.error = "GPTOSS_CPU_FAST_SIMD applies to x86-64 only; ignored";
#endif
    return l;
  }();
  return limit;
}

const char* simd_target() {
  // Force the dispatch table's choice, then name the best target this CPU supports.
  return hwy::TargetName(static_cast<uint32_t>(hwy::SupportedTargets() & HWY_TARGETS & -(hwy::SupportedTargets() & HWY_TARGETS)));
}

}  // namespace gptoss::cpu_fast
#endif  // HWY_ONCE
