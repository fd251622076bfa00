#include "engine/scheduler.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "engine/sampler.h"

namespace gptoss::engine {
namespace {

struct Sequence {
  RequestId id = 0;
  GenerationRequest request;
  TokenSink sink;
  std::unique_ptr<Sampler> sampler;
  int kv = -1;              // runner sequence
  size_t prefilled = 0;     // prompt tokens already in the KV cache
  int generated = 0;
  uint32_t next_input = 0;  // the sampled token to feed on the next decode step
  bool decoding = false;
};

class SchedulerEngine final : public Engine {
 public:
  SchedulerEngine(std::shared_ptr<Runner> runner, const SchedulerOptions& opt)
      : runner_(std::move(runner)), opt_(opt) {
    int threads = opt_.sample_threads;
    if (const char* env = std::getenv("GPTOSS_SAMPLE_THREADS"); threads == 0 && env != nullptr && *env != '\0')
      threads = std::atoi(env);
    if (threads <= 0) threads = static_cast<int>(std::min(8u, std::max(1u, std::thread::hardware_concurrency())));
    sample_threads_ = static_cast<size_t>(threads);
    thread_ = std::thread([this] { loop(); });
  }
  ~SchedulerEngine() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Expected<RequestId> submit(GenerationRequest request, TokenSink sink) override {
    std::vector<GenerationRequest> requests;
    std::vector<TokenSink> sinks;
    requests.push_back(std::move(request));
    sinks.push_back(std::move(sink));
    GPTOSS_ASSIGN_OR_RETURN(std::vector<RequestId> ids, submit_all(std::move(requests), std::move(sinks)));
    return ids[0];
  }

  Expected<std::vector<RequestId>> submit_all(std::vector<GenerationRequest> requests,
                                              std::vector<TokenSink> sinks) override {
    if (requests.size() != sinks.size()) return Error("submit_all: {} requests but {} sinks", requests.size(), sinks.size());
    for (const GenerationRequest& request : requests) GPTOSS_RETURN_IF_ERROR(validate(request));
    std::lock_guard<std::mutex> lk(mu_);
    // Only requests beyond the free running slots wait: with max_queued 0 a request that can
    // start at once is still accepted.
    const int free_slots = std::max(0, opt_.max_running - running_count_);
    if (static_cast<int>(pending_.size() + requests.size()) > opt_.max_queued + free_slots)
      return Error("the queue is full ({} requests waiting)",
                   std::max(0, static_cast<int>(pending_.size()) - free_slots));
    std::vector<RequestId> ids;
    for (size_t i = 0; i < requests.size(); ++i) {
      auto seq = std::make_unique<Sequence>();
      seq->id = ++next_id_;
      seq->sampler = std::make_unique<Sampler>(requests[i].sampling, requests[i].prompt);
      seq->request = std::move(requests[i]);
      seq->sink = std::move(sinks[i]);
      ids.push_back(seq->id);
      stats_.requests_total++;
      pending_.push_back(std::move(seq));
    }
    cv_.notify_all();
    return ids;
  }

  void cancel(RequestId id) override {
    std::lock_guard<std::mutex> lk(mu_);
    cancelled_.push_back(id);
    cv_.notify_all();
  }

  EngineStats stats() const override {
    std::lock_guard<std::mutex> lk(mu_);
    EngineStats s = stats_;
    s.queued = static_cast<int>(pending_.size());
    s.running = running_count_;
    return s;
  }

  int context_length() const override { return runner_->context_length(); }

 private:
  Status validate(const GenerationRequest& request) const {
    const int ctx = runner_->context_length();
    if (request.prompt.empty()) return Error("the prompt is empty");
    const long long need = static_cast<long long>(request.prompt.size()) +
                           std::max(request.max_tokens, 0);
    if (need > ctx) {
      return Error("prompt ({} tokens) plus max_tokens ({}) exceeds the context length of {} tokens",
                   request.prompt.size(), std::max(request.max_tokens, 0), ctx);
    }
    for (uint32_t t : request.prompt) {
      if (static_cast<int>(t) >= runner_->vocab_size())
        return Error("prompt token {} is outside the vocabulary ({} ids)", t, runner_->vocab_size());
    }
    return Status::ok();
  }

