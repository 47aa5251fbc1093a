// FaultBlockStore: error rules, bit flips on read, and the undo log behind SimulateCrash().
#include "storage/fault_block_store.h"

#include <set>

namespace stablefs {

FaultBlockStore::FaultBlockStore(std::unique_ptr<BlockStore> base, bool undo_log)
    : base_(std::move(base)), undo_log_(undo_log) {
  superblock_ = base_->superblock();
}

FaultBlockStore::~FaultBlockStore() = default;

void FaultBlockStore::InjectReadError(uint64_t ino, Status error, int count) {
  MutexLock lock(&mu_);
  read_errors_.push_back(ErrorRule{ino, std::move(error), count});
}

void FaultBlockStore::InjectWriteError(uint64_t ino, Status error, int count) {
  MutexLock lock(&mu_);
  write_errors_.push_back(ErrorRule{ino, std::move(error), count});
}

void FaultBlockStore::InjectSyncError(Status error, int count) {
  MutexLock lock(&mu_);
  sync_errors_.push_back(ErrorRule{kAnyIno, std::move(error), count});
}

void FaultBlockStore::InjectBitFlipOnRead(uint64_t ino, uint64_t index, size_t bit) {
  MutexLock lock(&mu_);
  flips_.push_back(Flip{ino, index, bit});
}

void FaultBlockStore::FailCall(uint64_t n, Status error) {
  MutexLock lock(&mu_);
  fail_call_ = calls_ + n;
  fail_call_error_ = std::move(error);
}

uint64_t FaultBlockStore::calls() const {
  MutexLock lock(&mu_);
  return calls_;
}

std::optional<Status> FaultBlockStore::CountCall() {
  if (++calls_ != fail_call_) return std::nullopt;
  fail_call_ = 0;
  return fail_call_error_;
}

void FaultBlockStore::ClearFaults() {
  MutexLock lock(&mu_);
  fail_call_ = 0;
  read_errors_.clear();
  write_errors_.clear();
  sync_errors_.clear();
  flips_.clear();
}

std::optional<Status> FaultBlockStore::TakeError(std::vector<ErrorRule>* rules, uint64_t ino) {
  for (auto it = rules->begin(); it != rules->end(); ++it) {
    if (it->ino != kAnyIno && it->ino != ino) continue;
    Status error = it->error;
    if (it->count > 0 && --it->count == 0) rules->erase(it);
    return error;
  }
  return std::nullopt;
}

Status FaultBlockStore::DoGet(Space s, std::string_view key, std::string* value) {
  {
    MutexLock lock(&mu_);
    if (std::optional<Status> e = CountCall()) return *e;
  }
  return base_->DoGet(s, key, value);
}

Status FaultBlockStore::DoScan(Space s, std::string_view begin, std::string_view end,
                               const std::function<bool(std::string_view, std::string_view)>& fn) {
  {
    MutexLock lock(&mu_);
    if (std::optional<Status> e = CountCall()) return *e;
  }
  return base_->DoScan(s, begin, end, fn);
}

Status FaultBlockStore::DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                                     char* tuples, BlockState* state) {
  std::vector<Flip> flips;
  {
    MutexLock lock(&mu_);
    if (std::optional<Status> e = CountCall()) return *e;
    if (std::optional<Status> e = TakeError(&read_errors_, ino)) return *e;
    flips = flips_;
  }
  STABLEFS_RETURN_IF_ERROR(base_->DoReadBlocks(ino, first, n, blocks, tuples, state));
  const size_t tb = tuple_bytes_per_block();
  for (const Flip& f : flips) {
    if (f.ino != ino || f.index < first || f.index >= first + n) continue;
    size_t i = f.index - first;
    if (state[i] != BlockState::kPresent) continue;
    size_t byte = f.bit / 8;
    char mask = static_cast<char>(1u << (f.bit % 8));
    if (byte < kBlockSize) {
      blocks[i][byte] ^= mask;
    } else if (byte - kBlockSize < tb) {
      tuples[i * tb + (byte - kBlockSize)] ^= mask;
    }
  }
  return Status::Ok();
}

Status FaultBlockStore::CaptureUndo(const WriteBatch& batch, UndoBatch* undo) {
  auto capture_key = [&](Space s, std::string key) -> Status {
    std::string value;
    Status st = base_->DoGet(s, key, &value);
    if (st.IsNotFound()) {
      undo->push_back(UndoRecord{s, std::move(key), std::nullopt});
      return Status::Ok();
    }
    STABLEFS_RETURN_IF_ERROR(st);
    undo->push_back(UndoRecord{s, std::move(key), std::move(value)});
    return Status::Ok();
  };
  auto capture_range = [&](Space s, const std::string& begin, const std::string& end) {
    if (begin >= end) return Status::Ok();
    return base_->DoScan(s, begin, end, [&](std::string_view k, std::string_view v) {
      undo->push_back(UndoRecord{s, std::string(k), std::string(v)});
      return true;
    });
  };
  for (const WriteBatch::Op& op : batch.ops()) {
    switch (op.kind) {
      case WriteBatch::OpKind::kPut:
      case WriteBatch::OpKind::kDelete:
        STABLEFS_RETURN_IF_ERROR(capture_key(op.space, op.key));
        break;
      case WriteBatch::OpKind::kDeleteRange:
        STABLEFS_RETURN_IF_ERROR(capture_range(op.space, op.key, op.value));
        break;
      case WriteBatch::OpKind::kPutBlock:
        STABLEFS_RETURN_IF_ERROR(capture_key(Space::kData, DataKey(op.ino, op.index)));
        STABLEFS_RETURN_IF_ERROR(capture_key(Space::kBlockMap, DataKey(op.ino, op.index)));
        break;
      case WriteBatch::OpKind::kDeleteBlocks:
        STABLEFS_RETURN_IF_ERROR(capture_range(Space::kData, DataKey(op.ino, op.index),
                                               DataKeyRangeEnd(op.ino, op.end)));
        STABLEFS_RETURN_IF_ERROR(capture_range(Space::kBlockMap, DataKey(op.ino, op.index),
                                               DataKeyRangeEnd(op.ino, op.end)));
        break;
    }
  }
  return Status::Ok();
}

