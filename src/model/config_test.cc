// Config parsing: the hub's HF config.json in both rope spellings, original/config.json,
// generation_config.json, and every out-of-range value.
#include "model/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace gptoss {
namespace {

using nlohmann::json;

// The 20b hub config.json (older transformers: rope_scaling + top-level rope_theta).
json hub_20b() {
  json layer_types = json::array();
  for (int i = 0; i < 24; ++i)
    layer_types.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
  return json{{"architectures", {"GptOssForCausalLM"}},
              {"attention_bias", true},
              {"attention_dropout", 0.0},
              {"eos_token_id", 200002},
              {"experts_per_token", 4},
              {"head_dim", 64},
              {"hidden_act", "silu"},
              {"hidden_size", 2880},
              {"initial_context_length", 4096},
              {"initializer_range", 0.02},
              {"intermediate_size", 2880},
              {"layer_types", layer_types},
              {"max_position_embeddings", 131072},
              {"model_type", "gpt_oss"},
              {"num_attention_heads", 64},
              {"num_experts_per_tok", 4},
              {"num_hidden_layers", 24},
              {"num_key_value_heads", 8},
              {"num_local_experts", 32},
              {"output_router_logits", false},
              {"pad_token_id", 199999},
              {"quantization_config",
               {{"quant_method", "mxfp4"},
                {"modules_to_not_convert",
                 {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                  "lm_head"}}}},
              {"rms_norm_eps", 1e-05},
              {"rope_scaling",
               {{"beta_fast", 32.0},
                {"beta_slow", 1.0},
                {"factor", 32.0},
                {"original_max_position_embeddings", 4096},
                {"rope_type", "yarn"},
                {"truncate", false}}},
              {"rope_theta", 150000},
              {"router_aux_loss_coef", 0.9},
              {"sliding_window", 128},
              {"swiglu_limit", 7.0},
              {"tie_word_embeddings", false},
              {"transformers_version", "4.55.0.dev0"},
              {"use_cache", true},
              {"vocab_size", 201088}};
}

void expect_20b(const ModelConfig& c) {
  EXPECT_EQ(c.num_layers, 24);
  EXPECT_EQ(c.hidden_size, 2880);
  EXPECT_EQ(c.num_heads, 64);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_experts, 32);
  EXPECT_EQ(c.experts_per_token, 4);
  EXPECT_EQ(c.intermediate_size, 2880);
  EXPECT_EQ(c.vocab_size, 201088);
  EXPECT_EQ(c.sliding_window, 128);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_FLOAT_EQ(c.rope_theta, 150000.0f);
  EXPECT_FLOAT_EQ(c.rope_scaling_factor, 32.0f);
  EXPECT_FLOAT_EQ(c.rope_beta_fast, 32.0f);
  EXPECT_FLOAT_EQ(c.rope_beta_slow, 1.0f);
  EXPECT_EQ(c.rope_original_max_position, 4096);
  EXPECT_FALSE(c.rope_truncate);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.swiglu_limit, 7.0f);
  ASSERT_EQ(c.layer_is_sliding.size(), 24u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(c.layer_is_sliding[i], i % 2 == 0) << i;
}

Expected<ModelConfig> hf(const json& j) { return parse_hf_config(j.dump(), "config.json"); }

void expect_hf_error(const json& j, const std::string& fragment) {
  auto r = hf(j);
  ASSERT_FALSE(r.has_value()) << "accepted: " << j.dump();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().rfind("config.json: ", 0), 0u) << r.status().message();
}

TEST(HfConfig, HubConfigWithRopeScaling) {
  auto r = hf(hub_20b());
  ASSERT_TRUE(r.has_value()) << r.status().message();
  expect_20b(*r);
  EXPECT_EQ(r->eos_token_ids, std::vector<int>{200002});
}

