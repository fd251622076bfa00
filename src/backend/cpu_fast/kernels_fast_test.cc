// cpu-fast kernels and ops against the exact cpu kernels/backend (the oracle), on random data at
// small, odd and gpt-oss-like widths. Both sides use identical decoded weight values, so the only
// difference is f32 summation order: errors are bounded relative to sum |x_i * w_i|.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "backend/cpu_fast/kernels_fast.h"
#include "core/dtypes.h"

namespace gptoss {
namespace {

constexpr float kRelTol = 2e-5f;  // of sum |x_i w_i|; f32 reordering of <= 6k terms stays far below

uint16_t to_bf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return static_cast<uint16_t>(b >> 16);
}

std::vector<float> randn(std::mt19937& rng, size_t n, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& f : v) f = nd(rng);
  return v;
}

std::vector<uint8_t> rand_bytes(std::mt19937& rng, size_t n, int lo = 0, int hi = 255) {
  std::uniform_int_distribution<int> u(lo, hi);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(u(rng));
  return v;
}

TEST(CpuFastKernels, ReportsATarget) { EXPECT_GT(std::strlen(cpu_fast::simd_target()), 0u); }

// Runs body once per SIMD target compiled in and supported here (AVX3, AVX2, SSE4, ..., SCALAR).
template <typename Body>
void for_each_target(Body body) {
  const int64_t targets = static_cast<int64_t>(hwy::SupportedTargets());
  int tried = 0;
  for (int64_t t = 1; t != 0 && t <= targets; t <<= 1) {
    if ((targets & t) == 0) continue;
    hwy::SetSupportedTargetsForTest(t);
    SCOPED_TRACE(hwy::TargetName(t));
    body();
    ++tried;
  }
  hwy::SetSupportedTargetsForTest(0);
  EXPECT_GE(tried, 2);  // at least one SIMD target and the scalar fallback
}

TEST(CpuFastKernels, DotBf16MatchesExact) { for_each_target([] {
  std::mt19937 rng(1);
  for (int64_t n : {1, 7, 16, 31, 64, 100, 2880, 4096}) {
    auto x = randn(rng, n);
    auto wf = randn(rng, n);
    std::vector<uint16_t> w(n);
    double mag = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      w[i] = to_bf16(wf[i]);
      mag += std::fabs(x[i] * bf16_to_f32(w[i]));
    }
    const float want = cpu::dot_f32(x.data(), w.data(), ElemType::kBF16, n);
    EXPECT_NEAR(cpu_fast::dot_bf16(x.data(), w.data(), n), want, kRelTol * mag) << n;
    std::vector<float> widened(n);
    cpu_fast::bf16_to_f32(w.data(), n, widened.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(widened[i], bf16_to_f32(w[i])) << i;
    EXPECT_NEAR(cpu_fast::dot_f32(x.data(), widened.data(), n), want, kRelTol * mag) << n;
  }
}); }

TEST(CpuFastKernels, Mxfp4DecodeAndDotMatchExact) { for_each_target([] {
  std::mt19937 rng(2);
  for (int64_t cols : {32, 64, 96, 2880}) {
    const int64_t nb = cols / 32;
    auto blocks = rand_bytes(rng, nb * 16);
    auto scales = rand_bytes(rng, nb, 110, 135);
    scales[0] = 0;  // smallest scale: 2^-127 (decoded at 2^-128 x doubled codes)
    std::vector<float> ref(cols);
    cpu::mxfp4_row_to_f32(blocks.data(), scales.data(), cols, ref.data());
    std::vector<int8_t> q(cols);
    cpu_fast::mxfp4_row_to_i8(blocks.data(), cols, q.data());
    for (int64_t i = 0; i < cols; ++i) {
      ASSERT_EQ(static_cast<float>(q[i]) * 0.5f * e8m0_to_f32(scales[i / 32]), ref[i]) << "cols " << cols << " i " << i;
    }
    auto x = randn(rng, cols);
    double mag = 0.0;
    for (int64_t i = 0; i < cols; ++i) mag += std::fabs(x[i] * ref[i]);
    const float want = cpu::dot_f32(x.data(), ref.data(), ElemType::kF32, cols);
    EXPECT_NEAR(cpu_fast::dot_mxfp4_i8(x.data(), q.data(), scales.data(), cols), want, kRelTol * mag) << cols;
  }
}); }

// Backend-level: the fast ops against the exact backend on the same inputs.
struct Pair {
  std::unique_ptr<Backend> exact = make_cpu_backend(2);
  std::unique_ptr<Backend> fast = make_cpu_fast_backend(2);
};

Weight bf16_weight(std::vector<uint16_t>& data, int64_t rows, int64_t cols) {
  Weight w;
  w.buf.data = data.data();
  w.buf.bytes = data.size() * 2;
  w.type = ElemType::kBF16;
  w.rows = rows;
  w.cols = cols;
  return w;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float tol, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  float worst = 0.0f;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  EXPECT_LE(worst, tol) << what;
}

