#include "model/model_files.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "model/json_object.h"

namespace gptoss {

namespace fs = std::filesystem;
using nlohmann::json;

const char* layout_name(CheckpointLayout layout) {
  return layout == CheckpointLayout::kHF ? "hf" : "original";
}

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// config.json, generation_config.json and the index are small (the 120b index is ~50 kB); a huge
// one is a wrong file, not something to read into memory.
constexpr uintmax_t kMaxJsonFileBytes = 64u << 20;

Expected<std::string> read_json_file(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > kMaxJsonFileBytes)
    return Error("{}: {} bytes is too large for this JSON file (limit {})", path, size,
                 kMaxJsonFileBytes);
  return read_text_file(path);
}

std::vector<std::string> list_safetensors(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".safetensors" && is_file(it->path()))
      out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// model.safetensors.index.json as found on disk: the parsed index plus the shard paths.
struct Index {
  std::string path;
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard file name
  std::vector<std::string> files;                               // unique shard paths, sorted
};

Expected<Index> read_index(const fs::path& dir) {
  Index idx;
  idx.path = (dir / kIndexName).string();
  GPTOSS_ASSIGN_OR_RETURN(std::string text, read_json_file(idx.path));
  GPTOSS_ASSIGN_OR_RETURN(SafetensorsIndex parsed, parse_safetensors_index(text, idx.path));
  for (const auto& [f, tensor] : parsed.shards) {
    fs::path p = dir / f;
    if (!is_file(p))
      return Error("{}: weight_map puts tensor '{}' in '{}', but {} does not exist", idx.path,
                   tensor, f, p.string());
    idx.files.push_back(p.string());
  }
  idx.weight_map = std::move(parsed.weight_map);
  return idx;
}

// Every tensor the index lists is in the shard it names, and every shard tensor is listed.
Status check_index(const Index& idx, const fs::path& dir, const TensorStore& store) {
  std::set<std::string> listed;
  for (const auto& [tensor, f] : idx.weight_map) {
    listed.insert(tensor);
    const std::string shard = (dir / f).string();
    const TensorView* t = store.find(tensor);
    if (!t)
      return Error("{}: lists tensor '{}' in {}, but that shard does not contain it", idx.path,
                   tensor, shard);
    if (t->file != shard)
      return Error("{}: lists tensor '{}' in {}, but it is in {}", idx.path, tensor, shard,
                   t->file);
  }
  for (const auto& t : store.tensors()) {
    if (!listed.count(t.name))
      return Error("{}: shard {} holds tensor '{}', which the index does not list", idx.path,
                   t.file, t.name);
  }
  return Status::ok();
}

Expected<TensorStore> open_checkpoint(const fs::path& dir, CheckpointLayout layout) {
  // transformers prefers model.safetensors over an index when both are present.
  if (layout == CheckpointLayout::kOriginal) {
    // The reference loader reads every *.safetensors in original/ and ignores any index (the 120b
    // original/ ships one, in a format nothing documents).
    auto files = list_safetensors(dir);
    if (files.empty()) return Error("{}: no .safetensors files", dir.string());
    return TensorStore::open(files);
  }
  if (is_file(dir / "model.safetensors"))
    return TensorStore::open({(dir / "model.safetensors").string()});
  if (is_file(dir / kIndexName)) {
    GPTOSS_ASSIGN_OR_RETURN(Index idx, read_index(dir));
    GPTOSS_ASSIGN_OR_RETURN(TensorStore store, TensorStore::open(idx.files));
    GPTOSS_RETURN_IF_ERROR(check_index(idx, dir, store));
    return store;
  }
  auto others = list_safetensors(dir);
  return Error("{}: no {} or model.safetensors{}", dir.string(), kIndexName,
               others.empty()
                   ? std::string()
                   : fmt::format(" ({} other .safetensors files need the index)", others.size()));
}

bool has_checkpoint(const fs::path& dir) {
  return is_file(dir / kIndexName) || !list_safetensors(dir).empty();
}

