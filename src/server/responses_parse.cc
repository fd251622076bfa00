// POST /v1/responses request body -> ChatRequest.
#include <map>

#include <fmt/format.h>

#include "server/json_fields.h"
#include "server/request_parse.h"

namespace gptoss::server {

static std::string item_text(const ojson& item, const char* key, const std::string& path) {
  const ojson* c = field(item, key);
  std::string p = path_key(path, key);
  if (!c) return "";
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) {
    throw ApiError::invalid(p, fmt::format("'{}' must be a string or an array of parts", p),
                            "invalid_type");
  }
  std::string text;
  for (size_t i = 0; i < c->size(); ++i) {
    std::string pp = path_index(p, i);
    const ojson& part = (*c)[i];
    if (!part.is_object()) throw ApiError::invalid(pp, fmt::format("'{}' must be an object", pp));
    std::string type = opt_string(part, "type", pp).value_or("input_text");
    if (type != "input_text" && type != "output_text" && type != "text" &&
        type != "reasoning_text" && type != "summary_text") {
      throw ApiError::invalid(path_key(pp, "type"),
                              fmt::format("content type '{}' is not supported (text only)", type),
                              "unsupported_value");
    }
    text += req_string(part, "text", pp);
  }
  return text;
}

static void append_items(const ojson& items, const std::string& base,
                         std::map<std::string, std::string>* call_names,
                         std::vector<ChatMessage>* out) {
  for (size_t i = 0; i < items.size(); ++i) {
    std::string p = path_index(base, i);
    const ojson& it = items[i];
    if (!it.is_object()) throw ApiError::invalid(p, fmt::format("'{}' must be an object", p));
    std::string type = opt_string(it, "type", p).value_or("message");
    ChatMessage msg;
    if (type == "message") {
      std::string role = req_string(it, "role", p);
      // A tool result is a function_call_output item, never a message.
      auto r = role_from_name(role);
      if (r && *r != Role::kTool) msg.role = *r;
      else throw ApiError::invalid(path_key(p, "role"),
                                   fmt::format("unknown role '{}' for a message item", role),
                                   "invalid_value");
      msg.content = item_text(it, "content", p);
    } else if (type == "reasoning") {
      msg.role = Role::kAssistant;
      msg.reasoning = item_text(it, "content", p);
      if (msg.reasoning.empty()) msg.reasoning = item_text(it, "summary", p);
      if (msg.reasoning.empty()) continue;
    } else if (type == "function_call") {
      msg.role = Role::kAssistant;
      ToolCall call;
      call.name = req_string(it, "name", p);
      call.id = req_string(it, "call_id", p);
      call.arguments = opt_string(it, "arguments", p).value_or("{}");
      (*call_names)[call.id] = call.name;
      msg.tool_calls.push_back(std::move(call));
    } else if (type == "function_call_output") {
      msg.role = Role::kTool;
      msg.tool_call_id = req_string(it, "call_id", p);
      auto found = call_names->find(msg.tool_call_id);
      if (found == call_names->end()) {
        throw ApiError::invalid(path_key(p, "call_id"),
                                fmt::format("'{}.call_id' ('{}') matches no earlier function_call "
                                            "item", p, msg.tool_call_id));
      }
      msg.tool_name = found->second;
      const ojson* out_v = field(it, "output");
      if (out_v && out_v->is_string()) msg.content = out_v->get<std::string>();
      else if (out_v) msg.content = item_text(it, "output", p);
    } else {
      throw ApiError::invalid(path_key(p, "type"),
                              fmt::format("input item type '{}' is not supported", type),
                              "unsupported_value");
    }
    out->push_back(std::move(msg));
  }
}

ChatRequest parse_responses(const ojson& body, const ojson& history_items,
                            const std::string& inherited_instructions, ResponsesExtras* extras) {
  ChatRequest req;
  req.model = req_string(body, "model", "");
  req.reasoning_effort = "medium";
  const ojson* input = field(body, "input");
  if (!input) throw ApiError::invalid("input", "'input' is required");
  if (input->is_string()) {
    extras->input_items = ojson::array(
        {ojson{{"type", "message"}, {"role", "user"}, {"content", input->get<std::string>()}}});
  } else if (input->is_array()) {
    extras->input_items = *input;
  } else {
    throw ApiError::invalid("input", "'input' must be a string or an array of items",
                            "invalid_type");
  }
  extras->instructions = opt_string(body, "instructions", "").value_or(inherited_instructions);
  if (!extras->instructions.empty()) {
    ChatMessage sys;
    sys.role = Role::kSystem;
    sys.content = extras->instructions;
    req.messages.push_back(std::move(sys));
  }
  std::map<std::string, std::string> call_names;
  append_items(history_items, "previous_response", &call_names, &req.messages);
  append_items(extras->input_items, "input", &call_names, &req.messages);
  bool has_turn = false;
  for (const auto& m : req.messages) has_turn = has_turn || m.role != Role::kSystem;
  if (!has_turn) throw ApiError::invalid("input", "'input' holds no message");

  if (const ojson* tools = opt_array(body, "tools", "")) {
    req.tools = parse_function_tools(*tools, "tools", /*nested_function=*/false);
    extras->tools_echo = *tools;
  }
  if (const ojson* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      std::string s = tc->get<std::string>();
      check_tool_choice_mode(s);
      req.tool_choice = s;
    } else if (tc->is_object()) {
      std::string name = req_string(*tc, "name", "tool_choice");
      bool found = false;
      for (const auto& t : req.tools) found = found || t.name == name;
      if (!found) throw ApiError::invalid("tool_choice.name",
                                          fmt::format("function '{}' is not in 'tools'", name));
      req.tool_choice = name;
    } else {
      throw ApiError::invalid("tool_choice", "'tool_choice' must be a string or an object",
                              "invalid_type");
    }
  }
  if (const ojson* r = opt_object(body, "reasoning", "")) {
    if (auto e = opt_string(*r, "effort", "reasoning")) {
      req.reasoning_effort = normalize_effort(*e, "reasoning.effort");
    }
  }
  if (const ojson* text = opt_object(body, "text", "")) {
    if (const ojson* fmt_v = opt_object(*text, "format", "text")) {
      const std::string type = req_string(*fmt_v, "type", "text.format");
      parse_output_format(type, fmt_v, "text.format", "text.format.type", &req);
    }
  }
  if (auto n = opt_int(body, "max_output_tokens", "", 1, INT32_MAX)) {
    req.max_tokens = int(*n);
    extras->max_output_tokens = int(*n);
  }
  if (auto t = opt_number(body, "temperature", "", 0.0, 2.0)) req.sampling.temperature = float(*t);
  if (auto t = opt_number(body, "top_p", "", 0.0, 1.0)) {
    if (*t <= 0.0) throw ApiError::invalid("top_p", "'top_p' must be greater than 0", "invalid_value");
    req.sampling.top_p = float(*t);
  }
  req.stream = opt_bool(body, "stream", "").value_or(false);
  extras->store = opt_bool(body, "store", "").value_or(true);
  extras->previous_response_id = opt_string(body, "previous_response_id", "").value_or("");
  return req;
}

}  // namespace gptoss::server
