// Harmony conversation JSON (openai-harmony's shape) -> Conversation -> rendered tokens and text.
// Any bytes either fail with a message or render; the token and text renders
// both succeed or both fail.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "harmony/conversation.h"
#include "harmony/render.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gptoss;
  harmony::ojson j = harmony::ojson::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  auto conv = harmony::conversation_from_json(j);
  fuzz::require_message(conv);
  if (!conv) return 0;
  const Tokenizer& tok = fuzz::builtin_tokenizer();
  auto ids = harmony::render_for_completion(tok, *conv);
  fuzz::require_message(ids);
  auto text = harmony::render_text_for_completion(*conv);
  fuzz::require_message(text);
  if (static_cast<bool>(ids) != static_cast<bool>(text)) std::abort();
  auto train = harmony::render_for_training(tok, *conv);
  fuzz::require_message(train);
  // What renders must read back: the JSON writer and reader agree.
  auto again = harmony::conversation_from_json(harmony::conversation_to_json(*conv));
  if (!again) std::abort();
  return 0;
}
