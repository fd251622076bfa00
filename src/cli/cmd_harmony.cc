// gptoss harmony render / parse: see a prompt exactly as the model will, and read generated ids
// back as messages. The --jsonl modes run many inputs in one process (the conformance tests).
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/mapped_file.h"
#include "harmony/conversation.h"
#include "harmony/parser.h"
#include "harmony/render.h"
#include "tokenizer/tokenizer.h"

namespace gptoss::cli {
namespace {

using harmony::ojson;

constexpr const char kUsage[] =
    "usage: gptoss harmony render --file CONV.json [--ids] [--for-completion | --no-completion | "
    "--training]\n"
    "                             [--next-role ROLE] [--drop-analysis reference|last-final|none] "
    "[--jsonl]\n"
    "       gptoss harmony parse (--file IDS | --text TEXT | IDS...) [--role ROLE|none] [--events] "
    "[--jsonl]\n"
    "\n"
    "render  prints the prompt for a conversation in openai-harmony's JSON shape\n"
    "        ({\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}, ...]}; '-' reads stdin).\n"
    "        Default: text with the formatting tokens written out, ending <|start|>assistant.\n"
    "  --ids             print the token ids as a JSON array instead\n"
    "  --no-completion   the history only (harmony render_conversation)\n"
    "  --training        the history, a last final answer ending <|return|> "
    "(render_conversation_for_training)\n"
    "  --next-role ROLE  the role after the trailing <|start|> (default assistant)\n"
    "  --drop-analysis   which chain-of-thought messages to leave out: reference (harmony's "
    "default),\n"
    "                    last-final (all analysis before the last final answer, as vLLM does), "
    "none\n"
    "  --jsonl           one request per input line: a conversation, or "
    "{\"conversation\"|\"message\": ...,\n"
    "                    \"mode\": completion|conversation|training|message, \"next_role\", "
    "\"drop_analysis\",\n"
    "                    \"has_function_tools\"}; prints {\"ids\": [...], \"text\": ...} or "
    "{\"error\": ...} per line\n"
    "\n"
    "parse   prints the messages in generated token ids (a JSON array or whitespace-separated "
    "ids,\n"
    "        from --file ('-' reads stdin) or arguments) as a JSON array in openai-harmony's "
    "message shape.\n"
    "        Problems in malformed output go to stderr; nothing is dropped.\n"
    "  --text TEXT       encode TEXT (formatting tokens such as <|channel|> recognised) and parse "
    "that\n"
    "  --role ROLE       the role of the first message, whose header follows the prompt (default\n"
    "                    assistant); 'none' expects <|start|> first\n"
    "  --events          print the streaming events (one JSON object per line) instead\n"
    "  --jsonl           one input per line: [ids] or {\"tokens\": [ids], \"role\": ROLE|null}; "
    "prints\n"
    "                    {\"messages\", \"problems\", \"stop\", \"deltas\"} per line\n"
    "  --tokenizer FILE  a .tiktoken rank file (default: the built-in o200k_harmony vocabulary)\n";

Expected<std::string> read_input(const Args& args) {
  auto file = args.get("--file");
  if (!file || *file == "-") {
    std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return s;
  }
  return read_text_file(*file);
}

Expected<std::shared_ptr<const Tokenizer>> load_tokenizer(const Args& args) {
  if (auto f = args.get("--tokenizer")) return Tokenizer::from_tiktoken_file(*f);
  return Tokenizer::builtin();
}

Expected<harmony::DropAnalysis> drop_from_name(const std::string& s) {
  if (s == "reference") return harmony::DropAnalysis::kReference;
  if (s == "last-final") return harmony::DropAnalysis::kBeforeLastFinal;
  if (s == "none") return harmony::DropAnalysis::kNone;
  return Error("--drop-analysis: '{}' is not reference, last-final or none", s);
}

Expected<harmony::Role> role_arg(const std::string& s) {
  auto r = harmony::role_from_name(s);
  if (!r) return Error("'{}' is not a role (user, assistant, system, developer, tool)", s);
  return *r;
}

std::string dump(const ojson& j, int indent = -1) {
  return j.dump(indent, ' ', false, ojson::error_handler_t::replace);
}

struct RenderRequest {
  std::string mode = "completion";  // completion | conversation | training | message
  harmony::Role next_role = harmony::Role::kAssistant;
  harmony::RenderOptions options;
  bool has_function_tools = false;
};

// Renders one request; the pieces go to both an id list and a text.
Status render_one(const Tokenizer& tok, const ojson& input, const RenderRequest& req,
                  std::vector<uint32_t>* ids, std::string* text) {
  struct Both : harmony::RenderSink {
    const Tokenizer* tok;
    std::vector<uint32_t>* out_ids;
    std::string* out_text;
    void special(uint32_t id) override {
      out_ids->push_back(id);
      *out_text += harmony::formatting_token_text(id);
    }
    void text(std::string_view s) override {
      auto v = tok->encode(s);
      out_ids->insert(out_ids->end(), v.begin(), v.end());
      *out_text += s;
    }
  } sink;
  sink.tok = &tok;
  sink.out_ids = ids;
  sink.out_text = text;
  if (req.mode == "message") {
    GPTOSS_ASSIGN_OR_RETURN(auto m, harmony::message_from_json(input));
    return harmony::render_message_into(m, req.has_function_tools, sink);
  }
  GPTOSS_ASSIGN_OR_RETURN(auto conv, harmony::conversation_from_json(input));
  if (req.mode == "completion")
    return harmony::render_conversation_into(conv, req.options, req.next_role, false, sink);
  if (req.mode == "conversation")
    return harmony::render_conversation_into(conv, req.options, std::nullopt, false, sink);
  if (req.mode == "training")
    return harmony::render_conversation_into(conv, req.options, std::nullopt, true, sink);
  return Error("mode '{}' is not completion, conversation, training or message", req.mode);
}

Status render_jsonl_line(const Tokenizer& tok, const std::string& line, std::string* out) {
  ojson j = ojson::parse(line, nullptr, false);
  if (j.is_discarded()) return Error("not valid JSON");
  RenderRequest req;
  const ojson* input = &j;
  if (j.is_object() && !j.contains("messages")) {
    if (j.contains("conversation")) {
      input = &j["conversation"];
    } else if (j.contains("message")) {
      input = &j["message"];
      req.mode = "message";
    } else {
      return Error("expected a conversation, or an object with 'conversation' or 'message'");
    }
    if (auto it = j.find("mode"); it != j.end() && it->is_string())
      req.mode = it->get<std::string>();
    if (auto it = j.find("next_role"); it != j.end() && it->is_string()) {
      GPTOSS_ASSIGN_OR_RETURN(req.next_role, role_arg(it->get<std::string>()));
    }
    if (auto it = j.find("drop_analysis"); it != j.end() && it->is_string()) {
      GPTOSS_ASSIGN_OR_RETURN(req.options.drop_analysis, drop_from_name(it->get<std::string>()));
    }
    if (auto it = j.find("has_function_tools"); it != j.end() && it->is_boolean())
      req.has_function_tools = it->get<bool>();
  }
  std::vector<uint32_t> ids;
  std::string text;
  GPTOSS_RETURN_IF_ERROR(render_one(tok, *input, req, &ids, &text));
  ojson o = ojson::object();
  o["ids"] = ids;
  o["text"] = text;
  *out = dump(o);
  return Status::ok();
}

int cmd_render(const std::vector<std::string>& argv) {
  ArgSpec spec{{"--ids", "--for-completion", "--no-completion", "--training", "--jsonl", "--help"},
               {"--file", "--next-role", "--drop-analysis", "--tokenizer"}};
  auto args = Args::parse(argv, spec);
  if (!args) return fail("harmony render", args.status().message() + "\n" + kUsage, 2);
  if (args->has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args->has("--file") && !args->has("--jsonl"))
    return fail("harmony render",
                std::string("give --file CONV.json (--file - reads stdin)\n") + kUsage, 2);
  auto tok = load_tokenizer(*args);
  if (!tok) return fail("harmony render", tok.status().message());
  auto input = read_input(*args);
  if (!input) return fail("harmony render", input.status().message());
  if (args->has("--jsonl")) {
    std::istringstream in(*input);
    std::string line, out;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      Status st = render_jsonl_line(**tok, line, &out);
      if (!st) out = dump(ojson{{"error", fmt::format("line {}: {}", n, st.message())}});
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fputc('\n', stdout);
    }
    return 0;
  }
  RenderRequest req;
  int modes =
      args->has("--for-completion") + args->has("--no-completion") + args->has("--training");
  if (modes > 1)
    return fail("harmony render", "give one of --for-completion, --no-completion, --training", 2);
  if (args->has("--no-completion")) req.mode = "conversation";
  if (args->has("--training")) req.mode = "training";
  if (auto r = args->get("--next-role")) {
    auto role = role_arg(*r);
    if (!role) return fail("harmony render", role.status().message(), 2);
    req.next_role = *role;
  }
  if (auto d = args->get("--drop-analysis")) {
    auto drop = drop_from_name(*d);
    if (!drop) return fail("harmony render", drop.status().message(), 2);
    req.options.drop_analysis = *drop;
  }
  ojson j = ojson::parse(*input, nullptr, false);
  const std::string src = args->get_or("--file", "stdin");
  if (j.is_discarded()) return fail("harmony render", src + ": not valid JSON");
  std::vector<uint32_t> ids;
  std::string text;
  Status st = render_one(**tok, j, req, &ids, &text);
  if (!st) return fail("harmony render", src + ": " + st.message());
  std::string out = args->has("--ids") ? dump(ojson(ids)) : text;
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

Expected<std::vector<uint32_t>> ids_from_text(const std::string& s, const std::string& where) {
  std::vector<uint32_t> ids;
  size_t first = s.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && s[first] == '[') {
    ojson j = ojson::parse(s, nullptr, false);
    if (j.is_discarded() || !j.is_array()) return Error("{}: not a JSON array of token ids", where);
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_number_unsigned()) return Error("{}: element {} is not a token id", where, i);
      ids.push_back(j[i].get<uint32_t>());
    }
    return ids;
  }
  std::istringstream in(s);
  std::string w;
  while (in >> w) {
    char* end = nullptr;
    unsigned long v = std::strtoul(w.c_str(), &end, 10);
    if (w.empty() || *end != '\0' || v > 0xFFFFFFFFul)
      return Error("{}: '{}' is not a token id", where, w);
    ids.push_back(static_cast<uint32_t>(v));
  }
  return ids;
}

