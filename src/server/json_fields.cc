#include "server/json_fields.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace gptoss::server {

// Deepest nesting of arrays/objects in JSON text (strings skipped). Checked before parsing:
// deeply nested values would overflow the stack in the recursive code that walks them later
// (schema rendering, dump), so a request could crash the server.
static size_t nesting_depth(std::string_view text) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

ojson parse_body(std::string_view body) {
  if (size_t d = nesting_depth(body); d > kMaxJsonDepth) {
    throw ApiError::invalid("", fmt::format("request JSON is nested {} levels deep; the limit is {}",
                                            d, kMaxJsonDepth));
  }
  ojson j = ojson::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Find the error position for the message.
    try {
      ojson again = ojson::parse(body.begin(), body.end());
      (void)again;
    } catch (const ojson::exception& e) {  // parse_error, or out_of_range for 1e999
      throw ApiError::invalid("", fmt::format("request body is not valid JSON: {}", e.what()));
    }
    throw ApiError::invalid("", "request body is not valid JSON");
  }
  if (!j.is_object()) {
    throw ApiError::invalid("", fmt::format("request body must be a JSON object, got {}",
                                            json_type_name(j)));
  }
  return j;
}

const char* json_type_name(const ojson& v) {
  switch (v.type()) {
    case ojson::value_t::null: return "null";
    case ojson::value_t::boolean: return "a boolean";
    case ojson::value_t::number_integer:
    case ojson::value_t::number_unsigned:
    case ojson::value_t::number_float: return "a number";
    case ojson::value_t::string: return "a string";
    case ojson::value_t::array: return "an array";
    case ojson::value_t::object: return "an object";
    default: return "an unsupported value";
  }
}

std::string path_index(const std::string& path, size_t i) { return fmt::format("{}[{}]", path, i); }

std::string path_key(const std::string& path, const char* key) {
  return path.empty() ? std::string(key) : path + "." + key;
}

const ojson* field(const ojson& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

static ApiError wrong_type(const std::string& p, const char* want, const ojson& got) {
  return ApiError::invalid(p, fmt::format("'{}' must be {}, got {}", p, want, json_type_name(got)),
                           "invalid_type");
}

std::optional<std::string> opt_string(const ojson& obj, const char* key, const std::string& path) {
  const ojson* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw wrong_type(path_key(path, key), "a string", *v);
  return v->get<std::string>();
}

std::string req_string(const ojson& obj, const char* key, const std::string& path) {
  auto s = opt_string(obj, key, path);
  if (!s) {
    std::string p = path_key(path, key);
    throw ApiError::invalid(p, fmt::format("'{}' is required", p), "missing_required_parameter");
  }
  return *s;
}

std::optional<bool> opt_bool(const ojson& obj, const char* key, const std::string& path) {
  const ojson* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw wrong_type(path_key(path, key), "a boolean", *v);
  return v->get<bool>();
}

std::optional<double> opt_number(const ojson& obj, const char* key, const std::string& path,
                                 double lo, double hi) {
  const ojson* v = field(obj, key);
  if (!v) return std::nullopt;
  std::string p = path_key(path, key);
  if (!v->is_number()) throw wrong_type(p, "a number", *v);
  double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    throw ApiError::invalid(p, fmt::format("'{}' must be between {} and {}, got {}", p, lo, hi, d),
                            "invalid_value");
  }
  return d;
}

std::optional<int64_t> opt_int(const ojson& obj, const char* key, const std::string& path,
                               int64_t lo, int64_t hi) {
  const ojson* v = field(obj, key);
  if (!v) return std::nullopt;
  std::string p = path_key(path, key);
  int64_t n = 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      n = INT64_MAX;
    } else {
      n = v->get<int64_t>();
    }
  } else if (v->is_number_float()) {
    double d = v->get<double>();
    if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9e18) {
      throw wrong_type(p, "an integer", *v);
    }
    n = static_cast<int64_t>(d);
  } else {
    throw wrong_type(p, "an integer", *v);
  }
  if (n < lo || n > hi) {
    throw ApiError::invalid(p, fmt::format("'{}' must be between {} and {}, got {}", p, lo, hi, n),
                            "invalid_value");
  }
  return n;
}

const ojson* opt_array(const ojson& obj, const char* key, const std::string& path) {
  const ojson* v = field(obj, key);
  if (!v) return nullptr;
  if (!v->is_array()) throw wrong_type(path_key(path, key), "an array", *v);
  return v;
}

const ojson* opt_object(const ojson& obj, const char* key, const std::string& path) {
  const ojson* v = field(obj, key);
  if (!v) return nullptr;
  if (!v->is_object()) throw wrong_type(path_key(path, key), "an object", *v);
  return v;
}

}  // namespace gptoss::server
