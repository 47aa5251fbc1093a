// Page cache tests: the read and write paths, writeback into a verifying store, truncate and
// holes, eviction and throttling, writeback error reporting (guarantee 4), and stable pages
// (guarantee 1) under each policy, shown deterministically by pausing writeback right after PI
// generation and writing (with write() and through a mapping) while it is paused.
#include "fs/page_cache.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "fs/errno_map.h"
#include "fs/mapping.h"
#include "storage/fault_block_store.h"
#include "storage/log.h"
#include "storage/mem_block_store.h"
#include "storage/rocks_block_store.h"
#include "tests/util/temp_dir.h"

namespace stablefs {
namespace {

// A one-shot event.
class Latch {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    done_ = true;
    cv_.SignalAll();
  }
  void Wait() {
    MutexLock lock(&mu_);
    while (!done_) cv_.Wait();
  }
  bool IsSet() {
    MutexLock lock(&mu_);
    return done_;
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  bool done_ GUARDED_BY(mu_) = false;
};

std::string Pattern(char c, size_t n) { return std::string(n, c); }

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// A store, a cache over it, and files.
class CacheFixture {
 public:
  explicit CacheFixture(PageCacheOptions o = PageCacheOptions(), bool fault = false) {
    std::unique_ptr<MemBlockStore> mem;
    EXPECT_TRUE(MemBlockStore::Create(CreateOptions(), &mem).ok());
    if (fault) {
      fault_store_ = std::make_unique<FaultBlockStore>(std::move(mem));
      store_ = fault_store_.get();
    } else {
      mem_store_ = std::move(mem);
      store_ = mem_store_.get();
    }
    EXPECT_TRUE(PageCache::Create(store_, o, &cache_).ok());
  }
  ~CacheFixture() {
    for (auto& as : files_) EXPECT_TRUE(cache_->Evict(as.get(), /*write_back=*/false).ok());
  }

  AddressSpace* NewFile(uint64_t ino, uint64_t size = 0) {
    files_.push_back(std::make_unique<AddressSpace>(cache_.get(), ino, size, 0, nullptr));
    return files_.back().get();
  }

  void Write(AddressSpace* as, uint64_t pos, const std::string& data) {
    size_t done = 0;
    Status s = cache_->Write(as, pos, data.data(), data.size(), &done);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(done, data.size());
  }
  std::string Read(AddressSpace* as, uint64_t pos, size_t len) {
    std::string buf(len, '\0');
    size_t done = 0;
    Status s = cache_->Read(as, pos, len, buf.data(), &done);
    EXPECT_TRUE(s.ok()) << s.ToString();
    buf.resize(done);
    return buf;
  }
  // The block as the store holds it (verified), or "" for a hole.
  std::string StoredBlock(uint64_t ino, uint64_t index) {
    std::string b(kBlockSize, '\0');
    bool present = false;
    Status s = store_->ReadBlocks(ino, index, 1, b.data(), &present);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return present ? b : "";
  }

