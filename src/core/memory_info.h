// How much memory this process can still take: the host's MemAvailable, or less when a cgroup
// (a container's memory limit) leaves less. Used to refuse a context or batch that cannot fit,
// before allocating it, instead of being killed by the OOM killer halfway through a request.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace gptoss {

struct AvailableMemory {
  size_t bytes = 0;
  std::string source;  // where the figure comes from, for messages: "MemAvailable in /proc/meminfo"
};

// Reads /proc/meminfo (MemAvailable) and this process's cgroup limit (v2 memory.max, v1
// memory.limit_in_bytes) minus its usage; the smaller wins. Fails only without /proc/meminfo.
Expected<AvailableMemory> available_host_memory();

// The MemAvailable figure of a /proc/meminfo text, in bytes; an error when it has none.
Expected<size_t> parse_meminfo_available(const std::string& meminfo);

// "12.0 GiB", "640.0 MiB", "512 bytes": for messages.
std::string format_bytes(double bytes);

}  // namespace gptoss
