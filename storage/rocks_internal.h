// What the files of RocksBlockStore share, private to them: rocks_block_store.cc (open, read,
// write, sync, compaction), rocks_options.cc (RocksDB's options), rocks_recovery.cc (the WAL
// filter and the open-time checks), rocks_acknowledge.cc (the synced log side and the flush
// listener) and segment_collector.cc (collecting segments).
#pragma once

#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/wal_filter.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/format.h"
#include "storage/rocks_block_store.h"
#include "storage/segments.h"
#include "storage/status.h"
#include "storage/synced_log.h"

namespace rocksdb {
class Cache;
class FileSystem;
}  // namespace rocksdb

namespace stablefs {

namespace rocks_internal {

inline rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
inline std::string_view ToView(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

// ---- RocksDB's options (rocks_options.cc) ----

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
Budget SpaceFor(const std::string& path, const RocksOptions& o);

// The database's options for an open (or, with `create`, a create) within `budget`: everything
// but the store's own WAL filter and listener, which OpenDb adds.
rocksdb::DBOptions DbOptions(const RocksOptions& options, bool create, const Budget& budget);

// The options of the column family of space `s`, its tables' blocks cached in `cache`.
rocksdb::ColumnFamilyOptions SpaceOptions(Space s, const Budget& budget, const RocksOptions& o,
                                          const std::shared_ptr<rocksdb::Cache>& cache);

// The FileSystem of o.env, or of the operating system's Env.
rocksdb::FileSystem* FileSystemOf(const RocksOptions& o);

// A store keeps a descriptor open for every table file (RocksDB's max_open_files -1) and every
// segment, a few thousand for a store of terabytes: the process may use as many as its hard
// limit allows, not only the soft limit (often 1024).
void RaiseOpenFileLimit();

// ---- Open-time checks (rocks_recovery.cc) ----

// The MANIFEST CURRENT names must be the one the synced log last named or a later one, and the
// same one must not have become shorter than its synced size.
Status CheckManifest(const std::string& path, const SyncedMark& mark);

}  // namespace rocks_internal

// At recovery, RocksDB replays the WAL records that never reached a table. A record written
// without a sync may point into segment slots whose data a power cut took (the WAL's pages may
// reach the disk before the segment's). Before the first record is judged, every intact WAL
// record has been read for the highest durable watermark (storage/wal_marks.h): the record of
// an fsync comes after the writes it acknowledges, so the marks replayed in order would come too
// late. Each replayed pointer past that watermark is read back and verified; a record with one
// that fails is dropped whole, so its unsynced write is undone as a unit, as if it had not been
// made, and one line says so. A pointer the watermark covers is never judged: its write was
// acknowledged or its data was durable, and damage to it reads as EIO and is found by fsck.
// (rocks_recovery.cc)
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
                                const std::map<std::string, uint32_t>& ids) override;

  WalProcessingOption LogRecordFound(unsigned long long log_number,
                                     const std::string& log_file_name,
                                     const rocksdb::WriteBatch& batch,
                                     rocksdb::WriteBatch* new_batch, bool* batch_changed) override;

 private:
  void NoteRecord(uint64_t log_number, const rocksdb::WriteBatch& batch);

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
// (rocks_acknowledge.cc)
class RocksBlockStore::FlushListener : public rocksdb::EventListener {
 public:
  FlushListener(std::atomic<Segments*>* segments, std::atomic<RocksBlockStore*>* store)
      : segments_(segments), store_(store) {}
  void OnFlushCompleted(rocksdb::DB* db, const rocksdb::FlushJobInfo& info) override;
  void OnFlushBegin(rocksdb::DB* db, const rocksdb::FlushJobInfo& info) override;

 private:
  std::atomic<Segments*>* const segments_;
  std::atomic<RocksBlockStore*>* const store_;
};

}  // namespace stablefs
