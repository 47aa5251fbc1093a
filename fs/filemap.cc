// PageCache: page state (lock, reference, wait on writeback), lookup and allocation, and the
// read and write paths (mm/filemap.c). A write is WriteBegin (find and lock the page, wait until
// it is stable, fill it if the write covers only part of it), the copy, then WriteEnd (mark it
// dirty, grow i_size, unlock).
#include <algorithm>
#include <cassert>
#include <cstring>

#include "fs/page_cache.h"
#include "storage/log.h"

namespace stablefs {

// ---- Page state ----

CondVar& PageCache::WaitQueue(const Page* page) {
  return *wait_table_[page->frame % kWaitTableSize];
}

void PageCache::LockPage(Page* page) {
  assert(page->refcount > 0);
  while (PageTest(page, PG_locked)) WaitQueue(page).Wait();
  PageSet(page, PG_locked);
}

bool PageCache::TryLockPage(Page* page) {
  if (PageTest(page, PG_locked)) return false;
  PageSet(page, PG_locked);
  return true;
}

void PageCache::UnlockPage(Page* page) {
  assert(PageTest(page, PG_locked));
  PageClear(page, PG_locked);
  WaitQueue(page).SignalAll();
}

void PageCache::GetPage(Page* page) {
  if (page->lru_hook.is_linked()) lru_.erase(lru_.iterator_to(*page));
  page->refcount++;
}

void PageCache::PutPage(Page* page) {
  assert(page->refcount > 0);
  if (--page->refcount > 0) return;
  assert(page->mapcount == 0);
  assert(!PageTest(page, PG_locked | PG_writeback));
  if (page->mapping != nullptr && !PageTest(page, PG_uptodate)) {
    // A failed or abandoned fill: nobody may find these bytes.
    page->mapping->pages_.erase(page->mapping->pages_.iterator_to(*page));
    page->mapping = nullptr;
  }
  if (page->mapping == nullptr) {
    PageReset(page, 0);
    free_.push_back(*page);
    free_cv_.SignalAll();
  } else if (!PageTest(page, PG_dirty)) {
    lru_.push_back(*page);
    free_cv_.SignalAll();
  }
}

void PageCache::WaitOnPageWriteback(Page* page) {
  if (!PageTest(page, PG_writeback)) return;
  counters_.waits_on_writeback++;
  int64_t start = MonotonicNs();
  if (wait_hook_) {
    auto hook = wait_hook_;
    uint64_t index = page->index;
    mu_.Unlock();
    hook(index);
    mu_.Lock();
  }
  while (PageTest(page, PG_writeback)) WaitQueue(page).Wait();
  counters_.wait_on_writeback_ns += static_cast<uint64_t>(MonotonicNs() - start);
}

void PageCache::WaitStable(Page* page) {
  if (options_.stable_pages == StablePolicy::kWait) WaitOnPageWriteback(page);
}

void PageCache::DeletePageFromCache(Page* page) {
  AddressSpace* as = page->mapping;
  assert(as != nullptr && page->refcount > 0 && page->mapcount == 0);
  if (PageTest(page, PG_dirty)) {
    PageClear(page, PG_dirty);
    nr_dirty_--;
    as->dirty_.erase(as->dirty_.iterator_to(*page));
    if (as->dirty_.empty() && as->dirty_inode_hook_.is_linked()) {
      dirty_inodes_.erase(dirty_inodes_.iterator_to(*as));
    }
    throttle_cv_.SignalAll();
  }
  as->pages_.erase(as->pages_.iterator_to(*page));
  page->mapping = nullptr;
  PageClear(page, PG_uptodate | PG_error);
}

// ---- Lookup and allocation ----

Page* PageCache::FindGetPage(AddressSpace* as, uint64_t index) {
  auto it = as->pages_.find(index);
  if (it == as->pages_.end()) return nullptr;
  GetPage(&*it);
  return &*it;
}

Page* PageCache::AllocFrame() {
  if (!free_.empty()) {
    Page* p = &free_.front();
    free_.pop_front();
    return p;
  }
  if (!lru_.empty()) {
    Page* p = &lru_.front();
    lru_.pop_front();
    assert(p->refcount == 0 && !PageTest(p, PG_dirty | PG_writeback | PG_locked));
    p->mapping->pages_.erase(p->mapping->pages_.iterator_to(*p));
    p->mapping = nullptr;
    PageReset(p, 0);
    counters_.pages_evicted++;
    return p;
  }
  return nullptr;
}

Status PageCache::GrabPage(AddressSpace* as, uint64_t index, Page** page, bool* created) {
  int64_t idle_since = MonotonicNs();
  for (;;) {
    if (as->evicted_) return Status::IOError("inode " + std::to_string(as->ino_) + " is evicted");
    if (Page* p = FindGetPage(as, index)) {
      *page = p;
      *created = false;
      return Status::Ok();
    }
    if (index >= as->invalidate_first_ && index < as->invalidate_end_) {
      // A punch or truncate is removing this page: its block may be going.
      if (invalidate_wait_hook_) {
        auto hook = invalidate_wait_hook_;
        mu_.Unlock();
        hook(index);
        mu_.Lock();
        if (index < as->invalidate_first_ || index >= as->invalidate_end_) continue;
      }
      inode_cv_.Wait();
      continue;
    }
    if (Page* p = AllocFrame()) {
      p->mapping = as;
      p->index = index;
      PageReset(p, PG_locked);
      p->refcount = 1;
      as->pages_.insert(*p);
      *page = p;
      *created = true;
      return Status::Ok();
    }
    // Every frame is dirty, under writeback or in use: let writeback clean some, as direct
    // reclaim would.
    size_t busy = nr_dirty_ + nr_writeback_;
    flusher_kicked_ = true;
    flusher_cv_.Signal();
    if (free_cv_.WaitFor(std::chrono::milliseconds(100))) idle_since = MonotonicNs();
    if (stop_) return Status::IOError("page cache is shutting down");
    if (busy == 0 && MonotonicNs() - idle_since > 10'000'000'000) {
      return Status::IOError("page cache exhausted: all " + std::to_string(nr_frames_) +
                             " pages are in use");
    }
  }
}

Status PageCache::GrabCachePage(AddressSpace* as, uint64_t index, Page** page, bool* created) {
  for (;;) {
    Page* p;
    STABLEFS_RETURN_IF_ERROR(GrabPage(as, index, &p, created));
    if (!*created) {
      LockPage(p);
      if (p->mapping != as) {  // truncated while we slept: look again
        UnlockPage(p);
        PutPage(p);
        continue;
      }
    }
    *page = p;
    return Status::Ok();
  }
}

Status PageCache::FillPages(AddressSpace* as, Page* const* pages, size_t n) {
  char* blocks[64];
  for (size_t done = 0; done < n;) {
    size_t run = std::min<size_t>(n - done, std::size(blocks));
    for (size_t i = 0; i < run; i++) blocks[i] = pages[done + i]->data;
    Status s = store_->ReadBlocksV(as->ino_, pages[done]->index, run, blocks);
    MutexLock lock(&mu_);
    if (!s.ok()) {
      for (size_t i = done; i < n; i++) PageSet(pages[i], PG_error);
      return s;
    }
    for (size_t i = done; i < done + run; i++) {
      PageSet(pages[i], PG_uptodate);
      PageClear(pages[i], PG_error);
    }
    counters_.pages_read += run;
    done += run;
  }
  return Status::Ok();
}

Status PageCache::ReportReadError(AddressSpace* as, const Status& s) {
  {
    MutexLock lock(&mu_);
    if (s.IsProtection() || s.IsCorruption()) counters_.protection_errors_read++;
  }
  Log(LogLevel::kError, "read of inode %llu failed, returning EIO: %s",
      static_cast<unsigned long long>(as->ino_), s.message().c_str());
  return s;
}

Status PageCache::GetLockedUptodatePage(AddressSpace* as, uint64_t index, Page** page) {
  Page* p = nullptr;
  {
    MutexLock lock(&mu_);
    bool created;
    STABLEFS_RETURN_IF_ERROR(GrabCachePage(as, index, &p, &created));
    if (PageTest(p, PG_uptodate)) {
      *page = p;
      return Status::Ok();
    }
  }
  Status s = FillPages(as, &p, 1);
  {
    MutexLock lock(&mu_);
    if (s.ok()) {
      *page = p;
      return s;
    }
    UnlockPage(p);
    PutPage(p);
  }
  return ReportReadError(as, s);
}

// ---- Read ----

// The most pages one store read fills: a 1 MiB FUSE read and its read-ahead.
constexpr size_t kMaxFillPages = 512;

Status PageCache::Read(AddressSpace* as, uint64_t pos, size_t len, char* buf, size_t* done) {
  *done = 0;
  uint64_t size = as->size();
  if (pos >= size || len == 0) return Status::Ok();
  const uint64_t end = (size - pos < len) ? size : pos + len;
  const uint64_t last_index = (size - 1) / kPageSize;
  // A miss fills the uncached pages this read asks for in one store read. A reader that
  // continues near where the last read of the file ended (a sequential stream, its requests
  // possibly reordered by the daemon's threads) fills at least readahead_pages from the miss, as
  // before; a random reader fills only what it asked for: read-ahead there costs a store read and
  // a PI check per page nobody asked for (random 4 KiB reads used to read about 20 pages each).
  // Never beyond the larger of the two, so that a request the kernel already has in flight for
  // the next pages does not wait on this one's fill.
  const uint64_t req_last = (end - 1) / kPageSize;
  uint64_t fill_last = req_last;
  bool ra_updated = false;
  while (pos < end) {
    const uint64_t index = pos / kPageSize;
    Page* page;
    {
      MutexLock lock(&mu_);
      if (!ra_updated) {  // under the first lookup's lock: one mu_ round fewer per read
        const uint64_t near = options_.readahead_pages;
        if (index + near >= as->ra_next_ && index <= as->ra_next_ + near) {
          fill_last = std::min(last_index, std::max(req_last, index + near - 1));
        }
        as->ra_next_ = req_last + 1;
        ra_updated = true;
      }
      page = FindGetPage(as, index);
      if (page != nullptr && !PageTest(page, PG_uptodate)) {
        // Another reader is filling it: wait for the fill, then judge.
        LockPage(page);
        UnlockPage(page);
        if (page->mapping != as || !PageTest(page, PG_uptodate)) {
          PutPage(page);
          page = nullptr;
        }
      }
    }
    if (page == nullptr) {
      // A miss: fill this page and read ahead the uncached pages after it, in one store read.
      std::vector<Page*> run;
      {
        MutexLock lock(&mu_);
        Page* first;
        bool created;
        STABLEFS_RETURN_IF_ERROR(GrabCachePage(as, index, &first, &created));
        if (PageTest(first, PG_uptodate)) {  // filled while this reader waited for the lock
          UnlockPage(first);
          page = first;
        } else {
          run.push_back(first);
          for (uint64_t i = index + 1; i <= fill_last && run.size() < kMaxFillPages; i++) {
            if (as->pages_.find(i) != as->pages_.end()) break;
            if (i >= as->invalidate_first_ && i < as->invalidate_end_) break;
            Page* p = AllocFrame();
            if (p == nullptr) break;
            p->mapping = as;
            p->index = i;
            PageReset(p, PG_locked);
            p->refcount = 1;
            as->pages_.insert(*p);
            run.push_back(p);
          }
        }
      }
      if (page == nullptr) {
        Status s = FillPages(as, run.data(), run.size());
        if (!s.ok() && run.size() > 1) {
          // Something in the run failed. The reader asked for the first page only: it alone
          // decides the outcome; read-ahead pages that fail are dropped unreported.
          {
            MutexLock lock(&mu_);
            for (Page* p : run) PageClear(p, PG_error);
          }
          s = FillPages(as, run.data(), 1);
          for (size_t i = 1; s.ok() && i < run.size(); i++) (void)FillPages(as, &run[i], 1);
        }
        {
          MutexLock lock(&mu_);
          for (size_t i = 0; i < run.size(); i++) {
            UnlockPage(run[i]);
            if (i > 0 || !s.ok()) PutPage(run[i]);
          }
        }
        if (!s.ok()) return ReportReadError(as, s);
        page = run[0];
      }
    }
    const size_t off = pos % kPageSize;
    const size_t n = std::min<uint64_t>(kPageSize - off, end - pos);
    std::memcpy(buf + *done, page->data + off, n);
    {
      MutexLock lock(&mu_);
      PutPage(page);
    }
    pos += n;
    *done += n;
  }
  return Status::Ok();
}

// ---- Write ----

Status PageCache::WriteBegin(AddressSpace* as, uint64_t pos, size_t len, Page** pagep) {
  const uint64_t index = pos / kPageSize;
  MutexLock lock(&mu_);
  Page* page;
  bool created;
  STABLEFS_RETURN_IF_ERROR(GrabCachePage(as, index, &page, &created));
  WaitStable(page);
  if (!PageTest(page, PG_uptodate) && len != kPageSize) {
    if (index * kPageSize >= as->size_) {
      // Past EOF nothing is stored: the rest of the page is zeros. The page is locked and not
      // uptodate, so no reader looks at it meanwhile.
      mu_.Unlock();
      std::memset(page->data, 0, kPageSize);
      mu_.Lock();
    } else {
      mu_.Unlock();
      Status s = FillPages(as, &page, 1);
      mu_.Lock();
      if (!s.ok()) {
        UnlockPage(page);
        PutPage(page);
        mu_.Unlock();
        (void)ReportReadError(as, s);
        mu_.Lock();
        return s;
      }
    }
  }
  *pagep = page;
  return Status::Ok();
}

void PageCache::WriteEnd(AddressSpace* as, uint64_t pos, size_t copied, Page* page) {
  MutexLock lock(&mu_);
  PageSet(page, PG_uptodate);
  MarkDirty(page);
  if (pos + copied > as->size_) as->size_ = pos + copied;
  UnlockPage(page);
  PutPage(page);
}

Status PageCache::Write(AddressSpace* as, uint64_t pos, const char* buf, size_t len, size_t* done) {
  *done = 0;
  while (*done < len) {
    const size_t off = pos % kPageSize;
    const size_t n = std::min<size_t>(kPageSize - off, len - *done);
    Page* page;
    STABLEFS_RETURN_IF_ERROR(WriteBegin(as, pos, n, &page));
    std::memcpy(page->data + off, buf + *done, n);
    WriteEnd(as, pos, n, page);
    pos += n;
    *done += n;
    BalanceDirtyPages();
  }
  return Status::Ok();
}

std::vector<uint64_t> PageCache::UnstoredIndexes(AddressSpace* as, uint64_t first, uint64_t end) {
  MutexLock lock(&mu_);
  std::vector<uint64_t> out;
  if (nr_writeback_ == 0) {  // the dirty set says it all
    for (auto it = as->dirty_.lower_bound(first); it != as->dirty_.end() && it->index < end; ++it) {
      out.push_back(it->index);
    }
    return out;
  }
  for (auto it = as->pages_.lower_bound(first); it != as->pages_.end() && it->index < end; ++it) {
    if (PageTest(&*it, PG_dirty | PG_writeback)) out.push_back(it->index);
  }
  return out;
}
}  // namespace stablefs
