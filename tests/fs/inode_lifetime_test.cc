// Copyright (c) the stablefs authors.
//
// The end of an inode's life in memory (Filesystem::MaybeDrop and Dispose in fs/inode.cc): the
// final forget or release takes the inode out of the table under ns_mu_, but writes back its
// dirty pages after ns_mu_ is released, so that a long final writeback does not hold up every
// namespace change; meanwhile its number is busy, and a lookup of it waits until the writeback
// has ended instead of loading a second, stale copy from the store.
//
// The deterministic tests pause the final writeback after its PI is generated (the page cache's
// writeback hook) and act while it is paused; the stress test races forgets, lookups, reads and
// unlinks of the same names.
//
// Also here: the inode record's size and block count live in one place, the file's
// AddressSpace, and an attribute change that writes the record while a writeback commits a new
// size must not write the old one back (Inode::CommitWithInode publishes the new size under
// meta_mu).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fs/filesystem.h"
#include "storage/format.h"
#include "storage/mem_block_store.h"

namespace stablefs {
namespace {

// A gate a paused writeback waits at until the test opens it.
class Gate {
 public:
  void Arrive() {
    std::unique_lock<std::mutex> l(mu_);
    arrived_ = true;
    cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
  }
  void WaitArrived() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return arrived_; });
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool arrived_ = false;
  bool open_ = false;
};

class InodeLifetimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MemBlockStore::Create(CreateOptions(), &store_).ok());
    FilesystemOptions options;
    // Only the final forget writes the file back: the flusher never finds it due.
    options.cache.dirty_expire_ms = 3'600'000;
    options.cache.writeback_interval_ms = 3'600'000;
    ASSERT_TRUE(Filesystem::Open(store_.get(), options, &fs_).ok());
  }
  void TearDown() override {
    if (fs_) {
      fs_->cache()->TEST_SetWritebackHook(nullptr);
      fs_->TEST_SetBusyWaitHook(nullptr);
      EXPECT_TRUE(fs_->Shutdown().ok());
    }
  }

  // Creates `name` holding `data` (dirty in the cache, not written back), closes it and leaves
  // one kernel reference (the create's lookup). Returns its number.
  uint64_t CreateDirty(const std::string& name, const std::string& data) {
    struct stat st;
    std::unique_ptr<OpenFile> f;
    EXPECT_EQ(fs_->Create(kRootIno, name, 0644, O_RDWR, c_, &st, &f), 0);
    size_t done = 0;
    EXPECT_EQ(fs_->Write(f.get(), 0, data.data(), data.size(), &done), 0);
    EXPECT_EQ(done, data.size());
    EXPECT_EQ(fs_->Release(std::move(f)), 0);
    return st.st_ino;
  }

  std::string ReadAll(uint64_t ino) {
    std::unique_ptr<OpenFile> f;
    if (int e = fs_->Open(ino, O_RDONLY, &f)) return "open: errno " + std::to_string(e);
    std::string out(1 << 16, '\0');
    size_t done = 0;
    int e = fs_->Read(f.get(), 0, out.size(), out.data(), &done);
    EXPECT_EQ(fs_->Release(std::move(f)), 0);
    if (e != 0) return "read: errno " + std::to_string(e);
    out.resize(done);
    return out;
  }

  // Pauses the next writeback of `ino` at the gate.
  void PauseWritebackOf(uint64_t ino, Gate* gate) {
    fs_->cache()->TEST_SetWritebackHook([ino, gate](AddressSpace* as, uint64_t, size_t) {
      if (as->ino() == ino) gate->Arrive();
    });
  }

  std::unique_ptr<MemBlockStore> store_;
  std::unique_ptr<Filesystem> fs_;
  Filesystem::Caller c_;
};

