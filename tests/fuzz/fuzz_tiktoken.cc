// .tiktoken rank files: any text builds a tokenizer or fails with a message. A tokenizer that
// builds must encode and decode a fixed sample without crashing.
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tok = gptoss::Tokenizer::from_tiktoken_text(text, "fuzz.tiktoken");
  gptoss::fuzz::require_message(tok);
  if (tok) {
    auto ids = (*tok)->encode("Hello, world! 123 <|start|>");
    (void)(*tok)->decode(ids);
    (void)(*tok)->encode_with_special("<|start|>user<|message|>hi<|end|>");
  }
  return 0;
}
