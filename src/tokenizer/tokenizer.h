// o200k_harmony: text <-> token ids for gpt-oss. Byte-level BPE over the o200k_base ranks
// (token id = rank) plus the harmony special tokens 199998..201088. Encoding is byte-exact with
// tiktoken's Encoding built from the same rank file and special tokens.
//
// A Tokenizer is immutable once built and safe to use from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gptoss {

class Tokenizer {
 public:
  // Rows of the gpt-oss embedding / unembedding matrices. Harmony also names id 201088
  // (<|reserved_201088|>, one past the rows); it is a known special token here, but a model never
  // produces it.
  static constexpr uint32_t kVocabRows = 201088;
  static constexpr uint32_t kFirstSpecialId = 199998;
  static constexpr uint32_t kLastSpecialId = 201088;

  // o200k_harmony: o200k_base ranks from a .tiktoken file (base64 token, space, rank per line)
  // + harmony special tokens.
  static Expected<std::shared_ptr<const Tokenizer>> from_tiktoken_file(const std::string& path);
  // Same, from the text of a rank file already in memory; `name` is used in error messages.
  static Expected<std::shared_ptr<const Tokenizer>> from_tiktoken_text(std::string_view text,
                                                                       const std::string& name);
  // A Hugging Face byte-level BPE tokenizer.json (what gpt-oss checkpoints ship).
  static Expected<std::shared_ptr<const Tokenizer>> from_tokenizer_json(const std::string& path);
  // The o200k_base rank file embedded in the binary: every gpt-oss model uses it.
  static Expected<std::shared_ptr<const Tokenizer>> builtin();
  // Model directory: its tokenizer.json if present, else builtin().
  static Expected<std::shared_ptr<const Tokenizer>> from_model_dir(const std::string& dir);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Ordinary text: special token strings are encoded as plain text, never as control tokens.
  // Invalid UTF-8 is replaced by U+FFFD first, as tiktoken does for a Python str (see utf8.h).
  std::vector<uint32_t> encode(std::string_view text) const;
  // Any special token string in the text becomes its id (tiktoken allowed_special="all").
  std::vector<uint32_t> encode_with_special(std::string_view text) const;
  // Only the listed special token strings are recognised; others are plain text.
  std::vector<uint32_t> encode_with_special(std::string_view text,
                                            const std::vector<std::string>& allowed) const;

  // Concatenated token bytes (may be partial UTF-8). Ids that are not tokens (see is_valid)
  // contribute nothing; use decode_checked to get an error for them instead.
  std::string decode(const std::vector<uint32_t>& ids) const;
  Expected<std::string> decode_checked(const std::vector<uint32_t>& ids) const;
  // Token bytes; a special token gives its text; an unknown id gives "".
  std::string_view token_bytes(uint32_t id) const;
  // "<|start|>" -> 200006.
  std::optional<uint32_t> special_id(std::string_view text) const;
  // Id of an ordinary token with exactly these bytes.
  std::optional<uint32_t> token_id(std::string_view bytes) const;
  bool is_special(uint32_t id) const;
  bool is_valid(uint32_t id) const;
  uint32_t vocab_size() const { return kVocabRows; }
  // Number of ordinary (BPE) tokens: 199998 for o200k_base.
  uint32_t num_bpe_tokens() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend struct TokenizerBuilder;
};

// Streaming decode for generated tokens: push() returns only complete UTF-8 characters (and
// U+FFFD for bytes that can never become valid); flush() returns what is left, with invalid or
// incomplete bytes as U+FFFD. The concatenation of all outputs equals Python's
// bytes.decode("utf-8", errors="replace") of the concatenated token bytes.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tok_(&tokenizer) {}
  std::string push(uint32_t id);
  std::string flush();

 private:
  const Tokenizer* tok_;
  std::string pending_;
};

}  // namespace gptoss
