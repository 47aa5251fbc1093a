// Collecting segments (format version 2): a sealed segment whose blocks were overwritten or
// deleted has its live blocks moved to the open segment and its file removed, by Trim(),
// ReclaimBlocks() and a background thread woken as segments are sealed.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>

#include "storage/log.h"
#include "storage/rocks_internal.h"
#include "storage/rocks_status.h"

namespace stablefs {

using rocks_internal::ToView;

namespace {

// Sealed segments the background collector examines each time a segment is sealed: with one
// examined per segment written, every segment is looked at again once the store has written as
// much as it holds; two keep up with a store that overwrites as fast as it writes.
constexpr size_t kCollectPerSeal = 2;

}  // namespace

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
  return FromRocks(DbWrite(rocksdb::WriteOptions(), &wb),
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
      Log(LogLevel::kError, "segment %u is not collected: %s", segment, s.ToString().c_str());
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
  STABLEFS_RETURN_IF_ERROR(FromRocks(DbWrite(wo, &wb), [&] { return "sync of store " + path_; }));
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
      Log(LogLevel::kError, "collecting segments of %s: %s", path_.c_str(), s.ToString().c_str());
    }
  }
}

}  // namespace stablefs
