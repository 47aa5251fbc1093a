// stablefsctl: look into a stablefs store.
//
//   stablefsctl inspect STORE PATH [--offset N] [--json]
//                                                 an inode, its blocks, and for the block holding
//                                                 byte N (default 0) the stored tuples beside the
//                                                 tuples recomputed from its data
//   stablefsctl verify STORE                      checks every data block against its tuples and
//                                                 every block map entry against the data
//   stablefsctl scrub [--rate MB/s] [--json] STORE-or-MOUNTPOINT
//                                                 checks every data block against its tuples and
//                                                 every block map entry against the data, on a
//                                                 mounted filesystem by its daemon while it is in
//                                                 use (fs/scrub.h), on an unmounted store here;
//                                                 at most --rate MB/s (default 100, 0: no limit)
//   stablefsctl stats MOUNTPOINT [--json]         the running daemon's counters: one
//                                                 "name value" per line, or one JSON object
//   stablefsctl sync MOUNTPOINT                   writes back and syncs the whole filesystem
//                                                 (sync(2) does not reach a FUSE daemon)
//   stablefsctl inject MOUNTPOINT write|sync|read|clear [COUNT]
//                                                 makes the store of a mount made with
//                                                 -o debug_faults fail its next COUNT writes,
//                                                 syncs or block reads with an I/O error (default
//                                                 1; -1: every one until cleared), as a failing
//                                                 disk would: to see how applications meet it
//   stablefsctl corrupt STORE PATH --offset N --what KIND [--to PATH2] [--to-offset M]
//                       [--above-pi]
//                                                 damages the block holding byte N on purpose,
//                                                 below every check, for tests and demonstrations:
//                                                 data (flips the bit of byte N), guard, app, ref
//                                                 (flips a bit of that field of the interval
//                                                 holding N), swap (exchanges it with the block
//                                                 at --to-offset of the same file: a misdirected
//                                                 write), move (writes it over the block at
//                                                 --to-offset of PATH2: a block in the wrong
//                                                 file), drop (deletes it, keeping its block-map
//                                                 entry: a lost write), torn (its second half
//                                                 replaced by that of the block at --to-offset: a
//                                                 torn write). With --above-pi the damaged blocks
//                                                 get freshly computed tuples: damage done above
//                                                 the protection, as a bug in the filesystem would
//                                                 do it, which no check can find (tests use it to
//                                                 prove a check would see silent corruption)
//   stablefsctl compare [--fs LIST] [--checks LIST] [--seconds N] [--json]
//                                                 the guarantee checks on stablefs and kernel
//                                                 filesystems side by side (tools/compare/)
//   stablefsctl torture-store [--states L] [--damage L] [--kinds L] [--rounds N] [--sample N]
//                             [--every-cut] [--seed N] [--dir DIR] [--keep]
//                                                 the damage campaign: stores left in each
//                                                 state, damaged in each kind of file, checked
//                                                 through mounts (tools/torture/torture.h)
//   stablefsctl wait STORE [SECONDS]              waits until no daemon holds STORE (default
//                                                 60 s): umount returns before a FUSE daemon
//                                                 has finished writing back and closing. It
//                                                 waits on the store's lock alone: the store
//                                                 is not opened and nothing in it changes
//
// inspect, verify and corrupt open the store, so it must not be mounted (a daemon finishing its
// unmount is waited for up to 10 s). Exit status: 0 clean, 4 damage found, 8 an operational error
// (the store cannot be opened, a path does not exist, bad usage), as fsck's.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "fs/fsck.h"
#include "fs/scrub.h"
#include "fs/scrub_ioctl.h"
#include "fs/stats.h"
#include "storage/rocks_block_store.h"
#include "storage/verifier.h"
#include "tools/compare/compare.h"
#include "tools/progress.h"
#include "tools/torture/torture.h"

