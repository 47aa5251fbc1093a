// The simulated power cut below RocksDB: the crash file system's model on its own, then a
// RocksBlockStore cut off after every single write or sync RocksDB makes, reopened each time.
#include "storage/crash_file_system.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <random>

#include "storage/rocks_block_store.h"
#include "tests/util/temp_dir.h"

namespace stablefs {
namespace {

using stablefs::testing::TempDir;

// A file system with a helper for each call the model cares about.
class CrashFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_->NewDirectory(dir_.path(), io_, &d_, nullptr).ok()); }
  std::string Path(const std::string& name) { return dir_.Sub(name); }
  std::unique_ptr<rocksdb::FSWritableFile> Create(const std::string& name) {
    std::unique_ptr<rocksdb::FSWritableFile> f;
    EXPECT_TRUE(fs_->NewWritableFile(Path(name), rocksdb::FileOptions(), &f, nullptr).ok());
    return f;
  }
  rocksdb::IOStatus Append(rocksdb::FSWritableFile* f, const std::string& data) {
    return f->Append(data, io_, nullptr);
  }
  void SyncDir() { ASSERT_TRUE(d_->Fsync(io_, nullptr).ok()); }
  // The file's bytes, or "<none>".
  std::string Read(const std::string& name) {
    std::string s;
    if (!rocksdb::ReadFileToString(rocksdb::FileSystem::Default().get(), Path(name), &s).ok()) {
      return "<none>";
    }
    return s;
  }

  TempDir dir_;
  std::shared_ptr<CrashFileSystem> fs_ = std::make_shared<CrashFileSystem>();
  rocksdb::IOOptions io_;
  std::unique_ptr<rocksdb::FSDirectory> d_;
};

TEST_F(CrashFileSystemTest, OnlySyncedBytesSurvive) {
  auto f = Create("a");
  SyncDir();
  ASSERT_TRUE(Append(f.get(), "abc").ok());
  ASSERT_TRUE(f->Sync(io_, nullptr).ok());
  ASSERT_TRUE(Append(f.get(), "def").ok());
  ASSERT_TRUE(f->RangeSync(0, 6, io_, nullptr).ok());  // sync_file_range makes nothing durable
  ASSERT_TRUE(f->Flush(io_, nullptr).ok());
  EXPECT_EQ(Read("a"), "abcdef");
  ASSERT_TRUE(f->Close(io_, nullptr).ok());
  {
    Status rs = fs_->RecoverFromPowerCut();
    ASSERT_TRUE(rs.ok()) << rs.ToString();
  }
  EXPECT_EQ(Read("a"), "abc");
}

TEST_F(CrashFileSystemTest, ANewNameNeedsADirectorySync) {
  auto a = Create("a");
  ASSERT_TRUE(Append(a.get(), "synced file, unsynced name").ok());
  ASSERT_TRUE(a->Fsync(io_, nullptr).ok());
  ASSERT_TRUE(a->Close(io_, nullptr).ok());
  {
    Status rs = fs_->RecoverFromPowerCut();
    ASSERT_TRUE(rs.ok()) << rs.ToString();
  }
  EXPECT_EQ(Read("a"), "<none>");

  auto b = Create("b");
  ASSERT_TRUE(Append(b.get(), "both").ok());
  ASSERT_TRUE(b->Fsync(io_, nullptr).ok());
  SyncDir();
  ASSERT_TRUE(b->Close(io_, nullptr).ok());
  {
    Status rs = fs_->RecoverFromPowerCut();
    ASSERT_TRUE(rs.ok()) << rs.ToString();
  }
  EXPECT_EQ(Read("b"), "both");
}

