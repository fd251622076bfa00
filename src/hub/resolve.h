// MODEL arguments, the same for every command: a local directory, a local weights file
// (.safetensors/.gguf/.bin), or a hub id "org/name[@revision]" found in the HF cache, else pulled.
#pragma once

#include <string>

#include "core/status.h"
#include "hub/pull.h"

namespace gptoss::hub {

struct ResolveOptions {
  bool assume_yes = false;  // --yes: pull without asking
  // Ask on the terminal before pulling. Off (or no terminal on stdin/stderr) and not assume_yes:
  // a model missing from the cache is an error that says how to get it.
  bool interactive = true;
  PullOptions pull;  // revision comes from "@rev" in MODEL; include/exclude/progress from here
};

Expected<std::string> resolve_model(const std::string& model, const ResolveOptions& opt);

}  // namespace gptoss::hub
