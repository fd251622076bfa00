// The grouped MXFP4 MoE GEMM (moe_gemm.h) through the backend's MoE ops with T >= 8, against the exact
// cpu backend (the oracle) on the same inputs: shapes that exercise partial row tiles, an odd number of
// MXFP4 blocks, experts with several token tiles and unused experts, inputs whose rows differ in
// magnitude by 2^12, and the model's size (K = 2880) where the error is also printed for the other two
// cuda paths (the decode kernels, T forced through them, and the cuBLAS per-expert path). Skips
// without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtypes.h"

namespace gptoss {
namespace {

double max_rel(const std::vector<float>& ref, const std::vector<float>& got) {
  double d = 0, m = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    d = std::fmax(d, std::isfinite(got[i]) ? std::fabs(double(ref[i]) - got[i]) : INFINITY);
    m = std::fmax(m, std::fabs(double(ref[i])));
  }
  return d / std::fmax(m, 1e-30);
}

struct Shape {
  int E, H, I, k, T;
  bool skewed;  // most slots on expert 0 (several token tiles); otherwise distinct random experts
};

struct Case {
  Shape s;
  std::vector<uint8_t> b1, s1, b2, s2;
  std::vector<uint16_t> bias1, bias2;
  std::vector<float> x, w;
  std::vector<int32_t> ids;
  std::vector<float> h_ref, o_ref;  // cpu backend
};

Case make_case(const Shape& s, uint32_t seed) {
  Case c;
  c.s = s;
  std::mt19937 rng(seed);
  auto bytes = [&](size_t n, int lo, int hi) {
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<uint8_t> v(n);
    for (auto& x : v) x = uint8_t(d(rng));
    return v;
  };
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  c.b1 = bytes(size_t(s.E) * 2 * s.I * (s.H / 32) * 16, 0, 255);
  c.s1 = bytes(size_t(s.E) * 2 * s.I * (s.H / 32), 118, 126);
  c.b2 = bytes(size_t(s.E) * s.H * (s.I / 32) * 16, 0, 255);
  c.s2 = bytes(size_t(s.E) * s.H * (s.I / 32), 118, 126);
  for (int i = 0; i < 2 * s.I * s.E; ++i) c.bias1.push_back(f32_to_bf16(u(rng)));
  for (int i = 0; i < s.H * s.E; ++i) c.bias2.push_back(f32_to_bf16(u(rng)));
  for (int t = 0; t < s.T; ++t) {
    // Rows 2^-12..1 apart in magnitude (each gets its own x16 exponent). Larger inputs put gate/up
    // pre-activations of ~1e4 into the SwiGLU, whose output then carries the f32 cancellation error
    // of any summation order (the decode kernels and cuBLAS too: ~1e-3 of max |h|).
    const float row_scale = std::ldexp(1.0f, -int(rng() % 13));
    for (int i = 0; i < s.H; ++i) c.x.push_back(u(rng) * row_scale);
    std::vector<int32_t> pool(s.E);
    for (int e = 0; e < s.E; ++e) pool[e] = e;
    std::shuffle(pool.begin(), pool.end(), rng);
    if (s.skewed && rng() % 4 != 0) std::swap(pool[0], *std::find(pool.begin(), pool.end(), 0));
    c.ids.insert(c.ids.end(), pool.begin(), pool.begin() + s.k);
    for (int j = 0; j < s.k; ++j) c.w.push_back(0.5f * (u(rng) + 1.0f));
  }
  return c;
}

Mxfp4Experts experts(const Buffer& b, const Buffer& sc, int E, int rows, int cols) {
  Mxfp4Experts m;
  m.blocks = b;
  m.scales = sc;
  m.experts = E;
  m.rows = rows;
  m.cols = cols;
  return m;
}
Weight weight(const Buffer& b, int rows, int cols) {
  Weight r;
  r.buf = b;
  r.rows = rows;
  r.cols = cols;
  return r;
}

// Runs gate_up (+ SwiGLU) and down (+ weighted sum; fed the cpu's h so each op is checked alone) on
// `be`; returns {h, out}.
std::pair<std::vector<float>, std::vector<float>> run_ops(Backend& be, const Case& c) {
  const Shape& s = c.s;
  auto up = [&](const auto& v) { return *be.upload_weight(v.data(), v.size() * sizeof(v[0])); };
  Buffer b1 = up(c.b1), s1 = up(c.s1), b2 = up(c.b2), s2 = up(c.s2), bias1 = up(c.bias1), bias2 = up(c.bias2);
  Buffer x = up(c.x), w = up(c.w), ids = up(c.ids);
  const size_t nh = size_t(s.T) * s.k * s.I, no = size_t(s.T) * s.H;
  Buffer h = *be.alloc(nh * 4), o = *be.alloc(no * 4);
  be.f32_mxfp4w_moe_matmul_swiglu(x.as<float>(), s.T, s.k, ids.as<int32_t>(), experts(b1, s1, s.E, 2 * s.I, s.H),
                                  weight(bias1, s.E, 2 * s.I), 7.0f, 1.702f, h.as<float>());
  std::vector<float> hv(nh), ov(no);
  EXPECT_TRUE(be.download(h.data, nh * 4, hv.data()).is_ok());
  Buffer h_in = c.h_ref.empty() ? h : up(c.h_ref);
  be.f32_mxfp4w_moe_matmul_accumulate(h_in.as<float>(), s.T, s.k, ids.as<int32_t>(), w.as<float>(),
                                      experts(b2, s2, s.E, s.H, s.I), weight(bias2, s.E, s.H), o.as<float>());
  EXPECT_TRUE(be.download(o.data, no * 4, ov.data()).is_ok());
  return {hv, ov};
}

std::unique_ptr<Backend> cuda_with(const char* var, const char* value) {
  if (var != nullptr) setenv(var, value, 1);
  auto g = make_cuda_backend(0);
  if (var != nullptr) unsetenv(var);
  EXPECT_TRUE(g.has_value());
  return g ? std::move(*g) : nullptr;
}

// The cpu backend's h and out for c (h_ref is what both down projections are fed).
void reference(Case& c) {
  auto cpu = make_cpu_backend(0);
  std::tie(c.h_ref, c.o_ref) = run_ops(*cpu, c);  // h_ref empty: its down projection takes its own h
}

TEST(CudaMoeGemm, GroupedGemmEqualsCpuBackend) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Shape shapes[] = {
      {8, 96, 64, 4, 40, false},    // gate_up: 3 MXFP4 blocks (odd); down: 96 rows (a partial row tile)
      {8, 96, 64, 4, 8, false},     // the smallest T on the prefill path
      {4, 64, 160, 2, 300, true},   // 320 gate_up rows (2.5 row tiles), expert 0 with several token tiles
      {32, 2880, 2880, 4, 24, false},  // the model's K (90 blocks) and rows
  };
  uint32_t seed = 21;
  for (const Shape& s : shapes) {
    Case c = make_case(s, seed++);
    reference(c);
    auto gpu = cuda_with(nullptr, nullptr);
    ASSERT_NE(gpu, nullptr);
    for (const char* block_shape : {"0", "1", "2", "3", "4", "5"}) {  // GPTOSS_CUDA_MOE_GEMM_SHAPE, read per launch
      setenv("GPTOSS_CUDA_MOE_GEMM_SHAPE", block_shape, 1);
      auto [h, o] = run_ops(*gpu, c);
      unsetenv("GPTOSS_CUDA_MOE_GEMM_SHAPE");
      ASSERT_TRUE(gpu->sync().is_ok());
      const double eh = max_rel(c.h_ref, h), eo = max_rel(c.o_ref, o);
      std::printf("E %d H %d I %d k %d T %d, block shape %s: max rel error gate_up+swiglu %.3e, down+combine %.3e\n",
                  s.E, s.H, s.I, s.k, s.T, block_shape, eh, eo);
      EXPECT_LT(eh, 1e-5);
      EXPECT_LT(eo, 1e-5);
    }
  }
}

