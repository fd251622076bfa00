#include "backend/cpu/kernels.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/parallel.h"
#include "core/dtypes.h"

namespace gptoss {
namespace {

Weight f32_weight(std::vector<float>& v, int64_t rows, int64_t cols) {
  Weight w;
  w.buf.data = v.data();
  w.buf.bytes = v.size() * sizeof(float);
  w.type = ElemType::kF32;
  w.rows = rows;
  w.cols = cols;
  return w;
}

TEST(CpuKernels, Mxfp4RowDecodeMatchesTheE2M1TableAndNibbleOrder) {
  // Block 0: byte j holds codes (j, 15 - j); scale 2^-1. Block 1: all codes 7 (6.0) at scale 2^3.
  std::vector<uint8_t> blocks(32), scales = {126, 130};
  for (int j = 0; j < 16; ++j) blocks[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  for (int j = 16; j < 32; ++j) blocks[j] = 0x77;
  std::vector<float> out(64);
  cpu::mxfp4_row_to_f32(blocks.data(), scales.data(), 64, out.data());
  const float table[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[2 * j], table[j] * 0.5f) << j;            // low nibble = even element
    EXPECT_EQ(out[2 * j + 1], table[15 - j] * 0.5f) << j;   // high nibble = odd element
  }
  for (int i = 32; i < 64; ++i) EXPECT_EQ(out[i], 48.0f);
  EXPECT_TRUE(std::signbit(out[16]));  // code 8 is -0
}

TEST(CpuKernels, Mxfp4RowDecodeEqualsCoreDecodeForEveryByteAndScale) {
  std::vector<uint8_t> blocks(256 * 16), scales(256);
  for (int b = 0; b < 256; ++b) {
    for (int j = 0; j < 16; ++j) blocks[b * 16 + j] = static_cast<uint8_t>((b + j * 17) & 0xff);
    scales[b] = static_cast<uint8_t>(b);
  }
  std::vector<float> row(256 * 32), ref(32);
  cpu::mxfp4_row_to_f32(blocks.data(), scales.data(), 256 * 32, row.data());
  for (int b = 0; b < 256; ++b) {
    mxfp4_block_to_f32(&blocks[b * 16], scales[b], ref.data());
    for (int i = 0; i < 32; ++i) {
      const float got = row[b * 32 + i];
      EXPECT_TRUE(got == ref[i] || (std::isnan(got) && std::isnan(ref[i]))) << b << " " << i;
      EXPECT_EQ(std::signbit(got), std::signbit(ref[i])) << b << " " << i;
    }
  }
}

TEST(CpuThreadPool, EveryIndexRunsExactlyOnceAcrossManyJobs) {
  cpu::ThreadPool pool(4);
  for (int job = 0; job < 2000; ++job) {
    const size_t n = 1 + static_cast<size_t>(job * 7919 % 301);
    std::vector<std::atomic<int>> hits(n);
    cpu::parallel_for(n, size_t{1} << 16, pool, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "job " << job << " index " << i;
  }
  // Small jobs run inline on the caller.
  std::thread::id ran_on;
  cpu::parallel_for(3, 1, pool, [&](size_t, size_t) { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(CpuKernels, SinkSoftmaxEqualsTheNaiveFormula) {
  const std::vector<float> s = {0.3f, -1.2f, 2.5f, 0.0f, 1.1f};
  for (float sink : {-3.0f, 0.7f, 4.0f, 40.0f}) {
    std::vector<float> p(s.size());
    cpu::sink_softmax(s.data(), static_cast<int>(s.size()), sink, p.data());
    double den = std::exp(static_cast<double>(sink));
    for (float v : s) den += std::exp(static_cast<double>(v));
    double total = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      EXPECT_NEAR(p[i], std::exp(static_cast<double>(s[i])) / den, 1e-7) << sink;
      total += p[i];
    }
    EXPECT_LT(total, 1.0);  // the sink takes its share
    EXPECT_NEAR(total, 1.0 - std::exp(static_cast<double>(sink)) / den, 1e-6);
  }
}

TEST(CpuKernels, TopkTiesGoToTheLowerIndexAndSoftmaxIsOverTheSelection) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 2.0f, 2.0f, 0.5f};
  int32_t idx[4];
  float w[4];
  cpu::topk_softmax_row(logits.data(), 8, 4, idx, w);
  EXPECT_EQ(idx[0], 1);
  EXPECT_EQ(idx[1], 3);
  EXPECT_EQ(idx[2], 2);
  EXPECT_EQ(idx[3], 5);
  const double den = 2 * std::exp(3.0) + 2 * std::exp(2.0);
  EXPECT_NEAR(w[0], std::exp(3.0) / den, 1e-7);
  EXPECT_NEAR(w[3], std::exp(2.0) / den, 1e-7);
  EXPECT_NEAR(w[0] + w[1] + w[2] + w[3], 1.0, 1e-6);
}

TEST(CpuKernels, SwigluClampsGateAboveAndUpBothSides) {
  auto ref = [](double g, double u) {
    g = std::min(g, 7.0);
    u = std::max(std::min(u, 7.0), -7.0);
    return g / (1 + std::exp(-1.702 * g)) * (u + 1);
  };
  for (float g : {-20.0f, -7.5f, -1.0f, 0.0f, 0.5f, 6.9f, 7.0f, 12.0f}) {
    for (float u : {-9.0f, -7.0f, -1.0f, 0.0f, 3.0f, 8.0f}) {
      EXPECT_NEAR(cpu::swiglu(g, u, 7.0f, 1.702f), ref(g, u), 2e-5) << g << " " << u;
    }
  }
  EXPECT_LT(cpu::swiglu(-20.0f, 0.0f, 7.0f, 1.702f), 0.0f);  // no lower clamp on the gate
}

TEST(CpuKernels, RopeRotatesHalfSplitPairsWithConcentration) {
  std::vector<float> inv = {1.0f, 0.25f};
  RopeTable rope{inv, 1.5f};
  std::vector<float> x = {1, 2, 3, 4, /*head 2*/ -1, 0.5f, 2, -3};
  std::vector<float> y = x;
  cpu::rope_row(y.data(), 2, 4, 7, rope);
  for (int h = 0; h < 2; ++h) {
    for (int i = 0; i < 2; ++i) {
      const double phi = 7.0 * inv[i];
      const double a = x[h * 4 + i], b = x[h * 4 + i + 2];
      EXPECT_NEAR(y[h * 4 + i], 1.5 * (a * std::cos(phi) - b * std::sin(phi)), 1e-5);
      EXPECT_NEAR(y[h * 4 + i + 2], 1.5 * (b * std::cos(phi) + a * std::sin(phi)), 1e-5);
    }
  }
}

TEST(CpuKernels, Bf16MatmulMatchesADoubleReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  const int T = 3, N = 37, K = 75;  // odd sizes exercise the tails
  std::vector<uint16_t> w(N * K);
  std::vector<float> x(T * K), bias(N), out(T * N);
  for (auto& v : w) v = f32_to_bf16(nd(rng));
  for (auto& v : x) v = nd(rng);
  for (auto& v : bias) v = nd(rng);
  Weight wt;
  wt.buf.data = w.data();
  wt.type = ElemType::kBF16;
  wt.rows = N;
  wt.cols = K;
  Weight bt = f32_weight(bias, 1, N);
  auto be = make_cpu_backend(2);
  be->f32_matmul(x.data(), T, wt, &bt, out.data());
  for (int t = 0; t < T; ++t) {
    for (int n = 0; n < N; ++n) {
      double ref = bias[n];
      for (int k = 0; k < K; ++k) ref += static_cast<double>(x[t * K + k]) * bf16_to_f32(w[n * K + k]);
      EXPECT_NEAR(out[t * N + n], ref, 1e-4) << t << "," << n;
    }
  }
}

// Attention over a ring-buffer KV with a window: equal to a naive masked softmax with sink.
TEST(CpuKernels, SdpaWindowMasksKeysOutsideTheWindowAndUsesTheRing) {
  const int heads = 4, kv_heads = 2, D = 8, window = 3, capacity = 5, P = 9;
  auto be = make_cpu_backend(1);
  KvLayer kv;
  kv.slots = 1;
  kv.capacity = capacity;
  kv.kv_heads = kv_heads;
  kv.head_dim = D;
  kv.k = *be->alloc(sizeof(float) * capacity * kv_heads * D);
  kv.v = *be->alloc(sizeof(float) * capacity * kv_heads * D);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> K(P * kv_heads * D), V(P * kv_heads * D), q(heads * D), sinks = {0.5f, -1, 2, 0};
  for (auto& v : K) v = nd(rng);
  for (auto& v : V) v = nd(rng);
  for (auto& v : q) v = nd(rng);
  Weight sw = f32_weight(sinks, 1, heads);
  const std::vector<int32_t> slot0 = {0};
  for (int p = 0; p < P; ++p) {  // decode one position at a time, overwriting the ring
    const std::vector<int32_t> pos = {p};
    be->f32_kv_store(kv, &K[p * kv_heads * D], &V[p * kv_heads * D], 1, slot0, pos);
    std::vector<float> out(heads * D);
    be->f32_sdpa_sink_window(q.data(), 1, heads, kv, slot0, pos, sw, window, 0.125f, out.data());
    for (int h = 0; h < heads; ++h) {
      const int j = h / (heads / kv_heads);
      std::vector<double> sc;
      for (int t = std::max(0, p - window + 1); t <= p; ++t) {
        double s = 0;
        for (int d = 0; d < D; ++d) s += static_cast<double>(q[h * D + d]) * K[(t * kv_heads + j) * D + d];
        sc.push_back(s * 0.125);
      }
      double den = std::exp(static_cast<double>(sinks[h]));
      for (double s : sc) den += std::exp(s);
      for (int d = 0; d < D; ++d) {
        double o = 0;
        int i = 0;
        for (int t = std::max(0, p - window + 1); t <= p; ++t, ++i) {
          o += std::exp(sc[i]) / den * V[(t * kv_heads + j) * D + d];
        }
        EXPECT_NEAR(out[h * D + d], o, 1e-5) << "p=" << p << " h=" << h << " d=" << d;
      }
    }
  }
}

}  // namespace
}  // namespace gptoss
