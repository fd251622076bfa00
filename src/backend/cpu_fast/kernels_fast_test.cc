// cpu-fast kernels and ops against the exact cpu kernels/backend (the oracle), on random data at
// small, odd and gpt-oss-like widths. Both sides use identical decoded weight values, so the only
// difference is f32 summation order: errors are bounded relative to sum |x_i * w_i|.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#if defined(__linux__)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#endif

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "backend/cpu_fast/for_each_target.h"
#include "backend/cpu_fast/kernels_fast.h"
#include "backend/cpu_fast/test_weights.h"
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

std::vector<float> chunked(const std::vector<float>& x) {
  std::vector<float> xp(x.size());
  cpu_fast::to_chunk_order(x.data(), static_cast<int64_t>(x.size()), xp.data());
  return xp;
}

TEST(CpuFastKernels, ChunkOrderIsEvenThenOddPer32) {
  std::vector<float> x(70);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  const auto xp = chunked(x);
  for (int c = 0; c < 2; ++c) {
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(xp[32 * c + j], 32 * c + 2 * j);
      EXPECT_EQ(xp[32 * c + 16 + j], 32 * c + 2 * j + 1);
    }
  }
  EXPECT_EQ(xp[64], 64.0f);  // the tail stays in order
  EXPECT_EQ(xp[69], 69.0f);
  std::vector<float> back(x.size());
  cpu_fast::from_chunk_order(xp.data(), 70, back.data());
  EXPECT_EQ(back, x);
}

TEST(CpuFastKernels, Bf16GemvAndWideningMatchExact) { for_each_target([] {
  std::mt19937 rng(1);
  for (int64_t n : {1, 7, 16, 31, 32, 64, 100, 2880, 4096}) {
    const int64_t rows = 5, stride = n + 3;  // odd row count, rows not 4-byte aligned
    auto x = randn(rng, n);
    auto wf = randn(rng, rows * stride);
    std::vector<uint16_t> w(rows * stride);
    for (size_t i = 0; i < w.size(); ++i) w[i] = to_bf16(wf[i]);
    const auto xp = chunked(x);
    std::vector<float> got(rows), widened(rows * n);
    cpu_fast::gemv_bf16(xp.data(), w.data(), stride, n, rows, got.data());
    cpu_fast::bf16_rows_to_f32(w.data(), stride, n, rows, widened.data());
    for (int64_t r = 0; r < rows; ++r) {
      const uint16_t* wr = w.data() + r * stride;
      double mag = 0.0;
      std::vector<float> natural(n);
      for (int64_t i = 0; i < n; ++i) {
        mag += std::fabs(x[i] * bf16_to_f32(wr[i]));
        natural[i] = bf16_to_f32(wr[i]);
      }
      const float want = cpu::dot_f32(x.data(), wr, ElemType::kBF16, n);
      EXPECT_NEAR(got[r], want, kRelTol * mag) << n << " row " << r;
      // Widening is exact and lands in chunk order.
      ASSERT_EQ(std::vector<float>(widened.begin() + r * n, widened.begin() + (r + 1) * n), chunked(natural)) << n;
      EXPECT_NEAR(cpu_fast::dot_f32(xp.data(), widened.data() + r * n, n), want, kRelTol * mag) << n;
    }
  }
}); }

// gemv_bf16's variants (the L1-buffer kernel, 1/4/8 rows per tile in registers, any prefetch
// distance and hint) compute the same sums in the same order: gemv_bf16's bits, on every target,
// for row counts that leave partial tiles and rows that start anywhere in a cache line.
TEST(CpuFastKernels, Bf16GemvVariantsGiveTheSameBits) { for_each_target([] {
  std::mt19937 rng(11);
  for (int64_t n : {32, 608, 2880}) {
    const int64_t rows = 13, stride = n + 8;  // 8 + 4 + 1 rows; rows 16 bytes apart from line starts
    auto x = randn(rng, n);
    auto wf = randn(rng, rows * stride);
    std::vector<uint16_t> w(rows * stride);
    for (size_t i = 0; i < w.size(); ++i) w[i] = to_bf16(wf[i]);
    const auto xp = chunked(x);
    std::vector<float> want(rows), got(rows);
    cpu_fast::gemv_bf16(xp.data(), w.data(), stride, n, rows, want.data());
    for (int64_t tile : {0, 1, 4, 8}) {
      for (int64_t ahead : {0, 3, 16, 100}) {
        for (int hint : {0, 2, 3}) {
          std::fill(got.begin(), got.end(), -1.0f);
          cpu_fast::gemv_bf16_lab(xp.data(), w.data(), stride, n, rows, got.data(), ahead, tile, hint);
          ASSERT_EQ(got, want) << n << " tile " << tile << " ahead " << ahead << " hint " << hint;
        }
      }
    }
  }
}); }

