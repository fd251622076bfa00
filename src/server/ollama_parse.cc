// Ollama request bodies (/api/chat, /api/generate) -> ChatRequest.
#include <map>

#include <fmt/format.h>

#include "server/json_fields.h"
#include "server/request_parse.h"

namespace gptoss::server {

static std::string think_to_effort(const ojson& body) {
  const ojson* t = field(body, "think");
  if (!t) return "medium";
  if (t->is_boolean()) return t->get<bool>() ? "medium" : "low";
  if (t->is_string()) {
    std::string s = t->get<std::string>();
    if (s == "max") return "high";
    if (s == "low" || s == "medium" || s == "high") return s;
    throw ApiError::invalid("think", fmt::format("'think' must be true, false, low, medium, high "
                                                 "or max; got '{}'", s), "invalid_value");
  }
  throw ApiError::invalid("think", "'think' must be a boolean or a level string", "invalid_type");
}

static void parse_options(const ojson& body, ChatRequest* req) {
  const ojson* o = opt_object(body, "options", "");
  if (!o) return;
  const std::string p = "options";
  if (auto v = opt_number(*o, "temperature", p, 0.0, 100.0)) req->sampling.temperature = float(*v);
  if (auto v = opt_number(*o, "top_p", p, 0.0, 1.0)) {
    req->sampling.top_p = *v <= 0.0 ? 1.0f : float(*v);
  }
  if (auto v = opt_int(*o, "top_k", p, 0, 1 << 30)) req->sampling.top_k = int(*v);
  if (auto v = opt_number(*o, "min_p", p, 0.0, 1.0)) req->sampling.min_p = float(*v);
  if (auto v = opt_number(*o, "repeat_penalty", p, 0.0, 100.0)) {
    req->sampling.repetition_penalty = *v <= 0.0 ? 1.0f : float(*v);
  }
  if (auto v = opt_number(*o, "presence_penalty", p, -100.0, 100.0)) req->sampling.presence_penalty = float(*v);
  if (auto v = opt_number(*o, "frequency_penalty", p, -100.0, 100.0)) req->sampling.frequency_penalty = float(*v);
  if (auto v = opt_int(*o, "seed", p, INT64_MIN, INT64_MAX)) {
    req->sampling.has_seed = true;
    req->sampling.seed = static_cast<uint64_t>(*v);
  }
  if (auto v = opt_int(*o, "num_predict", p, -2, INT32_MAX)) {
    if (*v == 0) throw ApiError::invalid("options.num_predict", "'options.num_predict' must not be 0");
    req->max_tokens = *v < 0 ? -1 : int(*v);
  }
  req->stop = parse_stop(*o, "stop", p);
}

static void parse_format(const ojson& body, ChatRequest* req) {
  const ojson* f = field(body, "format");
  if (!f) return;
  if (f->is_string()) {
    std::string s = f->get<std::string>();
    if (s.empty()) return;
    if (s != "json") throw ApiError::invalid("format", "'format' must be \"json\" or a JSON schema");
    req->response_schema_name = "json_object";
    req->response_schema = ojson{{"type", "object"}};
  } else if (f->is_object()) {
    req->response_schema_name = "response";
    req->response_schema = *f;
  } else {
    throw ApiError::invalid("format", "'format' must be \"json\" or a JSON schema", "invalid_type");
  }
}

ChatRequest parse_ollama_chat(const ojson& body) {
  ChatRequest req;
  req.model = req_string(body, "model", "");
  req.stream = opt_bool(body, "stream", "").value_or(true);
  req.reasoning_effort = think_to_effort(body);
  const ojson& messages = required_messages(body);
  std::map<std::string, std::string> call_names;
  std::string last_call_name;
  for (size_t i = 0; i < messages.size(); ++i) {
    std::string p = path_index("messages", i);
    const ojson& m = messages[i];
    ChatMessage msg;
    msg.role = message_role(m, p, "");
    msg.content = opt_string(m, "content", p).value_or("");
    if (field(m, "images")) {
      throw ApiError::invalid(path_key(p, "images"), "images are not supported by gpt-oss");
    }
    if (msg.role == Role::kAssistant) {
      msg.reasoning = opt_string(m, "thinking", p).value_or("");
      if (const ojson* calls = opt_array(m, "tool_calls", p)) {
        for (size_t k = 0; k < calls->size(); ++k) {
          std::string cp = path_index(path_key(p, "tool_calls"), k);
          const ojson* fn = opt_object((*calls)[k], "function", cp);
          if (!fn) throw ApiError::invalid(cp, fmt::format("'{}.function' is required", cp));
          ToolCall call;
          call.id = opt_string((*calls)[k], "id", cp).value_or("");
          call.name = req_string(*fn, "name", path_key(cp, "function"));
          const ojson* args = field(*fn, "arguments");
          if (!args) call.arguments = "{}";
          else if (args->is_string()) call.arguments = args->get<std::string>();
          else call.arguments = args->dump();
          if (!call.id.empty()) call_names[call.id] = call.name;
          last_call_name = call.name;
          msg.tool_calls.push_back(std::move(call));
        }
      }
    }
    if (msg.role == Role::kTool) {
      msg.tool_call_id = opt_string(m, "tool_call_id", p).value_or("");
      if (auto n = opt_string(m, "tool_name", p)) msg.tool_name = *n;
      else if (auto n2 = opt_string(m, "name", p)) msg.tool_name = *n2;
      else if (call_names.count(msg.tool_call_id)) msg.tool_name = call_names[msg.tool_call_id];
      else msg.tool_name = last_call_name;
      if (msg.tool_name.empty()) {
        throw ApiError::invalid(path_key(p, "tool_name"),
                                fmt::format("'{}.tool_name' is required: no earlier tool call "
                                            "names the function", p));
      }
    }
    req.messages.push_back(std::move(msg));
  }
  if (const ojson* tools = opt_array(body, "tools", "")) {
    req.tools = parse_function_tools(*tools, "tools", /*nested_function=*/true);
  }
  parse_options(body, &req);
  parse_format(body, &req);
  return req;
}

ChatRequest parse_ollama_generate(const ojson& body, OllamaExtras* extras) {
  ChatRequest req;
  req.model = req_string(body, "model", "");
  req.stream = opt_bool(body, "stream", "").value_or(true);
  req.reasoning_effort = think_to_effort(body);
  std::string prompt = opt_string(body, "prompt", "").value_or("");
  extras->raw = opt_bool(body, "raw", "").value_or(false);
  std::string system = opt_string(body, "system", "").value_or("");
  if (extras->raw) {
    if (!system.empty() || field(body, "template") || field(body, "context")) {
      throw ApiError::invalid("raw", "'raw' cannot be combined with 'system', 'template' or "
                                     "'context'");
    }
    extras->raw_prompt = prompt;
  } else {
    if (field(body, "template")) {
      throw ApiError::invalid("template", "'template' is not supported: gpt-oss uses harmony");
    }
    if (!system.empty()) {
      ChatMessage s;
      s.role = Role::kSystem;
      s.content = system;
      req.messages.push_back(std::move(s));
    }
    ChatMessage u;
    u.role = Role::kUser;
    u.content = prompt;
    req.messages.push_back(std::move(u));
  }
  if (field(body, "images")) throw ApiError::invalid("images", "images are not supported");
  parse_options(body, &req);
  parse_format(body, &req);
  return req;
}

}  // namespace gptoss::server
