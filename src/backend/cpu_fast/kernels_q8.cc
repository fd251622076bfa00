// Runtime-dispatched (Highway foreach_target) bodies of kernels_q8.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu_fast/kernels_q8.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/q8_0.h"

HWY_BEFORE_NAMESPACE();
namespace gptoss::cpu_fast::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 f32 lanes: lane counts divide the 32 codes of a block.
using DF = hn::CappedTag<float, 16>;

// Scales are widened kScaleChunk blocks at a time into a buffer (one vector conversion per lane
// count of blocks instead of a scalar fp16 decode per block and row).
constexpr int64_t kScaleChunk = 64;

// The f32 scales of blocks [b0, b0 + nb) of a Q8_0 row (nb <= kScaleChunk).
HWY_INLINE void RowScales(const uint8_t* HWY_RESTRICT row, int64_t b0, int64_t nb, float* HWY_RESTRICT out) {
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  HWY_ALIGN uint16_t h[kScaleChunk];
  for (int64_t j = 0; j < nb; ++j) {
    const uint8_t* blk = row + (b0 + j) * kQ8BlockBytes;
    h[j] = static_cast<uint16_t>(blk[0] | (blk[1] << 8));
  }
  int64_t j = 0;
  for (; j + N <= nb; j += N) {
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(h + j))), df, out + j);
  }
  for (; j < nb; ++j) out[j] = f16_to_f32(h[j]);
}

