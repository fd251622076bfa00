#include "core/mapped_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define GPTOSS_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GPTOSS_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef GPTOSS_TEST_UNDER_ASAN
#define GPTOSS_TEST_UNDER_ASAN 0
#endif

namespace gptoss {
namespace {

constexpr size_t kPage = 4096;

std::string write_temp_file(const std::string& name, size_t bytes) {
  auto path =
      std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()) + ".bin");
  std::ofstream out(path, std::ios::binary);
  for (size_t i = 0; i < bytes; ++i) out.put(static_cast<char>(i * 7 + 1));
  return path.string();
}

void no_core_dumps() {
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
}

TEST(MappedFile, MapsTheWholeFile) {
  const std::string path = write_temp_file("mapped-ok", 3 * kPage + 5);
  auto f = MappedFile::open(path);
  ASSERT_TRUE(f.has_value()) << f.status().message();
  ASSERT_EQ((*f)->size(), 3 * kPage + 5);
  for (size_t i : {size_t{0}, kPage, 3 * kPage + 4}) {
    EXPECT_EQ((*f)->data()[i], static_cast<uint8_t>(i * 7 + 1));
  }
  std::remove(path.c_str());
}

TEST(MappedFile, MissingFileIsAnErrorNamingIt) {
  auto f = MappedFile::open("/nonexistent/dir/model.safetensors");
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.status().message().find("/nonexistent/dir/model.safetensors"), std::string::npos);
}

using MappedFileDeathTest = ::testing::Test;

// The kernel raises SIGBUS for a page past the new end of a truncated file; the process must
// instead stop with a message naming the file, the offset and the new size, and exit status 74.
TEST_F(MappedFileDeathTest, TruncatedWhileMappedIsAFatalErrorNamingFileAndOffset) {
  const std::string path = write_temp_file("mapped-trunc", 3 * kPage);
  auto f = MappedFile::open(path);
  ASSERT_TRUE(f.has_value()) << f.status().message();
  const uint8_t* data = (*f)->data();
  EXPECT_EXIT(
      {
        no_core_dumps();
        if (::truncate(path.c_str(), kPage) != 0) std::_Exit(99);
        volatile uint8_t x = data[2 * kPage + 5];
        (void)x;
        std::_Exit(98);  // not reached
      },
      ::testing::ExitedWithCode(kMappedFileChangedExitCode),
      "fatal: .*mapped-trunc-[0-9]+\\.bin changed on disk while in use: reading byte 8197 of "
      "the 12288 bytes .*the file is now 4096 bytes");
  std::remove(path.c_str());
}

// stderr holds the fatal message exactly once, whole: one "gptoss: fatal:" and one line.
class OneWholeFatalMessage : public ::testing::MatcherInterface<const std::string&> {
 public:
  bool MatchAndExplain(const std::string& s,
                       ::testing::MatchResultListener* /*listener*/) const override {
    size_t count = 0;
    for (size_t at = s.find("gptoss: fatal: "); at != std::string::npos;
         at = s.find("gptoss: fatal: ", at + 1)) {
      ++count;
    }
    const std::string end = "start again.\n";
    return count == 1 && s.rfind("gptoss: fatal: ", 0) == 0 && s.size() >= end.size() &&
           s.compare(s.size() - end.size(), end.size(), end) == 0 && s.find('\n') == s.size() - 1 &&
           s.find("mapped-race-") != std::string::npos;
  }
  void DescribeTo(std::ostream* os) const override {
    *os << "is one whole line \"gptoss: fatal: ...mapped-race-... start again.\"";
  }
};

// The decode threads share every weight, so after a truncation several of them fault at once (CI
// saw two messages interleaved byte by byte): one thread reports, the others wait for its exit.
// Eight threads released together, each reading its own page past the new end, three times.
TEST_F(MappedFileDeathTest, ThreadsFaultingTogetherGiveOneWholeMessage) {
  constexpr int kThreads = 8;
  for (int rep = 0; rep < 3; ++rep) {
    const std::string path = write_temp_file("mapped-race", (kThreads + 1) * kPage);
    auto f = MappedFile::open(path);
    ASSERT_TRUE(f.has_value()) << f.status().message();
    const uint8_t* data = (*f)->data();
    EXPECT_EXIT(
        {
          no_core_dumps();
          std::atomic<int> ready{0};
          std::atomic<bool> go{false};
          std::vector<std::thread> threads;
          for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
              ready.fetch_add(1);
              while (!go.load()) {
              }
              volatile uint8_t x = data[(t + 1) * kPage + 3];
              (void)x;
            });
          }
          while (ready.load() < kThreads) {
          }
          if (::truncate(path.c_str(), kPage) != 0) std::_Exit(99);
          go.store(true);
          for (auto& th : threads) th.join();
          std::_Exit(98);  // not reached
        },
        ::testing::ExitedWithCode(kMappedFileChangedExitCode),
        ::testing::MakeMatcher(new OneWholeFatalMessage));
    std::remove(path.c_str());
  }
}

TEST_F(MappedFileDeathTest, DeletedAndTruncatedSaysTheFileIsGone) {
  const std::string path = write_temp_file("mapped-gone", 2 * kPage);
  auto f = MappedFile::open(path);
  ASSERT_TRUE(f.has_value());
  const uint8_t* data = (*f)->data();
  EXPECT_EXIT(
      {
        no_core_dumps();
        int fd = ::open(path.c_str(), O_RDWR);
        if (fd < 0 || ::unlink(path.c_str()) != 0 || ::ftruncate(fd, 0) != 0) std::_Exit(99);
        volatile uint8_t x = data[kPage];
        (void)x;
        std::_Exit(98);
      },
      ::testing::ExitedWithCode(kMappedFileChangedExitCode),
      "mapped-gone-[0-9]+\\.bin changed on disk.*reading byte 4096 of the 8192 bytes.*the file is "
      "gone");
  std::remove(path.c_str());
}

// A fault outside every registered mapping is not ours to explain: it keeps its signal (a bug must
// still crash). The handler is installed by the MappedFile opened first.
TEST_F(MappedFileDeathTest, OtherBusErrorsStillKillWithSigbus) {
  const std::string path = write_temp_file("mapped-other", 2 * kPage);
  auto guarded = MappedFile::open(path);
  ASSERT_TRUE(guarded.has_value());
  EXPECT_EXIT(
      {
        no_core_dumps();
        int fd = ::open(path.c_str(), O_RDWR);
        void* raw = ::mmap(nullptr, 2 * kPage, PROT_READ, MAP_PRIVATE, fd, 0);
        if (fd < 0 || raw == MAP_FAILED) std::_Exit(99);
        guarded->reset();  // closes and unregisters the guarded mapping
        if (::ftruncate(fd, 0) != 0) std::_Exit(99);
        volatile uint8_t x = static_cast<const uint8_t*>(raw)[kPage];
        (void)x;
        std::_Exit(98);
      },
#if GPTOSS_TEST_UNDER_ASAN
      // The previous handler is ASan's: it reports the fault and aborts (or exits 1).
      [](int status) {
        return !(WIFEXITED(status) &&
                 (WEXITSTATUS(status) == kMappedFileChangedExitCode || WEXITSTATUS(status) == 98));
      },
      "AddressSanitizer: BUS");
#else
      ::testing::KilledBySignal(SIGBUS), "");
#endif
  std::remove(path.c_str());
}

}  // namespace
}  // namespace gptoss
