// Typed access to request JSON fields. Every getter names the field (with its path, e.g.
// "messages[2].content") in the ApiError it throws, so a client sees exactly what was wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "server/api_error.h"

namespace gptoss::server {

inline constexpr size_t kMaxJsonDepth = 64;

// Parses a request body; malformed JSON, a non-object body or nesting deeper than kMaxJsonDepth
// throws a 400.
ojson parse_body(std::string_view body);

// The field, or nullptr when it is absent or JSON null.
const ojson* field(const ojson& obj, const char* key);

std::optional<std::string> opt_string(const ojson& obj, const char* key, const std::string& path);
std::string req_string(const ojson& obj, const char* key, const std::string& path);
std::optional<bool> opt_bool(const ojson& obj, const char* key, const std::string& path);
// A number in [lo, hi].
std::optional<double> opt_number(const ojson& obj, const char* key, const std::string& path,
                                 double lo, double hi);
// An integer in [lo, hi] (2.0 is accepted as 2; 2.5 is not).
std::optional<int64_t> opt_int(const ojson& obj, const char* key, const std::string& path,
                               int64_t lo, int64_t hi);
const ojson* opt_array(const ojson& obj, const char* key, const std::string& path);
const ojson* opt_object(const ojson& obj, const char* key, const std::string& path);

// "messages" + 2 -> "messages[2]"; "a" + "b" -> "a.b".
std::string path_index(const std::string& path, size_t i);
std::string path_key(const std::string& path, const char* key);

const char* json_type_name(const ojson& v);

}  // namespace gptoss::server
