// The int8 MXFP4 GEMV (kernels_mxfp4_i8.h) against two oracles computed here in double from the
// scalar MXFP4 decode of core/dtypes.h:
//  - tight: the dot product of the exact weights with the dequantized activations d * q (what the
//    int8 arithmetic computes exactly before the f32 scaling and summation): relative 1e-5;
//  - the exact f32 path (unquantized activations): within the bound the header derives,
//    sum_b (max|x_b| / 254) * sum_{i in b} |w_i|, plus f32 rounding; the exact path's own kernel
//    (gemv_mxfp4) is held to the same bound.
#include "backend/cpu_fast/kernels_mxfp4_i8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu_fast/kernels_fast.h"
#include "core/dtypes.h"

namespace gptoss::cpu_fast {
namespace {

struct AlignedBytes {
  explicit AlignedBytes(size_t n) : p(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64))) {}
  ~AlignedBytes() { std::free(p); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  uint8_t* p;
};

struct Problem {
  int64_t cols, rows;
  std::vector<uint8_t> blocks, scales;
  std::vector<float> w;  // decoded rows (natural order)
};

Problem make_problem(int64_t cols, int64_t rows, std::mt19937& rng) {
  Problem p{cols, rows, {}, {}, {}};
  const int64_t nb = cols / 32;
  p.blocks.resize(static_cast<size_t>(rows * nb * 16));
  p.scales.resize(static_cast<size_t>(rows * nb));
  for (auto& b : p.blocks) b = static_cast<uint8_t>(rng());
  std::uniform_int_distribution<int> e(118, 130);
  for (auto& s : p.scales) s = static_cast<uint8_t>(e(rng));
  p.w.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * nb; ++i) mxfp4_block_to_f32(&p.blocks[i * 16], p.scales[i], &p.w[i * 32]);
  return p;
}

// Activations like a layer's: normal, with a few large outliers, and an all-zero block.
std::vector<float> make_x(int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(cols));
  for (auto& v : x) v = n(rng);
  for (int64_t i = 0; i < cols; i += 37) x[i] *= 20.0f;
  if (cols >= 64) {
    for (int i = 32; i < 64; ++i) x[i] = 0.0f;
  }
  return x;
}

std::vector<const char*> targets() {
  std::vector<const char*> t;
  if (mxfp4_i8_usable()) t = {"avx512-vnni", "avx2"};
  return t;
}

TEST(Mxfp4I8, QuantizationRoundTripWithinHalfAStep) {
  std::mt19937 rng(7);
  const int64_t cols = 320;
  const std::vector<float> x = make_x(cols, rng);
  AlignedBytes act(static_cast<size_t>(mxfp4_i8_act_bytes(cols)));
  quantize_mxfp4_i8_act(x.data(), cols, act.p);
  std::vector<float> xd(static_cast<size_t>(cols));
  dequantize_mxfp4_i8_act(act.p, cols, xd.data());
  for (int64_t b = 0; b < cols / 32; ++b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    for (int i = 0; i < 32; ++i) {
      const float e = std::fabs(x[b * 32 + i] - xd[b * 32 + i]);
      EXPECT_LE(e, amax / 254.0f * (1.0f + 1e-5f)) << "block " << b << " element " << i;
    }
  }
  EXPECT_EQ(xd[40], 0.0f);  // the all-zero block stays zero
}

