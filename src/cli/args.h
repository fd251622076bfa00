// A small argument parser for the subcommands: --flag, --key value, --key=value, positionals.
// Unknown flags are an error that names the flag; every command prints its own usage.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace gptoss::cli {

struct ArgSpec {
  std::set<std::string> flags;    // switches without a value, e.g. "--json"
  std::set<std::string> options;  // take a value, e.g. "--out"
};

class Args {
 public:
  static Expected<Args> parse(const std::vector<std::string>& argv, const ArgSpec& spec);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> get(const std::string& name) const;
  std::string get_or(const std::string& name, const std::string& def) const;
  Expected<long long> get_int(const std::string& name, long long def) const;
  Expected<double> get_double(const std::string& name, double def) const;
  // A byte count: digits with an optional K, M, G or T suffix (powers of 1024), e.g. 512M, 16G.
  Expected<size_t> get_bytes(const std::string& name, size_t def) const;
  // All values of a repeatable option, in order.
  std::vector<std::string> get_all(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::multimap<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace gptoss::cli
