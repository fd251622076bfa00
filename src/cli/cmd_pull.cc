// gptoss pull REPO_ID: download a Hugging Face hub repo into the shared HF cache.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "hub/pull.h"

namespace gptoss::cli {

static void pull_usage() {
  std::printf(
      "usage: gptoss pull REPO_ID[@REVISION] [options]\n\n"
      "Downloads a Hugging Face hub repo into the shared cache ($HF_HUB_CACHE, $HF_HOME/hub or\n"
      "~/.cache/huggingface/hub), where huggingface_hub and transformers find it too. Interrupted\n"
      "downloads resume; LFS files are checked against the hub's SHA-256.\n\n"
      "  --revision R       branch, tag or commit (default main)\n"
      "  --include PATTERN  only files matching (fnmatch; repeatable; 'dir/' means a folder)\n"
      "  --exclude PATTERN  skip files matching (repeatable)\n"
      "  --all              also fetch original/ and metal/ (skipped by default when the repo has\n"
      "                     top-level .safetensors: they are other copies of the same weights)\n"
      "  --token TOKEN      hub token (default $HF_TOKEN or the token saved by `hf auth login`)\n"
      "  --max-workers N    files downloaded at once (default 8)\n"
      "  --quiet            no progress output\n\n"
      "Environment: HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE.\n");
}

int cmd_pull(const std::vector<std::string>& argv) {
  ArgSpec spec{{"--quiet", "--all", "--help", "-h"}, {"--revision", "--include", "--exclude", "--token", "--max-workers"}};
  auto args = Args::parse(argv, spec);
  if (!args) return fail("pull", args.status().message() + " (see gptoss pull --help)", 2);
  if (args->has("--help") || args->has("-h")) {
    pull_usage();
    return 0;
  }
  if (args->positional().size() != 1) return fail("pull", "expected one REPO_ID (see gptoss pull --help)", 2);
  auto ref = hub::parse_repo_ref(args->positional()[0]);
  if (!ref) return fail("pull", ref.status().message(), 2);
  hub::PullOptions opt;
  opt.revision = args->get_or("--revision", ref->revision);
  opt.include = args->get_all("--include");
  opt.exclude = args->get_all("--exclude");
  opt.skip_alternate_weights = !args->has("--all");
  opt.token = args->get_or("--token", "");
  auto workers = args->get_int("--max-workers", 8);
  if (!workers || *workers < 1 || *workers > 64) return fail("pull", "--max-workers takes a number from 1 to 64", 2);
  opt.max_workers = int(*workers);
  opt.progress = args->has("--quiet") ? hub::ProgressMode::kQuiet : hub::ProgressMode::kAuto;

  std::string cache = hub::hub_cache_dir();
  if (hub::hub_offline()) {
    if (auto snap = hub::find_cached_snapshot(cache, ref->repo_id, opt.revision, opt)) {
      std::printf("%s\n", snap->c_str());
      return 0;
    }
  }
  auto plan = hub::plan_pull(ref->repo_id, opt);
  if (!plan) return fail("pull", plan.status().message());
  if (!args->has("--quiet")) {
    std::fprintf(stderr, "%s@%s (commit %s): %zu file(s), %d to download (%s)\n", ref->repo_id.c_str(),
                 plan->revision.c_str(), plan->commit.c_str(), plan->selected.size(), plan->files_missing,
                 hub::format_bytes(plan->bytes_missing).c_str());
  }
  if (plan->selected.empty()) return fail("pull", "no file of " + ref->repo_id + " matches the given patterns");
  auto snap = hub::run_pull(*plan, opt);
  if (!snap) return fail("pull", snap.status().message());
  std::printf("%s\n", snap->c_str());
  return 0;
}

}  // namespace gptoss::cli
