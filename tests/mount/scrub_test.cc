// stablefsctl scrub on real mounts: a busy filesystem (writers rewriting and fsyncing files all
// through the scrub) is reported clean with every block counted; a block damaged in the store is
// reported with its inode, path, offset, expected and found, exit 4, while reads of it through
// the mount get EIO; --rate is honoured; the --json report parses. Each test unmounts what it
// mounted (the Mount fixture), also when it fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/util/json.h"
#include "tests/util/mount.h"

namespace stablefs {
namespace {

using testing::Json;
using testing::JsonParser;
using testing::Mount;

constexpr size_t kBlock = 4096;

// Runs a command and collects its stdout (stderr is left alone); returns its exit status.
int Capture(const std::string& cmd, std::string* out) {
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out->append(buf, n);
  int status = pclose(f);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The problems of a report, one a line, for failure messages.
std::string Dump(const Json& problems) {
  std::string s;
  for (const Json& p : problems.array) {
    s += "inode " + std::to_string(static_cast<uint64_t>(p["inode"].number)) + " " +
         p["path"].string + " offset " + std::to_string(static_cast<uint64_t>(p["offset"].number)) +
         ": " + p["problem"].string + "\n";
  }
  return s;
}

std::string Ctl(const std::string& args) { return std::string(STABLEFSCTL_BIN) + " " + args; }

std::string Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
}

// Scrubs with --json and parses the report.
::testing::AssertionResult ScrubJson(const std::string& target, const std::string& options,
                                     int* exit, Json* report) {
  std::string out, error;
  *report = Json();
  *exit = Capture(Ctl("scrub --json " + options + " " + target), &out);
  if (!JsonParser::Parse(out, report, &error)) {
    return ::testing::AssertionFailure() << error << " in: " << out;
  }
  for (const char* key : {"state", "blocks", "blocks_total", "bytes", "seconds", "problems_found",
                          "problems", "exit"}) {
    if (!report->Has(key)) return ::testing::AssertionFailure() << "no " << key << " in " << out;
  }
  if ((*report)["exit"].number != *exit) {
    return ::testing::AssertionFailure() << "exit " << *exit << " but the report says " << out;
  }
  return ::testing::AssertionSuccess();
}

// Threads rewriting ranges of their own files, each write followed by fdatasync so that it
// reaches the store while the scrub reads it. Counts the writes that completed.
class Rewriters {
 public:
  Rewriters(const std::vector<std::string>& paths, size_t file_size) {
    for (size_t t = 0; t < paths.size(); t++) {
      threads_.emplace_back([this, path = paths[t], file_size, t] {
        int fd = open(path.c_str(), O_WRONLY);
        if (fd < 0) {
          failures_++;
          return;
        }
        std::mt19937_64 rng(t);
        std::string buf = Pattern(16 * kBlock, t + 100);
        while (!stop_.load()) {
          const size_t len = (1 + rng() % 16) * kBlock - rng() % 100;
          const size_t off = rng() % (file_size - len + 1);
          if (pwrite(fd, buf.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len) ||
              fdatasync(fd) != 0) {
            failures_++;
            break;
          }
          writes_++;
        }
        close(fd);
      });
    }
  }
  ~Rewriters() { Stop(); }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  uint64_t writes() const { return writes_.load(); }
  uint64_t failures() const { return failures_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> writes_{0}, failures_{0};
  std::vector<std::thread> threads_;
};

class ScrubMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  }
};

// (i) Every block is checked while writers rewrite and fsync files all through the scrub: no
// false alarm, and exactly the blocks the files hold are counted (rewrites add no blocks).
TEST_F(ScrubMountTest, ABusyFilesystemScrubsCleanWithEveryBlockCounted) {
  Mount m;
  ASSERT_TRUE(m.Start());
  constexpr size_t kFiles = 4, kFileSize = 1 << 20;
  std::vector<std::string> paths;
  for (size_t i = 0; i < kFiles; i++) {
    paths.push_back(m.Path("f" + std::to_string(i)));
    WriteFile(paths.back(), Pattern(kFileSize, i));
  }
  ASSERT_EQ(testing::Run(Ctl("sync " + m.Path(""))), 0);
  Rewriters writers(paths, kFileSize);
  // 4 MiB at 2 MB/s: about two seconds of writes land during the scrub.
  const uint64_t before = writers.writes();
  int exit = -1;
  Json report;
  ASSERT_TRUE(ScrubJson(m.Path(""), "--rate 2", &exit, &report));
  const uint64_t during = writers.writes() - before;
  writers.Stop();
  EXPECT_EQ(exit, 0);
  EXPECT_EQ(report["state"].string, "done");
  EXPECT_EQ(report["problems"].array.size(), 0u);
  EXPECT_EQ(report["problems_found"].number, 0);
  EXPECT_EQ(report["blocks"].number, kFiles * kFileSize / kBlock);
  EXPECT_EQ(report["blocks_total"].number, kFiles * kFileSize / kBlock);
  EXPECT_EQ(report["bytes"].number, kFiles * kFileSize);
  EXPECT_EQ(writers.failures(), 0u);
  EXPECT_GT(during, 10u) << "the writers hardly ran during the scrub";
  ASSERT_EQ(m.Stop(), 0);
  // What the writers left is clean at rest too.
  EXPECT_EQ(testing::Run(std::string(FSCK_BIN) + " " + m.store()), 0);
}

// (ii) A block damaged in the store, each way: scrub of the mounted filesystem, under a write
// load on another file, names exactly it, exit 4; reads of it get EIO, other blocks read fine.
class DamageTest : public ScrubMountTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(DamageTest, ScrubOfTheMountNamesTheDamagedBlockAndReadsOfItGetEio) {
  const std::string what = GetParam();
  const std::string field = what == "data" || what == "guard" ? "guard"
                            : what == "ref"                   ? "reference tag"
                                                              : "application tag";
  constexpr size_t kBlocks = 16, kDamaged = 5;
  const std::string data = Pattern(kBlocks * kBlock, 7);
  Mount m;
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  WriteFile(m.Path("d/f"), data);
  WriteFile(m.Path("busy"), Pattern(1 << 20, 8));
  struct stat st;
  ASSERT_EQ(stat(m.Path("d/f").c_str(), &st), 0);
  ASSERT_EQ(m.Stop(), 0);
  ASSERT_EQ(testing::Run(Ctl("corrupt " + m.store() + " /d/f --offset " +
                             std::to_string(kDamaged * kBlock + 100) + " --what " + what)),
            0);
  ASSERT_TRUE(m.Start());

