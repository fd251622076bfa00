#include "cli/chat_session.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <thread>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <deque>
#include <mutex>

#include <fmt/format.h>

#include "core/mapped_file.h"
#include "engine/scheduler.h"
#include "harmony/render.h"
#include "hub/resolve.h"

namespace gptoss::cli {

std::atomic<bool> g_interrupted{false};

const char* const kModelFlagsUsage =
    "  --device D            auto (default: cuda when a GPU is usable, else cpu-fast), cpu (exact f32), cpu-fast or cuda\n"
    "  --threads N           cpu threads (default: one per hardware thread)\n"
    "  --dense-weights S     bf16 (default: attention and unembedding as stored) or q8 (converted to\n"
    "                        8-bit Q8_0 blocks at load: ~1.9x fewer bytes read for them, small accuracy\n"
    "                        loss, see `gptoss info MODEL --dense-weights q8`; cpu and cpu-fast only)\n"
    "  --ctx N               context length in tokens (default 8192, at most the model's)\n"
    "  --max-memory B        refuse to load when the KV cache and activations need more than B\n"
    "                        bytes (e.g. 8G; default: the memory available, on cpu)\n"
    "  --yes                 download MODEL without asking when it is not in the HF cache\n";

const char* const kSamplingFlagsUsage =
    "  --temperature T       default 1.0 (OpenAI's recommendation for gpt-oss); 0 = greedy\n"
    "  --top-p P             nucleus sampling, default 1.0 (off)\n"
    "  --top-k K             default 0 (off)\n"
    "  --min-p P             default 0 (off)\n"
    "  --repeat-penalty R    llama.cpp-style repetition penalty over prompt and output (default 1)\n"
    "  --presence-penalty P  OpenAI-style, over generated tokens (default 0)\n"
    "  --frequency-penalty F OpenAI-style, over generated tokens (default 0)\n"
    "  --seed S              same seed, same output (default: random)\n";

void add_model_flags(ArgSpec& spec) {
  spec.options.insert({"--device", "--threads", "--ctx", "--max-memory", "--dense-weights"});
  spec.flags.insert("--yes");
}

void add_sampling_flags(ArgSpec& spec) {
  spec.options.insert({"--temperature", "--top-p", "--top-k", "--min-p", "--repeat-penalty",
                       "--presence-penalty", "--frequency-penalty", "--seed"});
}

Expected<engine::SamplingParams> sampling_from_args(const Args& args) {
  engine::SamplingParams p;
  GPTOSS_ASSIGN_OR_RETURN(double t, args.get_double("--temperature", 1.0));
  GPTOSS_ASSIGN_OR_RETURN(double top_p, args.get_double("--top-p", 1.0));
  GPTOSS_ASSIGN_OR_RETURN(long long top_k, args.get_int("--top-k", 0));
  GPTOSS_ASSIGN_OR_RETURN(double min_p, args.get_double("--min-p", 0.0));
  GPTOSS_ASSIGN_OR_RETURN(double rep, args.get_double("--repeat-penalty", 1.0));
  GPTOSS_ASSIGN_OR_RETURN(double pres, args.get_double("--presence-penalty", 0.0));
  GPTOSS_ASSIGN_OR_RETURN(double freq, args.get_double("--frequency-penalty", 0.0));
  if (!(t >= 0)) return Error("--temperature must be >= 0 (got {})", t);
  if (!(top_p > 0 && top_p <= 1)) return Error("--top-p must be in (0, 1] (got {})", top_p);
  if (top_k < 0 || top_k > 1000000000) return Error("--top-k must be in [0, 1e9] (got {})", top_k);
  if (!(min_p >= 0 && min_p <= 1)) return Error("--min-p must be in [0, 1] (got {})", min_p);
  if (!(rep > 0)) return Error("--repeat-penalty must be > 0 (got {})", rep);
  if (!(pres >= -2 && pres <= 2)) return Error("--presence-penalty must be in [-2, 2] (got {})", pres);
  if (!(freq >= -2 && freq <= 2)) return Error("--frequency-penalty must be in [-2, 2] (got {})", freq);
  p.temperature = static_cast<float>(t);
  p.top_p = static_cast<float>(top_p);
  p.top_k = static_cast<int>(top_k);
  p.min_p = static_cast<float>(min_p);
  p.repetition_penalty = static_cast<float>(rep);
  p.presence_penalty = static_cast<float>(pres);
  p.frequency_penalty = static_cast<float>(freq);
  if (auto s = args.get("--seed")) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s->c_str(), &end, 10);
    if (s->empty() || *end != '\0' || errno != 0 || (*s)[0] == '-')
      return Error("--seed: '{}' is not a non-negative integer", *s);
    p.has_seed = true;
    p.seed = v;
  }
  return p;
}

