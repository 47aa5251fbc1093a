// BlockStore's public operations: PI checks on write and after read, counters, range zeroing.
// Each implementation supplies only the raw Do* interface; the checks live here, once.
#include "storage/block_store.h"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

namespace stablefs {

namespace {
// Tuples of up to this many bytes are staged on the stack in ReadBlocks.
constexpr size_t kStackTupleBytes = 4096;
}  // namespace

// ---- WriteBatch ----

void WriteBatch::Put(Space s, std::string_view key, std::string_view value) {
  Op op;
  op.kind = OpKind::kPut;
  op.space = s;
  op.key = key;
  op.value = value;
  ops_.push_back(std::move(op));
}

void WriteBatch::Delete(Space s, std::string_view key) {
  Op op;
  op.kind = OpKind::kDelete;
  op.space = s;
  op.key = key;
  ops_.push_back(std::move(op));
}

void WriteBatch::DeleteRange(Space s, std::string_view begin, std::string_view end) {
  Op op;
  op.kind = OpKind::kDeleteRange;
  op.space = s;
  op.key = begin;
  op.value = end;
  ops_.push_back(std::move(op));
}

void WriteBatch::PutBlock(uint64_t ino, uint64_t index, const void* data, const void* tuples) {
  Op op;
  op.kind = OpKind::kPutBlock;
  op.space = Space::kData;
  op.ino = ino;
  op.index = index;
  op.data = static_cast<const char*>(data);
  op.tuples = static_cast<const char*>(tuples);
  ops_.push_back(std::move(op));
}

void WriteBatch::PutBlockCopy(uint64_t ino, uint64_t index, const void* data, const void* tuples,
                              size_t tuple_bytes) {
  auto buf = std::make_unique<char[]>(kBlockSize + tuple_bytes);
  std::memcpy(buf.get(), data, kBlockSize);
  std::memcpy(buf.get() + kBlockSize, tuples, tuple_bytes);
  PutBlock(ino, index, buf.get(), buf.get() + kBlockSize);
  ops_.back().owned = true;
  owned_.push_back(std::move(buf));
}

void WriteBatch::DeleteBlocks(uint64_t ino, uint64_t first, uint64_t end) {
  Op op;
  op.kind = OpKind::kDeleteBlocks;
  op.space = Space::kData;
  op.ino = ino;
  op.index = first;
  op.end = end;
  ops_.push_back(std::move(op));
}

void WriteBatch::Append(const WriteBatch& other) {
  ops_.reserve(ops_.size() + other.ops_.size());
  for (Op op : other.ops_) {
    op.owned = false;  // other's buffers stay other's
    ops_.push_back(std::move(op));
  }
}

Status WriteBatch::StableCopyOf(const WriteBatch& src, size_t tuple_bytes,
                                const std::function<Status(const Op&)>& check) {
  Clear();
  size_t blocks = 0;
  for (const Op& op : src.ops_) blocks += op.kind == OpKind::kPutBlock;
  // Every block's data, one after another in batch order, then every block's tuples: a run of
  // consecutive blocks goes to a segment file in one write.
  auto arena = std::make_unique<char[]>(blocks * (kBlockSize + tuple_bytes));
  char* next_data = arena.get();
  char* next_tuples = arena.get() + blocks * kBlockSize;
  ops_.reserve(src.ops_.size());
  for (const Op& op : src.ops_) {
    ops_.push_back(op);
    if (op.kind != OpKind::kPutBlock) continue;
    std::memcpy(next_data, op.data, kBlockSize);
    std::memcpy(next_tuples, op.tuples, tuple_bytes);
    ops_.back().data = next_data;
    ops_.back().tuples = next_tuples;
    ops_.back().owned = true;
    next_data += kBlockSize;
    next_tuples += tuple_bytes;
    if (check) {
      Status s = check(ops_.back());
      if (!s.ok()) {
        owned_.push_back(std::move(arena));
        return s;
      }
    }
  }
  owned_.push_back(std::move(arena));
  return Status::Ok();
}

void WriteBatch::Clear() {
  ops_.clear();
  owned_.clear();
}

// ---- BlockStore ----

BlockStore::~BlockStore() = default;

Status BlockStore::Get(Space s, std::string_view key, std::string* value) {
  return DoGet(s, key, value);
}

Status BlockStore::Scan(Space s, std::string_view begin, std::string_view end,
                        const std::function<bool(std::string_view, std::string_view)>& fn) {
  return DoScan(s, begin, end, fn);
}

void BlockStore::GenerateBlockPi(uint64_t ino, uint64_t index, const void* data,
                                 void* tuples) const {
  const pi::Profile& p = profile();
  pi::Generate(p, data, kBlockSize, FirstSectorOfBlock(p, index), pi::AppTagForOwner(ino), tuples);
}

bool BlockStore::CheckBlockPi(uint64_t ino, uint64_t index, const void* data, const void* tuples,
                              pi::Mismatch* m) const {
  const pi::Profile& p = profile();
  return pi::Verify(p, data, kBlockSize, tuples, FirstSectorOfBlock(p, index),
                    pi::AppTagForOwner(ino), m);
}

Status BlockStore::VerifyBlockPi(uint64_t ino, uint64_t index, const void* data,
                                 const void* tuples) const {
  pi::Mismatch m;
  if (CheckBlockPi(ino, index, data, tuples, &m)) return Status::Ok();
  return Status::Protection(pi::DescribeMismatch(profile(), ino, index * kBlockSize, m));
}

Status BlockStore::ReadBlocks(uint64_t ino, uint64_t first, size_t n, char* data, bool* present) {
  constexpr size_t kStackBlocks = 64;
  char* stack_ptrs[kStackBlocks];
  std::unique_ptr<char*[]> heap_ptrs;
  char** blocks = stack_ptrs;
  if (n > kStackBlocks) {
    heap_ptrs = std::make_unique<char*[]>(n);
    blocks = heap_ptrs.get();
  }
  for (size_t i = 0; i < n; i++) blocks[i] = data + i * kBlockSize;
  return ReadBlocksV(ino, first, n, blocks, present);
}

Status BlockStore::ReadBlocksV(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                               bool* present) {
  if (n == 0) return Status::Ok();
  const size_t tb = tuple_bytes_per_block();
  char stack_tuples[kStackTupleBytes];
  BlockState stack_state[kStackTupleBytes / 16];
  std::unique_ptr<char[]> heap_tuples;
  std::unique_ptr<BlockState[]> heap_state;
  char* tuples = stack_tuples;
  BlockState* state = stack_state;
  if (n * tb > sizeof(stack_tuples) || n > std::size(stack_state)) {
    heap_tuples = std::make_unique<char[]>(n * tb);
    heap_state = std::make_unique<BlockState[]>(n);
    tuples = heap_tuples.get();
    state = heap_state.get();
  }
  Status s = DoReadBlocks(ino, first, n, blocks, tuples, state);
  for (size_t i = 0; s.ok() && i < n; i++) {
    if (present != nullptr) present[i] = state[i] == BlockState::kPresent;
    if (state[i] == BlockState::kLost) {
      s = Status::Corruption("inode " + std::to_string(ino) + " offset " +
                             std::to_string((first + i) * kBlockSize) +
                             ": block missing: expected in the store (block map), received none");
    } else if (state[i] == BlockState::kPresent) {
      s = VerifyBlockPi(ino, first + i, blocks[i], tuples + i * tb);
      if (s.ok()) blocks_read_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!s.ok()) protection_errors_read_.fetch_add(1, std::memory_order_relaxed);
  }
  // No caller may see bytes that failed verification, even by mistake.
  if (!s.ok()) {
    for (size_t i = 0; i < n; i++) std::memset(blocks[i], 0, kBlockSize);
  }
  return s;
}

Status BlockStore::ReadBlockRaw(uint64_t ino, uint64_t index, std::string* data,
                                std::string* tuples) {
  data->resize(kBlockSize);
  tuples->resize(tuple_bytes_per_block());
  BlockState state;
  char* block = data->data();
  STABLEFS_RETURN_IF_ERROR(DoReadBlocks(ino, index, 1, &block, tuples->data(), &state));
  if (state != BlockState::kPresent) {
    return Status::NotFound("inode " + std::to_string(ino) + " block " + std::to_string(index) +
                            (state == BlockState::kLost ? " is missing" : " is a hole"));
  }
  return Status::Ok();
}

Status BlockStore::StateOfBlock(uint64_t ino, uint64_t index, BlockState* state) {
  std::string data(kBlockSize, '\0'), tuples(tuple_bytes_per_block(), '\0');
  char* block = data.data();
  return DoReadBlocks(ino, index, 1, &block, tuples.data(), state);
}

Status BlockStore::ScanBlockMap(uint64_t ino, uint64_t first, uint64_t end,
                                const std::function<bool(uint64_t)>& fn, bool written_only) {
  Status parse = Status::Ok();
  Status s = DoScan(
      Space::kBlockMap, DataKey(ino, first), DataKeyRangeEnd(ino, end),
      [&](std::string_view key, std::string_view value) {
        uint64_t kino, index;
        if (!ParseDataKey(key, &kino, &index) || kino != ino) {
          parse = Status::Corruption("malformed block map key under inode " + std::to_string(ino));
          return false;
        }
        if (written_only && value == kBlockMapUnwritten) return true;
        return fn(index);
      });
  return s.ok() ? parse : s;
}

Status BlockStore::CountBlocks(uint64_t ino, uint64_t first, uint64_t end, uint64_t* count,
                               bool written_only) {
  *count = 0;
  return ScanBlockMap(
      ino, first, end,
      [&](uint64_t) {
        ++*count;
        return true;
      },
      written_only);
}

Status BlockStore::StagePreallocate(uint64_t ino, uint64_t first, uint64_t end, uint64_t limit,
                                    WriteBatch* batch, uint64_t* added, uint64_t* next) {
  *added = 0;
  uint64_t at = first;
  auto fill_to = [&](uint64_t stop) {
    while (at < stop && *added < limit) {
      batch->Put(Space::kBlockMap, DataKey(ino, at), kBlockMapUnwritten);
      ++*added;
      ++at;
    }
  };
  STABLEFS_RETURN_IF_ERROR(ScanBlockMap(ino, first, end, [&](uint64_t index) {
    fill_to(index);
    if (*added >= limit) return false;
    at = index + 1;  // present already, written or not
    return true;
  }));
  fill_to(end);
  *next = at;
  return Status::Ok();
}

void BlockStore::StageUnwritten(uint64_t ino, uint64_t first, uint64_t end, WriteBatch* batch) {
  for (uint64_t at = first; at < end; at++) {
    batch->Put(Space::kBlockMap, DataKey(ino, at), kBlockMapUnwritten);
  }
}

Status BlockStore::StageDeleteBlocks(uint64_t ino, uint64_t first, uint64_t end, WriteBatch* batch,
                                     uint64_t* removed) {
  std::vector<uint64_t> found;
  uint64_t count = 0;
  STABLEFS_RETURN_IF_ERROR(ScanBlockMap(ino, first, end, [&](uint64_t index) {
    if (++count <= kPointDeleteLimit) found.push_back(index);
    return true;
  }));
  *removed = count;
  if (count > kPointDeleteLimit) {
    batch->DeleteBlocks(ino, first, end);
    return Status::Ok();
  }
  for (uint64_t index : found) {
    const std::string key = DataKey(ino, index);
    batch->Delete(Space::kData, key);
    batch->Delete(Space::kBlockMap, key);
  }
  return Status::Ok();
}

Status BlockStore::StageDeleteRange(Space s, std::string_view begin, std::string_view end,
                                    WriteBatch* batch) {
  std::vector<std::string> keys;
  bool many = false;
  STABLEFS_RETURN_IF_ERROR(DoScan(s, begin, end, [&](std::string_view key, std::string_view) {
    if (keys.size() >= kPointDeleteLimit) {
      many = true;
      return false;
    }
    keys.emplace_back(key);
    return true;
  }));
  if (many) {
    batch->DeleteRange(s, begin, end);
    return Status::Ok();
  }
  for (const std::string& k : keys) batch->Delete(s, k);
  return Status::Ok();
}

Status BlockStore::Write(const WriteBatch& batch, const WriteOptions& options) {
  if (is_shut_down()) return Status::IOError("the store is shut down");
  if (read_only_) return Status::ReadOnly("the store is open read-only");
  uint64_t blocks = 0;
  bool borrowed = false;
  for (const WriteBatch::Op& op : batch.ops()) {
    if (op.kind == WriteBatch::OpKind::kPut && op.space == Space::kData) {
      return Status::InvalidArgument("data blocks are written with PutBlock, not Put");
    }
    if (op.kind != WriteBatch::OpKind::kPutBlock) continue;
    blocks++;
    borrowed |= !op.owned;
  }
  // The store checks what it persists. A buffer the caller can still change (a page under
  // writeback with stable pages off) is copied first; the copy is checked and written, so a
  // scribble after the check cannot reach the store unverified.
  // Each block is checked right after its copy, while the copy is still in the CPU's cache.
  const WriteBatch* to_write = &batch;
  WriteBatch stable;
  auto verify = [this](const WriteBatch::Op& op) {
    return VerifyBlockPi(op.ino, op.index, op.data, op.tuples);
  };
  Status checked;
  if (options.verify_pi && borrowed) {
    checked = stable.StableCopyOf(batch, tuple_bytes_per_block(), verify);
    to_write = &stable;
  } else if (options.verify_pi) {
    for (const WriteBatch::Op& op : to_write->ops()) {
      if (op.kind != WriteBatch::OpKind::kPutBlock) continue;
      checked = verify(op);
      if (!checked.ok()) break;
    }
  }
  if (!checked.ok()) {
    protection_errors_write_.fetch_add(1, std::memory_order_relaxed);
    return checked.WithContext("write rejected");
  }
  STABLEFS_RETURN_IF_ERROR(DoWrite(*to_write, options.sync));
  batches_written_.fetch_add(1, std::memory_order_relaxed);
  blocks_written_.fetch_add(blocks, std::memory_order_relaxed);
  if (options.sync) syncs_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Status BlockStore::Sync() {
  if (is_shut_down()) return Status::IOError("the store is shut down");
  if (read_only_) return Status::Ok();  // nothing was written
  STABLEFS_RETURN_IF_ERROR(DoSync());
  syncs_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Status CreateOptions::Validate() const {
  STABLEFS_RETURN_IF_ERROR(pi.Validate());
  if (format_version < kOldestFormatVersion || format_version > kFormatVersion) {
    return Status::InvalidArgument(
        "format version " + std::to_string(format_version) + "; this stablefs writes versions " +
        std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion));
  }
  return Status::Ok();
}

Status BlockStore::InitializeNewStore(const CreateOptions& options) {
  STABLEFS_RETURN_IF_ERROR(options.Validate());
  Superblock sb;
  sb.format_version = options.format_version;
  sb.pi = options.pi;
  std::random_device rd;
  for (size_t i = 0; i < sb.uuid.size(); i += 4) {
    uint32_t r = rd();
    std::memcpy(&sb.uuid[i], &r, 4);
  }
  sb.uuid[6] = (sb.uuid[6] & 0x0F) | 0x40;  // RFC 4122 version 4
  sb.uuid[8] = (sb.uuid[8] & 0x3F) | 0x80;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  sb.created_sec = now.tv_sec;
  sb.creation_options = options.creation_options;

  InodeRecord root;
  root.mode = S_IFDIR | (options.root_mode & 07777);
  root.uid = options.root_uid;
  root.gid = options.root_gid;
  root.nlink = 2;
  root.generation = 1;
  root.next_cookie = kFirstDirCookie;
  root.atime = root.mtime = root.ctime = root.btime =
      Timespec{now.tv_sec, static_cast<uint32_t>(now.tv_nsec)};

  std::string sb_value, counter, root_value;
  sb.EncodeTo(&sb_value);
  EncodeCounter(&counter, kFirstFreeIno);
  root.EncodeTo(&root_value);
  WriteBatch batch;
  batch.Put(Space::kMeta, kSuperblockKey, sb_value);
  batch.Put(Space::kMeta, kNextInoKey, counter);
  batch.Put(Space::kInode, InodeKey(kRootIno), root_value);
  superblock_ = sb;
  return Write(batch, WriteOptions{.sync = true});
}

StoreCounters BlockStore::counters() const {
  StoreCounters c;
  c.batches_written = batches_written_.load(std::memory_order_relaxed);
  c.blocks_written = blocks_written_.load(std::memory_order_relaxed);
  c.blocks_read = blocks_read_.load(std::memory_order_relaxed);
  c.syncs = syncs_.load(std::memory_order_relaxed);
  c.protection_errors_write = protection_errors_write_.load(std::memory_order_relaxed);
  c.protection_errors_read = protection_errors_read_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace stablefs
