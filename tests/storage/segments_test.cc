// Segments (format version 2): runs written once to the store's own files, read back with one
// preadv, verified on the way out, undone at recovery when a power cut took their data, and
// collected when their blocks are overwritten or deleted, also while readers and writers run.
#include "storage/segments.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <rocksdb/file_system.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "storage/crash_file_system.h"
#include "storage/rocks_block_store.h"
#include "tests/util/temp_dir.h"

namespace stablefs {
namespace {

using stablefs::testing::TempDir;

// Block `index` of inode `ino` as written in round `version`: the three numbers, then bytes
// derived from them, so that a reader can tell which write it sees and that it is whole.
std::string Block(uint64_t ino, uint64_t index, uint64_t version) {
  std::string b(kBlockSize, '\0');
  std::memcpy(&b[0], &ino, 8);
  std::memcpy(&b[8], &index, 8);
  std::memcpy(&b[16], &version, 8);
  std::mt19937_64 rng(ino * 1000003 + index * 7919 + version);
  for (size_t i = 24; i < b.size(); i += 8) {
    uint64_t r = rng();
    std::memcpy(&b[i], &r, 8);
  }
  return b;
}

// Writes blocks [first, first + n) of ino, round `version`, in one batch.
Status WriteRun(BlockStore* s, uint64_t ino, uint64_t first, size_t n, uint64_t version,
                bool sync = false) {
  std::vector<std::string> data(n), tuples(n);
  WriteBatch b;
  for (size_t i = 0; i < n; i++) {
    data[i] = Block(ino, first + i, version);
    tuples[i].resize(s->tuple_bytes_per_block());
    s->GenerateBlockPi(ino, first + i, data[i].data(), tuples[i].data());
    b.PutBlock(ino, first + i, data[i].data(), tuples[i].data());
  }
  return s->Write(b, WriteOptions{.sync = sync});
}

// Reads blocks [first, first + n) of ino and checks each is round `version` (or any round, with
// version UINT64_MAX, as long as it is one whole write).
void ExpectRun(BlockStore* s, uint64_t ino, uint64_t first, size_t n, uint64_t version) {
  std::string got(n * kBlockSize, '\0');
  Status st = s->ReadBlocks(ino, first, n, got.data());
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (size_t i = 0; i < n; i++) {
    uint64_t v;
    std::memcpy(&v, &got[i * kBlockSize + 16], 8);
    if (version != UINT64_MAX) {
      ASSERT_EQ(v, version) << "block " << first + i;
    }
    ASSERT_EQ(got.substr(i * kBlockSize, kBlockSize), Block(ino, first + i, v))
        << "block " << first + i;
  }
}

class SegmentsTest : public ::testing::Test {
 protected:
  RocksOptions Options() {
    RocksOptions o;
    o.segment_bytes = segment_bytes_;
    o.collect_segments = collect_;
    // Closing the store stands for a crash here: the WAL keeps what it holds.
    o.flush_on_close = false;
    return o;
  }
  void Create(const CreateOptions& co = CreateOptions()) {
    Status s = RocksBlockStore::Create(path_, co, Options(), &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void Reopen() {
    store_.reset();
    Status s = RocksBlockStore::Open(path_, Options(), &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::string SegmentFile(uint32_t n) { return Segments::FileName(path_ + "/segments", n); }
  uint64_t SegmentBytes() { return store_->segments()->bytes(); }

  TempDir dir_;
  const std::string path_ = dir_.Sub("store");
  uint64_t segment_bytes_ = 0;
  bool collect_ = false;
  std::unique_ptr<RocksBlockStore> store_;
};

TEST_F(SegmentsTest, LongRunsGoToASegmentOnceAndShortOnesStayInTheDataFamily) {
  Create();
  ASSERT_NE(store_->segments(), nullptr);
  EXPECT_EQ(store_->superblock().format_version, 2u);
  const uint64_t empty = SegmentBytes();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 64, 1).ok());
  // The header, one run header, 64 blocks: nothing else.
  EXPECT_EQ(SegmentBytes(), empty + kBlockSize * (1 + 1 + 64));
  std::string where;
  ASSERT_TRUE(store_->BlockLocation(5, 10, &where).ok());
  EXPECT_EQ(where, "segment 1 slot 12 (segments/00000001.seg, byte 49152)");
  const uint64_t after_run = SegmentBytes();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 100, 4, 1).ok());
  EXPECT_EQ(SegmentBytes(), after_run);
  ExpectRun(store_.get(), 5, 0, 64, 1);
  ExpectRun(store_.get(), 5, 100, 4, 1);
  ASSERT_TRUE(store_->BlockLocation(5, 101, &where).ok());
  EXPECT_EQ(where, "the data family (whole block)");
  EXPECT_TRUE(store_->BlockLocation(5, 99, &where).IsNotFound());
  // A raw Get and Scan of the data family give data || tuples for both kinds.
  std::string raw;
  ASSERT_TRUE(store_->Get(Space::kData, DataKey(5, 10), &raw).ok());
  EXPECT_EQ(raw.size(), kBlockSize + store_->tuple_bytes_per_block());
  EXPECT_EQ(raw.substr(0, kBlockSize), Block(5, 10, 1));
  EXPECT_TRUE(store_->VerifyBlockPi(5, 10, raw.data(), raw.data() + kBlockSize).ok());
  int scanned = 0;
  ASSERT_TRUE(store_
                  ->Scan(Space::kData, DataKey(5, 0), DataKey(6, 0),
                         [&](std::string_view k, std::string_view v) {
                           uint64_t ino, index;
                           EXPECT_TRUE(ParseDataKey(k, &ino, &index));
                           EXPECT_EQ(v.substr(0, kBlockSize), Block(5, index, 1));
                           scanned++;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(scanned, 68);
  Reopen();
  ExpectRun(store_.get(), 5, 0, 64, 1);
  ExpectRun(store_.get(), 5, 100, 4, 1);
}

TEST_F(SegmentsTest, EveryProtectionFormatRoundTrips) {
  for (const char* p : {"crc16-t10dif,type1,512", "crc64-nvme,type3,4096", "xxh3,type1,512"}) {
    SCOPED_TRACE(p);
    CreateOptions co;
    ASSERT_TRUE(pi::Profile::Parse(p, &co.pi).ok());
    store_.reset();
    std::filesystem::remove_all(path_);
    Create(co);
    ASSERT_TRUE(WriteRun(store_.get(), 9, 3, 40, 2, /*sync=*/true).ok());
    ExpectRun(store_.get(), 9, 3, 40, 2);
    Reopen();
    ExpectRun(store_.get(), 9, 3, 40, 2);
  }
}

TEST_F(SegmentsTest, AFormatVersion1StoreKeepsEveryBlockInTheDataFamily) {
  CreateOptions co;
  co.format_version = 1;
  Create(co);
  EXPECT_EQ(store_->segments(), nullptr);
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 64, 1).ok());
  Reopen();
  EXPECT_EQ(store_->superblock().format_version, 1u);
  EXPECT_EQ(store_->segments(), nullptr);
  EXPECT_FALSE(std::filesystem::exists(path_ + "/segments"));
  ExpectRun(store_.get(), 5, 0, 64, 1);
}

// A store holds a descriptor per table and segment file: opening one lifts the soft limit of
// open files to the hard one. (In this process: a child forked from it could not start threads
// under ThreadSanitizer.)
TEST_F(SegmentsTest, OpeningAStoreRaisesTheOpenFileLimitToTheHardLimit) {
  Create();
  store_.reset();
  struct rlimit original;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &original), 0);
  if (original.rlim_max <= 256) GTEST_SKIP() << "hard limit " << original.rlim_max;
  struct rlimit low = original;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  Reopen();
  struct rlimit now;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, original.rlim_max);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
}

