// The cuda runner's decode steps run through the fused CUDA-graph engine (backend/cuda/decode_engine.h)
// over the KvCache that the op path's prefill fills. Its logits must equal the op-path runner's
// (model/forward.cc on the cuda backend, itself checked against transformers' goldens) on the tiny
// checkpoint: prefill, then decode steps of 1 and 3 sequences, past the sliding window's ring
// (window 8, ring capacity 8 + 4 - 1 = 11 positions), mixed steps, a freed and reused slot.
// Needs a GPU: skipped without one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <condition_variable>
#include <mutex>

#include "backend/cuda/cuda_backend.h"
#include "engine/model_runner.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"

namespace gptoss::engine {
namespace {

std::string tiny_model() {
  const char* root = std::getenv("GPTOSS_SOURCE_DIR");
  return std::string(root ? root : GPTOSS_SOURCE_DIR) + "/tests/data/tiny/model";
}

std::shared_ptr<Runner> load(bool graph) {
  LoadOptions o;
  o.device = "cuda";
  o.max_sequences = 3;
  o.context = 64;
  o.max_step_tokens = 4;  // sliding layers keep a ring of 11 positions
  o.cuda_graph_decode = graph;
  // 1: the engine must take the model (loading fails otherwise), so the fast runner cannot
  // silently fall back to the op path.
  setenv("GPTOSS_CUDA_GRAPH_DECODE", graph ? "1" : "0", 1);
  auto r = load_runner(tiny_model(), o);
  unsetenv("GPTOSS_CUDA_GRAPH_DECODE");
  EXPECT_TRUE(r.has_value()) << r.status().message();
  return r.has_value() ? *r : nullptr;
}

uint32_t argmax(const float* row, int v) { return static_cast<uint32_t>(std::max_element(row, row + v) - row); }

class GraphDecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    ref_ = load(false);
    fast_ = load(true);
    ASSERT_TRUE(ref_ && fast_);
    vocab_ = ref_->vocab_size();
  }

  // Runs the same step on both runners and compares every logits row; returns the greedy tokens.
  std::vector<uint32_t> step(const std::vector<BatchPiece>& pieces, const char* what) {
    std::vector<float> a, b;
    const Status sa = ref_->forward(pieces, &a);
    const Status sb = fast_->forward(pieces, &b);
    EXPECT_TRUE(sa.is_ok()) << sa.message();
    EXPECT_TRUE(sb.is_ok()) << sb.message();
    EXPECT_EQ(a.size(), pieces.size() * size_t(vocab_));
    EXPECT_EQ(b.size(), a.size());
    std::vector<uint32_t> next;
    if (a.size() != b.size() || a.size() != pieces.size() * size_t(vocab_)) return next;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const float* ra = a.data() + i * vocab_;
      const float* rb = b.data() + i * vocab_;
      float scale = 1.0f, err = 0.0f;
      for (int v = 0; v < vocab_; ++v) {
        scale = std::max(scale, std::fabs(ra[v]));
        err = std::max(err, std::fabs(ra[v] - rb[v]));
      }
      EXPECT_LE(err / scale, 1e-4f) << what << ", piece " << i << " (sequence " << pieces[i].sequence << ")";
      EXPECT_EQ(argmax(ra, vocab_), argmax(rb, vocab_)) << what << ", piece " << i;
      ++rows_checked_;
      next.push_back(argmax(ra, vocab_));
    }
    return next;
  }

  std::shared_ptr<Runner> ref_, fast_;
  int vocab_ = 0;
  int rows_checked_ = 0;
};

int new_seq(Runner& a, Runner& b) {
  auto x = a.new_sequence();
  auto y = b.new_sequence();
  EXPECT_TRUE(x.has_value() && y.has_value());
  EXPECT_EQ(*x, *y);
  return x.has_value() ? *x : -1;
}

