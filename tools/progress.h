// ProgressLine: one line on a terminal, rewritten in place, for long runs of the tools.
//
// Only when stderr is a terminal (a script or a log gets the final report alone), at most ten
// times a second, and erased before the report is printed.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace stablefs {

class ProgressLine {
 public:
  ProgressLine() : enabled_(isatty(STDERR_FILENO) == 1) {}
  ~ProgressLine() { Clear(); }

  bool enabled() const { return enabled_; }

  // Shows `line` unless the last one was shown less than 100 ms ago.
  void Update(const std::string& line) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (shown_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    shown_ = true;
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
    std::fflush(stderr);
  }

  // Erases the line.
  void Clear() {
    if (!shown_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }

 private:
  const bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_;
};

// "12.3 MiB"
inline std::string FormatBytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace stablefs
