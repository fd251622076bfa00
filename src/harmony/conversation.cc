#include "harmony/conversation.h"

#include <ctime>

namespace gptoss::harmony {

std::string today_utc() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kUser:
      return "user";
    case Role::kAssistant:
      return "assistant";
    case Role::kSystem:
      return "system";
    case Role::kDeveloper:
      return "developer";
    case Role::kTool:
      return "tool";
  }
  return "user";
}

std::optional<Role> role_from_name(std::string_view name) {
  if (name == "user") return Role::kUser;
  if (name == "assistant") return Role::kAssistant;
  if (name == "system") return Role::kSystem;
  if (name == "developer") return Role::kDeveloper;
  if (name == "tool") return Role::kTool;
  return std::nullopt;
}

std::string_view effort_name(ReasoningEffort effort) {
  switch (effort) {
    case ReasoningEffort::kLow:
      return "low";
    case ReasoningEffort::kMedium:
      return "medium";
    case ReasoningEffort::kHigh:
      return "high";
  }
  return "medium";
}

std::optional<ReasoningEffort> effort_from_name(std::string_view name) {
  if (name == "Low" || name == "low") return ReasoningEffort::kLow;
  if (name == "Medium" || name == "medium") return ReasoningEffort::kMedium;
  if (name == "High" || name == "high") return ReasoningEffort::kHigh;
  return std::nullopt;
}

ToolNamespace ToolNamespace::browser() {
  ToolNamespace ns;
  ns.name = "browser";
  ns.description =
      "Tool for browsing.\n"
      "The `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n"
      "Cite information from the tool using the following format:\n"
      "`\u3010{cursor}\u2020L{line_start}(-L{line_end})?\u3011`, for example: "
      "`\u30106\u2020L9-L11\u3011` or `\u30108\u2020L3\u3011`.\n"
      "Do not quote more than 10 words directly from the tool output.\n"
      "sources=web (default: web)";
  ns.tools.push_back(
      {"search", "Searches for information related to `query` and displays `topn` results.",
       ojson::parse(R"({"type":"object","properties":{"query":{"type":"string"},)"
                    R"("topn":{"type":"number","default":10},"source":{"type":"string"}},)"
                    R"("required":["query"]})")});
  ns.tools.push_back(
      {"open",
       "Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, "
       "showing `num_lines` lines.\n"
       "Valid link ids are displayed with the formatting: `\u3010{id}\u2020.*\u3011`.\n"
       "If `cursor` is not provided, the most recent page is implied.\n"
       "If `id` is a string, it is treated as a fully qualified URL associated with `source`.\n"
       "If `loc` is not provided, the viewport will be positioned at the beginning of the "
       "document or centered on the most relevant passage, if available.\n"
       "Use this function without `id` to scroll to a new location of an opened page.",
       ojson::parse(R"({"type":"object","properties":{)"
                    R"("id":{"type":["number","string"],"default":-1},)"
                    R"("cursor":{"type":"number","default":-1},)"
                    R"("loc":{"type":"number","default":-1},)"
                    R"("num_lines":{"type":"number","default":-1},)"
                    R"("view_source":{"type":"boolean","default":false},)"
                    R"("source":{"type":"string"}}})")});
  ns.tools.push_back(
      {"find",
       "Finds exact matches of `pattern` in the current page, or the page given by `cursor`.",
       ojson::parse(R"({"type":"object","properties":{"pattern":{"type":"string"},)"
                    R"("cursor":{"type":"number","default":-1}},"required":["pattern"]})")});
  return ns;
}

ToolNamespace ToolNamespace::python() {
  ToolNamespace ns;
  ns.name = "python";
  ns.description =
      "Use this tool to execute Python code in your chain of thought. The code will not be shown "
      "to the user. This tool should be used for internal reasoning, but not for code that is "
      "intended to be visible to the user (e.g. when creating plots, tables, or files).\n\n"
      "When you send a message containing Python code to python, it will be executed in a "
      "stateful Jupyter notebook environment. python will respond with the output of the "
      "execution or time out after 120.0 seconds. The drive at '/mnt/data' can be used to save "
      "and persist user files. Internet access for this session is UNKNOWN. Depends on the "
      "cluster.";
  return ns;
}

SystemContent& SystemContent::with_tools(ToolNamespace ns) {
  if (!tools) tools.emplace();
  std::string key = ns.name;
  (*tools)[key] = std::move(ns);
  return *this;
}

DeveloperContent& DeveloperContent::with_tools(ToolNamespace ns) {
  if (!tools) tools.emplace();
  std::string key = ns.name;
  (*tools)[key] = std::move(ns);
  return *this;
}

