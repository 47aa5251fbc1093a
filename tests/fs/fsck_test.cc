// fsck over a store built through the real Filesystem, then damaged record by record below the
// filesystem: each damage is found with its inode; -y repairs the metadata cases and leaves data
// damage reported; a second pass is clean but for the data.
#include "fs/fsck.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "fs/filesystem.h"
#include "storage/mem_block_store.h"

namespace stablefs {
namespace {

bool Has(const FsckReport& r, uint64_t ino, const std::string& what) {
  for (const FsckProblem& p : r.problems) {
    if (p.ino == ino && p.what.find(what) != std::string::npos) return true;
  }
  return false;
}

TEST(FsckTest, FindsEachDamageAndRepairsWhatNeedsNoGuessing) {
  std::unique_ptr<MemBlockStore> store;
  ASSERT_TRUE(MemBlockStore::Create(CreateOptions(), &store).ok());
  uint64_t file_ino, dir_ino, gone_ino;
  {
    std::unique_ptr<Filesystem> fs;
    ASSERT_TRUE(Filesystem::Open(store.get(), FilesystemOptions(), &fs).ok());
    Filesystem::Caller c;
    struct stat st;
    std::unique_ptr<OpenFile> f;
    ASSERT_EQ(fs->Create(kRootIno, "file", 0644, O_RDWR, c, &st, &f), 0);
    file_ino = st.st_ino;
    std::string data(3 * 4096, 'd');
    size_t done;
    ASSERT_EQ(fs->Write(f.get(), 0, data.data(), data.size(), &done), 0);
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_EQ(fs->Mkdir(kRootIno, "dir", 0755, c, &st), 0);
    dir_ino = st.st_ino;
    ASSERT_EQ(fs->Mknod(dir_ino, "gone", S_IFREG | 0644, 0, c, &st), 0);
    gone_ino = st.st_ino;
    ASSERT_EQ(fs->SetXattr(gone_ino, "user.x", "1", 0, c), 0);
    ASSERT_EQ(fs->Shutdown().ok(), true);
  }
  FsckReport clean;
  ASSERT_TRUE(Fsck(store.get(), false, &clean).ok());
  EXPECT_EQ(clean.ExitCode(), 0) << clean.ToJson();
  EXPECT_EQ(clean.blocks, 3u);

  // The damage, below the filesystem.
  std::string v;
  ASSERT_TRUE(store->Get(Space::kInode, InodeKey(file_ino), &v).ok());
  InodeRecord rec;
  ASSERT_TRUE(rec.DecodeFrom(v).ok());
  rec.nlink = 5;         // wrong link count
  rec.size = 4096 + 10;  // blocks 2 lies past EOF now
  v.clear();
  rec.EncodeTo(&v);
  WriteBatch b;
  b.Put(Space::kInode, InodeKey(file_ino), v);
  b.Delete(Space::kInode, InodeKey(gone_ino));  // its entry and xattr now dangle
  std::string d, t;
  ASSERT_TRUE(store->ReadBlockRaw(file_ino, 0, &d, &t).ok());
  d[7] ^= 1;  // a damaged data block
  b.PutBlock(file_ino, 0, d.data(), t.data());
  ASSERT_TRUE(store->Write(b, WriteOptions{.verify_pi = false}).ok());

  FsckReport found;
  ASSERT_TRUE(Fsck(store.get(), false, &found).ok());
  EXPECT_EQ(found.ExitCode(), 4);
  EXPECT_TRUE(Has(found, file_ino, "link count 5, expected 1")) << found.ToJson();
  EXPECT_TRUE(Has(found, file_ino, "blocks past the size")) << found.ToJson();
  EXPECT_TRUE(Has(found, file_ino, "guard mismatch")) << found.ToJson();
  EXPECT_TRUE(Has(found, dir_ino, "which does not exist")) << found.ToJson();
  EXPECT_TRUE(Has(found, gone_ino, "xattrs of an inode that does not exist")) << found.ToJson();
  for (const FsckProblem& p : found.problems) EXPECT_FALSE(p.fixed);

  FsckReport repaired;
  ASSERT_TRUE(Fsck(store.get(), true, &repaired).ok());
  EXPECT_EQ(repaired.ExitCode(), 4);  // the data block stays damaged: never re-protected
  FsckReport after;
  ASSERT_TRUE(Fsck(store.get(), false, &after).ok());
  ASSERT_EQ(after.problems.size(), 1u) << after.ToJson();
  EXPECT_TRUE(Has(after, file_ino, "guard mismatch"));
  EXPECT_EQ(after.problems[0].path, "/file");
  EXPECT_NE(after.ToJson().find("\"exit\": 4"), std::string::npos);
}

}  // namespace
}  // namespace stablefs
