// RocksBlockStore: opening and creating a store, and the data path: reads, writes, syncs,
// compaction. RocksDB's options are in rocks_options.cc, the WAL filter and the open-time checks
// in rocks_recovery.cc, the synced log side and the flush listener in rocks_acknowledge.cc, and
// the collection of segments in segment_collector.cc; rocks_internal.h is what they share.
#include "storage/rocks_block_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "storage/log.h"
#include "storage/rocks_internal.h"
#include "storage/rocks_status.h"
#include "storage/synced_log.h"
#include "storage/wal_marks.h"

namespace stablefs {

using rocks_internal::Budget;
using rocks_internal::CheckManifest;
using rocks_internal::DbOptions;
using rocks_internal::FileSystemOf;
using rocks_internal::RaiseOpenFileLimit;
using rocks_internal::SpaceFor;
using rocks_internal::SpaceOptions;
using rocks_internal::ToSlice;
using rocks_internal::ToView;

namespace {

namespace fs = std::filesystem;

bool IsLockError(const rocksdb::Status& s) {
  std::string m = s.ToString();
  return s.IsIOError() &&
         (m.find("lock") != std::string::npos || m.find("LOCK") != std::string::npos);
}

std::string SegmentDir(const std::string& store) { return store + "/segments"; }

// Segments' options before the superblock is read (Segments::CheckIdentity supplies the rest).
Segments::Options SegmentOptions(const std::string& store, const RocksOptions& o) {
  Segments::Options so;
  so.dir = SegmentDir(store);
  so.fs = FileSystemOf(o);
  so.max_slots = static_cast<uint32_t>(SpaceFor(store, o).segment / kBlockSize);
  return so;
}

// Segment data appended since the last sync past which a write syncs the segments and records
// the watermark, bounding what the next open's recovery must read back (64 MiB).
constexpr uint64_t kSyncEverySlots = 16384;

}  // namespace

Status RocksBlockStore::Create(const std::string& path, const CreateOptions& create,
                               const RocksOptions& options, std::unique_ptr<RocksBlockStore>* out) {
  // Nothing is made for options that cannot make a store.
  STABLEFS_RETURN_IF_ERROR(create.Validate());
  std::error_code ec;
  if (fs::exists(path, ec)) {
    if (!fs::is_directory(path, ec)) {
      return Status::InvalidArgument(path + " exists and is not a directory");
    }
    if (!fs::is_empty(path, ec)) {
      return Status::InvalidArgument(path +
                                     " is not empty; a store is created in an empty "
                                     "or missing directory");
    }
  }
  fs::create_directories(path, ec);
  if (ec) return Status::IOError("cannot create " + path + ": " + ec.message());
  std::unique_ptr<RocksBlockStore> store(new RocksBlockStore(path));
  STABLEFS_RETURN_IF_ERROR(store->OpenDb(options, /*create=*/true));
  STABLEFS_RETURN_IF_ERROR(store->InitializeNewStore(create));
  STABLEFS_RETURN_IF_ERROR(store->OpenSegments(options));
  SyncedMark mark;
  mark.sequence = store->db_->GetLatestSequenceNumber();
  STABLEFS_RETURN_IF_ERROR(store->StartSyncedLog(options, mark));
  *out = std::move(store);
  return Status::Ok();
}

Status RocksBlockStore::Open(const std::string& path, const RocksOptions& options,
                             std::unique_ptr<RocksBlockStore>* out) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return Status::NotFound("no store at " + path + " (create one with mkfs.stablefs " + path +
                            ")");
  }
  if (!fs::exists(fs::path(path) / "CURRENT", ec)) {
    return Status::InvalidArgument(path + " is not a stablefs store (no RocksDB database in it)");
  }
  // What the store's syncs acknowledged (synced_log.h). Without it (a store made before the log,
  // or the log lost) recovery cannot tell damage from a torn tail, and says so.
  bool have_mark = false;
  SyncedMark mark;
  {
    uint64_t damaged = 0;
    Status s = SyncedLog::Read(path, &have_mark, &mark, &damaged);
    if (!s.ok() || !have_mark) {
      Log(LogLevel::kWarning,
          "%s: %s; this open cannot check that recovery keeps every "
          "acknowledged write",
          path.c_str(), s.ok() ? "the store has no synced log" : s.ToString().c_str());
      have_mark = false;
      mark = SyncedMark();
    }
  }
  if (have_mark) STABLEFS_RETURN_IF_ERROR(CheckManifest(path, mark));
  std::unique_ptr<RocksBlockStore> store(new RocksBlockStore(path));
  // The WAL filter reads segments while the database opens.
  if (fs::exists(SegmentDir(path), ec)) {
    STABLEFS_RETURN_IF_ERROR(
        Segments::Open(SegmentOptions(path, options), /*create=*/false, &store->segments_));
    store->flush_segments_.store(store->segments_.get(), std::memory_order_release);
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_wait_ms);
  for (;;) {
    // RocksDB's recovery stops at the first damaged WAL record and drops everything after it,
    // synced or not, without a word. Damage with intact records after it is not a torn tail:
    // the store is not opened (not even read-only, which would show it without those records).
    const WalMarks marks = ReadWalMarks(path, 0);
    if (marks.hole) {
      return Status::Corruption(
          path + ": the WAL is damaged at " + marks.hole_at +
          " and holds intact records after it, which a recovery would drop; the store is not "
          "opened (keep a copy of it before trying to repair it)");
    }
    // Checked before the database opens for writing: DB::Open flushes what it recovered and
    // removes the files it no longer needs, which would make the damage permanent and unseen.
    Status s = have_mark && !options.read_only ? CheckRecovers(path, options, mark) : Status::Ok();
    if (s.ok()) s = store->OpenDb(options, /*create=*/false);
    if (s.ok() && have_mark && options.read_only) s = store->CheckSequence(mark);
    if (s.ok()) break;
    if (!s.IsBusy() || std::chrono::steady_clock::now() >= deadline) return s;
    // The holder is another process, which this one cannot wait on; poll its lock.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  STABLEFS_RETURN_IF_ERROR(store->LoadSuperblock());
  STABLEFS_RETURN_IF_ERROR(store->OpenSegments(options));
  if (!store->read_only_) STABLEFS_RETURN_IF_ERROR(store->StartSyncedLog(options, mark));
  *out = std::move(store);
  return Status::Ok();
}

