// Copyright (c) the stablefs authors.
//
// Namespace changes over a store whose next write fails: each change returns EIO and leaves the
// filesystem in memory exactly as the store holds it (NamespaceTxn in fs/filesystem.h). A link
// count lowered in memory alone would let a later forget free an inode that still has a name;
// a cookie or link count raised in memory alone would be written by the next change.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "storage/fault_block_store.h"
#include "storage/mem_block_store.h"

namespace stablefs {
namespace {

// Every name under the root, with what stat says of its inode.
using Tree = std::map<std::string, std::string>;

void Walk(Filesystem* fs, uint64_t dir, const std::string& path, Tree* tree) {
  std::vector<Filesystem::DirEntry> entries;
  ASSERT_EQ(fs->ReadDir(dir, 0, false,
                        [&](const Filesystem::DirEntry& e, const struct stat*) {
                          entries.push_back(e);
                          return true;
                        }),
            0);
  for (const auto& e : entries) {
    if (e.name == "." || e.name == "..") continue;
    struct stat st;
    ASSERT_EQ(fs->GetAttr(e.ino, &st), 0) << path << e.name;
    std::string& s = (*tree)[path + e.name];
    s = "ino " + std::to_string(st.st_ino) + " mode " + std::to_string(st.st_mode) + " nlink " +
        std::to_string(st.st_nlink) + " size " + std::to_string(st.st_size) + " mtime " +
        std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + " ctime " +
        std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec) + " cookie " +
        std::to_string(e.next);
    if (S_ISDIR(st.st_mode)) Walk(fs, e.ino, path + e.name + "/", tree);
  }
}

Tree Snapshot(Filesystem* fs) {
  Tree t;
  Walk(fs, kRootIno, "", &t);
  return t;
}

class NamespaceFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::unique_ptr<MemBlockStore> mem;
    ASSERT_TRUE(MemBlockStore::Create(CreateOptions(), &mem).ok());
    fault_ = std::make_unique<FaultBlockStore>(std::move(mem));
    std::unique_ptr<Filesystem> fs;
    ASSERT_TRUE(Filesystem::Open(fault_.get(), FilesystemOptions(), &fs).ok());
    struct stat st;
    ASSERT_EQ(fs->Mkdir(kRootIno, "d1", 0755, c_, &st), 0);
    d1_ = st.st_ino;
    ASSERT_EQ(fs->Mkdir(kRootIno, "d2", 0755, c_, &st), 0);
    d2_ = st.st_ino;
    ASSERT_EQ(fs->Mkdir(kRootIno, "e", 0755, c_, &st), 0);
    ASSERT_EQ(fs->Mkdir(kRootIno, "e3", 0755, c_, &st), 0);
    std::unique_ptr<OpenFile> f;
    ASSERT_EQ(fs->Create(kRootIno, "f", 0644, O_RDWR, c_, &st, &f), 0);
    f_ = st.st_ino;
    size_t done;
    ASSERT_EQ(fs->Write(f.get(), 0, "hello", 5, &done), 0);
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_EQ(fs->Link(f_, d1_, "g", &st), 0);
    ASSERT_EQ(fs->Create(d2_, "x", 0644, O_RDWR, c_, &st, &f), 0);
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_EQ(fs->Symlink("target", kRootIno, "s", c_, &st), 0);
    ASSERT_TRUE(fs->Shutdown().ok());
    fs.reset();
    // A fresh mount: the kernel holds no lookup, so a link count that reached 0 in memory
    // would free the inode at once.
    ASSERT_TRUE(Filesystem::Open(fault_.get(), FilesystemOptions(), &fs_).ok());
  }

  // Runs op with the store's next write failing: EIO, and nothing in memory changed.
  void ExpectFailsAndChangesNothing(const char* what, const std::function<int()>& op) {
    SCOPED_TRACE(what);
    ASSERT_EQ(fs_->SyncFs(), 0);
    const Tree before = Snapshot(fs_.get());
    fault_->InjectWriteError(FaultBlockStore::kAnyIno, Status::IOError("injected"), 1);
    EXPECT_EQ(op(), EIO);
    fault_->ClearFaults();
    EXPECT_EQ(Snapshot(fs_.get()), before);
  }

  Filesystem::Caller c_;
  std::unique_ptr<FaultBlockStore> fault_;
  std::unique_ptr<Filesystem> fs_;
  uint64_t d1_ = 0, d2_ = 0, f_ = 0;
};

