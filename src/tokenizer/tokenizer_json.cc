// Hugging Face tokenizer.json (byte-level BPE, as gpt-oss checkpoints ship it). The vocabulary
// maps GPT-2 "byte-level unicode" strings to ids; with o200k the id is the tiktoken rank and the
// merges are derived from the ranks, so merging by rank gives HF's result and the merge list is
// not needed. The pre-tokenizer must be the o200k regex.
#include <simdjson.h>

#include <nlohmann/json.hpp>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace gptoss {
namespace {

// GPT-2 bytes_to_unicode, inverted: code point -> byte, or -1.
struct ByteLevelTable {
  int16_t byte_of[324];
  ByteLevelTable() {
    for (auto& b : byte_of) b = -1;
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      int cp = printable ? b : 256 + extra++;
      byte_of[cp] = static_cast<int16_t>(b);
    }
  }
};

// Byte-level string -> token bytes; false with *bad set to the offending code point.
bool byte_level_decode(std::string_view s, std::string* out, uint32_t* bad) {
  static const ByteLevelTable kTable;
  out->clear();
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    if (p[i] < 0x80) {
      cp = p[i++];
    } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < n) {
      cp = ((p[i] & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
      i += 2;
    } else {  // three or four bytes: outside the table; decode it for the message
      size_t len = (p[i] & 0xF0) == 0xE0 ? 3 : 4;
      cp = p[i] & (len == 3 ? 0x0Fu : 0x07u);
      for (size_t k = 1; k < len && i + k < n; ++k) cp = (cp << 6) | (p[i + k] & 0x3Fu);
      *bad = cp;
      return false;
    }
    if (cp >= 324 || kTable.byte_of[cp] < 0) {
      *bad = cp;
      return false;
    }
    out->push_back(static_cast<char>(kTable.byte_of[cp]));
  }
  return !out->empty();
}