// The built-in 20b architecture (benches and memory plans without a checkpoint) is the hub's
// config.json + generation_config.json, field by field.
TEST(HfConfig, BuiltIn20bMatchesTheHubFiles) {
  ModelConfig hub = *hf(hub_20b());
  ASSERT_TRUE(apply_generation_config(R"({"eos_token_id": [200002, 199999, 200012]})", "generation_config.json", &hub));
  const ModelConfig b = gpt_oss_20b_config();
  EXPECT_TRUE(validate_config(b, "built-in").ok());
  EXPECT_EQ(b.num_layers, hub.num_layers);
  EXPECT_EQ(b.hidden_size, hub.hidden_size);
  EXPECT_EQ(b.num_heads, hub.num_heads);
  EXPECT_EQ(b.num_kv_heads, hub.num_kv_heads);
  EXPECT_EQ(b.head_dim, hub.head_dim);
  EXPECT_EQ(b.num_experts, hub.num_experts);
  EXPECT_EQ(b.experts_per_token, hub.experts_per_token);
  EXPECT_EQ(b.intermediate_size, hub.intermediate_size);
  EXPECT_EQ(b.vocab_size, hub.vocab_size);
  EXPECT_EQ(b.sliding_window, hub.sliding_window);
  EXPECT_EQ(b.max_position_embeddings, hub.max_position_embeddings);
  EXPECT_EQ(b.rope_theta, hub.rope_theta);
  EXPECT_EQ(b.rope_scaling_factor, hub.rope_scaling_factor);
  EXPECT_EQ(b.rope_beta_fast, hub.rope_beta_fast);
  EXPECT_EQ(b.rope_beta_slow, hub.rope_beta_slow);
  EXPECT_EQ(b.rope_original_max_position, hub.rope_original_max_position);
  EXPECT_EQ(b.rope_truncate, hub.rope_truncate);
  EXPECT_EQ(b.rms_norm_eps, hub.rms_norm_eps);
  EXPECT_EQ(b.swiglu_limit, hub.swiglu_limit);
  EXPECT_EQ(b.swiglu_alpha, hub.swiglu_alpha);
  EXPECT_EQ(b.layer_is_sliding, hub.layer_is_sliding);
  EXPECT_EQ(b.eos_token_ids, hub.eos_token_ids);
}

TEST(HfConfig, NewerRopeParametersWithThetaInside) {
  json j = hub_20b();
  json rp = j["rope_scaling"];
  rp["rope_theta"] = 150000.0;
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = rp;
  auto r = hf(j);
  ASSERT_TRUE(r.has_value()) << r.status().message();
  expect_20b(*r);
  // rope_theta inside rope_parameters wins over a stale top-level one.
  j["rope_theta"] = 10000;
  j["rope_parameters"]["rope_theta"] = 50000;
  auto r2 = hf(j);
  ASSERT_TRUE(r2.has_value());
  EXPECT_FLOAT_EQ(r2->rope_theta, 50000.0f);
}

TEST(HfConfig, DefaultsFollowTransformers) {
  // transformers' GptOssConfig defaults: 36 layers, 128 experts, YaRN 32, even layers slide.
  auto r = hf(json{{"model_type", "gpt_oss"}});
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_EQ(r->num_layers, 36);
  EXPECT_EQ(r->num_experts, 128);
  EXPECT_EQ(r->num_kv_heads, 8);
  EXPECT_EQ(r->head_dim, 64);
  EXPECT_FLOAT_EQ(r->rope_scaling_factor, 32.0f);
  EXPECT_FALSE(r->rope_truncate);
  EXPECT_TRUE(r->layer_is_sliding[0]);
  EXPECT_FALSE(r->layer_is_sliding[1]);
  EXPECT_TRUE(r->eos_token_ids.empty());
  // Explicit null kv heads / head_dim mean "same as query heads" / hidden / heads.
  auto n = hf(json{{"num_key_value_heads", nullptr},
                   {"head_dim", nullptr},
                   {"hidden_size", 4096},
                   {"num_attention_heads", 32}});
  ASSERT_TRUE(n.has_value()) << n.status().message();
  EXPECT_EQ(n->num_kv_heads, 32);
  EXPECT_EQ(n->head_dim, 128);
  // A yarn dict without "truncate" truncates (transformers' default).
  json j = hub_20b();
  j["rope_scaling"].erase("truncate");
  EXPECT_TRUE(hf(j)->rope_truncate);
}

