// gptoss generate MODEL -p PROMPT: one answer, streamed. The prompt becomes a Harmony conversation
// (system with reasoning effort and date, developer instructions and tools, the user message); the
// final channel goes to stdout as it is generated, the analysis channel to stderr.
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "cli/chat_session.h"
#include "cli/commands.h"
#include "harmony/render.h"

namespace gptoss::cli {

namespace {

constexpr const char* kUsage =
    "usage: gptoss generate MODEL -p PROMPT [options]\n"
    "  MODEL                 model directory, a .safetensors file in one, or hub id (org/name[@rev];\n"
    "                        pulled if needed)\n"
    "  -p, --prompt TEXT     the user message (with --raw: the whole prompt text)\n"
    "  -n, --max-tokens N    stop after N generated tokens (default: until the context is full)\n"
    "  --reasoning E         low, medium (default) or high\n"
    "  --system TEXT         the system message's identity line (default: OpenAI's)\n"
    "  --developer TEXT      developer instructions\n"
    "  --current-date D      the system message's date (YYYY-MM-DD; default today, UTC)\n"
    "  --tools FILE          function tools, JSON in OpenAI's format ([{\"type\":\"function\",...}])\n"
    "  --tool-cmd CMD        answer tool calls by running `sh -c CMD` with the arguments JSON on stdin;\n"
    "                        its stdout is the result (without it, generation ends at the call)\n"
    "  --force-prefix TEXT   prefill: Harmony text (special tokens allowed) that the answer starts with;\n"
    "                        the model continues after it (a debugging aid, like a llama.cpp prefill)\n"
    "  --raw                 no Harmony: encode the prompt text as is (special token strings become\n"
    "                        their ids) and print the raw decoded output; no stop tokens\n"
    "  --hide-reasoning      do not print the analysis channel (default: dimmed, on stderr)\n"
    "  --json                print one JSON object: messages, completion token ids, usage, timings,\n"
    "                        finish_reason\n"
    "  --verbose             load time, prompt and generation tokens/s, time to first token (stderr)\n";

struct Display {
  bool hide_reasoning = false;
  bool dim = false;          // stderr is a terminal
  bool stdout_open = false;  // stdout's last byte is not a newline
  bool in_analysis = false;

