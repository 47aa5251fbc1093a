// What the in-process benchmarks (store_bench, stable_pages_bench) share: a scratch directory
// that is removed when the run ends, and a flag SIGINT and SIGTERM set so that a run stops
// early and still removes it.
#pragma once

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

namespace stablefs::bench {

inline volatile std::sig_atomic_t g_interrupted = 0;

// Removes its directory tree when it goes out of scope.
struct ScratchDir {
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};

// Creates NAME.XXXXXX under `parent` (if empty: $TMPDIR, else /var/tmp) and installs the signal
// handlers. Null, after a message on stderr, if the directory cannot be made.
inline std::unique_ptr<ScratchDir> MakeScratchDir(const std::string& parent, const char* name) {
  const char* tmpdir = std::getenv("TMPDIR");
  const std::string base = !parent.empty()                       ? parent
                           : (tmpdir != nullptr && *tmpdir != 0) ? tmpdir
                                                                 : "/var/tmp";
  std::string pattern = base + "/" + name + ".XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "cannot create a directory in %s: %s\n", base.c_str(),
                 std::strerror(errno));
    return nullptr;
  }
  auto dir = std::make_unique<ScratchDir>();
  dir->path = pattern;
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  std::signal(SIGTERM, [](int) { g_interrupted = 1; });
  return dir;
}

}  // namespace stablefs::bench
