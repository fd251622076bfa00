// KV memory for up to max_sequences independent sequences, owned by the backend. Full-attention
// layers keep the whole history (max_context positions); sliding layers keep a ring of
// window + max_step_tokens - 1 positions: enough that storing one forward step's new keys never
// overwrites a key that a query of the same step still sees.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace gptoss {

struct KvCacheOptions {
  int max_sequences = 1;
  int max_context = 4096;     // positions per sequence
  int max_step_tokens = 128;  // new tokens per sequence in one forward step (longer pieces are split)
};

class KvCache {
 public:
  static Expected<KvCache> create(Backend& backend, const ModelConfig& config, const KvCacheOptions& options);
  // Bytes create() allocates for these options (keys and values, every layer), without allocating:
  // what callers check against the memory they have before asking for it.
  static size_t bytes_needed(const ModelConfig& config, const KvCacheOptions& options);

  // A free sequence slot with no history; fails when all are taken.
  Expected<int> new_sequence();
  void free_sequence(int sequence);
  bool in_use(int sequence) const;
  int length(int sequence) const { return lengths_[sequence]; }  // tokens stored = next position
  void advance(int sequence, int tokens) { lengths_[sequence] += tokens; }

  const KvLayer& layer(int l) const { return layers_[l]; }
  const KvCacheOptions& options() const { return options_; }
  size_t bytes() const;

 private:
  KvCacheOptions options_;
  std::vector<KvLayer> layers_;
  std::vector<int> lengths_;
  std::vector<bool> used_;
};

}  // namespace gptoss