  BlockStore* store_ = nullptr;
  std::unique_ptr<MemBlockStore> mem_store_;
  std::unique_ptr<FaultBlockStore> fault_store_;
  std::unique_ptr<PageCache> cache_;
  std::vector<std::unique_ptr<AddressSpace>> files_;
};

PageCacheOptions QuietFlusher(StablePolicy policy = StablePolicy::kWait) {
  PageCacheOptions o;
  o.stable_pages = policy;
  o.dirty_expire_ms = 3600 * 1000;  // only explicit writeback in these tests
  o.writeback_interval_ms = 3600 * 1000;
  return o;
}

// ---- ErrSeq ----

TEST(ErrSeqTest, EveryCursorSeesEachErrorOnce) {
  ErrSeq e;
  ErrSeq::Cursor a = e.Sample(), b = e.Sample();
  EXPECT_EQ(e.CheckAndAdvance(&a), 0);
  e.Set(EIO);
  ErrSeq::Cursor late = e.Sample();  // opened after the error, before anyone saw it
  EXPECT_EQ(e.CheckAndAdvance(&a), EIO);
  EXPECT_EQ(e.CheckAndAdvance(&a), 0);
  EXPECT_EQ(e.CheckAndAdvance(&b), EIO);
  EXPECT_EQ(e.CheckAndAdvance(&late), EIO);
  ErrSeq::Cursor after = e.Sample();  // opened after it was seen
  EXPECT_EQ(e.CheckAndAdvance(&after), 0);
  e.Set(ENOSPC);
  EXPECT_EQ(e.CheckAndAdvance(&a), ENOSPC);
  EXPECT_EQ(e.CheckAndAdvance(&after), ENOSPC);
  EXPECT_EQ(e.CheckAndAdvance(&b), ENOSPC);
}

// ---- Read and write ----

TEST(PageCacheTest, WriteReadBackAcrossPagesAndPastEof) {
  CacheFixture f(QuietFlusher());
  AddressSpace* as = f.NewFile(5);
  std::mt19937_64 rng(1);
  std::string model(3 * kPageSize + 123, '\0');
  for (int i = 0; i < 50; i++) {
    uint64_t pos = rng() % model.size();
    std::string d = RandomBytes(rng, 1 + rng() % (model.size() - pos));
    f.Write(as, pos, d);
    model.replace(pos, d.size(), d);
  }
  f.Write(as, model.size() - 1, std::string(1, model.back()));
  EXPECT_EQ(as->size(), model.size());
  EXPECT_EQ(f.Read(as, 0, model.size() + 5000), model);
  EXPECT_EQ(f.Read(as, 100, 10), model.substr(100, 10));
  EXPECT_EQ(f.Read(as, model.size(), 10), "");
  // A write far past EOF leaves a hole of zeros.
  f.Write(as, 10 * kPageSize + 7, "tail");
  std::string gap = f.Read(as, model.size(), 10 * kPageSize + 7 - model.size());
  EXPECT_EQ(gap, std::string(gap.size(), '\0'));
}

TEST(PageCacheTest, WritebackStoresVerifiedBlocksAndCountsThem) {
  CacheFixture f(QuietFlusher());
  AddressSpace* as = f.NewFile(6);
  f.Write(as, 0, Pattern('a', kPageSize));
  f.Write(as, 2 * kPageSize, Pattern('c', 100));
  EXPECT_EQ(as->nrdirty(), 2u);
  EXPECT_EQ(f.StoredBlock(6, 0), "");  // nothing reaches the store before writeback
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  EXPECT_EQ(as->nrdirty(), 0u);
  EXPECT_EQ(f.StoredBlock(6, 0), Pattern('a', kPageSize));
  EXPECT_EQ(f.StoredBlock(6, 1), "");  // a hole stays a hole
  EXPECT_EQ(f.StoredBlock(6, 2), Pattern('c', 100) + std::string(kPageSize - 100, '\0'));
  EXPECT_EQ(as->blocks(), 2u);
  EXPECT_EQ(as->disk_size(), 2 * kPageSize + 100);
  // Overwriting an existing block does not count it twice.
  f.Write(as, 10, "x");
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  EXPECT_EQ(as->blocks(), 2u);
  PageCacheCounters c = f.cache_->counters();
  EXPECT_EQ(c.pages_written_back, 3u);
  EXPECT_EQ(c.protection_errors_write, 0u);
}

TEST(PageCacheTest, ReadsFillFromTheStoreAndNeverReturnBytesThatFailVerification) {
  CacheFixture f(QuietFlusher());
  // Blocks 0..3 of inode 7 in the store; block 2 damaged below the store's checks.
  for (uint64_t i = 0; i < 4; i++) {
    std::string data = Pattern(static_cast<char>('0' + i), kBlockSize);
    std::string tuples(f.store_->tuple_bytes_per_block(), '\0');
    f.store_->GenerateBlockPi(7, i, data.data(), tuples.data());
    if (i == 2) data[77] ^= 1;
    WriteBatch b;
    b.PutBlock(7, i, data.data(), tuples.data());
    ASSERT_TRUE(f.store_->Write(b, WriteOptions{.verify_pi = false}).ok());
  }
  std::vector<std::string> logged;
  SetLogSinkForTesting([&](LogLevel, const std::string& line) { logged.push_back(line); });
  AddressSpace* as = f.NewFile(7, 4 * kPageSize);
  EXPECT_EQ(f.Read(as, 0, kPageSize), Pattern('0', kPageSize));
  std::string buf(kPageSize, 'z');
  size_t done = 99;
  Status s = f.cache_->Read(as, 2 * kPageSize, kPageSize, buf.data(), &done);
  SetLogSinkForTesting(nullptr);
  ASSERT_TRUE(s.IsProtection()) << s.ToString();
  EXPECT_EQ(done, 0u);
  EXPECT_EQ(buf, Pattern('z', kPageSize));  // not one byte handed out
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find("inode 7 offset 8192"), std::string::npos) << logged[0];
  EXPECT_NE(logged[0].find("guard"), std::string::npos) << logged[0];
  EXPECT_NE(logged[0].find("expected"), std::string::npos) << logged[0];
  EXPECT_NE(logged[0].find("received"), std::string::npos) << logged[0];
  EXPECT_EQ(f.cache_->counters().protection_errors_read, 1u);
  // Undamaged pages still read, and the damaged one fails again rather than reading as zeros.
  EXPECT_EQ(f.Read(as, 3 * kPageSize, kPageSize), Pattern('3', kPageSize));
  EXPECT_TRUE(f.cache_->Read(as, 2 * kPageSize + 5, 1, buf.data(), &done).IsProtection());
  // A partial write into the damaged page cannot launder it either, nor can a truncate that
  // would rewrite it as the new tail block with fresh PI.
  EXPECT_TRUE(f.cache_->Write(as, 2 * kPageSize + 1, "q", 1, &done).IsProtection());
  EXPECT_TRUE(f.cache_->Truncate(as, 2 * kPageSize + 100).IsProtection());
  EXPECT_EQ(as->size(), 4 * kPageSize);
}

TEST(PageCacheTest, SmallCacheEvictsCleanPagesAndThrottlesWriters) {
  PageCacheOptions o;
  o.cache_bytes = 64 * kPageSize;  // the minimum
  o.dirty_background_percent = 10;
  o.dirty_percent = 20;
  CacheFixture f(o);
  AddressSpace* as = f.NewFile(8);
  // Writeback holds its first batch until a writer has been throttled, so the writer must meet
  // the dirty limit (with writeback running free, whether it does depends on timing).
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  f.cache_->TEST_SetWritebackHook([&](AddressSpace*, uint64_t, size_t) {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return released; });
  });
  std::mt19937_64 rng(3);
  std::string data = RandomBytes(rng, 512 * kPageSize);  // 8x the cache
  std::thread writer([&] {
    for (size_t pos = 0; pos < data.size(); pos += 3 * kPageSize) {
      f.Write(as, pos, data.substr(pos, 3 * kPageSize));
      EXPECT_LE(f.cache_->nr_dirty() + f.cache_->nr_writeback(), 64u);
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (f.cache_->counters().dirty_throttle_waits == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  {
    std::lock_guard<std::mutex> l(mu);
    released = true;
  }
  cv.notify_all();
  writer.join();
  EXPECT_EQ(f.Read(as, 0, data.size()), data);
  PageCacheCounters c = f.cache_->counters();
  EXPECT_GT(c.pages_evicted, 0u);
  EXPECT_GT(c.dirty_throttle_waits, 0u);
  EXPECT_GT(c.pages_read, 0u);  // evicted pages came back from the store, verified
  EXPECT_LE(as->nrpages(), 64u);
}

// A random reader's miss fills only the pages it asked for; a sequential reader's fills
// readahead_pages (random 4 KiB reads used to read about 20 pages each from the store).
TEST(PageCacheTest, RandomReadsFillOnlyTheirPagesSequentialReadsReadAhead) {
  constexpr uint64_t kPages = 1024;
  std::mt19937_64 rng(9);
  const std::string data = RandomBytes(rng, kPages * kPageSize);
  uint64_t reads_at_start = 0;
  {
    CacheFixture writer(QuietFlusher());
    AddressSpace* as = writer.NewFile(7);
    writer.Write(as, 0, data);
    ASSERT_TRUE(writer.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
    // A second cache over the same store, with nothing cached.
    std::unique_ptr<PageCache> cold;
    ASSERT_TRUE(PageCache::Create(writer.store_, QuietFlusher(), &cold).ok());
    AddressSpace file(cold.get(), 7, as->size(), as->blocks(), nullptr);
    auto read = [&](uint64_t page, size_t len) {
      std::string buf(len, '\0');
      size_t done = 0;
      ASSERT_TRUE(cold->Read(&file, page * kPageSize, len, buf.data(), &done).ok());
      ASSERT_EQ(buf, data.substr(page * kPageSize, len));
    };
    reads_at_start = cold->counters().pages_read;
    for (uint64_t page : {700, 100, 900, 300, 500}) read(page, kPageSize);  // far apart
    EXPECT_EQ(cold->counters().pages_read - reads_at_start, 5u);
    read(600, 2 * kPageSize + 10);  // a read of three pages fills those three
    EXPECT_EQ(cold->counters().pages_read - reads_at_start, 8u);
    // Sequential 4 KiB reads from page 0: the first is far from the last read and fills its
    // page; the second continues it and fills 32 pages (1..32); the 30 after it hit.
    const uint64_t before = cold->counters().pages_read;
    for (uint64_t page = 0; page < 32; page++) read(page, kPageSize);
    EXPECT_EQ(cold->counters().pages_read - before, 33u);
    EXPECT_EQ(file.nrpages(), 8u + 33u);
    ASSERT_TRUE(cold->Evict(&file, /*write_back=*/false).ok());
  }
}

TEST(PageCacheTest, TruncateDropsPagesDeletesBlocksAndRewritesTheTail) {
  CacheFixture f(QuietFlusher());
  AddressSpace* as = f.NewFile(9);
  f.Write(as, 0, Pattern('x', 4 * kPageSize));
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  EXPECT_EQ(as->blocks(), 4u);
  ASSERT_TRUE(f.cache_->Truncate(as, kPageSize + 10).ok());
  EXPECT_EQ(as->size(), kPageSize + 10);
  EXPECT_EQ(as->disk_size(), kPageSize + 10);
  EXPECT_EQ(as->blocks(), 2u);
  EXPECT_EQ(f.StoredBlock(9, 1), Pattern('x', 10) + std::string(kPageSize - 10, '\0'));
  EXPECT_EQ(f.StoredBlock(9, 2), "");
  EXPECT_EQ(f.StoredBlock(9, 3), "");
  // Growing again reads zeros past the old EOF, from the cache and from the store.
  ASSERT_TRUE(f.cache_->Truncate(as, 3 * kPageSize).ok());
  std::string expect = Pattern('x', kPageSize + 10) + std::string(2 * kPageSize - 10, '\0');
  EXPECT_EQ(f.Read(as, 0, 3 * kPageSize), expect);
  ASSERT_TRUE(f.cache_->Evict(as, true).ok());
  AddressSpace* again = f.NewFile(9, 3 * kPageSize);
  EXPECT_EQ(f.Read(again, 0, 3 * kPageSize), expect);
  // Truncate of an uncached, stored tail block reads it, zeroes it and rewrites it.
  ASSERT_TRUE(f.cache_->Truncate(again, 5).ok());
  EXPECT_EQ(f.StoredBlock(9, 0), Pattern('x', 5) + std::string(kPageSize - 5, '\0'));
  EXPECT_EQ(f.StoredBlock(9, 1), "");
  // Dirty pages past the new EOF are dropped, not written back later.
  f.Write(again, 0, Pattern('y', 2 * kPageSize));
  ASSERT_TRUE(f.cache_->Truncate(again, 100).ok());
  ASSERT_TRUE(f.cache_->WriteAndWait(again, 0, UINT64_MAX).ok());
  EXPECT_EQ(f.StoredBlock(9, 1), "");
  EXPECT_EQ(f.StoredBlock(9, 0), Pattern('y', 100) + std::string(kPageSize - 100, '\0'));
}

TEST(PageCacheTest, PunchHoleZeroesPartialPagesAndDeletesWholeOnes) {
  CacheFixture f(QuietFlusher());
  AddressSpace* as = f.NewFile(11);
  std::string model = Pattern('p', 5 * kPageSize);
  f.Write(as, 0, model);
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  const uint64_t off = kPageSize + 100, len = 2 * kPageSize;
  ASSERT_TRUE(f.cache_->PunchHole(as, off, len).ok());
  std::fill(model.begin() + off, model.begin() + off + len, '\0');
  EXPECT_EQ(f.Read(as, 0, model.size()), model);
  EXPECT_EQ(as->size(), 5 * kPageSize);
  EXPECT_EQ(f.StoredBlock(11, 2), "");  // the one whole page in the range
  EXPECT_EQ(as->blocks(), 4u);
  ASSERT_TRUE(f.cache_->Evict(as, true).ok());
  AddressSpace* again = f.NewFile(11, 5 * kPageSize);
  EXPECT_EQ(f.Read(again, 0, model.size()), model);
}

// fallocate's ZERO_RANGE: zeros that stay allocated, reaching the store as one batch, so that a
// crash cannot leave the range punched but not allocated.
TEST(PageCacheTest, ZeroRangeAllocatedIsOneBatchOfZerosThatStayAllocated) {
  CacheFixture f(QuietFlusher(), /*fault=*/true);
  AddressSpace* as = f.NewFile(12);
  // Pages 0-5 data, 6-7 a hole, 8 data; then the range [100, 8 pages + 50).
  std::string model = Pattern('z', 9 * kPageSize);
  f.Write(as, 0, model);
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  ASSERT_TRUE(f.cache_->PunchHole(as, 6 * kPageSize, 2 * kPageSize).ok());
  ASSERT_TRUE(f.store_->Sync().ok());
  ASSERT_EQ(f.fault_store_->UnsyncedBatches(), 0u);
  ASSERT_EQ(as->blocks(), 7u);

  const uint64_t off = 100, end = 8 * kPageSize + 50;
  ASSERT_TRUE(f.cache_->ZeroRangeAllocated(as, off, end - off).ok());
  EXPECT_EQ(f.fault_store_->UnsyncedBatches(), 1u);
  std::string want = model;
  std::fill(want.begin() + 6 * kPageSize, want.begin() + 8 * kPageSize, '\0');
  std::fill(want.begin() + off, want.begin() + end, '\0');
  EXPECT_EQ(f.Read(as, 0, want.size()), want);
  // Every block of the range is allocated, the hole's too; the partial ones hold data.
  EXPECT_EQ(as->blocks(), 9u);
  uint64_t allocated = 0, written = 0;
  ASSERT_TRUE(f.store_->CountBlocks(12, 0, 9, &allocated).ok());
  ASSERT_TRUE(f.store_->CountBlocks(12, 0, 9, &written, /*written_only=*/true).ok());
  EXPECT_EQ(allocated, 9u);
  EXPECT_EQ(written, 2u);  // pages 0 and 8, rewritten with their zeros
  ASSERT_TRUE(f.cache_->Evict(as, true).ok());
  AddressSpace* again = f.NewFile(12, 9 * kPageSize);
  EXPECT_EQ(f.Read(again, 0, want.size()), want);

  // A power cut before a sync takes all of it away, never half.
  size_t dropped = 0;
  ASSERT_TRUE(f.fault_store_->SimulateCrash(&dropped).ok());
  EXPECT_EQ(dropped, 1u);
  ASSERT_TRUE(f.store_->CountBlocks(12, 0, 9, &allocated).ok());
  EXPECT_EQ(allocated, 7u);
  std::string before = model;
  std::fill(before.begin() + 6 * kPageSize, before.begin() + 8 * kPageSize, '\0');
  std::string block(kBlockSize, '\0');
  ASSERT_TRUE(f.store_->ReadBlocks(12, 3, 1, block.data()).ok());
  EXPECT_EQ(block, before.substr(3 * kPageSize, kPageSize));
}

// A ZERO_RANGE wholly past EOF (KEEP_SIZE) rewrites nothing and allocates its partial blocks once.
TEST(PageCacheTest, ZeroRangeAllocatedPastTheEndAllocatesItsPartialBlocksOnce) {
  CacheFixture f(QuietFlusher());
  AddressSpace* as = f.NewFile(13);
  f.Write(as, 0, Pattern('e', kPageSize));
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  for (int round = 0; round < 2; round++) {
    ASSERT_TRUE(f.cache_->ZeroRangeAllocated(as, 2 * kPageSize + 100, 200).ok());
    EXPECT_EQ(as->blocks(), 2u) << round;
  }
  uint64_t allocated = 0, written = 0;
  ASSERT_TRUE(f.store_->CountBlocks(13, 0, 8, &allocated).ok());
  ASSERT_TRUE(f.store_->CountBlocks(13, 0, 8, &written, /*written_only=*/true).ok());
  EXPECT_EQ(allocated, 2u);
  EXPECT_EQ(written, 1u);
  EXPECT_EQ(as->size(), kPageSize);
}

// Found by fsx: a punch over the page holding EOF must leave the store's size at i_size, whether
// the page is rewritten (partial) or dropped (whole), even when no dirty page is left to carry it.
TEST(PageCacheTest, PunchingTheLastPageKeepsTheRecordedSize) {
  for (uint64_t punch_at : {uint64_t{17000}, uint64_t{16384}}) {
    SCOPED_TRACE(punch_at);
    CacheFixture f(QuietFlusher());
    AddressSpace* as = f.NewFile(16);
    f.Write(as, 0, Pattern('s', 20000));
    ASSERT_TRUE(f.cache_->PunchHole(as, punch_at, 8192).ok());
    ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
    EXPECT_EQ(as->size(), 20000u);
    EXPECT_EQ(as->disk_size(), 20000u);
    std::string want = Pattern('s', 20000);
    std::fill(want.begin() + punch_at, want.end(), '\0');
    EXPECT_EQ(f.Read(as, 0, 20000), want);
  }
}

// Found by xfstests generic/286: a page under writeback is neither dirty nor in the store yet, and
// SEEK_DATA skipped it.
TEST(PageCacheTest, PagesUnderWritebackCountAsUnstored) {
  CacheFixture f(QuietFlusher());
  AddressSpace* as = f.NewFile(18);
  f.Write(as, 5 * kPageSize, Pattern('w', kPageSize));
  Latch paused, resume;
  f.cache_->TEST_SetWritebackHook([&](AddressSpace*, uint64_t, size_t) {
    paused.Notify();
    resume.Wait();
  });
  std::thread wb([&] { ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok()); });
  paused.Wait();
  EXPECT_EQ(as->nrdirty(), 0u);
  EXPECT_EQ(f.StoredBlock(18, 5), "");
  EXPECT_EQ(f.cache_->UnstoredIndexes(as, 0, 10), std::vector<uint64_t>{5});
  resume.Notify();
  wb.join();
  f.cache_->TEST_SetWritebackHook(nullptr);
  EXPECT_TRUE(f.cache_->UnstoredIndexes(as, 0, 10).empty());
}

// ---- Punch and truncate against readers and failing commits ----

// An owner whose commit stops at a gate until released: the deterministic point between a
// punch's removal of its pages and the store's change.
class GatedOwner : public AddressSpaceOwner {
 public:
  explicit GatedOwner(BlockStore* store) : store_(store) {}
  Status CommitWithInode(uint64_t, uint64_t, WriteBatch* batch,
                         const std::function<void()>& publish) override {
    {
      std::unique_lock<std::mutex> l(mu_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(l, [&] { return released_; });
    }
    Status s = store_->Write(*batch);
    if (s.ok()) publish();
    return s;
  }
  void WaitEntered() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return entered_; });
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  BlockStore* const store_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false, released_ = false;
};

// A reader of a page a punch is removing, arriving while the punch's commit is paused, must
// not cache the block the commit is deleting: it waits for the punch and reads zeros. (Before
// the invalidate range, the reader read the old block from the store and kept it cached, so
// every later read returned bytes the punch had removed.)
TEST(PageCacheTest, AReaderDuringAPunchesCommitWaitsAndReadsZeros) {
  std::mt19937_64 rng(31);
  const std::string data = RandomBytes(rng, 4 * kPageSize);
  CacheFixture writer(QuietFlusher());
  AddressSpace* w = writer.NewFile(21);
  writer.Write(w, 0, data);
  ASSERT_TRUE(writer.cache_->WriteAndWait(w, 0, UINT64_MAX).ok());
  std::unique_ptr<PageCache> cold;  // nothing cached: the reader must create its page
  ASSERT_TRUE(PageCache::Create(writer.store_, QuietFlusher(), &cold).ok());
  GatedOwner owner(writer.store_);
  AddressSpace file(cold.get(), 21, w->size(), w->blocks(), &owner);

  std::mutex mu;
  std::condition_variable cv;
  bool reader_waits = false, reader_done = false;
  cold->TEST_SetInvalidateWaitHook([&](uint64_t) {
    std::lock_guard<std::mutex> l(mu);
    reader_waits = true;
    cv.notify_all();
  });
  Status punched;
  std::thread puncher([&] { punched = cold->PunchHole(&file, kPageSize, 2 * kPageSize); });
  owner.WaitEntered();
  std::string got(kPageSize, 'x');
  Status read;
  std::thread reader([&] {
    size_t done = 0;
    read = cold->Read(&file, kPageSize, kPageSize, got.data(), &done);
    std::lock_guard<std::mutex> l(mu);
    reader_done = true;
    cv.notify_all();
  });
  {
    // Either the reader waits for the punch (right) or it finishes first (the bug).
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return reader_waits || reader_done; });
  }
  EXPECT_TRUE(reader_waits) << "the reader did not wait for the punch";
  owner.Release();
  puncher.join();
  reader.join();
  cold->TEST_SetInvalidateWaitHook(nullptr);
  ASSERT_TRUE(punched.ok()) << punched.ToString();
  ASSERT_TRUE(read.ok()) << read.ToString();
  EXPECT_TRUE(got == std::string(kPageSize, '\0')) << "the reader saw a punched block";
  std::string again(4 * kPageSize, 'x');
  size_t done = 0;
  ASSERT_TRUE(cold->Read(&file, 0, again.size(), again.data(), &done).ok());
  std::string want = data;
  std::fill(want.begin() + kPageSize, want.begin() + 3 * kPageSize, '\0');
  EXPECT_TRUE(again == want) << "a later read saw a punched block";
  EXPECT_TRUE(cold->Evict(&file, /*write_back=*/false).ok());
}

