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
  std::lock_guard<std::mutex> lock(mu_);
  file_ = path;
  have_ += already_have;
  resumed_ += already_have;
  ++started_;
  if (mode_ == ProgressMode::kLines) {
    std::string resumed = already_have ? fmt::format(", resuming at {}", format_bytes(already_have)) : "";
    std::fprintf(stderr, "[%d/%d] %s (%s)%s\n", started_, total_files_, path.c_str(), format_bytes(size).c_str(),
                 resumed.c_str());
  }
  draw_locked(true);
}

void Progress::add_bytes(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  have_ = uint64_t(int64_t(have_) + n);
  draw_locked(false);
}

void Progress::finish_file() {
  std::lock_guard<std::mutex> lock(mu_);
  ++finished_;
  draw_locked(true);
}

void Progress::message(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (mode_ == ProgressMode::kQuiet) return;
  if (bar_visible_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", line.c_str());
  bar_visible_ = false;
  if (mode_ == ProgressMode::kBar) draw_locked(true);
}

void Progress::done() {
  std::lock_guard<std::mutex> lock(mu_);
  if (mode_ == ProgressMode::kQuiet) return;
  if (mode_ == ProgressMode::kBar) draw_locked(true);
  if (bar_visible_) std::fprintf(stderr, "\n");
  bar_visible_ = false;
  if (mode_ == ProgressMode::kLines && started_ > 0) {
    double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    uint64_t fetched = have_ > resumed_ ? have_ - resumed_ : 0;
    std::fprintf(stderr, "%d/%d files, %s downloaded in %s (%s/s)\n", finished_, total_files_,
                 format_bytes(fetched).c_str(), format_duration(elapsed).c_str(),
                 format_bytes(elapsed > 0 ? uint64_t(double(fetched) / elapsed) : 0).c_str());
  }
}

void Progress::draw_locked(bool force) {
  if (mode_ == ProgressMode::kQuiet) return;
  auto now = Clock::now();
  double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (mode_ == ProgressMode::kLines) {
    if (since_draw < 5.0) return;  // lines: a report every 5 s, file starts are printed separately
  } else if (!force && since_draw < 0.1) {
    return;
  }
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double fetched = double(have_ > resumed_ ? have_ - resumed_ : 0);
  double speed = elapsed > 0.2 ? fetched / elapsed : 0.0;
  std::string eta = speed > 0 && total_ >= have_ ? format_duration(double(total_ - have_) / speed) : "?";
  std::string line = fmt::format("{} / {}  {}/s  ETA {}", format_bytes(have_), format_bytes(total_),
                                 format_bytes(uint64_t(speed)), eta);
  if (mode_ == ProgressMode::kLines) {
    std::fprintf(stderr, "  %d/%d files, %s\n", finished_, total_files_, line.c_str());
    return;
  }
  int width = 24;
  int filled = total_ ? int(double(have_) / double(total_) * width) : width;
  if (filled > width) filled = width;
  if (filled < 0) filled = 0;
  std::string bar = std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.');
  std::string name = file_.size() > 32 ? "..." + file_.substr(file_.size() - 29) : file_;
  std::fprintf(stderr, "\r\033[K[%d/%d] %-32s [%s] %s", finished_, total_files_, name.c_str(), bar.c_str(),
               line.c_str());
  std::fflush(stderr);
  bar_visible_ = true;
}

}  // namespace gptoss::hub