TEST_F(SegmentsTest, AnUnknownFormatVersionCreatesNothing) {
  for (uint32_t v : {0u, kFormatVersion + 1}) {
    CreateOptions co;
    co.format_version = v;
    Status s = RocksBlockStore::Create(path_, co, Options(), &store_);
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.message().find("format version " + std::to_string(v)), std::string::npos)
        << s.message();
    EXPECT_FALSE(std::filesystem::exists(path_));
  }
}

TEST_F(SegmentsTest, DamageInASegmentIsAProtectionErrorNamingTheBlock) {
  Create();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 32, 1, /*sync=*/true).ok());
  // Block 7 is slot 2 + 7 of segment 1 (slot 0 the header, slot 1 the run header).
  {
    int fd = ::open(SegmentFile(1).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    const off_t off = (2 + 7) * kBlockSize + 100;
    ASSERT_EQ(pread(fd, &c, 1, off), 1);
    c ^= 0x10;
    ASSERT_EQ(pwrite(fd, &c, 1, off), 1);
    close(fd);
  }
  std::string got(32 * kBlockSize, 'x');
  Status s = store_->ReadBlocks(5, 0, 32, got.data());
  ASSERT_TRUE(s.IsProtection()) << s.ToString();
  EXPECT_NE(s.message().find("inode 5"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(std::to_string(7 * kBlockSize)), std::string::npos) << s.message();
  EXPECT_EQ(got, std::string(got.size(), '\0'));  // no byte of a failed read reaches the caller
  EXPECT_EQ(store_->counters().protection_errors_read, 1u);
  ExpectRun(store_.get(), 5, 8, 24, 1);  // the blocks after it are fine
}

TEST_F(SegmentsTest, ASegmentCutShortIsCorruptionNotZeros) {
  Create();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 32, 1, /*sync=*/true).ok());
  ASSERT_EQ(truncate(SegmentFile(1).c_str(), (2 + 20) * kBlockSize), 0);
  std::string got(kBlockSize, 'x');
  Status s = store_->ReadBlocks(5, 25, 1, got.data());
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("inode 5"), std::string::npos) << s.message();
  EXPECT_EQ(got, std::string(kBlockSize, '\0'));
}

