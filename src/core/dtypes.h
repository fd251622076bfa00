// Scalar formats of gpt-oss checkpoints: bf16, E8M0 scales and MXFP4 (E2M1) codes; and IEEE fp16
// (the scale of GGUF Q8_0 blocks).
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

// IEEE binary16 bits -> f32 (exact, subnormals and inf/NaN included).
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // mant * 2^-24
    return sign ? -v : v;
  }
  const uint32_t bits = exp == 31 ? sign | 0x7f800000u | (mant << 13) : sign | ((exp + 112u) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// f32 -> IEEE binary16 bits, round to nearest even (as numpy's astype(np.float16)); overflow
// gives inf, NaN stays NaN.
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00u;
  if (x >= 0x47800000u) return sign | 0x7c00u;  // >= 2^16: inf (2^16 - 16 .. 2^16 round up to it below)
  const uint32_t e = x >> 23;
  if (e < 113) {  // below 2^-14: an fp16 subnormal (or zero), units of 2^-24
    const uint32_t shift = 126 - e;
    if (shift > 24) return sign;
    const uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t h = ((e - 112) << 10) | ((x & 0x7fffffu) >> 13);
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
  return static_cast<uint16_t>(sign | h);
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
