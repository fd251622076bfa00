// OpenAI request bodies (chat completions, responses, completions) -> ChatRequest.
#include <map>

#include <fmt/format.h>

#include "server/json_fields.h"
#include "server/request_parse.h"

namespace gptoss::server {

const char* role_name(Role r) {
  switch (r) {
    case Role::kSystem: return "system";
    case Role::kDeveloper: return "developer";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
    case Role::kTool: return "tool";
  }
  return "user";
}

std::optional<Role> role_from_name(std::string_view name) {
  for (Role r : {Role::kSystem, Role::kDeveloper, Role::kUser, Role::kAssistant, Role::kTool}) {
    if (name == role_name(r)) return r;
  }
  return std::nullopt;
}

const ojson& required_messages(const ojson& body) {
  const ojson* messages = opt_array(body, "messages", "");
  if (!messages || messages->empty()) {
    throw ApiError::invalid("messages", "'messages' must be a non-empty array");
  }
  return *messages;
}

Role message_role(const ojson& m, const std::string& path, const char* known_roles_hint) {
  if (!m.is_object()) throw ApiError::invalid(path, fmt::format("'{}' must be an object", path));
  std::string role = req_string(m, "role", path);
  if (auto r = role_from_name(role)) return *r;
  throw ApiError::invalid(path_key(path, "role"),
                          fmt::format("unknown role '{}'{}", role, known_roles_hint), "invalid_value");
}

void check_tool_choice_mode(const std::string& mode) {
  if (mode != "auto" && mode != "none" && mode != "required") {
    throw ApiError::invalid("tool_choice", fmt::format("'tool_choice' must be auto, none, "
                                                       "required or a function; got '{}'", mode),
                            "invalid_value");
  }
}

void validate_function_name(const std::string& name, const std::string& path) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) ok = false;
  }
  if (!ok) {
    throw ApiError::invalid(path, fmt::format("'{}' must match ^[a-zA-Z0-9_-]{{1,64}}$, got '{}'",
                                              path, name), "invalid_value");
  }
}

void parse_output_format(const std::string& type, const ojson* schema_fields, const std::string& fields_path,
                         const std::string& type_path, ChatRequest* req) {
  if (type == "json_schema") {
    req->response_schema_name = req_string(*schema_fields, "name", fields_path);
    req->response_schema_description = opt_string(*schema_fields, "description", fields_path).value_or("");
    const ojson* schema = opt_object(*schema_fields, "schema", fields_path);
    req->response_schema = schema ? *schema : ojson::object();
  } else if (type == "json_object") {
    req->response_schema_name = "json_object";
    req->response_schema = ojson{{"type", "object"}};
  } else if (type != "text") {
    throw ApiError::invalid(type_path,
                            fmt::format("'{}' must be text, json_object or json_schema; got '{}'", type_path, type),
                            "invalid_value");
  }
}

std::string normalize_effort(const std::string& effort, const std::string& path) {
  if (effort == "low" || effort == "medium" || effort == "high") return effort;
  if (effort == "minimal") return "low";
  throw ApiError::invalid(path, fmt::format("'{}' must be one of low, medium, high; got '{}'"
                                            " (gpt-oss always reasons)", path, effort),
                          "invalid_value");
}

std::vector<std::string> parse_stop(const ojson& obj, const char* key, const std::string& path) {
  std::vector<std::string> out;
  const ojson* v = field(obj, key);
  if (!v) return out;
  std::string p = path_key(path, key);
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) {
        throw ApiError::invalid(path_index(p, i), fmt::format("'{}' must be a string",
                                                              path_index(p, i)), "invalid_type");
      }
      out.push_back((*v)[i].get<std::string>());
    }
  } else {
    throw ApiError::invalid(p, fmt::format("'{}' must be a string or an array of strings", p),
                            "invalid_type");
  }
  if (out.size() > 16) {
    throw ApiError::invalid(p, fmt::format("'{}' has {} entries; at most 16", p, out.size()),
                            "invalid_value");
  }
  for (const auto& s : out) {
    if (s.empty()) throw ApiError::invalid(p, fmt::format("'{}' holds an empty string", p));
  }
  return out;
}

std::vector<FunctionTool> parse_function_tools(const ojson& tools, const std::string& path,
                                               bool nested_function) {
  std::vector<FunctionTool> out;
  for (size_t i = 0; i < tools.size(); ++i) {
    std::string p = path_index(path, i);
    const ojson& t = tools[i];
    if (!t.is_object()) throw ApiError::invalid(p, fmt::format("'{}' must be an object", p));
    std::string type = opt_string(t, "type", p).value_or("function");
    if (type != "function") {
      throw ApiError::invalid(path_key(p, "type"),
                              fmt::format("tool type '{}' is not supported; only 'function'", type),
                              "unsupported_value");
    }
    const ojson* fn = &t;
    std::string fp = p;
    if (nested_function) {
      fn = opt_object(t, "function", p);
      fp = path_key(p, "function");
      if (!fn) throw ApiError::invalid(fp, fmt::format("'{}' is required", fp));
    }
    FunctionTool tool;
    tool.name = req_string(*fn, "name", fp);
    validate_function_name(tool.name, path_key(fp, "name"));
    tool.description = opt_string(*fn, "description", fp).value_or("");
    if (const ojson* params = opt_object(*fn, "parameters", fp)) tool.parameters = *params;
    for (const auto& prev : out) {
      if (prev.name == tool.name) {
        throw ApiError::invalid(path_key(fp, "name"),
                                fmt::format("duplicate tool name '{}'", tool.name));
      }
    }
    out.push_back(std::move(tool));
  }
  return out;
}