namespace {

using namespace stablefs;

constexpr int kClean = 0, kDamage = 4, kError = 8;

int Fail(const std::string& msg);

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

int Fail(const std::string& msg) {
  std::fprintf(stderr, "stablefsctl: %s\n", msg.c_str());
  return kError;
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: stablefsctl inspect STORE PATH [--offset N] [--json]\n"
      "       stablefsctl verify STORE\n"
      "       stablefsctl scrub [--rate MB/s] [--json] STORE-or-MOUNTPOINT\n"
      "       stablefsctl stats MOUNTPOINT [--json]\n"
      "       stablefsctl sync MOUNTPOINT\n"
      "       stablefsctl inject MOUNTPOINT write|sync|read|clear [COUNT]\n"
      "       stablefsctl corrupt STORE PATH --offset N --what "
      "data|guard|app|ref|swap|move|drop|torn [--to PATH2] [--to-offset M] [--above-pi]\n"
      "       stablefsctl torture-store [--states L] [--damage L] [--kinds L] [--rounds N]\n"
      "                 [--sample N] [--every-cut] [--seed N] [--dir DIR] [--keep]\n"
      "       stablefsctl wait STORE [SECONDS]\n"
      "       stablefsctl compare [--fs LIST] [--checks LIST] [--seconds N] [--json]\n");
}

// Resolves a path from the root through the directory entries.
Status Resolve(BlockStore* store, const std::string& path, uint64_t* ino) {
  *ino = kRootIno;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    std::string name = path.substr(pos, next - pos);
    pos = next + 1;
    if (name.empty() || name == ".") continue;
    std::string v;
    Status s = store->Get(Space::kDirent, NameKey(*ino, name), &v);
    if (s.IsNotFound()) return Status::NotFound(path + ": no entry '" + name + "'");
    STABLEFS_RETURN_IF_ERROR(s);
    DirentRecord d;
    STABLEFS_RETURN_IF_ERROR(d.DecodeFrom(v));
    *ino = d.ino;
  }
  return Status::Ok();
}

void PrintTuple(const pi::Profile& p, const char* label, const pi::Tuple& t) {
  const int gw = p.guard == pi::GuardKind::kCrc16T10Dif ? 4 : 16;
  const int rw = p.guard == pi::GuardKind::kCrc16T10Dif ? 8 : 12;
  std::printf("    %-10s guard 0x%0*" PRIx64 "  app 0x%04x  ref 0x%0*" PRIx64 "\n", label, gw,
              t.guard, t.app_tag, rw, t.ref_tag);
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  return buf;
}

std::string TupleJson(const pi::Tuple& t) {
  return "{\"guard\": \"" + Hex(t.guard) + "\", \"app\": \"" + Hex(t.app_tag) + "\", \"ref\": \"" +
         Hex(t.ref_tag) + "\"}";
}

// The runs of blocks an inode holds, as [first, last] block indexes.
Status BlockRuns(BlockStore* store, uint64_t ino,
                 std::vector<std::pair<uint64_t, uint64_t>>* runs) {
  return store->ScanBlockMap(ino, 0, UINT64_MAX, [&](uint64_t index) {
    if (!runs->empty() && runs->back().second + 1 == index) {
      runs->back().second = index;
    } else {
      runs->emplace_back(index, index);
    }
    return true;
  });
}

// What inspect shows of the block holding the offset asked for.
struct InspectedBlock {
  uint64_t index = 0;
  std::string state;  // "present", or why not
  std::vector<pi::Tuple> stored, computed;
  std::string verification;  // "ok" or the mismatch
  std::string stored_in;     // where the store keeps it (RocksBlockStore::BlockLocation)
};

