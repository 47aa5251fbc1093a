// RocksBlockStore: the real BlockStore, one RocksDB database with a column family per Space.
//
// A store is a directory holding the RocksDB database. Every WriteBatch becomes one
// rocksdb::WriteBatch across column families, so a writeback of many blocks plus the new inode
// size, or a rename, commits atomically. A write with sync=true and Sync() sync the WAL; until
// then a write survives a crash of the daemon (it is in the OS page cache) but not of the machine.
// Data blocks live in BlobDB blob files (storage/FORMAT.md), so compaction moves only their keys;
// in a format-version-2 store, runs of consecutive blocks go to segment files instead
// (storage/segments.h), written once, with RocksDB holding where each block lies and its tuples.
// Segments are synced before every WAL sync; a WAL filter drops, at recovery, any write whose
// segment data a power cut took; sealed segments holding overwritten or deleted blocks are
// collected by a background thread that moves their live blocks and removes the file.
//
// Opening raises the process's soft limit of open files to its hard limit: the store holds a
// descriptor for every table and segment file.
//
// Opening checks what can be wrong with a store and says so in one line: missing, not a stablefs
// store, locked by another process, another format version, a damaged superblock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/block_store.h"
#include "storage/segments.h"
#include "storage/synced_log.h"
#include "storage/thread_annotations.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Env;
class FileLock;
class Snapshot;
class Status;
class WriteBatch;
struct WriteOptions;
}  // namespace rocksdb

namespace stablefs {

struct RocksOptions {
  // RocksDB block cache, shared by all column families. Default: 32 MiB.
  size_t block_cache_bytes = 32 << 20;
  // Memtable size of the data column family. Default: 64 MiB.
  size_t data_write_buffer_bytes = 64 << 20;
  // Keep data blocks in BlobDB blob files so that compaction does not rewrite them. Default: true.
  bool blob_files = true;
  // WAL size past which the column families holding the oldest WAL file are flushed, bounding
  // the WAL's disk use and the replay at the next open. Default: 256 MiB.
  uint64_t max_wal_bytes = 256ull << 20;
  // How long Open() waits for a store that another process holds (a daemon still writing back
  // after its unmount returned) before it reports Busy. Default: 0 (report at once).
  uint32_t busy_wait_ms = 0;
  // Background flush and compaction threads. Default: 2.
  int background_jobs = 2;
  // Blocks of one file written in one batch that go to a segment file together (format version
  // 2); shorter runs (random writes, small syncs) stay in the `data` family. Default: 16 (64 KiB).
  uint32_t segment_min_run = 16;
  // The size at which a segment file is sealed. Default: 0, 256 MiB scaled down on a small disk
  // to 1/64 of it (at least 1 MiB).
  uint64_t segment_bytes = 0;
  // Collect sealed segments in a background thread as they are sealed (they are also collected by
  // Trim() and ReclaimBlocks()). Default: true.
  bool collect_segments = true;
  // Flush every family when the store is closed, so that a cleanly closed store holds nothing
  // only its WAL has (storage/FORMAT.md). Tests that close a store to stand for a crash turn it
  // off. Default: true.
  bool flush_on_close = true;
  // The Env RocksDB reads and writes files through, not owned; it must outlive the store. Tests
  // put a fault-injecting file system here (storage/crash_file_system.h). Default: null, the
  // operating system's (rocksdb::Env::Default()).
  rocksdb::Env* env = nullptr;
  // Open the database read-only (DB::OpenForReadOnly): its WAL is replayed into memory and
  // nothing is written to the store's directory, no flush, no new WAL, no compaction; every
  // Write is ReadOnly. The store's LOCK is still taken, so that no writer opens it meanwhile.
  // The daemon's -o norecovery. Default: false.
  bool read_only = false;
};

class RocksBlockStore : public BlockStore {
 public:
  // Creates a store in `path`, which must be missing or an empty directory.
  static Status Create(const std::string& path, const CreateOptions& create,
                       const RocksOptions& options, std::unique_ptr<RocksBlockStore>* out);
  // Opens an existing store.
  static Status Open(const std::string& path, const RocksOptions& options,
                     std::unique_ptr<RocksBlockStore>* out);
  ~RocksBlockStore() override;

  const std::string& path() const { return path_; }
  uint64_t reserved_bytes() const override { return reserve_bytes_; }
  // Compacts the data and block map ranges of ino, so that blob files holding only its deleted
  // blocks are removed.
  Status ReclaimBlocks(uint64_t ino) override;
  // Compacts every space to its last level, so that deleted records and blob files holding only
  // deleted blocks are gone from disk.
  Status Trim() override;  // ReadOnly on a read-only store
  // DB::VerifyChecksum: every block of every table and blob file.
  Status VerifyFiles() override;

  // A RocksDB property of the data column family (e.g. "rocksdb.stats"); empty if unknown.
  std::string DataProperty(const std::string& name) const;

