#include "tokenizer/tokenizer.h"

#include <sys/stat.h>

#include <cstring>

#include "tokenizer/bpe.h"
#include "tokenizer/o200k_split.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

// The o200k_base rank file, embedded by builtin_vocab.S.
extern "C" const char gptoss_o200k_base_start[];
extern "C" const char gptoss_o200k_base_end[];

namespace gptoss {

std::vector<std::pair<uint32_t, std::string>> harmony_special_tokens() {
  std::vector<std::pair<uint32_t, std::string>> s;
  s.reserve(Tokenizer::kLastSpecialId - Tokenizer::kFirstSpecialId + 1);
  auto named = [](uint32_t id) -> const char* {
    switch (id) {
      case 199998:
        return "<|startoftext|>";
      case 199999:
        return "<|endoftext|>";
      case 200002:
        return "<|return|>";
      case 200003:
        return "<|constrain|>";
      case 200005:
        return "<|channel|>";
      case 200006:
        return "<|start|>";
      case 200007:
        return "<|end|>";
      case 200008:
        return "<|message|>";
      case 200012:
        return "<|call|>";
      default:
        return nullptr;
    }
  };
  for (uint32_t id = Tokenizer::kFirstSpecialId; id <= Tokenizer::kLastSpecialId; ++id) {
    const char* n = named(id);
    s.emplace_back(id, n ? std::string(n) : fmt::format("<|reserved_{}|>", id));
  }
  return s;
}

std::vector<std::pair<uint32_t, std::string>> harmony_special_aliases() {
  return {{200018, "<|endofprompt|>"}};
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Expected<std::shared_ptr<const Tokenizer>> TokenizerBuilder::build(
    BpeVocab vocab, const std::vector<std::pair<uint32_t, std::string>>& specials,
    const std::vector<std::pair<uint32_t, std::string>>& aliases) {
  auto impl = std::make_unique<Tokenizer::Impl>();
  impl->special_text.resize(Tokenizer::kLastSpecialId - Tokenizer::kFirstSpecialId + 1);
  impl->special_by_text.reserve(specials.size() * 2);
  for (const auto& [id, text] : specials) {
    if (id < Tokenizer::kFirstSpecialId || id > Tokenizer::kLastSpecialId) {
      return Error("special token {} has id {}, outside {}..{}", text, id,
                   Tokenizer::kFirstSpecialId, Tokenizer::kLastSpecialId);
    }
    if (id < vocab.size())
      return Error("special token {} has id {}, which is an ordinary token", text, id);
    if (text.size() < 4 || text.compare(0, 2, "<|") != 0 ||
        text.compare(text.size() - 2, 2, "|>") != 0 || text.find("|>") != text.size() - 2) {
      return Error("special token '{}' (id {}) is not of the form <|name|>", text, id);
    }
    auto [it, inserted] = impl->special_by_text.emplace(text, id);
    if (!inserted)
      return Error("special token {} is given twice (ids {} and {})", text, it->second, id);
    std::string& slot = impl->special_text[id - Tokenizer::kFirstSpecialId];
    if (!slot.empty()) return Error("special id {} is given twice ({} and {})", id, slot, text);
    slot = text;
  }
  for (const auto& [id, text] : aliases) {
    // An alias only adds a spelling of an id that has a token; a text already in use keeps its id.
    if (id < Tokenizer::kFirstSpecialId || id > Tokenizer::kLastSpecialId) continue;
    if (impl->special_text[id - Tokenizer::kFirstSpecialId].empty()) continue;
    impl->special_by_text.emplace(text, id);
  }
  impl->vocab = std::move(vocab);
  return std::shared_ptr<const Tokenizer>(new Tokenizer(std::move(impl)));
}

namespace {

void encode_ordinary(const Tokenizer::Impl& impl, std::string_view text,
                     std::vector<uint32_t>* out) {
  // BPE reads 8 bytes at a time: give it a copy with padding.
  thread_local std::string padded;
  padded.assign(text);
  padded.append(8, '\0');
  o200k_split(std::string_view(padded.data(), text.size()),
              [&](const char* p, size_t n) { bpe_encode_piece(impl.vocab, p, n, out); });
  if (padded.capacity() > (size_t{64} << 20))
    std::string().swap(padded);  // don't keep huge buffers
}

// Encodes text that may hold special token strings; `allowed(id)` says which ones count.
template <typename Allowed>
std::vector<uint32_t> encode_specials(const Tokenizer::Impl& impl, std::string_view text,
                                      Allowed&& allowed) {
  std::string clean;
  if (utf8::sanitize_for_encode(text, &clean)) text = clean;
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 4);
  size_t segment = 0, pos = 0;
  while (true) {
    size_t open = text.find("<|", pos);
    if (open == std::string_view::npos) break;
    size_t close = text.find("|>", open + 2);
    if (close == std::string_view::npos) break;
    auto it = impl.special_by_text.find(std::string(text.substr(open, close + 2 - open)));
    if (it != impl.special_by_text.end() && allowed(it->second)) {
      encode_ordinary(impl, text.substr(segment, open - segment), &out);
      out.push_back(it->second);
      segment = pos = close + 2;
    } else {
      pos = open + 1;
    }
  }
  encode_ordinary(impl, text.substr(segment), &out);
  return out;
}

}  // namespace

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::string clean;
  if (utf8::sanitize_for_encode(text, &clean)) text = clean;
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_ordinary(*impl_, text, &out);
  return out;
}