Status InspectBlock(BlockStore* store, uint64_t ino, uint64_t index, InspectedBlock* b) {
  b->index = index;
  std::string data, tuples;
  Status s = store->ReadBlockRaw(ino, index, &data, &tuples);
  if (s.IsNotFound()) {
    b->state = s.message();
    return Status::Ok();
  }
  STABLEFS_RETURN_IF_ERROR(s);
  b->state = "present";
  if (auto* rocks = dynamic_cast<RocksBlockStore*>(store)) {
    STABLEFS_RETURN_IF_ERROR(rocks->BlockLocation(ino, index, &b->stored_in));
  }
  const pi::Profile& p = store->profile();
  std::string fresh(tuples.size(), '\0');
  store->GenerateBlockPi(ino, index, data.data(), fresh.data());
  for (size_t i = 0; i < TuplesPerBlock(p); i++) {
    b->stored.push_back(pi::DecodeTuple(p, tuples.data() + i * p.tuple_size()));
    b->computed.push_back(pi::DecodeTuple(p, fresh.data() + i * p.tuple_size()));
  }
  s = store->VerifyBlockPi(ino, index, data.data(), tuples.data());
  b->verification = s.ok() ? "ok" : s.message();
  return Status::Ok();
}

int Inspect(BlockStore* store, const std::string& path, uint64_t offset, bool json) {
  uint64_t ino;
  Status s = Resolve(store, path, &ino);
  if (!s.ok()) return Fail(s.ToString());
  std::string v;
  s = store->Get(Space::kInode, InodeKey(ino), &v);
  if (!s.ok()) return Fail("inode " + std::to_string(ino) + ": " + s.ToString());
  InodeRecord r;
  s = r.DecodeFrom(v);
  if (!s.ok()) return Fail("inode " + std::to_string(ino) + ": " + s.ToString());
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  s = BlockRuns(store, ino, &runs);
  if (!s.ok()) return Fail(s.ToString());
  uint64_t nblocks = 0;
  for (const auto& [first, last] : runs) nblocks += last - first + 1;
  const pi::Profile& p = store->profile();
  InspectedBlock b;
  const bool regular = S_ISREG(r.mode);
  if (regular) {
    s = InspectBlock(store, ino, offset / kBlockSize, &b);
    if (!s.ok()) return Fail(s.ToString());
  }
  const int exit = b.verification.empty() || b.verification == "ok" ? kClean : kDamage;
  if (json) {
    std::string out =
        "{\"path\": \"" + JsonEscape(path) + "\", \"inode\": " + std::to_string(ino) +
        ", \"mode\": " + std::to_string(r.mode) + ", \"links\": " + std::to_string(r.nlink) +
        ", \"uid\": " + std::to_string(r.uid) + ", \"gid\": " + std::to_string(r.gid) +
        ", \"size\": " + std::to_string(r.size) +
        ", \"blocks_in_store\": " + std::to_string(nblocks) +
        ", \"blocks_recorded\": " + std::to_string(r.blocks) + ", \"protection\": \"" +
        JsonEscape(p.ToString()) + "\", \"app_tag\": \"" + Hex(pi::AppTagForOwner(ino)) +
        "\", \"runs\": [";
    for (size_t i = 0; i < runs.size(); i++) {
      out += (i ? ", [" : "[") + std::to_string(runs[i].first) + ", " +
             std::to_string(runs[i].second) + "]";
    }
    out += "]";
    if (regular) {
      out += ", \"block\": {\"index\": " + std::to_string(b.index) +
             ", \"offset\": " + std::to_string(b.index * kBlockSize) + ", \"state\": \"" +
             JsonEscape(b.state) + "\", \"stored_in\": \"" + JsonEscape(b.stored_in) +
             "\", \"intervals\": [";
      for (size_t i = 0; i < b.stored.size(); i++) {
        out += (i ? ", " : "") + std::string("{\"sector\": ") +
               std::to_string(FirstSectorOfBlock(p, b.index) + i) +
               ", \"stored\": " + TupleJson(b.stored[i]) +
               ", \"computed\": " + TupleJson(b.computed[i]) + "}";
      }
      out += "]";
      if (!b.verification.empty())
        out += ", \"verification\": \"" + JsonEscape(b.verification) + "\"";
      out += "}";
    }
    std::printf("%s, \"exit\": %d}\n", out.c_str(), exit);
    return exit;
  }
  std::printf("%s: inode %" PRIu64 "\n  mode %06o  links %u  uid %u  gid %u\n", path.c_str(), ino,
              r.mode, r.nlink, r.uid, r.gid);
  std::printf("  size %" PRIu64 "  blocks in the store %" PRIu64 " (record says %" PRIu64 ")\n",
              r.size, nblocks, r.blocks);
  std::printf("  protection %s, application tag 0x%04x\n", p.ToString().c_str(),
              pi::AppTagForOwner(ino));
  if (!runs.empty()) {
    std::printf("  blocks");
    for (size_t i = 0; i < runs.size() && i < 16; i++) {
      std::printf(" %" PRIu64 "-%" PRIu64, runs[i].first, runs[i].second);
    }
    std::printf("%s\n", runs.size() > 16 ? " ..." : "");
  }
  if (!regular) return kClean;
  if (b.state != "present") {
    std::printf("  block %" PRIu64 " (offset %" PRIu64 "): %s\n", b.index, b.index * kBlockSize,
                b.state.c_str());
    return kClean;
  }
  std::printf("  block %" PRIu64 " (offset %" PRIu64 "), stored in %s:\n", b.index,
              b.index * kBlockSize, b.stored_in.empty() ? "?" : b.stored_in.c_str());
  for (size_t i = 0; i < b.stored.size(); i++) {
    std::printf("   interval %zu (sector %" PRIu64 ")\n", i, FirstSectorOfBlock(p, b.index) + i);
    PrintTuple(p, "stored", b.stored[i]);
    PrintTuple(p, "computed", b.computed[i]);
  }
  std::printf("  verification: %s\n", b.verification.c_str());
  return exit;
}

