// PageCache: stablefs's own page cache and writeback, in which no page changes between the moment
// its PI is generated and the moment the store acknowledges it (guarantee 1), no reader gets bytes
// that failed verification (guarantee 2), and writeback errors reach every open file's next fsync
// (guarantee 4). The names are the kernel's (mm/filemap.c, mm/page-writeback.c), word for word.
//
// Write:      WriteBegin (GrabCachePage, WaitStable, fill if partial) -> copy -> WriteEnd
//             (MarkDirty, i_size, Unlock) -> BalanceDirtyPages.                   [filemap.cc]
// Writeback:  per page Lock, ClearDirtyForIo (write-protects mappings), StartWriteback; then
//             (bounce copy,) Unlock, generate PI, submit one batch to the store, EndWriteback.
//                                                                                 [writeback.cc]
// Truncate:   I_SYNC, read partial pages, stage deletions, drop whole pages, rewrite partial
//             ones with the inode record in one commit.                          [truncate.cc]
// Mapping:    a write fault on a write-protected page calls PageMkwrite: Lock, WaitStable,
//             MarkDirty, make the mapping writable, Unlock.                    [mapping.cc]
//
// Lock order (outermost first):
//   AddressSpace "I_SYNC" (wb_busy_: one writeback, truncate or eviction of an inode at a time;
//                          a sleeping state under mu_, like the kernel's I_SYNC bit)
//     PG_locked           (a sleeping bit lock; at most one page lock held by a writer at a time,
//                          writeback locks pages in index order)
//       AddressSpaceOwner::CommitWithInode (the filesystem's inode lock, taken inside the commit)
//       mu_               (a plain mutex over every page's flags, counts, identity and list hooks,
//                          every AddressSpace's index, sizes and lists, the LRU and free lists and
//                          the counters; never held across a wait, a store call or a data copy)
// Waits (page locks, writeback, I_SYNC, free pages, dirty throttling) sleep on condition variables
// bound to mu_ and re-check after every wake that the page still belongs to the same mapping and
// index (truncate may have taken it).
//
// Callers serialize Write, Truncate and PunchHole on one AddressSpace (the filesystem's per-inode
// i_rwsem); reads, mappings, writeback and fsync run concurrently with them and each other.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "fs/errseq.h"
#include "fs/page.h"
#include "fs/stable_policy.h"
#include "storage/block_store.h"
#include "storage/thread_annotations.h"