TEST(CpuFastBackend, MatmulMatchesExact) {
  std::mt19937 rng(3);
  Pair p;
  EXPECT_EQ(p.fast->name(), "cpu-fast");
  struct Shape { int64_t n, k; int T; bool bias; };
  for (const Shape s : {Shape{5, 7, 1, true}, Shape{33, 64, 3, false}, Shape{5120, 2880, 1, true},
                        Shape{640, 2880, 5, true}, Shape{2880, 4096, 2, false}}) {
    std::vector<uint16_t> wd(s.n * s.k), bd(s.n);
    for (auto& v : wd) v = to_bf16(std::normal_distribution<float>(0.0f, 0.02f)(rng));
    for (auto& v : bd) v = to_bf16(std::normal_distribution<float>(0.0f, 0.1f)(rng));
    const Weight w = bf16_weight(wd, s.n, s.k), b = bf16_weight(bd, 1, s.n);
    auto x = randn(rng, s.T * s.k);
    std::vector<float> want(s.T * s.n), got(s.T * s.n);
    p.exact->f32_matmul(x.data(), s.T, w, s.bias ? &b : nullptr, want.data());
    p.fast->f32_matmul(x.data(), s.T, w, s.bias ? &b : nullptr, got.data());
    // |x| ~ 1, |w| ~ 0.02: sum |x w| <= ~0.02 * 0.8 * k.
    expect_close(got, want, kRelTol * 0.02f * s.k, "matmul");
  }
}

struct Experts {
  std::vector<uint8_t> blocks, scales;
  std::vector<uint16_t> bias;
  Mxfp4Experts w;
  Weight b;
  Experts(std::mt19937& rng, int64_t experts, int64_t rows, int64_t cols) {
    blocks = rand_bytes(rng, experts * rows * cols / 2);
    scales = rand_bytes(rng, experts * rows * cols / 32, 118, 122);
    bias.resize(experts * rows);
    for (auto& v : bias) v = to_bf16(std::normal_distribution<float>(0.0f, 0.5f)(rng));
    w.blocks.data = blocks.data();
    w.blocks.bytes = blocks.size();
    w.scales.data = scales.data();
    w.scales.bytes = scales.size();
    w.experts = experts;
    w.rows = rows;
    w.cols = cols;
    b = bf16_weight(bias, experts, rows);
  }
};

TEST(CpuFastBackend, MoeOpsMatchExact) {
  std::mt19937 rng(4);
  Pair p;
  struct Shape { int64_t experts, hidden, inter; int T, k; };
  for (const Shape s : {Shape{8, 64, 32, 3, 4}, Shape{16, 96, 32, 7, 4}, Shape{5, 2880, 2880, 1, 4},
                        Shape{6, 2880, 512, 4, 2}}) {
    Experts w1(rng, s.experts, 2 * s.inter, s.hidden), w2(rng, s.experts, s.hidden, s.inter);
    std::vector<int32_t> idx(s.T * s.k);
    std::vector<float> weight(s.T * s.k);
    for (int t = 0; t < s.T; ++t) {
      std::vector<int32_t> perm(s.experts);
      for (int e = 0; e < s.experts; ++e) perm[e] = e;
      std::shuffle(perm.begin(), perm.end(), rng);
      float sum = 0.0f;
      for (int j = 0; j < s.k; ++j) {
        idx[t * s.k + j] = perm[j];
        sum += weight[t * s.k + j] = std::uniform_real_distribution<float>(0.1f, 1.0f)(rng);
      }
      for (int j = 0; j < s.k; ++j) weight[t * s.k + j] /= sum;
    }
    auto x = randn(rng, s.T * s.hidden, 0.05f);
    std::vector<float> h_want(s.T * s.k * s.inter), h_got(h_want.size());
    p.exact->f32_mxfp4w_moe_matmul_swiglu(x.data(), s.T, s.k, idx.data(), w1.w, w1.b, 7.0f, 1.702f, h_want.data());
    p.fast->f32_mxfp4w_moe_matmul_swiglu(x.data(), s.T, s.k, idx.data(), w1.w, w1.b, 7.0f, 1.702f, h_got.data());
    // weights |w| <= 6 * 2^-6, |x| ~ 0.05: sum |x w| < ~0.1 * hidden * 0.05; swiglu slope < 1.2 * (limit + 1).
    expect_close(h_got, h_want, kRelTol * 0.1f * 0.05f * s.hidden * 10.0f, "gate_up swiglu");
    std::vector<float> o_want(s.T * s.hidden), o_got(o_want.size());
    p.exact->f32_mxfp4w_moe_matmul_accumulate(h_want.data(), s.T, s.k, idx.data(), weight.data(), w2.w, w2.b,
                                              o_want.data());
    p.fast->f32_mxfp4w_moe_matmul_accumulate(h_want.data(), s.T, s.k, idx.data(), weight.data(), w2.w, w2.b,
                                             o_got.data());
    float hmax = 0.0f;
    for (float v : h_want) hmax = std::max(hmax, std::fabs(v));
    expect_close(o_got, o_want, kRelTol * 0.1f * hmax * s.inter + 1e-6f, "down accumulate");
  }
}

}  // namespace
}  // namespace gptoss
