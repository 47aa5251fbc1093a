// Mappings: Map/Unmap, PageMkwrite, PageMkclean, ZapMappings, and the SIGSEGV handler that routes
// faults to them (mm/memory.c's do_page_mkwrite and mm/rmap.c's page_mkclean, in user space).
#include "fs/mapping.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace stablefs {

namespace {

constexpr int kMaxMappings = 1024;
std::atomic<Mapping*> g_mappings[kMaxMappings];
constexpr int kMaxCaches = 256;
std::atomic<PageCache*> g_caches[kMaxCaches];
struct sigaction g_previous_segv;
std::once_flag g_handler_installed;

void WriteStderr(const char* msg) {
  ssize_t ignored = write(STDERR_FILENO, msg, strlen(msg));
  (void)ignored;
}

void SegvHandler(int sig, siginfo_t* info, void* ucontext) {
  if (HandleMappingFault(static_cast<char*>(info->si_addr))) return;
  // Not ours: hand it to whoever handled SIGSEGV before us.
  if (g_previous_segv.sa_flags & SA_SIGINFO) {
    if (g_previous_segv.sa_sigaction != nullptr) {
      g_previous_segv.sa_sigaction(sig, info, ucontext);
      return;
    }
  } else if (g_previous_segv.sa_handler == SIG_IGN) {
    return;
  } else if (g_previous_segv.sa_handler != SIG_DFL) {
    g_previous_segv.sa_handler(sig);
    return;
  }
  // The default action: returning re-executes the access, which now kills the process.
  signal(SIGSEGV, SIG_DFL);
}

void InstallFaultHandler() {
  std::call_once(g_handler_installed, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = SegvHandler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_previous_segv);
  });
}

void MapFrame(char* addr, int memfd, uint32_t frame, int prot) {
  void* p = mmap(addr, kPageSize, prot, MAP_SHARED | MAP_FIXED, memfd,
                 static_cast<off_t>(frame) * static_cast<off_t>(kPageSize));
  if (p == MAP_FAILED) {
    WriteStderr("stablefs: mmap of a page into a mapping failed\n");
    abort();
  }
}

void ZapFrame(char* addr) {
  mmap(addr, kPageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
}

}  // namespace

void RegisterCacheForFaults(PageCache* cache) {
  InstallFaultHandler();
  for (auto& slot : g_caches) {
    PageCache* expected = nullptr;
    if (slot.compare_exchange_strong(expected, cache)) return;
  }
}

void UnregisterCacheForFaults(PageCache* cache) {
  for (auto& slot : g_caches) {
    PageCache* expected = cache;
    if (slot.compare_exchange_strong(expected, nullptr)) return;
  }
}

// Returns true if the fault was ours and is resolved; the faulting access is then retried.
bool HandleMappingFault(char* addr) NO_THREAD_SAFETY_ANALYSIS {
  for (auto& slot : g_mappings) {
    Mapping* m = slot.load(std::memory_order_acquire);
    if (m == nullptr || addr < m->base_ || addr >= m->base_ + m->length()) continue;
    if (m->cache_->PageMkwrite(m, static_cast<size_t>(addr - m->base_) / kPageSize)) return true;
    WriteStderr("stablefs: access through a mapping past the end of the file: SIGBUS\n");
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
    return true;
  }
  for (auto& slot : g_caches) {
    PageCache* c = slot.load(std::memory_order_acquire);
    if (c == nullptr || addr < c->pool_ || addr >= c->pool_ + c->nr_frames_ * kPageSize) continue;
    // The debug check fired: someone wrote a page under writeback without waiting. Report where
    // and stop before the data is damaged. (Unlocked reads: the process is about to abort.)
    const Page& p = c->pages_[static_cast<size_t>(addr - c->pool_) / kPageSize];
    char msg[320];
    std::snprintf(msg, sizeof(msg),
                  "stablefs: debug check: write to a page under writeback (stable_pages=%s): "
                  "inode %llu page %llu (file offset %llu), writeback=%d\n",
                  StablePolicyName(c->options_.stable_pages),
                  static_cast<unsigned long long>(p.mapping ? p.mapping->ino() : 0),
                  static_cast<unsigned long long>(p.index),
                  static_cast<unsigned long long>(p.index * kPageSize),
                  PageCache::PageTestUnlocked(p, PG_writeback) ? 1 : 0);
    WriteStderr(msg);
    abort();
  }
  return false;
}

// ---- Mapping ----

Mapping::~Mapping() { cache_->Unmap(this); }

Status Mapping::Sync() {
  STABLEFS_RETURN_IF_ERROR(
      cache_->WriteAndWait(as_, first_ * kPageSize, (first_ + npages_) * kPageSize));
  return cache_->store()->Sync();
}

// ---- PageCache's side ----

