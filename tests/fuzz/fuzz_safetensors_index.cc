// model.safetensors.index.json: any bytes give an index whose shard names all stay inside the
// model directory and agree with its weight map, or an error with a message; never a crash.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "model/model_files.h"

namespace {

bool inside_dir(const std::string& name) {
  if (name.empty() || name.find('\0') != std::string::npos) return false;
  std::filesystem::path p(name);
  if (p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = gptoss::parse_safetensors_index(text, "model.safetensors.index.json");
  gptoss::fuzz::require_message(r);
  if (!r) return 0;
  if (r->weight_map.empty() || r->shards.empty()) std::abort();
  std::set<std::string> used;
  std::set<std::string> tensors;
  for (const auto& [tensor, file] : r->weight_map) {
    if (!inside_dir(file)) std::abort();
    if (!tensors.insert(tensor).second) std::abort();  // JSON object keys come out unique
    used.insert(file);
  }
  // shards: exactly the files the weight map uses, sorted, each with a tensor it holds.
  if (used.size() != r->shards.size()) std::abort();
  auto u = used.begin();
  for (const auto& [file, first] : r->shards) {
    if (file != *u++) std::abort();
    bool found = false;
    for (const auto& [tensor, f] : r->weight_map) found = found || (tensor == first && f == file);
    if (!found) std::abort();
  }
  return 0;
}