// gemv_bf16's prefetch (the variants above give its bits whatever it is): PREFETCHT1 48 steps on AMD
// CPUs, T0 16 steps elsewhere, GPTOSS_CPU_FAST_BF16_PREFETCH=l1|l2 overrides; any other value is
// named as an error and leaves the default.
TEST(CpuFastKernels, Bf16PrefetchChoice) {
  struct Case {
    const char* env;
    bool amd;
    int64_t ahead;
    int hint;
    bool error;
  };
  for (const Case& c : {Case{nullptr, true, 48, 2, false}, Case{nullptr, false, 16, 3, false},
                        Case{"l1", true, 16, 3, false}, Case{"l2", false, 48, 2, false},
                        Case{"L2", true, 48, 2, true}, Case{"", false, 16, 3, true},
                        Case{"t1", false, 16, 3, true}}) {
    const auto p = cpu_fast::bf16_prefetch_for(c.env, c.amd);
    const std::string what = std::string("env ") + (c.env ? c.env : "(unset)") + (c.amd ? ", AMD" : ", not AMD");
    EXPECT_EQ(p.ahead, c.ahead) << what;
    EXPECT_EQ(p.hint, c.hint) << what;
    EXPECT_GT(std::strlen(p.why), 0u) << what;
    EXPECT_EQ(p.error != nullptr, c.error) << what;
    if (p.error) {
      EXPECT_NE(std::string(p.error).find("GPTOSS_CPU_FAST_BF16_PREFETCH"), std::string::npos) << what;
    }
  }
  const auto now = cpu_fast::bf16_prefetch();  // this process's choice: one of the two
  EXPECT_TRUE((now.ahead == 16 && now.hint == 3) || (now.ahead == 48 && now.hint == 2));
}

TEST(CpuFastKernels, Mxfp4GemvAndDecodeMatchExact) { for_each_target([] {
  std::mt19937 rng(2);
  // 3 rows: single-row path only; 13: three 4-row tiles (each prefetching the next) and one more.
  for (const auto& [cols, rows] : {std::pair<int64_t, int64_t>{32, 3}, {64, 3}, {96, 3}, {2880, 3}, {96, 13},
                                   {2880, 13}}) {
    const int64_t nb = cols / 32;
    auto blocks = rand_bytes(rng, rows * nb * 16);
    auto scales = rand_bytes(rng, rows * nb, 110, 135);
    scales[0] = 0;  // smallest scale 2^-127
    scales[rows * nb - 1] = 140;
    auto x = randn(rng, cols);
    const auto xp = chunked(x);
    std::vector<float> got(rows), decoded(rows * cols);
    cpu_fast::gemv_mxfp4(xp.data(), blocks.data(), scales.data(), cols, rows, got.data());
    cpu_fast::mxfp4_rows_to_f32(blocks.data(), scales.data(), cols, rows, decoded.data());
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> ref(cols);
      cpu::mxfp4_row_to_f32(blocks.data() + r * nb * 16, scales.data() + r * nb, cols, ref.data());
      // Decoding is exact and lands in chunk order.
      ASSERT_EQ(std::vector<float>(decoded.begin() + r * cols, decoded.begin() + (r + 1) * cols), chunked(ref))
          << "cols " << cols << " row " << r;
      double mag = 0.0;
      for (int64_t i = 0; i < cols; ++i) mag += std::fabs(x[i] * ref[i]);
      const float want = cpu::dot_f32(x.data(), ref.data(), ElemType::kF32, cols);
      EXPECT_NEAR(got[r], want, kRelTol * mag) << cols << " row " << r;
    }
  }
}); }