DeveloperContent& DeveloperContent::with_function_tools(std::vector<ToolDescription> fns) {
  ToolNamespace ns;
  ns.name = "functions";
  ns.tools = std::move(fns);
  return with_tools(std::move(ns));
}

Content Content::of_text(std::string text) {
  Content c;
  c.kind = Kind::kText;
  c.text = std::move(text);
  return c;
}

Content Content::of_system(SystemContent system) {
  Content c;
  c.kind = Kind::kSystem;
  c.system = std::move(system);
  return c;
}

Content Content::of_developer(DeveloperContent developer) {
  Content c;
  c.kind = Kind::kDeveloper;
  c.developer = std::move(developer);
  return c;
}

Message Message::make(Role role, std::string text) {
  Message m;
  m.role = role;
  m.content.push_back(Content::of_text(std::move(text)));
  return m;
}

Message Message::system(SystemContent c) {
  Message m;
  m.role = Role::kSystem;
  m.content.push_back(Content::of_system(std::move(c)));
  return m;
}

Message Message::developer(DeveloperContent c) {
  Message m;
  m.role = Role::kDeveloper;
  m.content.push_back(Content::of_developer(std::move(c)));
  return m;
}

std::string Message::text() const {
  std::string out;
  for (const auto& c : content)
    if (c.kind == Content::Kind::kText) out += c.text;
  return out;
}

// ---- JSON in ----

namespace {

// Reads an optional string field: missing or null is nullopt; any other type is an error.
Status opt_string(const ojson& j, const char* key, const std::string& where,
                  std::optional<std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    out->reset();
    return Status::ok();
  }
  if (!it->is_string())
    return Error("{}.{}: expected a string or null, got {}", where, key, it->type_name());
  *out = it->get<std::string>();
  return Status::ok();
}

Status req_string(const ojson& j, const char* key, const std::string& where, std::string* out) {
  auto it = j.find(key);
  if (it == j.end()) return Error("{}: missing field '{}'", where, key);
  if (!it->is_string())
    return Error("{}.{}: expected a string, got {}", where, key, it->type_name());
  *out = it->get<std::string>();
  return Status::ok();
}

Expected<ToolDescription> tool_from_json(const ojson& j, const std::string& where) {
  if (!j.is_object()) return Error("{}: expected an object, got {}", where, j.type_name());
  ToolDescription t;
  GPTOSS_RETURN_IF_ERROR(req_string(j, "name", where, &t.name));
  GPTOSS_RETURN_IF_ERROR(req_string(j, "description", where, &t.description));
  auto it = j.find("parameters");
  if (it != j.end() && !it->is_null()) t.parameters = *it;
  return t;
}

Expected<ToolNamespace> namespace_from_json(const ojson& j, const std::string& where) {
  if (!j.is_object()) return Error("{}: expected an object, got {}", where, j.type_name());
  ToolNamespace ns;
  GPTOSS_RETURN_IF_ERROR(req_string(j, "name", where, &ns.name));
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "description", where, &ns.description));
  auto it = j.find("tools");
  if (it == j.end()) return Error("{}: missing field 'tools'", where);
  if (!it->is_array()) return Error("{}.tools: expected an array, got {}", where, it->type_name());
  for (size_t i = 0; i < it->size(); ++i) {
    GPTOSS_ASSIGN_OR_RETURN(auto tool,
                            tool_from_json((*it)[i], fmt::format("{}.tools[{}]", where, i)));
    ns.tools.push_back(std::move(tool));
  }
  return ns;
}

Status namespaces_from_json(const ojson& j, const std::string& where,
                            std::optional<ToolNamespaces>* out) {
  auto it = j.find("tools");
  if (it == j.end() || it->is_null()) {
    out->reset();
    return Status::ok();
  }
  if (!it->is_object())
    return Error("{}.tools: expected an object of namespaces, got {}", where, it->type_name());
  ToolNamespaces map;
  for (auto kv = it->begin(); kv != it->end(); ++kv) {
    GPTOSS_ASSIGN_OR_RETURN(
        auto ns, namespace_from_json(kv.value(), fmt::format("{}.tools.{}", where, kv.key())));
    map[kv.key()] = std::move(ns);
  }
  *out = std::move(map);
  return Status::ok();
}

