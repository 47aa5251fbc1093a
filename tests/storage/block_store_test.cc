// The BlockStore conformance suite, run against every implementation: the RocksDB store, the
// in-memory store, and the fault-injecting store over each. Then what only some stores do: the
// fault store's injected failures and simulated power cut, and the RocksDB store's open errors.
#include "storage/block_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "storage/fault_block_store.h"
#include "storage/mem_block_store.h"
#include "storage/rocks_block_store.h"
#include "tests/util/files.h"
#include "tests/util/temp_dir.h"

namespace stablefs {
namespace {

using stablefs::testing::TempDir;

// ---- Store environments: how to create and reopen each kind ----

struct MemEnv {
  Status Create(const CreateOptions& o, std::unique_ptr<BlockStore>* out) {
    std::unique_ptr<MemBlockStore> s;
    STABLEFS_RETURN_IF_ERROR(MemBlockStore::Create(o, &s));
    *out = std::move(s);
    return Status::Ok();
  }
  // An in-memory store has nothing to reopen; the same object stands for the reopened store.
  Status Reopen(std::unique_ptr<BlockStore>*) { return Status::Ok(); }
};

// A RocksBlockStore: format version (0: the default), the shortest run that goes to a segment
// and the segment size (0: the defaults).
template <uint32_t kVersion, uint32_t kMinRun, uint64_t kSegmentBytes>
struct RocksEnvOf {
  TempDir dir;
  RocksOptions Options() const {
    RocksOptions o;
    if (kMinRun != 0) o.segment_min_run = kMinRun;
    o.segment_bytes = kSegmentBytes;
    // The suite drives a store from the test's threads only (ThreadSanitizer cannot see RocksDB's
    // own synchronization); SegmentsTest races the collector against readers and writers.
    o.collect_segments = false;
    return o;
  }
  Status Create(const CreateOptions& o, std::unique_ptr<BlockStore>* out) {
    CreateOptions co = o;
    if (kVersion != 0) co.format_version = kVersion;
    std::unique_ptr<RocksBlockStore> s;
    STABLEFS_RETURN_IF_ERROR(RocksBlockStore::Create(dir.Sub("store"), co, Options(), &s));
    *out = std::move(s);
    return Status::Ok();
  }
  Status Reopen(std::unique_ptr<BlockStore>* store) {
    store->reset();
    std::unique_ptr<RocksBlockStore> s;
    STABLEFS_RETURN_IF_ERROR(RocksBlockStore::Open(dir.Sub("store"), Options(), &s));
    *store = std::move(s);
    return Status::Ok();
  }
};
// The defaults: format version 2, runs of 16 blocks or more in segments.
using RocksEnv = RocksEnvOf<0, 0, 0>;
// Format version 1: every block in the data family.
using RocksV1Env = RocksEnvOf<1, 0, 0>;
// Every block in a segment, and segments of 16 slots, so that sealing happens all the time.
using RocksSegmentsEnv = RocksEnvOf<2, 1, 16 * kBlockSize>;

template <class BaseEnv>
struct FaultEnv {
  BaseEnv base;
  Status Create(const CreateOptions& o, std::unique_ptr<BlockStore>* out) {
    std::unique_ptr<BlockStore> b;
    STABLEFS_RETURN_IF_ERROR(base.Create(o, &b));
    *out = std::make_unique<FaultBlockStore>(std::move(b));
    return Status::Ok();
  }
  Status Reopen(std::unique_ptr<BlockStore>* store) {
    auto* fault = static_cast<FaultBlockStore*>(store->get());
    std::unique_ptr<BlockStore> b;
    if constexpr (std::is_same_v<BaseEnv, MemEnv>) {
      return Status::Ok();
    } else {
      (void)fault;
      store->reset();
      STABLEFS_RETURN_IF_ERROR(base.Reopen(&b));
      *store = std::make_unique<FaultBlockStore>(std::move(b));
      return Status::Ok();
    }
  }
};

// ---- Helpers ----

std::string RandomBlock(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string b(kBlockSize, '\0');
  for (size_t i = 0; i < b.size(); i += 8) {
    uint64_t r = rng();
    std::memcpy(&b[i], &r, 8);
  }
  return b;
}

std::string Tuples(const BlockStore& s, uint64_t ino, uint64_t index, const std::string& data) {
  std::string t(s.tuple_bytes_per_block(), '\0');
  s.GenerateBlockPi(ino, index, data.data(), t.data());
  return t;
}

Status PutBlock(BlockStore* s, uint64_t ino, uint64_t index, const std::string& data,
                bool sync = false) {
  std::string t = Tuples(*s, ino, index, data);
  WriteBatch b;
  b.PutBlock(ino, index, data.data(), t.data());
  return s->Write(b, WriteOptions{.sync = sync});
}

// Reads one block; nullopt for a hole.
std::optional<std::string> ReadBlock(BlockStore* s, uint64_t ino, uint64_t index) {
  std::string data(kBlockSize, 'x');
  bool present = false;
  Status st = s->ReadBlocks(ino, index, 1, data.data(), &present);
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (!present) {
    EXPECT_EQ(data, std::string(kBlockSize, '\0'));
    return std::nullopt;
  }
  return data;
}

// Every record of every space, raw.
using Dump = std::map<std::pair<int, std::string>, std::string>;
Dump DumpStore(BlockStore* s) {
  Dump d;
  for (int i = 0; i < kNumSpaces; i++) {
    Status st = s->Scan(static_cast<Space>(i), "", "", [&](std::string_view k, std::string_view v) {
      d[{i, std::string(k)}] = std::string(v);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return d;
}

// ---- The conformance suite ----

template <class Env>
class BlockStoreConformance : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(env_.Create(CreateOptions(), &store_).ok()); }
  void Reopen() {
    Status s = env_.Reopen(&store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  Env env_;
  std::unique_ptr<BlockStore> store_;
};

using StoreKinds =
    ::testing::Types<MemEnv, RocksEnv, RocksV1Env, RocksSegmentsEnv, FaultEnv<MemEnv>,
                     FaultEnv<RocksEnv>, FaultEnv<RocksSegmentsEnv>>;
TYPED_TEST_SUITE(BlockStoreConformance, StoreKinds);

TYPED_TEST(BlockStoreConformance, NewStoreHasSuperblockCounterAndRoot) {
  BlockStore* s = this->store_.get();
  EXPECT_EQ(s->profile(), pi::Profile());
  std::string v;
  ASSERT_TRUE(s->Get(Space::kMeta, kSuperblockKey, &v).ok());
  Superblock sb;
  ASSERT_TRUE(sb.DecodeFrom(v).ok());
  EXPECT_EQ(sb.uuid, s->superblock().uuid);
  ASSERT_TRUE(s->Get(Space::kMeta, kNextInoKey, &v).ok());
  uint64_t next;
  ASSERT_TRUE(DecodeCounter(v, &next).ok());
  EXPECT_EQ(next, kFirstFreeIno);
  ASSERT_TRUE(s->Get(Space::kInode, InodeKey(kRootIno), &v).ok());
  InodeRecord root;
  ASSERT_TRUE(root.DecodeFrom(v).ok());
  EXPECT_EQ(root.mode, 040755u);
  EXPECT_EQ(root.nlink, 2u);
}

TYPED_TEST(BlockStoreConformance, EveryRecordTypeRoundTrips) {
  BlockStore* s = this->store_.get();
  InodeRecord inode;
  inode.mode = 0100600;
  inode.size = 5;
  std::string inode_v, dirent_v;
  inode.EncodeTo(&inode_v);
  DirentRecord dirent{.ino = 9, .type = 8, .cookie = kFirstDirCookie};
  dirent.EncodeTo(&dirent_v);
  WriteBatch b;
  b.Put(Space::kInode, InodeKey(9), inode_v);
  b.Put(Space::kDirent, NameKey(kRootIno, "file"), dirent_v);
  b.Put(Space::kDirCookie, CookieKey(kRootIno, kFirstDirCookie), "file");
  b.Put(Space::kSymlink, InodeKey(10), "/target/of/link");
  b.Put(Space::kXattr, NameKey(9, "user.k"), std::string("v\0w", 3));
  b.Put(Space::kOrphan, InodeKey(11), "");
  ASSERT_TRUE(s->Write(b).ok());

  std::string v;
  ASSERT_TRUE(s->Get(Space::kInode, InodeKey(9), &v).ok());
  InodeRecord inode2;
  ASSERT_TRUE(inode2.DecodeFrom(v).ok());
  EXPECT_EQ(inode2, inode);
  ASSERT_TRUE(s->Get(Space::kDirent, NameKey(kRootIno, "file"), &v).ok());
  DirentRecord dirent2;
  ASSERT_TRUE(dirent2.DecodeFrom(v).ok());
  EXPECT_EQ(dirent2, dirent);
  ASSERT_TRUE(s->Get(Space::kDirCookie, CookieKey(kRootIno, kFirstDirCookie), &v).ok());
  EXPECT_EQ(v, "file");
  ASSERT_TRUE(s->Get(Space::kSymlink, InodeKey(10), &v).ok());
  EXPECT_EQ(v, "/target/of/link");
  ASSERT_TRUE(s->Get(Space::kXattr, NameKey(9, "user.k"), &v).ok());
  EXPECT_EQ(v, std::string("v\0w", 3));
  ASSERT_TRUE(s->Get(Space::kOrphan, InodeKey(11), &v).ok());
  EXPECT_EQ(v, "");

  // Overwrite and delete.
  WriteBatch b2;
  b2.Put(Space::kSymlink, InodeKey(10), "other");
  b2.Delete(Space::kOrphan, InodeKey(11));
  ASSERT_TRUE(s->Write(b2).ok());
  ASSERT_TRUE(s->Get(Space::kSymlink, InodeKey(10), &v).ok());
  EXPECT_EQ(v, "other");
  EXPECT_TRUE(s->Get(Space::kOrphan, InodeKey(11), &v).IsNotFound());
  // Spaces are separate: the same key in another space is absent.
  EXPECT_TRUE(s->Get(Space::kXattr, InodeKey(10), &v).IsNotFound());
}

TYPED_TEST(BlockStoreConformance, AnAppendedBatchAppliesAfterTheFirstInOneWrite) {
  BlockStore* s = this->store_.get();
  const std::string block = RandomBlock(3);
  std::string tuples(s->tuple_bytes_per_block(), '\0');
  s->GenerateBlockPi(9, 0, block.data(), tuples.data());
  WriteBatch first, second;
  first.Put(Space::kSymlink, InodeKey(10), "first");
  first.Put(Space::kOrphan, InodeKey(11), "");
  second.Put(Space::kSymlink, InodeKey(10), "second");  // later operations win
  second.Delete(Space::kOrphan, InodeKey(11));
  second.PutBlockCopy(9, 0, block.data(), tuples.data(), tuples.size());
  first.Append(second);
  EXPECT_EQ(first.Count(), 5u);
  ASSERT_TRUE(s->Write(first).ok());
  std::string v;
  ASSERT_TRUE(s->Get(Space::kSymlink, InodeKey(10), &v).ok());
  EXPECT_EQ(v, "second");
  EXPECT_TRUE(s->Get(Space::kOrphan, InodeKey(11), &v).IsNotFound());
  EXPECT_EQ(ReadBlock(s, 9, 0), block);
}

TYPED_TEST(BlockStoreConformance, ScanIsOrderedAndBounded) {
  BlockStore* s = this->store_.get();
  WriteBatch b;
  for (const char* name : {"b", "a", "c", "aa"}) b.Put(Space::kDirent, NameKey(5, name), name);
  b.Put(Space::kDirent, NameKey(4, "z"), "z");
  b.Put(Space::kDirent, NameKey(6, "a"), "a");
  ASSERT_TRUE(s->Write(b).ok());
  std::vector<std::string> names;
  ASSERT_TRUE(s->Scan(Space::kDirent, NamePrefixBegin(5), NamePrefixEnd(5),
                      [&](std::string_view k, std::string_view) {
                        uint64_t ino;
                        std::string_view name;
                        EXPECT_TRUE(ParseNameKey(k, &ino, &name));
                        names.emplace_back(name);
                        return true;
                      })
                  .ok());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "aa", "b", "c"}));
  // Stopping early.
  int seen = 0;
  ASSERT_TRUE(s->Scan(Space::kDirent, "", "", [&](std::string_view, std::string_view) {
                 return ++seen < 2;
               }).ok());
  EXPECT_EQ(seen, 2);
}

TYPED_TEST(BlockStoreConformance, BlocksRoundTripAndHolesReadAsZeros) {
  BlockStore* s = this->store_.get();
  const uint64_t ino = 20;
  std::string b0 = RandomBlock(1), b5 = RandomBlock(2);
  ASSERT_TRUE(PutBlock(s, ino, 0, b0).ok());
  ASSERT_TRUE(PutBlock(s, ino, 5, b5).ok());
  EXPECT_EQ(ReadBlock(s, ino, 0), b0);
  EXPECT_EQ(ReadBlock(s, ino, 5), b5);
  EXPECT_EQ(ReadBlock(s, ino, 3), std::nullopt);
  EXPECT_EQ(ReadBlock(s, ino + 1, 0), std::nullopt);

  // One multi-block read across data and holes.
  std::string buf(7 * kBlockSize, 'x');
  bool present[7];
  ASSERT_TRUE(s->ReadBlocks(ino, 0, 7, buf.data(), present).ok());
  for (int i = 0; i < 7; i++) {
    EXPECT_EQ(present[i], i == 0 || i == 5) << i;
    std::string got = buf.substr(i * kBlockSize, kBlockSize);
    if (i == 0)
      EXPECT_EQ(got, b0);
    else if (i == 5)
      EXPECT_EQ(got, b5);
    else
      EXPECT_EQ(got, std::string(kBlockSize, '\0')) << i;
  }
  std::string raw_data, raw_tuples;
  ASSERT_TRUE(s->ReadBlockRaw(ino, 5, &raw_data, &raw_tuples).ok());
  EXPECT_EQ(raw_data, b5);
  EXPECT_EQ(raw_tuples, Tuples(*s, ino, 5, b5));
  EXPECT_TRUE(s->ReadBlockRaw(ino, 4, &raw_data, &raw_tuples).IsNotFound());

  StoreCounters c = s->counters();
  EXPECT_EQ(c.blocks_written, 2u);
  EXPECT_GE(c.blocks_read, 4u);
}

// The four ways a write can carry bad PI: each is rejected before anything is persisted.
enum class Damage { kDataByte, kGuard, kRefTag, kAppTag };
const char* DamageField(Damage d) {
  switch (d) {
    case Damage::kDataByte:
    case Damage::kGuard:
      return "guard";
    case Damage::kRefTag:
      return "reference tag";
    case Damage::kAppTag:
      return "application tag";
  }
  return "";
}

// Data and tuples for block (ino, index) damaged in way d.
void MakeDamaged(const BlockStore& s, Damage d, uint64_t ino, uint64_t index, std::string* data,
                 std::string* tuples) {
  *data = RandomBlock(ino * 1000 + index);
  switch (d) {
    case Damage::kDataByte:
      *tuples = Tuples(s, ino, index, *data);
      (*data)[1234] ^= 0x10;
      break;
    case Damage::kGuard:
      *tuples = Tuples(s, ino, index, *data);
      (*tuples)[1] ^= 0x01;
      break;
    case Damage::kRefTag:  // the tuples of another place in the same file
      *tuples = Tuples(s, ino, index + 1, *data);
      break;
    case Damage::kAppTag:  // the tuples of the same place in another file
      *tuples = Tuples(s, ino + 1, index, *data);
      break;
  }
}

TYPED_TEST(BlockStoreConformance, WriteRejectsEachKindOfBadPi) {
  BlockStore* s = this->store_.get();
  const uint64_t ino = 30, index = 3;
  uint64_t rejected = 0;
  for (Damage d : {Damage::kDataByte, Damage::kGuard, Damage::kRefTag, Damage::kAppTag}) {
    SCOPED_TRACE(DamageField(d));
    std::string data, tuples;
    MakeDamaged(*s, d, ino, index, &data, &tuples);
    std::string good = RandomBlock(99);
    std::string good_tuples = Tuples(*s, ino, 0, good);
    WriteBatch b;
    b.PutBlock(ino, 0, good.data(), good_tuples.data());
    b.Put(Space::kXattr, NameKey(ino, "user.marker"), "x");
    b.PutBlock(ino, index, data.data(), tuples.data());
    Status st = s->Write(b);
    ASSERT_TRUE(st.IsProtection()) << st.ToString();
    EXPECT_NE(st.message().find("inode 30"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("offset " + std::to_string(index * kBlockSize)), std::string::npos)
        << st.message();
    EXPECT_NE(st.message().find(DamageField(d)), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("expected"), std::string::npos);
    EXPECT_NE(st.message().find("received"), std::string::npos);
    EXPECT_EQ(s->counters().protection_errors_write, ++rejected);
    // All or nothing: neither the good block nor the record of the same batch is there.
    EXPECT_EQ(ReadBlock(s, ino, 0), std::nullopt);
    EXPECT_EQ(ReadBlock(s, ino, index), std::nullopt);
    std::string v;
    EXPECT_TRUE(s->Get(Space::kXattr, NameKey(ino, "user.marker"), &v).IsNotFound());
  }
}

TYPED_TEST(BlockStoreConformance, ReadDetectsEachKindOfBadPiStoredBelowTheChecks) {
  BlockStore* s = this->store_.get();
  const uint64_t ino = 40;
  uint64_t detected = 0;
  uint64_t index = 10;
  for (Damage d : {Damage::kDataByte, Damage::kGuard, Damage::kRefTag, Damage::kAppTag}) {
    SCOPED_TRACE(DamageField(d));
    index++;
    std::string data, tuples;
    MakeDamaged(*s, d, ino, index, &data, &tuples);
    WriteBatch b;
    b.PutBlock(ino, index, data.data(), tuples.data());
    ASSERT_TRUE(s->Write(b, WriteOptions{.verify_pi = false}).ok());
    // A good neighbour block.
    ASSERT_TRUE(PutBlock(s, ino, index + 100, RandomBlock(index)).ok());

    std::string buf(kBlockSize, 'x');
    Status st = s->ReadBlocks(ino, index, 1, buf.data());
    ASSERT_TRUE(st.IsProtection()) << st.ToString();
    EXPECT_NE(st.message().find("inode 40"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("offset " + std::to_string(index * kBlockSize)), std::string::npos)
        << st.message();
    EXPECT_NE(st.message().find(DamageField(d)), std::string::npos) << st.message();
    // Never the bytes: the buffer holds no part of the damaged block.
    EXPECT_EQ(buf, std::string(kBlockSize, '\0'));
    EXPECT_EQ(s->counters().protection_errors_read, ++detected);
    // The same failure inside a multi-block read.
    std::string big(3 * kBlockSize, 'x');
    EXPECT_TRUE(s->ReadBlocks(ino, index - 1, 3, big.data()).IsProtection());
    detected++;
    EXPECT_EQ(ReadBlock(s, ino, index + 100), RandomBlock(index));
    // Raw reads still show what is stored, for fsck and inspect.
    std::string rd, rt;
    ASSERT_TRUE(s->ReadBlockRaw(ino, index, &rd, &rt).ok());
    EXPECT_EQ(rd, data);
    EXPECT_EQ(rt, tuples);
  }
}

TYPED_TEST(BlockStoreConformance, RangeDeletion) {
  BlockStore* s = this->store_.get();
  const uint64_t ino = 50;
  for (uint64_t i = 0; i < 10; i++) ASSERT_TRUE(PutBlock(s, ino, i, RandomBlock(i)).ok());
  ASSERT_TRUE(PutBlock(s, ino + 1, 0, RandomBlock(100)).ok());
  ASSERT_TRUE(PutBlock(s, ino - 1, 9, RandomBlock(101)).ok());
  WriteBatch b;
  b.DeleteBlocks(ino, 3, 7);
  ASSERT_TRUE(s->Write(b).ok());
  for (uint64_t i = 0; i < 10; i++) {
    if (i >= 3 && i < 7)
      EXPECT_EQ(ReadBlock(s, ino, i), std::nullopt) << i;
    else
      EXPECT_EQ(ReadBlock(s, ino, i), RandomBlock(i)) << i;
  }
  WriteBatch all;
  all.DeleteBlocks(ino, 8, UINT64_MAX);
  ASSERT_TRUE(s->Write(all).ok());
  EXPECT_EQ(ReadBlock(s, ino, 7), RandomBlock(7));
  EXPECT_EQ(ReadBlock(s, ino, 8), std::nullopt);
  EXPECT_EQ(ReadBlock(s, ino, 9), std::nullopt);
  // Neighbouring inodes are untouched.
  EXPECT_EQ(ReadBlock(s, ino + 1, 0), RandomBlock(100));
  EXPECT_EQ(ReadBlock(s, ino - 1, 9), RandomBlock(101));

  // DeleteRange over a metadata space.
  WriteBatch names;
  for (const char* n : {"a", "b", "c"}) names.Put(Space::kXattr, NameKey(ino, n), n);
  names.Put(Space::kXattr, NameKey(ino + 1, "a"), "a");
  ASSERT_TRUE(s->Write(names).ok());
  WriteBatch del;
  del.DeleteRange(Space::kXattr, NamePrefixBegin(ino), NamePrefixEnd(ino));
  ASSERT_TRUE(s->Write(del).ok());
  std::string v;
  EXPECT_TRUE(s->Get(Space::kXattr, NameKey(ino, "b"), &v).IsNotFound());
  EXPECT_TRUE(s->Get(Space::kXattr, NameKey(ino + 1, "a"), &v).ok());
}

TYPED_TEST(BlockStoreConformance, BlockMapFollowsEveryBlock) {
  BlockStore* s = this->store_.get();
  const uint64_t ino = 55;
  for (uint64_t i : {0, 1, 2, 7, 8, 100}) ASSERT_TRUE(PutBlock(s, ino, i, RandomBlock(i)).ok());
  ASSERT_TRUE(PutBlock(s, ino + 1, 3, RandomBlock(3)).ok());
  uint64_t n = 0;
  ASSERT_TRUE(s->CountBlocks(ino, 0, UINT64_MAX, &n).ok());
  EXPECT_EQ(n, 6u);
  ASSERT_TRUE(s->CountBlocks(ino, 2, 8, &n).ok());
  EXPECT_EQ(n, 2u);  // 2 and 7
  WriteBatch b;
  b.DeleteBlocks(ino, 1, 8);
  ASSERT_TRUE(PutBlock(s, ino, 1, RandomBlock(1)).ok());  // overwrite: still one entry
  ASSERT_TRUE(s->Write(b).ok());
  std::vector<uint64_t> seen;
  ASSERT_TRUE(s->ScanBlockMap(ino, 0, UINT64_MAX, [&](uint64_t i) {
                 seen.push_back(i);
                 return true;
               }).ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{0, 8, 100}));
  ASSERT_TRUE(s->CountBlocks(ino + 1, 0, UINT64_MAX, &n).ok());
  EXPECT_EQ(n, 1u);
}

// ZERO_RANGE's batch: the removal of blocks, then preallocated markers for all of them, in one
// batch. Past kPointDeleteLimit blocks the removal is a range deletion, which the later markers
// in the same batch must survive.
TYPED_TEST(BlockStoreConformance, UnwrittenMarkersAfterARemovalInOneBatchLeaveZerosAllocated) {
  BlockStore* s = this->store_.get();
  const uint64_t ino = 57;
  for (const uint64_t n : {uint64_t{8}, BlockStore::kPointDeleteLimit + 8}) {
    SCOPED_TRACE(n);
    WriteBatch fill;
    for (uint64_t i = 0; i < n; i++) {
      const std::string data = RandomBlock(i);
      fill.PutBlockCopy(ino, i, data.data(), Tuples(*s, ino, i, data).data(),
                        s->tuple_bytes_per_block());
    }
    ASSERT_TRUE(s->Write(fill).ok());
    WriteBatch zero;
    uint64_t removed = 0;
    ASSERT_TRUE(s->StageDeleteBlocks(ino, 1, n - 1, &zero, &removed).ok());
    EXPECT_EQ(removed, n - 2);
    s->StageUnwritten(ino, 1, n - 1, &zero);
    ASSERT_TRUE(s->Write(zero).ok());
    uint64_t count = 0;
    ASSERT_TRUE(s->CountBlocks(ino, 0, UINT64_MAX, &count).ok());
    EXPECT_EQ(count, n);
    ASSERT_TRUE(s->CountBlocks(ino, 0, UINT64_MAX, &count, /*written_only=*/true).ok());
    EXPECT_EQ(count, 2u);
    std::string buf(3 * kBlockSize, 'x');
    ASSERT_TRUE(s->ReadBlocks(ino, n - 2, 2, buf.data()).ok());
    EXPECT_EQ(buf.substr(0, kBlockSize), std::string(kBlockSize, '\0'));
    EXPECT_EQ(buf.substr(kBlockSize, kBlockSize), RandomBlock(n - 1));
  }
}

TYPED_TEST(BlockStoreConformance, PreallocatedBlocksReadAsZerosCountAndAreNotData) {
  BlockStore* s = this->store_.get();
  const uint64_t ino = 56;
  for (uint64_t i : {2, 5}) ASSERT_TRUE(PutBlock(s, ino, i, RandomBlock(i)).ok());
  // Blocks 0..7 allocated: 2 and 5 exist, the other six become preallocated, in batches of 4.
  uint64_t total = 0, at = 0;
  while (at < 8) {
    WriteBatch b;
    uint64_t added = 0, next = 0;
    ASSERT_TRUE(s->StagePreallocate(ino, at, 8, 4, &b, &added, &next).ok());
    EXPECT_LE(added, 4u);
    EXPECT_GT(next, at);
    ASSERT_TRUE(s->Write(b).ok());
    total += added;
    at = next;
  }
  EXPECT_EQ(total, 6u);
  uint64_t n = 0;
  ASSERT_TRUE(s->CountBlocks(ino, 0, UINT64_MAX, &n).ok());
  EXPECT_EQ(n, 8u);  // allocated: st_blocks counts them
  ASSERT_TRUE(s->CountBlocks(ino, 0, UINT64_MAX, &n, /*written_only=*/true).ok());
  EXPECT_EQ(n, 2u);  // holding data: SEEK_DATA sees these
  // Preallocating again adds nothing.
  WriteBatch again;
  uint64_t added = 0, next = 0;
  ASSERT_TRUE(s->StagePreallocate(ino, 0, 8, 100, &again, &added, &next).ok());
  EXPECT_EQ(added, 0u);
  EXPECT_EQ(next, 8u);
  // They read as zeros, without error; written blocks read back as written.
  std::string buf(8 * kBlockSize, 'x');
  bool present[8];
  ASSERT_TRUE(s->ReadBlocks(ino, 0, 8, buf.data(), present).ok());
  for (uint64_t i = 0; i < 8; i++) {
    const std::string want = (i == 2 || i == 5) ? RandomBlock(i) : std::string(kBlockSize, '\0');
    EXPECT_EQ(buf.substr(i * kBlockSize, kBlockSize), want) << i;
  }
  BlockState state;
  ASSERT_TRUE(s->StateOfBlock(ino, 3, &state).ok());
  EXPECT_EQ(state, BlockState::kHole);  // not lost: a scrub must not report it
  // Writing one makes it data; deleting the range removes both kinds.
  ASSERT_TRUE(PutBlock(s, ino, 3, RandomBlock(3)).ok());
  ASSERT_TRUE(s->CountBlocks(ino, 0, UINT64_MAX, &n, /*written_only=*/true).ok());
  EXPECT_EQ(n, 3u);
  ASSERT_TRUE(s->CountBlocks(ino, 0, UINT64_MAX, &n).ok());
  EXPECT_EQ(n, 8u);
  WriteBatch del;
  uint64_t removed = 0;
  ASSERT_TRUE(s->StageDeleteBlocks(ino, 0, 8, &del, &removed).ok());
  EXPECT_EQ(removed, 8u);
  ASSERT_TRUE(s->Write(del).ok());
  ASSERT_TRUE(s->CountBlocks(ino, 0, UINT64_MAX, &n).ok());
  EXPECT_EQ(n, 0u);
}

TYPED_TEST(BlockStoreConformance, ADroppedBlockIsDetectedNotReadAsAHole) {
  BlockStore* s = this->store_.get();
  const uint64_t ino = 57;
  for (uint64_t i = 0; i < 4; i++) ASSERT_TRUE(PutBlock(s, ino, i, RandomBlock(i)).ok());
  WriteBatch drop;  // below the checks: the data record goes, its map entry stays
  drop.Delete(Space::kData, DataKey(ino, 2));
  ASSERT_TRUE(s->Write(drop).ok());
  std::string buf(4 * kBlockSize, 'x');
  Status st = s->ReadBlocks(ino, 0, 4, buf.data());
  ASSERT_TRUE(st.IsCorruption()) << st.ToString();
  EXPECT_NE(st.message().find("inode 57 offset 8192"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("block missing"), std::string::npos) << st.message();
  EXPECT_EQ(buf, std::string(4 * kBlockSize, '\0'));
  EXPECT_EQ(s->counters().protection_errors_read, 1u);
  EXPECT_EQ(ReadBlock(s, ino, 3), RandomBlock(3));
  EXPECT_EQ(ReadBlock(s, ino, 9), std::nullopt);  // a real hole still reads as zeros
}

TYPED_TEST(BlockStoreConformance, ReopenKeepsEverythingWritten) {
  BlockStore* s = this->store_.get();
  auto uuid = s->superblock().uuid;
  ASSERT_TRUE(PutBlock(s, 80, 0, RandomBlock(80)).ok());
  WriteBatch b;
  b.Put(Space::kSymlink, InodeKey(80), "t");
  ASSERT_TRUE(s->Write(b).ok());
  ASSERT_TRUE(s->Sync().ok());
  Dump before = DumpStore(s);
  this->Reopen();
  s = this->store_.get();
  EXPECT_EQ(s->superblock().uuid, uuid);
  EXPECT_EQ(DumpStore(s), before);
  EXPECT_EQ(ReadBlock(s, 80, 0), RandomBlock(80));
}

TYPED_TEST(BlockStoreConformance, EveryProfileRoundTripsAndRejects) {
  for (const char* text : {"crc16-t10dif,type1,512", "crc16-t10dif,type3,4096",
                           "crc64-nvme,type1,512", "xxh3,type1,4096", "xxh3,type3,512"}) {
    SCOPED_TRACE(text);
    TypeParam env;
    CreateOptions o;
    ASSERT_TRUE(pi::Profile::Parse(text, &o.pi).ok());
    std::unique_ptr<BlockStore> store;
    ASSERT_TRUE(env.Create(o, &store).ok());
    EXPECT_EQ(store->profile(), o.pi);
    EXPECT_EQ(store->tuple_bytes_per_block(), (kBlockSize / o.pi.interval) * o.pi.tuple_size());
    ASSERT_TRUE(PutBlock(store.get(), 5, 2, RandomBlock(5)).ok());
    EXPECT_EQ(ReadBlock(store.get(), 5, 2), RandomBlock(5));
    std::string data, tuples;
    MakeDamaged(*store, Damage::kDataByte, 5, 3, &data, &tuples);
    WriteBatch b;
    b.PutBlock(5, 3, data.data(), tuples.data());
    EXPECT_TRUE(store->Write(b).IsProtection());
    // A misplaced block passes only where the reference tag is not checked (Type 3).
    MakeDamaged(*store, Damage::kRefTag, 5, 4, &data, &tuples);
    WriteBatch m;
    m.PutBlock(5, 4, data.data(), tuples.data());
    EXPECT_EQ(store->Write(m).IsProtection(), o.pi.type == pi::Type::kType1);
    ASSERT_TRUE(env.Reopen(&store).ok());
    EXPECT_EQ(store->profile(), o.pi);
  }
}

TYPED_TEST(BlockStoreConformance, ConcurrentWritersAndReaders) {
  BlockStore* s = this->store_.get();
  constexpr int kThreads = 4, kRounds = 200;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      const uint64_t ino = 100 + t;
      for (int r = 0; r < kRounds; r++) {
        uint64_t index = r % 8;
        std::string b = RandomBlock(ino * 7919 + r);
        if (!PutBlock(s, ino, index, b, /*sync=*/r % 50 == 0).ok()) failures++;
        std::string got(kBlockSize, '\0');
        if (!s->ReadBlocks(ino, index, 1, got.data()).ok() || got != b) failures++;
        // Read a neighbour's blocks too: they must always verify.
        std::string other(8 * kBlockSize, '\0');
        if (!s->ReadBlocks(100 + (t + 1) % kThreads, 0, 8, other.data()).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(s->counters().protection_errors_read, 0u);
  EXPECT_EQ(s->counters().blocks_written, uint64_t{kThreads * kRounds});
}

// ---- The fault store ----

template <class Env>
class FaultStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::unique_ptr<BlockStore> base;
    ASSERT_TRUE(env_.Create(CreateOptions(), &base).ok());
    fault_ = new FaultBlockStore(std::move(base));
    store_.reset(fault_);
  }
  Env env_;
  std::unique_ptr<BlockStore> store_;
  FaultBlockStore* fault_ = nullptr;
};

using BaseKinds = ::testing::Types<MemEnv, RocksEnv, RocksSegmentsEnv>;
TYPED_TEST_SUITE(FaultStoreTest, BaseKinds);

TYPED_TEST(FaultStoreTest, BitFlipsOnReadAreDetectedInDataAndEachTupleField) {
  BlockStore* s = this->store_.get();
  ASSERT_TRUE(PutBlock(s, 7, 1, RandomBlock(7)).ok());
  const size_t tuple0 = kBlockSize * 8;  // first bit of the first tuple
  const size_t ts = s->profile().tuple_size();
  struct Case {
    size_t bit;
    const char* field;
  } cases[] = {
      {5 * 8 + 3, "guard"},                            // a data bit
      {tuple0 + 7, "guard"},                           // a guard bit
      {tuple0 + (ts - 6) * 8 - 1, "application tag"},  // last bit of the application tag
      {tuple0 + ts * 8 - 1, "reference tag"},          // last bit of the reference tag
  };
  uint64_t detected = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    this->fault_->InjectBitFlipOnRead(7, 1, c.bit);
    std::string buf(kBlockSize, 'x');
    Status st = s->ReadBlocks(7, 1, 1, buf.data());
    ASSERT_TRUE(st.IsProtection()) << st.ToString();
    EXPECT_NE(st.message().find(c.field), std::string::npos) << st.message();
    EXPECT_EQ(buf, std::string(kBlockSize, '\0'));
    EXPECT_EQ(s->counters().protection_errors_read, ++detected);
    this->fault_->ClearFaults();
    EXPECT_EQ(ReadBlock(s, 7, 1), RandomBlock(7));
  }
}

TYPED_TEST(FaultStoreTest, InjectedErrorsReachTheCallerAndWriteNothing) {
  BlockStore* s = this->store_.get();
  this->fault_->InjectReadError(7, Status::IOError("injected read error"), 1);
  std::string buf(kBlockSize, '\0');
  EXPECT_TRUE(s->ReadBlocks(8, 0, 1, buf.data()).ok());  // another inode
  EXPECT_TRUE(s->ReadBlocks(7, 0, 1, buf.data()).IsIOError());
  EXPECT_TRUE(s->ReadBlocks(7, 0, 1, buf.data()).ok());  // count was 1

  this->fault_->InjectWriteError(7, Status::IOError("injected write error"), 1);
  EXPECT_TRUE(PutBlock(s, 8, 0, RandomBlock(8)).ok());
  EXPECT_TRUE(PutBlock(s, 7, 0, RandomBlock(7)).IsIOError());
  EXPECT_EQ(ReadBlock(s, 7, 0), std::nullopt);
  EXPECT_TRUE(PutBlock(s, 7, 0, RandomBlock(7)).ok());

  this->fault_->InjectSyncError(Status::NoSpace("injected sync error"), 2);
  EXPECT_TRUE(s->Sync().IsNoSpace());
  EXPECT_TRUE(PutBlock(s, 9, 0, RandomBlock(9), /*sync=*/true).IsNoSpace());
  EXPECT_EQ(ReadBlock(s, 9, 0), std::nullopt);
  EXPECT_TRUE(s->Sync().ok());
}

TYPED_TEST(FaultStoreTest, FailCallCountsEveryKindOfCallAndFailsOnlyTheOneNamed) {
  BlockStore* s = this->store_.get();
  FaultBlockStore* f = this->fault_;
  ASSERT_TRUE(PutBlock(s, 7, 0, RandomBlock(7)).ok());
  std::string v, buf(kBlockSize, '\0');
  const uint64_t start = f->calls();
  ASSERT_TRUE(s->Get(Space::kMeta, kNextInoKey, &v).ok());
  ASSERT_TRUE(
      s->Scan(Space::kInode, "", "", [](std::string_view, std::string_view) { return true; }).ok());
  ASSERT_TRUE(s->ReadBlocks(7, 0, 1, buf.data()).ok());
  ASSERT_TRUE(PutBlock(s, 8, 0, RandomBlock(8)).ok());
  ASSERT_TRUE(s->Sync().ok());
  EXPECT_EQ(f->calls() - start, 5u);
  for (uint64_t k = 1; k <= 5; k++) {
    SCOPED_TRACE(k);
    f->FailCall(k, Status::IOError("injected"));
    std::vector<bool> failed = {
        s->Get(Space::kMeta, kNextInoKey, &v).IsIOError(),
        s->Scan(Space::kInode, "", "", [](std::string_view, std::string_view) { return true; })
            .IsIOError(),
        s->ReadBlocks(7, 0, 1, buf.data()).IsIOError(),
        PutBlock(s, 9, k, RandomBlock(9)).IsIOError(),
        s->Sync().IsIOError(),
    };
    for (uint64_t i = 0; i < failed.size(); i++) EXPECT_EQ(failed[i], i + 1 == k) << i;
    EXPECT_EQ(ReadBlock(s, 9, k).has_value(), k != 4);  // the failed write wrote nothing
  }
  // A read-only view reads what the store holds now and refuses writes.
  ReadOnlyView view(f->base());
  EXPECT_TRUE(view.read_only());
  EXPECT_EQ(ReadBlock(&view, 8, 0), RandomBlock(8));
  EXPECT_TRUE(PutBlock(&view, 8, 0, RandomBlock(1)).IsReadOnly());
  EXPECT_EQ(ReadBlock(s, 8, 0), RandomBlock(8));
}

TYPED_TEST(FaultStoreTest, CrashDropsUnsyncedWritesAndKeepsSyncedOnes) {
  BlockStore* s = this->store_.get();
  ASSERT_TRUE(PutBlock(s, 7, 0, RandomBlock(1)).ok());
  ASSERT_TRUE(s->Sync().ok());
  ASSERT_TRUE(PutBlock(s, 7, 0, RandomBlock(2)).ok());  // overwrite, unsynced
  ASSERT_TRUE(PutBlock(s, 7, 1, RandomBlock(3)).ok());  // new, unsynced
  ASSERT_TRUE(PutBlock(s, 8, 0, RandomBlock(4), /*sync=*/true).ok());
  ASSERT_TRUE(PutBlock(s, 8, 1, RandomBlock(5)).ok());
  WriteBatch del;
  del.DeleteBlocks(8, 0, UINT64_MAX);
  ASSERT_TRUE(s->Write(del).ok());
  size_t dropped = 0;
  ASSERT_TRUE(this->fault_->SimulateCrash(&dropped).ok());
  EXPECT_EQ(dropped, 2u);
  EXPECT_EQ(ReadBlock(s, 7, 0), RandomBlock(2));  // made durable by the later sync write
  EXPECT_EQ(ReadBlock(s, 7, 1), RandomBlock(3));
  EXPECT_EQ(ReadBlock(s, 8, 0), RandomBlock(4));
  EXPECT_EQ(ReadBlock(s, 8, 1), std::nullopt);
}

// Random batches with random syncs and crashes: after each crash the store equals exactly the
// state at the last sync.
TYPED_TEST(FaultStoreTest, RandomCrashesNeverLoseSyncedWrites) {
  BlockStore* s = this->store_.get();
  std::mt19937_64 rng(12345);
  Dump durable = DumpStore(s);
  int crashes = 0;
  for (int round = 0; round < 300; round++) {
    WriteBatch b;
    std::vector<std::string> keep;  // block buffers must outlive Write
    int ops = 1 + rng() % 4;
    for (int i = 0; i < ops; i++) {
      uint64_t ino = 2 + rng() % 3, idx = rng() % 6;
      switch (rng() % 5) {
        case 0:
        case 1: {
          keep.push_back(RandomBlock(rng()));
          keep.push_back(Tuples(*s, ino, idx, keep.back()));
          b.PutBlock(ino, idx, keep[keep.size() - 2].data(), keep.back().data());
          break;
        }
        case 2:
          b.DeleteBlocks(ino, idx, idx + rng() % 3);
          break;
        case 3:
          b.Put(Space::kXattr, NameKey(ino, std::to_string(idx)), std::to_string(rng()));
          break;
        case 4:
          b.Delete(Space::kXattr, NameKey(ino, std::to_string(idx)));
          break;
      }
    }
    bool sync_write = rng() % 8 == 0;
    ASSERT_TRUE(s->Write(b, WriteOptions{.sync = sync_write}).ok());
    if (sync_write || rng() % 8 == 0) {
      if (!sync_write) {
        ASSERT_TRUE(s->Sync().ok());
      }
      durable = DumpStore(s);
      EXPECT_EQ(this->fault_->UnsyncedBatches(), 0u);
    }
    if (rng() % 10 == 0) {
      ASSERT_TRUE(this->fault_->SimulateCrash().ok());
      crashes++;
      ASSERT_EQ(DumpStore(s), durable) << "round " << round;
    }
  }
  EXPECT_GT(crashes, 10);
}

// ---- The RocksDB store's open errors ----

class RocksOpenTest : public ::testing::Test {
 protected:
  // Runs tests/storage/open_probe on `path` in a new process; returns its exit status.
  static int RunProbe(const std::string& path, std::string* out) {
    std::string cmd = std::string(OPEN_PROBE) + " '" + path + "' 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return -1;
    char buf[512];
    out->clear();
    while (fgets(buf, sizeof(buf), p) != nullptr) *out += buf;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string Create() {
    std::unique_ptr<RocksBlockStore> s;
    Status st = RocksBlockStore::Create(dir_.Sub("store"), CreateOptions(), RocksOptions(), &s);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return dir_.Sub("store");
  }
  Status Open(const std::string& path) {
    std::unique_ptr<RocksBlockStore> s;
    return RocksBlockStore::Open(path, RocksOptions(), &s);
  }
  // Replaces the superblock record with `value`, below every check.
  void ReplaceSuperblock(const std::string& path, const std::string& value) {
    std::unique_ptr<RocksBlockStore> s;
    ASSERT_TRUE(RocksBlockStore::Open(path, RocksOptions(), &s).ok());
    WriteBatch b;
    b.Put(Space::kMeta, kSuperblockKey, value);
    ASSERT_TRUE(s->Write(b, WriteOptions{.sync = true}).ok());
  }
  TempDir dir_;
};

TEST_F(RocksOpenTest, MissingStore) {
  Status s = Open(dir_.Sub("nothing"));
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find("mkfs.stablefs"), std::string::npos) << s.message();
}

TEST_F(RocksOpenTest, DirectoryThatIsNotAStore) {
  Status s = Open(dir_.path());
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("not a stablefs store"), std::string::npos) << s.message();
}

TEST_F(RocksOpenTest, CreateRefusesANonEmptyDirectory) {
  std::string path = Create();
  std::unique_ptr<RocksBlockStore> s;
  Status st = RocksBlockStore::Create(path, CreateOptions(), RocksOptions(), &s);
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_TRUE(Open(path).ok());  // and left the existing store alone
}

TEST_F(RocksOpenTest, StoreLockedByAnotherProcess) {
  std::string path = Create();
  std::unique_ptr<RocksBlockStore> held;
  ASSERT_TRUE(RocksBlockStore::Open(path, RocksOptions(), &held).ok());
  std::string out;
  int status = RunProbe(path, &out);
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("in use by another process"), std::string::npos) << out;
  held.reset();
  EXPECT_EQ(RunProbe(path, &out), 0) << out;
}

TEST_F(RocksOpenTest, AReadOnlyOpenWritesNothingAndExcludesWriters) {
  std::string path = Create();
  {
    std::unique_ptr<RocksBlockStore> s;
    ASSERT_TRUE(RocksBlockStore::Open(path, RocksOptions(), &s).ok());
    WriteBatch b;
    b.Put(Space::kXattr, "k", "unsynced-but-in-the-wal");
    ASSERT_TRUE(s->Write(b).ok());
  }
  const auto before = testing::FileStamps(path);
  RocksOptions ro;
  ro.read_only = true;
  std::unique_ptr<RocksBlockStore> s;
  Status st = RocksBlockStore::Open(path, ro, &s);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(s->read_only());
  std::string v;
  ASSERT_TRUE(s->Get(Space::kXattr, "k", &v).ok());  // the WAL, replayed into memory
  EXPECT_EQ(v, "unsynced-but-in-the-wal");
  WriteBatch b;
  b.Put(Space::kXattr, "k2", "v");
  EXPECT_TRUE(s->Write(b).IsReadOnly());
  EXPECT_TRUE(s->Trim().IsReadOnly());
  EXPECT_TRUE(s->Sync().ok());
  std::string out;
  EXPECT_EQ(RunProbe(path, &out), 2) << out;  // a writer waits for the reader
  EXPECT_NE(out.find("in use by another process"), std::string::npos) << out;
  s.reset();
  EXPECT_EQ(testing::FileStamps(path), before);
  EXPECT_EQ(RunProbe(path, &out), 0) << out;
}

TEST_F(RocksOpenTest, OtherFormatVersion) {
  std::string path = Create();
  Superblock sb;
  sb.format_version = kFormatVersion + 1;
  std::string v;
  sb.EncodeTo(&v);
  ReplaceSuperblock(path, v);
  Status s = Open(path);
  EXPECT_TRUE(s.IsNotSupported()) << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
}

TEST_F(RocksOpenTest, DamagedSuperblock) {
  std::string path = Create();
  std::string v;
  {
    std::unique_ptr<RocksBlockStore> s;
    ASSERT_TRUE(RocksBlockStore::Open(path, RocksOptions(), &s).ok());
    ASSERT_TRUE(s->Get(Space::kMeta, kSuperblockKey, &v).ok());
  }
  v[20] ^= 0x40;
  ReplaceSuperblock(path, v);
  Status s = Open(path);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("checksum"), std::string::npos) << s.message();
}

TEST_F(RocksOpenTest, MissingSuperblock) {
  std::string path = Create();
  {
    std::unique_ptr<RocksBlockStore> s;
    ASSERT_TRUE(RocksBlockStore::Open(path, RocksOptions(), &s).ok());
    WriteBatch b;
    b.Delete(Space::kMeta, kSuperblockKey);
    ASSERT_TRUE(s->Write(b, WriteOptions{.sync = true}).ok());
  }
  Status s = Open(path);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("superblock is missing"), std::string::npos) << s.message();
}

TEST_F(RocksOpenTest, DatabaseThatIsNotAStablefsStore) {
  // A RocksDB database without our column families.
  std::string path = dir_.Sub("other");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, path, &db).ok());
    delete db;
  }
  Status s = Open(path);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("not a stablefs store"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace stablefs
