// Log: the error and warning lines of the daemon and of the store, to stderr (or a sink tests
// install).
//
// Guarantee 2 requires every verification failure to leave a line naming inode, offset, expected
// and received; those lines come through here.
#pragma once

#include <functional>
#include <string>

namespace stablefs {

enum class LogLevel { kError, kWarning, kInfo };

// printf-style. Thread-safe.
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Replaces the sink (nullptr restores stderr); returns nothing. For tests.
void SetLogSinkForTesting(std::function<void(LogLevel, const std::string&)> sink);

}  // namespace stablefs
