// Loads a model directory on a device and adapts it to the engine's Runner: the one place where
// generate, run and serve turn "MODEL --device D" into something that produces logits.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "engine/runner.h"
#include "model/config.h"
#include "model/dense_q8.h"
#include "model/kv_cache.h"

namespace gptoss::engine {

struct LoadOptions {
  std::string device = "auto";  // auto (default_device()), cpu, cpu-fast, cuda
  int threads = 0;              // cpu threads; 0 = one per hardware thread
  // Storage of the attention and unembedding matrices: as in the checkpoint (bf16), or converted
  // to Q8_0 at load (q8: cpu and cpu-fast only; model/dense_q8.h).
  DenseWeights dense_weights = DenseWeights::kBF16;
  int max_sequences = 1;        // sequences decoding at once (KV slots)
  int context = 8192;           // positions per sequence; clipped to the model's maximum
  int max_step_tokens = 256;    // tokens per sequence per forward step (prefill chunk)
  // Positions in the KV page pool shared by all sequences (model/kv_cache.h; rounded up to pages of
  // 16); 0: max_sequences x context, room for every sequence at full context.
  int64_t kv_tokens = 0;
  // Refuse to load when the KV cache and activations need more than this many bytes (0: what the
  // host has available, for the cpu devices); see memory_plan.h.
  size_t max_memory = 0;
  std::string fit_hint = "--ctx";  // the options a refusal tells the user to lower
  // cuda: decode steps (one token per sequence) through the fused CUDA-graph engine
  // (backend/cuda/decode_engine.h) instead of the op path, where the engine supports the model.
  // The environment variable GPTOSS_CUDA_GRAPH_DECODE overrides this when set: 0 off, 1 on (and
  // loading fails when the engine cannot take the model).
  bool cuda_graph_decode = true;
  // cuda: run one prefill step of max_step_tokens tokens on a scratch sequence at load (logits
  // dropped), so that every buffer and kernel of the prefill path is in place before the first
  // request (ModelRunner::warm_up). Counted in load_seconds.
  bool prefill_warm_up = true;
};

struct LoadedModelInfo {
  std::string dir;
  std::string layout;   // hf / original
  std::string device;   // the backend's name
  ModelConfig config;
  double load_seconds = 0;
  size_t kv_bytes = 0;
  Q8Report q8;  // what --dense-weights q8 converted
};

// Backends this build can use, in order of preference: "cuda" (when compiled in and a GPU is
// present), then "cpu-fast" (when cpu_fast_self_check() passes), then "cpu" (exact).
std::string default_device();

// The backend behind a device name: "cpu" (exact), "cpu-fast", "cuda" (when built). "auto" is
// resolved by the caller through default_device().
Expected<std::unique_ptr<Backend>> make_backend(const std::string& device, int threads);

// The KV cache load_runner allocates for these options on a model of this config (context clipped
// to the model's maximum, prefill chunk to the context): what `info` reports before anything loads.
KvCacheOptions kv_cache_options(const LoadOptions& options, const ModelConfig& config);

Expected<std::shared_ptr<Runner>> load_runner(const std::string& model_dir, const LoadOptions& options,
                                              LoadedModelInfo* info = nullptr);

}  // namespace gptoss::engine