Status RocksBlockStore::OpenDb(const RocksOptions& options, bool create) {
  RaiseOpenFileLimit();
  flush_on_close_ = options.flush_on_close;
  const Budget budget = SpaceFor(path_, options);
  reserve_bytes_ = budget.reserve;
  rocksdb::DBOptions db_options = DbOptions(options, create, budget);
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  // Segments (format version 2): verified replay, and synced data under every flushed pointer.
  wal_filter_ = std::make_shared<WalFilter>(this);
  db_options.wal_filter = wal_filter_.get();
  flush_listener_ = std::make_shared<FlushListener>(&flush_segments_, &synced_store_);
  // A probe opens no table it does not need (RocksDB would open every one of them).
  if (probe_) db_options.max_open_files = 16;
  db_options.listeners.push_back(flush_listener_);

  std::vector<std::string> names;
  if (!create) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, path_, &names);
    if (!s.ok()) return FromRocks(s, [&] { return path_ + " is not a readable stablefs store"; });
    for (int i = 0; i < kNumSpaces; i++) {
      const char* want = SpaceName(static_cast<Space>(i));
      if (std::find(names.begin(), names.end(), want) == names.end()) {
        return Status::Corruption(path_ + " is not a stablefs store: column family '" + want +
                                  "' is missing");
      }
    }
  }
  // Our spaces first, in Space order, then any others the database has (RocksDB requires all).
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int i = 0; i < kNumSpaces; i++) {
    Space sp = static_cast<Space>(i);
    descriptors.emplace_back(SpaceName(sp), SpaceOptions(sp, budget, options, cache));
  }
  for (const std::string& name : names) {
    bool ours = false;
    for (int i = 0; i < kNumSpaces; i++) ours |= name == SpaceName(static_cast<Space>(i));
    if (!ours) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  rocksdb::Status s;
  if (options.read_only) {
    // OpenForReadOnly takes no lock: take RocksDB's LOCK file as DB::Open would, so that a
    // writer and this reader exclude each other.
    env_ = db_options.env;
    s = env_->LockFile(path_ + "/LOCK", &read_only_lock_);
    if (s.ok()) s = rocksdb::DB::OpenForReadOnly(db_options, path_, descriptors, &handles_, &db_);
    if (!s.ok() && read_only_lock_ != nullptr) {
      env_->UnlockFile(read_only_lock_).PermitUncheckedError();
      read_only_lock_ = nullptr;
    }
    read_only_ = true;
  } else {
    s = rocksdb::DB::Open(db_options, path_, descriptors, &handles_, &db_);
  }
  if (!s.ok()) {
    if (IsLockError(s)) {
      return Status::Busy("store " + path_ + " is in use by another process (" + s.ToString() +
                          ")");
    }
    return FromRocks(s, [&] { return std::string("cannot open store " + path_); });
  }
  return Status::Ok();
}

