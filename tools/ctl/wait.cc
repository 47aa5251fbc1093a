// stablefsctl wait STORE [SECONDS]
//
// Waits until no daemon holds STORE (default 60 s): umount returns before a FUSE daemon has
// finished writing back and closing. It waits on the store's lock alone: the store is not opened
// and nothing in it changes.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tools/ctl/ctl.h"

namespace stablefs::ctl {

namespace {

void OnAlarm(int) {}

// Waits until no process holds the store's lock (RocksDB's LOCK file, locked with fcntl by the
// daemon for as long as it has the store open), by taking the lock and letting it go at once.
// The store itself is not opened: a store that is waited on before it is inspected for damage
// must reach the inspection as the daemon left it, with no recovery run over it.
int WaitForStore(const std::string& store, int seconds) {
  const std::string lock = store + "/LOCK";
  int fd = open(lock.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return kClean;  // no store there (or one never opened): nobody holds it
    return Fail("cannot open " + lock + ": " + std::strerror(errno));
  }
  struct sigaction sa = {};
  sa.sa_handler = OnAlarm;  // without SA_RESTART: the alarm interrupts the wait below
  sigaction(SIGALRM, &sa, nullptr);
  alarm(static_cast<unsigned>(std::max(seconds, 1)));
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  int r = fcntl(fd, F_SETLKW, &fl);
  const int err = errno;
  alarm(0);
  close(fd);  // releases the lock
  if (r == 0) return kClean;
  if (err == EINTR) {
    return Fail("store " + store + " is still in use after " + std::to_string(seconds) + " s");
  }
  return Fail("cannot wait on " + lock + ": " + std::strerror(err));
}

}  // namespace

int WaitMain(int argc, char** argv) {
  if (argc > 4) {
    Usage();
    return kError;
  }
  return WaitForStore(argv[2], argc == 4 ? std::atoi(argv[3]) : 60);
}

}  // namespace stablefs::ctl
