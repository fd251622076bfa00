#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "engine/token_collector_test_util.h"

namespace gptoss::engine {
namespace {

// A deterministic model: the next token is (sum of the sequence's tokens) mod vocab, so any mix-up
// of sequences, positions or batch rows changes the output.
class CountingRunner : public Runner {
 public:
  explicit CountingRunner(int ctx, int max_seqs = 64) : ctx_(ctx), max_seqs_(max_seqs) {}
  int vocab_size() const override { return 97; }
  int context_length() const override { return ctx_; }
  Expected<int> new_sequence() override {
    std::lock_guard<std::mutex> lk(mu_);
    if (static_cast<int>(seqs_.size()) >= max_seqs_) return Error("no KV memory left");
    int id = next_++;
    seqs_[id] = {};
    return id;
  }
  void free_sequence(int s) override {
    std::lock_guard<std::mutex> lk(mu_);
    seqs_.erase(s);
    freed_++;
  }
  Status forward(const std::vector<BatchPiece>& pieces, std::vector<float>* logits) override {
    // The first step is slow, as a real prefill is, so the requests submitted meanwhile batch up.
    if (first_.exchange(false)) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::lock_guard<std::mutex> lk(mu_);
    logits->assign(pieces.size() * 97, 0.0f);
    max_batch_ = std::max(max_batch_, pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) {
      auto it = seqs_.find(pieces[i].sequence);
      if (it == seqs_.end()) return Error("unknown sequence {}", pieces[i].sequence);
      for (uint32_t t : pieces[i].tokens) it->second.push_back(t);
      if (static_cast<int>(it->second.size()) > ctx_) return Error("context overflow");
      uint64_t sum = 0;
      for (uint32_t t : it->second) sum += t;
      (*logits)[i * 97 + sum % 97] = 10.0f;
    }
    return Status::ok();
  }
  static std::vector<uint32_t> expected(std::vector<uint32_t> prompt, int n) {
    std::vector<uint32_t> out;
    for (int i = 0; i < n; ++i) {
      uint64_t sum = 0;
      for (uint32_t t : prompt) sum += t;
      out.push_back(static_cast<uint32_t>(sum % 97));
      prompt.push_back(out.back());
    }
    return out;
  }
  int live() {
    std::lock_guard<std::mutex> lk(mu_);
    return static_cast<int>(seqs_.size());
  }
  size_t max_batch() {
    std::lock_guard<std::mutex> lk(mu_);
    return max_batch_;
  }

