// A store on a small disk (a 64 MiB ext4 on a loop device) filled up through the mount (guarantee
// 5, issue 8's full disk): writes and creates get ENOSPC, not EIO and not a dead daemon; what was
// written before stays intact; deleting a file gives its space back and writing works again; the
// daemon unmounts cleanly and fsck finds the store clean.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <string>

#include "tests/util/mount.h"

namespace stablefs::testing {
namespace {

constexpr uint64_t kDisk = 64 << 20;
constexpr size_t kChunk = 1 << 20;

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 4096) & 0xff);
  return s;
}

// Writes chunks to path until a write fails; returns the bytes written and the failure's errno.
size_t FillUntilError(const std::string& path, int* err) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) {
    *err = errno;
    return 0;
  }
  const std::string chunk = Pattern(kChunk, 3);
  size_t written = 0;
  *err = 0;
  while (written < 4 * kDisk) {
    ssize_t n = write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      *err = errno;
      break;
    }
    written += n;
  }
  // What write() accepted is written back: the store kept room for it.
  if (fsync(fd) != 0 && *err == 0) *err = errno;
  EXPECT_EQ(fsync(fd), 0) << strerror(errno);
  close(fd);
  return written;
}

bool WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok =
      write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && fsync(fd) == 0;
  return close(fd) == 0 && ok;
}

std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open: " + std::string(strerror(errno)) + ">";
  std::string out(8 << 20, '\0');
  ssize_t n = pread(fd, out.data(), out.size(), 0);
  close(fd);
  if (n < 0) return "<read: " + std::string(strerror(errno)) + ">";
  out.resize(n);
  return out;
}

uint64_t FreeBytes(const std::string& path) {
  struct statvfs sv;
  EXPECT_EQ(statvfs(path.c_str(), &sv), 0);
  return uint64_t{sv.f_bavail} * sv.f_frsize;
}

TEST(FullDisk, EnospcThenDeleteMakesRoomAndNothingIsDamaged) {
  if (geteuid() != 0) GTEST_SKIP() << "a loop device and a mount need root";
  Mount m({}, kDisk);
  ASSERT_TRUE(m.Start());
  const std::string keep = Pattern(4 << 20, 1);
  ASSERT_TRUE(WriteFile(m.Path("keep"), keep));
  const uint64_t free_before = FreeBytes(m.Path(""));
  EXPECT_GT(free_before, uint64_t{16} << 20) << "statfs should show most of the disk usable";

  int err = 0;
  const size_t filled = FillUntilError(m.Path("fill"), &err);
  EXPECT_EQ(err, ENOSPC) << strerror(err);
  EXPECT_GT(filled, size_t{8} << 20);
  // statfs tracks the real space: what was filled is gone from it. (Not "nothing is left": the
  // store's flushes delete WAL files after the fill, and that space is free again.)
  EXPECT_LT(FreeBytes(m.Path("")), free_before - filled / 2);
  // New data still meets ENOSPC within what the disk could ever hold; the earlier file is intact.
  int more_err = 0;
  const size_t more = FillUntilError(m.Path("more"), &more_err);
  EXPECT_EQ(more_err, ENOSPC) << strerror(more_err);
  EXPECT_LT(more, size_t{kDisk} / 4);
  if (unlink(m.Path("more").c_str()) != 0) {
    EXPECT_EQ(errno, ENOENT);  // its create may have failed
  }
  EXPECT_TRUE(ReadFile(m.Path("keep")) == keep);

  // Deleting gives the space back, and writing works again.
  ASSERT_EQ(unlink(m.Path("fill").c_str()), 0) << strerror(errno);
  // The inode's blocks go when the kernel forgets the inode, which FUSE sends on its own time
  // after the unlink: poll statfs for it, with a deadline.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (FreeBytes(m.Path("")) <= filled / 2 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GT(FreeBytes(m.Path("")), filled / 2);
  const std::string again = Pattern(8 << 20, 2);
  EXPECT_TRUE(WriteFile(m.Path("again"), again));
  EXPECT_TRUE(ReadFile(m.Path("again")) == again);
  EXPECT_TRUE(ReadFile(m.Path("keep")) == keep);

  EXPECT_EQ(m.Stop(), 0);
  EXPECT_EQ(stablefs::testing::Run(std::string(FSCK_BIN) + " -n " + m.store()), 0);
}

}  // namespace
}  // namespace stablefs::testing