// Model size, 64 tokens: the grouped GEMM's error next to the decode kernels' (T forced through them)
// and the cuBLAS per-expert path's, all against the cpu backend. Printed so the run's log has them.
TEST(CudaMoeGemm, ErrorAtModelSize) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  Case c = make_case({32, 2880, 2880, 4, 64, false}, 5);
  reference(c);
  struct Mode {
    const char* name;
    const char* var;
    const char* value;
  };
  double grouped_h = 0, grouped_o = 0, gemv_h = 0, gemv_o = 0;
  for (const Mode& m : {Mode{"grouped gemm", nullptr, nullptr}, Mode{"decode kernels", "GPTOSS_CUDA_PREFILL_MIN_T", "0"},
                        Mode{"cublas per expert", "GPTOSS_CUDA_PREFILL_MOE", "cublas"}}) {
    auto gpu = cuda_with(m.var, m.value);
    ASSERT_NE(gpu, nullptr);
    auto [h, o] = run_ops(*gpu, c);
    ASSERT_TRUE(gpu->sync().is_ok());
    const double eh = max_rel(c.h_ref, h), eo = max_rel(c.o_ref, o);
    std::printf("model size, T 64, %-18s max rel error vs cpu: gate_up+swiglu %.3e, down+combine %.3e\n", m.name, eh, eo);
    if (m.var == nullptr) grouped_h = eh, grouped_o = eo;
    if (m.value != nullptr && std::strcmp(m.value, "0") == 0) gemv_h = eh, gemv_o = eo;
  }
  EXPECT_LT(grouped_h, 1e-5);
  EXPECT_LT(grouped_o, 1e-5);
  // Same kind of sums as the decode kernels (per-block f32 partials of exact products).
  EXPECT_LT(grouped_h, 10 * gemv_h + 1e-7);
  EXPECT_LT(grouped_o, 10 * gemv_o + 1e-7);
}