 private:
  int ctx_, max_seqs_;
  std::mutex mu_;
  std::map<int, std::vector<uint32_t>> seqs_;
  int next_ = 0, freed_ = 0;
  size_t max_batch_ = 0;
  std::atomic<bool> first_{true};
};

using testing::Collector;

GenerationRequest greedy(std::vector<uint32_t> prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  return r;
}

TEST(Scheduler, ManyConcurrentSequencesEachGetTheirOwnContinuation) {
  auto runner = std::make_shared<CountingRunner>(4096);
  SchedulerOptions opt;
  opt.max_running = 8;
  opt.prefill_chunk_tokens = 7;  // forces chunked prefill interleaved with decode
  auto engine = create_engine(runner, opt);
  std::vector<std::unique_ptr<Collector>> cs;
  std::vector<std::vector<uint32_t>> prompts;
  for (int i = 0; i < 20; ++i) {
    std::vector<uint32_t> p;
    for (int j = 0; j <= i * 3; ++j) p.push_back(static_cast<uint32_t>((i * 31 + j * 7) % 97));
    prompts.push_back(p);
    cs.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(engine->submit(greedy(p, 5 + i), cs.back()->sink()).has_value());
  }
  for (int i = 0; i < 20; ++i) {
    cs[i]->wait();
    EXPECT_EQ(cs[i]->reason, FinishReason::kLength);
    EXPECT_EQ(cs[i]->tokens, CountingRunner::expected(prompts[i], 5 + i)) << i;
  }
  EXPECT_GT(runner->max_batch(), 1u);
  EXPECT_EQ(runner->live(), 0);
  EXPECT_EQ(engine->stats().generated_tokens_total, 20u * 5 + 190);
}

TEST(Scheduler, StopTokenEndsWithStopAndIsReported) {
  auto runner = std::make_shared<CountingRunner>(4096);
  auto engine = create_engine(runner, {});
  std::vector<uint32_t> prompt = {1, 2, 3};
  auto want = CountingRunner::expected(prompt, 10);
  auto req = greedy(prompt, 10);
  req.stop_tokens = {want[3]};
  Collector c;
  ASSERT_TRUE(engine->submit(req, c.sink()).has_value());
  c.wait();
  EXPECT_EQ(c.reason, FinishReason::kStop);
  size_t first_stop = std::find(want.begin(), want.end(), want[3]) - want.begin();
  EXPECT_EQ(c.tokens, std::vector<uint32_t>(want.begin(), want.begin() + first_stop + 1));
}

TEST(Scheduler, RefusesWhatCannotFitAndStopsAtTheContext) {
  auto runner = std::make_shared<CountingRunner>(16);
  auto engine = create_engine(runner, {});
  auto r = engine->submit(greedy(std::vector<uint32_t>(10, 1), 7), [](const TokenEvent&) {});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("exceeds the context length of 16"), std::string::npos);
  EXPECT_FALSE(engine->submit(greedy({}, 1), [](const TokenEvent&) {}).has_value());
  EXPECT_FALSE(engine->submit(greedy({500}, 1), [](const TokenEvent&) {}).has_value());
  Collector c;
  ASSERT_TRUE(engine->submit(greedy(std::vector<uint32_t>(10, 1), -1), c.sink()).has_value());
  c.wait();
  EXPECT_EQ(c.reason, FinishReason::kContextFull);
  EXPECT_EQ(c.tokens.size(), 6u);
}

TEST(Scheduler, CancelFreesTheSequenceAndOthersCarryOn) {
  auto runner = std::make_shared<CountingRunner>(1 << 20);
  auto engine = create_engine(runner, {});
  Collector endless, normal;
  auto id = engine->submit(greedy({5}, -1), endless.sink());
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(engine->submit(greedy({7, 8}, 50), normal.sink()).has_value());
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> lk(endless.mu);
      if (endless.tokens.size() > 20) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  engine->cancel(*id);
  endless.wait();
  EXPECT_EQ(endless.reason, FinishReason::kCancelled);
  normal.wait();
  EXPECT_EQ(normal.tokens, CountingRunner::expected({7, 8}, 50));
  for (int i = 0; i < 100 && runner->live() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(runner->live(), 0);
}

// submit_all: the requests arrive together, so the first step prefills all of them (one piece
// each) when the prompt budget allows, and each still gets its own continuation. A batch that does
// not fit the running slots plus the queue is refused whole: nothing of it runs.
class FirstStepRunner : public CountingRunner {
 public:
  using CountingRunner::CountingRunner;
  Status forward(const std::vector<BatchPiece>& pieces, std::vector<float>* logits) override {
    {
      std::lock_guard<std::mutex> lk(m_);
      if (first_pieces_ < 0) first_pieces_ = static_cast<int>(pieces.size());
    }
    return CountingRunner::forward(pieces, logits);
  }
  int first_pieces() {
    std::lock_guard<std::mutex> lk(m_);
    return first_pieces_;
  }

 private:
  std::mutex m_;
  int first_pieces_ = -1;
};

TEST(Scheduler, SubmitAllStartsTogetherOrNotAtAll) {
  auto runner = std::make_shared<FirstStepRunner>(4096);
  SchedulerOptions opt;
  opt.max_running = 8;
  opt.max_queued = 0;
  opt.prefill_chunk_tokens = 8 * 5;
  auto engine = create_engine(runner, opt);
  std::vector<std::unique_ptr<Collector>> cs;
  std::vector<GenerationRequest> reqs;
  std::vector<TokenSink> sinks;
  std::vector<std::vector<uint32_t>> prompts;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(3 * i % 97), 5, 6, static_cast<uint32_t>(i + 40)});
    cs.push_back(std::make_unique<Collector>());
    reqs.push_back(greedy(prompts.back(), 6));
    sinks.push_back(cs.back()->sink());
  }
  auto ids = engine->submit_all(std::move(reqs), std::move(sinks));
  ASSERT_TRUE(ids.has_value()) << ids.status().message();
  EXPECT_EQ(ids->size(), 8u);
  for (int i = 0; i < 8; ++i) {
    cs[i]->wait();
    EXPECT_EQ(cs[i]->reason, FinishReason::kLength);
    EXPECT_EQ(cs[i]->tokens, CountingRunner::expected(prompts[i], 6)) << i;
  }
  EXPECT_EQ(runner->first_pieces(), 8);
  // 9 requests for 8 running slots and no queue: refused, none admitted.
  std::vector<GenerationRequest> more;
  std::vector<TokenSink> more_sinks;
  Collector unused;
  for (int i = 0; i < 9; ++i) {
    more.push_back(greedy({1, 2}, 3));
    more_sinks.push_back(unused.sink());
  }
  auto refused = engine->submit_all(std::move(more), std::move(more_sinks));
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.status().message().find("queue is full"), std::string::npos);
  EXPECT_EQ(engine->stats().requests_total, 8u);
  EXPECT_EQ(runner->live(), 0);
}

