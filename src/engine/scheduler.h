// The continuous-batching engine over a Runner: one thread, every step a batch that mixes the
// decode token of each running sequence with bounded prompt chunks of sequences still in prefill.
#pragma once

#include <memory>

#include "engine/engine.h"
#include "engine/runner.h"

namespace gptoss::engine {

struct SchedulerOptions {
  int max_running = 16;          // sequences decoding at once
  int max_queued = 64;           // waiting beyond that: submit() fails (servers answer 429)
  int prefill_chunk_tokens = 512;  // prompt tokens per step, shared between prefilling sequences
};

std::unique_ptr<Engine> create_engine(std::shared_ptr<Runner> runner, const SchedulerOptions& options);

}  // namespace gptoss::engine
