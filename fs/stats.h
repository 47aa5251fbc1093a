// The daemon's counters as tools read them: an ioctl on any directory or file of the mount
// (usually its root) fills one StablefsStats. `stablefsctl stats MOUNTPOINT` prints them.
//
// The layout is an ABI between the daemon and its tools: an array of uint64_t in the order of
// kStatNames; new counters go at the end, and readers ignore names they do not know.
#pragma once

#include <linux/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace stablefs {

inline constexpr const char* kStatNames[] = {
    "pages_written_back",       // page cache: pages the store acknowledged
    "writeback_batches",        // page cache: store batches submitted by writeback
    "waits_on_writeback",       // writers and write faults that slept on PG_writeback
    "wait_on_writeback_ns",     // time they slept
    "bounce_copies",            // pages copied under stable_pages=bounce
    "protection_errors_write",  // store: writes rejected because PI did not match the data
    "protection_errors_read",   // store: blocks that failed verification after a read
    "read_eio",                 // page cache: reads answered EIO for failed verification
    "writeback_errors",         // writeback batches that failed, for any reason
    "pages_read",               // pages filled from the store
    "pages_evicted",            // clean pages reclaimed
    "dirty_throttle_waits",     // writers throttled for too many dirty pages
    "mkwrite_faults",           // write faults through in-process mappings
    "blocks_written",           // store: data blocks written
    "blocks_read",              // store: data blocks read and verified
    "store_syncs",              // store: WAL syncs
    "dirty_pages",              // now: dirty pages
    "writeback_pages",          // now: pages under writeback
    "cache_pages",              // the cache's size in pages
    "fuse_proto_minor",         // the kernel's FUSE protocol minor, from its INIT (7.x)
    "statx_requests",           // FUSE_STATX requests answered (fs/fuse_transport.h)
    "tmpfile_requests",         // FUSE_TMPFILE requests answered (fs/fuse_transport.h)
    "fuse_killpriv_v2",         // 1 if FUSE_HANDLE_KILLPRIV_V2 was negotiated (fs/fuse_transport.h)
    "kill_suidgid_requests",    // writes, setattrs and opens flagged to clear suid/sgid
};
inline constexpr size_t kNumStats = sizeof(kStatNames) / sizeof(kStatNames[0]);

struct StablefsStats {
  uint64_t values[32];
};
static_assert(kNumStats <= 32);

// _IOR('S', 1, 256 bytes): the kernel passes it to the daemon as a restricted FUSE ioctl.
#define STABLEFS_IOC_STATS _IOR('S', 1, stablefs::StablefsStats)
// Writes back every dirty page of the filesystem and syncs the store: what syncfs(2) would do.
// The kernel sends FUSE_SYNCFS only to virtiofs, so sync(2) and syncfs(2) on a stablefs mount
// do not reach the daemon; this ioctl (stablefsctl sync MOUNTPOINT) and fsync do.
#define STABLEFS_IOC_SYNC _IO('S', 2)

// Fault injection, for testing how applications and tools meet a failing disk: only on a mount
// with -o debug_faults (otherwise ENOTTY), and only for root (EPERM). The store below the page
// cache then fails as a device would: its next `count` writes, syncs or block reads (count < 0:
// every one until cleared) return an I/O error. `stablefsctl inject MOUNTPOINT` sends it.
enum StablefsFaultKind : uint32_t {
  kFaultClear = 0,        // removes every injected fault
  kFaultWriteErrors = 1,  // store writes (writeback, namespace changes) fail
  kFaultSyncErrors = 2,   // store syncs (fsync, fdatasync, O_SYNC) fail
  kFaultReadErrors = 3,   // block reads fail
};
struct StablefsFault {
  uint32_t kind;  // StablefsFaultKind
  int32_t count;
};
#define STABLEFS_IOC_INJECT_FAULT _IOW('S', 3, stablefs::StablefsFault)

}  // namespace stablefs
