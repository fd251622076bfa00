// gptoss serve MODEL: the OpenAI- and Ollama-compatible HTTP server (src/server/) over the
// continuous-batching engine (src/engine/) running the model on a backend.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/model_runner.h"
#include "engine/scheduler.h"
#include "model/model_files.h"
#include "server/server.h"

namespace gptoss::cli {

namespace {

constexpr const char* kUsage =
    "usage: gptoss serve MODEL [options]\n"
    "  MODEL                 model directory (HF layout, original/, or a parent of original/)\n"
    "  --host H              address to bind (default 127.0.0.1: this machine only)\n"
    "  --port P              port (default 8000; 0 picks a free one and prints it)\n"
    "  --api-key K           require 'Authorization: Bearer K' on every route but /health\n"
    "                        (default: $GPTOSS_API_KEY; empty: no auth)\n"
    "  --model-name NAME     the model id clients use (default: the directory name)\n"
    "  --alias NAME          another accepted model name (repeatable)\n"
    "  --ctx N               context length per sequence (default 8192, at most the model's)\n"
    "  --max-running N       sequences decoding at once (default 16)\n"
    "  --kv-tokens N         KV cache pool in tokens, shared by all running sequences (default:\n"
    "                        max-running x ctx); a request waits until the pool can hold its prompt\n"
    "                        plus max_tokens (the context when unset)\n"
    "  --max-queue N         requests waiting for a slot before 429 (default 64)\n"
    "  --max-active N        requests in flight before 429 (default: running + queue)\n"
    "  --max-body-bytes N    request body limit (default 8 MiB)\n"
    "  --max-memory B        refuse to start when the KV cache and activations need more than B\n"
    "                        bytes (e.g. 24G; default: the memory available, on cpu)\n"
    "  --device D            auto (default: cuda when a GPU is usable, else cpu-fast), cpu (exact f32), cpu-fast or cuda\n"
    "  --threads N           cpu threads for the model (default: all)\n"
    "  --dense-weights S     bf16 (default) or q8: attention and unembedding as Q8_0 blocks (cpu, cpu-fast)\n"
    "  --current-date D      harmony 'Current date' (YYYY-MM-DD; default: today, UTC)\n";

}  // namespace

int cmd_serve(const std::vector<std::string>& argv) {
  ArgSpec spec;
  spec.flags = {"--help"};
  spec.options = {"--host", "--port", "--api-key", "--model-name", "--alias", "--ctx",
                  "--max-running", "--kv-tokens", "--max-queue", "--max-active", "--max-body-bytes", "--max-memory", "--threads", "--device",
                  "--current-date", "--dense-weights"};
  auto args = Args::parse(argv, spec);
  if (!args) return fail("serve", args.status().message() + "\n" + kUsage, 2);
  if (args->has("--help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (args->positional().size() != 1) return fail("serve", std::string("expected MODEL\n") + kUsage, 2);
  const std::string model_dir = args->positional()[0];

  auto port = args->get_int("--port", 8000);
  auto ctx_arg = args->get_int("--ctx", 0);
  auto max_running = args->get_int("--max-running", 16);
  auto max_queue = args->get_int("--max-queue", 64);
  auto max_active = args->get_int("--max-active", 0);
  auto max_body = args->get_int("--max-body-bytes", 8 << 20);
  auto threads = args->get_int("--threads", 0);
  auto kv_tokens = args->get_int("--kv-tokens", 0);
  for (const auto* v : {&port, &ctx_arg, &max_running, &max_queue, &max_active, &max_body, &threads, &kv_tokens}) {
    if (!*v) return fail("serve", v->status().message(), 2);
  }
  if (*port < 0 || *port > 65535) return fail("serve", fmt::format("--port {} is out of range", *port), 2);
  if (*max_running < 1 || *max_queue < 0 || *max_active < 0 || *max_body < 1024 || *ctx_arg < 0 ||
      *kv_tokens < 0 || *kv_tokens > (int64_t{1} << 31)) {
    return fail("serve", "--max-running must be >= 1; --max-queue, --max-active, --ctx >= 0; "
                         "--max-body-bytes >= 1024; --kv-tokens in [0, 2^31]", 2);
  }

  // Signals are handled by one thread (sigwait) so the server stops cleanly; block them before
  // any thread (backend, engine, HTTP pool) starts, so that every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // The tokenizer and the weight size come from the model directory; the runner loads the model.
  size_t weight_bytes = 0;
  std::shared_ptr<const Tokenizer> tokenizer;
  {
    auto files = open_model_dir(model_dir);
    if (!files) return fail("serve", files.status().message());
    weight_bytes = files->tensors.total_bytes();
    auto tok = Tokenizer::from_model_dir(files->dir);
    if (!tok) return fail("serve", tok.status().message());
    tokenizer = *tok;
  }

  engine::LoadOptions lo;
  lo.device = args->get_or("--device", "auto");
  lo.threads = static_cast<int>(*threads);
  lo.max_sequences = static_cast<int>(*max_running);
  lo.context = *ctx_arg > 0 ? static_cast<int>(*ctx_arg) : 8192;
  lo.kv_tokens = *kv_tokens;
  auto max_memory = args->get_bytes("--max-memory", 0);
  if (!max_memory) return fail("serve", max_memory.status().message(), 2);
  lo.max_memory = *max_memory;
  lo.fit_hint = *kv_tokens > 0 ? "--kv-tokens" : "--ctx or --max-running";
  auto dense = parse_dense_weights(args->get_or("--dense-weights", "bf16"));
  if (!dense) return fail("serve", dense.status().message(), 2);
  lo.dense_weights = *dense;
  engine::LoadedModelInfo info;
  auto runner = engine::load_runner(model_dir, lo, &info);
  if (!runner) return fail("serve", runner.status().message());
  const ModelConfig& config = info.config;
  const int ctx = (*runner)->context_length();
  engine::SchedulerOptions so;
  so.max_running = static_cast<int>(*max_running);
  so.max_queued = static_cast<int>(*max_queue);
  std::unique_ptr<engine::Engine> engine = engine::create_engine(*runner, so);

  server::ServerConfig sc;
  sc.host = args->get_or("--host", "127.0.0.1");
  sc.port = static_cast<int>(*port);
  const char* env_key = std::getenv("GPTOSS_API_KEY");
  sc.api_key = args->get_or("--api-key", env_key ? env_key : "");
  std::string dir_name = std::filesystem::path(model_dir).lexically_normal().filename().string();
  if (dir_name.empty()) dir_name = std::filesystem::path(model_dir).parent_path().filename().string();
  sc.model_id = args->get_or("--model-name", dir_name.empty() ? "gpt-oss" : dir_name);
  sc.model_aliases = args->get_all("--alias");
  sc.max_body_bytes = static_cast<size_t>(*max_body);
  sc.max_active_requests = *max_active > 0 ? static_cast<int>(*max_active)
                                           : static_cast<int>(*max_running + *max_queue);
  sc.current_date = args->get_or("--current-date", "");
  sc.model_size_bytes = weight_bytes;
  sc.model_info = {{"gptoss.block_count", config.num_layers},
                   {"gptoss.embedding_length", config.hidden_size},
                   {"gptoss.expert_count", config.num_experts},
                   {"gptoss.expert_used_count", config.experts_per_token}};

  if (sc.api_key.empty() && sc.host != "127.0.0.1" && sc.host != "localhost" && sc.host != "::1") {
    std::fprintf(stderr, "gptoss serve: warning: listening on %s without an API key; anyone who "
                         "can reach this address can use the model (set --api-key or "
                         "GPTOSS_API_KEY)\n", sc.host.c_str());
  }
  server::Server server(sc, *engine, tokenizer);
  Status st = server.bind();
  if (!st) return fail("serve", st.message());
  std::printf("gptoss serve: listening on http://%s:%d (model %s on %s, context %d, %d running + "
              "%d queued)\n", sc.host.c_str(), server.port(), sc.model_id.c_str(),
              info.device.c_str(), ctx, static_cast<int>(*max_running),
              static_cast<int>(*max_queue));
  std::fflush(stdout);
  std::atomic<bool> signalled{false};
  std::atomic<bool> stopped{false};
  std::thread waiter([&set, &server, &signalled, &stopped] {
    int sig = 0;
    sigwait(&set, &sig);
    if (stopped) return;
    signalled = true;
    server.stop();
    // Idle keep-alive connections can hold the HTTP pool for a few seconds; do not make the
    // user wait for them.
    for (int i = 0; i < 30 && !stopped; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!stopped) std::_Exit(0);
  });
  st = server.run();
  stopped = true;
  // run() returned without a signal (an error): wake the waiter so it can exit.
  if (!signalled) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (!st) return fail("serve", st.message());
  return 0;
}

}  // namespace gptoss::cli