int Verify(BlockStore* store) {
  // The store's verifier (storage/verifier.h), the same check as fsck's and scrub's.
  struct Sink : BlockVerifierSink {
    explicit Sink(const pi::Profile& p) : profile(p) {}
    void Checked(uint64_t, uint64_t) override { checked++; }
    void Found(const BlockFinding& f) override {
      (f.kind == BlockFindingKind::kMissing ? missing : damaged)++;
      std::printf("inode %" PRIu64 " offset %" PRIu64 ": %s\n", f.ino, f.Offset(profile),
                  f.What(profile).c_str());
    }
    const pi::Profile& profile;
    uint64_t checked = 0, damaged = 0, missing = 0;
  } sink(store->profile());
  if (Status s = VerifyAllBlocks(store, &sink); !s.ok()) return Fail(s.ToString());
  std::printf("%" PRIu64 " blocks verified against their tuples: %" PRIu64 " damaged, %" PRIu64
              " missing\n",
              sink.checked, sink.damaged, sink.missing);
  return sink.damaged + sink.missing == 0 ? kClean : kDamage;
}

// Writes raw data and tuples at (ino, index), below every check. With above_pi the tuples are
// computed afresh for the data and the place, so the damage cannot be seen.
Status PutRaw(BlockStore* store, uint64_t ino, uint64_t index, const std::string& data,
              std::string tuples, bool above_pi) {
  if (above_pi) store->GenerateBlockPi(ino, index, data.data(), tuples.data());
  WriteBatch b;
  b.PutBlock(ino, index, data.data(), tuples.data());
  return store->Write(b, WriteOptions{.sync = true, .verify_pi = false});
}

