// What `generate` and `run` share: the common flags (model, device, sampling), loading a model
// behind an engine, and a Harmony chat session that turns a conversation into engine requests and
// the generated tokens back into messages, with tool calls answered in a loop.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "core/status.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "harmony/conversation.h"
#include "harmony/parser.h"
#include "tokenizer/tokenizer.h"

namespace gptoss::cli {

// Flags every generating command accepts (added to a command's own ArgSpec).
void add_model_flags(ArgSpec& spec);
void add_sampling_flags(ArgSpec& spec);
extern const char* const kModelFlagsUsage;
extern const char* const kSamplingFlagsUsage;

Expected<engine::SamplingParams> sampling_from_args(const Args& args);

struct LoadedModel {
  std::shared_ptr<engine::Runner> runner;
  std::unique_ptr<engine::Engine> engine;
  std::shared_ptr<const Tokenizer> tokenizer;
  engine::LoadedModelInfo info;
};

// MODEL through hub::resolve_model (local dir, HF cache, else pull: asks, or --yes), then
// --device/--threads/--ctx into load_runner and a one-sequence engine.
Expected<LoadedModel> load_model_from_args(const std::string& model, const Args& args);
// The two halves: MODEL -> directory (may download), and directory -> loaded model.
Expected<std::string> resolve_model_arg(const std::string& model, const Args& args);
Expected<LoadedModel> load_model_dir(const std::string& dir, const Args& args);

// Set by the SIGINT handler of interactive commands; a running request is cancelled when it is set.
extern std::atomic<bool> g_interrupted;

// One engine request and what came back.
struct StepResult {
  std::vector<uint32_t> prompt_ids;      // the rendered prompt (the engine gets it + forced tokens)
  std::vector<uint32_t> completion_ids;  // forced tokens, then generated ones (stop token included)
  size_t forced_tokens = 0;
  engine::FinishReason reason = engine::FinishReason::kNone;
  std::string error;
  double first_token_seconds = 0;  // submit -> first generated token (prompt processing)
  double total_seconds = 0;        // submit -> finished
  int generated = 0;               // tokens the model produced (forced ones excluded)
};

// Submits prompt + forced to the engine (the forced tokens are reported first, as if generated;
// if they contain a stop token the model is not run at all) and calls on_token for every completion
// token on this thread. Cancels the request when g_interrupted is set (if watch_interrupt).
Expected<StepResult> stream_request(engine::Engine& engine, std::vector<uint32_t> prompt,
                                    const std::vector<uint32_t>& forced,
                                    const engine::SamplingParams& sampling, int max_tokens,
                                    const std::vector<uint32_t>& stop_tokens,
                                    const std::function<void(uint32_t)>& on_token,
                                    bool watch_interrupt);

struct ChatOptions {
  harmony::ReasoningEffort effort = harmony::ReasoningEffort::kMedium;
  std::optional<std::string> system;     // replaces the model identity line of the system message
  std::optional<std::string> developer;  // developer instructions
  std::vector<harmony::ToolDescription> tools;  // function tools (namespace "functions")
  std::string current_date;
  engine::SamplingParams sampling;
  int max_tokens = -1;                   // per engine request
};

// Reads an OpenAI function-tool list: [{"type":"function","function":{name,description,parameters}}]
// (the bare {name,description,parameters} form is accepted too).
Expected<std::vector<harmony::ToolDescription>> load_tools_file(const std::string& path);

// The chat flags of generate and run: -n/--max-tokens, the sampling flags, --reasoning, --system,
// --developer, --current-date (default today) and --tools; an error names the flag.
Expected<ChatOptions> chat_options_from_args(const Args& args);

struct TurnResult {
  std::vector<harmony::Message> messages;  // assistant and tool messages added by this turn
  std::vector<StepResult> steps;
  std::string finish_reason;  // stop, tool_calls, length, context_full, cancelled, error
  std::string error;
  std::vector<std::string> problems;  // Harmony parse problems (malformed model output)
  int prompt_tokens() const;
  int completion_tokens() const;
};

// Returns the tool's output for a call message (recipient "functions.NAME", content = arguments),
// or nullopt to end the turn at the call.
using ToolHandler = std::function<std::optional<std::string>(const harmony::Message& call)>;

class ChatSession {
 public:
  ChatSession(engine::Engine& engine, const Tokenizer& tokenizer, ChatOptions options);

  ChatOptions& options() { return opt_; }
  void clear() { history_.clear(); }
  void drop_last_message() {
    if (!history_.empty()) history_.pop_back();
  }
  void add_user(const std::string& text);
  // The full conversation as rendered for the next request (system, developer, history).
  harmony::Conversation conversation() const;
  const std::vector<harmony::Message>& history() const { return history_; }

  // Generates the assistant's answer to the history: one engine request, and after each tool call
  // that the handler answers, another with the tool's result appended. `prefix` is Harmony text
  // forced as the start of the first request's output (a prefill). Parse events go to on_event as
  // tokens arrive; every finished request goes to on_step.
  TurnResult respond(const std::string& prefix, const std::function<void(const harmony::ParseEvent&)>& on_event,
                     const ToolHandler& tool_handler, bool watch_interrupt,
                     const std::function<void(const StepResult&)>& on_step = {});

 private:
  engine::Engine& engine_;
  const Tokenizer& tok_;
  ChatOptions opt_;
  std::vector<harmony::Message> history_;
};

struct TurnTimings {
  int prompt_tokens = 0;         // tokens of the prompts that the model processed
  double prompt_seconds = 0;     // submit -> first token, summed over requests
  int eval_tokens = 0;           // decode steps after each request's first token
  double eval_seconds = 0;
  double first_token_seconds = 0;
  double total_seconds = 0;
  double prompt_rate() const { return prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0; }
  double eval_rate() const { return eval_seconds > 0 ? eval_tokens / eval_seconds : 0; }
};
TurnTimings turn_timings(const TurnResult& turn);
// ollama --verbose style lines (load, prompt eval rate, eval rate, time to first token) to stderr;
// load_seconds < 0 leaves the load line out.
void print_timings(const TurnResult& turn, double load_seconds);
harmony::ojson timings_json(const TurnResult& turn, double load_seconds);

// Runs `sh -c command` with `input` on its stdin; returns its stdout (trailing newlines removed).
Expected<std::string> run_tool_command(const std::string& command, const std::string& input);

}  // namespace gptoss::cli