namespace stablefs {

// The page cache speaks Status; its ErrSeqs hold the code of each error recorded (a Status code
// is nonzero and small), and Fsync turns the code back into a Status. The errno is made only
// at the Filesystem facade (fs/errno_map.h).
inline int ErrSeqCode(const Status& s) { return static_cast<int>(s.code()); }

class Mapping;
class PageCache;

// As an end offset or a last page index: to the end of the file.
constexpr uint64_t kToEnd = UINT64_MAX;

// CLOCK_MONOTONIC in nanoseconds.
int64_t MonotonicNs();

struct PageCacheOptions {
  // Memory for cached pages (the frame pool). Default: 256 MiB.
  size_t cache_bytes = 256u << 20;
  // How pages stay stable under writeback. Default: kWait.
  StablePolicy stable_pages = StablePolicy::kWait;
  // mprotect the checksummed buffer from StartWriteback to EndWriteback. Default: false.
  bool debug_readonly = false;
  // Background writeback starts when dirty + writeback pages exceed this share of the cache.
  // Default: 10 (percent).
  uint32_t dirty_background_percent = 10;
  // Writers wait when dirty + writeback pages exceed this share of the cache. Default: 40.
  uint32_t dirty_percent = 40;
  // A dirty inode is written back once its oldest dirty page is this old. Default: 5000 (ms).
  uint32_t dirty_expire_ms = 5000;
  // The flusher wakes at least this often. Default: 1000 (ms).
  uint32_t writeback_interval_ms = 1000;
  // Pages per store batch in writeback. Default: 256 (1 MiB).
  uint32_t writeback_batch_pages = 256;
  // Pages a miss of a sequential reader fills at least (a random reader's miss fills only what it
  // asked for). Default: 32 (128 KiB).
  uint32_t readahead_pages = 32;
  // Forget writeback errors instead of recording them for fsync (breaks guarantee 4 on purpose,
  // to show that a checker notices). Default: false.
  bool debug_lose_writeback_errors = false;
};

// A copy of the cache's counters; all count since the cache was created.
struct PageCacheCounters {
  uint64_t pages_read = 0;               // pages filled from the store
  uint64_t pages_written_back = 0;       // pages the store acknowledged
  uint64_t writeback_batches = 0;        // store batches submitted by writeback
  uint64_t waits_on_writeback = 0;       // WaitOnPageWriteback calls that slept
  uint64_t wait_on_writeback_ns = 0;     // time slept in them
  uint64_t bounce_copies = 0;            // pages copied under the bounce policy
  uint64_t protection_errors_write = 0;  // writeback batches the store rejected for bad PI
  uint64_t protection_errors_read = 0;   // reads that returned EIO for failed verification
  uint64_t writeback_errors = 0;         // writeback batches that failed, for any reason
  uint64_t pages_evicted = 0;            // clean pages reclaimed for reuse
  uint64_t dirty_throttle_waits = 0;     // writers that waited in BalanceDirtyPages
  uint64_t mkwrite_faults = 0;           // write faults handled by PageMkwrite
};

// The filesystem's side of an AddressSpace: the inode whose record carries the file's size and
// block count. The AddressSpace holds the one copy of what that record says (disk_size(),
// blocks()); the owner reads it there whenever it writes the record.
class AddressSpaceOwner {
 public:
  virtual ~AddressSpaceOwner() = default;
  // Writes `batch` (the blocks of a writeback, or a truncate's deletions and rewritten tail) to
  // the store in one atomic write together with the owner's inode record, which must carry
  // `disk_size` and `blocks`. When the store has taken it, calls `publish` (which installs the
  // two in the AddressSpace) before any other write of the record can read them: the owner
  // serializes this against its other record updates. Lock order: the owner's lock, then
  // PageCache::mu_ (publish takes it); the page cache never calls this holding mu_.
  virtual Status CommitWithInode(uint64_t disk_size, uint64_t blocks, WriteBatch* batch,
                                 const std::function<void()>& publish) = 0;
};

// Where an open file stands in the writeback error history (the kernel's file->f_wb_err plus
// the superblock's s_wb_err for store-wide sync failures).
struct FileErrCursor {
  ErrSeq::Cursor mapping = 0;
  ErrSeq::Cursor store = 0;
};

// The cached pages of one file: the kernel's struct address_space.
class AddressSpace {
 public:
  // A file of `size` bytes whose store holds `blocks` blocks. `owner` may be null (no inode
  // record is written; for tests of the cache alone).
  AddressSpace(PageCache* cache, uint64_t ino, uint64_t size, uint64_t blocks,
               AddressSpaceOwner* owner);
  // REQUIRES: PageCache::Evict() was called (no pages, no mappings, not on any list).
  ~AddressSpace();
  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;

  uint64_t ino() const { return ino_; }
  uint64_t size() const;       // i_size
  uint64_t disk_size() const;  // the size the store's inode record holds
  uint64_t blocks() const;     // the block count the store's inode record holds
  size_t nrpages() const;
  size_t nrdirty() const;
  ErrSeq& wb_err() { return wb_err_; }

 private:
  friend class PageCache;
  friend class Mapping;

  PageCache* const cache_;
  const uint64_t ino_;
  AddressSpaceOwner* const owner_;
  ErrSeq wb_err_;