  void finish(Sequence& s, FinishReason reason, const std::string& error = {}) {
    TokenEvent ev;
    ev.finished = true;
    ev.reason = reason;
    ev.error = error;
    // Free before telling: a caller that saw the last event finds the KV slot free.
    if (s.kv >= 0) runner_->free_sequence(s.kv);
    s.kv = -1;
    s.sink(ev);
  }

  // KV positions a request may fill: its prompt and up to max_tokens generated (unlimited: the
  // context), at most the context.
  int kv_tokens(const GenerationRequest& r) const {
    const long long ctx = runner_->context_length();
    const long long gen = r.max_tokens >= 0 ? r.max_tokens : ctx;
    return static_cast<int>(std::min(ctx, static_cast<long long>(r.prompt.size()) + gen));
  }

  // Pull new requests and cancellations in (under the lock), then admit what fits.
  bool take_work(std::vector<std::unique_ptr<Sequence>>& running) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] {
      return stopping_ || !pending_.empty() || !cancelled_.empty() || !running.empty();
    });
    if (stopping_) return false;
    std::vector<RequestId> cancels;
    cancels.swap(cancelled_);
    // Cancel queued requests without running them.
    for (RequestId id : cancels) {
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if ((*it)->id == id) {
          auto s = std::move(*it);
          pending_.erase(it);
          lk.unlock();
          finish(*s, FinishReason::kCancelled);
          lk.lock();
          break;
        }
      }
    }
    // Admitted in arrival order while a running slot is free and the runner can promise the request
    // the KV memory it may grow to (paged caches); otherwise the front request waits for running
    // sequences to return pages, and later ones do not overtake it.
    std::vector<std::unique_ptr<Sequence>> admitted;
    std::vector<std::pair<std::unique_ptr<Sequence>, std::string>> refused;
    while (!pending_.empty() && static_cast<int>(running.size() + admitted.size()) < opt_.max_running) {
      const int need = kv_tokens(pending_.front()->request);
      const Status never = runner_->can_ever_fit(need);
      if (never.is_ok() && !runner_->can_start(need) && !(running.empty() && admitted.empty())) break;
      auto s = std::move(pending_.front());
      pending_.pop_front();
      // With nothing running every page is free: what cannot start then fails with the reason.
      auto kv = never.is_ok() ? runner_->start_sequence(need) : Expected<int>(never);
      if (!kv) {
        refused.emplace_back(std::move(s), kv.status().message());
        continue;
      }
      s->kv = *kv;
      admitted.push_back(std::move(s));
    }
    // Counted as running from the moment they leave the queue, so that submit() never sees them
    // in neither place.
    running_count_ = static_cast<int>(running.size() + admitted.size());
    lk.unlock();
    // Sequences that end here are told only after the running count no longer includes them, so
    // that a caller that saw its last event can submit again at once.
    struct Ended {
      std::unique_ptr<Sequence> seq;
      FinishReason reason;
      std::string error;
    };
    std::vector<Ended> ended;
    for (RequestId id : cancels) {
      for (auto& s : running) {
        if (s && s->id == id) ended.push_back({std::move(s), FinishReason::kCancelled, {}});
      }
    }
    for (auto& [s, why] : refused) ended.push_back({std::move(s), FinishReason::kError, why});
    for (auto& s : admitted) running.push_back(std::move(s));
    running.erase(std::remove(running.begin(), running.end(), nullptr), running.end());
    for (auto& e : ended) {
      if (e.seq->kv >= 0) runner_->free_sequence(e.seq->kv);
      e.seq->kv = -1;
    }
    {
      std::lock_guard<std::mutex> lk2(mu_);
      running_count_ = static_cast<int>(running.size());
    }
    for (auto& e : ended) finish(*e.seq, e.reason, e.error);
    return true;
  }

  // Samples the logits rows of the step (sampled_[i] for each piece with a row and no token): on the
  // engine thread when few rows, else split over up to sample_threads threads (each sequence has
  // its own sampler and generator, so the tokens do not depend on the split).
  void sample_rows(const std::vector<Sequence*>& owners, const std::vector<PieceOutput>& want, const StepOutput& out,
                   int vocab) {
    sampled_.assign(owners.size(), 0);
    host_rows_.clear();
    for (size_t i = 0; i < owners.size(); ++i) {
      if (want[i] != PieceOutput::kNone && out.tokens[i] < 0 && out.rows[i] != nullptr) host_rows_.push_back(i);
    }
    auto run = [&](size_t begin, size_t end) {
      for (size_t k = begin; k < end; ++k) {
        const size_t i = host_rows_[k];
        sampled_[i] = owners[i]->sampler->sample(out.rows[i], vocab);
      }
    };
    constexpr size_t kRowsPerThread = 4;
    const size_t threads = std::min<size_t>(sample_threads_, host_rows_.size() / kRowsPerThread);
    if (threads <= 1) {
      run(0, host_rows_.size());
      return;
    }
    std::vector<std::thread> pool;
    const size_t per = (host_rows_.size() + threads - 1) / threads;
    for (size_t t = 1; t < threads; ++t) {
      const size_t b = std::min(host_rows_.size(), t * per), e = std::min(host_rows_.size(), b + per);
      if (b < e) pool.emplace_back(run, b, e);
    }
    run(0, std::min(host_rows_.size(), per));
    for (auto& th : pool) th.join();
  }

  void loop() {
    std::vector<std::unique_ptr<Sequence>> running;
    std::vector<PieceOutput> want;
    StepOutput out;
    size_t rr = 0;  // round-robin start for prefill chunks, so long prompts share fairly
    for (;;) {
      if (!take_work(running)) break;
      if (running.empty()) continue;
      std::vector<BatchPiece> pieces;
      std::vector<Sequence*> owners;
      int budget = opt_.prefill_chunk_tokens;
      want.clear();
      // A piece that yields a token needs only the runner's greedy id when its sampler would pick
      // the argmax anyway (picks_argmax), else its logits row.
      auto output_of = [this](const Sequence& s) {
        return opt_.device_greedy && s.sampler->picks_argmax() ? PieceOutput::kGreedy : PieceOutput::kLogits;
      };
      for (auto& s : running) {
        if (s->decoding) {
          pieces.push_back({s->kv, {s->next_input}});
          owners.push_back(s.get());
          want.push_back(output_of(*s));
        }
      }
      for (size_t k = 0; k < running.size() && budget > 0; ++k) {
        Sequence* s = running[(rr + k) % running.size()].get();
        if (s->decoding) continue;
        size_t left = s->request.prompt.size() - s->prefilled;
        size_t take = std::min<size_t>(left, static_cast<size_t>(budget));
        BatchPiece p{s->kv, {}};
        p.tokens.assign(s->request.prompt.begin() + s->prefilled,
                        s->request.prompt.begin() + s->prefilled + take);
        pieces.push_back(std::move(p));
        owners.push_back(s);
        want.push_back(take == left ? output_of(*s) : PieceOutput::kNone);
        budget -= static_cast<int>(take);
      }
      rr++;
      Status st = runner_->forward_step(pieces, want, &out);
      const int vocab = runner_->vocab_size();
      if (st.is_ok() && (out.tokens.size() != pieces.size() || out.rows.size() != pieces.size()))
        st = Error("the runner answered {} of {} pieces", std::min(out.tokens.size(), out.rows.size()), pieces.size());
      if (st.is_ok()) sample_rows(owners, want, out, vocab);
      uint64_t prompt_tokens = 0, generated_tokens = 0;
      std::vector<std::pair<Sequence*, TokenEvent>> events;
      for (size_t i = 0; i < owners.size(); ++i) {
        Sequence& s = *owners[i];
        if (!st.is_ok()) {
          TokenEvent ev;
          ev.finished = true;
          ev.reason = FinishReason::kError;
          ev.error = st.message();
          events.emplace_back(&s, ev);
          continue;
        }
        if (!s.decoding) {
          s.prefilled += pieces[i].tokens.size();
          prompt_tokens += pieces[i].tokens.size();
          if (s.prefilled < s.request.prompt.size()) continue;  // more prompt next step
          s.decoding = true;
        }
        const int32_t given = out.tokens[i];
        if ((given < 0 && out.rows[i] == nullptr) || given >= vocab) {
          TokenEvent ev;
          ev.finished = true;
          ev.reason = FinishReason::kError;
          ev.error = given >= vocab ? fmt::format("the runner returned token {} outside the vocabulary ({} ids)", given, vocab)
                                    : std::string("the runner returned no output for a sequence");
          events.emplace_back(&s, ev);
          continue;
        }
        const uint32_t tok = given >= 0 ? static_cast<uint32_t>(given) : sampled_[i];
        s.sampler->accept(tok);
        s.generated++;
        generated_tokens++;
        TokenEvent ev;
        ev.token = tok;
        ev.has_token = true;
        const bool is_stop = std::find(s.request.stop_tokens.begin(), s.request.stop_tokens.end(),
                                       tok) != s.request.stop_tokens.end();
        const size_t used = s.request.prompt.size() + static_cast<size_t>(s.generated);
        if (is_stop) {
          ev.finished = true;
          ev.reason = FinishReason::kStop;
        } else if (s.request.max_tokens >= 0 && s.generated >= s.request.max_tokens) {
          ev.finished = true;
          ev.reason = FinishReason::kLength;
        } else if (used >= static_cast<size_t>(runner_->context_length())) {
          ev.finished = true;
          ev.reason = FinishReason::kContextFull;
        }
        s.next_input = tok;
        events.emplace_back(&s, ev);
      }
      // Free finished sequences and count before telling anyone, so a caller that saw its last
      // event also sees the memory and the statistics settled.
      for (auto& [s, ev] : events) {
        if (ev.finished) {
          runner_->free_sequence(s->kv);
          s->kv = -1;
        }
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.prompt_tokens_total += prompt_tokens;
        stats_.generated_tokens_total += generated_tokens;
        running_count_ = static_cast<int>(std::count_if(
            running.begin(), running.end(), [](const std::unique_ptr<Sequence>& s) { return s->kv >= 0; }));
      }
      for (auto& [s, ev] : events) s->sink(ev);
      running.erase(std::remove_if(running.begin(), running.end(),
                                   [](const std::unique_ptr<Sequence>& s) { return s->kv < 0; }),
                    running.end());
      std::lock_guard<std::mutex> lk(mu_);
      running_count_ = static_cast<int>(running.size());
    }
    for (auto& s : running) finish(*s, FinishReason::kCancelled);
    std::deque<std::unique_ptr<Sequence>> rest;
    {
      std::lock_guard<std::mutex> lk(mu_);
      rest.swap(pending_);
    }
    for (auto& s : rest) finish(*s, FinishReason::kCancelled);
  }

  std::shared_ptr<Runner> runner_;
  SchedulerOptions opt_;
  size_t sample_threads_ = 1;
  std::vector<uint32_t> sampled_;  // engine thread: this step's host-sampled tokens, by piece
  std::vector<size_t> host_rows_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> pending_;
  std::vector<RequestId> cancelled_;
  bool stopping_ = false;
  RequestId next_id_ = 0;
  EngineStats stats_;
  int running_count_ = 0;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Engine> create_engine(std::shared_ptr<Runner> runner,
                                      const SchedulerOptions& options) {
  return std::make_unique<SchedulerEngine>(std::move(runner), options);
}

}  // namespace gptoss::engine
