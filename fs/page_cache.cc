// PageCache, the cache itself: the frame pool and its creation, AddressSpace's accessors, the
// counters and the test hooks. The page cache's paths are in files of their own, after mm/:
// filemap.cc (page state, lookup, read, write), truncate.cc (truncate, holes, allocation,
// eviction), writeback.cc (dirtying, writeback, fsync), mapping.cc (mappings and PageMkwrite).
#include "fs/page_cache.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "fs/mapping.h"

namespace stablefs {

namespace {
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

void PageCache::TEST_SetInvalidateWaitHook(std::function<void(uint64_t)> hook) {
  MutexLock lock(&mu_);
  invalidate_wait_hook_ = std::move(hook);
}

}  // namespace stablefs
