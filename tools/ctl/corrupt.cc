// stablefsctl corrupt STORE PATH --offset N --what KIND [--to PATH2] [--to-offset M] [--above-pi]
//
// Damages the block of an unmounted store holding byte N on purpose, below every check, for tests
// and demonstrations. KIND is data (flips the bit of byte N), guard, app, ref (flips a bit of that
// field of the interval holding N), swap (exchanges it with the block at --to-offset of the same
// file: a misdirected write), move (writes it over the block at --to-offset of PATH2: a block in
// the wrong file), drop (deletes it, keeping its block-map entry: a lost write), torn (its second
// half replaced by that of the block at --to-offset: a torn write). With --above-pi the damaged
// blocks get freshly computed tuples: damage done above the protection, as a bug in the
// filesystem would do it, which no check can find (tests use it to prove a check would see
// silent corruption).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "storage/format.h"
#include "storage/pi.h"
#include "tools/ctl/ctl.h"

namespace stablefs::ctl {

namespace {

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

}  // namespace

int CorruptMain(int argc, char** argv) {
  std::unique_ptr<RocksBlockStore> store;
  Status s = OpenStore(argv[2], &store);
  if (!s.ok()) return Fail(s.ToString());
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

}  // namespace stablefs::ctl
