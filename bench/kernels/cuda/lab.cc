// CUDA kernel lab (llm.c dev/cuda style) for the gpt-oss decode hot path.
//   gptoss_cuda_lab check   each kernel at gpt-oss-20b shapes (and tiny ones) against a CPU double
//                           reference on fresh random inputs; exits 1 on any failure
//   gptoss_cuda_lab bench   device-to-device copy bandwidth, then each kernel on full-size random
//                           20b weights (rotating over the 24 layers so nothing is L2-resident),
//                           then whole decode steps (eager vs CUDA graph; batch 1..64)
//   gptoss_cuda_lab batched [rounds]   copy bandwidth, then graph+pdl decode throughput at batch
//                           1..64 with the MoE layers on the per-slot GEMVs or the grouped GEMM and
//                           the dense projections on GEMVs or GEMMs (DecodeOptions), engines
//                           interleaved per round
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/decode_engine.h"
#include "backend/cuda/kernels.h"
#include "core/dtypes.h"
#include "model/rope.h"
#include "bench_model.h"
#include "cuda_check.h"

using namespace gptoss;
using namespace gptoss::cuda;

namespace {

std::mt19937_64 rng(12345);

std::vector<float> randf(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
std::vector<uint16_t> rand_bf16(size_t n, float lo, float hi) {
  std::vector<uint16_t> v(n);
  std::uniform_real_distribution<float> d(lo, hi);
  for (auto& x : v) x = f32_to_bf16(d(rng));
  return v;
}
std::vector<uint8_t> rand_u8(size_t n, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(d(rng));
  return v;
}

template <typename T>
T* up(const std::vector<T>& v) {
  T* d = nullptr;
  CK(cudaMalloc(&d, std::max<size_t>(v.size() * sizeof(T), 16)));
  CK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <typename T>
T* dev_poisoned(size_t n) {  // NaN-filled (0xff bytes) so unwritten outputs show up
  T* d = nullptr;
  CK(cudaMalloc(&d, std::max<size_t>(n * sizeof(T), 16)));
  CK(cudaMemset(d, 0xff, n * sizeof(T)));
  return d;
}
template <typename T>
std::vector<T> down(const T* d, size_t n) {
  CK(cudaDeviceSynchronize());
  std::vector<T> v(n);
  CK(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

int failures = 0;

// ||got - ref|| / ||ref|| and max |got - ref| / max |ref|; NaN fails.
void report(const char* name, const std::vector<float>& got, const std::vector<double>& ref, double tol) {
  double num = 0, den = 0, maxd = 0, maxr = 0;
  bool nan = false;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) nan = true;
    const double d = got[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    maxd = std::max(maxd, std::fabs(d));
    maxr = std::max(maxr, std::fabs(ref[i]));
  }
  const double rel = std::sqrt(num / std::max(den, 1e-300)), relmax = maxd / std::max(maxr, 1e-300);
  const bool ok = !nan && rel <= tol && relmax <= tol;
  if (!ok) ++failures;
  std::printf("%-44s n=%-9zu rel_l2=%.3e rel_max=%.3e %s\n", name, ref.size(), rel, relmax,
              ok ? "ok" : (nan ? "FAIL (non-finite)" : "FAIL"));
}

double bf(uint16_t h) { return bf16_to_f32(h); }

// ---- CPU references (double accumulation) ----
std::vector<double> ref_norm(const float* x, int n, const std::vector<uint16_t>& gain, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const double r = 1.0 / std::sqrt(ss / n + eps);
  std::vector<double> y(n);
  for (int i = 0; i < n; ++i) y[i] = x[i] * r * bf(gain[i]);
  return y;
}
double dot_bf16(const uint16_t* w, const double* x, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += bf(w[i]) * x[i];
  return s;
}
void decode_row(const uint8_t* blocks, const uint8_t* scales, int cols, double* out) {
  float tmp[32];
  for (int b = 0; b < cols / 32; ++b) {
    mxfp4_block_to_f32(blocks + b * 16, scales[b], tmp);
    for (int j = 0; j < 32; ++j) out[b * 32 + j] = tmp[j];
  }
}
double swiglu_ref(double g, double u, double limit, double alpha) {
  g = std::min(g, limit);
  u = std::clamp(u, -limit, limit);
  return g / (1.0 + std::exp(-alpha * g)) * (u + 1.0);
}

void check_gemv(int rows, int cols, int T, bool norm, bool accumulate) {
  auto w = rand_bf16(size_t(rows) * cols, -0.05f, 0.05f);
  auto b = rand_bf16(rows, -0.5f, 0.5f);
  auto g = rand_bf16(cols, 0.5f, 1.5f);
  auto x = randf(size_t(T) * cols, -2.0f, 2.0f);
  auto o0 = randf(size_t(T) * rows, -1.0f, 1.0f);
  uint16_t *dw = up(w), *db = up(b), *dg = up(g);
  float* dx = up(x);
  float* dout = accumulate ? up(o0) : dev_poisoned<float>(size_t(T) * rows);
  GemvInput in;
  in.x = dx;
  in.x_stride = cols;
  if (norm) in.norm_gain = dg;
  CK(gemv_bf16(dw, db, rows, cols, in, T, dout, rows, accumulate, nullptr));
  auto got = down(dout, size_t(T) * rows);
  std::vector<double> ref(size_t(T) * rows);
  for (int t = 0; t < T; ++t) {
    std::vector<double> xin = norm ? ref_norm(&x[size_t(t) * cols], cols, g, 1e-5f)
                                   : std::vector<double>(x.begin() + size_t(t) * cols, x.begin() + size_t(t + 1) * cols);
    for (int r = 0; r < rows; ++r) {
      ref[size_t(t) * rows + r] = dot_bf16(&w[size_t(r) * cols], xin.data(), cols) + bf(b[r]) +
                                  (accumulate ? o0[size_t(t) * rows + r] : 0.0);
    }
  }
  char name[96];
  std::snprintf(name, sizeof name, "gemv_bf16 %dx%d T=%d%s%s", rows, cols, T, norm ? " +rmsnorm" : "",
                accumulate ? " +=" : "");
  report(name, got, ref, 2e-6);
  cudaFree(dw), cudaFree(db), cudaFree(dg), cudaFree(dx), cudaFree(dout);
}

void check_qkv_rope(int H, int Nq, int Nkv, const std::vector<int32_t>& pos, const std::vector<int32_t>& slot) {
  const int T = static_cast<int>(pos.size()), cap = 1024;
  auto wq = rand_bf16(size_t(Nq) * 64 * H, -0.05f, 0.05f), wk = rand_bf16(size_t(Nkv) * 64 * H, -0.05f, 0.05f),
       wv = rand_bf16(size_t(Nkv) * 64 * H, -0.05f, 0.05f);
  auto bq = rand_bf16(Nq * 64, -0.5f, 0.5f), bk = rand_bf16(Nkv * 64, -0.5f, 0.5f), bv = rand_bf16(Nkv * 64, -0.5f, 0.5f);
  auto g = rand_bf16(H, 0.5f, 1.5f);
  auto x = randf(size_t(T) * H, -2.0f, 2.0f);
  const YarnRope rope = yarn_rope(64, 150000.0, 32.0, 32.0, 1.0, 4096, false);
  std::vector<float> inv(rope.inv_freq.begin(), rope.inv_freq.end());
  const size_t kvn = size_t(2) * cap * Nkv * 64;
  float *kc = dev_poisoned<float>(kvn), *vc = dev_poisoned<float>(kvn), *q = dev_poisoned<float>(size_t(T) * Nq * 64);
  int32_t *dpos = up(pos), *dslot = up(slot);
  float *dinv = up(inv), *dx = up(x);
  QkvRopeArgs a{};  // by member: fields added later (defaulted) need no change here
  a.wq = up(wq), a.wk = up(wk), a.wv = up(wv), a.bq = up(bq), a.bk = up(bk), a.bv = up(bv);
  a.q_heads = Nq, a.kv_heads = Nkv, a.cols = H, a.inv_freq = dinv;
  a.concentration = static_cast<float>(rope.concentration);
  a.pos = dpos, a.slot = dslot, a.q_out = q, a.k_cache = kc, a.v_cache = vc, a.capacity = cap;
  GemvInput in;
  in.x = dx;
  in.x_stride = H;
  in.norm_gain = up(g);
  CK(qkv_rope_store(a, in, T, nullptr));
  auto gq = down(q, size_t(T) * Nq * 64);
  auto gk = down(kc, kvn), gv = down(vc, kvn);
  std::vector<float> got_q, got_k, got_v;
  std::vector<double> ref_q, ref_k, ref_v;
  for (int t = 0; t < T; ++t) {
    auto xn = ref_norm(&x[size_t(t) * H], H, g, 1e-5f);
    auto proj = [&](const std::vector<uint16_t>& w, const std::vector<uint16_t>& b, int heads, bool rot,
                    std::vector<double>& out) {
      for (int h = 0; h < heads; ++h) {
        double v[64];
        for (int i = 0; i < 64; ++i) v[i] = dot_bf16(&w[size_t(h * 64 + i) * H], xn.data(), H) + bf(b[h * 64 + i]);
        if (rot) {
          for (int i = 0; i < 32; ++i) {
            const float phi = static_cast<float>(pos[t]) * inv[i];
            const double c = std::cos(phi) * rope.concentration, s = std::sin(phi) * rope.concentration;
            const double a0 = v[i], a1 = v[i + 32];
            v[i] = a0 * c - a1 * s;
            v[i + 32] = a1 * c + a0 * s;
          }
        }
        for (int i = 0; i < 64; ++i) out.push_back(v[i]);
      }
    };
    proj(wq, bq, Nq, true, ref_q);
    proj(wk, bk, Nkv, true, ref_k);
    proj(wv, bv, Nkv, false, ref_v);
    got_q.insert(got_q.end(), gq.begin() + size_t(t) * Nq * 64, gq.begin() + size_t(t + 1) * Nq * 64);
    const size_t base = (size_t(slot[t]) * cap + pos[t] % cap) * Nkv * 64;
    got_k.insert(got_k.end(), gk.begin() + base, gk.begin() + base + Nkv * 64);
    got_v.insert(got_v.end(), gv.begin() + base, gv.begin() + base + Nkv * 64);
  }
  char name[96];
  std::snprintf(name, sizeof name, "qkv_rope H=%d q=%d kv=%d T=%d: q", H, Nq, Nkv, T);
  report(name, got_q, ref_q, 2e-6);
  std::snprintf(name, sizeof name, "qkv_rope H=%d q=%d kv=%d T=%d: k cache", H, Nq, Nkv, T);
  report(name, got_k, ref_k, 2e-6);
  std::snprintf(name, sizeof name, "qkv_rope H=%d q=%d kv=%d T=%d: v cache", H, Nq, Nkv, T);
  report(name, got_v, ref_v, 2e-6);
}

void check_attention(int Nq, int Nkv, int window, int nsplit, const std::vector<int32_t>& pos,
                     const std::vector<int32_t>& slot, int cap) {
  const int T = static_cast<int>(pos.size());
  const size_t kvn = size_t(4) * cap * Nkv * 64;
  auto kc = randf(kvn, -1.0f, 1.0f), vc = randf(kvn, -1.0f, 1.0f);
  auto q = randf(size_t(T) * Nq * 64, -1.0f, 1.0f);
  auto sinks = rand_bf16(Nq, -2.0f, 2.0f);
  float* part = dev_poisoned<float>(size_t(T) * Nq * nsplit * 66);
  float* out = dev_poisoned<float>(size_t(T) * Nq * 64);
  int32_t* counters = up(std::vector<int32_t>(size_t(T) * Nkv, 0));
  int32_t *dpos = up(pos), *dslot = up(slot);
  float *dk = up(kc), *dv = up(vc), *dq = up(q);
  uint16_t* ds = up(sinks);
  for (int rep = 0; rep < 2; ++rep) {  // twice: the counters must be left at zero for the next call
    CK(cudaMemset(out, 0xff, size_t(T) * Nq * 64 * 4));
    CK(attention(dq, T, Nq, Nkv, dk, dv, cap, dpos, dslot, window, 0.125f, ds, nsplit, part, counters, out, nullptr,
                 true));
  }
  auto got = down(out, size_t(T) * Nq * 64);
  std::vector<double> ref;
  for (int t = 0; t < T; ++t) {
    const int p = pos[t], lo = window > 0 ? std::max(0, p - window + 1) : 0;
    for (int h = 0; h < Nq; ++h) {
      const int kvh = h / (Nq / Nkv);
      std::vector<double> s;
      double m = bf(sinks[h]);
      for (int j = lo; j <= p; ++j) {
        const float* k = &kc[((size_t(slot[t]) * cap + j % cap) * Nkv + kvh) * 64];
        double d = 0;
        for (int i = 0; i < 64; ++i) d += double(q[(size_t(t) * Nq + h) * 64 + i]) * k[i];
        s.push_back(d * 0.125);
        m = std::max(m, s.back());
      }
      double den = std::exp(bf(sinks[h]) - m);
      for (auto& v : s) den += (v = std::exp(v - m));
      for (int i = 0; i < 64; ++i) {
        double o = 0;
        for (int j = lo; j <= p; ++j) o += s[j - lo] * vc[((size_t(slot[t]) * cap + j % cap) * Nkv + kvh) * 64 + i];
        ref.push_back(o / den);
      }
    }
  }
  char name[96];
  std::snprintf(name, sizeof name, "attention q=%d kv=%d win=%d split=%d T=%d", Nq, Nkv, window, nsplit, T);
  report(name, got, ref, 2e-6);
}

// argmax_rows vs the CPU (ties to the lower index): random rows with the maximum planted twice per row.
// split: over blocks of columns (argmax_rows with scratch), run twice (the counters must come back zeroed).
void check_argmax(int n, int T, bool split = false) {
  auto x = randf(size_t(n) * T, -1.0f, 1.0f);
  std::vector<int32_t> want(T);
  for (int t = 0; t < T; ++t) {
    const int a = static_cast<int>(rng() % n), b = static_cast<int>(rng() % n);
    x[size_t(t) * n + a] = x[size_t(t) * n + b] = 2.0f + t;
    want[t] = std::min(a, b);
  }
  uint64_t* part = split ? dev_poisoned<uint64_t>(argmax_scratch(n, T)) : nullptr;
  uint32_t* counters = split ? up(std::vector<uint32_t>(T, 0)) : nullptr;
  const float* dx = up(x);
  int bad = 0;
  for (int run = 0; run < (split ? 2 : 1); ++run) {
    int32_t* out = dev_poisoned<int32_t>(T);
    CK(argmax_rows(dx, n, T, out, nullptr, part, counters));
    const auto got = down(out, T);
    for (int t = 0; t < T; ++t) bad += got[t] != want[t];
  }
  std::printf("%-44s %s (%d of %d rows wrong)\n",
              ("argmax n=" + std::to_string(n) + " T=" + std::to_string(T) + (split ? " split" : "")).c_str(),
              bad ? "FAIL" : "ok", bad, T * (split ? 2 : 1));
  failures += bad != 0;
}

void check_router(int E, int H, int k, int T) {
  auto w = rand_bf16(size_t(E) * H, -0.05f, 0.05f);
  auto b = rand_bf16(E, -0.5f, 0.5f);
  auto g = rand_bf16(H, 0.5f, 1.5f);
  auto x = randf(size_t(T) * H, -2.0f, 2.0f);
  float *xn = dev_poisoned<float>(size_t(T) * H), *wt = dev_poisoned<float>(size_t(T) * k);
  float* xinv = dev_poisoned<float>(T);
  uint32_t* xn16 = dev_poisoned<uint32_t>(x16_bytes(T, H) / 4);
  int32_t* idx = dev_poisoned<int32_t>(size_t(T) * k);
  float* rl = dev_poisoned<float>(size_t(T) * E);
  int32_t* rc = up(std::vector<int32_t>(T, 0));
  for (int rep = 0; rep < 2; ++rep) {  // twice: the counters must be left at zero
    CK(router_topk(up(x), H, up(g), 1e-5f, up(w), up(b), E, H, k, T, xn, xn16, xinv, rl, rc, idx, wt, nullptr));
  }
  auto gxn = down(xn, size_t(T) * H);
  auto gidx = down(idx, size_t(T) * k);
  auto gw = down(wt, size_t(T) * k);
  std::vector<double> rxn, rw;
  std::vector<float> gww;
  int idx_mismatch = 0;
  for (int t = 0; t < T; ++t) {
    auto n = ref_norm(&x[size_t(t) * H], H, g, 1e-5f);
    rxn.insert(rxn.end(), n.begin(), n.end());
    std::vector<std::pair<double, int>> l;
    for (int e = 0; e < E; ++e) l.push_back({dot_bf16(&w[size_t(e) * H], n.data(), H) + bf(b[e]), e});
    std::stable_sort(l.begin(), l.end(), [](auto& a, auto& c) { return a.first > c.first; });
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(l[j].first - l[0].first);
    for (int j = 0; j < k; ++j) {
      rw.push_back(std::exp(l[j].first - l[0].first) / sum);
      gww.push_back(gw[t * k + j]);
      if (gidx[t * k + j] != l[j].second) ++idx_mismatch;
    }
  }
  report("router: normalized x", gxn, rxn, 2e-6);
  report("router: top-k softmax weights", gww, rw, 2e-6);
  std::printf("%-44s %s (%d mismatches)\n", "router: top-k expert ids", idx_mismatch ? "FAIL" : "ok", idx_mismatch);
  if (idx_mismatch) ++failures;
}

// Router variant vb against va (default: 4, v17, against 2) on the same inputs: logits, ids, weights, the x16
// row, its scale and the f32 row must be the same bits (the same sums in the same order).
void check_router_same(int E, int H, int k, int T, int va = 2, int vb = 4) {
  auto w = up(rand_bf16(size_t(E) * H, -0.05f, 0.05f));
  auto b = up(rand_bf16(E, -0.5f, 0.5f));
  auto g = up(rand_bf16(H, 0.5f, 1.5f));
  auto x = up(randf(size_t(T) * H, -2.0f, 2.0f));
  std::vector<uint32_t> out[2];
  for (int a = 0; a < 2; ++a) {
    set_router_variant(a == 0 ? va : vb);
    float *xn = dev_poisoned<float>(size_t(T) * H), *wt = dev_poisoned<float>(size_t(T) * k);
    float* xinv = dev_poisoned<float>(T);
    uint32_t* xn16 = dev_poisoned<uint32_t>(x16_bytes(T, H) / 4);
    int32_t* idx = dev_poisoned<int32_t>(size_t(T) * k);
    float* rl = dev_poisoned<float>(size_t(T) * E);
    int32_t* rc = up(std::vector<int32_t>(T, 0));
    CK(router_topk(x, H, g, 1e-5f, w, b, E, H, k, T, xn, xn16, xinv, rl, rc, idx, wt, nullptr));
    auto add = [&](const auto& v) {
      for (auto f : v) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        out[a].push_back(u);
      }
    };
    add(down(xn, size_t(T) * H)), add(down(wt, size_t(T) * k)), add(down(xinv, T));
    add(down(xn16, x16_bytes(T, H) / 4)), add(down(idx, size_t(T) * k)), add(down(rl, size_t(T) * E));
  }
  set_router_variant(kRouterDefault);
  size_t diff = 0;
  for (size_t i = 0; i < out[0].size(); ++i) diff += out[0][i] != out[1][i];
  char label[64];
  std::snprintf(label, sizeof label, "router r%d == r%d bits, E %d k %d T %d", vb, va, E, k, T);
  std::printf("%-44s %s (%zu of %zu words differ)\n", label, diff ? "FAIL" : "ok", diff, out[0].size());
  failures += diff != 0;
}

// o_proj with the router folded in (gemv_bf16_router): the residual update against double, and the
// router part against the double reference on the updated row (as check_router), the x16 row decoded.
void check_oproj_router(int E, int H, int cols, int k) {
  auto w = rand_bf16(size_t(H) * cols, -0.05f, 0.05f), bias = rand_bf16(H, -0.5f, 0.5f);
  auto a = randf(cols, -1.0f, 1.0f), x0 = randf(H, -2.0f, 2.0f);
  auto wr = rand_bf16(size_t(E) * H, -0.05f, 0.05f), br = rand_bf16(E, -0.5f, 0.5f), g = rand_bf16(H, 0.5f, 1.5f);
  float* x = up(x0);
  GemvInput in;
  in.x = up(a);
  in.x_stride = cols;
  RouterFold rf;
  rf.gain = up(g), rf.eps = 1e-5f, rf.wr = up(wr), rf.br = up(br), rf.experts = E, rf.k = k;
  rf.partial = dev_poisoned<float>(router_fold_partials(H, E));
  rf.counter = up(std::vector<int32_t>(1, 0));
  rf.xn = dev_poisoned<float>(H), rf.xn16 = dev_poisoned<uint32_t>(x16_bytes(1, H) / 4);
  rf.xn_inv = dev_poisoned<float>(1), rf.logits = dev_poisoned<float>(E);
  rf.idx = dev_poisoned<int32_t>(k), rf.weight = dev_poisoned<float>(k);
  const uint16_t* dw = up(w);
  const uint16_t* db = up(bias);
  for (int rep = 0; rep < 2; ++rep) {  // twice: the counter must be left at zero
    CK(cudaMemcpy(x, x0.data(), x0.size() * 4, cudaMemcpyHostToDevice));
    CK(gemv_bf16_router(dw, db, H, cols, in, x, rf, nullptr));
  }
  auto gx = down(x, H);
  std::vector<double> rx(H);
  std::vector<double> ad(a.begin(), a.end());
  for (int r = 0; r < H; ++r) rx[r] = x0[r] + dot_bf16(&w[size_t(r) * cols], ad.data(), cols) + bf(bias[r]);
  char name[64];
  std::snprintf(name, sizeof name, "o_proj+router %dx%d: residual", H, cols);
  report(name, gx, rx, 2e-6);
  auto n = ref_norm(gx.data(), H, g, 1e-5f);
  std::vector<std::pair<double, int>> l;
  std::vector<double> rl;
  for (int e = 0; e < E; ++e) {
    rl.push_back(dot_bf16(&wr[size_t(e) * H], n.data(), H) + bf(br[e]));
    l.push_back({rl.back(), e});
  }
  std::stable_sort(l.begin(), l.end(), [](auto& p, auto& q) { return p.first > q.first; });
  double sum = 0;
  for (int j = 0; j < k; ++j) sum += std::exp(l[j].first - l[0].first);
  std::vector<double> rw;
  for (int j = 0; j < k; ++j) rw.push_back(std::exp(l[j].first - l[0].first) / sum);
  auto gidx = down(rf.idx, k);
  int idx_mismatch = 0;
  for (int j = 0; j < k; ++j) idx_mismatch += gidx[j] != l[j].second;
  std::snprintf(name, sizeof name, "o_proj+router E=%d: normalized x", E);
  report(name, down(rf.xn, H), n, 2e-6);
  std::snprintf(name, sizeof name, "o_proj+router E=%d: logits", E);
  report(name, down(rf.logits, E), rl, 2e-6);
  std::snprintf(name, sizeof name, "o_proj+router E=%d: top-k softmax weights", E);
  report(name, down(rf.weight, k), rw, 2e-6);
  std::printf("%-44s %s (%d mismatches)\n", "o_proj+router: top-k expert ids", idx_mismatch ? "FAIL" : "ok", idx_mismatch);
  if (idx_mismatch) ++failures;
  // The x16 row (fp16 hi + lo of x * 2^p, x16.cuh's layout) decodes to the normalized x.
  auto g16 = down(rf.xn16, x16_bytes(1, H) / 4);
  const double inv = down(rf.xn_inv, 1)[0];
  const uint16_t* hh = reinterpret_cast<const uint16_t*>(g16.data());
  std::vector<float> dec(H);
  for (int c = 0; c < H; ++c) {
    const int b = c >> 5, j = c & 31, grp = j >> 3, el = j & 7, perm = el < 4 ? 2 * el : 2 * (el - 4) + 1;
    const size_t base = size_t(b) * 72 + grp * 8 + perm;
    dec[c] = static_cast<float>((double(f16_to_f32(hh[base])) + f16_to_f32(hh[base + 32])) * inv);
  }
  std::snprintf(name, sizeof name, "o_proj+router E=%d: x16 row", E);
  report(name, dec, n, 2e-6);
}

std::vector<int32_t> pick_experts(int E, int T, int k) {
  std::vector<int32_t> idx;
  for (int t = 0; t < T; ++t) {
    std::vector<int32_t> all(E);
    for (int e = 0; e < E; ++e) all[e] = e;
    std::shuffle(all.begin(), all.end(), rng);
    idx.insert(idx.end(), all.begin(), all.begin() + k);
  }
  return idx;
}

void check_moe(int E, int I, int H, int T, int k) {
  const int rows1 = 2 * I, nb1 = H / 32, nb2 = I / 32;
  auto b1 = rand_u8(size_t(E) * rows1 * nb1 * 16, 0, 255), s1 = rand_u8(size_t(E) * rows1 * nb1, 116, 124);
  auto b2 = rand_u8(size_t(E) * H * nb2 * 16, 0, 255), s2 = rand_u8(size_t(E) * H * nb2, 116, 124);
  auto bias1 = rand_bf16(size_t(E) * rows1, -0.5f, 0.5f), bias2 = rand_bf16(size_t(E) * H, -0.5f, 0.5f);
  auto x = randf(size_t(T) * H, -3.0f, 3.0f);
  for (int c = 0; c < H; ++c) x[c] *= 1e-3f;  // token 0 small: exercises the fp16 prescale
  auto idx = pick_experts(E, T, k);
  auto wts = randf(size_t(T) * k, 0.0f, 1.0f);
  float* h = dev_poisoned<float>(size_t(T) * k * I);
  uint32_t* h16 = dev_poisoned<uint32_t>(x16_bytes(T * k, I) / 4);
  float* out = dev_poisoned<float>(size_t(T) * H);
  int32_t* didx = up(idx);
  uint32_t* x16 = dev_poisoned<uint32_t>(x16_bytes(T, H) / 4);
  float* xinv = dev_poisoned<float>(T);
  CK(stage_x16(up(x), H, T, H, x16, xinv, nullptr));
  CK(moe_gate_up_swiglu(x16, xinv, didx, T, k, up(b1), up(s1), up(bias1), rows1, H, 7.0f, 1.702f, h, h16, nullptr));
  auto gh = down(h, size_t(T) * k * I);
  std::vector<double> rh(size_t(T) * k * I);
  std::vector<double> row(std::max(H, I));
  int clamps = 0;
  for (int s = 0; s < T * k; ++s) {
    const int t = s / k, e = idx[s];
    for (int j = 0; j < I; ++j) {
      double gu[2];
      for (int u = 0; u < 2; ++u) {
        const size_t r = size_t(e) * rows1 + 2 * j + u;
        decode_row(&b1[r * nb1 * 16], &s1[r * nb1], H, row.data());
        double acc = 0;
        for (int c = 0; c < H; ++c) acc += row[c] * x[size_t(t) * H + c];
        gu[u] = acc + bf(bias1[r]);
      }
      clamps += gu[0] > 7.0 || std::fabs(gu[1]) > 7.0;
      rh[size_t(s) * I + j] = swiglu_ref(gu[0], gu[1], 7.0, 1.702);
    }
  }
  char name[96];
  std::snprintf(name, sizeof name, "moe gate_up+swiglu E=%d I=%d H=%d T=%d k=%d", E, I, H, T, k);
  report(name, gh, rh, 2e-6);
  std::printf("%-44s %d of %zu units hit the clamp\n", "", clamps, rh.size());
  for (int rep = 0; rep < 2; ++rep) {  // twice: the same result from a second launch
    CK(moe_down_accumulate(h16, nullptr, didx, up(wts), T, k, up(b2), up(s2), up(bias2), H, I, out, false, nullptr,
                           /*idx_ready=*/true));
  }
  auto go = down(out, size_t(T) * H);
  std::vector<double> ro(size_t(T) * H, 0.0);
  for (int s = 0; s < T * k; ++s) {
    const int t = s / k, e = idx[s];
    for (int r = 0; r < H; ++r) {
      const size_t rr = size_t(e) * H + r;
      decode_row(&b2[rr * nb2 * 16], &s2[rr * nb2], I, row.data());
      double acc = 0;
      for (int c = 0; c < I; ++c) acc += row[c] * gh[size_t(s) * I + c];  // the GPU's h: isolates this kernel
      ro[size_t(t) * H + r] += wts[s] * (acc + bf(bias2[rr]));
    }
  }
  std::snprintf(name, sizeof name, "moe down+weighted sum E=%d H=%d I=%d T=%d k=%d", E, H, I, T, k);
  report(name, go, ro, 2e-6);
}

void check_attentions() {
  for (int v = 0; v < kAttentionVariants; ++v) {  // every attention kernel (2, 3 need kv_ready: caches complete)
    set_attention_variant(v);
    std::printf("attention variant %d\n", v);
    check_attention(64, 8, 128, 1, {300, 40, 1000}, {0, 1, 2}, 1024);
    check_attention(64, 8, 0, 4, {300, 40, 1000}, {0, 1, 2}, 1024);
    check_attention(64, 8, 128, 3, {0, 127, 450}, {3, 3, 2}, 200);  // ring buffer smaller than context
    check_attention(4, 2, 8, 2, {0, 5, 20}, {0, 1, 2}, 64);
    check_attention(64, 8, 128, 10, {0, 5, 700}, {0, 1, 2}, 1024);  // the lab engine's split count
    check_attention(64, 8, 0, 16, {3, 300, 1000}, {2, 0, 1}, 1024);  // a cluster of 16 (non-portable size)
    check_attention(64, 8, 128, 32, {0, 130, 639}, {0, 1, 2}, 640);   // 32 splits (variant 1 takes 0's kernel)
    check_attention(64, 8, 0, 32, {5, 300, 639}, {2, 0, 1}, 640);
    check_attention(64, 8, 0, 32, {131, 575, 62}, {0, 1, 2}, 640);   // v20: 5 / 18 / 2 active splits of 32
    check_attention(64, 8, 128, 10, {130, 0, 31}, {0, 1, 2}, 640);   // v20: 4 / 1 / 1
  }
  set_attention_variant(kAttentionDefault);
}

int run_checks() {
  // Rows of 1001 and 7 floats start at every offset mod 16 bytes: the 0-3 elements before the first
  // float4 and after the last one.
  check_argmax(201088, 3);
  check_argmax(1001, 4);
  check_argmax(7, 8);
  check_argmax(64, 1);
  check_argmax(201088, 3, true);  // split over 50, 3 (the last of 1 column) and 1 blocks per row
  check_argmax(8193, 2, true);
  check_argmax(1001, 4, true);
  for (int v = 0; v < 2; ++v) {  // every GEMV shape (set_gemv_variant changes the batch-1 kernels only)
    set_gemv_variant(v);
    std::printf("gemv variant %d\n", v);
    check_gemv(2880, 4096, 1, false, false);
    check_gemv(2880, 4096, 1, true, true);
    check_gemv(1000, 2880, 1, true, false);
    check_qkv_rope(2880, 64, 8, {700}, {1});
  }
  set_gemv_variant(kGemvDefault);
  check_gemv(2880, 4096, 3, false, true);
  check_gemv(1000, 2880, 6, true, false);
  check_gemv(64, 64, 2, true, false);
  check_qkv_rope(2880, 64, 8, {5, 700}, {0, 1});
  check_qkv_rope(64, 4, 2, {0, 3, 9}, {1, 0, 1});
  check_attentions();
  for (int v : {0, 1, 2, 4}) {  // every router kernel (128 experts: variants 2 and 4 take kernel 2's cluster of 16)
    set_router_variant(v);
    std::printf("router variant %d\n", v);
    check_router(32, 2880, 4, 2);
    check_router(128, 2880, 4, 1);
    check_router(8, 64, 4, 3);
    check_router(32, 2880, 4, 1);
  }
  set_router_variant(kRouterDefault);
  check_router_same(32, 2880, 4, 3);  // variant 4 bit for bit against variant 2 (NOTES v17)
  check_router_same(8, 64, 4, 2);
  check_router_same(24, 2880, 2, 1);
  check_router_same(128, 2880, 4, 2, 0, 4);  // 128 experts: the cluster of 16 (NOTES v36) against the counter form
  for (int gv = 0; gv < 2; ++gv) {  // the router folded into o_proj (variant 3), under both GEMV shapes
    set_gemv_variant(gv);
    std::printf("o_proj+router, gemv shape %d\n", gv);
    check_oproj_router(32, 2880, 4096, 4);
    check_oproj_router(128, 2880, 4096, 4);
    check_oproj_router(8, 64, 64, 4);
  }
  set_gemv_variant(kGemvDefault);
  for (int v = 0; v < kMoeVariants; ++v) {  // every MoE kernel shape
    set_moe_variant(v, v);
    std::printf("moe variant %d\n", v);
    check_moe(32, 2880, 2880, 1, 4);
    check_moe(32, 2880, 2880, 2, 4);
    check_moe(8, 64, 64, 3, 4);
    check_moe(8, 96, 64, 2, 2);  // 3 blocks per row: a partial chunk
    check_moe(8, 96, 64, 1, 2);  // one token (down's 2-slot clusters, NOTES v51), k 2: a cluster of 1 block
    check_moe(8, 64, 96, 1, 4);  // one token, k 4, down's rows of a partial chunk
  }
  set_moe_variant(moe_default_gate_up(), kMoeDefaultDown);
  std::printf("checks: %s (%d failures)\n", failures ? "FAILED" : "all passed", failures);
  return failures ? 1 : 0;
}

// ---- timing ----
struct Timer {
  cudaEvent_t a, b;
  Timer() {
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
  }
  void start() { CK(cudaEventRecord(a)); }
  float stop_ms() {
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    return ms;
  }
};

template <typename F>
float median_ms(F&& f, int reps) {
  Timer tm;
  std::vector<float> v;
  f();  // warm-up
  for (int r = 0; r < reps; ++r) {
    tm.start();
    f();
    v.push_back(tm.stop_ms());
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device-to-device copy bandwidth (2 GiB, bytes read + written, median of 10 copies), printed; B/s.
double copy_bandwidth() {
  const size_t cb = size_t(2) << 30;
  void *src = nullptr, *dst = nullptr;
  CK(cudaMalloc(&src, cb));
  CK(cudaMalloc(&dst, cb));
  CK(cudaMemset(src, 1, cb));
  const float cms = median_ms([&] { CK(cudaMemcpyAsync(dst, src, cb, cudaMemcpyDeviceToDevice)); }, 10);
  const double bw = 2.0 * cb / (cms * 1e-3);
  std::printf("copy bandwidth (D2D %zu MiB, read+write): %.1f GB/s\n", cb >> 20, bw / 1e9);
  CK(cudaFree(src));
  CK(cudaFree(dst));
  return bw;
}

// The integers of the environment variable `name` ("A B ..." or "A,B ..."; `fallback` when unset).
std::vector<int> env_ints(const char* name, const std::string& fallback) {
  const char* env = std::getenv(name);
  std::string list = env != nullptr ? env : fallback;
  std::replace(list.begin(), list.end(), ',', ' ');
  std::vector<int> out;
  for (size_t at = 0; at < list.size();) {
    int v = 0, used = 0;
    if (std::sscanf(list.c_str() + at, " %d%n", &v, &used) != 1) break;
    out.push_back(v);
    at += static_cast<size_t>(used);
  }
  return out;
}

// count decode steps (graph or eager) of the sequences in slots s, all at positions first.., each fed
// the last step's greedy tokens (tok, updated); exits on an engine error.
void decode_steps(DecodeEngine& eng, std::vector<int32_t>& tok, const std::vector<int32_t>& s, int first, int count,
                  bool graph = true) {
  const int n = static_cast<int>(tok.size());
  std::vector<int32_t> p(n);
  for (int step = 0; step < count; ++step) {
    std::fill(p.begin(), p.end(), first + step);
    eng.set_inputs(tok, p, s);
    auto st = eng.launch(n, graph);
    if (st) st = eng.sync();
    if (!st) std::fprintf(stderr, "%s\n", st.message().c_str()), std::exit(2);
    for (int i = 0; i < n; ++i) tok[i] = eng.next_tokens_host()[i];
  }
}
// The same at batch 1 (slot 0, token *tok).
void decode_steps(DecodeEngine& eng, int32_t* tok, int first, int count) {
  std::vector<int32_t> t{*tok}, s{0};
  decode_steps(eng, t, s, first, count);
  *tok = t[0];
}

int run_bench(int max_tokens, bool profile) {
  set_pdl(false);  // per-kernel numbers without overlap; the decode section compares both
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MB, peak memory bandwidth %.0f GB/s (default MoE gate_up variant %d)\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, peak_memory_bandwidth() / 1e9,
              moe_default_gate_up());
  const double copy_bw = copy_bandwidth();
  auto model = random_20b_model();
  if (!model) return std::fprintf(stderr, "%s\n", model.status().message().c_str()), 2;
  const ModelConfig& c = model->config;
  const ModelWeights& W = model->weights;
  const int H = c.hidden_size, Nq = c.num_heads, Nkv = c.num_kv_heads, I = c.intermediate_size, L = c.num_layers;

  // Per-kernel sweep at batch 1, each launch on the next layer's weights.
  auto x = up(randf(H, -1.0f, 1.0f));
  uint32_t* xn16 = dev_poisoned<uint32_t>(x16_bytes(1, H) / 4);
  float* xinv = dev_poisoned<float>(1);
  CK(stage_x16(x, H, 1, H, xn16, xinv, nullptr));
  float* attn = up(randf(Nq * 64, -1.0f, 1.0f));
  int32_t* counters = up(std::vector<int32_t>(Nkv, 0));
  float* q = dev_poisoned<float>(Nq * 64);
  const int cap = 1024, nsplit = 16;
  float *kc = up(randf(size_t(cap) * Nkv * 64, -1.0f, 1.0f)), *vc = up(randf(size_t(cap) * Nkv * 64, -1.0f, 1.0f));
  float* part = dev_poisoned<float>(size_t(Nq) * nsplit * 66);
  int32_t *pos = up(std::vector<int32_t>{511}), *slot = up(std::vector<int32_t>{0});
  std::vector<float> inv(32, 1e-3f);
  float* dinv = up(inv);
  std::vector<int32_t*> idx;
  for (int l = 0; l < L; ++l) idx.push_back(up(pick_experts(c.num_experts, 1, 4)));
  float* rw = up(std::vector<float>{0.4f, 0.3f, 0.2f, 0.1f});
  uint32_t* h16 = dev_poisoned<uint32_t>(x16_bytes(4, I) / 4);
  {
    float* hf = up(randf(4 * I, -1.0f, 1.0f));
    float* hinv = dev_poisoned<float>(4);
    CK(stage_x16(hf, I, 4, I, h16, hinv, nullptr));
  }
  float* logits = dev_poisoned<float>(c.vocab_size);
  int32_t* ridx = dev_poisoned<int32_t>(4);
  float* rlog = dev_poisoned<float>(c.num_experts);
  int32_t* rcnt = up(std::vector<int32_t>(1, 0));
  struct Row {
    const char* name;
    double bytes;
    float ms;
  };
  std::vector<Row> rows;
  auto sweep = [&](const char* name, double bytes_per_call, auto&& launch) {
    if (profile) {  // one launch each, for ncu
      CK(launch(0));
      CK(cudaDeviceSynchronize());
      return;
    }
    const float ms = median_ms(
        [&] {
          for (int l = 0; l < L; ++l) CK(launch(l));
        },
        20);
    rows.push_back({name, bytes_per_call, ms / L});
  };
  GemvInput nin;
  nin.x = x;
  nin.x_stride = H;
  for (int gv = 0; gv < 2; ++gv) {
  set_gemv_variant(gv);
  sweep(gv ? "qkv+rmsnorm+rope+kv write 5120x2880 [g1]" : "qkv+rmsnorm+rope+kv write 5120x2880 [g0]", 2.0 * 5120 * H, [&](int l) {
    const LayerWeights& Lw = W.layers[l];
    nin.norm_gain = Lw.attn_norm.buf.as<uint16_t>();
    QkvRopeArgs a{};
    a.wq = Lw.q.buf.as<uint16_t>(), a.wk = Lw.k.buf.as<uint16_t>(), a.wv = Lw.v.buf.as<uint16_t>();
    a.bq = Lw.q_bias.buf.as<uint16_t>(), a.bk = Lw.k_bias.buf.as<uint16_t>(), a.bv = Lw.v_bias.buf.as<uint16_t>();
    a.q_heads = Nq, a.kv_heads = Nkv, a.cols = H, a.inv_freq = dinv, a.concentration = 1.3f;
    a.pos = pos, a.slot = slot, a.q_out = q, a.k_cache = kc, a.v_cache = vc, a.capacity = cap;
    return qkv_rope_store(a, nin, 1, nullptr);
  });
  }
  set_gemv_variant(kGemvDefault);
  static std::string att_names[kAttentionVariants];
  for (int av = 0; av < kAttentionVariants; ++av) {
    set_attention_variant(av);
    att_names[av] = "attention ctx 512, 16 splits (f32 KV) [a" + std::to_string(av) + "]";
    sweep(att_names[av].c_str(), 2.0 * 512 * Nkv * 64 * 4, [&](int l) {
      return attention(q, 1, Nq, Nkv, kc, vc, cap, pos, slot, l % 2 ? 0 : 128, 0.125f,
                       W.layers[l].sinks.buf.as<uint16_t>(), nsplit, part, counters, attn, nullptr, true);
    });
  }
  set_attention_variant(kAttentionDefault);
  GemvInput ain;
  ain.x = attn;
  ain.x_stride = Nq * 64;
  for (int gv = 0; gv < 2; ++gv) {
    set_gemv_variant(gv);
    sweep(gv ? "o_proj+residual 2880x4096 [g1]" : "o_proj+residual 2880x4096 [g0]", 2.0 * H * 4096, [&](int l) {
      return gemv_bf16(W.layers[l].o.buf.as<uint16_t>(), W.layers[l].o_bias.buf.as<uint16_t>(), H, 4096, ain, 1, x, H,
                       true, nullptr);
    });
  }
  set_gemv_variant(kGemvDefault);
  static std::string router_names[6];
  int router_row = 0;
  for (int rv : {0, 1, 2, 4, 2, 4}) {  // r2 / r4 twice, interleaved (NOTES v17)
    set_router_variant(rv);
    std::string& name = router_names[router_row++];
    name = "router+rmsnorm+top4+softmax 32x2880 [r" + std::to_string(rv) + "]";
    sweep(name.c_str(), 2.0 * 32 * H,
          [&](int l) {
            const LayerWeights& Lw = W.layers[l];
            return router_topk(x, H, Lw.mlp_norm.buf.as<uint16_t>(), 1e-5f, Lw.router.buf.as<uint16_t>(),
                               Lw.router_bias.buf.as<uint16_t>(), 32, H, 4, 1, nullptr, xn16, xinv, rlog, rcnt, ridx,
                               rw, nullptr);
          });
  }
  set_router_variant(kRouterDefault);
  {  // o_proj with the router folded in (router variant 3): replaces the o_proj and router rows above
    float* rpart = dev_poisoned<float>(router_fold_partials(H, 32));
    sweep("o_proj+residual+router folded [g1 r3]", 2.0 * H * 4096 + 2.0 * 32 * H, [&](int l) {
      const LayerWeights& Lw = W.layers[l];
      RouterFold rf;
      rf.gain = Lw.mlp_norm.buf.as<uint16_t>(), rf.wr = Lw.router.buf.as<uint16_t>();
      rf.br = Lw.router_bias.buf.as<uint16_t>(), rf.experts = 32, rf.k = 4, rf.partial = rpart, rf.counter = rcnt;
      rf.xn16 = xn16, rf.xn_inv = xinv, rf.logits = rlog, rf.idx = ridx, rf.weight = rw;
      return gemv_bf16_router(Lw.o.buf.as<uint16_t>(), Lw.o_bias.buf.as<uint16_t>(), H, 4096, ain, x, rf, nullptr);
    });
  }
  const double mx = (0.5 + 1.0 / 32);
  static std::string moe_names[2][kMoeVariants];
  for (int mv = 0; mv < kMoeVariants; ++mv) {
  moe_names[0][mv] = "moe gate_up+swiglu 4x(5760x2880) [m" + std::to_string(mv) + "]";
  moe_names[1][mv] = "moe down+bias+weighted acc 4x2880^2 [m" + std::to_string(mv) + "]";
  set_moe_variant(mv, mv);
  sweep(moe_names[0][mv].c_str(), 4 * 5760.0 * H * mx, [&](int l) {
    const LayerWeights& Lw = W.layers[l];
    return moe_gate_up_swiglu(xn16, xinv, idx[l], 1, 4, Lw.mlp1.blocks.as<uint8_t>(), Lw.mlp1.scales.as<uint8_t>(),
                              Lw.mlp1_bias.buf.as<uint16_t>(), 2 * I, H, 7.0f, 1.702f, nullptr, h16, nullptr);
  });
  sweep(moe_names[1][mv].c_str(), 4 * 2880.0 * I * mx, [&](int l) {
    const LayerWeights& Lw = W.layers[l];
    return moe_down_accumulate(h16, nullptr, idx[l], rw, 1, 4, Lw.mlp2.blocks.as<uint8_t>(), Lw.mlp2.scales.as<uint8_t>(),
                               Lw.mlp2_bias.buf.as<uint16_t>(), H, I, x, true, nullptr, true);
  });
  }
  set_moe_variant(moe_default_gate_up(), kMoeDefaultDown);
  auto qkv_args = [&](int l) {
    const LayerWeights& Lw = W.layers[l];
    QkvRopeArgs a{};
    a.wq = Lw.q.buf.as<uint16_t>(), a.wk = Lw.k.buf.as<uint16_t>(), a.wv = Lw.v.buf.as<uint16_t>();
    a.bq = Lw.q_bias.buf.as<uint16_t>(), a.bk = Lw.k_bias.buf.as<uint16_t>(), a.bv = Lw.v_bias.buf.as<uint16_t>();
    a.q_heads = Nq, a.kv_heads = Nkv, a.cols = H, a.inv_freq = dinv, a.concentration = 1.3f;
    a.pos = pos, a.slot = slot, a.q_out = q, a.k_cache = kc, a.v_cache = vc, a.capacity = cap;
    return a;
  };
  // The ceiling of any L2 prefetch (v12): each GEMV on one layer's weights, 24 times (hot in L2 after the first).
  sweep("o_proj on one layer's weights (L2-hot)", 2.0 * H * 4096, [&](int) {
    return gemv_bf16(W.layers[0].o.buf.as<uint16_t>(), W.layers[0].o_bias.buf.as<uint16_t>(), H, 4096, ain, 1, x, H,
                     true, nullptr);
  });
  sweep("o_proj half (1440 rows, 11.8 MB)", 2.0 * 1440 * 4096, [&](int l) {
    return gemv_bf16(W.layers[l].o.buf.as<uint16_t>(), W.layers[l].o_bias.buf.as<uint16_t>(), 1440, 4096, ain, 1, x,
                     H, true, nullptr);
  });
  sweep("o_proj half on one layer's weights (L2-hot)", 2.0 * 1440 * 4096, [&](int) {
    return gemv_bf16(W.layers[0].o.buf.as<uint16_t>(), W.layers[0].o_bias.buf.as<uint16_t>(), 1440, 4096, ain, 1, x,
                     H, true, nullptr);
  });
  sweep("qkv on one layer's weights (L2-hot)", 2.0 * 5120 * H, [&](int) {
    nin.norm_gain = W.layers[0].attn_norm.buf.as<uint16_t>();
    return qkv_rope_store(qkv_args(0), nin, 1, nullptr);
  });
  sweep("down (default) on one layer's experts (L2-hot)", 4 * 2880.0 * I * mx, [&](int) {
    const LayerWeights& Lw = W.layers[0];
    return moe_down_accumulate(h16, nullptr, idx[0], rw, 1, 4, Lw.mlp2.blocks.as<uint8_t>(),
                               Lw.mlp2.scales.as<uint8_t>(), Lw.mlp2_bias.buf.as<uint16_t>(), H, I, x, true,
                               nullptr, true);
  });
  {
    GemvInput fin;
    fin.x = x;
    fin.x_stride = H;
    fin.norm_gain = W.final_norm.buf.as<uint16_t>();
    const float ms = median_ms([&] { CK(gemv_bf16(W.unembedding.buf.as<uint16_t>(), nullptr, c.vocab_size, H, fin, 1,
                                                  logits, c.vocab_size, false, nullptr)); },
                               20);
    rows.push_back({"unembedding+rmsnorm 201088x2880", 2.0 * c.vocab_size * H, ms});
  }
  if (profile) return 0;
  {  // launch overhead: an empty kernel, stream launches and graph replays; and the router on one hot layer
    const int n = 200;
    const float ms_stream = median_ms([&] { for (int i = 0; i < n; ++i) CK(noop_kernel_launch(nullptr)); }, 5);
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaGraph_t graph;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < n; ++i) CK(noop_kernel_launch(st));
    CK(cudaStreamEndCapture(st, &graph));
    cudaGraphExec_t exec;
    CK(cudaGraphInstantiate(&exec, graph, 0));
    Timer tm;
    CK(cudaGraphLaunch(exec, st));
    CK(cudaStreamSynchronize(st));
    CK(cudaEventRecord(tm.a, st));
    CK(cudaGraphLaunch(exec, st));
    CK(cudaEventRecord(tm.b, st));
    CK(cudaEventSynchronize(tm.b));
    float ms_graph = 0;
    CK(cudaEventElapsedTime(&ms_graph, tm.a, tm.b));
    const LayerWeights& L0 = W.layers[0];
    const float ms_hot = median_ms([&] {
      for (int i = 0; i < L; ++i) {
        CK(router_topk(x, H, L0.mlp_norm.buf.as<uint16_t>(), 1e-5f, L0.router.buf.as<uint16_t>(),
                       L0.router_bias.buf.as<uint16_t>(), 32, H, 4, 1, nullptr, xn16, xinv, rlog, rcnt, ridx, rw,
                       nullptr));
      }
    }, 20);
    std::printf("empty kernel: %.2f us per stream launch, %.2f us per graph node; router on one hot layer: %.2f us\n",
                1e3 * ms_stream / n, 1e3 * ms_graph / n, 1e3 * ms_hot / L);
  }
  std::printf("\n%-44s %10s %10s %8s\n", "kernel (batch 1, 20b shapes)", "us/call", "GB/s", "%copy");
  for (const auto& r : rows) {
    const double bw = r.bytes / (r.ms * 1e-3);
    std::printf("%-44s %10.2f %10.1f %7.1f%%\n", r.name, r.ms * 1e3, bw / 1e9, 100.0 * bw / copy_bw);
  }

  // Batch-1 decode (graph + PDL) for each combination of kernel shapes, each with its own engine (a
  // graph captures the kernels chosen when it is captured). The first row is v7's shapes.
  {
    set_pdl(true);
    struct Combo {
      int gemv, gate_up, down, router, attention;
    };
    // MoE pairs (kernels.h set_moe_variant) from LAB_MOE_PAIRS ("GU,DN GU,DN ...", each row in order,
    // the list LAB_MOE_ROUNDS times, default 2: interleaved rounds); by default the defaults (v16: g1 m0/m0
    // r2 a2; v17: r4; v19: the one MoE shape; v20: a3; v25: gate_up 1).
    std::vector<Combo> combos;
    {
      const char* env = std::getenv("LAB_MOE_PAIRS");
      std::string pairs =
          env != nullptr ? env : std::to_string(moe_default_gate_up()) + "," + std::to_string(kMoeDefaultDown);
      std::vector<Combo> round;
      for (size_t at = 0; at < pairs.size();) {
        int gu = 0, dn = 0, used = 0;
        if (std::sscanf(pairs.c_str() + at, " %d,%d%n", &gu, &dn, &used) != 2) break;
        // LAB_ROUTERS ("R R ...", default "2"): each pair with each router kernel (NOTES v17); LAB_GEMV ("G G ...",
        // default the default shape): each of those with each GEMV shape (NOTES v29).
        const char* renv = std::getenv("LAB_ROUTERS");
        const std::string routers = renv != nullptr ? renv : std::to_string(kRouterDefault);
        const std::vector<int> gvs = env_ints("LAB_GEMV", std::to_string(kGemvDefault));
        for (size_t ra = 0; ra < routers.size();) {
          int rv = 0, rused = 0;
          if (std::sscanf(routers.c_str() + ra, " %d%n", &rv, &rused) != 1) break;
          for (int gv : gvs) round.push_back({gv, gu, dn, rv, kAttentionDefault});
          ra += static_cast<size_t>(rused);
        }
        at += static_cast<size_t>(used);
      }
      const char* rounds_env = std::getenv("LAB_MOE_ROUNDS");
      const int rounds = rounds_env != nullptr ? std::max(1, std::atoi(rounds_env)) : 2;
      for (int i = 0; i < rounds; ++i) combos.insert(combos.end(), round.begin(), round.end());
    }
    std::printf("\n%-40s %10s %8s\n", "decode batch 1, graph+pdl, g/gu/dn/r/a", "tok/s", "%roof");
    for (const Combo& cb : combos) {
      set_gemv_variant(cb.gemv);
      set_moe_variant(cb.gate_up, cb.down);
      set_router_variant(cb.router);
      set_attention_variant(cb.attention);
      DecodeOptions opt;
      opt.max_batch = 64;  // as below (an engine for batch 1 alone: ~0.3% slower, NOTES v24; ~3% once, earlier)
      opt.max_context = 640;
      auto eng = DecodeEngine::create(c, W, opt);
      if (!eng) return std::fprintf(stderr, "%s\n", eng.status().message().c_str()), 2;
      int32_t tok = 1000;
      auto run = [&](int first, int count) { decode_steps(**eng, &tok, first, count); };
      run(0, 4);
      Timer tm;
      tm.start();
      run(4, max_tokens);
      const float ms = tm.stop_ms();
      const double tps = 1e3 * max_tokens / ms;
      char label[80];
      std::snprintf(label, sizeof label, "g%d gu%d dn%d r%d a%d, positions 4..%d", cb.gemv, cb.gate_up, cb.down,
                    cb.router, cb.attention, 4 + max_tokens - 1);
      std::printf("%-40s %10.1f %7.1f%%\n", label, tps, 100.0 * tps * (*eng)->weight_bytes_per_token() / copy_bw);
    }
    set_gemv_variant(kGemvDefault);
    set_moe_variant(moe_default_gate_up(), kMoeDefaultDown);
    set_router_variant(kRouterDefault);
    set_attention_variant(kAttentionDefault);
    // LAB_DECODE_ONLY=1: stop after these rows (builds compared by their rows alone, NOTES v35).
    if (const char* only = std::getenv("LAB_DECODE_ONLY"); only != nullptr && std::atoi(only) == 1) return 0;
    // One engine of options opt, decoding 128 tokens at positions 4..131 and 512..639 (the cache written up to
    // the first position; the first run captures the graph): a row of tok/s and % of the roofline each, labelled
    // by label_of(label, size, first). False (the error printed) when the engine cannot be made.
    auto decode_rows = [&](const DecodeOptions& opt, auto&& label_of) {
      auto eng = DecodeEngine::create(c, W, opt);
      if (!eng) return std::fprintf(stderr, "%s\n", eng.status().message().c_str()), false;
      int32_t tok = 1000;
      auto run = [&](int first, int count) { decode_steps(**eng, &tok, first, count); };
      // LAB_DECODE_FIRSTS ("F F ...", default "4 512"; 4 or >= 132 each, ascending): the rows' first positions.
      for (int first : env_ints("LAB_DECODE_FIRSTS", "4 512")) {
        if (first == 4) run(0, 4);                   // warm-up (captures the graph)
        else if (first > 132) run(132, first - 132);  // the cache written up to first - 1
        Timer tm;
        tm.start();
        run(first, 128);
        const float ms = tm.stop_ms();
        const double tps = 1e3 * 128 / ms;
        char label[80];
        label_of(label, sizeof label, first);
        std::printf("%-40s %10.1f %7.1f%%\n", label, tps, 100.0 * tps * (*eng)->weight_bytes_per_token() / copy_bw);
      }
      return true;
    };
    // Attention kernels (kernels.h set_attention_variant) from LAB_ATTENTION ("A A ...", default: the
    // default alone), each at positions 4..131 and 512..639 (the CLI's tg128 after a 512-token prompt), with
    // the default splits; the list LAB_ATTENTION_ROUNDS times (default 2): interleaved rounds (NOTES v20).
    {
      const std::vector<int> avs = env_ints("LAB_ATTENTION", std::to_string(kAttentionDefault));
      const char* rounds_env = std::getenv("LAB_ATTENTION_ROUNDS");
      const int rounds = rounds_env != nullptr ? std::max(1, std::atoi(rounds_env)) : 2;
      std::printf("\n%-40s %10s %8s\n", "decode batch 1, graph+pdl, attention", "tok/s", "%roof");
      for (int round = 0; round < rounds; ++round) {
        for (int av : avs) {
          set_attention_variant(av);
          DecodeOptions opt;
          opt.max_batch = 64;
          opt.max_context = 640;
          if (!decode_rows(opt, [&](char* label, size_t n, int first) {
                std::snprintf(label, n, "a%d round %d, positions %d..%d", av, round + 1, first, first + 127);
              })) {
            return 2;
          }
        }
      }
      set_attention_variant(kAttentionDefault);
    }
    // What a step does around its kernels (DecodeOptions::step_io, NOTES v24) from LAB_STEP_IO ("M M ...",
    // default: none), each with engines of max_batch LAB_STEP_IO_BATCH ("B B ...", default 64) and each MoE
    // variant pair of LAB_STEP_IO_MOE ("GU,DN ...", default the defaults), at positions 4..131 and
    // 512..639, the list LAB_STEP_IO_ROUNDS times (default 3).
    if (const std::vector<int> masks = env_ints("LAB_STEP_IO", ""); !masks.empty()) {
      const std::vector<int> batches = env_ints("LAB_STEP_IO_BATCH", "64");
      std::vector<int> moe = env_ints("LAB_STEP_IO_MOE", "");
      if (moe.size() < 2) moe = {moe_default_gate_up(), kMoeDefaultDown};
      const char* rounds_env = std::getenv("LAB_STEP_IO_ROUNDS");
      const int rounds = rounds_env != nullptr ? std::max(1, std::atoi(rounds_env)) : 3;
      std::printf("\n%-40s %10s %8s\n", "decode batch 1, graph+pdl, step io", "tok/s", "%roof");
      for (int round = 0; round < rounds; ++round) {
        for (int mask : masks) {
          for (int mb : batches) {
            for (size_t pi = 0; pi + 1 < moe.size(); pi += 2) {
              set_moe_variant(moe[pi], moe[pi + 1]);
              DecodeOptions opt;
              opt.max_batch = mb;
              opt.max_context = 640;
              opt.step_io = mask;
              if (!decode_rows(opt, [&](char* label, size_t n, int first) {
                    std::snprintf(label, n, "io%d b%d gu%d dn%d round %d, %d..%d", mask, mb, moe[pi], moe[pi + 1],
                                  round + 1, first, first + 127);
                  })) {
                return 2;
              }
            }
          }
        }
      }
      set_moe_variant(moe_default_gate_up(), kMoeDefaultDown);
    }
    // Attention splits (full-attention layers / sliding-window layers) at the CLI's positions (tg128
    // after a 512-token prompt) and at 4..: the default (v12: 32 / 10 at 640) against 10 / 10 (v11:
    // max_context / 64, at most 16) and 32 full splits with 4, 6 or 16 sliding ones (the sliding layers
    // see at most 128 positions: 4 splits are one 32-position tile each).
    std::printf("\n%-40s %10s %8s\n", "decode batch 1, graph+pdl, attention splits", "tok/s", "%roof");
    const int splits[][2] = {{0, 0}, {10, 10}, {32, 4}, {32, 6}, {32, 16}};
    for (int round = 0; round < 2; ++round) {
      for (const auto& ns : splits) {
        DecodeOptions opt;
        opt.max_batch = 64;
        opt.max_context = 640;
        opt.nsplit = ns[0];
        opt.nsplit_sliding = ns[1];
        if (!decode_rows(opt, [&](char* label, size_t n, int first) {
              if (ns[0] == 0) {
                std::snprintf(label, n, "nsplit default, positions %d..%d", first, first + 127);
              } else {
                std::snprintf(label, n, "nsplit %d / %d, positions %d..%d", ns[0], ns[1], first, first + 127);
              }
            })) {
          return 2;
        }
      }
    }
  }

  // Whole decode steps, without and with programmatic dependent launch (each with its own engine, so
  // each captures its own graphs).
  for (bool pdl : {false, true}) {
    set_pdl(pdl);
    DecodeOptions opt;
    opt.max_batch = 64;
    opt.max_context = 640;
    auto eng = DecodeEngine::create(c, W, opt);
    if (!eng) return std::fprintf(stderr, "%s\n", eng.status().message().c_str()), 2;
    const double bytes_tok = (*eng)->weight_bytes_per_token();
    if (!pdl) {
      std::printf("\nweight bytes per token at batch 1: %.3f GB (roofline at copy bw: %.0f tok/s)\n", bytes_tok / 1e9,
                  copy_bw / bytes_tok);
      std::printf("%-40s %6s %8s %10s %8s\n", "decode", "batch", "tokens", "tok/s", "%roof");
    }
    for (int n : {1, 2, 4, 8, 16, 64}) {
      for (bool graph : {false, true}) {
        if ((!graph || !pdl) && n != 1) continue;
        const int steps = n == 1 ? max_tokens : 32;
        std::vector<int32_t> tok(n), s(n);
        for (int i = 0; i < n; ++i) tok[i] = 1000 + i, s[i] = i;
        auto run = [&](int first, int count) { decode_steps(**eng, tok, s, first, count, graph); };
        run(0, 4);  // warm-up (and graph capture)
        Timer tm;
        tm.start();
        run(4, steps);
        const float ms = tm.stop_ms();
        const double tps = 1e3 * steps * n / ms;
        char label[80];
        std::snprintf(label, sizeof label, "%s%s, positions 4..%d", graph ? "cuda graph" : "eager", pdl ? "+pdl" : "",
                      4 + steps - 1);
        std::printf("%-40s %6d %8d %10.1f", label, n, steps * n, tps);
        if (n == 1) std::printf(" %7.1f%%", 100.0 * tps * bytes_tok / copy_bw);
        std::printf("\n");
      }
    }
  }
  return 0;
}

// Total decode throughput (all sequences) per batch size, MoE through the GEMVs vs the grouped GEMM.
int run_batched(int rounds) {
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  copy_bandwidth();
  auto model = random_20b_model();
  if (!model) return std::fprintf(stderr, "%s\n", model.status().message().c_str()), 2;
  const ModelConfig& c = model->config;
  set_pdl(true);
  // Engines: all GEMVs; the MoE on the grouped GEMM in tiles of 8 and 16 slots (dense GEMVs); the dense
  // projections on GEMMs (MoE GEMVs); the MoE (tiles by batch) and the dense projections on GEMMs at
  // every batch; the engine's defaults (thresholds, tiles by batch).
  constexpr int kEngines = 6;
  const char* names[kEngines] = {"gemv", "moe8", "moe16", "dense", "all-gemm", "default"};
  const int moe_min[kEngines] = {1 << 30, 1, 1, 1 << 30, 1, 0}, tiles[kEngines] = {0, 8, 16, 0, 0, 0};
  const int dense_min[kEngines] = {1 << 30, 1 << 30, 1 << 30, 1, 1, 0};
  // LAB_BATCHES / LAB_ENGINES (engine indices into `names`) pick rows, e.g. for a profiler run.
  const std::vector<int> batches = env_ints("LAB_BATCHES", "1 4 6 8 10 12 16 32 64");
  const std::vector<int> picked = env_ints("LAB_ENGINES", "0 1 2 3 4 5");
  for (int e : picked) {
    if (e < 0 || e >= kEngines) return std::fprintf(stderr, "LAB_ENGINES: no engine %d\n", e), 2;
  }
  for (int n : batches) {
    if (n < 1 || n > 64) return std::fprintf(stderr, "LAB_BATCHES: %d is not in 1..64\n", n), 2;
  }
  std::unique_ptr<DecodeEngine> engines[kEngines];
  for (int e : picked) {
    DecodeOptions opt;
    opt.max_batch = 64;
    opt.max_context = 640;
    opt.moe_gemm_min_batch = moe_min[e];
    opt.moe_gemm_tile_slots = tiles[e];
    opt.dense_gemm_min_batch = dense_min[e];
    auto eng = DecodeEngine::create(c, model->weights, opt);
    if (!eng) return std::fprintf(stderr, "%s\n", eng.status().message().c_str()), 2;
    engines[e] = std::move(*eng);
  }
  std::printf("%-6s %-8s %-44s %6s %8s %10s\n", "round", "engine", "decode (cuda graph+pdl)", "batch", "tokens", "tok/s");
  for (int round = 0; round < rounds; ++round) {
    for (int n : batches) {
      for (int e : picked) {
        DecodeEngine& eng = *engines[e];
        const int steps = n == 1 ? 128 : 32;
        std::vector<int32_t> tok(n), s(n);
        for (int i = 0; i < n; ++i) tok[i] = 1000 + 37 * i, s[i] = i;
        auto run = [&](int first, int count) { decode_steps(eng, tok, s, first, count); };
        run(0, 4);  // warm-up and graph capture
        Timer tm;
        tm.start();
        run(4, steps);
        const float ms = tm.stop_ms();
        char label[80];
        std::snprintf(label, sizeof label, "positions 4..%d", 4 + steps - 1);
        std::printf("%-6d %-8s %-44s %6d %8d %10.1f\n", round, names[e], label, n, steps * n,
                    1e3 * steps * n / ms);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "check";
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "gptoss_cuda_lab: no CUDA device\n");
    return 2;
  }
  if (mode == "check") return run_checks();
  if (mode == "check-attention") {  // the attention checks alone (for compute-sanitizer: NOTES v20)
    check_attentions();
    std::printf("checks: %s (%d failures)\n", failures ? "FAILED" : "all passed", failures);
    return failures ? 1 : 0;
  }
  if (mode == "bench") return run_bench(argc > 2 ? std::atoi(argv[2]) : 128, false);
  if (mode == "profile") return run_bench(0, true);
  if (mode == "batched") return run_batched(argc > 2 ? std::atoi(argv[2]) : 2);
  std::fprintf(stderr, "usage: gptoss_cuda_lab check|check-attention|bench [tokens]|batched [rounds]\n");
  return 2;
}
