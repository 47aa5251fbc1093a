// The synced log (storage/synced_log.h): its records, and the opens it refuses. A store whose
// WAL or MANIFEST lost part of what its syncs acknowledged is not opened, and its files are left
// as they were; a store that lost only what no sync acknowledged opens as before.
#include "storage/synced_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "storage/coding.h"
#include "storage/pi.h"
#include "storage/rocks_block_store.h"
#include "tests/util/temp_dir.h"

namespace stablefs {
namespace {

using stablefs::testing::TempDir;
namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

void FlipByte(const std::string& path, uint64_t at) {
  std::string d = ReadAll(path);
  d[at] ^= 0x20;
  WriteAll(path, d);
}

TEST(SyncedLogTest, TheMarkIsTheNewestIntactRecord) {
  TempDir dir;
  const std::string store = dir.Sub("s");
  fs::create_directories(store);
  bool found = true;
  SyncedMark mark;
  ASSERT_TRUE(SyncedLog::Read(store, &found, &mark).ok());
  EXPECT_FALSE(found);

  std::unique_ptr<SyncedLog> log;
  SyncedMark first;
  first.generation = 7;
  first.sequence = 10;
  ASSERT_TRUE(SyncedLog::Start(rocksdb::FileSystem::Default().get(), store, first, &log).ok());
  ASSERT_TRUE(log->Append(20, 5, 100).ok());
  ASSERT_TRUE(log->Append(15, 6, 200).ok());  // a sequence never goes back
  ASSERT_TRUE(SyncedLog::Read(store, &found, &mark).ok());
  ASSERT_TRUE(found);
  EXPECT_EQ(mark.generation, 9u);
  EXPECT_EQ(mark.sequence, 20u);
  EXPECT_EQ(mark.manifest_number, 6u);
  EXPECT_EQ(mark.manifest_size, 200u);

  // The last record damaged or torn: the one before it.
  const std::string path = SyncedLog::FileName(store);
  const std::string whole = ReadAll(path);
  ASSERT_EQ(whole.size(), 3 * SyncedLog::kRecordSize);
  uint64_t damaged = 0;
  FlipByte(path, 2 * SyncedLog::kRecordSize + 17);
  ASSERT_TRUE(SyncedLog::Read(store, &found, &mark, &damaged).ok());
  EXPECT_EQ(mark.generation, 8u);
  EXPECT_EQ(mark.manifest_number, 5u);
  EXPECT_EQ(damaged, 1u);
  WriteAll(path, whole.substr(0, 2 * SyncedLog::kRecordSize + 20));
  ASSERT_TRUE(SyncedLog::Read(store, &found, &mark, &damaged).ok());
  EXPECT_EQ(mark.generation, 8u);
  EXPECT_EQ(damaged, 1u);
  // Nothing intact at all is Corruption; an empty file is an empty log.
  WriteAll(path, std::string(100, 'x'));
  Status s = SyncedLog::Read(store, &found, &mark);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  WriteAll(path, "");
  ASSERT_TRUE(SyncedLog::Read(store, &found, &mark).ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(mark.generation, 0u);
}

TEST(SyncedLogTest, ALongLogIsRewrittenWithItsNewestRecord) {
  TempDir dir;
  const std::string store = dir.Sub("s");
  fs::create_directories(store);
  std::unique_ptr<SyncedLog> log;
  ASSERT_TRUE(
      SyncedLog::Start(rocksdb::FileSystem::Default().get(), store, SyncedMark(), &log).ok());
  const uint64_t n = SyncedLog::kMaxBytes / SyncedLog::kRecordSize + 10;
  for (uint64_t i = 1; i <= n; i++) ASSERT_TRUE(log->Append(i, 1, i * 10).ok());
  EXPECT_LE(fs::file_size(SyncedLog::FileName(store)), SyncedLog::kMaxBytes);
  EXPECT_FALSE(fs::exists(SyncedLog::FileName(store) + ".new"));
  bool found = false;
  SyncedMark mark;
  ASSERT_TRUE(SyncedLog::Read(store, &found, &mark).ok());
  EXPECT_EQ(mark.sequence, n);
  EXPECT_EQ(mark.generation, n);
}

class SyncedStoreTest : public ::testing::Test {
 protected:
  RocksOptions Options() {
    RocksOptions o;
    o.flush_on_close = false;  // closing stands for a crash: the WAL keeps what it holds
    return o;
  }
  void Create() {
    Status s = RocksBlockStore::Create(path_, CreateOptions(), Options(), &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  Status Open() {
    store_.reset();
    return RocksBlockStore::Open(path_, Options(), &store_);
  }
  Status Put(const std::string& key, const std::string& value, bool sync) {
    WriteBatch b;
    b.Put(Space::kXattr, key, value);
    return store_->Write(b, WriteOptions{.sync = sync});
  }
  std::string Get(const std::string& key) {
    std::string v;
    Status s = store_->Get(Space::kXattr, key, &v);
    if (s.IsNotFound()) return "<absent>";
    return s.ok() ? v : s.ToString();
  }
  std::string NewestWal() {
    std::string newest;
    for (const auto& e : fs::directory_iterator(path_)) {
      if (e.path().extension() == ".log" && fs::file_size(e.path()) > 0 &&
          e.path().string() > newest) {
        newest = e.path().string();
      }
    }
    return newest;
  }
  // The store's newest synced mark; fails the test if the log has none.
  SyncedMark Mark() {
    bool found = false;
    SyncedMark mark;
    Status s = SyncedLog::Read(path_, &found, &mark);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(found) << "no synced mark in " << SyncedLog::FileName(path_);
    return mark;
  }
  // Every file of the store with its size and content.
  std::map<std::string, std::string> Files() {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) {
      if (e.is_regular_file()) out[e.path().filename().string()] = ReadAll(e.path());
    }
    return out;
  }

  // Removes `wal` from the closed store and expects a read-write and a read-only open to refuse
  // the store (the message naming `why`), leaving every file as it was; then puts the file back
  // and opens the store again.
  void ExpectRemovalRefused(const std::string& wal, const std::string& why = "") {
    const std::string held = ReadAll(wal);
    ASSERT_FALSE(held.empty());
    fs::remove(wal);
    const auto before = Files();
    Status s = Open();
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.message().find(why), std::string::npos) << s.message();
    EXPECT_TRUE(Files() == before) << "a refused open changed the store";
    RocksOptions ro = Options();
    ro.read_only = true;
    s = RocksBlockStore::Open(path_, ro, &store_);
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_TRUE(Files() == before) << "a refused read-only open changed the store";
    WriteAll(wal, held);
    s = Open();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  TempDir dir_;
  const std::string path_ = dir_.Sub("store");
  std::unique_ptr<RocksBlockStore> store_;
};

TEST_F(SyncedStoreTest, AWalCutIntoItsAcknowledgedPartIsRefusedAndLeftAsItWas) {
  for (bool by_sync : {false, true}) {
    SCOPED_TRACE(by_sync ? "Sync()" : "a sync write");
    store_.reset();
    fs::remove_all(path_);
    Create();
    ASSERT_TRUE(Put("a", "1", false).ok());
    if (by_sync) {
      ASSERT_TRUE(Put("b", "2", false).ok());
      ASSERT_TRUE(store_->Sync().ok());
    } else {
      ASSERT_TRUE(Put("b", "2", true).ok());
    }
    store_.reset();
    const std::string wal = NewestWal();
    ASSERT_FALSE(wal.empty());
    const std::string whole = ReadAll(wal);
    fs::resize_file(wal, whole.size() - 5);
    const auto before = Files();
    Status s = Open();
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.message().find("acknowledged"), std::string::npos) << s.message();
    EXPECT_EQ(Files(), before) << "a refused open changed the store";
    // Read-only (fsck's open) refuses it as well.
    RocksOptions ro = Options();
    ro.read_only = true;
    s = RocksBlockStore::Open(path_, ro, &store_);
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_EQ(Files(), before);
    // Whole again, it opens with everything.
    WriteAll(wal, whole);
    ASSERT_TRUE(Open().ok());
    EXPECT_EQ(Get("a"), "1");
    EXPECT_EQ(Get("b"), "2");
  }
}

TEST_F(SyncedStoreTest, AnUnacknowledgedTailCutShortOpensWithTheAcknowledgedWrites) {
  Create();
  ASSERT_TRUE(Put("a", "1", true).ok());
  const std::string wal = NewestWal();
  const uint64_t acknowledged = fs::file_size(wal);
  ASSERT_TRUE(Put("b", std::string(300, 'b'), false).ok());
  store_.reset();
  ASSERT_GT(fs::file_size(wal), acknowledged);
  fs::resize_file(wal, acknowledged + 10);  // a torn tail: only the unsynced write
  Status s = Open();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(Get("b"), "<absent>");
}

TEST_F(SyncedStoreTest, AManifestCutBelowItsSyncedSizeIsRefused) {
  Create();
  ASSERT_TRUE(Put("a", "1", true).ok());
  ASSERT_TRUE(store_->Trim().ok());  // flushes and compacts: version edits in the MANIFEST
  ASSERT_TRUE(Put("b", "2", true).ok());
  store_.reset();
  const SyncedMark mark = Mark();
  char name[32];
  std::snprintf(name, sizeof(name), "/MANIFEST-%06llu",
                static_cast<unsigned long long>(mark.manifest_number));
  const std::string manifest = path_ + name;
  ASSERT_EQ(fs::file_size(manifest), mark.manifest_size);
  fs::resize_file(manifest, mark.manifest_size - 30);
  const auto before = Files();
  Status s = Open();
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("MANIFEST"), std::string::npos) << s.message();
  EXPECT_EQ(Files(), before);
}

// The WAL files of the store, oldest first.
std::vector<std::string> Wals(const std::string& store) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(store)) {
    if (e.path().extension() == ".log") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// One family flushed past a WAL file that the others still need: the database's recovered
// sequence number (from the flush's version edit) reaches the mark although that file is gone.
// The mark names the file that held the last acknowledged write, and the open refuses.
TEST_F(SyncedStoreTest, AWalRemovedAfterAnotherFamilyFlushedPastItIsRefused) {
  Create();
  ASSERT_TRUE(Put("a", "1", true).ok());  // xattrs: only in the WAL
  WriteBatch b;
  b.Put(Space::kInode, "i", "inode");
  ASSERT_TRUE(store_->Write(b, WriteOptions{.sync = true}).ok());
  ASSERT_TRUE(store_->TEST_Flush(Space::kInode).ok());  // a new WAL; inodes are in a table
  store_.reset();
  const std::vector<std::string> wals = Wals(path_);
  ASSERT_EQ(wals.size(), 2u);
  ExpectRemovalRefused(wals[0], "issing");
  EXPECT_EQ(Get("a"), "1");
}

// The oldest of several WAL files removed, the newest holding the last acknowledged write: the
// records replayed are contiguous and hold that write, but not the older ones. RocksDB's record
// of the closed, synced WAL files in the MANIFEST refuses it.
TEST_F(SyncedStoreTest, TheOldestOfSeveralWalsRemovedIsRefused) {
  Create();
  ASSERT_TRUE(Put("a", "1", true).ok());
  WriteBatch b;
  b.Put(Space::kInode, "i", "inode");
  ASSERT_TRUE(store_->Write(b, WriteOptions{.sync = false}).ok());
  ASSERT_TRUE(store_->TEST_Flush(Space::kInode).ok());
  ASSERT_TRUE(Put("b", "2", true).ok());  // in the new WAL, which the mark now names
  store_.reset();
  const std::vector<std::string> wals = Wals(path_);
  ASSERT_EQ(wals.size(), 2u);
  ExpectRemovalRefused(wals[0]);
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(Get("b"), "2");
}

// Of three WAL files, the middle one removed. RocksDB's record of closed WAL files refuses it; the
// sequence numbers replayed, which jump over the file, would too.
TEST_F(SyncedStoreTest, AMiddleWalRemovedIsRefused) {
  Create();
  ASSERT_TRUE(Put("a", "1", true).ok());
  for (const char* k : {"i", "j"}) {
    WriteBatch b;
    b.Put(Space::kInode, k, "inode");
    ASSERT_TRUE(store_->Write(b, WriteOptions{.sync = true}).ok());
    ASSERT_TRUE(store_->TEST_Flush(Space::kInode).ok());
    ASSERT_TRUE(Put(std::string("x") + k, "2", true).ok());
  }
  store_.reset();
  const std::vector<std::string> wals = Wals(path_);
  ASSERT_EQ(wals.size(), 3u);
  ExpectRemovalRefused(wals[1]);
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(Get("xi"), "2");
  EXPECT_EQ(Get("xj"), "2");
}

// What the checks must not refuse: WAL files RocksDB removed itself after every family flushed
// them, and a crash with acknowledged writes in several WAL files, all present.
TEST_F(SyncedStoreTest, WalsRemovedByRocksDbAndSeveralWalsIntactOpen) {
  Create();
  ASSERT_TRUE(Put("a", "1", true).ok());
  ASSERT_TRUE(store_->Trim().ok());  // every family flushed: the WAL holding "a" goes
  ASSERT_TRUE(Put("b", "2", true).ok());
  WriteBatch b;
  b.Put(Space::kInode, "i", "inode");
  ASSERT_TRUE(store_->Write(b, WriteOptions{.sync = true}).ok());
  ASSERT_TRUE(store_->TEST_Flush(Space::kInode).ok());
  ASSERT_TRUE(Put("c", "3", true).ok());
  store_.reset();
  Status s = Open();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(Get("b"), "2");
  EXPECT_EQ(Get("c"), "3");
  ASSERT_TRUE(Put("d", "4", true).ok());
  store_.reset();
  s = Open();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Get("d"), "4");
}

// A synced log of format 1 (48-byte records, no WAL holder) is read, and the open rewrites it
// in the current format.
TEST_F(SyncedStoreTest, ALogOfTheFirstFormatIsReadAndRewritten) {
  Create();
  ASSERT_TRUE(Put("a", "1", true).ok());
  store_.reset();
  const SyncedMark mark = Mark();
  char r[SyncedLog::kRecordSizeV1];
  std::memcpy(r, "stablsyn", 8);
  EncodeFixed64BE(r + 8, mark.generation);
  EncodeFixed64BE(r + 16, mark.sequence);
  EncodeFixed64BE(r + 24, mark.manifest_number);
  EncodeFixed64BE(r + 32, mark.manifest_size);
  EncodeFixed64BE(r + 40, pi::Xxh3(r, 40));
  WriteAll(SyncedLog::FileName(path_), std::string(r, sizeof(r)));
  const SyncedMark old = Mark();
  EXPECT_EQ(old.sequence, mark.sequence);
  EXPECT_EQ(old.wal_number, 0u);
  ASSERT_TRUE(Open().ok());
  EXPECT_EQ(Get("a"), "1");
  store_.reset();
  EXPECT_EQ(fs::file_size(SyncedLog::FileName(path_)) % SyncedLog::kRecordSize, 0u);
  EXPECT_EQ(Mark().sequence, mark.sequence);
}

TEST_F(SyncedStoreTest, AStoreWithoutItsLogOpensAndStartsOne) {
  Create();
  ASSERT_TRUE(Put("a", "1", true).ok());
  store_.reset();
  fs::remove(SyncedLog::FileName(path_));
  ASSERT_TRUE(Open().ok());
  EXPECT_EQ(Get("a"), "1");
  EXPECT_TRUE(fs::exists(SyncedLog::FileName(path_)));
  ASSERT_TRUE(Put("b", "2", true).ok());
  store_.reset();
  EXPECT_GT(Mark().sequence, 0u);
}

// Two syncers, one record. Where the second syncer is held is set by the hook in
// Acknowledge (no timing): either way exactly one record is appended, it covers both writes,
// and both syncs return only once it is durable.
using Step = RocksBlockStore::AcknowledgeStep;

// Holds a syncer at one step until told to go on; records the sequences each step saw.
class Gate {
 public:
  // Blocks until `done` holds under the gate's lock.
  template <class Pred>
  void WaitFor(Pred done) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return done(); });
  }
  template <class Fn>
  void Update(Fn fn) {
    {
      std::lock_guard<std::mutex> l(mu_);
      fn();
    }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t first = 0;   // the first syncer's sequence, once it is held
  uint64_t second = 0;  // the second syncer's sequence, once it has asked
  bool release = false;
};

