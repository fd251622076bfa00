#include "tokenizer/vocab.h"

#include <sys/mman.h>

#include <cstring>

namespace gptoss {

std::unique_ptr<BpeVocab::Slot[], BpeVocab::FreeSlots> BpeVocab::allocate_table(size_t slots) {
  constexpr size_t kHugePage = 2u << 20;
  size_t bytes = (slots * sizeof(Slot) + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, bytes);
  if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  std::memset(p, 0, bytes);
  return std::unique_ptr<Slot[], FreeSlots>(static_cast<Slot*>(p));
}

void BpeVocab::reset(uint32_t count, size_t bytes_hint) {
  count_ = count;
  blob_.clear();
  blob_.reserve(bytes_hint);
  spans_.assign(count, Span{});
  table_.reset();
  mask_ = 0;
}

bool BpeVocab::set(uint32_t rank, std::string_view bytes) {
  if (rank >= count_ || spans_[rank].length != 0 || bytes.empty()) return false;
  spans_[rank] = Span{static_cast<uint32_t>(blob_.size()), static_cast<uint32_t>(bytes.size())};
  blob_.append(bytes);
  return true;
}

uint32_t BpeVocab::insert(uint32_t r) {
  std::string_view b = bytes(r);
  if (b.size() == 2) {
    uint32_t& pr =
        pair_rank_[(uint32_t{static_cast<uint8_t>(b[0])} << 8) | static_cast<uint8_t>(b[1])];
    if (pr != kNone) return pr;
    pr = r;
  }
  uint64_t prefix = 0;
  __builtin_memcpy(&prefix, b.data(), b.size() < 8 ? b.size() : 8);
  uint64_t h = hash(b.data(), b.size());
  uint32_t check = check_word(h, b.size());
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    Slot& slot = table_[i];
    if (slot.rank_plus1 == 0) {
      slot = Slot{prefix, r + 1, check};
      return kNone;
    }
    if (slot.check == check && slot.prefix == prefix && bytes(slot.rank_plus1 - 1) == b) {
      return slot.rank_plus1 - 1;
    }
  }
}

}  // namespace gptoss
