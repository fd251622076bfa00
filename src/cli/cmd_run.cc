// gptoss run MODEL (alias chat): an interactive Harmony chat in the terminal, like `ollama run`.
// Line editing and history come from libedit when stdin is a terminal; otherwise lines are read
// plainly. Ctrl-C stops the answer being generated (engine cancel); at the prompt, a second Ctrl-C
// in a row or Ctrl-D exits.
#include <histedit.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <cwchar>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/chat_session.h"
#include "cli/commands.h"

namespace gptoss::cli {

namespace {

constexpr const char* kUsage =
    "usage: gptoss run MODEL [options]       (alias: gptoss chat)\n"
    "  MODEL                 model directory, a .safetensors file in one, or hub id (org/name[@rev]); one not\n"
    "                        in the HF cache is downloaded (asks first; --yes does not)\n"
    "  --reasoning E         low, medium (default) or high\n"
    "  --hide-reasoning      do not show the analysis channel (default: shown dimmed)\n"
    "  --system TEXT         the system message's identity line (default: OpenAI's)\n"
    "  --developer TEXT      developer instructions\n"
    "  --current-date D      the system message's date (YYYY-MM-DD; default today, UTC)\n"
    "  --tools FILE          function tools, JSON in OpenAI's format; the model's calls are shown and\n"
    "                        you type the result\n"
    "  --tool-cmd CMD        answer tool calls by running `sh -c CMD` with the arguments JSON on stdin\n"
    "  -n, --max-tokens N    at most N tokens per model request (default: until the context is full)\n"
    "  --force-prefix TEXT   prefill: Harmony text the first answer starts with (a debugging aid)\n"
    "  --prompt-log FILE     append each request's prompt and completion token ids (JSON lines)\n"
    "  --verbose             timings after every answer (as /stats)\n"
    "Line history is kept in $GPTOSS_HISTORY (default ~/.gptoss_history).\n";

constexpr const char* kHelp =
    "Available commands:\n"
    "  /reasoning low|medium|high   set the reasoning effort\n"
    "  /system TEXT                 set the system message's identity line (empty: default)\n"
    "  /developer TEXT              set the developer instructions (empty: none)\n"
    "  /set parameter NAME VALUE    temperature, top_p, top_k, min_p, seed, num_predict,\n"
    "                               repeat_penalty, presence_penalty, frequency_penalty\n"
    "  /clear                       forget the conversation\n"
    "  /stats                       timings of the last answer\n"
    "  /help, /?                    this help\n"
    "  /bye                         exit\n"
    "Use \"\"\" to begin and end a multi-line message. Ctrl-C stops an answer; Ctrl-D exits.\n";

void on_sigint(int) { g_interrupted.store(true); }

// Reads lines: libedit on a terminal, getline otherwise.
class LineReader {
 public:
  enum class Result { kLine, kEof, kInterrupt };

  explicit LineReader(bool tty) : tty_(tty) {
    if (!tty_) return;
    el_ = el_init("gptoss", stdin, stdout, stderr);
    hist_ = history_init();
    HistEvent ev;
    history(hist_, &ev, H_SETSIZE, 1000);
    history(hist_, &ev, H_SETUNIQUE, 1);
    el_set(el_, EL_HIST, history, hist_);
    el_set(el_, EL_EDITOR, "emacs");
    el_set(el_, EL_CLIENTDATA, static_cast<void*>(this));
    el_set(el_, EL_PROMPT, &LineReader::prompt_fn);
    el_set(el_, EL_GETCFN, &LineReader::getc_fn);
    el_source(el_, nullptr);  // ~/.editrc
    if (const char* h = std::getenv("GPTOSS_HISTORY")) {
      history_file_ = h;
    } else if (const char* home = std::getenv("HOME")) {
      history_file_ = std::string(home) + "/.gptoss_history";
    }
    if (!history_file_.empty()) history(hist_, &ev, H_LOAD, history_file_.c_str());
  }
  ~LineReader() {
    HistEvent ev;
    if (hist_ && !history_file_.empty()) history(hist_, &ev, H_SAVE, history_file_.c_str());
    if (el_) el_end(el_);
    if (hist_) history_end(hist_);
  }

  Result read(const std::string& prompt, std::string* line) {
    g_interrupted.store(false);
    interrupted_ = false;
    if (!tty_) {
      if (!std::getline(std::cin, *line)) return g_interrupted.load() ? Result::kInterrupt : Result::kEof;
      return Result::kLine;
    }
    prompt_ = prompt;
    int count = 0;
    const char* s = el_gets(el_, &count);
    if (interrupted_ || g_interrupted.load()) {
      el_reset(el_);
      std::fputs("\n", stdout);
      return Result::kInterrupt;
    }
    if (!s || count <= 0) return Result::kEof;
    *line = s;
    while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) line->pop_back();
    return Result::kLine;
  }