Status RocksBlockStore::LoadSuperblock() {
  std::string value;
  Status s = DoGet(Space::kMeta, kSuperblockKey, &value);
  if (s.IsNotFound()) return Status::Corruption(path_ + ": the superblock is missing");
  if (!s.ok()) return s.WithContext("cannot read the superblock of " + path_);
  s = superblock_.DecodeFrom(value);
  if (!s.ok()) return s.WithContext(path_);
  return Status::Ok();
}

Status RocksBlockStore::OpenSegments(const RocksOptions& options) {
  if (!superblock_.has_segments()) {
    if (segments_ != nullptr) {
      return Status::Corruption(path_ + ": a format version 1 store with a segments directory");
    }
    return Status::Ok();
  }
  if (segments_ == nullptr) {
    if (read_only_) return Status::Corruption(path_ + ": the segments directory is missing");
    STABLEFS_RETURN_IF_ERROR(
        Segments::Open(SegmentOptions(path_, options), /*create=*/true, &segments_));
  }
  STABLEFS_RETURN_IF_ERROR(segments_->CheckIdentity(superblock_.uuid, superblock_.pi));
  // Segment numbers are never reused, also when the newest file was collected or lost.
  std::string mark;
  SegmentWatermark synced;
  if (DoGet(Space::kMeta, kSegmentsSyncedKey, &mark).ok() &&
      DecodeSegmentWatermark(mark, &synced)) {
    segments_->NumberAfter(synced.segment);
  }
  segment_min_run_ = std::max<uint32_t>(options.segment_min_run, 1);
  // Room for a collection to move a segment's live blocks.
  reserve_bytes_ += SpaceFor(path_, options).segment;
  flush_segments_.store(segments_.get(), std::memory_order_release);
  if (!read_only_ && options.collect_segments) {
    collector_ = std::thread([this] { CollectorLoop(); });
  }
  return Status::Ok();
}

RocksBlockStore::~RocksBlockStore() {
  if (collector_.joinable()) {
    {
      MutexLock l(&collector_mu_);
      collector_stop_ = true;
      collector_cv_.SignalAll();
    }
    collector_.join();
  }
  if (db_ != nullptr && flush_on_close_ && !read_only_ && !is_shut_down()) {
    // A clean close leaves nothing the WAL alone holds: the next open replays nothing, and damage
    // to the WAL of a cleanly closed store loses nothing. (The flush listener syncs the segments
    // first.) A failure leaves the WAL to the next recovery, as after a crash.
    rocksdb::FlushOptions fo;
    fo.wait = true;
    fo.allow_write_stall = true;
    // Every write is now in a table: a clean close acknowledges them all.
    if (db_->Flush(fo, handles_).ok()) {
      (void)Acknowledge(db_->GetLatestSequenceNumber());
    }
  }
  synced_store_.store(nullptr, std::memory_order_release);
  if (db_ != nullptr) {
    for (rocksdb::ColumnFamilyHandle* h : handles_) {
      db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    }
    db_->Close().PermitUncheckedError();
    delete db_;
  }
  if (read_only_lock_ != nullptr) env_->UnlockFile(read_only_lock_).PermitUncheckedError();
}

std::string RocksBlockStore::DataProperty(const std::string& name) const {
  std::string value;
  if (!db_->GetProperty(cf(Space::kData), name, &value)) return "";
  return value;
}

