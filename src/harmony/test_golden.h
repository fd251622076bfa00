// Test helper: a file of openai-harmony's golden test data (tests/data/harmony), trailing newlines,
// spaces and carriage returns removed.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace gptoss::harmony {

inline std::string golden(const std::string& name) {
  std::ifstream f(std::string(GPTOSS_SOURCE_DIR) + "/tests/data/harmony/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace gptoss::harmony