// f32_matmul with T >= 8 through the x16 kernel (dense_gemm_x16 on the fp16 copy of the matrix)
// (GPTOSS_CUDA_PREFILL_DENSE=x16) against float64: a partial row tile and token tile at K = 96, and
// the model's K = 2880 with rows 2^-20..1 apart in magnitude (each gets its own power-of-two scale)
// and mixed-magnitude inputs (8 and 4 blocks: K split over 11 blocks, dense_gemm_splits); the
// cuBLAS path's error (=cublas) is printed beside it. A second matrix of the
// same shape after the first is freed (possibly at the same address) must not reuse the first's copy.
TEST(CudaMoeGemm, DenseMatmulEqualsFloat64) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  struct Dims {
    int N, K, T;
    bool bias;
  };
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const Dims& d : {Dims{200, 96, 100, true}, Dims{1024, 2880, 64, false}, Dims{1024, 2880, 64, true},
                       Dims{32, 2880, 100, true}}) {
    for (const char* mode : {"x16", "cublas"}) {
      auto gpu = cuda_with("GPTOSS_CUDA_PREFILL_DENSE", mode);
      ASSERT_NE(gpu, nullptr);
      for (int round = 0; round < 2; ++round) {  // round 1: new weights, the first ones freed
        std::vector<uint16_t> wv(size_t(d.N) * d.K), bv(d.N);
        for (int r = 0; r < d.N; ++r) {
          const float rs = std::ldexp(0.05f, -int(rng() % 21));
          for (int c = 0; c < d.K; ++c) wv[size_t(r) * d.K + c] = f32_to_bf16(u(rng) * rs);
          bv[r] = f32_to_bf16(u(rng));
        }
        std::vector<float> xv(size_t(d.T) * d.K);
        for (auto& x : xv) x = u(rng) * std::ldexp(1.0f, int(rng() % 7) - 3);
        std::vector<double> ref(size_t(d.T) * d.N);
        double ref_max = 0;
        for (int t = 0; t < d.T; ++t) {
          for (int n = 0; n < d.N; ++n) {
            double acc = d.bias ? bf16_to_f32(bv[n]) : 0.0;
            for (int k = 0; k < d.K; ++k) acc += double(xv[size_t(t) * d.K + k]) * bf16_to_f32(wv[size_t(n) * d.K + k]);
            ref[size_t(t) * d.N + n] = acc;
            ref_max = std::fmax(ref_max, std::fabs(acc));
          }
        }
        std::vector<float> o(ref.size());
        {
          auto wb = gpu->upload_weight(wv.data(), wv.size() * 2);
          auto bb = gpu->upload_weight(bv.data(), bv.size() * 2);
          auto xb = gpu->upload_weight(xv.data(), xv.size() * 4);
          auto ob = gpu->alloc(o.size() * 4);
          Weight w = weight(*wb, d.N, d.K), b = weight(*bb, 1, d.N);
          gpu->f32_matmul(xb->as<float>(), d.T, w, d.bias ? &b : nullptr, ob->as<float>());
          ASSERT_TRUE(gpu->download(ob->data, o.size() * 4, o.data()).is_ok());
        }
        double err = 0;
        for (size_t i = 0; i < o.size(); ++i) err = std::fmax(err, std::fabs(o[i] - ref[i]));
        std::printf("matmul %dx%d, T %d, bias %d, %s, round %d: max |err| / max |ref| %.3e\n", d.N, d.K, d.T, d.bias,
                    mode, round, err / ref_max);
        if (std::strcmp(mode, "x16") == 0) {
          EXPECT_LT(err / ref_max, 1e-6);
        }
      }
    }
  }
}

