#include "core/dtypes.h"

#include <gtest/gtest.h>

namespace gptoss {
namespace {

TEST(Dtypes, Bf16RoundTripsExactValues) {
  for (float f : {0.0f, 1.0f, -2.5f, 0.15625f, 65536.0f, -1e-3f}) {
    float back = bf16_to_f32(f32_to_bf16(f));
    EXPECT_NEAR(back, f, std::abs(f) / 128.0f) << f;
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even.
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);
}

TEST(Dtypes, Mxfp4BlockDecodeFollowsNibbleOrderAndScale) {
  uint8_t codes[16] = {};
  codes[0] = 0x92;  // element 0 = code 2 (+1.0), element 1 = code 9 (-0.5)
  codes[15] = 0x7f; // element 30 = code 15 (-6.0), element 31 = code 7 (+6.0)
  float out[32];
  mxfp4_block_to_f32(codes, 128, out);  // scale 2^1
  EXPECT_EQ(out[0], 2.0f);
  EXPECT_EQ(out[1], -1.0f);
  EXPECT_EQ(out[30], -12.0f);
  EXPECT_EQ(out[31], 12.0f);
  EXPECT_EQ(e8m0_to_f32(127), 1.0f);
  EXPECT_EQ(e8m0_to_f32(120), 1.0f / 128.0f);
}

}  // namespace
}  // namespace gptoss
