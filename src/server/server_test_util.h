// Test fixture pieces: a Server on a free local port over a ScriptedEngine, and SSE helpers.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/scripted_engine_test_util.h"
#include "server/server.h"

namespace gptoss::server::testing {

using ojson = nlohmann::ordered_json;

struct TestServer {
  explicit TestServer(ServerConfig cfg = {}, int context_length = 4096, int max_live = 64)
      : engine(context_length, max_live) {
    auto tok = Tokenizer::builtin();
    if (!tok) throw std::runtime_error(tok.status().message());
    tokenizer = *tok;
    cfg.port = 0;
    if (cfg.model_id == "gpt-oss") cfg.model_id = "test-model";
    if (cfg.current_date.empty()) cfg.current_date = "2026-01-02";
    server = std::make_unique<Server>(cfg, engine, tokenizer);
    Status st = server->bind();
    if (!st) throw std::runtime_error(st.message());
    thread = std::thread([this] { (void)server->run(); });
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(20);
    for (int i = 0; i < 200; ++i) {
      if (client->Get("/health")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~TestServer() {
    server->stop();
    thread.join();
  }

  // Makes the engine emit `text` (special tokens allowed) for every request.
  void script_text(const std::string& text) {
    auto ids = tokenizer->encode_with_special(text);
    engine.set_script([ids](const std::vector<uint32_t>&) { return ids; });
  }
  void script_ids(std::vector<uint32_t> ids) {
    engine.set_script([ids](const std::vector<uint32_t>&) { return ids; });
  }

  httplib::Result post(const std::string& path, const ojson& body,
                       const httplib::Headers& headers = {}) {
    return client->Post(path.c_str(), headers, body.dump(), "application/json");
  }

  ScriptedEngine engine;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::unique_ptr<Server> server;
  std::thread thread;
  std::unique_ptr<httplib::Client> client;
};

// The JSON payloads of "data: ..." lines (without [DONE]); sets *done if [DONE] was seen.
inline std::vector<ojson> sse_payloads(const std::string& body, bool* done = nullptr) {
  std::vector<ojson> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    std::string line = body.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("data: ", 0) != 0) continue;
    std::string data = line.substr(6);
    if (data == "[DONE]") {
      if (done) *done = true;
      continue;
    }
    out.push_back(ojson::parse(data));
  }
  return out;
}

}  // namespace gptoss::server::testing
