// The one check of a store's data at rest, shared by fsck.stablefs, stablefsctl scrub and
// stablefsctl verify: each data record against its tuples, each block-map entry against the data.
// The callers differ only in what they do with a finding (fsck lists it and may repair around it,
// scrub keeps it for its report, verify prints it), never in what they call damage.
//
// The rules, in one place:
//   - a data record whose key is malformed, whose value cannot be read (an empty value: the
//     store's own checksum of the table block or blob file failed) or whose value has the wrong
//     length is damage; so is a record whose tuples do not match its data and place;
//   - a block-map entry whose value is empty says "the block is in the data"; if the data has no
//     record for it the block is lost (kMissing);
//   - a block-map entry whose value is kBlockMapUnwritten is a preallocated block: no data record
//     by design, never missing (told to the sink as Unwritten);
//   - any other block-map value, or a malformed block-map key, is damage.
//
// Consistency with writers: the data of a range is read by one store iterator (in RocksDB one
// sequence number), then the block map of the same key range; an entry whose block the data scan
// did not see is looked at again (BlockStore::StateOfBlock) before it is called lost, because its
// block may have been written after the data was read. A block deleted meanwhile is no finding
// either. So a scrub of a mounted store gives no false alarm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/block_store.h"
#include "storage/pi.h"

namespace stablefs {

enum class BlockFindingKind : uint8_t {
  kMalformedDataKey,   // a kData key that is not (inode, index)
  kUnreadable,         // the record's value cannot be read (damaged table block or blob file)
  kMalformedRecord,    // the value is not kBlockSize + tuple bytes long
  kMismatch,           // a tuple field does not match the data and place (mismatch says which)
  kMalformedMapKey,    // a kBlockMap key that is not (inode, index)
  kMalformedMapValue,  // a block-map value that is neither empty nor kBlockMapUnwritten
  kMissing,            // in the block map, not in the data
};

struct BlockFinding {
  BlockFindingKind kind = BlockFindingKind::kMismatch;
  uint64_t ino = 0;       // 0 for a malformed key
  uint64_t index = 0;     // block index within the inode
  size_t value_size = 0;  // kMalformedRecord: the record's length
  pi::Mismatch mismatch;  // kMismatch: the first failing interval

  // The file offset the finding is about: the failing interval's for a mismatch, else the block's.
  uint64_t Offset(const pi::Profile& p) const;
  // Scrub's field name: "guard", "application tag", "reference tag", "missing", "malformed".
  const char* Field() const;
  // One line without the place (the callers print inode and offset their own way), e.g.
  // "guard mismatch: expected 0x1234 received 0x4321" or
  // "block missing: in the block map, not in the data".
  std::string What(const pi::Profile& p) const;
};

class BlockVerifierSink {
 public:
  virtual ~BlockVerifierSink() = default;
  // Each data record looked at, damaged or not (ino 0 for a malformed key).
  virtual void Checked(uint64_t ino, uint64_t index) {}
  // A preallocated, unwritten block (a block-map entry with no data by design).
  virtual void Unwritten(uint64_t ino, uint64_t index) {}
  virtual void Found(const BlockFinding& f) = 0;
};

// Checks at most max_blocks (at least one) data records from key `from` on (one store iterator),
// then the block map over the same key range. *more says whether data records remain; if so *next
// is the key to go on from (the range ends just after the last record checked), otherwise the block
// map was checked to its end. Returns a non-Ok status only when the store cannot be read at all.
Status VerifyBlocks(BlockStore* store, std::string_view from, size_t max_blocks,
                    BlockVerifierSink* sink, std::string* next, bool* more);

// Every data record and block-map entry of the store, in ranges of kVerifyRangeBlocks.
inline constexpr size_t kVerifyRangeBlocks = 4096;
Status VerifyAllBlocks(BlockStore* store, BlockVerifierSink* sink);

}  // namespace stablefs