// A segment file gone from under the store: its blocks read as Corruption (EIO at the mount),
// and a raw scan (fsck, scrub) still returns them, as zeros that fail their tuples' check.
TEST_F(SegmentsTest, AMissingSegmentIsCorruptionAndScansStillSeeItsBlocks) {
  Create();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 32, 1, /*sync=*/true).ok());
  store_.reset();
  ASSERT_TRUE(std::filesystem::remove(SegmentFile(1)));
  Reopen();
  std::string got(kBlockSize, 'x');
  Status s = store_->ReadBlocks(5, 3, 1, got.data());
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("inode 5"), std::string::npos) << s.message();
  EXPECT_EQ(got, std::string(kBlockSize, '\0'));
  int scanned = 0, failing = 0;
  ASSERT_TRUE(
      store_
          ->Scan(Space::kData, "", "",
                 [&](std::string_view k, std::string_view v) {
                   uint64_t ino, index;
                   EXPECT_TRUE(ParseDataKey(k, &ino, &index));
                   scanned++;
                   failing +=
                       !store_->VerifyBlockPi(ino, index, v.data(), v.data() + kBlockSize).ok();
                   return true;
                 })
          .ok());
  EXPECT_EQ(scanned, 32);
  EXPECT_EQ(failing, 32);
  std::string raw;
  EXPECT_TRUE(store_->Get(Space::kData, DataKey(5, 3), &raw).IsCorruption());
  // The lost segment's number is not handed out again: new runs go to a new file, and the old
  // pointers never reach their data.
  ASSERT_TRUE(WriteRun(store_.get(), 6, 0, 32, 1, /*sync=*/true).ok());
  EXPECT_FALSE(std::filesystem::exists(SegmentFile(1)));
  EXPECT_TRUE(store_->ReadBlocks(5, 3, 1, got.data()).IsCorruption());
  ExpectRun(store_.get(), 6, 0, 32, 1);
}