const char* kind_name(harmony::ParseEvent::Kind k) {
  using K = harmony::ParseEvent::Kind;
  switch (k) {
    case K::kMessageStart:
      return "message_start";
    case K::kContentDelta:
      return "delta";
    case K::kMessageEnd:
      return "message_end";
    case K::kStop:
      return "stop";
    case K::kProblem:
      return "problem";
  }
  return "?";
}

ojson header_json(const harmony::MessageHeader& h) {
  harmony::Message m;
  m.role = h.role;
  m.name = h.name;
  m.recipient = h.recipient;
  m.channel = h.channel;
  m.content_type = h.content_type;
  ojson j = harmony::message_to_json(m);
  j.erase("content");
  return j;
}

ojson event_json(const harmony::ParseEvent& e) {
  using K = harmony::ParseEvent::Kind;
  ojson o = ojson::object();
  o["event"] = kind_name(e.kind);
  if (e.kind == K::kMessageStart || e.kind == K::kMessageEnd) o["header"] = header_json(e.header);
  if (e.kind == K::kContentDelta || e.kind == K::kProblem) o["text"] = e.text;
  if (e.kind == K::kMessageEnd) o["terminator"] = e.terminator;
  if (e.kind == K::kStop) o["reason"] = harmony::stop_reason_name(e.stop);
  return o;
}

