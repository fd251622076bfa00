#include "hub/pull.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "hub/http.h"
#include "hub/sha256.h"

namespace fs = std::filesystem;

namespace gptoss::hub {
namespace {

constexpr const char* kCachedirTag =
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/\n";

struct Ctx {
  std::string endpoint, token, cache_dir;
};

Ctx make_ctx(const PullOptions& opt) {
  return {opt.endpoint.empty() ? hub_endpoint() : opt.endpoint, opt.token.empty() ? hub_token() : opt.token,
          opt.cache_dir.empty() ? hub_cache_dir() : opt.cache_dir};
}

HttpOptions api_options(const Ctx& ctx) {
  HttpOptions o;
  if (!ctx.token.empty()) o.headers.push_back("Authorization: Bearer " + ctx.token);
  return o;
}

// Turns a hub error response into what the user should do about it (huggingface_hub's
// hf_raise_for_status reads the same X-Error-Code header).
Status hub_error(const HttpResponse& r, const Ctx& ctx, const std::string& repo_id, const std::string& what) {
  std::string code = r.header("x-error-code");
  std::string msg = r.header("x-error-message");
  bool sent_token = !ctx.token.empty();
  if (code == "RevisionNotFound") return Error("{}: revision not found in {} ({})", what, repo_id, msg);
  if (code == "EntryNotFound") return Error("{}: file not found in {}", what, repo_id);
  if (code == "GatedRepo" || r.status == 403 || (r.status == 401 && code != "RepoNotFound")) {
    return Error(
        "{}: access to {} denied (HTTP {}). The repository is gated or private: accept its license at {}/{} "
        "and set HF_TOKEN (or pass --token) to a token that has access{}",
        what, repo_id, r.status, ctx.endpoint, repo_id,
        sent_token ? "; the token that was sent was refused or lacks access" : "; no token was sent");
  }
  if (r.status == 404 || code == "RepoNotFound") {
    return Error("{}: repository '{}' not found on {} (HTTP {}). Check the name; if it is private or gated, set "
                 "HF_TOKEN (or pass --token)",
                 what, repo_id, ctx.endpoint, r.status);
  }
  std::string detail = msg.empty() ? r.body.substr(0, 200) : msg;
  return Error("{}: HTTP {} from {}{}{}", what, r.status, r.url, detail.empty() ? "" : ": ", detail);
}

std::string normalize_etag(std::string e) {
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  while (!e.empty() && e.front() == '"') e.erase(e.begin());
  while (!e.empty() && e.back() == '"') e.pop_back();
  return e;
}

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}


// The listing with sizes, blob ids and LFS hashes from /tree (what huggingface_hub caches in
// trees/{commit}.json), following Link: rel="next" pages.
Expected<std::vector<RepoFile>> list_tree(const Ctx& ctx, const std::string& repo_id, const std::string& commit) {
  std::vector<RepoFile> out;
  std::string url = fmt::format("{}/api/models/{}/tree/{}?recursive=true&expand=false", ctx.endpoint, repo_id, commit);
  for (int page = 0; !url.empty() && page < 10000; ++page) {
    GPTOSS_ASSIGN_OR_RETURN(HttpResponse r, http_get(url, api_options(ctx)));
    if (r.status != 200) return hub_error(r, ctx, repo_id, "listing files");
    auto page_files = parse_tree_page(r.body);
    if (!page_files) return Error("listing files of {}: {}: {}", repo_id, url, page_files.status().message());
    for (auto& f : *page_files) out.push_back(std::move(f));
    url = next_page_url(r.header("link"));
  }
  return out;
}

// Holds flock() on .locks/models--org--name/{etag}.lock, the lock file huggingface_hub uses, so the
// two tools never write the same blob at once.
class BlobLock {
 public:
  static Expected<BlobLock> acquire(const std::string& path) {
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    BlobLock l;
    l.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0666);
    if (l.fd_ < 0) return Error("cannot create lock file {}: {}", path, std::strerror(errno));
    while (::flock(l.fd_, LOCK_EX) != 0) {
      if (errno != EINTR) return Error("cannot lock {}: {}", path, std::strerror(errno));
    }
    return l;
  }
  BlobLock() = default;
  BlobLock(BlobLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ~BlobLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_ = -1;
};

Status make_pointer(const std::string& storage, const std::string& commit, const RepoFile& f,
                    const std::string& etag) {
  fs::path pointer = fs::path(storage) / "snapshots" / commit / f.path;
  std::error_code ec;
  fs::create_directories(pointer.parent_path(), ec);
  if (ec) return Error("cannot create {}: {}", pointer.parent_path().string(), ec.message());
  fs::remove(pointer, ec);
  fs::create_symlink(blob_link_target(f.path, etag), pointer, ec);
  if (ec) return Error("cannot create symlink {}: {}", pointer.string(), ec.message());
  return Status::ok();
}

struct FileMeta {
  std::string etag, commit, location;
  uint64_t size = 0;
};

Expected<FileMeta> head_file(const Ctx& ctx, const PullPlan& plan, const RepoFile& f) {
  std::string url = fmt::format("{}/{}/resolve/{}/{}", ctx.endpoint, plan.repo_id, plan.commit, url_quote_path(f.path));
  HttpOptions o = api_options(ctx);
  o.headers.push_back("Accept-Encoding: identity");
  GPTOSS_ASSIGN_OR_RETURN(HttpResponse r, http_head_hub(url, o));
  if (r.status >= 400) return hub_error(r, ctx, plan.repo_id, f.path);
  FileMeta m;
  m.commit = r.header("x-repo-commit");
  if (m.commit.empty()) {
    return Error("{}: the response from {} has no X-Repo-Commit header, so it is not a Hugging Face hub; check "
                 "HF_ENDPOINT and any proxy",
                 f.path, url_origin(url));
  }
  std::string linked = r.header("x-linked-etag");
  m.etag = normalize_etag(linked.empty() ? r.header("etag") : linked);
  if (m.etag.empty() || m.etag.find('/') != std::string::npos || m.etag == "." || m.etag == "..") {
    return Error("{}: the hub sent no usable ETag for {}", f.path, url);
  }
  bool redirect = r.status >= 300 && r.status < 400;
  std::string size_hdr = r.header("x-linked-size");
  if (size_hdr.empty() && !redirect) size_hdr = r.header("content-length");
  if (!size_hdr.empty()) {
    GPTOSS_ASSIGN_OR_RETURN(m.size, parse_u64(size_hdr, "size header of " + f.path));
  } else {
    m.size = f.lfs_size ? *f.lfs_size : f.size;
  }
  std::string loc = r.header("location");
  if (redirect && !loc.empty()) {
    m.location = (loc[0] == '/') ? url_origin(r.url) + loc : loc;
  } else {
    m.location = r.url;
  }
  return m;
}

// Downloads one blob into blobs/{etag}.incomplete (resuming it), verifies and renames it.
Status fetch_blob(const Ctx& ctx, const PullPlan& plan, const RepoFile& f, const FileMeta& m, Progress& progress) {
  std::string blob = plan.storage_dir + "/blobs/" + m.etag;
  std::string part = blob + ".incomplete";
  Sha256 hasher;
  std::optional<std::string> want_sha;
  if (f.lfs_sha256 && !f.lfs_sha256->empty()) {
    want_sha = *f.lfs_sha256;
  } else if (is_sha256_hex(m.etag)) {
    want_sha = m.etag;  // LFS etags are the content's sha256
  }

  // Regular (non-LFS) files: the hub's etag is their git blob id, sha1("blob <size>\0" + content).
  bool check_git = !want_sha && !f.blob_id.empty() && m.etag == f.blob_id && f.blob_id.size() == 40;
  Sha1 git_hasher;
  auto reset_hashers = [&] {
    hasher.reset();
    git_hasher.reset();
    std::string header = "blob " + std::to_string(m.size);
    git_hasher.update(header.data(), header.size() + 1);
  };
  auto hash = [&](const char* data, size_t n) {
    if (want_sha) hasher.update(data, n);
    if (check_git) git_hasher.update(data, n);
  };

  int fd = ::open(part.c_str(), O_RDWR | O_CREAT, 0666);
  if (fd < 0) return Error("cannot create {}: {}", part, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  uint64_t have = uint64_t(st.st_size);
  reset_hashers();
  if (have > m.size) {
    if (::ftruncate(fd, 0) != 0) {
      int err = errno;
      ::close(fd);
      return Error("cannot truncate {}: {}", part, std::strerror(err));
    }
    have = 0;
  }
  if (have > 0 && (want_sha || check_git)) {  // the resumed prefix is part of the hash
    std::vector<char> buf(1 << 20);
    uint64_t off = 0;
    while (off < have) {
      ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), have - off), off_t(off));
      if (n <= 0) {
        ::close(fd);
        return Error("cannot read {}: {}", part, n < 0 ? std::strerror(errno) : "short read");
      }
      hash(buf.data(), size_t(n));
      off += uint64_t(n);
    }
  }
  progress.start_file(f.path, m.size, have);

  std::string location = m.location;
  bool refreshed = false;
  auto options_for = [&](const std::string& url) {
    HttpOptions o;
    // The token only goes to the hub itself, never to the CDN a redirect points at.
    if (!ctx.token.empty() && url_origin(url) == url_origin(ctx.endpoint)) {
      o.headers.push_back("Authorization: Bearer " + ctx.token);
    }
    return o;
  };
  int write_errno = 0;
  std::string range_error;
  uint64_t pos = have;
  Status st_result;
  for (int attempt = 0; attempt < 5 && pos < m.size; ++attempt) {
    uint64_t start_pos = pos;
    DownloadCallbacks cb;
    cb.on_start = [&](long status, const HttpResponse& head) {
      if (status == 206) {  // must continue exactly where the file ends
        std::string cr = head.header("content-range");
        auto dash = cr.find('-');
        auto sp = cr.find(' ');
        if (sp == std::string::npos || dash == std::string::npos ||
            cr.substr(sp + 1, dash - sp - 1) != std::to_string(pos)) {
          range_error = fmt::format("the server answered Range bytes={}- with Content-Range '{}'", pos, cr);
          return false;
        }
      }
      if (status == 200 && pos > 0) {  // the server ignored our Range: start over
        if (::ftruncate(fd, 0) != 0) {
          write_errno = errno;
          return false;
        }
        progress.add_bytes(-int64_t(pos));
        pos = 0;
        reset_hashers();
      }
      return true;
    };
    cb.sink = [&](const char* data, size_t n) {
      if (pos + n > m.size) {  // never let a bad server fill the disk
        range_error = fmt::format("the server sent more than the {} bytes the hub lists", m.size);
        return false;
      }
      size_t done = 0;
      while (done < n) {
        ssize_t w = ::pwrite(fd, data + done, n - done, off_t(pos + done));
        if (w < 0) {
          if (errno == EINTR) continue;
          write_errno = errno;
          return false;
        }
        done += size_t(w);
      }
      hash(data, n);
      pos += n;
      progress.add_bytes(int64_t(n));
      return true;
    };
    auto r = http_download(location, options_for(location), pos, cb);
    if (!range_error.empty()) {
      ::close(fd);
      ::unlink(part.c_str());
      return Error("{}: {}; the download was deleted", f.path, range_error);
    }
    if (write_errno != 0) {
      ::close(fd);
      return Error("writing {}: {}. The partial download is kept; run the pull again to resume it", part,
                   std::strerror(write_errno));
    }
    if (!r) {
      st_result = r.status();
      if (pos > start_pos) continue;  // made progress before the drop: resume with Range
      break;
    }
    if (r->status == 416) {  // nothing left to send for our Range: restart cleanly
      if (::ftruncate(fd, 0) != 0) write_errno = errno;
      progress.add_bytes(-int64_t(pos));
      pos = 0;
      reset_hashers();
      st_result = Error("{}: the server refused the resume range", f.path);
      continue;
    }
    bool off_hub = url_origin(location) != url_origin(ctx.endpoint);
    if (r->status >= 400 && r->status < 500 && off_hub && !refreshed) {
      // Signed CDN URLs expire (long or resumed downloads): ask the hub for a fresh one, once.
      refreshed = true;
      auto fresh = head_file(ctx, plan, f);
      if (fresh && fresh->etag == m.etag) {
        location = fresh->location;
        --attempt;
        continue;
      }
    }
    if (r->status >= 400) {
      ::close(fd);
      if (!off_hub) return hub_error(*r, ctx, plan.repo_id, f.path);
      return Error("{}: HTTP {} from the file host {} (the partial download is kept; run the pull again)", f.path,
                   r->status, url_origin(location));
    }
    st_result = Status::ok();
    if (pos < m.size) st_result = Error("{}: the connection closed after {} of {} bytes", f.path, pos, m.size);
  }
  if (::fsync(fd) != 0 && write_errno == 0) write_errno = errno;
  ::close(fd);
  if (write_errno != 0) {
    return Error("writing {}: {}. The partial download is kept; run the pull again to resume it", part,
                 std::strerror(write_errno));
  }
  if (pos < m.size) {
    Status s = st_result.is_ok() ? Error("{}: download incomplete", f.path) : st_result;
    return s.with_context(fmt::format("{} ({} of {} bytes kept in {}; run the pull again to resume)", f.path, pos,
                                      m.size, part));
  }
  if (pos != m.size) {
    ::unlink(part.c_str());
    return Error("{}: received {} bytes but the hub lists {}; the download was deleted", f.path, pos, m.size);
  }
  if (want_sha) {
    std::string got = hasher.hex_digest();
    if (got != *want_sha) {
      ::unlink(part.c_str());
      return Error("{}: checksum mismatch: expected sha256 {}, got {}. The corrupt download was deleted; run the "
                   "pull again",
                   f.path, *want_sha, got);
    }
  }
  if (check_git) {
    std::string got = git_hasher.hex_digest();
    if (got != f.blob_id) {
      ::unlink(part.c_str());
      return Error("{}: checksum mismatch: expected git blob id {}, got {}. The corrupt download was deleted; run "
                   "the pull again",
                   f.path, f.blob_id, got);
    }
  }
  if (std::rename(part.c_str(), blob.c_str()) != 0) {
    return Error("cannot move {} to {}: {}", part, blob, std::strerror(errno));
  }
  progress.finish_file();
  return Status::ok();
}

}  // namespace

