// FaultBlockStore: wraps another store's raw interface and injects the failures real devices have.
//
// Faults are injected below the PI checks of BlockStore, so the checks above see them as they
// would see a failing disk: read errors, write errors and sync errors (optionally limited to the
// blocks of one inode and to a number of occurrences), bits flipped in blocks as they are read,
// and a simulated power cut that drops every write no sync has made durable. The last works by
// an undo log: before each batch reaches the wrapped store, the prior state of every key it
// touches is captured; a sync forgets the log, SimulateCrash() replays it backwards.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/block_store.h"
#include "storage/thread_annotations.h"

namespace stablefs {

class FaultBlockStore : public BlockStore {
 public:
  // Matches the blocks of any inode.
  static constexpr uint64_t kAnyIno = UINT64_MAX;

  // undo_log false: no undo log is kept (SimulateCrash() is then NotSupported), so that a
  // long-running daemon (-o debug_faults) does not keep a copy of everything it overwrites.
  explicit FaultBlockStore(std::unique_ptr<BlockStore> base, bool undo_log = true);
  ~FaultBlockStore() override;

  BlockStore* base() const { return base_.get(); }

  // The base store's space figures and maintenance.
  uint64_t reserved_bytes() const override { return base_->reserved_bytes(); }
  Status ReclaimBlocks(uint64_t ino) override { return base_->ReclaimBlocks(ino); }
  Status Trim() override { return base_->Trim(); }

  // The next `count` block reads touching inode ino (kAnyIno: any) fail with `error`;
  // count < 0: every one until ClearFaults().
  void InjectReadError(uint64_t ino, Status error, int count = -1);
  // The next `count` batches that write or delete blocks of inode ino (kAnyIno: any batch) fail
  // with `error`, and nothing of them is written.
  void InjectWriteError(uint64_t ino, Status error, int count = 1);
  // The next `count` syncs (Sync() and sync writes) fail with `error`; the sync write is not
  // applied.
  void InjectSyncError(Status error, int count = 1);
  // Every read of block (ino, index) returns it with bit `bit` flipped; bits number the block's
  // data from its first byte, then its tuples.
  void InjectBitFlipOnRead(uint64_t ino, uint64_t index, size_t bit);
  // The n-th call into this store from now (n >= 1), counting every Get, Scan, block read, Write
  // and Sync alike, fails with `error` and does nothing: "fail at each store call" suites run an
  // operation once to count its calls, then once per call with that call failing.
  void FailCall(uint64_t n, Status error);
  // Calls into this store so far (what FailCall counts).
  uint64_t calls() const;
  void ClearFaults();

  // Drops every write that no sync has made durable, as a power cut would, and goes on serving.
  // *dropped (if not null) receives the number of batches dropped.
  Status SimulateCrash(size_t* dropped = nullptr);
  // Batches written since the last sync.
  size_t UnsyncedBatches() const;

 protected:
  Status DoGet(Space s, std::string_view key, std::string* value) override;
  Status DoScan(Space s, std::string_view begin, std::string_view end,
                const std::function<bool(std::string_view, std::string_view)>& fn) override;
  Status DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks, char* tuples,
                      BlockState* state) override;
  Status DoWrite(const WriteBatch& batch, bool sync) override;
  Status DoSync() override;

 private:
  struct ErrorRule {
    uint64_t ino;
    Status error;
    int count;  // < 0: forever
  };
  struct Flip {
    uint64_t ino;
    uint64_t index;
    size_t bit;
  };
  // The state of one key before a batch: absent, or its value.
  struct UndoRecord {
    Space space;
    std::string key;
    std::optional<std::string> value;
  };
  using UndoBatch = std::vector<UndoRecord>;

  // Returns the error of the first rule matching ino and uses one of its occurrences.
  std::optional<Status> TakeError(std::vector<ErrorRule>* rules, uint64_t ino) REQUIRES(mu_);
  // Counts one call; returns FailCall's error if this is the call it named.
  std::optional<Status> CountCall() REQUIRES(mu_);
  Status CaptureUndo(const WriteBatch& batch, UndoBatch* undo);

  const std::unique_ptr<BlockStore> base_;
  const bool undo_log_;
  mutable Mutex mu_;  // serializes writes with their undo capture, and guards the faults
  std::vector<ErrorRule> read_errors_ GUARDED_BY(mu_);
  std::vector<ErrorRule> write_errors_ GUARDED_BY(mu_);
  std::vector<ErrorRule> sync_errors_ GUARDED_BY(mu_);
  std::vector<Flip> flips_ GUARDED_BY(mu_);
  std::vector<UndoBatch> unsynced_ GUARDED_BY(mu_);
  uint64_t calls_ GUARDED_BY(mu_) = 0;
  uint64_t fail_call_ GUARDED_BY(mu_) = 0;  // 0: none
  Status fail_call_error_ GUARDED_BY(mu_);
};

// A second, read-only opening of a store that something else keeps writing: reads go to `base`
// as it is at the time of each read, writes are refused (ReadOnly) and syncs have nothing to do.
// Tests open a Filesystem on it to see what a fresh mount of the store would see now, without
// closing the one in use.
class ReadOnlyView : public BlockStore {
 public:
  explicit ReadOnlyView(BlockStore* base);
  uint64_t reserved_bytes() const override { return base_->reserved_bytes(); }

 protected:
  Status DoGet(Space s, std::string_view key, std::string* value) override;
  Status DoScan(Space s, std::string_view begin, std::string_view end,
                const std::function<bool(std::string_view, std::string_view)>& fn) override;
  Status DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks, char* tuples,
                      BlockState* state) override;
  Status DoWrite(const WriteBatch& batch, bool sync) override;
  Status DoSync() override;

 private:
  BlockStore* const base_;
};

}  // namespace stablefs
