// Hostile requests through a real mount: names with every byte value, paths near PATH_MAX, huge
// offsets and sizes, xattrs at and past the limits, many hard links, and concurrent renames of
// the same directories from several processes. Each must get the error a Linux filesystem
// returns, crash nothing, and leave the namespace whole (no loops, no lost entries).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/util/mount.h"

namespace stablefs {
namespace {

using testing::Mount;

int Errno(int rc) { return rc >= 0 ? 0 : errno; }

class HostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  }
};

std::set<std::string> List(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = readdir(d)) names.insert(e->d_name);
  closedir(d);
  return names;
}

TEST_F(HostileTest, NamesWithEveryByteValue) {
  Mount m;
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  std::set<std::string> made;
  for (int c = 1; c < 256; c++) {
    if (c == '/' || c == '.') continue;
    std::string name =
        std::string(1, static_cast<char>(c)) + "x" + std::string(1, static_cast<char>(c));
    int fd = open(m.Path("d/" + name).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << "byte " << c << ": " << strerror(errno);
    close(fd);
    made.insert(name);
  }
  made.insert(".");
  made.insert("..");
  EXPECT_EQ(List(m.Path("d")), made);
  EXPECT_EQ(Errno(mkdir(m.Path("d/" + std::string(256, '\xff')).c_str(), 0755)), ENAMETOOLONG);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(List(m.Path("d")), made);  // and after a remount
  for (const std::string& n : made) {
    if (n != "." && n != "..") {
      ASSERT_EQ(unlink(m.Path("d/" + n).c_str()), 0) << n;
    }
  }
  EXPECT_EQ(rmdir(m.Path("d").c_str()), 0);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(HostileTest, PathsNearPathMax) {
  Mount m;
  ASSERT_TRUE(m.Start());
  // Nested 200-byte names until the path is just under PATH_MAX (4096).
  std::string rel;
  const std::string part(200, 'p');
  while (m.Path(rel + "/" + part).size() < 4000) {
    rel += (rel.empty() ? "" : "/") + part;
    ASSERT_EQ(mkdir(m.Path(rel).c_str(), 0755), 0) << rel.size() << ": " << strerror(errno);
  }
  const std::string deep = m.Path(rel + "/f");
  int fd = open(deep.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  close(fd);
  // One more component passes PATH_MAX: the kernel refuses it before the daemon sees it.
  EXPECT_EQ(Errno(mkdir(m.Path(rel + "/" + part + "/" + part).c_str(), 0755)), ENAMETOOLONG);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(HostileTest, HugeOffsetsAndSizes) {
  Mount m;
  ASSERT_TRUE(m.Start());
  int fd = open(m.Path("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const off_t max = INT64_MAX;  // stablefs's largest file, 2^63 - 1 bytes (xfstests generic/525)
  ASSERT_EQ(pwrite(fd, "end", 3, max - 3), 3) << strerror(errno);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, max);
  EXPECT_EQ(st.st_blocks, 8);  // one block, the rest is a hole
  char buf[8] = {};
  EXPECT_EQ(pread(fd, buf, 3, max - 3), 3);
  EXPECT_STREQ(buf, "end");
  EXPECT_EQ(pread(fd, buf, 8, 12345678901), 8);  // inside the hole: zeros
  EXPECT_EQ(std::string(buf, 8), std::string(8, '\0'));
  EXPECT_EQ(pread(fd, buf, 8, off_t{1} << 60), 8);
  EXPECT_EQ(std::string(buf, 8), std::string(8, '\0'));
  // Past it the kernel itself refuses: the end offset would overflow loff_t.
  EXPECT_EQ(Errno(static_cast<int>(pwrite(fd, "x", 1, max))), EINVAL);
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), max - 4095);  // the last block, index 2^51 - 1
  EXPECT_EQ(lseek(fd, max - 4095, SEEK_HOLE), max);
  close(fd);
  ASSERT_EQ(m.Stop(), 0);

  ASSERT_TRUE(m.Start());  // the record and the block at the very end survive a remount
  fd = open(m.Path("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, max);
  std::memset(buf, 0, sizeof(buf));
  EXPECT_EQ(pread(fd, buf, 3, max - 3), 3);
  EXPECT_STREQ(buf, "end");
  EXPECT_EQ(ftruncate(fd, max - 1), 0);  // the tail block is rewritten with fresh PI
  EXPECT_EQ(pread(fd, buf, 3, max - 3), 2);
  EXPECT_EQ(std::string(buf, 2), "en");
  EXPECT_EQ(ftruncate(fd, 0), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_blocks, 0);
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(HostileTest, XattrsAtAndPastTheLimits) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string f = m.Path("f");
  close(open(f.c_str(), O_CREAT | O_WRONLY, 0644));
  const std::string name255 = "user." + std::string(250, 'n');
  const std::string value(65536, 'v');
  EXPECT_EQ(setxattr(f.c_str(), name255.c_str(), value.data(), value.size(), 0), 0)
      << strerror(errno);
  EXPECT_EQ(Errno(setxattr(f.c_str(), (name255 + "n").c_str(), "v", 1, 0)), ERANGE);
  std::string big(65537, 'v');
  EXPECT_EQ(Errno(setxattr(f.c_str(), "user.big", big.data(), big.size(), 0)), E2BIG);
  for (int i = 0; i < 1000; i++) {  // many attributes on one file (generic/020 asks for 1000)
    std::string n = "user.a" + std::to_string(i);
    ASSERT_EQ(setxattr(f.c_str(), n.c_str(), "x", 1, 0), 0) << i;
  }
  ssize_t len = listxattr(f.c_str(), nullptr, 0);
  EXPECT_GT(len, 1000 * 8);
  std::vector<char> names(len);
  EXPECT_EQ(listxattr(f.c_str(), names.data(), names.size()), len);
  EXPECT_EQ(Errno(static_cast<int>(listxattr(f.c_str(), names.data(), 10))), ERANGE);
  ASSERT_EQ(m.Stop(), 0);
}

TEST_F(HostileTest, ManyHardLinks) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string f = m.Path("f");
  close(open(f.c_str(), O_CREAT | O_WRONLY, 0644));
  ASSERT_EQ(mkdir(m.Path("links").c_str(), 0755), 0);
  constexpr int kLinks = 2000;
  for (int i = 0; i < kLinks; i++) {
    ASSERT_EQ(link(f.c_str(), m.Path("links/" + std::to_string(i)).c_str()), 0) << i;
  }
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, static_cast<nlink_t>(kLinks + 1));
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(stat(m.Path("links/1234").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, static_cast<nlink_t>(kLinks + 1));
  for (int i = 0; i < kLinks; i++)
    ASSERT_EQ(unlink(m.Path("links/" + std::to_string(i)).c_str()), 0);
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  ASSERT_EQ(m.Stop(), 0);
}

// Counts directories reachable from dir; false if one is met twice (a loop or a doubled entry).
bool Walk(const std::string& dir, std::set<ino_t>* seen, int depth) {
  if (depth > 64) return false;
  for (const std::string& n : List(dir)) {
    if (n == "." || n == "..") continue;
    struct stat st;
    std::string p = dir + "/" + n;
    if (lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (!seen->insert(st.st_ino).second) return false;
    if (!Walk(p, seen, depth + 1)) return false;
  }
  return true;
}

TEST_F(HostileTest, ConcurrentRenamesFromSeveralProcessesKeepTheTreeWhole) {
  Mount m;
  ASSERT_TRUE(m.Start());
  constexpr int kDirs = 12, kProcs = 4, kRenames = 400;
  for (int i = 0; i < kDirs; i++)
    ASSERT_EQ(mkdir(m.Path("d" + std::to_string(i)).c_str(), 0755), 0);
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; p++) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Move random directories into random others, anywhere in the tree; most moves fail
      // (EINVAL into a descendant, ENOENT after someone else moved it): that is the point.
      std::mt19937 rng(p + 1);
      int moved = 0;
      for (int i = 0; i < kRenames; i++) {
        std::vector<std::string> dirs;
        std::function<void(const std::string&, int)> collect = [&](const std::string& d,
                                                                   int depth) {
          for (const std::string& n : List(d)) {
            if (n == "." || n == ".." || depth > 20) continue;
            dirs.push_back(d + "/" + n);
            collect(d + "/" + n, depth + 1);
          }
        };
        collect(m.Path("").substr(0, m.Path("").size() - 1), 0);
        if (dirs.empty()) continue;
        const std::string& from = dirs[rng() % dirs.size()];
        std::string to_parent = rng() % 3 == 0 ? m.Path("").substr(0, m.Path("").size() - 1)
                                               : dirs[rng() % dirs.size()];
        std::string base = from.substr(from.rfind('/') + 1);
        if (rename(from.c_str(), (to_parent + "/" + base).c_str()) == 0) moved++;
      }
      _exit(moved > 0 ? 0 : 3);  // a run in which nothing moved would prove nothing
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::set<ino_t> seen;
  EXPECT_TRUE(Walk(m.Path("").substr(0, m.Path("").size() - 1), &seen, 0))
      << "a loop or a doubled entry";
  EXPECT_EQ(seen.size(), static_cast<size_t>(kDirs)) << "directories lost";
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_TRUE(m.Start());  // and the store agrees after a remount
  seen.clear();
  EXPECT_TRUE(Walk(m.Path("").substr(0, m.Path("").size() - 1), &seen, 0));
  EXPECT_EQ(seen.size(), static_cast<size_t>(kDirs));
  ASSERT_EQ(m.Stop(), 0);
}

}  // namespace
}  // namespace stablefs
