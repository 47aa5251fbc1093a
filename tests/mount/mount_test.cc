// Integration tests on real FUSE mounts: the daemon runs in the foreground as a child of the test
// (so the test owns its PID), and everything is done through system calls on the mount. Each test
// unmounts what it mounted and reaps the daemon, also when it fails.
#include "tests/util/mount.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fs/stats.h"
#include "storage/rocks_block_store.h"
#include "tests/util/files.h"
#include "tests/util/temp_dir.h"

namespace stablefs {
namespace {

using testing::Mount;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data, bool do_fsync = false) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  if (do_fsync) {
    ASSERT_EQ(fsync(fd), 0);
  }
  ASSERT_EQ(close(fd), 0);
}

std::string RandomData(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

int Errno(int rc) { return rc == 0 ? 0 : errno; }

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  }
};

TEST_F(MountTest, DataAndNamespaceSurviveUnmountAndRemount) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string big = RandomData(3 * 1024 * 1024 + 123, 1);
  WriteFile(m.Path("big"), big);
  WriteFile(m.Path("small"), "hello\n");
  ASSERT_EQ(mkdir(m.Path("dir").c_str(), 0750), 0);
  ASSERT_EQ(mkdir(m.Path("dir/sub").c_str(), 0700), 0);
  ASSERT_EQ(symlink("../small", m.Path("dir/link").c_str()), 0);
  ASSERT_EQ(link(m.Path("small").c_str(), m.Path("dir/hard").c_str()), 0);
  ASSERT_EQ(rename(m.Path("big").c_str(), m.Path("dir/sub/big").c_str()), 0);
  ASSERT_EQ(mkfifo(m.Path("fifo").c_str(), 0600), 0);
  ASSERT_EQ(truncate(m.Path("small").c_str(), 3), 0);
  ASSERT_EQ(m.Stop(), 0);

  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("dir/sub/big")), big);
  EXPECT_EQ(ReadFile(m.Path("small")), "hel");
  EXPECT_EQ(ReadFile(m.Path("dir/link")), "hel");
  struct stat st;
  ASSERT_EQ(stat(m.Path("dir/hard").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_size, 3);
  ASSERT_EQ(stat(m.Path("dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFDIR | 0750u);
  EXPECT_EQ(st.st_nlink, 3u);  // ".", the entry, and sub's ".."
  ASSERT_EQ(stat(m.Path("dir/sub/big").c_str(), &st), 0);
  EXPECT_EQ(st.st_blocks, static_cast<blkcnt_t>((big.size() + 4095) / 4096 * 8));
  ASSERT_EQ(lstat(m.Path("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  char target[64] = {};
  ASSERT_EQ(readlink(m.Path("dir/link").c_str(), target, sizeof(target)), 8);
  EXPECT_STREQ(target, "../small");
  EXPECT_NE(access(m.Path("big").c_str(), F_OK), 0);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, OpenWithOTruncEmptiesTheFile) {
  // Found by fsx: with atomic O_TRUNC the truncation is the open's job.
  Mount m;
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("f"), RandomData(7000, 12), /*do_fsync=*/true);
  int fd = open(m.Path("f").c_str(), O_RDWR | O_TRUNC);
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_blocks, 0);
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("f")), "");
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, DirtyPagesAreWrittenBackAtUnmount) {
  // A long expiry: nothing is written back before the unmount does it.
  Mount m({"writeback_expire_ms=600000"});
  ASSERT_TRUE(m.Start());
  const std::string data = RandomData(8 * 1024 * 1024, 2);
  WriteFile(m.Path("f"), data);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("f")), data);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, SigkillAfterFsyncLosesNothingTheFsyncCovered) {
  Mount m({"writeback_expire_ms=600000"});
  ASSERT_TRUE(m.Start());
  const std::string synced = RandomData(1024 * 1024 + 7, 3);
  WriteFile(m.Path("synced"), synced, /*do_fsync=*/true);
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  WriteFile(m.Path("d/also"), "also synced", /*do_fsync=*/true);  // its name too: WAL order
  WriteFile(m.Path("unsynced"), RandomData(4096, 4));
  m.Crash();
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("synced")), synced);
  EXPECT_EQ(ReadFile(m.Path("d/also")), "also synced");
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, ErrorsAreTheOnesLinuxFilesystemsReturn) {
  Mount m;
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  WriteFile(m.Path("d/f"), "x");
  EXPECT_EQ(Errno(open(m.Path("missing").c_str(), O_RDONLY) >= 0 ? 0 : -1), ENOENT);
  EXPECT_EQ(Errno(mkdir(m.Path("d").c_str(), 0755)), EEXIST);
  EXPECT_EQ(Errno(rmdir(m.Path("d").c_str())), ENOTEMPTY);
  EXPECT_EQ(Errno(unlink(m.Path("d").c_str())), EISDIR);
  EXPECT_EQ(Errno(rmdir(m.Path("d/f").c_str())), ENOTDIR);
  EXPECT_EQ(Errno(mkdir(m.Path("d/f/x").c_str(), 0755)), ENOTDIR);
  EXPECT_EQ(Errno(mkdir(m.Path(std::string(256, 'n')).c_str(), 0755)), ENAMETOOLONG);
  EXPECT_EQ(mkdir(m.Path(std::string(255, 'n')).c_str(), 0755), 0);
  EXPECT_EQ(Errno(link(m.Path("d").c_str(), m.Path("dlink").c_str())), EPERM);
  EXPECT_EQ(Errno(rename(m.Path("d").c_str(), m.Path("d/sub").c_str())), EINVAL);
  WriteFile(m.Path("a"), "A");
  WriteFile(m.Path("b"), "B");
  EXPECT_EQ(Errno(renameat2(AT_FDCWD, m.Path("a").c_str(), AT_FDCWD, m.Path("b").c_str(),
                            RENAME_NOREPLACE)),
            EEXIST);
  EXPECT_EQ(
      renameat2(AT_FDCWD, m.Path("a").c_str(), AT_FDCWD, m.Path("b").c_str(), RENAME_EXCHANGE), 0);
  EXPECT_EQ(ReadFile(m.Path("a")), "B");
  EXPECT_EQ(ReadFile(m.Path("b")), "A");
  EXPECT_EQ(Errno(renameat2(AT_FDCWD, m.Path("a").c_str(), AT_FDCWD, m.Path("none").c_str(),
                            RENAME_EXCHANGE)),
            ENOENT);
  // RENAME_WHITEOUT leaves a 0:0 character device at the old name.
  WriteFile(m.Path("w"), "W");
  ASSERT_EQ(
      renameat2(AT_FDCWD, m.Path("w").c_str(), AT_FDCWD, m.Path("w2").c_str(), RENAME_WHITEOUT), 0)
      << strerror(errno);
  struct stat wst;
  ASSERT_EQ(lstat(m.Path("w").c_str(), &wst), 0);
  EXPECT_TRUE(S_ISCHR(wst.st_mode));
  EXPECT_EQ(wst.st_rdev, 0u);
  EXPECT_EQ(ReadFile(m.Path("w2")), "W");
  EXPECT_EQ(Errno(renameat2(AT_FDCWD, m.Path("a").c_str(), AT_FDCWD, m.Path("b").c_str(),
                            RENAME_EXCHANGE | RENAME_WHITEOUT)),
            EINVAL);
  EXPECT_EQ(rename(m.Path("a").c_str(), m.Path("b").c_str()), 0);  // replaces b
  EXPECT_EQ(ReadFile(m.Path("b")), "B");
  EXPECT_EQ(Errno(rename(m.Path("b").c_str(), m.Path("d").c_str())), EISDIR);
  char buf[8];
  EXPECT_EQ(readlink(m.Path("b").c_str(), buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(getxattr(m.Path("b").c_str(), "user.none", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, ABlockDamagedInTheStoreReadsAsEioNeverAsWrongBytes) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string data = RandomData(3 * 4096, 5);
  WriteFile(m.Path("f"), data);
  struct stat st;
  ASSERT_EQ(stat(m.Path("f").c_str(), &st), 0);
  ASSERT_EQ(m.Stop(), 0);
  {
    // Flip one bit of block 1's data in the store, below its checks.
    std::unique_ptr<RocksBlockStore> store;
    ASSERT_TRUE(RocksBlockStore::Open(m.store(), RocksOptions(), &store).ok());
    std::string d, t;
    ASSERT_TRUE(store->ReadBlockRaw(st.st_ino, 1, &d, &t).ok());
    d[100] ^= 0x04;
    WriteBatch b;
    b.PutBlock(st.st_ino, 1, d.data(), t.data());
    ASSERT_TRUE(store->Write(b, WriteOptions{.sync = true, .verify_pi = false}).ok());
  }
  ASSERT_TRUE(m.Start());
  int fd = open(m.Path("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string buf(4096, '\0');
  EXPECT_EQ(pread(fd, buf.data(), 4096, 0), 4096);
  EXPECT_EQ(buf, data.substr(0, 4096));
  EXPECT_EQ(pread(fd, buf.data(), 4096, 4096), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(pread(fd, buf.data(), 10, 4096 + 200), -1);  // any byte of it
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(pread(fd, buf.data(), 4096, 8192), 4096);
  EXPECT_EQ(buf, data.substr(8192, 4096));
  // A read across the damage gets EIO, or stops short before it (the kernel serves block 0
  // from its cache); it never returns any byte of the damaged block, nor zeros in its place.
  std::string all(3 * 4096, '\0');
  ssize_t n = pread(fd, all.data(), all.size(), 0);
  if (n == -1) {
    EXPECT_EQ(errno, EIO);
  } else {
    EXPECT_EQ(n, 4096);
    EXPECT_EQ(all.substr(0, 4096), data.substr(0, 4096));
  }
  // The daemon counted what it caught.
  StablefsStats stats{};
  ASSERT_EQ(ioctl(fd, STABLEFS_IOC_STATS, &stats), 0) << strerror(errno);
  for (size_t i = 0; i < kNumStats; i++) {
    if (std::string(kStatNames[i]) == "read_eio" ||
        std::string(kStatNames[i]) == "protection_errors_read") {
      EXPECT_GE(stats.values[i], 2u) << kStatNames[i];
    }
  }
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
}

// A preallocated block has no data record by design: stablefsctl verify, scrub and fsck (one
// verifier, storage/verifier.h) all call a store holding fallocated ranges clean.
TEST_F(MountTest, PreallocatedBlocksAreCleanToVerifyScrubAndFsck) {
  Mount m;
  ASSERT_TRUE(m.Start());
  int fd = open(m.Path("p").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, 16 * 4096), 0) << strerror(errno);
  const std::string data = RandomData(4096, 23);
  ASSERT_EQ(pwrite(fd, data.data(), data.size(), 5 * 4096), 4096);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 16 * 4096, 8 * 4096), 0) << strerror(errno);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
  std::string out;
  EXPECT_EQ(testing::RunCapture(std::string(STABLEFSCTL_BIN) + " verify " + m.store(), &out), 0)
      << out;
  EXPECT_NE(out.find("1 blocks verified against their tuples: 0 damaged, 0 missing"),
            std::string::npos)
      << out;
  EXPECT_EQ(testing::RunCapture(std::string(STABLEFSCTL_BIN) + " scrub " + m.store(), &out), 0)
      << out;
  EXPECT_EQ(testing::RunCapture(std::string(FSCK_BIN) + " -n " + m.store(), &out), 0) << out;
}

// stablefsctl corrupt damages a store in each way the issue names; reading through the mount
// gives EIO for exactly the damaged blocks, and stablefsctl verify finds the damage.
TEST_F(MountTest, EachKindOfDamageIsEioThroughTheMountAndFoundByVerify) {
  struct Case {
    const char* what;
    const char* extra;
    std::vector<std::pair<std::string, int>> bad;  // (file, block) that must read as EIO
  } cases[] = {
      {"data", "", {{"f", 1}}},
      {"guard", "", {{"f", 1}}},
      {"app", "", {{"f", 1}}},
      {"ref", "", {{"f", 1}}},
      {"swap", "--to-offset 8192", {{"f", 1}, {"f", 2}}},
      {"move", "--to /g --to-offset 0", {{"g", 0}}},
      {"drop", "", {{"f", 1}}},
  };
  const std::string f_data = RandomData(4 * 4096, 21), g_data = RandomData(2 * 4096, 22);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Mount m;
    ASSERT_TRUE(m.Start());
    WriteFile(m.Path("f"), f_data);
    WriteFile(m.Path("g"), g_data);
    ASSERT_EQ(m.Stop(), 0);
    ASSERT_EQ(testing::Run(std::string(STABLEFSCTL_BIN) + " corrupt " + m.store() +
                           " /f --offset 4200 --what " + c.what + " " + c.extra),
              0);
    EXPECT_EQ(testing::Run(std::string(STABLEFSCTL_BIN) + " verify " + m.store()), 4);
    ASSERT_TRUE(m.Start());
    for (const auto& [file, data] :
         {std::pair{std::string("f"), f_data}, std::pair{std::string("g"), g_data}}) {
      // Block by block, each read alone (O_DIRECT: no kernel read-ahead across blocks).
      int fd = open(m.Path(file).c_str(), O_RDONLY | O_DIRECT);
      ASSERT_GE(fd, 0);
      void* mem = nullptr;
      ASSERT_EQ(posix_memalign(&mem, 4096, 4096), 0);
      for (size_t block = 0; block * 4096 < data.size(); block++) {
        ssize_t n = pread(fd, mem, 4096, block * 4096);
        bool damaged = false;
        for (const auto& [bf, bb] : c.bad) damaged |= bf == file && bb == static_cast<int>(block);
        if (damaged) {
          EXPECT_EQ(n, -1) << file << " block " << block;
          EXPECT_EQ(errno, EIO) << file << " block " << block;
        } else {
          EXPECT_EQ(n, 4096) << file << " block " << block;
          EXPECT_EQ(std::string(static_cast<char*>(mem), 4096), data.substr(block * 4096, 4096))
              << file << " block " << block;
        }
      }
      free(mem);
      close(fd);
    }
    ASSERT_EQ(m.Stop(), 0);
  }
}

TEST_F(MountTest, AnUnlinkedOpenFileLivesUntilItsLastClose) {
  Mount m;
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("f"), "before");
  int fd = open(m.Path("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(m.Path("f").c_str()), 0);
  EXPECT_NE(access(m.Path("f").c_str(), F_OK), 0);
  ASSERT_EQ(pwrite(fd, "after!", 6, 0), 6);
  ASSERT_EQ(fsync(fd), 0);
  char buf[8] = {};
  ASSERT_EQ(pread(fd, buf, 6, 0), 6);
  EXPECT_STREQ(buf, "after!");
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  // A crash now leaves an orphan, which the next mount reclaims.
  m.Crash();
  close(fd);
  {
    std::unique_ptr<RocksBlockStore> store;
    ASSERT_TRUE(RocksBlockStore::Open(m.store(), RocksOptions(), &store).ok());
    std::string v;
    EXPECT_TRUE(store->Get(Space::kOrphan, InodeKey(st.st_ino), &v).ok());
  }
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(m.Stop(), 0);
  std::unique_ptr<RocksBlockStore> store;
  ASSERT_TRUE(RocksBlockStore::Open(m.store(), RocksOptions(), &store).ok());
  std::string v;
  EXPECT_TRUE(store->Get(Space::kOrphan, InodeKey(st.st_ino), &v).IsNotFound());
  EXPECT_TRUE(store->Get(Space::kInode, InodeKey(st.st_ino), &v).IsNotFound());
  uint64_t blocks = 1;
  ASSERT_TRUE(store->CountBlocks(st.st_ino, 0, UINT64_MAX, &blocks).ok());
  EXPECT_EQ(blocks, 0u);
}

TEST_F(MountTest, ReaddirOffsetsAreStableUnderConcurrentChanges) {
  Mount m;
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  std::set<std::string> all;
  for (int i = 0; i < 300; i++) {
    std::string n = "f" + std::to_string(i);
    WriteFile(m.Path("d/" + n), "");
    all.insert(n);
  }
  DIR* dir = opendir(m.Path("d").c_str());
  ASSERT_NE(dir, nullptr);
  std::multiset<std::string> seen;
  int n = 0;
  while (struct dirent* e = readdir(dir)) {
    seen.insert(e->d_name);
    if (++n == 100) {
      // Midway: remove some names and add others.
      for (int i = 200; i < 250; i++)
        ASSERT_EQ(unlink(m.Path("d/f" + std::to_string(i)).c_str()), 0);
      for (int i = 0; i < 50; i++) WriteFile(m.Path("d/new" + std::to_string(i)), "");
    }
  }
  closedir(dir);
  for (const std::string& name : all) {
    int idx = std::stoi(name.substr(1));
    size_t count = seen.count(name);
    if (idx >= 200 && idx < 250) {
      EXPECT_LE(count, 1u) << name;
    } else {
      EXPECT_EQ(count, 1u) << name << " must be listed exactly once";
    }
  }
  EXPECT_EQ(seen.count("."), 1u);
  EXPECT_EQ(seen.count(".."), 1u);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, RenamesWithinADirectoryDoNotMakeReaddirEndless) {
  // generic/736: rename each entry away and back while reading the directory.
  Mount m;
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  constexpr int kFiles = 300;
  for (int i = 0; i < kFiles; i++) WriteFile(m.Path("d/" + std::to_string(i)), "");
  DIR* dir = opendir(m.Path("d").c_str());
  ASSERT_NE(dir, nullptr);
  int count = 0;
  std::set<std::string> seen;
  while (struct dirent* e = readdir(dir)) {
    ASSERT_LT(++count, 3 * kFiles) << "readdir keeps returning renamed entries";
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    seen.insert(n);
    ASSERT_EQ(rename(m.Path("d/" + n).c_str(), m.Path("d/TEMPFILE").c_str()), 0);
    ASSERT_EQ(rename(m.Path("d/TEMPFILE").c_str(), m.Path("d/" + n).c_str()), 0);
  }
  closedir(dir);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kFiles));
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, SharedMappingWritesReachTheStore) {
  Mount m;
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("f"), std::string(3 * 4096, 'a'));
  int fd = open(m.Path("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* p = mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memcpy(static_cast<char*>(p) + 4096 + 10, "mapped", 6);
  ASSERT_EQ(msync(p, 3 * 4096, MS_SYNC), 0);
  ASSERT_EQ(munmap(p, 3 * 4096), 0);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  std::string want(3 * 4096, 'a');
  want.replace(4096 + 10, 6, "mapped");
  EXPECT_EQ(ReadFile(m.Path("f")), want);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, DirectIoIsCoherentWithBufferedIo) {
  Mount m;
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("f"), std::string(2 * 4096, 'b'));
  int dfd = open(m.Path("f").c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(dfd, 0);
  void* buf = nullptr;
  ASSERT_EQ(posix_memalign(&buf, 4096, 4096), 0);
  ASSERT_EQ(pread(dfd, buf, 4096, 4096), 4096);
  EXPECT_EQ(std::string(static_cast<char*>(buf), 4096), std::string(4096, 'b'));
  std::memset(buf, 'D', 4096);
  ASSERT_EQ(pwrite(dfd, buf, 4096, 0), 4096);
  // A file open with O_DIRECT can still be mapped.
  void* map = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, dfd, 0);
  ASSERT_NE(map, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(static_cast<char*>(map)[0], 'D');
  munmap(map, 4096);
  close(dfd);
  free(buf);
  EXPECT_EQ(ReadFile(m.Path("f")), std::string(4096, 'D') + std::string(4096, 'b'));
  ASSERT_EQ(m.Stop(), 0);
}

// xfstests generic/451: asynchronous O_DIRECT writes of the whole file, alternating two
// patterns, while buffered readers keep reading it; after each write completes, a buffered read
// must see the new pattern, never the old one the readers may have cached meanwhile.
TEST_F(MountTest, AsyncDirectWritesLeaveNoStaleCachedPages) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string path = m.Path("f");
  constexpr size_t kSize = 640 * 1024;
  WriteFile(path, std::string(kSize, 'x'));
  aio_context_t ctx = 0;
  ASSERT_EQ(syscall(SYS_io_setup, 1, &ctx), 0) << strerror(errno);
  char* bufs[2];
  for (int i = 0; i < 2; i++) {
    void* p = nullptr;
    ASSERT_EQ(posix_memalign(&p, 4096, kSize), 0);
    bufs[i] = static_cast<char*>(p);
    std::memset(bufs[i], i == 0 ? 0xaa : 0x55, kSize);
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; r++) {
    readers.emplace_back([&] {
      std::string buf(kSize, '\0');
      while (!stop.load()) {
        int fd = open(path.c_str(), O_RDONLY);
        if (fd < 0) continue;
        if (pread(fd, buf.data(), kSize, 0) < 0) {
        }
        close(fd);
      }
    });
  }
  std::string stale;
  int cycles = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (; cycles < 1000 && stale.empty() && std::chrono::steady_clock::now() < deadline; cycles++) {
    const char* want = bufs[cycles % 2];
    int fd = open(path.c_str(), O_RDWR | O_DIRECT);
    ASSERT_GE(fd, 0);
    struct iocb cb = {};
    cb.aio_fildes = static_cast<uint32_t>(fd);
    cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    cb.aio_buf = reinterpret_cast<uint64_t>(want);
    cb.aio_nbytes = kSize;
    struct iocb* cbs[1] = {&cb};
    ASSERT_EQ(syscall(SYS_io_submit, ctx, 1, cbs), 1) << strerror(errno);
    struct io_event ev = {};
    ASSERT_EQ(syscall(SYS_io_getevents, ctx, 1, 1, &ev, nullptr), 1);
    ASSERT_EQ(ev.res, static_cast<int64_t>(kSize));
    close(fd);
    std::string got(kSize, '\0');
    fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pread(fd, got.data(), kSize, 0), static_cast<ssize_t>(kSize));
    close(fd);
    if (std::memcmp(got.data(), want, kSize) != 0) {
      size_t i = 0;
      while (got[i] == want[i]) i++;
      stale = "cycle " + std::to_string(cycles) + ": stale byte at offset " + std::to_string(i);
    }
  }
  stop = true;
  for (auto& t : readers) t.join();
  syscall(SYS_io_destroy, ctx);
  free(bufs[0]);
  free(bufs[1]);
  EXPECT_EQ(stale, "") << "after " << cycles << " cycles";
  std::printf("async O_DIRECT write cycles checked: %d\n", cycles);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, ExtendedAttributes) {
  Mount m;
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("f"), "");
  const std::string p = m.Path("f");
  ASSERT_EQ(setxattr(p.c_str(), "user.a", "1", 1, 0), 0);
  ASSERT_EQ(setxattr(p.c_str(), "user.b", "22", 2, 0), 0);
  EXPECT_EQ(setxattr(p.c_str(), "user.a", "x", 1, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(setxattr(p.c_str(), "user.c", "x", 1, XATTR_REPLACE), -1);
  EXPECT_EQ(errno, ENODATA);
  std::string big(65536, 'v');
  EXPECT_EQ(setxattr(p.c_str(), "user.big", big.data(), big.size(), 0), 0);
  char buf[70000];
  EXPECT_EQ(getxattr(p.c_str(), "user.big", buf, sizeof(buf)), 65536);
  EXPECT_EQ(getxattr(p.c_str(), "user.b", nullptr, 0), 2);
  EXPECT_EQ(getxattr(p.c_str(), "user.b", buf, 1), -1);
  EXPECT_EQ(errno, ERANGE);
  ssize_t n = listxattr(p.c_str(), buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, n), std::string("user.a\0user.b\0user.big\0", 23));
  ASSERT_EQ(removexattr(p.c_str(), "user.a"), 0);
  EXPECT_EQ(removexattr(p.c_str(), "user.a"), -1);
  EXPECT_EQ(errno, ENODATA);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(getxattr(p.c_str(), "user.b", buf, sizeof(buf)), 2);
  EXPECT_EQ(std::string(buf, 2), "22");
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, PosixAclsAreInheritedEnforcedAndKeptInStepWithTheMode) {
  Mount m;
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  // default:group:1001:rw- on d; a file created in it with 0666 and umask 077 gets an access ACL
  // masked by the create mode, and the umask does not apply.
  ASSERT_EQ(testing::Run("setfacl -d -m g:1001:rw " + m.Path("d")), 0);
  mode_t old = umask(077);
  int fd = open(m.Path("d/f").c_str(), O_CREAT | O_WRONLY, 0666);
  umask(old);
  ASSERT_GE(fd, 0);
  close(fd);
  struct stat st;
  ASSERT_EQ(stat(m.Path("d/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0664u);
  char buf[256];
  EXPECT_GT(getxattr(m.Path("d/f").c_str(), "system.posix_acl_access", buf, sizeof(buf)), 0);
  // chmod rewrites the mask; an ACL the mode says in full disappears.
  ASSERT_EQ(chmod(m.Path("d/f").c_str(), 0600), 0);
  ASSERT_EQ(testing::Run("getfacl -c " + m.Path("d/f") + " | grep -qx 'mask::---'"), 0);
  ASSERT_EQ(testing::Run("setfacl -b " + m.Path("d/f")), 0);
  EXPECT_EQ(getxattr(m.Path("d/f").c_str(), "system.posix_acl_access", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  // Without a default ACL the umask applies.
  old = umask(027);
  fd = open(m.Path("plain").c_str(), O_CREAT | O_WRONLY, 0666);
  umask(old);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_EQ(stat(m.Path("plain").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, SettingAnAclOutsideTheFilesGroupClearsSetgid) {
  // generic/375: posix_acl_update_mode clears S_ISGID for a caller outside the file's group.
  Mount m({"allow_other"});
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(chmod(m.Path("..").c_str(), 0755), 0);  // the temporary directory, for uid 100
  ASSERT_EQ(chmod(m.Path("").c_str(), 0777), 0);
  const std::string f = m.Path("f");
  WriteFile(f, "");
  ASSERT_EQ(chown(f.c_str(), 100, 100), 0);
  auto setfacl_as = [&](int gid) {
    return testing::Run("setpriv --reuid 100 --regid " + std::to_string(gid) +
                        " --clear-groups setfacl -m u::rwx,g::rwx,o::rwx " + f);
  };
  struct stat st;
  ASSERT_EQ(chmod(f.c_str(), 02755), 0);
  ASSERT_EQ(setfacl_as(100), 0);
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_ISGID) << std::oct << st.st_mode;
  ASSERT_EQ(chmod(f.c_str(), 02755), 0);
  ASSERT_EQ(setfacl_as(101), 0);
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_FALSE(st.st_mode & S_ISGID) << std::oct << st.st_mode;
  EXPECT_EQ(st.st_mode & 0777, 0777u);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, FallocateByAnUnprivilegedCallerClearsSetIdBits) {
  // generic/683: file_modified() semantics for fallocate.
  Mount m({"allow_other"});
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(chmod(m.Path("..").c_str(), 0755), 0);
  ASSERT_EQ(chmod(m.Path("").c_str(), 0777), 0);
  const std::string f = m.Path("f");
  WriteFile(f, "");
  ASSERT_EQ(chown(f.c_str(), 100, 0), 0);
  ASSERT_EQ(chmod(f.c_str(), 06666), 0);
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);  // the kernel now caches the mode
  ASSERT_EQ(testing::Run("setpriv --reuid 100 --regid 100 --clear-groups fallocate -l 4096 " + f),
            0);
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u) << std::oct << st.st_mode;
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, ImmutableAndAppendOnlyFlagsAreEnforced) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string f = m.Path("f");
  WriteFile(f, "a");
  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  struct stat before, after;
  ASSERT_EQ(fstat(fd, &before), 0);
  unsigned flags = FS_IMMUTABLE_FL;
  ASSERT_EQ(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0) << strerror(errno);
  ASSERT_EQ(fstat(fd, &after), 0);  // the kernel's cached ctime was invalidated (generic/277)
  EXPECT_TRUE(after.st_ctim.tv_sec > before.st_ctim.tv_sec ||
              (after.st_ctim.tv_sec == before.st_ctim.tv_sec &&
               after.st_ctim.tv_nsec > before.st_ctim.tv_nsec));
  flags = 0;
  ASSERT_EQ(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
  EXPECT_EQ(flags, unsigned{FS_IMMUTABLE_FL});
  EXPECT_EQ(Errno(open(f.c_str(), O_WRONLY | O_APPEND) >= 0 ? 0 : -1), EPERM);
  EXPECT_EQ(Errno(unlink(f.c_str())), EPERM);
  EXPECT_EQ(Errno(rename(f.c_str(), m.Path("g").c_str())), EPERM);
  EXPECT_EQ(Errno(link(f.c_str(), m.Path("h").c_str())), EPERM);
  EXPECT_EQ(Errno(chmod(f.c_str(), 0600)), EPERM);
  EXPECT_EQ(Errno(truncate(f.c_str(), 0)), EPERM);
  EXPECT_EQ(Errno(setxattr(f.c_str(), "user.x", "1", 1, 0)), EPERM);
  flags = FS_APPEND_FL;
  ASSERT_EQ(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
  EXPECT_EQ(Errno(open(f.c_str(), O_WRONLY) >= 0 ? 0 : -1), EPERM);
  int afd = open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(afd, 0);
  EXPECT_EQ(write(afd, "b", 1), 1);
  close(afd);
  EXPECT_EQ(ReadFile(f), "ab");
  EXPECT_EQ(Errno(truncate(f.c_str(), 0)), EPERM);
  EXPECT_EQ(Errno(unlink(f.c_str())), EPERM);
  EXPECT_EQ(Errno(chmod(f.c_str(), 0600)), EPERM);  // nor its mode, owner or explicit times
  EXPECT_EQ(utimensat(AT_FDCWD, f.c_str(), nullptr, 0), 0);  // times set to now are allowed
  flags = 0;
  ASSERT_EQ(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
  close(fd);
  EXPECT_EQ(unlink(f.c_str()), 0);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, StatfsReportsTheStoresSpace) {
  Mount m;
  ASSERT_TRUE(m.Start());
  struct statvfs st;
  ASSERT_EQ(statvfs(m.Path("").c_str(), &st), 0);
  EXPECT_EQ(st.f_bsize, 4096u);
  EXPECT_GT(st.f_blocks, 0u);
  EXPECT_LE(st.f_bavail, st.f_blocks);
  EXPECT_EQ(st.f_namemax, 255u);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, SeekDataAndSeekHoleFollowBlocksAndDirtyPages) {
  Mount m;
  ASSERT_TRUE(m.Start());
  int fd = open(m.Path("sparse").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "a", 1, 0), 1);             // block 0
  ASSERT_EQ(pwrite(fd, "d", 1, 3 * 4096 + 5), 1);  // block 3
  ASSERT_EQ(ftruncate(fd, 5 * 4096 + 100), 0);
  for (int round = 0; round < 2; round++) {  // dirty in the cache, then only in the store
    SCOPED_TRACE(round == 0 ? "dirty" : "written back");
    EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 0);
    EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 4096);
    EXPECT_EQ(lseek(fd, 100, SEEK_HOLE), 4096);
    EXPECT_EQ(lseek(fd, 4096, SEEK_DATA), 3 * 4096);
    EXPECT_EQ(lseek(fd, 3 * 4096 + 7, SEEK_DATA), 3 * 4096 + 7);
    EXPECT_EQ(lseek(fd, 3 * 4096, SEEK_HOLE), 4 * 4096);
    EXPECT_EQ(lseek(fd, 4 * 4096, SEEK_DATA), -1);
    EXPECT_EQ(errno, ENXIO);
    EXPECT_EQ(lseek(fd, 5 * 4096 + 100, SEEK_HOLE), -1);  // at EOF
    EXPECT_EQ(errno, ENXIO);
    ASSERT_EQ(fsync(fd), 0);
  }
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, StatsCountWritebackAndSyncs) {
  Mount m;
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("f"), RandomData(2 * 4096, 9), /*do_fsync=*/true);
  int fd = open(m.Path("").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  StablefsStats stats{};
  ASSERT_EQ(ioctl(fd, STABLEFS_IOC_STATS, &stats), 0) << strerror(errno);
  close(fd);
  auto stat_of = [&](const char* name) {
    for (size_t i = 0; i < kNumStats; i++) {
      if (std::string(kStatNames[i]) == name) return stats.values[i];
    }
    ADD_FAILURE() << "no counter " << name;
    return uint64_t{0};
  };
  EXPECT_EQ(stat_of("pages_written_back"), 2u);
  EXPECT_EQ(stat_of("blocks_written"), 2u);
  EXPECT_GE(stat_of("store_syncs"), 1u);
  EXPECT_EQ(stat_of("protection_errors_write"), 0u);
  EXPECT_EQ(stat_of("protection_errors_read"), 0u);
  EXPECT_EQ(stat_of("cache_pages"), 65536u);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, TheSyncIoctlMakesEverythingDurable) {
  // sync(2) never reaches a FUSE daemon (FUSE_SYNCFS is sent to virtiofs only); the ioctl does.
  Mount m({"writeback_expire_ms=600000"});
  ASSERT_TRUE(m.Start());
  const std::string data = RandomData(64 * 1024, 11);
  WriteFile(m.Path("f"), data);
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  int fd = open(m.Path("").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ioctl(fd, STABLEFS_IOC_SYNC), 0) << strerror(errno);
  close(fd);
  m.Crash();
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("f")), data);
  struct stat st;
  EXPECT_EQ(stat(m.Path("d").c_str(), &st), 0);
  ASSERT_EQ(m.Stop(), 0);
}

// The shutdown ioctl (XFS_IOC_GOINGDOWN, shared by ext4 and f2fs), as xfstests' godown issues it.
constexpr unsigned long kGoingDown = _IOR('X', 125, uint32_t);

int GoingDown(const std::string& mnt, uint32_t how) {
  return testing::IoctlOnDir(mnt, kGoingDown, &how);
}

TEST_F(MountTest, AfterTheShutdownIoctlEveryRequestFailsAndDirtyDataIsGone) {
  Mount m({"writeback_expire_ms=600000", "allow_other"});
  ASSERT_TRUE(m.Start());
  const std::string synced = RandomData(256 * 1024, 21);
  WriteFile(m.Path("synced"), synced, /*do_fsync=*/true);
  WriteFile(m.Path("dirty"), RandomData(64 * 1024, 22));  // stays in the page cache
  int fd = open(m.Path("synced").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  std::string buf(4096, '\0');
  ASSERT_EQ(pread(fd, buf.data(), buf.size(), 0), 4096);  // the kernel caches the page

  // Only a privileged caller may shut the filesystem down.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int dir = open(m.mnt().c_str(), O_RDONLY | O_DIRECTORY);  // the temporary directory is 0700
    if (dir < 0) _exit(errno);
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(2);
    uint32_t how = 2;
    _exit(ioctl(dir, kGoingDown, &how) == 0 ? 1 : errno == EPERM ? 0 : errno);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "unprivileged shutdown: "
      << (WIFEXITED(status) ? strerror(WEXITSTATUS(status)) : "killed");
  EXPECT_EQ(GoingDown(m.mnt(), 7), EINVAL);  // no such flag

  int root = open(m.mnt().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(root, 0);
  ASSERT_EQ(GoingDown(m.mnt(), 2), 0);                  // XFS_FSOP_GOING_FLAGS_NOLOGFLUSH
  EXPECT_EQ(pread(fd, buf.data(), buf.size(), 0), -1);  // not from the kernel's cached page
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(pwrite(fd, buf.data(), buf.size(), 0), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(Errno(fsync(fd)), EIO);
  EXPECT_EQ(close(fd), 0);
  EXPECT_EQ(open(m.Path("new").c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(Errno(mkdir(m.Path("d").c_str(), 0755)), EIO);
  EXPECT_EQ(opendir(m.Path("").c_str()), nullptr);
  EXPECT_EQ(errno, EIO);
  uint32_t how = 2;  // a second shutdown, through a directory opened before, is no error
  EXPECT_EQ(ioctl(root, kGoingDown, &how), 0) << strerror(errno);
  close(root);
  ASSERT_EQ(m.Stop(), 0);

  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("synced")), synced);
  struct stat st;
  ASSERT_EQ(stat(m.Path("dirty").c_str(), &st), 0);       // its name reached the store
  EXPECT_EQ(st.st_size, 0);                               // its dirty pages did not
  EXPECT_EQ(Errno(mkdir(m.Path("d").c_str(), 0755)), 0);  // mounted again: usable
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, TheDefaultShutdownWritesBackAndSyncsFirst) {
  Mount m({"writeback_expire_ms=600000"});
  ASSERT_TRUE(m.Start());
  const std::string data = RandomData(64 * 1024, 23);
  WriteFile(m.Path("f"), data);
  ASSERT_EQ(GoingDown(m.mnt(), 0), 0);  // XFS_FSOP_GOING_FLAGS_DEFAULT
  struct stat st;
  EXPECT_EQ(Errno(stat(m.Path("g").c_str(), &st)), EIO);
  m.Crash();
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("f")), data);
  ASSERT_EQ(m.Stop(), 0);
}

int Fstrim(const std::string& mnt, struct fstrim_range* range) {
  return testing::IoctlOnDir(mnt, FITRIM, range);
}

TEST_F(MountTest, FstrimGivesTheSpaceOfDeletedDataBackAndChecksItsArguments) {
  Mount m;
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("big"), RandomData(32 << 20, 31), /*do_fsync=*/true);
  ASSERT_EQ(unlink(m.Path("big").c_str()), 0);
  ASSERT_EQ(testing::IoctlOnDir(m.mnt(), STABLEFS_IOC_SYNC, nullptr), 0);
  const uint64_t before = testing::DiskBytes(m.store());
  ASSERT_GT(before, uint64_t{32} << 20);  // the deleted data is still on disk

  struct statvfs sv;
  ASSERT_EQ(statvfs(m.mnt().c_str(), &sv), 0);
  const uint64_t size = uint64_t{sv.f_blocks} * sv.f_frsize;
  struct fstrim_range all = {0, UINT64_MAX, 0};
  ASSERT_EQ(Fstrim(m.mnt(), &all), 0) << strerror(Fstrim(m.mnt(), &all));
  const uint64_t after = testing::DiskBytes(m.store());
  EXPECT_LT(after, before - (uint64_t{24} << 20)) << before << " -> " << after;
  EXPECT_GT(all.len, 0u);  // the free bytes of the whole filesystem
  EXPECT_LE(all.len, size);

  struct fstrim_range r = {0, 0, 0};  // shorter than a block
  EXPECT_EQ(Fstrim(m.mnt(), &r), EINVAL);
  r = {0, 100, 0};
  EXPECT_EQ(Fstrim(m.mnt(), &r), EINVAL);
  r = {size, 1 << 20, 0};  // starts past the end
  EXPECT_EQ(Fstrim(m.mnt(), &r), EINVAL);
  r = {UINT64_MAX, 1 << 20, 0};
  EXPECT_EQ(Fstrim(m.mnt(), &r), EINVAL);
  r = {0, UINT64_MAX, size + 1};  // no extent that long
  EXPECT_EQ(Fstrim(m.mnt(), &r), EINVAL);
  r = {size - (1 << 20), UINT64_MAX, 0};  // the last MiB is free, by the model
  EXPECT_EQ(Fstrim(m.mnt(), &r), 0);
  EXPECT_EQ(r.len, uint64_t{1} << 20);
  ASSERT_EQ(m.Stop(), 0);
}

int InjectFault(const std::string& mnt, uint32_t kind, int32_t count) {
  StablefsFault f{kind, count};
  return testing::IoctlOnDir(mnt, STABLEFS_IOC_INJECT_FAULT, &f);
}

TEST_F(MountTest, InjectedStoreFaultsReachCallersAsEio) {
  {
    Mount plain;  // without -o debug_faults there is nothing to inject into
    ASSERT_TRUE(plain.Start());
    EXPECT_EQ(InjectFault(plain.mnt(), kFaultWriteErrors, 1), ENOTTY);
    ASSERT_EQ(plain.Stop(), 0);
  }
  Mount m({"debug_faults", "writeback_expire_ms=600000"});
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(InjectFault(m.mnt(), 99, 1), EINVAL);
  const std::string data = RandomData(64 * 1024, 41);
  WriteFile(m.Path("f"), data, /*do_fsync=*/true);

  // One failed sync: that fsync is EIO, the next one syncs and succeeds.
  int fd = open(m.Path("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "x", 1, 0), 1);
  ASSERT_EQ(InjectFault(m.mnt(), kFaultSyncErrors, 1), 0);
  EXPECT_EQ(Errno(fsync(fd)), EIO);
  EXPECT_EQ(Errno(fsync(fd)), 0);
  close(fd);

  // Failed block reads: EIO from the store, never other bytes; then the same read works.
  ASSERT_EQ(m.Stop(), 0);  // nothing cached
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(InjectFault(m.mnt(), kFaultReadErrors, -1), 0);
  fd = open(m.Path("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string buf(4096, '\0');
  EXPECT_EQ(pread(fd, buf.data(), buf.size(), 8192), -1);
  EXPECT_EQ(errno, EIO);
  ASSERT_EQ(InjectFault(m.mnt(), kFaultClear, 0), 0);
  close(fd);
  EXPECT_EQ(ReadFile(m.Path("f")), "x" + data.substr(1));
  ASSERT_EQ(m.Stop(), 0);
}

// The daemon's counter `name` (stablefsctl stats).
uint64_t Stat(const std::string& mnt, const std::string& name) {
  int fd = open(mnt.c_str(), O_RDONLY | O_DIRECTORY);
  StablefsStats stats{};
  const int r = fd < 0 ? -1 : ioctl(fd, STABLEFS_IOC_STATS, &stats);
  if (fd >= 0) close(fd);
  EXPECT_EQ(r, 0) << strerror(errno);
  for (size_t i = 0; i < kNumStats; i++) {
    if (name == kStatNames[i]) return stats.values[i];
  }
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

// Makes the kernel drop its cached pages, dentries and inodes: the daemon serves every read, and
// an inode nothing holds gets its final FORGET.
void DropKernelCaches() {
  sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
}

// A truncate or a hole punch whose store commit fails answers EIO and leaves the file as it was,
// in the daemon's memory (the kernel's caches dropped, every byte read from the daemon) and in
// the store (after a remount); the next try succeeds. The page cache drops the truncated pages
// only once the commit is in the store.
TEST_F(MountTest, ATruncateOrPunchWhoseCommitFailsLeavesTheFileAsItWas) {
  Mount m({"debug_faults", "writeback_expire_ms=600000"});
  ASSERT_TRUE(m.Start());
  std::string data = RandomData(64 * 1024, 57);
  WriteFile(m.Path("f"), data, /*do_fsync=*/true);
  EXPECT_EQ(ReadFile(m.Path("f")), data);  // the daemon's cache holds every page
  {
    // Pages 3..5 rewritten and left dirty (no fsync): a failed truncate must not lose them.
    const std::string fresh = RandomData(3 * 4096, 58);
    int fd = open(m.Path("f").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, fresh.data(), fresh.size(), 3 * 4096), ssize_t(fresh.size()));
    close(fd);
    data.replace(3 * 4096, fresh.size(), fresh);
  }

  // At a page boundary the commit is the truncate's only store write; inside a page, the
  // partial page's writeback comes first and fails instead.
  for (off_t size : {off_t{8192}, off_t{1000}}) {
    SCOPED_TRACE(size);
    ASSERT_EQ(InjectFault(m.mnt(), kFaultWriteErrors, 1), 0);
    EXPECT_EQ(truncate(m.Path("f").c_str(), size), -1);
    EXPECT_EQ(errno, EIO);
    DropKernelCaches();
    struct stat st = {};
    ASSERT_EQ(stat(m.Path("f").c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 64 * 1024);
    EXPECT_EQ(ReadFile(m.Path("f")), data);
  }

  int fd = open(m.Path("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(InjectFault(m.mnt(), kFaultWriteErrors, 1), 0);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 16384), -1);
  EXPECT_EQ(errno, EIO);
  close(fd);
  DropKernelCaches();
  EXPECT_EQ(ReadFile(m.Path("f")), data);

  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("f")), data);
  // With the fault gone, both succeed.
  ASSERT_EQ(truncate(m.Path("f").c_str(), 40000), 0);
  fd = open(m.Path("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 16384), 0);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  std::string want = data.substr(0, 40000);
  std::fill(want.begin() + 8192, want.begin() + 8192 + 16384, '\0');
  DropKernelCaches();
  EXPECT_EQ(ReadFile(m.Path("f")), want);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("f")), want);
  ASSERT_EQ(m.Stop(), 0);
  std::string out;
  EXPECT_EQ(testing::RunCapture(std::string(FSCK_BIN) + " -n " + m.store(), &out), 0) << out;
}

// A file's dirty pages written back by its final FORGET (the inode leaves the table and its last
// writeback runs after the namespace lock is dropped), then a sync, then SIGKILL: the file is
// there with every byte, and fsck finds the store clean. A second file, unlinked while its dirty
// pages waited, is freed at its last forget and gone after the crash.
TEST_F(MountTest, PagesWrittenBackAtTheFinalForgetAndSyncedSurviveSigkill) {
  Mount m({"writeback_expire_ms=600000"});
  ASSERT_TRUE(m.Start());
  const std::string data = RandomData(256 * 1024 + 100, 61);
  WriteFile(m.Path("g"), data);  // closed, not synced: dirty in the daemon's cache
  WriteFile(m.Path("gone"), RandomData(64 * 1024, 62));
  ASSERT_EQ(unlink(m.Path("gone").c_str()), 0);
  ASSERT_GT(Stat(m.mnt(), "dirty_pages"), 0u);
  // The kernel forgets inodes it drops asynchronously: wait (bounded) until the final forget's
  // writeback has left no dirty page, which only it can do here (expiry is 10 minutes away).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  uint64_t dirty = 0;
  while ((dirty = Stat(m.mnt(), "dirty_pages")) > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    DropKernelCaches();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a condition
  }
  ASSERT_EQ(dirty, 0u) << "the kernel did not forget the inodes";
  int dirfd = open(m.mnt().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dirfd, 0);
  ASSERT_EQ(syncfs(dirfd), 0);
  close(dirfd);
  m.Crash();
  std::string out;
  EXPECT_EQ(testing::RunCapture(std::string(FSCK_BIN) + " -n " + m.store(), &out), 0) << out;
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("g")), data);
  struct stat st = {};
  EXPECT_EQ(stat(m.Path("gone").c_str(), &st), -1);
  ASSERT_EQ(m.Stop(), 0);
  EXPECT_EQ(testing::RunCapture(std::string(FSCK_BIN) + " -n " + m.store(), &out), 0) << out;
}

TEST_F(MountTest, ARoNorecoveryMountWritesNothingToTheStore) {
  Mount m;
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("f"), "kept", /*do_fsync=*/true);
  int fd = open(m.Path("orphan").c_str(), O_CREAT | O_RDWR, 0644);  // unlinked while open...
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(m.Path("orphan").c_str()), 0);
  m.Crash();  // ...when the daemon dies: an orphan for the next read-write mount to reclaim
  close(fd);
  const auto listing = testing::FileStamps(m.store());
  m.set_options({"ro", "norecovery"});
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("f")), "kept");
  EXPECT_EQ(open(m.Path("g").c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EROFS);
  struct fstrim_range r = {0, UINT64_MAX, 0};
  EXPECT_EQ(Fstrim(m.mnt(), &r), EROFS);
  ASSERT_EQ(m.Stop(), 0);
  EXPECT_EQ(testing::FileStamps(m.store()),
            listing);  // not one file of the store changed, orphan and WAL included
  m.set_options({});
  ASSERT_TRUE(m.Start());  // read-write again: the orphan is reclaimed, the file is there
  EXPECT_EQ(ReadFile(m.Path("f")), "kept");
  ASSERT_EQ(m.Stop(), 0);
}

struct timespec Atime(const std::string& path) {
  struct stat st = {};
  stat(path.c_str(), &st);
  return st.st_atim;
}
bool Same(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Reads the whole file through a new open, as cat does.
void Cat(const std::string& path) { ReadFile(path); }

TEST_F(MountTest, ReadsUpdateAccessTimesAsTheAtimeOptionsSay) {
  Mount m;  // relatime, the default
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("f"), "aaa");
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  const struct timespec created = Atime(m.Path("f"));
  Cat(m.Path("f"));  // atime not after mtime: updated, although the page is in the kernel cache
  const struct timespec first = Atime(m.Path("f"));
  EXPECT_FALSE(Same(first, created));
  Cat(m.Path("f"));  // atime after mtime and ctime, less than a day old: kept
  EXPECT_TRUE(Same(Atime(m.Path("f")), first));
  WriteFile(m.Path("f"), "bbb");  // a new mtime: the next read updates it again
  Cat(m.Path("f"));
  EXPECT_FALSE(Same(Atime(m.Path("f")), first));
  const struct timespec dir_before = Atime(m.Path("d"));
  DIR* d = opendir(m.Path("d").c_str());
  ASSERT_NE(d, nullptr);
  while (readdir(d) != nullptr) {
  }
  closedir(d);
  EXPECT_FALSE(Same(Atime(m.Path("d")), dir_before));  // a listing is a read of the directory
  // O_NOATIME and the noatime attribute flag keep it.
  WriteFile(m.Path("f"), "ccc");
  const struct timespec before_noatime = Atime(m.Path("f"));
  int fd = open(m.Path("f").c_str(), O_RDONLY | O_NOATIME);
  ASSERT_GE(fd, 0);
  char buf[8];
  ASSERT_EQ(read(fd, buf, sizeof(buf)), 3);
  close(fd);
  EXPECT_TRUE(Same(Atime(m.Path("f")), before_noatime));
  const struct timespec persisted = [&] {
    Cat(m.Path("f"));
    return Atime(m.Path("f"));
  }();
  ASSERT_EQ(m.Stop(), 0);

  m.set_options({"strictatime", "nodiratime"});  // every read; never a directory
  ASSERT_TRUE(m.Start());
  EXPECT_TRUE(Same(Atime(m.Path("f")), persisted));  // the update reached the store
  Cat(m.Path("f"));
  const struct timespec s1 = Atime(m.Path("f"));
  EXPECT_FALSE(Same(s1, persisted));
  Cat(m.Path("f"));
  EXPECT_FALSE(Same(Atime(m.Path("f")), s1));
  const struct timespec dir_strict = Atime(m.Path("d"));
  d = opendir(m.Path("d").c_str());
  ASSERT_NE(d, nullptr);
  while (readdir(d) != nullptr) {
  }
  closedir(d);
  EXPECT_TRUE(Same(Atime(m.Path("d")), dir_strict));
  ASSERT_EQ(m.Stop(), 0);

  m.set_options({"noatime"});
  ASSERT_TRUE(m.Start());
  WriteFile(m.Path("g"), "new");
  const struct timespec g0 = Atime(m.Path("g"));
  Cat(m.Path("g"));
  EXPECT_TRUE(Same(Atime(m.Path("g")), g0));
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, FallocatePreallocatesBlocksThatReadAsZerosAndSeekAsHoles) {
  Mount m;
  ASSERT_TRUE(m.Start());
  int fd = open(m.Path("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  // generic/568: two bytes across a block boundary allocate both blocks; writing them there
  // does not grow st_blocks.
  ASSERT_EQ(fallocate(fd, 0, 4095, 2), 0) << strerror(errno);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 4097);
  EXPECT_EQ(st.st_blocks, 16);
  ASSERT_EQ(pwrite(fd, "ab", 2, 4095), 2);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_blocks, 16);
  // KEEP_SIZE: allocated past the end, size unchanged; the range is a hole to SEEK_DATA.
  int g = open(m.Path("g").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(g, 0);
  ASSERT_EQ(pwrite(g, "x", 1, 0), 1);
  ASSERT_EQ(fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 1 << 20), 0);
  ASSERT_EQ(fstat(g, &st), 0);
  EXPECT_EQ(st.st_size, 1);
  EXPECT_EQ(st.st_blocks, 2048);
  ASSERT_EQ(ftruncate(g, 64 * 1024), 0);  // into the preallocated range: zeros past the byte
  ASSERT_EQ(fsync(g), 0);
  EXPECT_EQ(lseek(g, 0, SEEK_HOLE), 4096);
  EXPECT_EQ(lseek(g, 4096, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  // ZERO_RANGE leaves the range allocated; PUNCH_HOLE frees it.
  ASSERT_EQ(ftruncate(g, 0), 0);
  ASSERT_EQ(pwrite(g, RandomData(64 * 1024, 51).data(), 64 * 1024, 0), 64 * 1024);
  ASSERT_EQ(fsync(g), 0);
  ASSERT_EQ(fallocate(g, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 8192, 16384), 0);
  ASSERT_EQ(fstat(g, &st), 0);
  EXPECT_EQ(st.st_blocks, 128);
  EXPECT_EQ(lseek(g, 8192, SEEK_HOLE), 8192);
  ASSERT_EQ(fallocate(g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 16384), 0);
  ASSERT_EQ(fstat(g, &st), 0);
  EXPECT_EQ(st.st_blocks, 128 - 32);
  close(g);
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
  EXPECT_EQ(testing::Run(std::string(FSCK_BIN) + " -n " + m.store()), 0);  // all consistent
  ASSERT_TRUE(m.Start());                                                  // and so after a remount
  ASSERT_EQ(stat(m.Path("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_blocks, 16);
  std::string f = ReadFile(m.Path("f"));
  EXPECT_EQ(f, std::string(4095, '\0') + "ab");
  ASSERT_EQ(stat(m.Path("g").c_str(), &st), 0);
  EXPECT_EQ(st.st_blocks, 128 - 32);
  std::string gd = ReadFile(m.Path("g"));
  EXPECT_EQ(gd.substr(8192, 16384), std::string(16384, '\0'));
  ASSERT_EQ(m.Stop(), 0);
}

// The daemon has no copy_file_range handler: the kernel copies through its read and write paths
// (generic_copy_file_range), so the copy goes through the page cache and gets fresh PI.
TEST_F(MountTest, CopyFileRangeCopiesThroughThePageCache) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string data = RandomData(300 * 1024 + 5, 61);
  WriteFile(m.Path("src"), data);
  int in = open(m.Path("src").c_str(), O_RDONLY);
  int out = open(m.Path("dst").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  loff_t in_off = 4096, out_off = 100;
  size_t left = data.size() - 4096;
  while (left > 0) {
    ssize_t n = copy_file_range(in, &in_off, out, &out_off, left, 0);
    ASSERT_GT(n, 0) << strerror(errno);
    left -= static_cast<size_t>(n);
  }
  ASSERT_EQ(fsync(out), 0);
  close(in);
  close(out);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadFile(m.Path("dst")), std::string(100, '\0') + data.substr(4096));
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(MountTest, MountErrorsAreOneClearLine) {
  testing::TempDir dir;
  std::string out = dir.Sub("out");
  int rc = std::system(
      (std::string(STABLEFS_BIN) + " " + dir.Sub("nostore") + " " + dir.path() + " 2>" + out)
          .c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  std::string msg = ReadFile(out);
  EXPECT_NE(msg.find("no store at"), std::string::npos) << msg;
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 1) << msg;
  rc = std::system((std::string(STABLEFS_BIN) + " -o stable_pages=sometimes " + dir.Sub("x") + " " +
                    dir.path() + " 2>" + out)
                       .c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  EXPECT_NE(ReadFile(out).find("stable_pages must be wait, bounce or off"), std::string::npos);
}

}  // namespace
}  // namespace stablefs
