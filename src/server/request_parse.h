// Request bodies -> ChatRequest, with validation. Each function throws ApiError (400) naming the
// offending field; nothing here touches the model or the tokenizer.
#pragma once

#include <string>
#include <vector>

#include "server/chat_request.h"

namespace gptoss::server {

// POST /v1/chat/completions.
ChatRequest parse_chat_completions(const ojson& body);

// POST /v1/responses. `history` holds the input items of the previous response (with its output
// items appended) when previous_response_id was given; they come before this request's input.
struct ResponsesExtras {
  bool store = false;
  std::string previous_response_id;
  std::string instructions;
  ojson input_items = ojson::array();  // this request's input, normalised to a list of items
  ojson tools_echo = ojson::array();
  int max_output_tokens = -1;
};
ChatRequest parse_responses(const ojson& body, const ojson& history_items,
                            const std::string& inherited_instructions, ResponsesExtras* extras);

// POST /v1/completions: the raw prompt (text, not rendered by harmony) and sampling fields.
struct CompletionRequest {
  std::string model;
  std::string prompt;
  engine::SamplingParams sampling;
  int max_tokens = 16;  // OpenAI's default for this endpoint
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  bool echo = false;
};
CompletionRequest parse_completions(const ojson& body);

// POST /api/chat and /api/generate (Ollama). For generate, `raw` bypasses harmony.
struct OllamaExtras {
  bool raw = false;
  std::string raw_prompt;
};
ChatRequest parse_ollama_chat(const ojson& body);
ChatRequest parse_ollama_generate(const ojson& body, OllamaExtras* extras);

// Shared pieces.
std::vector<FunctionTool> parse_function_tools(const ojson& tools, const std::string& path,
                                               bool nested_function);
void validate_function_name(const std::string& name, const std::string& path);
std::vector<std::string> parse_stop(const ojson& obj, const char* key, const std::string& path);
std::string normalize_effort(const std::string& effort, const std::string& path);
// body.messages, which must be a non-empty array.
const ojson& required_messages(const ojson& body);
// The role of messages[i] (at `path`), which must be an object; an unknown role is a 400 whose
// message ends with `known_roles_hint`.
Role message_role(const ojson& m, const std::string& path, const char* known_roles_hint);
// The string form of tool_choice: auto, none or required, else a 400 (invalid_value).
void check_tool_choice_mode(const std::string& mode);
// A structured-output format of type text, json_object or json_schema into req->response_schema*;
// for json_schema, name / description / schema are read from schema_fields (at fields_path).
void parse_output_format(const std::string& type, const ojson* schema_fields, const std::string& fields_path,
                         const std::string& type_path, ChatRequest* req);

}  // namespace gptoss::server
