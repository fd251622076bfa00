// The lab tools' model (gptoss_cuda_lab bench / batched, gptoss_cuda_timeline): gpt-oss-20b's shapes
// with random weights generated on CUDA device 0, the same weights (seed 7) in every tool.
#pragma once

#include <memory>
#include <utility>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/decode_engine.h"
#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"

namespace gptoss::cuda {

struct RandomModel {
  std::unique_ptr<Backend> backend;  // owns the weights' device memory: declared first, destroyed last
  ModelConfig config;
  ModelWeights weights;
};

inline Expected<RandomModel> random_20b_model() {
  RandomModel m;
  GPTOSS_ASSIGN_OR_RETURN(m.backend, make_cuda_backend(0));
  m.config = gpt_oss_20b_config();
  GPTOSS_ASSIGN_OR_RETURN(m.weights, random_weights(*m.backend, m.config, 7));
  return m;
}

}  // namespace gptoss::cuda
