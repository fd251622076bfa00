#include "core/dtypes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

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

float bits_to_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(Dtypes, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool nan = ((h >> 10) & 0x1f) == 31 && (h & 0x3ff) != 0;
    if (nan) {
      EXPECT_TRUE(std::isnan(f16_to_f32(static_cast<uint16_t>(h))));
      continue;
    }
    EXPECT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << h;
  }
}

TEST(Dtypes, F16RoundsToNearestEven) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie: down to even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie: up to even
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);                     // rounds to inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);        // tie with 0: even
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -26)), 0x0001);        // 0.75 ulp: up
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -14)), 0x8400);       // smallest normal
  EXPECT_EQ(f32_to_f16(bits_to_f32(0x387fe000u)), 0x0400);     // subnormal rounding carries into normal
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7c00);
}

}  // namespace
}  // namespace gptoss
