// gemv_mxfp4_lab (the software prefetch variants of the MXFP4 expert GEMV, bench/kernels/cpu) must
// compute the same bits as gemv_mxfp4 on every SIMD target: prefetching changes no arithmetic. Shapes
// cover one row, partial and whole 4-row tiles, rows of 1 to 90 blocks, and prefetch distances
// inside a row, across one and several tile boundaries and past the end of the call.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "backend/cpu_fast/for_each_target.h"
#include "backend/cpu_fast/kernels_fast.h"

namespace gptoss {
namespace {

TEST(CpuFastMxfp4Lab, EveryPrefetchVariantGivesGemvMxfp4Bits) { for_each_target([] {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255), scale(112, 134);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const auto& [cols, rows] : {std::tuple<int64_t, int64_t>{32, 1}, {32, 9}, {96, 3}, {96, 13}, {2880, 4},
                                   {2880, 13}, {2880, 64}, {2880, 67}}) {
    const int64_t nb = cols / 32;
    std::vector<uint8_t> blocks(static_cast<size_t>(rows * nb * 16)), scales(static_cast<size_t>(rows * nb));
    for (auto& b : blocks) b = static_cast<uint8_t>(byte(rng));
    for (auto& s : scales) s = static_cast<uint8_t>(scale(rng));
    std::vector<float> x(static_cast<size_t>(cols)), xp(x.size());
    for (auto& v : x) v = normal(rng);
    cpu_fast::to_chunk_order(x.data(), cols, xp.data());
    std::vector<float> want(static_cast<size_t>(rows), -1.0f);
    cpu_fast::gemv_mxfp4(xp.data(), blocks.data(), scales.data(), cols, rows, want.data());
    for (const int64_t ahead : {int64_t{-1}, int64_t{0}, int64_t{1}, int64_t{3}, int64_t{16}, int64_t{64},
                                nb - 1, nb, nb + 1, 2 * nb + 5, int64_t{500}}) {
      std::vector<float> got(static_cast<size_t>(rows), -2.0f);
      cpu_fast::gemv_mxfp4_lab(xp.data(), blocks.data(), scales.data(), cols, rows, got.data(), ahead);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)))
          << "cols " << cols << " rows " << rows << " ahead " << ahead;
    }
  }
}); }

}  // namespace
}  // namespace gptoss
