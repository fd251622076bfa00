// One engine request seen from an HTTP thread: submit, then pull token events as they come, and
// cancel when the client goes away. The engine's sink only appends to a queue and signals, so the
// engine thread never waits on HTTP work.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/engine.h"

namespace gptoss::server {

class Generation {
 public:
  // Submits `request`; on failure returns the engine's Status.
  static Expected<std::unique_ptr<Generation>> start(engine::Engine& engine,
                                                     engine::GenerationRequest request);
  ~Generation();  // cancels the request unless it finished
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Moves the pending events into `out` (appending); waits up to `timeout` for at least one.
  // Returns false when nothing came in time.
  bool wait(std::vector<engine::TokenEvent>* out, std::chrono::milliseconds timeout);
  void cancel();
  bool finished() const;  // the final event was taken by wait()
  engine::RequestId id() const { return id_; }
  int prompt_tokens() const { return prompt_tokens_; }
  std::chrono::steady_clock::time_point submitted_at() const { return submitted_; }

 private:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<engine::TokenEvent> events;
  };
  Generation() = default;
  engine::Engine* engine_ = nullptr;
  engine::RequestId id_ = 0;
  std::shared_ptr<Shared> shared_;
  bool finished_ = false;
  bool cancelled_ = false;
  int prompt_tokens_ = 0;
  std::chrono::steady_clock::time_point submitted_;
};

}  // namespace gptoss::server
