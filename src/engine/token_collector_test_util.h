// For engine tests: a TokenSink that collects one request's tokens and how it finished, and a
// wait for that finish.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "engine/engine.h"

namespace gptoss::engine::testing {

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint32_t> tokens;
  bool done = false;
  FinishReason reason = FinishReason::kNone;

  // Keep the Collector alive (and in place) until the request has finished.
  TokenSink sink() {
    return [this](const TokenEvent& ev) {
      std::lock_guard<std::mutex> lk(mu);
      if (ev.has_token) tokens.push_back(ev.token);
      if (ev.finished) {
        done = true;
        reason = ev.reason;
      }
      cv.notify_all();
    };
  }
  // True once the request finished within `timeout`.
  bool wait_for(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, timeout, [&] { return done; });
  }
  void wait() { ASSERT_TRUE(wait_for(std::chrono::seconds(20))); }
};

}  // namespace gptoss::engine::testing
