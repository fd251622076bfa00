// The memory a loaded model asks for beyond its weights: the KV cache (every sequence slot at the
// full context, allocated up front) and the activation scratch of the largest forward step. A
// context or batch that cannot fit is refused before anything is allocated, with the numbers and
// the option to lower, instead of failing later (or being OOM-killed) in the middle of a request.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"
#include "engine/model_runner.h"
#include "model/config.h"

namespace gptoss::engine {

struct MemoryPlan {
  size_t kv_bytes = 0;          // KvCache::create for kv_cache_options(options, config)
  size_t activation_bytes = 0;  // forward scratch + the host copies of the logits rows
  size_t total() const { return kv_bytes + activation_bytes; }
};

MemoryPlan plan_memory(const LoadOptions& options, const ModelConfig& config);

// OK when plan_memory() fits in `limit` bytes; else an error naming the KV cache and activation
// sizes, the limit and where it comes from (`source`), the largest context that fits with this
// many sequences, and the options to lower (options.fit_hint).
Status check_plan_fits(const LoadOptions& options, const ModelConfig& config, size_t limit,
                       const std::string& source);

// check_plan_fits against options.max_memory when set, else against the host's available memory
// for the cpu devices. A cuda device has no free-memory query here yet: without --max-memory it
// is not checked.
Status check_memory_fits(const LoadOptions& options, const ModelConfig& config,
                         const std::string& device);

}  // namespace gptoss::engine
