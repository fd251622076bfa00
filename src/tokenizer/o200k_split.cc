#include "tokenizer/o200k_split.h"

#include <cstring>
#include <memory>

namespace gptoss {
namespace {

#include "tokenizer/unicode_classes.inc"

enum : uint8_t { kL = 1, kN = 2, kUpper = 4, kLower = 8, kWs = 16 };

// One byte of class bits per code point, built once from the generated runs.
const uint8_t* class_table() {
  static const std::unique_ptr<uint8_t[]> table = [] {
    std::unique_ptr<uint8_t[]> t(new uint8_t[0x110000]);
    for (uint32_t r = 0; r < kClassRunCount; ++r) {
      uint32_t end = r + 1 < kClassRunCount ? kClassRuns[r + 1].first : 0x110000;
      std::memset(t.get() + kClassRuns[r].first, kClassRuns[r].bits, end - kClassRuns[r].first);
    }
    return t;
  }();
  return table.get();
}

struct Text {
  const uint8_t* s;
  size_t n;
  const uint8_t* cls;

  // Class bits of the character at i; *next = index after it. Valid UTF-8 assumed.
  uint8_t at(size_t i, size_t* next) const {
    uint8_t b = s[i];
    if (b < 0x80) {
      *next = i + 1;
      return cls[b];
    }
    uint32_t cp;
    if (b < 0xE0) {
      cp = ((b & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
      *next = i + 2;
    } else if (b < 0xF0) {
      cp = ((b & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
      *next = i + 3;
    } else {
      cp = ((b & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) |
           (s[i + 3] & 0x3Fu);
      *next = i + 4;
    }
    return cls[cp];
  }
  bool is_crlf(size_t i) const { return s[i] == '\r' || s[i] == '\n'; }
  // [^\r\n\p{L}\p{N}]
  bool prefix_char(size_t i, uint8_t bits) const { return !(bits & (kL | kN)) && !is_crlf(i); }

  // (?i:'s|'t|'re|'ve|'m|'ll|'d)? after position e.
  size_t contraction(size_t e) const {
    if (e + 1 >= n || s[e] != '\'') return e;
    auto lower = [](uint8_t c) { return static_cast<uint8_t>(c >= 'A' && c <= 'Z' ? c + 32 : c); };
    uint8_t a = lower(s[e + 1]);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return e + 2;
    if (e + 2 < n) {
      uint8_t b = lower(s[e + 2]);
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return e + 3;
    }
    return e;
  }

  // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+ from p; 0 if no match. Greedy U*
  // gives back characters until a W can start; W+ then ends at the first non-W.
  size_t upper_star_lower_plus(size_t p) const {
    size_t q = p, last_w_end = 0, next;
    while (q < n) {
      uint8_t b = at(q, &next);
      if (!(b & kUpper)) break;
      if (b & kLower) last_w_end = next;
      q = next;
    }
    if (q < n && (at(q, &next) & kLower)) {
      q = next;
      while (q < n && (at(q, &next) & kLower)) q = next;
      return contraction(q);
    }
    return last_w_end ? contraction(last_w_end) : 0;
  }

  // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]* from p; 0 if no match.
  size_t upper_plus_lower_star(size_t p) const {
    size_t q = p, next;
    while (q < n && (at(q, &next) & kUpper)) q = next;
    if (q == p) return 0;
    while (q < n && (at(q, &next) & kLower)) q = next;
    return contraction(q);
  }
};

}  // namespace

size_t o200k_piece_end(std::string_view text, size_t i) {
  static const uint8_t* const cls = class_table();
  const Text t{reinterpret_cast<const uint8_t*>(text.data()), text.size(), cls};
  size_t next, e;
  const uint8_t b0 = t.at(i, &next);
  const size_t after0 = next;
  const bool has_prefix = t.prefix_char(i, b0);

  // 1, 2: [^\r\n\p{L}\p{N}]? then letters (the optional prefix is tried first, then dropped).
  if (has_prefix && after0 < t.n) {
    if ((e = t.upper_star_lower_plus(after0))) return e;
  }
  if (b0 & (kUpper | kLower)) {
    if ((e = t.upper_star_lower_plus(i))) return e;
  }
  if (has_prefix && after0 < t.n) {
    if ((e = t.upper_plus_lower_star(after0))) return e;
  }
  if (b0 & kUpper) {
    if ((e = t.upper_plus_lower_star(i))) return e;
  }
  // 3: \p{N}{1,3}
  if (b0 & kN) {
    size_t q = after0;
    for (int k = 1; k < 3 && q < t.n && (t.at(q, &next) & kN); ++k) q = next;
    return q;
  }
  // 4: " ?[^\s\p{L}\p{N}]+[\r\n/]*"
  {
    size_t p = (t.s[i] == ' ') ? after0 : i;
    size_t q = p;
    while (q < t.n && !(t.at(q, &next) & (kWs | kL | kN))) q = next;
    if (q > p) {
      while (q < t.n && (t.is_crlf(q) || t.s[q] == '/')) ++q;
      return q;
    }
  }
  // Only white space is left: 5: \s*[\r\n]+   6: \s+(?!\S)   7: \s+
  size_t q = i, last_crlf_end = 0, last_start = i;
  while (q < t.n && (t.at(q, &next) & kWs)) {
    if (t.is_crlf(q)) last_crlf_end = q + 1;
    last_start = q;
    q = next;
  }
  if (last_crlf_end) return last_crlf_end;
  if (q == t.n) return q;
  if (last_start > i) return last_start;
  return q > i ? q : after0;  // q == i cannot happen for valid input; never loop
}

}  // namespace gptoss
