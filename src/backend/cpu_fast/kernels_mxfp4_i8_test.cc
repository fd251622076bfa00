// The int8 MXFP4 GEMV (kernels_mxfp4_i8.h), with 1 and 2 int8 activation terms, against two
// oracles computed here in double from the scalar MXFP4 decode of core/dtypes.h:
//  - tight: the dot product of the exact weights with the dequantized activations (what the int8
//    arithmetic computes exactly before the f32 scaling and summation): relative 1e-5;
//  - the exact f32 path (unquantized activations): within the bound the header derives,
//    sum_b E_b * sum_{i in b} |w_i| with E_b = max|x_b| / 254 (1 part) or / (127 * 256) (2 parts),
//    plus f32 rounding; the exact path's own kernel (gemv_mxfp4) is held to the same bound.
#include "backend/cpu_fast/kernels_mxfp4_i8.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "backend/cpu_fast/kernels_fast.h"
#include "backend/cpu_fast/test_weights.h"
#include "core/dtypes.h"

namespace gptoss::cpu_fast {
namespace {

struct AlignedBytes {
  explicit AlignedBytes(size_t n)
      : p(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64))) {}
  ~AlignedBytes() { std::free(p); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  uint8_t* p;
};

struct Problem {
  int64_t cols, rows;
  std::vector<uint8_t> blocks, scales;
  std::vector<float> w;  // decoded rows (natural order)
};

Problem make_problem(int64_t cols, int64_t rows, std::mt19937& rng) {
  Problem p{cols, rows, {}, {}, {}};
  const int64_t nb = cols / 32;
  p.blocks.resize(static_cast<size_t>(rows * nb * 16));
  p.scales.resize(static_cast<size_t>(rows * nb));
  for (auto& b : p.blocks) b = static_cast<uint8_t>(rng());
  std::uniform_int_distribution<int> e(118, 130);
  for (auto& s : p.scales) s = static_cast<uint8_t>(e(rng));
  p.w.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * nb; ++i)
    mxfp4_block_to_f32(&p.blocks[i * 16], p.scales[i], &p.w[i * 32]);
  return p;
}

// Activations like a layer's: normal, with a few large outliers, and an all-zero block.
std::vector<float> make_x(int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(cols));
  for (auto& v : x) v = n(rng);
  for (int64_t i = 0; i < cols; i += 37) x[i] *= 20.0f;
  if (cols >= 64) {
    for (int i = 32; i < 64; ++i) x[i] = 0.0f;
  }
  return x;
}

// A row's float64 oracles: `tight` = sum w * xd (the dequantized activations), `exact` = sum w * x,
// the header's bound on |int8 result - exact|, and the sums of |terms| for relative tolerances.
struct RowOracle {
  double tight = 0.0, tight_abs = 0.0, exact = 0.0, exact_abs = 0.0, bound = 0.0;
};
RowOracle row_oracle(const float* w, const double* xd, const float* x, int64_t cols, int parts) {
  RowOracle o;
  for (int64_t b = 0; b < cols / 32; ++b) {
    double amax = 0.0, wabs = 0.0;
    for (int i = 0; i < 32; ++i) {
      const int64_t c = b * 32 + i;
      o.tight += static_cast<double>(w[c]) * xd[c];
      o.tight_abs += std::fabs(static_cast<double>(w[c]) * xd[c]);
      o.exact += static_cast<double>(w[c]) * x[c];
      o.exact_abs += std::fabs(static_cast<double>(w[c]) * x[c]);
      amax = std::max(amax, std::fabs(static_cast<double>(x[c])));
      wabs += std::fabs(static_cast<double>(w[c]));
    }
    o.bound += (parts == 1 ? amax / 254.0 : amax / (127.0 * 256.0)) * wabs;
  }
  return o;
}

std::vector<const char*> targets() {
  std::vector<const char*> t;
  if (mxfp4_i8_usable()) t = {"avx512-vnni", "avx2"};
  return t;
}

