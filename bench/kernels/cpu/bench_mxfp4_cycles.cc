// Is the decode MXFP4 expert GEMV compute- or memory-bound on this machine? Measured in one run:
//   - the core clock: a chain of dependent register adds (1 cycle each), on one core and on all
//     cores at once (a VM's vCPUs may be hyperthreads of one core, or clocked down when both run);
//   - each kernel's cycles per 32-weight block and row with the weights hot in L1 (8 rows, 12 KB)
//     and in L2 (256 rows, 392 KB), on one thread and on all threads at once (each its own copy);
//   - the same kernels streaming from DRAM (a 1.5 GB pool in 64-row calls, as the backend calls
//     them), one thread and all threads (each a contiguous share), against a plain read of the
//     same bytes (read_bandwidth.c's loop: uint64 sums) on one thread and on all.
// A kernel is compute-bound where its streaming rate is near its hot rate and below the read line.
//
//   gptoss-bench-mxfp4-cycles [--threads N] [--seconds S] [--pool-mb MB]
//
// Kernels: f32 (gemv_mxfp4, the cpu-fast default), int8 with 1 and 2 activation parts
// (gemv_mxfp4_i8, opt-in), and the int8 AVX2 body on AVX-512 machines.
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend/cpu_fast/kernels_fast.h"
#include "backend/cpu_fast/kernels_mxfp4_i8.h"
#include "backend/cpu_fast/spin_pool.h"
#include "bench_util.h"