  void remember(const std::string& entry) {
    if (!hist_ || entry.empty()) return;
    HistEvent ev;
    history(hist_, &ev, H_ENTER, entry.c_str());
  }

 private:
  static char* prompt_fn(EditLine* el) {
    void* self = nullptr;
    el_get(el, EL_CLIENTDATA, &self);
    return const_cast<char*>(static_cast<LineReader*>(self)->prompt_.c_str());
  }
  // Our own character reader, so that Ctrl-C (SIGINT without SA_RESTART) ends el_gets at once.
  static int getc_fn(EditLine* el, wchar_t* out) {
    void* p = nullptr;
    el_get(el, EL_CLIENTDATA, &p);
    auto* self = static_cast<LineReader*>(p);
    std::mbstate_t st{};
    char buf[8];
    size_t n = 0;
    while (true) {
      char c;
      const ssize_t r = ::read(STDIN_FILENO, &c, 1);
      if (r < 0 && errno == EINTR) {
        if (g_interrupted.load()) {
          self->interrupted_ = true;
          return -1;
        }
        continue;
      }
      if (r <= 0) return 0;
      buf[n++] = c;
      wchar_t wc;
      std::memset(&st, 0, sizeof st);
      const size_t k = std::mbrtowc(&wc, buf, n, &st);
      if (k == static_cast<size_t>(-2) && n < sizeof buf) continue;  // incomplete character
      if (k == static_cast<size_t>(-1) || k == static_cast<size_t>(-2)) {
        *out = static_cast<wchar_t>(static_cast<unsigned char>(buf[0]));
        return 1;
      }
      *out = wc;
      return 1;
    }
  }

  bool tty_;
  EditLine* el_ = nullptr;
  History* hist_ = nullptr;
  std::string prompt_;
  std::string history_file_;  // $GPTOSS_HISTORY, else ~/.gptoss_history ("" = not kept)
  bool interrupted_ = false;
};

// Streams an answer to the terminal: analysis dimmed between "Thinking..." lines (or hidden),
// tool calls as "→ functions.NAME(args)".
struct ChatDisplay {
  bool hide_reasoning = false;
  bool color = true;
  bool in_analysis = false;
  bool in_call = false;
  bool line_open = false;

  void put(const std::string& s) {
    if (s.empty()) return;
    std::fputs(s.c_str(), stdout);
    line_open = s.back() != '\n';
  }
  void on_event(const harmony::ParseEvent& e) {
    using K = harmony::ParseEvent::Kind;
    if (e.kind == K::kMessageStart) {
      in_analysis = e.header.channel == "analysis";
      in_call = e.header.recipient.has_value() && *e.header.recipient != "assistant";
      if (line_open) put("\n");
      if (in_analysis && !hide_reasoning) put(color ? "\x1b[2mThinking...\n" : "Thinking...\n");
      if (in_call) put(fmt::format("→ {}(", *e.header.recipient));
    } else if (e.kind == K::kContentDelta) {
      if (in_analysis && hide_reasoning) return;
      put(e.text);
    } else if (e.kind == K::kMessageEnd) {
      if (in_analysis && !hide_reasoning) {
        if (line_open) put("\n");
        put(color ? "...done thinking.\x1b[0m\n\n" : "...done thinking.\n\n");
      }
      if (in_call) put(")\n");
      in_analysis = in_call = false;
    }
    std::fflush(stdout);
  }
  void end_answer() {
    if (color && in_analysis && !hide_reasoning) std::fputs("\x1b[0m", stdout);  // stopped mid-thought
    if (line_open) put("\n");
    std::fputs("\n", stdout);
    std::fflush(stdout);
    in_analysis = in_call = false;
  }
};

Status set_parameter(ChatOptions& o, const std::string& name, const std::string& value) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || errno != 0 || !(std::fabs(v) <= 1e18))
    return Error("'{}' is not a number (or too large)", value);
  auto& s = o.sampling;
  if (name == "temperature" && v >= 0) s.temperature = static_cast<float>(v);
  else if (name == "top_p" && v > 0 && v <= 1) s.top_p = static_cast<float>(v);
  else if (name == "top_k" && v >= 0 && v <= 1e9) s.top_k = static_cast<int>(v);
  else if (name == "min_p" && v >= 0 && v <= 1) s.min_p = static_cast<float>(v);
  else if (name == "repeat_penalty" && v > 0) s.repetition_penalty = static_cast<float>(v);
  else if (name == "presence_penalty" && v >= -2 && v <= 2) s.presence_penalty = static_cast<float>(v);
  else if (name == "frequency_penalty" && v >= -2 && v <= 2) s.frequency_penalty = static_cast<float>(v);
  else if (name == "seed" && v >= 0) {
    s.has_seed = true;
    s.seed = static_cast<uint64_t>(v);
  } else if (name == "num_predict" && ((v >= 1 && v <= 1e9) || v == -1)) o.max_tokens = static_cast<int>(v);
  else return Error("unknown parameter '{}' or value {} out of range", name, value);
  return Status::ok();
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

