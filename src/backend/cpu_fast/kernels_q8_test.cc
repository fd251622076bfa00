// Q8_0 weights: the block codec (core/q8_0.h) and the cpu-fast Q8_0 GEMV/GEMM (kernels_q8.h)
// against the exact path, which dequantizes each weight (d * q, exact in f32) and sums in its own
// order. Both see identical weight values, so the kernels may differ only by f32 summation order:
// errors are bounded relative to sum |x_i w_i|, on every SIMD target compiled in. The bytes of the
// quantizer itself are checked against gguf-py in tests/py/test_dense_q8.py.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu_fast/for_each_target.h"
#include "backend/cpu_fast/kernels_q8.h"
#include "backend/cpu_fast/spin_pool.h"
#include "core/q8_0.h"

namespace gptoss {
namespace {

constexpr double kRelTol = 2e-5;  // of sum |x_i w_i|

TEST(CpuFastQ8Codec, QuantizesABlockAsGgml) {
  // amax = 31: d = 31/127, q_i = round(i * 127/31) with halves away from zero; and -x gives -q.
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i);
  uint8_t b[kQ8BlockBytes];
  q8_0_quantize_block(x, b);
  const float d = 31.0f / 127.0f;
  EXPECT_EQ(q8_0_block_scale(b), f16_to_f32(f32_to_f16(d)));
  const float id = 1.0f / d;
  for (int i = 0; i < 32; ++i) EXPECT_EQ(static_cast<int8_t>(b[2 + i]), std::round(x[i] * id)) << i;
  EXPECT_EQ(static_cast<int8_t>(b[2 + 31]), 127);
  for (auto& v : x) v = -v;
  uint8_t n[kQ8BlockBytes];
  q8_0_quantize_block(x, n);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(static_cast<int8_t>(n[2 + i]), -static_cast<int8_t>(b[2 + i]));
  // All zeros: d = 0 and q = 0 (no division by zero).
  float z[32] = {};
  q8_0_quantize_block(z, b);
  for (uint8_t v : b) EXPECT_EQ(v, 0);
}

// `rows` rows of `cols` random weights quantized to Q8_0; per-row scales vary over 2^-8 .. 2^2.
std::vector<uint8_t> random_q8(std::mt19937& rng, int64_t rows, int64_t cols) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> e(-8, 2);
  std::vector<uint8_t> w(static_cast<size_t>(rows * q8_0_row_bytes(cols)));
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float s = std::ldexp(1.0f, e(rng));
    for (auto& v : row) v = nd(rng) * s;
    for (int64_t b = 0; b < cols / 32; ++b) q8_0_quantize_block(row.data() + 32 * b, w.data() + r * q8_0_row_bytes(cols) + 34 * b);
  }
  return w;
}

// sum |x_i w_i| of one row: the scale of the f32 rounding error.
// A Q8_0 weight over the bytes of wq (rows x cols).
Weight q8_weight(std::vector<uint8_t>& wq, int64_t rows, int64_t cols) {
  Weight w;
  w.type = ElemType::kQ8_0;
  w.rows = rows;
  w.cols = cols;
  w.buf.data = wq.data();
  w.buf.bytes = wq.size();
  return w;
}

double abs_dot(const float* x, const uint8_t* row, int64_t cols) {
  std::vector<float> wf(static_cast<size_t>(cols));
  q8_0_row_to_f32(row, cols, wf.data());
  double s = 0;
  for (int64_t i = 0; i < cols; ++i) s += std::fabs(static_cast<double>(x[i]) * wf[i]);
  return s;
}

TEST(CpuFastQ8Kernels, GemvMatchesDequantizeThenExactOnEveryTarget) {
  std::mt19937 rng(7);
  for (int64_t cols : {32, 64, 96, 2080, 2880, 4096}) {
    for (int64_t rows : {1, 3, 4, 5, 9}) {
      const auto w = random_q8(rng, rows, cols);
      std::normal_distribution<float> nd(0.0f, 1.0f);
      std::vector<float> x(static_cast<size_t>(cols));
      for (auto& v : x) v = nd(rng);
      std::vector<double> want(static_cast<size_t>(rows)), scale(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        want[r] = cpu::dot_f32(x.data(), w.data() + r * q8_0_row_bytes(cols), ElemType::kQ8_0, cols);
        scale[r] = abs_dot(x.data(), w.data() + r * q8_0_row_bytes(cols), cols);
      }
      for_each_target([&] {
        std::vector<float> got(static_cast<size_t>(rows), NAN);
        cpu_fast::gemv_q8_0(x.data(), w.data(), cols, rows, got.data());
        for (int64_t r = 0; r < rows; ++r) {
          EXPECT_NEAR(got[r], want[r], kRelTol * scale[r] + 1e-30) << "cols " << cols << " row " << r;
        }
      });
    }
  }
}

