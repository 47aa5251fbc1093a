// Requests of FUSE protocol minors later than libfuse 3.14's, answered by the daemon's transport
// (fs/fuse_transport.h), seen through a real mount: what statx(2) reports, and that the answer
// survives a remount; O_TMPFILE files, linked, never linked, and after a crash. On a kernel whose
// INIT names an older minor the kernel never sends them; those tests say so and skip.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fs/stats.h"
#include "storage/format.h"
#include "storage/rocks_block_store.h"
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

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  EXPECT_NE(d, nullptr) << dir;
  if (d == nullptr) return names;
  while (struct dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
      names.push_back(e->d_name);
  }
  closedir(d);
  return names;
}

bool StoreHasInode(const std::string& store_dir, uint64_t ino, bool* orphan) {
  std::unique_ptr<RocksBlockStore> store;
  RocksOptions o;
  o.read_only = true;
  EXPECT_TRUE(RocksBlockStore::Open(store_dir, o, &store).ok());
  if (!store) return false;
  std::string v;
  *orphan = store->Get(Space::kOrphan, InodeKey(ino), &v).ok();
  return store->Get(Space::kInode, InodeKey(ino), &v).ok();
}

std::string ReadAll(int fd) {
  std::string out(1 << 16, '\0');
  const ssize_t n = pread(fd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// open(O_TMPFILE): a file with no name and nlink 0, readable and writable, which linkat with
// AT_EMPTY_PATH names; the name and the bytes written before it survive a remount.
TEST(ProtocolTest, ATmpfileHasNoNameUntilLinkatGivesItOne) {
  Mount m;
  ASSERT_TRUE(m.Start());
  if (StatValue(m.Path(""), "fuse_proto_minor") < 37) GTEST_SKIP() << "no FUSE_TMPFILE";
  umask(022);
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  const int fd = open(m.Path("d").c_str(), O_TMPFILE | O_RDWR, 0640);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(StatValue(m.Path(""), "tmpfile_requests"), 1u);
  const std::string data = "written before it had a name";
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u & ~0022u);  // the test's umask applies
  EXPECT_TRUE(Names(m.Path("d")).empty());
  EXPECT_EQ(ReadAll(fd), data);

  ASSERT_EQ(linkat(fd, "", AT_FDCWD, m.Path("d/named").c_str(), AT_EMPTY_PATH), 0)
      << strerror(errno);
  ASSERT_EQ(stat(m.Path("d/named").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(Names(m.Path("d")), std::vector<std::string>{"named"});
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  ASSERT_EQ(m.Stop(), 0);
  bool orphan = true;
  EXPECT_TRUE(StoreHasInode(m.store(), st.st_ino, &orphan));
  EXPECT_FALSE(orphan) << "a linked tmpfile keeps its orphan record";
  std::string out;
  EXPECT_EQ(testing::RunCapture(std::string(FSCK_BIN) + " -n " + m.store(), &out), 0) << out;

  ASSERT_TRUE(m.Start());
  const int rfd = open(m.Path("d/named").c_str(), O_RDONLY);
  ASSERT_GE(rfd, 0);
  EXPECT_EQ(ReadAll(rfd), data);
  close(rfd);
  ASSERT_EQ(m.Stop(), 0);
}

// O_TMPFILE | O_EXCL: never linkable (the kernel refuses linkat before the daemon). A tmpfile
// never linked is gone at its last close, and after a SIGKILL it is an orphan the next mount
// reclaims: in neither case does it stay in the store.
TEST(ProtocolTest, ATmpfileNeverLinkedLeavesNothingAtCloseOrAfterACrash) {
  Mount m;
  ASSERT_TRUE(m.Start());
  if (StatValue(m.Path(""), "fuse_proto_minor") < 37) GTEST_SKIP() << "no FUSE_TMPFILE";
  int fd = open(m.Path("").c_str(), O_TMPFILE | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(linkat(fd, "", AT_FDCWD, m.Path("x").c_str(), AT_EMPTY_PATH), -1);
  EXPECT_EQ(errno, ENOENT);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  const uint64_t closed_ino = st.st_ino;
  ASSERT_EQ(write(fd, "abc", 3), 3);
  ASSERT_EQ(close(fd), 0);

  fd = open(m.Path("").c_str(), O_TMPFILE | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << strerror(errno);
  ASSERT_EQ(fstat(fd, &st), 0);
  const uint64_t crashed_ino = st.st_ino;
  const std::string data(3 * 4096, 'q');
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(fsync(fd), 0);
  m.Crash();  // fd now refers to a dead mount
  close(fd);
  bool orphan = false;
  EXPECT_TRUE(StoreHasInode(m.store(), crashed_ino, &orphan));
  EXPECT_TRUE(orphan) << "a tmpfile open at the crash must be an orphan for the next mount";

  ASSERT_TRUE(m.Start());
  EXPECT_TRUE(Names(m.Path("")).empty());
  ASSERT_EQ(m.Stop(), 0);
  EXPECT_FALSE(StoreHasInode(m.store(), crashed_ino, &orphan));
  EXPECT_FALSE(orphan);
  EXPECT_FALSE(StoreHasInode(m.store(), closed_ino, &orphan));
  std::string out;
  EXPECT_EQ(testing::RunCapture(std::string(FSCK_BIN) + " -n " + m.store(), &out), 0) << out;
}

// Runs `fn` in a child as uid and gid 65534, with no capabilities; its result is the child's
// exit status (0 or an errno).
int AsNobody(const std::function<int()>& fn) {
  const pid_t child = fork();
  if (child < 0) return errno;
  if (child == 0) {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(125);
    _exit(fn());
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) return errno;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 126;
}

// The suid/sgid rules of a local filesystem (fs/attr.c, fs/inode.c: should_remove_suid,
// setattr_should_drop_sgid), checked right after each call, with and without
// FUSE_HANDLE_KILLPRIV_V2: with it the daemon clears the bits, without it the kernel does.
class KillSuidgidTest : public ::testing::TestWithParam<bool> {};

INSTANTIATE_TEST_SUITE_P(KillprivV2, KillSuidgidTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "on" : "off"; });

TEST_P(KillSuidgidTest, WritesTruncatesAndChownsClearSuidAndSgidAsOnALocalFilesystem) {
  std::vector<std::string> options = {"allow_other"};
  if (!GetParam()) options.push_back("nokillpriv_v2");
  Mount m(options);
  ASSERT_TRUE(m.Start());
  const uint64_t minor = StatValue(m.Path(""), "fuse_proto_minor");
  EXPECT_EQ(StatValue(m.Path(""), "fuse_killpriv_v2"), GetParam() && minor >= 33 ? 1u : 0u);
  int dir = open(m.Path("").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dir, 0);
  const std::string path = m.Path("f");
  // A file of nobody's with `mode` and two bytes; its mode after `op`.
  auto after = [&](mode_t mode, const std::function<int()>& op) -> mode_t {
    const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, "ab", 2), 2);
    close(fd);
    EXPECT_EQ(chown(path.c_str(), 65534, 65534), 0);
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    const int e = op();
    EXPECT_EQ(e, 0) << strerror(e);
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0);
    return st.st_mode & 07777;
  };
  auto write_at_end = [&] {
    const int fd = openat(dir, "f", O_WRONLY | O_APPEND);
    if (fd < 0) return errno;
    const int e = write(fd, "c", 1) == 1 ? 0 : errno;
    close(fd);
    return e;
  };
  auto nobody_writes = [&] { return AsNobody(write_at_end); };
  auto nobody_truncates = [&] {
    return AsNobody([&] {
      const int fd = openat(dir, "f", O_WRONLY);
      if (fd < 0) return errno;
      const int e = ftruncate(fd, 1) == 0 ? 0 : errno;
      close(fd);
      return e;
    });
  };
  auto nobody_opens_truncating = [&] {
    return AsNobody([&] {
      const int fd = openat(dir, "f", O_WRONLY | O_TRUNC);
      if (fd < 0) return errno;
      close(fd);
      return 0;
    });
  };
  auto root_chowns = [&] { return chown(path.c_str(), 65534, 65534) == 0 ? 0 : errno; };

  EXPECT_EQ(after(06775, nobody_writes), 0775u);
  EXPECT_EQ(after(06765, nobody_writes), 02765u);  // sgid without group execute stays
  EXPECT_EQ(after(06775, write_at_end), 06775u);   // CAP_FSETID keeps both
  EXPECT_EQ(after(06775, nobody_truncates), 0775u);
  EXPECT_EQ(after(06775, nobody_opens_truncating), 0775u);
  EXPECT_EQ(after(04755, root_chowns), 0755u);  // chown clears suid even for root
  EXPECT_EQ(after(02765, root_chowns), 02765u);
  EXPECT_EQ(after(0775, nobody_writes), 0775u);
  // Under FUSE_HANDLE_KILLPRIV_V2 the daemon was asked: the unprivileged writes, truncate, open.
  EXPECT_EQ(StatValue(m.Path(""), "kill_suidgid_requests") >= 4, GetParam() && minor >= 33);
  // What the daemon cleared, it cleared in the store.
  close(dir);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  dir = open(m.Path("").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dir, 0);
  EXPECT_EQ(after(06775, nobody_writes), 0775u);
  close(dir);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0775u);
  EXPECT_EQ(st.st_size, 3);
}

}  // namespace
}  // namespace stablefs