std::string json_quote(std::string_view s) {
  return nlohmann::json(std::string(s))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A syntax error's line and column, from nlohmann's parser (simdjson reports no position).
std::string syntax_error_location(const std::string& text) {
  try {
    nlohmann::json parsed = nlohmann::json::parse(text);
    (void)parsed;
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    std::string what = e.what();
    size_t at = what.find("parse error");
    return at == std::string::npos ? what : what.substr(at);
  }
  return "invalid JSON";
}

// Finds the pre-tokenizer's Split regex anywhere under `node` (Sequence or a single Split).
void find_split_patterns(simdjson::dom::element node, const std::string& path,
                         std::vector<std::pair<std::string, std::string>>* found) {
  simdjson::dom::object obj;
  if (node.get_object().get(obj) == simdjson::SUCCESS) {
    std::string_view type;
    if (obj["type"].get_string().get(type) == simdjson::SUCCESS && type == "Split") {
      std::string_view re;
      if (obj["pattern"]["Regex"].get_string().get(re) == simdjson::SUCCESS) {
        found->emplace_back(path + ".pattern.Regex", std::string(re));
      } else {
        found->emplace_back(path + ".pattern", "");
      }
      return;
    }
    simdjson::dom::array list;
    if (obj["pretokenizers"].get_array().get(list) == simdjson::SUCCESS) {
      size_t i = 0;
      for (auto child : list)
        find_split_patterns(child, fmt::format("{}.pretokenizers[{}]", path, i++), found);
    }
  }
}

Expected<std::shared_ptr<const Tokenizer>> load(const std::string& path) {
  simdjson::padded_string text;
  if (auto err = simdjson::padded_string::load(path).get(text)) {
    return Error("{}: cannot read: {}", path, simdjson::error_message(err));
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text).get(root) != simdjson::SUCCESS) {
    return Error("{}: {}", path, syntax_error_location(std::string(text.data(), text.size())));
  }
  auto fail = [&](const std::string& json_path, const std::string& what) -> Status {
    return Error("{}: {}: {}", path, json_path, what);
  };
  simdjson::dom::object model;
  if (root["model"].get_object().get(model)) return fail("model", "missing or not an object");
  std::string_view type;
  if (model["type"].get_string().get(type) || type != "BPE") {
    return fail("model.type", "expected \"BPE\" (byte-level BPE), got " + json_quote(type));
  }
  simdjson::dom::object vocab_obj;
  if (model["vocab"].get_object().get(vocab_obj))
    return fail("model.vocab", "missing or not an object");

  // Pre-tokenizer: must be the o200k regex (the only one implemented).
  std::vector<std::pair<std::string, std::string>> splits;
  simdjson::dom::element pre;
  if (root["pre_tokenizer"].get(pre) == simdjson::SUCCESS)
    find_split_patterns(pre, "pre_tokenizer", &splits);
  if (splits.size() != 1) {
    return fail("pre_tokenizer",
                fmt::format("expected one Split with the o200k regex, found {}", splits.size()));
  }
  if (splits[0].second != kO200kPattern) {
    return fail(splits[0].first, "unsupported pre-tokenizer regex " +
                                     json_quote(splits[0].second).substr(0, 120) +
                                     "; only the o200k pattern is implemented");
  }

  BpeVocab vocab;
  size_t count = vocab_obj.size();
  if (count == 0 || count > Tokenizer::kFirstSpecialId) {
    return fail("model.vocab",
                fmt::format("{} entries; expected 1..{}", count, Tokenizer::kFirstSpecialId));
  }
  vocab.reset(static_cast<uint32_t>(count), count * 8);
  std::vector<std::string_view> key_of_rank(count);
  std::string bytes;
  for (auto field : vocab_obj) {
    std::string_view key = field.key;
    uint64_t id;
    if (field.value.get_uint64().get(id)) {
      return fail("model.vocab[" + json_quote(key) + "]", "expected a non-negative integer id");
    }
    uint32_t bad = 0;
    if (!byte_level_decode(key, &bytes, &bad)) {
      return fail(
          "model.vocab[" + json_quote(key) + "]",
          fmt::format("U+{:04X} is not a byte-level BPE symbol (GPT-2 bytes_to_unicode)", bad));
    }
    if (id >= count) {
      return fail("model.vocab[" + json_quote(key) + "]",
                  fmt::format("id {} is out of range: the vocab has {} entries, so ids are 0..{}",
                              id, count, count - 1));
    }
    if (!vocab.set(static_cast<uint32_t>(id), bytes)) {
      return fail("model.vocab[" + json_quote(key) + "]",
                  fmt::format("id {} is also used by {}", id, json_quote(key_of_rank[id])));
    }
    key_of_rank[id] = key;
  }
  GPTOSS_RETURN_IF_ERROR(
      vocab.finish([&](uint32_t r) { return "model.vocab[" + json_quote(key_of_rank[r]) + "]"; })
          .with_context(path));

  // Special tokens: the file's added_tokens, then harmony's for ids the file does not name.
  std::vector<std::pair<uint32_t, std::string>> specials;
  std::vector<bool> named(Tokenizer::kLastSpecialId + 1 - Tokenizer::kFirstSpecialId, false);
  simdjson::dom::array added;
  if (root["added_tokens"].get_array().get(added) == simdjson::SUCCESS) {
    size_t i = 0;
    for (auto tok : added) {
      std::string where = fmt::format("added_tokens[{}]", i++);
      uint64_t id;
      std::string_view content;
      if (tok["id"].get_uint64().get(id))
        return fail(where + ".id", "missing or not a non-negative integer");
      if (tok["content"].get_string().get(content))
        return fail(where + ".content", "missing or not a string");
      if (id < count) {
        return fail(where,
                    fmt::format("id {} of {} is an ordinary token id", id, json_quote(content)));
      }
      if (id < Tokenizer::kFirstSpecialId || id > Tokenizer::kLastSpecialId) {
        return fail(where, fmt::format("id {} of {} is outside the special range {}..{}", id,
                                       json_quote(content), Tokenizer::kFirstSpecialId,
                                       Tokenizer::kLastSpecialId));
      }
      specials.emplace_back(static_cast<uint32_t>(id), std::string(content));
      named[id - Tokenizer::kFirstSpecialId] = true;
    }
  }
  std::vector<std::string> texts;
  for (const auto& [id, text] : specials) texts.push_back(text);
  for (auto& [id, text] : harmony_special_tokens()) {
    if (named[id - Tokenizer::kFirstSpecialId]) continue;
    if (std::find(texts.begin(), texts.end(), text) != texts.end()) continue;
    specials.emplace_back(id, text);
  }
  auto tok = TokenizerBuilder::build(std::move(vocab), specials, harmony_special_aliases());
  if (!tok) return tok.status().with_context(path + ": added_tokens");
  return tok;
}

}  // namespace

Expected<std::shared_ptr<const Tokenizer>> Tokenizer::from_tokenizer_json(const std::string& path) {
  return load(path);
}

}  // namespace gptoss
