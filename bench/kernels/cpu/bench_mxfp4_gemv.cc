// The decode-time MXFP4 expert GEMV against the read bandwidth measured in the same process: which
// software prefetch, which split of the rows between the threads and which kind of memory streams
// closest to a plain read. One "token" is what decode reads of the experts: for each of 24 layers,
// gate_up [5760, 2880] of 4 experts, then (after all threads are done, as the model's SwiGLU needs
// every row) down [2880, 2880] of the same 4, blocks and scales in separate tensors as the
// checkpoint stores them (two streams per row), 1.27 GB in all. Experts are picked per token and
// layer (4 of the pool, varying), so no token finds the previous one's weights in the LLC.
//
// Memory: anonymous with 4 KB pages (MADV_NOHUGEPAGE), anonymous with transparent huge pages
// (MADV_HUGEPAGE), both 24 layers x 8 experts of random bytes (2.4 GB); with --model DIR the
// checkpoint's own expert tensors through a read-only private mapping of its safetensors, as the
// model maps them (warm the page cache first), after the madvise --advise names.
//
//   gptoss-bench-mxfp4-gemv [--threads N] [--seconds S] [--model DIR] [--advise none|hugepage|collapse]
//                           [--only anon4k|thp|file] [--ahead A] [--evict]
//
// Every variant's outputs (one token) are compared bit for bit with gemv_mxfp4's.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu_fast/kernels_fast.h"
#include "backend/cpu_fast/kernels_mxfp4_i8.h"
#include "backend/cpu_fast/spin_pool.h"
#include "bench_util.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

