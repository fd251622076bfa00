// One request in API-neutral terms: the OpenAI chat, Responses and Ollama front ends all parse
// into a ChatRequest; the harmony prompt is built from it (prompt_builder.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "server/api_error.h"

namespace gptoss::server {

struct ToolCall {
  std::string id;         // OpenAI call id (call_...); may be empty for Ollama
  std::string name;       // function name without "functions."
  std::string arguments;  // JSON text, exactly as given or generated
};

enum class Role { kSystem, kDeveloper, kUser, kAssistant, kTool };

struct ChatMessage {
  Role role = Role::kUser;
  std::string content;
  std::string reasoning;            // assistant chain of thought (reasoning / reasoning_content)
  std::vector<ToolCall> tool_calls; // assistant
  std::string tool_call_id;         // tool result: which call it answers
  std::string tool_name;            // tool result: function name (resolved from tool_call_id)
};

struct FunctionTool {
  std::string name;
  std::string description;
  std::optional<ojson> parameters;  // JSON schema; key order as given
};

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  std::vector<FunctionTool> tools;
  std::string tool_choice = "auto";  // auto | none | required | the name of one function
  std::string reasoning_effort = "medium";  // low | medium | high
  // response_format json_schema: rendered as the developer message's "# Response Formats"
  // (prompt only: sampling is not grammar-constrained).
  std::optional<ojson> response_schema;
  std::string response_schema_name;
  std::string response_schema_description;
  engine::SamplingParams sampling;
  int max_tokens = -1;  // -1: up to the context
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
};

// Role names as the APIs spell them, and back (nullopt for any other name).
const char* role_name(Role r);
std::optional<Role> role_from_name(std::string_view name);

}  // namespace gptoss::server