Status PageCache::Map(AddressSpace* as, uint64_t first, size_t npages,
                      std::unique_ptr<Mapping>* out) {
  if (npages == 0) return Status::InvalidArgument("a mapping of 0 pages");
  {
    MutexLock lock(&mu_);
    const uint64_t eof_pages = (as->size_ + kPageSize - 1) / kPageSize;
    if (first + npages > eof_pages) {
      return Status::InvalidArgument("mapping past the end of the file");
    }
  }
  void* base = mmap(nullptr, npages * kPageSize, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return Status::IOError(std::string("mmap: ") + strerror(errno));
  std::unique_ptr<Mapping> m(new Mapping(this, as, first, npages, static_cast<char*>(base)));
  {
    MutexLock lock(&mu_);
    m->pages_.assign(npages, nullptr);
    m->writable_.assign(npages, 0);
    // Listed before any page is mapped, so that truncate's ZapMappings sees every mapped page.
    as->mmaps_.push_back(m.get());
  }
  for (size_t i = 0; i < npages; i++) {
    Page* p;
    Status s = GetLockedUptodatePage(as, first + i, &p);
    if (!s.ok()) return s;  // ~Mapping unmaps what was mapped
    MutexLock lock(&mu_);
    // Read-only until the first write fault, which goes through PageMkwrite.
    MapFrame(m->base_ + i * kPageSize, memfd_, p->frame, PROT_READ);
    p->mapcount++;
    m->pages_[i] = p;  // the reference from GetLockedUptodatePage is the mapping's
    UnlockPage(p);
  }
  InstallFaultHandler();
  for (auto& slot : g_mappings) {
    Mapping* expected = nullptr;
    if (slot.compare_exchange_strong(expected, m.get())) {
      m->slot_ = static_cast<int>(&slot - g_mappings);
      break;
    }
  }
  if (m->slot_ < 0) return Status::Busy("too many mappings");
  *out = std::move(m);
  return Status::Ok();
}

void PageCache::Unmap(Mapping* m) {
  if (m->slot_ >= 0) g_mappings[m->slot_].store(nullptr, std::memory_order_release);
  MutexLock lock(&mu_);
  AddressSpace* as = m->as_;
  as->mmaps_.erase(std::find(as->mmaps_.begin(), as->mmaps_.end(), m));
  // Unmapped before the pages are released, so no frame is reused while still mapped here.
  munmap(m->base_, m->length());
  for (Page* p : m->pages_) {
    if (p == nullptr) continue;
    p->mapcount--;
    PutPage(p);
  }
}

void PageCache::PageMkclean(Page* page) {
  AddressSpace* as = page->mapping;
  for (Mapping* m : as->mmaps_) {
    if (page->index < m->first_ || page->index >= m->first_ + m->npages_) continue;
    const size_t i = page->index - m->first_;
    if (m->pages_[i] != page || !m->writable_[i]) continue;
    mprotect(m->base_ + i * kPageSize, kPageSize, PROT_READ);
    m->writable_[i] = 0;
  }
}

void PageCache::ZapMappings(AddressSpace* as, uint64_t first, uint64_t last) {
  for (Mapping* m : as->mmaps_) {
    const uint64_t lo = std::max(first, m->first_);
    const uint64_t hi = std::min(last, m->first_ + m->npages_ - 1);
    for (uint64_t index = lo; index <= hi && lo <= hi; index++) {
      const size_t i = index - m->first_;
      Page* p = m->pages_[i];
      if (p == nullptr) continue;
      ZapFrame(m->base_ + i * kPageSize);
      m->pages_[i] = nullptr;
      m->writable_[i] = 0;
      p->mapcount--;
      PutPage(p);
    }
  }
}

bool PageCache::PageMkwrite(Mapping* m, size_t i) {
  AddressSpace* as = m->as_;
  MutexLock lock(&mu_);
  Page* p = m->pages_[i];
  if (p == nullptr) {
    // Zapped by a truncate: refault if the page is inside EOF again.
    const uint64_t index = m->first_ + i;
    if (index * kPageSize >= as->size_) return false;
    mu_.Unlock();
    Page* np = nullptr;
    Status s = GetLockedUptodatePage(as, index, &np);
    mu_.Lock();
    if (!s.ok()) return false;
    if (m->pages_[i] != nullptr) {  // another thread refaulted it first
      UnlockPage(np);
      PutPage(np);
      return true;
    }
    MapFrame(m->base_ + i * kPageSize, memfd_, np->frame, PROT_READ);
    np->mapcount++;
    m->pages_[i] = np;
    UnlockPage(np);
    return true;  // a write retries, faults on the read-only page, and comes back below
  }
  GetPage(p);
  LockPage(p);
  if (p->mapping == as && m->pages_[i] == p && !m->writable_[i]) {
    if (options_.debug_readonly && options_.stable_pages == StablePolicy::kOff &&
        PageTest(p, PG_writeback)) {
      char msg[256];
      std::snprintf(msg, sizeof(msg),
                    "stablefs: debug check: write through a mapping to a page under writeback "
                    "(stable_pages=off): inode %llu page %llu\n",
                    static_cast<unsigned long long>(as->ino_),
                    static_cast<unsigned long long>(p->index));
      WriteStderr(msg);
      abort();
    }
    WaitStable(p);
    MarkDirty(p);
    mprotect(m->base_ + i * kPageSize, kPageSize, PROT_READ | PROT_WRITE);
    m->writable_[i] = 1;
    counters_.mkwrite_faults++;
  }
  UnlockPage(p);
  PutPage(p);
  return true;
}

}  // namespace stablefs
