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

// What the caller of forward_step needs from each piece: nothing (a prompt chunk that does not end
// its prompt), only its greedy token (the argmax of its logits row, ties to the lowest id), or the
// whole logits row (to sample from it on the host).
enum class PieceOutput : uint8_t { kNone, kGreedy, kLogits };

struct StepOutput {
  // Per piece: the greedy token where the runner answered a kGreedy piece with its id alone (on
  // the device: only the ids cross to the host), else -1.
  std::vector<int32_t> tokens;
  // Per piece: its logits row (vocab_size() floats, valid until the next forward call) where the
  // piece wants output and tokens[i] < 0; nullptr elsewhere.
  std::vector<const float*> rows;
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
  // forward(), told what each piece's output is for (want[i] for pieces[i]): a runner may answer
  // kGreedy pieces with their token and copy out only the rows asked for. This default runs
  // forward() and hands out every wanted row (the caller takes the argmax itself).
  virtual Status forward_step(const std::vector<BatchPiece>& pieces, const std::vector<PieceOutput>& want,
                              StepOutput* out) {
    if (want.size() != pieces.size()) return Error("forward_step: {} outputs for {} pieces", want.size(), pieces.size());
    GPTOSS_RETURN_IF_ERROR(forward(pieces, &step_logits_));
    fill_rows(pieces.size(), want, step_logits_.data(), out);
    return Status::ok();
  }

 protected:
  // out: no tokens, and the wanted rows of `logits` (pieces rows of vocab_size()).
  void fill_rows(size_t pieces, const std::vector<PieceOutput>& want, const float* logits, StepOutput* out) const {
    out->tokens.assign(pieces, -1);
    out->rows.assign(pieces, nullptr);
    for (size_t i = 0; i < pieces; ++i) {
      if (want[i] != PieceOutput::kNone) out->rows[i] = logits + i * static_cast<size_t>(vocab_size());
    }
  }
  std::vector<float> step_logits_;  // the default forward_step's rows
};

}  // namespace gptoss::engine