int Corrupt(BlockStore* store, const std::string& path, uint64_t offset, const std::string& what,
            const std::string& to_path, uint64_t to_offset, bool above_pi) {
  uint64_t ino;
  Status s = Resolve(store, path, &ino);
  if (!s.ok()) return Fail(s.ToString());
  const uint64_t index = offset / kBlockSize;
  std::string data, tuples;
  s = store->ReadBlockRaw(ino, index, &data, &tuples);
  if (!s.ok()) return Fail(s.ToString());
  const pi::Profile& p = store->profile();
  const size_t tuple = (offset % kBlockSize) / p.interval * p.tuple_size();
  const size_t app_at = p.guard == pi::GuardKind::kCrc16T10Dif ? 2 : 8;
  std::fprintf(stderr, "stablefsctl: corrupt: damaging %s on purpose: inode %llu block %llu: %s\n",
               path.c_str(), static_cast<unsigned long long>(ino),
               static_cast<unsigned long long>(index), what.c_str());
  if (what == "data") {
    data[offset % kBlockSize] ^= 0x01;
  } else if (what == "guard") {
    tuples[tuple] ^= 0x01;
  } else if (what == "app") {
    tuples[tuple + app_at] ^= 0x01;
  } else if (what == "ref") {
    tuples[tuple + p.tuple_size() - 1] ^= 0x01;
  } else if (what == "drop") {
    WriteBatch b;
    b.Delete(Space::kData, DataKey(ino, index));
    s = store->Write(b, WriteOptions{.sync = true, .verify_pi = false});
    return s.ok() ? kClean : Fail(s.ToString());
  } else if (what == "torn") {
    std::string other_data, other_tuples;
    s = store->ReadBlockRaw(ino, to_offset / kBlockSize, &other_data, &other_tuples);
    if (!s.ok()) return Fail(s.ToString());
    data.replace(kBlockSize / 2, kBlockSize / 2, other_data, kBlockSize / 2, kBlockSize / 2);
  } else if (what == "swap" || what == "move") {
    uint64_t to_ino = ino;
    if (what == "move") {
      if (to_path.empty()) return Fail("move needs --to PATH2");
      s = Resolve(store, to_path, &to_ino);
      if (!s.ok()) return Fail(s.ToString());
    }
    const uint64_t to_index = to_offset / kBlockSize;
    std::string other_data, other_tuples;
    s = store->ReadBlockRaw(to_ino, to_index, &other_data, &other_tuples);
    if (!s.ok()) return Fail(s.ToString());
    s = PutRaw(store, to_ino, to_index, data, tuples, above_pi);
    if (s.ok() && what == "swap") s = PutRaw(store, ino, index, other_data, other_tuples, above_pi);
    return s.ok() ? kClean : Fail(s.ToString());
  } else {
    Usage();
    return Fail("unknown --what " + what);
  }
  s = PutRaw(store, ino, index, data, tuples, above_pi);
  return s.ok() ? kClean : Fail(s.ToString());
}

int Stats(const std::string& mountpoint, bool json) {
  int fd = open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Fail(mountpoint + ": " + strerror(errno));
  StablefsStats stats{};
  int rc = ioctl(fd, STABLEFS_IOC_STATS, &stats);
  int err = errno;
  close(fd);
  if (rc != 0) {
    return Fail(mountpoint + ": not a stablefs mount (stats ioctl: " + strerror(err) + ")");
  }
  if (json) std::printf("{");
  for (size_t i = 0; i < kNumStats; i++) {
    if (json) {
      std::printf("%s\"%s\": %" PRIu64, i ? ", " : "", kStatNames[i], stats.values[i]);
    } else {
      std::printf("%s %" PRIu64 "\n", kStatNames[i], stats.values[i]);
    }
  }
  if (json) std::printf("}\n");
  return kClean;
}

int Sync(const std::string& mountpoint) {
  int fd = open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Fail(mountpoint + ": " + strerror(errno));
  int rc = ioctl(fd, STABLEFS_IOC_SYNC);
  int err = errno;
  close(fd);
  if (rc != 0) return Fail(mountpoint + ": sync: " + strerror(err));
  return kClean;
}

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

// ---- scrub ----

volatile std::sig_atomic_t interrupted = 0;
void OnInterrupt(int) { interrupted = 1; }

// Where a scrub runs: the daemon of a mount (through its ioctls), or a Scrubber in this process
// on an unmounted store. Both are polled the same way.
class ScrubTarget {
 public:
  virtual ~ScrubTarget() = default;
  virtual Status Start(uint64_t rate_bytes_per_sec) = 0;
  virtual Status Poll(ScrubProgress* p) = 0;
  // The whole report; REQUIRES: the scrub has ended.
  virtual Status Report(std::vector<ScrubProblem>* problems) = 0;
  virtual void Cancel() = 0;
};