// f32_matmul with T >= 8 (the prefill GEMMs) at gpt-oss-20b's shapes (q 4096x2880, k / v 512x2880, o
// 2880x4096, router 32x2880 with bias; the unembedding 201088x2880, every 61st row checked) for T = 8, 12,
// 16 and 70 (the first T rows of one x) against float64, in every prefill GEMM mode: the default (the
// high bf16 part in K chunks of <= 512), chunks of <= 256, K in one chunk (GPTOSS_CUDA_PREFILL_KCHUNK=0,
// the code before NOTES v21: 2-5e-6 on the H100, the tensor cores' long accumulation chains),
// the x16 kernel, and the decode GEMV kernels (GPTOSS_CUDA_PREFILL_MIN_T=0).
// Weights ~ U(-0.05, 0.05), inputs with elements 2^-3..2^3 in magnitude. The default, x16 and the GEMVs
// must stay within 1e-6 (H100, NOTES v21: the GEMVs 1.5-2.3e-7, x16 1.3-4.5e-7, the default 5.4-7.3e-7;
// K in one chunk, the default before v21, 1.8-4.8e-6).
TEST(CudaMoeGemm, DenseMatmulAtModelShapes) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  struct Dims {
    const char* name;
    int N, K, row_step;
    bool bias;
  };
  struct Mode {
    const char* name;
    const char* var;
    const char* value;
  };
  const Mode modes[] = {{"default", nullptr, nullptr},
                        {"kchunk256", "GPTOSS_CUDA_PREFILL_KCHUNK", "256"},
                        {"kchunk0", "GPTOSS_CUDA_PREFILL_KCHUNK", "0"},
                        {"x16", "GPTOSS_CUDA_PREFILL_DENSE", "x16"},
                        {"gemv", "GPTOSS_CUDA_PREFILL_MIN_T", "0"}};
  const int Ts[] = {8, 12, 16, 70}, Tmax = 70;
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto uni = [&] {  // U(-1, 1) from a 64-bit LCG (fast enough for the unembedding's 579M weights)
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<int32_t>(state >> 32)) * (1.0f / 2147483648.0f);
  };
  for (const Dims& d : {Dims{"q", 4096, 2880, 1, true}, Dims{"k", 512, 2880, 1, true}, Dims{"o", 2880, 4096, 1, true},
                       Dims{"router", 32, 2880, 1, true}, Dims{"unembedding", 201088, 2880, 61, false}}) {
    std::vector<uint16_t> wv(size_t(d.N) * d.K), bv(d.N);
    for (auto& w : wv) w = f32_to_bf16(0.05f * uni());
    for (auto& b : bv) b = f32_to_bf16(uni());
    std::vector<float> xv(size_t(Tmax) * d.K);
    for (auto& x : xv) x = uni() * std::ldexp(1.0f, int(state >> 61) - 3);
    std::vector<double> ref(size_t(Tmax) * d.N);
    for (int n = 0; n < d.N; n += d.row_step) {
      for (int t = 0; t < Tmax; ++t) {
        double acc = d.bias ? bf16_to_f32(bv[n]) : 0.0;
        for (int k = 0; k < d.K; ++k) acc += double(xv[size_t(t) * d.K + k]) * bf16_to_f32(wv[size_t(n) * d.K + k]);
        ref[size_t(t) * d.N + n] = acc;
      }
    }
    for (const Mode& m : modes) {
      auto gpu = cuda_with(m.var, m.value);
      ASSERT_NE(gpu, nullptr);
      auto wb = gpu->upload_weight(wv.data(), wv.size() * 2);
      auto bb = gpu->upload_weight(bv.data(), bv.size() * 2);
      auto xb = gpu->upload_weight(xv.data(), xv.size() * 4);
      auto ob = gpu->alloc(size_t(Tmax) * d.N * 4);
      ASSERT_TRUE(wb && bb && xb && ob);
      const Weight w = weight(*wb, d.N, d.K), b = weight(*bb, 1, d.N);
      for (int T : Ts) {
        std::vector<float> o(size_t(T) * d.N);
        gpu->f32_matmul(xb->as<float>(), T, w, d.bias ? &b : nullptr, ob->as<float>());
        ASSERT_TRUE(gpu->download(ob->data, o.size() * 4, o.data()).is_ok());
        double err = 0, ref_max = 0;
        for (int t = 0; t < T; ++t) {
          for (int n = 0; n < d.N; n += d.row_step) {
            const double r = ref[size_t(t) * d.N + n], g = o[size_t(t) * d.N + n];
            err = std::fmax(err, std::isfinite(g) ? std::fabs(g - r) : INFINITY);
            ref_max = std::fmax(ref_max, std::fabs(r));
          }
        }
        std::printf("model shapes: %-11s %6dx%d, T %2d, %-9s max |err| / max |ref| %.3e\n", d.name, d.N, d.K, T, m.name,
                    err / ref_max);
        if (m.var == nullptr || std::strcmp(m.name, "x16") == 0 || std::strcmp(m.name, "gemv") == 0) {
          EXPECT_LT(err / ref_max, 1e-6);
        }
      }
    }
  }
}