TEST(Mxfp4I8, QuantizationRoundTripWithinHalfAStep) {
  std::mt19937 rng(7);
  const int64_t cols = 320;
  const std::vector<float> x = make_x(cols, rng);
  AlignedBytes act(static_cast<size_t>(mxfp4_i8_act_bytes(cols)));
  quantize_mxfp4_i8_act(x.data(), cols, act.p);
  for (const int parts : {1, 2}) {
    std::vector<double> xd(static_cast<size_t>(cols));
    dequantize_mxfp4_i8_act(act.p, cols, parts, xd.data());
    double worst = 0.0;  // max |x - xd| / max|x_b|
    for (int64_t b = 0; b < cols / 32; ++b) {
      double amax = 0.0;
      for (int i = 0; i < 32; ++i)
        amax = std::max(amax, std::fabs(static_cast<double>(x[b * 32 + i])));
      const double step = parts == 1 ? amax / 254.0 : amax / (127.0 * 256.0);
      for (int i = 0; i < 32; ++i) {
        const double e = std::fabs(x[b * 32 + i] - xd[b * 32 + i]);
        EXPECT_LE(e, step * (1.0 + 1e-3))
            << "parts " << parts << " block " << b << " element " << i;
        if (amax > 0) worst = std::max(worst, e / amax);
      }
    }
    EXPECT_EQ(xd[40], 0.0);  // the all-zero block stays zero
    // The second term really refines: about 1/65000 of the block's range instead of 1/254.
    if (parts == 2) {
      EXPECT_LT(worst, 2.0 / (127.0 * 256.0));
    } else {
      EXPECT_GT(worst, 1.0 / 1000.0);
    }
  }
}

// The dispatched quantizer (AVX-512 where the VNNI body runs) writes the portable loop's bytes:
// blocks with NaN, infinities, zeros, subnormals and huge values, and 300 vectors of scales 2^-20
// to 2^19, a third of them rounded to quarters (values whose residual x - d q1 rounds differently
// with and without a fused multiply-add: the case that found a contracted form).
TEST(Mxfp4I8, QuantizationIsThePortableLoopsBytes) {
  std::mt19937 rng(17);
  auto same = [](const std::vector<float>& x, const std::string& what) {
    const auto cols = static_cast<int64_t>(x.size());
    const auto bytes = static_cast<size_t>(mxfp4_i8_act_bytes(cols));
    AlignedBytes a(bytes), b(bytes);
    quantize_mxfp4_i8_act(x.data(), cols, a.p);
    quantize_mxfp4_i8_act_portable(x.data(), cols, b.p);
    // dh of a non-finite block is NaN in both (the same quiet NaN bytes).
    EXPECT_EQ(std::memcmp(a.p, b.p, bytes), 0) << what;
  };
  for (const int64_t cols : {32, 96, 160, 2880}) {
    std::vector<float> x = make_x(cols, rng);
    x[0] = std::numeric_limits<float>::quiet_NaN();
    if (cols >= 96) {
      x[70] = -std::numeric_limits<float>::infinity();
      for (int i = 0; i < 32; ++i)
        x[i + (cols >= 160 ? 128 : 64)] = 1e-41f * static_cast<float>(i - 16);
    }
    if (cols >= 2880) {
      for (int i = 0; i < 32; ++i) x[320 + i] = 3e38f * (i % 2 ? -1.0f : 0.5f);
      x[2000] = 1e-30f;
    }
    same(x, "special values, cols " + std::to_string(cols));
  }
  std::vector<float> x(2880);
  for (int it = 0; it < 300; ++it) {
    std::normal_distribution<float> n(0.0f, std::ldexp(1.0f, static_cast<int>(rng() % 40) - 20));
    for (auto& v : x) v = n(rng);
    if (it % 3 == 0) {
      for (auto& v : x) v = std::round(v * 4.0f) / 4.0f;
    }
    same(x, "random vector " + std::to_string(it));
  }
}