class MountedScrub : public ScrubTarget {
 public:
  explicit MountedScrub(int fd) : fd_(fd) {}
  ~MountedScrub() override { close(fd_); }

  Status Start(uint64_t rate) override {
    StablefsScrubStart start{};
    start.rate_bytes_per_sec = rate;
    if (ioctl(fd_, STABLEFS_IOC_SCRUB_START, &start) != 0) {
      if (errno == EBUSY) return Status::Busy("a scrub is already running on this filesystem");
      return Status::IOError(std::string("not a stablefs mount (scrub ioctl: ") + strerror(errno) +
                             ")");
    }
    generation_ = start.generation;
    return Status::Ok();
  }

  Status Poll(ScrubProgress* p) override {
    StablefsScrubStatus* st = FetchStatus(0);
    if (st == nullptr) return error_;
    p->state = static_cast<ScrubState>(st->state);
    p->generation = st->generation;
    p->blocks_total = st->blocks_total;
    p->blocks_checked = st->blocks_checked;
    p->bytes_checked = st->bytes_checked;
    p->problems = st->problems;
    p->elapsed_ns = st->elapsed_ns;
    p->error = st->error;
    return Status::Ok();
  }

  Status Report(std::vector<ScrubProblem>* problems) override {
    for (;;) {
      StablefsScrubStatus* st = FetchStatus(problems->size());
      if (st == nullptr) return error_;
      for (uint32_t i = 0; i < st->nrecords && i < kScrubRecordsPerCall; i++) {
        const StablefsScrubRecord& r = st->records[i];
        ScrubProblem q;
        q.ino = r.ino;
        q.offset = r.offset;
        q.has_values = r.has_values != 0;
        q.expected = r.expected;
        q.found = r.found;
        q.field = std::string(r.field, strnlen(r.field, sizeof(r.field)));
        q.what = std::string(r.what, strnlen(r.what, sizeof(r.what)));
        q.path = std::string(r.path, strnlen(r.path, sizeof(r.path)));
        problems->push_back(std::move(q));
      }
      if (st->nrecords < kScrubRecordsPerCall) break;
    }
    return Status::Ok();
  }

  void Cancel() override { ioctl(fd_, STABLEFS_IOC_SCRUB_CANCEL); }

 private:
  // The status with the report's records from `first` on; null on failure (error_ says why).
  StablefsScrubStatus* FetchStatus(uint64_t first) {
    std::memset(&status_, 0, sizeof(status_));
    status_.generation = generation_;
    status_.first_problem = first;
    if (ioctl(fd_, STABLEFS_IOC_SCRUB_STATUS, &status_) != 0) {
      error_ = errno == ESTALE
                   ? Status::Busy("another scrub was started on this filesystem meanwhile")
                   : Status::IOError(std::string("scrub status ioctl: ") + strerror(errno));
      return nullptr;
    }
    return &status_;
  }

  const int fd_;
  uint64_t generation_ = 0;
  StablefsScrubStatus status_;
  Status error_;
};

class LocalScrub : public ScrubTarget {
 public:
  explicit LocalScrub(std::unique_ptr<RocksBlockStore> store)
      : store_(std::move(store)), scrubber_(store_.get()) {}

  Status Start(uint64_t rate) override {
    return scrubber_.Start(ScrubOptions{.rate_bytes_per_sec = rate});
  }
  Status Poll(ScrubProgress* p) override {
    *p = scrubber_.progress();
    return Status::Ok();
  }
  Status Report(std::vector<ScrubProblem>* problems) override {
    *problems = scrubber_.problems(0, SIZE_MAX);
    return Status::Ok();
  }
  void Cancel() override { scrubber_.Cancel(); }

