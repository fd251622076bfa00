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
  // logits receives pieces.size() rows of vocab_size() floats.
  virtual Status forward(const std::vector<BatchPiece>& pieces, std::vector<float>* logits) = 0;
};

}  // namespace gptoss::engine
