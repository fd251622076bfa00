#include "engine/memory_plan.h"

#include <gtest/gtest.h>

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
  // layers keep the context, sliding ones a ring of window + step - 1 = 383 positions.
  for (auto [ctx, seqs] : {std::pair{8192, 1}, {131072, 1}, {4096, 16}, {100, 3}}) {
    const size_t per_pos = 2 * 8 * 64 * 4;
    const size_t want =
        size_t{12} * seqs * ctx * per_pos + size_t{12} * seqs * std::min(ctx, 383) * per_pos;
    EXPECT_EQ(plan_memory(opts(ctx, seqs), c).kv_bytes, want) << ctx << " x " << seqs;
  }
  // The context is clipped to the model's maximum, as the runner does.
  EXPECT_EQ(plan_memory(opts(1 << 24, 1), c).kv_bytes, plan_memory(opts(131072, 1), c).kv_bytes);
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

}  // namespace
}  // namespace gptoss::engine
