// resolve_model's pull path against an in-process fake hub (cpp-httplib on 127.0.0.1): a hub id
// missing from the cache is pulled with --yes, refused without it off a terminal, and found in
// the cache the next time without any request. tests/py/test_pull.py checks the layout itself
// against huggingface_hub.
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "hub/resolve.h"
#include "hub/sha256.h"

namespace fs = std::filesystem;

namespace gptoss::hub {
namespace {

const std::string kCommit = "89abcdef0123456789abcdef0123456789abcdef";
const std::string kConfig = "{\"model_type\": \"gpt_oss\"}";
const std::string kWeights(100000, '\x5a');

class FakeHub {
 public:
  FakeHub() {
    std::string wsha = sha256_hex(kWeights);
    std::string cfg_id = git_blob_id(kConfig);
    srv_.set_pre_routing_handler([this](const httplib::Request&, httplib::Response&) {
      ++requests_;
      return httplib::Server::HandlerResponse::Unhandled;
    });
    srv_.Get("/api/models/acme/m/revision/main", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"id\": \"acme/m\", \"sha\": \"" + kCommit + "\", \"siblings\": []}", "application/json");
    });
    srv_.Get("/api/models/acme/m/tree/" + kCommit, [=](const httplib::Request&, httplib::Response& res) {
      res.set_content(fmt::format("[{{\"type\": \"file\", \"path\": \"config.json\", \"size\": {}, \"oid\": \"{}\"}},"
                                  "{{\"type\": \"file\", \"path\": \"model.safetensors\", \"size\": {}, \"oid\": \"{}\","
                                  " \"lfs\": {{\"oid\": \"{}\", \"size\": {}, \"pointerSize\": 130}}}}]",
                                  kConfig.size(), cfg_id, kWeights.size(), std::string(40, '1'), wsha,
                                  kWeights.size()),
                      "application/json");
    });
    auto resolve = [=](const httplib::Request& req, httplib::Response& res) {
      bool weights = req.path.ends_with("model.safetensors");
      res.set_header("X-Repo-Commit", kCommit);
      res.set_header("ETag", "\"" + (weights ? wsha : cfg_id) + "\"");
      res.set_content(weights ? kWeights : kConfig, "application/octet-stream");
    };
    srv_.Get("/acme/m/resolve/" + kCommit + "/(.*)", resolve);
    port_ = srv_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    // bind_to_any_port already listens: early connections wait in the backlog.
  }
  ~FakeHub() {
    srv_.stop();
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  httplib::Server srv_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0};
};

TEST(ResolvePull, PullsWithYesThenUsesTheCache) {
  FakeHub hub;
  fs::path cache = fs::path(::testing::TempDir()) / ("resolve_pull_cache_" + std::to_string(getpid()));
  fs::remove_all(cache);
  setenv("HF_HUB_CACHE", cache.c_str(), 1);
  setenv("HF_ENDPOINT", hub.endpoint().c_str(), 1);
  unsetenv("HF_HUB_OFFLINE");
  unsetenv("HF_TOKEN");

  ResolveOptions opt;
  opt.interactive = false;
  opt.pull.progress = ProgressMode::kQuiet;
  auto refused = resolve_model("acme/m", opt);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.status().message().find("gptoss pull acme/m"), std::string::npos);
  EXPECT_NE(refused.status().message().find("--yes"), std::string::npos);
  EXPECT_FALSE(fs::exists(cache / "models--acme--m" / "snapshots"));

  opt.assume_yes = true;
  auto dir = resolve_model("acme/m", opt);
  ASSERT_TRUE(dir) << dir.status().message();
  EXPECT_EQ(*dir, (cache / "models--acme--m" / "snapshots" / kCommit).string());
  std::ifstream in(*dir + "/model.safetensors", std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, kWeights);

  int before = hub.requests();
  auto again = resolve_model("acme/m", opt);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *dir);
  EXPECT_EQ(hub.requests(), before);  // served from the cache

  unsetenv("HF_HUB_CACHE");
  unsetenv("HF_ENDPOINT");
  fs::remove_all(cache);
}

}  // namespace
}  // namespace gptoss::hub
