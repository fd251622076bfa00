#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "formats/tensor.h"
#include "model/json_object.h"

namespace gptoss {

using nlohmann::json;

namespace {

// Reads JSON fields with type checks; every error names the file and the field.
class Fields {
 public:
  Fields(const json& obj, std::string file, std::string prefix = "")
      : obj_(obj), file_(std::move(file)), prefix_(std::move(prefix)) {}

  bool present(const char* key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }
  const json* raw(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  // Integer field; JSON null or absence gives `def`. Integral floats (4096.0) are accepted.
  Expected<int64_t> integer(const char* key, std::optional<int64_t> def) const {
    const json* v = raw(key);
    if (!v) {
      if (def) return *def;
      return Error("{}: missing required field '{}{}'", file_, prefix_, key);
    }
    if (v->is_number_integer()) return v->get<int64_t>();
    if (v->is_number_float()) {
      double d = v->get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
        return static_cast<int64_t>(d);
    }
    return Error("{}: field '{}{}' must be an integer, got {}", file_, prefix_, key, v->dump());
  }
  Expected<int> int32(const char* key, std::optional<int64_t> def) const {
    GPTOSS_ASSIGN_OR_RETURN(int64_t x, integer(key, def));
    if (x < -(int64_t{1} << 31) || x >= (int64_t{1} << 31))
      return Error("{}: field '{}{}' = {} is out of range", file_, prefix_, key, x);
    return static_cast<int>(x);
  }
  Expected<float> number(const char* key, std::optional<double> def) const {
    const json* v = raw(key);
    if (!v) {
      if (def) return static_cast<float>(*def);
      return Error("{}: missing required field '{}{}'", file_, prefix_, key);
    }
    if (!v->is_number())
      return Error("{}: field '{}{}' must be a number, got {}", file_, prefix_, key, v->dump());
    double d = v->get<double>();
    if (!std::isfinite(d) || std::fabs(d) > 3e38)
      return Error("{}: field '{}{}' = {} is not a finite float", file_, prefix_, key, v->dump());
    return static_cast<float>(d);
  }
  Expected<bool> boolean(const char* key, bool def) const {
    const json* v = raw(key);
    if (!v) return def;
    if (!v->is_boolean())
      return Error("{}: field '{}{}' must be true or false, got {}", file_, prefix_, key,
                   v->dump());
    return v->get<bool>();
  }

 private:
  const json& obj_;
  std::string file_;
  std::string prefix_;
};

Expected<std::vector<int>> parse_token_ids(const json& v, const std::string& file,
                                           const char* field) {
  std::vector<int> out;
  auto one = [&](const json& x) -> Status {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= (int64_t{1} << 31))
      return Error("{}: '{}' must hold non-negative integer token ids, got {}", file, field,
                   x.dump());
    out.push_back(static_cast<int>(x.get<int64_t>()));
    return Status::ok();
  };
  if (v.is_null()) return out;
  if (v.is_array()) {
    for (const auto& x : v) GPTOSS_RETURN_IF_ERROR(one(x));
  } else {
    GPTOSS_RETURN_IF_ERROR(one(v));
  }
  return out;
}

// rope_scaling / rope_parameters object (or null: transformers then uses gpt-oss's YaRN defaults).
Status parse_rope(const json* rope, const char* key, const std::string& file, ModelConfig* c) {
  if (!rope) {
    c->rope_scaling_factor = 32.0f;
    c->rope_beta_fast = 32.0f;
    c->rope_beta_slow = 1.0f;
    c->rope_original_max_position = 4096;
    c->rope_truncate = false;
    return Status::ok();
  }
  if (!rope->is_object()) return Error("{}: '{}' must be an object or null", file, key);
  Fields f(*rope, file, std::string(key) + ".");
  std::string type = "default";
  for (const char* k : {"rope_type", "type"}) {
    if (const json* t = f.raw(k)) {
      if (!t->is_string()) return Error("{}: '{}.{}' must be a string", file, key, k);
      type = t->get<std::string>();
      break;
    }
  }
  for (const char* k : {"attention_factor", "mscale", "mscale_all_dim"})
    if (f.present(k))
      return Error("{}: '{}.{}' is not supported for gpt-oss (YaRN concentration is fixed)", file,
                   key, k);
  if (f.present("partial_rotary_factor")) {
    GPTOSS_ASSIGN_OR_RETURN(float p, f.number("partial_rotary_factor", 1.0));
    if (p != 1.0f)
      return Error("{}: '{}.partial_rotary_factor' = {} is not supported (must be 1)", file, key,
                   p);
  }
  if (type == "default") {
    c->rope_scaling_factor = 1.0f;
    return Status::ok();
  }
  if (type != "yarn")
    return Error("{}: '{}.rope_type' is '{}'; gpt-oss uses 'yarn' (or 'default')", file, key, type);
  GPTOSS_ASSIGN_OR_RETURN(c->rope_scaling_factor, f.number("factor", std::nullopt));
  // transformers: `beta_fast or 32`, `beta_slow or 1`, truncate defaults to true.
  GPTOSS_ASSIGN_OR_RETURN(c->rope_beta_fast, f.number("beta_fast", 32.0));
  GPTOSS_ASSIGN_OR_RETURN(c->rope_beta_slow, f.number("beta_slow", 1.0));
  if (c->rope_beta_fast == 0.0f) c->rope_beta_fast = 32.0f;
  if (c->rope_beta_slow == 0.0f) c->rope_beta_slow = 1.0f;
  GPTOSS_ASSIGN_OR_RETURN(c->rope_original_max_position,
                          f.int32("original_max_position_embeddings", std::nullopt));
  GPTOSS_ASSIGN_OR_RETURN(c->rope_truncate, f.boolean("truncate", true));
  return Status::ok();
}

constexpr int kMaxLayers = 4096;  // validate_config's bound on num_hidden_layers

// Out-of-range layer counts get no list here: validate_config names them (a count of 666666688
// once took the fuzzer's 10 s building one).
void default_layer_types(ModelConfig* c) {
  if (c->num_layers <= 0 || c->num_layers > kMaxLayers) return;
  c->layer_is_sliding.assign(static_cast<size_t>(c->num_layers), false);
  for (size_t i = 0; i < c->layer_is_sliding.size(); i += 2) c->layer_is_sliding[i] = true;
}

}  // namespace

Expected<ModelConfig> parse_hf_config(const std::string& json_text, const std::string& file) {
  GPTOSS_ASSIGN_OR_RETURN(json j, parse_json_object(json_text, file));
  Fields f(j, file);
  if (const json* mt = f.raw("model_type")) {
    if (!mt->is_string() || mt->get<std::string>() != "gpt_oss")
      return Error("{}: model_type is {}, expected \"gpt_oss\"", file, mt->dump());
  }
  ModelConfig c;
  // Defaults are transformers' GptOssConfig defaults (which describe gpt-oss-120b).
  GPTOSS_ASSIGN_OR_RETURN(c.num_layers, f.int32("num_hidden_layers", 36));
  GPTOSS_ASSIGN_OR_RETURN(c.hidden_size, f.int32("hidden_size", 2880));
  GPTOSS_ASSIGN_OR_RETURN(c.num_heads, f.int32("num_attention_heads", 64));
  GPTOSS_ASSIGN_OR_RETURN(c.num_kv_heads, f.int32("num_key_value_heads", c.num_heads));
  if (!f.present("num_key_value_heads") && j.find("num_key_value_heads") == j.end())
    c.num_kv_heads = 8;  // absent: the class default; explicit null: same as query heads
  GPTOSS_ASSIGN_OR_RETURN(c.head_dim,
                          f.int32("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0));
  if (!f.present("head_dim") && j.find("head_dim") == j.end()) c.head_dim = 64;
  const char* experts_key = f.present("num_local_experts") ? "num_local_experts" : "num_experts";
  GPTOSS_ASSIGN_OR_RETURN(c.num_experts, f.int32(experts_key, 128));
  const char* topk_key =
      f.present("num_experts_per_tok") ? "num_experts_per_tok" : "experts_per_token";
  GPTOSS_ASSIGN_OR_RETURN(c.experts_per_token, f.int32(topk_key, 4));
  GPTOSS_ASSIGN_OR_RETURN(c.intermediate_size, f.int32("intermediate_size", 2880));
  GPTOSS_ASSIGN_OR_RETURN(c.vocab_size, f.int32("vocab_size", 201088));
  if (j.contains("sliding_window") && j["sliding_window"].is_null()) {
    c.sliding_window = 0;
  } else {
    GPTOSS_ASSIGN_OR_RETURN(c.sliding_window, f.int32("sliding_window", 128));
  }
  GPTOSS_ASSIGN_OR_RETURN(c.max_position_embeddings, f.int32("max_position_embeddings", 131072));
  GPTOSS_ASSIGN_OR_RETURN(c.rms_norm_eps, f.number("rms_norm_eps", 1e-5));
  GPTOSS_ASSIGN_OR_RETURN(c.swiglu_limit, f.number("swiglu_limit", 7.0));
  GPTOSS_ASSIGN_OR_RETURN(c.swiglu_alpha, f.number("swiglu_alpha", 1.702));

  // rope_parameters (newer transformers, holds rope_theta) wins over rope_scaling (older).
  const char* rope_key = j.contains("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const json* rope = f.raw(rope_key);
  GPTOSS_RETURN_IF_ERROR(parse_rope(rope, rope_key, file, &c));
  double theta = 150000.0;
  if (rope && rope->is_object() && rope->contains("rope_theta")) {
    GPTOSS_ASSIGN_OR_RETURN(
        c.rope_theta, Fields(*rope, file, std::string(rope_key) + ".").number("rope_theta", theta));
  } else {
    GPTOSS_ASSIGN_OR_RETURN(c.rope_theta, f.number("rope_theta", theta));
  }

  if (const json* lt = f.raw("layer_types")) {
    if (!lt->is_array()) return Error("{}: 'layer_types' must be a list of strings", file);
    if (c.num_layers > 0 && static_cast<int64_t>(lt->size()) != c.num_layers)
      return Error("{}: 'layer_types' has {} entries but num_hidden_layers is {}", file, lt->size(),
                   c.num_layers);
    for (size_t i = 0; i < lt->size(); ++i) {
      const json& t = (*lt)[i];
      if (t == "sliding_attention") {
        c.layer_is_sliding.push_back(true);
      } else if (t == "full_attention") {
        c.layer_is_sliding.push_back(false);
      } else {
        return Error(
            "{}: layer_types[{}] is {}, expected \"sliding_attention\" or \"full_attention\"", file,
            i, t.dump());
      }
    }
  } else {
    default_layer_types(&c);
  }
  GPTOSS_ASSIGN_OR_RETURN(bool tied, f.boolean("tie_word_embeddings", false));
  if (tied)
    return Error("{}: tie_word_embeddings=true is not supported (gpt-oss has lm_head)", file);
  GPTOSS_ASSIGN_OR_RETURN(bool bias, f.boolean("attention_bias", true));
  if (!bias) return Error("{}: attention_bias=false is not supported (gpt-oss has biases)", file);
  if (const json* eos = f.raw("eos_token_id")) {
    GPTOSS_ASSIGN_OR_RETURN(c.eos_token_ids, parse_token_ids(*eos, file, "eos_token_id"));
  }
  GPTOSS_RETURN_IF_ERROR(validate_config(c, file));
  return c;
}

Expected<ModelConfig> parse_original_config(const std::string& json_text, const std::string& file) {
  GPTOSS_ASSIGN_OR_RETURN(json j, parse_json_object(json_text, file));
  Fields f(j, file);
  // The reference builds its dataclass from this JSON; its defaults are the 120b values.
  ModelConfig c;
  GPTOSS_ASSIGN_OR_RETURN(c.num_layers, f.int32("num_hidden_layers", 36));
  GPTOSS_ASSIGN_OR_RETURN(c.num_experts, f.int32("num_experts", 128));
  GPTOSS_ASSIGN_OR_RETURN(c.experts_per_token, f.int32("experts_per_token", 4));
  GPTOSS_ASSIGN_OR_RETURN(c.vocab_size, f.int32("vocab_size", 201088));
  GPTOSS_ASSIGN_OR_RETURN(c.hidden_size, f.int32("hidden_size", 2880));
  GPTOSS_ASSIGN_OR_RETURN(c.intermediate_size, f.int32("intermediate_size", 2880));
  GPTOSS_ASSIGN_OR_RETURN(c.swiglu_limit, f.number("swiglu_limit", 7.0));
  GPTOSS_ASSIGN_OR_RETURN(c.head_dim, f.int32("head_dim", 64));
  GPTOSS_ASSIGN_OR_RETURN(c.num_heads, f.int32("num_attention_heads", 64));
  GPTOSS_ASSIGN_OR_RETURN(c.num_kv_heads, f.int32("num_key_value_heads", 8));
  GPTOSS_ASSIGN_OR_RETURN(c.sliding_window, f.int32("sliding_window", 128));
  GPTOSS_ASSIGN_OR_RETURN(c.rope_original_max_position, f.int32("initial_context_length", 4096));
  GPTOSS_ASSIGN_OR_RETURN(c.rope_theta, f.number("rope_theta", 150000.0));
  GPTOSS_ASSIGN_OR_RETURN(c.rope_scaling_factor, f.number("rope_scaling_factor", 32.0));
  GPTOSS_ASSIGN_OR_RETURN(c.rope_beta_slow, f.number("rope_ntk_alpha", 1.0));
  GPTOSS_ASSIGN_OR_RETURN(c.rope_beta_fast, f.number("rope_ntk_beta", 32.0));
  c.rope_truncate = false;
  c.rms_norm_eps = 1e-5f;
  c.swiglu_alpha = 1.702f;
  const double ctx = static_cast<double>(c.rope_original_max_position) * c.rope_scaling_factor;
  if (!(ctx >= 1.0 && ctx < 2147483647.0))
    return Error("{}: initial_context_length * rope_scaling_factor = {} is out of range", file,
                 ctx);
  c.max_position_embeddings = static_cast<int>(ctx);
  default_layer_types(&c);
  GPTOSS_RETURN_IF_ERROR(validate_config(c, file));
  return c;
}

Status apply_generation_config(const std::string& json_text, const std::string& file,
                               ModelConfig* config) {
  GPTOSS_ASSIGN_OR_RETURN(json j, parse_json_object(json_text, file));
  auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return Status::ok();
  GPTOSS_ASSIGN_OR_RETURN(std::vector<int> ids, parse_token_ids(*it, file, "eos_token_id"));
  for (int id : ids)
    if (id >= config->vocab_size)
      return Error("{}: eos_token_id {} is not below vocab_size {}", file, id, config->vocab_size);
  config->eos_token_ids = std::move(ids);
  return Status::ok();
}

Status validate_config(const ModelConfig& c, const std::string& file) {
  struct Bound {
    const char* name;
    int value;
    int max;
  };
  // Upper bounds far above any real model keep every derived size inside 64-bit arithmetic.
  const Bound bounds[] = {
      {"num_hidden_layers", c.num_layers, kMaxLayers},
      {"hidden_size", c.hidden_size, 1 << 20},
      {"num_attention_heads", c.num_heads, 1 << 14},
      {"num_key_value_heads", c.num_kv_heads, 1 << 14},
      {"head_dim", c.head_dim, 1 << 14},
      {"num_local_experts", c.num_experts, 1 << 16},
      {"num_experts_per_tok", c.experts_per_token, 1 << 16},
      {"intermediate_size", c.intermediate_size, 1 << 20},
      {"vocab_size", c.vocab_size, 1 << 24},
      {"max_position_embeddings", c.max_position_embeddings, 1 << 30},
      {"original_max_position_embeddings", c.rope_original_max_position, 1 << 30},
  };
  for (const auto& b : bounds) {
    if (b.value <= 0) return Error("{}: {} = {} must be positive", file, b.name, b.value);
    if (b.value > b.max)
      return Error("{}: {} = {} is absurdly large (limit {})", file, b.name, b.value, b.max);
  }
  if (c.num_heads % c.num_kv_heads != 0)
    return Error("{}: num_attention_heads = {} is not a multiple of num_key_value_heads = {}", file,
                 c.num_heads, c.num_kv_heads);
  if (c.head_dim % 2 != 0)
    return Error("{}: head_dim = {} must be even (RoPE rotates pairs)", file, c.head_dim);
  if (c.experts_per_token > c.num_experts)
    return Error("{}: num_experts_per_tok = {} exceeds num_local_experts = {}", file,
                 c.experts_per_token, c.num_experts);
  if (c.hidden_size % 32 != 0)
    return Error("{}: hidden_size = {} is not a multiple of 32 (the MXFP4 block size)", file,
                 c.hidden_size);
  if (c.intermediate_size % 32 != 0)
    return Error("{}: intermediate_size = {} is not a multiple of 32 (the MXFP4 block size)", file,
                 c.intermediate_size);
  if (static_cast<int>(c.layer_is_sliding.size()) != c.num_layers)
    return Error("{}: {} layer types for {} layers", file, c.layer_is_sliding.size(), c.num_layers);
  bool any_sliding = false;
  for (bool s : c.layer_is_sliding) any_sliding = any_sliding || s;
  if (c.sliding_window < 0 || (any_sliding && c.sliding_window == 0))
    return Error("{}: sliding_window = {} must be positive when a layer uses sliding attention",
                 file, c.sliding_window);
  if (!(c.rope_theta > 1.0f))
    return Error("{}: rope_theta = {} must be greater than 1", file, c.rope_theta);
  if (!(c.rope_scaling_factor >= 1.0f))
    return Error("{}: rope scaling factor = {} must be at least 1", file, c.rope_scaling_factor);
  if (!(c.rope_beta_fast > 0.0f) || !(c.rope_beta_slow > 0.0f) ||
      !(c.rope_beta_fast > c.rope_beta_slow))
    return Error("{}: YaRN betas must satisfy beta_fast > beta_slow > 0 (got {} and {})", file,
                 c.rope_beta_fast, c.rope_beta_slow);
  if (!(c.rms_norm_eps > 0.0f) || c.rms_norm_eps > 1.0f)
    return Error("{}: rms_norm_eps = {} must be in (0, 1]", file, c.rms_norm_eps);
  if (!(c.swiglu_limit > 0.0f))
    return Error("{}: swiglu_limit = {} must be positive", file, c.swiglu_limit);
  for (int id : c.eos_token_ids)
    if (id >= c.vocab_size)
      return Error("{}: eos_token_id {} is not below vocab_size {}", file, id, c.vocab_size);
  return Status::ok();
}

ModelConfig gpt_oss_20b_config() {
  ModelConfig c;
  c.num_layers = 24;
  c.hidden_size = 2880;
  c.num_heads = 64;
  c.num_kv_heads = 8;
  c.head_dim = 64;
  c.num_experts = 32;
  c.experts_per_token = 4;
  c.intermediate_size = 2880;
  c.vocab_size = 201088;
  c.sliding_window = 128;
  c.max_position_embeddings = 131072;
  c.rope_theta = 150000.0f;
  c.rope_scaling_factor = 32.0f;
  c.rope_beta_fast = 32.0f;
  c.rope_beta_slow = 1.0f;
  c.rope_original_max_position = 4096;
  c.rope_truncate = false;
  c.rms_norm_eps = 1e-5f;
  c.swiglu_limit = 7.0f;
  c.swiglu_alpha = 1.702f;
  for (int l = 0; l < c.num_layers; ++l) c.layer_is_sliding.push_back(l % 2 == 0);
  c.eos_token_ids = {200002, 199999, 200012};
  return c;
}

}  // namespace gptoss
