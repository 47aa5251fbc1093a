// stablefsctl sync MOUNTPOINT
//
// Writes back and syncs the whole filesystem, through the daemon's sync ioctl: sync(2) does not
// reach a FUSE daemon.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "fs/stats.h"
#include "tools/ctl/ctl.h"

namespace stablefs::ctl {

namespace {

int Sync(const std::string& mountpoint) {
  int fd = open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Fail(mountpoint + ": " + strerror(errno));
  int rc = ioctl(fd, STABLEFS_IOC_SYNC);
  int err = errno;
  close(fd);
  if (rc != 0) return Fail(mountpoint + ": sync: " + strerror(err));
  return kClean;
}

}  // namespace

int SyncMain(int argc, char** argv) {
  if (argc != 3) {
    Usage();
    return kError;
  }
  return Sync(argv[2]);
}

}  // namespace stablefs::ctl