  Rewriters writers({m.Path("busy")}, 1 << 20);
  int exit = -1;
  Json report;
  // 1.1 MiB at 2 MB/s: the writes go on through half a second of scrubbing.
  ASSERT_TRUE(ScrubJson(m.Path(""), "--rate 2", &exit, &report));
  std::string text;
  const int text_exit = Capture(Ctl("scrub " + m.Path("")), &text);
  writers.Stop();
  EXPECT_EQ(writers.failures(), 0u);

  EXPECT_EQ(exit, 4);
  EXPECT_EQ(report["problems_found"].number, 1);
  ASSERT_EQ(report["problems"].array.size(), 1u) << Dump(report["problems"]);
  const Json& p = report["problems"].array[0];
  EXPECT_EQ(p["inode"].number, st.st_ino);
  EXPECT_EQ(p["path"].string, "/d/f");
  EXPECT_EQ(p["offset"].number, kDamaged * kBlock);
  EXPECT_EQ(p["field"].string, field);
  ASSERT_EQ(p["expected"].type, Json::kString);
  ASSERT_EQ(p["found"].type, Json::kString);
  EXPECT_NE(p["expected"].string, p["found"].string);
  EXPECT_NE(p["problem"].string.find("expected"), std::string::npos);
  EXPECT_EQ(text_exit, 4);
  EXPECT_NE(text.find("inode " + std::to_string(st.st_ino) + " (/d/f) offset " +
                      std::to_string(kDamaged * kBlock) + ": " + field + " mismatch"),
            std::string::npos)
      << text;

