#include "hub/hf_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace gptoss::hub {
namespace {

std::string env_or(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : def;
}

std::string expand_user(const std::string& p) {
  if (p.size() >= 1 && p[0] == '~' && (p.size() == 1 || p[1] == '/')) {
    return env_or("HOME", "") + p.substr(1);
  }
  return p;
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool valid_repo_part(const std::string& s) {
  if (s.empty()) return false;
  if (!is_word_char(s.front()) || !is_word_char(s.back())) return false;
  for (char c : s) {
    if (!is_word_char(c) && c != '-' && c != '.') return false;
  }
  return true;
}

// Matches one bracket expression at pattern[pi] ('['); returns the index after ']' or npos when
// the bracket is not closed (then '[' is a literal, as in Python's fnmatch).
size_t match_bracket(const std::string& pat, size_t pi, char c, bool* matched) {
  size_t j = pi + 1;
  bool negate = false;
  if (j < pat.size() && pat[j] == '!') {
    negate = true;
    ++j;
  }
  size_t start = j;
  if (j < pat.size() && pat[j] == ']') ++j;  // a leading ']' is literal
  while (j < pat.size() && pat[j] != ']') ++j;
  if (j >= pat.size()) return std::string::npos;
  bool in = false;
  for (size_t k = start; k < j; ++k) {
    if (k + 2 < j && pat[k + 1] == '-') {
      if (pat[k] <= c && c <= pat[k + 2]) in = true;
      k += 2;
    } else if (pat[k] == c) {
      in = true;
    }
  }
  *matched = (in != negate);
  return j + 1;
}

bool fnmatch_at(const std::string& s, size_t si, const std::string& p, size_t pi) {
  while (pi < p.size()) {
    char pc = p[pi];
    if (pc == '*') {
      while (pi < p.size() && p[pi] == '*') ++pi;
      if (pi == p.size()) return true;
      for (size_t k = si; k <= s.size(); ++k) {
        if (fnmatch_at(s, k, p, pi)) return true;
      }
      return false;
    }
    if (si >= s.size()) return false;
    if (pc == '?') {
      ++si;
      ++pi;
      continue;
    }
    if (pc == '[') {
      bool matched = false;
      size_t next = match_bracket(p, pi, s[si], &matched);
      if (next != std::string::npos) {
        if (!matched) return false;
        ++si;
        pi = next;
        continue;
      }
    }
    if (s[si] != pc) return false;
    ++si;
    ++pi;
  }
  return si == s.size();
}

std::string with_dir_wildcard(const std::string& p) { return (!p.empty() && p.back() == '/') ? p + "*" : p; }

}  // namespace

Expected<RepoRef> parse_repo_ref(const std::string& s) {
  RepoRef ref;
  std::string id = s;
  if (auto at = s.find('@'); at != std::string::npos) {
    id = s.substr(0, at);
    ref.revision = s.substr(at + 1);
    if (ref.revision.empty()) return Error("'{}': empty revision after '@'", s);
    for (char c : ref.revision) {
      if (std::isspace(static_cast<unsigned char>(c))) return Error("'{}': revision has whitespace", s);
    }
    if (ref.revision.find("..") != std::string::npos) return Error("'{}': bad revision", s);
  } else {
    ref.revision = "main";
  }
  auto slash = id.find('/');
  bool ok = id.size() <= 96 && id.find("--") == std::string::npos && id.find("..") == std::string::npos;
  if (ok && slash == std::string::npos) {
    ok = valid_repo_part(id);
  } else if (ok) {
    ok = id.find('/', slash + 1) == std::string::npos && valid_repo_part(id.substr(0, slash)) &&
         valid_repo_part(id.substr(slash + 1));
  }
  if (!ok || id.ends_with(".git")) {
    return Error("'{}' is not a Hugging Face repo id (expected org/name or org/name@revision)", s);
  }
  ref.repo_id = id;
  return ref;
}

bool is_commit_hash(const std::string& s) {
  if (s.size() != 40) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'); });
}

std::string hf_home() {
  std::string xdg = env_or("XDG_CACHE_HOME", expand_user("~/.cache"));
  return expand_user(env_or("HF_HOME", xdg + "/huggingface"));
}

std::string hub_cache_dir() {
  std::string legacy = env_or("HUGGINGFACE_HUB_CACHE", hf_home() + "/hub");
  return expand_user(env_or("HF_HUB_CACHE", legacy));
}

std::string repo_folder_name(const std::string& repo_id) {
  std::string out = "models";
  std::stringstream ss(repo_id);
  std::string part;
  while (std::getline(ss, part, '/')) out += "--" + part;
  return out;
}

bool hub_offline() {
  std::string v = env_or("HF_HUB_OFFLINE", env_or("TRANSFORMERS_OFFLINE", ""));
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::toupper(c); });
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE";
}