TEST(CpuFastKernels, GemmMatchesDots) { for_each_target([] {
  std::mt19937 rng(5);
  for (const auto& [T, R, n] : {std::tuple<int, int, int>{1, 1, 5}, {3, 2, 40}, {4, 4, 64}, {9, 7, 2880}, {6, 13, 33}}) {
    auto x = randn(rng, static_cast<size_t>(T) * n);
    auto w = randn(rng, static_cast<size_t>(R) * (n + 1));
    std::vector<const float*> xs(T);
    for (int t = 0; t < T; ++t) xs[t] = x.data() + static_cast<size_t>(t) * n;
    const int64_t ldo = R + 2;
    std::vector<float> out(static_cast<size_t>(T) * ldo, -7.0f);
    cpu_fast::gemm_f32(xs.data(), T, w.data(), n + 1, R, n, out.data(), ldo);
    for (int t = 0; t < T; ++t) {
      for (int r = 0; r < R; ++r) {
        double mag = 0.0;
        for (int i = 0; i < n; ++i) mag += std::fabs(xs[t][i] * w[r * (n + 1) + i]);
        const float want = cpu::dot_f32(xs[t], w.data() + r * (n + 1), ElemType::kF32, n);
        EXPECT_NEAR(out[t * ldo + r], want, kRelTol * mag) << T << "x" << R << "x" << n << " t " << t << " r " << r;
      }
      EXPECT_EQ(out[t * ldo + R], -7.0f);  // nothing written past R
    }
  }
}); }

// gemm_bf16_rows (prefill's dense matmuls) is gemm_f32 over the widened rows bit for bit, for
// every target (AVX-512: the rows in the lanes), and near the exact dot products.
TEST(CpuFastKernels, GemmBf16RowsIsGemmF32) { for_each_target([] {
  std::mt19937 rng(8);
  // n: one partial block, 2 blocks + 96, the model's 2880 and 4096, and tails that are not chunks;
  // T: tiles of 4 and single tokens, more than one 64-token block; rows 1 to 16, stride odd.
  for (const auto& [T, R, n] : {std::tuple<int, int, int>{1, 16, 32}, {9, 5, 608}, {70, 16, 2880}, {6, 13, 4096},
                                {4, 1, 96}, {3, 16, 40}, {5, 7, 33}}) {
    const int64_t stride = n + 3;
    auto x = randn(rng, static_cast<size_t>(T) * n);
    auto wf = randn(rng, static_cast<size_t>(R) * stride);
    std::vector<uint16_t> w(wf.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = to_bf16(wf[i]);
    std::vector<const float*> xs(T);
    for (int t = 0; t < T; ++t) xs[t] = x.data() + static_cast<size_t>(t) * n;
    const int64_t ldo = R + 2;
    std::vector<float> got(static_cast<size_t>(T) * ldo, -7.0f), want(got.size(), -7.0f);
    cpu_fast::gemm_bf16_rows(xs.data(), T, w.data(), stride, n, R, got.data(), ldo);
    std::vector<float> widened(static_cast<size_t>(R) * n);
    cpu_fast::bf16_rows_to_f32(w.data(), stride, n, R, widened.data());
    cpu_fast::gemm_f32(xs.data(), T, widened.data(), n, R, n, want.data(), ldo);
    ASSERT_EQ(got, want) << T << "x" << R << "x" << n;  // the -7 past R included: nothing written there
    for (int t = 0; t < T; ++t) {
      for (int r = 0; r < R; ++r) {
        double mag = 0.0;
        for (int i = 0; i < n; ++i) mag += std::fabs(xs[t][i] * widened[r * n + i]);
        EXPECT_NEAR(got[t * ldo + r], cpu_fast::dot_f32(xs[t], widened.data() + r * n, n), kRelTol * mag);
      }
    }
  }
}); }

// Backend-level: the fast ops against the exact backend on the same inputs.
struct Pair {
  std::unique_ptr<Backend> exact = make_cpu_backend(2);
  std::unique_ptr<Backend> fast = make_cpu_fast_backend(2);
};

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
                        Shape{640, 2880, 5, true}, Shape{2880, 4096, 2, false},
                        Shape{70, 2880, 70, true}}) {
    std::vector<uint16_t> wd(s.n * s.k), bd(s.n);
    for (auto& v : wd) v = to_bf16(std::normal_distribution<float>(0.0f, 0.02f)(rng));
    for (auto& v : bd) v = to_bf16(std::normal_distribution<float>(0.0f, 0.1f)(rng));
    const Weight w = bf16_weight(wd.data(), s.n, s.k), b = bf16_weight(bd.data(), 1, s.n);
    auto x = randn(rng, s.T * s.k);
    std::vector<float> want(s.T * s.n), got(s.T * s.n);
    p.exact->f32_matmul(x.data(), s.T, w, s.bias ? &b : nullptr, want.data());
    p.fast->f32_matmul(x.data(), s.T, w, s.bias ? &b : nullptr, got.data());
    // |x| ~ 1, |w| ~ 0.02: sum |x w| <= ~0.02 * 0.8 * k.
    expect_close(got, want, kRelTol * 0.02f * s.k, "matmul");
  }
}

