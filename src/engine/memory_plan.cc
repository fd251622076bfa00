#include "engine/memory_plan.h"

#include <cstdlib>
#include <string_view>

#include "backend/cuda/decode_engine.h"  // kDecodeDenseGemmMinBatch (a plain header, no CUDA types)
#ifdef GPTOSS_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"  // cuda_memory_info
#endif
#include "core/memory_info.h"
#include "engine/scheduler.h"
#include "model/forward.h"
#include "model/kv_cache.h"

namespace gptoss::engine {

MemoryPlan plan_memory(const LoadOptions& options, const ModelConfig& config, size_t weight_bytes) {
  const KvCacheOptions kv = kv_cache_options(options, config);
  MemoryPlan p;
  p.weight_bytes = weight_bytes;
  p.kv_bytes = KvCache::bytes_needed(config, kv);
  // The largest step: one decode row per sequence plus the scheduler's prefill budget; one logits
  // row per sequence, which the forward pass and the scheduler copy about three times on the host.
  const int rows = kv.max_sequences + SchedulerOptions{}.prefill_chunk_tokens;
  const size_t logits_host = size_t{3} * kv.max_sequences * config.vocab_size * sizeof(float);
  p.activation_bytes = Model::scratch_bytes(config, rows, kv.max_sequences) + logits_host;
  const std::string device = options.device == "auto" ? default_device() : options.device;
  if (makes_decode_dense_copies(options, config, device)) p.decode_copies_bytes = decode_dense_copies_bytes(config);
  return p;
}

size_t decode_dense_copies_bytes(const ModelConfig& c) {
  // f16_rows: rows x cols fp16 values + one f32 per row, for each copied matrix.
  auto copy = [](size_t rows, size_t cols) { return rows * cols * 2 + rows * 4; };
  const size_t H = static_cast<size_t>(c.hidden_size), Q = static_cast<size_t>(c.num_heads) * c.head_dim,
               KV = static_cast<size_t>(c.num_kv_heads) * c.head_dim;
  const size_t per_layer = copy(Q, H) + 2 * copy(KV, H) + copy(H, Q);
  return static_cast<size_t>(c.num_layers) * per_layer + copy(static_cast<size_t>(c.vocab_size), H);
}

bool makes_decode_dense_copies(const LoadOptions& options, const ModelConfig& config, const std::string& device) {
  if (device != "cuda" || config.head_dim != 64) return false;
  const char* graph = std::getenv("GPTOSS_CUDA_GRAPH_DECODE");
  const bool graph_on = graph != nullptr && *graph != '\0' ? std::string_view(graph) != "0" : options.cuda_graph_decode;
  if (!graph_on) return false;
  int threshold = cuda::kDecodeDenseGemmMinBatch;
  if (const char* v = std::getenv("GPTOSS_CUDA_DECODE_DENSE_GEMM_MIN"); v != nullptr && std::atoi(v) > 0) {
    threshold = std::atoi(v);
  }
  return kv_cache_options(options, config).max_sequences >= threshold;
}

Status check_plan_fits(const LoadOptions& options, const ModelConfig& config, size_t limit,
                       const std::string& source, size_t weight_bytes) {
  const MemoryPlan plan = plan_memory(options, config, weight_bytes);
  if (plan.total() <= limit) return Status::ok();
  const KvCacheOptions kv = kv_cache_options(options, config);
  // The largest context that fits with this many sequences (the plan grows with the context).
  int lo = 0, hi = kv.max_context;
  while (lo < hi) {
    const int mid = lo + (hi - lo + 1) / 2;
    LoadOptions o = options;
    o.context = mid;
    if (mid >= 16 && plan_memory(o, config, weight_bytes).total() <= limit) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const std::string fits =
      lo >= 16 ? fmt::format("at most --ctx {} fits with {} sequence(s)", lo, kv.max_sequences)
               : fmt::format("not even --ctx 16 fits with {} sequence(s)", kv.max_sequences);
  const std::string copies =
      plan.decode_copies_bytes > 0
          ? fmt::format(", plus {} for the batched cuda decode's fp16 weight copies",
                        format_bytes(static_cast<double>(plan.decode_copies_bytes)))
          : std::string();
  const std::string weights =
      plan.weight_bytes > 0 ? fmt::format(", plus {} for the weights", format_bytes(static_cast<double>(plan.weight_bytes)))
                            : std::string();
  return Error(
      "not enough memory for a context of {} tokens x {} sequence(s): the KV cache needs {} and "
      "activations about {}{}{} ({} in all), but {} is available ({}); {}. Lower {}{}.",
      kv.max_context, kv.max_sequences, format_bytes(static_cast<double>(plan.kv_bytes)),
      format_bytes(static_cast<double>(plan.activation_bytes)), copies, weights,
      format_bytes(static_cast<double>(plan.total())), format_bytes(static_cast<double>(limit)),
      source, fits, options.fit_hint, plan.weight_bytes >= limit ? ", or use a device with more memory" : "");
}

Status check_memory_fits(const LoadOptions& options, const ModelConfig& config,
                         const std::string& device, size_t weight_bytes) {
  LoadOptions o = options;
  o.device = device;  // the resolved device decides what the plan counts
  if (options.max_memory > 0) {
    return check_plan_fits(o, config, options.max_memory, "--max-memory");
  }
  if (device == "cuda") {
#ifdef GPTOSS_HAVE_CUDA
    size_t free_bytes = 0, total_bytes = 0;
    std::string name;
    if (!cuda_memory_info(0, &free_bytes, &total_bytes, &name)) return Status::ok();
    return check_plan_fits(o, config, free_bytes,
                           fmt::format("free on cuda:{}, of {}", name, format_bytes(static_cast<double>(total_bytes))),
                           weight_bytes);
#else
    (void)weight_bytes;  // no GPU query in a build without CUDA
    return Status::ok();
#endif
  }
  auto avail = available_host_memory();
  if (!avail) return Status::ok();  // no /proc/meminfo (not Linux): nothing to compare against
  return check_plan_fits(options, config, avail->bytes, avail->source);
}

}  // namespace gptoss::engine