Expected<SystemContent> system_from_json(const ojson& j, const std::string& where) {
  SystemContent s;
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "model_identity", where, &s.model_identity));
  std::optional<std::string> effort;
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "reasoning_effort", where, &effort));
  if (effort) {
    auto e = effort_from_name(*effort);
    if (!e) return Error("{}.reasoning_effort: '{}' is not Low, Medium or High", where, *effort);
    s.reasoning_effort = *e;
  } else {
    s.reasoning_effort.reset();
  }
  GPTOSS_RETURN_IF_ERROR(namespaces_from_json(j, where, &s.tools));
  GPTOSS_RETURN_IF_ERROR(
      opt_string(j, "conversation_start_date", where, &s.conversation_start_date));
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "knowledge_cutoff", where, &s.knowledge_cutoff));
  auto it = j.find("channel_config");
  if (it == j.end() || it->is_null()) {
    s.channel_config.reset();
  } else {
    const std::string w = where + ".channel_config";
    if (!it->is_object()) return Error("{}: expected an object, got {}", w, it->type_name());
    ChannelConfig cc;
    auto vc = it->find("valid_channels");
    if (vc == it->end() || !vc->is_array())
      return Error("{}.valid_channels: expected an array of strings", w);
    for (const auto& c : *vc) {
      if (!c.is_string()) return Error("{}.valid_channels: expected an array of strings", w);
      cc.valid_channels.push_back(c.get<std::string>());
    }
    auto req = it->find("channel_required");
    if (req == it->end() || !req->is_boolean())
      return Error("{}.channel_required: expected true or false", w);
    cc.channel_required = req->get<bool>();
    s.channel_config = std::move(cc);
  }
  return s;
}

Expected<DeveloperContent> developer_from_json(const ojson& j, const std::string& where) {
  DeveloperContent d;
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "instructions", where, &d.instructions));
  GPTOSS_RETURN_IF_ERROR(namespaces_from_json(j, where, &d.tools));
  auto it = j.find("response_formats");
  if (it != j.end() && !it->is_null()) {
    if (!it->is_array())
      return Error("{}.response_formats: expected an array, got {}", where, it->type_name());
    for (size_t i = 0; i < it->size(); ++i) {
      const ojson& f = (*it)[i];
      const std::string w = fmt::format("{}.response_formats[{}]", where, i);
      if (!f.is_object()) return Error("{}: expected an object, got {}", w, f.type_name());
      ResponseFormat rf;
      GPTOSS_RETURN_IF_ERROR(req_string(f, "name", w, &rf.name));
      GPTOSS_RETURN_IF_ERROR(opt_string(f, "description", w, &rf.description));
      auto s = f.find("schema");
      if (s == f.end() || s->is_null()) return Error("{}: missing field 'schema'", w);
      rf.schema = *s;
      d.response_formats.push_back(std::move(rf));
    }
  }
  return d;
}

Expected<Message> message_from_json_at(const ojson& j, const std::string& where) {
  if (!j.is_object()) return Error("{}: expected an object, got {}", where, j.type_name());
  Message m;
  std::string role;
  GPTOSS_RETURN_IF_ERROR(req_string(j, "role", where, &role));
  auto r = role_from_name(role);
  if (!r)
    return Error("{}.role: unknown role '{}' (user, assistant, system, developer, tool)", where,
                 role);
  m.role = *r;
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "name", where, &m.name));
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "recipient", where, &m.recipient));
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "channel", where, &m.channel));
  GPTOSS_RETURN_IF_ERROR(opt_string(j, "content_type", where, &m.content_type));
  auto it = j.find("content");
  if (it == j.end()) return Error("{}: missing field 'content'", where);
  if (it->is_string()) {
    m.content.push_back(Content::of_text(it->get<std::string>()));
    return m;
  }
  if (!it->is_array())
    return Error("{}.content: expected a string or an array, got {}", where, it->type_name());
  for (size_t i = 0; i < it->size(); ++i) {
    const ojson& c = (*it)[i];
    const std::string w = fmt::format("{}.content[{}]", where, i);
    if (!c.is_object()) return Error("{}: expected an object, got {}", w, c.type_name());
    std::string type;
    GPTOSS_RETURN_IF_ERROR(req_string(c, "type", w, &type));
    if (type == "text") {
      std::string text;
      GPTOSS_RETURN_IF_ERROR(req_string(c, "text", w, &text));
      m.content.push_back(Content::of_text(std::move(text)));
    } else if (type == "system_content") {
      GPTOSS_ASSIGN_OR_RETURN(auto s, system_from_json(c, w));
      m.content.push_back(Content::of_system(std::move(s)));
    } else if (type == "developer_content") {
      GPTOSS_ASSIGN_OR_RETURN(auto d, developer_from_json(c, w));
      m.content.push_back(Content::of_developer(std::move(d)));
    } else {
      return Error("{}.type: unknown content type '{}' (text, system_content, developer_content)",
                   w, type);
    }
  }
  return m;
}

}  // namespace

