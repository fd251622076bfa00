// Runtime-dispatched (Highway foreach_target) bodies of kernels_fast.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu_fast/kernels_fast.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstdint>
#include <cstring>

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

// ---- bf16 -------------------------------------------------------------------------------------
// A 32-bit load of two bf16 words (2i, 2i+1): shifting left by 16 gives element 2i as f32, masking
// the low half gives element 2i + 1. No shuffles: the even/odd split lives in the activations.

float DotBf16Row(const float* HWY_RESTRICT xp, const uint16_t* HWY_RESTRICT w, int64_t n) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto hi = hn::Set(du, 0xFFFF0000u);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  const int64_t chunks = n / 32;
  for (int64_t c = 0; c < chunks; ++c) {
    for (int64_t l = 0; l < 16; l += N) {
      const auto u = hn::LoadU(du, reinterpret_cast<const uint32_t*>(w + 32 * c + 2 * l));
      a0 = hn::MulAdd(hn::BitCast(df, hn::ShiftLeft<16>(u)), hn::LoadU(df, xp + 32 * c + l), a0);
      a1 = hn::MulAdd(hn::BitCast(df, hn::And(u, hi)), hn::LoadU(df, xp + 32 * c + 16 + l), a1);
    }
  }
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (int64_t i = chunks * 32; i < n; ++i) s += xp[i] * dt::bf16_bits_to_f32(w[i]);
  return s;
}

void GemvBf16(const float* HWY_RESTRICT xp, const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n,
              int64_t rows, float* HWY_RESTRICT out) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto hi = hn::Set(du, 0xFFFF0000u);
  const int64_t chunks = n / 32;
  int64_t r = 0;
  // Two rows at a time: four independent accumulators, one activation load per two FMAs.
  for (; r + 2 <= rows; r += 2) {
    const uint16_t* w0 = w + r * stride;
    const uint16_t* w1 = w0 + stride;
    auto a0 = hn::Zero(df), a1 = hn::Zero(df), b0 = hn::Zero(df), b1 = hn::Zero(df);
    for (int64_t c = 0; c < chunks; ++c) {
      for (int64_t l = 0; l < 16; l += N) {
        const auto xe = hn::LoadU(df, xp + 32 * c + l);
        const auto xo = hn::LoadU(df, xp + 32 * c + 16 + l);
        const auto u0 = hn::LoadU(du, reinterpret_cast<const uint32_t*>(w0 + 32 * c + 2 * l));
        const auto u1 = hn::LoadU(du, reinterpret_cast<const uint32_t*>(w1 + 32 * c + 2 * l));
        a0 = hn::MulAdd(hn::BitCast(df, hn::ShiftLeft<16>(u0)), xe, a0);
        a1 = hn::MulAdd(hn::BitCast(df, hn::And(u0, hi)), xo, a1);
        b0 = hn::MulAdd(hn::BitCast(df, hn::ShiftLeft<16>(u1)), xe, b0);
        b1 = hn::MulAdd(hn::BitCast(df, hn::And(u1, hi)), xo, b1);
      }
    }
    float s0 = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
    float s1 = hn::GetLane(hn::SumOfLanes(df, hn::Add(b0, b1)));
    for (int64_t i = chunks * 32; i < n; ++i) {
      s0 += xp[i] * dt::bf16_bits_to_f32(w0[i]);
      s1 += xp[i] * dt::bf16_bits_to_f32(w1[i]);
    }
    out[r] = s0;
    out[r + 1] = s1;
  }
  for (; r < rows; ++r) out[r] = DotBf16Row(xp, w + r * stride, n);
}

void Bf16RowsToF32(const uint16_t* HWY_RESTRICT w, int64_t stride, int64_t n, int64_t rows,
                   float* HWY_RESTRICT out) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto hi = hn::Set(du, 0xFFFF0000u);
  const int64_t chunks = n / 32;
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* wr = w + r * stride;
    float* o = out + r * n;
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

// ---- MXFP4 ------------------------------------------------------------------------------------
// Byte j of a block holds elements 2j (low nibble) and 2j + 1 (high nibble): the low nibbles of a
// block are its 16 even elements, the high nibbles its 16 odd ones, i.e. chunk order.

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define GPTOSS_MXFP4_F32_LUT 1
// 16 f32 lanes: one block's 16 bytes widen to 16 lanes and a 16-entry f32 table lookup (VPERMPS)
// turns each nibble into its E2M1 value; the block scale multiplies the block's partial sum.
using D16 = hn::Full512<float>;

HWY_INLINE void DecodeBlock(const uint8_t* HWY_RESTRICT blk, hn::Vec<D16> table, hn::Vec<D16>& lo,
                            hn::Vec<D16>& hi) {
  const D16 df;
  const hn::RebindToSigned<D16> di;
  const hn::Full128<uint8_t> d8;
  const auto v = hn::BitCast(di, hn::PromoteTo(hn::RebindToUnsigned<D16>(), hn::LoadU(d8, blk)));
  lo = hn::TableLookupLanes(table, hn::IndicesFromVec(df, hn::And(v, hn::Set(di, 15))));
  hi = hn::TableLookupLanes(table, hn::IndicesFromVec(df, hn::ShiftRight<4>(v)));
}