int cmd_run(const std::vector<std::string>& argv) {
  std::setlocale(LC_ALL, "");
  ArgSpec spec;
  spec.flags = {"--verbose", "--hide-reasoning", "--help", "-h"};
  spec.options = {"-n", "--max-tokens", "--reasoning", "--system", "--developer", "--current-date", "--tools",
                  "--tool-cmd", "--force-prefix", "--prompt-log"};
  add_model_flags(spec);
  add_sampling_flags(spec);
  auto args = Args::parse(argv, spec);
  if (!args) return fail("run", args.status().message() + " (see gptoss run --help)", 2);
  if (args->has("--help") || args->has("-h")) {
    std::printf("%s%s%s", kUsage, kModelFlagsUsage, kSamplingFlagsUsage);
    return 0;
  }
  if (args->positional().size() != 1) return fail("run", "expected one MODEL (see gptoss run --help)", 2);
  auto chat_options = chat_options_from_args(*args);
  if (!chat_options) return fail("run", chat_options.status().message(), 2);
  ChatOptions co = std::move(*chat_options);
  std::unique_ptr<std::ofstream> prompt_log;
  if (auto f = args->get("--prompt-log")) {
    prompt_log = std::make_unique<std::ofstream>(*f, std::ios::app);
    if (!*prompt_log) return fail("run", fmt::format("--prompt-log {}: cannot open for writing", *f), 2);
  }

  // Only this thread takes SIGINT: the engine and backend threads start with it blocked, so that
  // Ctrl-C interrupts our read() at the prompt and is seen by the loop that cancels a request.
  // A download (pull) can take long: Ctrl-C keeps its default meaning until the model is here.
  auto dir = resolve_model_arg(args->positional()[0], *args);
  if (!dir) return fail("run", dir.status().message());
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, nullptr);
  auto model = load_model_dir(*dir, *args);
  if (!model) return fail("run", model.status().message());
  sigset_t pending;
  sigpending(&pending);
  if (sigismember(&pending, SIGINT)) return 130;  // Ctrl-C while loading: the user wants out
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns EINTR
  sigaction(SIGINT, &sa, nullptr);
  pthread_sigmask(SIG_UNBLOCK, &block, nullptr);

  const bool tty = isatty(STDIN_FILENO);
  const bool verbose = args->has("--verbose");
  if (verbose) {
    std::fprintf(stderr, "model: %s (%s layout, %s, context %d)\nload duration:        %.3f s\n",
                 model->info.dir.c_str(), model->info.layout.c_str(), model->info.device.c_str(),
                 model->engine->context_length(), model->info.load_seconds);
  }
  ChatSession session(*model->engine, *model->tokenizer, co);
  LineReader reader(tty);
  ChatDisplay display;
  display.hide_reasoning = args->has("--hide-reasoning");
  display.color = isatty(STDOUT_FILENO);
  std::string prefix = args->get_or("--force-prefix", "");
  const std::optional<std::string> tool_cmd = args->get("--tool-cmd");
  TurnResult last;
  bool have_last = false;
  bool interrupted_once = false;

  ToolHandler handler = [&](const harmony::Message& call) -> std::optional<std::string> {
    const std::string name = call.recipient.value_or("?");
    if (tool_cmd) {
      auto out = run_tool_command(*tool_cmd, call.text());
      if (!out) {
        std::fprintf(stderr, "%s\n", out.status().message().c_str());
        return std::nullopt;
      }
      std::printf("← %s\n", out->c_str());
      std::fflush(stdout);
      return *out;
    }
    std::string result;
    const auto r = reader.read(fmt::format("result of {}> ", name), &result);
    if (r != LineReader::Result::kLine) return std::nullopt;
    return result;
  };

  while (true) {
    std::string line;
    const auto r = reader.read(">>> ", &line);
    if (r == LineReader::Result::kEof) {
      if (tty) std::fputs("\n", stdout);
      break;
    }
    if (r == LineReader::Result::kInterrupt) {
      if (interrupted_once) break;
      interrupted_once = true;
      std::fputs("(Ctrl-C again or Ctrl-D to exit, /bye to quit)\n", stdout);
      continue;
    }
    interrupted_once = false;
    std::string text = line;
    if (trim(line).rfind("\"\"\"", 0) == 0) {
      // Multi-line: everything up to a line ending with """.
      text = trim(line).substr(3);
      bool closed = false;
      if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\"\"\"") == 0) {
        text.resize(text.size() - 3);
        closed = true;
      }
      while (!closed) {
        std::string more;
        const auto rr = reader.read("... ", &more);
        if (rr != LineReader::Result::kLine) break;
        std::string t = more;
        while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
        if (t.size() >= 3 && t.compare(t.size() - 3, 3, "\"\"\"") == 0) {
          text += "\n" + t.substr(0, t.size() - 3);
          closed = true;
        } else {
          text += "\n" + more;
        }
      }
      if (!closed) continue;
      if (!text.empty() && text[0] == '\n') text.erase(0, 1);
      reader.remember(line);
    } else {
      reader.remember(line);
      const std::string t = trim(line);
      if (t.empty()) continue;
      if (t[0] == '/') {
        const size_t sp = t.find(' ');
        const std::string cmd = t.substr(0, sp);
        const std::string rest = sp == std::string::npos ? "" : trim(t.substr(sp + 1));
        if (cmd == "/bye" || cmd == "/exit" || cmd == "/quit") break;
        if (cmd == "/help" || cmd == "/?") {
          std::fputs(kHelp, stdout);
        } else if (cmd == "/clear") {
          session.clear();
          std::puts("Cleared session context");
        } else if (cmd == "/reasoning") {
          auto e = harmony::effort_from_name(rest);
          if (!e) {
            std::puts("usage: /reasoning low|medium|high");
          } else {
            session.options().effort = *e;
            std::printf("Set reasoning effort to '%s'.\n", std::string(harmony::effort_name(*e)).c_str());
          }
        } else if (cmd == "/system") {
          session.options().system = rest.empty() ? std::nullopt : std::optional<std::string>(rest);
          std::puts(rest.empty() ? "Reset the system message." : "Set system message.");
        } else if (cmd == "/developer") {
          session.options().developer = rest.empty() ? std::nullopt : std::optional<std::string>(rest);
          std::puts(rest.empty() ? "Cleared developer instructions." : "Set developer instructions.");
        } else if (cmd == "/set") {
          char name[64], value[64];
          if (std::sscanf(rest.c_str(), "parameter %63s %63s", name, value) != 2) {
            std::puts("usage: /set parameter NAME VALUE");
          } else if (Status st = set_parameter(session.options(), name, value); !st) {
            std::printf("%s\n", st.message().c_str());
          } else {
            std::printf("Set parameter '%s' to '%s'\n", name, value);
          }
        } else if (cmd == "/stats") {
          if (!have_last) {
            std::puts("No answer yet.");
          } else {
            std::fflush(stdout);
            print_timings(last, model->info.load_seconds);
          }
        } else {
          std::printf("Unknown command '%s'. Type /? for help\n", cmd.c_str());
        }
        std::fflush(stdout);
        continue;
      }
    }

    session.add_user(text);
    g_interrupted.store(false);
    last = session.respond(
        prefix, [&](const harmony::ParseEvent& e) { display.on_event(e); }, handler, true,
        [&](const StepResult& s) {
          if (!prompt_log) return;
          nlohmann::json j = {{"prompt_ids", s.prompt_ids}, {"completion_ids", s.completion_ids},
                              {"finish_reason", engine::finish_reason_name(s.reason)}};
          *prompt_log << j.dump() << "\n";
          prompt_log->flush();
        });
    have_last = true;
    prefix.clear();
    display.end_answer();
    if (last.finish_reason == "cancelled") std::puts("[stopped]");
    if (last.finish_reason == "length") std::puts("[max tokens reached]");
    if (last.finish_reason == "context_full" || last.finish_reason == "error")
      std::printf("%s\n", last.error.c_str());
    // Nothing was generated (e.g. the history no longer fits): forget the question, so that the
    // user can /clear or ask something shorter.
    if (last.finish_reason == "error" && last.steps.empty()) session.drop_last_message();
    std::fflush(stdout);
    if (verbose && !last.steps.empty()) print_timings(last, -1);
    g_interrupted.store(false);
  }
  return 0;
}

}  // namespace gptoss::cli