// A TR x RR tile of outputs (TR tokens x[t], RR weight rows w[r]) over nb blocks: per block and
// row the 32 codes are widened once (32 / lanes vectors: AVX-512 2, AVX2 4, SSE4/NEON 8) and serve
// the TR tokens. out[t * ldo + r] = the sum. Named accumulators, not arrays: SVE vectors are
// sizeless.
//
// pf: the next tile's bytes [pf, pf + pf_bytes), requested a few cache lines per block step so that
// they arrive while this tile computes (one core does not overlap misses and arithmetic by itself;
// see bench/results/cpu-mxfp4-gemv.md). Null: no prefetch.
template <int TR, int RR>
HWY_INLINE void Q8Tile(const float* const* x, const uint8_t* const* w, int64_t nb, float* HWY_RESTRICT out,
                       int64_t ldo, const uint8_t* pf = nullptr, int64_t pf_bytes = 0) {
  static_assert(TR >= 1 && TR <= 4 && RR >= 1 && RR <= 4, "tile shape");
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const float* x0 = x[0];
  const float* x1 = x[TR > 1 ? 1 : 0];
  const float* x2 = x[TR > 2 ? 2 : 0];
  const float* x3 = x[TR > 3 ? 3 : 0];
  HWY_ALIGN float scales[RR][kScaleChunk];
  // Cache lines of the next tile to request per block step (rounded up: done before the end).
  const int64_t pf_lines = pf ? (pf_bytes + 64 * nb - 1) / (64 * nb) : 0;
  auto c00 = hn::Zero(df), c01 = c00, c02 = c00, c03 = c00;
  auto c10 = c00, c11 = c00, c12 = c00, c13 = c00;
  auto c20 = c00, c21 = c00, c22 = c00, c23 = c00;
  auto c30 = c00, c31 = c00, c32 = c00, c33 = c00;
  for (int64_t c0 = 0; c0 < nb; c0 += kScaleChunk) {
    const int64_t cn = std::min(kScaleChunk, nb - c0);
    for (int r = 0; r < RR; ++r) RowScales(w[r], c0, cn, scales[r]);
    for (int64_t b = c0; b < c0 + cn; ++b) {
      const int64_t xo = b * kQ8BlockElems;
      for (int64_t l = 0; l < pf_lines; ++l) {
        const int64_t o = (b * pf_lines + l) * 64;
        if (o < pf_bytes) hwy::Prefetch(pf + o);
      }
#define GPTOSS_Q8_ROW(r)                                                                            \
  if constexpr (RR > r) {                                                                           \
    const int8_t* q = reinterpret_cast<const int8_t*>(w[r] + b * kQ8BlockBytes + 2);                \
    auto qf = hn::ConvertTo(df, hn::PromoteTo(d32, hn::LoadU(d8, q)));                              \
    auto s0 = hn::Mul(qf, hn::LoadU(df, x0 + xo));                                                  \
    auto s1 = TR > 1 ? hn::Mul(qf, hn::LoadU(df, x1 + xo)) : s0;                                    \
    auto s2 = TR > 2 ? hn::Mul(qf, hn::LoadU(df, x2 + xo)) : s0;                                    \
    auto s3 = TR > 3 ? hn::Mul(qf, hn::LoadU(df, x3 + xo)) : s0;                                    \
    for (int64_t i = lanes; i < kQ8BlockElems; i += lanes) {                                        \
      qf = hn::ConvertTo(df, hn::PromoteTo(d32, hn::LoadU(d8, q + i)));                             \
      s0 = hn::MulAdd(qf, hn::LoadU(df, x0 + xo + i), s0);                                          \
      if constexpr (TR > 1) s1 = hn::MulAdd(qf, hn::LoadU(df, x1 + xo + i), s1);                    \
      if constexpr (TR > 2) s2 = hn::MulAdd(qf, hn::LoadU(df, x2 + xo + i), s2);                    \
      if constexpr (TR > 3) s3 = hn::MulAdd(qf, hn::LoadU(df, x3 + xo + i), s3);                    \
    }                                                                                               \
    const auto d = hn::Set(df, scales[r][b - c0]);                                                  \
    c0##r = hn::MulAdd(s0, d, c0##r);                                                               \
    if constexpr (TR > 1) c1##r = hn::MulAdd(s1, d, c1##r);                                         \
    if constexpr (TR > 2) c2##r = hn::MulAdd(s2, d, c2##r);                                         \
    if constexpr (TR > 3) c3##r = hn::MulAdd(s3, d, c3##r);                                         \
  }
      GPTOSS_Q8_ROW(0)
      GPTOSS_Q8_ROW(1)
      GPTOSS_Q8_ROW(2)
      GPTOSS_Q8_ROW(3)
#undef GPTOSS_Q8_ROW
    }
  }
#define GPTOSS_Q8_OUT(t, r) \
  if (t < TR && r < RR) out[t * ldo + r] = hn::GetLane(hn::SumOfLanes(df, c##t##r));
  GPTOSS_Q8_OUT(0, 0) GPTOSS_Q8_OUT(0, 1) GPTOSS_Q8_OUT(0, 2) GPTOSS_Q8_OUT(0, 3)
  GPTOSS_Q8_OUT(1, 0) GPTOSS_Q8_OUT(1, 1) GPTOSS_Q8_OUT(1, 2) GPTOSS_Q8_OUT(1, 3)
  GPTOSS_Q8_OUT(2, 0) GPTOSS_Q8_OUT(2, 1) GPTOSS_Q8_OUT(2, 2) GPTOSS_Q8_OUT(2, 3)
  GPTOSS_Q8_OUT(3, 0) GPTOSS_Q8_OUT(3, 1) GPTOSS_Q8_OUT(3, 2) GPTOSS_Q8_OUT(3, 3)
#undef GPTOSS_Q8_OUT
}

template <int TR>
HWY_INLINE void Q8Rows(const float* const* x, const uint8_t* w, int64_t row_bytes, int64_t nb, int64_t rows,
                       float* HWY_RESTRICT out, int64_t ldo) {
  int64_t r = 0;
  // The first tile is requested up front; each tile then requests the next one's rows.
  for (int64_t o = 0; o < std::min<int64_t>(rows, 4) * row_bytes; o += 64) hwy::Prefetch(w + o);
  for (; r + 4 <= rows; r += 4) {
    const uint8_t* wr[4] = {w + r * row_bytes, w + (r + 1) * row_bytes, w + (r + 2) * row_bytes,
                            w + (r + 3) * row_bytes};
    const int64_t next = std::min<int64_t>(rows - (r + 4), 4);
    Q8Tile<TR, 4>(x, wr, nb, out + r, ldo, next > 0 ? w + (r + 4) * row_bytes : nullptr, next * row_bytes);
  }
  for (; r < rows; ++r) {
    const uint8_t* wr[1] = {w + r * row_bytes};
    Q8Tile<TR, 1>(x, wr, nb, out + r, ldo);
  }
}

void GemvQ8(const float* HWY_RESTRICT x, const uint8_t* HWY_RESTRICT w, int64_t cols, int64_t rows,
            float* HWY_RESTRICT out) {
  const float* xs[1] = {x};
  Q8Rows<1>(xs, w, q8_0_row_bytes(cols), cols / kQ8BlockElems, rows, out, 0);
}

void GemmQ8(const float* const* x, int64_t T, const uint8_t* HWY_RESTRICT w, int64_t cols, int64_t rows,
            float* HWY_RESTRICT out, int64_t ldo) {
  const int64_t rb = q8_0_row_bytes(cols), nb = cols / kQ8BlockElems;
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) Q8Rows<4>(x + t, w, rb, nb, rows, out + t * ldo, ldo);
  switch (T - t) {
    case 3: Q8Rows<3>(x + t, w, rb, nb, rows, out + t * ldo, ldo); break;
    case 2: Q8Rows<2>(x + t, w, rb, nb, rows, out + t * ldo, ldo); break;
    case 1: Q8Rows<1>(x + t, w, rb, nb, rows, out + t * ldo, ldo); break;
    default: break;
  }
}

}  // namespace gptoss::cpu_fast::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu_fast/kernels_q8.h"
#include "backend/cpu_fast/spin_pool.h"