uint64_t Records(const std::string& store) {
  return fs::file_size(SyncedLog::FileName(store)) / SyncedLog::kRecordSize;
}

TEST_F(SyncedStoreTest, ALaterSyncersRecordCoversAnEarlierOneWaitingForTheLock) {
  Create();
  Gate g;
  // The first syncer is held after asking and before the lock; the second runs through.
  store_->TEST_SetAcknowledgeHook([&](Step step, uint64_t sequence) {
    if (step != Step::kWanted) return;
    bool hold = false;
    g.Update([&] {
      if (g.first == 0) {
        g.first = sequence;
        hold = true;
      } else {
        g.second = sequence;
      }
    });
    if (hold) g.WaitFor([&] { return g.release; });
  });
  const uint64_t before = Records(path_);
  Status a;
  std::thread first([&] { a = Put("a", "1", true); });
  g.WaitFor([&] { return g.first != 0; });
  Status b = Put("b", "2", true);
  ASSERT_TRUE(b.ok()) << b.ToString();
  EXPECT_EQ(Records(path_), before + 1);  // the second syncer's record, already durable
  g.Update([&] { g.release = true; });
  first.join();
  ASSERT_TRUE(a.ok()) << a.ToString();
  EXPECT_GT(g.second, g.first);
  EXPECT_EQ(Records(path_), before + 1) << "the held syncer appended a record already written";
  store_->TEST_SetAcknowledgeHook(nullptr);
  store_.reset();
  EXPECT_EQ(Mark().sequence, g.second);
}

