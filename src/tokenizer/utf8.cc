#include "tokenizer/utf8.h"

#include <cstdint>

namespace gptoss::utf8 {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";

// Length of the well-formed sequence starting at s[i] (1..4), or 0 if it is ill-formed or
// incomplete. On 0, *subpart is the length of its maximal subpart (>= 1) and *truncated says the
// input ended inside a sequence that could still be valid.
size_t sequence_at(const uint8_t* s, size_t n, size_t i, size_t* subpart, bool* truncated) {
  uint8_t b0 = s[i];
  *truncated = false;
  if (b0 < 0x80) return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *subpart = 1;
    return 0;
  }
  size_t k = 1;
  for (; k < need; ++k) {
    if (i + k >= n) {
      *subpart = k;
      *truncated = true;
      return 0;
    }
    uint8_t b = s[i + k];
    uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      *subpart = k;
      return 0;
    }
  }
  return need;
}

// A surrogate encoded as ED A0..BF 80..BF; returns its code unit or 0.
uint32_t surrogate_at(const uint8_t* s, size_t n, size_t i) {
  if (i + 2 < n && s[i] == 0xED && s[i + 1] >= 0xA0 && s[i + 1] <= 0xBF && s[i + 2] >= 0x80 &&
      s[i + 2] <= 0xBF) {
    return 0xD000u | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
  }
  return 0;
}

void append_code_point(uint32_t cp, std::string* out) {
  out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
  out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
  out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
  out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
}

// Copies s[i..] to *out, well-formed sequences as they are; at each ill-formed or incomplete one,
// on_invalid(i, subpart, truncated) appends what stands for it and returns the bytes it consumed,
// or 0 to stop there. Returns where the walk stopped.
template <typename OnInvalid>
size_t copy_replacing(std::string_view sv, size_t i, std::string* out, OnInvalid on_invalid) {
  const auto* s = reinterpret_cast<const uint8_t*>(sv.data());
  const size_t n = sv.size();
  while (i < n) {
    size_t subpart;
    bool truncated;
    size_t len = sequence_at(s, n, i, &subpart, &truncated);
    if (len > 0) {
      out->append(sv.data() + i, len);
      i += len;
      continue;
    }
    const size_t used = on_invalid(i, subpart, truncated);
    if (used == 0) break;
    i += used;
  }
  return i;
}

}  // namespace

size_t valid_prefix(std::string_view sv) {
  const auto* s = reinterpret_cast<const uint8_t*>(sv.data());
  size_t n = sv.size(), i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    size_t subpart;
    bool truncated;
    size_t len = sequence_at(s, n, i, &subpart, &truncated);
    if (len == 0) return i;
    i += len;
  }
  return n;
}

size_t sequence_length(std::string_view sv, size_t i) {
  size_t subpart;
  bool truncated;
  const auto* s = reinterpret_cast<const uint8_t*>(sv.data());
  return sequence_at(s, sv.size(), i, &subpart, &truncated);
}

bool sanitize_for_encode(std::string_view sv, std::string* out) {
  size_t first_bad = valid_prefix(sv);
  if (first_bad == sv.size()) return false;
  const auto* s = reinterpret_cast<const uint8_t*>(sv.data());
  size_t n = sv.size();
  out->clear();
  out->reserve(n + 16);
  out->append(sv.data(), first_bad);
  copy_replacing(sv, first_bad, out, [&](size_t i, size_t subpart, bool) -> size_t {
    if (uint32_t hi = surrogate_at(s, n, i)) {
      uint32_t lo = surrogate_at(s, n, i + 3);
      if (hi < 0xDC00 && lo >= 0xDC00) {
        append_code_point(0x10000u + ((hi - 0xD800u) << 10) + (lo - 0xDC00u), out);
        return 6;
      }
      out->append(kReplacement);
      return 3;
    }
    out->append(kReplacement);
    return subpart;
  });
  return true;
}

size_t decode_replace(std::string_view sv, bool final, std::string* out) {
  return copy_replacing(sv, 0, out, [&](size_t, size_t subpart, bool truncated) -> size_t {
    if (truncated && !final) return 0;
    out->append(kReplacement);
    return subpart;
  });
}

}  // namespace gptoss::utf8