  // Guarded by cache_->mu_ (clang cannot name another object's mutex here; every access is in a
  // PageCache member that REQUIRES(mu_)).
  PageIndexSet pages_;
  PageDirtySet dirty_;
  uint64_t size_;
  uint64_t disk_size_;
  uint64_t blocks_;
  bool wb_busy_ = false;  // I_SYNC
  uint32_t pins_ = 0;     // SyncAll holds the space across its writeback
  uint64_t ra_next_ = 0;  // file_ra_state: the page after the last read's
  // Pages [invalidate_first_, invalidate_end_) are being removed under a store change (punch,
  // zero range, truncate): none is created there until it ends (filemap_invalidate_lock).
  uint64_t invalidate_first_ = 0;
  uint64_t invalidate_end_ = 0;
  bool evicted_ = false;
  int64_t dirtied_when_ns_ = 0;                        // when dirty_ last became non-empty
  bi::list_member_hook<NormalLink> dirty_inode_hook_;  // PageCache::dirty_inodes_
  std::vector<Mapping*> mmaps_;                        // i_mmap
};

class PageCache {
 public:
  // Creates the frame pool and starts the flusher.
  static Status Create(BlockStore* store, const PageCacheOptions& options,
                       std::unique_ptr<PageCache>* out);
  // Stops the flusher. REQUIRES: every AddressSpace was evicted.
  ~PageCache();
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  // ---- File data ----
  // Reads up to len bytes at pos, stopping at i_size; *done is the count. A page that fails
  // verification is EIO (Protection/Corruption) and a log line; its bytes are never copied out.
  Status Read(AddressSpace* as, uint64_t pos, size_t len, char* buf, size_t* done);
  // Writes len bytes at pos through the page cache, extending i_size; *done counts bytes copied
  // before any error.
  Status Write(AddressSpace* as, uint64_t pos, const char* buf, size_t len, size_t* done);
  // Sets i_size. Shrinking removes cached pages past it (waiting on their writeback and zapping
  // them from mappings), deletes their blocks and rewrites the partial tail block with fresh PI,
  // atomically with the new size in the inode record. Growing zeroes the cached tail past the old
  // size and records the new size.
  Status Truncate(AddressSpace* as, uint64_t new_size);
  // Makes [offset, offset + len) a hole: whole pages are dropped and their blocks deleted, partial
  // pages are zeroed and rewritten. The size does not change.
  Status PunchHole(AddressSpace* as, uint64_t offset, uint64_t len);
  // fallocate's allocation: every block of [first, end) (page indexes) the store does not hold
  // becomes a preallocated, unwritten block (kBlockMapUnwritten): it reads as zeros and counts in
  // the block count, so a later write there does not grow st_blocks. Committed with the inode
  // record in batches of at most 65536 blocks; the size does not change.
  Status Preallocate(AddressSpace* as, uint64_t first, uint64_t end);
  // fallocate's ZERO_RANGE: [offset, offset + len) reads as zeros and every block it touches is
  // allocated: whole pages leave the cache and their blocks become preallocated (unwritten),
  // partial pages are zeroed and rewritten, in one commit with the inode record per at most
  // kZeroRangeChunkBlocks blocks, so a crash leaves each chunk zeroed and allocated or as it was.
  // The size does not change.
  Status ZeroRangeAllocated(AddressSpace* as, uint64_t offset, uint64_t len);
  static constexpr uint64_t kZeroRangeChunkBlocks = 65536;

  // ---- Writeback and durability ----
  // filemap_write_and_wait_range: writes back every page dirty in [start, end) (bytes; end
  // UINT64_MAX: to the end) and waits for it. Returns the first error of this writeback.
  Status WriteAndWait(AddressSpace* as, uint64_t start, uint64_t end);
  // The cursor a newly opened file starts from.
  FileErrCursor OpenCursor(AddressSpace* as);
  // fsync/fdatasync: WriteAndWait, then a store sync, then reports (once per cursor) any
  // writeback error since *cursor on this file or on the store as a whole, as a Status of that
  // error's code.
  Status Fsync(AddressSpace* as, FileErrCursor* cursor, uint64_t start = 0,
               uint64_t end = UINT64_MAX);
  // sync(2): writes back every dirty page of every file, waits, syncs the store.
  Status SyncAll();
  // Drops every page of `as` (writing dirty ones back first if write_back) and takes it off the
  // cache's lists; the space is then ready to be destroyed. Mappings must be gone.
  Status Evict(AddressSpace* as, bool write_back);

  // ---- Mappings (fs/mapping.h) ----
  // Maps npages pages of `as` from page index `first` into this process. Writes through the
  // mapping go through PageMkwrite.
  Status Map(AddressSpace* as, uint64_t first, size_t npages, std::unique_ptr<Mapping>* out);

  // Indexes of the pages of `as` in [first, end) whose data the store may not have yet, in order:
  // dirty pages, and pages under writeback (no longer dirty, not yet acknowledged).
  std::vector<uint64_t> UnstoredIndexes(AddressSpace* as, uint64_t first, uint64_t end);

  PageCacheCounters counters() const;
  const PageCacheOptions& options() const { return options_; }
  BlockStore* store() const { return store_; }
  size_t nr_pages_total() const { return nr_frames_; }
  size_t nr_dirty() const;
  size_t nr_writeback() const;

  // ---- Test hooks ----
  // Called by writeback after PI is generated for a batch and before it is submitted, with no
  // lock held: the deterministic point at which a test pauses writeback and writes.
  using WritebackHook = std::function<void(AddressSpace* as, uint64_t first_index, size_t n)>;
  void TEST_SetWritebackHook(WritebackHook hook);
  // Called when a thread starts to sleep in WaitOnPageWriteback (no lock held).
  void TEST_SetWaitHook(std::function<void(uint64_t index)> hook);
  // Called when a thread that would create page `index` waits for a punch or truncate removing
  // it (no lock held).
  void TEST_SetInvalidateWaitHook(std::function<void(uint64_t index)> hook);

 private:
  friend class AddressSpace;
  friend class Mapping;
  friend bool HandleMappingFault(char* addr);

