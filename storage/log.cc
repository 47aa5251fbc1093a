// Log: one mutex-protected sink, stderr by default.
#include "storage/log.h"

#include <cstdarg>
#include <cstdio>

#include "storage/thread_annotations.h"

namespace stablefs {

namespace {
Mutex log_mu;
std::function<void(LogLevel, const std::string&)>* sink GUARDED_BY(log_mu) = nullptr;

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kInfo:
      return "info";
  }
  return "?";
}
}  // namespace

void Log(LogLevel level, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  MutexLock lock(&log_mu);
  if (sink != nullptr) {
    (*sink)(level, buf);
    return;
  }
  std::fprintf(stderr, "stablefs: %s: %s\n", LevelName(level), buf);
}

void SetLogSinkForTesting(std::function<void(LogLevel, const std::string&)> s) {
  MutexLock lock(&log_mu);
  delete sink;
  sink = s ? new std::function<void(LogLevel, const std::string&)>(std::move(s)) : nullptr;
}

}  // namespace stablefs