TEST(Scheduler, FullQueueIsRefusedAtOnce) {
  auto runner = std::make_shared<CountingRunner>(1 << 20);
  SchedulerOptions opt;
  opt.max_running = 1;
  opt.max_queued = 2;
  auto engine = create_engine(runner, opt);
  std::vector<std::unique_ptr<Collector>> accepted;
  int refused = 0;
  std::vector<RequestId> ids;
  for (int i = 0; i < 10; ++i) {
    auto c = std::make_unique<Collector>();
    auto r = engine->submit(greedy({1}, -1), c->sink());
    if (r.has_value()) {
      ids.push_back(*r);
      accepted.push_back(std::move(c));
    } else {
      refused++;
      EXPECT_NE(r.status().message().find("queue is full"), std::string::npos);
    }
  }
  EXPECT_GE(refused, 1);
  for (RequestId id : ids) engine->cancel(id);
  for (auto& c : accepted) {
    c->wait();
    EXPECT_EQ(c->reason, FinishReason::kCancelled);
  }
}

// max_queued counts requests waiting beyond the running slots: with 0, requests that can start at
// once are accepted (gptoss serve --max-queue 0 refused every request before).
TEST(Scheduler, NoQueueStillAdmitsUpToMaxRunning) {
  auto runner = std::make_shared<CountingRunner>(1 << 20);
  SchedulerOptions opt;
  opt.max_running = 2;
  opt.max_queued = 0;
  auto engine = create_engine(runner, opt);
  for (int round = 0; round < 3; ++round) {
    Collector a, b, c;
    // Until the (huge) context is full: both still run when the third request comes.
    auto ra = engine->submit(greedy({1, 2}, -1), a.sink());
    auto rb = engine->submit(greedy({3}, -1), b.sink());
    ASSERT_TRUE(ra.has_value()) << ra.status().message();
    ASSERT_TRUE(rb.has_value()) << rb.status().message();
    auto rc = engine->submit(greedy({4}, 5), c.sink());
    ASSERT_FALSE(rc.has_value());
    EXPECT_NE(rc.status().message().find("queue is full"), std::string::npos);
    engine->cancel(*ra);
    engine->cancel(*rb);
    a.wait();
    b.wait();
    EXPECT_EQ(a.reason, FinishReason::kCancelled);
    EXPECT_EQ(b.reason, FinishReason::kCancelled);
    EXPECT_EQ(a.tokens, CountingRunner::expected({1, 2}, static_cast<int>(a.tokens.size())));
    EXPECT_EQ(b.tokens, CountingRunner::expected({3}, static_cast<int>(b.tokens.size())));
    // A caller that saw its last event can submit again at once: the slots are already free.
    EXPECT_EQ(engine->stats().running, 0);
  }
}