TEST_F(SyncedStoreTest, ARecordWrittenUnderTheLockCoversASyncerThatAskedMeanwhile) {
  Create();
  Gate g;
  // The first syncer is held holding the lock until the second has asked (and then waits
  // for the lock); the record the first writes must then cover the second.
  store_->TEST_SetAcknowledgeHook([&](Step step, uint64_t sequence) {
    bool hold = false;
    g.Update([&] {
      if (step == Step::kLocked && g.first == 0) {
        g.first = sequence;
        hold = true;
      } else if (step == Step::kWanted && g.first != 0) {
        g.second = sequence;
      }
    });
    if (hold) g.WaitFor([&] { return g.second != 0; });
  });
  const uint64_t before = Records(path_);
  Status a, b;
  std::thread first([&] { a = Put("a", "1", true); });
  g.WaitFor([&] { return g.first != 0; });
  std::thread second([&] { b = Put("b", "2", true); });
  first.join();
  second.join();
  ASSERT_TRUE(a.ok()) << a.ToString();
  ASSERT_TRUE(b.ok()) << b.ToString();
  EXPECT_GT(g.second, g.first);
  EXPECT_EQ(Records(path_), before + 1) << "the second syncer appended a record already written";
  store_->TEST_SetAcknowledgeHook(nullptr);
  store_.reset();
  EXPECT_EQ(Mark().sequence, g.second);
}

}  // namespace
}  // namespace stablefs
