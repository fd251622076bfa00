#include "backend/cpu/kernels.h"

#include <cmath>
#include <cstring>

#include "core/dtypes.h"
#include "core/q8_0.h"

namespace gptoss::cpu {

float weight_at(const Weight& w, int64_t i) {
  if (w.type == ElemType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(w.buf.data)[i]);
  if (w.type == ElemType::kQ8_0) {
    const int64_t r = i / w.cols, c = i % w.cols;
    const auto* blk = static_cast<const uint8_t*>(w.row(r)) + c / kQ8BlockElems * kQ8BlockBytes;
    return q8_0_block_scale(blk) * static_cast<float>(static_cast<int8_t>(blk[2 + c % kQ8BlockElems]));
  }
  return static_cast<const float*>(w.buf.data)[i];
}

namespace {

// Eight independent partial sums: the compiler vectorizes the inner loop; the order of additions is
// fixed by n alone, never by the batch or thread split.
constexpr int kLanes = 8;

float reduce_lanes(const float* acc) {
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

float dot_bf16(const float* x, const uint16_t* w, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      uint32_t bits = static_cast<uint32_t>(w[i + l]) << 16;
      float wf;
      std::memcpy(&wf, &bits, sizeof wf);
      acc[l] += x[i + l] * wf;
    }
  }
  float s = reduce_lanes(acc);
  for (; i < n; ++i) s += x[i] * bf16_to_f32(w[i]);
  return s;
}

float dot_f32f32(const float* x, const float* w, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] * w[i + l];
  }
  float s = reduce_lanes(acc);
  for (; i < n; ++i) s += x[i] * w[i];
  return s;
}

// The reference for Q8_0: the row dequantized (d * q, exact in f32), then the same sum as the
// other types.
float dot_q8_0(const float* x, const uint8_t* w, int64_t n) {
  float acc[kLanes] = {};
  float wf[kQ8BlockElems];
  for (int64_t b = 0; b < n / kQ8BlockElems; ++b) {
    q8_0_row_to_f32(w + b * kQ8BlockBytes, kQ8BlockElems, wf);
    const float* xb = x + b * kQ8BlockElems;
    for (int i = 0; i < kQ8BlockElems; i += kLanes) {
      for (int l = 0; l < kLanes; ++l) acc[l] += xb[i + l] * wf[i + l];
    }
  }
  return reduce_lanes(acc);
}

}  // namespace

float dot_f32(const float* x, const void* w_row, ElemType w_type, int64_t n) {
  if (w_type == ElemType::kBF16) return dot_bf16(x, static_cast<const uint16_t*>(w_row), n);
  if (w_type == ElemType::kQ8_0) return dot_q8_0(x, static_cast<const uint8_t*>(w_row), n);
  return dot_f32f32(x, static_cast<const float*>(w_row), n);
}

namespace {

// Byte -> (value of the low nibble, value of the high nibble), and E8M0 byte -> 2^(s - 127): the
// same numbers as mxfp4_block_to_f32 in core/dtypes.h, looked up instead of computed (the decode is
// most of the exact path's MoE time; ldexp alone was 12% of it).
struct Mxfp4Tables {
  float pair[256][2];
  float scale[256];
  Mxfp4Tables() {
    for (int b = 0; b < 256; ++b) {
      pair[b][0] = kMxfp4Values[b & 0x0f];
      pair[b][1] = kMxfp4Values[b >> 4];
      scale[b] = e8m0_to_f32(static_cast<uint8_t>(b));
    }
  }
};
const Mxfp4Tables kTables;

}  // namespace

void mxfp4_row_to_f32(const uint8_t* blocks, const uint8_t* scales, int64_t cols, float* out) {
  const int64_t nb = cols / kMxfp4BlockElems;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* codes = blocks + b * kMxfp4BlockBytes;
    const float m = kTables.scale[scales[b]];
    float* o = out + b * kMxfp4BlockElems;
    for (int j = 0; j < kMxfp4BlockBytes; ++j) {
      o[2 * j] = kTables.pair[codes[j]][0] * m;
      o[2 * j + 1] = kTables.pair[codes[j]][1] * m;
    }
  }
}

void rmsnorm_row(const float* x, const Weight& gain, float eps, int64_t n, float* y) {
  // Sum of squares in double: the mean is then correctly rounded to f32, as close to any f32
  // reduction order as possible.
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(ss / static_cast<double>(n));
  const float r = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * r) * weight_at(gain, i);
}

void rope_row(float* x, int heads, int head_dim, int32_t pos, const RopeTable& rope) {
  const int half = head_dim / 2;
  float c[512], s[512];  // head_dim <= 1024 is checked when the model binds its config
  for (int i = 0; i < half; ++i) {
    const float phi = static_cast<float>(pos) * rope.inv_freq[i];
    c[i] = std::cos(phi) * rope.concentration;
    s[i] = std::sin(phi) * rope.concentration;
  }
  for (int h = 0; h < heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * c[i] - b * s[i];
      v[i + half] = b * c[i] + a * s[i];
    }
  }
}

void topk_softmax_row(const float* logits, int n, int k, int32_t* idx, float* weight) {
  // Repeated selection: strict '>' keeps the lowest index among equal values.
  uint64_t taken[4] = {};  // n <= 256 is checked when the model binds its config
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int e = 0; e < n; ++e) {
      if (taken[e >> 6] >> (e & 63) & 1) continue;
      if (best < 0 || logits[e] > logits[best]) best = e;
    }
    taken[best >> 6] |= uint64_t{1} << (best & 63);
    idx[j] = best;
  }
  const float m = logits[idx[0]];
  float sum = 0.0f;
  for (int j = 0; j < k; ++j) {
    weight[j] = std::exp(logits[idx[j]] - m);
    sum += weight[j];
  }
  for (int j = 0; j < k; ++j) weight[j] /= sum;
}

float swiglu(float gate, float up, float limit, float alpha) {
  gate = std::fmin(gate, limit);
  up = std::fmax(std::fmin(up, limit), -limit);
  const float glu = gate * (1.0f / (1.0f + std::exp(-(gate * alpha))));
  return (up + 1.0f) * glu;
}

void sink_softmax(const float* scores, int n, float sink, float* probs) {
  float m = sink;
  for (int t = 0; t < n; ++t) m = std::fmax(m, scores[t]);
  float den = std::exp(sink - m);
  for (int t = 0; t < n; ++t) {
    probs[t] = std::exp(scores[t] - m);
    den += probs[t];
  }
  for (int t = 0; t < n; ++t) probs[t] /= den;
}

}  // namespace gptoss::cpu
