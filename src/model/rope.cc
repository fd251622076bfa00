#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace gptoss {

YarnRope yarn_rope(int head_dim, double theta, double factor, double beta_fast, double beta_slow,
                   int original_max_position, bool truncate) {
  YarnRope r;
  const int half = head_dim / 2;
  const double d = head_dim;
  // Pair index at which a frequency completes `rotations` turns over the original context.
  auto correction_dim = [&](double rotations) {
    return d * std::log(original_max_position / (rotations * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(theta));
  };
  double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
  if (truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, d - 1.0);
  if (low == high) high += 0.001;  // as transformers: avoid a zero-width ramp
  r.low = low;
  r.high = high;
  r.concentration = factor > 1.0 ? 0.1 * std::log(factor) + 1.0 : 1.0;
  r.inv_freq.resize(half);
  for (int i = 0; i < half; ++i) {
    const double base = std::pow(theta, 2.0 * i / d);
    const double extrapolation = 1.0 / base;
    const double interpolation = 1.0 / (factor * base);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    r.inv_freq[i] = interpolation * ramp + extrapolation * (1.0 - ramp);
  }
  return r;
}

YarnRope yarn_rope(const ModelConfig& c) {
  return yarn_rope(c.head_dim, c.rope_theta, c.rope_scaling_factor, c.rope_beta_fast, c.rope_beta_slow,
                   c.rope_original_max_position, c.rope_truncate);
}

}  // namespace gptoss
