// AMX prefill GEMM lab (src/backend/cpu_fast/amx_gemm.h): one expert's gate_up of gpt-oss-20b
// (5760 x 2880 MXFP4 rows) against P tokens, and a 512-row slice of the q projection (bf16,
// 2880 columns) against T tokens, on one thread. Each line: best time per call, f32-equivalent
// GFLOP/s (2 * tokens * rows * K / s, so the f32 path and AMX with 2 or 3 bf16 terms compare
// directly), and the worst error of sampled outputs against float64 relative to sum |x w|.
// The f32 lines are the cpu-fast f32 path (decode to f32 + gemm_f32) on the same inputs.
//
//   gptoss-bench-amx-gemm [--seconds S]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu_fast/amx_gemm.h"
#include "backend/cpu_fast/kernels_fast.h"
#include "bench_util.h"
#include "core/dtypes.h"

namespace {

using namespace gptoss;
using Clock = std::chrono::steady_clock;

double seconds_budget = 0.5;

template <typename F>
double best_time(F&& f) {
  f();
  double best = 1e30, spent = 0.0;
  int reps = 0;
  while (reps < 3 || spent < seconds_budget) {
    const auto t0 = Clock::now();
    f();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    spent += s;
    ++reps;
  }
  return best;
}


void report(const std::string& name, double flops, double s, double err) {
  std::printf("| %-52s | %9.3f | %8.1f | %8.2g |\n", name.c_str(), s * 1e3, flops / s * 1e-9, err);
}

std::vector<float> activations(std::mt19937& rng, int64_t T, int64_t K) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(T * K);
  for (auto& v : x) v = nd(rng);
  return x;
}

void expert_gate_up(std::mt19937& rng, int64_t P) {
  const int64_t R = 5760, K = 2880, nb = K / 32;
  std::vector<uint8_t> blocks(R * K / 2), scales(R * nb);
  for (auto& b : blocks) b = static_cast<uint8_t>(rng());
  for (auto& s : scales) s = static_cast<uint8_t>(118 + rng() % 4);
  const std::vector<float> x = activations(rng, P, K);
  std::vector<const float*> xs(P);
  for (int64_t t = 0; t < P; ++t) xs[t] = x.data() + t * K;
  auto row = [&](int64_t r, float* w) {
    for (int64_t b = 0; b < nb; ++b) mxfp4_block_to_f32(blocks.data() + (r * nb + b) * 16, scales[r * nb + b], w + b * 32);
  };
  const double flops = 2.0 * P * R * K;
  constexpr int64_t kTile = 64;  // rows per task, as cpu-fast's run_experts
  std::vector<float> out(P * R);
  for (const int parts : {2, 3}) {
    std::vector<uint16_t> packed(cpu_fast::amx_packed_x_elems(P, K, parts)), panel(kTile * K);
    std::vector<float> yt(P * kTile);
    const double s = best_time([&] {
      cpu_fast::amx_pack_x(xs.data(), P, K, parts, 0, P, packed.data());
      for (int64_t r0 = 0; r0 < R; r0 += kTile) {
        cpu_fast::amx_mxfp4_rows_to_bf16(blocks.data() + r0 * nb * 16, scales.data() + r0 * nb, K, kTile, panel.data(), K);
        cpu_fast::amx_gemm_bf16w(packed.data(), P, parts, panel.data(), K, kTile, K, out.data() + r0, R);
      }
    });
    report("expert gate_up 5760x2880 MXFP4, P=" + std::to_string(P) + ", AMX " + std::to_string(parts) + " terms",
           flops, s, bench::sampled_error(x, P, K, row, out, R));
  }
  // The f32 path: tiles of 32 rows decoded to f32 (chunk order), 64-token GEMM passes.
  std::vector<float> xp(P * K), panel(32 * K), yt(P * 32);
  for (int64_t t = 0; t < P; ++t) cpu_fast::to_chunk_order(x.data() + t * K, K, xp.data() + t * K);
  std::vector<const float*> xps(P);
  for (int64_t t = 0; t < P; ++t) xps[t] = xp.data() + t * K;
  const double s = best_time([&] {
    for (int64_t r0 = 0; r0 < R; r0 += 32) {
      cpu_fast::mxfp4_rows_to_f32(blocks.data() + r0 * nb * 16, scales.data() + r0 * nb, K, 32, panel.data());
      for (int64_t p0 = 0; p0 < P; p0 += 64) {
        cpu_fast::gemm_f32(xps.data() + p0, std::min<int64_t>(64, P - p0), panel.data(), K, 32, K,
                           out.data() + p0 * R + r0, R);
      }
    }
  });
  report("expert gate_up 5760x2880 MXFP4, P=" + std::to_string(P) + ", f32", flops, s,
         bench::sampled_error(x, P, K, row, out, R));
}

void q_slice(std::mt19937& rng, int64_t T) {
  const int64_t R = 512, K = 2880;
  std::vector<uint16_t> w(R * K);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (auto& v : w) v = f32_to_bf16(nd(rng));
  const std::vector<float> x = activations(rng, T, K);
  std::vector<const float*> xs(T);
  for (int64_t t = 0; t < T; ++t) xs[t] = x.data() + t * K;
  auto row = [&](int64_t r, float* out) {
    for (int64_t k = 0; k < K; ++k) out[k] = bf16_to_f32(w[r * K + k]);
  };
  const double flops = 2.0 * T * R * K;
  std::vector<float> out(T * R);
  for (const int parts : {2, 3}) {
    std::vector<uint16_t> packed(cpu_fast::amx_packed_x_elems(T, K, parts));
    const double s = best_time([&] {
      cpu_fast::amx_pack_x(xs.data(), T, K, parts, 0, T, packed.data());
      for (int64_t r0 = 0; r0 < R; r0 += 64) {
        cpu_fast::amx_gemm_bf16w(packed.data(), T, parts, w.data() + r0 * K, K, 64, K, out.data() + r0, R);
      }
    });
    report("q slice 512x2880 bf16, T=" + std::to_string(T) + ", AMX " + std::to_string(parts) + " terms", flops, s,
           bench::sampled_error(x, T, K, row, out, R));
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds_budget = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  if (!cpu_fast::amx_usable()) {
    std::printf("AMX unusable here: %s\n", cpu_fast::amx_unusable_reason());
    return 0;
  }
  std::printf("| %-52s | %9s | %8s | %8s |\n|---|---|---|---|\n", "kernel (1 thread)", "ms/call", "GFLOP/s",
              "err");
  std::mt19937 rng(1);
  for (const int64_t P : {16, 64, 256}) expert_gate_up(rng, P);
  for (const int64_t T : {64, 512}) q_slice(rng, T);
  return 0;
}
