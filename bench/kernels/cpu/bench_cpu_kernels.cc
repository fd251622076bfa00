// One gpt-oss-20b layer's hot ops, exact cpu backend vs cpu-fast: decode GEMVs in GB/s of weights
// read, next to the machine's memory bandwidth measured in the same run (read-only sum and memcpy),
// and prefill shapes (64 tokens) in GFLOP/s. Every cpu-fast line is checked against the exact
// backend on the same inputs ("err": max |fast - exact| / max |exact|). Each line also records the
// 1-minute load average (shared machines). Decode working sets exceed the LLC: each iteration uses
// a different group of 4 experts / a different layer's qkv weight.
//
//   gptoss-bench-cpu-kernels [--threads N] [--seconds S]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "backend/cpu_fast/kernels_fast.h"
#include "backend/cpu_fast/kernels_mxfp4_i8.h"
#include <hwy/targets.h>

#include "bench_util.h"

namespace {

using gptoss::Backend;
using gptoss::bench::Clock;
using gptoss::bench::load_avg;
using gptoss::bench::time_best;

constexpr int64_t kHidden = 2880, kInter = 2880, kQkv = 4096 + 2 * 512, kTopK = 4;
constexpr int kExpertPool = 96;  // gate_up: 96 experts = 846 MB (> the 300 MB LLC)
constexpr int kDownPool = 192;   // down: 192 experts = 846 MB
constexpr int kQkvLayers = 24;   // 24 x 29.5 MB = 708 MB

uint64_t g_state = 0x9e3779b97f4a7c15ull;
uint64_t next_u64() {
  g_state ^= g_state << 13;
  g_state ^= g_state >> 7;
  g_state ^= g_state << 17;
  return g_state;
}

void fill_bytes(std::vector<uint8_t>& v) {
  for (size_t i = 0; i + 8 <= v.size(); i += 8) {
    const uint64_t r = next_u64();
    std::memcpy(v.data() + i, &r, 8);
  }
}

// One table row: ms per call, the rate (GB/s of weights or GFLOP/s), the error against the exact
// backend (empty for reference rows) and the load average.
void report(const std::string& what, double amount, double sec, const std::string& err = "") {
  std::printf("| %-50s | %9.2f | %8.2f | %9s | %s |\n", what.c_str(), sec * 1e3, amount / sec / 1e9, err.c_str(),
              load_avg().c_str());
  std::fflush(stdout);
}

// max |got - want| / max |want|, formatted.
std::string rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0.0, mag = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(got[i] - want[i])));
    mag = std::max(mag, static_cast<double>(std::fabs(want[i])));
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", mag > 0 ? diff / mag : diff);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  double seconds = 3.0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("threads %d, SIMD target %s, load at start %s\n\n", threads, gptoss::cpu_fast::simd_target(),
              load_avg().c_str());
  std::printf("| %-50s | %9s | %8s | %9s | %s |\n|---|---|---|---|---|\n", "kernel", "ms/call", "GB/s|GF/s", "err",
              "load1");

  // Memory bandwidth: read-only SIMD dot over 512 MB split over the threads, and memcpy of 512 MB.
  {
    const size_t n = (size_t{512} << 20) / 8;
    std::vector<uint64_t> src(n, 0x3f8000003f800000ull), dst(n);  // f32 ones
    const double read_s = time_best(seconds, [&](int) {
      std::vector<uint64_t> part(static_cast<size_t>(threads));
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
          const size_t b = n * t / threads, e = n * (t + 1) / threads;
          // The SIMD dot kernel reading one stream (x . x), so the loop is as wide as the GEMVs'.
          const float* f = reinterpret_cast<const float*>(src.data() + b);
          part[t] = gptoss::cpu_fast::dot_f32(f, f, static_cast<int64_t>(e - b) * 2) > 0.0f ? 1 : 0;
        });
      }
      for (auto& t : ts) t.join();
      if (part[0] == 0) std::abort();
    });
    report("memory read (SIMD x.x over 512 MB)", static_cast<double>(n * 8), read_s);
    const double copy_s = time_best(seconds, [&](int) {
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
          const size_t b = n * t / threads, e = n * (t + 1) / threads;
          std::memcpy(dst.data() + b, src.data() + b, (e - b) * 8);
        });
      }
      for (auto& t : ts) t.join();
    });
    report("memory copy (memcpy 512 MB, read+write bytes)", static_cast<double>(n * 16), copy_s);
  }

  auto exact = gptoss::make_cpu_backend(threads);
  // cpu-fast as configured by the environment, and with the int8 expert GEMVs off / on (1 and 2
  // int8 activation terms) for the decode expert lines.
  auto fast = gptoss::make_cpu_fast_backend(threads);
  auto fast_with = [&](const char* i8, const char* parts) {
    setenv("GPTOSS_CPU_FAST_MOE_I8", i8, 1);
    setenv("GPTOSS_CPU_FAST_MOE_I8_PARTS", parts, 1);
    auto be = gptoss::make_cpu_fast_backend(threads);
    unsetenv("GPTOSS_CPU_FAST_MOE_I8");
    unsetenv("GPTOSS_CPU_FAST_MOE_I8_PARTS");
    return be;
  };
  auto fast_f32 = fast_with("0", "2"), fast_i8_1 = fast_with("1", "1"), fast_i8_2 = fast_with("1", "2");

  // qkv bf16 GEMV: [5120, 2880] per layer, bias included.
  {
    std::vector<uint8_t> w(static_cast<size_t>(kQkvLayers) * kQkv * kHidden * 2), b(kQkv * 2);
    fill_bytes(w);
    // Keep the bf16 values finite and small: exponent byte in a narrow range.
    for (size_t i = 1; i < w.size(); i += 2) w[i] = static_cast<uint8_t>(0x3c | (w[i] & 0x80));
    for (size_t i = 0; i < b.size(); ++i) b[i] = i % 2 ? 0x3c : 0;
    std::vector<float> x(kHidden, 0.5f), out(kQkv);
    auto weight = [&](int layer) {
      gptoss::Weight ww;
      ww.buf.data = w.data() + static_cast<size_t>(layer) * kQkv * kHidden * 2;
      ww.rows = kQkv;
      ww.cols = kHidden;
      return ww;
    };
    gptoss::Weight bias;
    bias.buf.data = b.data();
    bias.rows = 1;
    bias.cols = kQkv;
    const double bytes = static_cast<double>(kQkv) * kHidden * 2;
    std::vector<float> want(kQkv);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.1f * static_cast<float>(i));
    exact->f32_matmul(x.data(), 1, weight(0), &bias, want.data());
    for (Backend* be : {exact.get(), fast.get()}) {
      const double s = time_best(seconds, [&](int it) {
        be->f32_matmul(x.data(), 1, weight(it % kQkvLayers), &bias, out.data());
      });
      be->f32_matmul(x.data(), 1, weight(0), &bias, out.data());
      report(be->name() + ": qkv GEMV bf16 5120x2880 (T=1)", bytes, s, be == fast.get() ? rel_err(out, want) : "");
    }
    // Prefill shape: 64 tokens, GFLOP/s.
    constexpr int kT = 64;
    std::vector<float> xt(kT * kHidden), ot(kT * kQkv), wt(kT * kQkv);
    for (size_t i = 0; i < xt.size(); ++i) xt[i] = std::cos(0.01f * static_cast<float>(i));
    exact->f32_matmul(xt.data(), kT, weight(0), &bias, wt.data());
    const double flops = 2.0 * kT * kQkv * kHidden;
    const double s = time_best(seconds, [&](int it) { fast->f32_matmul(xt.data(), kT, weight(it % kQkvLayers), &bias, ot.data()); });
    fast->f32_matmul(xt.data(), kT, weight(0), &bias, ot.data());
    report("cpu-fast: qkv matmul bf16 5120x2880, T=64 (GFLOP/s)", flops, s, rel_err(ot, wt));
  }

  // Experts: 4 of a pool (846 MB per matrix kind), gate_up [5760, 2880] + SwiGLU then down [2880, 2880] + weighted sum.
  {
    const int64_t nb = kHidden / 32;
    std::vector<uint8_t> b1(static_cast<size_t>(kExpertPool) * 2 * kInter * nb * 16), s1(kExpertPool * 2 * kInter * nb);
    std::vector<uint8_t> b2(static_cast<size_t>(kDownPool) * kHidden * (kInter / 32) * 16),
        s2(static_cast<size_t>(kDownPool) * kHidden * (kInter / 32));
    fill_bytes(b1);
    fill_bytes(b2);
    for (auto& s : s1) s = static_cast<uint8_t>(118 + next_u64() % 4);
    for (auto& s : s2) s = static_cast<uint8_t>(118 + next_u64() % 4);
    std::vector<uint16_t> bias1(kExpertPool * 2 * kInter, 0x3c00), bias2(kDownPool * kHidden, 0x3c00);
    gptoss::Mxfp4Experts w1, w2;
    w1.blocks.data = b1.data();
    w1.scales.data = s1.data();
    w1.experts = kExpertPool;
    w1.rows = 2 * kInter;
    w1.cols = kHidden;
    w2.blocks.data = b2.data();
    w2.scales.data = s2.data();
    w2.experts = kDownPool;
    w2.rows = kHidden;
    w2.cols = kInter;
    gptoss::Weight wb1, wb2;
    wb1.buf.data = bias1.data();
    wb1.rows = kExpertPool;
    wb1.cols = 2 * kInter;
    wb2.buf.data = bias2.data();
    wb2.rows = kDownPool;
    wb2.cols = kHidden;
    std::vector<float> x(kHidden, 0.05f), h(kTopK * kInter), out(kHidden);
    const float route_w[kTopK] = {0.4f, 0.3f, 0.2f, 0.1f};
    auto idx_for = [&](int it, int pool, int32_t* idx) {
      const int group = it % (pool / kTopK);
      for (int j = 0; j < kTopK; ++j) idx[j] = static_cast<int32_t>(group * kTopK + (kTopK - 1 - j));
    };
    const double bytes_gate_up = kTopK * 2.0 * kInter * kHidden * 17.0 / 32.0;
    const double bytes_down = kTopK * 1.0 * kHidden * kInter * 17.0 / 32.0;
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.05f * std::sin(0.3f * static_cast<float>(i));
    std::vector<float> h_want(h.size()), o_want(out.size());
    {
      int32_t idx[kTopK];
      idx_for(0, kExpertPool, idx);
      exact->f32_mxfp4w_moe_matmul_swiglu(x.data(), 1, kTopK, idx, w1, wb1, 7.0f, 1.702f, h_want.data());
      idx_for(0, kDownPool, idx);
      exact->f32_mxfp4w_moe_matmul_accumulate(h_want.data(), 1, kTopK, idx, route_w, w2, wb2, o_want.data());
    }
    const bool i8 = gptoss::cpu_fast::mxfp4_i8_usable();
    const std::vector<std::pair<std::string, Backend*>> moe_backends = {
        {"cpu", exact.get()},
        {"cpu-fast f32 (MOE_I8=0)", fast_f32.get()},
        {i8 ? "cpu-fast int8 x2 (MOE_I8=1)" : "", fast_i8_2.get()},
        {i8 ? "cpu-fast int8 x1 (MOE_I8_PARTS=1)" : "", fast_i8_1.get()}};
    for (const auto& [label, be] : moe_backends) {
      if (label.empty()) continue;  // no int8 kernel on this CPU
      const bool is_fast = be != exact.get();
      int32_t idx[kTopK];
      const double s = time_best(seconds, [&](int it) {
        idx_for(it, kExpertPool, idx);
        be->f32_mxfp4w_moe_matmul_swiglu(x.data(), 1, kTopK, idx, w1, wb1, 7.0f, 1.702f, h.data());
      });
      idx_for(0, kExpertPool, idx);
      be->f32_mxfp4w_moe_matmul_swiglu(x.data(), 1, kTopK, idx, w1, wb1, 7.0f, 1.702f, h.data());
      report(label + ": 4 experts gate_up+SwiGLU (T=1)", bytes_gate_up, s, is_fast ? rel_err(h, h_want) : "");
      const double s2d = time_best(seconds, [&](int it) {
        idx_for(it, kDownPool, idx);
        be->f32_mxfp4w_moe_matmul_accumulate(h_want.data(), 1, kTopK, idx, route_w, w2, wb2, out.data());
      });
      idx_for(0, kDownPool, idx);
      be->f32_mxfp4w_moe_matmul_accumulate(h_want.data(), 1, kTopK, idx, route_w, w2, wb2, out.data());
      report(label + ": 4 experts down+bias+weighted sum (T=1)", bytes_down, s2d, is_fast ? rel_err(out, o_want) : "");
      report(label + ": one layer's experts (sum of both)", bytes_gate_up + bytes_down, s + s2d);
    }
    // Why the expert GEMV runs below memory speed, on one thread (no pool): the kernel on 64 rows
    // that stay in L2 (its arithmetic alone; GB/s of the MXFP4 bytes it consumes), the same kernel
    // streaming the whole 846 MB gate_up pool in 64-row calls, and a plain read of as many bytes.
    {
      std::vector<float> xp(kHidden), o(2 * kInter);
      gptoss::cpu_fast::to_chunk_order(x.data(), kHidden, xp.data());
      const double row_bytes = kHidden * 17.0 / 32.0;
      const double hot = time_best(seconds, [&](int) {
        for (int rep = 0; rep < 100; ++rep) gptoss::cpu_fast::gemv_mxfp4(xp.data(), b1.data(), s1.data(), kHidden, 64, o.data());
      });
      report("1 thread: MXFP4 GEMV 64x2880 in L2, x100 (compute)", 100 * 64 * row_bytes, hot);
      const int64_t pool_rows = static_cast<int64_t>(kExpertPool) * 2 * kInter;
      const double cold = time_best(seconds, [&](int) {
        for (int64_t r = 0; r < pool_rows; r += 64) {
          gptoss::cpu_fast::gemv_mxfp4(xp.data(), b1.data() + r * nb * 16, s1.data() + r * nb, kHidden, 64, o.data());
        }
      });
      report("1 thread: MXFP4 GEMV streaming 846 MB (64-row calls)", pool_rows * row_bytes, cold);
      // All threads, each its own contiguous share in 64-row calls, no pool (vs the 4-experts
      // lines above: what the pool, the task list and the SwiGLU/bias epilogue cost).
      const double split = time_best(seconds, [&](int) {
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t) {
          ts.emplace_back([&, t] {
            std::vector<float> ot(64);
            const int64_t r0 = pool_rows / 64 * t / threads * 64, r1 = pool_rows / 64 * (t + 1) / threads * 64;
            for (int64_t r = r0; r < r1; r += 64) {
              gptoss::cpu_fast::gemv_mxfp4(xp.data(), b1.data() + r * nb * 16, s1.data() + r * nb, kHidden, 64,
                                           ot.data());
            }
          });
        }
        for (auto& t : ts) t.join();
      });
      report("all threads: MXFP4 GEMV streaming 846 MB, static split", pool_rows * row_bytes, split);
      // The int8 kernel (kernels_mxfp4_i8.h), 1 and 2 activation terms, same three shapes.
      if (gptoss::cpu_fast::mxfp4_i8_usable()) {
        struct Freer {
          void operator()(uint8_t* p) const { std::free(p); }
        };
        const int64_t ab = gptoss::cpu_fast::mxfp4_i8_act_bytes(kHidden);
        std::unique_ptr<uint8_t, Freer> act(static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>(ab))));
        gptoss::cpu_fast::quantize_mxfp4_i8_act(x.data(), kHidden, act.get());
        const uint8_t* acts[1] = {act.get()};
        for (const int parts : {2, 1}) {
          const std::string tag = "int8 x" + std::to_string(parts) + " (" + gptoss::cpu_fast::mxfp4_i8_target() + ")";
          auto gemv = [&](int64_t r, float* o) {
            gptoss::cpu_fast::gemv_mxfp4_i8(acts, 1, parts, b1.data() + r * nb * 16, s1.data() + r * nb, kHidden, 64, o,
                                            0);
          };
          const double hot8 = time_best(seconds, [&](int) {
            for (int rep = 0; rep < 100; ++rep) gemv(0, o.data());
          });
          report("1 thread: " + tag + " 64x2880 in L2, x100", 100 * 64 * row_bytes, hot8);
          const double cold8 = time_best(seconds, [&](int) {
            for (int64_t r = 0; r < pool_rows; r += 64) gemv(r, o.data());
          });
          report("1 thread: " + tag + " streaming 846 MB", pool_rows * row_bytes, cold8);
          const double split8 = time_best(seconds, [&](int) {
            std::vector<std::thread> ts;
            for (int t = 0; t < threads; ++t) {
              ts.emplace_back([&, t] {
                std::vector<float> ot(64);
                const int64_t r0 = pool_rows / 64 * t / threads * 64, r1 = pool_rows / 64 * (t + 1) / threads * 64;
                for (int64_t r = r0; r < r1; r += 64) gemv(r, ot.data());
              });
            }
            for (auto& t : ts) t.join();
          });
          report("all threads: " + tag + " streaming 846 MB, static split", pool_rows * row_bytes, split8);
        }
        // AVX2-only CPUs: the int8 AVX2 body and the f32 kernel with Highway held to AVX2, in L2.
        for (const int parts : {2, 1}) {
          const double t = time_best(seconds, [&](int) {
            for (int rep = 0; rep < 100; ++rep) {
              gptoss::cpu_fast::gemv_mxfp4_i8_on("avx2", acts, 1, parts, b1.data(), s1.data(), kHidden, 64, o.data(),
                                                 0);
            }
          });
          report("1 thread: int8 x" + std::to_string(parts) + " (avx2) 64x2880 in L2, x100", 100 * 64 * row_bytes, t);
        }
        hwy::SetSupportedTargetsForTest(HWY_AVX2);
        const double f32_avx2 = time_best(seconds, [&](int) {
          for (int rep = 0; rep < 100; ++rep) {
            gptoss::cpu_fast::gemv_mxfp4(xp.data(), b1.data(), s1.data(), kHidden, 64, o.data());
          }
        });
        report(std::string("1 thread: f32 MXFP4 GEMV (") + gptoss::cpu_fast::simd_target() + ") 64x2880 in L2, x100",
               100 * 64 * row_bytes, f32_avx2);
        hwy::SetSupportedTargetsForTest(0);  // back to the machine's best target
      }
      const double read = time_best(seconds, [&](int) {
        // Integer sum (the bytes as floats would include denormals, which slow FP loads down).
        uint64_t a[4] = {0, 0, 0, 0};
        const size_t words = b1.size() / 8;
        for (size_t i = 0; i + 4 <= words; i += 4) {
          for (int j = 0; j < 4; ++j) {
            uint64_t v;
            std::memcpy(&v, b1.data() + 8 * (i + j), 8);
            a[j] += v;
          }
        }
        if (a[0] + a[1] + a[2] + a[3] == 42) std::printf(" ");
      });
      report("1 thread: memory read of the 783 MB of blocks (int sum)", static_cast<double>(b1.size()), read);
    }
    // Prefill shape: 64 tokens routed over 32 experts (4 each, ~8 tokens per expert), GFLOP/s.
    constexpr int kT = 64, kExperts = 32;
    std::vector<int32_t> idx(kT * kTopK);
    std::vector<float> rw(kT * kTopK, 0.25f), xt(kT * kHidden), ht(kT * kTopK * kInter), hw(ht.size()),
        ot(kT * kHidden), ow(ot.size());
    for (int t = 0; t < kT; ++t) {
      for (int j = 0; j < kTopK; ++j) idx[t * kTopK + j] = static_cast<int32_t>((t * 7 + j * 5) % kExperts);
    }
    for (size_t i = 0; i < xt.size(); ++i) xt[i] = 0.05f * std::cos(0.7f * static_cast<float>(i));
    exact->f32_mxfp4w_moe_matmul_swiglu(xt.data(), kT, kTopK, idx.data(), w1, wb1, 7.0f, 1.702f, hw.data());
    exact->f32_mxfp4w_moe_matmul_accumulate(hw.data(), kT, kTopK, idx.data(), rw.data(), w2, wb2, ow.data());
    const double f_gate_up = 2.0 * kT * kTopK * 2 * kInter * kHidden, f_down = 2.0 * kT * kTopK * kHidden * kInter;
    const double sg = time_best(seconds, [&](int) {
      fast->f32_mxfp4w_moe_matmul_swiglu(xt.data(), kT, kTopK, idx.data(), w1, wb1, 7.0f, 1.702f, ht.data());
    });
    report("cpu-fast: experts gate_up+SwiGLU, T=64 x top-4 (GFLOP/s)", f_gate_up, sg, rel_err(ht, hw));
    const double sd = time_best(seconds, [&](int) {
      fast->f32_mxfp4w_moe_matmul_accumulate(hw.data(), kT, kTopK, idx.data(), rw.data(), w2, wb2, ot.data());
    });
    report("cpu-fast: experts down+weighted sum, T=64 x top-4 (GFLOP/s)", f_down, sd, rel_err(ot, ow));
  }
  // Attention with sinks (64 query heads, 8 kv heads of 64, f32 KV): decode at position 4095 over
  // the full context (GB/s of K and V read) and a 512-token prefill from position 0 (GFLOP/s).
  {
    constexpr int kHeads = 64, kKvHeads = 8, kDim = 64, kCap = 4096;
    std::vector<float> kd(static_cast<size_t>(kCap) * kKvHeads * kDim), vd(kd.size());
    for (size_t i = 0; i < kd.size(); ++i) {
      kd[i] = std::sin(0.37f * static_cast<float>(i));
      vd[i] = std::cos(0.11f * static_cast<float>(i));
    }
    gptoss::KvLayer kv;
    kv.k.data = kd.data();
    kv.v.data = vd.data();
    kv.slots = 1;
    kv.capacity = kCap;
    kv.kv_heads = kKvHeads;
    kv.head_dim = kDim;
    std::vector<uint16_t> sink_bits(kHeads, 0x3f80);  // 1.0
    gptoss::Weight sinks;
    sinks.buf.data = sink_bits.data();
    sinks.rows = 1;
    sinks.cols = kHeads;
    const float scale = 0.125f;
    for (const int T : {1, 512}) {
      std::vector<int32_t> slots(T, 0), pos(T);
      for (int t = 0; t < T; ++t) pos[t] = T == 1 ? kCap - 1 : t;
      std::vector<float> q(static_cast<size_t>(T) * kHeads * kDim), want(q.size()), got(q.size());
      for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.05f * static_cast<float>(i));
      exact->f32_sdpa_sink_window(q.data(), T, kHeads, kv, slots, pos, sinks, 0, scale, want.data());
      for (Backend* be : {exact.get(), fast.get()}) {
        if (T > 1 && be == exact.get()) continue;  // minutes on the scalar path
        const double s = time_best(seconds, [&](int) {
          be->f32_sdpa_sink_window(q.data(), T, kHeads, kv, slots, pos, sinks, 0, scale, got.data());
        });
        const std::string err = be == fast.get() ? rel_err(got, want) : "";
        if (T == 1) {
          report(be->name() + ": attention decode, 4096 positions (GB/s of KV)", 2.0 * kCap * kKvHeads * kDim * 4, s, err);
        } else {
          const double flops = 2.0 * 2.0 * kHeads * kDim * (T * (T + 1) / 2.0);
          report(be->name() + ": attention prefill T=512 (GFLOP/s)", flops, s, err);
        }
      }
    }
  }
  return 0;
}
