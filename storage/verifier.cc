// The data scan, then the block-map scan of the same key range, then the second look at what the
// data scan did not see.
#include "storage/verifier.h"

#include <algorithm>
#include <vector>

#include "storage/format.h"

namespace stablefs {

uint64_t BlockFinding::Offset(const pi::Profile& p) const {
  uint64_t offset = index * kBlockSize;
  if (kind == BlockFindingKind::kMismatch) offset += uint64_t{mismatch.interval} * p.interval;
  return offset;
}

const char* BlockFinding::Field() const {
  switch (kind) {
    case BlockFindingKind::kMismatch:
      return pi::FieldName(mismatch.field);
    case BlockFindingKind::kMissing:
      return "missing";
    default:
      return "malformed";
  }
}

std::string BlockFinding::What(const pi::Profile& p) const {
  switch (kind) {
    case BlockFindingKind::kMalformedDataKey:
      return "malformed data key";
    case BlockFindingKind::kUnreadable:
      return "data record cannot be read (damaged table or blob file)";
    case BlockFindingKind::kMalformedRecord:
      return "malformed data record (" + std::to_string(value_size) + " bytes)";
    case BlockFindingKind::kMismatch: {
      // DescribeMismatch says "inode I offset O: <what>"; the place is the caller's to print.
      std::string line = pi::DescribeMismatch(p, ino, index * kBlockSize, mismatch);
      const size_t colon = line.find(": ");
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
    case BlockFindingKind::kMalformedMapKey:
      return "malformed block map key";
    case BlockFindingKind::kMalformedMapValue:
      return "malformed block map value";
    case BlockFindingKind::kMissing:
      return "block missing: in the block map, not in the data";
  }
  return "unknown finding";
}

Status VerifyBlocks(BlockStore* store, std::string_view from, size_t max_blocks,
                    BlockVerifierSink* sink, std::string* next, bool* more) {
  const size_t tb = store->tuple_bytes_per_block();
  max_blocks = std::max<size_t>(max_blocks, 1);
  std::vector<std::string> seen;  // the range's data keys, in key order
  STABLEFS_RETURN_IF_ERROR(
      store->Scan(Space::kData, from, "", [&](std::string_view k, std::string_view v) {
        seen.emplace_back(k);
        BlockFinding f;
        if (!ParseDataKey(k, &f.ino, &f.index)) {
          f.kind = BlockFindingKind::kMalformedDataKey;
          sink->Found(f);
        } else if (v.empty()) {  // no record has that length: the store could not read it
          f.kind = BlockFindingKind::kUnreadable;
          sink->Found(f);
        } else if (v.size() != kBlockSize + tb) {
          f.kind = BlockFindingKind::kMalformedRecord;
          f.value_size = v.size();
          sink->Found(f);
        } else if (!store->CheckBlockPi(f.ino, f.index, v.data(), v.data() + kBlockSize,
                                        &f.mismatch)) {
          f.kind = BlockFindingKind::kMismatch;
          sink->Found(f);
        }
        sink->Checked(f.ino, f.index);
        return seen.size() < max_blocks;
      }));
  *more = !seen.empty() && seen.size() == max_blocks;
  // The range ends just after its last data key; at the end of the data, at the end of the space.
  const std::string end = *more ? seen.back() + '\0' : std::string();
  std::vector<std::string> unseen;
  STABLEFS_RETURN_IF_ERROR(
      store->Scan(Space::kBlockMap, from, end, [&](std::string_view k, std::string_view v) {
        BlockFinding f;
        if (!ParseDataKey(k, &f.ino, &f.index)) {
          f.kind = BlockFindingKind::kMalformedMapKey;
          sink->Found(f);
        } else if (v == kBlockMapUnwritten) {
          sink->Unwritten(f.ino, f.index);
        } else if (!v.empty()) {
          f.kind = BlockFindingKind::kMalformedMapValue;
          sink->Found(f);
        } else if (!std::binary_search(seen.begin(), seen.end(), k)) {
          unseen.emplace_back(k);
        }
        return true;
      }));
  for (const std::string& k : unseen) {
    BlockFinding f;
    ParseDataKey(k, &f.ino, &f.index);
    BlockState state;
    STABLEFS_RETURN_IF_ERROR(store->StateOfBlock(f.ino, f.index, &state));
    if (state != BlockState::kLost) continue;  // written or deleted since the data was read
    f.kind = BlockFindingKind::kMissing;
    sink->Found(f);
  }
  if (*more) *next = end;
  return Status::Ok();
}

Status VerifyAllBlocks(BlockStore* store, BlockVerifierSink* sink) {
  std::string from;
  for (bool more = true; more;) {
    STABLEFS_RETURN_IF_ERROR(VerifyBlocks(store, from, kVerifyRangeBlocks, sink, &from, &more));
  }
  return Status::Ok();
}

}  // namespace stablefs
