// YaRN rotary-embedding table of gpt-oss (gpt-oss-model.md §2.4): per-pair inverse frequencies
// blended between plain and position-interpolated RoPE by a linear ramp over the correction range,
// and the concentration factor that multiplies cos and sin.
#pragma once

#include <vector>

#include "model/config.h"

namespace gptoss {

struct YarnRope {
  std::vector<double> inv_freq;  // head_dim / 2 entries
  double concentration = 1.0;    // 0.1 * ln(factor) + 1 for factor > 1, else 1
  double low = 0.0;              // correction range (fractional unless truncate)
  double high = 0.0;
};

YarnRope yarn_rope(int head_dim, double theta, double factor, double beta_fast, double beta_slow,
                   int original_max_position, bool truncate);
YarnRope yarn_rope(const ModelConfig& config);

}  // namespace gptoss
