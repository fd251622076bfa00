// Internals shared by the tokenizer's loaders (not part of the public API).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace gptoss {

struct Tokenizer::Impl {
  BpeVocab vocab;
  // Special tokens by id - kFirstSpecialId ("" = none) and by text.
  std::vector<std::string> special_text;
  std::unordered_map<std::string, uint32_t> special_by_text;
};

// The harmony special tokens of o200k_harmony, (id, text), ids 199998..201088.
std::vector<std::pair<uint32_t, std::string>> harmony_special_tokens();
// Extra strings that encode to a special id but never decode from it: o200k_base's
// <|endofprompt|> = 200018 (kept by tiktoken's o200k_harmony and gpt_oss/tokenizer.py).
std::vector<std::pair<uint32_t, std::string>> harmony_special_aliases();

struct TokenizerBuilder {
  // Takes a finished vocabulary and the special tokens; fails if an id is outside the special
  // range, clashes with an ordinary token, or a text is used twice.
  static Expected<std::shared_ptr<const Tokenizer>> build(
      BpeVocab vocab, const std::vector<std::pair<uint32_t, std::string>>& specials,
      const std::vector<std::pair<uint32_t, std::string>>& aliases = {});
};

// Parses the text of a .tiktoken rank file into `vocab` (errors name `name`:line).
Status parse_tiktoken_ranks(std::string_view text, const std::string& name, BpeVocab* vocab);

}  // namespace gptoss