TEST(HfConfig, LayerTypesAndSlidingWindow) {
  json j = hub_20b();
  j["layer_types"][0] = "full_attention";
  j["layer_types"][1] = "sliding_attention";
  auto r = hf(j);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->layer_is_sliding[0]);
  EXPECT_TRUE(r->layer_is_sliding[1]);
  j = hub_20b();
  j["layer_types"].erase(0);
  expect_hf_error(j, "'layer_types' has 23 entries but num_hidden_layers is 24");
  j = hub_20b();
  j["layer_types"][3] = "local";
  expect_hf_error(j, "layer_types[3]");
  j = hub_20b();
  j["sliding_window"] = nullptr;
  expect_hf_error(j, "sliding_window");
  json all_full = json::array();
  for (int i = 0; i < 24; ++i) all_full.push_back("full_attention");
  j["layer_types"] = all_full;
  auto nf = hf(j);
  ASSERT_TRUE(nf.has_value()) << nf.status().message();
  EXPECT_EQ(nf->sliding_window, 0);
}

TEST(HfConfig, RopeVariants) {
  json j = hub_20b();
  j["rope_scaling"] = {{"rope_type", "default"}};
  auto r = hf(j);
  ASSERT_TRUE(r.has_value());
  EXPECT_FLOAT_EQ(r->rope_scaling_factor, 1.0f);
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 8}, {"original_max_position_embeddings", 2048}};
  r = hf(j);
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_FLOAT_EQ(r->rope_scaling_factor, 8.0f);
  EXPECT_EQ(r->rope_original_max_position, 2048);
  EXPECT_FLOAT_EQ(r->rope_beta_fast, 32.0f);
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  expect_hf_error(j, "'rope_scaling.rope_type' is 'linear'");
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"original_max_position_embeddings", 4096}};
  expect_hf_error(j, "missing required field 'rope_scaling.factor'");
  j["rope_scaling"] = {{"rope_type", "yarn"},
                       {"factor", 32.0},
                       {"original_max_position_embeddings", 4096},
                       {"mscale", 1.0}};
  expect_hf_error(j, "rope_scaling.mscale");
  j["rope_scaling"] = {
      {"rope_type", "yarn"}, {"factor", 0.5}, {"original_max_position_embeddings", 4096}};
  expect_hf_error(j, "rope scaling factor = 0.5");
  j["rope_scaling"] = "yarn";
  expect_hf_error(j, "'rope_scaling' must be an object");
}

