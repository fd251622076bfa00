// Server counters in Prometheus text exposition format (GET /metrics): requests by route and
// status, prompt and generated tokens, running and queued sequences, time to first token and
// generation speed.
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "engine/engine.h"

namespace gptoss::server {

class Metrics {
 public:
  void count_request(const std::string& route, int status);
  // One finished generation.
  void record_generation(int prompt_tokens, int generated_tokens, double ttft_s, double decode_s);
  void count_rejected();
  void count_disconnect();
  std::string render(const engine::EngineStats& engine_stats, int active_http_requests) const;

  static constexpr std::array<double, 10> kTtftBuckets = {0.01, 0.025, 0.05, 0.1, 0.25,
                                                          0.5,  1.0,   2.5,  5.0, 10.0};

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0;
  uint64_t generated_tokens_ = 0;
  uint64_t generations_ = 0;
  uint64_t rejected_ = 0;
  uint64_t disconnects_ = 0;
  std::array<uint64_t, kTtftBuckets.size()> ttft_buckets_{};
  double ttft_sum_ = 0;
  uint64_t ttft_count_ = 0;
  double decode_seconds_ = 0;
  double last_tokens_per_second_ = 0;
};

}  // namespace gptoss::server
