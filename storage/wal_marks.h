// WAL marks: what the store's syncs had made durable, read from its WAL before recovery judges
// any record (store format version 2).
//
// Every sync of the store writes a `segments_synced` record (the watermark below which the
// segments are durable) into the WAL record that the sync makes durable. RocksDB replays the WAL
// in order, but the record of an fsync comes after the writes it acknowledges; so before the
// replay, this reads every record of every WAL file the database holds and takes the highest
// watermark any intact record names. A watermark is true from the moment its record was written
// (the segment data below it was synced first) and stays true (slots never change, segment
// numbers are never reused), so any intact record's watermark may judge any other record.
//
// The WAL files are read in RocksDB's log format (db/log_format.h of RocksDB, stable since
// LevelDB): 32 KiB blocks of records, each `crc32c(4, masked) length(2) type(1) [log number(4)]
// payload`, a payload being one fragment of a WriteBatch. storage/FORMAT.md describes it.
#pragma once

#include <rocksdb/write_batch.h>

#include <cstdint>
#include <string>

#include "storage/format.h"

namespace stablefs {

// A WriteBatch handler that passes over every kind of record (some of RocksDB's default handlers
// fail the iteration); a reader of WAL records derives from it and overrides what it reads.
struct PassOverHandler : rocksdb::WriteBatch::Handler {
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice&) override {
    return rocksdb::Status::OK();
  }
  rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice&) override {
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return rocksdb::Status::OK();
  }
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return rocksdb::Status::OK();
  }
  rocksdb::Status PutBlobIndexCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return rocksdb::Status::OK();
  }
  void LogData(const rocksdb::Slice&) override {}
};

struct WalMarks {
  SegmentWatermark highest;  // {0, 0} if no record names one
  uint64_t files = 0;        // WAL files read
  uint64_t records = 0;      // intact write batches read
  uint64_t damaged = 0;      // records skipped for a bad checksum or length
  // Intact records after a damaged one (in the same file or a later one): not a torn tail that
  // a power cut leaves, but damage in the middle, where RocksDB's point-in-time recovery would
  // stop and silently drop every record after it. Where the first such damage is.
  bool hole = false;
  std::string hole_at;
};

// Reads the WAL files (NNNNNN.log), oldest first, of the database in `dir`. `meta_cf` is the column
// family holding the watermark. Files that cannot be read are skipped (RocksDB's replay reports
// them).
WalMarks ReadWalMarks(const std::string& dir, uint32_t meta_cf);

}  // namespace stablefs
