// Model directories: the expected tensor set against published gpt-oss totals, and tiny
// checkpoints in each on-disk layout written here, including every directory-level error.
#include "model/model_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace gptoss {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

ModelConfig config_of(int layers, int experts) {
  ModelConfig c;
  c.num_layers = layers;
  c.hidden_size = 2880;
  c.num_heads = 64;
  c.num_kv_heads = 8;
  c.head_dim = 64;
  c.num_experts = experts;
  c.experts_per_token = 4;
  c.intermediate_size = 2880;
  c.vocab_size = 201088;
  return c;
}

uint64_t total_bytes(const std::vector<ExpectedTensor>& ts) {
  uint64_t n = 0;
  for (const auto& t : ts) {
    uint64_t e = dtype_size(t.dtype);
    for (auto d : t.shape) e *= static_cast<uint64_t>(d);
    n += e;
  }
  return n;
}

// Published numbers (reference §3a/§3b): tensor counts and index total_size of the hub files.
TEST(ExpectedTensors, MatchPublishedTotals) {
  auto hf20 = expected_tensors(config_of(24, 32), CheckpointLayout::kHF);
  EXPECT_EQ(hf20.size(), 459u);
  EXPECT_EQ(total_bytes(hf20), 13'761'264'768ull);
  auto orig20 = expected_tensors(config_of(24, 32), CheckpointLayout::kOriginal);
  EXPECT_EQ(orig20.size(), 363u);
  EXPECT_EQ(total_bytes(orig20), 13'761'264'768ull);
  auto hf120 = expected_tensors(config_of(36, 128), CheckpointLayout::kHF);
  EXPECT_EQ(hf120.size(), 687u);
  EXPECT_EQ(total_bytes(hf120), 65'248'815'744ull);
}

std::vector<TensorView> views_of(const std::vector<ExpectedTensor>& ts) {
  std::vector<TensorView> out;
  for (const auto& t : ts) {
    TensorView v;
    v.name = t.name;
    v.dtype = t.dtype;
    v.shape = t.shape;
    v.nbytes = static_cast<size_t>(v.numel()) * dtype_size(t.dtype);
    out.push_back(v);
  }
  return out;
}

// The model card's parameter counts: 20.91 B total / 3.61 B active (20b), 116.83 B / 5.13 B (120b).
TEST(WeightSummary, MatchesModelCardParameterCounts) {
  for (auto layout : {CheckpointLayout::kHF, CheckpointLayout::kOriginal}) {
    ModelConfig c20 = config_of(24, 32);
    WeightSummary w = summarize_weights(views_of(expected_tensors(c20, layout)), c20, layout);
    EXPECT_EQ(w.parameters, 20'914'757'184ull);
    EXPECT_EQ(w.active_parameters, 3'608'307'264ull);
    EXPECT_EQ(w.bytes_total, 13'761'264'768ull);
    EXPECT_EQ(w.bytes_mxfp4_blocks, 24ull * 32 * (5760 + 2880) * 90 * 16);
    EXPECT_EQ(w.bytes_mxfp4_scales, 24ull * 32 * (5760 + 2880) * 90);
    EXPECT_EQ(w.bytes_bf16 + w.bytes_mxfp4_blocks + w.bytes_mxfp4_scales, w.bytes_total);
    ModelConfig c120 = config_of(36, 128);
    WeightSummary w120 = summarize_weights(views_of(expected_tensors(c120, layout)), c120, layout);
    EXPECT_EQ(w120.parameters, 116'829'156'672ull);
    EXPECT_EQ(w120.active_parameters, 5'132'849'472ull);
  }
}

// A tiny gpt-oss: 2 layers, hidden 64, 4 heads of 16, 2 kv heads, 4 experts, intermediate 32.
json tiny_hf_config() {
  return json{{"model_type", "gpt_oss"},
              {"num_hidden_layers", 2},
              {"hidden_size", 64},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"head_dim", 16},
              {"num_local_experts", 4},
              {"num_experts_per_tok", 2},
              {"intermediate_size", 32},
              {"vocab_size", 100},
              {"sliding_window", 8},
              {"max_position_embeddings", 4096},
              {"eos_token_id", 5},
              {"rope_scaling",
               {{"rope_type", "yarn"},
                {"factor", 32.0},
                {"beta_fast", 32.0},
                {"beta_slow", 1.0},
                {"original_max_position_embeddings", 128},
                {"truncate", false}}},
              {"rope_theta", 150000}};
}
json tiny_original_config() {
  return json{{"num_hidden_layers", 2},
              {"num_experts", 4},
              {"experts_per_token", 2},
              {"vocab_size", 100},
              {"hidden_size", 64},
              {"intermediate_size", 32},
              {"head_dim", 16},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"sliding_window", 8},
              {"initial_context_length", 128},
              {"rope_theta", 150000},
              {"rope_scaling_factor", 32.0},
              {"rope_ntk_alpha", 1.0},
              {"rope_ntk_beta", 32.0}};
}

// Writes a safetensors file holding `tensors` (bytes = index pattern), in order.
void write_safetensors(const fs::path& path, const std::vector<ExpectedTensor>& tensors) {
  json h = json::object();
  uint64_t off = 0;
  for (const auto& t : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (auto d : t.shape) n *= static_cast<uint64_t>(d);
    h[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string header = h.dump();
  std::ofstream out(path, std::ios::binary);
  uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
  out << header;
  for (uint64_t i = 0; i < off; ++i) out.put(static_cast<char>(i & 0x7f));
}

class ModelDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           (std::string("gptoss_md_") +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_text(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }
  ModelConfig tiny() { return *parse_hf_config(tiny_hf_config().dump(), "c"); }
  // HF layout split over two shards with an index.
  void write_sharded_hf(const fs::path& d) {
    fs::create_directories(d);
    write_text(d / "config.json", tiny_hf_config().dump());
    auto ts = expected_tensors(tiny(), CheckpointLayout::kHF);
    std::vector<ExpectedTensor> a(ts.begin(), ts.begin() + 20), b(ts.begin() + 20, ts.end());
    write_safetensors(d / "model-00000-of-00001.safetensors", a);
    write_safetensors(d / "model-00001-of-00001.safetensors", b);
    json wm = json::object();
    for (const auto& t : a) wm[t.name] = "model-00000-of-00001.safetensors";
    for (const auto& t : b) wm[t.name] = "model-00001-of-00001.safetensors";
    write_text(d / "model.safetensors.index.json",
               json{{"metadata", {{"total_size", 0}}}, {"weight_map", wm}}.dump());
  }
  std::string open_error(const fs::path& d) {
    auto r = open_model_dir(d.string());
    EXPECT_FALSE(r.has_value());
    return r.has_value() ? std::string() : r.status().message();
  }
  fs::path dir_;
};

TEST_F(ModelDirTest, SingleFileHf) {
  write_text(dir_ / "config.json", tiny_hf_config().dump());
  write_text(dir_ / "generation_config.json", R"({"eos_token_id": [5, 6, 7]})");
  write_text(dir_ / "tokenizer.json", "{}");
  write_safetensors(dir_ / "model.safetensors", expected_tensors(tiny(), CheckpointLayout::kHF));
  auto r = open_model_dir(dir_.string());
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_EQ(r->layout, CheckpointLayout::kHF);
  EXPECT_EQ(r->config.num_layers, 2);
  EXPECT_EQ(r->config.eos_token_ids, (std::vector<int>{5, 6, 7}));
  EXPECT_EQ(r->tensors.size(), 2u * 19 + 3);
  ASSERT_TRUE(r->tokenizer_json.has_value());
  auto blocks =
      r->tensors.get("model.layers.1.mlp.experts.down_proj_blocks", DType::kU8, {4, 64, 1, 16});
  ASSERT_TRUE(blocks.has_value()) << blocks.status().message();
}

TEST_F(ModelDirTest, ShardedHfWithIndex) {
  write_sharded_hf(dir_);
  auto r = open_model_dir(dir_.string());
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_EQ(r->tensors.files().size(), 2u);
  EXPECT_EQ(r->tensors.size(), 41u);
}

TEST_F(ModelDirTest, SingleFileWinsOverIndexLikeTransformers) {
  write_text(dir_ / "config.json", tiny_hf_config().dump());
  write_safetensors(dir_ / "model.safetensors", expected_tensors(tiny(), CheckpointLayout::kHF));
  write_text(dir_ / "model.safetensors.index.json",
             R"({"weight_map": {"lm_head.weight": "model-00000-of-00001.safetensors"}})");
  auto r = open_model_dir(dir_.string());
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_EQ(r->tensors.files(), std::vector<std::string>{(dir_ / "model.safetensors").string()});
}

TEST_F(ModelDirTest, OriginalLayoutDirectAndThroughParent) {
  fs::path o = dir_ / "original";
  fs::create_directories(o);
  write_text(o / "config.json", tiny_original_config().dump());
  write_text(dir_ / "generation_config.json", R"({"eos_token_id": 9})");
  ModelConfig c = *parse_original_config(tiny_original_config().dump(), "c");
  write_safetensors(o / "model.safetensors", expected_tensors(c, CheckpointLayout::kOriginal));
  for (const fs::path& d : {o, dir_}) {
    auto r = open_model_dir(d.string());
    ASSERT_TRUE(r.has_value()) << r.status().message();
    EXPECT_EQ(r->layout, CheckpointLayout::kOriginal);
    EXPECT_EQ(r->dir, o.string());
    EXPECT_EQ(r->config.max_position_embeddings, 128 * 32);
    EXPECT_EQ(r->config.eos_token_ids, std::vector<int>{9});
    EXPECT_EQ(r->tensors.size(), 2u * 15 + 3);
  }
}

TEST_F(ModelDirTest, MissingUnexpectedAndWrongTensors) {
  write_text(dir_ / "config.json", tiny_hf_config().dump());
  auto ts = expected_tensors(tiny(), CheckpointLayout::kHF);
  ts.erase(ts.begin() + 3);  // model.layers.0.self_attn.q_proj.bias
  ts.push_back({"model.layers.2.extra", DType::kBF16, {2}});
  ts[0].shape = {101, 64};    // embed_tokens
  ts[1].dtype = DType::kF16;  // layer 0 input_layernorm
  write_safetensors(dir_ / "model.safetensors", ts);
  std::string m = open_error(dir_);
  EXPECT_NE(m.find("1 missing tensor(s): model.layers.0.self_attn.q_proj.bias"), std::string::npos)
      << m;
  EXPECT_NE(m.find("1 unexpected tensor(s): model.layers.2.extra"), std::string::npos) << m;
  EXPECT_NE(
      m.find(
          "tensor 'model.embed_tokens.weight' is BF16 [101, 64], expected BF16 (or F32) [100, 64]"),
      std::string::npos)
      << m;
  EXPECT_NE(m.find("'model.layers.0.input_layernorm.weight' is F16 [64]"), std::string::npos) << m;
  // Without tensor-set validation the directory opens.
  OpenOptions o;
  o.validate_tensors = false;
  EXPECT_TRUE(open_model_dir(dir_.string(), o).has_value());
}

TEST_F(ModelDirTest, IndexErrors) {
  write_sharded_hf(dir_);
  fs::path idx = dir_ / "model.safetensors.index.json";
  json j = json::parse(std::ifstream(idx));
  json saved = j;

  j["weight_map"]["lm_head.weight"] = "model-00009-of-00001.safetensors";
  write_text(idx, j.dump());
  std::string m = open_error(dir_);
  EXPECT_NE(
      m.find("weight_map puts tensor 'lm_head.weight' in 'model-00009-of-00001.safetensors', but"),
      std::string::npos)
      << m;
  EXPECT_NE(m.find("does not exist"), std::string::npos) << m;

  j = saved;
  j["weight_map"]["model.layers.0.extra"] = "model-00000-of-00001.safetensors";
  write_text(idx, j.dump());
  m = open_error(dir_);
  EXPECT_NE(m.find("lists tensor 'model.layers.0.extra' in"), std::string::npos) << m;
  EXPECT_NE(m.find("but that shard does not contain it"), std::string::npos) << m;

  j = saved;
  j["weight_map"]["lm_head.weight"] = "model-00000-of-00001.safetensors";
  write_text(idx, j.dump());
  m = open_error(dir_);
  EXPECT_NE(m.find("lists tensor 'lm_head.weight' in"), std::string::npos) << m;
  EXPECT_NE(m.find("but it is in"), std::string::npos) << m;

  j = saved;
  j["weight_map"].erase("model.norm.weight");
  write_text(idx, j.dump());
  m = open_error(dir_);
  EXPECT_NE(m.find("holds tensor 'model.norm.weight', which the index does not list"),
            std::string::npos)
      << m;

  j = saved;
  j["weight_map"]["model.norm.weight"] = "../escape.safetensors";
  write_text(idx, j.dump());
  m = open_error(dir_);
  EXPECT_NE(m.find("is not a file inside"), std::string::npos) << m;

  write_text(idx, "{\"weight_map\": 3}");
  EXPECT_NE(open_error(dir_).find("missing \"weight_map\""), std::string::npos);
  write_text(idx, "{");
  EXPECT_NE(open_error(dir_).find("model.safetensors.index.json: not valid JSON"),
            std::string::npos);
}

TEST(SafetensorsIndex, ParsesFromBytes) {
  auto r = parse_safetensors_index(
      R"({"metadata": {"total_size": 4}, "weight_map": {"b": "s2.safetensors",
          "a": "s1.safetensors", "c": "s2.safetensors", "d": "sub/s3.safetensors"}})",
      "idx.json");
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_EQ(r->weight_map.size(), 4u);
  using P = std::pair<std::string, std::string>;
  // Unique shard names, sorted, each with the first tensor (in key order) that lives in it.
  EXPECT_EQ(r->shards, (std::vector<P>{P("s1.safetensors", "a"), P("s2.safetensors", "b"),
                                       P("sub/s3.safetensors", "d")}));
}

TEST(SafetensorsIndex, BadBytesAreErrorsNamingTheFile) {
  auto err = [](std::string_view text) {
    auto r = parse_safetensors_index(text, "idx.json");
    return r ? std::string("(parsed)") : r.status().message();
  };
  EXPECT_NE(err("{").find("idx.json: not valid JSON"), std::string::npos);
  EXPECT_NE(err("[1]").find("idx.json: must hold a JSON object"), std::string::npos);
  EXPECT_NE(err(R"({"weight_map": []})").find("missing \"weight_map\""), std::string::npos);
  EXPECT_NE(err(R"({"weight_map": {}})").find("\"weight_map\" is empty"), std::string::npos);
  EXPECT_NE(err(R"({"weight_map": {"a": 1}})").find("entry for 'a' must be a file name string"),
            std::string::npos);
  for (const char* bad :
       {R"({"weight_map": {"a": ""}})", R"({"weight_map": {"a": "/etc/x"}})",
        R"({"weight_map": {"a": "d/../../x"}})", R"({"weight_map": {"a": "x\u0000y"}})"})
    EXPECT_NE(err(bad).find("which is not a file inside the index's directory"), std::string::npos)
        << bad;
}

TEST_F(ModelDirTest, DirectoryErrors) {
  EXPECT_NE(open_error(dir_ / "nope").find("no such directory"), std::string::npos);
  EXPECT_NE(open_error(dir_).find("no config.json"), std::string::npos);
  write_text(dir_ / "config.json", tiny_hf_config().dump());
  EXPECT_NE(
      open_error(dir_).find("no model.safetensors.index.json, model.safetensors or original/"),
      std::string::npos);
  write_text(dir_ / "config.json", R"({"model_type": "gpt_oss", "hidden_size": 0})");
  write_safetensors(dir_ / "model.safetensors", {});
  std::string m = open_error(dir_);
  EXPECT_NE(m.find("config.json: hidden_size = 0 must be positive"), std::string::npos) << m;
  EXPECT_NE(open_error(dir_ / "config.json").find("not a directory"), std::string::npos);
  fs::resize_file(dir_ / "config.json", (64u << 20) + 1);  // sparse
  m = open_error(dir_);
  EXPECT_NE(m.find("config.json: 67108865 bytes is too large"), std::string::npos) << m;
  write_text(dir_ / "config.json", tiny_hf_config().dump());
  write_text(dir_ / "generation_config.json", R"({"eos_token_id": "x"})");
  m = open_error(dir_);
  EXPECT_NE(m.find("generation_config.json: 'eos_token_id'"), std::string::npos) << m;
}

}  // namespace
}  // namespace gptoss
