#include "harmony/render.h"

#include <fmt/ranges.h>

#include "harmony/schema_ts.h"

namespace gptoss::harmony {

std::string_view formatting_token_text(uint32_t id) {
  switch (id) {
    case tok::kReturn:
      return "<|return|>";
    case tok::kConstrain:
      return "<|constrain|>";
    case tok::kChannel:
      return "<|channel|>";
    case tok::kStart:
      return "<|start|>";
    case tok::kEnd:
      return "<|end|>";
    case tok::kMessage:
      return "<|message|>";
    case tok::kCall:
      return "<|call|>";
    default:
      return {};
  }
}

namespace {

std::string join(const std::vector<std::string>& parts, const char* sep) {
  return fmt::to_string(fmt::join(parts, sep));
}

std::string system_text(const SystemContent& s, bool has_function_tools) {
  std::vector<std::string> sections;
  std::vector<std::string> top;
  if (s.model_identity) top.push_back(*s.model_identity);
  if (s.knowledge_cutoff) top.push_back("Knowledge cutoff: " + *s.knowledge_cutoff);
  if (s.conversation_start_date) top.push_back("Current date: " + *s.conversation_start_date);
  if (!top.empty()) sections.push_back(join(top, "\n"));
  if (s.reasoning_effort)
    sections.push_back("Reasoning: " + std::string(effort_name(*s.reasoning_effort)));
  if (s.tools && !s.tools->empty()) sections.push_back(render_tools_section(*s.tools));
  if (s.channel_config && !s.channel_config->valid_channels.empty()) {
    std::string h = "# Valid channels: " + join(s.channel_config->valid_channels, ", ") + ".";
    if (s.channel_config->channel_required) h += " Channel must be included for every message.";
    if (has_function_tools)
      h += "\nCalls to these tools must go to the commentary channel: 'functions'.";
    sections.push_back(std::move(h));
  }
  return join(sections, "\n\n");
}

std::string developer_text(const DeveloperContent& d) {
  std::vector<std::string> sections;
  if (d.instructions) {
    sections.push_back("# Instructions");
    sections.push_back(*d.instructions);
  }
  if (d.tools && !d.tools->empty()) sections.push_back(render_tools_section(*d.tools));
  if (!d.response_formats.empty()) {
    std::vector<std::string> formats;
    for (const auto& rf : d.response_formats) {
      std::string f = "## " + rf.name + "\n\n";
      if (rf.description) f += "// " + *rf.description + "\n";
      formats.push_back(f + serde_json_compact(rf.schema));
    }
    sections.push_back("# Response Formats\n\n" + join(formats, "\n\n"));
  }
  return join(sections, "\n\n");
}

bool is_channel(const Message& m, const char* ch) { return m.channel && *m.channel == ch; }

class IdSink : public RenderSink {
 public:
  explicit IdSink(const Tokenizer& t) : tok_(t) {}
  void special(uint32_t id) override { ids.push_back(id); }
  void text(std::string_view s) override {
    auto v = tok_.encode(s);
    ids.insert(ids.end(), v.begin(), v.end());
  }
  std::vector<uint32_t> ids;