Expected<std::string> resolve_model_arg(const std::string& model, const Args& args) {
  hub::ResolveOptions ro;
  ro.assume_yes = args.has("--yes");
  GPTOSS_ASSIGN_OR_RETURN(std::string path, hub::resolve_model(model, ro));
  // A weights file stands for the checkpoint folder around it (config.json, the other shards).
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec) && path.size() > 12 &&
      path.compare(path.size() - 12, 12, ".safetensors") == 0) {
    path = std::filesystem::path(path).parent_path().string();
    if (path.empty()) path = ".";
  }
  return path;
}

Expected<LoadedModel> load_model_from_args(const std::string& model, const Args& args) {
  GPTOSS_ASSIGN_OR_RETURN(std::string dir, resolve_model_arg(model, args));
  return load_model_dir(dir, args);
}

Expected<LoadedModel> load_model_dir(const std::string& dir, const Args& args) {
  engine::LoadOptions lo;
  lo.device = args.get_or("--device", "auto");
  if (lo.device != "auto" && lo.device != "cpu" && lo.device != "cpu-fast" && lo.device != "cuda")
    return Error("--device: unknown device '{}' (use auto, cpu, cpu-fast or cuda)", lo.device);
  GPTOSS_ASSIGN_OR_RETURN(long long threads, args.get_int("--threads", 0));
  GPTOSS_ASSIGN_OR_RETURN(long long ctx, args.get_int("--ctx", 8192));
  if (threads < 0 || threads > 1024) return Error("--threads must be in [0, 1024] (got {})", threads);
  if (ctx < 16 || ctx > (1 << 24)) return Error("--ctx must be in [16, 16777216] (got {})", ctx);
  lo.threads = static_cast<int>(threads);
  lo.context = static_cast<int>(ctx);
  lo.max_sequences = 1;
  GPTOSS_ASSIGN_OR_RETURN(lo.max_memory, args.get_bytes("--max-memory", 0));
  GPTOSS_ASSIGN_OR_RETURN(lo.dense_weights, parse_dense_weights(args.get_or("--dense-weights", "bf16")));

  LoadedModel m;
  GPTOSS_ASSIGN_OR_RETURN(m.runner, engine::load_runner(dir, lo, &m.info));
  GPTOSS_ASSIGN_OR_RETURN(m.tokenizer, Tokenizer::from_model_dir(m.info.dir));
  engine::SchedulerOptions so;
  so.max_running = 1;
  so.max_queued = 4;
  m.engine = engine::create_engine(m.runner, so);
  return m;
}