// f32_matmuls (q, k and v on one input): one pool job over the matrices' rows for one token, whose
// tasks cross from one matrix into the next; every output is f32_matmul's bit for bit (and within
// the exact backend's tolerance), for one token, for several tokens (one call each) and for
// matrices of different widths (one call each; with one token each reads x's first columns).
TEST(CpuFastBackend, MatmulsAreTheMatmulsBits) {
  std::mt19937 rng(12);
  Pair p;
  struct Case { int T; std::vector<int64_t> rows, cols; };
  for (const Case& c : {Case{1, {1000, 130, 130}, {640, 640, 640}}, Case{1, {512, 64, 64}, {2880, 2880, 2880}},
                        Case{1, {5, 300, 7}, {96, 96, 96}}, Case{3, {200, 40, 40}, {640, 640, 640}},
                        Case{1, {100, 50, 70}, {640, 320, 640}}}) {
    const size_t n = c.rows.size();
    std::vector<std::vector<uint16_t>> wd(n), bd(n);
    std::vector<Weight> w(n), b(n);
    std::vector<std::vector<float>> want(n), got(n), exact(n);
    std::vector<Backend::MatmulOut> outs(n);
    auto x = randn(rng, c.T * c.cols[0]);
    for (size_t m = 0; m < n; ++m) {
      const int64_t r = c.rows[m], k = c.cols[m];
      wd[m].resize(r * k);
      bd[m].resize(r);
      for (auto& v : wd[m]) v = to_bf16(std::normal_distribution<float>(0.0f, 0.02f)(rng));
      for (auto& v : bd[m]) v = to_bf16(std::normal_distribution<float>(0.0f, 0.1f)(rng));
      w[m] = bf16_weight(wd[m].data(), r, k);
      b[m] = bf16_weight(bd[m].data(), 1, r);
      want[m].resize(c.T * r);
      got[m].resize(c.T * r);
      exact[m].resize(c.T * r);
      outs[m] = {&w[m], m == 2 ? nullptr : &b[m], got[m].data()};  // the third without a bias
      p.fast->f32_matmul(x.data(), c.T, w[m], outs[m].bias, want[m].data());
      p.exact->f32_matmul(x.data(), c.T, w[m], outs[m].bias, exact[m].data());
    }
    p.fast->f32_matmuls(x.data(), c.T, outs);
    for (size_t m = 0; m < n; ++m) {
      EXPECT_EQ(got[m], want[m]) << "T " << c.T << " rows " << c.rows[m] << " matrix " << m;
      expect_close(got[m], exact[m], kRelTol * 0.02f * c.cols[m], "matmuls vs exact");
    }
  }
}