// HF config.json names model_type / architectures / num_local_experts; original/ never does.
Expected<CheckpointLayout> detect_layout(const std::string& text, const std::string& file) {
  GPTOSS_ASSIGN_OR_RETURN(json j, parse_json_object(text, file));
  for (const char* k : {"model_type", "architectures", "num_local_experts", "num_experts_per_tok"})
    if (j.contains(k)) return CheckpointLayout::kHF;
  return CheckpointLayout::kOriginal;
}

std::string join_limited(const std::vector<std::string>& items, size_t limit = 8) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < limit; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > limit) s += fmt::format(", ... ({} more)", items.size() - limit);
  return s;
}

}  // namespace

Expected<SafetensorsIndex> parse_safetensors_index(std::string_view text, const std::string& path) {
  GPTOSS_ASSIGN_OR_RETURN(json j, parse_json_object(text, path));
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object())
    return Error("{}: missing \"weight_map\" object (tensor name -> shard file)", path);
  if (wm->empty()) return Error("{}: \"weight_map\" is empty", path);
  SafetensorsIndex idx;
  std::map<std::string, std::string> first_tensor_of_file;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      return Error("{}: weight_map entry for '{}' must be a file name string", path,
                   printable(it.key()));
    std::string f = it->get<std::string>();
    fs::path fp(f);
    bool bad = f.empty() || fp.is_absolute() || f.find('\0') != std::string::npos;
    for (const auto& part : fp) bad = bad || part == "..";
    if (bad)
      return Error(
          "{}: weight_map entry for '{}' names '{}', which is not a file inside the "
          "index's directory",
          path, printable(it.key()), printable(f));
    idx.weight_map.emplace_back(it.key(), f);
    first_tensor_of_file.emplace(f, it.key());
  }
  idx.shards.assign(first_tensor_of_file.begin(), first_tensor_of_file.end());
  return idx;
}