  void on_event(const harmony::ParseEvent& e) {
    using K = harmony::ParseEvent::Kind;
    if (e.kind == K::kMessageStart) {
      in_analysis = e.header.channel == "analysis";
      if (e.header.recipient) {
        std::fprintf(stderr, "%s[tool call %s]%s ", dim ? "\x1b[2m" : "", e.header.recipient->c_str(),
                     dim ? "\x1b[0m" : "");
      }
      current_is_call = e.header.recipient.has_value();
    } else if (e.kind == K::kContentDelta) {
      if (in_analysis || current_is_call) {
        if (in_analysis && hide_reasoning) return;
        if (dim) std::fputs("\x1b[2m", stderr);
        std::fputs(e.text.c_str(), stderr);
        if (dim) std::fputs("\x1b[0m", stderr);
        std::fflush(stderr);
      } else {
        std::fputs(e.text.c_str(), stdout);
        std::fflush(stdout);
        stdout_open = !e.text.empty() ? e.text.back() != '\n' : stdout_open;
      }
    } else if (e.kind == K::kMessageEnd) {
      if ((in_analysis && !hide_reasoning) || current_is_call) std::fputs("\n", stderr);
      in_analysis = false;
      current_is_call = false;
    }
  }
  bool current_is_call = false;
};

}  // namespace

int cmd_generate(const std::vector<std::string>& argv) {
  ArgSpec spec;
  spec.flags = {"--raw", "--json", "--verbose", "--hide-reasoning", "--help", "-h"};
  spec.options = {"-p", "--prompt", "-n", "--max-tokens", "--reasoning", "--system", "--developer",
                  "--current-date", "--tools", "--tool-cmd", "--force-prefix"};
  add_model_flags(spec);
  add_sampling_flags(spec);
  auto args = Args::parse(argv, spec);
  if (!args) return fail("generate", args.status().message() + " (see gptoss generate --help)", 2);
  if (args->has("--help") || args->has("-h")) {
    std::printf("%s%s%s", kUsage, kModelFlagsUsage, kSamplingFlagsUsage);
    return 0;
  }
  if (args->positional().size() != 1) return fail("generate", "expected one MODEL (see gptoss generate --help)", 2);
  auto prompt = args->get("-p") ? args->get("-p") : args->get("--prompt");
  if (!prompt) return fail("generate", "expected -p PROMPT (see gptoss generate --help)", 2);
  auto chat_options = chat_options_from_args(*args);
  if (!chat_options) return fail("generate", chat_options.status().message(), 2);
  const ChatOptions& co = *chat_options;
  const bool raw = args->has("--raw");
  const bool json = args->has("--json");
  if (raw && (args->has("--tools") || args->has("--tool-cmd")))
    return fail("generate", "--tools and --tool-cmd need Harmony (drop --raw)", 2);

  auto model = load_model_from_args(args->positional()[0], *args);
  if (!model) return fail("generate", model.status().message());
  const Tokenizer& tok = *model->tokenizer;
  const double load_s = model->info.load_seconds;
  if (args->has("--verbose")) {
    std::fprintf(stderr, "model: %s (%s layout, %s, context %d, kv cache %zu bytes)\n",
                 model->info.dir.c_str(), model->info.layout.c_str(), model->info.device.c_str(),
                 model->engine->context_length(), model->info.kv_bytes);
  }

  TurnResult turn;
  std::string raw_text;
  if (raw) {
    std::vector<uint32_t> ids = tok.encode_with_special(*prompt);
    std::vector<uint32_t> forced;
    if (auto p = args->get("--force-prefix")) forced = tok.encode_with_special(*p);
    StreamDecoder dec(tok);
    auto step = stream_request(*model->engine, ids, forced, co.sampling, co.max_tokens, {},
                               [&](uint32_t t) {
                                 std::string s = dec.push(t);
                                 raw_text += s;
                                 if (!json) {
                                   std::fputs(s.c_str(), stdout);
                                   std::fflush(stdout);
                                 }
                               },
                               false);
    if (!step) return fail("generate", step.status().message());
    std::string rest = dec.flush();
    raw_text += rest;
    if (!json) std::printf("%s\n", rest.c_str());
    turn.steps.push_back(*step);
    turn.finish_reason = engine::finish_reason_name(step->reason);
    if (step->reason == engine::FinishReason::kError) turn.error = step->error;
    if (step->reason == engine::FinishReason::kContextFull)
      turn.error = fmt::format("the context is full ({} tokens); raise --ctx", model->engine->context_length());
  } else {
    ChatSession session(*model->engine, tok, co);
    session.add_user(*prompt);
    Display display;
    display.hide_reasoning = args->has("--hide-reasoning");
    display.dim = isatty(STDERR_FILENO);
    ToolHandler handler;
    if (auto cmd = args->get("--tool-cmd")) {
      handler = [&, c = *cmd](const harmony::Message& call) -> std::optional<std::string> {
        auto out = run_tool_command(c, call.text());
        if (!out) {
          std::fprintf(stderr, "gptoss generate: %s\n", out.status().message().c_str());
          return std::nullopt;
        }
        if (!json) std::fprintf(stderr, "[tool result] %s\n", out->c_str());
        return *out;
      };
    }
    turn = session.respond(args->get_or("--force-prefix", ""),
                           [&](const harmony::ParseEvent& e) {
                             if (!json) display.on_event(e);
                           },
                           handler, false);
    if (!json && display.stdout_open) std::fputs("\n", stdout);
  }
  std::fflush(stdout);

  if (json) {
    harmony::ojson j;
    if (raw) {
      j["text"] = raw_text;
    } else {
      j["messages"] = harmony::ojson::array();
      for (const auto& m : turn.messages) j["messages"].push_back(harmony::message_to_json(m));
    }
    harmony::ojson steps = harmony::ojson::array();
    std::vector<uint32_t> all;
    for (const auto& s : turn.steps) {
      steps.push_back({{"prompt_ids", s.prompt_ids},
                       {"completion_ids", s.completion_ids},
                       {"forced_tokens", s.forced_tokens},
                       {"finish_reason", engine::finish_reason_name(s.reason)}});
      all.insert(all.end(), s.completion_ids.begin(), s.completion_ids.end());
    }
    j["prompt_ids"] = turn.steps.empty() ? std::vector<uint32_t>{} : turn.steps[0].prompt_ids;
    j["completion_ids"] = all;
    j["steps"] = steps;
    j["usage"] = {{"prompt_tokens", turn.prompt_tokens()},
                  {"completion_tokens", turn.completion_tokens()},
                  {"total_tokens", turn.prompt_tokens() + turn.completion_tokens()}};
    j["timings"] = timings_json(turn, load_s);
    j["finish_reason"] = turn.finish_reason;
    if (!turn.problems.empty()) j["problems"] = turn.problems;
    if (!turn.error.empty()) j["error"] = turn.error;
    std::printf("%s\n", j.dump().c_str());
  }
  if (args->has("--verbose")) print_timings(turn, load_s);
  if (turn.finish_reason == "context_full") {
    std::fprintf(stderr, "gptoss generate: %s\n", turn.error.c_str());
    return 0;
  }
  if (!turn.error.empty()) return fail("generate", turn.error);
  return 0;
}

}  // namespace gptoss::cli
