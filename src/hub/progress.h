// Download progress on stderr: a redrawn bar (bytes, speed, ETA) on a terminal, a plain line every
// few seconds otherwise, nothing when quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace gptoss::hub {

enum class ProgressMode { kAuto, kBar, kLines, kQuiet };

std::string format_bytes(uint64_t n);     // "1.5 GB" (decimal units, like the hub's UI)
std::string format_duration(double secs);  // "4m38s"

class Progress {
 public:
  Progress(ProgressMode mode, uint64_t total_bytes, int total_files);
  void start_file(const std::string& path, uint64_t size, uint64_t already_have);
  // Bytes of the current file present on disk so far (including any resumed part).
  void update(uint64_t file_bytes);
  void finish_file();
  void message(const std::string& line);  // a line that does not break the bar
  void done();

 private:
  void draw(bool force);
  using Clock = std::chrono::steady_clock;
  ProgressMode mode_;
  uint64_t total_ = 0, done_before_file_ = 0, file_bytes_ = 0, file_size_ = 0;
  uint64_t session_start_bytes_ = 0;  // bytes that were on disk before this run (not counted in speed)
  int total_files_ = 0, file_index_ = 0;
  std::string file_;
  Clock::time_point start_, last_draw_;
  bool bar_visible_ = false;
};

}  // namespace gptoss::hub