 private:
  const Tokenizer& tok_;
};

class BufferSink : public RenderSink {
 public:
  struct Item {
    bool is_special;
    uint32_t id;
    std::string text;
  };
  void special(uint32_t id) override { items.push_back({true, id, {}}); }
  void text(std::string_view s) override { items.push_back({false, 0, std::string(s)}); }
  void replay(RenderSink& to) const {
    for (const auto& it : items) {
      if (it.is_special)
        to.special(it.id);
      else
        to.text(it.text);
    }
  }
  std::vector<Item> items;
};

class TextSink : public RenderSink {
 public:
  void special(uint32_t id) override { out += formatting_token_text(id); }
  void text(std::string_view s) override { out += s; }
  std::string out;
};

}  // namespace

bool has_function_tools(const Conversation& c) {
  for (const auto& m : c.messages)
    for (const auto& part : m.content) {
      if (part.kind != Content::Kind::kDeveloper || !part.developer.tools) continue;
      auto it = part.developer.tools->find("functions");
      if (it != part.developer.tools->end() && !it->second.tools.empty()) return true;
    }
  return false;
}

Status render_message_into(const Message& m, bool function_tools, RenderSink& sink) {
  sink.special(tok::kStart);
  if (m.role == Role::kTool) {
    if (!m.name) return Error("a tool message needs an author name (e.g. functions.get_weather)");
    sink.text(*m.name);
  } else {
    sink.text(role_name(m.role));
    if (m.name) sink.text(":" + *m.name);
  }
  if (m.recipient && *m.recipient != "all") sink.text(" to=" + *m.recipient);
  if (m.channel) {
    sink.special(tok::kChannel);
    sink.text(*m.channel);
  }
  if (m.content_type) {
    static constexpr std::string_view kConstrain = "<|constrain|>";
    if (m.content_type->rfind(kConstrain, 0) == 0) {
      sink.text(" ");
      sink.special(tok::kConstrain);
      std::string_view rest = std::string_view(*m.content_type).substr(kConstrain.size());
      if (!rest.empty()) sink.text(rest);
    } else {
      sink.text(" " + *m.content_type);
    }
  }
  sink.special(tok::kMessage);
  for (const auto& part : m.content) {
    switch (part.kind) {
      case Content::Kind::kText:
        sink.text(part.text);
        break;
      case Content::Kind::kSystem:
        if (m.role != Role::kSystem)
          return Error("system_content may only appear in a system message, found in a {} message",
                       role_name(m.role));
        sink.text(system_text(part.system, function_tools));
        break;
      case Content::Kind::kDeveloper:
        if (m.role != Role::kDeveloper)
          return Error(
              "developer_content may only appear in a developer message, found in a {} message",
              role_name(m.role));
        sink.text(developer_text(part.developer));
        break;
    }
  }
  sink.special(m.role == Role::kAssistant && m.recipient ? tok::kCall : tok::kEnd);
  return Status::ok();
}

Status render_conversation_into(const Conversation& c, const RenderOptions& options,
                                const std::optional<Role>& next_role, bool for_training,
                                RenderSink& sink) {
  const auto& msgs = c.messages;
  const bool function_tools = has_function_tools(c);
  // [0, drop_before): analysis messages in this range are left out.
  size_t drop_before = 0;
  if (options.drop_analysis == DropAnalysis::kReference) {
    bool last_assistant_is_final = false;
    for (size_t i = msgs.size(); i-- > 0;)
      if (msgs[i].role == Role::kAssistant) {
        last_assistant_is_final = is_channel(msgs[i], "final");
        break;
      }
    if (last_assistant_is_final) {
      // The reference looks for the first `final` of any role.
      for (size_t i = 0; i < msgs.size(); ++i)
        if (is_channel(msgs[i], "final")) {
          drop_before = i;
          break;
        }
    }
  } else if (options.drop_analysis == DropAnalysis::kBeforeLastFinal) {
    for (size_t i = msgs.size(); i-- > 0;)
      if (msgs[i].role == Role::kAssistant && is_channel(msgs[i], "final")) {
        drop_before = i;
        break;
      }
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (i < drop_before && is_channel(msgs[i], "analysis")) continue;
    if (for_training && i + 1 == msgs.size() && msgs[i].role == Role::kAssistant &&
        is_channel(msgs[i], "final")) {
      // Render into a buffer so that the terminator can become <|return|>.
      BufferSink buf;
      GPTOSS_RETURN_IF_ERROR(render_message_into(msgs[i], function_tools, buf));
      buf.items.back().id = tok::kReturn;
      buf.replay(sink);
      continue;
    }
    GPTOSS_RETURN_IF_ERROR(render_message_into(msgs[i], function_tools, sink)
                               .with_context(fmt::format("messages[{}]", i)));
  }
  if (next_role) {
    sink.special(tok::kStart);
    sink.text(role_name(*next_role));
  }
  return Status::ok();
}

Expected<std::vector<uint32_t>> render_for_completion(const Tokenizer& t, const Conversation& c,
                                                      Role next, const RenderOptions& options) {
  IdSink sink(t);
  GPTOSS_RETURN_IF_ERROR(render_conversation_into(c, options, next, false, sink));
  return std::move(sink.ids);
}

Expected<std::vector<uint32_t>> render_conversation(const Tokenizer& t, const Conversation& c,
                                                    const RenderOptions& options) {
  IdSink sink(t);
  GPTOSS_RETURN_IF_ERROR(render_conversation_into(c, options, std::nullopt, false, sink));
  return std::move(sink.ids);
}

Expected<std::vector<uint32_t>> render_for_training(const Tokenizer& t, const Conversation& c,
                                                    const RenderOptions& options) {
  IdSink sink(t);
  GPTOSS_RETURN_IF_ERROR(render_conversation_into(c, options, std::nullopt, true, sink));
  return std::move(sink.ids);
}

Expected<std::vector<uint32_t>> render_message(const Tokenizer& t, const Message& m,
                                               bool function_tools) {
  IdSink sink(t);
  GPTOSS_RETURN_IF_ERROR(render_message_into(m, function_tools, sink));
  return std::move(sink.ids);
}

Expected<std::string> render_text_for_completion(const Conversation& c, Role next,
                                                 const RenderOptions& options) {
  TextSink sink;
  GPTOSS_RETURN_IF_ERROR(render_conversation_into(c, options, next, false, sink));
  return std::move(sink.out);
}

Expected<std::string> render_text_conversation(const Conversation& c,
                                               const RenderOptions& options) {
  TextSink sink;
  GPTOSS_RETURN_IF_ERROR(render_conversation_into(c, options, std::nullopt, false, sink));
  return std::move(sink.out);
}

}  // namespace gptoss::harmony
