// Helpers shared by the cpu kernel benches: the load average for each row, best-of timing, and the
// page sizes backing an address (from /proc/self/smaps).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace gptoss::bench {

using Clock = std::chrono::steady_clock;

// The 1-minute load average, as printed in /proc/loadavg.
inline std::string load_avg() {
  std::ifstream f("/proc/loadavg");
  std::string one;
  f >> one;
  return one.empty() ? "?" : one;
}

// One markdown row of the GEMV labs: what, ms per call, GB/s of `bytes`, that as a share of
// read_gbs (the lab's in-process read line; 0 before it is measured), a note, the load average.
inline void report_row(const std::string& what, double bytes, double sec, double read_gbs, const std::string& note) {
  const double gbs = bytes / sec / 1e9;
  std::printf("| %-62s | %8.2f | %6.2f | %5.1f%% | %-8s | %s |\n", what.c_str(), sec * 1e3, gbs,
              read_gbs > 0 ? 100.0 * gbs / read_gbs : 0.0, note.c_str(), load_avg().c_str());
  std::fflush(stdout);
}

// Best seconds per call of fn(iteration) over `seconds` (at least 3 calls).
inline double time_best(double seconds, const std::function<void(int)>& fn) {
  double best = 1e30;
  const auto start = Clock::now();
  for (int it = 0;; ++it) {
    const auto t0 = Clock::now();
    fn(it);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    if (it >= 2 && std::chrono::duration<double>(Clock::now() - start).count() > seconds) break;
  }
  return best;
}
inline double time_best(double seconds, const std::function<void()>& fn) {
  return time_best(seconds, [&](int) { fn(); });
}

// read_bandwidth.c's loop: 4 uint64 accumulators (the plain-read line of the MXFP4 labs).
inline uint64_t sum_u64(const uint64_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  for (; i < n; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3;
}

// Pseudo-random MXFP4 bytes (xorshift): codes, or E8M0 scales 2^-9..2^-6 (scales = true).
inline void fill_mxfp4(uint8_t* p, size_t n, bool scales, uint64_t seed) {
  uint64_t s = seed | 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    p[i] = scales ? static_cast<uint8_t>(118 + (s & 3)) : static_cast<uint8_t>(s);
  }
}

// The page-size lines (Rss, AnonHugePages, FilePmdMapped, KernelPageSize) of the mapping holding p.
inline std::string smaps_pages(const void* p) {
  std::ifstream f("/proc/self/smaps");
  std::string line, out;
  bool in = false;
  const auto a = reinterpret_cast<uintptr_t>(p);
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's first line
      in = a >= lo && a < hi;
      continue;
    }
    if (!in) continue;
    for (const char* key : {"Rss:", "AnonHugePages:", "FilePmdMapped:", "KernelPageSize:"}) {
      if (line.rfind(key, 0) == 0) {
        std::istringstream is(line.substr(std::strlen(key)));
        std::string v, unit;
        is >> v >> unit;
        out += std::string(key) + " " + v + " " + unit + "  ";
      }
    }
  }
  return out;
}

// Worst |got - sum x w| / sum |x w| over 64 sampled (token t < T, row r < R) outputs of the GEMM
// labs: x[T][K], got[T][R], w_row(r, w) writes weight row r in f32 to w[K].
template <typename Row>
double sampled_error(const std::vector<float>& x, int64_t T, int64_t K, Row&& w_row, const std::vector<float>& got,
                     int64_t R) {
  std::mt19937 rng(5);
  double worst = 0.0;
  std::vector<float> w(K);
  for (int i = 0; i < 64; ++i) {
    const int64_t t = rng() % T, r = rng() % R;
    w_row(r, w.data());
    double want = 0.0, mag = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      const double p = static_cast<double>(x[t * K + k]) * w[k];
      want += p;
      mag += std::fabs(p);
    }
    worst = std::max(worst, std::fabs(got[t * R + r] - want) / mag);
  }
  return worst;
}

}  // namespace gptoss::bench
