// Runtime-dispatched (Highway foreach_target) attention of kernels_fast.h (attend_group): one KV
// head's group of query heads, with sinks, for the cpu-fast decode and prefill.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backend/cpu_fast/attention_fast.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/cpu_fast/kernels_fast.h"

HWY_BEFORE_NAMESPACE();
namespace gptoss::cpu_fast::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 f32 lanes, as the other cpu-fast kernels.
using DF = hn::CappedTag<float, 16>;

// G query heads (q + g * D) that share one KV head, over n keys and values (rows of D floats at
// k[i], v[i]), each with its sink logit: s_gi = (q_g . k_i) * scale, p_g = softmax over
// [s_g0 .. s_g(n-1), sink_g] without the sink column, out_g = sum_i p_gi v_i. Each key and value
// row is loaded once for all G heads. scores has room for G * n floats.
void AttendGroup(const float* HWY_RESTRICT q, int64_t G, int64_t D, const float* const* k, const float* const* v,
                 int64_t n, float scale, const float* sinks, float* HWY_RESTRICT scores, float* HWY_RESTRICT out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const int64_t Dv = D / N * N;
  constexpr int64_t kAhead = 8;  // rows prefetched ahead: K/V rows of one head are strided in memory
  for (int64_t i = 0; i < n; ++i) {
    const float* ki = k[i];
    if (i + kAhead < n) {
      for (int64_t d = 0; d < D; d += 16) hwy::Prefetch(k[i + kAhead] + d);
    }
    for (int64_t g = 0; g < G; ++g) {
      const float* qg = q + g * D;
      auto acc = hn::Zero(df);
      for (int64_t d = 0; d < Dv; d += N) acc = hn::MulAdd(hn::LoadU(df, qg + d), hn::LoadU(df, ki + d), acc);
      float s = hn::GetLane(hn::SumOfLanes(df, acc));
      for (int64_t d = Dv; d < D; ++d) s += qg[d] * ki[d];
      scores[g * n + i] = s * scale;
    }
  }
  // p = exp(s - m) / (sum exp(s - m) + exp(sink - m)), exp in vectors.
  for (int64_t g = 0; g < G; ++g) {
    float* sg = scores + g * n;
    float m = sinks[g];
    for (int64_t i = 0; i < n; ++i) m = std::max(m, sg[i]);
    const auto vm = hn::Set(df, m);
    auto vsum = hn::Zero(df);
    int64_t i = 0;
    for (; i + N <= n; i += N) {
      const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, sg + i), vm));
      hn::StoreU(e, df, sg + i);
      vsum = hn::Add(vsum, e);
    }
    float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
    for (; i < n; ++i) {
      sg[i] = std::exp(sg[i] - m);
      sum += sg[i];
    }
    const float inv = 1.0f / (sum + std::exp(sinks[g] - m));
    for (i = 0; i < n; ++i) sg[i] *= inv;
  }
  // out_g += p_gi v_i: four heads x one vector of D at a time in registers.
  for (int64_t g0 = 0; g0 < G; g0 += 4) {
    const int64_t gn = std::min<int64_t>(4, G - g0);
    const float* p0 = scores + g0 * n;
    const float* p1 = scores + (g0 + (gn > 1 ? 1 : 0)) * n;
    const float* p2 = scores + (g0 + (gn > 2 ? 2 : 0)) * n;
    const float* p3 = scores + (g0 + (gn > 3 ? 3 : 0)) * n;
    if (Dv == 4 * N) {
      // Whole value rows (4 vectors, e.g. D = 64 with 16 lanes) x 4 heads: 16 accumulators, each
      // value row read once per 4 heads.
      auto a00 = hn::Zero(df), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
      auto a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
      for (int64_t j = 0; j < n; ++j) {
        const float* vj = v[j];
        if (j + kAhead < n) {
          for (int64_t d = 0; d < D; d += 16) hwy::Prefetch(v[j + kAhead] + d);
        }
        const auto v0 = hn::LoadU(df, vj), v1 = hn::LoadU(df, vj + N), v2 = hn::LoadU(df, vj + 2 * N),
                   v3 = hn::LoadU(df, vj + 3 * N);
#define GPTOSS_PV(h, pp)                         \
  {                                              \
    const auto pr = hn::Set(df, pp[j]);          \
    a##h##0 = hn::MulAdd(pr, v0, a##h##0);       \
    a##h##1 = hn::MulAdd(pr, v1, a##h##1);       \
    a##h##2 = hn::MulAdd(pr, v2, a##h##2);       \
    a##h##3 = hn::MulAdd(pr, v3, a##h##3);       \
  }
        GPTOSS_PV(0, p0) GPTOSS_PV(1, p1) GPTOSS_PV(2, p2) GPTOSS_PV(3, p3)
#undef GPTOSS_PV
      }
#define GPTOSS_PV_OUT(h)                                                                  \
  if (h < gn) {                                                                           \
    float* oh = out + (g0 + h) * D;                                                       \
    hn::StoreU(a##h##0, df, oh);                                                          \
    hn::StoreU(a##h##1, df, oh + N);                                                      \
    hn::StoreU(a##h##2, df, oh + 2 * N);                                                  \
    hn::StoreU(a##h##3, df, oh + 3 * N);                                                  \
  }
      GPTOSS_PV_OUT(0) GPTOSS_PV_OUT(1) GPTOSS_PV_OUT(2) GPTOSS_PV_OUT(3)
#undef GPTOSS_PV_OUT
    }
    for (int64_t d = 0; d < (Dv == 4 * N ? 0 : Dv); d += N) {
      auto o0 = hn::Zero(df), o1 = o0, o2 = o0, o3 = o0;
      for (int64_t j = 0; j < n; ++j) {
        const auto vj = hn::LoadU(df, v[j] + d);
        o0 = hn::MulAdd(hn::Set(df, p0[j]), vj, o0);
        o1 = hn::MulAdd(hn::Set(df, p1[j]), vj, o1);
        o2 = hn::MulAdd(hn::Set(df, p2[j]), vj, o2);
        o3 = hn::MulAdd(hn::Set(df, p3[j]), vj, o3);
      }
      hn::StoreU(o0, df, out + g0 * D + d);
      if (gn > 1) hn::StoreU(o1, df, out + (g0 + 1) * D + d);
      if (gn > 2) hn::StoreU(o2, df, out + (g0 + 2) * D + d);
      if (gn > 3) hn::StoreU(o3, df, out + (g0 + 3) * D + d);
    }
    for (int64_t g = g0; g < g0 + gn; ++g) {
      for (int64_t d = Dv; d < D; ++d) {
        float o = 0.0f;
        for (int64_t j = 0; j < n; ++j) o += scores[g * n + j] * v[j][d];
        out[g * D + d] = o;
      }
    }
  }
}

}  // namespace gptoss::cpu_fast::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gptoss::cpu_fast {

HWY_EXPORT(AttendGroup);

void attend_group(const float* q, int64_t G, int64_t D, const float* const* k, const float* const* v, int64_t n,
                  float scale, const float* sinks, float* scores, float* out) {
  HWY_DYNAMIC_DISPATCH(AttendGroup)(q, G, D, k, v, n, scale, sinks, scores, out);
}

}  // namespace gptoss::cpu_fast
#endif  // HWY_ONCE
