#include "hub/resolve.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace gptoss::hub {

Expected<std::string> resolve_model(const std::string& model, const ResolveOptions& opt) {
  if (model.empty()) return Error("no model given");
  std::error_code ec;
  fs::path p(model);
  if (fs::is_directory(p, ec)) return model;
  std::string ext = p.extension().string();
  if (fs::is_regular_file(p, ec)) {
    if (ext == ".safetensors" || ext == ".gguf" || ext == ".bin") return model;
    return Error("{}: not a model file (expected a folder, .safetensors, .gguf or .bin)", model);
  }
  bool looks_local = model.rfind("./", 0) == 0 || model.rfind("../", 0) == 0 || model.rfind("/", 0) == 0 ||
                     model.rfind("~", 0) == 0 || ext == ".safetensors" || ext == ".gguf" || ext == ".bin";
  if (looks_local) return Error("{}: no such file or folder", model);
  auto ref = parse_repo_ref(model);
  if (!ref) return Error("{}: no such file or folder, and not a Hugging Face repo id (org/name[@revision])", model);
  PullOptions popt = opt.pull;
  popt.revision = ref->revision;
  std::string cache = popt.cache_dir.empty() ? hub_cache_dir() : popt.cache_dir;
  if (auto snap = find_cached_snapshot(cache, ref->repo_id, ref->revision, popt)) return *snap;
  if (hub_offline()) {
    return Error("{} is not in the Hugging Face cache ({}) and HF_HUB_OFFLINE is set; unset it to download", model,
                 cache);
  }
  GPTOSS_ASSIGN_OR_RETURN(PullPlan plan, plan_pull(ref->repo_id, popt));
  if (plan.files_missing > 0 && !opt.assume_yes) {
    bool tty = isatty(STDIN_FILENO) && isatty(STDERR_FILENO);
    if (!opt.interactive || !tty) {
      return Error("{} is not in the Hugging Face cache ({}): download it with `gptoss pull {}` or pass --yes",
                   model, cache, model);
    }
    std::fprintf(stderr, "%s is not in the cache (%s). Download %d file(s), %s? [Y/n] ", model.c_str(),
                 cache.c_str(), plan.files_missing, format_bytes(plan.bytes_missing).c_str());
    std::fflush(stderr);
    std::string answer;
    bool got = static_cast<bool>(std::getline(std::cin, answer));
    if (!got || !(answer.empty() || answer == "y" || answer == "Y" || answer == "yes")) {
      return Error("{}: download declined", model);
    }
  }
  return run_pull(plan, popt);
}

}  // namespace gptoss::hub
