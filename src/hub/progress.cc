#include "hub/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace gptoss::hub {

std::string format_bytes(uint64_t n) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = double(n);
  int u = 0;
  while (v >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string format_duration(double secs) {
  if (secs < 0 || secs > 1e7) return "?";
  long s = long(secs + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

Progress::Progress(ProgressMode mode, uint64_t total_bytes, int total_files)
    : mode_(mode), total_(total_bytes), total_files_(total_files) {
  if (mode_ == ProgressMode::kAuto) mode_ = isatty(STDERR_FILENO) ? ProgressMode::kBar : ProgressMode::kLines;
  start_ = last_draw_ = Clock::now();
}

void Progress::start_file(const std::string& path, uint64_t size, uint64_t already_have) {
  file_ = path;
  file_size_ = size;
  file_bytes_ = already_have;
  session_start_bytes_ += already_have;
  ++file_index_;
  if (mode_ == ProgressMode::kLines) {
    std::fprintf(stderr, "[%d/%d] %s (%s)%s\n", file_index_, total_files_, path.c_str(), format_bytes(size).c_str(),
                 already_have ? fmt::format(", resuming at {}", format_bytes(already_have)).c_str() : "");
    last_draw_ = Clock::now();
  }
  draw(true);
}

void Progress::update(uint64_t file_bytes) {
  file_bytes_ = file_bytes;
  draw(false);
}

void Progress::finish_file() {
  done_before_file_ += file_size_;
  file_bytes_ = 0;
  file_size_ = 0;
  draw(true);
}

void Progress::message(const std::string& line) {
  if (mode_ == ProgressMode::kQuiet) return;
  if (bar_visible_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", line.c_str());
  bar_visible_ = false;
  if (mode_ == ProgressMode::kBar) draw(true);
}

void Progress::done() {
  if (mode_ == ProgressMode::kQuiet) return;
  draw(true);
  if (bar_visible_) std::fprintf(stderr, "\n");
  bar_visible_ = false;
}

void Progress::draw(bool force) {
  if (mode_ == ProgressMode::kQuiet) return;
  auto now = Clock::now();
  double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since_draw < (mode_ == ProgressMode::kBar ? 0.1 : 5.0)) return;
  if (mode_ == ProgressMode::kLines && force) return;  // lines: only the periodic reports
  last_draw_ = now;
  uint64_t have = done_before_file_ + file_bytes_;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double fetched = double(have > session_start_bytes_ ? have - session_start_bytes_ : 0);
  double speed = elapsed > 0.2 ? fetched / elapsed : 0.0;
  std::string eta = speed > 0 && total_ >= have ? format_duration(double(total_ - have) / speed) : "?";
  std::string line = fmt::format("{} / {}  {}/s  ETA {}", format_bytes(have), format_bytes(total_),
                                 format_bytes(uint64_t(speed)), eta);
  if (mode_ == ProgressMode::kLines) {
    std::fprintf(stderr, "  %s: %s\n", file_.c_str(), line.c_str());
    return;
  }
  int width = 24;
  int filled = total_ ? int(double(have) / double(total_) * width) : width;
  if (filled > width) filled = width;
  std::string bar = std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.');
  std::string name = file_.size() > 32 ? "..." + file_.substr(file_.size() - 29) : file_;
  std::fprintf(stderr, "\r\033[K[%d/%d] %-32s [%s] %s", file_index_, total_files_, name.c_str(), bar.c_str(),
               line.c_str());
  std::fflush(stderr);
  bar_visible_ = true;
}

}  // namespace gptoss::hub
