// The .tiktoken rank file: one token per line, "base64(bytes) rank".
#include <algorithm>
#include <cstring>

#include "core/mapped_file.h"
#include "tokenizer/tokenizer_impl.h"

namespace gptoss {
namespace {

struct Base64Table {
  int8_t v[256];
  constexpr Base64Table() : v() {
    for (int i = 0; i < 256; ++i) v[i] = -1;
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) v[static_cast<uint8_t>(a[i])] = static_cast<int8_t>(i);
  }
};
constexpr Base64Table kB64;

// Decodes standard padded base64; false if malformed.
bool base64_decode(std::string_view in, char* out, size_t* out_len) {
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (in.back() == '=') pad = (in[in.size() - 2] == '=') ? 2 : 1;
  size_t n = 0;
  for (size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int a = kB64.v[static_cast<uint8_t>(in[i])], b = kB64.v[static_cast<uint8_t>(in[i + 1])];
    int c = (last && pad == 2) ? 0 : kB64.v[static_cast<uint8_t>(in[i + 2])];
    int d = (last && pad >= 1) ? 0 : kB64.v[static_cast<uint8_t>(in[i + 3])];
    if ((a | b | c | d) < 0) return false;
    uint32_t w = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6) | uint32_t(d);
    out[n++] = static_cast<char>(w >> 16);
    if (!(last && pad == 2)) out[n++] = static_cast<char>(w >> 8);
    if (!(last && pad >= 1)) out[n++] = static_cast<char>(w);
  }
  *out_len = n;
  return true;
}

std::string_view printable(std::string_view s) {
  return s.substr(0, std::min<size_t>(s.size(), 60));
}

}  // namespace

Status parse_tiktoken_ranks(std::string_view text, const std::string& name, BpeVocab* vocab) {
  // Pass 1: count non-empty lines (tiktoken skips empty ones).
  size_t lines = 0;
  for (size_t pos = 0; pos < text.size();) {
    const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
    size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - text.data()) : text.size();
    if (end > pos && !(end == pos + 1 && text[pos] == '\r')) ++lines;
    pos = end + 1;
  }
  if (lines == 0) return Error("{}: no tokens (expected lines of 'base64 rank')", name);
  if (lines > Tokenizer::kFirstSpecialId) {
    return Error("{}: {} tokens, more than the {} ordinary ids o200k_harmony leaves room for", name,
                 lines, Tokenizer::kFirstSpecialId);
  }
  vocab->reset(static_cast<uint32_t>(lines), text.size() * 3 / 4);
  std::vector<uint32_t> line_of_rank(lines, 0);
  char buf[1024];
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    ++line_no;
    const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
    size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - text.data()) : text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) {
      return Error("{}:{}: expected 'base64 rank', got '{}'", name, line_no, printable(line));
    }
    std::string_view b64 = line.substr(0, sp), num = line.substr(sp + 1);
    if (num.empty() || num.size() > 9 ||
        !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Error("{}:{}: rank '{}' is not a non-negative integer", name, line_no, printable(num));
    }
    uint32_t rank = 0;
    for (char c : num) rank = rank * 10 + static_cast<uint32_t>(c - '0');
    size_t len = 0;
    if (b64.size() > sizeof(buf) / 3 * 4 || !base64_decode(b64, buf, &len) || len == 0) {
      return Error("{}:{}: '{}' is not valid base64 for a non-empty token", name, line_no,
                   printable(b64));
    }
    if (rank >= lines) {
      return Error("{}:{}: rank {} is out of range: the file has {} tokens, so ranks are 0..{}",
                   name, line_no, rank, lines, lines - 1);
    }
    if (!vocab->set(rank, std::string_view(buf, len))) {
      return Error("{}:{}: rank {} appears twice (first on line {})", name, line_no, rank,
                   line_of_rank[rank]);
    }
    line_of_rank[rank] = static_cast<uint32_t>(line_no);
  }
  Status st =
      vocab->finish([&](uint32_t r) { return fmt::format("{}:{}", name, line_of_rank[r]); });
  return st.with_context(name);
}

Expected<std::shared_ptr<const Tokenizer>> Tokenizer::from_tiktoken_text(std::string_view text,
                                                                         const std::string& name) {
  BpeVocab vocab;
  GPTOSS_RETURN_IF_ERROR(parse_tiktoken_ranks(text, name, &vocab));
  return TokenizerBuilder::build(std::move(vocab), harmony_special_tokens(),
                                 harmony_special_aliases());
}

Expected<std::shared_ptr<const Tokenizer>> Tokenizer::from_tiktoken_file(const std::string& path) {
  GPTOSS_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  return from_tiktoken_text(
      std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), path);
}

}  // namespace gptoss
