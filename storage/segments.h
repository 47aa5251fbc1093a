// Segments: the store's own files for data blocks written in runs (store format version 2).
//
// A writeback of many consecutive blocks of one file is appended to the open segment as one run:
// a run header naming the inode and first block, then the blocks' data, 4096 bytes each, nothing
// else. RocksDB keeps only where each block went (segment, slot) and its tuples, so the data is
// written once, not to the WAL and again to a blob file, and a sequential read of the run is one
// preadv into the page cache's frames. storage/FORMAT.md specifies the files.
//
// A segment is append-only: a slot, once written, never changes, so a reader that found a block's
// location may read it without a lock for as long as it holds the segment (Pin()). A segment
// that grows past its size limit is synced, closed and sealed; sealed segments whose blocks were
// overwritten or deleted are collected by the store (RocksBlockStore), which moves their live
// blocks to the open segment and then removes the file.
//
// Durability: appended slots are durable once Sync() returns. The store syncs the segments before
// every sync of its WAL, so a synced pointer never refers to data that a power cut can take.
// Files go through the RocksDB FileSystem the store uses (tests put a power-cut model there);
// reads use the files' descriptors directly (preadv), which see what a running machine would.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/format.h"
#include "storage/pi.h"
#include "storage/status.h"
#include "storage/thread_annotations.h"

namespace rocksdb {
class FileSystem;
class FSWritableFile;
}  // namespace rocksdb

namespace stablefs {

// SegmentLocation and SegmentWatermark, what RocksDB holds of the segments, are in
// storage/format.h.

class Segments {
 public:
  // One segment file, held open for reading. Pinned by readers: a removed segment's file stays
  // readable until the last pin is dropped.
  class File;

  struct Options {
    // The directory holding the segment files ("<store>/segments").
    std::string dir;
    // The FileSystem every write, sync, create and delete goes through. Not owned.
    rocksdb::FileSystem* fs = nullptr;
    // The store's identity and protection format, recorded in every segment header.
    std::array<uint8_t, 16> uuid{};
    pi::Profile pi;
    // A segment is sealed once it holds this many slots (header and run headers included).
    // Default: 65536 (256 MiB).
    uint32_t max_slots = 65536;
  };

  // Opens the segments in options.dir, creating the directory when `create` is set, and checks
  // every header (magic, checksum, version, one uuid and PI profile for all). A store opening
  // before it has read its superblock passes no identity and checks it later (CheckIdentity).
  static Status Open(const Options& options, bool create, std::unique_ptr<Segments>* out);
  ~Segments();

  // The identity and profile the existing headers record (NotFound if there are no segments).
  Status RecordedIdentity(std::array<uint8_t, 16>* uuid, pi::Profile* profile) const;
  // Corruption unless every existing header records this uuid and profile; from now on new
  // segments record them.
  Status CheckIdentity(const std::array<uint8_t, 16>& uuid, const pi::Profile& profile);

  // Appends a run of blocks first, first + 1, ... of inode ino: blocks[i] is kBlockSize bytes.
  // With `contiguous`, the n blocks lie one after another from blocks[0] and go down in one
  // write. Appends at most what fits in the open segment (sealing it and opening the next when
  // it is full) and says where the first block went and how many (*written, at least 1).
  Status Append(uint64_t ino, uint64_t first, size_t n, const char* const* blocks, bool contiguous,
                SegmentLocation* loc, size_t* written);
  // Makes every slot appended before this call durable. Returns the watermark now durable. Once a
  // sync has failed, every later call fails the same way.
  Status Sync(SegmentWatermark* durable = nullptr);
  // Slots appended since the last Sync().
  uint64_t unsynced_slots() const;
  // Seals the open segment (syncing it) so that the next append opens a new one; nothing to do
  // if the open segment holds no runs.
  Status Seal();

  // Numbers new segments above n: a segment's number is never used again, also when its file
  // is gone (the store passes the highest number its records name).
  void NumberAfter(uint32_t n);

  // Reads n consecutive slots starting at loc into blocks[i]. NotFound if the segment is gone
  // (collected since the location was read); Corruption if the file ends before the slots.
  Status Read(SegmentLocation loc, size_t n, char* const* blocks);

  // The sealed segments, oldest first, and the one open for appends (0 if none).
  std::vector<uint32_t> Sealed() const;
  uint32_t open_segment() const;
  // Calls fn(ino, first, count, slot of the first block) for every run of a segment, in order.
  Status ForEachRun(
      uint32_t segment,
      const std::function<Status(uint64_t ino, uint64_t first, uint32_t count, uint32_t slot)>& fn);
  // Stops handing out a sealed segment: Read() and ForEachRun() say NotFound from now on. Reads
  // already under way finish on the open descriptor. The store calls it with its readers held
  // off (RocksBlockStore::segment_readers_), so that no reader is between finding a pointer into
  // the segment and reading it.
  Status Forget(uint32_t segment);
  // Forgets a sealed segment (if not yet forgotten) and removes its file, durably.
  Status Remove(uint32_t segment);
  // Bytes of all segment files.
  uint64_t bytes() const;

  static std::string FileName(const std::string& dir, uint32_t segment);

 private:
  struct Open_;  // the segment being appended to
  explicit Segments(const Options& options);
  Status OpenNext() REQUIRES(mu_);
  Status SealLocked() REQUIRES(mu_);
  std::shared_ptr<File> Find(uint32_t segment) const;
  Status SyncDir();

  const std::string dir_;
  rocksdb::FileSystem* const fs_;
  const uint32_t max_slots_;
  mutable Mutex mu_;
  std::array<uint8_t, 16> uuid_ GUARDED_BY(mu_);
  pi::Profile pi_ GUARDED_BY(mu_);
  std::map<uint32_t, std::shared_ptr<File>> files_ GUARDED_BY(mu_);
  std::shared_ptr<Open_> open_ GUARDED_BY(mu_);  // null: the next append opens a segment
  uint32_t next_segment_ GUARDED_BY(mu_) = 1;
  // A failed sync: the kernel may have dropped the pages it could not write, and a later sync
  // would succeed without them. Every later Sync() and Append() reports it; the store must be
  // reopened (and the WAL filter then undoes what did not reach the disk).
  Status failed_ GUARDED_BY(mu_);
  Mutex sync_mu_;  // one Sync() at a time; ordered after mu_
};

}  // namespace stablefs
