// Expected digests come from Python's hashlib (see the comment on each).
#include "hub/sha256.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

namespace gptoss::hub {
namespace {

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char((i * 7 + 3) % 256);
  return s;
}

// Every SHA-256 test runs on the portable code and on SHA-NI (where the CPU has it).
class Sha256Test : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { force_portable_sha256 = GetParam(); }
  void TearDown() override { force_portable_sha256 = false; }
};
INSTANTIATE_TEST_SUITE_P(Impl, Sha256Test, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "portable" : "dispatched"; });

TEST_P(Sha256Test, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// hashlib.sha256(''.join(hashlib.sha256(pat[:n]).hexdigest() for n in range(201)).encode()), with
// pat[i] = (7i+3) % 256: every padding case (lengths around 55/56/64/119/120/128) contributes.
TEST_P(Sha256Test, EveryLengthUpTo200) {
  std::string all;
  std::string pat = pattern(200);
  for (size_t n = 0; n <= 200; ++n) all += sha256_hex(std::string_view(pat).substr(0, n));
  EXPECT_EQ(sha256_hex(all), "530566f39d545b371e5360fbfe251c0da6410ba297e67392dfaec0cb575d67ed");
}

TEST_P(Sha256Test, ChunkedUpdatesEqualOneShot) {
  std::string pat = pattern(1000);  // hashlib.sha256(pat).hexdigest()
  const char* want = "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371";
  EXPECT_EQ(sha256_hex(pat), want);
  for (size_t chunk : {1u, 3u, 63u, 64u, 65u, 127u, 999u}) {
    Sha256 h;
    for (size_t off = 0; off < pat.size(); off += chunk) h.update(pat.data() + off, std::min(chunk, pat.size() - off));
    EXPECT_EQ(h.hex_digest(), want) << "chunk " << chunk;
  }
  Sha256 h;
  h.update("junk");
  (void)h.digest();
  h.reset();
  h.update(pat);
  EXPECT_EQ(h.hex_digest(), want);
}

TEST_P(Sha256Test, File) {
  // ctest runs each case in its own process, in parallel: one file per process.
  std::string path = ::testing::TempDir() + "/sha256_test_" + std::to_string(getpid()) + ".bin";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  std::string pat = pattern(1000);
  std::fwrite(pat.data(), 1, pat.size(), f);
  std::fclose(f);
  auto got = sha256_file(path);
  ASSERT_TRUE(got) << got.status().message();
  EXPECT_EQ(*got, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371");
  auto missing = sha256_file(path + ".nope");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find(path + ".nope"), std::string::npos);
  std::remove(path.c_str());
}

// hashlib.sha1 values, and `git hash-object` for the blob id.
TEST(Sha1, KnownVectorsAndGitBlobIds) {
  EXPECT_EQ(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(sha1_hex(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  std::string all, pat = pattern(200);
  for (size_t n = 0; n <= 200; ++n) all += sha1_hex(std::string_view(pat).substr(0, n));
  EXPECT_EQ(sha1_hex(all), "fd79730aeac91eb4b5c69ad92ffae67091f61970");
  EXPECT_EQ(git_blob_id("hello world\n"), "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
}

}  // namespace
}  // namespace gptoss::hub
