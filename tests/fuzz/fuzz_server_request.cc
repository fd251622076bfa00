// HTTP request bodies of every endpoint, as the server handles them before the engine: body ->
// parse_body (depth limit, JSON) -> the endpoint's parse function -> harmony conversation ->
// rendered prompt. The first byte picks the endpoint. Bad input must end in ApiError (a 4xx with
// a message), never a crash or another exception.
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "harmony/render.h"
#include "server/json_fields.h"
#include "server/prompt_builder.h"
#include "server/request_parse.h"

using namespace gptoss;
using namespace gptoss::server;

static void render(const ChatRequest& req) {
  PromptOptions opts;
  opts.current_date = "2025-01-01";
  harmony::Conversation conv = build_conversation(req, opts);
  auto ids = harmony::render_for_completion(fuzz::builtin_tokenizer(), conv);
  fuzz::require_message(ids);
  (void)forced_call_prefix(req);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    ojson j = parse_body(body);
    switch (data[0] % 5) {
      case 0: render(parse_chat_completions(j)); break;
      case 1: {
        ResponsesExtras extras;
        render(parse_responses(j, ojson::array(), "", &extras));
        break;
      }
      case 2: (void)parse_completions(j); break;
      case 3: render(parse_ollama_chat(j)); break;
      case 4: {
        OllamaExtras extras;
        render(parse_ollama_generate(j, &extras));
        break;
      }
    }
  } catch (const ApiError& e) {
    if (e.message.empty() || e.status < 400 || e.status > 499) std::abort();
  }
  return 0;
}