TEST_F(GraphDecodeTest, LogitsEqualOpPathThroughPrefillDecodeAndRingWrap) {
  const std::vector<uint32_t> p0 = {1, 17, 200, 35, 382, 175, 13, 507};
  const std::vector<uint32_t> p1 = {99, 11, 149, 353, 481};
  const std::vector<uint32_t> p2 = {2, 142, 208, 40, 129, 290, 152, 328, 373, 12, 73, 511};
  const int s0 = new_seq(*ref_, *fast_);
  ASSERT_GE(s0, 0);

  // One sequence: prefill (op path on both), then 20 graph decode steps (positions 8..27, past the ring).
  std::vector<uint32_t> t = step({{s0, p0}}, "prefill s0");
  ASSERT_EQ(t.size(), 1u);
  for (int i = 0; i < 20; ++i) t = step({{s0, {t[0]}}}, "decode s0 alone");

  // Two more sequences: prefilled in a step mixed with s0's decode (op path), then all three decode.
  const int s1 = new_seq(*ref_, *fast_);
  const int s2 = new_seq(*ref_, *fast_);
  ASSERT_GE(s1, 0);
  ASSERT_GE(s2, 0);
  std::vector<uint32_t> u = step({{s1, p1}, {s0, {t[0]}}, {s2, p2}}, "mixed prefill + decode");
  ASSERT_EQ(u.size(), 3u);
  std::vector<uint32_t> cur = {u[1], u[0], u[2]};  // next tokens of s0, s1, s2
  for (int i = 0; i < 24; ++i) {
    // Vary the order of the pieces: slots need not be sorted.
    std::vector<BatchPiece> pieces = (i % 2 == 0) ? std::vector<BatchPiece>{{s0, {cur[0]}}, {s1, {cur[1]}}, {s2, {cur[2]}}}
                                                  : std::vector<BatchPiece>{{s2, {cur[2]}}, {s0, {cur[0]}}, {s1, {cur[1]}}};
    const std::vector<uint32_t> n = step(pieces, "decode 3 sequences");
    ASSERT_EQ(n.size(), 3u);
    if (i % 2 == 0) cur = n;
    else cur = {n[1], n[2], n[0]};
  }

  // Free the middle slot, reuse it for a new prompt (its old keys must not leak), decode two sequences.
  ref_->free_sequence(s1);
  fast_->free_sequence(s1);
  const int s3 = new_seq(*ref_, *fast_);
  ASSERT_EQ(s3, s1);
  const std::vector<uint32_t> w = step({{s3, p1}}, "prefill reused slot");
  ASSERT_EQ(w.size(), 1u);
  std::vector<uint32_t> two = {cur[2], w[0]};
  for (int i = 0; i < 14; ++i) two = step({{s2, {two[0]}}, {s3, {two[1]}}}, "decode 2 sequences");
  EXPECT_EQ(rows_checked_, 1 + 20 + 3 + 24 * 3 + 1 + 14 * 2);
}

// A step may not name one sequence twice, nor a free one.
TEST_F(GraphDecodeTest, RejectsBadDecodeSteps) {
  const int s = new_seq(*ref_, *fast_);
  ASSERT_GE(s, 0);
  std::vector<float> logits;
  ASSERT_TRUE(fast_->forward({{s, {5, 17}}}, &logits).is_ok());
  EXPECT_FALSE(fast_->forward({{s, {1}}, {s, {2}}}, &logits).is_ok());
  EXPECT_FALSE(fast_->forward({{2, {1}}}, &logits).is_ok());
}

