// The synced log: what the store's syncs have acknowledged, kept outside RocksDB's own files.
//
// RocksDB's recovery replays the WAL up to its first damaged record and drops the rest; a WAL cut
// short or damaged in its last records looks exactly like the torn tail a power cut leaves, and
// a MANIFEST cut short opens an earlier set of tables without a word. Neither file says how far
// its acknowledged part went. This log does: before a sync, an fsync, an O_SYNC write or a clean
// close is acknowledged, a record naming the highest RocksDB sequence number it made durable is
// appended to STORE/SYNCED and synced, together with the MANIFEST and its size after the last
// version edit RocksDB had synced. An open that would recover less than that is refused
// (RocksBlockStore::Open), before RocksDB changes any file.
//
// The file is a sequence of 64-byte records (storage/FORMAT.md, "The synced log"; a file of the
// first format, 48-byte records, is still read, and rewritten at the next open); the intact
// record with the highest generation is the mark. A torn or damaged record leaves an earlier,
// weaker mark: never a refusal of a store that lost nothing acknowledged. The file is rewritten
// (a new file renamed over it) at every open and when it reaches kMaxBytes.
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <memory>
#include <string>

#include "storage/status.h"

namespace stablefs {

struct SyncedMark {
  uint64_t generation = 0;       // grows by one per record
  uint64_t sequence = 0;         // every write with a sequence number <= this was acknowledged
  uint64_t manifest_number = 0;  // MANIFEST-NNNNNN current when the record was written
  uint64_t manifest_size = 0;    // its size after the last version edit RocksDB had synced
  // A WAL file known to hold an acknowledged write: the write batch whose last sequence number is
  // wal_sequence (<= sequence) is in NNNNNN.log, wal_number. Zero when no such file is known
  // (records of format 1, or no sync write seen yet). While the MANIFEST does not let recovery
  // skip that file (its number is at least the lowest log number to keep), recovery must replay
  // the file up to that batch.
  uint64_t wal_number = 0;
  uint64_t wal_sequence = 0;
};

class SyncedLog {
 public:
  static constexpr size_t kRecordSize = 64;
  static constexpr size_t kRecordSizeV1 = 48;  // format 1, without the WAL holder
  static constexpr uint64_t kMaxBytes = 64 * 1024;
  static std::string FileName(const std::string& store) { return store + "/SYNCED"; }

  // Reads the log of `store`. *found is false if the store has none; else *mark is the newest
  // intact record and *damaged counts the records that were not intact. An intact file without
  // any intact record is Corruption.
  static Status Read(const std::string& store, bool* found, SyncedMark* mark,
                     uint64_t* damaged = nullptr);

  // Writes a new log holding `mark` (its generation is taken as given), synced, under the name
  // SYNCED, the name durable: the log an open continues.
  static Status Start(rocksdb::FileSystem* fs, const std::string& store, const SyncedMark& mark,
                      std::unique_ptr<SyncedLog>* out);
  ~SyncedLog();

  // Appends the next record (generation one more than the last) and syncs it. The sequence never
  // goes back; the WAL holder (wal_number, wal_sequence) is the given one if its wal_sequence is
  // higher than the last record's, else the last record's. A failure is sticky: every later
  // Append returns it, as the file's state after it is unknown.
  Status Append(uint64_t sequence, uint64_t manifest_number, uint64_t manifest_size,
                uint64_t wal_number = 0, uint64_t wal_sequence = 0);
  const SyncedMark& last() const { return last_; }

 private:
  SyncedLog(rocksdb::FileSystem* fs, std::string store) : fs_(fs), store_(std::move(store)) {}
  Status Rewrite(const SyncedMark& mark);

  rocksdb::FileSystem* const fs_;
  const std::string store_;
  std::unique_ptr<rocksdb::FSWritableFile> file_;
  uint64_t bytes_ = 0;
  SyncedMark last_;
  Status error_;
};

}  // namespace stablefs