TEST(Mxfp4I8, GemvMatchesOraclesAndBound) {
  if (!mxfp4_i8_usable()) GTEST_SKIP() << "int8 MXFP4 kernel: " << mxfp4_i8_target();
  std::mt19937 rng(42);
  for (const int parts : {1, 2}) {
    double worst_tight = 0.0, worst_bound_use = 0.0, worst_rel = 0.0;
    for (const int64_t cols : {32, 64, 96, 128, 160, 2880}) {
      for (const int64_t rows : {1, 3, 4, 5, 13, 64}) {
        const Problem p = make_problem(cols, rows, rng);
        const std::vector<float> x0 = make_x(cols, rng), x1 = make_x(cols, rng);
        const int64_t ab = mxfp4_i8_act_bytes(cols);
        AlignedBytes a0(static_cast<size_t>(ab)), a1(static_cast<size_t>(ab));
        quantize_mxfp4_i8_act(x0.data(), cols, a0.p);
        quantize_mxfp4_i8_act(x1.data(), cols, a1.p);
        std::vector<double> xd(static_cast<size_t>(cols));
        dequantize_mxfp4_i8_act(a0.p, cols, parts, xd.data());
        // The exact path's kernel on the unquantized activations.
        std::vector<float> xp(static_cast<size_t>(cols)), f32(static_cast<size_t>(rows));
        to_chunk_order(x0.data(), cols, xp.data());
        gemv_mxfp4(xp.data(), p.blocks.data(), p.scales.data(), cols, rows, f32.data());
        for (const char* target : targets()) {
          std::vector<float> one(static_cast<size_t>(rows)), two(static_cast<size_t>(2 * rows));
          const uint8_t* acts1[1] = {a0.p};
          const uint8_t* acts2[2] = {a0.p, a1.p};
          if (!gemv_mxfp4_i8_on(target, acts1, 1, parts, p.blocks.data(), p.scales.data(), cols,
                                rows, one.data(), 0)) {
            continue;  // this body cannot run here
          }
          ASSERT_TRUE(gemv_mxfp4_i8_on(target, acts2, 2, parts, p.blocks.data(), p.scales.data(),
                                       cols, rows, two.data(), rows));
          for (int64_t r = 0; r < rows; ++r) {
            const auto [tight, tight_abs, exact, exact_abs, bound] =
                row_oracle(&p.w[r * cols], xd.data(), x0.data(), cols, parts);
            const std::string where =
                std::string(target) + " cols " + std::to_string(cols) + " row " + std::to_string(r);
            // f32 rounding of d and of the per-block scaled sums: far below 1e-5 relative.
            const double tight_err = std::fabs(one[r] - tight);
            EXPECT_LE(tight_err, 1e-5 * tight_abs + 1e-30) << where;
            worst_tight = std::max(worst_tight, tight_err / (tight_abs + 1e-30));
            const double lim = bound * (1.0 + 1e-4) + 1e-5 * exact_abs;
            EXPECT_LE(std::fabs(one[r] - exact), lim) << where;
            EXPECT_LE(std::fabs(one[r] - f32[r]), lim + 1e-5 * exact_abs) << where;
            worst_bound_use = std::max(worst_bound_use, std::fabs(one[r] - exact) / lim);
            worst_rel = std::max(worst_rel, std::fabs(one[r] - exact) / (exact_abs + 1e-30));
            // Token 0 gets the same bits alone and beside another token.
            EXPECT_EQ(one[r], two[r]) << where;
          }
          // Token 1 alone gives its T = 2 bits too.
          const uint8_t* acts_b[1] = {a1.p};
          ASSERT_TRUE(gemv_mxfp4_i8_on(target, acts_b, 1, parts, p.blocks.data(), p.scales.data(),
                                       cols, rows, one.data(), 0));
          for (int64_t r = 0; r < rows; ++r)
            EXPECT_EQ(one[r], two[rows + r]) << target << " token 1 row " << r;
        }
      }
    }
    std::printf(
        "int8 MXFP4 GEMV, %d part(s): max |err| / sum|w xd| vs the dequantized oracle %.3g; vs "
        "exact: "
        "max |err| / bound %.3g, max |err| / sum|w x| %.3g\n",
        parts, worst_tight, worst_bound_use, worst_rel);
  }
}

