// KV memory for up to max_sequences independent sequences, owned by the backend.
//
// Sliding-window layers keep a per-sequence ring of window + max_step_tokens - 1 positions: enough
// that storing one forward step's new keys never overwrites a key that a query of the same step
// still sees (small, so they stay per slot and are not paged).
//
// Full-attention layers are paged when page_size > 0: every layer has a pool of pages of
// page_size positions, shared by all sequences, and one page table (the same for every layer) maps
// a sequence's position p to page table[seq][p / page_size]. Pages are taken as a sequence grows
// (reserve) and returned by free_sequence, so short sequences hold little memory and the pool can
// be smaller than max_sequences * max_context (pool_tokens). page_size 0 keeps the contiguous layout
// [slots][max_context] of earlier versions (backend/backend.h KvLayer).
//
// Admission: new_sequence(max_tokens) promises the sequence pages for max_tokens positions, taken
// only as it grows; can_start(tokens) says whether a sequence of that size can be promised its pages
// now, so a scheduler that only starts what can_start accepts never runs out of pages mid-sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace gptoss {

// 16 positions per page: at most 15 positions per sequence and layer are held but unused, and a
// page holds 16 rows of kv_heads * head_dim floats (32 KiB of K for gpt-oss), far larger than the
// attention kernels' reads of one row at a time, so the page boundary costs nothing measurable
// there; a smaller page only lengthens the table.
inline constexpr int kDefaultKvPageSize = 16;

struct KvCacheOptions {
  int max_sequences = 1;
  int max_context = 4096;     // positions per sequence
  int max_step_tokens = 128;  // new tokens per sequence in one forward step (longer pieces are split)
  // Positions per page of full-attention layers; 0: not paged (engine::kv_cache_options pages the
  // caches of the backends that read a paged one).
  int page_size = 0;
  // Positions in the page pool of full-attention layers, shared by all sequences (rounded up to
  // whole pages); 0: max_sequences * max_context, the memory of an unpaged cache.
  int64_t pool_tokens = 0;
  // Nonzero: pages are handed out in an order shuffled with this seed instead of ascending (tests:
  // a sequence's pages are then scattered over the pool, nothing is contiguous by accident).
  uint32_t shuffle_pages_seed = 0;
};

class KvCache {
 public:
  // Move-only: the layers point into the page table.
  KvCache() = default;
  KvCache(KvCache&&) noexcept = default;
  KvCache& operator=(KvCache&&) noexcept = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  static Expected<KvCache> create(Backend& backend, const ModelConfig& config, const KvCacheOptions& options);
  // Bytes create() allocates for these options (keys and values, every layer), without allocating:
  // what callers check against the memory they have before asking for it.
  static size_t bytes_needed(const ModelConfig& config, const KvCacheOptions& options);
  // Pages of the pool for these options (0 when not paged).
  static int64_t pool_pages(const ModelConfig& config, const KvCacheOptions& options);

  // A free sequence slot with no history, promised pages for max_tokens positions (0: none promised;
  // its pages are then taken from what no other sequence was promised). Fails when all slots are
  // taken or the promise does not fit (can_start).
  Expected<int> new_sequence(int max_tokens = 0);
  void free_sequence(int sequence);
  bool in_use(int sequence) const;
  int length(int sequence) const { return lengths_[sequence]; }  // tokens stored = next position
  // Takes the pages a sequence needs to hold `length` positions (before the step that writes them).
  // Fails, taking nothing more, when the pool has no page left that is not promised to another
  // sequence; the message names the sizes.
  Status reserve(int sequence, int length);
  void advance(int sequence, int tokens) { lengths_[sequence] += tokens; }

  // Whether a sequence of up to `tokens` positions can be started now (a free slot, and pages for it
  // that are not promised to others), and whether it ever could (the error names the sizes).
  bool can_start(int tokens) const;
  Status can_ever_fit(int tokens) const;

  // Copies the page table into backend memory when it changed since the last copy (device
  // backends read it there).
  Status sync_page_table(Backend& backend);

  const KvLayer& layer(int l) const { return layers_[l]; }
  const KvCacheOptions& options() const { return options_; }
  size_t bytes() const;
  bool paged() const { return options_.page_size > 0; }
  int64_t total_pages() const { return pages_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }

 private:
  int64_t pages_for(int64_t tokens) const;
  int64_t unpromised_pages() const;  // free pages not promised to a sequence in use

  KvCacheOptions options_;
  std::vector<KvLayer> layers_;
  std::vector<int> lengths_;
  std::vector<bool> used_;
  // Paging (full-attention layers).
  int64_t pages_ = 0;
  int pages_per_slot_ = 0;
  std::vector<int32_t> table_;   // [max_sequences][pages_per_slot], -1 where no page is held
  std::vector<int32_t> free_;    // free pages; the next taken is free_.back()
  std::vector<int> taken_;       // pages held per sequence
  std::vector<int> promised_;    // pages promised per sequence (new_sequence's max_tokens)
  Buffer table_device_;
  bool table_dirty_ = true;
};

}  // namespace gptoss