namespace {

using nlohmann::json;

// Field `key` of a hub JSON object: absent or null reads as empty / 0; any other type than the one
// the hub documents is an error (nlohmann's value() would throw instead).
Expected<std::string> str_field(const json& o, const char* key, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::string();
  if (!it->is_string()) return Error("{}: \"{}\" is not a string", where, key);
  return it->get<std::string>();
}

Expected<uint64_t> u64_field(const json& o, const char* key, const std::string& where) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return uint64_t(0);
  if (!it->is_number_unsigned()) return Error("{}: \"{}\" is not a size (a non-negative integer)", where, key);
  return it->get<uint64_t>();
}

// One file of a listing; the key names differ between /tree and /revision's siblings.
struct FileKeys {
  const char *path, *blob_id, *lfs_sha256;
};

Expected<RepoFile> repo_file(const json& e, const FileKeys& k, const std::string& where) {
  RepoFile f;
  GPTOSS_ASSIGN_OR_RETURN(f.path, str_field(e, k.path, where));
  GPTOSS_ASSIGN_OR_RETURN(f.size, u64_field(e, "size", where));
  GPTOSS_ASSIGN_OR_RETURN(f.blob_id, str_field(e, k.blob_id, where));
  auto lfs = e.find("lfs");
  if (lfs != e.end() && lfs->is_object()) {
    GPTOSS_ASSIGN_OR_RETURN(f.lfs_sha256, str_field(*lfs, k.lfs_sha256, where + " lfs"));
    GPTOSS_ASSIGN_OR_RETURN(f.lfs_size, u64_field(*lfs, "size", where + " lfs"));
  }
  auto xet = e.find("xetHash");
  if (xet != e.end() && xet->is_string()) f.xet_hash = xet->get<std::string>();
  return f;
}

}  // namespace

