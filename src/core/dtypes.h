// Scalar formats of gpt-oss checkpoints: bf16, E8M0 scales and MXFP4 (E2M1) codes.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace gptoss {

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, NaN kept quiet.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// E2M1 code -> value (bit 3 sign, bits 2..1 exponent, bit 0 mantissa).
inline constexpr float kMxfp4Values[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                           -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// E8M0 scale byte -> 2^(s - 127), exact (the reference uses ldexp).
inline float e8m0_to_f32(uint8_t s) { return std::ldexp(1.0f, static_cast<int>(s) - 127); }

// One MXFP4 block: 32 elements, 16 code bytes, element 2j in the low nibble of byte j.
inline constexpr int kMxfp4BlockElems = 32;
inline constexpr int kMxfp4BlockBytes = 16;

inline void mxfp4_block_to_f32(const uint8_t* codes, uint8_t scale, float* out) {
  const float m = e8m0_to_f32(scale);
  for (int j = 0; j < kMxfp4BlockBytes; ++j) {
    out[2 * j] = kMxfp4Values[codes[j] & 0x0f] * m;
    out[2 * j + 1] = kMxfp4Values[codes[j] >> 4] * m;
  }
}

}  // namespace gptoss