// "content" of a message: a string, or a list of text parts.
static std::string content_text(const ojson& msg, const std::string& path, bool allow_missing) {
  const ojson* c = field(msg, "content");
  std::string p = path_key(path, "content");
  if (!c) {
    if (allow_missing) return "";
    throw ApiError::invalid(p, fmt::format("'{}' is required", p));
  }
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) {
    throw ApiError::invalid(p, fmt::format("'{}' must be a string or an array of content parts",
                                           p), "invalid_type");
  }
  std::string text;
  for (size_t i = 0; i < c->size(); ++i) {
    std::string pp = path_index(p, i);
    const ojson& part = (*c)[i];
    if (part.is_string()) {
      text += part.get<std::string>();
      continue;
    }
    std::string type = req_string(part, "type", pp);
    if (type != "text" && type != "input_text" && type != "output_text") {
      throw ApiError::invalid(path_key(pp, "type"),
                              fmt::format("content part type '{}' is not supported (text only)",
                                          type), "unsupported_value");
    }
    text += req_string(part, "text", pp);
  }
  return text;
}

static void parse_sampling_common(const ojson& body, ChatRequest* req) {
  if (auto t = opt_number(body, "temperature", "", 0.0, 2.0)) req->sampling.temperature = float(*t);
  if (auto t = opt_number(body, "top_p", "", 0.0, 1.0)) {
    if (*t <= 0.0) throw ApiError::invalid("top_p", "'top_p' must be greater than 0", "invalid_value");
    req->sampling.top_p = float(*t);
  }
  if (auto v = opt_number(body, "presence_penalty", "", -2.0, 2.0)) req->sampling.presence_penalty = float(*v);
  if (auto v = opt_number(body, "frequency_penalty", "", -2.0, 2.0)) req->sampling.frequency_penalty = float(*v);
  if (auto s = opt_int(body, "seed", "", INT64_MIN, INT64_MAX)) {
    req->sampling.has_seed = true;
    req->sampling.seed = static_cast<uint64_t>(*s);
  }
}

static void parse_tool_choice(const ojson& body, ChatRequest* req, bool nested_function) {
  const ojson* tc = field(body, "tool_choice");
  if (!tc) return;
  if (tc->is_string()) {
    std::string s = tc->get<std::string>();
    check_tool_choice_mode(s);
    if (s == "required" && req->tools.empty()) {
      throw ApiError::invalid("tool_choice", "'tool_choice' is 'required' but no tools are given");
    }
    req->tool_choice = s;
    return;
  }
  if (!tc->is_object()) {
    throw ApiError::invalid("tool_choice", "'tool_choice' must be a string or an object",
                            "invalid_type");
  }
  std::string name;
  if (nested_function && field(*tc, "function")) {
    name = req_string(*opt_object(*tc, "function", "tool_choice"), "name", "tool_choice.function");
  } else {
    name = req_string(*tc, "name", "tool_choice");
  }
  bool found = false;
  for (const auto& t : req->tools) found = found || t.name == name;
  if (!found) {
    throw ApiError::invalid("tool_choice", fmt::format("'tool_choice' names function '{}', which "
                                                       "is not in 'tools'", name));
  }
  req->tool_choice = name;
}