Status RocksBlockStore::DoGet(Space s, std::string_view key, std::string* value) {
  ReaderLock readers(&segment_readers_);
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), cf(s), ToSlice(key), value);
  if (rs.IsNotFound()) return Status::NotFound(SpaceName(s));
  STABLEFS_RETURN_IF_ERROR(FromRocks(rs, [&] { return std::string("get in ") + SpaceName(s); }));
  if (s == Space::kData && IsSegmentPointer(value->size())) {
    std::string raw;
    STABLEFS_RETURN_IF_ERROR(ExpandDataValue(key, *value, &raw));
    *value = std::move(raw);
  }
  return Status::Ok();
}

Status RocksBlockStore::ExpandDataValue(std::string_view key, std::string_view value,
                                        std::string* out) {
  uint64_t ino = 0, index = 0;
  ParseDataKey(key, &ino, &index);
  const size_t tb = tuple_bytes_per_block();
  if (segments_ == nullptr || value.size() != kSegmentPointerPrefix + tb) {
    return Status::Corruption("inode " + std::to_string(ino) + " block " + std::to_string(index) +
                              ": stored value has " + std::to_string(value.size()) + " bytes");
  }
  out->resize(kBlockSize + tb);
  char* blocks[1] = {out->data()};
  Status s = segments_->Read(DecodeSegmentPointer(value.data()), 1, blocks);
  std::string again;
  if (s.IsNotFound()) {
    // A scan's iterator reads the pointers as they were when it was made: a collection may have
    // moved the block and forgotten the segment since. The pointer as it is now (read under
    // segment_readers_, so no segment it names can be forgotten meanwhile) is where the block
    // went, or the block was rewritten or deleted. A current pointer into a missing segment is
    // damage.
    rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), cf(Space::kData), ToSlice(key), &again);
    if (rs.IsNotFound()) return Status::NotFound("deleted meanwhile");
    if (rs.ok() && again.size() == kBlockSize + tb) {
      *out = std::move(again);
      return Status::Ok();
    }
    if (rs.ok() && again.size() == value.size()) {
      s = segments_->Read(DecodeSegmentPointer(again.data()), 1, blocks);
      value = again;
    }
    if (s.IsNotFound()) s = Status::Corruption(s.message());
  }
  if (!s.ok()) {
    return s.WithContext("inode " + std::to_string(ino) + " block " + std::to_string(index));
  }
  std::memcpy(out->data() + kBlockSize, value.data() + kSegmentPointerPrefix, tb);
  return Status::Ok();
}

Status RocksBlockStore::DoScan(Space s, std::string_view begin, std::string_view end,
                               const std::function<bool(std::string_view, std::string_view)>& fn) {
  std::string resume(begin);
  for (;;) {
    std::string last;  // the last key given to fn
    bool stopped = false;
    rocksdb::Status rs = ScanFrom(s, resume, end, fn, &last, &stopped);
    // (A blob file gone or unreadable is an IOError; a checksum mismatch Corruption.)
    if (stopped || rs.ok() || s != Space::kData || !(rs.IsCorruption() || rs.IsIOError())) {
      return FromRocks(rs, [&] { return std::string("scan of ") + SpaceName(s); });
    }
    // A damaged table block or a damaged or missing blob file ended the iterator at the record
    // after `last`. The block map holds the same keys: the one after `last` names the record that
    // cannot be read. It goes to fn with an empty value (no record has that length), and the scan
    // goes on after it, so that a checker finds every damaged record, not the first.
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper = ToSlice(end);
    if (!end.empty()) ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> map(db_->NewIterator(ro, cf(Space::kBlockMap)));
    const std::string after = last.empty() ? resume : last + '\0';
    map->Seek(after);
    if (!map->Valid()) {
      return FromRocks(rs, [&] { return std::string("scan of ") + SpaceName(s); });
    }
    const std::string bad = map->key().ToString();
    if (!fn(bad, std::string_view())) return Status::Ok();
    resume = bad + '\0';
  }
}