namespace {

using gptoss::bench::Clock;
using gptoss::bench::fill_mxfp4;
using gptoss::bench::load_avg;
using gptoss::bench::sum_u64;
using gptoss::bench::time_best;
constexpr int64_t kCols = 2880, kNb = kCols / 32, kRowBytes = kNb * 17;

// Dependent register adds, 8 per iteration (reg + reg: not folded at rename as add-immediate
// chains can be on recent Intel cores); returns the sum so nothing is optimized away.
uint64_t add_chain(int64_t iters) {
  uint64_t x = 0, one = 1;
#if defined(__x86_64__)
  asm volatile("" : "+r"(one));
  for (int64_t i = 0; i < iters; ++i) {
    asm volatile(
        "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
        "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0"
        : "+r"(x)
        : "r"(one));
  }
#else
  for (int64_t i = 0; i < iters; ++i) {
    for (int k = 0; k < 8; ++k) asm volatile("" : "+r"(x) : "r"(one));
    x += 8 * one;
  }
#endif
  return x;
}

void row(const std::string& what, const std::string& where, int threads, double cpb, double gbs,
         double read_gbs) {
  char c[32] = "", r[32] = "";
  if (cpb > 0) std::snprintf(c, sizeof c, "%.2f", cpb);
  if (read_gbs > 0) std::snprintf(r, sizeof r, "%.0f%%", 100.0 * gbs / read_gbs);
  std::printf("| %-28s | %-22s | %d | %6s | %6.2f | %5s | %s |\n", what.c_str(), where.c_str(),
              threads, c, gbs, r, load_avg().c_str());
  std::fflush(stdout);
}

struct Kernel {
  std::string name;
  // rows [0, rows) of (blocks, scales) -> out
  std::function<void(const uint8_t*, const uint8_t*, int64_t, float*)> run;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  double seconds = 1.0;
  int64_t pool_mb = 1536;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (a == "--pool-mb" && i + 1 < argc)
      pool_mb = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--seconds S] [--pool-mb MB]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || seconds <= 0 || pool_mb < 256) {
    std::fprintf(stderr, "bad arguments (threads >= 1, seconds > 0, pool-mb >= 256)\n");
    return 2;
  }
  gptoss::cpu_fast::SpinPool pool(threads);
  std::printf("threads %d, SIMD target %s, int8 %s, load at start %s\n\n", threads,
              gptoss::cpu_fast::simd_target(), gptoss::cpu_fast::mxfp4_i8_target(),
              load_avg().c_str());

  // Clock: best of `seconds` of 25M-iteration chains (200M dependent adds).
  constexpr int64_t kChain = 25'000'000;
  std::vector<double> ghz(static_cast<size_t>(threads) + 1, 0.0);
  std::vector<uint64_t> sink(static_cast<size_t>(threads));
  const double c1 = time_best(seconds, [&] { sink[0] = add_chain(kChain); });
  ghz[1] = 8.0 * kChain / c1 / 1e9;
  const double cn =
      time_best(seconds, [&] { pool.run(threads, [&](int t) { sink[t] = add_chain(kChain); }); });
  ghz[static_cast<size_t>(threads)] = 8.0 * kChain / cn / 1e9;
  std::printf(
      "core clock (dependent adds): 1 thread %.3f GHz, %d threads at once %.3f GHz each (%s)\n\n",
      ghz[1], threads, ghz[static_cast<size_t>(threads)], load_avg().c_str());

  std::vector<float> x(kCols), xp(kCols);
  for (int64_t i = 0; i < kCols; ++i)
    x[i] = 0.05f * static_cast<float>(std::sin(0.3 * static_cast<double>(i)));
  gptoss::cpu_fast::to_chunk_order(x.data(), kCols, xp.data());
  std::vector<Kernel> kernels;
  kernels.push_back({std::string("f32 (") + gptoss::cpu_fast::simd_target() + ")",
                     [&](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
                       gptoss::cpu_fast::gemv_mxfp4(xp.data(), b, s, kCols, rows, o);
                     }});
  const int64_t act_bytes = (gptoss::cpu_fast::mxfp4_i8_act_bytes(kCols) + 63) / 64 * 64;
  auto* act = static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>(act_bytes)));
  if (gptoss::cpu_fast::mxfp4_i8_usable()) {
    gptoss::cpu_fast::quantize_mxfp4_i8_act(x.data(), kCols, act);
    std::vector<std::string> targets = {gptoss::cpu_fast::mxfp4_i8_target()};
    if (targets[0] != "avx2") targets.push_back("avx2");
    for (const std::string& target : targets) {
      const uint8_t* acts[1] = {act};
      std::vector<uint8_t> b(16), sc(1, 127);
      float o = 0.0f;
      if (!gptoss::cpu_fast::gemv_mxfp4_i8_on(target.c_str(), acts, 1, 1, b.data(), sc.data(), 32,
                                              1, &o, 1))
        continue;
      for (const int parts : {1, 2}) {
        kernels.push_back(
            {"int8 x" + std::to_string(parts) + " (" + target + ")",
             [&, parts, target](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
               const uint8_t* acts[1] = {act};
               gptoss::cpu_fast::gemv_mxfp4_i8_on(target.c_str(), acts, 1, parts, b, s, kCols, rows,
                                                  o, 1);
             }});
      }
    }
  }

  std::printf(
      "| %-28s | %-22s | threads | cycles/block-row (per thread) | GB/s (all threads) | of read | "
      "load1 |\n",
      "kernel", "weights");
  std::printf("|---|---|---|---|---|---|---|\n");

  // Hot: each thread its own copy of `rows` rows, called `reps` times per sample.
  struct Hot {
    const char* where;
    int64_t rows, reps;
  };
  const Hot hots[] = {{"hot in L1 (8 rows)", 8, 2000}, {"hot in L2 (256 rows)", 256, 60}};
  std::vector<std::vector<uint8_t>> hb(static_cast<size_t>(threads)), hs(hb.size());
  std::vector<std::vector<float>> ho(hb.size());
  for (int t = 0; t < threads; ++t) {
    hb[t].resize(256 * kNb * 16);
    hs[t].resize(256 * kNb);
    ho[t].resize(256);
    fill_mxfp4(hb[t].data(), hb[t].size(), false, 0x9e3779b97f4a7c15ull + t);
    fill_mxfp4(hs[t].data(), hs[t].size(), true, 0x1234567ull + t);
  }
  for (const Kernel& k : kernels) {
    for (const Hot& h : hots) {
      for (const int n : {1, threads}) {
        if (n == 1 && h.rows == 0) continue;
        const double s = time_best(seconds, [&] {
          pool.run(n, [&](int t) {
            for (int64_t r = 0; r < h.reps; ++r)
              k.run(hb[t].data(), hs[t].data(), h.rows, ho[t].data());
          });
        });
        const double blocks = static_cast<double>(h.reps * h.rows * kNb);
        row(k.name, h.where, n, s * ghz[static_cast<size_t>(n)] * 1e9 / blocks,
            n * blocks * 17.0 / s / 1e9, 0.0);
        if (threads == 1) break;
      }
    }
  }

  // DRAM: a pool of rows (blocks then scales, as the checkpoint stores them), far above the LLC's
  // share a VM sees; each thread streams its contiguous share in 64-row calls.
  const int64_t pool_rows = pool_mb * 1000000 / kRowBytes / 64 * 64;
  const size_t pb = static_cast<size_t>(pool_rows * kNb * 16),
               ps = static_cast<size_t>(pool_rows * kNb);
  auto* mem = static_cast<uint8_t*>(
      mmap(nullptr, pb + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) {
    std::fprintf(stderr, "cannot map %zu bytes\n", pb + ps);
    return 1;
  }
  fill_mxfp4(mem, pb, false, 0xabcdefull);
  fill_mxfp4(mem + pb, ps, true, 0x777ull);
  const double pool_bytes = static_cast<double>(pb + ps);
  std::vector<double> read(static_cast<size_t>(threads) + 1, 0.0);
  for (const int n : {1, threads}) {
    const double s = time_best(seconds, [&] {
      pool.run(n, [&](int t) {
        const size_t w = (pb + ps) / 8, a = w * t / n, e = w * (t + 1) / n;
        sink[t] = sum_u64(reinterpret_cast<const uint64_t*>(mem) + a, e - a);
      });
    });
    read[static_cast<size_t>(n)] = pool_bytes / s / 1e9;
    row("plain read (uint64 sums)", "DRAM " + std::to_string(pool_mb) + " MB", n, 0.0, read[n],
        0.0);
    if (threads == 1) break;
  }
  for (const Kernel& k : kernels) {
    for (const int n : {1, threads}) {
      const double s = time_best(seconds, [&] {
        pool.run(n, [&](int t) {
          const int64_t r0 = pool_rows / 64 * t / n * 64, r1 = pool_rows / 64 * (t + 1) / n * 64;
          for (int64_t r = r0; r < r1; r += 64)
            k.run(mem + r * kNb * 16, mem + pb + r * kNb, 64, ho[t].data());
        });
      });
      const double blocks = static_cast<double>(pool_rows * kNb) / n;
      row(k.name, "DRAM " + std::to_string(pool_mb) + " MB, 64-row calls", n,
          s * ghz[static_cast<size_t>(n)] * 1e9 / blocks, pool_bytes / s / 1e9,
          read[static_cast<size_t>(n)]);
      if (threads == 1) break;
    }
  }
  munmap(mem, pb + ps);
  std::free(act);
  uint64_t all = 0;
  for (const uint64_t v : sink) all += v;
  if (all == 42) std::printf("\n");
  return 0;
}
