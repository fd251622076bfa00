// UTF-8 helpers with Python's error semantics, so that what we do with invalid bytes matches
// what tiktoken (a Python str in, bytes.decode(errors="replace") out) does.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gptoss::utf8 {

// Length of the longest prefix of `s` that is valid UTF-8.
size_t valid_prefix(std::string_view s);

// Length (1..4) of the well-formed character at s[i] (i < s.size()), or 0 where it is ill-formed
// or cut off by the end of `s`.
size_t sequence_length(std::string_view s, size_t i);

// Replacement of invalid input before encoding. Text reaches tiktoken as a Python str, which
// cannot hold invalid bytes but can hold lone surrogates; tiktoken turns a str with surrogates
// into valid text by a UTF-16 round trip (a high+low pair becomes one character, a lone surrogate
// becomes U+FFFD). Byte input maps to that model as follows: surrogates encoded as 3-byte
// sequences (ED A0..BF xx, "WTF-8"/CESU-8) are treated like those surrogates; every other invalid
// sequence becomes one U+FFFD per maximal invalid subpart, as bytes.decode("utf-8", "replace").
// Returns false (and leaves *out alone) when `s` is already valid.
bool sanitize_for_encode(std::string_view s, std::string* out);

// Decodes `s` into `out` like Python's incremental UTF-8 decoder with errors="replace".
// If `final` is false, a trailing sequence that could still become valid is not consumed;
// returns the number of bytes consumed.
size_t decode_replace(std::string_view s, bool final, std::string* out);

}  // namespace gptoss::utf8
