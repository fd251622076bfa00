// MXFP4 x int8 GEMM lab (kernels_mxfp4_i8.h, gemm_mxfp4_i8): one expert's gate_up of gpt-oss-20b
// (5760 x 2880 MXFP4 rows) against P tokens on one thread, in 32-row tiles as cpu-fast's
// run_experts calls the kernels for prefill (the tile's codes stay in L1/L2: the arithmetic, not
// the memory). Lines: the f32 path (tile decoded to f32 in chunk order, gemm_f32 over up to 64
// tokens), the int8 GEMV over token pairs (gemv_mxfp4_i8 with T = 2: what run_experts did for
// 1-2 token calls), and the int8 GEMM; each with best time per call, GFLOP/s (2 * P * rows * cols /
// s), and the worst error of 64 sampled outputs against float64 with the unquantized activations,
// relative to sum |x w|. The int8 lines exclude the activation quantization (timed on its own
// line, once per token per op in the backend). `bits` checks that every GEMM output equals the
// GEMV's.
//
//   gptoss-bench-mxfp4-i8-gemm [--seconds S] [--parts 1|2]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu_fast/kernels_fast.h"
#include "backend/cpu_fast/kernels_mxfp4_i8.h"
#include "bench_util.h"
#include "core/dtypes.h"

namespace {

using namespace gptoss;

constexpr int64_t kRows = 5760, kCols = 2880, kNb = kCols / 32, kTile = 32;

void report(const std::string& name, double flops, double s, const std::string& err) {
  char gf[32] = "-";  // flops 0: a preparation step, no GFLOP/s
  if (flops > 0) std::snprintf(gf, sizeof gf, "%.1f", flops / s * 1e-9);
  std::printf("| %-58s | %9.3f | %8s | %-9s | %s |\n", name.c_str(), s * 1e3, gf, err.c_str(),
              bench::load_avg().c_str());
  std::fflush(stdout);
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2g", v);
  return b;
}

struct Aligned {
  explicit Aligned(size_t n)
      : p(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64))) {}
  ~Aligned() { std::free(p); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  uint8_t* p;
};