Expected<ToolNamespace> tool_namespace_from_json(const ojson& j) {
  return namespace_from_json(j, "namespace");
}

Expected<Message> message_from_json(const ojson& j) { return message_from_json_at(j, "message"); }

Expected<Conversation> conversation_from_json(const ojson& j) {
  if (!j.is_object())
    return Error("conversation: expected an object with 'messages', got {}", j.type_name());
  auto it = j.find("messages");
  if (it == j.end() || !it->is_array())
    return Error("conversation: missing array field 'messages'");
  Conversation conv;
  for (size_t i = 0; i < it->size(); ++i) {
    GPTOSS_ASSIGN_OR_RETURN(auto m, message_from_json_at((*it)[i], fmt::format("messages[{}]", i)));
    conv.messages.push_back(std::move(m));
  }
  return conv;
}

// ---- JSON out ----

namespace {

ojson namespaces_to_json(const ToolNamespaces& tools) {
  ojson out = ojson::object();
  for (const auto& [key, ns] : tools) {
    ojson n = ojson::object();
    n["name"] = ns.name;
    n["description"] = ns.description ? ojson(*ns.description) : ojson(nullptr);
    ojson arr = ojson::array();
    for (const auto& t : ns.tools) {
      ojson tj = ojson::object();
      tj["name"] = t.name;
      tj["description"] = t.description;
      tj["parameters"] = t.parameters ? *t.parameters : ojson(nullptr);
      arr.push_back(std::move(tj));
    }
    n["tools"] = std::move(arr);
    out[key] = std::move(n);
  }
  return out;
}

template <typename T>
ojson opt(const std::optional<T>& v) {
  return v ? ojson(*v) : ojson(nullptr);
}

ojson content_to_json(const Content& c) {
  ojson o = ojson::object();
  switch (c.kind) {
    case Content::Kind::kText:
      o["type"] = "text";
      o["text"] = c.text;
      break;
    case Content::Kind::kSystem: {
      const SystemContent& s = c.system;
      o["type"] = "system_content";
      o["model_identity"] = opt(s.model_identity);
      o["reasoning_effort"] = nullptr;
      if (s.reasoning_effort) {
        static const char* kNames[] = {"Low", "Medium", "High"};
        o["reasoning_effort"] = kNames[static_cast<int>(*s.reasoning_effort)];
      }
      o["tools"] = s.tools ? namespaces_to_json(*s.tools) : ojson(nullptr);
      o["conversation_start_date"] = opt(s.conversation_start_date);
      o["knowledge_cutoff"] = opt(s.knowledge_cutoff);
      if (s.channel_config) {
        o["channel_config"] = {{"valid_channels", s.channel_config->valid_channels},
                               {"channel_required", s.channel_config->channel_required}};
      } else {
        o["channel_config"] = nullptr;
      }
      break;
    }
    case Content::Kind::kDeveloper:
      o["type"] = "developer_content";
      o["instructions"] = opt(c.developer.instructions);
      o["tools"] = c.developer.tools ? namespaces_to_json(*c.developer.tools) : ojson(nullptr);
      if (!c.developer.response_formats.empty()) {
        ojson arr = ojson::array();
        for (const auto& rf : c.developer.response_formats)
          arr.push_back(
              {{"name", rf.name}, {"description", opt(rf.description)}, {"schema", rf.schema}});
        o["response_formats"] = std::move(arr);
      }
      break;
  }
  return o;
}

}  // namespace

ojson message_to_json(const Message& m) {
  ojson o = ojson::object();
  o["role"] = std::string(role_name(m.role));
  if (m.name) o["name"] = *m.name;
  if (m.recipient) o["recipient"] = *m.recipient;
  if (m.content.size() == 1 && m.content[0].kind == Content::Kind::kText) {
    o["content"] = m.content[0].text;
  } else {
    ojson arr = ojson::array();
    for (const auto& c : m.content) arr.push_back(content_to_json(c));
    o["content"] = std::move(arr);
  }
  if (m.channel) o["channel"] = *m.channel;
  if (m.content_type) o["content_type"] = *m.content_type;
  return o;
}

ojson conversation_to_json(const Conversation& c) {
  ojson arr = ojson::array();
  for (const auto& m : c.messages) arr.push_back(message_to_json(m));
  return ojson{{"messages", std::move(arr)}};
}

}  // namespace gptoss::harmony