 private:
  std::unique_ptr<RocksBlockStore> store_;
  Scrubber scrubber_;  // destroyed (its thread joined) before the store
};

// The daemon's scrub for a mount point, a local one for an unmounted store.
Status OpenScrubTarget(const std::string& path, std::unique_ptr<ScrubTarget>* out) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) {
    std::unique_ptr<RocksBlockStore> store;
    Status s = RocksBlockStore::Open(path, RocksOptions(), &store);
    if (s.IsBusy()) {
      return Status::Busy(path + " is in use, by a daemon serving it: scrub its mount point");
    }
    STABLEFS_RETURN_IF_ERROR(s);
    *out = std::make_unique<LocalScrub>(std::move(store));
    return Status::Ok();
  }
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Status::NotFound(path + ": " + strerror(errno));
  *out = std::make_unique<MountedScrub>(fd);
  return Status::Ok();
}

std::string ScrubProgressLine(const ScrubProgress& p) {
  char buf[160];
  const double secs = p.elapsed_ns / 1e9;
  const double pct = p.blocks_total ? 100.0 * p.blocks_checked / p.blocks_total : 0;
  std::snprintf(
      buf, sizeof(buf),
      "scrub: %" PRIu64 "/%" PRIu64 " blocks (%.0f%%), %s, %.1f MB/s, %" PRIu64 " problems",
      p.blocks_checked, p.blocks_total, std::min(pct, 100.0), FormatBytes(p.bytes_checked).c_str(),
      secs > 0 ? p.bytes_checked / secs / 1e6 : 0, p.problems);
  return buf;
}

void PrintScrubReport(const std::string& target, const ScrubProgress& p,
                      const std::vector<ScrubProblem>& problems) {
  for (const ScrubProblem& q : problems) {
    std::printf("inode %" PRIu64 "%s%s%s offset %" PRIu64 ": %s\n", q.ino,
                q.path.empty() ? "" : " (", q.path.c_str(), q.path.empty() ? "" : ")", q.offset,
                q.what.c_str());
  }
  if (p.problems > problems.size()) {
    std::printf("(%" PRIu64 " more problems not listed)\n", p.problems - problems.size());
  }
  std::printf("%s: %" PRIu64 " blocks (%s) scrubbed in %.1f s; %" PRIu64 " problems\n",
              target.c_str(), p.blocks_checked, FormatBytes(p.bytes_checked).c_str(),
              p.elapsed_ns / 1e9, p.problems);
}

