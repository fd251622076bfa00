#include "core/memory_info.h"

#include <gtest/gtest.h>

#include "core/mapped_file.h"

namespace gptoss {
namespace {

TEST(MemoryInfo, ParsesMemAvailable) {
  const std::string text =
      "MemTotal:       24731708 kB\nMemFree:         1000000 kB\nMemAvailable:   20234976 kB\n"
      "Buffers:          12345 kB\n";
  auto v = parse_meminfo_available(text);
  ASSERT_TRUE(v.has_value()) << v.status().message();
  EXPECT_EQ(*v, size_t{20234976} * 1024);
  EXPECT_FALSE(parse_meminfo_available("MemTotal: 5 kB\n").has_value());
  EXPECT_FALSE(parse_meminfo_available("MemAvailable: lots\n").has_value());
}

TEST(MemoryInfo, HostFigureIsPositiveAndAtMostMemTotal) {
  auto m = available_host_memory();
  ASSERT_TRUE(m.has_value()) << m.status().message();
  auto meminfo = read_text_file("/proc/meminfo");
  ASSERT_TRUE(meminfo.has_value());
  const size_t pos = meminfo->find("MemTotal:");
  ASSERT_NE(pos, std::string::npos);
  const size_t total_kb = std::stoull(meminfo->substr(pos + 9));
  EXPECT_GT(m->bytes, 0u);
  EXPECT_LE(m->bytes, total_kb * 1024);
  EXPECT_FALSE(m->source.empty());
}

TEST(MemoryInfo, FormatsBytes) {
  EXPECT_EQ(format_bytes(512), "512 bytes");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(64.0 * 1024 * 1024), "64.0 MiB");
  EXPECT_EQ(format_bytes(6.0 * 1024 * 1024 * 1024), "6.0 GiB");
}

}  // namespace
}  // namespace gptoss
