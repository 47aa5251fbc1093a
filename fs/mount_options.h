// The daemon's command line: stablefs's own -o options, parsed out of a fuse_args that then holds
// only what FUSE reads (its -o options, -f, -d, -s, the mount point).
//
//   stable_pages=wait|bounce|off  how pages stay stable under writeback. Default: wait.
//   debug_stable                  mprotect pages under writeback. Default: off.
//   cache_size=N[K|M|G]           page cache size in bytes, or KiB, MiB, GiB. Default: 256M.
//   writeback_expire_ms=N         age at which dirty data is written back. Default: 5000.
//   attr_timeout=SECONDS          how long the kernel caches attributes and names. Default: 1.
//   relatime, strictatime (or norelatime), noatime
//                                 when reads update access times (fs/filesystem.h,
//                                 AtimePolicy); the last one given counts. Default: relatime.
//   nodiratime, diratime          directories' access times never / as files'. Default: diratime.
//   lazytime                      accepted, changes nothing (stablefs writes timestamps with the
//                                 store's next sync anyway). atime and noatime also reach FUSE.
//   nokillpriv_v2                 do not negotiate FUSE_HANDLE_KILLPRIV_V2 (fs/fuse_transport.h):
//                                 the kernel then asks for security.capability before each
//                                 write and clears suid/sgid itself. Default: negotiated when the
//                                 kernel offers it.
//   norecovery (or noload)        with ro only: open the store read-only, as ext4's noload and
//                                 xfs's norecovery mount without writing the journal back: the
//                                 WAL is replayed into memory, nothing is written to the store
//                                 (no orphan reclaimed, fstrim is EROFS). Default: off.
//   debug_faults                  accept STABLEFS_IOC_INJECT_FAULT (stablefsctl inject): the
//                                 store fails writes, syncs or reads on demand. Default: off.
//   debug_power_cut=N             a power cut below the store after N more writes or syncs of
//                                 its files (storage/crash_file_system.h): from then on every
//                                 store write fails; when the daemon exits, after the store is
//                                 closed, its files are rewritten into what the cut left, as the
//                                 next boot would find them (at the exit at the latest, if N was
//                                 not reached). For crash tests (stablefsctl torture-store).
//                                 Default: off.
//   debug_lose_writeback_errors   forget writeback errors instead of reporting them to fsync, as
//                                 filesystems before errseq did; only to show that a checker
//                                 (stablefsctl compare, check 4) notices. Default: off.
//
// The first argument that is not an option is the store; -h and --help ask for the usage. Numbers
// are strict: decimal digits only (no sign, no blanks), in range; attr_timeout is a finite,
// non-negative decimal. Kept apart from main() so it can be unit-tested and fuzzed.
#pragma once

#include <fuse_opt.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fs/filesystem.h"
#include "fs/stable_policy.h"
#include "storage/status.h"

namespace stablefs {

struct MountOptions {
  StablePolicy stable_pages = StablePolicy::kWait;
  bool debug_stable = false;
  size_t cache_bytes = size_t{256} << 20;
  uint32_t writeback_expire_ms = 5000;
  double attr_timeout = 1.0;
  AtimePolicy atime = AtimePolicy::kRelatime;
  bool nodiratime = false;
  bool nokillpriv_v2 = false;
  bool norecovery = false;
  bool read_only = false;  // "ro" was given (FUSE keeps it: the kernel enforces it)
  bool debug_faults = false;
  bool debug_lose_writeback_errors = false;
  int64_t debug_power_cut = -1;  // steps before the cut; -1: no power-cut model
  bool show_help = false;
  std::string store;  // the first non-option argument; empty if there was none

  bool operator==(const MountOptions&) const = default;
};

// Removes stablefs's options from *args (FUSE's stay) into *out. InvalidArgument, naming the
// option, for a value that is not valid, or norecovery without ro; InvalidArgument with an empty
// message when fuse_opt rejected the command line (it has printed why: one line on stderr is
// enough).
Status ParseMountOptions(struct fuse_args* args, MountOptions* out);

// "stable_pages=wait,cache_size=268435456,writeback_expire_ms=5000,attr_timeout=1": the -o list
// that ParseMountOptions reads back to the same options (store and show_help aside); with
// debug_stable, nokillpriv_v2, norecovery, debug_faults and debug_lose_writeback_errors when
// set.
std::string FormatMountOptions(const MountOptions& o);

// N[K|M|G]: decimal bytes, or KiB, MiB, GiB (either case). False for anything else, or a size
// that does not fit in size_t.
bool ParseSize(std::string_view text, size_t* out);

}  // namespace stablefs
