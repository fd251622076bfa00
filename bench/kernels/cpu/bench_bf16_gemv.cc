// The decode-time bf16 GEMV (attention projections, unembedding) against the read bandwidth
// measured in the same process: which kernel variant, prefetch distance, page size and thread split
// streams closest to a plain read. Weights of the unembedding's shape (201088 x 2880 bf16, 1.16 GB,
// far beyond the LLC) in three kinds of memory: anonymous with 4 KB pages (MADV_NOHUGEPAGE),
// anonymous with transparent huge pages (MADV_HUGEPAGE), and, with --file, a read-only private
// mapping of a tensor in a file, as the model maps its safetensors (page cache pages; warm them
// first). Every variant's output is compared bit for bit with gemv_bf16's (all variants compute the
// same sums) and the first with the exact backend's dot products.
//
//   gptoss-bench-bf16-gemv [--threads N] [--seconds S] [--rows R] [--file PATH --offset BYTES]
//                          [--only anon4k|thp|file]
//
// Lines: ms per call, GB/s of weights read, the ratio to the in-process read bandwidth (all threads,
// the SIMD dot kernel over 1 GiB of 4 KB pages), the 1-minute load average. The page-size lines of /proc/self/smaps for each buffer say what the kernel mapped.
#include <fcntl.h>
#include <cerrno>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "backend/cpu_fast/kernels_fast.h"
#include "core/dtypes.h"
#include "bench_util.h"

