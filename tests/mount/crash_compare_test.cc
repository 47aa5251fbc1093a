// stablefsctl compare --crash: the model (recordings, workloads, crash states, the oracle) and
// the run for real. Every verdict kind is shown able to appear: ext4 with -o nobarrier and a
// recorder that drops flushes must lose acknowledged data, a state with its superblocks zeroed
// must not mount, a state whose ext4 is damaged after the unmount must fail fsck, and a
// half-done rename or a lost fsynced file must be reported by the oracle.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "tools/compare/crash.h"

namespace stablefs::compare::crash {
namespace {

std::string Le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; i++) s += char(uint8_t(v >> (8 * i)));
  return s;
}
std::string W(uint64_t off, const std::string& data) {
  return "W" + Le(off, 8) + Le(data.size(), 4) + data;
}
std::string F() { return std::string("F") + '\0'; }
std::string M(const std::string& name) { return "M" + Le(name.size(), 4) + name; }

TEST(CrashRecording, ParsesEveryRecordAndDropsATornTail) {
  std::string log =
      "SFSRECv1" + W(4096, "abcd") + F() + M("b0") + "Z" + Le(8192, 8) + Le(4096, 8) + M("e0");
  std::vector<Record> r;
  std::string err;
  ASSERT_TRUE(ParseRecording(log + W(0, "torn").substr(0, 10), &r, &err)) << err;
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].type, Record::kWrite);
  EXPECT_EQ(r[0].offset, 4096u);
  EXPECT_EQ(r[0].data, "abcd");
  EXPECT_EQ(r[1].type, Record::kFlush);
  EXPECT_EQ(r[2].data, "b0");
  EXPECT_EQ(r[3].type, Record::kZero);
  EXPECT_EQ(r[3].length, 4096u);
  EXPECT_FALSE(ParseRecording("SFSRECv0", &r, &err));
  EXPECT_FALSE(ParseRecording("SFSRECv1X", &r, &err));
  EXPECT_NE(err.find("bad record type"), std::string::npos);
}

// Records: 0 W, 1 W, 2 F, 3 M b0, 4 W, 5 W, 6 W, 7 F, 8 M e0, 9 M end.
std::vector<Record> Synthetic() {
  std::string log = "SFSRECv1" + W(0, "a") + W(1, "b") + F() + M("b0") + W(2, "c") + W(3, "d") +
                    W(4, "e") + F() + M("e0") + M("end");
  std::vector<Record> r;
  std::string err;
  EXPECT_TRUE(ParseRecording(log, &r, &err)) << err;
  return r;
}

TEST(CrashStatesTest, EveryFlushPrefixAtBothCrashPointsAndSeededSubsets) {
  std::vector<Record> r = Synthetic();
  Marks m;
  std::string err;
  ASSERT_TRUE(FindMarks(r, 1, &m, &err)) << err;
  EXPECT_EQ(m.begin[0], 3);
  EXPECT_EQ(m.end[0], 8);
  EXPECT_EQ(m.workload_end, 9);
  std::vector<State> s = CrashStates(r, m, 0, 1);
  // Distinct images: no writes, the two before the first flush, all five.
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].prefix, 0u);
  EXPECT_EQ(s[0].at, std::vector<int64_t>({0, 2}));  // before the first flush, none durable
  EXPECT_EQ(s[1].prefix, 2u);
  EXPECT_EQ(s[1].at, std::vector<int64_t>({2, 7}));
  // Everything before the second flush and everything before the end are the same writes.
  EXPECT_EQ(s[2].at, std::vector<int64_t>({7, 9}));
  std::vector<State> again = CrashStates(r, m, 8, 7), other = CrashStates(r, m, 8, 8);
  ASSERT_GT(again.size(), 3u);
  for (size_t i = 3; i < again.size(); i++) {
    // A proper, nonempty subset of its epoch's writes: records 0 and 1 before the first flush,
    // 4, 5 and 6 between the flushes; checked at the epoch's end.
    const State& st = again[i];
    ASSERT_TRUE(st.prefix == 0 || st.prefix == 2) << st.prefix;
    const size_t lo = st.prefix == 0 ? 0 : 4, hi = st.prefix == 0 ? 1 : 6;
    EXPECT_GT(st.extra.size(), 0u);
    EXPECT_LT(st.extra.size(), hi - lo + 1);
    for (size_t e : st.extra) EXPECT_TRUE(e >= lo && e <= hi) << e;
    EXPECT_EQ(st.at, std::vector<int64_t>({st.prefix == 0 ? 2 : 7}));
  }
  std::vector<State> same = CrashStates(r, m, 8, 7);
  ASSERT_EQ(same.size(), again.size());
  for (size_t i = 0; i < same.size(); i++) EXPECT_EQ(same[i].extra, again[i].extra);
  (void)other;
}