// A runner that answers kGreedy pieces with the token alone (its logits row withheld, so a
// scheduler that samples anyway fails) and records what each step asked of each request, which it
// knows by the first prompt token of the request's sequence.
class GreedyRunner : public CountingRunner {
 public:
  using CountingRunner::CountingRunner;
  Status forward_step(const std::vector<BatchPiece>& pieces, const std::vector<PieceOutput>& want,
                      StepOutput* out) override {
    if (want.size() != pieces.size()) return Error("{} outputs for {} pieces", want.size(), pieces.size());
    GPTOSS_RETURN_IF_ERROR(forward(pieces, &rows_));
    std::lock_guard<std::mutex> lk(m_);
    out->tokens.assign(pieces.size(), -1);
    out->rows.assign(pieces.size(), nullptr);
    for (size_t i = 0; i < pieces.size(); ++i) {
      const uint32_t request = first_token_.emplace(pieces[i].sequence, pieces[i].tokens[0]).first->second;
      asked_[request].push_back(want[i]);
      const float* row = rows_.data() + i * 97;
      if (want[i] == PieceOutput::kGreedy) {
        out->tokens[i] = bad_token_ ? 97 : static_cast<int32_t>(std::max_element(row, row + 97) - row);
      } else if (want[i] == PieceOutput::kLogits) {
        out->rows[i] = row;
      }
    }
    return Status::ok();
  }
  std::vector<PieceOutput> asked(uint32_t request) {
    std::lock_guard<std::mutex> lk(m_);
    return asked_[request];
  }
  bool bad_token_ = false;  // answer greedy pieces with a token outside the vocabulary

 private:
  std::mutex m_;
  std::vector<float> rows_;
  std::map<int, uint32_t> first_token_;
  std::map<uint32_t, std::vector<PieceOutput>> asked_;
};

// The dispatch rule: requests whose sampler picks the argmax (temperature 0 or top-k 1, no
// penalties) take the runner's greedy token, the others a logits row; prompt chunks that do not end
// the prompt ask for nothing. Every request still gets the continuation the logits give, and with
// device_greedy off every token comes from a row.
TEST(Scheduler, GreedyRequestsTakeTheRunnersTokenOthersTheirLogitsRow) {
  struct Case {
    SamplingParams sp;
    PieceOutput expect;
  };
  std::vector<Case> cases(6);
  cases[0].sp.temperature = 0;  // greedy
  cases[0].expect = PieceOutput::kGreedy;
  cases[1].sp.temperature = 0.7f;  // top-k 1 keeps only the argmax
  cases[1].sp.top_k = 1;
  cases[1].sp.top_p = 0.5f;
  cases[1].expect = PieceOutput::kGreedy;
  cases[2].sp.temperature = 0.7f;  // a draw
  cases[2].expect = PieceOutput::kLogits;
  cases[3].sp.temperature = 0;  // penalties change the row before the argmax
  cases[3].sp.repetition_penalty = 1.1f;
  cases[3].expect = PieceOutput::kLogits;
  cases[4].sp.temperature = 0;
  cases[4].sp.presence_penalty = 0.5f;
  cases[4].expect = PieceOutput::kLogits;
  cases[5].sp.temperature = 0;
  cases[5].sp.frequency_penalty = -0.5f;
  cases[5].expect = PieceOutput::kLogits;
  for (const bool device_greedy : {true, false}) {
    auto runner = std::make_shared<GreedyRunner>(4096);
    SchedulerOptions opt;
    opt.max_running = 3;  // the others wait, then join running sequences
    opt.prefill_chunk_tokens = 5;  // prompts of 7 tokens take chunks that end mid-prompt
    opt.device_greedy = device_greedy;
    auto engine = create_engine(runner, opt);
    std::vector<std::unique_ptr<Collector>> cs;
    std::vector<std::vector<uint32_t>> prompts;
    for (size_t i = 0; i < cases.size(); ++i) {
      std::vector<uint32_t> p = {static_cast<uint32_t>(90 + i)};  // names the request
      for (int j = 0; j < 6; ++j) p.push_back(static_cast<uint32_t>((i * 13 + j * 5) % 89));
      prompts.push_back(p);
      GenerationRequest r;
      r.prompt = p;
      r.max_tokens = 12;
      r.sampling = cases[i].sp;
      r.sampling.has_seed = true;
      r.sampling.seed = 5;
      cs.push_back(std::make_unique<Collector>());
      ASSERT_TRUE(engine->submit(r, cs.back()->sink()).has_value());
    }
    for (size_t i = 0; i < cases.size(); ++i) {
      cs[i]->wait();
      EXPECT_EQ(cs[i]->reason, FinishReason::kLength) << i;
      EXPECT_EQ(cs[i]->tokens, CountingRunner::expected(prompts[i], 12)) << i;
      const std::vector<PieceOutput> asked = runner->asked(90 + i);
      const PieceOutput expect = device_greedy ? cases[i].expect : PieceOutput::kLogits;
      const size_t outputs = std::count_if(asked.begin(), asked.end(), [](PieceOutput o) { return o != PieceOutput::kNone; });
      EXPECT_EQ(outputs, 12u) << i;  // one per generated token
      EXPECT_EQ(std::count(asked.begin(), asked.end(), expect), 12) << i;
      // The 7-token prompt does not fit the 5-token budget: its first chunk asks for nothing.
      ASSERT_FALSE(asked.empty());
      EXPECT_EQ(asked[0], PieceOutput::kNone) << i;
    }
    EXPECT_EQ(runner->live(), 0);
  }
}

