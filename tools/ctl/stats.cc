// stablefsctl stats MOUNTPOINT [--json]
//
// The running daemon's counters (fs/stats.h), fetched with its stats ioctl: one "name value" per
// line, or one JSON object.
#include "fs/stats.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/ctl/ctl.h"

namespace stablefs::ctl {

namespace {

int Stats(const std::string& mountpoint, bool json) {
  int fd = open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Fail(mountpoint + ": " + strerror(errno));
  StablefsStats stats{};
  int rc = ioctl(fd, STABLEFS_IOC_STATS, &stats);
  int err = errno;
  close(fd);
  if (rc != 0) {
    return Fail(mountpoint + ": not a stablefs mount (stats ioctl: " + strerror(err) + ")");
  }
  if (json) std::printf("{");
  for (size_t i = 0; i < kNumStats; i++) {
    if (json) {
      std::printf("%s\"%s\": %" PRIu64, i ? ", " : "", kStatNames[i], stats.values[i]);
    } else {
      std::printf("%s %" PRIu64 "\n", kStatNames[i], stats.values[i]);
    }
  }
  if (json) std::printf("}\n");
  return kClean;
}

}  // namespace

int StatsMain(int argc, char** argv) {
  bool json = argc > 3 && std::strcmp(argv[3], "--json") == 0;
  if (argc > 4 || (argc == 4 && !json)) {
    Usage();
    return kError;
  }
  return Stats(argv[2], json);
}

}  // namespace stablefs::ctl
