// RocksBlockStore: column families, option choices, error translation, and the raw operations.
#include "storage/rocks_block_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/wal_filter.h>
#include <rocksdb/write_batch.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "storage/coding.h"
#include "storage/rocks_status.h"
#include "storage/synced_log.h"
#include "storage/wal_marks.h"

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

// Memtable sizes, scaled down on a small disk: a flush needs as much free space as the
// memtables hold, and that space is kept in reserve (see SpaceFor()).
struct Budget {
  uint64_t data_write_buffer;
  uint64_t meta_write_buffer;
  uint64_t max_wal;
  uint64_t reserve;
  uint64_t segment;  // the size at which a segment is sealed (format version 2)
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
  b.segment = o.segment_bytes;
  if (b.segment == 0) {
    b.segment = 256 << 20;
    if (disk > 0) b.segment = std::clamp<uint64_t>(disk / 64, 1 << 20, b.segment);
  }
  b.segment = std::clamp<uint64_t>(b.segment, 4 * kBlockSize, uint64_t{UINT32_MAX} * kBlockSize);
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
      // Whole blocks go to blob files; segment pointers (format version 2) stay in the tables.
      cf.min_blob_size = kBlockSize;
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

rocksdb::FileSystem* FileSystemOf(const RocksOptions& o) {
  rocksdb::Env* env = o.env != nullptr ? o.env : rocksdb::Env::Default();
  return env->GetFileSystem().get();
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

// A kData value pointing into a segment: be32 segment, be32 slot, then the tuples.
void EncodeSegmentPointer(char* prefix, SegmentLocation loc) {
  EncodeFixed32BE(prefix, loc.segment);
  EncodeFixed32BE(prefix + 4, loc.slot);
}
SegmentLocation DecodeSegmentPointer(const char* p) {
  return SegmentLocation{DecodeFixed32BE(p), DecodeFixed32BE(p + 4)};
}
// Whether a kData value is a segment pointer rather than a whole block.
bool IsSegmentPointer(size_t value_size) { return value_size < kBlockSize; }

// Segment data appended since the last sync past which a write syncs the segments and records
// the watermark, bounding what the next open's recovery must read back (64 MiB).
constexpr uint64_t kSyncEverySlots = 16384;

// Sealed segments the background collector examines each time a segment is sealed: with one
// examined per segment written, every segment is looked at again once the store has written as
// much as it holds; two keep up with a store that overwrites as fast as it writes.
constexpr size_t kCollectPerSeal = 2;

// A store keeps a descriptor open for every table file (RocksDB's max_open_files -1) and every
// segment, a few thousand for a store of terabytes: the process may use as many as its hard
// limit allows, not only the soft limit (often 1024).
// The MANIFEST CURRENT names must be the one the synced log last named or a later one, and the
// same one must not have become shorter than its synced size.
Status CheckManifest(const std::string& path, const SyncedMark& mark) {
  std::error_code ec;
  std::string current;
  {
    std::FILE* f = std::fopen((path + "/CURRENT").c_str(), "re");
    if (f == nullptr) return Status::Ok();  // RocksDB's open says what is wrong
    char buf[64];
    const size_t n = std::fread(buf, 1, sizeof(buf), f);
    std::fclose(f);
    current.assign(buf, n);
  }
  unsigned long long number = 0;
  char nl = 0;
  if (std::sscanf(current.c_str(), "MANIFEST-%llu%c", &number, &nl) != 2 || nl != '\n') {
    return Status::Ok();  // not RocksDB's format: its open refuses it
  }
  char want[32];
  std::snprintf(want, sizeof(want), "MANIFEST-%06llu",
                static_cast<unsigned long long>(mark.manifest_number));
  const std::string tail =
      "; opening it would undo acknowledged writes, so the store is not opened (keep a copy of "
      "it before trying to repair it)";
  if (number < mark.manifest_number) {
    return Status::Corruption(path + ": CURRENT names " + current.substr(0, current.size() - 1) +
                              ", older than " + want + " that the synced log names" + tail);
  }
  if (number == mark.manifest_number) {
    const auto size = fs::file_size(fs::path(path) / want, ec);
    if (ec || size < mark.manifest_size) {
      return Status::Corruption(
          path + ": " + want + " is " +
          (ec ? std::string("missing") : std::to_string(size) + " bytes long") +
          ", but its version edits were synced up to " + std::to_string(mark.manifest_size) +
          " bytes" + tail);
    }
  }
  return Status::Ok();
}

std::string WalName(uint64_t number) {
  char name[32];
  std::snprintf(name, sizeof(name), "%06llu.log", static_cast<unsigned long long>(number));
  return name;
}

void RaiseOpenFileLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

// At recovery, RocksDB replays the WAL records that never reached a table. A record written
// without a sync may point into segment slots whose data a power cut took (the WAL's pages may
// reach the disk before the segment's). Before the first record is judged, every intact WAL
// record has been read for the highest durable watermark (storage/wal_marks.h): the record of
// an fsync comes after the writes it acknowledges, so the marks replayed in order would come too
// late. Each replayed pointer past that watermark is read back and verified; a record with one
// that fails is dropped whole, so its unsynced write is undone as a unit, as if it had not been
// made, and one line says so. A pointer the watermark covers is never judged: its write was
// acknowledged or its data was durable, and damage to it reads as EIO and is found by fsck.
class RocksBlockStore::WalFilter : public rocksdb::WalFilter {
 public:
  explicit WalFilter(RocksBlockStore* store) : store_(store) {}
  const char* Name() const override { return "StablefsSegmentWalFilter"; }

  // A run of WAL records read from one file, in order, their sequence numbers contiguous.
  struct Run {
    uint64_t log_number;
    uint64_t first, last;  // the sequence numbers the records cover
  };
  // What this recovery read: the log number of every column family in the MANIFEST, and the WAL
  // records RocksDB replayed (every intact record of every WAL file it did not skip), as runs.
  const std::map<uint32_t, uint64_t>& family_logs() const { return family_logs_; }
  const std::vector<Run>& runs() const { return runs_; }

  void ColumnFamilyLogNumberMap(const std::map<uint32_t, uint64_t>& logs,
                                const std::map<std::string, uint32_t>& ids) override {
    family_logs_ = logs;
    auto d = ids.find(SpaceName(Space::kData));
    if (d != ids.end()) {
      data_id_ = d->second;
      auto l = logs.find(data_id_);
      if (l != logs.end()) data_log_ = l->second;
    }
    auto m = ids.find(SpaceName(Space::kMeta));
    if (m != ids.end()) meta_id_ = m->second;
    // Called once, with the database locked, before the first record: what every sync recorded.
    if (store_->segments_ != nullptr) durable_ = ReadWalMarks(store_->path_, meta_id_).highest;
  }

  WalProcessingOption LogRecordFound(unsigned long long log_number,
                                     const std::string& /*log_file_name*/,
                                     const rocksdb::WriteBatch& batch,
                                     rocksdb::WriteBatch* /*new_batch*/,
                                     bool* /*batch_changed*/) override {
    NoteRecord(log_number, batch);
    Segments* segs = store_->segments_.get();
    if (segs == nullptr) return WalProcessingOption::kContinueProcessing;
    struct Collect : rocksdb::WriteBatch::Handler {
      uint32_t data_id, meta_id;
      std::vector<std::pair<std::string, std::string>> pointers;
      std::vector<SegmentWatermark> marks;
      rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key,
                            const rocksdb::Slice& value) override {
        if (cf == data_id && IsSegmentPointer(value.size())) {
          pointers.emplace_back(key.ToString(), value.ToString());
        } else if (cf == meta_id && ToView(key) == kSegmentsSyncedKey && value.size() == 8) {
          marks.push_back(
              SegmentWatermark{DecodeFixed32BE(value.data()), DecodeFixed32BE(value.data() + 4)});
        }
        return rocksdb::Status::OK();
      }
      // Every other kind of record is passed over (the default handlers fail the iteration).
      rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice&) override {
        return rocksdb::Status::OK();
      }
      rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice&) override {
        return rocksdb::Status::OK();
      }
      rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&,
                                    const rocksdb::Slice&) override {
        return rocksdb::Status::OK();
      }
      rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
        return rocksdb::Status::OK();
      }
      rocksdb::Status PutBlobIndexCF(uint32_t, const rocksdb::Slice&,
                                     const rocksdb::Slice&) override {
        return rocksdb::Status::OK();
      }
      void LogData(const rocksdb::Slice&) override {}
    } c;
    c.data_id = data_id_;
    c.meta_id = meta_id_;
    // A record this cannot read is not replayed unjudged: RocksDB would fail on it too.
    if (!batch.Iterate(&c).ok()) return WalProcessingOption::kCorruptedRecord;
    // A watermark in a record was durable before the record was written.
    for (const SegmentWatermark& m : c.marks) {
      if (m.segment > durable_.segment ||
          (m.segment == durable_.segment && m.slots > durable_.slots)) {
        durable_ = m;
      }
    }
    if (log_number < data_log_ || c.pointers.empty()) {
      return WalProcessingOption::kContinueProcessing;  // its data part is not replayed
    }
    pi::Profile profile;
    std::array<uint8_t, 16> uuid;
    const bool have_profile = segs->RecordedIdentity(&uuid, &profile).ok();
    char block[kBlockSize];
    for (const auto& [key, value] : c.pointers) {
      uint64_t ino = 0, index = 0;
      ParseDataKey(key, &ino, &index);
      Status s;
      SegmentLocation loc;
      if (value.size() < kSegmentPointerPrefix) {
        s = Status::Corruption("a segment pointer of " + std::to_string(value.size()) + " bytes");
      } else {
        loc = DecodeSegmentPointer(value.data());
        if (durable_.Covers(loc)) continue;
      }
      if (s.ok() && !have_profile) s = Status::NotFound("no segment files");
      if (s.ok() && value.size() != SegmentPointerSize(profile)) {
        s = Status::Corruption("a segment pointer of " + std::to_string(value.size()) + " bytes");
      }
      char* blocks[1] = {block};
      if (s.ok()) s = segs->Read(loc, 1, blocks);
      pi::Mismatch mismatch;
      if (s.ok() &&
          !pi::Verify(profile, block, kBlockSize, value.data() + kSegmentPointerPrefix,
                      FirstSectorOfBlock(profile, index), pi::AppTagForOwner(ino), &mismatch)) {
        s = Status::Protection(pi::DescribeMismatch(profile, ino, index * kBlockSize, mismatch));
      }
      if (!s.ok()) {
        std::fprintf(stderr,
                     "stablefs: recovery: a write to inode %llu was not synced and its block at "
                     "offset %llu (segment %u slot %u) did not survive the crash (%s); the write "
                     "is undone\n",
                     static_cast<unsigned long long>(ino),
                     static_cast<unsigned long long>(index * kBlockSize), loc.segment, loc.slot,
                     s.ToString().c_str());
        store_->recovery_dropped_++;
        return WalProcessingOption::kIgnoreCurrentRecord;
      }
    }
    return WalProcessingOption::kContinueProcessing;
  }

 private:
  void NoteRecord(uint64_t log_number, const rocksdb::WriteBatch& batch) {
    const std::string& rep = batch.Data();
    const uint32_t count = batch.Count();
    if (rep.size() < 12 || count == 0) return;  // a record without writes has no sequence numbers
    uint64_t first;
    std::memcpy(&first, rep.data(), 8);  // WriteBatch: fixed64 sequence, fixed32 count, records
    first = le64toh(first);
    const uint64_t last = first + count - 1;
    if (!runs_.empty() && runs_.back().log_number == log_number && runs_.back().last + 1 == first) {
      runs_.back().last = last;
    } else {
      runs_.push_back(Run{log_number, first, last});
    }
  }

  RocksBlockStore* const store_;
  std::map<uint32_t, uint64_t> family_logs_;
  std::vector<Run> runs_;
  uint32_t data_id_ = UINT32_MAX;
  uint32_t meta_id_ = UINT32_MAX;
  uint64_t data_log_ = 0;
  SegmentWatermark durable_;
};