Expected<ModelFiles> open_model_dir(const std::string& dir_arg, const OpenOptions& options) {
  fs::path dir = fs::path(dir_arg).lexically_normal();
  if (!dir.has_filename() && dir.has_parent_path() && dir != dir.root_path())
    dir = dir.parent_path();  // "model/original/" -> "model/original", so its parent is "model"
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Error("{}: no such directory", dir_arg);
  if (!fs::is_directory(dir, ec))
    return Error("{}: not a directory (pass the model directory)", dir_arg);

  fs::path extras_dir = dir;  // where generation_config.json and tokenizer.json live
  const bool here = is_file(dir / "config.json") && has_checkpoint(dir);
  if (!here) {
    if (is_file(dir / "original" / "config.json") && has_checkpoint(dir / "original")) {
      dir = dir / "original";
    } else if (!is_file(dir / "config.json")) {
      return Error("{}: no config.json (not a gpt-oss model directory)", dir_arg);
    } else {
      return Error("{}: no {}, model.safetensors or original/ checkpoint", dir_arg, kIndexName);
    }
  }

  ModelFiles mf;
  mf.dir = dir.string();
  const std::string config_path = (dir / "config.json").string();
  GPTOSS_ASSIGN_OR_RETURN(std::string config_text, read_json_file(config_path));
  GPTOSS_ASSIGN_OR_RETURN(mf.layout, detect_layout(config_text, config_path));
  if (mf.layout == CheckpointLayout::kHF) {
    GPTOSS_ASSIGN_OR_RETURN(mf.config, parse_hf_config(config_text, config_path));
  } else {
    GPTOSS_ASSIGN_OR_RETURN(mf.config, parse_original_config(config_text, config_path));
    // original/ sits inside the HF repo, whose root holds the generation config and tokenizer.
    if (extras_dir == dir && dir.has_parent_path()) extras_dir = dir.parent_path();
  }
  mf.config_files.push_back(config_path);

  for (const fs::path& d : {dir, extras_dir}) {
    fs::path g = d / "generation_config.json";
    if (!is_file(g)) continue;
    GPTOSS_ASSIGN_OR_RETURN(std::string text, read_json_file(g.string()));
    GPTOSS_RETURN_IF_ERROR(apply_generation_config(text, g.string(), &mf.config));
    mf.config_files.push_back(g.string());
    break;
  }
  for (const fs::path& d : {dir, extras_dir}) {
    if (is_file(d / "tokenizer.json")) {
      mf.tokenizer_json = (d / "tokenizer.json").string();
      break;
    }
  }

  GPTOSS_ASSIGN_OR_RETURN(mf.tensors, open_checkpoint(dir, mf.layout));
  if (options.validate_tensors) GPTOSS_RETURN_IF_ERROR(validate_tensor_set(mf));
  return mf;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c, CheckpointLayout layout) {
  const int64_t V = c.vocab_size, H = c.hidden_size, E = c.num_experts, I = c.intermediate_size;
  const int64_t Q = int64_t{c.num_heads} * c.head_dim, KV = int64_t{c.num_kv_heads} * c.head_dim;
  const DType bf = DType::kBF16, u8 = DType::kU8;
  std::vector<ExpectedTensor> out;
  auto add = [&](std::string name, DType dt, std::vector<int64_t> shape) {
    out.push_back({std::move(name), dt, std::move(shape)});
  };
  if (layout == CheckpointLayout::kHF) {
    add("model.embed_tokens.weight", bf, {V, H});
    for (int l = 0; l < c.num_layers; ++l) {
      const std::string p = fmt::format("model.layers.{}.", l);
      add(p + "input_layernorm.weight", bf, {H});
      add(p + "self_attn.q_proj.weight", bf, {Q, H});
      add(p + "self_attn.q_proj.bias", bf, {Q});
      add(p + "self_attn.k_proj.weight", bf, {KV, H});
      add(p + "self_attn.k_proj.bias", bf, {KV});
      add(p + "self_attn.v_proj.weight", bf, {KV, H});
      add(p + "self_attn.v_proj.bias", bf, {KV});
      add(p + "self_attn.o_proj.weight", bf, {H, Q});
      add(p + "self_attn.o_proj.bias", bf, {H});
      add(p + "self_attn.sinks", bf, {c.num_heads});
      add(p + "post_attention_layernorm.weight", bf, {H});
      add(p + "mlp.router.weight", bf, {E, H});
      add(p + "mlp.router.bias", bf, {E});
      add(p + "mlp.experts.gate_up_proj_blocks", u8, {E, 2 * I, H / 32, 16});
      add(p + "mlp.experts.gate_up_proj_scales", u8, {E, 2 * I, H / 32});
      add(p + "mlp.experts.gate_up_proj_bias", bf, {E, 2 * I});
      add(p + "mlp.experts.down_proj_blocks", u8, {E, H, I / 32, 16});
      add(p + "mlp.experts.down_proj_scales", u8, {E, H, I / 32});
      add(p + "mlp.experts.down_proj_bias", bf, {E, H});
    }
    add("model.norm.weight", bf, {H});
    add("lm_head.weight", bf, {V, H});
  } else {
    add("embedding.weight", bf, {V, H});
    for (int l = 0; l < c.num_layers; ++l) {
      const std::string p = fmt::format("block.{}.", l);
      add(p + "attn.norm.scale", bf, {H});
      add(p + "attn.qkv.weight", bf, {Q + 2 * KV, H});
      add(p + "attn.qkv.bias", bf, {Q + 2 * KV});
      add(p + "attn.sinks", bf, {c.num_heads});
      add(p + "attn.out.weight", bf, {H, Q});
      add(p + "attn.out.bias", bf, {H});
      add(p + "mlp.norm.scale", bf, {H});
      add(p + "mlp.gate.weight", bf, {E, H});
      add(p + "mlp.gate.bias", bf, {E});
      add(p + "mlp.mlp1_weight.blocks", u8, {E, 2 * I, H / 32, 16});
      add(p + "mlp.mlp1_weight.scales", u8, {E, 2 * I, H / 32});
      add(p + "mlp.mlp1_bias", bf, {E, 2 * I});
      add(p + "mlp.mlp2_weight.blocks", u8, {E, H, I / 32, 16});
      add(p + "mlp.mlp2_weight.scales", u8, {E, H, I / 32});
      add(p + "mlp.mlp2_bias", bf, {E, H});
    }
    add("norm.scale", bf, {H});
    add("unembedding.weight", bf, {V, H});
  }
  return out;
}