rocksdb::Status RocksBlockStore::ScanFrom(
    Space s, std::string_view begin, std::string_view end,
    const std::function<bool(std::string_view, std::string_view)>& fn, std::string* last,
    bool* stopped) {
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper = ToSlice(end);
  if (!end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(s)));
  std::string raw;
  for (it->Seek(ToSlice(begin)); it->Valid(); it->Next()) {
    // The segments' watermark is the store's bookkeeping, not a record of the filesystem.
    if (s == Space::kMeta && ToView(it->key()) == kSegmentsSyncedKey) continue;
    std::string_view value = ToView(it->value());
    if (s == Space::kData && IsSegmentPointer(value.size())) {
      // Raw, unverified, as the scan promises: data a segment cannot give back reads as zeros
      // and fails its tuples' check wherever the caller verifies it. The lock is held for this
      // block only: `fn` may read the store itself.
      Status e;
      {
        ReaderLock readers(&segment_readers_);
        e = ExpandDataValue(ToView(it->key()), value, &raw);
      }
      if (e.IsNotFound()) continue;  // deleted since the scan's view: as if scanned later
      if (!e.ok()) {
        raw.assign(kBlockSize, '\0');
        const size_t tb = tuple_bytes_per_block();
        if (value.size() >= kSegmentPointerPrefix + tb) {
          raw.append(value.substr(kSegmentPointerPrefix, tb));
        }
      }
      value = raw;
    }
    if (s == Space::kData) last->assign(it->key().data(), it->key().size());
    if (!fn(ToView(it->key()), value)) {
      *stopped = true;
      return rocksdb::Status::OK();
    }
  }
  return it->status();
}

Status RocksBlockStore::DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                                     char* tuples, BlockState* state) {
  // No segment a pointer read here names is forgotten before its data is read.
  ReaderLock readers(&segment_readers_);
  return ReadBlocksChecked(ino, first, n, blocks, tuples, state);
}

Status RocksBlockStore::ReadBlocksChecked(uint64_t ino, uint64_t first, size_t n,
                                          char* const* blocks, char* tuples, BlockState* state) {
  STABLEFS_RETURN_IF_ERROR(ReadBlocksAt(nullptr, ino, first, n, blocks, tuples, state));
  if (std::find(state, state + n, BlockState::kHole) == state + n) return Status::Ok();
  // A hole: is it one, or a lost block? Data and block map must be read at one sequence number, or
  // a concurrent write or delete would look like a lost block; read both again at a snapshot.
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  Status s = ReadBlocksAt(snap, ino, first, n, blocks, tuples, state);
  if (s.ok()) {
    rocksdb::ReadOptions ro;
    ro.snapshot = snap;
    std::string key = DataKey(ino, first), end = DataKey(ino, first + n);
    rocksdb::Slice upper(end);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(Space::kBlockMap)));
    for (it->Seek(key); it->Valid(); it->Next()) {
      uint64_t kino, index;
      if (!ParseDataKey(ToView(it->key()), &kino, &index) || kino != ino || index < first ||
          index >= first + n) {
        s = Status::Corruption("malformed block map key under inode " + std::to_string(ino));
        break;
      }
      // An entry without data is a lost block, unless it marks a preallocated one.
      if (state[index - first] == BlockState::kHole && ToView(it->value()) != kBlockMapUnwritten) {
        state[index - first] = BlockState::kLost;
      }
    }
    if (s.ok())
      s = FromRocks(it->status(), [&] { return "block map of inode " + std::to_string(ino); });
  }
  db_->ReleaseSnapshot(snap);
  return s;
}