// A write not yet synced whose segment data never reached the disk, while its WAL record did
// (the kernel may write the WAL's pages first): the next open undoes the whole write.
TEST_F(SegmentsTest, AnUnsyncedWriteWhoseSegmentDataWasLostIsUndoneAtRecovery) {
  Create();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 32, 1, /*sync=*/true).ok());
  const uint64_t synced_size = std::filesystem::file_size(SegmentFile(1));
  // The second write also changes a record, which must be undone with it.
  {
    std::vector<std::string> data(32), tuples(32);
    WriteBatch b;
    b.Put(Space::kXattr, "size", "second");
    for (size_t i = 0; i < 32; i++) {
      data[i] = Block(5, i, 2);
      tuples[i].resize(store_->tuple_bytes_per_block());
      store_->GenerateBlockPi(5, i, data[i].data(), tuples[i].data());
      b.PutBlock(5, i, data[i].data(), tuples[i].data());
    }
    ASSERT_TRUE(store_->Write(b).ok());
  }
  ASSERT_TRUE(WriteRun(store_.get(), 6, 0, 4, 1).ok());  // inline: unaffected
  ExpectRun(store_.get(), 5, 0, 32, 2);
  store_.reset();  // closes without a flush: the writes are in the WAL only
  ASSERT_EQ(truncate(SegmentFile(1).c_str(), static_cast<off_t>(synced_size + kBlockSize)), 0);
  Reopen();
  EXPECT_EQ(store_->recovery_dropped_writes(), 1u);
  ExpectRun(store_.get(), 5, 0, 32, 1);
  ExpectRun(store_.get(), 6, 0, 4, 1);
  std::string v;
  EXPECT_TRUE(store_->Get(Space::kXattr, "size", &v).IsNotFound());
  // What survives is consistent: another open changes nothing.
  Reopen();
  EXPECT_EQ(store_->recovery_dropped_writes(), 0u);
  ExpectRun(store_.get(), 5, 0, 32, 1);
}

// A power cut (storage/crash_file_system.h: only synced bytes and names survive) right after a
// Sync(): the run is whole, and its segment data was synced, not only the WAL that points to it.
// Without the Sync() the run is gone as a unit.
TEST_F(SegmentsTest, ASyncedWriteSurvivesAPowerCutAndAnUnsyncedOneGoesWhole) {
  for (bool sync : {true, false}) {
    SCOPED_TRACE(sync ? "synced" : "not synced");
    store_.reset();
    std::filesystem::remove_all(path_);
    auto fs = std::make_shared<CrashFileSystem>();
    std::unique_ptr<rocksdb::Env> env = NewCrashEnv(fs);
    RocksOptions o = Options();
    o.env = env.get();
    ASSERT_TRUE(RocksBlockStore::Create(path_, CreateOptions(), o, &store_).ok());
    ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 32, 1).ok());
    if (sync) {
      ASSERT_TRUE(store_->Sync().ok());
    }
    fs->CutPower();
    store_.reset();
    ASSERT_TRUE(fs->RecoverFromPowerCut().ok());
    Reopen();
    std::string got(32 * kBlockSize, '\0');
    bool present[32];
    Status s = store_->ReadBlocks(5, 0, 32, got.data(), present);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(std::count(present, present + 32, true), sync ? 32 : 0);
    if (sync) ExpectRun(store_.get(), 5, 0, 32, 1);
  }
}

TEST_F(SegmentsTest, SegmentsOfAnotherStoreAreRefused) {
  Create();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 32, 1, /*sync=*/true).ok());
  store_.reset();
  const std::string other = dir_.Sub("other");
  {
    std::unique_ptr<RocksBlockStore> o;
    ASSERT_TRUE(RocksBlockStore::Create(other, CreateOptions(), Options(), &o).ok());
  }
  std::filesystem::copy_file(SegmentFile(1), Segments::FileName(other + "/segments", 1));
  std::unique_ptr<RocksBlockStore> o;
  Status s = RocksBlockStore::Open(other, Options(), &o);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("another store"), std::string::npos) << s.message();
}

TEST_F(SegmentsTest, ADamagedSegmentHeaderFailsTheOpenWithItsName) {
  Create();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 32, 1, /*sync=*/true).ok());
  store_.reset();
  {
    int fd = ::open(SegmentFile(1).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "X", 1, 12), 1);
    close(fd);
  }
  Status s = RocksBlockStore::Open(path_, Options(), &store_);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("00000001.seg"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("checksum"), std::string::npos) << s.message();
}