// Where the rows start in a 64-byte line (the checkpoints' tensors start wherever the safetensors
// header ends: 32, 24 and 48 bytes past a line in the gpt-oss-20b files) changes no bit: every start
// 0..63 gives the bits of the start at 0, each within the bounds of the oracles, and no load reaches
// past the last row (it ends at a PROT_NONE page: the tail group's code load is masked).
TEST(Mxfp4I8, GemvBitsDoNotDependOnWhereTheRowsStart) {
  if (!mxfp4_i8_usable()) GTEST_SKIP() << "int8 MXFP4 kernel: " << mxfp4_i8_target();
  std::mt19937 rng(7);
  const long page = sysconf(_SC_PAGESIZE);
  for (const int64_t cols : {2880, 160, 96, 64}) {
    for (const int64_t rows : {1, 2, 5, 64}) {
      const Problem p = make_problem(cols, rows, rng);
      const int64_t bytes = static_cast<int64_t>(p.blocks.size());
      const std::vector<float> x0 = make_x(cols, rng), x1 = make_x(cols, rng);
      const int64_t ab = mxfp4_i8_act_bytes(cols);
      AlignedBytes a0(static_cast<size_t>(ab)), a1(static_cast<size_t>(ab));
      quantize_mxfp4_i8_act(x0.data(), cols, a0.p);
      quantize_mxfp4_i8_act(x1.data(), cols, a1.p);
      // A mapping whose last page is PROT_NONE; the rows at (end - bytes - off) for off < 64.
      const size_t map = static_cast<size_t>((bytes + 64 + page - 1) / page * page + page);
      void* m = mmap(nullptr, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      ASSERT_NE(m, MAP_FAILED);
      uint8_t* guard = static_cast<uint8_t*>(m) + map - page;
      ASSERT_EQ(mprotect(guard, static_cast<size_t>(page), PROT_NONE), 0);
      for (const int parts : {1, 2}) {
        std::vector<double> xd0(static_cast<size_t>(cols)), xd1(static_cast<size_t>(cols));
        dequantize_mxfp4_i8_act(a0.p, cols, parts, xd0.data());
        dequantize_mxfp4_i8_act(a1.p, cols, parts, xd1.data());
        std::vector<std::vector<float>> first(targets().size());  // per body, at offset 0
        std::vector<float> two(static_cast<size_t>(2 * rows));
        for (int off = 0; off < 64; ++off) {
          uint8_t* b = guard - bytes - off;
          std::memcpy(b, p.blocks.data(), static_cast<size_t>(bytes));
          for (size_t ti = 0; ti < targets().size(); ++ti) {
            const char* target = targets()[ti];
            const uint8_t* acts[2] = {a0.p, a1.p};
            if (!gemv_mxfp4_i8_on(target, acts, 2, parts, b, p.scales.data(), cols, rows, two.data(), rows)) {
              continue;
            }
            const std::string where = std::string(target) + " cols " + std::to_string(cols) + " rows " +
                                      std::to_string(rows) + " parts " + std::to_string(parts) +
                                      " offset " + std::to_string(off);
            if (off == 0) first[ti] = two;
            EXPECT_EQ(std::memcmp(two.data(), first[ti].data(), two.size() * sizeof(float)), 0) << where;
            std::vector<float> one(static_cast<size_t>(rows));
            ASSERT_TRUE(gemv_mxfp4_i8_on(target, acts, 1, parts, b, p.scales.data(), cols, rows, one.data(), 0));
            for (int64_t r = 0; r < rows; ++r) {
              EXPECT_EQ(one[r], two[r]) << where << " row " << r;
              for (int t = 0; t < 2; ++t) {
                const auto o = row_oracle(&p.w[r * cols], t ? xd1.data() : xd0.data(), t ? x1.data() : x0.data(),
                                          cols, parts);
                const float got = two[t * rows + r];
                EXPECT_LE(std::fabs(got - o.tight), 1e-5 * o.tight_abs + 1e-30) << where << " row " << r;
                EXPECT_LE(std::fabs(got - o.exact), o.bound * (1.0 + 1e-4) + 1e-5 * o.exact_abs + 1e-30)
                    << where << " row " << r;
              }
            }
          }
        }
      }
      munmap(m, map);
    }
  }
}

// The GEMM (AVX-512 VNNI body): every token's outputs are the GEMV's bits for that token alone
// (which GemvMatchesOraclesAndBound holds to its oracles), and within 1e-5 relative of the float64
// dot product with the dequantized activations and within the header's bound of the exact one.
// Token counts cover the register tile's remainders (tiles of 3 tokens), row counts its row
// remainders (tiles of 4), column counts partial 4-block groups. Row 4 (where there is one) gets
// an E8M0 scale of 0 in its first block, so its tile takes the multiply form of the scaling and
// the others the exponent add.
TEST(Mxfp4I8, GemmIsTheGemvPerTokenAndMeetsTheOracles) {
  if (!mxfp4_i8_gemm_usable())
    GTEST_SKIP() << "int8 MXFP4 GEMM needs the AVX-512 VNNI body: " << mxfp4_i8_target();
  std::mt19937 rng(21);
  for (const int parts : {1, 2}) {
    for (const int64_t cols : {32, 96, 160, 2880}) {
      for (const int64_t rows : {1, 3, 4, 5, 13, 32}) {
        Problem p = make_problem(cols, rows, rng);
        if (rows > 4) {
          p.scales[4 * (cols / 32)] = 0;
          mxfp4_block_to_f32(&p.blocks[4 * (cols / 32) * 16], 0, &p.w[4 * cols]);
        }
        constexpr int kT = 8;
        const int64_t ab = mxfp4_i8_act_bytes(cols), gb = mxfp4_i8_gemm_act_bytes(cols, parts);
        AlignedBytes act(static_cast<size_t>(kT * ab)), gact(static_cast<size_t>(kT * gb));
        std::vector<std::vector<float>> xs;
        std::vector<const uint8_t*> gacts(kT);
        std::vector<float> gemv(static_cast<size_t>(kT * rows));
        for (int t = 0; t < kT; ++t) {
          xs.push_back(make_x(cols, rng));
          quantize_mxfp4_i8_act(xs[t].data(), cols, act.p + t * ab);
          pack_mxfp4_i8_gemm_act(act.p + t * ab, cols, parts, gact.p + t * gb);
          gacts[t] = gact.p + t * gb;
          const uint8_t* one[1] = {act.p + t * ab};
          gemv_mxfp4_i8(one, 1, parts, p.blocks.data(), p.scales.data(), cols, rows,
                        gemv.data() + t * rows, 0);
        }
        for (const int T : {1, 2, 3, 4, 5, 7, 8}) {
          std::vector<float> out(static_cast<size_t>(T * rows), -1.0f);
          gemm_mxfp4_i8(gacts.data(), T, parts, p.blocks.data(), p.scales.data(), cols, rows,
                        out.data(), rows);
          for (int t = 0; t < T; ++t) {
            std::vector<double> xd(static_cast<size_t>(cols));
            dequantize_mxfp4_i8_act(act.p + t * ab, cols, parts, xd.data());
            for (int64_t r = 0; r < rows; ++r) {
              const std::string where = "parts " + std::to_string(parts) + " cols " +
                                        std::to_string(cols) + " rows " + std::to_string(rows) +
                                        " T " + std::to_string(T) + " token " + std::to_string(t) +
                                        " row " + std::to_string(r);
              const float got = out[t * rows + r];
              EXPECT_EQ(got, gemv[t * rows + r]) << where;
              const RowOracle o = row_oracle(&p.w[r * cols], xd.data(), xs[t].data(), cols, parts);
              EXPECT_LE(std::fabs(got - o.tight), 1e-5 * o.tight_abs + 1e-30) << where;
              // (+1e-30: the kernels take E8M0 0 as 0, the oracle as 2^-127.)
              EXPECT_LE(std::fabs(got - o.exact),
                        o.bound * (1.0 + 1e-4) + 1e-5 * o.exact_abs + 1e-30)
                  << where;
            }
          }
        }
      }
    }
  }
}

TEST(Mxfp4I8, NonFiniteActivationGivesNaN) {
  if (!mxfp4_i8_usable()) GTEST_SKIP() << "int8 MXFP4 kernel: " << mxfp4_i8_target();
  std::mt19937 rng(3);
  const Problem p = make_problem(64, 4, rng);
  std::vector<float> x = make_x(64, rng);
  x[5] = std::numeric_limits<float>::infinity();
  AlignedBytes a(static_cast<size_t>(mxfp4_i8_act_bytes(64)));
  quantize_mxfp4_i8_act(x.data(), 64, a.p);
  const uint8_t* acts[1] = {a.p};
  std::vector<float> out(4);
  for (const int parts : {1, 2}) {
    gemv_mxfp4_i8(acts, 1, parts, p.blocks.data(), p.scales.data(), 64, 4, out.data(), 0);
    for (const float v : out) EXPECT_TRUE(std::isnan(v));
    if (!mxfp4_i8_gemm_usable()) continue;
    AlignedBytes g(static_cast<size_t>(mxfp4_i8_gemm_act_bytes(64, parts)));
    pack_mxfp4_i8_gemm_act(a.p, 64, parts, g.p);
    const uint8_t* gacts[1] = {g.p};
    std::fill(out.begin(), out.end(), 0.0f);
    gemm_mxfp4_i8(gacts, 1, parts, p.blocks.data(), p.scales.data(), 64, 4, out.data(), 4);
    for (const float v : out) EXPECT_TRUE(std::isnan(v)) << "GEMM, parts " << parts;
  }
}

// Backend level: cpu-fast's MoE ops with GPTOSS_CPU_FAST_MOE_I8=1 (1 and 2 parts) on random experts
// (test_weights.h) against the exact backend, and each token's bits in a T-token call vs alone (a
// 1-token call: the GEMV). Shapes with partial 4-block groups (608 = 19 blocks, 320 = 10 blocks).
float rel_max(const std::vector<float>& got, const std::vector<float>& want) {
  float err = 0.0f, mag = 0.0f;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::fabs(got[i] - want[i]));
    mag = std::max(mag, std::fabs(want[i]));
  }
  return err / mag;
}