// Before a flush writes the data family's memtable to a table (which is durable without any WAL
// sync), the segment data its pointers refer to is synced.
// After it, the synced log records the MANIFEST's new size before RocksDB removes the WAL files
// the flush made obsolete, so that a MANIFEST later cut short is told from one that is whole.
class RocksBlockStore::FlushListener : public rocksdb::EventListener {
 public:
  FlushListener(std::atomic<Segments*>* segments, std::atomic<RocksBlockStore*>* store)
      : segments_(segments), store_(store) {}
  void OnFlushCompleted(rocksdb::DB* /*db*/, const rocksdb::FlushJobInfo& /*info*/) override {
    RocksBlockStore* store = store_->load(std::memory_order_acquire);
    if (store != nullptr) store->RecordManifest();
  }
  void OnFlushBegin(rocksdb::DB* /*db*/, const rocksdb::FlushJobInfo& info) override {
    if (info.cf_name != SpaceName(Space::kData)) return;
    Segments* segs = segments_->load(std::memory_order_acquire);
    if (segs == nullptr) return;
    Status s = segs->Sync();
    if (!s.ok())
      std::fprintf(stderr, "stablefs: sync of segments before a flush: %s\n", s.ToString().c_str());
  }

 private:
  std::atomic<Segments*>* const segments_;
  std::atomic<RocksBlockStore*>* const store_;
};

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
      std::fprintf(stderr,
                   "stablefs: %s: %s; this open cannot check that recovery keeps every "
                   "acknowledged write\n",
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
  rocksdb::DBOptions db_options;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.create_if_missing = create;
  db_options.create_missing_column_families = create;
  db_options.error_if_exists = create;
  db_options.paranoid_checks = true;
  // The MANIFEST records every closed WAL file once it is synced, with its size, and recovery
  // refuses a store where one is missing or shorter. (The live WAL file is not recorded; the
  // synced log's WAL holder covers it: CheckSequence.)
  db_options.track_and_verify_wals_in_manifest = true;
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
  if (DoGet(Space::kMeta, kSegmentsSyncedKey, &mark).ok() && mark.size() == 8) {
    segments_->NumberAfter(DecodeFixed32BE(mark.data()));
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
  char value[8];
  EncodeFixed32BE(value, durable.segment);
  EncodeFixed32BE(value + 4, durable.slots);
  return FromRocks(wb->Put(cf(Space::kMeta), ToSlice(kSegmentsSyncedKey), rocksdb::Slice(value, 8)),
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

// ---- Collecting segments ----

Status RocksBlockStore::ForEachLiveBlock(
    uint32_t segment, uint64_t ino, uint64_t first, uint32_t count, uint32_t slot,
    const std::function<void(uint64_t index, std::string_view tuples)>& fn) {
  const size_t pointer_size = SegmentPointerSize(profile());
  char begin[kDataKeySize], end[kDataKeySize];
  EncodeDataKey(begin, ino, first);
  EncodeDataKey(end, ino, first + count);
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(end, sizeof(end));
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(Space::kData)));
  for (it->Seek(rocksdb::Slice(begin, sizeof(begin))); it->Valid(); it->Next()) {
    uint64_t kino, index;
    const std::string_view value = ToView(it->value());
    if (!ParseDataKey(ToView(it->key()), &kino, &index) || value.size() != pointer_size) {
      continue;
    }
    if (DecodeSegmentPointer(value.data()) ==
        SegmentLocation{segment, static_cast<uint32_t>(slot + (index - first))}) {
      fn(index, value.substr(kSegmentPointerPrefix));
    }
  }
  return FromRocks(it->status(), "a scan of the data under a segment");
}

Status RocksBlockStore::MoveLiveBlocks(uint32_t segment, uint64_t ino, uint64_t first,
                                       uint32_t count, uint32_t slot, uint64_t* moved) {
  // No write may change these blocks' pointers between the check below and the move.
  std::unique_lock<std::shared_mutex> exclusive(relocate_mu_);
  struct Live {
    uint64_t index;
    std::string tuples;
  };
  std::vector<Live> live;
  STABLEFS_RETURN_IF_ERROR(ForEachLiveBlock(segment, ino, first, count, slot,
                                            [&](uint64_t index, std::string_view tuples) {
                                              live.push_back(Live{index, std::string(tuples)});
                                            }));
  rocksdb::WriteBatch wb;
  std::vector<char> buffer;
  std::vector<char*> blocks;
  for (size_t r = 0; r < live.size();) {
    size_t e = r + 1;
    while (e < live.size() && live[e].index == live[e - 1].index + 1) e++;
    const size_t n = e - r;
    buffer.resize(n * kBlockSize);
    blocks.resize(n);
    for (size_t i = 0; i < n; i++) blocks[i] = buffer.data() + i * kBlockSize;
    const SegmentLocation from{segment, static_cast<uint32_t>(slot + (live[r].index - first))};
    STABLEFS_RETURN_IF_ERROR(segments_->Read(from, n, blocks.data()));
    for (size_t done = 0; done < n;) {
      SegmentLocation to;
      size_t written = 0;
      STABLEFS_RETURN_IF_ERROR(segments_->Append(ino, live[r + done].index, n - done,
                                                 blocks.data() + done, /*contiguous=*/true, &to,
                                                 &written));
      for (size_t w = 0; w < written; w++) {
        char key[kDataKeySize], pointer[kSegmentPointerPrefix];
        EncodeDataKey(key, ino, live[r + done + w].index);
        EncodeSegmentPointer(pointer,
                             SegmentLocation{to.segment, to.slot + static_cast<uint32_t>(w)});
        rocksdb::Slice key_part(key, sizeof(key));
        rocksdb::Slice value_parts[2] = {rocksdb::Slice(pointer, sizeof(pointer)),
                                         rocksdb::Slice(live[r + done + w].tuples)};
        STABLEFS_RETURN_IF_ERROR(
            FromRocks(wb.Put(cf(Space::kData), rocksdb::SliceParts(&key_part, 1),
                             rocksdb::SliceParts(value_parts, 2)),
                      "building a write batch"));
      }
      done += written;
    }
    r = e;
  }
  *moved += live.size();
  if (wb.Count() == 0) return Status::Ok();
  // After the shutdown ioctl nothing more reaches the disk.
  if (is_shut_down()) return Status::IOError("the store is shut down");
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb),
                   [&] { return "moving blocks out of segment " + std::to_string(segment); });
}