TEST(CpuFastBackend, MoeOpsMatchExact) {
  std::mt19937 rng(4);
  Pair p;
  struct Shape { int64_t experts, hidden, inter; int T, k; };
  for (const Shape s : {Shape{8, 64, 32, 3, 4}, Shape{16, 96, 32, 7, 4}, Shape{5, 2880, 2880, 1, 4},
                        Shape{6, 2880, 512, 4, 2},
                        Shape{4, 2880, 2880, 3, 4}, Shape{8, 2880, 256, 150, 4}}) {
    RandomExperts w1(rng, s.experts, 2 * s.inter, s.hidden), w2(rng, s.experts, s.hidden, s.inter);
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

namespace gptoss {
namespace {

// A token's results do not depend on the batch: prefill (T tokens, GEMM tiles over decoded
// weights) gives the same bits as decoding each token alone (GEMV), for every SIMD target.
TEST(CpuFastBackend, ResultsDoNotDependOnTheBatch) { for_each_target([] {
  std::mt19937 rng(6);
  setenv("GPTOSS_CPU_FAST_AMX", "0", 1);  // AMX prefill sums in another order (amx_gemm_test.cc)
  // The int8 expert GEMVs of 1-2 token calls round the activations (kernels_mxfp4_i8_test.cc holds
  // them to a bound, and a token alone to its bits beside another): bit-equality is the f32 path's.
  setenv("GPTOSS_CPU_FAST_MOE_I8", "0", 1);
  auto fast = make_cpu_fast_backend(2);
  unsetenv("GPTOSS_CPU_FAST_AMX");
  unsetenv("GPTOSS_CPU_FAST_MOE_I8");
  const int T = 9, k = 4;
  // 608 = 2 blocks of 256 + 96 (a partial block), 300 rows: not a multiple of 4.
  const int64_t experts = 4, hidden = 608, inter = 320, n_out = 300;
  std::vector<uint16_t> wd(n_out * hidden), bd(n_out);
  for (auto& v : wd) v = to_bf16(std::normal_distribution<float>(0.0f, 0.02f)(rng));
  for (auto& v : bd) v = to_bf16(std::normal_distribution<float>(0.0f, 0.1f)(rng));
  const Weight w = bf16_weight(wd.data(), n_out, hidden), b = bf16_weight(bd.data(), 1, n_out);
  auto x = randn(rng, T * hidden);
  std::vector<float> batch(T * n_out), alone(T * n_out);
  fast->f32_matmul(x.data(), T, w, &b, batch.data());
  for (int t = 0; t < T; ++t) fast->f32_matmul(x.data() + t * hidden, 1, w, &b, alone.data() + t * n_out);
  ASSERT_EQ(batch, alone) << "matmul";

  RandomExperts w1(rng, experts, 2 * inter, hidden), w2(rng, experts, hidden, inter);
  std::vector<int32_t> idx(T * k);
  std::vector<float> weight(T * k, 0.25f);
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < k; ++j) idx[t * k + j] = (t + j) % experts;  // every expert gets > 2 tokens
  }
  auto xs = randn(rng, T * hidden, 0.05f);
  std::vector<float> h_batch(T * k * inter), h_alone(h_batch.size());
  fast->f32_mxfp4w_moe_matmul_swiglu(xs.data(), T, k, idx.data(), w1.w, w1.b, 7.0f, 1.702f, h_batch.data());
  for (int t = 0; t < T; ++t) {
    fast->f32_mxfp4w_moe_matmul_swiglu(xs.data() + t * hidden, 1, k, idx.data() + t * k, w1.w, w1.b, 7.0f, 1.702f,
                                       h_alone.data() + t * k * inter);
  }
  ASSERT_EQ(h_batch, h_alone) << "gate_up";
  std::vector<float> o_batch(T * hidden), o_alone(o_batch.size());
  fast->f32_mxfp4w_moe_matmul_accumulate(h_batch.data(), T, k, idx.data(), weight.data(), w2.w, w2.b, o_batch.data());
  for (int t = 0; t < T; ++t) {
    fast->f32_mxfp4w_moe_matmul_accumulate(h_batch.data() + t * k * inter, 1, k, idx.data() + t * k,
                                           weight.data() + t * k, w2.w, w2.b, o_alone.data() + t * hidden);
  }
  ASSERT_EQ(o_batch, o_alone) << "down";
}); }

// A decode expert matmul's row split between the pool's tasks (GPTOSS_CPU_FAST_DECODE_TILE rows, or
// "equal": rows / (2 * threads) per expert; the default: largest first) does not change any output
// bit, f32 and int8 kernels alike.
TEST(CpuFastBackend, DecodeRowSplitDoesNotChangeResults) {
  std::mt19937 rng(8);
  const int k = 4;
  const int64_t experts = 6, hidden = 608, inter = 320;  // gate_up 640 rows, down 608
  RandomExperts w1(rng, experts, 2 * inter, hidden), w2(rng, experts, hidden, inter);
  const std::vector<int32_t> idx = {4, 1, 5, 2};
  const std::vector<float> weight = {0.4f, 0.3f, 0.2f, 0.1f};
  auto xs = randn(rng, hidden, 0.05f);
  for (const char* i8 : {"0", "1"}) {
    std::vector<float> h_want, o_want;
    for (const char* tile : {"4", "64", "100", "equal", "0"}) {
      setenv("GPTOSS_CPU_FAST_MOE_I8", i8, 1);
      setenv("GPTOSS_CPU_FAST_DECODE_TILE", tile, 1);
      auto fast = make_cpu_fast_backend(2);
      unsetenv("GPTOSS_CPU_FAST_MOE_I8");
      unsetenv("GPTOSS_CPU_FAST_DECODE_TILE");
      std::vector<float> h(k * inter), o(hidden);
      fast->f32_mxfp4w_moe_matmul_swiglu(xs.data(), 1, k, idx.data(), w1.w, w1.b, 7.0f, 1.702f, h.data());
      fast->f32_mxfp4w_moe_matmul_accumulate(h.data(), 1, k, idx.data(), weight.data(), w2.w, w2.b, o.data());
      if (h_want.empty()) {
        h_want = h;
        o_want = o;
        continue;
      }
      EXPECT_EQ(h, h_want) << "gate_up, tile " << tile << ", int8 " << i8;
      EXPECT_EQ(o, o_want) << "down, tile " << tile << ", int8 " << i8;
    }
  }
}

#if defined(__linux__) && defined(MADV_HUGEPAGE)
// The VmFlags of the mapping that holds p contain "hg" (MADV_HUGEPAGE), as the kernel reports them.
bool marked_huge(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = at >= lo && at < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return (line + " ").find(" hg ") != std::string::npos;
    }
  }
  return false;
}