ChatRequest parse_chat_completions(const ojson& body) {
  ChatRequest req;
  req.model = req_string(body, "model", "");
  const ojson& messages = required_messages(body);
  std::map<std::string, std::string> call_names;  // tool_call_id -> function name
  for (size_t i = 0; i < messages.size(); ++i) {
    std::string p = path_index("messages", i);
    const ojson& m = messages[i];
    ChatMessage msg;
    msg.role = message_role(m, p, " (system, developer, user, assistant, tool)");
    msg.content = content_text(m, p, msg.role == Role::kAssistant);
    if (msg.role == Role::kAssistant) {
      if (auto r = opt_string(m, "reasoning_content", p)) msg.reasoning = *r;
      if (auto r = opt_string(m, "reasoning", p)) msg.reasoning = *r;
      if (const ojson* calls = opt_array(m, "tool_calls", p)) {
        for (size_t k = 0; k < calls->size(); ++k) {
          std::string cp = path_index(path_key(p, "tool_calls"), k);
          const ojson& c = (*calls)[k];
          if (!c.is_object()) throw ApiError::invalid(cp, fmt::format("'{}' must be an object", cp));
          ToolCall call;
          call.id = opt_string(c, "id", cp).value_or("");
          const ojson* fn = opt_object(c, "function", cp);
          if (!fn) throw ApiError::invalid(path_key(cp, "function"),
                                           fmt::format("'{}.function' is required", cp));
          std::string fp = path_key(cp, "function");
          call.name = req_string(*fn, "name", fp);
          const ojson* args = field(*fn, "arguments");
          if (args && args->is_string()) {
            call.arguments = args->get<std::string>();
          } else if (args && args->is_object()) {
            call.arguments = args->dump();
          } else if (args) {
            throw ApiError::invalid(path_key(fp, "arguments"),
                                    fmt::format("'{}.arguments' must be a JSON string", fp),
                                    "invalid_type");
          } else {
            call.arguments = "{}";
          }
          if (!call.id.empty()) call_names[call.id] = call.name;
          msg.tool_calls.push_back(std::move(call));
        }
      }
    }
    if (msg.role == Role::kTool) {
      msg.tool_call_id = opt_string(m, "tool_call_id", p).value_or("");
      auto it = call_names.find(msg.tool_call_id);
      if (it != call_names.end()) {
        msg.tool_name = it->second;
      } else if (auto n = opt_string(m, "name", p)) {
        msg.tool_name = *n;
      } else {
        throw ApiError::invalid(path_key(p, "tool_call_id"),
                                fmt::format("'{}.tool_call_id' ('{}') matches no earlier assistant "
                                            "tool call", p, msg.tool_call_id));
      }
    }
    req.messages.push_back(std::move(msg));
  }
  if (const ojson* tools = opt_array(body, "tools", "")) {
    req.tools = parse_function_tools(*tools, "tools", /*nested_function=*/true);
  }
  parse_tool_choice(body, &req, /*nested_function=*/true);
  if (auto e = opt_string(body, "reasoning_effort", "")) {
    req.reasoning_effort = normalize_effort(*e, "reasoning_effort");
  }
  if (const ojson* rf = opt_object(body, "response_format", "")) {
    const std::string type = req_string(*rf, "type", "response_format");
    const ojson* js = type == "json_schema" ? opt_object(*rf, "json_schema", "response_format") : nullptr;
    if (type == "json_schema" && !js) {
      throw ApiError::invalid("response_format.json_schema", "'response_format.json_schema' is required");
    }
    parse_output_format(type, js, "response_format.json_schema", "response_format.type", &req);
  }
  req.stream = opt_bool(body, "stream", "").value_or(false);
  if (const ojson* so = opt_object(body, "stream_options", "")) {
    req.include_usage = opt_bool(*so, "include_usage", "stream_options").value_or(false);
  }
  if (auto n = opt_int(body, "max_tokens", "", 1, INT32_MAX)) req.max_tokens = int(*n);
  if (auto n = opt_int(body, "max_completion_tokens", "", 1, INT32_MAX)) req.max_tokens = int(*n);
  if (auto n = opt_int(body, "n", "", 1, 128); n && *n != 1) {
    throw ApiError::invalid("n", "'n' must be 1: one choice per request is supported",
                            "unsupported_value");
  }
  if (opt_bool(body, "logprobs", "").value_or(false)) {
    throw ApiError::invalid("logprobs", "'logprobs' is not supported", "unsupported_value");
  }
  parse_sampling_common(body, &req);
  req.stop = parse_stop(body, "stop", "");
  return req;
}

CompletionRequest parse_completions(const ojson& body) {
  CompletionRequest req;
  req.model = req_string(body, "model", "");
  const ojson* prompt = field(body, "prompt");
  if (!prompt) throw ApiError::invalid("prompt", "'prompt' is required");
  if (prompt->is_string()) {
    req.prompt = prompt->get<std::string>();
  } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    req.prompt = (*prompt)[0].get<std::string>();
  } else {
    throw ApiError::invalid("prompt", "'prompt' must be a string (or a list of one string)",
                            "invalid_type");
  }
  ChatRequest tmp;
  parse_sampling_common(body, &tmp);
  req.sampling = tmp.sampling;
  if (auto n = opt_int(body, "max_tokens", "", 1, INT32_MAX)) req.max_tokens = int(*n);
  req.stop = parse_stop(body, "stop", "");
  req.stream = opt_bool(body, "stream", "").value_or(false);
  req.echo = opt_bool(body, "echo", "").value_or(false);
  if (const ojson* so = opt_object(body, "stream_options", "")) {
    req.include_usage = opt_bool(*so, "include_usage", "stream_options").value_or(false);
  }
  if (auto n = opt_int(body, "n", "", 1, 128); n && *n != 1) {
    throw ApiError::invalid("n", "'n' must be 1", "unsupported_value");
  }
  return req;
}

}  // namespace gptoss::server