  enum class SyncMode { kNone, kAll };  // WB_SYNC_NONE (skip busy), WB_SYNC_ALL (wait)

  PageCache(BlockStore* store, const PageCacheOptions& options);
  Status Init();

  // ---- Page state (mm/filemap.c) ----
  // A page's PG_* bits: the only way to them, so that -Wthread-safety sees every use under mu_.
  bool PageTest(const Page* page, uint32_t flags) const REQUIRES(mu_) {
    return (page->flags_ & flags) != 0;
  }
  void PageSet(Page* page, uint32_t flags) REQUIRES(mu_) { page->flags_ |= flags; }
  void PageClear(Page* page, uint32_t flags) REQUIRES(mu_) { page->flags_ &= ~flags; }
  // Sets the bits to exactly `flags` (a page taken from the free list, or freed).
  void PageReset(Page* page, uint32_t flags) REQUIRES(mu_) { page->flags_ = flags; }
  // For the debug check's report from a signal handler, about to abort: no lock can be taken.
  static bool PageTestUnlocked(const Page& page, uint32_t flags) NO_THREAD_SAFETY_ANALYSIS {
    return (page.flags_ & flags) != 0;
  }
  CondVar& WaitQueue(const Page* page);  // the hashed wait queue of a page
  void LockPage(Page* page) REQUIRES(mu_);
  bool TryLockPage(Page* page) REQUIRES(mu_);
  void UnlockPage(Page* page) REQUIRES(mu_);
  void GetPage(Page* page) REQUIRES(mu_);
  void PutPage(Page* page) REQUIRES(mu_);
  void MarkDirty(Page* page) REQUIRES(mu_);
  // folio_clear_dirty_for_io: clears PG_dirty and, if it was set, write-protects the page in
  // every mapping (PageMkclean), so that the next write through a mapping faults into
  // PageMkwrite and waits. Returns whether it was dirty. REQUIRES: the page is locked.
  bool ClearDirtyForIo(Page* page) REQUIRES(mu_);
  void StartWriteback(Page* page) REQUIRES(mu_);
  void EndWriteback(Page* page) REQUIRES(mu_);
  void WaitOnPageWriteback(Page* page) REQUIRES(mu_);
  // folio_wait_stable: waits on writeback under the wait policy only.
  void WaitStable(Page* page) REQUIRES(mu_);
  // Write-protects the page in every mapping that maps it writable (page_mkclean). The mprotect
  // calls run under mu_, which guards the mappings' page tables (Mapping::writable_).
  void PageMkclean(Page* page) REQUIRES(mu_);
  // Removes a page from its mapping's index and lists; frees it if nobody holds it.
  void DeletePageFromCache(Page* page) REQUIRES(mu_);

  // Finds and gets the page at index, or null.
  Page* FindGetPage(AddressSpace* as, uint64_t index) REQUIRES(mu_);
  // Finds and gets the page at index, or inserts a new, locked, not uptodate page. Waits for a
  // free frame if there is none. *created says which.
  Status GrabPage(AddressSpace* as, uint64_t index, Page** page, bool* created) REQUIRES(mu_);
  // grab_cache_page: the page at index, referenced and locked and still in `as` (a page truncate
  // took while this thread waited for its lock is let go and looked up again), or a new, locked,
  // not uptodate page (*created). The one way every path finds a page to lock.
  Status GrabCachePage(AddressSpace* as, uint64_t index, Page** page, bool* created) REQUIRES(mu_);
  Page* AllocFrame() REQUIRES(mu_);
  // Fills locked, not uptodate pages from the store; consecutive pages go in one read. On error
  // the pages are marked PG_error; nothing is logged (read-ahead failures harm nobody).
  Status FillPages(AddressSpace* as, Page* const* pages, size_t n) EXCLUDES(mu_);
  // Logs and counts a read error that is being returned to a caller (guarantee 2's log line:
  // the status names inode, offset, field, expected and received). Returns s.
  Status ReportReadError(AddressSpace* as, const Status& s) EXCLUDES(mu_);
  // Gets the page at index, uptodate (filled from the store or zeroed), locked.
  Status GetLockedUptodatePage(AddressSpace* as, uint64_t index, Page** page) EXCLUDES(mu_);
  // write_begin: the page that the write of len bytes at pos (within one page) goes to, locked,
  // stable (under the wait policy, not under writeback), and filled from the store or zeroed
  // past EOF unless the write covers it whole. The caller copies into it, then calls WriteEnd.
  Status WriteBegin(AddressSpace* as, uint64_t pos, size_t len, Page** page) EXCLUDES(mu_);
  // write_end: marks the page uptodate and dirty, grows i_size over what was copied, unlocks
  // and puts the page.
  void WriteEnd(AddressSpace* as, uint64_t pos, size_t copied, Page* page) EXCLUDES(mu_);

