// Fsck: the offline check of a whole store (fsck.stablefs), guarantees 2 and 5 at rest.
//
// Checks every record: inodes decode; every directory entry names a live inode of the type it
// says and has its readdir cookie; every directory's ".." names its parent and no directory has
// two names; link counts match the entries; unlinked inodes (orphans) and inodes no entry names;
// blocks past a file's size; the block count of each inode; xattrs of inodes that do not exist;
// and every data block against its tuples, and every block-map entry against the data (the
// store's verifier, storage/verifier.h, the same check as scrub's and stablefsctl verify's).
//
// Repair (-y) fixes only what needs no guessing: link counts, block counts, orphans and
// unreachable inodes with no links (freed), entries naming missing inodes (removed), blocks past
// EOF and xattrs of missing inodes (deleted). A block that fails its tuples is reported, never
// "repaired" by recomputing them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "storage/block_store.h"

namespace stablefs {

struct FsckProblem {
  uint64_t ino = 0;
  std::string path;     // where one is known
  uint64_t offset = 0;  // for data problems
  std::string what;     // what was expected and what was found
  bool fixed = false;
};

struct FsckReport {
  std::vector<FsckProblem> problems;
  uint64_t inodes = 0, entries = 0, blocks = 0;
  // e2fsck's exit codes: 0 clean, 1 errors fixed, 4 errors left, 8 operational error.
  int ExitCode() const;
  std::string ToJson() const;
};

// s with the characters JSON strings may not hold escaped.
std::string JsonEscape(const std::string& s);

// Told now and then how far a check has come: the phase ("inodes", "entries", "blocks"), the
// records done in it, and their expected total (0 if unknown).
using FsckProgress = std::function<void(const char* phase, uint64_t done, uint64_t total)>;

// Checks `store` (unmounted); with repair, fixes what can be fixed without guessing. Returns a
// non-Ok status only when the check itself cannot proceed.
Status Fsck(BlockStore* store, bool repair, FsckReport* report,
            const FsckProgress& progress = nullptr);

}  // namespace stablefs
