// The exact forward pass against HF transformers' logits on the committed tiny checkpoints
// (tests/data/tiny: 4 layers alternating sliding/full with window 8, GQA 4:2, 8 experts top-4,
// head_dim 64, MXFP4 experts; tests/data/tiny_mqa: see below), plus prefill/decode, batching and
// ring-buffer equivalences.
#include "model/forward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <tuple>

#include "backend/cpu/cpu_backend.h"
#include "model/rope.h"

namespace gptoss {
namespace {

std::string data_dir(const std::string& name) {
  const char* root = std::getenv("GPTOSS_SOURCE_DIR");
  return std::string(root ? root : GPTOSS_SOURCE_DIR) + "/tests/data/" + name;
}
std::string tiny_dir() { return data_dir("tiny"); }

struct Golden {
  std::vector<uint32_t> tokens;
  std::vector<float> logits;  // [T, V]
};

std::vector<Golden> load_goldens(const std::string& dir) {
  auto store = TensorStore::open({dir + "/goldens.safetensors"});
  EXPECT_TRUE(store.has_value()) << store.status().message();
  std::vector<Golden> out;
  for (int i = 0;; ++i) {
    const TensorView* lt = store->find("logits_" + std::to_string(i));
    const TensorView* tt = store->find("tokens_" + std::to_string(i));
    if (!lt || !tt) break;
    EXPECT_EQ(lt->dtype, DType::kF32);
    EXPECT_EQ(tt->dtype, DType::kI64);
    Golden g;
    const auto* ids = reinterpret_cast<const int64_t*>(tt->data);
    for (int64_t j = 0; j < tt->numel(); ++j) g.tokens.push_back(static_cast<uint32_t>(ids[j]));
    const auto* l = reinterpret_cast<const float*>(lt->data);
    g.logits.assign(l, l + lt->numel());
    out.push_back(std::move(g));
  }
  return out;
}

class TinyForward : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_cpu_backend(2);
    auto files = open_model_dir(tiny_dir() + "/model");
    ASSERT_TRUE(files.has_value()) << files.status().message();
    auto model = Model::create(std::move(*files), *backend_);
    ASSERT_TRUE(model.has_value()) << model.status().message();
    model_ = std::move(*model);
    goldens_ = load_goldens(tiny_dir());
    ASSERT_GE(goldens_.size(), 4u);
  }