// upload_weight marks the 2 MB-aligned interior of a weight's range (here a read-only private
// mapping of a file, as the model's weights are) MADV_HUGEPAGE, and nothing outside it; with
// GPTOSS_CPU_FAST_HUGEPAGE=0 nothing.
TEST(CpuFastBackend, WeightsAreMarkedForHugePages) {
  constexpr size_t kHuge = size_t{2} << 20, kLen = 5 * kHuge;
  char path[] = "/tmp/gptoss_hugepage_testXXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(kLen)), 0);
  auto map = [&] {
    void* m = mmap(nullptr, kLen, PROT_READ, MAP_PRIVATE, fd, 0);
    EXPECT_NE(m, MAP_FAILED);
    return static_cast<uint8_t*>(m);
  };
  // Where madvise sets no flag (THP not built in, or an emulator that ignores it) there is nothing
  // to test.
  uint8_t* probe = map();
  const bool kernel_marks = madvise(probe, kLen, MADV_HUGEPAGE) == 0 && marked_huge(probe);
  munmap(probe, kLen);
  if (!kernel_marks) {
    close(fd);
    GTEST_SKIP() << "madvise(MADV_HUGEPAGE) sets no flag here";
  }
  for (const bool on : {true, false}) {
    uint8_t* m = map();
    // A 4 MB weight from 1 MB past a 2 MB boundary (first): its 2 MB-aligned interior is one 2 MB
    // page.
    uint8_t* first =
        reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(m) + kHuge - 1) & ~(kHuge - 1));
    uint8_t* weight = first + kHuge / 2;
    const size_t bytes = 2 * kHuge;  // its 2 MB-aligned interior: [first + 2 MB, first + 4 MB)
    if (!on) setenv("GPTOSS_CPU_FAST_HUGEPAGE", "0", 1);
    auto fast = make_cpu_fast_backend(1);
    unsetenv("GPTOSS_CPU_FAST_HUGEPAGE");
    auto buf = fast->upload_weight(weight, bytes);
    ASSERT_TRUE(buf.has_value());
    EXPECT_EQ(buf->data, weight);  // borrowed, not copied
    EXPECT_FALSE(marked_huge(weight)) << "before the interior";
    EXPECT_EQ(marked_huge(first + kHuge), on) << "the interior";
    EXPECT_EQ(marked_huge(first + 2 * kHuge - 1), on) << "the interior's last byte";
    EXPECT_FALSE(marked_huge(first + 2 * kHuge)) << "after the interior";
    munmap(m, kLen);
  }
  close(fd);
}
#endif

}  // namespace
}  // namespace gptoss