// A punch whose commit fails leaves every page as it was, dirty ones dirty with their bytes:
// whole pages (kept in the cache until the commit is known) and a partial page (its zeroed
// bytes put back). A later writeback stores them.
TEST(PageCacheTest, APunchWhoseCommitFailsKeepsDirtyPages) {
  std::mt19937_64 rng(32);
  CacheFixture f(QuietFlusher(), /*fault=*/true);
  AddressSpace* as = f.NewFile(22);
  const std::string stored = RandomBytes(rng, 4 * kPageSize);
  f.Write(as, 0, stored);
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  const std::string fresh = RandomBytes(rng, 2 * kPageSize);
  f.Write(as, kPageSize + 100, fresh);  // pages 1..3 dirty, never stored
  std::string want = stored;
  want.replace(kPageSize + 100, fresh.size(), fresh);
  for (uint64_t len : {uint64_t{2 * kPageSize}, uint64_t{2 * kPageSize + 300}}) {
    SCOPED_TRACE(len);  // pages 1..2 whole; then also page 3 partly
    f.fault_store_->InjectWriteError(FaultBlockStore::kAnyIno, Status::IOError("injected"), 1);
    EXPECT_FALSE(f.cache_->PunchHole(as, kPageSize, len).ok());
    EXPECT_TRUE(f.Read(as, 0, 4 * kPageSize) == want) << "the file changed";
  }
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  for (uint64_t i = 0; i < 4; i++) {
    EXPECT_TRUE(f.StoredBlock(22, i) == want.substr(i * kPageSize, kPageSize)) << "block " << i;
  }
}

