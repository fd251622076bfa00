// gptoss info MODEL [--json]: what a model directory holds, validated: layout, config, tensors,
// bytes of weights by kind, parameter counts.
#include <fmt/ranges.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "backend/cpu/cpu_backend.h"
#include "engine/memory_plan.h"
#include "engine/model_runner.h"
#include "hub/hf_cache.h"
#include "hub/pull.h"
#include "model/dense_q8.h"
#include "model/model_files.h"
#include "model/weights.h"

namespace gptoss::cli {

namespace {

constexpr const char* kUsage =
    "usage: gptoss info MODEL [--json] [--tensors] [--no-validate] [--ctx N] [--parallel N]\n"
    "                  [--kv-tokens N] [--dense-weights q8]\n"
    "  MODEL          model directory (HF layout, original/, or a parent of original/), a\n"
    "                 .safetensors file in one, or a hub id org/name[@rev] already in the HF "
    "cache\n"
    "  --json         print one JSON object instead of text\n"
    "  --tensors      also list every tensor: name, dtype, shape, file, data offset in the file\n"
    "  --no-validate  do not require the exact tensor set the config implies\n"
    "  --ctx N        context per sequence for the memory line (default 8192, as generate/serve)\n"
    "  --parallel N   sequences decoding at once for the memory line (serve's --max-running; "
    "default 1)\n"
    "  --device D     the device the memory line plans for (default auto: cuda when a GPU is usable\n"
    "                 here); cuda adds the batched decode's fp16 weight copies from 8 sequences\n"
    "  --kv-tokens N  KV page pool in tokens for the memory line (serve's --kv-tokens; default\n"
    "                 parallel x ctx)\n"
    "  --dense-weights q8  convert the attention and unembedding matrices to Q8_0 as loading with\n"
    "                 --dense-weights q8 would, and show the trade: weight memory and bytes read per\n"
    "                 token, bf16 vs q8, and the quantization error measured on this model\n";

nlohmann::json config_json(const ModelConfig& c) {
  return {{"num_layers", c.num_layers},
          {"hidden_size", c.hidden_size},
          {"num_heads", c.num_heads},
          {"num_kv_heads", c.num_kv_heads},
          {"head_dim", c.head_dim},
          {"num_experts", c.num_experts},
          {"experts_per_token", c.experts_per_token},
          {"intermediate_size", c.intermediate_size},
          {"vocab_size", c.vocab_size},
          {"sliding_window", c.sliding_window},
          {"max_position_embeddings", c.max_position_embeddings},
          {"rope_theta", c.rope_theta},
          {"rope_scaling_factor", c.rope_scaling_factor},
          {"rope_beta_fast", c.rope_beta_fast},
          {"rope_beta_slow", c.rope_beta_slow},
          {"rope_original_max_position", c.rope_original_max_position},
          {"rope_truncate", c.rope_truncate},
          {"rms_norm_eps", c.rms_norm_eps},
          {"swiglu_limit", c.swiglu_limit},
          {"swiglu_alpha", c.swiglu_alpha},
          {"layer_is_sliding", c.layer_is_sliding},
          {"eos_token_ids", c.eos_token_ids}};
}

std::string human_bytes(uint64_t n) {
  if (n >= 1'000'000'000ull) return fmt::format("{:.2f} GB", n / 1e9);
  if (n >= 1'000'000ull) return fmt::format("{:.2f} MB", n / 1e6);
  if (n >= 1'000ull) return fmt::format("{:.2f} kB", n / 1e3);
  return fmt::format("{} B", n);
}

std::string human_count(uint64_t n) {
  if (n >= 1'000'000'000ull) return fmt::format("{:.2f} B ({})", n / 1e9, n);
  if (n >= 1'000'000ull) return fmt::format("{:.2f} M ({})", n / 1e6, n);
  return fmt::format("{}", n);
}

// MODEL -> model directory. Never touches the network: a hub id must already be in the cache.
Expected<std::string> locate_model(const std::string& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(model);
  if (fs::is_regular_file(p, ec) && p.extension() == ".safetensors")
    return p.has_parent_path() ? p.parent_path().string() : std::string(".");
  const bool local =
      fs::exists(p, ec) || model.empty() || model[0] == '/' || model[0] == '.' || model[0] == '~';
  if (local) return model;
  auto ref = hub::parse_repo_ref(model);
  if (!ref) return model;  // open_model_dir names the missing directory
  const std::string cache = hub::hub_cache_dir();
  if (auto snap = hub::find_cached_snapshot(cache, ref->repo_id, ref->revision, hub::PullOptions{}))
    return *snap;
  return Error(
      "{}: no such directory, and not in the Hugging Face cache ({}); download it with `gptoss "
      "pull {}`",
      model, cache, model);
}

// The --dense-weights q8 trade of one model: bytes in memory and read per decoded token (bf16 as
// stored vs Q8_0), and the conversion's error figures.
struct DenseTrade {
  Q8Report report;
  uint64_t weights_bf16 = 0, weights_q8 = 0;
  uint64_t read_bf16 = 0, read_q8 = 0;  // per token: all dense tensors but the embedding (one row),
                                        // experts_per_token / num_experts of the expert bytes
};

Expected<DenseTrade> dense_trade(const ModelFiles& files, const WeightSummary& w) {
  const ModelConfig& c = files.config;
  DenseTrade d;
  auto backend = make_cpu_backend(0);
  BindOptions bo;
  bo.dense = DenseWeights::kQ8;
  bo.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bo.report = &d.report;
  GPTOSS_ASSIGN_OR_RETURN(ModelWeights mw, bind_weights(files, *backend, bo));
  const Q8Report& r = d.report;
  const uint64_t saved = r.attention.bytes_before + r.unembedding.bytes_before - r.attention.bytes_after -
                         r.unembedding.bytes_after;
  const uint64_t experts = w.bytes_mxfp4_blocks + w.bytes_mxfp4_scales;
  const TensorView* emb = files.tensors.find(files.layout == CheckpointLayout::kHF ? "model.embed_tokens.weight"
                                                                                    : "embedding.weight");
  const uint64_t emb_bytes = emb ? emb->nbytes : 0;
  const uint64_t emb_row = emb && c.vocab_size > 0 ? emb_bytes / static_cast<uint64_t>(c.vocab_size) : 0;
  d.weights_bf16 = w.bytes_total;
  d.weights_q8 = w.bytes_total - saved;
  d.read_bf16 = w.bytes_total - experts - emb_bytes + emb_row +
                (c.num_experts > 0 ? experts / static_cast<uint64_t>(c.num_experts) * c.experts_per_token : 0);
  d.read_q8 = d.read_bf16 - saved;
  return d;
}

nlohmann::json class_json(const Q8ClassStats& s) {
  return {{"tensors", s.tensors},        {"weights", s.weights},
          {"bytes_bf16", s.bytes_before}, {"bytes_q8", s.bytes_after},
          {"rel_rms_error", s.rel_rms()}, {"max_abs_error", s.max_abs_err}};
}

}  // namespace

int cmd_info(const std::vector<std::string>& argv) {
  auto parsed =
      Args::parse(argv, {{"--json", "--tensors", "--no-validate", "--help", "-h"}, {"--device", "--ctx", "--parallel", "--kv-tokens", "--dense-weights"}});
  if (!parsed) return fail("info", parsed.status().message() + "\n" + kUsage, 2);
  const Args& args = *parsed;
  if (args.has("--help") || args.has("-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args.positional().size() != 1)
    return fail("info", std::string("expected one MODEL\n") + kUsage, 2);
  auto ctx = args.get_int("--ctx", 8192);
  auto parallel = args.get_int("--parallel", 1);
  auto kv_tokens = args.get_int("--kv-tokens", 0);
  if (!ctx || !parallel) return fail("info", (!ctx ? ctx.status() : parallel.status()).message(), 2);
  if (!kv_tokens) return fail("info", kv_tokens.status().message(), 2);
  if (*ctx < 16 || *ctx > (1 << 24) || *parallel < 1 || *parallel > 4096 || *kv_tokens < 0 ||
      *kv_tokens > (int64_t{1} << 31))
    return fail("info", "--ctx must be in [16, 16777216], --parallel in [1, 4096], --kv-tokens in [0, 2^31]", 2);
  OpenOptions options;
  options.validate_tensors = !args.has("--no-validate");
  auto dir = locate_model(args.positional()[0]);
  if (!dir) return fail("info", dir.status().message());
  auto mf = open_model_dir(*dir, options);
  if (!mf) return fail("info", mf.status().message());
  const ModelConfig& c = mf->config;
  const WeightSummary w = summarize_weights(mf->tensors.tensors(), c, mf->layout);
  // Memory at this context: the weights (used in place from the file mapping) plus the KV cache the
  // runner would allocate for the same options (activations are small beside them and not counted).
  engine::LoadOptions lo;
  lo.context = static_cast<int>(*ctx);
  lo.max_sequences = static_cast<int>(*parallel);
  lo.kv_tokens = *kv_tokens;
  const KvCacheOptions kv = engine::kv_cache_options(lo, c);
  const size_t kv_bytes = KvCache::bytes_needed(c, kv);
  lo.device = args.get_or("--device", "auto");
  if (lo.device != "auto" && lo.device != "cpu" && lo.device != "cpu-fast" && lo.device != "cuda")
    return fail("info", fmt::format("--device: unknown device '{}' (use auto, cpu, cpu-fast or cuda)", lo.device), 2);
  const std::string plan_device = lo.device == "auto" ? engine::default_device() : lo.device;
  // The graph decode engine's fp16 copies of the dense matrices (engine/memory_plan.h).
  const size_t copies =
      engine::makes_decode_dense_copies(lo, c, plan_device) ? engine::decode_dense_copies_bytes(c) : 0;
  auto dense = parse_dense_weights(args.get_or("--dense-weights", "bf16"));
  if (!dense) return fail("info", dense.status().message(), 2);
  std::optional<DenseTrade> trade;
  if (*dense == DenseWeights::kQ8) {
    auto t = dense_trade(*mf, w);
    if (!t) return fail("info", t.status().message());
    trade = *t;
  }

  if (args.has("--json")) {
    nlohmann::json j = {
        {"dir", mf->dir},
        {"layout", layout_name(mf->layout)},
        {"files", mf->tensors.files()},
        {"config_files", mf->config_files},
        {"tokenizer_json",
         mf->tokenizer_json ? nlohmann::json(*mf->tokenizer_json) : nlohmann::json()},
        {"config", config_json(c)},
        {"tensor_count", w.tensors},
        {"bytes",
         {{"total", w.bytes_total},
          {"bf16", w.bytes_bf16},
          {"f32", w.bytes_f32},
          {"mxfp4_blocks", w.bytes_mxfp4_blocks},
          {"mxfp4_scales", w.bytes_mxfp4_scales},
          {"other", w.bytes_other}}},
        {"parameters", w.parameters},
        {"active_parameters", w.active_parameters},
        {"memory",
         {{"context", kv.max_context},
          {"parallel", kv.max_sequences},
          {"weights_bytes", w.bytes_total},
          {"kv_cache_bytes", kv_bytes},
          {"kv_pool_tokens", KvCache::pool_pages(c, kv) * kv.page_size},
          {"device", plan_device},
          {"decode_copies_bytes", copies},
          {"total_bytes", w.bytes_total + kv_bytes + copies}}},
    };
    if (args.has("--tensors")) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& t : mf->tensors.tensors())
        list.push_back({{"name", t.name},
                        {"dtype", dtype_name(t.dtype)},
                        {"shape", t.shape},
                        {"file", t.file},
                        {"offset", mf->tensors.file_offset(t)},
                        {"nbytes", t.nbytes}});
      j["tensors"] = std::move(list);
    }
    if (trade) {
      j["dense_weights"] = {{"storage", "q8"},
                            {"attention", class_json(trade->report.attention)},
                            {"unembedding", class_json(trade->report.unembedding)},
                            {"weights_bytes", {{"bf16", trade->weights_bf16}, {"q8", trade->weights_q8}}},
                            {"read_per_token_bytes", {{"bf16", trade->read_bf16}, {"q8", trade->read_q8}}},
                            {"convert_seconds", trade->report.seconds}};
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::vector<int> sliding_layers;
  for (size_t i = 0; i < c.layer_is_sliding.size(); ++i)
    if (c.layer_is_sliding[i]) sliding_layers.push_back(static_cast<int>(i));
  const std::string sliding = fmt::format("{}", fmt::join(sliding_layers, ","));
  const std::string eos = fmt::format("{}", fmt::join(c.eos_token_ids, ","));
  fmt::print("model:        {}\n", mf->dir);
  fmt::print("layout:       {} ({} file{})\n", layout_name(mf->layout), mf->tensors.files().size(),
             mf->tensors.files().size() == 1 ? "" : "s");
  fmt::print("layers:       {} (sliding window {} on layers {})\n", c.num_layers, c.sliding_window,
             sliding.empty() ? "none" : sliding);
  fmt::print("hidden:       {}\n", c.hidden_size);
  fmt::print("attention:    {} query heads, {} kv heads, head_dim {}\n", c.num_heads,
             c.num_kv_heads, c.head_dim);
  fmt::print("experts:      {} (top {}), intermediate {}\n", c.num_experts, c.experts_per_token,
             c.intermediate_size);
  fmt::print("vocab:        {}\n", c.vocab_size);
  fmt::print("context:      {} (rope theta {}, yarn factor {}, original {})\n",
             c.max_position_embeddings, c.rope_theta, c.rope_scaling_factor,
             c.rope_original_max_position);
  fmt::print("eos tokens:   {}\n", eos.empty() ? "none" : eos);
  fmt::print("tensors:      {}\n", w.tensors);
  fmt::print("weights:      {} ({} bytes): bf16 {}, mxfp4 blocks {}, mxfp4 scales {}",
             human_bytes(w.bytes_total), w.bytes_total, human_bytes(w.bytes_bf16),
             human_bytes(w.bytes_mxfp4_blocks), human_bytes(w.bytes_mxfp4_scales));
  if (w.bytes_f32) fmt::print(", f32 {}", human_bytes(w.bytes_f32));
  if (w.bytes_other) fmt::print(", other {}", human_bytes(w.bytes_other));
  fmt::print("\nmemory:       {} at context {} x {} sequence{}: weights {} (mapped) + kv cache {} (f32)",
             human_bytes(w.bytes_total + kv_bytes + copies), kv.max_context, kv.max_sequences,
             kv.max_sequences == 1 ? "" : "s", human_bytes(w.bytes_total), human_bytes(kv_bytes));
  if (copies > 0) fmt::print(" + {} cuda decode fp16 weight copies (batches of 8+)", human_bytes(copies));
  fmt::print(", a pool of {} tokens in pages of {}", KvCache::pool_pages(c, kv) * kv.page_size, kv.page_size);
  if (args.has("--tensors")) {
    for (const auto& t : mf->tensors.tensors())
      fmt::print("\n  {:<56} {:<5} {:<22} {}@{}", t.name, dtype_name(t.dtype),
                 shape_to_string(t.shape), t.file, mf->tensors.file_offset(t));
  }
  fmt::print("\nparameters:   {}, active per token {}\n", human_count(w.parameters),
             human_count(w.active_parameters));
  if (trade) {
    // The accuracy trade of --dense-weights q8, measured while converting this model's weights.
    auto line = [](const char* what, const Q8ClassStats& s) {
      fmt::print("  {:<12} {} tensor{}: {} bf16 -> {} Q8_0, rel RMS error {:.3f}%, max |error| {:.3g}\n", what,
                 s.tensors, s.tensors == 1 ? "" : "s", human_bytes(s.bytes_before), human_bytes(s.bytes_after), 100.0 * s.rel_rms(),
                 s.max_abs_err);
    };
    fmt::print("dense q8:     attention and unembedding as Q8_0 (converted in {:.2f} s)\n", trade->report.seconds);
    line("attention", trade->report.attention);
    line("unembedding", trade->report.unembedding);
    fmt::print("  weights      {} (bf16) -> {} (q8)\n", human_bytes(trade->weights_bf16),
               human_bytes(trade->weights_q8));
    fmt::print("  read/token   {} (bf16) -> {} (q8), {:.2f}x fewer bytes per decoded token\n",
               human_bytes(trade->read_bf16), human_bytes(trade->read_q8),
               trade->read_q8 > 0 ? static_cast<double>(trade->read_bf16) / static_cast<double>(trade->read_q8) : 0.0);
  }
  return 0;
}

}  // namespace gptoss::cli