namespace gptoss {
namespace {

TEST(CpuFastBackend, SelfCheckPasses) {
  // On this machine's best SIMD target (the answer is cached for the process).
  EXPECT_TRUE(cpu_fast_self_check());
}

}  // namespace
}  // namespace gptoss

namespace gptoss {
namespace {

TEST(CpuFastBackend, AttentionMatchesExact) { for_each_target([] {
  std::mt19937 rng(7);
  Pair p;
  for (const auto& [D, heads, kv_heads] : {std::tuple<int, int, int>{64, 8, 2}, {40, 8, 1}, {64, 6, 2}}) {
    for (const int window : {0, 7}) {
      const int slots = 2, capacity = 24, T = 5;
      auto kd = randn(rng, static_cast<size_t>(slots) * capacity * kv_heads * D);
      auto vd = randn(rng, kd.size());
      KvLayer kv;
      kv.k.data = kd.data();
      kv.v.data = vd.data();
      kv.slots = slots;
      kv.capacity = capacity;
      kv.kv_heads = kv_heads;
      kv.head_dim = D;
      std::vector<uint16_t> sd(heads);
      for (auto& s : sd) s = to_bf16(std::normal_distribution<float>(0.0f, 2.0f)(rng));
      const Weight sinks = bf16_weight(sd.data(), 1, heads);
      const std::vector<int32_t> slot = {0, 1, 1, 0, 1}, pos = {0, 3, 22, 30, 17};  // 30: wraps the ring
      auto q = randn(rng, static_cast<size_t>(T) * heads * D);
      std::vector<float> want(q.size()), got(q.size());
      const float scale = 1.0f / std::sqrt(static_cast<float>(D));
      p.exact->f32_sdpa_sink_window(q.data(), T, heads, kv, slot, pos, sinks, window, scale, want.data());
      p.fast->f32_sdpa_sink_window(q.data(), T, heads, kv, slot, pos, sinks, window, scale, got.data());
      // Outputs are convex combinations of N(0,1) values: |out| <~ 4; exp differs by a few ulp.
      expect_close(got, want, 2e-5f, "attention");

      // The same keys in a paged cache (pages of 4 positions scattered over a pool of 12, both slots'
      // interleaved): both backends give what they give on the contiguous cache, bit for bit.
      const int page = 4, per_slot = capacity / page;
      std::vector<int32_t> table(static_cast<size_t>(slots) * per_slot);
      for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>((i * 5 + 3) % table.size());
      const size_t row = static_cast<size_t>(kv_heads) * D;
      std::vector<float> pk(kd.size()), pv(vd.size());
      KvLayer paged = kv;
      paged.k.data = pk.data();
      paged.v.data = pv.data();
      paged.page_size = page;
      paged.pages = static_cast<int>(table.size());
      paged.pages_per_slot = per_slot;
      paged.page_table = table.data();
      paged.page_table_device = table.data();
      for (int sl = 0; sl < slots; ++sl) {
        for (int ps = 0; ps < capacity; ++ps) {
          const size_t from = kv_row(kv, sl, ps) * row, to = kv_row(paged, sl, ps) * row;
          std::copy(kd.begin() + from, kd.begin() + from + row, pk.begin() + to);
          std::copy(vd.begin() + from, vd.begin() + from + row, pv.begin() + to);
        }
      }
      const std::vector<int32_t> in_ctx = {0, 3, 22, 23, 17};  // a paged cache holds the whole context
      for (Backend* be : {p.exact.get(), p.fast.get()}) {
        std::vector<float> flat_out(q.size()), paged_out(q.size());
        be->f32_sdpa_sink_window(q.data(), T, heads, kv, slot, in_ctx, sinks, window, scale, flat_out.data());
        be->f32_sdpa_sink_window(q.data(), T, heads, paged, slot, in_ctx, sinks, window, scale, paged_out.data());
        EXPECT_EQ(paged_out, flat_out) << be->name() << " window " << window;
      }
    }
  }
}); }

}  // namespace
}  // namespace gptoss
