// PageCache, part two: writeback (mm/page-writeback.c, fs/fs-writeback.c). This file upholds
// guarantee 1: between StartWriteback and EndWriteback a page's bytes do not change (writers and
// PageMkwrite wait on PG_writeback under the wait policy; the bounce policy checksums a copy
// taken under the page lock), so the tuples generated here still match the data when the store
// checks them. It also upholds guarantee 4: a failed batch is recorded in the mapping's ErrSeq,
// which every open file's next fsync reports.
//
// Per page, under mu_: Lock, ClearDirtyForIo (mappings lose write access), StartWriteback. Then
// per batch, mu_ released: zero past EOF and (bounce) copy under the page locks, Unlock, generate
// PI, submit with the inode's record, EndWriteback. One writeback, truncate or eviction per inode
// at a time (I_SYNC). This file also holds the dirty and writeback bits' transitions.
#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include "fs/mapping.h"
#include "fs/page_cache.h"
#include "storage/log.h"

namespace stablefs {

namespace {

// Page-aligned buffers for bounce copies, so the debug check can protect them too.
struct BounceBuffer {
  char* data = nullptr;
  size_t bytes = 0;
  explicit BounceBuffer(size_t pages) : bytes(pages * kPageSize) {
    data = static_cast<char*>(std::aligned_alloc(kPageSize, bytes));
  }
  ~BounceBuffer() { std::free(data); }
};
}  // namespace

// ---- Page state (mm/page-writeback.c) ----

void PageCache::MarkDirty(Page* page) {
  assert(page->mapping != nullptr);
  if (PageTest(page, PG_dirty)) return;
  PageSet(page, PG_dirty);
  nr_dirty_++;
  AddressSpace* as = page->mapping;
  as->dirty_.insert(*page);
  if (!as->dirty_inode_hook_.is_linked()) {
    as->dirtied_when_ns_ = MonotonicNs();
    dirty_inodes_.push_back(*as);
  }
}

bool PageCache::ClearDirtyForIo(Page* page) {
  assert(PageTest(page, PG_locked));
  if (!PageTest(page, PG_dirty)) return false;
  PageClear(page, PG_dirty);
  nr_dirty_--;
  AddressSpace* as = page->mapping;
  as->dirty_.erase(as->dirty_.iterator_to(*page));
  if (as->dirty_.empty() && as->dirty_inode_hook_.is_linked()) {
    dirty_inodes_.erase(dirty_inodes_.iterator_to(*as));
  }
  PageMkclean(page);
  return true;
}

void PageCache::StartWriteback(Page* page) {
  assert(PageTest(page, PG_locked));
  assert(!PageTest(page, PG_writeback));
  PageSet(page, PG_writeback);
  nr_writeback_++;
}

void PageCache::EndWriteback(Page* page) {
  assert(PageTest(page, PG_writeback));
  PageClear(page, PG_writeback);
  nr_writeback_--;
  WaitQueue(page).SignalAll();
  throttle_cv_.SignalAll();
}

// ---- Writeback ----

void PageCache::AcquireInodeSync(AddressSpace* as) {
  while (as->wb_busy_) inode_cv_.Wait();
  as->wb_busy_ = true;
}

void PageCache::ReleaseInodeSync(AddressSpace* as) {
  as->wb_busy_ = false;
  inode_cv_.SignalAll();
}

Status PageCache::WritebackInode(AddressSpace* as, uint64_t first, uint64_t last, SyncMode mode) {
  MutexLock lock(&mu_);
  if (as->evicted_) return Status::Ok();
  if (mode == SyncMode::kNone && as->wb_busy_) return Status::Ok();
  AcquireInodeSync(as);
  Status result;
  uint64_t cursor = first;
  std::vector<Page*> batch;
  while (cursor <= last) {
    batch.clear();
    for (auto it = as->dirty_.lower_bound(cursor); it != as->dirty_.end() && it->index <= last &&
                                                   batch.size() < options_.writeback_batch_pages;
         ++it) {
      batch.push_back(&*it);
    }
    if (batch.empty()) break;
    // Each index is visited once per pass, so a writer that keeps redirtying pages behind the
    // cursor cannot keep fsync from finishing.
    cursor = batch.back()->index + 1;
    for (Page* p : batch) GetPage(p);
    std::vector<Page*> ready;
    for (Page* p : batch) {
      if (mode == SyncMode::kNone) {
        if (!TryLockPage(p)) {
          PutPage(p);
          continue;
        }
      } else {
        LockPage(p);
      }
      if (p->mapping != as || !PageTest(p, PG_dirty)) {
        UnlockPage(p);
        PutPage(p);
        continue;
      }
      ready.push_back(p);
    }
    if (!ready.empty()) {
      const uint64_t written_end = (ready.back()->index + 1) * kPageSize;
      const uint64_t disk_size = std::max(as->disk_size_, std::min(as->size_, written_end));
      Status s = WritebackBatch(as, ready, nullptr, disk_size, 0);
      if (result.ok() && !s.ok()) result = s;
    }
    if (cursor == 0) break;  // wrapped past the last index
  }
  // An inode the pass left dirty (busy pages, redirtied pages) goes to the back of the queue.
  if (!as->dirty_.empty() && as->dirty_inode_hook_.is_linked()) {
    dirty_inodes_.erase(dirty_inodes_.iterator_to(*as));
    as->dirtied_when_ns_ = MonotonicNs();
    dirty_inodes_.push_back(*as);
  }
  ReleaseInodeSync(as);
  return result;
}

Status PageCache::CommitInode(AddressSpace* as, uint64_t disk_size, uint64_t blocks,
                              WriteBatch* batch) {
  auto publish = [&] {
    MutexLock lock(&mu_);
    as->disk_size_ = disk_size;
    as->blocks_ = blocks;
  };
  if (as->owner_ != nullptr) return as->owner_->CommitWithInode(disk_size, blocks, batch, publish);
  Status s = store_->Write(*batch);
  if (s.ok()) publish();
  return s;
}

Status PageCache::WritebackBatch(AddressSpace* as, std::vector<Page*>& pages, WriteBatch* extra,
                                 uint64_t new_disk_size, int64_t blocks_delta) {
  const size_t n = pages.size();
  const uint64_t ino = as->ino_;
  const bool bounce = options_.stable_pages == StablePolicy::kBounce;
  // The record's size covers every page this batch writes (within i_size): once written, a page
  // is clean and no later batch would extend the size over it.
  new_disk_size =
      std::max(new_disk_size, std::min(as->size_, (pages.back()->index + 1) * kPageSize));

  // Under mu_: take write access away from mappings and mark the pages under writeback.
  for (Page* p : pages) {
    ClearDirtyForIo(p);
    StartWriteback(p);
  }
  // What lies past EOF in the page that holds it (bytes a mapping wrote there) is zeroed before
  // PI covers it.
  Page* eof_page = nullptr;
  size_t keep = kPageSize;
  for (Page* p : pages) {
    if (as->size_ > p->index * kPageSize && as->size_ < (p->index + 1) * kPageSize) {
      eof_page = p;
      keep = as->size_ - p->index * kPageSize;
    }
  }
  if (bounce) counters_.bounce_copies += n;
  const uint64_t blocks_before = as->blocks_;
  WritebackHook hook = writeback_hook_;
  mu_.Unlock();

  // Under the page locks alone (no writer, PageMkwrite or truncate can reach these bytes, and
  // i_size cannot shrink under I_SYNC): zero the tail, take the bounce copy, protect the source.
  if (eof_page != nullptr) std::memset(eof_page->data + keep, 0, kPageSize - keep);
  std::unique_ptr<BounceBuffer> bounce_buf;
  std::vector<const char*> src(n);
  if (bounce) {
    bounce_buf = std::make_unique<BounceBuffer>(n);
    for (size_t i = 0; i < n; i++) {
      std::memcpy(bounce_buf->data + i * kPageSize, pages[i]->data, kPageSize);
      src[i] = bounce_buf->data + i * kPageSize;
    }
  } else {
    for (size_t i = 0; i < n; i++) src[i] = pages[i]->data;
  }
  if (options_.debug_readonly) {
    for (size_t i = 0; i < n; i++) {
      mprotect(const_cast<char*>(src[i]), kPageSize, PROT_READ);
    }
  }
  // From here PG_writeback alone keeps the pages stable (writers and PageMkwrite wait on it
  // under the wait policy; under bounce they may change the page, not the copy).
  mu_.Lock();
  for (Page* p : pages) UnlockPage(p);
  mu_.Unlock();

  // Generate PI over the stable bytes.
  const size_t tb = store_->tuple_bytes_per_block();
  std::vector<char> tuples(n * tb);
  for (size_t i = 0; i < n; i++) {
    store_->GenerateBlockPi(ino, pages[i]->index, src[i], tuples.data() + i * tb);
  }
  if (hook) hook(as, pages[0]->index, n);

  // Which of these blocks are new to the store (st_blocks)?
  uint64_t existing = 0;
  size_t j = 0;
  Status s =
      store_->ScanBlockMap(ino, pages.front()->index, pages.back()->index + 1, [&](uint64_t index) {
        while (j < n && pages[j]->index < index) j++;
        if (j < n && pages[j]->index == index) existing++;
        return true;
      });
  WriteBatch own;
  WriteBatch* batch = extra != nullptr ? extra : &own;
  for (size_t i = 0; i < n; i++) {
    batch->PutBlock(ino, pages[i]->index, src[i], tuples.data() + i * tb);
  }
  int64_t blocks_after =
      static_cast<int64_t>(blocks_before) + static_cast<int64_t>(n - existing) + blocks_delta;
  if (blocks_after < 0) blocks_after = 0;
  if (s.ok()) s = CommitInode(as, new_disk_size, static_cast<uint64_t>(blocks_after), batch);
  if (!s.ok()) {
    // After the shutdown ioctl every writeback fails by design; the shutdown was logged once.
    if (!store_->is_shut_down())
      Log(LogLevel::kError,
          "writeback of inode %llu pages %llu..%llu failed; the data is lost and the next fsync of "
          "every open file reports it: %s",
          static_cast<unsigned long long>(ino),
          static_cast<unsigned long long>(pages.front()->index),
          static_cast<unsigned long long>(pages.back()->index), s.ToString().c_str());
    if (!options_.debug_lose_writeback_errors) as->wb_err_.Set(ErrSeqCode(s));
  }
  if (options_.debug_readonly) {
    for (size_t i = 0; i < n; i++) {
      mprotect(const_cast<char*>(src[i]), kPageSize, PROT_READ | PROT_WRITE);
    }
  }

  mu_.Lock();
  counters_.writeback_batches++;
  if (s.ok()) {
    counters_.pages_written_back += n;
  } else {
    counters_.writeback_errors++;
    if (s.IsProtection()) counters_.protection_errors_write++;
    for (Page* p : pages) PageSet(p, PG_error);
  }
  for (Page* p : pages) {
    EndWriteback(p);
    PutPage(p);
  }
  return s;
}

bool PageCache::OverBackgroundThreshold() const {
  return (nr_dirty_ + nr_writeback_) * 100 > nr_frames_ * options_.dirty_background_percent;
}

void PageCache::BalanceDirtyPages() {
  MutexLock lock(&mu_);
  if (OverBackgroundThreshold() && !flusher_kicked_) {
    flusher_kicked_ = true;
    flusher_cv_.Signal();
  }
  auto over_limit = [&]() REQUIRES(mu_) {
    return (nr_dirty_ + nr_writeback_) * 100 > nr_frames_ * options_.dirty_percent;
  };
  if (!over_limit()) return;
  counters_.dirty_throttle_waits++;
  while (over_limit() && !stop_) {
    flusher_kicked_ = true;
    flusher_cv_.Signal();
    throttle_cv_.WaitFor(std::chrono::milliseconds(100));
  }
}

void PageCache::FlusherLoop() {
  MutexLock lock(&mu_);
  while (!stop_) {
    if (!flusher_kicked_) {
      flusher_cv_.WaitFor(std::chrono::milliseconds(options_.writeback_interval_ms));
    }
    flusher_kicked_ = false;
    // One pass over the dirty inodes, oldest first: each that is expired, or all of them while
    // the cache is over the background threshold.
    size_t budget = dirty_inodes_.size();
    while (!stop_ && budget-- > 0 && !dirty_inodes_.empty()) {
      const int64_t now = MonotonicNs();
      const int64_t expire = int64_t{options_.dirty_expire_ms} * 1000000;
      AddressSpace* as = nullptr;
      for (AddressSpace& a : dirty_inodes_) {
        if (a.wb_busy_) continue;
        if (OverBackgroundThreshold() || now - a.dirtied_when_ns_ >= expire) as = &a;
        break;  // oldest first: if the oldest is not due, none is
      }
      if (as == nullptr) break;
      as->pins_++;
      mu_.Unlock();
      (void)WritebackInode(as, 0, kToEnd, SyncMode::kNone);
      mu_.Lock();
      as->pins_--;
      inode_cv_.SignalAll();
    }
  }
}

Status PageCache::WriteAndWait(AddressSpace* as, uint64_t start, uint64_t end) {
  if (end <= start) return Status::Ok();
  const uint64_t last = end == kToEnd ? kToEnd : (end - 1) / kPageSize;
  // Writeback here is synchronous: when it returns, every page that was dirty in the range has
  // ended writeback (a concurrent pass held I_SYNC, which this one waited for).
  return WritebackInode(as, start / kPageSize, last, SyncMode::kAll);
}

FileErrCursor PageCache::OpenCursor(AddressSpace* as) {
  return FileErrCursor{as->wb_err_.Sample(), store_err_.Sample()};
}

Status PageCache::Fsync(AddressSpace* as, FileErrCursor* cursor, uint64_t start, uint64_t end) {
  (void)WriteAndWait(as, start, end);  // its errors are in the ErrSeq
  Status s = store_->Sync();
  if (!s.ok()) {
    Log(LogLevel::kError, "store sync failed: %s", s.ToString().c_str());
    store_err_.Set(ErrSeqCode(s));
  }
  // Both cursors advance, as the kernel's file_check_and_advance_wb_err does for the one it has.
  const int err = as->wb_err_.CheckAndAdvance(&cursor->mapping);
  const int store_err = store_err_.CheckAndAdvance(&cursor->store);
  if (err != 0) {
    return Status::FromCode(static_cast<Status::Code>(err),
                            "a writeback of this file failed since its last fsync (the log names "
                            "the pages)");
  }
  if (store_err != 0) {
    return Status::FromCode(static_cast<Status::Code>(store_err),
                            "a sync of the store failed since this file's last fsync");
  }
  return Status::Ok();
}

Status PageCache::SyncAll() {
  std::vector<AddressSpace*> spaces;
  {
    MutexLock lock(&mu_);
    for (AddressSpace& a : dirty_inodes_) {
      a.pins_++;
      spaces.push_back(&a);
    }
  }
  Status result;
  for (AddressSpace* as : spaces) {
    Status s = WritebackInode(as, 0, kToEnd, SyncMode::kAll);
    if (result.ok() && !s.ok()) result = s;
  }
  {
    MutexLock lock(&mu_);
    for (AddressSpace* as : spaces) as->pins_--;
    inode_cv_.SignalAll();
  }
  Status s = store_->Sync();
  if (!s.ok()) {
    store_err_.Set(ErrSeqCode(s));
    if (result.ok()) result = s;
  }
  return result;
}

}  // namespace stablefs