// forward_step on the graph path: kGreedy pieces get the device's argmax alone (no row), kLogits
// pieces their row (copied into pinned memory, only those rows: here every other piece, so the
// copies are split into runs). The greedy tokens must be the host sampler's pick on the op path's
// rows, the copied rows those rows; the tokens fed back are the greedy ones.
TEST_F(GraphDecodeTest, GreedyTokensAndPartialRowsEqualTheHostPath) {
  const std::vector<std::vector<uint32_t>> prompts = {{1, 17, 200, 35, 382}, {99, 11, 149}, {2, 142, 208, 40, 129, 290}};
  std::vector<int> seqs;
  std::vector<BatchPiece> pieces;
  for (const auto& p : prompts) {
    seqs.push_back(new_seq(*ref_, *fast_));
    ASSERT_GE(seqs.back(), 0);
    pieces.push_back({seqs.back(), p});
  }
  SamplingParams greedy;
  greedy.temperature = 0;
  Sampler host(greedy, {});
  std::vector<uint32_t> cur = step(pieces, "prefill 3");  // the op path on both
  ASSERT_EQ(cur.size(), 3u);
  int greedy_checked = 0, rows_copied = 0;
  for (int i = 0; i < 30; ++i) {
    std::vector<BatchPiece> dec;
    std::vector<PieceOutput> want;
    for (size_t k = 0; k < seqs.size(); ++k) {
      dec.push_back({seqs[k], {cur[k]}});
      // Patterns G L G, L G L, G G G, L L L in turn.
      const int pattern = i % 4;
      const bool logits = pattern == 3 || (pattern == 0 && k == 1) || (pattern == 1 && k != 1);
      want.push_back(logits ? PieceOutput::kLogits : PieceOutput::kGreedy);
    }
    StepOutput a, b;
    ASSERT_TRUE(ref_->forward_step(dec, std::vector<PieceOutput>(dec.size(), PieceOutput::kLogits), &a).is_ok());
    ASSERT_TRUE(fast_->forward_step(dec, want, &b).is_ok());
    ASSERT_EQ(b.tokens.size(), dec.size());
    ASSERT_EQ(b.rows.size(), dec.size());
    for (size_t k = 0; k < dec.size(); ++k) {
      ASSERT_NE(a.rows[k], nullptr);
      const uint32_t expect = host.sample(a.rows[k], vocab_);
      if (want[k] == PieceOutput::kGreedy) {
        EXPECT_EQ(b.rows[k], nullptr) << i << " " << k;
        EXPECT_EQ(b.tokens[k], static_cast<int32_t>(expect)) << "step " << i << ", piece " << k;
        ++greedy_checked;
      } else {
        EXPECT_EQ(b.tokens[k], -1);
        ASSERT_NE(b.rows[k], nullptr);
        float scale = 1.0f, err = 0.0f;
        for (int v = 0; v < vocab_; ++v) {
          scale = std::max(scale, std::fabs(a.rows[k][v]));
          err = std::max(err, std::fabs(a.rows[k][v] - b.rows[k][v]));
        }
        EXPECT_LE(err / scale, 1e-4f) << "step " << i << ", piece " << k;
        EXPECT_EQ(host.sample(b.rows[k], vocab_), expect) << "step " << i << ", piece " << k;
        ++rows_copied;
      }
      cur[k] = expect;
    }
  }
  EXPECT_EQ(greedy_checked + rows_copied, 90);
  EXPECT_GT(rows_copied, 20);
  EXPECT_GT(greedy_checked, 40);
}

// Through the serving engine: the same greedy requests give the same tokens whether the scheduler
// takes the device's greedy ids or samples every logits row on the host (device_greedy off), on
// the tiny model and, with GPTOSS_GREEDY_TEST_MODEL=DIR set (the GPU script's random 20b), on that.
std::vector<std::vector<uint32_t>> generate(const std::shared_ptr<Runner>& runner, bool device_greedy,
                                            const std::vector<std::vector<uint32_t>>& prompts, int n) {
  SchedulerOptions so;
  so.max_running = static_cast<int>(prompts.size());
  so.max_queued = 0;
  so.prefill_chunk_tokens = 64;
  so.device_greedy = device_greedy;
  auto eng = create_engine(runner, so);
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<std::vector<uint32_t>> out(prompts.size());
  std::vector<GenerationRequest> reqs;
  std::vector<TokenSink> sinks;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r;
    r.prompt = prompts[i];
    r.max_tokens = n;
    r.sampling.temperature = 0;
    reqs.push_back(r);
    sinks.push_back([&, i](const TokenEvent& ev) {
      std::lock_guard<std::mutex> lk(mu);
      if (ev.has_token) out[i].push_back(ev.token);
      if (ev.finished) {
        EXPECT_EQ(ev.reason, FinishReason::kLength) << ev.error;
        ++done;
        cv.notify_all();
      }
    });
  }
  EXPECT_TRUE(eng->submit_all(std::move(reqs), std::move(sinks)).has_value());
  std::unique_lock<std::mutex> lk(mu);
  cv.wait(lk, [&] { return done == static_cast<int>(prompts.size()); });
  return out;
}