Expected<uint64_t> parse_u64(const std::string& s, const std::string& what) {
  if (s.empty()) return Error("{} is empty", what);
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Error("{} '{}' is not a number", what, s);
    const uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return Error("{} '{}' is out of range", what, s);
    v = v * 10 + d;
  }
  return v;
}

Expected<std::vector<RepoFile>> parse_tree_page(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (!j.is_array()) return Error("the answer is not a JSON array");
  std::vector<RepoFile> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& e = j[i];
    if (!e.is_object()) continue;
    const std::string where = fmt::format("entry {}", i);
    GPTOSS_ASSIGN_OR_RETURN(std::string type, str_field(e, "type", where));
    if (type != "file") continue;
    GPTOSS_ASSIGN_OR_RETURN(RepoFile f, repo_file(e, {"path", "oid", "oid"}, where));
    out.push_back(std::move(f));
  }
  return out;
}

std::string next_page_url(const std::string& link) {
  if (auto next = link.find("rel=\"next\""); next != std::string::npos) {
    auto lt = link.rfind('<', next), gt = link.rfind('>', next);
    if (lt != std::string::npos && gt != std::string::npos && gt > lt) return link.substr(lt + 1, gt - lt - 1);
  }
  return {};
}

Expected<RevisionInfo> parse_revision_info(const std::string& body) {
  auto info = json::parse(body, nullptr, false);
  if (!info.is_object() || !info.contains("sha") || !info["sha"].is_string()) return Error("the answer has no commit sha");
  RevisionInfo out;
  out.commit = info["sha"].get<std::string>();
  auto siblings = info.find("siblings");
  if (siblings != info.end() && siblings->is_array()) {
    out.siblings.emplace();
    for (size_t i = 0; i < siblings->size(); ++i) {
      const json& e = (*siblings)[i];
      const std::string where = fmt::format("siblings entry {}", i);
      if (!e.is_object()) return Error("{} is not an object", where);
      GPTOSS_ASSIGN_OR_RETURN(RepoFile f, repo_file(e, {"rfilename", "blobId", "sha256"}, where));
      out.siblings->push_back(std::move(f));
    }
  }
  return out;
}

