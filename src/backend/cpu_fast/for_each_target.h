// Test helper: runs a gtest body once per Highway SIMD target compiled in and supported by this CPU
// (AVX3, AVX2, SSE4, ..., SCALAR), so every dispatch path of a cpu-fast kernel is checked.
#pragma once

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cstdint>

namespace gptoss {

template <typename Body>
void for_each_target(Body body) {
  const int64_t targets = static_cast<int64_t>(hwy::SupportedTargets());
  int tried = 0;
  for (int64_t t = 1; t != 0 && t <= targets; t <<= 1) {
    if ((targets & t) == 0) continue;
    hwy::SetSupportedTargetsForTest(t);
    SCOPED_TRACE(hwy::TargetName(t));
    body();
    ++tried;
  }
  hwy::SetSupportedTargetsForTest(0);
  EXPECT_GE(tried, 2);  // at least one SIMD target and the scalar fallback
}

}  // namespace gptoss
