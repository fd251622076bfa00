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
  // cuda: the fp16 copies of q/k/v/o and the unembedding (with one f32 scale per row) that the
  // graph decode engine makes at load when batches reach its dense-GEMM threshold
  // (decode_dense_copies_bytes); 0 when it will not make them.
  size_t decode_copies_bytes = 0;
  size_t total() const { return kv_bytes + activation_bytes + decode_copies_bytes; }
};

// options.device "auto" counts as cuda only when a GPU is usable here (default_device()).
MemoryPlan plan_memory(const LoadOptions& options, const ModelConfig& config);

// Bytes of the graph decode engine's fp16 weight copies for this model (backend/cuda/decode_engine.h,
// DecodeOptions::dense_gemm_min_batch), and whether loading with `options` on `device` makes them:
// cuda, graph decode on (LoadOptions::cuda_graph_decode, GPTOSS_CUDA_GRAPH_DECODE), head_dim 64, and
// max_sequences at least the dense-GEMM threshold (kDecodeDenseGemmMinBatch or
// GPTOSS_CUDA_DECODE_DENSE_GEMM_MIN).
size_t decode_dense_copies_bytes(const ModelConfig& config);
bool makes_decode_dense_copies(const LoadOptions& options, const ModelConfig& config, const std::string& device);

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
