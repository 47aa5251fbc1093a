// stablefsctl: look into a stablefs store.
//
//   stablefsctl inspect STORE PATH [--offset N]   an inode, its blocks, and for the block holding
//                                                 byte N (default 0) the stored tuples beside the
//                                                 tuples recomputed from its data
//   stablefsctl verify STORE                      checks every data block against its tuples and
//                                                 every block map entry against the data
//   stablefsctl stats MOUNTPOINT [--json]         the running daemon's counters: one
//                                                 "name value" per line, or one JSON object
//   stablefsctl sync MOUNTPOINT                   writes back and syncs the whole filesystem
//                                                 (sync(2) does not reach a FUSE daemon)
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
//   stablefsctl wait STORE [SECONDS]              waits until no daemon holds STORE (default
//                                                 60 s): umount returns before a FUSE daemon
//                                                 has finished writing back and closing
//
// inspect and verify open the store, so it must not be mounted (a daemon finishing its unmount is
// waited for up to 10 s). Exit status: 0 clean, 4 damage found, 8 an operational error (the store
// cannot be opened, a path does not exist, bad usage), as fsck's.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fs/stats.h"
#include "storage/rocks_block_store.h"
#include "tools/compare/compare.h"

namespace {

using namespace stablefs;

constexpr int kClean = 0, kDamage = 4, kError = 8;

int Fail(const std::string& msg) {
  std::fprintf(stderr, "stablefsctl: %s\n", msg.c_str());
  return kError;
}

void Usage() {
  std::fprintf(stderr,
               "usage: stablefsctl inspect STORE PATH [--offset N]\n"
               "       stablefsctl verify STORE\n"
               "       stablefsctl stats MOUNTPOINT [--json]\n"
               "       stablefsctl sync MOUNTPOINT\n"
               "       stablefsctl corrupt STORE PATH --offset N --what "
               "data|guard|app|ref|swap|move|drop|torn [--to PATH2] [--to-offset M] [--above-pi]\n"
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

int Inspect(BlockStore* store, const std::string& path, uint64_t offset) {
  uint64_t ino;
  Status s = Resolve(store, path, &ino);
  if (!s.ok()) return Fail(s.ToString());
  std::string v;
  s = store->Get(Space::kInode, InodeKey(ino), &v);
  if (!s.ok()) return Fail("inode " + std::to_string(ino) + ": " + s.ToString());
  InodeRecord r;
  s = r.DecodeFrom(v);
  if (!s.ok()) return Fail("inode " + std::to_string(ino) + ": " + s.ToString());
  uint64_t nblocks = 0;
  s = store->CountBlocks(ino, 0, UINT64_MAX, &nblocks);
  if (!s.ok()) return Fail(s.ToString());
  const pi::Profile& p = store->profile();
  std::printf("%s: inode %" PRIu64 "\n  mode %06o  links %u  uid %u  gid %u\n", path.c_str(), ino,
              r.mode, r.nlink, r.uid, r.gid);
  std::printf("  size %" PRIu64 "  blocks in the store %" PRIu64 " (record says %" PRIu64 ")\n",
              r.size, nblocks, r.blocks);
  std::printf("  protection %s, application tag 0x%04x\n", p.ToString().c_str(),
              pi::AppTagForOwner(ino));
  if (!S_ISREG(r.mode)) return kClean;
  const uint64_t index = offset / kBlockSize;
  std::string data, tuples;
  s = store->ReadBlockRaw(ino, index, &data, &tuples);
  if (s.IsNotFound()) {
    std::printf("  block %" PRIu64 " (offset %" PRIu64 "): %s\n", index, index * kBlockSize,
                s.message().c_str());
    return kClean;
  }
  if (!s.ok()) return Fail(s.ToString());
  std::string fresh(tuples.size(), '\0');
  store->GenerateBlockPi(ino, index, data.data(), fresh.data());
  std::printf("  block %" PRIu64 " (offset %" PRIu64 "):\n", index, index * kBlockSize);
  for (size_t i = 0; i < TuplesPerBlock(p); i++) {
    std::printf("   interval %zu (sector %" PRIu64 ")\n", i, FirstSectorOfBlock(p, index) + i);
    PrintTuple(p, "stored", pi::DecodeTuple(p, tuples.data() + i * p.tuple_size()));
    PrintTuple(p, "computed", pi::DecodeTuple(p, fresh.data() + i * p.tuple_size()));
  }
  s = store->VerifyBlockPi(ino, index, data.data(), tuples.data());
  std::printf("  verification: %s\n", s.ok() ? "ok" : s.message().c_str());
  return s.ok() ? kClean : kDamage;
}

int Verify(BlockStore* store) {
  uint64_t checked = 0, damaged = 0, lost = 0;
  Status s = store->Scan(Space::kData, "", "", [&](std::string_view key, std::string_view value) {
    uint64_t ino, index;
    checked++;
    const size_t tb = store->tuple_bytes_per_block();
    if (!ParseDataKey(key, &ino, &index) || value.size() != kBlockSize + tb) {
      damaged++;
      std::printf("malformed data record (%zu bytes)\n", value.size());
      return true;
    }
    Status v = store->VerifyBlockPi(ino, index, value.data(), value.data() + kBlockSize);
    if (!v.ok()) {
      damaged++;
      std::printf("%s\n", v.message().c_str());
    }
    return true;
  });
  if (!s.ok()) return Fail(s.ToString());
  s = store->Scan(Space::kBlockMap, "", "", [&](std::string_view key, std::string_view) {
    std::string v;
    Status g = store->Get(Space::kData, key, &v);
    uint64_t ino, index;
    if (g.IsNotFound() && ParseDataKey(key, &ino, &index)) {
      lost++;
      std::printf("inode %" PRIu64 " offset %" PRIu64 ": block missing from the store\n", ino,
                  index * kBlockSize);
    }
    return true;
  });
  if (!s.ok()) return Fail(s.ToString());
  std::printf("%" PRIu64 " blocks verified against their tuples: %" PRIu64 " damaged, %" PRIu64
              " missing\n",
              checked, damaged, lost);
  return damaged + lost == 0 ? kClean : kDamage;
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

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "compare") == 0) {
    return stablefs::compare::CompareMain(argc, argv);
  }
  if (argc < 3) {
    Usage();
    return kError;
  }
  const std::string cmd = argv[1];
  if (cmd == "wait") {
    if (argc > 4) {
      Usage();
      return kError;
    }
    RocksOptions options;
    options.busy_wait_ms = 1000 * static_cast<uint32_t>(argc == 4 ? std::atoi(argv[3]) : 60);
    std::unique_ptr<RocksBlockStore> store;
    Status s = RocksBlockStore::Open(argv[2], options, &store);
    if (s.IsNotFound()) return kClean;  // nothing there, nobody holds it
    return s.ok() ? kClean : Fail(s.ToString());
  }
  if (cmd == "sync") {
    if (argc != 3) {
      Usage();
      return kError;
    }
    return Sync(argv[2]);
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
  for (int i = 4; i < argc; i++) {
    if (std::strcmp(argv[i], "--offset") == 0 && i + 1 < argc) {
      offset = std::strtoull(argv[++i], nullptr, 0);
    } else {
      Usage();
      return Fail(std::string("unknown argument ") + argv[i]);
    }
  }
  return Inspect(store.get(), argv[3], offset);
}