// ---- Writeback errors (guarantee 4) ----

TEST(PageCacheTest, WritebackErrorsReachEveryOpenFileOnce) {
  CacheFixture f(QuietFlusher(), /*fault=*/true);
  AddressSpace* as = f.NewFile(12);
  AddressSpace* other = f.NewFile(13);
  FileErrCursor a = f.cache_->OpenCursor(as), b = f.cache_->OpenCursor(as);
  FileErrCursor o = f.cache_->OpenCursor(other);
  f.Write(as, 0, "doomed");
  f.Write(other, 0, "fine");
  f.fault_store_->InjectWriteError(12, Status::IOError("injected"), 1);
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).IsIOError());
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(as, &a)), EIO);
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(as, &a)), 0);     // once per file
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(as, &b)), EIO);   // and to every file open at the time
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(other, &o)), 0);  // other inodes are not affected
  EXPECT_EQ(f.StoredBlock(13, 0), "fine" + std::string(kPageSize - 4, '\0'));
  FileErrCursor after = f.cache_->OpenCursor(as);
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(as, &after)), 0);
  EXPECT_EQ(f.cache_->counters().writeback_errors, 1u);

  // A failed store sync reaches every open file of every inode.
  f.fault_store_->InjectSyncError(Status::IOError("sync failed"), 1);
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(other, &o)), EIO);
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(as, &a)), EIO);
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(as, &a)), 0);
}

