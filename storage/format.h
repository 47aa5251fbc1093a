// The records stablefs persists: keys and values of every column family, and the superblock.
//
// storage/FORMAT.md is the prose specification of every layout here; this file is its code. Each
// record type is a struct with EncodeTo (appends to a std::string) and DecodeFrom (parses a whole
// value, returning Corruption for malformed bytes: wrong length, unknown record version, bad
// magic, bad checksum, trailing bytes). Key builders and parsers live beside them. All integers are
// big-endian (storage/coding.h), so keys sort by inode, then by block index or name.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/pi.h"
#include "storage/status.h"

namespace stablefs {

// The newest on-disk format version this build reads and writes: 2, whose data blocks may lie in
// segment files (FORMAT.md, "Segments"). It still reads and writes version 1, whose data blocks
// all lie in the `data` family.
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint32_t kOldestFormatVersion = 1;
// Bytes per data block: one page of the page cache. Fixed for every format version.
inline constexpr uint32_t kBlockSize = 4096;
// The root directory's inode number. Inode 0 is never used.
inline constexpr uint64_t kRootIno = 1;
// The first inode number handed to a new file.
inline constexpr uint64_t kFirstFreeIno = 2;

// A key space: one RocksDB column family, one std::map in the in-memory store.
enum class Space : uint8_t {
  kMeta = 0,       // "default": the superblock and store-wide counters
  kInode = 1,      // "inodes": inode number -> InodeRecord
  kDirent = 2,     // "dirents": (parent, name) -> DirentRecord
  kDirCookie = 3,  // "dircookies": (parent, cookie) -> name, the readdir order
  kSymlink = 4,    // "symlinks": inode number -> target
  kXattr = 5,      // "xattrs": (inode, name) -> value
  kOrphan = 6,     // "orphans": inode number -> empty; unlinked inodes still open
  kData = 7,       // "data": (inode, block index) -> block data || tuples
  kBlockMap = 8,   // "blockmap": (inode, block index) -> empty, for every block in kData
};
inline constexpr int kNumSpaces = 9;
// The column family name of a space, as above.
const char* SpaceName(Space s);

// ---- Keys ----
// Meta keys.
inline constexpr std::string_view kSuperblockKey = "superblock";
inline constexpr std::string_view kNextInoKey = "next_ino";  // value: be64
// Format version 2: how far the segment files were durable when this record was written
// (be32 segment, be32 slots). Written after every sync of the segments.
inline constexpr std::string_view kSegmentsSyncedKey = "segments_synced";

// be64 inode: the key of kInode, kSymlink and kOrphan records.
std::string InodeKey(uint64_t ino);
bool ParseInodeKey(std::string_view key, uint64_t* ino);

// be64 parent || name: the key of a kDirent record; also (inode, name) for kXattr.
std::string NameKey(uint64_t ino, std::string_view name);
bool ParseNameKey(std::string_view key, uint64_t* ino, std::string_view* name);
// The half-open key range [NamePrefixBegin(ino), NamePrefixEnd(ino)) holds every name of ino.
std::string NamePrefixBegin(uint64_t ino);
std::string NamePrefixEnd(uint64_t ino);

// be64 parent || be64 cookie: the key of a kDirCookie record.
std::string CookieKey(uint64_t parent, uint64_t cookie);
bool ParseCookieKey(std::string_view key, uint64_t* parent, uint64_t* cookie);

// be64 inode || be64 block index: the key of a kData record, written into a 16-byte buffer.
inline constexpr size_t kDataKeySize = 16;
// The value of a block-map entry whose block was preallocated (fallocate) and never written: there
// is no `data` record, the block reads as zeros and counts in st_blocks. The value of an entry
// whose block is in `data` is empty. (FORMAT.md, "The block map".)
inline constexpr std::string_view kBlockMapUnwritten = "\x01";
void EncodeDataKey(char* dst, uint64_t ino, uint64_t index);
std::string DataKey(uint64_t ino, uint64_t index);
bool ParseDataKey(std::string_view key, uint64_t* ino, uint64_t* index);
// The exclusive end key of blocks [.., end) of ino; end == UINT64_MAX means every block of ino.
std::string DataKeyRangeEnd(uint64_t ino, uint64_t end);
// The first readdir cookie handed to an entry; 0, 1 and 2 are the start, "." and "..".
inline constexpr uint64_t kFirstDirCookie = 3;

// ---- Values ----

// The store's identity and the choices made at mkfs time. Key kSuperblockKey in kMeta.
struct Superblock {
  static constexpr std::string_view kMagic = "stablefs";  // 8 bytes

  uint32_t format_version = kFormatVersion;
  std::array<uint8_t, 16> uuid{};
  uint32_t block_size = kBlockSize;
  pi::Profile pi;
  int64_t created_sec = 0;       // seconds since the epoch
  std::string creation_options;  // the mkfs command line's options, for the record