// Parses one token list; returns {"messages","problems","stop","deltas"} (deltas: per message,
// the list of content deltas the stream emitted).
ojson parse_to_json(const Tokenizer& tok, const std::vector<uint32_t>& ids,
                    std::optional<harmony::Role> role, std::vector<harmony::ParseEvent>* events) {
  harmony::Parser p(tok, harmony::ParserOptions{role});
  std::vector<harmony::ParseEvent> ev;
  for (uint32_t t : ids) p.push(t, ev);
  p.finish(ev);
  ojson msgs = ojson::array();
  for (const auto& m : p.messages()) msgs.push_back(harmony::message_to_json(m));
  ojson deltas = ojson::array(), cur = ojson::array();
  for (const auto& e : ev) {
    if (e.kind == harmony::ParseEvent::Kind::kContentDelta) cur.push_back(e.text);
    if (e.kind == harmony::ParseEvent::Kind::kMessageEnd) {
      deltas.push_back(cur);
      cur = ojson::array();
    }
  }
  if (events) *events = std::move(ev);
  ojson o = ojson::object();
  o["messages"] = std::move(msgs);
  o["problems"] = p.problems();
  o["stop"] = harmony::stop_reason_name(p.stop_reason());
  o["deltas"] = std::move(deltas);
  return o;
}