TEST_F(InodeLifetimeTest, AFinalForgetWritesBackWithoutHoldingTheNamespaceLock) {
  const uint64_t ino = CreateDirty("f", "hello");
  Gate gate;
  PauseWritebackOf(ino, &gate);
  std::thread forget([&] { fs_->Forget(ino, 1); });
  gate.WaitArrived();
  // The final writeback of f is paused: namespace changes go on (this would deadlock if the
  // forget still held ns_mu_: a test timeout, not a wrong answer).
  struct stat st;
  ASSERT_EQ(fs_->Mkdir(kRootIno, "d", 0755, c_, &st), 0);
  ASSERT_EQ(fs_->Lookup(kRootIno, "d", &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  gate.Open();
  forget.join();
  ASSERT_EQ(fs_->Lookup(kRootIno, "f", &st), 0);
  EXPECT_EQ(st.st_size, 5);
  EXPECT_EQ(ReadAll(ino), "hello");
}

TEST_F(InodeLifetimeTest, ALookupDuringTheFinalWritebackWaitsAndSeesTheWrittenInode) {
  const uint64_t ino = CreateDirty("f", "written by the final writeback");
  Gate gate;
  PauseWritebackOf(ino, &gate);
  std::mutex mu;
  std::condition_variable cv;
  bool waiting = false, looked_up = false;
  fs_->TEST_SetBusyWaitHook([&](uint64_t busy) {
    if (busy != ino) return;
    std::lock_guard<std::mutex> l(mu);
    waiting = true;
    cv.notify_all();
  });
  std::thread forget([&] { fs_->Forget(ino, 1); });
  gate.WaitArrived();
  // The store still holds the record of an empty file: a lookup that loaded it now would give a
  // second copy of the inode, size 0, beside the one being written back.
  struct stat st = {};
  int lookup_err = -1;
  std::thread lookup([&] {
    lookup_err = fs_->Lookup(kRootIno, "f", &st);
    std::lock_guard<std::mutex> l(mu);
    looked_up = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return waiting || looked_up; });
    EXPECT_TRUE(waiting) << "the lookup finished while the inode's final writeback was paused";
    EXPECT_FALSE(looked_up);
  }
  gate.Open();
  forget.join();
  lookup.join();
  ASSERT_EQ(lookup_err, 0);
  EXPECT_EQ(st.st_ino, ino);
  EXPECT_EQ(st.st_size, 30);
  EXPECT_EQ(ReadAll(ino), "written by the final writeback");
}

TEST_F(InodeLifetimeTest, AnUnlinkOfAnOpenFileFreesItAtTheLastReleaseOutsideTheNamespaceLock) {
  const uint64_t ino = CreateDirty("f", "doomed");
  std::unique_ptr<OpenFile> f;
  ASSERT_EQ(fs_->Open(ino, O_RDWR, &f), 0);
  fs_->Forget(ino, 1);  // the kernel lets go of its lookup; the open handle keeps the inode
  ASSERT_EQ(fs_->Unlink(kRootIno, "f"), 0);
  EXPECT_EQ(ReadAll(ino), "doomed");  // still readable through its number while open
  ASSERT_EQ(fs_->Release(std::move(f)), 0);
  struct stat st;
  EXPECT_EQ(fs_->GetAttr(ino, &st), ENOENT);
  std::string v;
  EXPECT_TRUE(store_->Get(Space::kInode, InodeKey(ino), &v).IsNotFound());
  uint64_t blocks = 1;
  ASSERT_TRUE(store_->CountBlocks(ino, 0, UINT64_MAX, &blocks).ok());
  EXPECT_EQ(blocks, 0u);
}

// What a file of the stress test holds: a function of its inode number, so any reader can check
// what it got.
std::string Contents(uint64_t ino) {
  std::string unit = "inode " + std::to_string(ino) + ";";
  std::string out;
  while (out.size() < 100 + (ino * 997) % 9000) out += unit;
  return out;
}

// Threads look up, read and forget the same few names while others unlink and recreate them,
// each creator's final forget writing its file back: every lookup sees the file whole, never a
// stale or empty copy of an inode that was still being written back.
TEST_F(InodeLifetimeTest, StressForgetLookupAndUnlinkOfTheSameNames) {
  constexpr int kThreads = 4, kRounds = 1500, kNames = 3;
  std::atomic<int> failures{0};
  std::mutex name_mu[kNames];  // creators and unlinkers of one name, as the directory's i_rwsem
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds && failures == 0; r++) {
        const int n = (t * 7 + r) % kNames;
        const std::string name = "n" + std::to_string(n);
        struct stat st;
        if (fs_->Lookup(kRootIno, name, &st) == 0) {
          const std::string want = Contents(st.st_ino);
          if (st.st_size != static_cast<off_t>(want.size()) || ReadAll(st.st_ino) != want) {
            ADD_FAILURE() << name << " inode " << st.st_ino << " size " << st.st_size;
            failures++;
          }
          fs_->Forget(st.st_ino, 1);
          if (r % 5 == t % 5) {
            std::lock_guard<std::mutex> l(name_mu[n]);
            const int e = fs_->Unlink(kRootIno, name);
            if (e != 0 && e != ENOENT) {
              ADD_FAILURE() << "unlink " << name << ": errno " << e;
              failures++;
            }
          }
          continue;
        }
        std::lock_guard<std::mutex> l(name_mu[n]);
        // Written under a name of its own, then renamed into place: a reader never sees it
        // before it is whole.
        const std::string tmp = "tmp" + std::to_string(t);
        std::unique_ptr<OpenFile> f;
        if (int e = fs_->Create(kRootIno, tmp, 0644, O_RDWR | O_EXCL, c_, &st, &f); e != 0) {
          ADD_FAILURE() << "create " << tmp << ": errno " << e;
          failures++;
          continue;
        }
        const std::string data = Contents(st.st_ino);
        size_t done = 0;
        if (int w = fs_->Write(f.get(), 0, data.data(), data.size(), &done); w != 0) {
          ADD_FAILURE() << "write " << tmp << ": errno " << w;
          failures++;
        }
        EXPECT_EQ(fs_->Release(std::move(f)), 0);
        if (int e = fs_->Rename(kRootIno, tmp, kRootIno, name, RENAME_NOREPLACE, c_);
            e != 0 && e != EEXIST) {
          ADD_FAILURE() << "rename to " << name << ": errno " << e;
          failures++;
        } else if (e == EEXIST) {
          EXPECT_EQ(fs_->Unlink(kRootIno, tmp), 0);
        }
        fs_->Forget(st.st_ino, 1);  // the final forget: writes the file back
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// ---- The record's size against attribute changes ----

constexpr int kSetMode = 1 << 0;  // FUSE_SET_ATTR_MODE

InodeRecord StoredRecord(BlockStore* store, uint64_t ino) {
  std::string v;
  InodeRecord r;
  EXPECT_TRUE(store->Get(Space::kInode, InodeKey(ino), &v).ok());
  EXPECT_TRUE(r.DecodeFrom(v).ok());
  return r;
}

// A chmod while the writeback that extends the file is paused after its PI (before its commit)
// writes the size the store had; the commit then writes the new one, and the chmod's mode
// stays.
TEST_F(InodeLifetimeTest, AChmodDuringAWritebackKeepsBothTheModeAndTheNewSize) {
  struct stat st;
  std::unique_ptr<OpenFile> f;
  ASSERT_EQ(fs_->Create(kRootIno, "f", 0644, O_RDWR, c_, &st, &f), 0);
  const uint64_t ino = st.st_ino;
  const std::string data(3 * 4096 + 100, 'x');
  size_t done = 0;
  ASSERT_EQ(fs_->Write(f.get(), 0, data.data(), data.size(), &done), 0);
  Gate gate;
  PauseWritebackOf(ino, &gate);
  std::thread fsync([&] { EXPECT_EQ(fs_->Fsync(f.get(), /*datasync=*/true), 0); });
  gate.WaitArrived();
  struct stat attr {};
  attr.st_mode = 0600;
  ASSERT_EQ(fs_->SetAttr(ino, attr, kSetMode, c_, &st), 0);
  EXPECT_EQ(StoredRecord(store_.get(), ino).size, 0u);  // the writeback has not committed
  gate.Open();
  fsync.join();
  const InodeRecord r = StoredRecord(store_.get(), ino);
  EXPECT_EQ(r.size, data.size());
  EXPECT_EQ(r.blocks, 4u);
  EXPECT_EQ(r.mode & 07777, 0600u);
  EXPECT_EQ(fs_->Release(std::move(f)), 0);
}

// Appends with fdatasync against a loop of chmods: after each fdatasync the store's record
// carries at least the size it acknowledged (a chmod that wrote a size read before a commit
// and stored after it would take it back), and at the end exactly the file's size and blocks.
TEST_F(InodeLifetimeTest, StressAppendsAndFdatasyncAgainstChmods) {
  constexpr int kAppends = 300;
  struct stat st;
  std::unique_ptr<OpenFile> f;
  ASSERT_EQ(fs_->Create(kRootIno, "f", 0644, O_RDWR, c_, &st, &f), 0);
  const uint64_t ino = st.st_ino;
  std::atomic<bool> done_writing{false};
  std::atomic<int> chmods{0};
  std::thread chmodder([&] {
    struct stat attr {
    }, out;
    for (int i = 0; !done_writing; i++) {
      attr.st_mode = (i % 2) ? 0600 : 0644;
      EXPECT_EQ(fs_->SetAttr(ino, attr, kSetMode, c_, &out), 0);
      chmods++;
    }
  });
  const std::string chunk(1000, 'a');
  // The chmods must run throughout the appends, not only after them on a loaded machine: every
  // tenth append waits until at least one more chmod has been done since the last such wait.
  int seen = 0;
  for (int i = 0; i < kAppends; i++) {
    if (i % 10 == 0) {
      while (chmods.load() <= seen) std::this_thread::yield();
      seen = chmods.load();
    }
    size_t done = 0;
    ASSERT_EQ(fs_->Write(f.get(), uint64_t{1000} * i, chunk.data(), chunk.size(), &done), 0);
    ASSERT_EQ(fs_->Fsync(f.get(), /*datasync=*/true), 0);
    ASSERT_GE(StoredRecord(store_.get(), ino).size, uint64_t{1000} * (i + 1)) << "append " << i;
  }
  done_writing = true;
  chmodder.join();
  EXPECT_GT(chmods.load(), 0);
  const InodeRecord r = StoredRecord(store_.get(), ino);
  EXPECT_EQ(r.size, uint64_t{1000} * kAppends);
  EXPECT_EQ(r.blocks, (uint64_t{1000} * kAppends + 4095) / 4096);
  EXPECT_EQ(fs_->Release(std::move(f)), 0);
}

}  // namespace
}  // namespace stablefs
