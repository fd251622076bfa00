// CUDA backend tests. They skip (GTEST_SKIP) where no GPU is present, e.g. in CI; run them on the GPU
// machine (scripts/gpu/run.sh). Oracles: the exact cpu backend's ops and HF transformers' logits on
// the committed tiny checkpoint (tests/data/tiny/goldens.safetensors).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/decode_engine.h"
#include "core/dtypes.h"
#include "formats/safetensors.h"
#include "model/forward.h"
#include "model/model_files.h"

namespace gptoss {
namespace {

#define REQUIRE_GPU()                                               \
  do {                                                              \
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

// GPTOSS_SOURCE_DIR in the environment: the checkout on the GPU machine (the binary was built elsewhere).
std::string tiny_dir() {
  const char* root = std::getenv("GPTOSS_SOURCE_DIR");
  return std::string(root ? root : GPTOSS_SOURCE_DIR) + "/tests/data/tiny";
}

double max_rel(const float* ref, const float* got, size_t n) {
  double d = 0, m = 0;
  for (size_t i = 0; i < n; ++i) {
    d = std::fmax(d, std::isfinite(got[i]) ? std::fabs(double(ref[i]) - got[i]) : INFINITY);
    m = std::fmax(m, std::fabs(double(ref[i])));
  }
  return d / std::fmax(m, 1e-30);
}

// Backend ops on both backends with the same random inputs.
struct Pair {
  std::unique_ptr<Backend> cpu = make_cpu_backend(2);
  std::unique_ptr<Backend> gpu;
  Pair() {
    auto g = make_cuda_backend(0);
    if (g) gpu = std::move(*g);
  }
  template <typename T>
  std::pair<Buffer, Buffer> input(const std::vector<T>& v) {
    auto a = cpu->alloc(v.size() * sizeof(T));
    auto b = gpu->upload_weight(v.data(), v.size() * sizeof(T));
    std::memcpy(a->data, v.data(), v.size() * sizeof(T));
    return {*a, *b};
  }
  std::vector<float> out_gpu(const Buffer& b, size_t n) {
    std::vector<float> v(n);
    EXPECT_TRUE(gpu->download(b.data, n * 4, v.data()).is_ok());
    return v;
  }
};

// The MoE ops on T tokens. T = 3 runs the decode kernels; T >= 8 the cuBLAS prefill path
// (prefill.h: experts decoded to bf16, tokens grouped by expert, three bf16 parts of the input).
void check_moe(int T, uint32_t seed) {
  Pair p;
  ASSERT_NE(p.gpu, nullptr);
  std::mt19937 rng(seed);
  const int E = 8, H = 96, I = 64, K = 4;
  std::vector<int32_t> ids;
  if (T == 3) {
    ids = {0, 3, 5, 7, 1, 2, 4, 6, 7, 6, 5, 4};
  } else {
    // Distinct experts per token; expert 5 is never used, so the grouping must skip it.
    for (int t = 0; t < T; ++t) {
      std::vector<int32_t> pool = {0, 1, 2, 3, 4, 6, 7};
      std::shuffle(pool.begin(), pool.end(), rng);
      ids.insert(ids.end(), pool.begin(), pool.begin() + K);
    }
  }
  auto bytes = [&](size_t n, int lo, int hi) {
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<uint8_t> v(n);
    for (auto& x : v) x = uint8_t(d(rng));
    return v;
  };
  auto bf = [&](size_t n, float s) {
    std::uniform_real_distribution<float> d(-s, s);
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = f32_to_bf16(d(rng));
    return v;
  };
  auto fl = [&](size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  };
  auto b1 = p.input(bytes(size_t(E) * 2 * I * (H / 32) * 16, 0, 255));
  auto s1 = p.input(bytes(size_t(E) * 2 * I * (H / 32), 120, 128));
  auto b2 = p.input(bytes(size_t(E) * H * (I / 32) * 16, 0, 255));
  auto s2 = p.input(bytes(size_t(E) * H * (I / 32), 120, 128));
  auto bias1 = p.input(bf(size_t(E) * 2 * I, 1.0f));
  auto bias2 = p.input(bf(size_t(E) * H, 1.0f));
  auto x = p.input(fl(size_t(T) * H, -2.0f, 2.0f));
  auto idx = p.input(ids);
  auto w = p.input(fl(size_t(T) * K, 0.0f, 1.0f));
  auto mk = [&](const Buffer& b, const Buffer& s, int64_t rows, int64_t cols) {
    Mxfp4Experts m;
    m.blocks = b;
    m.scales = s;
    m.experts = E;
    m.rows = rows;
    m.cols = cols;
    return m;
  };
  auto wt = [&](const Buffer& b, int64_t rows, int64_t cols) {
    Weight r;
    r.buf = b;
    r.rows = rows;
    r.cols = cols;
    return r;
  };
  const size_t nh = size_t(T) * K * I, no = size_t(T) * H;
  auto hc = p.cpu->alloc(nh * 4), hg = p.gpu->alloc(nh * 4), oc = p.cpu->alloc(no * 4), og = p.gpu->alloc(no * 4);
  p.cpu->f32_mxfp4w_moe_matmul_swiglu(x.first.as<float>(), T, K, idx.first.as<int32_t>(), mk(b1.first, s1.first, 2 * I, H),
                                      wt(bias1.first, E, 2 * I), 7.0f, 1.702f, hc->as<float>());
  p.gpu->f32_mxfp4w_moe_matmul_swiglu(x.second.as<float>(), T, K, idx.second.as<int32_t>(),
                                      mk(b1.second, s1.second, 2 * I, H), wt(bias1.second, E, 2 * I), 7.0f, 1.702f,
                                      hg->as<float>());
  // Feed both down projections the same h (the cpu's) so the second check isolates that kernel.
  ASSERT_TRUE(p.gpu->sync().is_ok());
  auto h_gpu = p.out_gpu(*hg, nh);
  EXPECT_LT(max_rel(hc->as<float>(), h_gpu.data(), nh), 1e-5);
  auto hcopy = p.gpu->upload_weight(hc->data, nh * 4);
  p.cpu->f32_mxfp4w_moe_matmul_accumulate(hc->as<float>(), T, K, idx.first.as<int32_t>(), w.first.as<float>(),
                                          mk(b2.first, s2.first, H, I), wt(bias2.first, E, H), oc->as<float>());
  p.gpu->f32_mxfp4w_moe_matmul_accumulate(hcopy->as<float>(), T, K, idx.second.as<int32_t>(), w.second.as<float>(),
                                          mk(b2.second, s2.second, H, I), wt(bias2.second, E, H), og->as<float>());
  ASSERT_TRUE(p.gpu->sync().is_ok());
  auto o_gpu = p.out_gpu(*og, no);
  EXPECT_LT(max_rel(oc->as<float>(), o_gpu.data(), no), 1e-5);
}

TEST(CudaBackend, MoeKernelsEqualCpuBackend) {
  REQUIRE_GPU();
  check_moe(3, 7);
}

TEST(CudaBackend, PrefillMoeEqualsCpuBackend) {
  REQUIRE_GPU();
  check_moe(40, 11);
  check_moe(8, 12);
  // With every expert kept decoded to bf16 (GPTOSS_CUDA_PREFILL_EXPERT_CACHE=1).
  setenv("GPTOSS_CUDA_PREFILL_EXPERT_CACHE", "1", 1);
  check_moe(40, 13);
  unsetenv("GPTOSS_CUDA_PREFILL_EXPERT_CACHE");
}

// f32_sdpa_sink_window at GQA 8 (16 query heads, 2 KV heads, head_dim 64) on a prefill step: 5 cached
// positions, then 70 tokens of the same sequence at positions 5..74 (the tokens-per-block kernel of
// GPTOSS_CUDA_PREFILL_ATTN=8 and 4, a partial last block, and 0: the per-token kernel), full attention
// and a 32-position window; and a step of two sequences (the per-token kernel). Against the cpu backend.
TEST(CudaBackend, PrefillAttentionEqualsCpuBackend) {
  REQUIRE_GPU();
  for (const char* tq : {"8", "4", "0"}) {
    setenv("GPTOSS_CUDA_PREFILL_ATTN", tq, 1);
    Pair p;
    unsetenv("GPTOSS_CUDA_PREFILL_ATTN");
    ASSERT_NE(p.gpu, nullptr);
    std::mt19937 rng(21);
    const int heads = 16, kvh = 2, hd = 64, cap = 96, slots = 2;
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    auto fl = [&](size_t n, float s) {
      std::vector<float> v(n);
      for (auto& x : v) x = d(rng) * s;
      return v;
    };
    std::vector<uint16_t> sv(heads);
    for (auto& x : sv) x = f32_to_bf16(d(rng));
    auto sinks = p.input(sv);
    Weight sc, sg;
    sc.buf = sinks.first, sg.buf = sinks.second, sc.rows = sg.rows = 1, sc.cols = sg.cols = heads;
    const size_t kv_floats = size_t(slots) * cap * kvh * hd;
    auto zeros = std::vector<float>(kv_floats, 0.0f);
    auto kb = p.input(zeros), vb = p.input(zeros);
    KvLayer kc, kg;
    kc.k = kb.first, kc.v = vb.first, kg.k = kb.second, kg.v = vb.second;
    for (KvLayer* kv : {&kc, &kg}) kv->slots = slots, kv->capacity = cap, kv->kv_heads = kvh, kv->head_dim = hd;
    // One step: T rows (slot, position) stored, then attended with the given window.
    auto step = [&](const std::vector<int32_t>& sl, const std::vector<int32_t>& pos, int window, const char* what) {
      const int T = static_cast<int>(pos.size());
      auto q = p.input(fl(size_t(T) * heads * hd, 2.0f));
      auto k = p.input(fl(size_t(T) * kvh * hd, 2.0f));
      auto v = p.input(fl(size_t(T) * kvh * hd, 1.0f));
      p.cpu->f32_kv_store(kc, k.first.as<float>(), v.first.as<float>(), T, sl, pos);
      p.gpu->f32_kv_store(kg, k.second.as<float>(), v.second.as<float>(), T, sl, pos);
      const size_t n = size_t(T) * heads * hd;
      auto oc = p.cpu->alloc(n * 4), og = p.gpu->alloc(n * 4);
      p.cpu->f32_sdpa_sink_window(q.first.as<float>(), T, heads, kc, sl, pos, sc, window, 0.125f, oc->as<float>());
      p.gpu->f32_sdpa_sink_window(q.second.as<float>(), T, heads, kg, sl, pos, sg, window, 0.125f, og->as<float>());
      ASSERT_TRUE(p.gpu->sync().is_ok());
      auto o = p.out_gpu(*og, n);
      EXPECT_LT(max_rel(oc->as<float>(), o.data(), n), 1e-5) << what << ", GPTOSS_CUDA_PREFILL_ATTN=" << tq;
    };
    for (int window : {0, 32}) {
      std::vector<int32_t> sl(5, 0), pos = {0, 1, 2, 3, 4};
      step(sl, pos, window, window ? "5 tokens, window 32" : "5 tokens");
      sl.assign(70, 0);
      pos.resize(70);
      for (int t = 0; t < 70; ++t) pos[t] = 5 + t;
      step(sl, pos, window, window ? "70 tokens at 5.., window 32" : "70 tokens at 5..");
      // Two sequences in one step: slot 1 from position 0, slot 0 on from 75.
      std::vector<int32_t> sl2, pos2;
      for (int t = 0; t < 12; ++t) sl2.push_back(1), pos2.push_back(t);
      for (int t = 0; t < 9; ++t) sl2.push_back(0), pos2.push_back(75 + t);
      step(sl2, pos2, window, window ? "two sequences, window 32" : "two sequences");
    }
  }
}

// f32_matmul with bf16 weights: the GEMV path (T < 8) and the cuBLAS prefill path (T >= 8).
TEST(CudaBackend, MatmulEqualsCpuBackend) {
  REQUIRE_GPU();
  Pair p;
  ASSERT_NE(p.gpu, nullptr);
  std::mt19937 rng(5);
  const int N = 200, Kd = 96;
  std::vector<uint16_t> wv(size_t(N) * Kd), bv(N);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (auto& x : wv) x = f32_to_bf16(d(rng));
  for (auto& x : bv) x = f32_to_bf16(d(rng));
  auto w = p.input(wv);
  auto b = p.input(bv);
  for (int T : {1, 4, 8, 37}) {
    std::vector<float> xv(size_t(T) * Kd);
    // Mixed magnitudes so the three bf16 parts of x all matter.
    for (auto& x : xv) x = d(rng) * std::ldexp(1.0f, int(rng() % 9) - 4);
    auto x = p.input(xv);
    for (bool with_bias : {true, false}) {
      Weight wc, wg, bc, bg;
      wc.buf = w.first, wg.buf = w.second, bc.buf = b.first, bg.buf = b.second;
      wc.rows = wg.rows = N, wc.cols = wg.cols = Kd;
      bc.rows = bg.rows = 1, bc.cols = bg.cols = N;
      auto oc = p.cpu->alloc(size_t(T) * N * 4), og = p.gpu->alloc(size_t(T) * N * 4);
      p.cpu->f32_matmul(x.first.as<float>(), T, wc, with_bias ? &bc : nullptr, oc->as<float>());
      p.gpu->f32_matmul(x.second.as<float>(), T, wg, with_bias ? &bg : nullptr, og->as<float>());
      ASSERT_TRUE(p.gpu->sync().is_ok());
      auto o = p.out_gpu(*og, size_t(T) * N);
      EXPECT_LT(max_rel(oc->as<float>(), o.data(), o.size()), 2e-6) << "T " << T << " bias " << with_bias;
    }
  }
}

// f32_matmuls (q, k and v as one prefill GEMM, GPTOSS_CUDA_PREFILL_QKV): three matrices of 64, 16 and 16
// rows in separate buffers (copied side by side at the first use) and as row slices of one buffer (used in
// place), with biases and without, at T = 37 and T = 5 (the GEMV path), against the cpu backend's f32_matmul.
TEST(CudaBackend, PrefillMatmulsEqualCpuBackend) {
  REQUIRE_GPU();
  Pair p;
  ASSERT_NE(p.gpu, nullptr);
  std::mt19937 rng(9);
  const int Kd = 96, rows[3] = {64, 16, 16};
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<uint16_t> wv(size_t(96) * Kd), bv(96);
  for (auto& x : wv) x = f32_to_bf16(d(rng));
  for (auto& x : bv) x = f32_to_bf16(d(rng));
  auto wall = p.input(wv);  // all rows in one buffer
  auto ball = p.input(bv);
  std::vector<std::pair<Buffer, Buffer>> wsep, bsep;  // each matrix in its own buffer
  for (int i = 0, r0 = 0; i < 3; r0 += rows[i++]) {
    wsep.push_back(p.input(std::vector<uint16_t>(wv.begin() + size_t(r0) * Kd, wv.begin() + size_t(r0 + rows[i]) * Kd)));
    bsep.push_back(p.input(std::vector<uint16_t>(bv.begin() + r0, bv.begin() + r0 + rows[i])));
  }
  for (int T : {37, 5}) {
    std::vector<float> xv(size_t(T) * Kd);
    for (auto& x : xv) x = d(rng) * std::ldexp(1.0f, int(rng() % 9) - 4);
    auto x = p.input(xv);
    for (bool sliced : {false, true}) {
      for (bool with_bias : {true, false}) {
        Weight wc[3], wg[3], bc[3], bg[3];
        std::vector<Backend::MatmulOut> mg;
        std::vector<Buffer> oc, og;
        for (int i = 0, r0 = 0; i < 3; r0 += rows[i++]) {
          Weight a, b;
          a.buf = wall.second, a.rows = 96, a.cols = Kd;
          b.buf = ball.second, b.rows = 96, b.cols = 1;
          wc[i].buf = wsep[i].first, wc[i].rows = rows[i], wc[i].cols = Kd;
          bc[i].buf = bsep[i].first, bc[i].rows = 1, bc[i].cols = rows[i];
          if (sliced) {
            wg[i] = a.row_slice(r0, rows[i]);
            bg[i] = b.row_slice(r0, rows[i]);
            bg[i].rows = 1, bg[i].cols = rows[i];
          } else {
            wg[i].buf = wsep[i].second, wg[i].rows = rows[i], wg[i].cols = Kd;
            bg[i].buf = bsep[i].second, bg[i].rows = 1, bg[i].cols = rows[i];
          }
          oc.push_back(*p.cpu->alloc(size_t(T) * rows[i] * 4));
          og.push_back(*p.gpu->alloc(size_t(T) * rows[i] * 4));
          p.cpu->f32_matmul(x.first.as<float>(), T, wc[i], with_bias ? &bc[i] : nullptr, oc[i].as<float>());
          mg.push_back({&wg[i], with_bias ? &bg[i] : nullptr, og[i].as<float>()});
        }
        p.gpu->f32_matmuls(x.second.as<float>(), T, mg);
        ASSERT_TRUE(p.gpu->sync().is_ok());
        for (int i = 0; i < 3; ++i) {
          auto o = p.out_gpu(og[i], size_t(T) * rows[i]);
          EXPECT_LT(max_rel(oc[i].as<float>(), o.data(), o.size()), 2e-6)
              << "T " << T << " matrix " << i << " sliced " << sliced << " bias " << with_bias;
        }
      }
    }
  }
}

// Op-level error at the model's size (K = 2880) against a float64 reference: the GEMV kernels (T = 64
// forced through them), the prefill GEMM with three bf16 parts (the default) and with two. Printed so
// the run's log records them; the bound holds the default path to near-exact.
TEST(CudaBackend, PrefillMatmulErrorAtModelSize) {
  REQUIRE_GPU();
  const int N = 1024, Kd = 2880, T = 64;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<uint16_t> wv(size_t(N) * Kd);
  for (auto& x : wv) x = f32_to_bf16(d(rng) * 0.05f);
  std::vector<float> xv(size_t(T) * Kd);
  for (auto& x : xv) x = d(rng) * std::ldexp(1.0f, int(rng() % 7) - 3);
  std::vector<double> ref(size_t(T) * N);
  double ref_max = 0;
  for (int t = 0; t < T; ++t) {
    for (int n = 0; n < N; ++n) {
      double acc = 0;
      for (int k = 0; k < Kd; ++k) acc += double(xv[size_t(t) * Kd + k]) * bf16_to_f32(wv[size_t(n) * Kd + k]);
      ref[size_t(t) * N + n] = acc;
      ref_max = std::fmax(ref_max, std::fabs(acc));
    }
  }
  struct Mode {
    const char* name;
    const char* min_t;
    const char* parts;
    double bound;
  };
  for (const Mode& m : {Mode{"gemv kernels", "0", "3", 1e-5}, Mode{"gemm, 3 bf16 parts", "8", "3", 1e-5},
                        Mode{"gemm, 2 bf16 parts", "8", "2", 1e-3}}) {
    setenv("GPTOSS_CUDA_PREFILL_MIN_T", m.min_t, 1);
    setenv("GPTOSS_CUDA_PREFILL_PARTS", m.parts, 1);
    auto gpu = make_cuda_backend(0);
    unsetenv("GPTOSS_CUDA_PREFILL_MIN_T");
    unsetenv("GPTOSS_CUDA_PREFILL_PARTS");
    ASSERT_TRUE(gpu.has_value());
    auto wb = (*gpu)->upload_weight(wv.data(), wv.size() * 2);
    auto xb = (*gpu)->upload_weight(xv.data(), xv.size() * 4);
    auto ob = (*gpu)->alloc(size_t(T) * N * 4);
    Weight w;
    w.buf = *wb;
    w.rows = N;
    w.cols = Kd;
    (*gpu)->f32_matmul(xb->as<float>(), T, w, nullptr, ob->as<float>());
    std::vector<float> o(size_t(T) * N);
    ASSERT_TRUE((*gpu)->download(ob->data, o.size() * 4, o.data()).is_ok());
    double dmax = 0, dsum = 0;
    for (size_t i = 0; i < o.size(); ++i) {
      const double e = std::isfinite(o[i]) ? std::fabs(o[i] - ref[i]) : INFINITY;
      dmax = std::fmax(dmax, e);
      dsum += e;
    }
    std::printf("matmul %dx%d, T %d, %s: max |err| / max |ref| %.3e, mean |err| / max |ref| %.3e\n", N, Kd, T,
                m.name, dmax / ref_max, dsum / o.size() / ref_max);
    EXPECT_LT(dmax / ref_max, m.bound) << m.name;
  }
}

struct Goldens {
  std::vector<std::vector<uint32_t>> tokens;
  std::vector<std::vector<float>> logits;
};

Goldens read_goldens() {
  Goldens g;
  auto store = TensorStore::open({tiny_dir() + "/goldens.safetensors"});
  EXPECT_TRUE(store.has_value()) << store.status().message();
  if (!store) return g;
  for (int i = 0;; ++i) {
    const TensorView* t = store->find("tokens_" + std::to_string(i));
    const TensorView* l = store->find("logits_" + std::to_string(i));
    if (!t || !l) break;
    std::vector<uint32_t> ids(t->numel());
    for (int64_t j = 0; j < t->numel(); ++j) {
      int64_t v;
      std::memcpy(&v, t->data + 8 * j, 8);
      ids[j] = static_cast<uint32_t>(v);
    }
    std::vector<float> lg(l->numel());
    std::memcpy(lg.data(), l->data, l->nbytes);
    g.tokens.push_back(std::move(ids));
    g.logits.push_back(std::move(lg));
  }
  return g;
}

// The tiny checkpoint on the GPU and transformers' goldens for it: the setup of the tests below.
// SetUp skips the test where no GPU is present.
class CudaTiny : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_GPU();
    auto gpu = make_cuda_backend(0);
    ASSERT_TRUE(gpu.has_value()) << gpu.status().message();
    gpu_ = std::move(*gpu);
    goldens_ = read_goldens();
    ASSERT_FALSE(goldens_.tokens.empty());
    auto files = open_model_dir(tiny_dir() + "/model");
    ASSERT_TRUE(files.has_value()) << files.status().message();
    files_.emplace(std::move(*files));
  }
  // The model over these files (which it takes).
  std::unique_ptr<Model> take_model() {
    auto model = Model::create(std::move(*files_), *gpu_);
    EXPECT_TRUE(model.has_value()) << model.status().message();
    return model.has_value() ? std::move(*model) : nullptr;
  }
  std::unique_ptr<Backend> gpu_;
  Goldens goldens_;
  std::optional<ModelFiles> files_;
};

TEST_F(CudaTiny, ForwardPassEqualsTransformersOnTinyGoldens) {
  const Goldens& g = goldens_;
  auto model = take_model();
  ASSERT_NE(model, nullptr);
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    KvCacheOptions ko;
    ko.max_context = 64;
    auto cache = model->new_cache(ko);
    ASSERT_TRUE(cache.has_value());
    auto seq = cache->new_sequence();
    ForwardPiece piece{*seq, g.tokens[i], true};
    std::vector<float> logits;
    ASSERT_TRUE(model->forward({&piece, 1}, *cache, &logits).is_ok());
    ASSERT_EQ(logits.size(), g.logits[i].size());
    EXPECT_LT(max_rel(g.logits[i].data(), logits.data(), logits.size()), 1e-4) << "prompt " << i;
  }
}

