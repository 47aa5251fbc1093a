// stablefsctl compare --crash: what a filesystem keeps across a crash at every flush of its disk.
//
// A workload (a few file operations, each followed by nothing, fsync, fdatasync or sync) runs on
// a filesystem whose disk is a loop device over stablefs-recorder's `disk` (recorder.cc), so the
// recording holds every write and every cache flush the filesystem sent, and marks naming where
// each step began and returned. A crash state is the disk image as a power cut could leave it:
// the image before the workload, every write up to some flush, and (bounded, seeded) a subset of
// the writes after it, the disk cache having lost the rest. Each state is mounted (the
// filesystem's own recovery runs), compared with what the persistence operations acknowledged
// before that point promised, unmounted and checked by the filesystem's own fsck.
//
// The oracle (Expect) is read from the live filesystem right after each persistence operation
// returned: what its path held then must be what the crash state holds, unless a later step that
// had begun before the crash point touched it. Keys:
//   "n:PATH"  the name: whether PATH exists (fsync of the file or its directory, sync)
//   "d:PATH"  the object: type, size, content or link target, and (fsync, sync) its user xattrs
//   "r:PATH"  a range of a file's bytes (msync of a shared mapping)
// What the promises are, per operation, is written in CRASH.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stablefs::compare::crash {

// ---- The recording (format: recorder.cc) ----

struct Record {
  enum Type : char { kWrite = 'W', kZero = 'Z', kFlush = 'F', kMark = 'M' } type;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string data;  // kWrite: the bytes; kMark: the name
};

// Parses a recorder log. A short final record (the recorder was killed) is dropped. False with
// *err when the header is wrong.
bool ParseRecording(const std::string& bytes, std::vector<Record>* records, std::string* err);

// ---- Workloads ----

enum class Op {
  kCreat,
  kMkdir,
  kWrite,
  kDwrite,
  kMmapWrite,
  kFalloc,
  kTruncate,
  kLink,
  kSymlink,
  kUnlink,
  kRemove,
  kRename,
  kSetxattr,
  kRemovexattr,
  kFsync,
  kFdatasync,
  kSync,  // persistence operations
};

struct Step {
  Step(Op o, std::string pa = "", std::string pb = "")
      : op(o), a(std::move(pa)), b(std::move(pb)) {}
  Op op;
  std::string a, b;         // paths relative to the root (b: link, symlink and rename targets)
  uint64_t off = 0;         // write, falloc: offset; truncate: the new size
  uint64_t len = 0;         // write, falloc: length
  int mode = 0;             // falloc: its mode
  bool dependency = false;  // inserted to make the core operation possible (a file to write to)
};
std::string Describe(const Step& s);
bool IsPersistence(Op op);

struct Workload {
  std::string name;         // "seq1-0042"
  std::vector<Step> steps;  // dependencies, the core operations, persistence operations
  std::string Describe() const;
};

// ACE's sequence-1 set (Mohan et al., OSDI'18, its published bounds): every core operation on
// the file set foo, bar, A/foo, A/bar, A, B, with what it depends on inserted before it, then
// each persistence operation on a file of its range (the files used, their siblings and
// parents): fsync, fdatasync of a regular file, and sync.
std::vector<Workload> AceSeq1();
// `n` workloads of sequence 2 drawn with `seed`: two core operations, each followed by a
// persistence operation (the first may be none).
std::vector<Workload> AceSeq2Sample(size_t n, uint64_t seed);

// ---- The oracle ----

struct Fact {
  bool exists = false;  // n: facts
  mode_t type = 0;      // d: S_IFREG, S_IFDIR, S_IFLNK
  uint64_t size = 0;
  std::string content;  // a file's bytes, a link's target
  bool has_xattrs = false;
  std::map<std::string, std::string> xattrs;
  uint64_t range_off = 0;  // r: facts: content is the range's bytes