std::vector<RepoFile> select_files(const std::vector<RepoFile>& files, const PullOptions& opt) {
  std::vector<std::string> exclude = opt.exclude;
  if (opt.skip_alternate_weights && opt.include.empty() && opt.exclude.empty()) {
    bool top_level_weights = false;
    for (const auto& f : files) {
      if (f.path.find('/') == std::string::npos && f.path.ends_with(".safetensors")) top_level_weights = true;
    }
    if (top_level_weights) exclude = {"original/", "metal/"};
  }
  std::vector<RepoFile> out;
  for (const auto& f : files) {
    if (path_selected(f.path, opt.include, exclude)) out.push_back(f);
  }
  return out;
}

std::optional<std::string> find_cached_snapshot(const std::string& cache_dir, const std::string& repo_id,
                                                const std::string& revision, const PullOptions& opt) {
  std::string storage = cache_dir + "/" + repo_folder_name(repo_id);
  std::optional<std::string> commit = is_commit_hash(revision) ? revision : read_ref(storage, revision);
  if (!commit || !is_commit_hash(*commit)) return std::nullopt;
  std::string snap = storage + "/snapshots/" + *commit;
  std::error_code ec;
  if (!fs::is_directory(snap, ec) || fs::is_empty(snap, ec)) return std::nullopt;
  std::ifstream in(storage + "/trees/" + *commit + ".json");
  if (in) {
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto files = parse_tree_cache_json(text);
    if (files) {
      for (const auto& f : select_files(*files, opt)) {
        if (!fs::exists(snap + "/" + f.path, ec)) return std::nullopt;  // an interrupted pull
      }
    }
  }
  return snap;
}