// The goldens as concurrent sequences through a paged cache whose pages (4 positions) are handed out
// in a shuffled order, prefill in interleaved chunks of 3: within 1e-4 of transformers, and the same
// logits bit for bit as the contiguous cache (the same kernels sum in the same order).
TEST_F(CudaTiny, ScatteredKvPagesEqualTheContiguousCache) {
  const Goldens& g = goldens_;
  auto model = take_model();
  ASSERT_NE(model, nullptr);
  auto run = [&](int page_size, uint32_t seed) {
    KvCacheOptions ko{static_cast<int>(g.tokens.size()), 64, 3};
    ko.page_size = page_size;
    ko.shuffle_pages_seed = seed;
    auto cache = model->new_cache(ko);
    EXPECT_TRUE(cache.has_value()) << cache.status().message();
    std::vector<std::vector<float>> out(g.tokens.size());
    std::vector<int> seqs;
    for (size_t i = 0; i < g.tokens.size(); ++i) seqs.push_back(*cache->new_sequence());
    for (size_t b = 0;; b += 3) {
      std::vector<ForwardPiece> pieces;
      std::vector<size_t> who;
      for (size_t i = 0; i < g.tokens.size(); ++i) {
        if (b >= g.tokens[i].size()) continue;
        pieces.push_back({seqs[i], {g.tokens[i].data() + b, std::min<size_t>(3, g.tokens[i].size() - b)}, true});
        who.push_back(i);
      }
      if (pieces.empty()) break;
      std::vector<float> logits;
      const Status st = model->forward(pieces, *cache, &logits);
      EXPECT_TRUE(st.is_ok()) << st.message();
      size_t at = 0;
      for (size_t k = 0; k < pieces.size(); ++k) {
        const size_t n = pieces[k].tokens.size() * (g.logits[who[k]].size() / g.tokens[who[k]].size());
        out[who[k]].insert(out[who[k]].end(), logits.begin() + at, logits.begin() + at + n);
        at += n;
      }
    }
    return out;
  };
  const auto flat = run(0, 0);
  const auto paged = run(4, 17);
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    ASSERT_EQ(paged[i].size(), g.logits[i].size());
    EXPECT_LT(max_rel(g.logits[i].data(), paged[i].data(), paged[i].size()), 1e-4) << "prompt " << i;
    EXPECT_EQ(paged[i], flat[i]) << "prompt " << i;
  }
}

