// resolve_model without a network: local folders and files, and hub ids found in a cache laid out
// the way huggingface_hub lays it out (refs/main -> snapshots/<commit>, trees/<commit>.json).
#include "hub/resolve.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace gptoss::hub {
namespace {

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

class ResolveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // ctest runs each test in its own process, in parallel: one directory per process.
    root_ = fs::path(::testing::TempDir()) / ("resolve_test_" + std::to_string(getpid()));
    fs::remove_all(root_);
    cache_ = root_ / "cache";
    storage_ = cache_ / "models--acme--m";
    fs::create_directories(storage_ / "refs");
    fs::create_directories(storage_ / "snapshots" / kCommit);
    fs::create_directories(storage_ / "blobs");
    write(storage_ / "refs" / "main", kCommit);
    add_file("config.json");
    setenv("HF_HUB_CACHE", cache_.c_str(), 1);
    setenv("HF_HUB_OFFLINE", "1", 1);  // nothing here may touch the network
  }
  void TearDown() override {
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_HUB_OFFLINE");
  }
  static void write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }
  void add_file(const std::string& name) {
    write(storage_ / "blobs" / name, "{}");
    fs::create_symlink("../../blobs/" + name, storage_ / "snapshots" / kCommit / name);
  }
  fs::path root_, cache_, storage_;
  ResolveOptions opt_;
};

TEST_F(ResolveTest, LocalPaths) {
  fs::create_directories(root_ / "dir");
  write(root_ / "w.safetensors", "x");
  write(root_ / "w.gguf", "x");
  write(root_ / "notes.txt", "x");
  EXPECT_EQ(*resolve_model((root_ / "dir").string(), opt_), (root_ / "dir").string());
  EXPECT_EQ(*resolve_model((root_ / "w.safetensors").string(), opt_), (root_ / "w.safetensors").string());
  EXPECT_EQ(*resolve_model((root_ / "w.gguf").string(), opt_), (root_ / "w.gguf").string());
  auto bad = resolve_model((root_ / "notes.txt").string(), opt_);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("not a model file"), std::string::npos);
  auto missing = resolve_model((root_ / "nope.safetensors").string(), opt_);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find("no such file"), std::string::npos);
  EXPECT_FALSE(resolve_model("not a repo", opt_));
}

TEST_F(ResolveTest, HubIdFoundInCache) {
  std::string snap = (storage_ / "snapshots" / kCommit).string();
  EXPECT_EQ(*resolve_model("acme/m", opt_), snap);
  EXPECT_EQ(*resolve_model("acme/m@main", opt_), snap);
  EXPECT_EQ(*resolve_model("acme/m@" + kCommit, opt_), snap);
  auto other = resolve_model("acme/m@v2", opt_);  // no refs/v2
  ASSERT_FALSE(other);
  EXPECT_NE(other.status().message().find("HF_HUB_OFFLINE"), std::string::npos);
}

TEST_F(ResolveTest, IncompleteSnapshotIsNotUsed) {
  // The tree listing names model.safetensors, which an interrupted pull never linked.
  fs::create_directories(storage_ / "trees");
  RepoFile a{"config.json", 2, "b1", std::nullopt, std::nullopt, std::nullopt};
  RepoFile b{"model.safetensors", 9, "b2", std::string(64, 'a'), 9, std::nullopt};
  RepoFile c{"original/model.safetensors", 9, "b3", std::string(64, 'b'), 9, std::nullopt};
  write(storage_ / "trees" / (kCommit + ".json"), tree_cache_json({a, b, c}));
  auto r = resolve_model("acme/m", opt_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("not in the Hugging Face cache"), std::string::npos);
  add_file("model.safetensors");  // original/ is an alternate copy: not needed
  auto ok = resolve_model("acme/m", opt_);
  ASSERT_TRUE(ok) << ok.status().message();
  EXPECT_EQ(*ok, (storage_ / "snapshots" / kCommit).string());
}

TEST_F(ResolveTest, NotCachedOffline) {
  auto r = resolve_model("acme/other", opt_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("HF_HUB_OFFLINE"), std::string::npos);
  EXPECT_NE(r.status().message().find(cache_.string()), std::string::npos);
}

}  // namespace
}  // namespace gptoss::hub
