#include "model/kv_cache.h"

#include <algorithm>

namespace gptoss {
namespace {

// Positions one sequence keeps in layer l: the whole context, or the sliding ring.
int layer_capacity(const ModelConfig& c, const KvCacheOptions& o, int l) {
  const bool sliding = l < static_cast<int>(c.layer_is_sliding.size()) && c.layer_is_sliding[l] &&
                       c.sliding_window > 0;
  return sliding ? std::min(o.max_context, c.sliding_window + o.max_step_tokens - 1) : o.max_context;
}

size_t layer_bytes(const ModelConfig& c, const KvCacheOptions& o, int l) {  // keys or values alone
  return static_cast<size_t>(o.max_sequences) * layer_capacity(c, o, l) * c.num_kv_heads * c.head_dim *
         sizeof(float);
}

}  // namespace

size_t KvCache::bytes_needed(const ModelConfig& c, const KvCacheOptions& o) {
  size_t n = 0;
  for (int l = 0; l < c.num_layers; ++l) n += 2 * layer_bytes(c, o, l);
  return n;
}

Expected<KvCache> KvCache::create(Backend& backend, const ModelConfig& c, const KvCacheOptions& o) {
  if (o.max_sequences < 1 || o.max_context < 1 || o.max_step_tokens < 1) {
    return Error("kv cache: max_sequences ({}), max_context ({}) and max_step_tokens ({}) must be >= 1",
                 o.max_sequences, o.max_context, o.max_step_tokens);
  }
  KvCache cache;
  cache.options_ = o;
  cache.lengths_.assign(o.max_sequences, 0);
  cache.used_.assign(o.max_sequences, false);
  for (int l = 0; l < c.num_layers; ++l) {
    KvLayer kv;
    kv.slots = o.max_sequences;
    kv.capacity = layer_capacity(c, o, l);
    kv.kv_heads = c.num_kv_heads;
    kv.head_dim = c.head_dim;
    const size_t bytes = layer_bytes(c, o, l);
    auto k = backend.alloc(bytes);
    if (!k) return k.status().with_context(fmt::format("kv cache layer {}", l));
    auto v = backend.alloc(bytes);
    if (!v) return v.status().with_context(fmt::format("kv cache layer {}", l));
    kv.k = std::move(*k);
    kv.v = std::move(*v);
    cache.layers_.push_back(std::move(kv));
  }
  return cache;
}

Expected<int> KvCache::new_sequence() {
  for (int s = 0; s < options_.max_sequences; ++s) {
    if (!used_[s]) {
      used_[s] = true;
      lengths_[s] = 0;
      return s;
    }
  }
  return Error("kv cache: all {} sequence slots are in use", options_.max_sequences);
}

void KvCache::free_sequence(int sequence) {
  if (sequence >= 0 && sequence < options_.max_sequences) {
    used_[sequence] = false;
    lengths_[sequence] = 0;
  }
}

bool KvCache::in_use(int sequence) const {
  return sequence >= 0 && sequence < options_.max_sequences && used_[sequence];
}

size_t KvCache::bytes() const {
  size_t n = 0;
  for (const auto& l : layers_) n += l.k.bytes + l.v.bytes;
  return n;
}

}  // namespace gptoss
