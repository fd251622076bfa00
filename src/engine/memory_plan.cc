#include "engine/memory_plan.h"

#include "core/memory_info.h"
#include "engine/scheduler.h"
#include "model/forward.h"
#include "model/kv_cache.h"

namespace gptoss::engine {

MemoryPlan plan_memory(const LoadOptions& options, const ModelConfig& config) {
  const KvCacheOptions kv = kv_cache_options(options, config);
  MemoryPlan p;
  p.kv_bytes = KvCache::bytes_needed(config, kv);
  // The largest step: one decode row per sequence plus the scheduler's prefill budget; one logits
  // row per sequence, which the forward pass and the scheduler copy about three times on the host.
  const int rows = kv.max_sequences + SchedulerOptions{}.prefill_chunk_tokens;
  const size_t logits_host = size_t{3} * kv.max_sequences * config.vocab_size * sizeof(float);
  p.activation_bytes = Model::scratch_bytes(config, rows, kv.max_sequences) + logits_host;
  return p;
}

Status check_plan_fits(const LoadOptions& options, const ModelConfig& config, size_t limit,
                       const std::string& source) {
  const MemoryPlan plan = plan_memory(options, config);
  if (plan.total() <= limit) return Status::ok();
  const KvCacheOptions kv = kv_cache_options(options, config);
  // The largest context that fits with this many sequences (the plan grows with the context).
  int lo = 0, hi = kv.max_context;
  while (lo < hi) {
    const int mid = lo + (hi - lo + 1) / 2;
    LoadOptions o = options;
    o.context = mid;
    if (mid >= 16 && plan_memory(o, config).total() <= limit) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const std::string fits =
      lo >= 16 ? fmt::format("at most --ctx {} fits with {} sequence(s)", lo, kv.max_sequences)
               : fmt::format("not even --ctx 16 fits with {} sequence(s)", kv.max_sequences);
  return Error(
      "not enough memory for a context of {} tokens x {} sequence(s): the KV cache needs {} and "
      "activations about {} ({} in all), but {} is available ({}); {}. Lower {}.",
      kv.max_context, kv.max_sequences, format_bytes(static_cast<double>(plan.kv_bytes)),
      format_bytes(static_cast<double>(plan.activation_bytes)),
      format_bytes(static_cast<double>(plan.total())), format_bytes(static_cast<double>(limit)),
      source, fits, options.fit_hint);
}

Status check_memory_fits(const LoadOptions& options, const ModelConfig& config,
                         const std::string& device) {
  if (options.max_memory > 0) {
    return check_plan_fits(options, config, options.max_memory, "--max-memory");
  }
  if (device == "cuda") return Status::ok();
  auto avail = available_host_memory();
  if (!avail) return Status::ok();  // no /proc/meminfo (not Linux): nothing to compare against
  return check_plan_fits(options, config, avail->bytes, avail->source);
}

}  // namespace gptoss::engine