Status RocksBlockStore::ReadBlocksAt(const rocksdb::Snapshot* snap, uint64_t ino, uint64_t first,
                                     size_t n, char* const* blocks, char* tuples,
                                     BlockState* state) {
  const size_t tb = tuple_bytes_per_block();
  // Blocks whose data lies in a segment: (index in this read, where), read after the lookup.
  std::vector<std::pair<size_t, SegmentLocation>> in_segments;
  auto take = [&](size_t i, const rocksdb::Slice& v) -> Status {
    if (v.size() == kBlockSize + tb) {
      std::memcpy(blocks[i], v.data(), kBlockSize);
      std::memcpy(tuples + i * tb, v.data() + kBlockSize, tb);
    } else if (segments_ != nullptr && v.size() == kSegmentPointerPrefix + tb) {
      if (in_segments.empty()) in_segments.reserve(n - i);  // one allocation per read
      in_segments.emplace_back(i, DecodeSegmentPointer(v.data()));
      std::memcpy(tuples + i * tb, v.data() + kSegmentPointerPrefix, tb);
    } else {
      return Status::Corruption("inode " + std::to_string(ino) + " block " +
                                std::to_string(first + i) + ": stored value has " +
                                std::to_string(v.size()) + " bytes, expected " +
                                std::to_string(kBlockSize + tb));
    }
    state[i] = BlockState::kPresent;
    return Status::Ok();
  };
  std::fill(state, state + n, BlockState::kHole);
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  char key[kDataKeySize];
  EncodeDataKey(key, ino, first);
  if (n == 1) {
    rocksdb::PinnableSlice value;
    rocksdb::Status rs = db_->Get(ro, cf(Space::kData), rocksdb::Slice(key, sizeof(key)), &value);
    if (rs.IsNotFound()) {
      std::memset(blocks[0], 0, kBlockSize);
      return Status::Ok();
    }
    STABLEFS_RETURN_IF_ERROR(FromRocks(rs, [&] { return "read of inode " + std::to_string(ino); }));
    STABLEFS_RETURN_IF_ERROR(take(0, value));
  } else {
    // A range: one iterator pass over the blocks that exist.
    char end_key[kDataKeySize];
    EncodeDataKey(end_key, ino, first + n);
    rocksdb::Slice upper(end_key, sizeof(end_key));
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(Space::kData)));
    for (it->Seek(rocksdb::Slice(key, sizeof(key))); it->Valid(); it->Next()) {
      uint64_t kino, index;
      if (!ParseDataKey(ToView(it->key()), &kino, &index) || kino != ino || index < first ||
          index >= first + n) {
        return Status::Corruption("malformed data key under inode " + std::to_string(ino));
      }
      STABLEFS_RETURN_IF_ERROR(take(index - first, it->value()));
    }
    STABLEFS_RETURN_IF_ERROR(
        FromRocks(it->status(), [&] { return "read of inode " + std::to_string(ino); }));
    for (size_t i = 0; i < n; i++) {
      if (state[i] == BlockState::kHole) std::memset(blocks[i], 0, kBlockSize);
    }
  }
  // Blocks next to each other in the file and in one segment are read with one preadv.
  for (size_t r = 0; r < in_segments.size();) {
    size_t e = r + 1;
    while (e < in_segments.size() && in_segments[e].first == in_segments[e - 1].first + 1 &&
           in_segments[e].second.segment == in_segments[r].second.segment &&
           in_segments[e].second.slot == in_segments[e - 1].second.slot + 1) {
      e++;
    }
    const size_t i = in_segments[r].first;
    Status s = segments_->Read(in_segments[r].second, e - r, blocks + i);
    if (s.IsCorruption() || s.IsNotFound()) {
      // The segment ends before the slot, or is missing (no collection forgets a segment while
      // segment_readers_ is held): damage.
      return Status::Corruption("inode " + std::to_string(ino) + " offset " +
                                std::to_string((first + i) * kBlockSize) + ": " + s.message());
    }
    STABLEFS_RETURN_IF_ERROR(s);
    r = e;
  }
  return Status::Ok();
}

Status RocksBlockStore::BlockLocation(uint64_t ino, uint64_t index, std::string* where) {
  std::string value;
  rocksdb::Status rs =
      db_->Get(rocksdb::ReadOptions(), cf(Space::kData), DataKey(ino, index), &value);
  if (rs.IsNotFound()) {
    return Status::NotFound("inode " + std::to_string(ino) + " block " + std::to_string(index));
  }
  STABLEFS_RETURN_IF_ERROR(FromRocks(rs, "a read of the data family"));
  if (!IsSegmentPointer(value.size()) || value.size() < kSegmentPointerPrefix) {
    *where = "the data family (whole block)";
    return Status::Ok();
  }
  const SegmentLocation loc = DecodeSegmentPointer(value.data());
  const std::string file = Segments::FileName("segments", loc.segment);
  *where = "segment " + std::to_string(loc.segment) + " slot " + std::to_string(loc.slot) + " (" +
           file + ", byte " + std::to_string(uint64_t{loc.slot} * kBlockSize) + ")";
  return Status::Ok();
}