TEST(CrashStatesTest, AStateIsTheImageWithItsWrites) {
  std::vector<Record> r = Synthetic();
  State s;
  s.prefix = 2;
  s.extra = {5};
  char path[] = "/tmp/crash-state-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_EQ(ftruncate(fd, 8), 0);
  std::string err;
  ASSERT_TRUE(ApplyState(r, s, fd, &err)) << err;
  char buf[8];
  ASSERT_EQ(pread(fd, buf, 8, 0), 8);
  EXPECT_EQ(std::string(buf, 5), std::string("ab\0d\0", 5));
  close(fd);
}

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/crash-model-XXXXXX";
    path_ = mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Marks as if each step were recorded with nothing between: b<i> at 2i, e<i> at 2i+1.
Marks Dense(size_t steps) {
  Marks m;
  for (size_t i = 0; i < steps; i++) {
    m.begin.push_back(int64_t(2 * i));
    m.end.push_back(int64_t(2 * i + 1));
  }
  m.workload_end = int64_t(2 * steps);
  return m;
}

TEST(CrashWorkloads, AceSequenceOneIsComplete) {
  std::vector<Workload> seq1 = AceSeq1();
  EXPECT_GT(seq1.size(), 300u);
  std::set<std::string> names, ops;
  for (const Workload& w : seq1) {
    EXPECT_TRUE(names.insert(w.name).second) << w.name;
    ASSERT_FALSE(w.steps.empty());
    EXPECT_TRUE(IsPersistence(w.steps.back().op)) << w.Describe();
    size_t core = 0;
    for (const Step& s : w.steps) {
      if (!s.dependency && !IsPersistence(s.op)) {
        core++;
        ops.insert(Describe(s).substr(0, Describe(s).find(' ')));
      }
    }
    EXPECT_EQ(core, 1u) << w.Describe();
  }
  // Every core operation of ACE's bounds.
  for (const char* op : {"creat", "mkdir", "write", "dwrite", "mmapwrite+msync", "link", "symlink",
                         "unlink", "remove", "rename", "setxattr", "removexattr", "truncate"}) {
    EXPECT_TRUE(ops.count(op)) << op;
  }
  bool falloc = false;
  for (const std::string& op : ops) falloc |= op.compare(0, 6, "falloc") == 0;
  EXPECT_TRUE(falloc);
}

// Every generated workload runs on a real filesystem without a step failing, and a crash state
// equal to the final state keeps every promise.
TEST(CrashWorkloads, EveryWorkloadRunsAndItsFinalStateKeepsItsPromises) {
  std::vector<Workload> all = AceSeq1();
  for (Workload& w : AceSeq2Sample(60, 3)) all.push_back(w);
  for (const Workload& w : all) {
    TempDir dir;
    Execution ex;
    std::string err;
    ASSERT_TRUE(Execute(w, dir.path(), -1, &ex, &err)) << w.Describe() << ": " << err;
    std::vector<std::string> problems;
    Marks m = Dense(w.steps.size());
    CheckState(w, ex, m, m.workload_end, dir.path(), &problems);
    EXPECT_TRUE(problems.empty()) << w.Describe() << ": " << problems[0];
  }
}

