// Turns one row of logits into a token: penalties, temperature, top-k, min-p, top-p, then a draw
// from a seeded generator (the same seed and inputs give the same tokens).
#pragma once

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"

namespace gptoss::engine {

// The dispatch rule for greedy on the device: true when these parameters always pick the argmax of
// the raw logits row (ties to the lowest id) and never draw from the generator: temperature 0
// (greedy) or top-k 1, with no repetition, presence or frequency penalty. Such a request needs only
// the token id from the runner (PieceOutput::kGreedy), never its logits row.
bool picks_argmax(const SamplingParams& params);

class Sampler {
 public:
  // prompt: counted for the repetition penalty (as llama.cpp does), not for presence/frequency.
  Sampler(const SamplingParams& params, const std::vector<uint32_t>& prompt);

  // logits has n entries; it is not modified.
  uint32_t sample(const float* logits, int n);
  // Records a generated token (for penalties). sample() does not call it: the engine does, so
  // that forced tokens count too.
  void accept(uint32_t token);
  // picks_argmax(params): sample() returns the argmax of the row, so the runner's greedy token may
  // stand in for it.
  bool picks_argmax() const { return engine::picks_argmax(params_); }

  // The probability of every candidate after all transforms, as (token, p) sorted by p descending;
  // exposed for tests and for logprobs.
  std::vector<std::pair<uint32_t, float>> distribution(const float* logits, int n) const;

 private:
  void apply_penalties(std::vector<float>& logits) const;
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::unordered_map<uint32_t, int> seen_;       // prompt + generated, for repetition
  std::unordered_map<uint32_t, int> generated_;  // generated only, for presence/frequency
};

}  // namespace gptoss::engine