// What `compare --crash` found on an ext4 crash state: a segment created just before the power cut
// whose size and extent were committed but whose data reads as zeros. Nothing refers to it; the
// store opens and removes it. A header of other bytes is still Corruption.
TEST_F(SegmentsTest, ASegmentOfZerosFromAPowerCutWhileItWasMadeIsRemoved) {
  Create();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 32, 1, /*sync=*/true).ok());
  store_.reset();
  const std::string zeros(3 * kBlockSize, '\0');
  for (uint32_t n : {7u, 8u}) {
    int fd = ::open(SegmentFile(n).c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, zeros.data(), n == 7 ? kBlockSize : zeros.size(), 0),
              ssize_t(n == 7 ? kBlockSize : zeros.size()));
    close(fd);
  }
  Reopen();
  EXPECT_FALSE(std::filesystem::exists(SegmentFile(7)));
  EXPECT_FALSE(std::filesystem::exists(SegmentFile(8)));
  ExpectRun(store_.get(), 5, 0, 32, 1);
  store_.reset();
  // Zeros in the header but data after it: not what a power cut leaves.
  {
    int fd = ::open(SegmentFile(9).c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, zeros.data(), kBlockSize, 0), ssize_t(kBlockSize));
    ASSERT_EQ(pwrite(fd, "x", 1, kBlockSize + 7), 1);
    close(fd);
  }
  Status s = RocksBlockStore::Open(path_, Options(), &store_);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("00000009.seg: not a stablefs segment"), std::string::npos)
      << s.message();
}

TEST_F(SegmentsTest, CollectionMovesLiveBlocksAndRemovesTheRest) {
  segment_bytes_ = 64 * kBlockSize;  // sealed every 62 blocks or so
  Create();
  // Inode 5 written three times over, inode 6 once, inode 7 written and then deleted.
  for (uint64_t v = 1; v <= 3; v++) ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 40, v).ok());
  ASSERT_TRUE(WriteRun(store_.get(), 6, 0, 40, 1).ok());
  ASSERT_TRUE(WriteRun(store_.get(), 7, 0, 40, 1).ok());
  {
    WriteBatch b;
    b.DeleteBlocks(7, 0, 40);
    ASSERT_TRUE(store_->Write(b).ok());
  }
  const uint64_t before = SegmentBytes();
  RocksBlockStore::CollectStats stats;
  ASSERT_TRUE(store_->SealSegment().ok());
  Status s = store_->CollectSegments(1.0, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(stats.segments_removed, 0u);
  EXPECT_GT(stats.blocks_moved, 0u);
  EXPECT_LE(stats.blocks_moved, 80u);  // only live blocks move
  // What remains holds the 80 live blocks and little else.
  EXPECT_LT(SegmentBytes(), before / 2) << before;
  ExpectRun(store_.get(), 5, 0, 40, 3);
  ExpectRun(store_.get(), 6, 0, 40, 1);
  std::string hole(40 * kBlockSize, 'x');
  bool present[40];
  ASSERT_TRUE(store_->ReadBlocks(7, 0, 40, hole.data(), present).ok());
  EXPECT_EQ(std::count(present, present + 40, true), 0);
  // A second collection finds nothing more to do.
  ASSERT_TRUE(store_->SealSegment().ok());
  RocksBlockStore::CollectStats again;
  ASSERT_TRUE(store_->CollectSegments(1.0, &again).ok());
  EXPECT_EQ(again.blocks_moved, 0u);
  Reopen();
  EXPECT_EQ(store_->recovery_dropped_writes(), 0u);
  ExpectRun(store_.get(), 5, 0, 40, 3);
  ExpectRun(store_.get(), 6, 0, 40, 1);
}