namespace {

using gptoss::bench::Clock;
using gptoss::bench::load_avg;
using gptoss::bench::smaps_pages;
using gptoss::bench::time_best;
constexpr int64_t kDefault = -1000;  // run_token's `ahead` for gemv_mxfp4 itself
constexpr int64_t kInt8 = -1001;     // for gemv_mxfp4_i8 (2 activation terms, its own prefetch)
constexpr int64_t kHidden = 2880, kGateUp = 5760, kNb = kHidden / 32, kLayers = 24, kTopK = 4;

double g_read_gbs = 0.0;

void report(const std::string& what, double bytes, double sec, const std::string& note = "") {
  gptoss::bench::report_row(what, bytes, sec, g_read_gbs, note);
}

// One layer's expert tensors: blocks [experts, rows, 90, 16] and scales [experts, rows, 90].
struct Matrix {
  const uint8_t* blocks = nullptr;
  const uint8_t* scales = nullptr;
  int64_t experts = 0, rows = 0;
};
struct Layer {
  Matrix gate_up, down;
};

// A piece of work: rows [r0, r1) of expert slot e (0..3) of the current matrix.
struct Piece {
  int e;
  int64_t r0, r1;
};

// How the 4 experts' rows become pool tasks (each task a list of pieces).
using Split = std::function<std::vector<std::vector<Piece>>(int64_t rows, int threads)>;

std::vector<std::vector<Piece>> split_tiles(int64_t rows, int64_t tile) {
  std::vector<std::vector<Piece>> t;
  for (int e = 0; e < kTopK; ++e) {
    for (int64_t r = 0; r < rows; r += tile) t.push_back({{e, r, std::min(rows, r + tile)}});
  }
  return t;
}
std::vector<std::vector<Piece>> split_parts(int64_t rows, int parts) {
  std::vector<std::vector<Piece>> t;
  for (int e = 0; e < kTopK; ++e) {
    for (int p = 0; p < parts; ++p) t.push_back({{e, rows / 4 * p / parts * 4, rows / 4 * (p + 1) / parts * 4}});
  }
  return t;
}
// The 4 experts' rows as one list, largest first: each task 1 / (2 * threads) of the rows left (a
// multiple of 4, at least 64), a task crossing an expert's end continues in the next expert.
std::vector<std::vector<Piece>> split_largest_first(int64_t rows, int threads) {
  std::vector<std::vector<Piece>> t;
  const int64_t total = kTopK * rows;
  for (int64_t g = 0; g < total;) {
    const int64_t n = std::min(total - g, std::max<int64_t>(64, (total - g) / (2 * threads) / 4 * 4));
    std::vector<Piece> task;
    for (int64_t a = g; a < g + n;) {
      const int e = static_cast<int>(a / rows);
      const int64_t r0 = a % rows, r1 = std::min(rows, r0 + (g + n - a));
      task.push_back({e, r0, r1});
      a += r1 - r0;
    }
    t.push_back(task);
    g += n;
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  double seconds = 2.0;
  int64_t pick_ahead = 32;
  std::string model, advise = "none", only;
  bool evict = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (a == "--model" && i + 1 < argc) model = argv[++i];
    else if (a == "--advise" && i + 1 < argc) advise = argv[++i];
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a == "--evict") evict = true;
    else if (a == "--ahead" && i + 1 < argc) pick_ahead = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--threads N] [--seconds S] [--model DIR] [--advise none|hugepage|collapse] "
                   "[--only anon4k|thp|file] [--ahead A] [--evict]\n",
                   argv[0]);
      return 2;
    }
  }
  if (threads < 1 || (advise != "none" && advise != "hugepage" && advise != "collapse")) {
    std::fprintf(stderr, "bad arguments (threads >= 1; --advise none, hugepage or collapse)\n");
    return 2;
  }
  const double token_bytes = kLayers * kTopK * (kGateUp + kHidden) * kNb * 17.0;
  std::printf("threads %d, SIMD target %s, one token = 24 layers x 4 experts (gate_up 5760 + down 2880 rows of "
              "2880 MXFP4) = %.3f GB, load at start %s\n\n",
              threads, gptoss::cpu_fast::simd_target(), token_bytes / 1e9, load_avg().c_str());
  std::printf("| %-62s | %8s | %6s | %6s | %-8s | %s |\n|---|---|---|---|---|---|\n", "what", "ms/token", "GB/s",
              "of read", "bits", "load1");
  // In-process read bandwidth: the SIMD dot kernel over 1 GiB, static split, 4 KB pages and THP.
  {
    const size_t n = (size_t{1} << 30) / 4;
    for (const bool huge : {false, true}) {
      auto* buf = static_cast<float*>(mmap(nullptr, n * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      if (buf == MAP_FAILED) return 1;
      madvise(buf, n * 4, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
      std::fill(buf, buf + n, 1.0f);
      gptoss::cpu_fast::SpinPool pool(threads);
      std::vector<float> sums(static_cast<size_t>(threads));
      const double s = time_best(seconds / 2, [&](int) {
        pool.run(threads, [&](int t) {
          sums[t] = gptoss::cpu_fast::dot_f32(buf + n * t / threads, buf + n * t / threads,
                                              static_cast<int64_t>(n * (t + 1) / threads - n * t / threads));
        });
      });
      if (!huge) g_read_gbs = static_cast<double>(n * 4) / s / 1e9;
      report(huge ? "memory read (SIMD dot, 1 GiB, THP)" : "memory read (SIMD dot, 1 GiB, 4 KB pages)",
             static_cast<double>(n * 4), s);
      munmap(buf, n * 4);
    }
  }

  std::vector<float> x(kHidden), xp(kHidden);
  for (int64_t i = 0; i < kHidden; ++i) x[i] = 0.05f * static_cast<float>(std::sin(0.3 * static_cast<double>(i)));
  gptoss::cpu_fast::to_chunk_order(x.data(), kHidden, xp.data());
  gptoss::cpu_fast::SpinPool pool(threads);
  const bool i8 = gptoss::cpu_fast::mxfp4_i8_usable();
  auto* act = static_cast<uint8_t*>(std::aligned_alloc(64, (gptoss::cpu_fast::mxfp4_i8_act_bytes(kHidden) + 63) / 64 * 64));
  if (i8) gptoss::cpu_fast::quantize_mxfp4_i8_act(x.data(), kHidden, act);
  // Outputs of one token: per layer 4 x 5760 then 4 x 2880 (the down GEMV reads xp too: only the
  // weights' streaming is measured here; the backend's ops add SwiGLU and the weighted sum).
  const size_t out_per_layer = kTopK * (kGateUp + kHidden);
  std::vector<float> want(kLayers * out_per_layer), got(want.size());

  auto run_token = [&](const std::vector<Layer>& layers, int token, int64_t ahead,
                       const std::vector<std::vector<Piece>>& tasks_gu, const std::vector<std::vector<Piece>>& tasks_dn,
                       float* out) {
    for (int64_t l = 0; l < kLayers; ++l) {
      const Layer& L = layers[static_cast<size_t>(l) % layers.size()];
      int ex[kTopK];
      // 4 distinct experts of the pool, varying with token and layer.
      const int64_t pool_n = L.gate_up.experts;
      const int64_t first = (token * 7 + l * 3) % pool_n;
      for (int j = 0; j < kTopK; ++j) ex[j] = static_cast<int>((first + j * (pool_n / kTopK)) % pool_n);
      for (const bool gu : {true, false}) {
        const Matrix& m = gu ? L.gate_up : L.down;
        const auto& tasks = gu ? tasks_gu : tasks_dn;
        float* o = out + l * out_per_layer + (gu ? 0 : kTopK * kGateUp);
        pool.run(static_cast<int>(tasks.size()), [&](int i) {
          for (const Piece& p : tasks[static_cast<size_t>(i)]) {
            const int64_t row = ex[p.e] * m.rows + p.r0;
            const uint8_t* b = m.blocks + row * kNb * 16;
            const uint8_t* sc = m.scales + row * kNb;
            if (ahead == kInt8) {
              const uint8_t* acts[1] = {act};
              gptoss::cpu_fast::gemv_mxfp4_i8(acts, 1, 2, b, sc, kHidden, p.r1 - p.r0, o + p.e * m.rows + p.r0, 1);
            } else if (ahead == kDefault) {
              gptoss::cpu_fast::gemv_mxfp4(xp.data(), b, sc, kHidden, p.r1 - p.r0, o + p.e * m.rows + p.r0);
            } else {
              gptoss::cpu_fast::gemv_mxfp4_lab(xp.data(), b, sc, kHidden, p.r1 - p.r0, o + p.e * m.rows + p.r0, ahead);
            }
          }
        });
      }
    }
  };

  auto run_kind = [&](const std::string& kind, const std::vector<Layer>& layers) {
    std::printf("| **%s**: %s | | | | | |\n", kind.c_str(), smaps_pages(layers[0].gate_up.blocks).c_str());
    const auto t64g = split_tiles(kGateUp, 64), t64d = split_tiles(kHidden, 64);
    // Reference: gemv_mxfp4 itself (kDefault).
    run_token(layers, 0, kDefault, t64g, t64d, want.data());
    struct V {
      std::string name;
      int64_t ahead;
      std::vector<std::vector<Piece>> gu, dn;
    };
    std::vector<V> vs;
    for (const int64_t a : {int64_t{-1}, int64_t{0}, int64_t{8}, int64_t{16}, int64_t{32}, int64_t{64}, int64_t{128}}) {
      vs.push_back({"64-row tasks (as the backend), ahead " + std::to_string(a), a, t64g, t64d});
    }
    for (const int64_t a : {int64_t{-1}, pick_ahead}) {
      const std::string tag = ", ahead " + std::to_string(a);
      vs.push_back({"256-row tasks" + tag, a, split_tiles(kGateUp, 256), split_tiles(kHidden, 256)});
      vs.push_back({"each expert in `threads` parts" + tag, a, split_parts(kGateUp, threads), split_parts(kHidden, threads)});
      vs.push_back({"one expert per task" + tag, a, split_parts(kGateUp, 1), split_parts(kHidden, 1)});
      vs.push_back({"largest first over the 4 experts" + tag, a, split_largest_first(kGateUp, threads),
                    split_largest_first(kHidden, threads)});
    }
    if (i8) {
      vs.push_back({"int8 x2 (opt-in kernel), 64-row tasks", kInt8, t64g, t64d});
      vs.push_back({"int8 x2 (opt-in kernel), largest first", kInt8, split_largest_first(kGateUp, threads),
                    split_largest_first(kHidden, threads)});
    }
    for (const V& v : vs) {
      run_token(layers, 0, v.ahead, v.gu, v.dn, got.data());
      const bool same = v.ahead == kInt8 || got == want;
      const double s = time_best(seconds, [&](int it) { run_token(layers, it + 1, v.ahead, v.gu, v.dn, got.data()); });
      report(v.name, token_bytes, s, v.ahead == kInt8 ? "int8" : same ? "same" : "DIFFER");
    }
  };

  auto fill = [](uint8_t* p, size_t n, bool scales) {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      p[i] = scales ? static_cast<uint8_t>(118 + (s & 3)) : static_cast<uint8_t>(s);
    }
  };
  for (const bool huge : {false, true}) {
    const std::string kind = huge ? "thp" : "anon4k";
    if (!only.empty() && only != kind) continue;
    constexpr int64_t kPool = 8;  // experts per layer: 24 x 8 x 13.2 MB = 2.4 GB, 8x the LLC
    const size_t gu_b = kPool * kGateUp * kNb * 16, gu_s = kPool * kGateUp * kNb;
    const size_t dn_b = kPool * kHidden * kNb * 16, dn_s = kPool * kHidden * kNb;
    const size_t per = gu_b + gu_s + dn_b + dn_s, bytes = per * kLayers;
    auto* p = static_cast<uint8_t*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) return 1;
    madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    std::vector<Layer> layers(kLayers);
    for (int64_t l = 0; l < kLayers; ++l) {
      uint8_t* q = p + l * per;
      fill(q, gu_b, false);
      fill(q + gu_b, gu_s, true);
      fill(q + gu_b + gu_s, dn_b, false);
      fill(q + gu_b + gu_s + dn_b, dn_s, true);
      layers[l].gate_up = {q, q + gu_b, kPool, kGateUp};
      layers[l].down = {q + gu_b + gu_s, q + gu_b + gu_s + dn_b, kPool, kHidden};
    }
    run_kind(huge ? "anonymous, MADV_HUGEPAGE" : "anonymous, 4 KB pages", layers);
    munmap(p, bytes);
  }
  if (!model.empty() && (only.empty() || only == "file")) {
    std::vector<Layer> layers(kLayers);
    std::vector<std::pair<void*, size_t>> maps;
    for (int f = 0;; ++f) {
      char name[64];
      std::snprintf(name, sizeof name, "/model-%05d-of-00002.safetensors", f);
      const std::string path = model + name;
      const int fd = open(path.c_str(), O_RDONLY);
      if (fd < 0) break;
      const off_t size = lseek(fd, 0, SEEK_END);
      // --evict: drop the file's cached pages first (those no process maps), so that the first pass
      // reads them again through this mapping, in folios the madvise chose.
      if (evict) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      void* m = mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
      close(fd);
      if (m == MAP_FAILED) return 1;
      maps.emplace_back(m, static_cast<size_t>(size));
      const auto* base = static_cast<const uint8_t*>(m);
      uint64_t hlen = 0;
      std::memcpy(&hlen, base, 8);
      const auto header = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(base + 8), hlen));
      const uint8_t* data = base + 8 + hlen;
      for (int64_t l = 0; l < kLayers; ++l) {
        const std::string pre = "model.layers." + std::to_string(l) + ".mlp.experts.";
        auto at = [&](const std::string& n, const uint8_t** dst, int64_t* experts) {
          if (!header.contains(pre + n)) return;
          const auto& t = header[pre + n];
          const uint8_t* ptr = data + t["data_offsets"][0].get<int64_t>();
          *dst = ptr;
          if (experts) *experts = t["shape"][0].get<int64_t>();
          if (advise != "none") {
            const auto a0 = reinterpret_cast<uintptr_t>(ptr) & ~uintptr_t{4095};
            const auto a1 = reinterpret_cast<uintptr_t>(data + t["data_offsets"][1].get<int64_t>());
            if (madvise(reinterpret_cast<void*>(a0), a1 - a0, advise == "hugepage" ? MADV_HUGEPAGE : MADV_COLLAPSE) != 0) {
              std::printf("| madvise(%s) of %s: %s | | | | | |\n", advise.c_str(), (pre + n).c_str(), std::strerror(errno));
            }
          }
        };
        at("gate_up_proj_blocks", &layers[l].gate_up.blocks, &layers[l].gate_up.experts);
        at("gate_up_proj_scales", &layers[l].gate_up.scales, nullptr);
        at("down_proj_blocks", &layers[l].down.blocks, &layers[l].down.experts);
        at("down_proj_scales", &layers[l].down.scales, nullptr);
        layers[l].gate_up.rows = kGateUp;
        layers[l].down.rows = kHidden;
      }
    }
    for (const Layer& L : layers) {
      if (!L.gate_up.blocks || !L.gate_up.scales || !L.down.blocks || !L.down.scales) {
        std::fprintf(stderr, "%s: expert tensors of 24 layers not found in model-0000N-of-00002.safetensors\n",
                     model.c_str());
        return 1;
      }
    }
    // A first pass faults every page of the expert tensors in (the page cache should be warm).
    const auto t0 = Clock::now();
    uint64_t touch = 0;
    for (const Layer& L : layers) {
      for (const Matrix* m : {&L.gate_up, &L.down}) {
        const int64_t nrows = m->experts * m->rows;
        for (int64_t o = 0; o < nrows * kNb * 16; o += 4096) touch += m->blocks[o];
        for (int64_t o = 0; o < nrows * kNb; o += 4096) touch += m->scales[o];
      }
    }
    if (touch == 1) std::printf("\n");
    const auto t64g = split_tiles(kGateUp, 64), t64d = split_tiles(kHidden, 64);
    for (int it = 0; it < 8; ++it) run_token(layers, it, -1, t64g, t64d, got.data());
    std::printf("| file mapping, advise %s, first 8 tokens %.1f ms | | | | | |\n", advise.c_str(),
                1e3 * std::chrono::duration<double>(Clock::now() - t0).count());
    run_kind("model's expert tensors (file mapping)", layers);
    for (const auto& [m, n] : maps) munmap(m, n);
  }
  return 0;
}