Status RocksBlockStore::AppendRuns(const WriteBatch& batch, std::vector<SegmentLocation>* loc) {
  const std::vector<WriteBatch::Op>& ops = batch.ops();
  std::vector<const char*> data;
  for (size_t i = 0; i < ops.size();) {
    if (ops[i].kind != WriteBatch::OpKind::kPutBlock) {
      i++;
      continue;
    }
    size_t j = i + 1;
    while (j < ops.size() && ops[j].kind == WriteBatch::OpKind::kPutBlock &&
           ops[j].ino == ops[i].ino && ops[j].index == ops[j - 1].index + 1) {
      j++;
    }
    if (j - i >= segment_min_run_) {
      if (loc->empty()) loc->resize(ops.size());
      data.clear();
      bool contiguous = true;
      for (size_t k = i; k < j; k++) {
        data.push_back(ops[k].data);
        contiguous &= k == i || ops[k].data == ops[k - 1].data + kBlockSize;
      }
      for (size_t done = 0; done < j - i;) {
        SegmentLocation at;
        size_t written = 0;
        STABLEFS_RETURN_IF_ERROR(segments_->Append(ops[i].ino, ops[i + done].index, j - i - done,
                                                   data.data() + done, contiguous, &at, &written));
        for (size_t w = 0; w < written; w++) {
          (*loc)[i + done + w] = SegmentLocation{at.segment, at.slot + static_cast<uint32_t>(w)};
        }
        done += written;
      }
    }
    i = j;
  }
  return Status::Ok();
}

Status RocksBlockStore::SyncSegments(rocksdb::WriteBatch* wb) {
  SegmentWatermark durable;
  STABLEFS_RETURN_IF_ERROR(segments_->Sync(&durable));
  char value[kSegmentWatermarkSize];
  EncodeSegmentWatermark(value, durable);
  return FromRocks(
      wb->Put(cf(Space::kMeta), ToSlice(kSegmentsSyncedKey), rocksdb::Slice(value, sizeof(value))),
      "building a write batch");
}

