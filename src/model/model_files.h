// A model directory as users have it: HF layout (config.json + model.safetensors.index.json with
// shards, or one model.safetensors), or OpenAI's original/ layout, opened and fully validated.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "formats/safetensors.h"
#include "model/config.h"

namespace gptoss {

enum class CheckpointLayout { kHF, kOriginal };
const char* layout_name(CheckpointLayout layout);  // "hf" / "original"

struct ModelFiles {
  std::string dir;  // the directory holding the checkpoint's config.json
  CheckpointLayout layout = CheckpointLayout::kHF;
  ModelConfig config;
  TensorStore tensors;
  std::vector<std::string> config_files;      // config.json (+ generation_config.json)
  std::optional<std::string> tokenizer_json;  // path, when present
};

struct OpenOptions {
  // Check that the tensor set is exactly the one the config implies (names, dtypes, shapes).
  bool validate_tensors = true;
};

// `dir` is an HF root (index + shards, or a single model.safetensors), an original/ directory, or a
// parent whose only checkpoint is original/.
Expected<ModelFiles> open_model_dir(const std::string& dir, const OpenOptions& options = {});

// model.safetensors.index.json, parsed from its bytes ({"metadata": {...}, "weight_map": {tensor:
// file}}) without touching the file system. Every shard name is a relative path inside the index's
// directory (not empty, not absolute, no "..", no NUL). `path` names the file in errors.
struct SafetensorsIndex {
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard file name
  std::vector<std::pair<std::string, std::string>> shards;  // shard name -> first tensor, sorted
};
Expected<SafetensorsIndex> parse_safetensors_index(std::string_view text, const std::string& path);

// One tensor the config implies.
struct ExpectedTensor {
  std::string name;
  DType dtype;  // bf16 for dense tensors, u8 for MXFP4 blocks and scales
  std::vector<int64_t> shape;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config, CheckpointLayout layout);

// Missing and unexpected tensor names, and wrong dtypes or shapes, all listed in one error.
// Dense tensors may be BF16 or F32 (a float32 export); MXFP4 blocks/scales must be U8.
Status validate_tensor_set(const ModelFiles& files);
Status validate_tensor_set(const TensorStore& tensors, const ModelConfig& config,
                           CheckpointLayout layout);

// What `gptoss info` reports about the weights. MXFP4 block bytes hold two weights each; scale
// bytes are not counted as parameters. Active parameters per token count the embedding, the
// router and experts_per_token of the num_experts experts, not the unembedding (the model card's
// convention: 3.61 B for gpt-oss-20b).
struct WeightSummary {
  uint64_t tensors = 0;
  uint64_t bytes_total = 0;
  uint64_t bytes_bf16 = 0;
  uint64_t bytes_f32 = 0;
  uint64_t bytes_mxfp4_blocks = 0;
  uint64_t bytes_mxfp4_scales = 0;
  uint64_t bytes_other = 0;
  uint64_t parameters = 0;
  uint64_t active_parameters = 0;
};
WeightSummary summarize_weights(const std::vector<TensorView>& tensors, const ModelConfig& config,
                                CheckpointLayout layout);

}  // namespace gptoss