Expected<PullPlan> plan_pull(const std::string& repo_id, const PullOptions& opt) {
  Ctx ctx = make_ctx(opt);
  PullPlan plan;
  plan.repo_id = repo_id;
  plan.revision = opt.revision.empty() ? "main" : opt.revision;
  plan.storage_dir = ctx.cache_dir + "/" + repo_folder_name(repo_id);
  if (hub_offline()) {
    return Error("HF_HUB_OFFLINE is set, so {}@{} cannot be downloaded and is not complete in the cache ({}); unset "
                 "HF_HUB_OFFLINE to download it",
                 repo_id, plan.revision, ctx.cache_dir);
  }
  // url_quote_path keeps '/', but a revision like refs/pr/1 must be one path segment.
  std::string rev_q;
  for (char c : url_quote_path(plan.revision)) rev_q += (c == '/') ? std::string("%2F") : std::string(1, c);
  std::string url = fmt::format("{}/api/models/{}/revision/{}?blobs=true", ctx.endpoint, repo_id, rev_q);
  GPTOSS_ASSIGN_OR_RETURN(HttpResponse r, http_get(url, api_options(ctx)));
  if (r.status != 200) return hub_error(r, ctx, repo_id, fmt::format("looking up {}@{}", repo_id, plan.revision));
  auto info = parse_revision_info(r.body);
  if (!info) {
    return Error("looking up {}: {}: {}; is HF_ENDPOINT a Hugging Face hub?", repo_id, url, info.status().message());
  }
  plan.commit = info->commit;
  if (!is_commit_hash(plan.commit)) return Error("looking up {}: bad commit sha '{}'", repo_id, plan.commit);

  auto tree = list_tree(ctx, repo_id, plan.commit);
  if (tree) {
    plan.all_files = std::move(*tree);
  } else if (info->siblings) {  // older mirrors without /tree: the siblings carry the same data
    plan.all_files = std::move(*info->siblings);
  } else {
    return tree.status();
  }
  for (const auto& f : plan.all_files) {
    if (!safe_repo_path(f.path)) return Error("{}: the hub listed an unsafe path '{}'", repo_id, f.path);
  }
  plan.selected = select_files(plan.all_files, opt);
  std::error_code ec;
  for (const auto& f : plan.selected) {
    bool present = fs::exists(plan.storage_dir + "/snapshots/" + plan.commit + "/" + f.path, ec);
    std::string etag = f.lfs_sha256 ? *f.lfs_sha256 : f.blob_id;
    if (!present && !etag.empty()) present = fs::exists(plan.storage_dir + "/blobs/" + etag, ec);
    if (!present) {
      plan.bytes_missing += f.lfs_size ? *f.lfs_size : f.size;
      ++plan.files_missing;
    }
  }
  return plan;
}