// The way RocksDB replaces CURRENT: a new file, synced, renamed over the old one, then the
// directory synced. Before that sync a power cut brings the old file back, bytes and all; a
// deleted file likewise.
TEST_F(CrashFileSystemTest, RenamesAndDeletesAreUndoneUntilTheDirectorySync) {
  auto cur = Create("CURRENT");
  ASSERT_TRUE(Append(cur.get(), "old").ok());
  ASSERT_TRUE(cur->Sync(io_, nullptr).ok());
  ASSERT_TRUE(cur->Close(io_, nullptr).ok());
  auto gone = Create("gone");
  ASSERT_TRUE(Append(gone.get(), "still here").ok());
  ASSERT_TRUE(gone->Sync(io_, nullptr).ok());
  ASSERT_TRUE(Append(gone.get(), " but not this").ok());
  ASSERT_TRUE(gone->Close(io_, nullptr).ok());
  SyncDir();

  auto tmp = Create("CURRENT.tmp");
  ASSERT_TRUE(Append(tmp.get(), "new").ok());
  ASSERT_TRUE(tmp->Sync(io_, nullptr).ok());
  ASSERT_TRUE(tmp->Close(io_, nullptr).ok());
  ASSERT_TRUE(fs_->RenameFile(Path("CURRENT.tmp"), Path("CURRENT"), io_, nullptr).ok());
  ASSERT_TRUE(fs_->DeleteFile(Path("gone"), io_, nullptr).ok());
  EXPECT_EQ(Read("CURRENT"), "new");
  EXPECT_EQ(Read("gone"), "<none>");
  {
    Status rs = fs_->RecoverFromPowerCut();
    ASSERT_TRUE(rs.ok()) << rs.ToString();
  }
  EXPECT_EQ(Read("CURRENT"), "old");
  EXPECT_EQ(Read("CURRENT.tmp"), "<none>");
  EXPECT_EQ(Read("gone"), "still here");

  tmp = Create("CURRENT.tmp");
  ASSERT_TRUE(Append(tmp.get(), "new").ok());
  ASSERT_TRUE(tmp->Sync(io_, nullptr).ok());
  ASSERT_TRUE(tmp->Close(io_, nullptr).ok());
  ASSERT_TRUE(fs_->RenameFile(Path("CURRENT.tmp"), Path("CURRENT"), io_, nullptr).ok());
  ASSERT_TRUE(fs_->DeleteFile(Path("gone"), io_, nullptr).ok());
  SyncDir();
  {
    Status rs = fs_->RecoverFromPowerCut();
    ASSERT_TRUE(rs.ok()) << rs.ToString();
  }
  EXPECT_EQ(Read("CURRENT"), "new");
  EXPECT_EQ(Read("CURRENT.tmp"), "<none>");
  EXPECT_EQ(Read("gone"), "<none>");
}

TEST_F(CrashFileSystemTest, ThePowerGoesAfterTheGivenStepAndEveryLaterChangeFails) {
  auto f = Create("a");  // step 1
  SyncDir();             // step 2
  const uint64_t start = fs_->steps();
  EXPECT_EQ(start, 2u);
  fs_->CutPowerAfter(2);
  ASSERT_TRUE(Append(f.get(), "12").ok());
  ASSERT_TRUE(f->Sync(io_, nullptr).ok());
  EXPECT_FALSE(fs_->powered());
  EXPECT_TRUE(Append(f.get(), "3").IsIOError());
  EXPECT_TRUE(f->Sync(io_, nullptr).IsIOError());
  EXPECT_TRUE(fs_->DeleteFile(Path("a"), io_, nullptr).IsIOError());
  std::unique_ptr<rocksdb::FSWritableFile> g;
  EXPECT_TRUE(fs_->NewWritableFile(Path("b"), rocksdb::FileOptions(), &g, nullptr).IsIOError());
  EXPECT_EQ(fs_->steps(), start + 2);
  EXPECT_EQ(Read("a"), "12");
  ASSERT_TRUE(f->Close(io_, nullptr).ok());
  {
    Status rs = fs_->RecoverFromPowerCut();
    ASSERT_TRUE(rs.ok()) << rs.ToString();
  }
  EXPECT_TRUE(fs_->powered());
  EXPECT_EQ(Read("a"), "12");
  EXPECT_EQ(Read("b"), "<none>");
}

// ---- A RocksBlockStore on the crash file system ----

std::string Block(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string b(kBlockSize, '\0');
  for (char& c : b) c = static_cast<char>(rng());
  return b;
}

// Batch i (from 1) puts record "k<i>", sets "last" to i and writes block i of inode 7; batches
// 3, 6, ... are sync writes and a Sync() follows batches 5, 10, .... The small data memtable
// makes RocksDB flush along the way, so SST and blob files, MANIFEST edits and WAL deletions are
// among the cut points too.
constexpr int kBatches = 24;

struct RunResult {
  int attempted = 0;     // batches handed to Write()
  int acked_synced = 0;  // the last batch a successful sync covers
};

Status RunWorkload(BlockStore* store, RunResult* r) {
  for (int i = 1; i <= kBatches; i++) {
    WriteBatch b;
    b.Put(Space::kXattr, "k" + std::to_string(i), std::to_string(i));
    b.Put(Space::kXattr, "last", std::to_string(i));
    std::string data = Block(i);
    std::string tuples(store->tuple_bytes_per_block(), '\0');
    store->GenerateBlockPi(7, i, data.data(), tuples.data());
    b.PutBlock(7, i, data.data(), tuples.data());
    const bool sync = i % 3 == 0;
    r->attempted = i;
    STABLEFS_RETURN_IF_ERROR(store->Write(b, WriteOptions{.sync = sync}));
    if (sync) r->acked_synced = i;
    if (i % 5 == 0) {
      STABLEFS_RETURN_IF_ERROR(store->Sync());
      r->acked_synced = i;
    }
  }
  return Status::Ok();
}