  // Block by block, each read alone (O_DIRECT: no read-ahead across blocks).
  int fd = open(m.Path("d/f").c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0);
  void* mem = nullptr;
  ASSERT_EQ(posix_memalign(&mem, kBlock, kBlock), 0);
  for (size_t b = 0; b < kBlocks; b++) {
    ssize_t n = pread(fd, mem, kBlock, static_cast<off_t>(b * kBlock));
    if (b == kDamaged) {
      EXPECT_EQ(n, -1);
      EXPECT_EQ(errno, EIO);
    } else {
      EXPECT_EQ(n, static_cast<ssize_t>(kBlock)) << "block " << b;
      EXPECT_EQ(std::memcmp(mem, data.data() + b * kBlock, kBlock), 0) << "block " << b;
    }
  }
  free(mem);
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
  // The unmounted store, scrubbed by the tool itself, says the same.
  ASSERT_TRUE(ScrubJson(m.store(), "", &exit, &report));
  EXPECT_EQ(exit, 4);
  ASSERT_EQ(report["problems"].array.size(), 1u) << Dump(report["problems"]);
  EXPECT_EQ(report["problems"].array[0]["offset"].number, kDamaged * kBlock);
}

INSTANTIATE_TEST_SUITE_P(EachField, DamageTest, ::testing::Values("data", "guard", "ref", "app"));

// (ii, continued) Damage that moves whole blocks: two blocks of a file swapped (a misdirected
// write), a block of one file written over a block of another, a block dropped (its block map
// entry left: a lost write). Scrub of the mounted filesystem under a write load names exactly
// those blocks; reads of them get EIO and the blocks beside them read fine.
TEST_F(ScrubMountTest, SwappedMovedAndDroppedBlocksAreNamedWhileMounted) {
  constexpr size_t kBlocks = 12;
  Mount m;
  ASSERT_TRUE(m.Start());
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  const char* files[] = {"s", "m", "t", "x"};
  for (int i = 0; i < 4; i++) {
    WriteFile(m.Path(std::string("d/") + files[i]), Pattern(kBlocks * kBlock, 20 + i));
  }
  WriteFile(m.Path("busy"), Pattern(1 << 20, 8));
  ASSERT_EQ(m.Stop(), 0);
  auto corrupt = [&](const std::string& args) {
    return testing::Run(Ctl("corrupt " + m.store() + " " + args));
  };
  ASSERT_EQ(corrupt("/d/s --offset " + std::to_string(5 * kBlock) + " --what swap --to-offset " +
                    std::to_string(9 * kBlock)),
            0);
  ASSERT_EQ(corrupt("/d/m --offset " + std::to_string(5 * kBlock) + " --what move --to /d/t " +
                    "--to-offset " + std::to_string(3 * kBlock)),
            0);
  ASSERT_EQ(corrupt("/d/x --offset " + std::to_string(5 * kBlock) + " --what drop"), 0);
  ASSERT_TRUE(m.Start());

  Rewriters writers({m.Path("busy")}, 1 << 20);
  int exit = -1;
  Json report;
  ASSERT_TRUE(ScrubJson(m.Path(""), "--rate 2", &exit, &report));
  writers.Stop();
  EXPECT_EQ(writers.failures(), 0u);
  EXPECT_EQ(exit, 4);
  std::set<std::pair<std::string, uint64_t>> found;
  for (const Json& p : report["problems"].array) {
    found.insert({p["path"].string, static_cast<uint64_t>(p["offset"].number)});
  }
  const std::set<std::pair<std::string, uint64_t>> want = {
      {"/d/s", 5 * kBlock}, {"/d/s", 9 * kBlock}, {"/d/t", 3 * kBlock}, {"/d/x", 5 * kBlock}};
  EXPECT_EQ(found, want) << Dump(report["problems"]);

  void* mem = nullptr;
  ASSERT_EQ(posix_memalign(&mem, kBlock, kBlock), 0);
  for (const auto& [path, offset] : want) {
    int fd = open(m.Path(path.substr(1)).c_str(), O_RDONLY | O_DIRECT);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(pread(fd, mem, kBlock, static_cast<off_t>(offset)), -1) << path << " " << offset;
    EXPECT_EQ(errno, EIO);
    const off_t beside = static_cast<off_t>(offset + kBlock);
    EXPECT_EQ(pread(fd, mem, kBlock, beside), static_cast<ssize_t>(kBlock)) << path;
    close(fd);
  }
  free(mem);
  ASSERT_EQ(m.Stop(), 0);
}

// (iii) --rate bounds the speed: 8 MiB at 4 MB/s cannot take less than about two seconds.
TEST_F(ScrubMountTest, TheRateLimitIsHonoured) {
  Mount m;
  ASSERT_TRUE(m.Start());
  constexpr size_t kBytes = 8 << 20;
  WriteFile(m.Path("big"), Pattern(kBytes, 9));
  const auto start = std::chrono::steady_clock::now();
  int exit = -1;
  Json report;
  ASSERT_TRUE(ScrubJson(m.Path(""), "--rate 4", &exit, &report));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(exit, 0);
  EXPECT_EQ(report["bytes"].number, kBytes);
  // 8 MiB / 4 MB/s = 2.1 s; the first chunk goes at once, so the bound is a little lower.
  EXPECT_GE(seconds, 1.5);
  EXPECT_GE(report["seconds"].number, 1.5);
  // Without a limit, the same scrub.
  ASSERT_TRUE(ScrubJson(m.Path(""), "--rate 0", &exit, &report));
  EXPECT_EQ(exit, 0);
  EXPECT_EQ(report["bytes"].number, kBytes);
  ASSERT_EQ(m.Stop(), 0);
}

// (iv) Operational errors are exit 8, as fsck's: not a stablefs mount, a store in use.
TEST_F(ScrubMountTest, WhatCannotBeScrubbedIsExit8) {
  Mount m;
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(testing::Run(Ctl("scrub /proc")), 8);
  EXPECT_EQ(testing::Run(Ctl("scrub " + m.store())), 8);  // the daemon holds it
  EXPECT_EQ(testing::Run(Ctl("scrub --rate x " + m.Path(""))), 8);
  ASSERT_EQ(m.Stop(), 0);
}

}  // namespace
}  // namespace stablefs
