// Test helper: backend weights over test-owned memory — a bf16 Weight view and random MXFP4 experts
// (bytes uniform, E8M0 scales in [scale_lo, scale_hi], bf16 bias ~ N(0, bias_sd)), shared by the
// cpu-fast kernel, int8 and AMX tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "core/dtypes.h"

namespace gptoss {

// A bf16 [rows, cols] weight viewing data (which must outlive it).
inline Weight bf16_weight(uint16_t* data, int64_t rows, int64_t cols) {
  Weight w;
  w.buf.data = data;
  w.buf.bytes = static_cast<size_t>(rows * cols) * 2;
  w.type = ElemType::kBF16;
  w.rows = rows;
  w.cols = cols;
  return w;
}

// experts x [rows, cols] MXFP4 weights and their [experts, rows] bf16 bias; w and b point into the
// vectors, so the object is neither copied nor moved.
struct RandomExperts {
  std::vector<uint8_t> blocks, scales;
  std::vector<uint16_t> bias;
  Mxfp4Experts w;
  Weight b;

  RandomExperts(std::mt19937& rng, int64_t experts, int64_t rows, int64_t cols, int scale_lo = 118,
                int scale_hi = 122, float bias_sd = 0.5f) {
    blocks.resize(static_cast<size_t>(experts * rows * cols / 2));
    scales.resize(static_cast<size_t>(experts * rows * cols / 32));
    std::uniform_int_distribution<int> byte(0, 255), scale(scale_lo, scale_hi);
    for (auto& v : blocks) v = static_cast<uint8_t>(byte(rng));
    for (auto& v : scales) v = static_cast<uint8_t>(scale(rng));
    std::normal_distribution<float> n(0.0f, bias_sd);
    bias.resize(static_cast<size_t>(experts * rows));
    for (auto& v : bias) v = f32_to_bf16(n(rng));
    w.blocks.data = blocks.data();
    w.blocks.bytes = blocks.size();
    w.scales.data = scales.data();
    w.scales.bytes = scales.size();
    w.experts = experts;
    w.rows = rows;
    w.cols = cols;
    b = bf16_weight(bias.data(), experts, rows);
  }
  RandomExperts(const RandomExperts&) = delete;
  RandomExperts& operator=(const RandomExperts&) = delete;
};

}  // namespace gptoss
