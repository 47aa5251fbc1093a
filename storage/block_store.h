// BlockStore: the one interface to everything stablefs persists, and the verifying target.
//
// A BlockStore holds the records of storage/format.h in nine key spaces (Space, storage/format.h)
// and the data blocks with their PI tuples. It behaves as a DIF-capable disk does (guarantee 2):
// Write() checks every data block's tuples against its data before anything is persisted and
// rejects the whole batch with a Protection status on a mismatch; ReadBlocks() verifies again after
// loading. Both failures are counted and their messages name inode, file offset, field, expected
// and received.
//
// Atomicity and durability (guarantee 3) are explicit: one Write() of a WriteBatch is applied all
// or nothing; nothing is durable until a Write() with sync=true or a Sync() that started after it
// returned. Holes are absent blocks and read as zeros.
//
// The public methods are implemented once, here, over a small raw interface (Do*) that each
// store implements without any PI knowledge: RocksBlockStore (the real one), MemBlockStore (tests)
// and FaultBlockStore, which wraps another store's raw interface to inject errors, bit flips and
// lost unsynced writes below the checks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/format.h"
#include "storage/pi.h"
#include "storage/status.h"

namespace stablefs {

// A set of updates applied atomically by BlockStore::Write().
class WriteBatch {
 public:
  enum class OpKind : uint8_t { kPut, kDelete, kDeleteRange, kPutBlock, kDeleteBlocks };
  struct Op {
    OpKind kind = OpKind::kPut;
    Space space = Space::kMeta;
    std::string key;               // kPut, kDelete; begin of kDeleteRange
    std::string value;             // kPut; end of kDeleteRange
    uint64_t ino = 0;              // kPutBlock, kDeleteBlocks
    uint64_t index = 0;            // kPutBlock; first of kDeleteBlocks
    uint64_t end = 0;              // kDeleteBlocks: one past the last index
    const char* data = nullptr;    // kPutBlock: kBlockSize bytes
    const char* tuples = nullptr;  // kPutBlock: TupleBytesPerBlock() bytes
    bool owned = false;            // kPutBlock: data and tuples belong to the batch
  };

  // A record in a metadata space (not kData). Key and value are copied.
  void Put(Space s, std::string_view key, std::string_view value);
  void Delete(Space s, std::string_view key);
  // Removes every record of space s with begin <= key < end (kData too: raw block keys).
  void DeleteRange(Space s, std::string_view begin, std::string_view end);

  // Data block `index` of inode `ino` with its tuples. Not copied: `data` and `tuples` must stay
  // allocated and unchanged until Write() returns (they are pages under writeback, or bounce
  // buffers). Write() verifies them unless WriteOptions::verify_pi is false.
  void PutBlock(uint64_t ino, uint64_t index, const void* data, const void* tuples);
  // As PutBlock, but the batch keeps its own copy.
  void PutBlockCopy(uint64_t ino, uint64_t index, const void* data, const void* tuples,
                    size_t tuple_bytes);
  // Removes blocks [first, end) of inode ino; they become holes.
  void DeleteBlocks(uint64_t ino, uint64_t first, uint64_t end);
  // Adds `other`'s operations after this batch's, in order. Blocks are not copied: `other` and
  // the data its blocks point to must outlive this batch's Write().
  void Append(const WriteBatch& other);

  // Makes this batch a copy of `src` in which every block's data and tuples are owned by the
  // batch, in one allocation: the blocks' data one after another in batch order, then their
  // tuples. With `check`, each block's copy is handed to it as soon as it is made (still in the
  // CPU's cache); the first failure stops the copy and is returned.
  Status StableCopyOf(const WriteBatch& src, size_t tuple_bytes,
                      const std::function<Status(const Op&)>& check = nullptr);

  const std::vector<Op>& ops() const { return ops_; }
  size_t Count() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }
  void Clear();

 private:
  std::vector<Op> ops_;
  std::vector<std::unique_ptr<char[]>> owned_;  // PutBlockCopy buffers
};

// What a new store starts with.
struct CreateOptions {
  // Protection format, type and interval. Default: pi::Profile's defaults (crc64-nvme, type 1,
  // 4096-byte intervals).
  pi::Profile pi;
  // Owner and permission bits of the root directory. Default: 0, 0, 0755.
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  uint32_t root_mode = 0755;
  // Recorded in the superblock as given (the mkfs command line's options). Default: empty.
  std::string creation_options;
  // 2: runs of blocks may go to segment files, written once (storage/segments.h); 1: every block
  // lies in the `data` family, as stores made before version 2 existed. Default: 2.
  uint32_t format_version = kFormatVersion;

  // InvalidArgument naming the field if any holds a value this build cannot create.
  Status Validate() const;
};

