#include "harmony/schema_ts.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <vector>

#include <fmt/ranges.h>

namespace gptoss::harmony {

namespace {

// Lookup that behaves like serde_json's Value::get(key): nullptr unless `v` is an object with
// `key`.
const ojson* get(const ojson& v, const char* key) {
  if (!v.is_object()) return nullptr;
  auto it = v.find(key);
  return it == v.end() ? nullptr : &*it;
}

bool get_bool(const ojson& v, const char* key) {
  const ojson* x = get(v, key);
  return x && x->is_boolean() && x->get<bool>();
}

const std::string* get_str(const ojson& v, const char* key) {
  const ojson* x = get(v, key);
  return x && x->is_string() ? x->get_ptr<const std::string*>() : nullptr;
}

bool is_enum(const ojson& schema) {
  const ojson* e = get(schema, "enum");
  return e && e->is_array() && !e->empty();
}

bool contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void append_compact(std::string& out, const ojson& v) {
  switch (v.type()) {
    case ojson::value_t::null:
      out += "null";
      break;
    case ojson::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      break;
    case ojson::value_t::number_integer:
      out += std::to_string(v.get<int64_t>());
      break;
    case ojson::value_t::number_unsigned:
      out += std::to_string(v.get<uint64_t>());
      break;
    case ojson::value_t::number_float:
      out += rust_float(v.get<double>());
      break;
    case ojson::value_t::string:
      append_json_string(out, v.get_ref<const std::string&>());
      break;
    case ojson::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& x : v) {
        if (!first) out += ',';
        first = false;
        append_compact(out, x);
      }
      out += ']';
      break;
    }
    case ojson::value_t::object: {
      out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, it.key());
        out += ':';
        append_compact(out, it.value());
      }
      out += '}';
      break;
    }
    default:
      out += "null";
      break;  // binary / discarded never come from JSON text
  }
}

// `default: ...` as the property and property-level oneOf branches write it.
std::string default_comment(const ojson& schema, const ojson& def) {
  if (def.is_string() && !is_enum(schema)) return "default: \"" + def.get<std::string>() + "\"";
  if (def.is_string()) return "default: " + def.get<std::string>();
  return "default: " + serde_json_compact(def);
}

// Rust's str::lines(): split on \n, drop one trailing \r per line, no empty last line.
std::vector<std::string> rust_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) {
      out.push_back(s.substr(pos));
      break;
    }
    std::string line = s.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(std::move(line));
    pos = nl + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  return fmt::to_string(fmt::join(parts, sep));
}

std::string with_nullable(const ojson& schema, std::string type_str) {
  if (get_bool(schema, "nullable") && !contains(type_str, "null")) type_str += " | null";
  return type_str;
}

std::string render_object(const ojson& schema, const std::string& indent) {
  std::string out;
  if (const std::string* desc = get_str(schema, "description"))
    out += indent + "// " + *desc + "\n";
  out += "{\n";
  const ojson* props = get(schema, "properties");
  if (props && props->is_object()) {
    std::set<std::string> required;
    if (const ojson* req = get(schema, "required"); req && req->is_array())
      for (const auto& r : *req)
        if (r.is_string()) required.insert(r.get<std::string>());
    for (auto it = props->begin(); it != props->end(); ++it) {
      const std::string& key = it.key();
      const ojson& val = it.value();
      const char* opt_mark = required.count(key) ? "" : "?";
      const ojson* one_of = get(val, "oneOf");
      if (const std::string* title = get_str(val, "title"))
        out += indent + "// " + *title + "\n" + indent + "//\n";
      if (!one_of)
        if (const std::string* desc = get_str(val, "description"))
          out += indent + "// " + *desc + "\n";
      if (const ojson* ex = get(val, "examples"); ex && ex->is_array() && !ex->empty()) {
        out += indent + "// Examples:\n";
        for (const auto& e : *ex)
          if (e.is_string()) out += indent + "// - \"" + e.get<std::string>() + "\"\n";
      }
      if (one_of && one_of->is_array()) {
        const std::string* prop_desc = get_str(val, "description");
        bool skip_prop_desc = false;
        if (prop_desc && !one_of->empty()) {
          const std::string* first_desc = get_str((*one_of)[0], "description");
          if (first_desc && *first_desc == *prop_desc) skip_prop_desc = true;
        }
        bool desc_above = false;
        if (!skip_prop_desc && prop_desc) {
          out += indent + "// " + *prop_desc + "\n";
          desc_above = true;
        }
        if (const ojson* def = get(val, "default"))
          out += indent + "// " + default_comment(val, *def) + "\n";
        out += indent + key + opt_mark + ":\n";
        for (size_t i = 0; i < one_of->size(); ++i) {
          const ojson& variant = (*one_of)[i];
          out += indent + " | ";
          out += with_nullable(variant, json_schema_to_typescript(variant, indent + "   "));
          std::vector<std::string> comments;
          if (!(i == 0 && desc_above)) {
            if (const std::string* d = get_str(variant, "description"))
              if (!prop_desc || *d != *prop_desc) comments.push_back(*d);
          }
          if (const ojson* def = get(variant, "default"))
            comments.push_back(default_comment(variant, *def));
          if (!comments.empty()) out += " // " + join(comments, " ");
          out += "\n";
        }
        out += indent + ",\n";
        continue;
      }
      out += indent + key + opt_mark + ": ";
      out += with_nullable(val, json_schema_to_typescript(val, indent + "    "));
      out += ",";
      if (!one_of)
        if (const ojson* def = get(val, "default")) out += " // " + default_comment(val, *def);
      out += "\n";
    }
  }
  out += indent + "}";
  return out;
}

}  // namespace

