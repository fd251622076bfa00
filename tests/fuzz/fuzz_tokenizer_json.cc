// Hugging Face tokenizer.json: any bytes build a tokenizer or fail with a message. A tokenizer
// that builds must encode and decode a fixed sample without crashing.
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = gptoss::fuzz::write_scratch(
      "tokenizer.json", std::string_view(reinterpret_cast<const char*>(data), size));
  auto tok = gptoss::Tokenizer::from_tokenizer_json(path);
  gptoss::fuzz::require_message(tok);
  if (tok) {
    auto ids = (*tok)->encode("Hello, world! 123 <|start|>");
    (void)(*tok)->decode(ids);
  }
  return 0;
}