// A token outside the vocabulary from the runner ends the request with an error naming it.
TEST(Scheduler, RunnerTokenOutsideTheVocabularyIsAnError) {
  auto runner = std::make_shared<GreedyRunner>(4096);
  runner->bad_token_ = true;
  auto engine = create_engine(runner, {});
  Collector c;
  ASSERT_TRUE(engine->submit(greedy({1, 2, 3}, 4), c.sink()).has_value());
  c.wait();
  EXPECT_EQ(c.reason, FinishReason::kError);
  EXPECT_TRUE(c.tokens.empty());
  EXPECT_EQ(runner->live(), 0);
}

// Rows sampled on several threads give each seeded request the tokens it gets on the engine thread
// alone (12 sequences drawing at temperature 5 from the runner's rows: about 7% on the counting
// model's token, so the draws, not the model, decide).
TEST(Scheduler, RowsSampledOnThreadsGiveTheSameTokens) {
  std::map<int, std::vector<std::vector<uint32_t>>> by_threads;
  for (const int threads : {1, 4}) {
    auto runner = std::make_shared<GreedyRunner>(4096);
    SchedulerOptions opt;
    opt.max_running = 12;
    opt.sample_threads = threads;
    auto engine = create_engine(runner, opt);
    std::vector<std::unique_ptr<Collector>> cs;
    for (int i = 0; i < 12; ++i) {
      GenerationRequest r;
      r.prompt = {static_cast<uint32_t>(i), 3, 5};
      r.max_tokens = 20;
      r.sampling.temperature = 5.0f;
      r.sampling.has_seed = true;
      r.sampling.seed = 100 + static_cast<uint64_t>(i);
      cs.push_back(std::make_unique<Collector>());
      ASSERT_TRUE(engine->submit(r, cs.back()->sink()).has_value());
    }
    for (auto& c : cs) {
      c->wait();
      EXPECT_EQ(c->reason, FinishReason::kLength);
      by_threads[threads].push_back(c->tokens);
    }
    EXPECT_GE(runner->max_batch(), 8u);  // steps of 8 rows or more: the threads did sample
  }
  EXPECT_EQ(by_threads[1], by_threads[4]);
  int off_model = 0;  // draws that left the counting model's token: the draws are real
  for (int i = 0; i < 12; ++i) {
    const auto& t = by_threads[1][i];
    ASSERT_EQ(t.size(), 20u);
    std::vector<uint32_t> seq = {static_cast<uint32_t>(i), 3, 5};
    for (uint32_t tok : t) {
      off_model += CountingRunner::expected(seq, 1)[0] != tok;
      seq.push_back(tok);
    }
  }
  EXPECT_GT(off_model, 100);
}

}  // namespace
}  // namespace gptoss::engine
