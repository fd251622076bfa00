// `gptoss serve`: the OpenAI API (/v1/chat/completions, /v1/responses, /v1/completions,
// /v1/models), the Ollama API (/api/chat, /api/generate, /api/tags, /api/show, /api/version),
// /health and /metrics, over one Engine. HTTP threads parse JSON, render harmony prompts and parse
// the model's output; the engine thread only runs the model.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

namespace gptoss::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (see Server::port())
  std::string api_key;  // non-empty: every route but /health needs "Authorization: Bearer KEY"
  std::string model_id = "gpt-oss";        // the name /v1/models lists
  std::vector<std::string> model_aliases;  // other names requests may use
  size_t max_body_bytes = 8u << 20;
  int max_active_requests = 64;  // generations in flight; beyond that 429 + Retry-After
  int retry_after_s = 1;
  int http_threads = 0;          // 0: max_active_requests + 8
  std::string current_date;      // harmony "Current date"; empty: today (UTC)
  nlohmann::ordered_json model_info = nlohmann::ordered_json::object();  // for /api/show
  size_t model_size_bytes = 0;
  size_t max_stored_responses = 1024;  // /v1/responses store=true
};

class Server {
 public:
  Server(ServerConfig config, engine::Engine& engine, std::shared_ptr<const Tokenizer> tokenizer);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket (host, port); fails with a message naming the address.
  Status bind();
  int port() const;
  // Serves until stop() is called (from another thread or a signal handler thread).
  Status run();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptoss::server
