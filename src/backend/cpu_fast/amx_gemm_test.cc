// The AMX prefill GEMM against float64 sums and the exact cpu kernels (the oracle), on shapes with
// token, K and row tails; the MXFP4 -> bf16 decode against core/dtypes.h; and the cpu-fast ops with
// AMX on against the exact backend. Without AMX here every test reports skipped.
#include "backend/cpu_fast/amx_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "backend/cpu_fast/test_weights.h"
#include "core/dtypes.h"

namespace gptoss {
namespace {

#define SKIP_WITHOUT_AMX() \
  if (!cpu_fast::amx_usable()) GTEST_SKIP() << "AMX unusable here: " << cpu_fast::amx_unusable_reason()

struct Gemm {
  int64_t T, K, R;
};

// Runs the AMX GEMM (rows packed in two thread-like ranges when T > 16) and returns out[t * R + r].
std::vector<float> amx_gemm(const std::vector<float>& x, const std::vector<uint16_t>& w, const Gemm& g, int parts) {
  std::vector<const float*> xs(g.T);
  for (int64_t t = 0; t < g.T; ++t) xs[t] = x.data() + t * g.K;
  std::vector<uint16_t> packed(cpu_fast::amx_packed_x_elems(g.T, g.K, parts), 0xffff);
  const int64_t split = g.T > 16 ? 16 : g.T;
  cpu_fast::amx_pack_x(xs.data(), g.T, g.K, parts, 0, split, packed.data());
  if (split < g.T) cpu_fast::amx_pack_x(xs.data(), g.T, g.K, parts, split, g.T, packed.data());
  std::vector<float> out(g.T * g.R, NAN);
  cpu_fast::amx_gemm_bf16w(packed.data(), g.T, parts, w.data(), g.K, g.R, g.K, out.data(), g.R);
  return out;
}

// Error of the AMX GEMM relative to sum_i |x_i w_i| (float64), worst over outputs; also checks
// that the exact f32 kernel (cpu::dot_f32) lies within the same bound of float64.
double worst_rel_error(const Gemm& g, int parts, uint32_t seed, double* exact_worst) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(g.T * g.K);
  for (auto& v : x) v = nd(rng) * std::exp2(static_cast<float>(static_cast<int>(rng() % 9) - 4));
  std::vector<uint16_t> w(g.R * g.K);
  for (auto& v : w) v = f32_to_bf16(nd(rng) * 0.05f);
  const std::vector<float> got = amx_gemm(x, w, g, parts);
  double worst = 0.0;
  *exact_worst = 0.0;
  for (int64_t t = 0; t < g.T; ++t) {
    for (int64_t r = 0; r < g.R; ++r) {
      double want = 0.0, mag = 0.0;
      for (int64_t i = 0; i < g.K; ++i) {
        const double p = static_cast<double>(x[t * g.K + i]) * bf16_to_f32(w[r * g.K + i]);
        want += p;
        mag += std::fabs(p);
      }
      const float exact = cpu::dot_f32(x.data() + t * g.K, w.data() + r * g.K, ElemType::kBF16, g.K);
      worst = std::max(worst, std::fabs(got[t * g.R + r] - want) / mag);
      *exact_worst = std::max(*exact_worst, std::fabs(exact - want) / mag);
    }
  }
  return worst;
}

const Gemm kShapes[] = {{1, 32, 16}, {5, 7, 3}, {16, 64, 32}, {17, 96, 33}, {33, 80, 50},
                        {64, 2880, 64}, {47, 200, 129}, {100, 2880, 17}};

// 3 parts: x = h + m + l holds all 24 bits of an f32, so only the order of f32 additions differs
// from an f32 dot product: the bound is that of f32 summation, 4e-6 of sum |x w| at K <= 2880
// (about K * 2^-24 / 8 for random signs; the exact kernel is held to the same bound).
TEST(AmxGemm, ThreePartsMatchF32OnOddShapes) {
  SKIP_WITHOUT_AMX();
  double worst = 0.0, exact = 0.0;
  for (const Gemm& g : kShapes) {
    double e = 0.0;
    const double err = worst_rel_error(g, 3, 11, &e);
    SCOPED_TRACE(::testing::Message() << "T=" << g.T << " K=" << g.K << " R=" << g.R);
    EXPECT_LT(err, 4e-6);
    EXPECT_LT(e, 4e-6);
    worst = std::max(worst, err);
    exact = std::max(exact, e);
  }
  std::printf("3 parts: worst |amx - f64| / sum|xw| = %.3g (exact f32 kernel: %.3g)\n", worst, exact);
}

// 2 parts: each x keeps ~17 significant bits (h: 8, m: 8, plus rounding): relative error per term
// up to 2^-17 = 7.6e-6, so the bound is 1e-5 of sum |x w|.
TEST(AmxGemm, TwoPartsStayWithinTheirBound) {
  SKIP_WITHOUT_AMX();
  double worst = 0.0;
  for (const Gemm& g : kShapes) {
    double e = 0.0;
    const double err = worst_rel_error(g, 2, 12, &e);
    SCOPED_TRACE(::testing::Message() << "T=" << g.T << " K=" << g.K << " R=" << g.R);
    EXPECT_LT(err, 1e-5);
    worst = std::max(worst, err);
  }
  std::printf("2 parts: worst |amx - f64| / sum|xw| = %.3g\n", worst);
}

// Padding is really zero: a weight row followed by NaN bits (K tail read past the row would
// poison the sums) and rows past R never reach the output.
TEST(AmxGemm, TailsReadNothingPastTheMatrix) {
  SKIP_WITHOUT_AMX();
  const Gemm g{3, 40, 5};
  const int64_t ld = 64;  // rows 64 apart, elements 40..63 of each row are NaN
  std::vector<uint16_t> w(g.R * ld + 64, 0x7fc0);
  std::vector<float> x(g.T * g.K, 1.0f);
  for (int64_t r = 0; r < g.R; ++r) {
    for (int64_t i = 0; i < g.K; ++i) w[r * ld + i] = f32_to_bf16(static_cast<float>(r + 1));
  }
  std::vector<const float*> xs(g.T);
  for (int64_t t = 0; t < g.T; ++t) xs[t] = x.data() + t * g.K;
  std::vector<uint16_t> packed(cpu_fast::amx_packed_x_elems(g.T, g.K, 3));
  cpu_fast::amx_pack_x(xs.data(), g.T, g.K, 3, 0, g.T, packed.data());
  const int64_t ldo = 7;
  std::vector<float> out(g.T * ldo, -1.0f);
  cpu_fast::amx_gemm_bf16w(packed.data(), g.T, 3, w.data(), ld, g.R, g.K, out.data(), ldo);
  for (int64_t t = 0; t < g.T; ++t) {
    for (int64_t r = 0; r < ldo; ++r) EXPECT_EQ(out[t * ldo + r], r < g.R ? 40.0f * (r + 1) : -1.0f) << t << "," << r;
  }
}

// What amx_gemm.h states about denormals: activations below 2^-126 contribute nothing (the f32
// path would add ~1e-38 per term), normal ones next to them are unaffected.
TEST(AmxGemm, DenormalActivationsCountAsZero) {
  SKIP_WITHOUT_AMX();
  const Gemm g{16, 64, 16};
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint16_t> w(g.R * g.K);
  for (auto& v : w) v = f32_to_bf16(nd(rng));
  std::vector<float> x(g.T * g.K);
  for (int64_t t = 0; t < g.T; ++t) {
    for (int64_t i = 0; i < g.K; ++i) x[t * g.K + i] = t % 2 ? nd(rng) : nd(rng) * 1e-39f;  // even rows denormal
  }
  for (const int parts : {2, 3}) {
    const std::vector<float> got = amx_gemm(x, w, g, parts);
    for (int64_t t = 0; t < g.T; ++t) {
      for (int64_t r = 0; r < g.R; ++r) {
        const float exact = cpu::dot_f32(x.data() + t * g.K, w.data() + r * g.K, ElemType::kBF16, g.K);
        if (t % 2 == 0) {
          EXPECT_EQ(got[t * g.R + r], 0.0f) << "parts " << parts << " t " << t << " (f32: " << exact << ")";
        } else {
          double mag = 0.0;
          for (int64_t i = 0; i < g.K; ++i) mag += std::fabs(x[t * g.K + i] * bf16_to_f32(w[r * g.K + i]));
          EXPECT_NEAR(got[t * g.R + r], exact, (parts == 3 ? 4e-6 : 1e-5) * mag);  // the bounds above
        }
      }
    }
  }
}

TEST(AmxGemm, Mxfp4DecodeIsExact) {
  SKIP_WITHOUT_AMX();
  // Every code in every nibble position, every scale byte but 255 (NaN in E8M0).
  const int64_t rows = 255, cols = 64;
  std::vector<uint8_t> blocks(rows * cols / 2), scales(rows * cols / 32);
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<uint8_t>(i * 37 + i / 16);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = static_cast<uint8_t>(i / 2);
  std::vector<uint16_t> got(rows * 80, 0);
  cpu_fast::amx_mxfp4_rows_to_bf16(blocks.data(), scales.data(), cols, rows, got.data(), 80);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols / 32; ++b) {
      float want[32];
      mxfp4_block_to_f32(blocks.data() + (r * 2 + b) * 16, scales[r * 2 + b], want);
      for (int i = 0; i < 32; ++i) {
        ASSERT_EQ(bf16_to_f32(got[r * 80 + b * 32 + i]), want[i]) << r << " " << b << " " << i;
      }
    }
  }
}