TEST(CpuFastQ8Kernels, GemmEqualsGemvBitwisePerTokenOnEveryTarget) {
  std::mt19937 rng(11);
  const int64_t cols = 2880 + 64 * 32, rows = 11;  // 154 blocks: more than two scale chunks
  const auto w = random_q8(rng, rows, cols);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t T : {1, 2, 3, 4, 5, 7, 9}) {
    std::vector<float> x(static_cast<size_t>(T * cols));
    for (auto& v : x) v = nd(rng);
    std::vector<const float*> xs(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) xs[t] = x.data() + t * cols;
    for_each_target([&] {
      const int64_t ldo = rows + 3;
      std::vector<float> batch(static_cast<size_t>(T * ldo), NAN);
      cpu_fast::gemm_q8_0(xs.data(), T, w.data(), cols, rows, batch.data(), ldo);
      for (int64_t t = 0; t < T; ++t) {
        std::vector<float> one(static_cast<size_t>(rows), NAN);
        cpu_fast::gemv_q8_0(xs[t], w.data(), cols, rows, one.data());
        for (int64_t r = 0; r < rows; ++r) {
          EXPECT_EQ(std::memcmp(&batch[t * ldo + r], &one[r], 4), 0) << "T " << T << " t " << t << " r " << r;
          const double want = cpu::dot_f32(xs[t], w.data() + r * q8_0_row_bytes(cols), ElemType::kQ8_0, cols);
          EXPECT_NEAR(one[r], want, kRelTol * abs_dot(xs[t], w.data() + r * q8_0_row_bytes(cols), cols));
        }
      }
    });
  }
}

TEST(CpuFastQ8Kernels, MatmulOpMatchesExactBackendWithBias) {
  std::mt19937 rng(3);
  const int64_t rows = 301, cols = 2880;  // rows not a multiple of any task or tile size
  auto wq = random_q8(rng, rows, cols);
  const Weight w = q8_weight(wq, rows, cols);
  std::vector<float> bias_v(static_cast<size_t>(rows));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : bias_v) v = nd(rng);
  Weight bias;
  bias.type = ElemType::kF32;
  bias.rows = 1;
  bias.cols = rows;
  bias.buf.data = bias_v.data();
  bias.buf.bytes = bias_v.size() * 4;
  auto exact = make_cpu_backend(2);
  cpu_fast::SpinPool pool(3);
  for (int T : {1, 6, 70}) {
    std::vector<float> x(static_cast<size_t>(T * cols));
    for (auto& v : x) v = nd(rng);
    std::vector<float> want(static_cast<size_t>(T * rows)), got(static_cast<size_t>(T * rows), NAN);
    exact->f32_matmul(x.data(), T, w, &bias, want.data());
    cpu_fast::f32_q8_0w_matmul(x.data(), T, w, &bias, got.data(), pool);
    for (int t = 0; t < T; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        const double tol = kRelTol * abs_dot(x.data() + t * cols, wq.data() + r * q8_0_row_bytes(cols), cols) + 1e-6;
        ASSERT_NEAR(got[t * rows + r], want[t * rows + r], tol) << "T " << T << " t " << t << " r " << r;
      }
    }
  }
}

TEST(CpuFastQ8Kernels, ExactBackendReadsQ8Elements) {
  std::mt19937 rng(5);
  const int64_t rows = 3, cols = 64;
  auto wq = random_q8(rng, rows, cols);
  const Weight w = q8_weight(wq, rows, cols);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    q8_0_row_to_f32(wq.data() + r * q8_0_row_bytes(cols), cols, row.data());
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(cpu::weight_at(w, r * cols + c), row[c]);
  }
  // A row slice addresses whole Q8_0 rows.
  const Weight s = w.row_slice(1, 2);
  EXPECT_EQ(s.buf.data, wq.data() + q8_0_row_bytes(cols));
  EXPECT_EQ(s.buf.bytes, static_cast<size_t>(2 * q8_0_row_bytes(cols)));
}

}  // namespace
}  // namespace gptoss
