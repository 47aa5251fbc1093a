// fsck.stablefs: checks an unmounted stablefs store, and with -y repairs what needs no guessing.
//
//   fsck.stablefs [-n|-y] [--json] STORE
//
// -n    report only (the default): the store is opened read-only, so not even the recovery of
//       a crashed store is written (it is replayed in memory)
// -y    repair link counts, block counts, orphans and unlinked inodes, entries naming missing
//       inodes, missing readdir cookies, wrong '..', blocks past EOF, records of missing inodes;
//       a block that fails its tuples is reported, never re-protected
// --json  one JSON object instead of text
//
// Exit status as e2fsck's: 0 clean, 1 errors fixed, 4 errors left uncorrected, 8 operational
// error (the store cannot be opened, bad usage). Damage that stops the walk (a table block or
// record RocksDB cannot read) is 4 too, with the line naming it. A daemon still finishing its
// unmount is waited for up to 10 s. fs/fsck.h says what is checked. On a terminal, a progress line
// on stderr is rewritten as the check goes and erased before the report.
#include "fs/fsck.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include "storage/rocks_block_store.h"
#include "tools/progress.h"

int main(int argc, char** argv) {
  bool repair = false, json = false;
  std::string store_path;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "-y") {
      repair = true;
    } else if (a == "-n") {
      repair = false;
    } else if (a == "--json") {
      json = true;
    } else if (!a.empty() && a[0] != '-' && store_path.empty()) {
      store_path = a;
    } else {
      std::fprintf(stderr, "usage: fsck.stablefs [-n|-y] [--json] STORE\n");
      return 8;
    }
  }
  if (store_path.empty()) {
    std::fprintf(stderr, "usage: fsck.stablefs [-n|-y] [--json] STORE\n");
    return 8;
  }
  stablefs::RocksOptions options;
  options.busy_wait_ms = 10000;
  // A check changes nothing: not even the recovery a read-write open would run (and write).
  options.read_only = !repair;
  std::unique_ptr<stablefs::RocksBlockStore> store;
  stablefs::Status s = stablefs::RocksBlockStore::Open(store_path, options, &store);
  if (!s.ok()) {
    std::fprintf(stderr, "fsck.stablefs: %s\n", s.ToString().c_str());
    return 8;
  }
  stablefs::FsckReport report;
  {
    stablefs::ProgressLine line;
    auto progress = [&](const char* phase, uint64_t done, uint64_t total) {
      char buf[96];
      if (total > 0) {
        std::snprintf(buf, sizeof(buf), "fsck.stablefs: %s %" PRIu64 "/%" PRIu64 " (%.0f%%)", phase,
                      done, total, std::min(100.0, 100.0 * done / total));
      } else {
        std::snprintf(buf, sizeof(buf), "fsck.stablefs: %s %" PRIu64, phase, done);
      }
      line.Update(buf);
    };
    s = stablefs::Fsck(store.get(), repair, &report,
                       line.enabled() ? stablefs::FsckProgress(progress) : nullptr);
  }
  if (!s.ok()) {
    // Damage the store's own checks found (a table block or a record that cannot be read) is
    // damage found, even when the walk cannot go past it.
    std::fprintf(stderr, "fsck.stablefs: %s%s\n", s.IsCorruption() ? "damage: " : "",
                 s.ToString().c_str());
    return s.IsCorruption() ? 4 : 8;
  }
  if (json) {
    std::printf("%s\n", report.ToJson().c_str());
  } else {
    for (const stablefs::FsckProblem& p : report.problems) {
      std::printf("inode %" PRIu64 "%s%s%s", p.ino, p.path.empty() ? "" : " (", p.path.c_str(),
                  p.path.empty() ? "" : ")");
      if (p.offset) std::printf(" offset %" PRIu64, p.offset);
      std::printf(": %s%s\n", p.what.c_str(), p.fixed ? " [fixed]" : "");
    }
    std::printf(
        "%s: %" PRIu64 " inodes, %" PRIu64 " entries, %" PRIu64 " blocks checked; %zu problems\n",
        store_path.c_str(), report.inodes, report.entries, report.blocks, report.problems.size());
  }
  return report.ExitCode();
}