  // ---- Segments (format version 2) ----
  // What a collection did.
  struct CollectStats {
    uint64_t segments_examined = 0;
    uint64_t segments_removed = 0;
    uint64_t blocks_moved = 0;
  };
  // Collects sealed segments: moves the live blocks of each whose live share is below
  // `max_live_fraction` (1.0: every one with a dead block) to the open segment, then removes it.
  // Examines at most `max_examine` segments, going on from where the last call stopped, so that
  // the background collector's work per sealed segment does not grow with the store.
  Status CollectSegments(double max_live_fraction, CollectStats* stats = nullptr,
                         size_t max_examine = SIZE_MAX);
  // Seals the open segment, so that a collection may take it.
  Status SealSegment();
  // Where block `index` of ino is kept: "segment N slot S (segments/NNNNNNNN.seg, byte B)" or
  // "the data family (whole block)". NotFound for a block the data family does not hold.
  Status BlockLocation(uint64_t ino, uint64_t index, std::string* where);
  // The segment files, or null for a format-version-1 store.
  Segments* segments() { return segments_.get(); }
  // Writes whose segment data did not survive a power cut, dropped by the last open's recovery.
  uint64_t recovery_dropped_writes() const { return recovery_dropped_; }

  // ---- Test hooks ----
  // Where a syncer is inside Acknowledge: kWanted once it has published its sequence as wanted
  // and before it takes the synced log's lock; kLocked holding that lock, before it reads the
  // highest sequence wanted and appends a record for it. Set before any write; the hook runs on
  // the syncer's thread and must not call the store.
  enum class AcknowledgeStep { kWanted, kLocked };
  using AcknowledgeHook = std::function<void(AcknowledgeStep step, uint64_t sequence)>;
  void TEST_SetAcknowledgeHook(AcknowledgeHook hook) { acknowledge_hook_ = std::move(hook); }
  // Flushes one family's memtable to a table, as RocksDB does on its own when a memtable fills:
  // the others keep theirs, and the WAL files they need.
  Status TEST_Flush(Space s);

 protected:
  Status DoGet(Space s, std::string_view key, std::string* value) override;
  Status DoScan(Space s, std::string_view begin, std::string_view end,
                const std::function<bool(std::string_view, std::string_view)>& fn) override;
  Status DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks, char* tuples,
                      BlockState* state) override;
  // One iterator's pass of DoScan: *last is the last data key given to fn, *stopped whether fn
  // ended the scan.
  rocksdb::Status ScanFrom(Space s, std::string_view begin, std::string_view end,
                           const std::function<bool(std::string_view, std::string_view)>& fn,
                           std::string* last, bool* stopped);
  Status DoWrite(const WriteBatch& batch, bool sync) override;
  Status DoSync() override;

 private:
  explicit RocksBlockStore(std::string path) : path_(std::move(path)) {}
  Status OpenDb(const RocksOptions& options, bool create);
  // DoReadBlocks under segment_readers_: a hole is told from a lost block at one snapshot.
  Status ReadBlocksChecked(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                           char* tuples, BlockState* state) REQUIRES_SHARED(segment_readers_);
  // Reads the data of blocks [first, first + n) at `snap` (null: the latest), marking each
  // kPresent or kHole; the block map is not consulted.
  Status ReadBlocksAt(const rocksdb::Snapshot* snap, uint64_t ino, uint64_t first, size_t n,
                      char* const* blocks, char* tuples, BlockState* state)
      REQUIRES_SHARED(segment_readers_);
  Status LoadSuperblock();
  // Opens (or, for a new store, creates) the segments and starts their collector.
  Status OpenSegments(const RocksOptions& options);
  // Appends the runs of `batch` long enough for a segment; loc[i] is where op i went, or
  // segment 0 for an op that stays in the `data` family.
  Status AppendRuns(const WriteBatch& batch, std::vector<SegmentLocation>* loc);
  // Syncs the segments and puts the watermark now durable into *wb (kSegmentsSyncedKey).
  Status SyncSegments(rocksdb::WriteBatch* wb);
  // Turns a kData value into data || tuples: a segment pointer's data is read from its segment.
  Status ExpandDataValue(std::string_view key, std::string_view value, std::string* out)
      REQUIRES_SHARED(segment_readers_);
  // Moves the live blocks of one run of `segment` (under relocate_mu_, exclusively).
  Status MoveLiveBlocks(uint32_t segment, uint64_t ino, uint64_t first, uint32_t count,
                        uint32_t slot, uint64_t* moved);
  // Calls fn(index, tuples) for each block of a run whose pointer still points into it (live).
  Status ForEachLiveBlock(uint32_t segment, uint64_t ino, uint64_t first, uint32_t count,
                          uint32_t slot,
                          const std::function<void(uint64_t index, std::string_view tuples)>& fn);
  void CollectorLoop();
  void WakeCollector();
  rocksdb::ColumnFamilyHandle* cf(Space s) const { return handles_[static_cast<int>(s)]; }