// The AVX-512 SwiGLU against cpu::swiglu (libm expf): gates and ups from -100 to 100 (clamps,
// exp overflow to inf for very negative gates), odd lengths (masked tails).
TEST(AmxGemm, SwigluMatchesExactKernel) {
  SKIP_WITHOUT_AMX();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f), narrow(-3.0f, 3.0f);
  double worst = 0.0;
  for (const int64_t n : {2, 30, 32, 34, 64, 2880}) {
    std::vector<float> y(n), bias(n), h(n / 2 + 1, -7.0f);
    for (int64_t i = 0; i < n; ++i) {
      y[i] = i % 3 ? narrow(rng) : wide(rng);
      bias[i] = narrow(rng);
    }
    cpu_fast::avx512_swiglu_pairs(y.data(), bias.data(), n, 7.0f, 1.702f, h.data());
    for (int64_t j = 0; j < n / 2; ++j) {
      const float want = cpu::swiglu(y[2 * j] + bias[2 * j], y[2 * j + 1] + bias[2 * j + 1], 7.0f, 1.702f);
      const double err = std::fabs(h[j] - want) / (std::fabs(want) + 1e-30);
      ASSERT_TRUE(std::fabs(h[j] - want) <= 4e-7 * std::fabs(want)) << n << " " << j << ": " << h[j] << " vs " << want;
      worst = std::max(worst, err);
    }
    EXPECT_EQ(h[n / 2], -7.0f) << "wrote past n / 2 outputs";
  }
  std::printf("swiglu: worst relative error vs cpu::swiglu = %.3g\n", worst);
}