int cmd_parse(const std::vector<std::string>& argv) {
  ArgSpec spec{{"--events", "--jsonl", "--help"}, {"--file", "--text", "--role", "--tokenizer"}};
  auto args = Args::parse(argv, spec);
  if (!args) return fail("harmony parse", args.status().message() + "\n" + kUsage, 2);
  if (args->has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::optional<harmony::Role> role = harmony::Role::kAssistant;
  if (auto r = args->get("--role")) {
    if (*r == "none") {
      role.reset();
    } else {
      auto rr = role_arg(*r);
      if (!rr) return fail("harmony parse", rr.status().message(), 2);
      role = *rr;
    }
  }
  auto tok = load_tokenizer(*args);
  if (!tok) return fail("harmony parse", tok.status().message());
  if (args->has("--jsonl")) {
    auto input = read_input(*args);
    if (!input) return fail("harmony parse", input.status().message());
    std::istringstream in(*input);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      ojson out;
      ojson j = ojson::parse(line, nullptr, false);
      std::optional<harmony::Role> line_role = role;
      const ojson* toks = &j;
      if (j.is_object()) {
        toks = j.contains("tokens") ? &j["tokens"] : nullptr;
        if (auto it = j.find("role"); it != j.end()) {
          if (it->is_null()) {
            line_role.reset();
          } else if (auto r = it->is_string() ? harmony::role_from_name(it->get<std::string>())
                                              : std::nullopt) {
            line_role = *r;
          } else {
            toks = nullptr;
          }
        }
      }
      if (j.is_discarded() || !toks || !toks->is_array()) {
        out = ojson{
            {"error",
             fmt::format("line {}: expected [ids] or {{\"tokens\": [ids], \"role\": ...}}", n)}};
      } else {
        std::vector<uint32_t> ids;
        bool ok = true;
        for (const auto& t : *toks) {
          if (!t.is_number_unsigned() || t.get<uint64_t>() > 0xFFFFFFFFull) {
            ok = false;
            break;
          }
          ids.push_back(t.get<uint32_t>());
        }
        out = ok ? parse_to_json(**tok, ids, line_role, nullptr)
                 : ojson{{"error", fmt::format("line {}: token ids must be unsigned integers", n)}};
      }
      std::string s = dump(out);
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fputc('\n', stdout);
    }
    return 0;
  }
  std::vector<uint32_t> ids;
  if (auto text = args->get("--text")) {
    ids = (*tok)->encode_with_special(*text);
  } else if (!args->positional().empty()) {
    std::string joined;
    for (const auto& p : args->positional()) joined += p + " ";
    auto r = ids_from_text(joined, "arguments");
    if (!r) return fail("harmony parse", r.status().message(), 2);
    ids = std::move(*r);
  } else if (!args->has("--file")) {
    return fail(
        "harmony parse",
        std::string("give token ids, --text TEXT or --file IDS (--file - reads stdin)\n") + kUsage,
        2);
  } else {
    auto input = read_input(*args);
    if (!input) return fail("harmony parse", input.status().message());
    auto r = ids_from_text(*input, args->get_or("--file", "stdin"));
    if (!r) return fail("harmony parse", r.status().message());
    ids = std::move(*r);
  }
  std::vector<harmony::ParseEvent> events;
  ojson result = parse_to_json(**tok, ids, role, &events);
  if (args->has("--events")) {
    for (const auto& e : events) std::printf("%s\n", dump(event_json(e)).c_str());
    return 0;
  }
  for (const auto& p : result["problems"])
    std::fprintf(stderr, "gptoss harmony parse: warning: %s\n", p.get<std::string>().c_str());
  std::printf("%s\n", dump(result["messages"], 2).c_str());
  return 0;
}

}  // namespace

int cmd_harmony(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "render") return cmd_render(rest);
  if (args[0] == "parse") return cmd_parse(rest);
  return fail("harmony",
              fmt::format("unknown subcommand '{}' (render, parse)\n{}", args[0], kUsage), 2);
}

}  // namespace gptoss::cli
