#include "server/generation.h"

namespace gptoss::server {

Expected<std::unique_ptr<Generation>> Generation::start(engine::Engine& engine,
                                                        engine::GenerationRequest request) {
  std::unique_ptr<Generation> g(new Generation());
  g->engine_ = &engine;
  g->shared_ = std::make_shared<Shared>();
  g->prompt_tokens_ = static_cast<int>(request.prompt.size());
  g->submitted_ = std::chrono::steady_clock::now();
  std::shared_ptr<Shared> shared = g->shared_;
  auto id = engine.submit(std::move(request), [shared](const engine::TokenEvent& ev) {
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      shared->events.push_back(ev);
    }
    shared->cv.notify_one();
  });
  if (!id) return id.status();
  g->id_ = *id;
  return g;
}

Generation::~Generation() {
  if (!finished_) cancel();
}

void Generation::cancel() {
  if (cancelled_ || finished_) return;
  cancelled_ = true;
  engine_->cancel(id_);
}

bool Generation::finished() const { return finished_; }

bool Generation::wait(std::vector<engine::TokenEvent>* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(shared_->mu);
  if (!shared_->cv.wait_for(lock, timeout, [&] { return !shared_->events.empty(); })) return false;
  while (!shared_->events.empty()) {
    const engine::TokenEvent& ev = shared_->events.front();
    if (ev.finished) finished_ = true;
    out->push_back(std::move(shared_->events.front()));
    shared_->events.pop_front();
  }
  return true;
}

}  // namespace gptoss::server
