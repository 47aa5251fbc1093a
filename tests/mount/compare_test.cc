// stablefsctl compare, run for real: each check says "kept" on a healthy stablefs and "broken"
// when stablefs is made to fail the guarantee it checks (stable_pages=off, writeback errors
// forgotten, or a store damaged in a way the check exists to find), so no check is one that
// cannot fail. A short ext4 run proves
// the kernel-filesystem side (loop device, FIEMAP, shutdown ioctl, a device that fills up).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace stablefs {
namespace {

struct Outcome {
  int status = -1;
  std::string json;
};

// Runs `stablefsctl compare ARGS --json` and collects its output; the tool unmounts and detaches
// everything it set up before it exits.
Outcome Compare(std::vector<std::string> args) {
  args.insert(args.begin(), {STABLEFSCTL_BIN, "compare"});
  args.push_back("--json");
  int fds[2];
  Outcome out;
  if (pipe(fds) != 0) return out;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.json.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// The verdict of `check` on `fs` in the tool's JSON ("kept", "broken", "not measurable").
std::string Verdict(const Outcome& o, const std::string& check, const std::string& fs) {
  const std::string key = "{\"check\": \"" + check + "\", \"fs\": \"" + fs + "\", \"verdict\": \"";
  size_t at = o.json.find(key);
  if (at == std::string::npos) return "(no result)";
  at += key.size();
  return o.json.substr(at, o.json.find('"', at) - at);
}

class CompareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "compare mounts filesystems: needs root";
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  }
};

TEST_F(CompareTest, StablePagesAreKeptWithWaitAndBrokenWithOff) {
  Outcome wait = Compare({"--fs", "stablefs", "--checks", "1,5", "--seconds", "1"});
  EXPECT_EQ(Verdict(wait, "stable-pages", "stablefs"), "kept") << wait.json;
  EXPECT_EQ(Verdict(wait, "odirect-buffer-change", "stablefs"), "kept") << wait.json;
  EXPECT_EQ(wait.status, 0);
  // Without stable pages a rewrite lands in a page between its checksum and the store's copy:
  // the store rejects the batch (protection_errors_write) and fsync reports EIO.
  // The race is a stress run's: on a loaded machine one second may pass without it, so up to
  // three runs are given to show it.
  Outcome off;
  for (int attempt = 0; attempt < 3; attempt++) {
    off = Compare({"--fs", "stablefs", "--checks", "1,5", "--seconds", "1", "--stablefs-options",
                   "stable_pages=off"});
    if (Verdict(off, "stable-pages", "stablefs") == "broken" &&
        Verdict(off, "odirect-buffer-change", "stablefs") == "broken") {
      break;
    }
  }
  EXPECT_EQ(Verdict(off, "stable-pages", "stablefs"), "broken") << off.json;
  EXPECT_EQ(Verdict(off, "odirect-buffer-change", "stablefs"), "broken") << off.json;
  EXPECT_NE(off.json.find("protection_errors_write"), std::string::npos) << off.json;
  EXPECT_EQ(off.status, 1);
}

TEST_F(CompareTest, DamageIsDetectedAndDamageAboveTheProtectionIsSilent) {
  Outcome healthy = Compare({"--fs", "stablefs", "--checks", "2"});
  Outcome above = Compare({"--fs", "stablefs", "--checks", "2", "--test-damage", "above-pi"});
  for (const char* check : {"bit-flip", "misdirected-write", "torn-write"}) {
    EXPECT_EQ(Verdict(healthy, check, "stablefs"), "kept") << check << healthy.json;
    // The same damage written with fresh tuples: the wrong bytes come back, and the check says so.
    EXPECT_EQ(Verdict(above, check, "stablefs"), "broken") << check << above.json;
  }
  EXPECT_EQ(healthy.status, 0);
  EXPECT_EQ(above.status, 1);
}

TEST_F(CompareTest, FsyncedDataSurvivesACrashUnlessTheStoreLosesIt) {
  Outcome crash = Compare({"--fs", "stablefs", "--checks", "3"});
  EXPECT_EQ(Verdict(crash, "fsync-crash", "stablefs"), "kept") << crash.json;
  // A lost write of a block the fsync covered, after the crash.
  Outcome lost = Compare({"--fs", "stablefs", "--checks", "3", "--test-damage", "drop-synced"});
  EXPECT_EQ(Verdict(lost, "fsync-crash", "stablefs"), "broken") << lost.json;
}

// The store below stablefs fails every write after the data was accepted (-o debug_faults, a
// failing disk): every fd open at the time gets EIO at its next fsync, once. A daemon that
// forgets writeback errors (-o debug_lose_writeback_errors, as filesystems before errseq did)
// must be reported "broken". (A full store disk is tests/mount/full_disk_test's.)
TEST_F(CompareTest, WritebackErrorsReachEveryFdAndLosingThemIsBroken) {
  Outcome o = Compare({"--fs", "stablefs", "--checks", "4"});
  EXPECT_EQ(Verdict(o, "writeback-error", "stablefs"), "kept") << o.json;
  EXPECT_EQ(o.status, 0);
  Outcome lost = Compare(
      {"--fs", "stablefs", "--checks", "4", "--stablefs-options", "debug_lose_writeback_errors"});
  EXPECT_EQ(Verdict(lost, "writeback-error", "stablefs"), "broken") << lost.json;
  EXPECT_EQ(lost.status, 1);
}

TEST_F(CompareTest, Ext4ReturnsDamageSilentlyKeepsFsyncAndReportsWritebackErrors) {
  if (access("/usr/sbin/mkfs.ext4", X_OK) != 0 && access("/sbin/mkfs.ext4", X_OK) != 0) {
    GTEST_SKIP() << "no mkfs.ext4";
  }
  Outcome o = Compare({"--fs", "ext4", "--checks", "2,3,4"});
  // ext4 has no data checksums: a flipped bit on the device comes back as data.
  EXPECT_EQ(Verdict(o, "bit-flip", "ext4"), "broken") << o.json;
  EXPECT_EQ(Verdict(o, "fsync-crash", "ext4"), "kept") << o.json;
  EXPECT_EQ(Verdict(o, "writeback-error", "ext4"), "kept") << o.json;
  EXPECT_EQ(o.status, 1);
}

}  // namespace
}  // namespace stablefs
