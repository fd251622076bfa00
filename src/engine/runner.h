// What the engine needs from a model: sequences with their own KV memory, and one forward call over
// a batch of (sequence, new tokens) pieces that returns the logits after each piece's last token.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace gptoss::engine {

struct BatchPiece {
  int sequence = -1;
  std::vector<uint32_t> tokens;  // appended to the sequence, at its next positions
};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual int vocab_size() const = 0;
  virtual int context_length() const = 0;
  // Reserves KV memory for a new sequence; fails when no more fit.
  virtual Expected<int> new_sequence() = 0;
  virtual void free_sequence(int sequence) = 0;
  // KV admission for a paged cache (model/kv_cache.h): a sequence that may grow to `tokens` positions
  // can start now (a free slot and KV pages that can be promised to it), or could ever (the whole
  // pool; the error names the sizes); start_sequence opens one with that promise, so it never runs
  // out of pages mid-sequence. The defaults know only slots.
  virtual bool can_start(int tokens) const {
    (void)tokens;
    return true;
  }
  virtual Status can_ever_fit(int tokens) const {
    (void)tokens;
    return Status::ok();
  }
  virtual Expected<int> start_sequence(int tokens) {
    (void)tokens;
    return new_sequence();
  }
  // logits receives pieces.size() rows of vocab_size() floats.
  virtual Status forward(const std::vector<BatchPiece>& pieces, std::vector<float>* logits) = 0;
};

}  // namespace gptoss::engine
