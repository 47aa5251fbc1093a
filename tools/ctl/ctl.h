// stablefsctl: look into a stablefs store, or ask a running daemon, one file per subcommand:
//
//   inspect.cc   inspect STORE PATH      an inode, its blocks, a block's stored and fresh tuples
//   verify.cc    verify STORE            every data block against its tuples, offline
//   scrub.cc     scrub STORE-or-MOUNT    the same check, by the daemon of a mount while in use
//   corrupt.cc   corrupt STORE PATH ...  damage on purpose, for tests and demonstrations
//   stats.cc     stats MOUNTPOINT        the running daemon's counters
//   sync.cc      sync MOUNTPOINT         writes back and syncs the whole filesystem
//   inject.cc    inject MOUNTPOINT ...   injected store faults (-o debug_faults)
//   wait.cc      wait STORE [SECONDS]    waits until no daemon holds the store
//   main.cc      the usage text and the dispatch; compare and torture-store live in
//                tools/compare/ and tools/torture/
//   util.cc      the helpers below, shared by the subcommands
//
// Each entry point takes main's argc and argv (argv[1] is the subcommand) and returns the exit
// status: 0 clean, 4 damage found, 8 an operational error (the store cannot be opened, a path
// does not exist, bad usage), as fsck's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "storage/block_store.h"
#include "storage/rocks_block_store.h"
#include "storage/status.h"

namespace stablefs::ctl {

inline constexpr int kClean = 0, kDamage = 4, kError = 8;

// The subcommands' entry points.
int InspectMain(int argc, char** argv);
int VerifyMain(int argc, char** argv);
int ScrubMain(int argc, char** argv);
int CorruptMain(int argc, char** argv);
int StatsMain(int argc, char** argv);
int SyncMain(int argc, char** argv);
int InjectMain(int argc, char** argv);
int WaitMain(int argc, char** argv);

// Prints the usage of every subcommand to stderr (main.cc).
void Usage();

// Prints "stablefsctl: MSG" to stderr; returns kError.
int Fail(const std::string& msg);

// Opens the store at `path` for inspect, verify and corrupt, which is why it must not be mounted:
// a daemon finishing its unmount is waited for up to 10 s.
Status OpenStore(const std::string& path, std::unique_ptr<RocksBlockStore>* store);

// Resolves a path from the root through the directory entries.
Status Resolve(BlockStore* store, const std::string& path, uint64_t* ino);

}  // namespace stablefs::ctl