Expected<StepResult> stream_request(engine::Engine& engine, std::vector<uint32_t> prompt,
                                    const std::vector<uint32_t>& forced,
                                    const engine::SamplingParams& sampling, int max_tokens,
                                    const std::vector<uint32_t>& stop_tokens,
                                    const std::function<void(uint32_t)>& on_token,
                                    bool watch_interrupt) {
  using Clock = std::chrono::steady_clock;
  StepResult r;
  r.forced_tokens = forced.size();
  const auto t0 = Clock::now();
  // Forced tokens first: up to and including a stop token, and no more than max_tokens.
  bool stopped = false;
  for (uint32_t t : forced) {
    if (max_tokens >= 0 && static_cast<int>(r.completion_ids.size()) >= max_tokens) break;
    r.completion_ids.push_back(t);
    on_token(t);
    for (uint32_t s : stop_tokens) stopped = stopped || s == t;
    if (stopped) break;
  }
  r.forced_tokens = r.completion_ids.size();
  r.prompt_ids = prompt;
  std::vector<uint32_t> submitted = std::move(prompt);
  submitted.insert(submitted.end(), r.completion_ids.begin(), r.completion_ids.end());
  if (stopped || (max_tokens >= 0 && static_cast<int>(r.completion_ids.size()) >= max_tokens)) {
    r.reason = stopped ? engine::FinishReason::kStop : engine::FinishReason::kLength;
    r.total_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return r;
  }
  if (static_cast<int>(submitted.size()) >= engine.context_length()) {
    return Error("the prompt ({} tokens) fills the context of {} tokens: start a new conversation "
                 "(/clear) or raise --ctx", submitted.size(), engine.context_length());
  }

  std::mutex mu;
  std::condition_variable cv;
  std::deque<engine::TokenEvent> queue;
  engine::GenerationRequest req;
  req.prompt = std::move(submitted);
  req.sampling = sampling;
  req.max_tokens = max_tokens < 0 ? -1 : max_tokens - static_cast<int>(r.completion_ids.size());
  req.stop_tokens = stop_tokens;
  auto id = engine.submit(std::move(req), [&](const engine::TokenEvent& ev) {
    std::lock_guard<std::mutex> lk(mu);
    queue.push_back(ev);
    cv.notify_one();
  });
  if (!id) return id.status();
  bool cancel_sent = false;
  bool first = true;
  while (true) {
    engine::TokenEvent ev;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, std::chrono::milliseconds(30), [&] { return !queue.empty(); });
      if (queue.empty()) {
        if (watch_interrupt && g_interrupted.load() && !cancel_sent) {
          engine.cancel(*id);
          cancel_sent = true;
        }
        continue;
      }
      ev = std::move(queue.front());
      queue.pop_front();
    }
    if (ev.has_token) {
      if (first) {
        r.first_token_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        first = false;
      }
      r.generated++;
      r.completion_ids.push_back(ev.token);
      on_token(ev.token);
    }
    if (watch_interrupt && g_interrupted.load() && !cancel_sent && !ev.finished) {
      engine.cancel(*id);
      cancel_sent = true;
    }
    if (ev.finished) {
      r.reason = ev.reason;
      r.error = ev.error;
      break;
    }
  }
  r.total_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

Expected<ChatOptions> chat_options_from_args(const Args& args) {
  ChatOptions co;
  GPTOSS_ASSIGN_OR_RETURN(long long max_tokens,
                          args.get_int(args.has("-n") ? "-n" : "--max-tokens", -1));
  if (max_tokens < -1 || max_tokens == 0 || max_tokens > 1000000000)
    return Error("-n must be a positive number of tokens");
  co.max_tokens = static_cast<int>(max_tokens);
  GPTOSS_ASSIGN_OR_RETURN(co.sampling, sampling_from_args(args));
  auto effort = harmony::effort_from_name(args.get_or("--reasoning", "medium"));
  if (!effort) return Error("--reasoning takes low, medium or high");
  co.effort = *effort;
  co.system = args.get("--system");
  co.developer = args.get("--developer");
  co.current_date = args.get_or("--current-date", harmony::today_utc());
  if (auto f = args.get("--tools")) {
    GPTOSS_ASSIGN_OR_RETURN(co.tools, load_tools_file(*f));
  }
  return co;
}

Expected<std::vector<harmony::ToolDescription>> load_tools_file(const std::string& path) {
  GPTOSS_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  harmony::ojson j = harmony::ojson::parse(text, nullptr, false);
  if (j.is_discarded()) return Error("{}: not valid JSON", path);
  if (j.is_object() && j.contains("tools")) j = j["tools"];
  if (!j.is_array()) return Error("{}: expected a JSON array of function tools", path);
  std::vector<harmony::ToolDescription> tools;
  for (size_t i = 0; i < j.size(); ++i) {
    harmony::ojson f = j[i];
    if (f.is_object() && f.contains("function")) {
      auto type = f.find("type");  // not value(): it throws on a non-string
      if (type != f.end() && *type != "function")
        return Error("{}: tools[{}].type must be \"function\"", path, i);
      f = f["function"];
    }
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
      return Error("{}: tools[{}] has no function name", path, i);
    harmony::ToolDescription d;
    d.name = f["name"].get<std::string>();
    if (f.contains("description")) {
      if (!f["description"].is_string()) return Error("{}: tools[{}].description must be a string", path, i);
      d.description = f["description"].get<std::string>();
    }
    if (f.contains("parameters") && !f["parameters"].is_null()) {
      if (!f["parameters"].is_object()) return Error("{}: tools[{}].parameters must be a JSON Schema object", path, i);
      d.parameters = f["parameters"];
    }
    tools.push_back(std::move(d));
  }
  return tools;
}