// What a raw read found at one block index, from one consistent view of the store.
enum class BlockState : uint8_t {
  kHole,     // in neither the data nor the block map
  kPresent,  // in the data (data and tuples were loaded)
  kLost,     // in the block map but not in the data: a lost block
};

struct WriteOptions {
  // Make the batch durable (a WAL sync) before returning. Default: false.
  bool sync = false;
  // Check every PutBlock's tuples against its data before writing. Default: true. Only damage
  // injection (stablefsctl corrupt, tests, the fault store's crash rollback) turns it off.
  bool verify_pi = true;
};

// A copy of a store's counters. All count since the store was opened.
struct StoreCounters {
  uint64_t batches_written = 0;
  uint64_t blocks_written = 0;
  uint64_t blocks_read = 0;              // blocks loaded and verified; holes are not counted
  uint64_t syncs = 0;                    // Sync() calls and sync writes
  uint64_t protection_errors_write = 0;  // batches rejected by Write()'s check
  uint64_t protection_errors_read = 0;   // blocks that failed ReadBlocks()' check
};

class BlockStore {
 public:
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;
  virtual ~BlockStore();

  const Superblock& superblock() const { return superblock_; }
  const pi::Profile& profile() const { return superblock_.pi; }
  size_t tuple_bytes_per_block() const { return TupleBytesPerBlock(profile()); }

  // ---- Space ----
  // Bytes of the store's file system that the filesystem must leave free for the store's own
  // work: memtables waiting to be flushed, compactions, and the records of deletions (which must
  // succeed on a full disk, or no space could be freed). Writes of new data get ENOSPC before
  // free space falls below it. 0 for a store that keeps nothing on disk.
  virtual uint64_t reserved_bytes() const { return 0; }
  // Asks the store to give back the disk space of inode ino's deleted blocks now, rather than at
  // a later compaction (called when space is short). Default: nothing to do.
  virtual Status ReclaimBlocks(uint64_t ino) { return Status::Ok(); }
  // Gives the disk space of everything deleted back to the store's file system now, rather than
  // at later compactions (FITRIM: fstrim). Default: nothing to do.
  virtual Status Trim() { return Status::Ok(); }
  // Checks the store's own files against their own checksums (every table and blob file of a
  // RocksDB store), for fsck: Corruption naming the first damaged one. Default: nothing to check.
  virtual Status VerifyFiles() { return Status::Ok(); }