TEST(Mxfp4I8, GemvMatchesOraclesAndBound) {
  if (!mxfp4_i8_usable()) GTEST_SKIP() << "int8 MXFP4 kernel: " << mxfp4_i8_target();
  std::mt19937 rng(42);
  double worst_tight = 0.0, worst_bound_use = 0.0;
  for (const int64_t cols : {32, 64, 96, 128, 160, 2880}) {
    for (const int64_t rows : {1, 3, 4, 5, 13, 64}) {
      const Problem p = make_problem(cols, rows, rng);
      const std::vector<float> x0 = make_x(cols, rng), x1 = make_x(cols, rng);
      const int64_t ab = mxfp4_i8_act_bytes(cols);
      AlignedBytes a0(static_cast<size_t>(ab)), a1(static_cast<size_t>(ab));
      quantize_mxfp4_i8_act(x0.data(), cols, a0.p);
      quantize_mxfp4_i8_act(x1.data(), cols, a1.p);
      std::vector<float> xd(static_cast<size_t>(cols));
      dequantize_mxfp4_i8_act(a0.p, cols, xd.data());
      // The exact path's kernel on the unquantized activations.
      std::vector<float> xp(static_cast<size_t>(cols)), f32(static_cast<size_t>(rows));
      to_chunk_order(x0.data(), cols, xp.data());
      gemv_mxfp4(xp.data(), p.blocks.data(), p.scales.data(), cols, rows, f32.data());
      for (const char* target : targets()) {
        std::vector<float> one(static_cast<size_t>(rows)), two(static_cast<size_t>(2 * rows));
        const uint8_t* acts1[1] = {a0.p};
        const uint8_t* acts2[2] = {a0.p, a1.p};
        if (!gemv_mxfp4_i8_on(target, acts1, 1, p.blocks.data(), p.scales.data(), cols, rows, one.data(), 0)) {
          continue;  // this body cannot run here
        }
        ASSERT_TRUE(gemv_mxfp4_i8_on(target, acts2, 2, p.blocks.data(), p.scales.data(), cols, rows, two.data(),
                                     rows));
        for (int64_t r = 0; r < rows; ++r) {
          const float* w = &p.w[r * cols];
          double tight = 0.0, tight_abs = 0.0, exact = 0.0, exact_abs = 0.0, bound = 0.0;
          for (int64_t b = 0; b < cols / 32; ++b) {
            double amax = 0.0, wabs = 0.0;
            for (int i = 0; i < 32; ++i) {
              const int64_t c = b * 32 + i;
              tight += static_cast<double>(w[c]) * xd[c];
              tight_abs += std::fabs(static_cast<double>(w[c]) * xd[c]);
              exact += static_cast<double>(w[c]) * x0[c];
              exact_abs += std::fabs(static_cast<double>(w[c]) * x0[c]);
              amax = std::max(amax, std::fabs(static_cast<double>(x0[c])));
              wabs += std::fabs(static_cast<double>(w[c]));
            }
            bound += amax / 254.0 * wabs;
          }
          const std::string where = std::string(target) + " cols " + std::to_string(cols) + " row " +
                                    std::to_string(r);
          // f32 rounding of d and of the per-block scaled sums: far below 1e-5 relative.
          const double tight_err = std::fabs(one[r] - tight);
          EXPECT_LE(tight_err, 1e-5 * tight_abs + 1e-30) << where;
          worst_tight = std::max(worst_tight, tight_err / (tight_abs + 1e-30));
          const double lim = bound * (1.0 + 1e-4) + 1e-5 * exact_abs;
          EXPECT_LE(std::fabs(one[r] - exact), lim) << where;
          EXPECT_LE(std::fabs(one[r] - f32[r]), lim + 1e-5 * exact_abs) << where;
          worst_bound_use = std::max(worst_bound_use, std::fabs(one[r] - exact) / lim);
          // Token 0 gets the same bits alone and beside another token.
          EXPECT_EQ(one[r], two[r]) << where;
        }
        // Token 1 alone gives its T = 2 bits too.
        const uint8_t* acts_b[1] = {a1.p};
        ASSERT_TRUE(gemv_mxfp4_i8_on(target, acts_b, 1, p.blocks.data(), p.scales.data(), cols, rows, one.data(),
                                     0));
        for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(one[r], two[rows + r]) << target << " token 1 row " << r;
      }
    }
  }
  std::printf("int8 MXFP4 GEMV: max |err| / sum|w xd| vs dequantized oracle %.3g; max |err| / bound vs exact %.3g\n",
              worst_tight, worst_bound_use);
}

TEST(Mxfp4I8, NonFiniteActivationGivesNaN) {
  if (!mxfp4_i8_usable()) GTEST_SKIP() << "int8 MXFP4 kernel: " << mxfp4_i8_target();
  std::mt19937 rng(3);
  const Problem p = make_problem(64, 4, rng);
  std::vector<float> x = make_x(64, rng);
  x[5] = std::numeric_limits<float>::infinity();
  AlignedBytes a(static_cast<size_t>(mxfp4_i8_act_bytes(64)));
  quantize_mxfp4_i8_act(x.data(), 64, a.p);
  const uint8_t* acts[1] = {a.p};
  std::vector<float> out(4);
  gemv_mxfp4_i8(acts, 1, p.blocks.data(), p.scales.data(), 64, 4, out.data(), 0);
  for (const float v : out) EXPECT_TRUE(std::isnan(v));
}

}  // namespace
}  // namespace gptoss::cpu_fast
