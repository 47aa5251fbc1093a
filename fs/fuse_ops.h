// The libfuse low-level operations of stablefs: thin handlers that decode a request, call the
// Filesystem, and reply exactly once (as libfuse's passthrough_hp does).
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "fs/filesystem.h"
#include "fs/fuse_transport.h"
#include "fs/scrub.h"
#include "storage/fault_block_store.h"

namespace stablefs {

struct FuseContext {
  Filesystem* fs = nullptr;
  // Seconds the kernel may cache attributes and names. Default: 1.0.
  double attr_timeout = 1.0;
  double entry_timeout = 1.0;
  // For notifications to the kernel (cached attributes made stale by an ioctl).
  struct fuse_session* se = nullptr;
  // Scrubs the store for stablefsctl scrub (fs/scrub_ioctl.h); null: the ioctls get ENOTTY.
  Scrubber* scrubber = nullptr;
  // The store's fault injector under -o debug_faults; null: STABLEFS_IOC_INJECT_FAULT is ENOTTY.
  FaultBlockStore* faults = nullptr;
  // The /dev/fuse transport's counters (fs/fuse_transport.h); null: libfuse's own I/O.
  TransportCounters* transport = nullptr;
};

// Whether the reply to an open or create of `f` lets the kernel keep its cached pages: not when
// the first read must reach the daemon to update the atime (fuse_ops.cc's SetOpenFlags).
bool KeepKernelCache(Filesystem* fs, OpenFile* f);

// The operation table; the session's userdata must be a FuseContext*.
const struct fuse_lowlevel_ops* StablefsLowlevelOps();

}  // namespace stablefs