// The backend's prefill ops with AMX (3 parts, from 3 tokens) against the exact backend.
TEST(AmxGemm, BackendPrefillOpsMatchExact) {
  SKIP_WITHOUT_AMX();
  setenv("GPTOSS_CPU_FAST_AMX", "1", 1);
  setenv("GPTOSS_CPU_FAST_AMX_PARTS", "3", 1);
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto exact = make_cpu_backend(2);
  auto fast = make_cpu_fast_backend(2);
  auto randv = [&](size_t n, float sd) {
    std::vector<float> v(n);
    for (auto& f : v) f = nd(rng) * sd;
    return v;
  };
  auto bf16v = [&](size_t n, float sd) {
    std::vector<uint16_t> v(n);
    for (auto& f : v) f = f32_to_bf16(nd(rng) * sd);
    return v;
  };
  // |fast - exact| <= tol * (1 + |exact|): outputs here are O(1) sums of O(100) terms.
  auto expect_close = [](const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i])));
    EXPECT_LT(worst, 2e-5) << what;
    std::printf("%s: worst |fast - exact| / (1 + |exact|) = %.3g\n", what, worst);
  };
  const int T = 37, k = 4, E = 4;
  const int64_t H = 160, I = 96, N = 75;
  auto wd = bf16v(N * H, 0.05f), bd = bf16v(N, 0.1f);
  const Weight w = bf16_weight(wd.data(), N, H), b = bf16_weight(bd.data(), 1, N);
  auto x = randv(T * H, 1.0f);
  std::vector<float> me(T * N), mf(T * N);
  exact->f32_matmul(x.data(), T, w, &b, me.data());
  fast->f32_matmul(x.data(), T, w, &b, mf.data());
  expect_close(mf, me, "matmul");

  RandomExperts e1(rng, E, 2 * I, H), e2(rng, E, H, I);
  const Mxfp4Experts& w1 = e1.w;
  const Mxfp4Experts& w2 = e2.w;
  const Weight& bb1 = e1.b;
  const Weight& bb2 = e2.b;
  std::vector<int32_t> idx(T * k);
  std::vector<float> route(T * k);
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < k; ++j) {
      idx[t * k + j] = (t + j) % E;
      route[t * k + j] = 0.1f + 0.2f * j;
    }
  }
  idx[0] = 3, idx[3] = 0;  // expert order within a token is not ascending everywhere
  auto xs = randv(T * H, 0.1f);
  std::vector<float> he(T * k * I), hf(he.size()), oe(T * H), of(T * H);
  exact->f32_mxfp4w_moe_matmul_swiglu(xs.data(), T, k, idx.data(), w1, bb1, 7.0f, 1.702f, he.data());
  fast->f32_mxfp4w_moe_matmul_swiglu(xs.data(), T, k, idx.data(), w1, bb1, 7.0f, 1.702f, hf.data());
  expect_close(hf, he, "moe gate_up+swiglu");
  exact->f32_mxfp4w_moe_matmul_accumulate(he.data(), T, k, idx.data(), route.data(), w2, bb2, oe.data());
  fast->f32_mxfp4w_moe_matmul_accumulate(he.data(), T, k, idx.data(), route.data(), w2, bb2, of.data());
  expect_close(of, oe, "moe down+sum");
  // AMX really ran: the f32 path (AMX off) gives other low bits.
  setenv("GPTOSS_CPU_FAST_AMX", "0", 1);
  auto fast_f32 = make_cpu_fast_backend(2);
  std::vector<float> m32(T * N);
  fast_f32->f32_matmul(x.data(), T, w, &b, m32.data());
  EXPECT_NE(m32, mf);
  unsetenv("GPTOSS_CPU_FAST_AMX");
  unsetenv("GPTOSS_CPU_FAST_AMX_PARTS");
}

}  // namespace
}  // namespace gptoss
