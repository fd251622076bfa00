// gptoss logits MODEL --tokens ID,ID,... | --tokens-file F.json [--device cpu|cuda] --out FILE.safetensors
// Runs prompts through the forward pass and writes the float32 logits of every position, one tensor
// per prompt (logits_<i>, [T, vocab]). Users compare backends and checkpoints with it; tests use it.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/mapped_file.h"
#include "engine/model_runner.h"
#include "model/forward.h"

namespace gptoss::cli {

namespace {

constexpr const char* kUsage =
    "usage: gptoss logits MODEL (--tokens ID,ID,... | --tokens-file F.json) --out FILE.safetensors\n"
    "                    [--device cpu|cpu-fast|cuda] [--threads N] [--step N] [--separate] [--max-step-tokens N]\n"
    "                    [--dense-weights bf16|q8]\n"
    "  MODEL              model directory (HF layout, original/, or a parent of original/)\n"
    "  --tokens IDS       one prompt as comma-separated token ids (repeat for several prompts)\n"
    "  --tokens-file F    JSON {\"prompts\": [[ids...], ...]}\n"
    "  --out FILE         safetensors output: logits_<i> float32 [T, vocab] per prompt\n"
    "  --device D         cpu (the exact f32 path, default), cpu-fast (SIMD kernels) or cuda (the CUDA backend's ops)\n"
    "  --threads N        cpu threads (default: all)\n"
    "  --step N           feed N tokens per forward call (1 = prefill nothing, decode token by token)\n"
    "  --separate         run each prompt alone instead of all prompts in one batched call\n"
    "  --max-step-tokens N  tokens per sequence in one internal step (default 128)\n"
    "  --dense-weights S  bf16 (default) or q8: attention and unembedding converted to Q8_0 at load\n";

Expected<std::vector<uint32_t>> parse_ids(const std::string& text) {
  std::vector<uint32_t> ids;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || item[0] == '-' || v > 0xffffffffull) {
      return Error("--tokens: '{}' is not a token id (non-negative integer)", item);
    }
    ids.push_back(static_cast<uint32_t>(v));
    i = j + 1;
  }
  return ids;
}

Expected<std::vector<std::vector<uint32_t>>> read_tokens_file(const std::string& path) {
  GPTOSS_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Error("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object() || !j.contains("prompts") || !j["prompts"].is_array()) {
    return Error("{}: expected an object {{\"prompts\": [[ids...], ...]}}", path);
  }
  std::vector<std::vector<uint32_t>> prompts;
  const auto& arr = j["prompts"];
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_array()) return Error("{}: prompts[{}] is not an array of token ids", path, i);
    std::vector<uint32_t> ids;
    for (size_t k = 0; k < arr[i].size(); ++k) {
      const auto& v = arr[i][k];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 0xffffffffll) {
        return Error("{}: prompts[{}][{}] = {} is not a token id", path, i, k, v.dump());
      }
      ids.push_back(static_cast<uint32_t>(v.get<int64_t>()));
    }
    prompts.push_back(std::move(ids));
  }
  return prompts;
}

// Minimal safetensors writer for F32 tensors.
Status write_f32_safetensors(const std::string& path, const std::vector<std::string>& names,
                             const std::vector<std::vector<int64_t>>& shapes,
                             const std::vector<const std::vector<float>*>& data,
                             const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  uint64_t offset = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const uint64_t n = data[i]->size() * sizeof(float);
    header[names[i]] = {{"dtype", "F32"}, {"shape", shapes[i]}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  header["__metadata__"] = metadata;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return Error("cannot write {}: {}", path, std::strerror(errno));
  const uint64_t len = h.size();
  f.write(reinterpret_cast<const char*>(&len), sizeof len);  // little-endian hosts only (x86, arm64)
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto* d : data) {
    f.write(reinterpret_cast<const char*>(d->data()), static_cast<std::streamsize>(d->size() * sizeof(float)));
  }
  f.close();
  if (!f) return Error("writing {} failed: {}", path, std::strerror(errno));
  return Status::ok();
}

// Runs `prompts` (indices `which`) through the model in one batched call per `step` tokens;
// appends each prompt's [T, V] logits to out[i].
Status run_prompts(Model& model, const std::vector<std::vector<uint32_t>>& prompts,
                   const std::vector<size_t>& which, size_t step, int max_step_tokens,
                   std::vector<std::vector<float>>* out) {
  size_t longest = 0;
  for (size_t i : which) longest = std::max(longest, prompts[i].size());
  KvCacheOptions opt;
  opt.max_sequences = static_cast<int>(which.size());
  opt.max_context = static_cast<int>(std::max<size_t>(longest, 1));
  opt.max_step_tokens = max_step_tokens;
  GPTOSS_ASSIGN_OR_RETURN(KvCache cache, model.new_cache(opt));
  std::vector<int> seq;
  for (size_t n = 0; n < which.size(); ++n) {
    GPTOSS_ASSIGN_OR_RETURN(int s, cache.new_sequence());
    seq.push_back(s);
  }
  const size_t V = model.config().vocab_size;
  for (size_t b = 0; b < longest; b += step) {
    std::vector<ForwardPiece> pieces;
    std::vector<size_t> owner;
    for (size_t n = 0; n < which.size(); ++n) {
      const auto& p = prompts[which[n]];
      if (b >= p.size()) continue;
      pieces.push_back({seq[n], std::span<const uint32_t>(p.data() + b, std::min(step, p.size() - b)), true});
      owner.push_back(which[n]);
    }
    std::vector<float> logits;
    GPTOSS_RETURN_IF_ERROR(model.forward(pieces, cache, &logits));
    size_t at = 0;
    for (size_t k = 0; k < pieces.size(); ++k) {
      const size_t n = pieces[k].tokens.size() * V;
      auto& dst = (*out)[owner[k]];
      dst.insert(dst.end(), logits.begin() + at, logits.begin() + at + n);
      at += n;
    }
  }
  return Status::ok();
}

}  // namespace

