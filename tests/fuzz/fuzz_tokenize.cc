// The builtin o200k_harmony tokenizer on arbitrary bytes: encode never crashes, every id is
// valid, and decoding gives back the text (after invalid UTF-8 became U+FFFD, which encode does
// first; so the check is exact only for valid UTF-8). encode_with_special round-trips too.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.h"

static bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n;
  }
  return true;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const gptoss::Tokenizer& tok = gptoss::fuzz::builtin_tokenizer();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool exact = valid_utf8(text);
  auto ids = tok.encode(text);
  for (uint32_t id : ids) {
    if (!tok.is_valid(id) || tok.is_special(id)) std::abort();
  }
  if (exact && tok.decode(ids) != text) std::abort();
  auto sids = tok.encode_with_special(text);
  for (uint32_t id : sids) {
    if (!tok.is_valid(id)) std::abort();
  }
  if (exact && tok.decode(sids) != text) std::abort();
  return 0;
}
