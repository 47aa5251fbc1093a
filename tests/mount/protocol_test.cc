// Requests of FUSE protocol minors later than libfuse 3.14's, answered by the daemon's transport
// (fs/fuse_transport.h), seen through a real mount: what statx(2) reports, and that the answer
// survives a remount. On a kernel whose INIT names an older minor the kernel never sends them;
// those tests say so and skip.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "fs/stats.h"
#include "tests/util/mount.h"

namespace stablefs {
namespace {

using testing::Mount;

uint64_t StatValue(const std::string& dir, const char* name) {
  StablefsStats stats{};
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  EXPECT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(ioctl(fd, STABLEFS_IOC_STATS, &stats), 0) << strerror(errno);
  close(fd);
  for (size_t i = 0; i < kNumStats; i++) {
    if (std::strcmp(kStatNames[i], name) == 0) return stats.values[i];
  }
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

int64_t Ns(const struct statx_timestamp& t) { return t.tv_sec * 1'000'000'000LL + t.tv_nsec; }
int64_t Ns(const struct timespec& t) { return t.tv_sec * 1'000'000'000LL + t.tv_nsec; }

struct statx Statx(const std::string& path) {
  struct statx stx {};
  EXPECT_EQ(
      statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS | STATX_BTIME, &stx), 0)
      << path << ": " << strerror(errno);
  return stx;
}

TEST(ProtocolTest, StatxReportsTheBirthTimeAndItSurvivesChangesAndARemount) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const uint64_t minor = StatValue(m.Path(""), "fuse_proto_minor");
  ASSERT_GT(minor, 0u) << "the transport recorded no INIT";
  if (minor < 39) GTEST_SKIP() << "the kernel speaks FUSE 7." << minor << ": no FUSE_STATX";

  struct timespec before, after;
  clock_gettime(CLOCK_REALTIME, &before);
  const std::string f = m.Path("f");
  const int fd = open(f.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  clock_gettime(CLOCK_REALTIME, &after);

  struct statx stx = Statx(f);
  ASSERT_TRUE(stx.stx_mask & STATX_BTIME) << "mask " << std::hex << stx.stx_mask;
  const int64_t btime = Ns(stx.stx_btime);
  // The daemon's clock may be a coarse one: allow its resolution (a few ms) below `before`.
  EXPECT_GE(btime, Ns(before) - 10'000'000) << "btime before the create";
  EXPECT_LE(btime, Ns(after)) << "btime after the create";
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(stx.stx_ino, st.st_ino);
  EXPECT_EQ(stx.stx_mode, st.st_mode);
  EXPECT_EQ(stx.stx_nlink, st.st_nlink);
  EXPECT_EQ(stx.stx_size, static_cast<uint64_t>(st.st_size));
  EXPECT_TRUE(Statx(m.Path("d")).stx_mask & STATX_BTIME);

  // Writes and attribute changes move mtime and ctime, never btime.
  ASSERT_EQ(write(fd, "hello", 5), 5);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  ASSERT_EQ(chmod(f.c_str(), 0600), 0);
  stx = Statx(f);
  EXPECT_EQ(Ns(stx.stx_btime), btime);
  EXPECT_GE(Ns(stx.stx_mtime), btime);
  EXPECT_EQ(stx.stx_size, 5u);
  EXPECT_EQ(stx.stx_mode & 07777, 0600u);
  EXPECT_GT(StatValue(m.Path(""), "statx_requests"), 0u);

  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  stx = Statx(f);
  ASSERT_TRUE(stx.stx_mask & STATX_BTIME);
  EXPECT_EQ(Ns(stx.stx_btime), btime);
  ASSERT_EQ(m.Stop(), 0);
}

// A statx of a name that is gone gets ENOENT from the kernel's lookup, and one of an open file
// unlinked meanwhile still gets its attributes (FUSE_STATX on an orphan).
TEST(ProtocolTest, StatxOfAnUnlinkedOpenFileAnswers) {
  Mount m;
  ASSERT_TRUE(m.Start());
  if (StatValue(m.Path(""), "fuse_proto_minor") < 39) GTEST_SKIP() << "no FUSE_STATX";
  const std::string f = m.Path("f");
  const int fd = open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(f.c_str()), 0);
  struct statx stx {};
  EXPECT_EQ(statx(AT_FDCWD, f.c_str(), 0, STATX_BTIME, &stx), -1);
  EXPECT_EQ(errno, ENOENT);
  ASSERT_EQ(
      statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS | STATX_BTIME, &stx), 0)
      << strerror(errno);
  EXPECT_TRUE(stx.stx_mask & STATX_BTIME);
  EXPECT_EQ(stx.stx_nlink, 0u);
  ASSERT_EQ(close(fd), 0);
  ASSERT_EQ(m.Stop(), 0);
}

}  // namespace
}  // namespace stablefs
