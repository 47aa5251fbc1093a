// Mapping: a range of a file's pages mapped into this process, whose writes go through
// PageMkwrite as writes through a shared mapping do in the kernel.
//
// The page cache keeps its frames in a memfd; a Mapping maps the very frames that hold the file's
// pages, so a store through it changes the cached page, as a user PTE maps a page-cache page. A
// page is mapped read-only until the first write fault, which calls PageMkwrite (Lock,
// WaitStable, MarkDirty, then the page becomes writable); when writeback starts on the page,
// PageMkclean makes it read-only again (the kernel's page_mkclean), so the next write faults and
// waits. Truncate unmaps pages past EOF (unmap_mapping_range); touching one after that refaults
// it if it is inside EOF again, and is a SIGBUS otherwise.
//
// Faults are handled by a SIGSEGV handler installed on first use; it chains to the handler that
// was there before for addresses that are not ours. It runs in the faulting thread, which must not
// hold page cache locks (user code never does). The same handler reports writes that hit a page
// under writeback made read-only by the debug check, and aborts.
//
// How writes through mmap of the FUSE mount reach this cache: the kernel's own page cache serves
// the mount's mappings; its writeback sends FUSE_WRITE requests whose data the daemon copies out
// of /dev/fuse into its buffers, and from there into this cache through Write(). The daemon's
// copy is private to it, so what this cache checksums cannot change under it; stability of the
// kernel's page up to that copy is the kernel FUSE client's business (fuse_page_mkwrite waits on
// FUSE writeback).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "fs/page_cache.h"

namespace stablefs {

class Mapping {
 public:
  // Unmaps. Pages written through the mapping stay dirty and are written back later.
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  char* data() const { return base_; }
  size_t length() const { return npages_ * kPageSize; }
  uint64_t first_index() const { return first_; }
  AddressSpace* address_space() const { return as_; }
  // msync(MS_SYNC): writes back the mapped range and waits for it.
  Status Sync();

 private:
  friend class PageCache;
  friend bool HandleMappingFault(char* addr);

  Mapping(PageCache* cache, AddressSpace* as, uint64_t first, size_t npages, char* base)
      : cache_(cache), as_(as), first_(first), npages_(npages), base_(base) {}

  PageCache* const cache_;
  AddressSpace* const as_;
  const uint64_t first_;
  const size_t npages_;
  char* const base_;
  int slot_ = -1;  // in the fault handler's registry
  // Guarded by cache_->mu_: the page mapped at each position (null once zapped) and whether it is
  // mapped writable.
  std::vector<Page*> pages_;
  std::vector<uint8_t> writable_;
};

// The fault handler's entry: true if the fault at addr was in a Mapping and is resolved (the
// access is retried). Faults in a cache's page pool are debug-check reports and abort.
bool HandleMappingFault(char* addr);

// The fault handler's registry of page pools, for the debug check's reports.
void RegisterCacheForFaults(PageCache* cache);
void UnregisterCacheForFaults(PageCache* cache);

}  // namespace stablefs
