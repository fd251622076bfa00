// The engine over the real model (the committed tiny checkpoint, whose forward pass is checked
// against transformers): continuous batching must not change any sequence's tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>

#include "engine/model_runner.h"
#include "engine/scheduler.h"
#include "engine/token_collector_test_util.h"

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

// Submits every prompt at once (max_tokens n; submit_all, so the scheduler sees them arrive together and
// no sequence can finish before the last is queued) and waits for all; with peak_running, records the
// most sequences the engine reported running at once.
std::vector<std::vector<uint32_t>> run_all(Engine& engine, const std::vector<std::vector<uint32_t>>& prompts,
                                           const SamplingParams& sp, int n, int* peak_running = nullptr) {
  std::vector<std::unique_ptr<testing::Collector>> rs;
  std::vector<GenerationRequest> reqs;
  std::vector<TokenSink> sinks;
  std::mutex peak_mu;
  if (peak_running != nullptr) *peak_running = 0;
  for (const auto& p : prompts) {
    rs.push_back(std::make_unique<testing::Collector>());
    GenerationRequest req;
    req.prompt = p;
    req.sampling = sp;
    req.max_tokens = n;
    reqs.push_back(std::move(req));
    auto collect = rs.back()->sink();
    sinks.push_back([collect, &engine, &peak_mu, peak_running](const TokenEvent& ev) {
      if (peak_running != nullptr) {
        std::lock_guard<std::mutex> lk(peak_mu);
        *peak_running = std::max(*peak_running, engine.stats().running);
      }
      collect(ev);
    });
  }
  auto ids = engine.submit_all(std::move(reqs), std::move(sinks));
  EXPECT_TRUE(ids.has_value()) << ids.status().message();
  if (!ids.has_value()) rs.clear();
  std::vector<std::vector<uint32_t>> out;
  for (auto& r : rs) {
    EXPECT_TRUE(r->wait_for(std::chrono::seconds(120)));
    std::lock_guard<std::mutex> lk(r->mu);
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

// The device of the paged-pool tests: cpu here; the GPU machine runs them again with
// GPTOSS_ENGINE_TEST_DEVICE=cuda (the graph decode engine and the cuda kernels on the paged cache).
std::string test_device() {
  const char* d = std::getenv("GPTOSS_ENGINE_TEST_DEVICE");
  return d != nullptr && *d != '\0' ? d : "cpu";
}

TEST(EngineOnModel, PagedKvPoolRunsMoreSequencesThanItHoldsAtFullContext) {
  // A pool of 2 x ctx tokens (16 pages of 16, ctx 128), 8 slots: at full context it would hold 2
  // sequences, but short requests (prompt + 12 tokens, 2 pages each) all run at once, and each
  // gives the tokens it gives alone. Then a pool of 64 tokens (4 pages): the others wait for pages,
  // same tokens; a request larger than the pool is refused.
  std::vector<std::vector<uint32_t>> prompts = kPrompts;
  prompts.push_back({5, 6, 7, 300, 301});
  prompts.push_back({450, 451, 452, 453, 454, 455, 456, 457, 458, 459});
  ASSERT_EQ(prompts.size(), 8u);
  LoadOptions lo;
  lo.device = test_device();
  lo.threads = 2;
  lo.max_sequences = 8;
  lo.context = 128;
  lo.max_step_tokens = 8;
  LoadOptions one = lo;
  one.max_sequences = 1;
  auto solo = load_runner(tiny_model(), one);
  ASSERT_TRUE(solo.has_value()) << solo.status().message();
  const int n = 12;
  std::vector<std::vector<uint32_t>> want;
  for (const auto& p : prompts) want.push_back(reference_greedy(**solo, p, n));

  SchedulerOptions so;
  so.max_running = 8;
  so.prefill_chunk_tokens = 16;
  SamplingParams greedy;
  greedy.temperature = 0;
  // With 4 pages at most 4 run at once (each holds at least one page).
  for (const auto& [pool, max_peak] : {std::pair{256, 8}, {64, 4}}) {
    lo.kv_tokens = pool;
    auto runner = load_runner(tiny_model(), lo);
    ASSERT_TRUE(runner.has_value()) << runner.status().message();
    auto engine = create_engine(*runner, so);
    int peak = 0;
    auto got = run_all(*engine, prompts, greedy, n, &peak);
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], want[i]) << "pool " << pool << " prompt " << i;
    if (pool == 256) {
      EXPECT_EQ(peak, 8);
    }
    EXPECT_LE(peak, max_peak) << "pool " << pool;
    if (pool != 64) continue;
    // The pool is the most one sequence can hold: the runner's context is 64 tokens, and 20 + 60
    // tokens are refused at once with the sizes.
    EXPECT_EQ((*runner)->context_length(), 64);
    GenerationRequest req;
    req.prompt = prompts[3];
    req.max_tokens = 60;
    auto id = engine->submit(req, [](const TokenEvent&) {});
    ASSERT_FALSE(id.has_value());
    EXPECT_NE(id.status().message().find("exceeds the context length of 64 tokens"), std::string::npos)
        << id.status().message();
  }
}

}  // namespace
}  // namespace gptoss::engine