void expert_gate_up(std::mt19937& rng, int64_t P, int parts, double seconds) {
  std::vector<uint8_t> blocks(kRows * kCols / 2), scales(kRows * kNb);
  for (auto& b : blocks) b = static_cast<uint8_t>(rng());
  for (auto& s : scales) s = static_cast<uint8_t>(118 + rng() % 4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(P * kCols);
  for (auto& v : x) v = nd(rng);
  const double flops = 2.0 * P * kRows * kCols;
  auto sampled_error = [&](const std::vector<float>& got) {
    auto row = [&](int64_t r, float* w) {
      for (int64_t b = 0; b < kNb; ++b)
        mxfp4_block_to_f32(&blocks[(r * kNb + b) * 16], scales[r * kNb + b], &w[b * 32]);
    };
    return fmt(bench::sampled_error(x, P, kCols, row, got, kRows));
  };
  const std::string shape = "gate_up 5760x2880, P=" + std::to_string(P);
  std::vector<float> out(P * kRows);

  // f32: as run_experts' f32 branch.
  std::vector<float> xp(P * kCols), panel(kTile * kCols);
  std::vector<const float*> xps(P);
  for (int64_t t = 0; t < P; ++t) {
    cpu_fast::to_chunk_order(x.data() + t * kCols, kCols, xp.data() + t * kCols);
    xps[t] = xp.data() + t * kCols;
  }
  double s = bench::time_best(seconds, [&] {
    for (int64_t r0 = 0; r0 < kRows; r0 += kTile) {
      cpu_fast::mxfp4_rows_to_f32(blocks.data() + r0 * kNb * 16, scales.data() + r0 * kNb, kCols,
                                  kTile, panel.data());
      for (int64_t p0 = 0; p0 < P; p0 += 64) {
        cpu_fast::gemm_f32(xps.data() + p0, std::min<int64_t>(64, P - p0), panel.data(), kCols,
                           kTile, kCols, out.data() + p0 * kRows + r0, kRows);
      }
    }
  });
  report(shape + ", f32 (decode + gemm_f32)", flops, s, sampled_error(out));

  const int64_t ab = cpu_fast::mxfp4_i8_act_bytes(kCols);
  Aligned act(static_cast<size_t>(P * ab));
  std::vector<const uint8_t*> acts(P);
  for (int64_t t = 0; t < P; ++t) acts[t] = act.p + t * ab;
  s = bench::time_best(seconds, [&] {
    for (int64_t t = 0; t < P; ++t)
      cpu_fast::quantize_mxfp4_i8_act(x.data() + t * kCols, kCols, act.p + t * ab);
  });
  report(shape + ", int8 activation quantization", 0, s, "-");

  std::vector<float> gemv(P * kRows);
  s = bench::time_best(seconds, [&] {
    for (int64_t r0 = 0; r0 < kRows; r0 += kTile) {
      for (int64_t t = 0; t < P; t += 2) {
        cpu_fast::gemv_mxfp4_i8(acts.data() + t, static_cast<int>(std::min<int64_t>(2, P - t)),
                                parts, blocks.data() + r0 * kNb * 16, scales.data() + r0 * kNb,
                                kCols, kTile, gemv.data() + t * kRows + r0, kRows);
      }
    }
  });
  report(shape + ", int8 x" + std::to_string(parts) + " GEMV, token pairs", flops, s,
         sampled_error(gemv));

  const int64_t gb = cpu_fast::mxfp4_i8_gemm_act_bytes(kCols, parts);
  Aligned gact(static_cast<size_t>(P * gb));
  std::vector<const uint8_t*> gacts(P);
  s = bench::time_best(seconds, [&] {
    for (int64_t t = 0; t < P; ++t)
      cpu_fast::pack_mxfp4_i8_gemm_act(acts[t], kCols, parts, gact.p + t * gb);
  });
  report(shape + ", int8 GEMM activation packing", 0, s, "-");
  for (int64_t t = 0; t < P; ++t) gacts[t] = gact.p + t * gb;
  s = bench::time_best(seconds, [&] {
    for (int64_t r0 = 0; r0 < kRows; r0 += kTile) {
      cpu_fast::gemm_mxfp4_i8(gacts.data(), static_cast<int>(P), parts,
                              blocks.data() + r0 * kNb * 16, scales.data() + r0 * kNb, kCols, kTile,
                              out.data() + r0, kRows);
    }
  });
  const bool bits = std::memcmp(out.data(), gemv.data(), out.size() * sizeof(float)) == 0;
  report(shape + ", int8 x" + std::to_string(parts) + " GEMM" +
             (bits ? " (GEMV bits)" : " (NOT GEMV bits)"),
         flops, s, sampled_error(out));
  if (!bits) {
    std::fprintf(stderr, "gemm_mxfp4_i8: outputs differ from gemv_mxfp4_i8's\n");
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.0;
  int parts = 2;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--parts") == 0 && i + 1 < argc) {
      parts = std::atoi(argv[++i]) == 1 ? 1 : 2;
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--parts 1|2]\n", argv[0]);
      return 2;
    }
  }
  if (!cpu_fast::mxfp4_i8_gemm_usable()) {
    std::printf("int8 MXFP4 GEMM unusable here (its body is AVX-512 VNNI): %s\n",
                cpu_fast::mxfp4_i8_target());
    return 0;
  }
  std::printf("int8 body: %s\n\n| %-58s | %9s | %8s | %-9s | %s |\n|---|---|---|---|---|\n",
              cpu_fast::mxfp4_i8_target(), "kernel (1 thread, 32-row tiles)", "ms/call", "GFLOP/s",
              "err", "load");
  std::mt19937 rng(1);
  for (const int64_t P : {16, 64}) expert_gate_up(rng, P, parts, seconds);
  return 0;
}