TEST_F(SegmentsTest, ABoundedCollectionGoesOnWhereTheLastOneStopped) {
  segment_bytes_ = 34 * kBlockSize;  // one 32-block run per segment
  Create();
  for (uint64_t ino = 10; ino < 16; ino++) ASSERT_TRUE(WriteRun(store_.get(), ino, 0, 32, 1).ok());
  ASSERT_TRUE(store_->SealSegment().ok());
  const std::vector<uint32_t> all = store_->segments()->Sealed();
  ASSERT_EQ(all.size(), 6u);
  auto collect = [&](uint64_t want_removed) {
    RocksBlockStore::CollectStats stats;
    ASSERT_TRUE(store_->CollectSegments(1.0, &stats, 2).ok());
    EXPECT_EQ(stats.segments_examined, 2u);
    EXPECT_EQ(stats.segments_removed, want_removed);
  };
  auto kill = [&](uint64_t ino) {
    WriteBatch b;
    b.DeleteBlocks(ino, 0, 32);
    ASSERT_TRUE(store_->Write(b).ok());
  };
  auto sealed = [&] { return store_->segments()->Sealed(); };
  collect(0);  // the first two, all live
  kill(10);    // in the first segment, examined already
  kill(12);    // in the third
  collect(1);  // the third and fourth: the third goes
  EXPECT_EQ(sealed(), (std::vector<uint32_t>{all[0], all[1], all[3], all[4], all[5]}));
  collect(0);  // the fifth and sixth
  collect(1);  // round again: the first goes
  EXPECT_EQ(sealed(), (std::vector<uint32_t>{all[1], all[3], all[4], all[5]}));
  for (uint64_t ino : {11, 13, 14, 15}) ExpectRun(store_.get(), ino, 0, 32, 1);
}

TEST_F(SegmentsTest, TrimGivesBackTheSpaceOfDeletedRuns) {
  Create();
  ASSERT_TRUE(WriteRun(store_.get(), 5, 0, 256, 1).ok());
  const uint64_t written = SegmentBytes();
  {
    WriteBatch b;
    b.DeleteBlocks(5, 0, 256);
    ASSERT_TRUE(store_->Write(b).ok());
  }
  ASSERT_TRUE(store_->Trim().ok());
  EXPECT_LT(SegmentBytes(), written - 255 * kBlockSize) << written;
}

// Two writers overwrite runs, two readers read them back and check every block is one whole
// write, and a collector moves blocks and removes segments under them all the time.
TEST_F(SegmentsTest, ReadersAndWritersRaceTheCollector) {
  segment_bytes_ = 48 * kBlockSize;
  collect_ = true;  // the background collector too
  Create();
  constexpr int kInodes = 4, kBlocks = 24, kRounds = 60;
  // Inode 9, never written again, shares the first segment with runs the writers overwrite: that
  // segment is collected by moving its blocks, during the race or in the last collection below.
  ASSERT_TRUE(WriteRun(store_.get(), 9, 0, 8, 0).ok());
  for (int ino = 1; ino <= kInodes; ino++) {
    ASSERT_TRUE(WriteRun(store_.get(), 10 + ino, 0, kBlocks, 0).ok());
  }
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  auto writer = [&](int first_ino) {
    for (uint64_t v = 1; v <= kRounds; v++) {
      for (int ino = first_ino; ino <= kInodes; ino += 2) {
        // Runs of different lengths and starts, so that pointers move in pieces.
        const uint64_t start = v % 5, n = kBlocks - start - v % 3;
        if (!WriteRun(store_.get(), 10 + ino, start, n, v).ok()) failures++;
      }
    }
  };
  auto reader = [&] {
    std::string got(kBlocks * kBlockSize, '\0');
    while (!done.load()) {
      for (int ino = 1; ino <= kInodes; ino++) {
        Status s = store_->ReadBlocks(10 + ino, 0, kBlocks, got.data());
        if (!s.ok()) {
          ADD_FAILURE() << s.ToString();
          failures++;
          continue;
        }
        for (int i = 0; i < kBlocks; i++) {
          uint64_t v;
          std::memcpy(&v, &got[i * kBlockSize + 16], 8);
          if (got.compare(i * kBlockSize, kBlockSize, Block(10 + ino, i, v)) != 0) failures++;
        }
      }
    }
  };
  RocksBlockStore::CollectStats collected;
  auto collector = [&] {
    while (!done.load()) {
      Status s = store_->SealSegment();
      if (s.ok()) s = store_->CollectSegments(1.0, &collected);
      if (!s.ok()) {
        ADD_FAILURE() << s.ToString();
        failures++;
      }
    }
  };
  std::thread r1(reader), r2(reader), c(collector);
  std::thread w1(writer, 1), w2(writer, 2);
  w1.join();
  w2.join();
  done = true;
  r1.join();
  r2.join();
  c.join();
  EXPECT_EQ(failures.load(), 0);
  std::printf(
      "collector during the race: %llu segments examined, %llu removed, %llu blocks "
      "moved\n",
      static_cast<unsigned long long>(collected.segments_examined),
      static_cast<unsigned long long>(collected.segments_removed),
      static_cast<unsigned long long>(collected.blocks_moved));
  // Each block holds the last round that wrote it.
  for (int ino = 1; ino <= kInodes; ino++)
    ExpectRun(store_.get(), 10 + ino, 0, kBlocks, UINT64_MAX);
  ASSERT_TRUE(store_->SealSegment().ok());
  ASSERT_TRUE(store_->CollectSegments(1.0, &collected).ok());
  EXPECT_GT(collected.blocks_moved, 0u);
  EXPECT_GT(collected.segments_removed, 0u);
  ExpectRun(store_.get(), 9, 0, 8, 0);
  std::vector<std::string> before(kInodes);
  for (int ino = 1; ino <= kInodes; ino++) {
    before[ino - 1].resize(kBlocks * kBlockSize);
    ASSERT_TRUE(store_->ReadBlocks(10 + ino, 0, kBlocks, before[ino - 1].data()).ok());
  }
  Reopen();
  for (int ino = 1; ino <= kInodes; ino++) {
    std::string after(kBlocks * kBlockSize, '\0');
    ASSERT_TRUE(store_->ReadBlocks(10 + ino, 0, kBlocks, after.data()).ok());
    EXPECT_EQ(after, before[ino - 1]) << "inode " << 10 + ino;
  }
  ExpectRun(store_.get(), 9, 0, 8, 0);
  // Live data is at most what the files hold plus one segment being filled and headers.
  EXPECT_LE(SegmentBytes(), uint64_t{kInodes} * kBlocks * kBlockSize * 2 + segment_bytes_ * 2);
}

