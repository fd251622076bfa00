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
  // The weights where they live in the same memory as the rest (cuda: the checkpoint's tensors, copied to the
  // GPU at load); 0 where they stay memory-mapped files (cpu devices).
  size_t weight_bytes = 0;
  size_t total() const { return kv_bytes + activation_bytes + decode_copies_bytes + weight_bytes; }
};

// options.device "auto" counts as cuda only when a GPU is usable here (default_device()). weight_bytes: as
// MemoryPlan::weight_bytes.
MemoryPlan plan_memory(const LoadOptions& options, const ModelConfig& config, size_t weight_bytes = 0);

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
                       const std::string& source, size_t weight_bytes = 0);

// check_plan_fits against options.max_memory when set (the weights not counted), else against the host's
// available memory for the cpu devices, and for cuda against the GPU's free memory with the checkpoint's
// weight_bytes counted (they are copied there). Where no figure can be had, nothing is checked.
Status check_memory_fits(const LoadOptions& options, const ModelConfig& config,
                         const std::string& device, size_t weight_bytes = 0);

}  // namespace gptoss::engine
