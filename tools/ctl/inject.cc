// stablefsctl inject MOUNTPOINT write|sync|read|clear [COUNT]
//
// Makes the store of a mount made with -o debug_faults fail its next COUNT writes, syncs or block
// reads with an I/O error (default 1; -1: every one until cleared), as a failing disk would: to
// see how applications meet it. `clear` removes every injected fault.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fs/stats.h"
#include "tools/ctl/ctl.h"

namespace stablefs::ctl {

namespace {

int Inject(const std::string& mountpoint, const std::string& what, const char* count_text) {
  StablefsFault f{};
  if (what == "write") {
    f.kind = kFaultWriteErrors;
  } else if (what == "sync") {
    f.kind = kFaultSyncErrors;
  } else if (what == "read") {
    f.kind = kFaultReadErrors;
  } else if (what == "clear") {
    f.kind = kFaultClear;
  } else {
    Usage();
    return Fail("unknown fault " + what + " (write, sync, read or clear)");
  }
  f.count = 1;
  if (count_text != nullptr) {
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(count_text, &end, 10);
    if (end == count_text || *end != '\0' || errno != 0 || n < -1 || n > INT32_MAX || n == 0) {
      return Fail(std::string("bad COUNT ") + count_text + " (a positive number, or -1)");
    }
    f.count = static_cast<int32_t>(n);
  }
  int fd = open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Fail(mountpoint + ": " + strerror(errno));
  int rc = ioctl(fd, STABLEFS_IOC_INJECT_FAULT, &f);
  int err = errno;
  close(fd);
  if (rc != 0 && err == ENOTTY) {
    return Fail(mountpoint + ": not a stablefs mounted with -o debug_faults");
  }
  if (rc != 0) return Fail(mountpoint + ": inject: " + strerror(err));
  return kClean;
}

}  // namespace

int InjectMain(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    Usage();
    return kError;
  }
  return Inject(argv[2], argv[3], argc == 5 ? argv[4] : nullptr);
}

}  // namespace stablefs::ctl