void check_call_vs_tokens_alone(int T, const std::vector<int32_t>& idx,
                                const std::vector<float>& route, uint32_t seed, const char* what) {
  std::mt19937 rng(seed);
  const int k = 4;
  const int64_t experts = 8, hidden = 608, inter = 320;
  RandomExperts w1(rng, experts, 2 * inter, hidden), w2(rng, experts, hidden, inter);
  std::normal_distribution<float> n(0.0f, 0.05f);
  std::vector<float> x(T * hidden);
  for (auto& v : x) v = n(rng);
  x[3] = 0.8f;  // an outlier: its block's step is 16x the others'
  auto exact = make_cpu_backend(2);
  std::vector<float> he(T * k * inter), oe(T * hidden);
  exact->f32_mxfp4w_moe_matmul_swiglu(x.data(), T, k, idx.data(), w1.w, w1.b, 7.0f, 1.702f,
                                      he.data());
  exact->f32_mxfp4w_moe_matmul_accumulate(he.data(), T, k, idx.data(), route.data(), w2.w, w2.b,
                                          oe.data());
  // max |fast - exact| / max |exact|: measured on the Sapphire Rapids VM (AVX-512 body, T = 2) 2
  // parts h 5.1e-6, out 1.6e-5; 1 part h 1.3e-3, out 4.5e-3. Bounds ~6x.
  for (const auto& [parts, bound] : {std::pair{"2", 1e-4f}, std::pair{"1", 3e-2f}}) {
    setenv("GPTOSS_CPU_FAST_MOE_I8", "1", 1);
    setenv("GPTOSS_CPU_FAST_MOE_I8_PARTS", parts, 1);
    auto fast = make_cpu_fast_backend(2);
    unsetenv("GPTOSS_CPU_FAST_MOE_I8");
    unsetenv("GPTOSS_CPU_FAST_MOE_I8_PARTS");
    std::vector<float> hT(he.size()), oT(oe.size()), h1(he.size()), o1(oe.size());
    fast->f32_mxfp4w_moe_matmul_swiglu(x.data(), T, k, idx.data(), w1.w, w1.b, 7.0f, 1.702f,
                                       hT.data());
    fast->f32_mxfp4w_moe_matmul_accumulate(he.data(), T, k, idx.data(), route.data(), w2.w, w2.b,
                                           oT.data());
    for (int t = 0; t < T; ++t) {
      fast->f32_mxfp4w_moe_matmul_swiglu(x.data() + t * hidden, 1, k, idx.data() + t * k, w1.w,
                                         w1.b, 7.0f, 1.702f, h1.data() + t * k * inter);
      fast->f32_mxfp4w_moe_matmul_accumulate(he.data() + t * k * inter, 1, k, idx.data() + t * k,
                                             route.data() + t * k, w2.w, w2.b,
                                             o1.data() + t * hidden);
    }
    EXPECT_EQ(h1, hT) << what << ", " << parts << " part(s): gate_up, each token alone vs the call";
    EXPECT_EQ(o1, oT) << what << ", " << parts << " part(s): down, each token alone vs the call";
    const float eh = rel_max(hT, he), eo = rel_max(oT, oe);
    EXPECT_LE(eh, bound) << what << ", " << parts << " part(s): gate_up+SwiGLU vs exact";
    EXPECT_LE(eo, bound) << what << ", " << parts << " part(s): down+sum vs exact";
    EXPECT_GT(eh, 0.0f) << "the int8 path really ran";
    std::printf(
        "cpu-fast MoE int8, %s, %s part(s): max |fast - exact| / max |exact|: h %.3g, out %.3g\n",
        what, parts, eh, eo);
  }
}