std::string hub_token() {
  std::string t = env_or("HF_TOKEN", env_or("HUGGING_FACE_HUB_TOKEN", ""));
  if (!t.empty()) return t;
  std::string path = expand_user(env_or("HF_TOKEN_PATH", hf_home() + "/token"));
  std::ifstream in(path);
  if (!in) return "";
  std::getline(in, t);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  return t;
}

std::string hub_endpoint() {
  std::string e = env_or("HF_ENDPOINT", "https://huggingface.co");
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

bool fnmatch_case(const std::string& name, const std::string& pattern) {
  return fnmatch_at(name, 0, pattern, 0);
}

bool path_selected(const std::string& path, const std::vector<std::string>& include,
                   const std::vector<std::string>& exclude) {
  if (!include.empty()) {
    bool any = false;
    for (const auto& p : include) any = any || fnmatch_case(path, with_dir_wildcard(p));
    if (!any) return false;
  }
  for (const auto& p : exclude) {
    if (fnmatch_case(path, with_dir_wildcard(p))) return false;
  }
  return true;
}

bool safe_repo_path(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.find('\\') != std::string::npos ||
      path.find('\0') != std::string::npos) {
    return false;
  }
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return path.back() != '/';
}

std::string blob_link_target(const std::string& repo_path, const std::string& etag) {
  std::string up = "../../";
  for (char c : repo_path) {
    if (c == '/') up += "../";
  }
  return up + "blobs/" + etag;
}

std::string tree_cache_json(const std::vector<RepoFile>& files) {
  std::map<std::string, const RepoFile*> sorted;
  for (const auto& f : files) sorted[f.path] = &f;
  nlohmann::ordered_json j;
  j["format_version"] = 1;
  j["files"] = nlohmann::ordered_json::object();
  for (const auto& [path, f] : sorted) {
    nlohmann::ordered_json e;
    e["size"] = f->size;
    e["blob_id"] = f->blob_id;
    if (f->lfs_sha256) {
      e["lfs_sha256"] = *f->lfs_sha256;
      if (f->lfs_size) {
        e["lfs_size"] = *f->lfs_size;
      } else {
        e["lfs_size"] = nullptr;
      }
    }
    if (f->xet_hash) e["xet_hash"] = *f->xet_hash;
    j["files"][path] = e;
  }
  // Python's json.dump(indent=1) with ensure_ascii: the same bytes as huggingface_hub writes.
  return j.dump(1, ' ', true);
}

Expected<std::vector<RepoFile>> parse_tree_cache_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error("tree listing is not valid JSON");
  auto version = j.find("format_version");  // value() would throw on a non-number
  if (version == j.end() || !version->is_number_integer() || *version != 1 || !j.contains("files") ||
      !j["files"].is_object()) {
    return Error("tree listing has an unknown format");
  }
  std::vector<RepoFile> out;
  for (auto it = j["files"].begin(); it != j["files"].end(); ++it) {
    const auto& e = it.value();
    if (!e.is_object() || !e.contains("size") || !e["size"].is_number_unsigned() || !e.contains("blob_id") ||
        !e["blob_id"].is_string()) {
      return Error("tree listing entry '{}' lacks size/blob_id", it.key());
    }
    RepoFile f;
    f.path = it.key();
    f.size = e["size"].get<uint64_t>();
    f.blob_id = e["blob_id"].get<std::string>();
    if (e.contains("lfs_sha256") && e["lfs_sha256"].is_string()) f.lfs_sha256 = e["lfs_sha256"].get<std::string>();
    if (e.contains("lfs_size") && e["lfs_size"].is_number_unsigned()) f.lfs_size = e["lfs_size"].get<uint64_t>();
    if (e.contains("xet_hash") && e["xet_hash"].is_string()) f.xet_hash = e["xet_hash"].get<std::string>();
    out.push_back(std::move(f));
  }
  return out;
}

std::optional<std::string> read_ref(const std::string& storage_dir, const std::string& revision) {
  std::ifstream in(storage_dir + "/refs/" + revision);
  if (!in) return std::nullopt;
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  if (s.empty()) return std::nullopt;
  return s;
}

Status write_file_atomic(const std::string& path, const std::string& content) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return Error("cannot create folder for {}: {}", path, ec.message());
  std::random_device rd;
  std::string tmp = fmt::format("{}.{:08x}.tmp", path, rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd < 0) return Error("cannot write {}: {}", tmp, std::strerror(errno));
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error("cannot write {}: {}", path, std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error("cannot write {}: {}", path, std::strerror(err));
  }
  return Status::ok();
}

}  // namespace gptoss::hub
