// RocksBlockStore: column families, option choices, error translation, and the raw operations.
#include "storage/rocks_block_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

namespace stablefs {

namespace {

namespace fs = std::filesystem;

// RocksDB's warnings and errors go to stderr, with the program's other messages, instead of a
// LOG file in the store: the store's disk may be full, and RocksDB aborts the process (an
// assertion Debian's build keeps) when it appends to a log file whose last write failed.
class StderrLogger : public rocksdb::Logger {
 public:
  explicit StderrLogger(rocksdb::InfoLogLevel level) : rocksdb::Logger(level) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    std::vsnprintf(line, sizeof(line), format, ap);
    std::fprintf(stderr, "stablefs: rocksdb: %s\n", line);
  }
};

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// The one translation of RocksDB's status codes. `context` is built only on failure: a string,
// or a callable returning one.
template <class Context>
Status FromRocks(const rocksdb::Status& s, const Context& context) {
  if (s.ok()) return Status::Ok();
  std::string msg;
  if constexpr (std::is_invocable_v<Context>) {
    msg = context();
  } else {
    msg = std::string(context);
  }
  msg += ": ";
  msg += s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNoSpace()) return Status::NoSpace(msg);
  if (s.IsNotSupported()) return Status::NotSupported(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  return Status::IOError(msg);
}

// Memtable sizes, scaled down on a small disk: a flush needs as much free space as the
// memtables hold, and that space is kept in reserve (see SpaceFor()).
struct Budget {
  uint64_t data_write_buffer;
  uint64_t meta_write_buffer;
  uint64_t max_wal;
  uint64_t reserve;
};

// Memtable and WAL sizes, scaled down on a small disk, and the space kept in reserve for them:
// a flush needs as much free space as the memtables hold, and the WAL's files stay until every
// family with records in them has flushed.
Budget SpaceFor(const std::string& path, const RocksOptions& o) {
  uint64_t disk = 0;
  struct statvfs sv;
  if (statvfs(path.c_str(), &sv) == 0) disk = uint64_t{sv.f_blocks} * sv.f_frsize;
  Budget b;
  b.data_write_buffer = o.data_write_buffer_bytes;
  b.meta_write_buffer = 16 << 20;
  b.max_wal = o.max_wal_bytes;
  uint64_t slack = 16 << 20;
  if (disk > 0) {
    b.data_write_buffer =
        std::min<uint64_t>(b.data_write_buffer, std::max<uint64_t>(disk / 32, 1 << 20));
    b.meta_write_buffer =
        std::min<uint64_t>(b.meta_write_buffer, std::max<uint64_t>(disk / 256, 256 << 10));
    b.max_wal = std::min<uint64_t>(b.max_wal, std::max<uint64_t>(disk / 16, 1 << 20));
    slack = std::clamp<uint64_t>(disk / 32, 1 << 20, 16 << 20);
  }
  // Every family may hold two full memtables (one flushing).
  b.reserve =
      2 * (b.data_write_buffer + (kNumSpaces - 1) * b.meta_write_buffer) + b.max_wal + slack;
  return b;
}

rocksdb::ColumnFamilyOptions SpaceOptions(Space s, const Budget& budget, const RocksOptions& o,
                                          const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.cache_index_and_filter_blocks = true;
  // Point lookups of data blocks and block map entries skip SST files that cannot hold the key.
  if (s == Space::kData || s == Space::kBlockMap) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  }
  if (s == Space::kData) {
    // Data is protected and already dense; compression would cost CPU on every flush.
    cf.compression = rocksdb::kNoCompression;
    cf.write_buffer_size = budget.data_write_buffer;
    if (o.blob_files) {
      cf.enable_blob_files = true;
      cf.min_blob_size = 0;
      cf.blob_file_size = 256ull << 20;
      cf.blob_compression_type = rocksdb::kNoCompression;
      cf.enable_blob_garbage_collection = true;
      cf.blob_garbage_collection_age_cutoff = 0.25;
    }
  } else {
    cf.write_buffer_size = budget.meta_write_buffer;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

bool IsLockError(const rocksdb::Status& s) {
  std::string m = s.ToString();
  return s.IsIOError() &&
         (m.find("lock") != std::string::npos || m.find("LOCK") != std::string::npos);
}

}  // namespace

Status RocksBlockStore::Create(const std::string& path, const CreateOptions& create,
                               const RocksOptions& options, std::unique_ptr<RocksBlockStore>* out) {
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
  std::unique_ptr<RocksBlockStore> store(new RocksBlockStore(path));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_wait_ms);
  for (;;) {
    Status s = store->OpenDb(options, /*create=*/false);
    if (s.ok()) break;
    if (!s.IsBusy() || std::chrono::steady_clock::now() >= deadline) return s;
    // The holder is another process, which this one cannot wait on; poll its lock.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  STABLEFS_RETURN_IF_ERROR(store->LoadSuperblock());
  *out = std::move(store);
  return Status::Ok();
}

Status RocksBlockStore::OpenDb(const RocksOptions& options, bool create) {
  rocksdb::DBOptions db_options;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.create_if_missing = create;
  db_options.create_missing_column_families = create;
  db_options.error_if_exists = create;
  db_options.paranoid_checks = true;
  db_options.max_background_jobs = options.background_jobs;
  db_options.bytes_per_sync = 1 << 20;
  db_options.info_log_level = rocksdb::InfoLogLevel::ERROR_LEVEL;
  db_options.info_log = std::make_shared<StderrLogger>(db_options.info_log_level);
  db_options.keep_log_file_num = 4;
  // RocksDB would fadvise(RANDOM) every table and blob file it opens, which turns off the
  // kernel's readahead: a sequential read of a file then costs one disk read per 4 KiB blob
  // (measured: 104 MB/s cold). The kernel's readahead is adaptive and reads no more than asked
  // for a random pattern, so leaving it on costs point lookups nothing.
  db_options.advise_random_on_open = false;
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  const Budget budget = SpaceFor(path_, options);
  reserve_bytes_ = budget.reserve;
  // Small metadata families would otherwise pin every WAL file until the WAL reaches four times
  // the memtable budget; past this size RocksDB flushes the families holding the oldest WAL.
  db_options.max_total_wal_size = budget.max_wal;

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

RocksBlockStore::~RocksBlockStore() {
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
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), cf(s), ToSlice(key), value);
  if (rs.IsNotFound()) return Status::NotFound(SpaceName(s));
  return FromRocks(rs, [&] { return std::string("get in ") + SpaceName(s); });
}

