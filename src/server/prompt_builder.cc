#include "server/prompt_builder.h"

#include <fmt/format.h>

namespace gptoss::server {

using harmony::Message;

std::string forced_call_prefix(const ChatRequest& req) {
  std::string name;
  if (req.tool_choice == "required" && req.tools.size() == 1) {
    name = req.tools[0].name;
  } else if (req.tool_choice != "auto" && req.tool_choice != "none" &&
             req.tool_choice != "required") {
    name = req.tool_choice;
  }
  if (name.empty()) return "";
  return fmt::format("<|channel|>commentary to=functions.{} <|constrain|>json<|message|>", name);
}

static harmony::ReasoningEffort effort_of(const std::string& e) {
  if (e == "low") return harmony::ReasoningEffort::kLow;
  if (e == "high") return harmony::ReasoningEffort::kHigh;
  return harmony::ReasoningEffort::kMedium;
}

harmony::Conversation build_conversation(const ChatRequest& req, const PromptOptions& opts) {
  harmony::Conversation conv;
  harmony::SystemContent sys;
  sys.reasoning_effort = effort_of(req.reasoning_effort);
  sys.conversation_start_date = opts.current_date.empty() ? harmony::today_utc() : opts.current_date;
  conv.messages.push_back(Message::system(sys));

  std::string instructions;
  for (const auto& m : req.messages) {
    if (m.role != Role::kSystem && m.role != Role::kDeveloper) continue;
    if (m.content.empty()) continue;
    if (!instructions.empty()) instructions += "\n\n";
    instructions += m.content;
  }
  bool with_tools = !req.tools.empty() && req.tool_choice != "none";
  if (!instructions.empty() || with_tools || req.response_schema) {
    harmony::DeveloperContent dev;
    if (!instructions.empty()) dev.instructions = instructions;
    if (with_tools) {
      std::vector<harmony::ToolDescription> tools;
      for (const auto& t : req.tools) tools.push_back({t.name, t.description, t.parameters});
      dev.with_function_tools(std::move(tools));
    }
    if (req.response_schema) {
      harmony::ResponseFormat rf;
      rf.name = req.response_schema_name;
      if (!req.response_schema_description.empty()) rf.description = req.response_schema_description;
      rf.schema = *req.response_schema;
      dev.response_formats.push_back(std::move(rf));
    }
    Message msg = Message::developer(dev);
    conv.messages.push_back(std::move(msg));
  }

  std::vector<Message> turns;
  for (const auto& m : req.messages) {
    switch (m.role) {
      case Role::kSystem:
      case Role::kDeveloper:
        break;
      case Role::kUser:
        turns.push_back(Message::make(harmony::Role::kUser, m.content));
        break;
      case Role::kAssistant: {
        if (!m.reasoning.empty()) {
          turns.push_back(Message::make(harmony::Role::kAssistant, m.reasoning)
                              .with_channel("analysis"));
        }
        if (!m.tool_calls.empty()) {
          if (!m.content.empty()) {
            turns.push_back(Message::make(harmony::Role::kAssistant, m.content)
                                .with_channel("commentary"));
          }
          for (const auto& c : m.tool_calls) {
            turns.push_back(Message::make(harmony::Role::kAssistant, c.arguments)
                                .with_channel("commentary")
                                .with_recipient("functions." + c.name)
                                .with_content_type("<|constrain|>json"));
          }
        } else if (!m.content.empty() || m.reasoning.empty()) {
          turns.push_back(Message::make(harmony::Role::kAssistant, m.content)
                              .with_channel("final"));
        }
        break;
      }
      case Role::kTool:
        turns.push_back(Message::make(harmony::Role::kTool, m.content)
                            .with_name("functions." + m.tool_name)
                            .with_recipient("assistant")
                            .with_channel("commentary"));
        break;
    }
  }
  // The chain of thought of finished turns is dropped when rendering
  // (harmony::DropAnalysis::kBeforeLastFinal).
  for (auto& t : turns) conv.messages.push_back(std::move(t));
  return conv;
}

}  // namespace gptoss::server