  void EncodeTo(std::string* dst) const;
  // Corruption for a bad magic, length, checksum or field; NotSupported for a version this build
  // does not read.
  Status DecodeFrom(std::string_view src);
  // Whether data blocks may lie in segment files (format version 2 and later).
  bool has_segments() const { return format_version >= 2; }
  // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
  std::string UuidString() const;
  bool operator==(const Superblock&) const = default;
};

// A timestamp: seconds since the epoch (signed) and nanoseconds.
struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  bool operator==(const Timespec&) const = default;
};

// One inode's attributes. Key InodeKey(ino) in kInode.
struct InodeRecord {
  uint32_t mode = 0;  // type and permission bits, as st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;         // bytes
  uint64_t blocks = 0;       // data blocks present in kData (4 KiB each)
  uint64_t rdev = 0;         // device number of a char or block special file
  uint64_t generation = 0;   // distinguishes reuses of an inode number for NFS-style handles
  uint32_t flags = 0;        // FS_IOC_GETFLAGS attribute flags (FS_IMMUTABLE_FL, ...)
  uint64_t next_cookie = 0;  // directories: the next readdir cookie to hand out
  Timespec atime, mtime, ctime, btime;

  void EncodeTo(std::string* dst) const;
  Status DecodeFrom(std::string_view src);
  bool operator==(const InodeRecord&) const = default;
};

// A directory entry. Key NameKey(parent, name) in kDirent.
struct DirentRecord {
  uint64_t ino = 0;
  uint8_t type = 0;     // DT_REG, DT_DIR, ... as readdir reports it
  uint64_t cookie = 0;  // this entry's readdir position; CookieKey(parent, cookie) maps back

  void EncodeTo(std::string* dst) const;
  Status DecodeFrom(std::string_view src);
  bool operator==(const DirentRecord&) const = default;
};

// The d_type of an inode of the given st_mode (DT_REG, DT_DIR, ...; DT_UNKNOWN for others), as
// DirentRecord::type holds it.
uint8_t DirentTypeOf(uint32_t mode);

// A counter stored as be64 (kNextInoKey).
void EncodeCounter(std::string* dst, uint64_t v);
Status DecodeCounter(std::string_view src, uint64_t* v);

// ---- Data blocks ----
// A kData value is kBlockSize bytes of data followed by the block's tuples: kBlockSize / interval
// tuples of pi.tuple_size() bytes each, in interval order.
inline size_t TuplesPerBlock(const pi::Profile& p) { return kBlockSize / p.interval; }
inline size_t TupleBytesPerBlock(const pi::Profile& p) {
  return TuplesPerBlock(p) * p.tuple_size();
}
// A kData value of a format-version-2 store may instead say where the block's data lies in a
// segment file: be32 segment, be32 slot, then the block's tuples as above. Its length,
// 8 + tuple bytes, is never that of a whole block, so the two kinds are told apart by length.
inline constexpr size_t kSegmentPointerPrefix = 8;
inline size_t SegmentPointerSize(const pi::Profile& p) {
  return kSegmentPointerPrefix + TupleBytesPerBlock(p);
}
// The logical sector number of the first interval of block `index`: its reference tag seed.
inline uint64_t FirstSectorOfBlock(const pi::Profile& p, uint64_t index) {
  return index * TuplesPerBlock(p);
}

// ---- Segment pointers and the segments' watermark (format version 2, FORMAT.md "Segments") ----
// Whether a kData value is a segment pointer rather than a whole block: any value shorter than a
// block is taken for one (one of another length than SegmentPointerSize is damage: a read of it
// is Corruption).
inline bool IsSegmentPointer(size_t value_size) { return value_size < kBlockSize; }

// Where a block's data lies: a segment number and a 4096-byte slot in it.
struct SegmentLocation {
  uint32_t segment = 0;
  uint32_t slot = 0;
  bool operator==(const SegmentLocation&) const = default;
};
// A segment pointer's first kSegmentPointerPrefix bytes: be32 segment, be32 slot.
void EncodeSegmentPointer(char* prefix, SegmentLocation loc);
SegmentLocation DecodeSegmentPointer(const char* prefix);

// Everything before this position is durable: every slot of segments below `segment`, and slots
// below `slots` of `segment` itself.
struct SegmentWatermark {
  uint32_t segment = 0;
  uint32_t slots = 0;
  bool Covers(SegmentLocation loc) const {
    return loc.segment < segment || (loc.segment == segment && loc.slot < slots);
  }
};
// The value of kSegmentsSyncedKey: be32 segment, be32 slots.
inline constexpr size_t kSegmentWatermarkSize = 8;
void EncodeSegmentWatermark(char* dst, SegmentWatermark mark);
// False, *mark unchanged, unless src is kSegmentWatermarkSize bytes long.
bool DecodeSegmentWatermark(std::string_view src, SegmentWatermark* mark);

}  // namespace stablefs