std::vector<uint32_t> Tokenizer::encode_with_special(std::string_view text) const {
  return encode_specials(*impl_, text, [](uint32_t) { return true; });
}

std::vector<uint32_t> Tokenizer::encode_with_special(
    std::string_view text, const std::vector<std::string>& allowed) const {
  std::vector<uint32_t> ids;
  for (const auto& a : allowed) {
    if (auto id = special_id(a)) ids.push_back(*id);
  }
  return encode_specials(*impl_, text, [&](uint32_t id) {
    for (uint32_t a : ids) {
      if (a == id) return true;
    }
    return false;
  });
}

std::string_view Tokenizer::token_bytes(uint32_t id) const {
  if (id < impl_->vocab.size()) return impl_->vocab.bytes(id);
  if (id >= kFirstSpecialId && id <= kLastSpecialId)
    return impl_->special_text[id - kFirstSpecialId];
  return {};
}

bool Tokenizer::is_special(uint32_t id) const {
  return id >= kFirstSpecialId && id <= kLastSpecialId &&
         !impl_->special_text[id - kFirstSpecialId].empty();
}

bool Tokenizer::is_valid(uint32_t id) const { return id < impl_->vocab.size() || is_special(id); }

uint32_t Tokenizer::num_bpe_tokens() const { return impl_->vocab.size(); }

std::optional<uint32_t> Tokenizer::special_id(std::string_view text) const {
  auto it = impl_->special_by_text.find(std::string(text));
  if (it == impl_->special_by_text.end()) return std::nullopt;
  return it->second;
}

std::optional<uint32_t> Tokenizer::token_id(std::string_view bytes) const {
  if (bytes.empty()) return std::nullopt;
  uint32_t r = impl_->vocab.rank(bytes.data(), bytes.size());
  if (r == BpeVocab::kNone) return std::nullopt;
  return r;
}

std::string Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  // Ordinary tokens are copied 16 bytes at a time (the blob is padded), into a buffer grown ahead.
  std::string out(ids.size() * 8 + 64, '\0');
  size_t w = 0;
  const BpeVocab& vocab = impl_->vocab;
  for (uint32_t id : ids) {
    std::string_view b = token_bytes(id);
    if (b.empty()) continue;  // not a token (see is_valid)
    if (out.size() - w < b.size() + 16) out.resize((out.size() + b.size() + 16) * 2);
    if (id < vocab.size() && b.size() <= 16) {
      std::memcpy(out.data() + w, b.data(), 16);
    } else {
      std::memcpy(out.data() + w, b.data(), b.size());
    }
    w += b.size();
  }
  out.resize(w);
  return out;
}

Expected<std::string> Tokenizer::decode_checked(const std::vector<uint32_t>& ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!is_valid(ids[i])) {
      return Error(
          "token id {} (position {}) is not in the vocabulary: ordinary ids are 0..{}, special "
          "ids {}..{}",
          ids[i], i, impl_->vocab.size() - 1, kFirstSpecialId, kLastSpecialId);
    }
  }
  return decode(ids);
}

Expected<std::shared_ptr<const Tokenizer>> Tokenizer::builtin() {
  static const Expected<std::shared_ptr<const Tokenizer>> kBuiltin = from_tiktoken_text(
      std::string_view(gptoss_o200k_base_start,
                       static_cast<size_t>(gptoss_o200k_base_end - gptoss_o200k_base_start)),
      "<builtin o200k_base.tiktoken>");
  return kBuiltin;
}

Expected<std::shared_ptr<const Tokenizer>> Tokenizer::from_model_dir(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error("{}: not a model directory", dir);
  }
  std::string json = dir + "/tokenizer.json";
  if (::stat(json.c_str(), &st) == 0) return from_tokenizer_json(json);
  return builtin();
}

std::string StreamDecoder::push(uint32_t id) {
  std::string_view b = tok_->token_bytes(id);
  if (!b.empty()) pending_.append(b);
  std::string out;
  size_t used = utf8::decode_replace(pending_, /*final=*/false, &out);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  utf8::decode_replace(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace gptoss