float DotMxfp4Row(const float* HWY_RESTRICT xp, const uint8_t* HWY_RESTRICT blocks,
                  const uint8_t* HWY_RESTRICT scales, int64_t nb) {
  const D16 df;
  const auto table = hn::Load(df, dt::kE2M1);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    hn::Vec<D16> l0, h0, l1, h1;
    DecodeBlock(blocks + 16 * b, table, l0, h0);
    DecodeBlock(blocks + 16 * b + 16, table, l1, h1);
    const auto s0 = hn::MulAdd(h0, hn::LoadU(df, xp + 32 * b + 16), hn::Mul(l0, hn::LoadU(df, xp + 32 * b)));
    const auto s1 =
        hn::MulAdd(h1, hn::LoadU(df, xp + 32 * b + 48), hn::Mul(l1, hn::LoadU(df, xp + 32 * b + 32)));
    a0 = hn::MulAdd(s0, hn::Set(df, dt::kScales.full[scales[b]]), a0);
    a1 = hn::MulAdd(s1, hn::Set(df, dt::kScales.full[scales[b + 1]]), a1);
  }
  for (; b < nb; ++b) {
    hn::Vec<D16> l0, h0;
    DecodeBlock(blocks + 16 * b, table, l0, h0);
    const auto s0 = hn::MulAdd(h0, hn::LoadU(df, xp + 32 * b + 16), hn::Mul(l0, hn::LoadU(df, xp + 32 * b)));
    a0 = hn::MulAdd(s0, hn::Set(df, dt::kScales.full[scales[b]]), a0);
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
}

void Mxfp4RowsToF32(const uint8_t* HWY_RESTRICT blocks, const uint8_t* HWY_RESTRICT scales, int64_t cols,
                    int64_t rows, float* HWY_RESTRICT out) {
  const D16 df;
  const auto table = hn::Load(df, dt::kE2M1);
  const int64_t nb = cols / 32;
  for (int64_t b = 0; b < rows * nb; ++b) {
    hn::Vec<D16> lo, hi;
    DecodeBlock(blocks + 16 * b, table, lo, hi);
    const auto s = hn::Set(df, dt::kScales.full[scales[b]]);
    hn::StoreU(hn::Mul(lo, s), df, out + 32 * b);
    hn::StoreU(hn::Mul(hi, s), df, out + 32 * b + 16);
  }
}

#else
// Other targets: a block's nibbles become int8 codes at twice their value (a 16-byte table lookup,
// PSHUFB / TBL), already in chunk order; they are widened to f32 and the half scale applied.
HWY_INLINE void DecodeBlockI8(const uint8_t* HWY_RESTRICT blk, int8_t* HWY_RESTRICT q) {
#if HWY_TARGET == HWY_SCALAR
  for (int j = 0; j < 16; ++j) {
    q[j] = dt::kDoubledE2M1[blk[j] & 0x0f];
    q[16 + j] = dt::kDoubledE2M1[blk[j] >> 4];
  }
#else
  const hn::Full128<uint8_t> d8;
  const hn::Full128<int8_t> di8;
  const auto table = hn::Load(di8, dt::kDoubledE2M1);
  const auto v = hn::LoadU(d8, blk);
  hn::StoreU(hn::TableLookupBytes(table, hn::BitCast(di8, hn::And(v, hn::Set(d8, uint8_t{0x0f})))), di8, q);
  hn::StoreU(hn::TableLookupBytes(table, hn::BitCast(di8, hn::ShiftRight<4>(v))), di8, q + 16);
#endif
}

float DotMxfp4Row(const float* HWY_RESTRICT xp, const uint8_t* HWY_RESTRICT blocks,
                  const uint8_t* HWY_RESTRICT scales, int64_t nb) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  auto acc = hn::Zero(df);
  alignas(16) int8_t q[32];
  for (int64_t b = 0; b < nb; ++b) {
    DecodeBlockI8(blocks + 16 * b, q);
    auto blk = hn::Zero(df);
    for (int64_t i = 0; i < 32; i += N) {
      blk = hn::MulAdd(hn::ConvertTo(df, hn::PromoteTo(d32, hn::LoadU(d8, q + i))), hn::LoadU(df, xp + 32 * b + i),
                       blk);
    }
    acc = hn::MulAdd(blk, hn::Set(df, dt::kScales.half[scales[b]]), acc);
  }
  return hn::GetLane(hn::SumOfLanes(df, acc));
}