TEST(PageCacheTest, FsyncMakesDataDurableAcrossAStoreCrash) {
  CacheFixture f(QuietFlusher(), /*fault=*/true);
  AddressSpace* as = f.NewFile(14);
  FileErrCursor c = f.cache_->OpenCursor(as);
  f.Write(as, 0, Pattern('s', kPageSize));
  ASSERT_EQ(ErrnoFromStatus(f.cache_->Fsync(as, &c)), 0);
  f.Write(as, kPageSize, Pattern('u', kPageSize));
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());  // written, not synced
  ASSERT_TRUE(f.fault_store_->SimulateCrash().ok());
  EXPECT_EQ(f.StoredBlock(14, 0), Pattern('s', kPageSize));
  EXPECT_EQ(f.StoredBlock(14, 1), "");
}

// ---- Stable pages (guarantee 1), deterministically ----

enum class Writer { kWrite, kMapping };

struct PolicyCase {
  StablePolicy policy;
  Writer writer;
};

std::string CaseName(const ::testing::TestParamInfo<PolicyCase>& info) {
  return std::string(StablePolicyName(info.param.policy)) +
         (info.param.writer == Writer::kWrite ? "_write" : "_mapping");
}

class StablePagesTest : public ::testing::TestWithParam<PolicyCase> {};

