// The gpt-oss weights of either checkpoint layout (HF root or OpenAI original/) bound to one
// per-layer struct of backend weights. Dense tensors are used as stored (BF16, or F32 exports);
// experts stay MXFP4 blocks + scales. The cpu backend reads them in place from the file mapping.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "model/dense_q8.h"
#include "model/model_files.h"

namespace gptoss {

struct LayerWeights {
  bool sliding = false;
  Weight attn_norm;           // [1, H]
  Weight q, k, v;             // [Nq*D, H], [Nkv*D, H], [Nkv*D, H] (row slices of qkv in original/)
  Weight q_bias, k_bias, v_bias;
  Weight o, o_bias;           // [H, Nq*D], [1, H]
  Weight sinks;               // [1, Nq]
  Weight mlp_norm;            // [1, H]
  Weight router, router_bias; // [E, H], [1, E]
  Mxfp4Experts mlp1;          // [E, 2I, H] interleaved gate/up rows
  Weight mlp1_bias;           // [E, 2I]
  Mxfp4Experts mlp2;          // [E, H, I]
  Weight mlp2_bias;           // [E, H]
};

struct ModelWeights {
  Weight embedding;    // [V, H]
  std::vector<LayerWeights> layers;
  Weight final_norm;   // [1, H]
  Weight unembedding;  // [V, H]
};

struct BindOptions {
  // kQ8: q, k, v, o and the unembedding are converted to Q8_0 (dense_q8.h) instead of borrowed.
  DenseWeights dense = DenseWeights::kBF16;
  int threads = 1;               // for the conversion
  Q8Report* report = nullptr;    // filled when the weights are converted
};

// Every name, dtype and shape is checked; errors name the file and the tensor.
Expected<ModelWeights> bind_weights(const ModelFiles& files, Backend& backend, const BindOptions& options = {});

}  // namespace gptoss