namespace gptoss::cpu_fast {

HWY_EXPORT(GemvQ8);
HWY_EXPORT(GemmQ8);

void gemv_q8_0(const float* x, const uint8_t* w, int64_t cols, int64_t rows, float* out) {
  HWY_DYNAMIC_DISPATCH(GemvQ8)(x, w, cols, rows, out);
}

void gemm_q8_0(const float* const* x, int64_t T, const uint8_t* w, int64_t cols, int64_t rows, float* out,
               int64_t ldo) {
  HWY_DYNAMIC_DISPATCH(GemmQ8)(x, T, w, cols, rows, out, ldo);
}

void f32_q8_0w_matmul(const float* x, int T, const Weight& w, const Weight* bias, float* out, SpinPool& pool) {
  const int64_t N = w.rows, K = w.cols;
  const auto* wd = w.buf.as<uint8_t>();
  const int64_t rb = q8_0_row_bytes(K);
  auto add_bias = [&](int64_t r0, int64_t n, float* o) {
    if (bias) {
      for (int64_t r = 0; r < n; ++r) o[r] += cpu::weight_at(*bias, r0 + r);
    }
  };
  if (T == 1) {
    // Decode: contiguous row ranges streamed once, ~16 tasks per thread so that a thread slowed by
    // other load takes fewer of them.
    const int64_t tasks = std::max<int64_t>(1, 16 * pool.size());
    const int64_t per = std::max<int64_t>(64, (N + tasks - 1) / tasks);
    pool.run(static_cast<int>((N + per - 1) / per), [&](int i) {
      const int64_t r0 = i * per, n = std::min(per, N - r0);
      gemv_q8_0(x, wd + r0 * rb, K, n, out + r0);
      add_bias(r0, n, out + r0);
    });
    return;
  }
  // Several tokens: a tile of rows (in L1/L2) meets every token, 4 tokens at a time.
  std::vector<const float*> xs(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) xs[t] = x + static_cast<int64_t>(t) * K;
  constexpr int64_t kTile = 16;
  pool.run(static_cast<int>((N + kTile - 1) / kTile), [&](int i) {
    const int64_t r0 = i * kTile, n = std::min(kTile, N - r0);
    gemm_q8_0(xs.data(), T, wd + r0 * rb, K, n, out + r0, N);
    for (int t = 0; t < T; ++t) add_bias(r0, n, out + static_cast<int64_t>(t) * N + r0);
  });
}

}  // namespace gptoss::cpu_fast
#endif  // HWY_ONCE