  // ---- Records ----
  // NotFound if the key is absent. In kData this returns the raw value (data || tuples),
  // unverified.
  Status Get(Space s, std::string_view key, std::string* value);
  // Calls fn(key, value) for every record with begin <= key < end in key order (an empty `end`
  // means to the end of the space) until fn returns false. Raw, unverified in kData.
  Status Scan(Space s, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view key, std::string_view value)>& fn);

  // ---- Data ----
  // Reads blocks [first, first + n) of inode ino into `data` (n * kBlockSize bytes) and verifies
  // each against its tuples. present[i] (if present is not null) says whether block first + i
  // exists; an absent block reads as zeros. On a mismatch returns Protection, naming inode,
  // offset, field, expected and received, and counts it; a block in the block map but missing
  // from the data is Corruption, counted the same way. On either failure `data` is zeroed.
  Status ReadBlocks(uint64_t ino, uint64_t first, size_t n, char* data, bool* present = nullptr);
  // As ReadBlocks, with block first + i read into blocks[i] (kBlockSize bytes each): the page
  // cache fills frames that are not contiguous.
  Status ReadBlocksV(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                     bool* present = nullptr);
  // Calls fn(index) for each block of ino in [first, end) that exists, in order, from the block
  // map (cheap: no data is read), until fn returns false. end == UINT64_MAX: to the last block.
  // Preallocated, unwritten blocks (kBlockMapUnwritten) exist and are allocated, but hold no
  // data: with written_only they are skipped (SEEK_DATA, blocks past EOF).
  Status ScanBlockMap(uint64_t ino, uint64_t first, uint64_t end,
                      const std::function<bool(uint64_t index)>& fn, bool written_only = false);
  // The number of blocks of ino in [first, end) that exist.
  Status CountBlocks(uint64_t ino, uint64_t first, uint64_t end, uint64_t* count,
                     bool written_only = false);
  // Stages block-map entries marking each absent block of ino in [first, end) preallocated
  // (kBlockMapUnwritten); *added counts them. At most `limit` are staged: *next is where to go on
  // (end when done).
  Status StagePreallocate(uint64_t ino, uint64_t first, uint64_t end, uint64_t limit,
                          WriteBatch* batch, uint64_t* added, uint64_t* next);
  // Stages block-map entries marking every block of ino in [first, end) preallocated, whatever
  // the store holds now: after a removal of those blocks staged earlier in the same batch, they
  // become allocated zeros (fallocate's ZERO_RANGE).
  void StageUnwritten(uint64_t ino, uint64_t first, uint64_t end, WriteBatch* batch);
  // Stages into *batch the removal of blocks [first, end) of ino and counts those that exist
  // (*removed). Up to kPointDeleteLimit existing blocks are deleted one key at a time; more take
  // one range deletion. RocksDB 7.8 re-fragments every range tombstone in a memtable on each read
  // from it, so a range deletion per truncate would make reads slower with every truncate.
  static constexpr uint64_t kPointDeleteLimit = 4096;
  Status StageDeleteBlocks(uint64_t ino, uint64_t first, uint64_t end, WriteBatch* batch,
                           uint64_t* removed);
  // As above for the records of one space in [begin, end) (xattrs, directory entries).
  Status StageDeleteRange(Space s, std::string_view begin, std::string_view end, WriteBatch* batch);

  // One block's stored data and tuples, unverified (inspect, fsck, scrub). NotFound for a hole.
  Status ReadBlockRaw(uint64_t ino, uint64_t index, std::string* data, std::string* tuples);
  // Whether block `index` of ino is present, a hole or lost, judged from one consistent view of
  // data and block map (a scrub's second look at a block-map entry its data scan did not see).
  Status StateOfBlock(uint64_t ino, uint64_t index, BlockState* state);

  // Applies the batch atomically. With verify_pi, every PutBlock is checked first and a mismatch
  // rejects the whole batch (nothing is written) with Protection.
  Status Write(const WriteBatch& batch, const WriteOptions& options = WriteOptions());
  // Makes every Write() that returned before this call durable.
  Status Sync();

  // ---- Shutdown (the filesystem's shutdown ioctl) ----
  // From now on every Write and Sync fails with IOError and changes nothing on disk; reads still
  // work, and a Write already past this check completes, as I/O in flight does on a device.
  // There is no way back for this open store: close it and open it again.
  void ShutDown() { shut_down_.store(true, std::memory_order_release); }
  bool is_shut_down() const { return shut_down_.load(std::memory_order_acquire); }
  // A store opened read-only (RocksOptions::read_only): every Write and Sync is ReadOnly.
  bool read_only() const { return read_only_; }

  // ---- PI of this store's blocks ----
  // The tuples of block `index` of inode ino holding `data`: reference tags from the block's
  // sectors, application tag from the inode (pi::AppTagForOwner).
  void GenerateBlockPi(uint64_t ino, uint64_t index, const void* data, void* tuples) const;
  // Ok, or Protection naming inode, offset, field, expected and received.
  Status VerifyBlockPi(uint64_t ino, uint64_t index, const void* data, const void* tuples) const;
  // As VerifyBlockPi, for callers that report the mismatch field by field (scrub): true if the
  // block passes, else false with *m describing its first failing interval.
  bool CheckBlockPi(uint64_t ino, uint64_t index, const void* data, const void* tuples,
                    pi::Mismatch* m) const;

  StoreCounters counters() const;

 protected:
  BlockStore() = default;

  // The raw interface. Implementations need no PI knowledge and must be thread-safe. DoWrite
  // maintains the block map: kPutBlock also puts the block's key in kBlockMap, kDeleteBlocks
  // also deletes the range from it.
  virtual Status DoGet(Space s, std::string_view key, std::string* value) = 0;
  virtual Status DoScan(Space s, std::string_view begin, std::string_view end,
                        const std::function<bool(std::string_view, std::string_view)>& fn) = 0;
  // Loads the raw values of blocks [first, first + n): for each present block, kBlockSize bytes to
  // blocks[i] and its tuples to tuples + i * tuple_bytes; others get zeros. state[i]
  // says which, judged from one consistent view of data and block map, so that a concurrent write
  // or delete is never mistaken for a lost block. Corruption if a stored value has the wrong size.
  virtual Status DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                              char* tuples, BlockState* state) = 0;
  virtual Status DoWrite(const WriteBatch& batch, bool sync) = 0;
  virtual Status DoSync() = 0;

  // Writes the records of a new, empty filesystem (superblock, inode counter, root directory)
  // and syncs. Sets superblock_. Called by implementations' Create().
  Status InitializeNewStore(const CreateOptions& options);

  // Set once by the implementation when the store is opened or created.
  Superblock superblock_;
  bool read_only_ = false;

 private:
  friend class FaultBlockStore;
  friend class ReadOnlyView;

  std::atomic<bool> shut_down_{false};
  std::atomic<uint64_t> batches_written_{0};
  std::atomic<uint64_t> blocks_written_{0};
  std::atomic<uint64_t> blocks_read_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> protection_errors_write_{0};
  std::atomic<uint64_t> protection_errors_read_{0};
};

}  // namespace stablefs
