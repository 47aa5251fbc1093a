// Helpers shared by the files that implement Filesystem (super, inode, namei, file, dir, xattr,
// ioctl); not part of its interface.
#pragma once

#include <time.h>

#include "fs/errno_map.h"
#include "storage/format.h"
#include "storage/status.h"

namespace stablefs {

// The time a change stamps on inodes (CLOCK_REALTIME, as current_time()).
inline Timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

// The errno a Filesystem operation answers for a store's status.
inline int Errno(const Status& s) { return ErrnoFromStatus(s); }

}  // namespace stablefs
