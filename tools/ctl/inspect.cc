// stablefsctl inspect STORE PATH [--offset N] [--json]
//
// An inode of an unmounted store, its blocks, and for the block holding byte N (default 0) the
// stored tuples beside the tuples recomputed from its data; exit status 4 if they disagree.
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "fs/fsck.h"
#include "storage/format.h"
#include "storage/pi.h"
#include "tools/ctl/ctl.h"

namespace stablefs::ctl {

namespace {

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

}  // namespace

int InspectMain(int argc, char** argv) {
  std::unique_ptr<RocksBlockStore> store;
  Status s = OpenStore(argv[2], &store);
  if (!s.ok()) return Fail(s.ToString());
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

}  // namespace stablefs::ctl