void Mxfp4RowsToF32(const uint8_t* HWY_RESTRICT blocks, const uint8_t* HWY_RESTRICT scales, int64_t cols,
                    int64_t rows, float* HWY_RESTRICT out) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  alignas(16) int8_t q[32];
  for (int64_t b = 0; b < rows * (cols / 32); ++b) {
    DecodeBlockI8(blocks + 16 * b, q);
    const auto s = hn::Set(df, dt::kScales.half[scales[b]]);
    for (int64_t i = 0; i < 32; i += N) {
      hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(d32, hn::LoadU(d8, q + i))), s), df, out + 32 * b + i);
    }
  }
}
#endif

void GemvMxfp4(const float* HWY_RESTRICT xp, const uint8_t* HWY_RESTRICT blocks, const uint8_t* HWY_RESTRICT scales,
               int64_t cols, int64_t rows, float* HWY_RESTRICT out) {
  const int64_t nb = cols / 32;
  for (int64_t r = 0; r < rows; ++r) out[r] = DotMxfp4Row(xp, blocks + r * nb * 16, scales + r * nb, nb);
}

// ---- f32 GEMM ---------------------------------------------------------------------------------
// A TR x RR tile of out (TR tokens, RR weight rows; at most 4 x 4 = 16 accumulators) over the whole
// inner dimension: each loaded activation vector feeds RR FMAs and each weight vector TR.
template <int TR, int RR>
HWY_INLINE void GemmTile(const float* const* x, const float* HWY_RESTRICT w, int64_t ldw, int64_t n,
                         float* HWY_RESTRICT out, int64_t ldo) {
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
  int64_t i = 0;
  for (; i + N <= n; i += N) {
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
    for (int64_t j = i; j < n; ++j) s += xs[t][j] * ws[r][j];
    return s;
  };
#define GPTOSS_GEMM_OUT(t, r) \
  if (t < TR && r < RR) out[t * ldo + r] = hn::GetLane(hn::SumOfLanes(df, c##t##r)) + tail(t, r);
  GPTOSS_GEMM_OUT(0, 0) GPTOSS_GEMM_OUT(0, 1) GPTOSS_GEMM_OUT(0, 2) GPTOSS_GEMM_OUT(0, 3)
  GPTOSS_GEMM_OUT(1, 0) GPTOSS_GEMM_OUT(1, 1) GPTOSS_GEMM_OUT(1, 2) GPTOSS_GEMM_OUT(1, 3)
  GPTOSS_GEMM_OUT(2, 0) GPTOSS_GEMM_OUT(2, 1) GPTOSS_GEMM_OUT(2, 2) GPTOSS_GEMM_OUT(2, 3)
  GPTOSS_GEMM_OUT(3, 0) GPTOSS_GEMM_OUT(3, 1) GPTOSS_GEMM_OUT(3, 2) GPTOSS_GEMM_OUT(3, 3)
#undef GPTOSS_GEMM_OUT
}

void GemmF32(const float* const* x, int64_t T, const float* HWY_RESTRICT w, int64_t ldw, int64_t R, int64_t n,
             float* HWY_RESTRICT out, int64_t ldo) {
  // Weight rows outside (4 rows stay in L1/L2 while every token passes over them).
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) GemmTile<4, 4>(x + t, w + r * ldw, ldw, n, out + t * ldo + r, ldo);
    for (; t < T; ++t) GemmTile<1, 4>(x + t, w + r * ldw, ldw, n, out + t * ldo + r, ldo);
  }
  for (; r < R; ++r) {
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) GemmTile<4, 1>(x + t, w + r * ldw, ldw, n, out + t * ldo + r, ldo);
    for (; t < T; ++t) GemmTile<1, 1>(x + t, w + r * ldw, ldw, n, out + t * ldo + r, ldo);
  }
}

float DotF32(const float* x, const float* w, int64_t n) {
  float s;
  GemmTile<1, 1>(&x, w, 0, n, &s, 0);
  return s;
}

}  // namespace gptoss::cpu_fast::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gptoss::cpu_fast {

HWY_EXPORT(GemvBf16);
HWY_EXPORT(GemvMxfp4);
HWY_EXPORT(Bf16RowsToF32);
HWY_EXPORT(Mxfp4RowsToF32);
HWY_EXPORT(GemmF32);
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

void gemv_bf16(const float* xp, const uint16_t* w, int64_t stride, int64_t n, int64_t rows, float* out) {
  HWY_DYNAMIC_DISPATCH(GemvBf16)(xp, w, stride, n, rows, out);
}
void gemv_mxfp4(const float* xp, const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                float* out) {
  HWY_DYNAMIC_DISPATCH(GemvMxfp4)(xp, blocks, scales, cols, rows, out);
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
float dot_f32(const float* x, const float* w, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotF32)(x, w, n); }

const char* simd_target() {
  // Force the dispatch table's choice, then name the best target this CPU supports.
  return hwy::TargetName(static_cast<uint32_t>(hwy::SupportedTargets() & HWY_TARGETS & -(hwy::SupportedTargets() & HWY_TARGETS)));
}

}  // namespace gptoss::cpu_fast
#endif  // HWY_ONCE
