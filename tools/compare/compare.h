// stablefsctl compare: the guarantees of GUARANTEES.md, measured on stablefs and on the kernel's
// filesystems side by side.
//
// A Target is one filesystem the checks run on: stablefs (a fresh store and a daemon this
// process owns), a kernel filesystem on a loop device over a sparse file, tmpfs, or a mount point
// someone else set up. Each check is a function of a Target that returns a Result: kept, broken
// or not measurable, with a one-line reason and the evidence behind it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stablefs::compare {

enum class Verdict { kKept, kBroken, kNotMeasurable };
const char* VerdictName(Verdict v);  // "kept", "broken", "not measurable"

struct Result {
  std::string check;  // short id, as in the table: "stable-pages", "bit-flip", ...
  std::string fs;     // the target's name
  Verdict verdict = Verdict::kNotMeasurable;
  std::string reason;                 // one line
  std::vector<std::string> evidence;  // what was measured
};

// Damage done below a filesystem while it is unmounted (check 2).
enum class Damage {
  kBitFlip,  // one bit of a data block
  kSwap,     // two blocks of a file exchanged: a misdirected write
  kTorn,     // the second half of a block replaced by another block's: a torn write
};

// Integrity errors a filesystem reported since Target::MarkErrors: lines of the kernel log at
// warning level or worse that name the device, or the stablefs daemon's error counters.
struct ErrorReport {
  uint64_t count = 0;
  std::string first;  // the first line, or the counters that moved
};

// Test-only damage to stablefs (hidden option --test-damage, stablefs targets only): it makes a
// check meet the failure it exists to find, so a test can prove the check says "broken".
enum class TestDamage {
  kNone,
  kAbovePi,     // check 2: damage is written with freshly computed tuples, as a filesystem bug
                // above the protection would write it; nothing can detect it
  kDropSynced,  // check 3: after the crash, a block the fsync covered is deleted from the store
};

class Target {
 public:
  virtual ~Target() = default;

  const std::string& name() const { return name_; }
  const std::string& mnt() const { return mnt_; }
  std::string Path(const std::string& rel) const { return mnt_ + "/" + rel; }

  // Creates the filesystem and mounts it. False with *err on failure.
  virtual bool Setup(std::string* err) = 0;
  // Unmounts (everything written reaches the device or store) and mounts again.
  virtual bool Unmount(std::string* err) = 0;
  virtual bool Mount(std::string* err) = 0;
  // Whether data survives an unmount (not for tmpfs).
  virtual bool Persistent() const { return true; }
  // Whether this process created the filesystem and may unmount, crash and damage it.
  virtual bool Owned() const { return true; }

  // Stops the filesystem as a crash would, so nothing not yet durable is written any more, and
  // unmounts what is left. False with *why when the filesystem has no way to do it here.
  virtual bool Crash(std::string* why) = 0;
  // Damages the block holding byte `offset` of `rel` (other: the second block, for kSwap and
  // kTorn) while unmounted. `expect` is the block's content as written, to find it on the device.
  virtual bool Corrupt(const std::string& rel, Damage kind, uint64_t offset, uint64_t other,
                       const std::string& expect, const std::string& expect_other,
                       std::string* evidence, std::string* err) = 0;
  // Records where the filesystem's block lives on its device while mounted (kernel filesystems
  // need the mount to ask FIEMAP; stablefs needs nothing).
  virtual bool Locate(const std::string& rel, uint64_t offset, const std::string& expect,
                      std::string* err) {
    return true;
  }

  // Makes every write to the filesystem's device or store fail from now on, as a failing disk
  // does (check 4). False when this target has no way to (kernel filesystems here: no
  // device-mapper to put dm-error below them).
  virtual bool CanFailWrites() const { return false; }
  virtual bool FailWrites(std::string* err) {
    *err = "cannot make this filesystem's device fail";
    return false;
  }
  // Ends FailWrites: the device works again (before the unmount).
  virtual void HealWrites() {}

  virtual void MarkErrors() = 0;
  virtual ErrorReport ErrorsSinceMark() = 0;
  // /sys/block/DEV/queue/stable_writes of the filesystem's device, or why there is none.
  virtual std::string StableWrites() const = 0;

  // A target like this one whose device or store lives in `dir` (check 4 puts it on a small
  // tmpfs). Null when the kind cannot be recreated (an existing mount point).
  virtual std::unique_ptr<Target> CloneIn(const std::string& dir) const = 0;

  TestDamage test_damage = TestDamage::kNone;

 protected:
  std::string name_;
  std::string mnt_;
};

// Where the programs live: stablefs and mkfs.stablefs beside this binary (or its build tree's
// fs/ directory), else on PATH; this binary itself for `stablefsctl corrupt/wait`.
struct Programs {
  std::string self, stablefs, mkfs;
};

// Targets. `dir` is a fresh directory the target owns.
std::unique_ptr<Target> NewStablefsTarget(const Programs& progs, const std::string& dir,
                                          const std::string& options);
std::unique_ptr<Target> NewKernelTarget(const std::string& fstype, const std::string& dir);
std::unique_ptr<Target> NewExistingTarget(const std::string& mountpoint);

// The checks. `seconds` bounds the timed workloads of checks 1 and 5.
Result CheckStablePages(Target* t, double seconds);
std::vector<Result> CheckSilentCorruption(Target* t);  // bit flip, misdirected, torn
Result CheckCrashDurability(Target* t);
Result CheckWritebackError(Target* t, const std::string& scratch);
Result CheckDirectIoBufferChange(Target* t, double seconds);

// Set by SIGINT/SIGTERM: workloads stop, targets are torn down, and the tool exits.
bool Interrupted();

// `stablefsctl compare ...`: argv[1] is "compare". Returns the exit status.
int CompareMain(int argc, char** argv);

}  // namespace stablefs::compare