TEST(HfConfig, OutOfRangeValues) {
  auto with = [](const char* key, json v) {
    json j = hub_20b();
    j[key] = v;
    return j;
  };
  expect_hf_error(with("hidden_size", 0), "hidden_size = 0 must be positive");
  expect_hf_error(with("num_hidden_layers", -2), "num_hidden_layers = -2 must be positive");
  expect_hf_error(with("vocab_size", 1 << 30), "vocab_size = 1073741824 is absurdly large");
  expect_hf_error(with("num_key_value_heads", 7), "not a multiple of num_key_value_heads = 7");
  expect_hf_error(with("head_dim", 63), "head_dim = 63 must be even");
  expect_hf_error(with("num_experts_per_tok", 33),
                  "num_experts_per_tok = 33 exceeds num_local_experts = 32");
  expect_hf_error(with("hidden_size", 2881), "not a multiple of 32");
  expect_hf_error(with("intermediate_size", 100),
                  "intermediate_size = 100 is not a multiple of 32");
  expect_hf_error(with("rms_norm_eps", -1.0), "rms_norm_eps");
  expect_hf_error(with("swiglu_limit", 0.0), "swiglu_limit");
  expect_hf_error(with("rope_theta", 0), "rope_theta");
  expect_hf_error(with("hidden_size", "2880"), "field 'hidden_size' must be an integer");
  expect_hf_error(with("hidden_size", 2880.5), "field 'hidden_size' must be an integer");
  expect_hf_error(with("num_hidden_layers", 1e300), "must be an integer");
  {  // without layer_types: named at once, no per-layer list built first (a fuzzer timeout)
    json j = with("num_hidden_layers", 666666688);
    j.erase("layer_types");
    expect_hf_error(j, "num_hidden_layers = 666666688 is absurdly large");
  }
  expect_hf_error(with("num_local_experts", 9999999999LL), "out of range");
  expect_hf_error(with("model_type", "llama"), "model_type is \"llama\"");
  expect_hf_error(with("eos_token_id", 300000), "eos_token_id 300000");
  expect_hf_error(with("eos_token_id", "x"), "eos_token_id");
  expect_hf_error(with("tie_word_embeddings", true), "tie_word_embeddings");
  expect_hf_error(with("rms_norm_eps", "small"), "must be a number");
  auto bad = parse_hf_config("{\"hidden_size\": ", "cfg/config.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.status().message().find("cfg/config.json: not valid JSON"), std::string::npos);
  EXPECT_FALSE(parse_hf_config("[1]", "config.json").has_value());
  // Integral floats are fine.
  EXPECT_TRUE(hf(with("hidden_size", 2880.0)).has_value());
}

TEST(OriginalConfig, Parses20b) {
  const char* text = R"({"num_hidden_layers": 24, "num_experts": 32, "experts_per_token": 4,
    "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "swiglu_limit": 7.0,
    "head_dim": 64, "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128,
    "initial_context_length": 4096, "rope_theta": 150000, "rope_scaling_factor": 32.0,
    "rope_ntk_alpha": 1.0, "rope_ntk_beta": 32.0})";
  auto r = parse_original_config(text, "original/config.json");
  ASSERT_TRUE(r.has_value()) << r.status().message();
  expect_20b(*r);
  auto bad = parse_original_config(R"({"num_experts": 4, "experts_per_token": 5})",
                                   "original/config.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.status().message().find("original/config.json: num_experts_per_tok = 5 exceeds"),
            std::string::npos);
  auto beta = parse_original_config(R"({"rope_ntk_alpha": 32.0, "rope_ntk_beta": 1.0})", "c.json");
  ASSERT_FALSE(beta.has_value());
  EXPECT_NE(beta.status().message().find("beta_fast > beta_slow"), std::string::npos);
}

TEST(GenerationConfig, EosListOrInt) {
  ModelConfig c = *hf(hub_20b());
  ASSERT_TRUE(apply_generation_config(
      R"({"bos_token_id": 199998, "do_sample": true, "eos_token_id": [200002, 199999, 200012],
          "pad_token_id": 199999, "transformers_version": "4.55.0.dev0"})",
      "generation_config.json", &c));
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{200002, 199999, 200012}));
  ASSERT_TRUE(apply_generation_config(R"({"eos_token_id": 7})", "g.json", &c));
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{7});
  ASSERT_TRUE(apply_generation_config(R"({"do_sample": false})", "g.json", &c));
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{7});  // unchanged
  Status s = apply_generation_config(R"({"eos_token_id": [1, -3]})", "g.json", &c);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("g.json: 'eos_token_id'"), std::string::npos) << s.message();
  EXPECT_FALSE(apply_generation_config(R"({"eos_token_id": [999999999]})", "g.json", &c));
  EXPECT_FALSE(apply_generation_config("nope", "g.json", &c));
}

}  // namespace
}  // namespace gptoss
