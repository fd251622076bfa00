// The JSON files of a checkpoint (config.json, generation_config.json, model.safetensors.index.json):
// parsed into an object, or an error naming the file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"
#include "formats/tensor.h"

namespace gptoss {

inline Expected<nlohmann::json> parse_json_object(std::string_view text, const std::string& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Error("{}: not valid JSON: {}", file, printable(e.what()));
  }
  if (!j.is_object()) return Error("{}: must hold a JSON object", file);
  return j;
}

}  // namespace gptoss