// The recovered store holds exactly batches 1..j for one j that no acknowledged sync rules out.
void CheckRecovered(BlockStore* store, const RunResult& r, const std::string& trace) {
  SCOPED_TRACE(trace);
  std::string v;
  int j = 0;
  Status s = store->Get(Space::kXattr, "last", &v);
  if (s.ok()) {
    j = std::stoi(v);
  } else {
    ASSERT_TRUE(s.IsNotFound()) << s.ToString();
  }
  EXPECT_GE(j, r.acked_synced);
  EXPECT_LE(j, r.attempted);
  for (int i = 1; i <= kBatches; i++) {
    SCOPED_TRACE("batch " + std::to_string(i));
    s = store->Get(Space::kXattr, "k" + std::to_string(i), &v);
    EXPECT_EQ(s.ok(), i <= j) << s.ToString();
    std::string data(kBlockSize, '\0');
    bool present = false;
    s = store->ReadBlocks(7, i, 1, data.data(), &present);  // verifies the tuples
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(present, i <= j);
    if (present) {
      EXPECT_EQ(data, Block(i));
    }
  }
}

// With `segments`, every block goes to a segment file (runs of one block) and a segment is
// sealed every few batches, so that segment creation, appends, syncs and seals are cut points too.
RocksOptions SmallRocksOptions(rocksdb::Env* env, bool segments) {
  RocksOptions o;
  o.data_write_buffer_bytes = 64 << 10;  // RocksDB's minimum: a flush every 16 blocks
  o.block_cache_bytes = 1 << 20;
  o.env = env;
  if (segments) {
    o.segment_min_run = 1;
    o.segment_bytes = 8 * kBlockSize;
  }
  return o;
}

class CrashFileSystemStoreTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Layouts, CrashFileSystemStoreTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Segments" : "DataFamily"; });

TEST_P(CrashFileSystemStoreTest, APowerCutAfterEveryWriteOrSyncLosesNothingSynced) {
  const bool segments = GetParam();
  auto SmallRocksOptions = [segments](rocksdb::Env* env) {
    return stablefs::SmallRocksOptions(env, segments);
  };
  TempDir dir;
  const std::string tmpl = dir.Sub("template"), store_path = dir.Sub("store");
  {
    std::unique_ptr<RocksBlockStore> s;
    ASSERT_TRUE(
        RocksBlockStore::Create(tmpl, CreateOptions(), SmallRocksOptions(nullptr), &s).ok());
  }
  // How many steps an uncut run takes (background flushes make it vary a little).
  uint64_t total = 0;
  {
    std::filesystem::copy(tmpl, store_path, std::filesystem::copy_options::recursive);
    auto fs = std::make_shared<CrashFileSystem>();
    std::unique_ptr<rocksdb::Env> env = NewCrashEnv(fs);
    std::unique_ptr<RocksBlockStore> s;
    ASSERT_TRUE(RocksBlockStore::Open(store_path, SmallRocksOptions(env.get()), &s).ok());
    RunResult r;
    ASSERT_TRUE(RunWorkload(s.get(), &r).ok());
    s.reset();
    total = fs->steps();
    std::filesystem::remove_all(store_path);
  }
  ASSERT_GT(total, uint64_t{kBatches});
  int cut_in_open = 0, cut_in_workload = 0;
  for (uint64_t n = 0; n <= total; n++) {
    std::filesystem::copy(tmpl, store_path, std::filesystem::copy_options::recursive);
    auto fs = std::make_shared<CrashFileSystem>();
    std::unique_ptr<rocksdb::Env> env = NewCrashEnv(fs);
    fs->CutPowerAfter(n);
    RunResult r;
    {
      std::unique_ptr<RocksBlockStore> s;
      if (RocksBlockStore::Open(store_path, SmallRocksOptions(env.get()), &s).ok()) {
        Status ws = RunWorkload(s.get(), &r);
        if (!ws.ok()) {
          EXPECT_FALSE(fs->powered()) << ws.ToString();
          // After a failed write a sync reports the error; it must not touch the failed WAL
          // writer (RocksDB aborts the process when SyncWAL() does).
          EXPECT_FALSE(s->Sync().ok());
        }
        cut_in_workload++;
      } else {
        EXPECT_FALSE(fs->powered());
        cut_in_open++;
      }
    }  // the store closes; its writes fail while the power is out
    {
      Status rs = fs->RecoverFromPowerCut();
      ASSERT_TRUE(rs.ok()) << rs.ToString();
    }
    {
      std::unique_ptr<RocksBlockStore> s;
      Status os = RocksBlockStore::Open(store_path, SmallRocksOptions(nullptr), &s);
      ASSERT_TRUE(os.ok()) << "cut after step " << n << ": " << os.ToString();
      CheckRecovered(s.get(), r, "cut after step " + std::to_string(n));
    }
    std::filesystem::remove_all(store_path);
    if (HasFatalFailure()) return;
  }
  std::printf("power cuts checked: %llu (%d during open, %d during the workload)\n",
              static_cast<unsigned long long>(total + 1), cut_in_open, cut_in_workload);
  EXPECT_GT(cut_in_open, 0);
  EXPECT_GT(cut_in_workload, kBatches);
}

}  // namespace
}  // namespace stablefs