  const std::string path_;
  uint64_t reserve_bytes_ = 0;  // see BlockStore::reserved_bytes(); set by OpenDb
  rocksdb::DB* db_ = nullptr;
  rocksdb::FileLock* read_only_lock_ = nullptr;  // the LOCK file, held by a read-only open
  rocksdb::Env* env_ = nullptr;
  // Indexed by Space; handles_ beyond kNumSpaces are column families this build does not know.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;

  // ---- Segments ----
  class WalFilter;
  class FlushListener;
  std::unique_ptr<Segments> segments_;
  std::shared_ptr<WalFilter> wal_filter_;           // used by DB::Open only
  std::atomic<Segments*> flush_segments_{nullptr};  // what FlushListener syncs
  std::shared_ptr<FlushListener> flush_listener_;
  uint32_t segment_min_run_ = 16;
  bool flush_on_close_ = true;
  uint64_t recovery_dropped_ = 0;
  // Writes hold it shared, a collection's move of a run exclusively, so that a block's pointer
  // does not change between the collector's check and its move.
  std::shared_mutex relocate_mu_;
  // Readers hold it shared from looking up a block's segment pointer until they have read the
  // data it points to; a collection forgets a segment (Segments::Forget) holding it
  // exclusively. A pointer a reader holds therefore stays readable until the reader is done,
  // and a segment that is gone under a pointer read now is damage, not a race.
  SharedMutex segment_readers_;
  Mutex collect_mu_;                                     // one collection at a time
  uint32_t collect_cursor_ GUARDED_BY(collect_mu_) = 0;  // the last segment examined
  Mutex collector_mu_;
  CondVar collector_cv_{&collector_mu_};
  bool collector_stop_ GUARDED_BY(collector_mu_) = false;
  bool collector_wanted_ GUARDED_BY(collector_mu_) = false;
  std::thread collector_;

  // ---- The synced log (synced_log.h) ----
  // Makes durable, before returning, a record that every write with a sequence number up to
  // `sequence` was acknowledged (callers first made those writes durable). Concurrent callers
  // share a record: the one that writes it writes the highest sequence any of them asked for.
  // `holder`, when known, names the WAL file that holds one of the acknowledged write batches
  // (SyncedMark::wal_number); the record carries the latest holder any caller gave.
  struct WalHolder {
    uint64_t number = 0;    // NNNNNN.log; 0: not known
    uint64_t sequence = 0;  // the batch's last sequence number
  };
  Status Acknowledge(uint64_t sequence, const WalHolder& holder);
  Status Acknowledge(uint64_t sequence);
  // The number of the WAL file RocksDB appends to now; 0 if it cannot tell.
  uint64_t CurrentWalNumber();
  // After a flush: records the MANIFEST's new size (RocksDB removes the WAL files the flush made
  // obsolete only after this returns).
  void RecordManifest();
  // The current MANIFEST's number and its size after the last version edit RocksDB synced.
  Status ManifestNow(uint64_t* number, uint64_t* size);
  // Sets up the log an open or a create continues, from `mark` (the log's last record).
  Status StartSyncedLog(const RocksOptions& options, SyncedMark mark);
  // Refused unless the files hold every write the mark says was acknowledged, judged from what
  // a recovery would make of them (a read-only open that changes nothing): see CheckSequence.
  static Status CheckRecovers(const std::string& path, const RocksOptions& options,
                              const SyncedMark& mark);
  // After an open: Corruption unless the recovery kept every write up to mark.sequence. Three
  // things must hold (FORMAT.md, "Recovery, and exactly what it may undo"): the recovered
  // sequence reaches the mark; the WAL records replayed run without a gap from the first one to
  // the mark; and the mark's WAL holder, while a family it wrote to has not flushed it, was
  // replayed.
  Status CheckSequence(const SyncedMark& mark);
  // db_->Write, then, for a sync write, Acknowledge of every write it made durable.
  // The one call of DB::Write. RocksDB's group commit hands each writer's batch to the group's
  // leader, which copies it, through atomics in the library (not built with ThreadSanitizer);
  // tests/tsan.supp names this function for races with one side inside DB::Write.
  rocksdb::Status DbWrite(const rocksdb::WriteOptions& wo, rocksdb::WriteBatch* wb);
  Status WriteAndAcknowledge(const rocksdb::WriteOptions& wo, rocksdb::WriteBatch* wb,
                             const std::function<std::string()>& what);

  Mutex synced_mu_;
  std::unique_ptr<SyncedLog> synced_log_ GUARDED_BY(synced_mu_);
  std::atomic<uint64_t> acknowledge_wanted_{0};     // the highest sequence asked for
  WalHolder holder_wanted_ GUARDED_BY(synced_mu_);  // the latest holder given
  AcknowledgeHook acknowledge_hook_;
  std::atomic<RocksBlockStore*> synced_store_{nullptr};  // what FlushListener records into
  bool probe_ = false;  // a read-only open that only asks how far a recovery reaches
};

}  // namespace stablefs