// Expert ids outside [0, E) reaching the grouped MoE ops (T >= 8): the slots are dropped on the device
// and the next sync() fails naming the op, the bound and the offending id; the following ops of a
// fresh backend run clean. The cpu backend refuses such ids too, so no other path hides them.
TEST(CudaMoeGemm, OutOfRangeExpertIdIsReportedAtSync) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Shape s{8, 96, 64, 4, 16, false};
  struct Bad {
    bool gate_up;
    int32_t id;
    const char* op;
  };
  for (const Bad& bad : {Bad{true, 8, "prefill moe gate_up"}, Bad{false, -3, "prefill moe down"},
                         Bad{true, 1 << 20, "prefill moe gate_up"}}) {
    Case c = make_case(s, 99);
    c.ids[4 * 5 + 2] = bad.id;  // token 5, its third expert
    auto gpu = cuda_with(nullptr, nullptr);
    ASSERT_NE(gpu, nullptr);
    auto up = [&](const auto& v) { return *gpu->upload_weight(v.data(), v.size() * sizeof(v[0])); };
    Buffer b1 = up(c.b1), s1 = up(c.s1), b2 = up(c.b2), s2 = up(c.s2), bias1 = up(c.bias1), bias2 = up(c.bias2);
    Buffer x = up(c.x), w = up(c.w), ids = up(c.ids);
    Buffer h = *gpu->alloc(size_t(s.T) * s.k * s.I * 4), o = *gpu->alloc(size_t(s.T) * s.H * 4);
    ASSERT_TRUE(gpu->sync().is_ok());
    if (bad.gate_up) {
      gpu->f32_mxfp4w_moe_matmul_swiglu(x.as<float>(), s.T, s.k, ids.as<int32_t>(),
                                        experts(b1, s1, s.E, 2 * s.I, s.H), weight(bias1, s.E, 2 * s.I), 7.0f,
                                        1.702f, h.as<float>());
    } else {
      gpu->f32_mxfp4w_moe_matmul_accumulate(h.as<float>(), s.T, s.k, ids.as<int32_t>(), w.as<float>(),
                                            experts(b2, s2, s.E, s.H, s.I), weight(bias2, s.E, s.H), o.as<float>());
    }
    const Status st = gpu->sync();
    ASSERT_FALSE(st.is_ok()) << "id " << bad.id << " was dropped silently";
    const std::string& m = st.message();
    EXPECT_NE(m.find(bad.op), std::string::npos) << m;
    EXPECT_NE(m.find("outside [0, 8)"), std::string::npos) << m;
    EXPECT_NE(m.find(fmt::format("id {} at slot 22", bad.id)), std::string::npos) << m;
    EXPECT_NE(m.find("1 (token, expert) slot(s)"), std::string::npos) << m;
  }
  // In range again: a fresh backend's ops sync clean (the flags start zeroed).
  Case c = make_case(s, 99);
  auto gpu = cuda_with(nullptr, nullptr);
  ASSERT_NE(gpu, nullptr);
  run_ops(*gpu, c);
  EXPECT_TRUE(gpu->sync().is_ok());
}

}  // namespace
}  // namespace gptoss
