// The engine over the real model (the committed tiny checkpoint, whose forward pass is checked
// against transformers): continuous batching must not change any sequence's tokens.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>

#include "engine/model_runner.h"
#include "engine/scheduler.h"

namespace gptoss::engine {
namespace {

std::string tiny_model() {
  const char* root = std::getenv("GPTOSS_SOURCE_DIR");
  return std::string(root ? root : GPTOSS_SOURCE_DIR) + "/tests/data/tiny/model";
}

// Greedy decoding by hand, one sequence, one token per forward call.
std::vector<uint32_t> reference_greedy(Runner& r, const std::vector<uint32_t>& prompt, int n) {
  auto seq = r.new_sequence();
  EXPECT_TRUE(seq.has_value());
  std::vector<float> logits;
  std::vector<uint32_t> out;
  std::vector<uint32_t> feed = prompt;
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(r.forward({{*seq, feed}}, &logits).is_ok());
    uint32_t best = 0;
    for (int v = 1; v < r.vocab_size(); ++v)
      if (logits[v] > logits[best]) best = static_cast<uint32_t>(v);
    out.push_back(best);
    feed = {best};
  }
  r.free_sequence(*seq);
  return out;
}

struct Result {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint32_t> tokens;
  bool done = false;
  FinishReason reason = FinishReason::kNone;
};

std::vector<std::vector<uint32_t>> run_all(Engine& engine, const std::vector<std::vector<uint32_t>>& prompts,
                                           const SamplingParams& sp, int n) {
  std::vector<std::unique_ptr<Result>> rs;
  for (const auto& p : prompts) {
    rs.push_back(std::make_unique<Result>());
    Result* r = rs.back().get();
    GenerationRequest req;
    req.prompt = p;
    req.sampling = sp;
    req.max_tokens = n;
    auto id = engine.submit(req, [r](const TokenEvent& ev) {
      std::lock_guard<std::mutex> lk(r->mu);
      if (ev.has_token) r->tokens.push_back(ev.token);
      if (ev.finished) {
        r->done = true;
        r->reason = ev.reason;
      }
      r->cv.notify_all();
    });
    EXPECT_TRUE(id.has_value());
  }
  std::vector<std::vector<uint32_t>> out;
  for (auto& r : rs) {
    std::unique_lock<std::mutex> lk(r->mu);
    EXPECT_TRUE(r->cv.wait_for(lk, std::chrono::seconds(120), [&] { return r->done; }));
    EXPECT_EQ(r->reason, FinishReason::kLength);
    out.push_back(r->tokens);
  }
  return out;
}

const std::vector<std::vector<uint32_t>> kPrompts = {
    {483}, {320, 350, 459, 296, 397}, {426, 115, 28, 153, 145, 447, 467, 2},
    {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, {77, 77}, {500, 12, 9}};

TEST(EngineOnModel, BatchedGreedyEqualsOneSequenceAtATime) {
  LoadOptions lo;
  lo.device = "cpu";
  lo.threads = 2;
  lo.max_sequences = 4;  // fewer slots than prompts: requests queue and join as others finish
  lo.context = 256;
  lo.max_step_tokens = 8;
  auto runner = load_runner(tiny_model(), lo);
  ASSERT_TRUE(runner.has_value()) << runner.status().message();
  LoadOptions one = lo;
  one.max_sequences = 1;
  auto solo = load_runner(tiny_model(), one);
  ASSERT_TRUE(solo.has_value());
  const int n = 12;
  std::vector<std::vector<uint32_t>> want;
  for (const auto& p : kPrompts) want.push_back(reference_greedy(**solo, p, n));

  SchedulerOptions so;
  so.max_running = 4;
  so.prefill_chunk_tokens = 6;  // prompts prefill over several steps, mixed with decodes
  auto engine = create_engine(*runner, so);
  SamplingParams greedy;
  greedy.temperature = 0;
  auto got = run_all(*engine, kPrompts, greedy, n);
  for (size_t i = 0; i < kPrompts.size(); ++i) EXPECT_EQ(got[i], want[i]) << "prompt " << i;
}

TEST(EngineOnModel, SeededSamplingIsReproducibleAloneOrBatched) {
  LoadOptions lo;
  lo.device = "cpu";
  lo.threads = 2;
  lo.max_sequences = 6;
  lo.context = 256;
  auto runner = load_runner(tiny_model(), lo);
  ASSERT_TRUE(runner.has_value()) << runner.status().message();
  auto engine = create_engine(*runner, {});
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_p = 0.95f;
  sp.has_seed = true;
  sp.seed = 1234;
  auto batched = run_all(*engine, kPrompts, sp, 10);
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    auto alone = run_all(*engine, {kPrompts[i]}, sp, 10);
    EXPECT_EQ(alone[0], batched[i]) << "prompt " << i;
  }
  sp.seed = 99;
  auto other = run_all(*engine, kPrompts, sp, 10);
  EXPECT_NE(other, batched);
}

}  // namespace
}  // namespace gptoss::engine