int cmd_logits(const std::vector<std::string>& argv) {
  ArgSpec spec{{"--help", "-h", "--separate"},
               {"--tokens", "--tokens-file", "--out", "--device", "--threads", "--step", "--max-step-tokens",
                "--dense-weights"}};
  auto args = Args::parse(argv, spec);
  if (!args) return fail("logits", args.status().message() + "\n" + kUsage, 2);
  if (args->has("--help") || args->has("-h")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (args->positional().size() != 1) return fail("logits", std::string("expected one MODEL\n") + kUsage, 2);
  const auto out_path = args->get("--out");
  if (!out_path) return fail("logits", std::string("--out is required\n") + kUsage, 2);
  std::vector<std::vector<uint32_t>> prompts;
  for (const auto& t : args->get_all("--tokens")) {
    auto ids = parse_ids(t);
    if (!ids) return fail("logits", ids.status().message(), 2);
    prompts.push_back(std::move(*ids));
  }
  if (auto file = args->get("--tokens-file")) {
    auto p = read_tokens_file(*file);
    if (!p) return fail("logits", p.status().message(), 2);
    prompts.insert(prompts.end(), p->begin(), p->end());
  }
  if (prompts.empty()) return fail("logits", std::string("give --tokens or --tokens-file\n") + kUsage, 2);
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) return fail("logits", fmt::format("prompt {} has no tokens", i), 2);
  }
  auto threads = args->get_int("--threads", 0);
  auto step_arg = args->get_int("--step", 0);
  auto mst = args->get_int("--max-step-tokens", 128);
  if (!threads || !step_arg || !mst) {
    return fail("logits", (!threads ? threads.status() : !step_arg ? step_arg.status() : mst.status()).message(), 2);
  }
  if (*step_arg < 0 || *mst < 1 || *mst > 1 << 20 || *threads < 0) {
    return fail("logits", "--step must be >= 0, --max-step-tokens >= 1, --threads >= 0", 2);
  }

  auto dense = parse_dense_weights(args->get_or("--dense-weights", "bf16"));
  if (!dense) return fail("logits", dense.status().message(), 2);
  const std::string device = args->get_or("--device", "cpu");
  if (Status st = check_dense_weights_device(*dense, device); !st.is_ok()) return fail("logits", st.message(), 2);
  auto backend = engine::make_backend(device, static_cast<int>(*threads));
  if (!backend) return fail("logits", backend.status().message(), 2);
  const auto t0 = std::chrono::steady_clock::now();
  auto files = open_model_dir(args->positional()[0]);
  if (!files) return fail("logits", files.status().message());
  const std::string layout = layout_name(files->layout);
  BindOptions bind;
  bind.dense = *dense;
  bind.threads = *threads > 0 ? static_cast<int>(*threads) : 2;
  auto model = Model::create(std::move(*files), **backend, bind);
  if (!model) return fail("logits", model.status().message());
  const auto t1 = std::chrono::steady_clock::now();

  std::vector<std::vector<float>> logits(prompts.size());
  size_t longest = 0, total = 0;
  for (const auto& p : prompts) {
    longest = std::max(longest, p.size());
    total += p.size();
  }
  const size_t step = *step_arg == 0 ? longest : static_cast<size_t>(*step_arg);
  std::vector<std::vector<size_t>> groups;
  if (args->has("--separate")) {
    for (size_t i = 0; i < prompts.size(); ++i) groups.push_back({i});
  } else {
    groups.emplace_back();
    for (size_t i = 0; i < prompts.size(); ++i) groups[0].push_back(i);
  }
  for (const auto& g : groups) {
    Status st = run_prompts(**model, prompts, g, step, static_cast<int>(*mst), &logits);
    if (!st.is_ok()) return fail("logits", st.message());
  }
  const auto t2 = std::chrono::steady_clock::now();

  const int64_t V = (*model)->config().vocab_size;
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<const std::vector<float>*> data;
  for (size_t i = 0; i < prompts.size(); ++i) {
    names.push_back(fmt::format("logits_{}", i));
    shapes.push_back({static_cast<int64_t>(prompts[i].size()), V});
    data.push_back(&logits[i]);
  }
  Status st = write_f32_safetensors(*out_path, names, shapes, data,
                                    {{"device", (*backend)->name()}, {"layout", layout}, {"path", "exact"},
                                     {"dense_weights", dense_weights_name(*dense)}});
  if (!st.is_ok()) return fail("logits", st.message());
  const double load_s = std::chrono::duration<double>(t1 - t0).count();
  const double run_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "gptoss logits: %zu prompt(s), %zu tokens, load %.2f s, forward %.2f s (%.1f tok/s) -> %s\n",
               prompts.size(), total, load_s, run_s, run_s > 0 ? total / run_s : 0.0, out_path->c_str());
  return 0;
}

}  // namespace gptoss::cli