  // All logits of one prompt, fed `step` tokens per forward call.
  std::vector<float> run(const std::vector<uint32_t>& tokens, size_t step, int max_step_tokens = 128) {
    auto cache = model_->new_cache({1, 64, max_step_tokens});
    EXPECT_TRUE(cache.has_value());
    const int seq = *cache->new_sequence();
    std::vector<float> logits;
    for (size_t b = 0; b < tokens.size(); b += step) {
      const size_t n = std::min(step, tokens.size() - b);
      ForwardPiece p{seq, std::span<const uint32_t>(tokens.data() + b, n), true};
      Status st = model_->forward({&p, 1}, *cache, &logits);
      EXPECT_TRUE(st.is_ok()) << st.message();
    }
    return logits;
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::vector<Golden> goldens_;
};

// Tolerance: both sides compute in f32 from identical weights; only the order of additions
// differs (torch's blocked GEMM vs our 8-lane dots), giving relative errors around 1e-6 per op that
// compound over 4 layers. Logits are O(5); 2e-4 absolute is ~100x the f32 ulp at that size, while
// any real math difference (a mask off by one, a wrong RoPE pair, a dropped sink) moves them by 1e-2
// or more.
constexpr float kAbsTol = 2e-4f;

// Max |logit - transformers| over every golden of a checkpoint; argmax must agree everywhere.
// page_size > 0: a paged cache with pages handed out in a shuffled order.
float golden_error(const std::string& dir, int page_size = 0) {
  auto backend = make_cpu_backend(2);
  auto files = open_model_dir(dir + "/model");
  EXPECT_TRUE(files.has_value()) << files.status().message();
  if (!files) return INFINITY;
  auto model = Model::create(std::move(*files), *backend);
  EXPECT_TRUE(model.has_value()) << model.status().message();
  if (!model) return INFINITY;
  const auto goldens = load_goldens(dir);
  EXPECT_GE(goldens.size(), 4u);
  const int V = (*model)->config().vocab_size;
  KvCacheOptions o{static_cast<int>(goldens.size()), 64, 128};
  o.page_size = page_size;
  o.shuffle_pages_seed = 1234;
  auto cache = (*model)->new_cache(o);
  EXPECT_TRUE(cache.has_value());
  float worst = 0.0f;
  for (size_t g = 0; g < goldens.size(); ++g) {
    const auto& gold = goldens[g];
    ForwardPiece p{*cache->new_sequence(), gold.tokens, true};
    std::vector<float> got;
    Status st = (*model)->forward({&p, 1}, *cache, &got);
    EXPECT_TRUE(st.is_ok()) << st.message();
    if (got.size() != gold.logits.size()) {
      ADD_FAILURE() << "prompt " << g << ": " << got.size() << " logits, expected " << gold.logits.size();
      return INFINITY;
    }
    for (size_t t = 0; t < gold.tokens.size(); ++t) {
      size_t am_got = 0, am_want = 0;
      for (int v = 0; v < V; ++v) {
        const float a = got[t * V + v], b = gold.logits[t * V + v];
        worst = std::max(worst, std::fabs(a - b));
        if (a > got[t * V + am_got]) am_got = v;
        if (b > gold.logits[t * V + am_want]) am_want = v;
      }
      EXPECT_EQ(am_got, am_want) << dir << " prompt " << g << " position " << t;
    }
  }
  return worst;
}

TEST(ForwardGoldens, TinyMatchesTransformers) {
  const float worst = golden_error(data_dir("tiny"));
  EXPECT_LT(worst, kAbsTol);
  std::printf("tiny: max |logit - transformers| = %.3g\n", worst);
  const float paged = golden_error(data_dir("tiny"), 16);
  EXPECT_EQ(paged, worst);  // the same logits through a paged cache
  EXPECT_EQ(golden_error(data_dir("tiny"), 1), worst);
}

// A checkpoint's goldens within kAbsTol, and the same logits through a cache of 16-position pages.
void expect_matches_transformers(const char* name) {
  const float worst = golden_error(data_dir(name));
  EXPECT_LT(worst, kAbsTol);
  EXPECT_EQ(golden_error(data_dir(name), 16), worst);
  std::printf("%s: max |logit - transformers| = %.3g\n", name, worst);
}

// 3 layers, MQA (4 query heads on 1 KV head), hidden 96, 16 experts, window 5, truncate=true,
// single model.safetensors with the rope_parameters spelling.
TEST(ForwardGoldens, TinyMqaMatchesTransformers) { expect_matches_transformers("tiny_mqa"); }

// gpt-oss-120b's router size on a tiny body: 128 experts top-4, 2 layers (window 6), one model.safetensors.
TEST(ForwardGoldens, TinyE128MatchesTransformers) { expect_matches_transformers("tiny_e128"); }

TEST_F(TinyForward, PrefillEqualsDecodeAndChunkedSteps) {
  // Prefill all at once == decode one token at a time == internal chunking of 3 tokens per step
  // (which also exercises the sliding ring buffer of window + 3 - 1 entries), bit for bit: every op
  // computes a row independently of the others.
  const auto& gold = goldens_.back();
  ASSERT_GT(gold.tokens.size(), 2u * 8u);  // longer than twice the window
  std::vector<float> prefill = run(gold.tokens, gold.tokens.size());
  EXPECT_EQ(run(gold.tokens, 1), prefill);
  EXPECT_EQ(run(gold.tokens, 5), prefill);
  EXPECT_EQ(run(gold.tokens, gold.tokens.size(), 3), prefill);
  EXPECT_EQ(run(gold.tokens, 1, 1), prefill);
}

TEST_F(TinyForward, SeveralSequencesInOneCallEqualEachAlone) {
  auto cache = model_->new_cache({static_cast<int>(goldens_.size()), 64, 128});
  ASSERT_TRUE(cache.has_value());
  std::vector<ForwardPiece> pieces;
  for (const auto& g : goldens_) pieces.push_back({*cache->new_sequence(), g.tokens, true});
  std::vector<float> batched;
  ASSERT_TRUE(model_->forward(pieces, *cache, &batched).is_ok());
  std::vector<float> alone;
  for (const auto& g : goldens_) {
    auto l = run(g.tokens, g.tokens.size());
    alone.insert(alone.end(), l.begin(), l.end());
  }
  EXPECT_EQ(batched, alone);
  // Then one decode step for all sequences together, last-token logits only.
  std::vector<uint32_t> next = {7};
  std::vector<ForwardPiece> step;
  for (const auto& p : pieces) step.push_back({p.sequence, next, false});
  std::vector<float> decoded;
  ASSERT_TRUE(model_->forward(step, *cache, &decoded).is_ok());
  const int V = model_->config().vocab_size;
  ASSERT_EQ(decoded.size(), goldens_.size() * V);
  for (size_t g = 0; g < goldens_.size(); ++g) {
    auto tokens = goldens_[g].tokens;
    tokens.push_back(7);
    auto full = run(tokens, tokens.size());
    EXPECT_TRUE(std::equal(decoded.begin() + g * V, decoded.begin() + (g + 1) * V, full.end() - V)) << g;
  }
}

TEST_F(TinyForward, ForwardRejectsBadInput) {
  auto cache = model_->new_cache({1, 8, 4});
  ASSERT_TRUE(cache.has_value());
  const int seq = *cache->new_sequence();
  std::vector<float> logits;
  std::vector<uint32_t> bad = {1, 512};
  ForwardPiece p{seq, bad, false};
  Status st = model_->forward({&p, 1}, *cache, &logits);
  EXPECT_NE(st.message().find("outside the vocabulary"), std::string::npos) << st.message();
  std::vector<uint32_t> long_prompt(9, 1);
  p = {seq, long_prompt, false};
  st = model_->forward({&p, 1}, *cache, &logits);
  EXPECT_NE(st.message().find("at most 8"), std::string::npos) << st.message();
  p = {seq + 1, long_prompt, false};
  st = model_->forward({&p, 1}, *cache, &logits);
  EXPECT_NE(st.message().find("not open"), std::string::npos) << st.message();
  EXPECT_FALSE(cache->new_sequence().has_value());
}

TEST(KvCache, SlidingLayersKeepOnlyTheWindowPlusOneStep) {
  ModelConfig c;
  c.num_layers = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.sliding_window = 128;
  c.layer_is_sliding = {true, false, true, false};
  auto be = make_cpu_backend(1);
  auto cache = KvCache::create(*be, c, {3, 4096, 32});
  ASSERT_TRUE(cache.has_value()) << cache.status().message();
  EXPECT_EQ(cache->layer(0).capacity, 128 + 32 - 1);
  EXPECT_EQ(cache->layer(1).capacity, 4096);
  EXPECT_EQ(cache->layer(2).capacity, 159);
  EXPECT_EQ(cache->bytes(), size_t{2} * 3 * (2 * 159 + 2 * 4096) * 2 * 64 * sizeof(float));
  // A context shorter than the ring needs no more than the context.
  auto small = KvCache::create(*be, c, {1, 100, 32});
  ASSERT_TRUE(small.has_value());
  EXPECT_EQ(small->layer(0).capacity, 100);
  // Slots: taken in order, reused after free, refused when exhausted.
  EXPECT_EQ(*cache->new_sequence(), 0);
  EXPECT_EQ(*cache->new_sequence(), 1);
  EXPECT_EQ(*cache->new_sequence(), 2);
  EXPECT_FALSE(cache->new_sequence().has_value());
  cache->advance(1, 17);
  EXPECT_EQ(cache->length(1), 17);
  cache->free_sequence(1);
  EXPECT_FALSE(cache->in_use(1));
  EXPECT_EQ(*cache->new_sequence(), 1);
  EXPECT_EQ(cache->length(1), 0);
  EXPECT_FALSE(KvCache::create(*be, c, {0, 4096, 32}).has_value());
}

// Logits of every golden prompt run as concurrent sequences, prefill in chunks of 5 tokens per call
// with the sequences interleaved, then 6 decode steps of all sequences together.
std::vector<float> interleaved_run(Model& model, const std::vector<Golden>& goldens, const KvCacheOptions& o) {
  auto cache = model.new_cache(o);
  EXPECT_TRUE(cache.has_value()) << cache.status().message();
  if (!cache) return {};
  std::vector<int> seqs;
  for (size_t g = 0; g < goldens.size(); ++g) seqs.push_back(*cache->new_sequence());
  std::vector<float> logits;
  for (size_t b = 0;; b += 5) {
    std::vector<ForwardPiece> pieces;
    for (size_t g = 0; g < goldens.size(); ++g) {
      const auto& t = goldens[g].tokens;
      if (b < t.size()) pieces.push_back({seqs[g], {t.data() + b, std::min<size_t>(5, t.size() - b)}, true});
    }
    if (pieces.empty()) break;
    Status st = model.forward(pieces, *cache, &logits);
    EXPECT_TRUE(st.is_ok()) << st.message();
  }
  for (uint32_t tok = 3; tok < 9; ++tok) {
    std::vector<uint32_t> one = {tok};
    std::vector<ForwardPiece> pieces;
    for (int s : seqs) pieces.push_back({s, one, false});
    Status st = model.forward(pieces, *cache, &logits);
    EXPECT_TRUE(st.is_ok()) << st.message();
  }
  return logits;
}

TEST_F(TinyForward, ScatteredPagesEqualTheContiguousCache) {
  // The paged cache with a shuffled page order (every sequence's pages scattered over the pool and
  // interleaved with the others') gives the same logits, bit for bit, as the contiguous layout; also
  // pages of 1 and of 16 positions, and a pool just large enough for what the sequences hold.
  const int n = static_cast<int>(goldens_.size());
  KvCacheOptions flat{n, 64, 4};
  flat.page_size = 0;
  const std::vector<float> want = interleaved_run(*model_, goldens_, flat);
  ASSERT_FALSE(want.empty());
  size_t held = 0;  // pages of 4 the sequences end with
  for (const auto& g : goldens_) held += (g.tokens.size() + 6 + 3) / 4;
  for (const auto& [page, pool, seed] : std::vector<std::tuple<int, int64_t, uint32_t>>{
           {4, 0, 7}, {4, static_cast<int64_t>(held) * 4, 11}, {1, 0, 5}, {16, 0, 3}, {16, 0, 0}}) {
    KvCacheOptions o{n, 64, 4};
    o.page_size = page;
    o.pool_tokens = pool;
    o.shuffle_pages_seed = seed;
    EXPECT_EQ(interleaved_run(*model_, goldens_, o), want) << "page " << page << " pool " << pool;
  }
}

TEST(KvCache, PagesAreTakenAsSequencesGrowAndPromisesHold) {
  ModelConfig c;
  c.num_layers = 2;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.sliding_window = 8;
  c.layer_is_sliding = {true, false};
  auto be = make_cpu_backend(1);
  KvCacheOptions o{4, 64, 4};
  o.page_size = 16;
  o.pool_tokens = 100;  // 7 pages of 16
  auto cache = KvCache::create(*be, c, o);
  ASSERT_TRUE(cache.has_value()) << cache.status().message();
  EXPECT_EQ(cache->total_pages(), 7);
  EXPECT_EQ(KvCache::pool_pages(c, o), 7);
  // Sliding layer: 4 rings of 8 + 4 - 1; full layer: 7 pages of 16 rows; K and V, 2 x 64 floats a row.
  EXPECT_EQ(cache->bytes(), size_t{2} * (4 * 11 + 7 * 16) * 2 * 64 * sizeof(float));
  EXPECT_EQ(cache->bytes(), KvCache::bytes_needed(c, o));
  EXPECT_EQ(cache->layer(0).page_size, 0);
  EXPECT_EQ(cache->layer(1).page_size, 16);
  EXPECT_EQ(cache->layer(1).capacity, 64);

  EXPECT_TRUE(cache->can_ever_fit(64).is_ok());
  EXPECT_TRUE(cache->can_ever_fit(112).is_ok());  // clipped to the context
  ModelConfig c2 = c;
  KvCacheOptions tiny = o;
  tiny.pool_tokens = 40;  // 3 pages: a 64-token sequence can never fit
  auto small = KvCache::create(*be, c2, tiny);
  ASSERT_TRUE(small.has_value());
  const Status never = small->can_ever_fit(64);
  EXPECT_NE(never.message().find("needs 4 KV pages of 16 positions"), std::string::npos) << never.message();
  EXPECT_NE(never.message().find("holds 3 pages (48 tokens)"), std::string::npos) << never.message();

  // a promised 40 tokens (3 pages), b 50 (4 pages): the pool is fully promised.
  auto a = cache->new_sequence(40);
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(cache->can_start(64));
  auto b = cache->new_sequence(50);
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(cache->can_start(1));  // a free slot, but no page left to promise
  EXPECT_TRUE(cache->can_start(0));
  EXPECT_FALSE(cache->new_sequence(1).has_value());
  // Pages are taken only as the sequences grow.
  EXPECT_EQ(cache->free_pages(), 7);
  ASSERT_TRUE(cache->reserve(*a, 17).is_ok());
  EXPECT_EQ(cache->free_pages(), 5);
  ASSERT_TRUE(cache->reserve(*a, 48).is_ok());
  EXPECT_EQ(cache->free_pages(), 4);
  // Beyond its promise a sequence gets nothing that another was promised.
  const Status over = cache->reserve(*a, 49);
  EXPECT_NE(over.message().find("out of pages"), std::string::npos) << over.message();
  EXPECT_EQ(cache->free_pages(), 4);
  ASSERT_TRUE(cache->reserve(*b, 64).is_ok());
  EXPECT_EQ(cache->free_pages(), 0);
  EXPECT_FALSE(cache->reserve(*b, 65).is_ok());  // past the context
  // The layer's table maps a's positions to its own pages; b's are others.
  const KvLayer& kv = cache->layer(1);
  EXPECT_EQ(kv_row(kv, *a, 0), 0u);
  EXPECT_EQ(kv_row(kv, *a, 17), 16u + 1);
  EXPECT_EQ(kv_row(kv, *b, 0), 3u * 16);
  // Freed pages come back, and a new sequence can be promised them.
  cache->free_sequence(*a);
  EXPECT_EQ(cache->free_pages(), 3);
  EXPECT_TRUE(cache->can_start(48));
  EXPECT_FALSE(cache->can_start(49));
  auto d = cache->new_sequence(0);  // no promise: takes what nobody was promised
  ASSERT_TRUE(d.has_value());
  ASSERT_TRUE(cache->reserve(*d, 48).is_ok());
  EXPECT_EQ(kv_row(kv, *d, 0), 0u);  // a's first page again
  EXPECT_FALSE(cache->reserve(*d, 49).is_ok());
  cache->free_sequence(*b);
  cache->free_sequence(*d);
  EXPECT_EQ(cache->free_pages(), 7);
  KvCacheOptions bad = o;
  bad.page_size = -1;
  EXPECT_FALSE(KvCache::create(*be, c, bad).has_value());
}

TEST(YarnRope, InverseFrequenciesMatchTheReferenceTable) {
  // gpt-oss-model.md §2.4 (float64 values of the reference formula, truncate=false).
  const double want[32] = {
      1.000000000e+00, 6.890443059e-01, 4.747820555e-01, 3.271458719e-01, 2.254180002e-01,
      1.553229895e-01, 1.070244215e-01, 7.374456821e-02, 5.081327482e-02, 3.170569618e-02,
      1.933500113e-02, 1.159204926e-02, 6.794959490e-03, 3.860359317e-03, 2.093792379e-03,
      1.052602101e-03, 4.564839192e-04, 1.293187012e-04, 3.830881237e-05, 2.639646903e-05,
      1.818833668e-05, 1.253256982e-05, 8.635495875e-06, 5.950239261e-06, 4.099978482e-06,
      2.825066827e-06, 1.946596211e-06, 1.341291035e-06, 9.242089502e-07, 6.368209146e-07,
      4.387978251e-07, 3.023511428e-07};
  const YarnRope r = yarn_rope(64, 150000.0, 32.0, 32.0, 1.0, 4096, false);
  ASSERT_EQ(r.inv_freq.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(r.inv_freq[i] / want[i], 1.0, 2e-9) << i;
  EXPECT_NEAR(r.low, 8.092779115512402, 1e-12);
  EXPECT_NEAR(r.high, 17.39802450158856, 1e-12);
  EXPECT_NEAR(r.concentration, 1.3465735902799727, 1e-15);
  // truncate=true rounds the correction range outwards (8, 18), which changes pairs 9..17 only.
  const YarnRope t = yarn_rope(64, 150000.0, 32.0, 32.0, 1.0, 4096, true);
  EXPECT_EQ(t.low, 8.0);
  EXPECT_EQ(t.high, 18.0);
  EXPECT_EQ(t.inv_freq[8], r.inv_freq[8]);
  EXPECT_NE(t.inv_freq[12], r.inv_freq[12]);
  EXPECT_EQ(t.inv_freq[20], r.inv_freq[20]);
  // factor 1 is plain RoPE without concentration.
  const YarnRope plain = yarn_rope(64, 10000.0, 1.0, 32.0, 1.0, 4096, false);
  EXPECT_EQ(plain.concentration, 1.0);
  EXPECT_NEAR(plain.inv_freq[1], std::pow(10000.0, -2.0 / 64), 1e-15);
}

}  // namespace
}  // namespace gptoss