// A file system whose file syncs fail while `fail` is set.
class FailingSyncFs : public rocksdb::FileSystemWrapper {
 public:
  FailingSyncFs() : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "FailingSyncFs"; }
  std::atomic<bool> fail{false};
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    std::unique_ptr<rocksdb::FSWritableFile> base;
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, &base, d);
    if (s.ok()) r->reset(new File(std::move(base), &fail));
    return s;
  }

 private:
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, std::atomic<bool>* fail)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(f)), fail_(fail) {}
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      if (fail_->load()) return rocksdb::IOStatus::IOError("injected sync failure");
      return target()->Sync(o, d);
    }

   private:
    std::atomic<bool>* fail_;
  };
};

// After a failed sync the kernel may have dropped the pages it could not write, and the next
// sync would succeed without them: every later sync and append fails instead.
TEST(SegmentFilesTest, AFailedSyncIsNeverFollowedByASuccessfulOne) {
  TempDir dir;
  FailingSyncFs fs;
  Segments::Options o;
  o.dir = dir.Sub("segments");
  o.fs = &fs;
  std::unique_ptr<Segments> segs;
  ASSERT_TRUE(Segments::Open(o, /*create=*/true, &segs).ok());
  std::string data = Block(1, 0, 0);
  const char* blocks[1] = {data.data()};
  SegmentLocation loc;
  size_t n = 0;
  ASSERT_TRUE(segs->Append(1, 0, 1, blocks, true, &loc, &n).ok());
  fs.fail = true;
  Status s = segs->Sync();
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  fs.fail = false;
  s = segs->Sync();
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("injected sync failure"), std::string::npos) << s.message();
  EXPECT_FALSE(segs->Append(1, 1, 1, blocks, true, &loc, &n).ok());
  // A seal's failed sync is the same.
  std::unique_ptr<Segments> fresh;
  ASSERT_TRUE(Segments::Open(o, /*create=*/false, &fresh).ok());
  ASSERT_TRUE(fresh->Append(1, 0, 1, blocks, true, &loc, &n).ok());
  fs.fail = true;
  EXPECT_FALSE(fresh->Seal().ok());
  fs.fail = false;
  EXPECT_FALSE(fresh->Sync().ok());
}

