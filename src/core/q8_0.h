// Q8_0, the 8-bit block format of GGUF/ggml: 32 weights per block, stored as one IEEE fp16 scale d
// (little-endian, 2 bytes) followed by 32 int8 codes q; weight i = d * q[i] (exact in f32: an 11-bit
// mantissa times an 8-bit integer). Quantization is ggml's reference (gguf-py's Q8_0 gives the same
// bytes): d = max|x| / 127 in f32, q = round-half-away-from-zero(x * (1/d)), d rounded to fp16
// (nearest even). Used for the optional 8-bit storage of attention and unembedding weights.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtypes.h"

namespace gptoss {

inline constexpr int kQ8BlockElems = 32;
inline constexpr int kQ8BlockBytes = 34;

// Bytes of a row of `cols` weights (cols a multiple of 32).
inline constexpr int64_t q8_0_row_bytes(int64_t cols) { return cols / kQ8BlockElems * kQ8BlockBytes; }

// What quantizing one block did (sums over its 32 weights).
struct Q8BlockStats {
  double err_sq = 0.0;  // sum of (x - dequantized x)^2
  double ref_sq = 0.0;  // sum of x^2
  double max_abs_err = 0.0;
  bool finite = true;    // false when the block holds inf/NaN (then the codes are meaningless)
};

// One block of 32 weights -> 34 bytes. Branch-free independent lanes so that the compiler
// vectorizes it (a model's 1.2 billion dense weights convert at load). A block holding inf/NaN is
// reported (finite = false) and stored as zeros.
inline Q8BlockStats q8_0_quantize_block(const float* xin, uint8_t* out) {
  constexpr int kL = 8;
  float x[kQ8BlockElems];
  uint32_t nonfinite = 0;
  for (int i = 0; i < kQ8BlockElems; ++i) {
    uint32_t b;
    std::memcpy(&b, &xin[i], 4);
    nonfinite |= static_cast<uint32_t>((b & 0x7f800000u) == 0x7f800000u);
  }
  for (int i = 0; i < kQ8BlockElems; ++i) x[i] = nonfinite ? 0.0f : xin[i];
  float m[kL] = {};
  for (int i = 0; i < kQ8BlockElems; i += kL) {
    for (int l = 0; l < kL; ++l) m[l] = std::max(m[l], std::fabs(x[i + l]));
  }
  float amax = 0.0f;
  for (float v : m) amax = std::max(amax, v);
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = f32_to_f16(d);
  out[0] = static_cast<uint8_t>(dh & 0xff);
  out[1] = static_cast<uint8_t>(dh >> 8);
  const float dq = f16_to_f32(dh);
  int8_t q[kQ8BlockElems];
  for (int i = 0; i < kQ8BlockElems; ++i) {
    // round(v), halves away from zero, as ggml's roundf and gguf-py's np_roundf; |v| <= 127 up to
    // rounding, so the truncation to int is defined and exact.
    const float v = x[i] * id;
    const float a = std::fabs(v);
    const float t = static_cast<float>(static_cast<int32_t>(a));
    const float r = t + static_cast<float>(a - t >= 0.5f);
    q[i] = static_cast<int8_t>(static_cast<int32_t>(std::copysign(r, v)));
  }
  std::memcpy(out + 2, q, kQ8BlockElems);
  // The figures in f32 lanes (the difference is exact in f32 whenever x and d * q are within a
  // factor 2, i.e. for every code but some of blocks with subnormal fp16 scales); per-block sums
  // go to double.
  float err[kL] = {}, ref[kL] = {}, mx[kL] = {};
  for (int i = 0; i < kQ8BlockElems; i += kL) {
    for (int l = 0; l < kL; ++l) {
      const float e = x[i + l] - dq * static_cast<float>(q[i + l]);
      err[l] += e * e;
      ref[l] += x[i + l] * x[i + l];
      mx[l] = std::max(mx[l], std::fabs(e));
    }
  }
  Q8BlockStats st;
  st.finite = nonfinite == 0;
  for (int l = 0; l < kL; ++l) {
    st.err_sq += err[l];
    st.ref_sq += ref[l];
    st.max_abs_err = std::max(st.max_abs_err, static_cast<double>(mx[l]));
  }
  return st;
}

inline float q8_0_block_scale(const uint8_t* block) {
  return f16_to_f32(static_cast<uint16_t>(block[0] | (block[1] << 8)));
}

// `cols` (a multiple of 32) weights of a Q8_0 row -> f32.
inline void q8_0_row_to_f32(const uint8_t* row, int64_t cols, float* out) {
  for (int64_t b = 0; b < cols / kQ8BlockElems; ++b) {
    const uint8_t* blk = row + b * kQ8BlockBytes;
    const float d = q8_0_block_scale(blk);
    for (int i = 0; i < kQ8BlockElems; ++i) out[b * kQ8BlockElems + i] = d * static_cast<float>(static_cast<int8_t>(blk[2 + i]));
  }
}

}  // namespace gptoss