Status FaultBlockStore::DoWrite(const WriteBatch& batch, bool sync) {
  MutexLock lock(&mu_);
  if (std::optional<Status> e = CountCall()) return *e;
  std::set<uint64_t> inos;
  for (const WriteBatch::Op& op : batch.ops()) {
    if (op.kind == WriteBatch::OpKind::kPutBlock || op.kind == WriteBatch::OpKind::kDeleteBlocks) {
      inos.insert(op.ino);
    }
  }
  if (std::optional<Status> e = TakeError(&write_errors_, kAnyIno)) return *e;
  for (uint64_t ino : inos) {
    if (std::optional<Status> e = TakeError(&write_errors_, ino)) return *e;
  }
  if (sync) {
    if (std::optional<Status> e = TakeError(&sync_errors_, kAnyIno)) return *e;
  }
  UndoBatch undo;
  if (undo_log_) STABLEFS_RETURN_IF_ERROR(CaptureUndo(batch, &undo));
  STABLEFS_RETURN_IF_ERROR(base_->DoWrite(batch, sync));
  if (!undo_log_) return Status::Ok();
  if (sync) {
    unsynced_.clear();  // a WAL sync makes every earlier write durable too
  } else {
    unsynced_.push_back(std::move(undo));
  }
  return Status::Ok();
}

Status FaultBlockStore::DoSync() {
  MutexLock lock(&mu_);
  if (std::optional<Status> e = CountCall()) return *e;
  if (std::optional<Status> e = TakeError(&sync_errors_, kAnyIno)) return *e;
  STABLEFS_RETURN_IF_ERROR(base_->DoSync());
  unsynced_.clear();
  return Status::Ok();
}

Status FaultBlockStore::SimulateCrash(size_t* dropped) {
  MutexLock lock(&mu_);
  if (!undo_log_) return Status::NotSupported("no undo log is kept: cannot simulate a crash");
  const size_t tb = tuple_bytes_per_block();
  size_t n = unsynced_.size();
  // Newest first, so that each key ends in its state before the oldest unsynced batch.
  for (auto it = unsynced_.rbegin(); it != unsynced_.rend(); ++it) {
    WriteBatch restore;
    for (const UndoRecord& r : *it) {
      if (!r.value) {
        restore.Delete(r.space, r.key);
      } else if (r.space == Space::kData) {
        uint64_t ino, index;
        if (!ParseDataKey(r.key, &ino, &index) || r.value->size() != kBlockSize + tb) {
          return Status::Corruption("fault store: undo record of a malformed block");
        }
        restore.PutBlockCopy(ino, index, r.value->data(), r.value->data() + kBlockSize, tb);
      } else {
        restore.Put(r.space, r.key, *r.value);
      }
    }
    STABLEFS_RETURN_IF_ERROR(base_->DoWrite(restore, /*sync=*/false));
  }
  unsynced_.clear();
  STABLEFS_RETURN_IF_ERROR(base_->DoSync());
  if (dropped != nullptr) *dropped = n;
  return Status::Ok();
}

size_t FaultBlockStore::UnsyncedBatches() const {
  MutexLock lock(&mu_);
  return unsynced_.size();
}

// ---- ReadOnlyView ----

ReadOnlyView::ReadOnlyView(BlockStore* base) : base_(base) {
  superblock_ = base_->superblock();
  read_only_ = true;
}

Status ReadOnlyView::DoGet(Space s, std::string_view key, std::string* value) {
  return base_->DoGet(s, key, value);
}

Status ReadOnlyView::DoScan(Space s, std::string_view begin, std::string_view end,
                            const std::function<bool(std::string_view, std::string_view)>& fn) {
  return base_->DoScan(s, begin, end, fn);
}

Status ReadOnlyView::DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                                  char* tuples, BlockState* state) {
  return base_->DoReadBlocks(ino, first, n, blocks, tuples, state);
}

Status ReadOnlyView::DoWrite(const WriteBatch&, bool) {
  return Status::ReadOnly("a read-only view of the store");
}

Status ReadOnlyView::DoSync() { return Status::Ok(); }

}  // namespace stablefs
