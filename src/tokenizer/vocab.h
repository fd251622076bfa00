// The ordinary (BPE) tokens of a byte-level vocabulary: token bytes by id (id = rank) and a
// rank lookup from bytes. Loaded once, then read-only.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gptoss {

class BpeVocab {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  // Starts an empty vocabulary of `count` tokens; fill with set(), then finish().
  void reset(uint32_t count, size_t bytes_hint);
  // Appends the bytes of the token with this rank. Ranks may come in any order.
  // Returns false if the rank is out of range or already set.
  bool set(uint32_t rank, std::string_view bytes);
  // Builds the lookup table; fails on a missing rank, a duplicate token or missing single bytes.
  // `describe(rank)` names where a token came from (file:line) for the error message.
  template <typename Describe>
  Status finish(Describe&& describe);

  uint32_t size() const { return count_; }
  // Token bytes; at least 16 bytes after the start of every token are readable (the blob is
  // padded).
  std::string_view bytes(uint32_t rank) const {
    return {blob_.data() + spans_[rank].offset, spans_[rank].length};
  }
  // Rank of the token with exactly these bytes, or kNone. One cache line per probe: a slot holds
  // the first 8 bytes, the length and the rank, so tokens of up to 8 bytes never touch the blob.
  uint32_t rank(const char* p, size_t n) const {
    if (n == 2)
      return pair_rank_[(uint32_t{static_cast<uint8_t>(p[0])} << 8) | static_cast<uint8_t>(p[1])];
    uint64_t prefix = 0;
    __builtin_memcpy(&prefix, p, n < 8 ? n : 8);
    return probe(p, n, prefix, hash(p, n));
  }
  // Same, for a piece followed by at least 8 readable bytes (no variable-length copies).
  uint32_t rank_padded(const char* p, size_t n) const {
    if (n == 2)
      return pair_rank_[(uint32_t{static_cast<uint8_t>(p[0])} << 8) | static_cast<uint8_t>(p[1])];
    return probe(p, n, load_masked(p, n < 8 ? n : 8), hash_padded(p, n));
  }
  uint32_t byte_rank(uint8_t b) const { return byte_rank_[b]; }

  static uint64_t load_masked(const char* p, size_t n) {  // 1 <= n <= 8, 8 bytes readable
    uint64_t w;
    __builtin_memcpy(&w, p, 8);
    return n >= 8 ? w : w & ((uint64_t{1} << (8 * n)) - 1);
  }
  static uint64_t hash_padded(const char* p, size_t n) { return hash_bytes<true>(p, n); }
  static uint64_t hash(const char* p, size_t n) { return hash_bytes<false>(p, n); }
  // kPadded: 8 bytes after the last full word are readable, so the tail is one masked load
  // instead of a variable-length copy; the hash is the same either way.
  template <bool kPadded>
  static uint64_t hash_bytes(const char* p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
      uint64_t w;
      __builtin_memcpy(&w, p, 8);
      h = mix(h ^ w);
      p += 8;
      n -= 8;
    }
    if (n > 0) {
      uint64_t w = 0;
      if constexpr (kPadded) {
        w = load_masked(p, n);
      } else {
        __builtin_memcpy(&w, p, n);
      }
      h = mix(h ^ w ^ (uint64_t{n} << 59));
    }
    return mix(h);
  }

 private:
  uint32_t probe(const char* p, size_t n, uint64_t prefix, uint64_t h) const {
    uint32_t check = check_word(h, n);
    for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = table_[i];
      if (slot.rank_plus1 == 0) return kNone;
      if (slot.check == check && slot.prefix == prefix) {
        uint32_t r = slot.rank_plus1 - 1;
        if (n <= 8) return r;
        const Span& sp = spans_[r];
        if (sp.length == n && __builtin_memcmp(blob_.data() + sp.offset + 8, p + 8, n - 8) == 0)
          return r;
      }
    }
  }
  // Length (low 8 bits, capped) and 24 hash bits: a cheap filter before comparing bytes.
  static uint32_t check_word(uint64_t h, size_t n) {
    return static_cast<uint32_t>((h >> 40) << 8) | static_cast<uint32_t>(n < 255 ? n : 255);
  }
  static uint64_t mix(uint64_t x) {
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    return x;
  }
  // Returns the rank already holding these bytes, or kNone after inserting.
  uint32_t insert(uint32_t rank);

  struct Span {
    uint32_t offset = 0;
    uint32_t length = 0;  // 0 = not set yet
  };
  uint32_t count_ = 0;
  std::string blob_;
  std::vector<Span> spans_;
  struct Slot {
    uint64_t prefix = 0;      // first 8 bytes, zero-padded
    uint32_t rank_plus1 = 0;  // 0 = empty
    uint32_t check = 0;       // check_word()
  };
  struct FreeSlots {
    void operator()(Slot* p) const { std::free(p); }
  };
  static std::unique_ptr<Slot[], FreeSlots> allocate_table(size_t slots);
  std::unique_ptr<Slot[], FreeSlots>
      table_;                        // on huge pages where the OS allows: lookups are TLB-bound
  std::vector<uint32_t> pair_rank_;  // rank of every 2-byte token, by (b0 << 8 | b1); kNone if none
  uint64_t mask_ = 0;
  uint32_t byte_rank_[256] = {};
};

template <typename Describe>
Status BpeVocab::finish(Describe&& describe) {
  for (uint32_t r = 0; r < count_; ++r) {
    if (spans_[r].length == 0)
      return Error("rank {} is missing (ranks must be 0..{})", r, count_ - 1);
  }
  blob_.append(16, '\0');  // padding for 16-byte copies in decode
  size_t cap = 1024;
  while (cap < size_t{count_} * 2 + 2) cap <<= 1;
  table_ = allocate_table(cap);
  mask_ = cap - 1;
  pair_rank_.assign(65536, kNone);
  for (uint32_t r = 0; r < count_; ++r) {
    uint32_t other = insert(r);
    if (other != kNone) {
      return Error("{}: token with rank {} has the same bytes as rank {} ({})", describe(r), r,
                   other, describe(other));
    }
  }
  for (int b = 0; b < 256; ++b) {
    char c = static_cast<char>(b);
    byte_rank_[b] = rank(&c, 1);
    if (byte_rank_[b] == kNone) {
      return Error(
          "the vocabulary has no token for the single byte 0x{:02x} (byte-level BPE needs all 256)",
          b);
    }
  }
  return Status::ok();
}

}  // namespace gptoss
