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
  // Requests whose sampling picks the argmax (picks_argmax in sampler.h) take the runner's greedy
  // token (on the cuda graph decode path only the ids cross to the host). false: every token comes
  // from a logits row sampled on the host (comparisons).
  bool device_greedy = true;
  // Threads that sample a step's logits rows on the host (rows of different sequences at once, from
  // 8 rows up: 4 per thread at least). 0: GPTOSS_SAMPLE_THREADS when set, else the hardware's
  // threads up to 8; 1: every row on the engine thread.
  int sample_threads = 0;
};

std::unique_ptr<Engine> create_engine(std::shared_ptr<Runner> runner, const SchedulerOptions& options);

}  // namespace gptoss::engine
