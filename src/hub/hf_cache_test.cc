// Pattern expectations are Python's fnmatch.fnmatchcase results (what huggingface_hub's
// allow_patterns/ignore_patterns use); layout strings are what huggingface_hub writes.
#include "hub/hf_cache.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace gptoss::hub {
namespace {

TEST(HfCache, FnmatchLikePython) {
  struct Case {
    const char* name;
    const char* pat;
    bool want;
  } cases[] = {
      {"config.json", "*.json", true},
      {"original/model.safetensors", "*.safetensors", true},  // '*' crosses '/'
      {"original/model.safetensors", "original/*", true},
      {"original/x/y.bin", "original/*", true},
      {"model.safetensors", "original/*", false},
      {"a.txt", "?.txt", true},
      {"ab.txt", "?.txt", false},
      {"b.txt", "[abc].txt", true},
      {"d.txt", "[!abc].txt", true},
      {"a.txt", "[!abc].txt", false},
      {"[x.txt", "[x.txt", true},  // unclosed '[' is literal
      {"a-1.bin", "a-[0-9].bin", true},
      {"a-x.bin", "a-[0-9].bin", false},
      {"README.md", "*", true},
      {"", "*", true},
      {"x", "", false},
      {"Config.json", "config.json", false},  // case-sensitive
  };
  for (const auto& c : cases) EXPECT_EQ(fnmatch_case(c.name, c.pat), c.want) << c.name << " vs " << c.pat;
}

TEST(HfCache, PathSelected) {
  EXPECT_TRUE(path_selected("a.json", {}, {}));
  EXPECT_TRUE(path_selected("original/a.bin", {"original/"}, {}));  // trailing '/' means the folder
  EXPECT_FALSE(path_selected("a.bin", {"original/"}, {}));
  EXPECT_FALSE(path_selected("original/a.bin", {}, {"original/*"}));
  EXPECT_FALSE(path_selected("x.json", {"*.json"}, {"x.*"}));
  EXPECT_TRUE(path_selected("y.json", {"*.safetensors", "*.json"}, {"x.*"}));
}

TEST(HfCache, RepoRefs) {
  auto r = parse_repo_ref("openai/gpt-oss-20b");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->repo_id, "openai/gpt-oss-20b");
  EXPECT_EQ(r->revision, "main");
  r = parse_repo_ref("openai/gpt-oss-20b@refs/pr/1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->revision, "refs/pr/1");
  EXPECT_TRUE(parse_repo_ref("gpt2"));
  EXPECT_TRUE(parse_repo_ref("Qwen/Qwen2.5-0.5B"));
  for (const char* bad : {"", "a/b/c", "/abs", "a//b", "-a/b", "a/b-", "a/b@", "a--b/c", "a/b..c", "a/b.git", "a b/c"}) {
    EXPECT_FALSE(parse_repo_ref(bad)) << bad;
  }
  EXPECT_EQ(repo_folder_name("openai/gpt-oss-20b"), "models--openai--gpt-oss-20b");
  EXPECT_EQ(repo_folder_name("gpt2"), "models--gpt2");
  EXPECT_TRUE(is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
  EXPECT_FALSE(is_commit_hash("main"));
  EXPECT_FALSE(is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
}

TEST(HfCache, SafePathsAndLinks) {
  EXPECT_TRUE(safe_repo_path("config.json"));
  EXPECT_TRUE(safe_repo_path("original/model.safetensors"));
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", "a\\b"}) {
    EXPECT_FALSE(safe_repo_path(bad)) << bad;
  }
  EXPECT_EQ(blob_link_target("config.json", "abc"), "../../blobs/abc");
  EXPECT_EQ(blob_link_target("original/model.safetensors", "abc"), "../../../blobs/abc");
  EXPECT_EQ(blob_link_target("a/b/c.bin", "e"), "../../../../blobs/e");
}

TEST(HfCache, CacheDirFromEnvironment) {
  setenv("HF_HUB_CACHE", "/tmp/hc", 1);
  EXPECT_EQ(hub_cache_dir(), "/tmp/hc");
  unsetenv("HF_HUB_CACHE");
  unsetenv("HUGGINGFACE_HUB_CACHE");
  setenv("HF_HOME", "/tmp/hh", 1);
  EXPECT_EQ(hub_cache_dir(), "/tmp/hh/hub");
  unsetenv("HF_HOME");
  setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
  EXPECT_EQ(hub_cache_dir(), "/tmp/xdg/huggingface/hub");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(hub_cache_dir(), "/home/u/.cache/huggingface/hub");
  setenv("HF_HUB_OFFLINE", "yes", 1);
  EXPECT_TRUE(hub_offline());
  setenv("HF_HUB_OFFLINE", "0", 1);
  EXPECT_FALSE(hub_offline());
  setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
  EXPECT_EQ(hub_endpoint(), "http://127.0.0.1:9");
}

// The bytes huggingface_hub's write_tree_cache produces for this listing
// (json.dump({...}, indent=1) with paths sorted and ensure_ascii).
TEST(HfCache, TreeCacheJsonMatchesHuggingfaceHub) {
  std::vector<RepoFile> files(2);
  files[0].path = "z/w\xc3\xa9ights.bin";
  files[0].size = 5;
  files[0].blob_id = "b2";
  files[0].lfs_sha256.emplace(1, 's');  // not = "s": GCC 12 -O3 false -Wrestrict
  files[0].lfs_size = 5;
  files[1].path = "a.json";
  files[1].size = 2;
  files[1].blob_id = "b1";
  std::string want =
      "{\n \"format_version\": 1,\n \"files\": {\n  \"a.json\": {\n   \"size\": 2,\n   \"blob_id\": \"b1\"\n  },\n"
      "  \"z/w\\u00e9ights.bin\": {\n   \"size\": 5,\n   \"blob_id\": \"b2\",\n   \"lfs_sha256\": \"s\",\n"
      "   \"lfs_size\": 5\n  }\n }\n}";
  EXPECT_EQ(tree_cache_json(files), want);
  auto back = parse_tree_cache_json(want);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[1].path, "z/w\xc3\xa9ights.bin");
  EXPECT_EQ(*(*back)[1].lfs_sha256, "s");
  EXPECT_FALSE(parse_tree_cache_json("{\"format_version\": 2, \"files\": {}}"));
}

}  // namespace
}  // namespace gptoss::hub