void engine_paths_agree(const std::string& dir, int sequences, int n) {
  LoadOptions o;
  o.device = "cuda";
  o.max_sequences = sequences;
  o.context = 256;
  o.max_step_tokens = 64;
  setenv("GPTOSS_CUDA_GRAPH_DECODE", "1", 1);
  auto r = load_runner(dir, o);
  unsetenv("GPTOSS_CUDA_GRAPH_DECODE");
  ASSERT_TRUE(r.has_value()) << r.status().message();
  std::vector<std::vector<uint32_t>> prompts;
  const uint32_t vocab = static_cast<uint32_t>(std::min((*r)->vocab_size(), 199998));
  for (int i = 0; i < sequences; ++i) {
    std::vector<uint32_t> p;
    for (int j = 0; j < 5 + 3 * i; ++j) p.push_back(static_cast<uint32_t>((i * 7919u + j * 104729u + 3) % vocab));
    prompts.push_back(p);
  }
  const auto dev = generate(*r, true, prompts, n);
  const auto host = generate(*r, false, prompts, n);
  for (int i = 0; i < sequences; ++i) {
    EXPECT_EQ(dev[i].size(), static_cast<size_t>(n)) << i;
    EXPECT_EQ(dev[i], host[i]) << dir << ": sequence " << i;
  }
}

// Loading on the GPU checks the KV cache, activations and weights against the device's free memory first
// (memory_plan.h): a plan far past any GPU is refused before anything is allocated, naming the device's
// memory; and the largest context the refusal proposes does load.
TEST(GraphDecodeMemory, LoadRefusesWhatTheGpuCannotHold) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  size_t free_bytes = 0, total_bytes = 0;
  std::string name;
  ASSERT_TRUE(cuda_memory_info(0, &free_bytes, &total_bytes, &name));
  EXPECT_GT(free_bytes, 0u);
  EXPECT_LE(free_bytes, total_bytes);
  LoadOptions o;
  o.device = "cuda";
  o.context = 131072;
  o.max_sequences = 8192;  // the tiny model's full-attention KV alone: ~2 TiB
  o.fit_hint = "--ctx or --max-running";
  auto r = load_runner(tiny_model(), o);
  ASSERT_FALSE(r.has_value());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("not enough memory for a context of 131072 tokens x 8192 sequence(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("for the weights"), std::string::npos) << m;
  EXPECT_NE(m.find("is available (free on cuda:" + name), std::string::npos) << m;
  const size_t at = m.find("at most --ctx ");
  ASSERT_NE(at, std::string::npos) << m;
  o.context = std::stoi(m.substr(at + 14));
  o.max_sequences = 64;  // the proposed context with fewer sequences: it loads
  auto ok = load_runner(tiny_model(), o);
  ASSERT_TRUE(ok.has_value()) << ok.status().message();
}

TEST(GraphDecodeGreedy, EngineTokensEqualWithAndWithoutDeviceGreedyTiny) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  engine_paths_agree(tiny_model(), 3, 40);
}

TEST(GraphDecodeGreedy, EngineTokensEqualWithAndWithoutDeviceGreedyGivenModel) {
  const char* dir = std::getenv("GPTOSS_GREEDY_TEST_MODEL");
  if (dir == nullptr || *dir == '\0') GTEST_SKIP() << "GPTOSS_GREEDY_TEST_MODEL not set";
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  engine_paths_agree(dir, 16, 32);
}

}  // namespace
}  // namespace gptoss::engine
