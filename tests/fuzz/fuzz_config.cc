// config.json (HF and original/ spellings) and generation_config.json: any bytes parse into a
// config that validate_config accepts or rejects, or fail with a message; never a crash.
// The first byte picks the parser.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % 3;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (which == 2) {
    gptoss::ModelConfig config;
    gptoss::Status st = gptoss::apply_generation_config(text, "generation_config.json", &config);
    if (!st.is_ok() && st.message().empty()) std::abort();
    return 0;
  }
  auto r = which == 0 ? gptoss::parse_hf_config(text, "config.json")
                      : gptoss::parse_original_config(text, "original/config.json");
  gptoss::fuzz::require_message(r);
  if (r) {
    gptoss::Status st = gptoss::validate_config(*r, "config.json");
    if (!st.is_ok() && st.message().empty()) std::abort();
  }
  return 0;
}