Workload Make(std::vector<Step> steps) {
  Workload w;
  w.name = "test";
  w.steps = std::move(steps);
  return w;
}

Step Write(const std::string& p, uint64_t off, uint64_t len) {
  Step s(Op::kWrite, p);
  s.off = off;
  s.len = len;
  return s;
}

TEST(CrashOracle, AFsyncedFileMustBeThereExactly) {
  TempDir dir;
  Workload w = Make({Step(Op::kCreat, "foo"), Write("foo", 0, 8192), Step(Op::kFsync, "foo")});
  Execution ex;
  std::string err;
  ASSERT_TRUE(Execute(w, dir.path(), -1, &ex, &err)) << err;
  Marks m = Dense(w.steps.size());
  std::string foo = dir.path() + "/foo";
  std::vector<std::string> p;
  CheckState(w, ex, m, m.workload_end, dir.path(), &p);
  EXPECT_TRUE(p.empty());
  // Shorter than fsynced: reported at any crash point after the fsync returned...
  ASSERT_EQ(truncate(foo.c_str(), 4096), 0);
  CheckState(w, ex, m, m.workload_end, dir.path(), &p);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("foo (fsync foo): size 4096, expected 8192"), std::string::npos) << p[0];
  // ...and not before it: nothing was promised yet.
  p.clear();
  CheckState(w, ex, m, m.end[2], dir.path(), &p);
  EXPECT_TRUE(p.empty()) << p[0];
  // Missing altogether.
  ASSERT_EQ(unlink(foo.c_str()), 0);
  CheckState(w, ex, m, m.workload_end, dir.path(), &p);
  ASSERT_FALSE(p.empty());
  EXPECT_NE(p[0].find("foo (fsync foo): missing"), std::string::npos) << p[0];
}

TEST(CrashOracle, ALaterStepThatBeganReleasesThePromise) {
  TempDir dir;
  Workload w = Make({Step(Op::kCreat, "foo"), Write("foo", 0, 8192), Step(Op::kFsync, "foo"),
                     Write("foo", 0, 100)});
  Execution ex;
  std::string err;
  ASSERT_TRUE(Execute(w, dir.path(), -1, &ex, &err)) << err;
  Marks m = Dense(w.steps.size());
  // The last write began: foo may hold either content. Before it began, only the fsynced one.
  ASSERT_EQ(truncate((dir.path() + "/foo").c_str(), 8192), 0);
  std::vector<std::string> p;
  CheckState(w, ex, m, m.workload_end, dir.path(), &p);
  EXPECT_TRUE(p.empty()) << p[0];
  CheckState(w, ex, m, m.begin[3], dir.path(), &p);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("bytes differ from offset 0"), std::string::npos) << p[0];
}

TEST(CrashOracle, ARenameIsNeverHalfDoneAndNeverLosesTheFile) {
  TempDir dir;
  Workload w = Make({Step(Op::kCreat, "foo"), Write("foo", 0, 4096), Step(Op::kSync),
                     Step(Op::kRename, "foo", "bar")});
  Execution ex;
  std::string err;
  ASSERT_TRUE(Execute(w, dir.path(), -1, &ex, &err)) << err;
  Marks m = Dense(w.steps.size());
  const std::string foo = dir.path() + "/foo", bar = dir.path() + "/bar";
  std::vector<std::string> p;
  CheckState(w, ex, m, m.workload_end, dir.path(), &p);
  EXPECT_TRUE(p.empty()) << p[0];
  // Both names linking the file: half a rename.
  ASSERT_EQ(link(bar.c_str(), foo.c_str()), 0);
  CheckState(w, ex, m, m.workload_end, dir.path(), &p);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("half a rename"), std::string::npos) << p[0];
  // Neither name: the synced file is lost.
  p.clear();
  ASSERT_EQ(unlink(foo.c_str()), 0);
  ASSERT_EQ(unlink(bar.c_str()), 0);
  CheckState(w, ex, m, m.workload_end, dir.path(), &p);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("under neither name"), std::string::npos) << p[0];
}

