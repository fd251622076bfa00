// One gpt-oss-20b decode layer's hot GEMVs, exact cpu backend vs cpu-fast, in GB/s of weights read,
// next to the machine's memory bandwidth measured in the same run (read-only sum and memcpy). Each
// line also records the 1-minute load average (shared machines). Working sets exceed the LLC: each
// iteration uses a different group of 4 experts / a different layer's qkv weight.
//
//   gptoss-bench-cpu-kernels [--threads N] [--seconds S] [--check]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "backend/cpu_fast/kernels_fast.h"

namespace {

using gptoss::Backend;
using Clock = std::chrono::steady_clock;

constexpr int64_t kHidden = 2880, kInter = 2880, kQkv = 4096 + 2 * 512, kTopK = 4;
constexpr int kExpertPool = 96;  // gate_up: 96 experts = 846 MB (> the 300 MB LLC)
constexpr int kDownPool = 192;   // down: 192 experts = 846 MB
constexpr int kQkvLayers = 24;   // 24 x 29.5 MB = 708 MB

std::string load_avg() {
  std::ifstream f("/proc/loadavg");
  std::string one;
  f >> one;
  return one.empty() ? "?" : one;
}

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

// Runs fn until `seconds` have passed (at least 3 times); returns the best seconds per call.
double time_best(double seconds, const std::function<void(int)>& fn) {
  double best = 1e30;
  const auto start = Clock::now();
  for (int it = 0;; ++it) {
    const auto t0 = Clock::now();
    fn(it);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, dt);
    if (it >= 2 && std::chrono::duration<double>(Clock::now() - start).count() > seconds) break;
  }
  return best;
}

void report(const char* what, double bytes, double sec) {
  std::printf("| %-44s | %9.2f | %8.2f | %s |\n", what, sec * 1e3, bytes / sec / 1e9, load_avg().c_str());
  std::fflush(stdout);
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
  std::printf("| %-44s | %9s | %8s | %s |\n|---|---|---|---|\n", "kernel", "ms/call", "GB/s", "load1");

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
  auto fast = gptoss::make_cpu_fast_backend(threads);

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
    for (Backend* be : {exact.get(), fast.get()}) {
      const double s = time_best(seconds, [&](int it) {
        be->f32_matmul(x.data(), 1, weight(it % kQkvLayers), &bias, out.data());
      });
      report((be->name() + ": qkv GEMV bf16 5120x2880").c_str(), bytes, s);
    }
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
    for (Backend* be : {exact.get(), fast.get()}) {
      int32_t idx[kTopK];
      const double s = time_best(seconds, [&](int it) {
        idx_for(it, kExpertPool, idx);
        be->f32_mxfp4w_moe_matmul_swiglu(x.data(), 1, kTopK, idx, w1, wb1, 7.0f, 1.702f, h.data());
      });
      report((be->name() + ": 4 experts gate_up+SwiGLU MXFP4").c_str(), bytes_gate_up, s);
      const double s2d = time_best(seconds, [&](int it) {
        idx_for(it, kDownPool, idx);
        be->f32_mxfp4w_moe_matmul_accumulate(h.data(), 1, kTopK, idx, route_w, w2, wb2, out.data());
      });
      report((be->name() + ": 4 experts down+bias+weighted sum").c_str(), bytes_down, s2d);
      report((be->name() + ": one layer's experts (sum of both)").c_str(), bytes_gate_up + bytes_down, s + s2d);
    }
  }
  return 0;
}
