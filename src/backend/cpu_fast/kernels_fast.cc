// Runtime-dispatched (Highway foreach_target) bodies of kernels_fast.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu_fast/kernels_fast.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace gptoss::cpu_fast::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 f32 lanes so that one lane count always divides an MXFP4 block (32).
using DF = hn::CappedTag<float, 16>;

// Half of the E8M0 scale, because the decoded codes are doubled: 2^(e - 128) (e = 255 stays inf).
struct HalfScales {
  float v[256];
  HalfScales() {
    for (int e = 0; e < 256; ++e) v[e] = std::ldexp(1.0f, e - 127) * 0.5f;
  }
};
const HalfScales kHalfScales;

alignas(16) const int8_t kDoubledE2M1[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

float DotBf16(const float* x, const uint16_t* w, int64_t n) {
  const DF df;
  const hn::Rebind<uint16_t, DF> d16;
  const hn::Rebind<uint32_t, DF> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto w0 = hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, w + i))));
    const auto w1 = hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, w + i + N))));
    a0 = hn::MulAdd(hn::LoadU(df, x + i), w0, a0);
    a1 = hn::MulAdd(hn::LoadU(df, x + i + N), w1, a1);
  }
  for (; i + N <= n; i += N) {
    const auto w0 = hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, w + i))));
    a0 = hn::MulAdd(hn::LoadU(df, x + i), w0, a0);
  }
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(w[i]) << 16;
    float wf;
    __builtin_memcpy(&wf, &bits, sizeof wf);
    s += x[i] * wf;
  }
  return s;
}

float DotF32(const float* x, const float* w, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    a0 = hn::MulAdd(hn::LoadU(df, x + i), hn::LoadU(df, w + i), a0);
    a1 = hn::MulAdd(hn::LoadU(df, x + i + N), hn::LoadU(df, w + i + N), a1);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(hn::LoadU(df, x + i), hn::LoadU(df, w + i), a0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (; i < n; ++i) s += x[i] * w[i];
  return s;
}

void Bf16ToF32(const uint16_t* w, int64_t n, float* out) {
  const DF df;
  const hn::Rebind<uint16_t, DF> d16;
  const hn::Rebind<uint32_t, DF> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, w + i)))), df, out + i);
  }
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(w[i]) << 16;
    __builtin_memcpy(out + i, &bits, sizeof(float));
  }
}

void Mxfp4RowToI8(const uint8_t* blocks, int64_t cols, int8_t* out) {
  const int64_t nb = cols / 32;
#if HWY_TARGET == HWY_SCALAR
  for (int64_t b = 0; b < nb * 16; ++b) {
    out[2 * b] = kDoubledE2M1[blocks[b] & 0x0f];
    out[2 * b + 1] = kDoubledE2M1[blocks[b] >> 4];
  }
#else
  // One block per 128-bit vector: the 16-entry table lookup (PSHUFB / TBL) turns nibble codes into
  // int8 values; interleaving the low (even element) and high (odd element) halves restores order.
  const hn::Full128<uint8_t> d8;
  const hn::Full128<int8_t> di8;
  const auto table = hn::Load(di8, kDoubledE2M1);
  const auto mask = hn::Set(d8, uint8_t{0x0f});
  for (int64_t b = 0; b < nb; ++b) {
    const auto v = hn::LoadU(d8, blocks + 16 * b);
    const auto lo = hn::TableLookupBytes(table, hn::BitCast(di8, hn::And(v, mask)));
    const auto hi = hn::TableLookupBytes(table, hn::BitCast(di8, hn::ShiftRight<4>(v)));
    hn::StoreU(hn::InterleaveLower(di8, lo, hi), di8, out + 32 * b);
    hn::StoreU(hn::InterleaveUpper(di8, lo, hi), di8, out + 32 * b + 16);
  }
#endif
}

float DotMxfp4I8(const float* x, const int8_t* q, const uint8_t* scales, int64_t cols) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const int64_t nb = cols / 32;
  auto acc = hn::Zero(df);
  for (int64_t b = 0; b < nb; ++b) {
    auto blk = hn::Zero(df);
    for (int64_t i = 32 * b; i < 32 * b + 32; i += N) {
      const auto w = hn::ConvertTo(df, hn::PromoteTo(d32, hn::LoadU(d8, q + i)));
      blk = hn::MulAdd(hn::LoadU(df, x + i), w, blk);
    }
    acc = hn::MulAdd(blk, hn::Set(df, kHalfScales.v[scales[b]]), acc);
  }
  return hn::GetLane(hn::SumOfLanes(df, acc));
}

}  // namespace gptoss::cpu_fast::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gptoss::cpu_fast {

HWY_EXPORT(DotBf16);
HWY_EXPORT(DotF32);
HWY_EXPORT(Bf16ToF32);
HWY_EXPORT(Mxfp4RowToI8);
HWY_EXPORT(DotMxfp4I8);

float dot_bf16(const float* x, const uint16_t* w, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotBf16)(x, w, n); }
float dot_f32(const float* x, const float* w, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotF32)(x, w, n); }
void bf16_to_f32(const uint16_t* w, int64_t n, float* out) { HWY_DYNAMIC_DISPATCH(Bf16ToF32)(w, n, out); }
void mxfp4_row_to_i8(const uint8_t* blocks, int64_t cols, int8_t* out) {
  HWY_DYNAMIC_DISPATCH(Mxfp4RowToI8)(blocks, cols, out);
}
float dot_mxfp4_i8(const float* x, const int8_t* q, const uint8_t* scales, int64_t cols) {
  return HWY_DYNAMIC_DISPATCH(DotMxfp4I8)(x, q, scales, cols);
}

const char* simd_target() {
  // Force the dispatch table's choice, then name the best target this CPU supports.
  return hwy::TargetName(static_cast<uint32_t>(hwy::SupportedTargets() & HWY_TARGETS & -(hwy::SupportedTargets() & HWY_TARGETS)));
}

}  // namespace gptoss::cpu_fast
#endif  // HWY_ONCE
