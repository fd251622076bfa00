#include "model/kv_cache.h"

#include <algorithm>
#include <random>

namespace gptoss {
namespace {

bool layer_sliding(const ModelConfig& c, int l) {
  return l < static_cast<int>(c.layer_is_sliding.size()) && c.layer_is_sliding[l] && c.sliding_window > 0;
}

// Positions one sequence keeps in layer l: the whole context, or the sliding ring.
int layer_capacity(const ModelConfig& c, const KvCacheOptions& o, int l) {
  return layer_sliding(c, l) ? std::min(o.max_context, c.sliding_window + o.max_step_tokens - 1) : o.max_context;
}

bool layer_paged(const ModelConfig& c, const KvCacheOptions& o, int l) {
  return o.page_size > 0 && !layer_sliding(c, l);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows (positions) of layer l's K or V.
int64_t layer_rows(const ModelConfig& c, const KvCacheOptions& o, int l) {
  if (layer_paged(c, o, l)) return KvCache::pool_pages(c, o) * o.page_size;
  return static_cast<int64_t>(o.max_sequences) * layer_capacity(c, o, l);
}

size_t layer_bytes(const ModelConfig& c, const KvCacheOptions& o, int l) {  // keys or values alone
  return static_cast<size_t>(layer_rows(c, o, l)) * c.num_kv_heads * c.head_dim * sizeof(float);
}

}  // namespace

int64_t KvCache::pool_pages(const ModelConfig& c, const KvCacheOptions& o) {
  (void)c;
  if (o.page_size <= 0) return 0;
  if (o.pool_tokens > 0) return ceil_div(o.pool_tokens, o.page_size);
  return static_cast<int64_t>(o.max_sequences) * ceil_div(o.max_context, o.page_size);
}

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
  if (o.page_size < 0 || o.pool_tokens < 0) {
    return Error("kv cache: page_size ({}) and pool_tokens ({}) must be >= 0", o.page_size, o.pool_tokens);
  }
  KvCache cache;
  cache.options_ = o;
  cache.lengths_.assign(o.max_sequences, 0);
  cache.used_.assign(o.max_sequences, false);
  cache.taken_.assign(o.max_sequences, 0);
  cache.promised_.assign(o.max_sequences, 0);
  if (o.page_size > 0) {
    cache.pages_ = pool_pages(c, o);
    if (cache.pages_ > INT32_MAX / std::max(1, o.page_size)) {
      return Error("kv cache: a pool of {} pages of {} positions is too large", cache.pages_, o.page_size);
    }
    cache.pages_per_slot_ = static_cast<int>(ceil_div(o.max_context, o.page_size));
    cache.table_.assign(static_cast<size_t>(o.max_sequences) * cache.pages_per_slot_, -1);
    cache.free_.resize(static_cast<size_t>(cache.pages_));
    // Taken from the back: ascending page order, or a shuffled one.
    for (int64_t i = 0; i < cache.pages_; ++i) cache.free_[i] = static_cast<int32_t>(cache.pages_ - 1 - i);
    if (o.shuffle_pages_seed != 0) {
      std::mt19937 rng(o.shuffle_pages_seed);
      std::shuffle(cache.free_.begin(), cache.free_.end(), rng);
    }
    auto t = backend.alloc(std::max<size_t>(1, cache.table_.size()) * sizeof(int32_t));
    if (!t) return t.status().with_context("kv cache page table");
    cache.table_device_ = std::move(*t);
  }
  for (int l = 0; l < c.num_layers; ++l) {
    KvLayer kv;
    kv.slots = o.max_sequences;
    kv.capacity = layer_capacity(c, o, l);
    kv.kv_heads = c.num_kv_heads;
    kv.head_dim = c.head_dim;
    if (layer_paged(c, o, l)) {
      kv.page_size = o.page_size;
      kv.pages = static_cast<int>(cache.pages_);
      kv.pages_per_slot = cache.pages_per_slot_;
      kv.page_table = cache.table_.data();
      kv.page_table_device = cache.table_device_.as<int32_t>();
    }
    const size_t bytes = layer_bytes(c, o, l);
    auto k = backend.alloc(bytes);
    if (!k) return k.status().with_context(fmt::format("kv cache layer {}", l));
    auto v = backend.alloc(bytes);
    if (!v) return v.status().with_context(fmt::format("kv cache layer {}", l));
    kv.k = std::move(*k);
    kv.v = std::move(*v);
    cache.layers_.push_back(std::move(kv));
  }
  GPTOSS_RETURN_IF_ERROR(cache.sync_page_table(backend));
  return cache;
}

int64_t KvCache::pages_for(int64_t tokens) const {
  return paged() ? ceil_div(std::max<int64_t>(tokens, 0), options_.page_size) : 0;
}

int64_t KvCache::unpromised_pages() const {
  int64_t owed = 0;
  for (int s = 0; s < options_.max_sequences; ++s) {
    if (used_[s]) owed += std::max(0, promised_[s] - taken_[s]);
  }
  return static_cast<int64_t>(free_.size()) - owed;
}

bool KvCache::can_start(int tokens) const {
  if (std::find(used_.begin(), used_.end(), false) == used_.end()) return false;
  return pages_for(std::min(tokens, options_.max_context)) <= unpromised_pages();
}

Status KvCache::can_ever_fit(int tokens) const {
  if (pages_for(std::min(tokens, options_.max_context)) <= pages_) return Status::ok();
  return Error("a sequence of {} tokens needs {} KV pages of {} positions, but the whole pool holds {} pages "
               "({} tokens); raise --kv-tokens or lower max_tokens",
               tokens, pages_for(tokens), options_.page_size, pages_, pages_ * options_.page_size);
}

Expected<int> KvCache::new_sequence(int max_tokens) {
  for (int s = 0; s < options_.max_sequences; ++s) {
    if (!used_[s]) {
      const int64_t want = pages_for(std::min(max_tokens, options_.max_context));
      if (want > unpromised_pages()) {
        return Error("kv cache: a sequence of {} tokens needs {} pages of {} positions; {} of the pool's {} are "
                     "free and not promised to running sequences",
                     max_tokens, want, options_.page_size, unpromised_pages(), pages_);
      }
      used_[s] = true;
      lengths_[s] = 0;
      taken_[s] = 0;
      promised_[s] = static_cast<int>(want);
      return s;
    }
  }
  return Error("kv cache: all {} sequence slots are in use", options_.max_sequences);
}

Status KvCache::reserve(int sequence, int length) {
  if (!in_use(sequence)) return Error("kv cache: sequence {} is not open", sequence);
  if (length > options_.max_context) {
    return Error("kv cache: sequence {} would hold {} positions; the cache holds at most {}", sequence, length,
                 options_.max_context);
  }
  if (!paged()) return Status::ok();
  const int64_t need = pages_for(length);
  int32_t* row = table_.data() + static_cast<size_t>(sequence) * pages_per_slot_;
  while (taken_[sequence] < need) {
    // Within its promise a sequence takes a free page that is owed to it; beyond it, only one that is
    // owed to nobody.
    if (taken_[sequence] >= promised_[sequence] && unpromised_pages() <= 0) {
      return Error("kv cache: out of pages: sequence {} needs {} positions ({} pages of {}), holds {}; all {} "
                   "pages of the pool ({} tokens) are held by or promised to running sequences",
                   sequence, length, need, options_.page_size, taken_[sequence], pages_, pages_ * options_.page_size);
    }
    row[taken_[sequence]++] = free_.back();
    free_.pop_back();
    table_dirty_ = true;
  }
  return Status::ok();
}

void KvCache::free_sequence(int sequence) {
  if (sequence >= 0 && sequence < options_.max_sequences) {
    if (paged()) {
      int32_t* row = table_.data() + static_cast<size_t>(sequence) * pages_per_slot_;
      // Back in reverse, so the next sequence takes them in the order this one did.
      for (int i = taken_[sequence] - 1; i >= 0; --i) {
        free_.push_back(row[i]);
        row[i] = -1;
      }
      if (taken_[sequence] > 0) table_dirty_ = true;
    }
    used_[sequence] = false;
    lengths_[sequence] = 0;
    taken_[sequence] = 0;
    promised_[sequence] = 0;
  }
}

bool KvCache::in_use(int sequence) const {
  return sequence >= 0 && sequence < options_.max_sequences && used_[sequence];
}

Status KvCache::sync_page_table(Backend& backend) {
  if (!paged() || !table_dirty_) return Status::ok();
  GPTOSS_RETURN_IF_ERROR(backend.upload(table_.data(), table_.size() * sizeof(int32_t), table_device_.data));
  table_dirty_ = false;
  return Status::ok();
}

size_t KvCache::bytes() const {
  size_t n = 0;
  for (const auto& l : layers_) n += l.k.bytes + l.v.bytes;
  return n;
}

}  // namespace gptoss
