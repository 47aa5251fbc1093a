// PageCache, part one: page state transitions, lookup and allocation, and the read, write,
// truncate and hole-punch paths (mm/filemap.c, mm/truncate.c). Writeback is in writeback.cc,
// mappings and PageMkwrite in mapping.cc.
#include "fs/page_cache.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "fs/errno_map.h"
#include "fs/log.h"
#include "fs/mapping.h"

namespace stablefs {

namespace {
constexpr uint64_t kToEnd = UINT64_MAX;
constexpr size_t kMinFrames = 64;
}  // namespace

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// ---- AddressSpace ----

AddressSpace::AddressSpace(PageCache* cache, uint64_t ino, uint64_t size, uint64_t blocks,
                           AddressSpaceOwner* owner)
    : cache_(cache), ino_(ino), owner_(owner), size_(size), disk_size_(size), blocks_(blocks) {}

AddressSpace::~AddressSpace() {
  assert(pages_.empty() && "PageCache::Evict() must run before an AddressSpace dies");
  assert(!dirty_inode_hook_.is_linked());
  assert(mmaps_.empty());
}

uint64_t AddressSpace::size() const {
  MutexLock lock(&cache_->mu_);
  return size_;
}
uint64_t AddressSpace::disk_size() const {
  MutexLock lock(&cache_->mu_);
  return disk_size_;
}
uint64_t AddressSpace::blocks() const {
  MutexLock lock(&cache_->mu_);
  return blocks_;
}
size_t AddressSpace::nrpages() const {
  MutexLock lock(&cache_->mu_);
  return pages_.size();
}
size_t AddressSpace::nrdirty() const {
  MutexLock lock(&cache_->mu_);
  return dirty_.size();
}

// ---- Creation ----

PageCache::PageCache(BlockStore* store, const PageCacheOptions& options)
    : store_(store),
      options_(options),
      free_cv_(&mu_),
      throttle_cv_(&mu_),
      flusher_cv_(&mu_),
      inode_cv_(&mu_) {
  for (size_t i = 0; i < kWaitTableSize; i++)
    wait_table_.push_back(std::make_unique<CondVar>(&mu_));
}

Status PageCache::Create(BlockStore* store, const PageCacheOptions& options,
                         std::unique_ptr<PageCache>* out) {
  if (options.dirty_percent == 0 || options.dirty_percent > 100 ||
      options.dirty_background_percent > options.dirty_percent) {
    return Status::InvalidArgument("page cache: need 0 <= dirty_background <= dirty <= 100");
  }
  if (options.writeback_batch_pages == 0) {
    return Status::InvalidArgument("page cache: writeback batch of 0 pages");
  }
  std::unique_ptr<PageCache> cache(new PageCache(store, options));
  STABLEFS_RETURN_IF_ERROR(cache->Init());
  *out = std::move(cache);
  return Status::Ok();
}

Status PageCache::Init() {
  nr_frames_ = std::max(kMinFrames, options_.cache_bytes / kPageSize);
  // The frames live in a memfd so that a mapping can map the very page the cache holds, as a
  // user PTE maps a page-cache page; pool_ is the cache's own view (the kernel's direct map).
  memfd_ = memfd_create("stablefs-page-cache", MFD_CLOEXEC);
  if (memfd_ < 0) return Status::IOError(std::string("memfd_create: ") + strerror(errno));
  if (ftruncate(memfd_, static_cast<off_t>(nr_frames_ * kPageSize)) != 0) {
    return Status::IOError(std::string("ftruncate of the page pool: ") + strerror(errno));
  }
  void* pool = mmap(nullptr, nr_frames_ * kPageSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
  if (pool == MAP_FAILED)
    return Status::IOError(std::string("mmap of the page pool: ") + strerror(errno));
  pool_ = static_cast<char*>(pool);
  {
    MutexLock lock(&mu_);
    pages_ = std::vector<Page>(nr_frames_);
    for (size_t i = 0; i < nr_frames_; i++) {
      pages_[i].frame = static_cast<uint32_t>(i);
      pages_[i].data = pool_ + i * kPageSize;
      free_.push_back(pages_[i]);
    }
  }
  RegisterCacheForFaults(this);
  flusher_ = std::thread([this] { FlusherLoop(); });
  return Status::Ok();
}

PageCache::~PageCache() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    flusher_cv_.SignalAll();
    throttle_cv_.SignalAll();
    free_cv_.SignalAll();
  }
  if (flusher_.joinable()) flusher_.join();
  UnregisterCacheForFaults(this);
  {
    MutexLock lock(&mu_);
    free_.clear();
    lru_.clear();
    dirty_inodes_.clear();
  }
  if (pool_ != nullptr) munmap(pool_, nr_frames_ * kPageSize);
  if (memfd_ >= 0) close(memfd_);
}

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
    for (;;) {
      bool created;
      STABLEFS_RETURN_IF_ERROR(GrabPage(as, index, &p, &created));
      if (!created) {
        LockPage(p);
        if (p->mapping != as) {  // truncated while we slept
          UnlockPage(p);
          PutPage(p);
          continue;
        }
      }
      break;
    }
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
        STABLEFS_RETURN_IF_ERROR(GrabPage(as, index, &first, &created));
        if (!created) LockPage(first);
        if (first->mapping == as && PageTest(first, PG_uptodate)) {
          UnlockPage(first);
          page = first;
        } else if (first->mapping != as) {
          UnlockPage(first);
          PutPage(first);
          continue;
        } else {
          run.push_back(first);
          for (uint64_t i = index + 1; i <= fill_last && run.size() < kMaxFillPages; i++) {
            if (as->pages_.find(i) != as->pages_.end()) break;
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

Status PageCache::Write(AddressSpace* as, uint64_t pos, const char* buf, size_t len, size_t* done) {
  *done = 0;
  while (*done < len) {
    const uint64_t index = pos / kPageSize;
    const size_t off = pos % kPageSize;
    const size_t n = std::min<size_t>(kPageSize - off, len - *done);
    // write_begin: grab and lock the page, wait until it is stable, fill it if the write does
    // not cover it.
    Page* page = nullptr;
    {
      MutexLock lock(&mu_);
      for (;;) {
        bool created;
        STABLEFS_RETURN_IF_ERROR(GrabPage(as, index, &page, &created));
        if (!created) {
          LockPage(page);
          if (page->mapping != as) {
            UnlockPage(page);
            PutPage(page);
            continue;
          }
        }
        break;
      }
      WaitStable(page);
      if (!PageTest(page, PG_uptodate) && n != kPageSize) {
        if (index * kPageSize >= as->size_) {
          // Past EOF nothing is stored: the rest of the page is zeros.
          std::memset(page->data, 0, kPageSize);
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
    }
    std::memcpy(page->data + off, buf + *done, n);
    // write_end: the page now holds the file's data; mark it dirty and grow i_size.
    {
      MutexLock lock(&mu_);
      PageSet(page, PG_uptodate);
      MarkDirty(page);
      if (pos + n > as->size_) as->size_ = pos + n;
      UnlockPage(page);
      PutPage(page);
    }
    pos += n;
    *done += n;
    BalanceDirtyPages();
  }
  return Status::Ok();
}

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
    uint64_t blocks = as->blocks_;
    mu_.Unlock();
    WriteBatch empty;
    s = as->owner_ ? as->owner_->CommitWithInode(new_size, blocks, &empty) : Status::Ok();
    mu_.Lock();
    if (s.ok()) {
      as->disk_size_ = new_size;
    } else {
      as->size_ = old;  // the store kept the old size; so does memory (the zeroed tail was EOF's)
    }
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
    const uint64_t disk_size = as->disk_size_, blocks = as->blocks_;
    mu_.Unlock();
    WriteBatch batch;
    uint64_t added = 0, next = end;
    s = store_->StagePreallocate(as->ino_, first, end, kBatchBlocks, &batch, &added, &next);
    if (s.ok() && added > 0) {
      s = as->owner_ ? as->owner_->CommitWithInode(disk_size, blocks + added, &batch)
                     : store_->Write(batch);
    }
    mu_.Lock();
    if (s.ok()) as->blocks_ += added;
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

  // Whole pages: out of every mapping, then out of the cache (after their writeback ends).
  if (first_whole < end_whole) {
    ZapMappings(as, first_whole, end_whole - 1);
    std::vector<Page*> doomed;
    for (auto it = as->pages_.lower_bound(first_whole);
         it != as->pages_.end() && it->index < end_whole; ++it) {
      doomed.push_back(&*it);
    }
    for (Page* p : doomed) GetPage(p);
    for (Page* p : doomed) {
      LockPage(p);
      // A mapping that mapped the page after the zap above (a concurrent Map) loses it now.
      if (p->mapping == as && p->mapcount > 0) ZapMappings(as, p->index, p->index);
      if (p->mapping == as) {
        WaitOnPageWriteback(p);
        DeletePageFromCache(p);
      }
      UnlockPage(p);
      PutPage(p);
    }
  }

  // Partial pages: zeroed in the cache and rewritten with fresh PI in the batch that deletes
  // the whole blocks, with the inode record.
  for (Page* p : rewrite) {
    WaitStable(p);
    const uint64_t page_start = p->index * kPageSize;
    const size_t from = start > page_start ? start - page_start : 0;
    const size_t to =
        (end == kToEnd || end - page_start >= kPageSize) ? kPageSize : end - page_start;
    mu_.Unlock();
    std::memset(p->data + from, 0, to - from);
    mu_.Lock();
    MarkDirty(p);
  }
  if (!rewrite.empty()) {
    std::sort(rewrite.begin(), rewrite.end(),
              [](const Page* a, const Page* b) { return a->index < b->index; });
    std::vector<uint64_t> indices;
    for (const Page* p : rewrite) indices.push_back(p->index);
    s = WritebackBatch(as, rewrite, &extra, new_disk_size, blocks_delta);
    // The store kept the old blocks: the zeroed pages go, so that a read sees what it holds.
    if (!s.ok()) DropPages(as, indices);
    return s;
  }
  const int64_t blocks_after = static_cast<int64_t>(as->blocks_) + blocks_delta;
  const uint64_t blocks = blocks_after > 0 ? static_cast<uint64_t>(blocks_after) : 0;
  mu_.Unlock();
  s = as->owner_ ? as->owner_->CommitWithInode(new_disk_size, blocks, &extra)
                 : store_->Write(extra);
  mu_.Lock();
  if (s.ok()) {
    as->blocks_ = blocks;
    as->disk_size_ = new_disk_size;
  } else {
    as->wb_err_.Set(ErrnoFromStatus(s));
  }
  return s;
}

void PageCache::DropPages(AddressSpace* as, const std::vector<uint64_t>& indices) {
  for (uint64_t index : indices) {
    Page* p = FindGetPage(as, index);
    if (p == nullptr) continue;
    LockPage(p);
    if (p->mapping == as) {
      ZapMappings(as, index, index);
      WaitOnPageWriteback(p);
      DeletePageFromCache(p);
    }
    UnlockPage(p);
    PutPage(p);
  }
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

// ---- Counters ----

PageCacheCounters PageCache::counters() const {
  MutexLock lock(&mu_);
  return counters_;
}

size_t PageCache::nr_dirty() const {
  MutexLock lock(&mu_);
  return nr_dirty_;
}

size_t PageCache::nr_writeback() const {
  MutexLock lock(&mu_);
  return nr_writeback_;
}

void PageCache::TEST_SetWritebackHook(WritebackHook hook) {
  MutexLock lock(&mu_);
  writeback_hook_ = std::move(hook);
}

void PageCache::TEST_SetWaitHook(std::function<void(uint64_t)> hook) {
  MutexLock lock(&mu_);
  wait_hook_ = std::move(hook);
}

}  // namespace stablefs
