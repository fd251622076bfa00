// Helpers shared by the libFuzzer targets in tests/fuzz (GPTOSS_FUZZ=ON, clang).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace gptoss::fuzz {

// A failure must explain itself: an empty error message is a bug.
template <class E>
void require_message(const E& result) {
  if (!result && result.status().message().empty()) std::abort();
}

// The o200k_harmony tokenizer, loaded once per process.
inline const Tokenizer& builtin_tokenizer() {
  static std::shared_ptr<const Tokenizer> tok = [] {
    auto t = Tokenizer::builtin();
    if (!t) {
      std::fprintf(stderr, "builtin tokenizer: %s\n", t.status().message().c_str());
      std::abort();
    }
    return *t;
  }();
  return *tok;
}

// A per-process scratch file (for loaders that only take a path), rewritten on every input.
inline std::string write_scratch(const std::string& stem, std::string_view bytes) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/gptoss_fuzz_" +
                     std::to_string(::getpid()) + "_" + stem;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace gptoss::fuzz