Status RocksBlockStore::DoScan(Space s, std::string_view begin, std::string_view end,
                               const std::function<bool(std::string_view, std::string_view)>& fn) {
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper = ToSlice(end);
  if (!end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(s)));
  for (it->Seek(ToSlice(begin)); it->Valid(); it->Next()) {
    if (!fn(ToView(it->key()), ToView(it->value()))) break;
  }
  return FromRocks(it->status(), [&] { return std::string("scan of ") + SpaceName(s); });
}

Status RocksBlockStore::DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                                     char* tuples, BlockState* state) {
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
  auto take = [&](size_t i, const rocksdb::Slice& v) -> Status {
    if (v.size() != kBlockSize + tb) {
      return Status::Corruption("inode " + std::to_string(ino) + " block " +
                                std::to_string(first + i) + ": stored value has " +
                                std::to_string(v.size()) + " bytes, expected " +
                                std::to_string(kBlockSize + tb));
    }
    std::memcpy(blocks[i], v.data(), kBlockSize);
    std::memcpy(tuples + i * tb, v.data() + kBlockSize, tb);
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
    return take(0, value);
  }
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
  return Status::Ok();
}

Status RocksBlockStore::DoWrite(const WriteBatch& batch, bool sync) {
  const size_t tb = tuple_bytes_per_block();
  rocksdb::WriteBatch wb;
  for (const WriteBatch::Op& op : batch.ops()) {
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
        // Data and tuples are gathered into the batch without an intermediate copy.
        rocksdb::Slice value_parts[2] = {rocksdb::Slice(op.data, kBlockSize),
                                         rocksdb::Slice(op.tuples, tb)};
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
  return FromRocks(db_->Write(wo, &wb), [&] { return std::string("write to store " + path_); });
}

Status RocksBlockStore::ReclaimBlocks(uint64_t ino) {
  if (read_only_) return Status::ReadOnly("the store is open read-only");
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

Status RocksBlockStore::DoSync() {
  // An empty write with sync set, rather than DB::SyncWAL(): it joins RocksDB's write group, so
  // syncs from several threads share one fsync of the WAL (group commit), and it returns the
  // store's background error once a write has failed, where SyncWAL() touches the failed WAL
  // writer again and RocksDB aborts on an assertion (a full disk killed the daemon that way).
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::WriteBatch empty;
  return FromRocks(db_->Write(wo, &empty), [&] { return std::string("sync of store " + path_); });
}

}  // namespace stablefs