  static Fact Name(bool exists, mode_t type) {
    Fact f;
    f.exists = exists;
    f.type = type;
    return f;
  }
};

// What one persistence operation promised.
struct Promise {
  int step = -1;  // the persistence step; -1 for the image before the workload
  std::map<std::string, Fact> facts;
};

// Keys a step touches (see above), expanded to every name of the same inode.
struct Touch {
  std::vector<std::string> keys;
};

// The workload as it ran: promises, touched keys per step, and for each rename the object it
// moved (to check that a crash never leaves half of it).
struct Execution {
  std::vector<Promise> promises;    // in order; [0] is the image before the workload
  std::vector<Touch> touches;       // per step
  std::vector<std::string> errors;  // steps that failed on the live filesystem
};

// Runs `w` on the filesystem mounted at `root`, writing the marks "b<i>" before and "e<i>"
// after step i to `marks_fd` (-1: none). False with *err if a step failed that must not.
bool Execute(const Workload& w, const std::string& root, int marks_fd, Execution* ex,
             std::string* err);

// Positions of the marks in a recording: begin[i], end[i] of step i (record indexes), and
// the position of "end" (the workload's last step returned).
struct Marks {
  std::vector<int64_t> begin, end;
  int64_t workload_end = -1;
};
bool FindMarks(const std::vector<Record>& records, size_t steps, Marks* m, std::string* err);

// Checks the filesystem mounted at `root` as a crash at record position `at` left it. Appends
// one line per broken promise to *problems.
void CheckState(const Workload& w, const Execution& ex, const Marks& m, int64_t at,
                const std::string& root, std::vector<std::string>* problems);

// ---- Crash states of a recording ----

// One state: the writes records[0..prefix) plus the writes of `extra` (indexes of kWrite or
// kZero records at or after prefix), checked against the crash points in `at`.
struct State {
  size_t prefix = 0;
  std::vector<size_t> extra;
  std::vector<int64_t> at;
  std::string Describe() const;
};
// Every state of the recording up to m.workload_end: the prefix through each flush (crash just
// before that flush and just before the next), everything before workload_end, and `reorder`
// seeded subsets of each epoch's writes.
std::vector<State> CrashStates(const std::vector<Record>& records, const Marks& m, size_t reorder,
                               uint64_t seed);

// Writes `state` into `image_fd`, which holds the image before the workload.
bool ApplyState(const std::vector<Record>& records, const State& state, int image_fd,
                std::string* err);

// ---- The run ----

struct CrashOptions {
  std::vector<std::string> fs = {"ext4", "xfs", "btrfs", "stablefs"};
  std::string workloads = "seq1";  // seq1, seq2:N, or both: "seq1,seq2:N"
  size_t reorder = 2;
  uint64_t seed = 1;
  size_t limit = 0;     // only the first N workloads (0: all)
  std::string filter;   // only workloads whose description contains this
  std::string exclude;  // no workload whose description contains this
  bool json = false;
  bool drop_flushes = false;  // test: the recorder acknowledges flushes it never logs
  // test: damage every crash state so that a verdict kind must appear: "superblock" zeroes the
  // superblocks before the mount (unmountable), "fsck" gives ext4's root a wrong link count
  // after the unmount (fsck failed).
  std::string test_damage;
  std::string mount_options;  // extra mount options of the filesystem under test
  bool verbose = false;
};

struct FsResult {
  std::string fs;
  size_t workloads = 0, states = 0, failed_states = 0, lost = 0, fsck_failed = 0, unmountable = 0,
         errors = 0;
  double seconds = 0;
  std::vector<std::string> failures;  // "workload @ state: problem"
  std::string error;                  // operational error that stopped the run
};

// `stablefsctl compare --crash ...`; argv as given to CompareMain. Returns the exit status.
int CrashMain(int argc, char** argv, const std::string& self, const std::string& stablefs,
              const std::string& mkfs);

}  // namespace stablefs::compare::crash