Status RocksBlockStore::DoWrite(const WriteBatch& batch, bool sync) {
  const size_t tb = tuple_bytes_per_block();
  rocksdb::WriteBatch wb;
  // Where each op's block went in the segments (empty: nowhere; segment 0: not in a segment).
  std::vector<SegmentLocation> loc;
  std::shared_lock<std::shared_mutex> moving(relocate_mu_, std::defer_lock);
  if (segments_ != nullptr) {
    moving.lock();
    const uint32_t open_before = segments_->open_segment();
    STABLEFS_RETURN_IF_ERROR(AppendRuns(batch, &loc));
    if (open_before != 0 && segments_->open_segment() != open_before) WakeCollector();
    // Segment data is synced before the WAL that points to it (and now and then without a WAL
    // sync, so that a recovery has little to read back).
    if (sync || segments_->unsynced_slots() >= kSyncEverySlots) {
      STABLEFS_RETURN_IF_ERROR(SyncSegments(&wb));
    }
  }
  for (size_t i = 0; i < batch.ops().size(); i++) {
    const WriteBatch::Op& op = batch.ops()[i];
    rocksdb::ColumnFamilyHandle* h = cf(op.space);
    rocksdb::Status s;
    switch (op.kind) {
      case WriteBatch::OpKind::kPut:
        s = wb.Put(h, ToSlice(op.key), ToSlice(op.value));
        break;
      case WriteBatch::OpKind::kDelete:
        s = wb.Delete(h, ToSlice(op.key));
        break;
      case WriteBatch::OpKind::kDeleteRange:
        if (op.key < op.value) s = wb.DeleteRange(h, ToSlice(op.key), ToSlice(op.value));
        break;
      case WriteBatch::OpKind::kPutBlock: {
        char key[kDataKeySize];
        EncodeDataKey(key, op.ino, op.index);
        rocksdb::Slice key_part(key, sizeof(key));
        char pointer[kSegmentPointerPrefix];
        // Data (or where a segment holds it) and tuples are gathered into the batch without an
        // intermediate copy.
        rocksdb::Slice value_parts[2] = {rocksdb::Slice(op.data, kBlockSize),
                                         rocksdb::Slice(op.tuples, tb)};
        if (!loc.empty() && loc[i].segment != 0) {
          EncodeSegmentPointer(pointer, loc[i]);
          value_parts[0] = rocksdb::Slice(pointer, sizeof(pointer));
        }
        s = wb.Put(h, rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
        if (s.ok()) s = wb.Put(cf(Space::kBlockMap), key_part, rocksdb::Slice());
        break;
      }
      case WriteBatch::OpKind::kDeleteBlocks: {
        std::string begin = DataKey(op.ino, op.index);
        std::string end = DataKeyRangeEnd(op.ino, op.end);
        if (begin < end) {
          s = wb.DeleteRange(h, begin, end);
          if (s.ok()) s = wb.DeleteRange(cf(Space::kBlockMap), begin, end);
        }
        break;
      }
    }
    STABLEFS_RETURN_IF_ERROR(FromRocks(s, "building a write batch"));
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return WriteAndAcknowledge(wo, &wb, [&] { return std::string("write to store " + path_); });
}

Status RocksBlockStore::ReclaimBlocks(uint64_t ino) {
  if (read_only_) return Status::ReadOnly("the store is open read-only");
  if (segments_ != nullptr) {
    // Space is short: every segment holding a deleted block gives it back.
    STABLEFS_RETURN_IF_ERROR(SealSegment());
    STABLEFS_RETURN_IF_ERROR(CollectSegments(1.0));
  }
  const std::string begin = DataKey(ino, 0), end = DataKeyRangeEnd(ino, UINT64_MAX);
  rocksdb::Slice b(begin), e(end);
  rocksdb::CompactRangeOptions co;
  // Blob files referenced only by the compacted range become garbage and are deleted; live
  // blobs of other files in them stay where they are (garbage collection moves those later).
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (Space sp : {Space::kData, Space::kBlockMap}) {
    STABLEFS_RETURN_IF_ERROR(FromRocks(db_->CompactRange(co, cf(sp), &b, &e), [&] {
      return "compaction of inode " + std::to_string(ino) + " in store " + path_;
    }));
  }
  return Status::Ok();
}

Status RocksBlockStore::Trim() {
  if (read_only_) return Status::ReadOnly("the store is open read-only");
  if (segments_ != nullptr) {
    STABLEFS_RETURN_IF_ERROR(SealSegment());
    STABLEFS_RETURN_IF_ERROR(CollectSegments(1.0));
  }
  rocksdb::CompactRangeOptions co;
  // Files a compaction of this call wrote are not compacted again.
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  for (int i = 0; i < kNumSpaces; i++) {
    const Space sp = static_cast<Space>(i);
    STABLEFS_RETURN_IF_ERROR(FromRocks(db_->CompactRange(co, cf(sp), nullptr, nullptr),
                                       [&] { return "compaction of store " + path_; }));
  }
  return Status::Ok();
}

Status RocksBlockStore::TEST_Flush(Space s) {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(db_->Flush(fo, cf(s)), [&] { return "flush of store " + path_; });
}

Status RocksBlockStore::VerifyFiles() {
  return FromRocks(db_->VerifyChecksum(), [&] { return "the files of store " + path_; });
}

Status RocksBlockStore::DoSync() {
  // An empty write with sync set, rather than DB::SyncWAL(): it joins RocksDB's write group, so
  // syncs from several threads share one fsync of the WAL (group commit), and it returns the
  // store's background error once a write has failed, where SyncWAL() touches the failed WAL
  // writer again and RocksDB aborts on an assertion (a full disk killed the daemon that way).
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::WriteBatch wb;
  // The segments first: a synced pointer must not outlive its data.
  if (segments_ != nullptr) STABLEFS_RETURN_IF_ERROR(SyncSegments(&wb));
  return WriteAndAcknowledge(wo, &wb, [&] { return std::string("sync of store " + path_); });
}

}  // namespace stablefs