int TurnResult::prompt_tokens() const {
  int n = 0;
  for (const auto& s : steps) n += static_cast<int>(s.prompt_ids.size());
  return n;
}

int TurnResult::completion_tokens() const {
  int n = 0;
  for (const auto& s : steps) n += static_cast<int>(s.completion_ids.size());
  return n;
}

ChatSession::ChatSession(engine::Engine& engine, const Tokenizer& tokenizer, ChatOptions options)
    : engine_(engine), tok_(tokenizer), opt_(std::move(options)) {}

void ChatSession::add_user(const std::string& text) {
  history_.push_back(harmony::Message::make(harmony::Role::kUser, text));
}

harmony::Conversation ChatSession::conversation() const {
  harmony::Conversation c;
  harmony::SystemContent sys;
  if (opt_.system) sys.model_identity = *opt_.system;
  sys.reasoning_effort = opt_.effort;
  sys.conversation_start_date = opt_.current_date;
  c.messages.push_back(harmony::Message::system(sys));
  if (opt_.developer || !opt_.tools.empty()) {
    harmony::DeveloperContent dev;
    dev.instructions = opt_.developer;
    if (!opt_.tools.empty()) dev.with_function_tools(opt_.tools);
    c.messages.push_back(harmony::Message::developer(dev));
  }
  c.messages.insert(c.messages.end(), history_.begin(), history_.end());
  return c;
}

TurnResult ChatSession::respond(const std::string& prefix,
                                const std::function<void(const harmony::ParseEvent&)>& on_event,
                                const ToolHandler& tool_handler, bool watch_interrupt,
                                const std::function<void(const StepResult&)>& on_step) {
  TurnResult turn;
  std::vector<uint32_t> forced = prefix.empty() ? std::vector<uint32_t>{} : tok_.encode_with_special(prefix);
  const std::vector<uint32_t> stops = {harmony::tok::kReturn, harmony::tok::kCall};
  // A model that keeps calling tools could loop forever: 64 calls in one answer is plenty.
  for (int round = 0; round < 64; ++round) {
    harmony::RenderOptions ro;
    ro.drop_analysis = harmony::DropAnalysis::kBeforeLastFinal;
    auto prompt = harmony::render_for_completion(tok_, conversation(), harmony::Role::kAssistant, ro);
    if (!prompt) {
      turn.finish_reason = "error";
      turn.error = prompt.status().message();
      return turn;
    }
    harmony::Parser parser(tok_);
    std::vector<harmony::ParseEvent> events;
    auto step = stream_request(
        engine_, std::move(*prompt), forced, opt_.sampling, opt_.max_tokens, stops,
        [&](uint32_t t) {
          events.clear();
          parser.push(t, events);
          for (const auto& e : events) on_event(e);
        },
        watch_interrupt);
    forced.clear();
    if (!step) {
      turn.finish_reason = "error";
      turn.error = step.status().message();
      return turn;
    }
    if (on_step) on_step(*step);
    events.clear();
    parser.finish(events);
    for (const auto& e : events) on_event(e);
    for (const auto& p : parser.problems()) turn.problems.push_back(p);
    for (const auto& m : parser.messages()) {
      history_.push_back(m);
      turn.messages.push_back(m);
    }
    turn.steps.push_back(*step);
    switch (step->reason) {
      case engine::FinishReason::kStop: break;
      case engine::FinishReason::kLength: turn.finish_reason = "length"; return turn;
      case engine::FinishReason::kContextFull:
        turn.finish_reason = "context_full";
        turn.error = fmt::format("the context is full ({} tokens): start a new conversation (/clear) or "
                                 "raise --ctx", engine_.context_length());
        return turn;
      case engine::FinishReason::kCancelled: turn.finish_reason = "cancelled"; return turn;
      default:
        turn.finish_reason = "error";
        turn.error = step->error.empty() ? "generation failed" : step->error;
        return turn;
    }
    if (parser.stop_reason() != harmony::StopReason::kCall || parser.messages().empty()) {
      turn.finish_reason = "stop";
      return turn;
    }
    const harmony::Message& call = parser.messages().back();
    turn.finish_reason = "tool_calls";
    if (!tool_handler) return turn;
    std::optional<std::string> output = tool_handler(call);
    if (!output) return turn;
    harmony::Message result = harmony::Message::make(harmony::Role::kTool, *output);
    result.name = call.recipient.value_or("functions.unknown");
    result.recipient = "assistant";
    result.channel = "commentary";
    history_.push_back(result);
    turn.messages.push_back(result);
    if (watch_interrupt && g_interrupted.load()) {
      turn.finish_reason = "cancelled";
      return turn;
    }
  }
  turn.finish_reason = "error";
  turn.error = "more than 64 tool calls in one answer";
  return turn;
}