// The segment files alone (no RocksDB, so that ThreadSanitizer sees every synchronization):
// appends from two threads, syncs, reads of what was appended, seals and removals at once.
TEST(SegmentFilesTest, ConcurrentAppendsSyncsReadsSealsAndRemovals) {
  TempDir dir;
  Segments::Options o;
  o.dir = dir.Sub("segments");
  o.fs = rocksdb::FileSystem::Default().get();
  o.max_slots = 40;
  std::unique_ptr<Segments> segs;
  ASSERT_TRUE(Segments::Open(o, /*create=*/true, &segs).ok());
  struct Written {
    SegmentLocation loc;
    uint64_t ino, index;
  };
  Mutex mu;
  std::vector<Written> written;  // GUARDED_BY(mu)
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  auto appender = [&](uint64_t ino) {
    std::vector<std::string> data(7);
    std::vector<const char*> ptrs(7);
    for (uint64_t round = 0; round < 200; round++) {
      for (size_t i = 0; i < 7; i++) {
        data[i] = Block(ino, round * 7 + i, 0);
        ptrs[i] = data[i].data();
      }
      for (size_t done_blocks = 0; done_blocks < 7;) {
        SegmentLocation loc;
        size_t n = 0;
        if (!segs->Append(ino, round * 7 + done_blocks, 7 - done_blocks, ptrs.data() + done_blocks,
                          /*contiguous=*/false, &loc, &n)
                 .ok()) {
          failures++;
          return;
        }
        MutexLock l(&mu);
        for (size_t k = 0; k < n; k++) {
          written.push_back(Written{SegmentLocation{loc.segment, loc.slot + uint32_t(k)}, ino,
                                    round * 7 + done_blocks + k});
        }
        done_blocks += n;
      }
    }
  };
  auto syncer = [&] {
    while (!done.load()) {
      SegmentWatermark w;
      if (!segs->Sync(&w).ok()) failures++;
      if (segs->unsynced_slots() > 1000) failures++;
    }
  };
  auto reader = [&] {
    std::string got(kBlockSize, '\0');
    char* blocks[1] = {got.data()};
    std::mt19937 rng(7);
    while (!done.load()) {
      Written w;
      {
        MutexLock l(&mu);
        if (written.empty()) continue;
        w = written[rng() % written.size()];
      }
      Status s = segs->Read(w.loc, 1, blocks);
      if (s.IsNotFound()) continue;  // removed meanwhile
      if (!s.ok() || got != Block(w.ino, w.index, 0)) failures++;
    }
  };
  auto remover = [&] {
    while (!done.load()) {
      std::vector<uint32_t> sealed = segs->Sealed();
      // Keep the newest sealed segments, remove the older ones.
      for (size_t i = 0; i + 3 < sealed.size(); i++) {
        if (!segs->Remove(sealed[i]).ok()) failures++;
      }
      if (!segs->Seal().ok()) failures++;
    }
  };
  std::thread s1(syncer), r1(reader), m1(remover);
  std::thread a1(appender, 1), a2(appender, 2);
  a1.join();
  a2.join();
  done = true;
  s1.join();
  r1.join();
  m1.join();
  EXPECT_EQ(failures.load(), 0);
  // What is left reads back, also after a reopen, and the walk of every run agrees with it.
  ASSERT_TRUE(segs->Sync().ok());
  segs.reset();
  ASSERT_TRUE(Segments::Open(o, /*create=*/false, &segs).ok());
  uint64_t blocks = 0;
  for (uint32_t n : segs->Sealed()) {
    ASSERT_TRUE(
        segs->ForEachRun(
                n,
                [&](uint64_t ino, uint64_t first, uint32_t count, uint32_t slot) -> Status {
                  std::string got(count * kBlockSize, '\0');
                  std::vector<char*> b(count);
                  for (uint32_t i = 0; i < count; i++) {
                    b[i] = got.data() + i * kBlockSize;
                  }
                  STABLEFS_RETURN_IF_ERROR(segs->Read(SegmentLocation{n, slot}, count, b.data()));
                  for (uint32_t i = 0; i < count; i++) {
                    EXPECT_EQ(got.substr(i * kBlockSize, kBlockSize), Block(ino, first + i, 0));
                  }
                  blocks += count;
                  return Status::Ok();
                })
            .ok());
  }
  EXPECT_GT(blocks, 0u);
}

}  // namespace
}  // namespace stablefs
