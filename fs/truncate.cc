// PageCache: truncate, holes, preallocation and eviction (mm/truncate.c). Each holds the inode's
// I_SYNC, so no writeback of the inode runs meanwhile; everything that can fail (reading and
// verifying partial pages, staging the block map changes) comes before the cache changes, and
// the store commit carries the inode record, so a failure leaves the cache as the store is.
#include <algorithm>
#include <cassert>
#include <cstring>

#include "fs/page_cache.h"

namespace stablefs {

// ---- Truncate and holes ----

Status PageCache::Truncate(AddressSpace* as, uint64_t new_size) {
  MutexLock lock(&mu_);
  AcquireInodeSync(as);
  const uint64_t old = as->size_;
  Status s;
  if (new_size >= old) {
    as->size_ = new_size;
    // Bytes a mapping wrote past the old EOF in its last page must read as zeros now.
    if (old % kPageSize != 0) {
      if (Page* p = FindGetPage(as, old / kPageSize)) {
        LockPage(p);
        if (p->mapping == as && PageTest(p, PG_uptodate)) {
          WaitStable(p);
          mu_.Unlock();
          std::memset(p->data + old % kPageSize, 0, kPageSize - old % kPageSize);
          mu_.Lock();
        }
        UnlockPage(p);
        PutPage(p);
      }
    }
    const uint64_t blocks = as->blocks_;
    mu_.Unlock();
    WriteBatch empty;
    s = CommitInode(as, new_size, blocks, &empty);
    mu_.Lock();
    // A failed commit kept the store's old size; so does memory (the zeroed tail was EOF's).
    if (!s.ok()) as->size_ = old;
  } else {
    as->size_ = new_size;
    s = ZeroRange(as, new_size, kToEnd, new_size);
    if (!s.ok()) as->size_ = old;  // nothing changed: ZeroRange fails before it changes anything
  }
  ReleaseInodeSync(as);
  return s;
}

Status PageCache::PunchHole(AddressSpace* as, uint64_t offset, uint64_t len) {
  if (len == 0) return Status::Ok();
  const uint64_t end = (len > kToEnd - offset) ? kToEnd : offset + len;
  MutexLock lock(&mu_);
  AcquireInodeSync(as);
  // The punched range reads as zeros from now on, so the record's size may cover it (up to
  // i_size); otherwise punching the last page away would leave no page to carry the size.
  const uint64_t disk_size = std::max(as->disk_size_, std::min(as->size_, end));
  Status s = ZeroRange(as, offset, end, disk_size);
  ReleaseInodeSync(as);
  return s;
}

Status PageCache::ZeroRangeAllocated(AddressSpace* as, uint64_t offset, uint64_t len) {
  if (len == 0) return Status::Ok();
  const uint64_t end = (len > kToEnd - offset) ? kToEnd : offset + len;
  MutexLock lock(&mu_);
  AcquireInodeSync(as);
  Status s;
  for (uint64_t at = offset; s.ok() && at < end;) {
    // Chunks end on block boundaries, so only the range's own ends are partial blocks.
    const uint64_t chunk_end = std::min(end, (at / kPageSize + kZeroRangeChunkBlocks) * kPageSize);
    const uint64_t disk_size = std::max(as->disk_size_, std::min(as->size_, chunk_end));
    s = ZeroRange(as, at, chunk_end, disk_size, /*allocate=*/true);
    at = chunk_end;
  }
  ReleaseInodeSync(as);
  return s;
}

Status PageCache::Preallocate(AddressSpace* as, uint64_t first, uint64_t end) {
  constexpr uint64_t kBatchBlocks = 65536;
  MutexLock lock(&mu_);
  AcquireInodeSync(as);  // no writeback of this inode changes the block map meanwhile
  Status s;
  while (s.ok() && first < end) {
    const uint64_t disk_size = as->disk_size_, blocks = as->blocks_;  // stable under I_SYNC
    mu_.Unlock();
    WriteBatch batch;
    uint64_t added = 0, next = end;
    s = store_->StagePreallocate(as->ino_, first, end, kBatchBlocks, &batch, &added, &next);
    if (s.ok() && added > 0) s = CommitInode(as, disk_size, blocks + added, &batch);
    mu_.Lock();
    first = next;
  }
  ReleaseInodeSync(as);
  return s;
}

Status PageCache::ZeroRange(AddressSpace* as, uint64_t start, uint64_t end, uint64_t new_disk_size,
                            bool allocate) {
  if (allocate && end == kToEnd) return Status::InvalidArgument("allocating zeros without an end");
  const uint64_t first_whole = (start + kPageSize - 1) / kPageSize;
  const uint64_t end_whole = end == kToEnd ? kToEnd : end / kPageSize;

  // Everything that can fail comes first, before the cache or the store changes: the partial
  // pages at either end are read (and verified: a damaged one is never rewritten with fresh PI),
  // and the whole blocks to delete are staged.
  std::vector<uint64_t> partial;
  if (start % kPageSize != 0) partial.push_back(start / kPageSize);
  if (end != kToEnd && end % kPageSize != 0 && (partial.empty() || partial[0] != end / kPageSize)) {
    partial.push_back(end / kPageSize);
  }
  std::vector<Page*> rewrite;
  std::vector<uint64_t> absent;  // partial blocks the store holds nothing for: zeros already
  Status s;
  for (uint64_t index : partial) {
    if (index * kPageSize >= as->size_ && index * kPageSize >= as->disk_size_) {
      // Past both sizes nothing is rewritten; to allocate, what is there already is kept.
      if (allocate) {
        mu_.Unlock();
        uint64_t stored = 0;
        s = store_->CountBlocks(as->ino_, index, index + 1, &stored);
        mu_.Lock();
        if (!s.ok()) break;
        if (stored == 0) absent.push_back(index);
      }
      continue;
    }
    bool cached = as->pages_.find(index) != as->pages_.end();
    mu_.Unlock();
    uint64_t stored = 0;
    if (!cached) s = store_->CountBlocks(as->ino_, index, index + 1, &stored);
    Page* p = nullptr;
    if (s.ok() && (cached || stored > 0)) s = GetLockedUptodatePage(as, index, &p);
    mu_.Lock();
    if (!s.ok()) break;
    if (p == nullptr) {
      absent.push_back(index);  // a hole
      continue;
    }
    rewrite.push_back(p);
  }
  if (!s.ok()) {
    for (Page* p : rewrite) {
      UnlockPage(p);
      PutPage(p);
    }
    return s;
  }

  WriteBatch extra;
  uint64_t removed = 0;
  int64_t blocks_delta = 0;
  if (first_whole < end_whole || (allocate && !absent.empty())) {
    mu_.Unlock();
    if (first_whole < end_whole) {
      s = store_->StageDeleteBlocks(as->ino_, first_whole, end_whole, &extra, &removed);
    }
    blocks_delta = -static_cast<int64_t>(removed);
    if (s.ok() && allocate) {
      // The whole blocks come back as preallocated ones, after their removal in the batch; so
      // do partial blocks that held nothing (a rewritten one is data). Their absence is known
      // from the scans above: no second look at the block map.
      if (first_whole < end_whole) {
        store_->StageUnwritten(as->ino_, first_whole, end_whole, &extra);
        blocks_delta += static_cast<int64_t>(end_whole - first_whole);
      }
      for (uint64_t index : absent) store_->StageUnwritten(as->ino_, index, index + 1, &extra);
      blocks_delta += static_cast<int64_t>(absent.size());
    }
    mu_.Lock();
    if (!s.ok()) {
      for (Page* p : rewrite) {
        UnlockPage(p);
        PutPage(p);
      }
      return s;
    }
  }

  // Whole pages: out of every mapping, then held locked, their writeback ended, until the store
  // has taken the change. No page is created in the range meanwhile (the range is marked, as
  // the kernel's invalidate_lock keeps faults and reads from adding folios), so no reader caches
  // a block the commit deletes. Only once the commit succeeded do they leave the cache: a failed
  // one leaves every page as it was, dirty ones with the bytes no writeback has stored yet.
  std::vector<Page*> doomed;
  if (first_whole < end_whole) {
    as->invalidate_first_ = first_whole;
    as->invalidate_end_ = end_whole;
    ZapMappings(as, first_whole, end_whole - 1);
    for (auto it = as->pages_.lower_bound(first_whole);
         it != as->pages_.end() && it->index < end_whole; ++it) {
      doomed.push_back(&*it);
    }
    for (Page* p : doomed) GetPage(p);
    for (Page* p : doomed) {
      LockPage(p);
      // A mapping that mapped the page after the zap above (a concurrent Map) loses it now.
      if (p->mapping == as && p->mapcount > 0) ZapMappings(as, p->index, p->index);
      if (p->mapping == as) WaitOnPageWriteback(p);
    }
  }
  // After the commit (ok or not): the doomed pages leave the cache if it succeeded, the range
  // opens again, and the pages are unlocked.
  auto finish_doomed = [&](bool committed) REQUIRES(mu_) {
    for (Page* p : doomed) {
      if (committed && p->mapping == as) DeletePageFromCache(p);
    }
    as->invalidate_first_ = as->invalidate_end_ = 0;
    inode_cv_.SignalAll();
    for (Page* p : doomed) {
      UnlockPage(p);
      PutPage(p);
    }
  };

  // Partial pages: zeroed in the cache and rewritten with fresh PI in the batch that deletes
  // the whole blocks, with the inode record. The bytes zeroed are kept until the commit is known:
  // a failed one puts them back, and a page that was dirty is dirty again (its bytes were never
  // stored; the failed batch was reported as a writeback error).
  struct Saved {
    Page* page;
    size_t from;
    std::string bytes;
    bool dirty;
  };
  std::vector<Saved> saved;
  for (Page* p : rewrite) {
    WaitStable(p);
    const uint64_t page_start = p->index * kPageSize;
    const size_t from = start > page_start ? start - page_start : 0;
    const size_t to =
        (end == kToEnd || end - page_start >= kPageSize) ? kPageSize : end - page_start;
    const bool dirty = PageTest(p, PG_dirty);
    mu_.Unlock();
    saved.push_back(Saved{p, from, std::string(p->data + from, to - from), dirty});
    std::memset(p->data + from, 0, to - from);
    mu_.Lock();
    MarkDirty(p);
  }
  if (!rewrite.empty()) {
    std::sort(rewrite.begin(), rewrite.end(),
              [](const Page* a, const Page* b) { return a->index < b->index; });
    for (Page* p : rewrite) GetPage(p);  // WritebackBatch unlocks them; the restore needs them
    s = WritebackBatch(as, rewrite, &extra, new_disk_size, blocks_delta);
    finish_doomed(s.ok());
    for (const Saved& v : saved) {
      Page* p = v.page;
      if (!s.ok()) {
        LockPage(p);
        if (p->mapping == as) {
          WaitOnPageWriteback(p);
          mu_.Unlock();
          std::memcpy(p->data + v.from, v.bytes.data(), v.bytes.size());
          mu_.Lock();
          PageClear(p, PG_error);
          if (v.dirty) MarkDirty(p);
        }
        UnlockPage(p);
      }
      PutPage(p);
    }
    return s;
  }
  const int64_t blocks_after = static_cast<int64_t>(as->blocks_) + blocks_delta;
  const uint64_t blocks = blocks_after > 0 ? static_cast<uint64_t>(blocks_after) : 0;
  mu_.Unlock();
  s = CommitInode(as, new_disk_size, blocks, &extra);
  mu_.Lock();
  if (!s.ok()) as->wb_err_.Set(ErrSeqCode(s));
  finish_doomed(s.ok());
  return s;
}

// ---- Eviction ----

Status PageCache::Evict(AddressSpace* as, bool write_back) {
  Status s;
  if (write_back) s = WritebackInode(as, 0, kToEnd, SyncMode::kAll);
  MutexLock lock(&mu_);
  AcquireInodeSync(as);
  assert(as->mmaps_.empty());
  while (!as->pages_.empty()) {
    Page* p = &*as->pages_.begin();
    GetPage(p);
    LockPage(p);
    if (p->mapping == as) {
      WaitOnPageWriteback(p);
      DeletePageFromCache(p);
    }
    UnlockPage(p);
    PutPage(p);
  }
  if (as->dirty_inode_hook_.is_linked()) dirty_inodes_.erase(dirty_inodes_.iterator_to(*as));
  as->evicted_ = true;
  ReleaseInodeSync(as);
  // SyncAll or the flusher may still hold it; the space is off every list, so no new holder.
  while (as->pins_ > 0) inode_cv_.Wait();
  return s;
}

}  // namespace stablefs
