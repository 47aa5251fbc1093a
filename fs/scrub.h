// Scrub: every data block of a store checked against its tuples while the filesystem stays in use
// (stablefsctl scrub). A mounted filesystem is scrubbed by its daemon, in a background thread
// started by an ioctl (fs/scrub_ioctl.h); an unmounted store by the tool itself. Both run this.
// What counts as damage is the store's verifier's to say (storage/verifier.h): fsck and
// stablefsctl verify run the same check, so the three never disagree.
//
// Consistency without stopping writers: the data space is read in chunks of up to kChunkBlocks
// blocks, each by one store iterator, which in RocksDB reads at one sequence number (an implicit
// snapshot) and pins the files it reads. Every record in the store passed the store's write check,
// so a block rewritten during the scrub is seen at its old or at its new version, each with its
// own tuples, never half of each: no false alarm. Pages under writeback are not in the store until
// their batch commits and are not looked at. A fresh iterator per chunk keeps a long scrub from
// pinning old versions (and their disk space) for its whole length. A block-map entry that a
// chunk's data did not hold is looked at again (BlockStore::StateOfBlock, one consistent view)
// before it is called lost: its block may have been written after the chunk's iterator was made.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "storage/block_store.h"
#include "storage/thread_annotations.h"

namespace stablefs {

struct ScrubOptions {
  // Bytes of data verified per second at most; 0 means no limit. Default: 0 (stablefsctl scrub
  // asks for 100 MB/s unless told otherwise).
  uint64_t rate_bytes_per_sec = 0;
  // Problems kept for the report; more are counted only. Default: 10000.
  size_t max_problems = 10000;
};

struct ScrubProblem {
  uint64_t ino = 0;
  std::string path;         // where one is known
  uint64_t offset = 0;      // file offset of the failing interval (of the block if none)
  std::string field;        // "guard", "application tag", "reference tag", "missing", "malformed"
  bool has_values = false;  // expected and found are meaningful (a tuple field mismatch)
  uint64_t expected = 0;    // the field's value recomputed from the data and the block's place
  uint64_t found = 0;       // the field's value stored
  std::string what;         // one line: what was expected and what was found
};

enum class ScrubState : uint8_t { kIdle, kRunning, kDone, kFailed, kCancelled };
const char* ScrubStateName(ScrubState s);

struct ScrubProgress {
  ScrubState state = ScrubState::kIdle;
  uint64_t generation = 0;      // which scrub: one more at each Start()
  uint64_t blocks_total = 0;    // estimate from the inodes' block counts at the start
  uint64_t blocks_checked = 0;  // data blocks verified so far
  uint64_t bytes_checked = 0;   // their bytes
  uint64_t problems = 0;        // found so far, kept or not
  uint64_t elapsed_ns = 0;
  std::string error;  // why it failed (kFailed)
};

class Scrubber {
 public:
  // Blocks read per store iterator (1 MiB of data): bounds what a chunk pins.
  static constexpr size_t kChunkBlocks = 256;

  explicit Scrubber(BlockStore* store) : store_(store) {}
  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;
  // Cancels a running scrub and waits for its thread.
  ~Scrubber();

  // Starts a scrub of the whole store in a background thread. Busy if one is running.
  Status Start(const ScrubOptions& options) EXCLUDES(mu_);
  // Asks a running scrub to stop; it ends in kCancelled soon after.
  void Cancel() EXCLUDES(mu_);
  // Waits until the current scrub, if any, has ended.
  void Wait() EXCLUDES(mu_);

  ScrubProgress progress() const EXCLUDES(mu_);
  // Problems [first, first + max) of the last scrub, in the order found.
  std::vector<ScrubProblem> problems(size_t first, size_t max) const EXCLUDES(mu_);

 private:
  void Run(ScrubOptions options) EXCLUDES(mu_);
  Status ScrubAll(const ScrubOptions& options) EXCLUDES(mu_);
  // Verifies up to `max` data blocks from key `*from` on; sets *from to where the next chunk
  // starts, or clears *more at the end of the data.
  Status ScrubChunk(std::string* from, size_t max, bool* more) EXCLUDES(mu_);
  void AddProblem(ScrubProblem p) EXCLUDES(mu_);
  // Sleeps until `bytes` are allowed by the rate; false if cancelled meanwhile.
  bool Throttle(const ScrubOptions& options, uint64_t bytes) EXCLUDES(mu_);
  // Fills in the paths of the inodes with problems.
  void FindPaths() EXCLUDES(mu_);
  bool cancelled() const EXCLUDES(mu_);

  BlockStore* const store_;
  mutable Mutex mu_;
  CondVar cv_{&mu_};  // cancel_ set, or a scrub ended
  std::thread thread_ GUARDED_BY(mu_);
  ScrubState state_ GUARDED_BY(mu_) = ScrubState::kIdle;
  uint64_t generation_ GUARDED_BY(mu_) = 0;
  bool cancel_ GUARDED_BY(mu_) = false;
  size_t max_problems_ GUARDED_BY(mu_) = 0;
  std::vector<ScrubProblem> problems_ GUARDED_BY(mu_);
  std::string error_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point start_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point end_ GUARDED_BY(mu_);
  // Read by progress() while the scrub runs.
  std::atomic<uint64_t> blocks_total_{0}, blocks_checked_{0}, problems_found_{0};
};

// The report of a finished scrub as one JSON object: counts, state, and each problem with its
// inode, path, offset, field, expected and found. exit is stablefsctl's status for it.
std::string ScrubReportJson(const ScrubProgress& p, const std::vector<ScrubProblem>& problems,
                            int exit);

}  // namespace stablefs