// Writes 'A' to page 0, starts its writeback and pauses it right after PI generation, then
// writes 'B' over bytes 100..109 from another thread (with write() or through a mapping), and
// shows what each policy does with it.
TEST_P(StablePagesTest, ConcurrentWriteDuringWriteback) {
  const PolicyCase pc = GetParam();
  CacheFixture f(QuietFlusher(pc.policy));
  AddressSpace* as = f.NewFile(10);
  f.Write(as, 0, Pattern('A', kPageSize));
  std::unique_ptr<Mapping> map;
  if (pc.writer == Writer::kMapping) {
    ASSERT_TRUE(f.cache_->Map(as, 0, 1, &map).ok());
    map->data()[0] = 'A';  // a first write fault: PageMkwrite makes the page writable
    EXPECT_EQ(f.cache_->counters().mkwrite_faults, 1u);
  }

  Latch paused, resume, writer_waits;
  bool armed = true;
  f.cache_->TEST_SetWritebackHook([&](AddressSpace*, uint64_t first, size_t n) {
    if (!armed) return;
    armed = false;
    EXPECT_EQ(first, 0u);
    EXPECT_EQ(n, 1u);
    paused.Notify();
    resume.Wait();
  });
  f.cache_->TEST_SetWaitHook([&](uint64_t index) {
    EXPECT_EQ(index, 0u);
    writer_waits.Notify();
  });
  Status wb_status;
  std::thread wb([&] { wb_status = f.cache_->WriteAndWait(as, 0, UINT64_MAX); });
  paused.Wait();  // page 0 is under writeback; its PI covers 'A'

  Latch writer_done;
  std::thread writer([&] {
    if (pc.writer == Writer::kWrite) {
      f.Write(as, 100, Pattern('B', 10));
    } else {
      std::memset(map->data() + 100, 'B', 10);  // faults: the page was made read-only
    }
    writer_done.Notify();
  });

  std::string expect_first, expect_final = Pattern('A', kPageSize);
  expect_final.replace(100, 10, Pattern('B', 10));
  if (pc.policy == StablePolicy::kWait) {
    writer_waits.Wait();                // the writer is asleep on PG_writeback...
    EXPECT_FALSE(writer_done.IsSet());  // ...and cannot finish while writeback is paused
    resume.Notify();
    wb.join();
    writer.join();
    EXPECT_TRUE(wb_status.ok()) << wb_status.ToString();
    EXPECT_EQ(f.StoredBlock(10, 0), Pattern('A', kPageSize));  // exactly what PI covered
    EXPECT_EQ(f.cache_->counters().waits_on_writeback, 1u);
  } else {
    writer_done.Wait();  // the writer finished while writeback was paused: nobody waited
    resume.Notify();
    wb.join();
    writer.join();
    EXPECT_EQ(f.cache_->counters().waits_on_writeback, 0u);
    if (pc.policy == StablePolicy::kOff) {
      // The 2011 failure: the page changed after its PI was generated; the store refused it.
      EXPECT_TRUE(wb_status.IsProtection()) << wb_status.ToString();
      EXPECT_EQ(f.cache_->counters().protection_errors_write, 1u);
      EXPECT_EQ(f.store_->counters().protection_errors_write, 1u);
      EXPECT_EQ(f.StoredBlock(10, 0), "");
    } else {
      // bounce: the store accepted the snapshot; the page was redirtied.
      EXPECT_TRUE(wb_status.ok()) << wb_status.ToString();
      EXPECT_EQ(f.cache_->counters().bounce_copies, 1u);
      EXPECT_EQ(f.StoredBlock(10, 0), Pattern('A', kPageSize));
    }
  }
  // In every policy the newer data is dirty and reaches the store on the next writeback.
  EXPECT_EQ(as->nrdirty(), 1u);
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  EXPECT_EQ(f.StoredBlock(10, 0), expect_final);
  EXPECT_EQ(f.Read(as, 0, kPageSize), expect_final);
  // The rejected write is reported to fsync (off); nothing is to report otherwise.
  FileErrCursor c{};
  EXPECT_EQ(ErrnoFromStatus(f.cache_->Fsync(as, &c)), pc.policy == StablePolicy::kOff ? EIO : 0);
  f.cache_->TEST_SetWritebackHook(nullptr);
  f.cache_->TEST_SetWaitHook(nullptr);
  map.reset();
}

