// The gpt-oss forward pass (gpt-oss-model.md §2), written once against the Backend op set:
// embedding; per layer RMSNorm, q/k/v with bias, YaRN RoPE, attention with sinks (sliding window
// on sliding layers, GQA), o-proj, RMSNorm, router top-k then softmax, MXFP4 experts with clamped
// SwiGLU, weighted sum; final RMSNorm; unembedding.
//
// One forward call runs a batch of pieces, each a run of new tokens appended to one sequence of a
// KvCache (prefill = a long piece, decode = a one-token piece; several sequences per call).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/kv_cache.h"
#include "model/model_files.h"
#include "model/weights.h"

namespace gptoss {

struct ForwardPiece {
  int sequence = -1;                  // a slot from KvCache::new_sequence()
  std::span<const uint32_t> tokens;   // appended at the sequence's next positions
  bool all_logits = false;            // logits of every token, else of the last one only
};

class Model {
 public:
  // Takes the opened files (their mappings back the weights) and binds them on `backend`, which
  // must outlive the model.
  static Expected<std::unique_ptr<Model>> create(ModelFiles files, Backend& backend,
                                                 const BindOptions& options = {});

  const ModelConfig& config() const { return files_.config; }
  const ModelFiles& files() const { return files_; }
  Backend& backend() const { return backend_; }
  const ModelWeights& weights() const { return weights_; }  // bound on backend()
  // What --dense-weights q8 converted (converted = false for bf16).
  const Q8Report& q8_report() const { return q8_report_; }

  // Activation scratch that forward steps of up to `rows` token rows and `logit_rows` logits rows
  // allocate (what reserve() grows to), computed without allocating (memory planning).
  static size_t scratch_bytes(const ModelConfig& config, int rows, int logit_rows);

  Expected<KvCache> new_cache(const KvCacheOptions& options) const {
    return KvCache::create(backend_, files_.config, options);
  }

  // Appends to `logits` (row-major, vocab_size floats per row) the rows of each piece in piece order:
  // every token's row for all_logits pieces, else the last token's row. A sequence may appear in
  // at most one piece per call. Pieces longer than the cache's max_step_tokens run in several steps.
  Status forward(std::span<const ForwardPiece> pieces, KvCache& cache, std::vector<float>* logits);

 private:
  Model(ModelFiles files, Backend& backend) : files_(std::move(files)), backend_(backend) {}

  struct Row {  // one token row of a step
    uint32_t token;
    int32_t slot;
    int32_t position;
  };
  // Runs every layer over the rows, then the unembedding of rows `out_rows` into `logits`.
  Status step(const std::vector<Row>& rows, const std::vector<int32_t>& out_rows, KvCache& cache,
              float* logits);
  Status reserve(int T, int R);

  ModelFiles files_;
  Backend& backend_;
  ModelWeights weights_;
  Q8Report q8_report_;
  std::vector<float> inv_freq_;
  float concentration_ = 1.0f;

  // Activation scratch in backend memory, grown on demand: T rows, R logits rows.
  int cap_rows_ = 0;
  int cap_logit_rows_ = 0;
  Buffer x_, xn_, q_, k_, v_, attn_, tmp_, router_, idx_, route_w_, h_, gathered_, logits_;
};

}  // namespace gptoss