TEST_F(NamespaceFaultTest, EveryChangeThatFailsToCommitLeavesMemoryAsTheStoreHoldsIt) {
  struct stat st;
  std::unique_ptr<OpenFile> f;
  auto* fs = fs_.get();
  ExpectFailsAndChangesNothing(
      "mknod", [&] { return fs->Mknod(kRootIno, "n", S_IFIFO | 0644, 0, c_, &st); });
  ExpectFailsAndChangesNothing("mkdir", [&] { return fs->Mkdir(d1_, "n", 0755, c_, &st); });
  ExpectFailsAndChangesNothing("symlink", [&] { return fs->Symlink("t", kRootIno, "n", c_, &st); });
  ExpectFailsAndChangesNothing("create",
                               [&] { return fs->Create(d2_, "n", 0644, O_RDWR, c_, &st, &f); });
  ExpectFailsAndChangesNothing("link", [&] { return fs->Link(f_, d2_, "n", &st); });
  ExpectFailsAndChangesNothing("unlink of one of two links",
                               [&] { return fs->Unlink(kRootIno, "f"); });
  ExpectFailsAndChangesNothing("unlink of the last link", [&] { return fs->Unlink(d2_, "x"); });
  ExpectFailsAndChangesNothing("rmdir", [&] { return fs->Rmdir(kRootIno, "e"); });
  ExpectFailsAndChangesNothing("rename",
                               [&] { return fs->Rename(kRootIno, "f", kRootIno, "n", 0, c_); });
  ExpectFailsAndChangesNothing("rename of a directory to another directory",
                               [&] { return fs->Rename(kRootIno, "e", d1_, "e2", 0, c_); });
  ExpectFailsAndChangesNothing("rename over the last link of another file",
                               [&] { return fs->Rename(kRootIno, "s", d2_, "x", 0, c_); });
  ExpectFailsAndChangesNothing("rename over an empty directory",
                               [&] { return fs->Rename(kRootIno, "e", kRootIno, "e3", 0, c_); });
  ExpectFailsAndChangesNothing("exchange across directories", [&] {
    return fs->Rename(kRootIno, "f", d2_, "x", RENAME_EXCHANGE, c_);
  });
  ExpectFailsAndChangesNothing("exchange of two directories", [&] {
    return fs->Rename(kRootIno, "d1", kRootIno, "d2", RENAME_EXCHANGE, c_);
  });
  ExpectFailsAndChangesNothing("rename with a whiteout", [&] {
    return fs->Rename(kRootIno, "f", kRootIno, "n", RENAME_WHITEOUT, c_);
  });

  // The names whose removal failed still reach their inodes and data.
  ASSERT_EQ(fs->Lookup(d2_, "x", &st), 0);
  fs->Forget(st.st_ino, 1);
  ASSERT_EQ(fs->Lookup(kRootIno, "f", &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_size, 5);
  fs->Forget(st.st_ino, 1);

  // Later changes that commit keep memory and the store in step; a reopen sees what memory saw,
  // and a new inode takes a number no existing one has.
  ASSERT_EQ(fs->Mknod(kRootIno, "n", S_IFIFO | 0644, 0, c_, &st), 0);
  ASSERT_EQ(fs->Rename(kRootIno, "f", d2_, "x", 0, c_), 0);
  ASSERT_EQ(fs->Rmdir(kRootIno, "e"), 0);
  const Tree live = Snapshot(fs);
  ASSERT_TRUE(fs_->Shutdown().ok());
  fs_.reset();
  ASSERT_TRUE(Filesystem::Open(fault_.get(), FilesystemOptions(), &fs_).ok());
  EXPECT_EQ(Snapshot(fs_.get()), live);
  ASSERT_EQ(fs_->Mknod(kRootIno, "m", S_IFIFO | 0644, 0, c_, &st), 0);
  for (const auto& [name, s] : live) {
    EXPECT_EQ(s.find("ino " + std::to_string(st.st_ino) + " "), std::string::npos) << name;
  }
  ASSERT_TRUE(fs_->Shutdown().ok());
  fs_.reset();
  FsckReport report;
  ASSERT_TRUE(Fsck(fault_->base(), false, &report).ok());
  EXPECT_EQ(report.ExitCode(), 0) << report.ToJson();
}

}  // namespace
}  // namespace stablefs
