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

#include "backend/cuda/cuda_backend.h"
#include "engine/model_runner.h"

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

}  // namespace
}  // namespace gptoss::engine
