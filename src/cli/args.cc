#include "cli/args.h"

#include <cerrno>
#include <cstdlib>

namespace gptoss::cli {

Expected<Args> Args::parse(const std::vector<std::string>& argv, const ArgSpec& spec) {
  Args a;
  bool only_positional = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (only_positional || s.size() < 2 || s[0] != '-' || s == "-") {
      a.positional_.push_back(s);
      continue;
    }
    if (s == "--") {
      only_positional = true;
      continue;
    }
    std::string name = s, value;
    bool has_inline = false;
    if (auto eq = s.find('='); eq != std::string::npos && s.rfind("--", 0) == 0) {
      name = s.substr(0, eq);
      value = s.substr(eq + 1);
      has_inline = true;
    }
    if (spec.flags.count(name)) {
      if (has_inline) return Error("option {} takes no value", name);
      a.values_.emplace(name, "");
    } else if (spec.options.count(name)) {
      if (!has_inline) {
        if (i + 1 >= argv.size()) return Error("option {} needs a value", name);
        value = argv[++i];
      }
      a.values_.emplace(name, value);
    } else {
      return Error("unknown option {}", name);
    }
  }
  return a;
}

std::optional<std::string> Args::get(const std::string& name) const {
  auto range = values_.equal_range(name);
  if (range.first == range.second) return std::nullopt;
  return std::prev(range.second)->second;  // the last one given wins
}

std::string Args::get_or(const std::string& name, const std::string& def) const {
  auto v = get(name);
  return v ? *v : def;
}

Expected<long long> Args::get_int(const std::string& name, long long def) const {
  auto v = get(name);
  if (!v) return def;
  errno = 0;
  char* end = nullptr;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0) return Error("{}: '{}' is not an integer", name, *v);
  return x;
}

Expected<double> Args::get_double(const std::string& name, double def) const {
  auto v = get(name);
  if (!v) return def;
  errno = 0;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno != 0) return Error("{}: '{}' is not a number", name, *v);
  return x;
}

Expected<size_t> Args::get_bytes(const std::string& name, size_t def) const {
  auto v = get(name);
  if (!v) return def;
  size_t i = 0;
  unsigned long long n = 0;
  for (; i < v->size() && (*v)[i] >= '0' && (*v)[i] <= '9'; ++i) {
    if (n > (~0ull - 9) / 10) return Error("{}: '{}' is too large", name, *v);
    n = n * 10 + static_cast<unsigned>((*v)[i] - '0');
  }
  const std::string suffix = v->substr(i);
  int shift = suffix.empty() ? 0 : -1;
  const char* units[] = {"K", "M", "G", "T"};
  for (int u = 0; u < 4; ++u) {
    if (suffix == units[u] || suffix == std::string(units[u]) + "iB") shift = 10 * (u + 1);
  }
  if (i == 0 || shift < 0) return Error("{}: '{}' is not a byte count (e.g. 512M, 16G)", name, *v);
  if (n > (~0ull >> shift)) return Error("{}: '{}' is too large", name, *v);
  return static_cast<size_t>(n << shift);
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  std::vector<std::string> out;
  auto range = values_.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

}  // namespace gptoss::cli