Status validate_tensor_set(const TensorStore& tensors, const ModelConfig& config,
                           CheckpointLayout layout) {
  std::vector<std::string> missing, unexpected, wrong;
  std::set<std::string> known;
  for (const auto& e : expected_tensors(config, layout)) {
    known.insert(e.name);
    const TensorView* t = tensors.find(e.name);
    if (!t) {
      missing.push_back(e.name);
      continue;
    }
    const bool dtype_ok =
        t->dtype == e.dtype || (e.dtype == DType::kBF16 && t->dtype == DType::kF32);
    if (!dtype_ok || t->shape != e.shape)
      wrong.push_back(fmt::format("{}: tensor '{}' is {} {}, expected {}{} {}", t->file, e.name,
                                  dtype_name(t->dtype), shape_to_string(t->shape),
                                  dtype_name(e.dtype), e.dtype == DType::kBF16 ? " (or F32)" : "",
                                  shape_to_string(e.shape)));
  }
  for (const auto& t : tensors.tensors())
    if (!known.count(t.name)) unexpected.push_back(t.name);
  if (missing.empty() && unexpected.empty() && wrong.empty()) return Status::ok();
  std::sort(unexpected.begin(), unexpected.end());
  std::string msg =
      fmt::format("checkpoint does not match its config ({} layout, {} layers, {} experts)",
                  layout_name(layout), config.num_layers, config.num_experts);
  if (!missing.empty())
    msg += fmt::format("; {} missing tensor(s): {}", missing.size(), join_limited(missing));
  if (!unexpected.empty())
    msg +=
        fmt::format("; {} unexpected tensor(s): {}", unexpected.size(), join_limited(unexpected));
  if (!wrong.empty())
    msg += fmt::format("; {} tensor(s) with wrong dtype or shape: {}", wrong.size(),
                       join_limited(wrong, 4));
  return Status::error(msg);
}

namespace {
bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

WeightSummary summarize_weights(const std::vector<TensorView>& tensors, const ModelConfig& config,
                                CheckpointLayout layout) {
  WeightSummary w;
  const bool hf = layout == CheckpointLayout::kHF;
  const std::string unembedding = hf ? "lm_head.weight" : "unembedding.weight";
  uint64_t expert_params = 0, unembedding_params = 0;
  for (const auto& t : tensors) {
    ++w.tensors;
    w.bytes_total += t.nbytes;
    const uint64_t numel = static_cast<uint64_t>(t.numel());
    uint64_t params = numel;
    if (t.dtype == DType::kU8 && (ends_with(t.name, "_blocks") || ends_with(t.name, ".blocks"))) {
      w.bytes_mxfp4_blocks += t.nbytes;
      params = 2 * numel;
    } else if (t.dtype == DType::kU8 &&
               (ends_with(t.name, "_scales") || ends_with(t.name, ".scales"))) {
      w.bytes_mxfp4_scales += t.nbytes;
      params = 0;
    } else if (t.dtype == DType::kBF16) {
      w.bytes_bf16 += t.nbytes;
    } else if (t.dtype == DType::kF32) {
      w.bytes_f32 += t.nbytes;
    } else {
      w.bytes_other += t.nbytes;
    }
    w.parameters += params;
    const bool expert = hf ? t.name.find(".mlp.experts.") != std::string::npos
                           : (t.name.find(".mlp.mlp1_") != std::string::npos ||
                              t.name.find(".mlp.mlp2_") != std::string::npos);
    if (expert) expert_params += params;
    if (t.name == unembedding) unembedding_params += params;
  }
  const uint64_t e = static_cast<uint64_t>(std::max(config.num_experts, 1));
  const uint64_t k =
      static_cast<uint64_t>(std::clamp(config.experts_per_token, 0, config.num_experts));
  w.active_parameters = w.parameters - unembedding_params - expert_params / e * (e - k);
  return w;
}

Status validate_tensor_set(const ModelFiles& files) {
  return validate_tensor_set(files.tensors, files.config, files.layout);
}

}  // namespace gptoss