TEST_F(CudaTiny, GraphDecodeEqualsTransformersOnTinyGoldens) {
  const Goldens& g = goldens_;
  auto& files = files_;
  auto weights = bind_weights(*files, *gpu_);
  ASSERT_TRUE(weights.has_value()) << weights.status().message();
  const int V = files->config.vocab_size;
  // The MoE layers on the per-slot GEMVs (every batch) and on the grouped GEMM (every batch, 1
  // included) in tiles of 8, 16 and 64 slots, the latter with the dense projections on the GEMM too; the
  // GEMV engine also with each way of moving a step's inputs and greedy tokens (DecodeOptions::step_io).
  const int io_default = cuda::DecodeOptions{}.step_io;
  const std::pair<int, int> runs[] = {{0, io_default}, {0, 0}, {0, cuda::kStepIoOneCopy}, {0, cuda::kStepIoMappedNext},
                                      {0, cuda::kStepIoSplitArgmax}, {8, io_default}, {16, io_default},
                                      {64, io_default}};
  for (const auto& [tile, io] : runs) {
    SCOPED_TRACE((tile == 0 ? "moe gemv" : "moe gemm, tiles of " + std::to_string(tile)) + ", step io " +
                 std::to_string(io));
    const int min_batch = tile == 0 ? 1 << 30 : 1;
    cuda::DecodeOptions opt;
    opt.step_io = io;
    opt.max_batch = static_cast<int>(g.tokens.size());
    opt.max_context = 64;
    opt.moe_gemm_min_batch = min_batch;
    opt.moe_gemm_tile_slots = tile;
    opt.dense_gemm_min_batch = min_batch;
    auto eng = cuda::DecodeEngine::create(files->config, *weights, opt);
    ASSERT_TRUE(eng.has_value()) << eng.status().message();
    // All prompts decode together, one token per step each (shorter prompts drop out), so batches of
    // several sizes and per-sequence positions are exercised.
    size_t longest = 0;
    for (const auto& t : g.tokens) longest = std::max(longest, t.size());
    for (size_t step = 0; step < longest; ++step) {
      std::vector<int32_t> tok, pos, slot;
      for (size_t i = 0; i < g.tokens.size(); ++i) {
        if (step >= g.tokens[i].size()) continue;
        tok.push_back(static_cast<int32_t>(g.tokens[i][step]));
        pos.push_back(static_cast<int32_t>(step));
        slot.push_back(static_cast<int32_t>(i));
      }
      std::vector<float> logits(tok.size() * V);
      std::vector<int32_t> next(tok.size());
      ASSERT_TRUE((*eng)->step(tok, pos, slot, logits.data(), next.data(), true).is_ok());
      for (size_t r = 0; r < tok.size(); ++r) {
        const float* want = g.logits[slot[r]].data() + step * V;
        EXPECT_LT(max_rel(want, logits.data() + r * V, V), 1e-4) << "prompt " << slot[r] << " position " << step;
        int best = 0;
        for (int v = 1; v < V; ++v) best = want[v] > want[best] ? v : best;
        EXPECT_EQ(next[r], best) << "prompt " << slot[r] << " position " << step;
      }
    }
  }
}

TEST_F(CudaTiny, DecodeEngineRejectsBadInputs) {
  auto& files = files_;
  auto weights = bind_weights(*files, *gpu_);
  ASSERT_TRUE(weights.has_value());
  cuda::DecodeOptions opt;
  opt.max_context = 16;
  auto eng = cuda::DecodeEngine::create(files->config, *weights, opt);
  ASSERT_TRUE(eng.has_value());
  const int32_t tok = 1, slot = 0, far = 16, bad_tok = 1 << 20;
  EXPECT_FALSE((*eng)->step({&tok, 1}, {&far, 1}, {&slot, 1}, nullptr, nullptr, true).is_ok());
  EXPECT_FALSE((*eng)->step({&bad_tok, 1}, {&slot, 1}, {&slot, 1}, nullptr, nullptr, true).is_ok());
}

}  // namespace
}  // namespace gptoss