INSTANTIATE_TEST_SUITE_P(Policies, StablePagesTest,
                         ::testing::Values(PolicyCase{StablePolicy::kWait, Writer::kWrite},
                                           PolicyCase{StablePolicy::kWait, Writer::kMapping},
                                           PolicyCase{StablePolicy::kBounce, Writer::kWrite},
                                           PolicyCase{StablePolicy::kBounce, Writer::kMapping},
                                           PolicyCase{StablePolicy::kOff, Writer::kWrite},
                                           PolicyCase{StablePolicy::kOff, Writer::kMapping}),
                         CaseName);

// The debug check: with stable_pages=off, a write that reaches a page under writeback faults on
// the read-only page and the process stops with a report naming inode and page.
void ScribbleDuringPausedWriteback(Writer w) {
  PageCacheOptions o = QuietFlusher(StablePolicy::kOff);
  o.debug_readonly = true;
  CacheFixture f(o);
  AddressSpace* as = f.NewFile(10);
  f.Write(as, 0, Pattern('A', kPageSize));
  std::unique_ptr<Mapping> map;
  if (w == Writer::kMapping) {
    if (!f.cache_->Map(as, 0, 1, &map).ok()) return;
    map->data()[0] = 'A';
  }
  Latch paused, resume;
  f.cache_->TEST_SetWritebackHook([&](AddressSpace*, uint64_t, size_t) {
    paused.Notify();
    resume.Wait();
  });
  std::thread wb([&] { (void)f.cache_->WriteAndWait(as, 0, UINT64_MAX); });
  paused.Wait();
  if (w == Writer::kWrite) {
    size_t done;
    (void)f.cache_->Write(as, 100, "BBBB", 4, &done);
  } else {
    map->data()[100] = 'B';
  }
  resume.Notify();  // not reached
  wb.join();
}

TEST(StablePagesDeathTest, DebugCheckCatchesAWriteThatSkippedTheWait) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(ScribbleDuringPausedWriteback(Writer::kWrite),
               "debug check: write to a page under writeback \\(stable_pages=off\\): inode 10 "
               "page 0");
  EXPECT_DEATH(ScribbleDuringPausedWriteback(Writer::kMapping),
               "debug check: write through a mapping to a page under writeback.*inode 10 page 0");
}

// ---- Mappings ----

TEST(MappingTest, WritesThroughAMappingReachTheStoreAndTruncateUnmaps) {
  CacheFixture f(QuietFlusher());
  AddressSpace* as = f.NewFile(15);
  f.Write(as, 0, Pattern('m', 3 * kPageSize));
  std::unique_ptr<Mapping> map;
  ASSERT_TRUE(f.cache_->Map(as, 0, 3, &map).ok());
  EXPECT_EQ(std::string(map->data(), 3 * kPageSize), Pattern('m', 3 * kPageSize));
  std::memcpy(map->data() + kPageSize + 5, "hello", 5);
  EXPECT_EQ(f.Read(as, kPageSize + 5, 5), "hello");  // the mapping shows the cached page
  ASSERT_TRUE(map->Sync().ok());
  EXPECT_EQ(f.StoredBlock(15, 1).substr(5, 5), "hello");
  // After writeback the page is read-only again: the next write faults into PageMkwrite.
  uint64_t faults = f.cache_->counters().mkwrite_faults;
  map->data()[kPageSize] = 'Z';
  EXPECT_EQ(f.cache_->counters().mkwrite_faults, faults + 1);
  EXPECT_EQ(as->nrdirty(), 1u);  // page 1, dirtied by the fault
  // Truncate zaps page 2 out of the mapping; growing the file again makes it fault back in.
  ASSERT_TRUE(f.cache_->Truncate(as, 2 * kPageSize).ok());
  ASSERT_TRUE(f.cache_->Truncate(as, 3 * kPageSize).ok());
  EXPECT_EQ(map->data()[2 * kPageSize], '\0');  // refaulted: zeros past the old EOF
  map->data()[2 * kPageSize] = 'r';
  map.reset();
  ASSERT_TRUE(f.cache_->WriteAndWait(as, 0, UINT64_MAX).ok());
  EXPECT_EQ(f.StoredBlock(15, 2), "r" + std::string(kPageSize - 1, '\0'));
  EXPECT_EQ(f.StoredBlock(15, 1)[0], 'Z');
}

// ---- Stress against a model ----

