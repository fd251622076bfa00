#include "tokenizer/vocab.h"

namespace gptoss {

void BpeVocab::reset(uint32_t count, size_t bytes_hint) {
  count_ = count;
  blob_.clear();
  blob_.reserve(bytes_hint);
  spans_.assign(count, Span{});
  table_.clear();
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
  uint64_t h = hash(b.data(), b.size());
  uint32_t tag = static_cast<uint32_t>(h >> 32);
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    uint64_t slot = table_[i];
    if (slot == 0) {
      table_[i] = (uint64_t{tag} << 32) | (uint64_t{r} + 1);
      return kNone;
    }
    if (static_cast<uint32_t>(slot >> 32) == tag) {
      uint32_t other = static_cast<uint32_t>(slot) - 1;
      if (bytes(other) == b) return other;
    }
  }
}

}  // namespace gptoss