Status RocksBlockStore::CollectSegments(double max_live_fraction, CollectStats* stats,
                                        size_t max_examine) {
  CollectStats local;
  if (stats == nullptr) stats = &local;
  if (segments_ == nullptr) return Status::Ok();
  if (read_only_) return Status::ReadOnly("the store is open read-only");
  if (is_shut_down()) return Status::IOError("the store is shut down");
  MutexLock one(&collect_mu_);
  std::vector<uint32_t> removable;
  // Round robin: the segments after the cursor first, then from the oldest.
  std::vector<uint32_t> sealed = segments_->Sealed();
  std::rotate(sealed.begin(), std::upper_bound(sealed.begin(), sealed.end(), collect_cursor_),
              sealed.end());
  if (sealed.size() > max_examine) sealed.resize(max_examine);
  // A write appends its runs and then commits their pointers, holding relocate_mu_ shared
  // throughout (DoWrite). Until it commits, a block it appended to one of `sealed` looks dead
  // below, and a segment of only such blocks would be removed under the pointer about to name
  // it. Taking the lock exclusively once waits for every such write: later writes append to a
  // segment that is not in `sealed`.
  { std::unique_lock<std::shared_mutex> barrier(relocate_mu_); }
  for (uint32_t segment : sealed) {
    collect_cursor_ = segment;
    struct Run {
      uint64_t ino, first;
      uint32_t count, slot;
    };
    std::vector<Run> runs;
    uint64_t total = 0, live = 0;
    Status s = segments_->ForEachRun(
        segment, [&](uint64_t ino, uint64_t first, uint32_t count, uint32_t slot) -> Status {
          runs.push_back(Run{ino, first, count, slot});
          total += count;
          return ForEachLiveBlock(segment, ino, first, count, slot,
                                  [&](uint64_t, std::string_view) { live++; });
        });
    if (s.IsCorruption()) {
      // Left as it is, for fsck to report: its runs cannot be told apart.
      std::fprintf(stderr, "stablefs: segment %u is not collected: %s\n", segment,
                   s.ToString().c_str());
      continue;
    }
    STABLEFS_RETURN_IF_ERROR(s);
    stats->segments_examined++;
    if (live > 0 && static_cast<double>(live) >= max_live_fraction * static_cast<double>(total)) {
      continue;
    }
    for (const Run& r : runs) {
      if (live == 0) break;
      STABLEFS_RETURN_IF_ERROR(
          MoveLiveBlocks(segment, r.ino, r.first, r.count, r.slot, &stats->blocks_moved));
    }
    removable.push_back(segment);
  }
  if (removable.empty()) return Status::Ok();
  if (is_shut_down()) return Status::IOError("the store is shut down");
  // The moves become durable, and the data family's memtable goes to a table, so that no WAL
  // record a later recovery replays points into a removed segment.
  rocksdb::WriteBatch wb;
  STABLEFS_RETURN_IF_ERROR(SyncSegments(&wb));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  STABLEFS_RETURN_IF_ERROR(
      FromRocks(db_->Write(wo, &wb), [&] { return "sync of store " + path_; }));
  rocksdb::FlushOptions fo;
  fo.wait = true;
  fo.allow_write_stall = true;
  STABLEFS_RETURN_IF_ERROR(
      FromRocks(db_->Flush(fo, cf(Space::kData)), [&] { return "flush of store " + path_; }));
  for (uint32_t segment : removable) {
    {
      // No reader is between looking up a pointer into the segment and reading it.
      WriterLock no_readers(&segment_readers_);
      STABLEFS_RETURN_IF_ERROR(segments_->Forget(segment));
    }
    STABLEFS_RETURN_IF_ERROR(segments_->Remove(segment));
    stats->segments_removed++;
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

Status RocksBlockStore::SealSegment() {
  if (segments_ == nullptr) return Status::Ok();
  std::shared_lock<std::shared_mutex> moving(relocate_mu_);
  return segments_->Seal();
}

void RocksBlockStore::WakeCollector() {
  MutexLock l(&collector_mu_);
  collector_wanted_ = true;
  collector_cv_.Signal();
}

void RocksBlockStore::CollectorLoop() {
  for (;;) {
    {
      MutexLock l(&collector_mu_);
      while (!collector_stop_ && !collector_wanted_) collector_cv_.Wait();
      if (collector_stop_) return;
      collector_wanted_ = false;
    }
    // Segments at most half live are worth moving: each move frees at least as much as it writes.
    Status s = CollectSegments(0.5, nullptr, kCollectPerSeal);
    if (!s.ok() && !is_shut_down()) {
      std::fprintf(stderr, "stablefs: collecting segments of %s: %s\n", path_.c_str(),
                   s.ToString().c_str());
    }
  }
}

// ---- The synced log ----

Status RocksBlockStore::CheckRecovers(const std::string& path, const RocksOptions& options,
                                      const SyncedMark& mark) {
  std::unique_ptr<RocksBlockStore> probe(new RocksBlockStore(path));
  probe->probe_ = true;
  RocksOptions o = options;
  o.read_only = true;
  STABLEFS_RETURN_IF_ERROR(probe->OpenDb(o, /*create=*/false));
  return probe->CheckSequence(mark);
}

Status RocksBlockStore::CheckSequence(const SyncedMark& mark) {
  const std::string acked = path_ + ": its syncs acknowledged every write up to sequence number " +
                            std::to_string(mark.sequence) + " (the synced log), but ";
  const std::string tail =
      "; opening it would undo acknowledged writes, so the store is not opened (keep a copy of it "
      "before trying to repair it)";
  const uint64_t reached = db_->GetLatestSequenceNumber();
  if (reached < mark.sequence) {
    return Status::Corruption(acked + "a recovery of its files reaches only " +
                              std::to_string(reached) +
                              ": the WAL or the MANIFEST was damaged or cut short" + tail);
  }
  // The recovered sequence alone does not show that nothing is missing: the MANIFEST records the
  // database's last sequence number at each flush, past writes that only the WAL holds.
  //
  // Every write after the oldest point a column family has not flushed is in the WAL files
  // RocksDB replays, contiguously: from the first record replayed up to the mark, no sequence
  // number may be missing. (Past the mark, a power cut may leave a gap: unsynced records of one
  // file lost, a later file's kept.)
  const std::vector<WalFilter::Run>& runs = wal_filter_->runs();
  if (!runs.empty() && runs.front().first <= mark.sequence) {
    size_t i = 0;
    uint64_t reach = runs[0].last;
    while (i + 1 < runs.size() && runs[i + 1].first == reach + 1) reach = runs[++i].last;
    if (reach < mark.sequence) {
      const std::string after = i + 1 < runs.size()
                                    ? "resume at " + std::to_string(runs[i + 1].first) + " in " +
                                          WalName(runs[i + 1].log_number)
                                    : "end there";
      return Status::Corruption(acked + "its WAL records run from sequence number " +
                                std::to_string(runs[0].first) + " (" + WalName(runs[0].log_number) +
                                ") only to " + std::to_string(reach) + " (" +
                                WalName(runs[i].log_number) + ") and " + after +
                                ": a WAL file was removed, cut short or damaged" + tail);
    }
  }
  // Writes before the first record replayed were flushed, unless the file holding them is gone:
  // the mark names a WAL file that held an acknowledged batch. If the MANIFEST does not let
  // recovery skip that file (its number is at least every family's log number or the lowest log
  // number to keep, whichever is higher: what RocksDB replays from), the batch must have been
  // replayed. RocksDB removes a WAL file only once that number has passed it.
  if (mark.wal_number != 0) {
    uint64_t replay_from = 0;
    for (const auto& [id, log] : wal_filter_->family_logs()) {
      replay_from = replay_from == 0 ? log : std::min(replay_from, log);
    }
    uint64_t keep = 0;
    if (db_->GetIntProperty(rocksdb::DB::Properties::kMinLogNumberToKeep, &keep)) {
      replay_from = std::max(replay_from, keep);
    }
    bool replayed = false;
    for (const WalFilter::Run& r : runs) {
      if (r.log_number == mark.wal_number && r.first <= mark.wal_sequence &&
          mark.wal_sequence <= r.last) {
        replayed = true;
      }
    }
    if (mark.wal_number >= replay_from && !replayed) {
      std::error_code ec;
      const bool exists = fs::exists(fs::path(path_) / WalName(mark.wal_number), ec);
      return Status::Corruption(
          acked + WalName(mark.wal_number) + ", which held the acknowledged write ending at " +
          "sequence number " + std::to_string(mark.wal_sequence) +
          " and which the MANIFEST says is not yet all in tables, " +
          (exists ? "no longer holds it (cut short or damaged)" : "is missing") + tail);
    }
  }
  return Status::Ok();
}

Status RocksBlockStore::ManifestNow(uint64_t* number, uint64_t* size) {
  std::vector<std::string> files;
  STABLEFS_RETURN_IF_ERROR(FromRocks(db_->GetLiveFiles(files, size, /*flush_memtable=*/false),
                                     [&] { return "the live files of store " + path_; }));
  *number = 0;
  for (const std::string& f : files) {
    unsigned long long n = 0;
    if (std::sscanf(f.c_str(), "/MANIFEST-%llu", &n) == 1) *number = n;
  }
  return Status::Ok();
}

Status RocksBlockStore::StartSyncedLog(const RocksOptions& options, SyncedMark mark) {
  mark.generation++;
  STABLEFS_RETURN_IF_ERROR(ManifestNow(&mark.manifest_number, &mark.manifest_size));
  std::unique_ptr<SyncedLog> log;
  STABLEFS_RETURN_IF_ERROR(SyncedLog::Start(FileSystemOf(options), path_, mark, &log));
  {
    MutexLock l(&synced_mu_);
    synced_log_ = std::move(log);
  }
  synced_store_.store(this, std::memory_order_release);
  return Status::Ok();
}

uint64_t RocksBlockStore::CurrentWalNumber() {
  std::unique_ptr<rocksdb::LogFile> wal;
  if (!db_->GetCurrentWalFile(&wal).ok() || wal == nullptr) return 0;
  return wal->LogNumber();
}

Status RocksBlockStore::Acknowledge(uint64_t sequence) {
  return Acknowledge(sequence, WalHolder());
}

Status RocksBlockStore::Acknowledge(uint64_t sequence, const WalHolder& holder) {
  uint64_t wanted = acknowledge_wanted_.load(std::memory_order_relaxed);
  while (wanted < sequence &&
         !acknowledge_wanted_.compare_exchange_weak(wanted, sequence, std::memory_order_relaxed)) {
  }
  if (acknowledge_hook_) acknowledge_hook_(AcknowledgeStep::kWanted, sequence);
  MutexLock l(&synced_mu_);
  if (acknowledge_hook_) acknowledge_hook_(AcknowledgeStep::kLocked, sequence);
  if (holder.number != 0 && holder.sequence > holder_wanted_.sequence) holder_wanted_ = holder;
  if (synced_log_ == nullptr || synced_log_->last().sequence >= sequence) return Status::Ok();
  uint64_t number = 0, size = 0;
  STABLEFS_RETURN_IF_ERROR(ManifestNow(&number, &size));
  return synced_log_
      ->Append(acknowledge_wanted_.load(std::memory_order_relaxed), number, size,
               holder_wanted_.number, holder_wanted_.sequence)
      .WithContext("the synced log of store " + path_);
}

void RocksBlockStore::RecordManifest() {
  MutexLock l(&synced_mu_);
  if (synced_log_ == nullptr) return;
  uint64_t number = 0, size = 0;
  Status s = ManifestNow(&number, &size);
  if (s.ok() && number == synced_log_->last().manifest_number &&
      size == synced_log_->last().manifest_size) {
    return;
  }
  if (s.ok()) s = synced_log_->Append(synced_log_->last().sequence, number, size);
  if (!s.ok()) {
    std::fprintf(stderr, "stablefs: recording the MANIFEST of store %s after a flush: %s\n",
                 path_.c_str(), s.ToString().c_str());
  }
}

Status RocksBlockStore::WriteAndAcknowledge(const rocksdb::WriteOptions& wo,
                                            rocksdb::WriteBatch* wb,
                                            const std::function<std::string()>& what) {
  // Every write published before this one is in the WAL ahead of it; with sync set, all of them
  // and this one are durable when Write returns (the batch then carries its sequence number).
  const uint64_t before = wo.sync ? db_->GetLatestSequenceNumber() : 0;
  // The WAL file the batch goes to: the current one before and after the write, if they are
  // the same (a switch in between leaves it unknown). It was synced with the batch.
  const uint64_t wal_before = wo.sync && wb->Count() > 0 ? CurrentWalNumber() : 0;
  STABLEFS_RETURN_IF_ERROR(FromRocks(db_->Write(wo, wb), what));
  if (!wo.sync) return Status::Ok();
  uint64_t covered = before;
  WalHolder holder;
  const std::string& rep = wb->Data();
  if (wb->Count() > 0 && rep.size() >= 12) {
    uint64_t first;
    std::memcpy(&first, rep.data(), 8);  // WriteBatch: fixed64 sequence, fixed32 count, records
    first = le64toh(first);
    if (first != 0) {
      covered = std::max(covered, first + wb->Count() - 1);
      if (wal_before != 0 && CurrentWalNumber() == wal_before) {
        holder.number = wal_before;
        holder.sequence = first + wb->Count() - 1;
      }
    }
  }
  return Acknowledge(covered, holder).WithContext(what());
}

}  // namespace stablefs