Expected<std::string> run_pull(const PullPlan& plan, const PullOptions& opt) {
  Ctx ctx = make_ctx(opt);
  std::error_code ec;
  fs::create_directories(plan.storage_dir + "/blobs", ec);
  if (ec) return Error("cannot create {}/blobs: {}", plan.storage_dir, ec.message());
  if (!fs::exists(ctx.cache_dir + "/CACHEDIR.TAG", ec)) (void)write_file_atomic(ctx.cache_dir + "/CACHEDIR.TAG", kCachedirTag);
  if (plan.revision != plan.commit) {
    auto cur = read_ref(plan.storage_dir, plan.revision);
    if (!cur || *cur != plan.commit) {
      GPTOSS_RETURN_IF_ERROR(write_file_atomic(plan.storage_dir + "/refs/" + plan.revision, plan.commit));
    }
  }
  std::string tree_path = plan.storage_dir + "/trees/" + plan.commit + ".json";
  if (!fs::exists(tree_path, ec)) GPTOSS_RETURN_IF_ERROR(write_file_atomic(tree_path, tree_cache_json(plan.all_files)));

  Progress progress(opt.progress, plan.bytes_missing, plan.files_missing);
  struct statvfs vfs {};
  if (::statvfs((plan.storage_dir + "/blobs").c_str(), &vfs) == 0) {
    uint64_t free_bytes = uint64_t(vfs.f_bavail) * vfs.f_frsize;
    if (free_bytes < plan.bytes_missing) {  // a warning like huggingface_hub's: partial files may already be there
      progress.message(fmt::format("warning: {} to download but only {} free in {}", format_bytes(plan.bytes_missing),
                                   format_bytes(free_bytes), ctx.cache_dir));
    }
  }
  std::string snapshot = plan.storage_dir + "/snapshots/" + plan.commit;
  std::string locks = ctx.cache_dir + "/.locks/" + repo_folder_name(plan.repo_id);
  auto fetch_one = [&](const RepoFile& f) -> Status {
    std::error_code ec2;
    if (fs::exists(snapshot + "/" + f.path, ec2)) return Status::ok();  // already in this snapshot
    GPTOSS_ASSIGN_OR_RETURN(FileMeta m, head_file(ctx, plan, f));
    std::string blob = plan.storage_dir + "/blobs/" + m.etag;
    if (!fs::exists(blob, ec2)) {
      GPTOSS_ASSIGN_OR_RETURN(BlobLock lock, BlobLock::acquire(locks + "/" + m.etag + ".lock"));
      if (!fs::exists(blob, ec2)) GPTOSS_RETURN_IF_ERROR(fetch_blob(ctx, plan, f, m, progress));
    }
    return make_pointer(plan.storage_dir, plan.commit, f, m.etag);
  };
  // Several files at once, as huggingface_hub does: one stream from the hub's CDN rarely fills a fast link.
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  Status first_error;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < plan.selected.size();) {
      {
        std::lock_guard<std::mutex> lock(err_mu);
        if (!first_error.is_ok()) return;  // stop starting files after a failure
      }
      Status st = fetch_one(plan.selected[i]);
      if (!st.is_ok()) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (first_error.is_ok()) first_error = st;
      }
    }
  };
  size_t n_workers = std::max<size_t>(1, std::min<size_t>(size_t(std::max(opt.max_workers, 1)), plan.selected.size()));
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_workers; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (!first_error.is_ok()) {
    progress.done();
    return first_error;
  }
  progress.done();
  return snapshot;
}

}  // namespace gptoss::hub
