// A test double for engine::Engine: every request "generates" the token ids a script gives for its
// prompt, one every `delay`, on its own engine thread, honouring max_tokens, stop tokens, cancel
// and a queue limit. It lets the server tests drive exact token sequences (from openai-harmony
// goldens) through the real HTTP, harmony-parsing and streaming code.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/engine.h"

namespace gptoss::server::testing {

class ScriptedEngine : public engine::Engine {
 public:
  using Script = std::function<std::vector<uint32_t>(const std::vector<uint32_t>& prompt)>;

  ScriptedEngine(int context_length, int max_live) : ctx_(context_length), max_live_(max_live) {
    thread_ = std::thread([this] { loop(); });
  }
  ~ScriptedEngine() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void set_script(Script s) {
    std::lock_guard<std::mutex> lock(mu_);
    script_ = std::move(s);
  }
  void set_delay(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = d;
  }

  Expected<engine::RequestId> submit(engine::GenerationRequest request,
                                     engine::TokenSink sink) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(live_.size()) >= max_live_) {
      return Error("the queue is full ({} requests waiting)", live_.size());
    }
    if (static_cast<int64_t>(request.prompt.size()) + request.max_tokens > ctx_) {
      return Error("prompt plus max_tokens exceeds the context length of {} tokens", ctx_);
    }
    Live l;
    l.id = ++next_id_;
    l.tokens = script_ ? script_(request.prompt) : std::vector<uint32_t>{};
    l.request = std::move(request);
    l.sink = std::move(sink);
    prompts_.push_back(l.request.prompt);
    live_.push_back(std::move(l));
    cv_.notify_all();
    return live_.back().id;
  }

  void cancel(engine::RequestId id) override {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_++;
    for (auto& l : live_) {
      if (l.id == id) l.cancelled = true;
    }
    cv_.notify_all();
  }

  engine::EngineStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    engine::EngineStats s;
    s.requests_total = next_id_;
    s.running = static_cast<int>(live_.size());
    return s;
  }
  int context_length() const override { return ctx_; }

  int cancels() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cancels_;
  }
  int live() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(live_.size());
  }
  std::vector<uint32_t> last_prompt() const {
    std::lock_guard<std::mutex> lock(mu_);
    return prompts_.empty() ? std::vector<uint32_t>{} : prompts_.back();
  }

 private:
  struct Live {
    engine::RequestId id = 0;
    engine::GenerationRequest request;
    engine::TokenSink sink;
    std::vector<uint32_t> tokens;
    size_t next = 0;
    bool cancelled = false;
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!quit_) {
      if (live_.empty()) {
        cv_.wait(lock);
        continue;
      }
      for (auto it = live_.begin(); it != live_.end();) {
        engine::TokenEvent ev;
        Live& l = *it;
        if (l.cancelled) {
          ev.finished = true;
          ev.reason = engine::FinishReason::kCancelled;
        } else if (l.next >= l.tokens.size()) {
          ev.finished = true;
          ev.reason = engine::FinishReason::kContextFull;
        } else {
          ev.has_token = true;
          ev.token = l.tokens[l.next++];
          bool stop = false;
          for (uint32_t t : l.request.stop_tokens) stop = stop || t == ev.token;
          if (stop) {
            ev.finished = true;
            ev.reason = engine::FinishReason::kStop;
          } else if (l.request.max_tokens > 0 &&
                     static_cast<int>(l.next) >= l.request.max_tokens) {
            ev.finished = true;
            ev.reason = engine::FinishReason::kLength;
          }
        }
        l.sink(ev);
        it = ev.finished ? live_.erase(it) : std::next(it);
      }
      cv_.wait_for(lock, delay_);
    }
  }

  const int ctx_;
  const int max_live_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<Live> live_;
  std::vector<std::vector<uint32_t>> prompts_;
  Script script_;
  std::chrono::milliseconds delay_{1};
  engine::RequestId next_id_ = 0;
  int cancels_ = 0;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace gptoss::server::testing
