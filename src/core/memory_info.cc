#include "core/memory_info.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/mapped_file.h"

namespace gptoss {

namespace {

// A cgroup file holding one number ("max" or a huge v1 sentinel means no limit).
bool read_cgroup_number(const std::string& path, size_t* out) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return false;
  char* end = nullptr;
  unsigned long long v = std::strtoull(word.c_str(), &end, 10);
  if (end == word.c_str() || *end != 0 || v >= (1ull << 62)) return false;
  *out = static_cast<size_t>(v);
  return true;
}

// The limit left to this process by its memory cgroup, if it has one.
bool cgroup_headroom(size_t* headroom, std::string* source) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    // "0::/path" (v2) or "4:memory:/path" (v1).
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    size_t limit = 0, usage = 0;
    std::string where;
    if (controllers.empty()) {
      where = "/sys/fs/cgroup" + path;
      if (!read_cgroup_number(where + "/memory.max", &limit)) continue;
      if (!read_cgroup_number(where + "/memory.current", &usage)) usage = 0;
      where += "/memory.max";
    } else if (controllers == "memory" || controllers.find("memory,") == 0 ||
               controllers.find(",memory") != std::string::npos) {
      where = "/sys/fs/cgroup/memory" + path;
      if (!read_cgroup_number(where + "/memory.limit_in_bytes", &limit)) continue;
      if (!read_cgroup_number(where + "/memory.usage_in_bytes", &usage)) usage = 0;
      where += "/memory.limit_in_bytes";
    } else {
      continue;
    }
    *headroom = limit > usage ? limit - usage : 0;
    *source = "the cgroup limit " + where + " less its usage";
    return true;
  }
  return false;
}

}  // namespace

Expected<size_t> parse_meminfo_available(const std::string& meminfo) {
  std::istringstream in(meminfo);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    unsigned long long kb = 0;
    std::string unit;
    if (!(fields >> kb >> unit) || unit != "kB") break;
    return static_cast<size_t>(kb) * 1024;
  }
  return Error("/proc/meminfo: no 'MemAvailable: N kB' line");
}

Expected<AvailableMemory> available_host_memory() {
  GPTOSS_ASSIGN_OR_RETURN(std::string meminfo, read_text_file("/proc/meminfo"));
  AvailableMemory m;
  GPTOSS_ASSIGN_OR_RETURN(m.bytes, parse_meminfo_available(meminfo));
  m.source = "MemAvailable in /proc/meminfo";
  size_t headroom = 0;
  std::string source;
  if (cgroup_headroom(&headroom, &source) && headroom < m.bytes) {
    m.bytes = headroom;
    m.source = source;
  }
  return m;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return fmt::format("{:.0f} bytes", bytes);
  int u = -1;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

}  // namespace gptoss
