// The Hugging Face hub cache layout, shared with huggingface_hub and transformers:
//   <cache>/models--{org}--{name}/blobs/{etag}            file contents (etag = git sha1 or LFS sha256)
//   <cache>/models--{org}--{name}/snapshots/{commit}/{path} -> ../../blobs/{etag}   (relative symlinks)
//   <cache>/models--{org}--{name}/refs/{revision}         the commit hash a branch/tag pointed at
//   <cache>/models--{org}--{name}/trees/{commit}.json     the file listing (huggingface_hub >= 1.x)
// <cache> is $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace gptoss::hub {

// A repo id with an optional revision: "org/name" or "org/name@rev".
struct RepoRef {
  std::string repo_id;
  std::string revision;  // "main" when not given
};

// Parses "org/name[@revision]" (or a bare "name"). Rejects what the hub would reject: empty parts,
// "..", leading/trailing '-' or '.', characters other than [A-Za-z0-9._-], more than one '/'.
Expected<RepoRef> parse_repo_ref(const std::string& s);

// True for a full 40-hex-digit commit hash.
bool is_commit_hash(const std::string& s);

std::string hf_home();
std::string hub_cache_dir();
// "models--org--name"
std::string repo_folder_name(const std::string& repo_id);

// True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is 1/ON/YES/TRUE, as huggingface_hub reads it.
bool hub_offline();
// HF_TOKEN, else the file $HF_TOKEN_PATH or $HF_HOME/token (written by `hf auth login`), else "".
std::string hub_token();
// HF_ENDPOINT without a trailing '/', default https://huggingface.co.
std::string hub_endpoint();

// fnmatch.fnmatchcase semantics ('*' also matches '/', '?', [seq], [!seq]).
bool fnmatch_case(const std::string& name, const std::string& pattern);

// huggingface_hub's filter_repo_objects: keep a path if it matches any include (when any are given)
// and no exclude. A pattern ending in '/' matches everything under that folder.
bool path_selected(const std::string& path, const std::vector<std::string>& include,
                   const std::vector<std::string>& exclude);

// Repo paths are relative, '/'-separated, without "." or ".." parts; anything else could escape
// the snapshot folder.
bool safe_repo_path(const std::string& path);

// The relative symlink target from snapshots/{commit}/{path} to blobs/{etag}:
// "../../blobs/E" for "a.txt", "../../../blobs/E" for "dir/a.txt".
std::string blob_link_target(const std::string& repo_path, const std::string& etag);

// One file in a repo listing; mirrors huggingface_hub's TreeCacheEntry.
struct RepoFile {
  std::string path;
  uint64_t size = 0;
  std::string blob_id;                // git object id
  std::optional<std::string> lfs_sha256;
  std::optional<uint64_t> lfs_size;
  std::optional<std::string> xet_hash;
};

// trees/{commit}.json exactly as huggingface_hub writes it (json.dump(indent=1), sorted paths).
std::string tree_cache_json(const std::vector<RepoFile>& files);
Expected<std::vector<RepoFile>> parse_tree_cache_json(const std::string& text);

// Reads refs/{revision} under a repo's storage folder; nullopt if absent.
std::optional<std::string> read_ref(const std::string& storage_dir, const std::string& revision);

// Writes a small file atomically (temp file + rename) creating parent folders.
Status write_file_atomic(const std::string& path, const std::string& content);

}  // namespace gptoss::hub