TEST(CrashOracle, AFsyncedDirectoryKeepsItsEntriesAndSyncKeepsXattrs) {
  TempDir dir;
  Workload w = Make({Step(Op::kMkdir, "A"), Step(Op::kCreat, "A/foo"), Step(Op::kSetxattr, "A/foo"),
                     Step(Op::kFsync, "A"), Step(Op::kSync)});
  Execution ex;
  std::string err;
  ASSERT_TRUE(Execute(w, dir.path(), -1, &ex, &err)) << err;
  Marks m = Dense(w.steps.size());
  std::vector<std::string> p;
  ASSERT_EQ(removexattr((dir.path() + "/A/foo").c_str(), "user.crash"), 0);
  CheckState(w, ex, m, m.workload_end, dir.path(), &p);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("A/foo (sync): xattrs 0, expected 1"), std::string::npos) << p[0];
  p.clear();
  ASSERT_EQ(unlink((dir.path() + "/A/foo").c_str()), 0);
  CheckState(w, ex, m, m.end[3] + 1, dir.path(), &p);  // after fsync A, before sync returned
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("A/foo (fsync A): missing"), std::string::npos) << p[0];
}

// ---- The run, for real ----

struct Outcome {
  int status = -1;
  std::string json;
};

Outcome Crash(std::vector<std::string> args) {
  args.insert(args.begin(), {STABLEFSCTL_BIN, "compare", "--crash", "--json"});
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
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.json.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// A count of `fs`'s entry in the JSON ("states", "lost", ...), -1 when absent.
long Count(const Outcome& o, const std::string& fs, const std::string& key) {
  size_t at = o.json.find("{\"fs\": \"" + fs + "\"");
  if (at == std::string::npos) return -1;
  at = o.json.find("\"" + key + "\": ", at);
  if (at == std::string::npos) return -1;
  return std::strtol(o.json.c_str() + at + key.size() + 4, nullptr, 10);
}

bool Have(const char* prog) {
  std::string cmd = std::string("command -v ") + prog + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

class CrashRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "compare --crash mounts filesystems: needs root";
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  }
};

// The first workloads of sequence 1 (creat, writes with each persistence operation) on every
// filesystem: all states kept, each state counted. stablefs runs those that do not end in
// sync(2), which does not reach its daemon (the next test).
TEST_F(CrashRunTest, HealthyFilesystemsKeepEveryState) {
  std::vector<std::string> fs = {"ext4"};
  if (Have("mkfs.xfs")) fs.push_back("xfs");
  if (Have("mkfs.btrfs")) fs.push_back("btrfs");
  std::string list;
  for (const std::string& f : fs) list += (list.empty() ? "" : ",") + f;
  Outcome o = Crash({"--fs", list, "--limit", "8"});
  EXPECT_EQ(o.status, 0) << o.json;
  for (const std::string& f : fs) {
    EXPECT_EQ(Count(o, f, "workloads"), 8) << f << ": " << o.json;
    EXPECT_GE(Count(o, f, "states"), 8 * 3) << f;
    EXPECT_EQ(Count(o, f, "failed_states"), 0) << f << ": " << o.json;
  }
  o = Crash({"--fs", "stablefs", "--limit", "8", "--exclude", "; sync]"});
  EXPECT_EQ(o.status, 0) << o.json;
  EXPECT_EQ(Count(o, "stablefs", "workloads"), 8) << o.json;
  EXPECT_GE(Count(o, "stablefs", "states"), 8 * 3);
  EXPECT_EQ(Count(o, "stablefs", "failed_states"), 0) << o.json;
}