  // ---- Writeback (mm/page-writeback.c) ----
  // Writes back dirty pages of as with index in [first, last]. mode kNone skips a busy inode and
  // locked pages. Returns the first error.
  Status WritebackInode(AddressSpace* as, uint64_t first, uint64_t last, SyncMode mode)
      EXCLUDES(mu_);
  // Writes one batch of pages, locked, referenced and uptodate on entry, sorted by index; unlocks
  // and puts them. `extra` (may be null) holds other updates to commit with them; blocks_delta
  // adjusts the block count for them. Releases mu_ while PI is generated and the store writes.
  // Writes `batch` with the inode record carrying `disk_size` and `blocks` (through the owner;
  // without one, the batch alone) and, when the store has taken it, installs the two in `as`.
  // REQUIRES: I_SYNC of `as` (no other commit of it runs).
  Status CommitInode(AddressSpace* as, uint64_t disk_size, uint64_t blocks, WriteBatch* batch)
      EXCLUDES(mu_);
  Status WritebackBatch(AddressSpace* as, std::vector<Page*>& pages, WriteBatch* extra,
                        uint64_t new_disk_size, int64_t blocks_delta) REQUIRES(mu_);
  void AcquireInodeSync(AddressSpace* as) REQUIRES(mu_);
  void ReleaseInodeSync(AddressSpace* as) REQUIRES(mu_);
  void BalanceDirtyPages() EXCLUDES(mu_);
  void FlusherLoop();
  bool OverBackgroundThreshold() const REQUIRES(mu_);
  // Makes [start, end) zeros: whole pages leave the cache and their blocks the store (with
  // allocate, they stay as preallocated blocks, and so do partial blocks that are holes), partial
  // pages are zeroed and rewritten, all in one commit with the inode record carrying
  // new_disk_size. If that commit fails, the range's pages are out of the cache (the partial
  // ones too, though zeroed): reads see again what the store kept. REQUIRES: I_SYNC held.
  Status ZeroRange(AddressSpace* as, uint64_t start, uint64_t end, uint64_t new_disk_size,
                   bool allocate = false) REQUIRES(mu_);

  // ---- Mappings ----
  // The write fault handler's entry: returns false if the access must be a SIGBUS.
  bool PageMkwrite(Mapping* m, size_t i);
  // Unmaps pages with index >= first from every mapping of as (unmap_mapping_range).
  void ZapMappings(AddressSpace* as, uint64_t first, uint64_t last) REQUIRES(mu_);
  void Unmap(Mapping* m);

  BlockStore* const store_;
  const PageCacheOptions options_;
  size_t nr_frames_ = 0;
  int memfd_ = -1;
  char* pool_ = nullptr;  // the direct map of every frame

  mutable Mutex mu_;
  std::vector<Page> pages_ GUARDED_BY(mu_);  // one descriptor per frame
  PageList free_ GUARDED_BY(mu_);
  PageList lru_ GUARDED_BY(mu_);  // cached, clean, unreferenced: the eviction order
  bi::list<AddressSpace, bi::member_hook<AddressSpace, bi::list_member_hook<NormalLink>,
                                         &AddressSpace::dirty_inode_hook_>>
      dirty_inodes_ GUARDED_BY(mu_);  // b_dirty, oldest first
  size_t nr_dirty_ GUARDED_BY(mu_) = 0;
  size_t nr_writeback_ GUARDED_BY(mu_) = 0;
  PageCacheCounters counters_ GUARDED_BY(mu_);
  ErrSeq store_err_;  // sync failures of the store: reported to every open file

  static constexpr size_t kWaitTableSize = 64;
  std::vector<std::unique_ptr<CondVar>> wait_table_;  // hashed page wait queues, bound to mu_
  CondVar free_cv_;                                   // a frame became free or evictable
  CondVar throttle_cv_;                               // dirty + writeback pages went down
  CondVar flusher_cv_;                                // work for the flusher
  CondVar inode_cv_;  // I_SYNC released, an AddressSpace unpinned, or an invalidate range ended
  bool stop_ GUARDED_BY(mu_) = false;
  bool flusher_kicked_ GUARDED_BY(mu_) = false;
  std::thread flusher_;

  WritebackHook writeback_hook_ GUARDED_BY(mu_);
  std::function<void(uint64_t)> wait_hook_ GUARDED_BY(mu_);
  std::function<void(uint64_t)> invalidate_wait_hook_ GUARDED_BY(mu_);
};

}  // namespace stablefs
