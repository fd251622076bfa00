// Splits text into pieces with the o200k pre-tokenizer regex (PCRE2 with JIT). The reference for
// the hand-written splitter in o200k_split.h, which the tokenizer uses.
// The input must be valid UTF-8 (checked once by the caller; matching skips the check).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gptoss {

// The o200k_base pattern exactly as tiktoken and tokenizer.json spell it.
extern const char kO200kPattern[];

class Pretokenizer {
 public:
  static Expected<std::unique_ptr<Pretokenizer>> create();
  ~Pretokenizer();

  // Calls fn(const char* piece, size_t length) for each regex match, in order. Bytes between
  // matches (none exist for this pattern on valid text) are skipped, as tiktoken does.
  template <typename Fn>
  void split(std::string_view text, Fn&& fn) const {
    size_t offset = 0;
    size_t start, end;
    while (offset < text.size() && next_match(text, offset, &start, &end)) {
      fn(text.data() + start, end - start);
      offset = end;
    }
  }

 private:
  Pretokenizer() = default;
  bool next_match(std::string_view text, size_t offset, size_t* start, size_t* end) const;
  struct Code;
  std::unique_ptr<Code> code_;
};

}  // namespace gptoss
