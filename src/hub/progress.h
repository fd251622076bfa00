// Download progress on stderr, shared by the download threads: a redrawn bar (bytes, speed, ETA)
// on a terminal, a plain line every few seconds otherwise, nothing when quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace gptoss::hub {

enum class ProgressMode { kAuto, kBar, kLines, kQuiet };

std::string format_bytes(uint64_t n);     // "1.5 GB" (decimal units, like the hub's UI)
std::string format_duration(double secs);  // "4m38s"

class Progress {
 public:
  Progress(ProgressMode mode, uint64_t total_bytes, int total_files);
  // A file starts; `already_have` bytes of it are on disk from an earlier run.
  void start_file(const std::string& path, uint64_t size, uint64_t already_have);
  void add_bytes(int64_t n);  // negative when a server restarts a file we were resuming
  void finish_file();
  void message(const std::string& line);  // a line that does not break the bar
  void done();

 private:
  void draw_locked(bool force);
  using Clock = std::chrono::steady_clock;
  std::mutex mu_;
  ProgressMode mode_;
  uint64_t total_ = 0, have_ = 0, resumed_ = 0;
  int total_files_ = 0, started_ = 0, finished_ = 0;
  std::string file_;
  Clock::time_point start_, last_draw_;
  bool bar_visible_ = false;
};

}  // namespace gptoss::hub
