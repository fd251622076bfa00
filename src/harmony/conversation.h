// The Harmony conversation model: what a prompt is made of before it becomes tokens.
// It mirrors openai-harmony's `chat.rs` / Python `Conversation` so that the same JSON renders to
// the same tokens here and there. JSON objects keep their key order (nlohmann::ordered_json),
// because tool parameter schemas render their properties in input order.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gptoss::harmony {

using ojson = nlohmann::ordered_json;

enum class Role { kUser, kAssistant, kSystem, kDeveloper, kTool };

std::string_view role_name(Role role);
std::optional<Role> role_from_name(std::string_view name);

enum class ReasoningEffort { kLow, kMedium, kHigh };

// "low" | "medium" | "high" (what the system message says).
std::string_view effort_name(ReasoningEffort effort);
// Accepts harmony's JSON spelling ("Low") and the lower-case one ("low").
std::optional<ReasoningEffort> effort_from_name(std::string_view name);

struct ToolDescription {
  std::string name;
  std::string description;
  std::optional<ojson> parameters;  // a JSON Schema; absent renders `() => any`
};

struct ToolNamespace {
  std::string name;
  std::optional<std::string> description;
  std::vector<ToolDescription> tools;

  // The built-in tools exactly as openai-harmony defines them (`ToolNamespaceConfig::browser()`).
  static ToolNamespace browser();
  static ToolNamespace python();
};

struct ChannelConfig {
  std::vector<std::string> valid_channels;
  bool channel_required = true;
};

// Namespaces are rendered in key order (harmony keeps them in a BTreeMap).
using ToolNamespaces = std::map<std::string, ToolNamespace>;

struct SystemContent {
  std::optional<std::string> model_identity =
      "You are ChatGPT, a large language model trained by OpenAI.";
  std::optional<ReasoningEffort> reasoning_effort = ReasoningEffort::kMedium;
  std::optional<ToolNamespaces> tools;
  std::optional<std::string> conversation_start_date;  // "YYYY-MM-DD"
  std::optional<std::string> knowledge_cutoff = "2024-06";
  std::optional<ChannelConfig> channel_config =
      ChannelConfig{{"analysis", "commentary", "final"}, true};

  SystemContent& with_tools(ToolNamespace ns);
};

// Today (UTC) as "YYYY-MM-DD": the conversation_start_date front ends use when none is given.
std::string today_utc();

// Structured output (docs/format.md "Structured output"). openai-harmony has no field for it;
// it is rendered at the end of the developer message as
// "# Response Formats\n\n## {name}\n\n// {description}\n{schema as compact JSON}".
// JSON key: "response_formats": [{"name", "description", "schema"}] (ignored by openai-harmony).
struct ResponseFormat {
  std::string name;
  std::optional<std::string> description;
  ojson schema;
};

struct DeveloperContent {
  std::optional<std::string> instructions;
  std::optional<ToolNamespaces> tools;
  std::vector<ResponseFormat> response_formats;

  DeveloperContent& with_tools(ToolNamespace ns);
  DeveloperContent& with_function_tools(std::vector<ToolDescription> tools);
};

// One part of a message's content.
struct Content {
  enum class Kind { kText, kSystem, kDeveloper } kind = Kind::kText;
  std::string text;
  SystemContent system;
  DeveloperContent developer;

  static Content of_text(std::string text);
  static Content of_system(SystemContent system);
  static Content of_developer(DeveloperContent developer);
};

struct Message {
  Role role = Role::kUser;
  std::optional<std::string> name;  // the author name; for role tool, e.g. "functions.get_weather"
  std::optional<std::string> recipient;
  std::optional<std::string> channel;
  std::optional<std::string> content_type;  // e.g. "<|constrain|>json", "code"
  std::vector<Content> content;

  static Message make(Role role, std::string text);
  static Message system(SystemContent c);
  static Message developer(DeveloperContent c);
  Message& with_channel(std::string c) {
    channel = std::move(c);
    return *this;
  }
  Message& with_recipient(std::string r) {
    recipient = std::move(r);
    return *this;
  }
  Message& with_content_type(std::string t) {
    content_type = std::move(t);
    return *this;
  }
  Message& with_name(std::string n) {
    name = std::move(n);
    return *this;
  }

  // All text parts concatenated (system/developer parts are skipped).
  std::string text() const;
};

struct Conversation {
  std::vector<Message> messages;
};

// JSON in the shape openai-harmony uses (Python `Conversation.to_json()`, Rust serde):
// {"messages":[{"role":"user","name":null,"content":[{"type":"text","text":"hi"}],...}]}.
// `content` may also be a plain string. As in harmony's Rust side, a field missing from
// system_content is None (no default is filled in). Errors name the offending field.
Expected<Conversation> conversation_from_json(const ojson& j);
Expected<Message> message_from_json(const ojson& j);
Expected<ToolNamespace> tool_namespace_from_json(const ojson& j);

// The JSON harmony's Rust side writes for a message (the output of
// parse_messages_from_completion_tokens): role, name, recipient, content, channel, content_type,
// absent fields left out, a single text content written as a plain string.
ojson message_to_json(const Message& m);
ojson conversation_to_json(const Conversation& c);

}  // namespace gptoss::harmony