TEST(Mxfp4I8Backend, DecodeOpsNearExactAndTokensIndependent) {
  if (!mxfp4_i8_usable()) GTEST_SKIP() << "int8 MXFP4 kernel: " << mxfp4_i8_target();
  // Two tokens sharing experts 2 and 3, so the two-token GEMV runs.
  check_call_vs_tokens_alone(2, {0, 1, 2, 3, 5, 2, 3, 7},
                             {0.4f, 0.3f, 0.2f, 0.1f, 0.25f, 0.25f, 0.25f, 0.25f}, 11,
                             "2-token call (GEMVs)");
}

// Prefill shape: a 5-token call takes the int8 GEMM where it runs (GPTOSS_CPU_FAST_MOE_I8_GEMM
// unset) and must give every token the bits of its 1-token call (the GEMV).
TEST(Mxfp4I8Backend, PrefillGemmGivesEachTokenItsDecodeBits) {
  if (!mxfp4_i8_gemm_usable())
    GTEST_SKIP() << "int8 MXFP4 GEMM needs the AVX-512 VNNI body: " << mxfp4_i8_target();
  // Expert 2 gets every token, 3 four of them, 0 one: groups of 1 to 5 pairs.
  check_call_vs_tokens_alone(5, {0, 1, 2, 3, 5, 2, 3, 7, 2, 3, 4, 6, 2, 3, 6, 7, 2, 5, 6, 1},
                             std::vector<float>(20, 0.25f), 12, "5-token call (GEMM)");
}

}  // namespace
}  // namespace gptoss::cpu_fast