// The kernel sends FUSE_SYNCFS only to virtiofs: sync(2) makes nothing of a /dev/fuse daemon's
// durable, and the crash table says so (GUARANTEES.md, guarantee 3). When a kernel sends it,
// this test fails, and the table and the guarantee's text change with it.
TEST_F(CrashRunTest, WhatSyncAcknowledgedOnStablefsIsNotDurable) {
  Outcome o = Crash({"--fs", "stablefs", "--filter", "[creat foo; write foo 0+32768; sync]"});
  EXPECT_EQ(o.status, 1) << o.json;
  EXPECT_EQ(Count(o, "stablefs", "workloads"), 1) << o.json;
  EXPECT_GT(Count(o, "stablefs", "lost"), 0) << o.json;
  EXPECT_NE(o.json.find("foo (sync): size 0, expected 32768"), std::string::npos) << o.json;
}

// ext4 without barriers issues no cache flush: what fsync acknowledged is in no crash state
// that stops at the last flush.
TEST_F(CrashRunTest, Ext4WithNobarrierLosesAcknowledgedData) {
  Outcome o = Crash({"--fs", "ext4", "--limit", "8", "--mount-options", "nobarrier"});
  EXPECT_EQ(o.status, 1) << o.json;
  EXPECT_GT(Count(o, "ext4", "lost"), 0) << o.json;
  EXPECT_NE(o.json.find("(fsync foo): missing"), std::string::npos) << o.json;
}

// A disk that acknowledges flushes it never made loses data under every filesystem, stablefs
// included: the crash column of each can say "lost".
TEST_F(CrashRunTest, ADiskThatDropsFlushesLosesAcknowledgedDataEverywhere) {
  std::vector<std::string> fs = {"ext4", "stablefs"};
  if (Have("mkfs.xfs")) fs.push_back("xfs");
  if (Have("mkfs.btrfs")) fs.push_back("btrfs");
  std::string list;
  for (const std::string& f : fs) list += (list.empty() ? "" : ",") + f;
  Outcome o =
      Crash({"--fs", list, "--filter", "write foo 0+32768; fsync foo", "--test-drop-flushes"});
  EXPECT_EQ(o.status, 1) << o.json;
  for (const std::string& f : fs) {
    EXPECT_EQ(Count(o, f, "workloads"), 1) << f << ": " << o.json;
    EXPECT_GT(Count(o, f, "lost"), 0) << f << ": " << o.json;
  }
}

TEST_F(CrashRunTest, AStateThatDoesNotMountOrFailsFsckIsCounted) {
  Outcome o = Crash({"--fs", "ext4", "--limit", "2", "--test-damage-state", "superblock"});
  EXPECT_EQ(o.status, 1) << o.json;
  EXPECT_EQ(Count(o, "ext4", "unmountable"), Count(o, "ext4", "states")) << o.json;
  EXPECT_NE(o.json.find("does not mount"), std::string::npos) << o.json;
  o = Crash({"--fs", "ext4", "--limit", "2", "--test-damage-state", "fsck"});
  EXPECT_EQ(o.status, 1) << o.json;
  EXPECT_EQ(Count(o, "ext4", "fsck_failed"), Count(o, "ext4", "states")) << o.json;
  EXPECT_NE(o.json.find("e2fsck exit 4"), std::string::npos) << o.json;
}

TEST_F(CrashRunTest, BadArgumentsAreRefused) {
  EXPECT_EQ(Crash({"--fs", "ntfs"}).status, 8);
  EXPECT_EQ(Crash({"--workloads", "seq9"}).status, 8);
  EXPECT_EQ(Crash({"--reorder", "x"}).status, 8);
  EXPECT_EQ(Crash({"--fs", "xfs", "--test-damage-state", "fsck"}).status, 8);
}

}  // namespace
}  // namespace stablefs::compare::crash