int Scrub(const std::string& path, double rate_mb, bool json) {
  std::unique_ptr<ScrubTarget> target;
  Status s = OpenScrubTarget(path, &target);
  if (!s.ok()) return Fail(s.ToString());
  s = target->Start(static_cast<uint64_t>(rate_mb * 1e6));
  if (!s.ok()) return Fail(path + ": " + s.ToString());
  // Interrupted, the scrub is cancelled rather than left running in the daemon.
  std::signal(SIGINT, OnInterrupt);
  std::signal(SIGTERM, OnInterrupt);
  ProgressLine line;
  ScrubProgress p;
  bool cancelled = false;
  for (;;) {
    s = target->Poll(&p);
    if (!s.ok()) return Fail(path + ": " + s.ToString());
    if (p.state != ScrubState::kRunning) break;
    if (interrupted && !cancelled) {
      target->Cancel();
      cancelled = true;
    }
    line.Update(ScrubProgressLine(p));
    // The daemon cannot notify this process; progress is polled, ten times a second.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  line.Clear();
  std::vector<ScrubProblem> problems;
  if (p.state == ScrubState::kDone) {
    s = target->Report(&problems);
    if (!s.ok()) return Fail(path + ": " + s.ToString());
  }
  int exit = p.state != ScrubState::kDone ? kError : p.problems > 0 ? kDamage : kClean;
  if (json) {
    std::printf("%s\n", ScrubReportJson(p, problems, exit).c_str());
  } else {
    PrintScrubReport(path, p, problems);
  }
  if (p.state == ScrubState::kFailed) Fail(path + ": scrub failed: " + p.error);
  if (p.state == ScrubState::kCancelled) Fail(path + ": scrub cancelled");
  return exit;
}

int ScrubMain(int argc, char** argv) {
  double rate_mb = 100;
  bool json = false;
  std::string path;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--rate" && i + 1 < argc) {
      char* end = nullptr;
      rate_mb = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || rate_mb < 0)
        return Fail(std::string("bad --rate ") + argv[i]);
    } else if (!a.empty() && a[0] != '-' && path.empty()) {
      path = a;
    } else {
      Usage();
      return Fail("unknown argument " + a);
    }
  }
  if (path.empty()) {
    Usage();
    return kError;
  }
  return Scrub(path, rate_mb, json);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "compare") == 0) {
    return stablefs::compare::CompareMain(argc, argv);
  }
  if (argc >= 2 && std::strcmp(argv[1], "torture-store") == 0) {
    return stablefs::torture::TortureMain(argc, argv);
  }
  if (argc < 3) {
    Usage();
    return kError;
  }
  const std::string cmd = argv[1];
  if (cmd == "scrub") return ScrubMain(argc, argv);
  if (cmd == "wait") {
    if (argc > 4) {
      Usage();
      return kError;
    }
    return WaitForStore(argv[2], argc == 4 ? std::atoi(argv[3]) : 60);
  }
  if (cmd == "sync") {
    if (argc != 3) {
      Usage();
      return kError;
    }
    return Sync(argv[2]);
  }
  if (cmd == "inject") {
    if (argc != 4 && argc != 5) {
      Usage();
      return kError;
    }
    return Inject(argv[2], argv[3], argc == 5 ? argv[4] : nullptr);
  }
  if (cmd == "stats") {
    bool json = argc > 3 && std::strcmp(argv[3], "--json") == 0;
    if (argc > 4 || (argc == 4 && !json)) {
      Usage();
      return kError;
    }
    return Stats(argv[2], json);
  }
  if (cmd != "inspect" && cmd != "verify" && cmd != "corrupt") {
    Usage();
    return Fail("unknown command " + cmd);
  }
  std::unique_ptr<RocksBlockStore> store;
  RocksOptions options;
  options.busy_wait_ms = 10000;  // a daemon may still be finishing its unmount
  Status s = RocksBlockStore::Open(argv[2], options, &store);
  if (!s.ok()) return Fail(s.ToString());
  if (cmd == "verify") return Verify(store.get());
  if (cmd == "corrupt") {
    if (argc < 4) {
      Usage();
      return kError;
    }
    uint64_t offset = 0, to_offset = 0;
    std::string what, to;
    bool above_pi = false;
    for (int i = 4; i < argc; i++) {
      std::string a = argv[i];
      if (a == "--above-pi") {
        above_pi = true;
        continue;
      }
      if (i + 1 >= argc) return Fail("missing value after " + a);
      if (a == "--offset") {
        offset = std::strtoull(argv[++i], nullptr, 0);
      } else if (a == "--what") {
        what = argv[++i];
      } else if (a == "--to") {
        to = argv[++i];
      } else if (a == "--to-offset") {
        to_offset = std::strtoull(argv[++i], nullptr, 0);
      } else {
        Usage();
        return Fail("unknown argument " + a);
      }
    }
    return Corrupt(store.get(), argv[3], offset, what, to, to_offset, above_pi);
  }
  if (argc < 4) {
    Usage();
    return kError;
  }
  uint64_t offset = 0;
  bool json = false;
  for (int i = 4; i < argc; i++) {
    if (std::strcmp(argv[i], "--offset") == 0 && i + 1 < argc) {
      offset = std::strtoull(argv[++i], nullptr, 0);
    } else if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else {
      Usage();
      return Fail(std::string("unknown argument ") + argv[i]);
    }
  }
  return Inspect(store.get(), argv[3], offset, json);
}