TurnTimings turn_timings(const TurnResult& turn) {
  TurnTimings t;
  bool first = true;
  for (const auto& s : turn.steps) {
    t.total_seconds += s.total_seconds;
    if (s.generated == 0) continue;
    t.prompt_tokens += static_cast<int>(s.prompt_ids.size() + s.forced_tokens);
    t.prompt_seconds += s.first_token_seconds;
    if (first) t.first_token_seconds = s.first_token_seconds;
    first = false;
    // The first generated token closes the prompt phase; the others are decode steps.
    t.eval_tokens += s.generated - 1;
    t.eval_seconds += s.total_seconds - s.first_token_seconds;
  }
  return t;
}

void print_timings(const TurnResult& turn, double load_seconds) {
  const TurnTimings t = turn_timings(turn);
  std::string out;
  if (load_seconds >= 0) out += fmt::format("load duration:        {:.3f} s\n", load_seconds);
  out += fmt::format("total duration:       {:.3f} s\n", t.total_seconds);
  out += fmt::format("prompt eval count:    {} token(s)\n", t.prompt_tokens);
  out += fmt::format("prompt eval duration: {:.3f} s\n", t.prompt_seconds);
  out += fmt::format("prompt eval rate:     {:.2f} tokens/s\n", t.prompt_rate());
  out += fmt::format("eval count:           {} token(s)\n", t.eval_tokens);
  out += fmt::format("eval duration:        {:.3f} s\n", t.eval_seconds);
  out += fmt::format("eval rate:            {:.2f} tokens/s\n", t.eval_rate());
  out += fmt::format("time to first token:  {:.1f} ms\n", t.first_token_seconds * 1000);
  std::fputs(out.c_str(), stderr);
}

harmony::ojson timings_json(const TurnResult& turn, double load_seconds) {
  const TurnTimings t = turn_timings(turn);
  return {{"load_seconds", load_seconds},
          {"prompt_tokens", t.prompt_tokens},
          {"prompt_seconds", t.prompt_seconds},
          {"prompt_tokens_per_s", t.prompt_rate()},
          {"generated_tokens", t.eval_tokens},
          {"generation_seconds", t.eval_seconds},
          {"generation_tokens_per_s", t.eval_rate()},
          {"time_to_first_token_ms", t.first_token_seconds * 1000},
          {"total_seconds", t.total_seconds}};
}

Expected<std::string> run_tool_command(const std::string& command, const std::string& input) {
  int in_pipe[2], out_pipe[2];
  if (pipe(in_pipe) != 0) return Error("--tool-cmd: pipe failed");
  if (pipe(out_pipe) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    return Error("--tool-cmd: pipe failed");
  }
  const pid_t pid = fork();
  if (pid < 0) return Error("--tool-cmd: fork failed");
  if (pid == 0) {
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    close(in_pipe[0]);
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(out_pipe[1]);
    signal(SIGINT, SIG_DFL);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  // Write the arguments from another thread so that a command that prints before reading its
  // input cannot deadlock against us.
  std::thread writer([fd = in_pipe[1], &input] {
    size_t done = 0;
    while (done < input.size()) {
      const ssize_t n = write(fd, input.data() + done, input.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
  });
  std::string output;
  char buf[4096];
  while (true) {
    const ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
  }
  close(out_pipe[0]);
  writer.join();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error("--tool-cmd '{}' failed (exit status {})", command,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return output;
}

}  // namespace gptoss::cli
