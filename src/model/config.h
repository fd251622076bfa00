// gpt-oss hyperparameters, parsed from HF config.json (either rope spelling), from the OpenAI
// original/config.json, and from generation_config.json. Every value is range-checked.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace gptoss {

struct ModelConfig {
  int num_layers = 0;
  int hidden_size = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int num_experts = 0;
  int experts_per_token = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  int sliding_window = 0;  // tokens, including the current one; 0 when no layer slides
  int max_position_embeddings = 0;
  float rope_theta = 0.0f;
  // YaRN. A config without scaling is represented as factor 1 (YaRN with factor 1 is plain RoPE).
  float rope_scaling_factor = 1.0f;
  float rope_beta_fast = 32.0f;
  float rope_beta_slow = 1.0f;
  int rope_original_max_position = 4096;
  bool rope_truncate = false;
  float rms_norm_eps = 1e-5f;
  float swiglu_limit = 7.0f;
  float swiglu_alpha = 1.702f;
  std::vector<bool> layer_is_sliding;  // num_layers entries
  std::vector<int> eos_token_ids;  // from generation_config.json, else config.json's eos_token_id
};

// HF config.json. `file_for_errors` names the file in messages. Missing optional fields take the
// defaults of transformers' GptOssConfig; `rope_scaling` (older) and `rope_parameters` (newer, with
// rope_theta inside) are both accepted.
Expected<ModelConfig> parse_hf_config(const std::string& json_text,
                                      const std::string& file_for_errors);

// original/config.json (OpenAI reference spelling: num_experts, rope_scaling_factor,
// rope_ntk_alpha, rope_ntk_beta, initial_context_length; rms eps fixed at 1e-5, even layers slide).
Expected<ModelConfig> parse_original_config(const std::string& json_text,
                                            const std::string& file_for_errors);

// generation_config.json: sets eos_token_ids from "eos_token_id" (an int or a list of ints).
Status apply_generation_config(const std::string& json_text, const std::string& file_for_errors,
                               ModelConfig* config);

// Range and consistency checks (sizes positive and bounded, heads divide, top-k <= experts, ...).
Status validate_config(const ModelConfig& config, const std::string& file_for_errors);

// gpt-oss-20b's architecture (config.json of openai/gpt-oss-20b; gpt-oss-model.md §1): for benches
// and memory plans without a checkpoint.
ModelConfig gpt_oss_20b_config();

}  // namespace gptoss
