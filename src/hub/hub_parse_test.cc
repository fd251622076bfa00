// The parsers of what the hub sends (pull.h, hf_cache.h): well-formed answers as the hub writes
// them, and wrong-typed fields as errors (nlohmann's value() threw out of `gptoss pull` on them;
// found by fuzz_hub_api, inputs under tests/fuzz/crashes/hub_api/).
#include <gtest/gtest.h>

#include "hub/hf_cache.h"
#include "hub/pull.h"

namespace gptoss::hub {
namespace {

std::string error_of(const Status& st) { return st.is_ok() ? "(ok)" : st.message(); }

TEST(HubParse, TreePageAsTheHubSendsIt) {
  // Shape of GET /api/models/openai/gpt-oss-20b/tree/<commit>?recursive=true&expand=false.
  auto r = parse_tree_page(
      R"([{"type":"directory","oid":"d1","size":0,"path":"original"},
          {"type":"file","oid":"a1","size":1576,"path":"config.json"},
          {"type":"file","oid":"c3","size":13761264768,"path":"model.safetensors",
           "lfs":{"oid":"7e0e","size":13761264768,"pointerSize":135},"xetHash":"x1"}])");
  ASSERT_TRUE(r) << error_of(r.status());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].path, "config.json");
  EXPECT_EQ((*r)[0].size, 1576u);
  EXPECT_EQ((*r)[0].blob_id, "a1");
  EXPECT_FALSE((*r)[0].lfs_sha256);
  EXPECT_EQ((*r)[1].size, 13761264768u);
  EXPECT_EQ(*(*r)[1].lfs_sha256, "7e0e");
  EXPECT_EQ(*(*r)[1].lfs_size, 13761264768u);
  EXPECT_EQ(*(*r)[1].xet_hash, "x1");
}

TEST(HubParse, WrongTypedFieldsAreErrorsNotExceptions) {
  EXPECT_NE(error_of(parse_tree_page(R"([{"type":1}])").status())
                .find("entry 0: \"type\" is not a string"),
            std::string::npos);
  EXPECT_NE(error_of(parse_tree_page(R"([{"type":"file","size":"1"}])").status())
                .find("entry 0: \"size\" is not a size"),
            std::string::npos);
  EXPECT_NE(error_of(parse_tree_page(R"([{"type":"file","size":-1}])").status()).find("\"size\""),
            std::string::npos);
  EXPECT_NE(error_of(parse_tree_page(R"([{"type":"file","lfs":{"oid":[]}}])").status())
                .find("lfs: \"oid\""),
            std::string::npos);
  EXPECT_NE(error_of(parse_tree_page("{}").status()).find("not a JSON array"), std::string::npos);
  EXPECT_NE(error_of(parse_revision_info(R"({"sha":"x","siblings":[{"rfilename":1}]})").status())
                .find("siblings entry 0: \"rfilename\" is not a string"),
            std::string::npos);
  EXPECT_NE(error_of(parse_revision_info(R"({"sha":"x","siblings":[1]})").status())
                .find("siblings entry 0 is not an object"),
            std::string::npos);
  EXPECT_NE(error_of(parse_revision_info(R"({"sha":1})").status()).find("no commit sha"),
            std::string::npos);
  EXPECT_FALSE(parse_tree_cache_json(R"({"format_version":"1","files":{}})"));
  EXPECT_TRUE(parse_tree_cache_json(R"({"format_version":1,"files":{}})"));
}

TEST(HubParse, RevisionInfoSiblingsForMirrorsWithoutTree) {
  auto r = parse_revision_info(
      R"({"sha":"6cee5e81ee83917806bbde320786a8fb61efebee","siblings":[{"rfilename":"config.json","blobId":"a1",
          "size":2},{"rfilename":"m.safetensors","blobId":"b","size":10,"lfs":{"sha256":"ab","size":10}}]})");
  ASSERT_TRUE(r) << error_of(r.status());
  EXPECT_EQ(r->commit, "6cee5e81ee83917806bbde320786a8fb61efebee");
  ASSERT_TRUE(r->siblings);
  ASSERT_EQ(r->siblings->size(), 2u);
  EXPECT_EQ((*r->siblings)[1].path, "m.safetensors");
  EXPECT_EQ(*(*r->siblings)[1].lfs_sha256, "ab");
  auto bare = parse_revision_info(R"({"sha":"abc"})");
  ASSERT_TRUE(bare);
  EXPECT_FALSE(bare->siblings);
}

TEST(HubParse, LinkHeaderAndSizeHeader) {
  EXPECT_EQ(next_page_url(R"(<https://h/a?cursor=1>; rel="next")"), "https://h/a?cursor=1");
  EXPECT_EQ(next_page_url(R"(<https://h/p>; rel="prev", <https://h/n>; rel="next")"),
            "https://h/n");
  EXPECT_EQ(next_page_url(R"(<https://h/p>; rel="prev")"), "");
  EXPECT_EQ(next_page_url(R"(rel="next" <x>)"), "");
  EXPECT_EQ(*parse_u64("13761264768", "size"), 13761264768u);
  EXPECT_EQ(*parse_u64("18446744073709551615", "size"), UINT64_MAX);
  // One past UINT64_MAX used to wrap around silently.
  EXPECT_NE(error_of(parse_u64("18446744073709551616", "size").status()).find("out of range"),
            std::string::npos);
  EXPECT_NE(error_of(parse_u64("12a", "size").status()).find("not a number"), std::string::npos);
  EXPECT_NE(error_of(parse_u64("", "size").status()).find("empty"), std::string::npos);
}

}  // namespace
}  // namespace gptoss::hub
