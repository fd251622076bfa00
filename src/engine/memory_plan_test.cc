#include "engine/memory_plan.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/model_runner.h"
#include "model/config.h"
#include "model/kv_cache.h"

namespace gptoss::engine {
namespace {

LoadOptions opts(int ctx, int seqs) {
  LoadOptions o;
  o.context = ctx;
  o.max_sequences = seqs;
  return o;
}

TEST(MemoryPlan, KvBytesFollowTheArchitecture) {
  const ModelConfig c = gpt_oss_20b_config();
  // f32 keys and values: 2 * 8 heads * 64 dims * 4 bytes = 4 KiB per position per layer. Full
  // layers keep the context (in pages of 16 positions: 100 -> 112), sliding ones a ring of
  // window + step - 1 = 383 positions.
  for (auto [ctx, seqs] : {std::pair{8192, 1}, {131072, 1}, {4096, 16}, {100, 3}}) {
    const size_t per_pos = 2 * 8 * 64 * 4;
    const size_t paged_ctx = (ctx + 15) / 16 * 16;
    const size_t want =
        size_t{12} * seqs * paged_ctx * per_pos + size_t{12} * seqs * std::min(ctx, 383) * per_pos;
    EXPECT_EQ(plan_memory(opts(ctx, seqs), c).kv_bytes, want) << ctx << " x " << seqs;
  }
  // The context is clipped to the model's maximum, as the runner does.
  EXPECT_EQ(plan_memory(opts(1 << 24, 1), c).kv_bytes, plan_memory(opts(131072, 1), c).kv_bytes);
  // --kv-tokens: the full layers hold the pool (rounded up to pages of 16), whatever ctx x sequences;
  // the sliding rings stay per sequence.
  LoadOptions pooled = opts(8192, 16);
  pooled.kv_tokens = 10000;  // 625 pages
  const size_t per_pos = 2 * 8 * 64 * 4;
  EXPECT_EQ(plan_memory(pooled, c).kv_bytes, size_t{12} * 10000 * per_pos + size_t{12} * 16 * 383 * per_pos);
  pooled.kv_tokens = 10001;  // 626 pages
  EXPECT_EQ(plan_memory(pooled, c).kv_bytes, size_t{12} * 10016 * per_pos + size_t{12} * 16 * 383 * per_pos);
}

TEST(MemoryPlan, KvBytesEqualWhatTheCacheAllocates) {
  ModelConfig c = gpt_oss_20b_config();
  c.num_layers = 4;  // small enough to allocate here
  c.layer_is_sliding.resize(4);
  auto backend = make_backend("cpu", 1);
  ASSERT_TRUE(backend.has_value());
  for (auto [ctx, seqs] : {std::pair{256, 2}, {1000, 3}, {50, 1}}) {
    const LoadOptions o = opts(ctx, seqs);
    auto cache = KvCache::create(**backend, c, kv_cache_options(o, c));
    ASSERT_TRUE(cache.has_value()) << cache.status().message();
    EXPECT_EQ(plan_memory(o, c).kv_bytes, cache->bytes());
  }
}

TEST(MemoryPlan, ActivationsGrowWithTheBatchNotTheContext) {
  const ModelConfig c = gpt_oss_20b_config();
  EXPECT_EQ(plan_memory(opts(4096, 4), c).activation_bytes,
            plan_memory(opts(131072, 4), c).activation_bytes);
  EXPECT_LT(plan_memory(opts(4096, 4), c).activation_bytes,
            plan_memory(opts(4096, 64), c).activation_bytes);
}

TEST(MemoryPlan, RefusalNamesTheNumbersAndWhatFits) {
  const ModelConfig c = gpt_oss_20b_config();
  LoadOptions o = opts(131072, 8);
  o.fit_hint = "--ctx or --max-running";
  const size_t limit = size_t{16} << 30;  // 16 GiB; the plan needs ~48 GiB
  Status st = check_plan_fits(o, c, limit, "--max-memory");
  ASSERT_FALSE(st.is_ok());
  const std::string& m = st.message();
  EXPECT_NE(m.find("context of 131072 tokens x 8 sequence(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("the KV cache needs 48.1 GiB"), std::string::npos) << m;
  EXPECT_NE(m.find("but 16.0 GiB is available (--max-memory)"), std::string::npos) << m;
  EXPECT_NE(m.find("Lower --ctx or --max-running."), std::string::npos) << m;
  // The context it proposes is the largest that fits.
  const size_t at = m.find("at most --ctx ");
  ASSERT_NE(at, std::string::npos) << m;
  const int fits = std::stoi(m.substr(at + 14));
  EXPECT_LE(plan_memory(opts(fits, 8), c).total(), limit);
  EXPECT_GT(plan_memory(opts(fits + 1, 8), c).total(), limit);
  // Enough memory: accepted.
  EXPECT_TRUE(check_plan_fits(o, c, size_t{64} << 30, "--max-memory").is_ok());
  // Too little for any context.
  st = check_plan_fits(o, c, 1 << 20, "MemAvailable in /proc/meminfo");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("not even --ctx 16 fits"), std::string::npos) << st.message();
}

// A device that holds the weights too (cuda) counts them: the refusal names them, the context it proposes
// fits beside them, and weights that alone exceed the memory ask for another device.
TEST(MemoryPlan, WeightsOnTheDeviceAreCounted) {
  const ModelConfig c = gpt_oss_20b_config();
  LoadOptions o = opts(131072, 8);
  o.fit_hint = "--ctx or --max-running";
  const size_t weights = size_t{13} << 30, limit = size_t{40} << 30;
  EXPECT_EQ(plan_memory(o, c, weights).total(), plan_memory(o, c).total() + weights);
  // ~48 GiB of KV cache alone: refused with or without the weights, which the message names when counted.
  Status st = check_plan_fits(o, c, limit, "free on cuda:test", weights);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(", plus 13.0 GiB for the weights"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("but 40.0 GiB is available (free on cuda:test)"), std::string::npos) << st.message();
  const size_t at = st.message().find("at most --ctx ");
  ASSERT_NE(at, std::string::npos) << st.message();
  const int fits = std::stoi(st.message().substr(at + 14));
  EXPECT_LE(plan_memory(opts(fits, 8), c, weights).total(), limit);
  EXPECT_GT(plan_memory(opts(fits + 1, 8), c, weights).total(), limit);
  // Without the weights more context fits in the same memory.
  const std::string without = check_plan_fits(o, c, limit, "free on cuda:test").message();
  EXPECT_EQ(without.find("for the weights"), std::string::npos) << without;
  EXPECT_GT(std::stoi(without.substr(without.find("at most --ctx ") + 14)), fits);
  // A context that fits beside the weights is accepted; the same with weights past the limit is not.
  EXPECT_TRUE(check_plan_fits(opts(4096, 1), c, limit, "free on cuda:test", weights).is_ok());
  st = check_plan_fits(opts(4096, 1), c, limit, "free on cuda:test", limit);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("not even --ctx 16 fits"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(", or use a device with more memory."), std::string::npos) << st.message();
}

TEST(MemoryPlan, MaxMemoryOptionIsTheLimitOnEveryDevice) {
  const ModelConfig c = gpt_oss_20b_config();
  LoadOptions o = opts(131072, 1);
  o.max_memory = size_t{1} << 30;
  for (const char* device : {"cpu", "cpu-fast", "cuda"}) {
    Status st = check_memory_fits(o, c, device);
    ASSERT_FALSE(st.is_ok()) << device;
    EXPECT_NE(st.message().find("(--max-memory)"), std::string::npos) << st.message();
  }
  o.max_memory = 0;  // the host's figure: an absurd batch cannot fit any machine this runs on
  o.max_sequences = 1 << 20;
  Status st = check_memory_fits(o, c, "cpu");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("is available ("), std::string::npos) << st.message();
}

// The graph decode engine's fp16 copies of q/k/v/o and the unembedding (decode_engine.cc: f16_rows,
// 2 bytes per weight + one f32 per row), made when a cuda load allows batches of at least
// kDecodeDenseGemmMinBatch (8) sequences: counted in the plan then, and in a refusal's message.
TEST(MemoryPlan, CountsTheBatchedCudaDecodeWeightCopies) {
  unsetenv("GPTOSS_CUDA_GRAPH_DECODE");
  unsetenv("GPTOSS_CUDA_DECODE_DENSE_GEMM_MIN");
  const ModelConfig c = gpt_oss_20b_config();
  // gpt-oss-20b: per layer q [4096, 2880], k and v [512, 2880], o [2880, 4096]; unembedding
  // [201088, 2880]: 2,433,859,072 bytes (2.27 GiB).
  const size_t layer = (4096ull * 2880 * 2 + 4096 * 4) + 2 * (512ull * 2880 * 2 + 512 * 4) + (2880ull * 4096 * 2 + 2880 * 4);
  const size_t want = 24 * layer + 201088ull * 2880 * 2 + 201088ull * 4;
  EXPECT_EQ(want, 2433859072u);
  EXPECT_EQ(decode_dense_copies_bytes(c), want);
  auto plan = [&](const char* device, int seqs, bool graph = true) {
    LoadOptions o = opts(4096, seqs);
    o.device = device;
    o.cuda_graph_decode = graph;
    return plan_memory(o, c);
  };
  EXPECT_EQ(plan("cuda", 8).decode_copies_bytes, want);
  EXPECT_EQ(plan("cuda", 64).decode_copies_bytes, want);
  EXPECT_EQ(plan("cuda", 7).decode_copies_bytes, 0u);   // below the threshold: GEMVs, no copies
  EXPECT_EQ(plan("cpu", 64).decode_copies_bytes, 0u);
  EXPECT_EQ(plan("cpu-fast", 64).decode_copies_bytes, 0u);
  EXPECT_EQ(plan("cuda", 64, false).decode_copies_bytes, 0u);  // op-path decode
  const MemoryPlan p = plan("cuda", 16), q = plan("cpu", 16);
  EXPECT_EQ(p.total(), q.total() + want);
  EXPECT_EQ(p.kv_bytes, q.kv_bytes);
  // The environment switches the engine reads are followed.
  setenv("GPTOSS_CUDA_DECODE_DENSE_GEMM_MIN", "4", 1);
  EXPECT_EQ(plan("cuda", 4).decode_copies_bytes, want);
  setenv("GPTOSS_CUDA_DECODE_DENSE_GEMM_MIN", "100", 1);
  EXPECT_EQ(plan("cuda", 64).decode_copies_bytes, 0u);
  unsetenv("GPTOSS_CUDA_DECODE_DENSE_GEMM_MIN");
  setenv("GPTOSS_CUDA_GRAPH_DECODE", "0", 1);
  EXPECT_EQ(plan("cuda", 64).decode_copies_bytes, 0u);
  unsetenv("GPTOSS_CUDA_GRAPH_DECODE");
  // A head_dim the engine does not take: no engine, no copies.
  ModelConfig other = c;
  other.head_dim = 128;
  LoadOptions o = opts(4096, 64);
  o.device = "cuda";
  EXPECT_EQ(plan_memory(o, other).decode_copies_bytes, 0u);
  // check_memory_fits on cuda with --max-memory: the copies decide between fitting and not.
  LoadOptions m = opts(4096, 16);
  m.max_memory = plan("cuda", 16).total() - 1;
  Status st = check_memory_fits(m, c, "cuda");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("for the batched cuda decode's fp16 weight copies"), std::string::npos) << st.message();
  EXPECT_TRUE(check_memory_fits(m, c, "cpu").is_ok());  // the same limit without the copies
  m.max_memory = plan("cuda", 16).total();
  EXPECT_TRUE(check_memory_fits(m, c, "cuda").is_ok());
}

}  // namespace
}  // namespace gptoss::engine