namespace {

using gptoss::bench::Clock;
using gptoss::bench::load_avg;
using gptoss::bench::smaps_pages;
using gptoss::bench::time_best;
constexpr int64_t kCols = 2880;

// Runs body(t) on `threads` threads (the caller is thread 0) and joins them.
void on_threads(int threads, const std::function<void(int)>& body) {
  std::vector<std::thread> ts;
  for (int t = 1; t < threads; ++t) ts.emplace_back(body, t);
  body(0);
  for (auto& t : ts) t.join();
}

double g_read_gbs = 0.0;

void report(const std::string& what, double bytes, double sec, const std::string& note = "") {
  gptoss::bench::report_row(what, bytes, sec, g_read_gbs, note);
}

struct Variant {
  const char* name;
  int64_t ahead;
  int64_t tile_rows;  // 0: L1 buffer
  int hint;           // prefetch locality: 3 = T0 (L1), 2 = T1 (L2), 0 = NTA
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  double seconds = 1.0;
  int64_t rows = 201088;
  std::string file, only;
  long long offset = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (a == "--rows" && i + 1 < argc) rows = std::atoll(argv[++i]);
    else if (a == "--file" && i + 1 < argc) file = argv[++i];
    else if (a == "--offset" && i + 1 < argc) offset = std::atoll(argv[++i]);
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: %s [--threads N] [--seconds S] [--rows R] [--file PATH --offset BYTES] "
                   "[--only anon4k|thp|file]\n",
                   argv[0]);
      return 2;
    }
  }
  if (threads < 1 || rows < 64 || (!file.empty() && offset < 0)) {
    std::fprintf(stderr, "bad arguments (threads >= 1, rows >= 64, --file needs --offset)\n");
    return 2;
  }
  const size_t wbytes = static_cast<size_t>(rows) * kCols * 2;
  std::printf("threads %d, SIMD target %s, weights %lld x %lld bf16 (%.3f GB), load at start %s\n\n", threads,
              gptoss::cpu_fast::simd_target(), static_cast<long long>(rows), static_cast<long long>(kCols),
              static_cast<double>(wbytes) / 1e9, load_avg().c_str());
  std::printf("| %-62s | %8s | %6s | %6s | %-8s | %s |\n|---|---|---|---|---|---|\n", "what", "ms/call", "GB/s",
              "of read", "bits", "load1");

  // The in-process read bandwidth: the SIMD dot kernel (runtime-dispatched, as wide as the GEMVs;
  // read_bandwidth.c's integer loop built here without -march, 16-byte vectors, read only 16.4 GB/s
  // where the same loop built with -march=native read 25.3) reading
  // 1 GiB of f32 ones, static split, over 4 KB pages (as bench/peers/read_bandwidth.c reads) and
  // over transparent huge pages.
  for (const bool huge : {false, true}) {
    const size_t n = (size_t{1} << 30) / 4;
    auto* buf = static_cast<float*>(mmap(nullptr, n * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (buf == MAP_FAILED) return 1;
    madvise(buf, n * 4, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    for (size_t i = 0; i < n; ++i) buf[i] = 1.0f;
    std::vector<float> sums(static_cast<size_t>(threads));
    auto read_all = [&](int nt) {
      on_threads(nt, [&](int t) {
        const size_t b = n * t / nt, e = n * (t + 1) / nt;
        sums[t] = gptoss::cpu_fast::dot_f32(buf + b, buf + b, static_cast<int64_t>(e - b));
      });
      if (!(sums[0] > 0.0f)) std::abort();
    };
    const double s = time_best(seconds, [&] { read_all(threads); });
    if (!huge) g_read_gbs = static_cast<double>(n * 4) / s / 1e9;
    report(huge ? "memory read, all threads (SIMD dot, 1 GiB, THP)" : "memory read, all threads (SIMD dot, 1 GiB, 4 KB pages)",
           static_cast<double>(n * 4), s);
    if (!huge) {
      const double s1 = time_best(seconds, [&] { read_all(1); });
      report("memory read, 1 thread (4 KB pages)", static_cast<double>(n * 4), s1);
    }
    munmap(buf, n * 4);
  }

  std::vector<float> x(kCols), xp(kCols), want(static_cast<size_t>(rows)), got(want.size());
  for (int64_t i = 0; i < kCols; ++i) x[i] = std::sin(0.1f * static_cast<float>(i));
  gptoss::cpu_fast::to_chunk_order(x.data(), kCols, xp.data());
  auto fast = gptoss::make_cpu_fast_backend(threads);

  const Variant variants[] = {
      {"L1 buffer (previous kernel), no prefetch", 0, 0, 3},
      {"registers, 4 rows/tile, no prefetch", 0, 4, 3},
      {"registers, 1 row/tile, no prefetch", 0, 1, 3},
      {"registers, 4 rows/tile, prefetch T0 4 steps", 4, 4, 3},
      {"registers, 4 rows/tile, prefetch T0 8 steps", 8, 4, 3},
      {"registers, 4 rows/tile, prefetch T0 16 steps", 16, 4, 3},
      {"registers, 4 rows/tile, prefetch T0 32 steps", 32, 4, 3},
      {"registers, 4 rows/tile, prefetch T0 64 steps", 64, 4, 3},
      {"registers, 4 rows/tile, prefetch T1 16 steps", 16, 4, 2},
      {"registers, 4 rows/tile, prefetch T1 32 steps", 32, 4, 2},
      {"registers, 4 rows/tile, prefetch T1 64 steps", 64, 4, 2},
      {"registers, 4 rows/tile, prefetch NTA 16 steps", 16, 4, 0},
      {"registers, 8 rows/tile, prefetch T0 8 steps", 8, 8, 3},
      {"registers, 8 rows/tile, prefetch T0 16 steps", 16, 8, 3},
      {"registers, 8 rows/tile, prefetch T1 32 steps", 32, 8, 2},
      {"registers, 1 row/tile, prefetch T0 16 steps", 16, 1, 3},
  };

  // One kind of memory: every variant on all threads (contiguous halves, one call each), the
  // default kernel on 1 thread, and the backend's matmul (the pool's dynamic row tasks, as decode).
  auto run_kind = [&](const std::string& kind, const uint16_t* w) {
    std::printf("| **%s**: %s | | | | | |\n", kind.c_str(), smaps_pages(w).c_str());
    gptoss::cpu_fast::gemv_bf16(xp.data(), w, kCols, kCols, rows, want.data());
    double worst = 0.0;
    for (int64_t r = 0; r < rows; r += rows / 97) {
      const float e = gptoss::cpu::dot_f32(x.data(), w + r * kCols, gptoss::ElemType::kBF16, kCols);
      double mag = 0.0;
      for (int64_t i = 0; i < kCols; ++i) mag += std::fabs(x[i] * gptoss::bf16_to_f32(w[r * kCols + i]));
      worst = std::max(worst, std::fabs(e - want[r]) / std::max(mag, 1e-30));
    }
    std::printf("| gemv_bf16 vs exact dot, 98 rows: max |diff| / sum |x w| = %.1e | | | | | |\n", worst);
    for (const Variant& v : variants) {
      const double s = time_best(seconds, [&] {
        on_threads(threads, [&](int t) {
          const int64_t r0 = rows / 4 * t / threads * 4, r1 = t + 1 == threads ? rows : rows / 4 * (t + 1) / threads * 4;
          gptoss::cpu_fast::gemv_bf16_lab(xp.data(), w + r0 * kCols, kCols, kCols, r1 - r0, got.data() + r0, v.ahead,
                                          v.tile_rows, v.hint);
        });
      });
      report(std::string(v.name), static_cast<double>(wbytes), s, got == want ? "same" : "DIFFER");
    }
    const double s1 = time_best(seconds, [&] { gptoss::cpu_fast::gemv_bf16(xp.data(), w, kCols, kCols, rows, got.data()); });
    report("gemv_bf16 (default variant), 1 thread", static_cast<double>(wbytes), s1, got == want ? "same" : "DIFFER");
    gptoss::Weight ww;
    ww.buf.data = const_cast<uint16_t*>(w);
    ww.rows = rows;
    ww.cols = kCols;
    const double sp = time_best(seconds, [&] { fast->f32_matmul(x.data(), 1, ww, nullptr, got.data()); });
    report("cpu-fast f32_matmul T=1 (pool, dynamic row tasks)", static_cast<double>(wbytes), sp,
           got == want ? "same" : "DIFFER");
  };

  auto fill = [&](uint16_t* w) {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < wbytes / 2; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      // |w| in [2^-8, 2^-6): finite, no denormals.
      w[i] = static_cast<uint16_t>((s & 0x807f) | ((0x77 + ((s >> 8) & 1)) << 7));
    }
  };
  for (const bool huge : {false, true}) {
    const std::string kind = huge ? "thp" : "anon4k";
    if (!only.empty() && only != kind) continue;
    void* p = mmap(nullptr, wbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    madvise(p, wbytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    fill(static_cast<uint16_t*>(p));
    run_kind(huge ? "anonymous, MADV_HUGEPAGE" : "anonymous, 4 KB pages (MADV_NOHUGEPAGE)", static_cast<uint16_t*>(p));
    munmap(p, wbytes);
  }
  if (!file.empty() && (only.empty() || only == "file")) {
    const int fd = open(file.c_str(), O_RDONLY);
    if (fd < 0) {
      std::fprintf(stderr, "%s: %s\n", file.c_str(), std::strerror(errno));
      return 1;
    }
    const off_t size = lseek(fd, 0, SEEK_END);
    if (offset % 2 != 0 || static_cast<size_t>(offset) + wbytes > static_cast<size_t>(size)) {
      std::fprintf(stderr, "%s: %zu bytes at offset %lld do not fit in its %lld bytes\n", file.c_str(), wbytes, offset,
                   static_cast<long long>(size));
      return 1;
    }
    void* p = mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return 1;
    const auto* w = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(p) + offset);
    // The first pass faults the pages in (page cache must be warm for a memory-speed number).
    const auto t0 = Clock::now();
    gptoss::cpu_fast::gemv_bf16(xp.data(), w, kCols, kCols, rows, got.data());
    std::printf("| file mapping (as the model maps its weights), first pass %.1f ms | | | | | |\n",
                1e3 * std::chrono::duration<double>(Clock::now() - t0).count());
    run_kind("file mapping " + file, w);
    munmap(p, static_cast<size_t>(size));
  }
  return 0;
}