// Threads write (with write() and through a mapping), truncate, punch and fsync the same pages of
// one file while the flusher writes back continuously. Write, truncate and punch are serialized
// as the filesystem's i_rwsem would; mapping writes and fsyncs are not. Byte ownership keeps the
// final content determinate: the mapping thread alone writes the first 512 bytes of each page of
// the mapped range; write() threads own the rest. Afterwards the store's content (read back with
// an empty cache) equals the model, and no page failed verification anywhere.
void RunStress(StablePolicy policy, bool debug, BlockStore* store, int seconds_budget_ops) {
  PageCacheOptions o;
  o.stable_pages = policy;
  o.debug_readonly = debug;
  o.dirty_expire_ms = 1;
  o.writeback_interval_ms = 1;
  o.writeback_batch_pages = 4;
  o.cache_bytes = 256 * kPageSize;
  std::unique_ptr<PageCache> cache;
  ASSERT_TRUE(PageCache::Create(store, o, &cache).ok());
  constexpr uint64_t kMapped = 8;  // pages [0, 8) are mapped and never truncated away
  constexpr size_t kMapBytes = 512;
  const uint64_t ino = 100;
  auto as = std::make_unique<AddressSpace>(cache.get(), ino, 0, 0, nullptr);
  std::string model(kMapped * kPageSize, '\0');
  {
    size_t done;
    ASSERT_TRUE(cache->Write(as.get(), 0, model.data(), model.size(), &done).ok());
  }
  std::unique_ptr<Mapping> map;
  ASSERT_TRUE(cache->Map(as.get(), 0, kMapped, &map).ok());

  Mutex rwsem;  // the filesystem's i_rwsem, and the model's lock
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      for (int i = 0; i < seconds_budget_ops; i++) {
        MutexLock lock(&rwsem);
        uint64_t size = model.size();
        int op = rng() % 10;
        if (op < 7) {  // write() into bytes write() owns, possibly extending
          uint64_t page = rng() % (kMapped + 8);
          uint64_t pos = page * kPageSize + kMapBytes + rng() % (kPageSize - kMapBytes);
          size_t len = std::min<uint64_t>(1 + rng() % 600, (page + 1) * kPageSize - pos);
          std::string d = RandomBytes(rng, len);
          size_t done;
          if (!cache->Write(as.get(), pos, d.data(), len, &done).ok()) errors++;
          if (pos + len > model.size()) model.resize(pos + len, '\0');
          model.replace(pos, len, d);
        } else if (op < 9) {  // truncate, never into the mapped pages
          uint64_t ns = kMapped * kPageSize + rng() % (8 * kPageSize);
          if (!cache->Truncate(as.get(), ns).ok()) errors++;
          model.resize(ns, '\0');
        } else if (size > kMapped * kPageSize) {  // punch a hole past the mapped pages
          uint64_t off = kMapped * kPageSize + rng() % (size - kMapped * kPageSize);
          uint64_t len = 1 + rng() % (2 * kPageSize);
          if (!cache->PunchHole(as.get(), off, len).ok()) errors++;
          for (uint64_t b = off; b < std::min<uint64_t>(off + len, model.size()); b++) {
            // Bytes of the mapped range are never in a punched range.
            model[b] = '\0';
          }
        }
      }
    });
  }
  // The mapping writer: owns bytes [0, 512) of each mapped page. Its model is its own.
  std::string map_model(kMapped * kMapBytes, '\0');
  threads.emplace_back([&] {
    std::mt19937_64 rng(7);
    for (int i = 0; i < seconds_budget_ops; i++) {
      uint64_t page = rng() % kMapped;
      size_t off = rng() % kMapBytes, len = 1 + rng() % (kMapBytes - off);
      std::string d = RandomBytes(rng, len);
      std::memcpy(map->data() + page * kPageSize + off, d.data(), len);
      map_model.replace(page * kMapBytes + off, len, d);
    }
  });
  threads.emplace_back([&] {  // fsync, concurrently with everything
    FileErrCursor c = cache->OpenCursor(as.get());
    for (int i = 0; i < seconds_budget_ops / 20; i++) {
      if (!cache->Fsync(as.get(), &c).ok()) errors++;
    }
  });
  for (auto& th : threads) th.join();
  for (uint64_t p = 0; p < kMapped; p++) {
    model.replace(p * kPageSize, kMapBytes, map_model.substr(p * kMapBytes, kMapBytes));
  }
  map.reset();
  FileErrCursor c = cache->OpenCursor(as.get());
  ASSERT_TRUE(cache->Fsync(as.get(), &c).ok());
  EXPECT_EQ(errors.load(), 0);
  PageCacheCounters counters = cache->counters();
  std::printf(
      "stress %s: %llu pages written back in %llu batches, %llu waits on writeback, "
      "%llu bounce copies, %llu mkwrite faults\n",
      StablePolicyName(policy), (unsigned long long)counters.pages_written_back,
      (unsigned long long)counters.writeback_batches,
      (unsigned long long)counters.waits_on_writeback, (unsigned long long)counters.bounce_copies,
      (unsigned long long)counters.mkwrite_faults);
  EXPECT_EQ(counters.protection_errors_write, 0u);
  EXPECT_EQ(counters.protection_errors_read, 0u);
  EXPECT_EQ(counters.writeback_errors, 0u);
  EXPECT_GT(counters.mkwrite_faults, 0u);
  EXPECT_GT(counters.pages_written_back, 0u);
  EXPECT_EQ(as->size(), model.size());
  // Drop the cache and read everything back from the store.
  const uint64_t size = as->size(), blocks = as->blocks();
  ASSERT_TRUE(cache->Evict(as.get(), true).ok());
  as = std::make_unique<AddressSpace>(cache.get(), ino, size, blocks, nullptr);
  std::string got(size, '\0');
  size_t done = 0;
  Status s = cache->Read(as.get(), 0, size, got.data(), &done);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(done, size);
  EXPECT_TRUE(got == model) << "store content differs from the model";
  uint64_t stored = 0;
  ASSERT_TRUE(store->CountBlocks(ino, 0, UINT64_MAX, &stored).ok());
  EXPECT_EQ(as->blocks(), stored);  // st_blocks bookkeeping matches the block map
  ASSERT_TRUE(cache->Evict(as.get(), false).ok());
  EXPECT_EQ(store->counters().protection_errors_write, 0u);
}

class StressTest : public ::testing::TestWithParam<StablePolicy> {};

TEST_P(StressTest, MemStore) {
  std::unique_ptr<MemBlockStore> store;
  ASSERT_TRUE(MemBlockStore::Create(CreateOptions(), &store).ok());
  RunStress(GetParam(), /*debug=*/GetParam() == StablePolicy::kWait, store.get(), 30000);
}

TEST_P(StressTest, RocksStore) {
  testing::TempDir dir;
  std::unique_ptr<RocksBlockStore> store;
  ASSERT_TRUE(RocksBlockStore::Create(dir.Sub("s"), CreateOptions(), RocksOptions(), &store).ok());
  RunStress(GetParam(), /*debug=*/false, store.get(), 5000);
}

INSTANTIATE_TEST_SUITE_P(Policies, StressTest,
                         ::testing::Values(StablePolicy::kWait, StablePolicy::kBounce),
                         [](const ::testing::TestParamInfo<StablePolicy>& info) {
                           return std::string(StablePolicyName(info.param));
                         });

}  // namespace
}  // namespace stablefs