std::string rust_float(double value) {
  if (!std::isfinite(value)) return "null";
  std::string out;
  if (std::signbit(value)) {
    out += '-';
    value = -value;
  }
  if (value == 0) return out + "0.0";
  // Shortest round-trip digits, as ryu finds them; then ryu's layout rules.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  size_t e = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  int exp10 = std::atoi(sci.c_str() + e + 1);  // value = d.ddd * 10^exp10
  const int length = static_cast<int>(digits.size());
  const int kk = exp10 + 1;   // 10^(kk-1) <= value < 10^kk
  const int k = kk - length;  // exponent of the last digit
  if (0 <= k && kk <= 16) {
    out += digits + std::string(k, '0') + ".0";
  } else if (0 < kk && kk <= 16) {
    out += digits.substr(0, kk) + "." + digits.substr(kk);
  } else if (-5 < kk && kk <= 0) {
    out += "0." + std::string(-kk, '0') + digits;
  } else if (length == 1) {
    out += digits + "e" + std::to_string(kk - 1);
  } else {
    out += digits.substr(0, 1) + "." + digits.substr(1) + "e" + std::to_string(kk - 1);
  }
  return out;
}

std::string serde_json_compact(const ojson& value) {
  std::string out;
  append_compact(out, value);
  return out;
}

std::string json_schema_to_typescript(const ojson& schema, const std::string& indent) {
  if (const ojson* one_of = get(schema, "oneOf"); one_of && one_of->is_array()) {
    std::string out;
    for (const auto& variant : *one_of) {
      out += "\n" + indent + " | ";
      out += with_nullable(variant, json_schema_to_typescript(variant, indent + "   "));
      std::vector<std::string> comments;
      if (const std::string* d = get_str(variant, "description")) comments.push_back(*d);
      if (const ojson* def = get(variant, "default")) {
        if (def->is_string() && !is_enum(variant))
          comments.push_back("default: \"" + def->get<std::string>() + "\"");
        else
          comments.push_back("default: " + serde_json_compact(*def));
      }
      if (!comments.empty()) out += " // " + join(comments, " ");
    }
    return out;
  }
  const ojson* type = get(schema, "type");
  if (type && type->is_array()) {
    std::vector<std::string> names;
    for (const auto& t : *type)
      if (t.is_string())
        names.push_back(t.get<std::string>() == "integer" ? "number" : t.get<std::string>());
    if (!names.empty()) return join(names, " | ");
  }
  if (type && type->is_string()) {
    const std::string& t = type->get_ref<const std::string&>();
    if (t == "object") return render_object(schema, indent);
    if (t == "string") {
      if (const ojson* e = get(schema, "enum"); e && e->is_array()) {
        std::vector<std::string> vals;
        for (const auto& v : *e)
          if (v.is_string()) vals.push_back("\"" + v.get<std::string>() + "\"");
        if (!vals.empty()) return join(vals, " | ");
      }
      return "string";
    }
    if (t == "number" || t == "integer") return "number";
    if (t == "boolean") return "boolean";
    if (t == "array") {
      if (const ojson* items = get(schema, "items"))
        return json_schema_to_typescript(*items, indent) + "[]";
      return "Array<any>";
    }
    return "any";
  }
  return "any";
}

std::string render_tools_section(const ToolNamespaces& tools) {
  std::vector<std::string> sections{"# Tools"};
  for (const auto& [key, ns] : tools) {
    std::vector<std::string> lines{"## " + ns.name + "\n"};
    if (ns.description)
      for (const auto& line : rust_lines(*ns.description))
        lines.push_back(ns.tools.empty() ? line : "// " + line);
    if (!ns.tools.empty()) {
      lines.push_back("namespace " + ns.name + " {\n");
      for (const auto& tool : ns.tools) {
        for (const auto& line : rust_lines(tool.description)) lines.push_back("// " + line);
        if (tool.parameters)
          lines.push_back("type " + tool.name + " = (_: " +
                          json_schema_to_typescript(*tool.parameters, "") + ") => any;\n");
        else
          lines.push_back("type " + tool.name + " = () => any;\n");
      }
      lines.push_back("} // namespace " + ns.name);
    }
    sections.push_back(join(lines, "\n"));
  }
  return join(sections, "\n\n");
}

}  // namespace gptoss::harmony
