// `gptoss pull`: download a hub repo into the shared Hugging Face cache (see hf_cache.h), the way
// huggingface_hub does (API listing, HEAD /resolve for etag and commit, GET with redirects), with
// resume through blobs/{etag}.incomplete and SHA-256 verification of LFS files before the atomic
// rename into blobs/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "hub/hf_cache.h"
#include "hub/progress.h"

namespace gptoss::hub {

struct PullOptions {
  std::string revision = "main";
  std::vector<std::string> include;  // fnmatch patterns; empty = everything
  std::vector<std::string> exclude;
  // When neither include nor exclude is given and the repo has *.safetensors at its top level, skip
  // original/ and metal/ (other copies of the same weights, as in openai/gpt-oss-*).
  bool skip_alternate_weights = true;
  std::string token;      // empty: hub_token()
  std::string endpoint;   // empty: hub_endpoint()
  std::string cache_dir;  // empty: hub_cache_dir()
  ProgressMode progress = ProgressMode::kAuto;
  int max_workers = 8;  // files fetched at once (huggingface_hub's default)
};

// What a pull will do, known after the listing call and before any file is fetched.
struct PullPlan {
  std::string repo_id, revision, commit;
  std::string storage_dir;          // <cache>/models--org--name
  std::vector<RepoFile> all_files;  // the repo's full listing at `commit`
  std::vector<RepoFile> selected;   // after include/exclude
  uint64_t bytes_missing = 0;       // selected files whose blob is not in the cache yet
  int files_missing = 0;
};

Expected<PullPlan> plan_pull(const std::string& repo_id, const PullOptions& opt);
// Fetches what the plan lacks; returns snapshots/{commit}.
Expected<std::string> run_pull(const PullPlan& plan, const PullOptions& opt);
inline Expected<std::string> pull(const std::string& repo_id, const PullOptions& opt) {
  GPTOSS_ASSIGN_OR_RETURN(PullPlan plan, plan_pull(repo_id, opt));
  return run_pull(plan, opt);
}

// Parsers of what the hub answers (any bytes give a value or an error naming what is wrong):
// one page of GET /api/models/{repo}/tree/{commit}; the next page's URL from a Link header (empty
// when none); GET /api/models/{repo}/revision/{rev} (its commit sha, and for mirrors without /tree
// the siblings listing); a decimal size header.
Expected<std::vector<RepoFile>> parse_tree_page(const std::string& body);
std::string next_page_url(const std::string& link);
struct RevisionInfo {
  std::string commit;
  std::optional<std::vector<RepoFile>> siblings;
};
Expected<RevisionInfo> parse_revision_info(const std::string& body);
Expected<uint64_t> parse_u64(const std::string& s, const std::string& what);

// The files a default pull selects (include/exclude plus skip_alternate_weights).
std::vector<RepoFile> select_files(const std::vector<RepoFile>& files, const PullOptions& opt);

// The snapshot folder for repo@revision if the cache has it: via refs/{revision} or a commit hash.
// When the cache also holds the tree listing, every file a default pull selects must be present.
std::optional<std::string> find_cached_snapshot(const std::string& cache_dir, const std::string& repo_id,
                                                const std::string& revision, const PullOptions& opt);

}  // namespace gptoss::hub
