// Encoding and decoding of every stablefs record; see storage/FORMAT.md for the layouts.
#include "storage/format.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>

#include "storage/coding.h"

namespace stablefs {

namespace {
constexpr uint8_t kInodeRecordVersion = 1;
constexpr uint8_t kDirentRecordVersion = 1;
constexpr size_t kInodeRecordSize = 1 + 4 * 4 + 8 * 4 + 4 + 8 + 4 * 12;
constexpr size_t kDirentRecordSize = 1 + 8 + 1 + 8;

void PutTimespec(std::string* dst, const Timespec& t) {
  PutFixed64BE(dst, static_cast<uint64_t>(t.sec));
  PutFixed32BE(dst, t.nsec);
}
bool GetTimespec(std::string_view* in, Timespec* t) {
  uint64_t sec;
  if (!GetFixed64BE(in, &sec) || !GetFixed32BE(in, &t->nsec)) return false;
  t->sec = static_cast<int64_t>(sec);
  return t->nsec < 1000000000u;
}
}  // namespace

const char* SpaceName(Space s) {
  switch (s) {
    case Space::kMeta:
      return "default";
    case Space::kInode:
      return "inodes";
    case Space::kDirent:
      return "dirents";
    case Space::kDirCookie:
      return "dircookies";
    case Space::kSymlink:
      return "symlinks";
    case Space::kXattr:
      return "xattrs";
    case Space::kOrphan:
      return "orphans";
    case Space::kData:
      return "data";
    case Space::kBlockMap:
      return "blockmap";
  }
  return "?";
}

std::string InodeKey(uint64_t ino) {
  std::string k;
  PutFixed64BE(&k, ino);
  return k;
}
bool ParseInodeKey(std::string_view key, uint64_t* ino) {
  return key.size() == 8 && GetFixed64BE(&key, ino);
}

std::string NameKey(uint64_t ino, std::string_view name) {
  std::string k;
  k.reserve(8 + name.size());
  PutFixed64BE(&k, ino);
  k.append(name);
  return k;
}
bool ParseNameKey(std::string_view key, uint64_t* ino, std::string_view* name) {
  if (!GetFixed64BE(&key, ino) || key.empty()) return false;
  *name = key;
  return true;
}
std::string NamePrefixBegin(uint64_t ino) { return InodeKey(ino); }
std::string NamePrefixEnd(uint64_t ino) {
  // Every key of ino starts with be64(ino); be64(ino + 1) sorts after all of them. ino is never
  // UINT64_MAX (inode numbers are allocated upward from kFirstFreeIno).
  return InodeKey(ino + 1);
}

std::string CookieKey(uint64_t parent, uint64_t cookie) {
  std::string k;
  PutFixed64BE(&k, parent);
  PutFixed64BE(&k, cookie);
  return k;
}
bool ParseCookieKey(std::string_view key, uint64_t* parent, uint64_t* cookie) {
  return key.size() == 16 && GetFixed64BE(&key, parent) && GetFixed64BE(&key, cookie);
}

void EncodeDataKey(char* dst, uint64_t ino, uint64_t index) {
  EncodeFixed64BE(dst, ino);
  EncodeFixed64BE(dst + 8, index);
}
std::string DataKey(uint64_t ino, uint64_t index) {
  std::string k(kDataKeySize, '\0');
  EncodeDataKey(k.data(), ino, index);
  return k;
}
bool ParseDataKey(std::string_view key, uint64_t* ino, uint64_t* index) {
  return key.size() == kDataKeySize && GetFixed64BE(&key, ino) && GetFixed64BE(&key, index);
}

std::string DataKeyRangeEnd(uint64_t ino, uint64_t end) {
  return end == UINT64_MAX ? DataKey(ino + 1, 0) : DataKey(ino, end);
}

// ---- Superblock ----

void Superblock::EncodeTo(std::string* dst) const {
  size_t start = dst->size();
  dst->append(kMagic);
  PutFixed32BE(dst, format_version);
  dst->append(reinterpret_cast<const char*>(uuid.data()), uuid.size());
  PutFixed32BE(dst, block_size);
  PutFixed8(dst, static_cast<uint8_t>(pi.guard));
  PutFixed8(dst, static_cast<uint8_t>(pi.type));
  PutFixed32BE(dst, pi.interval);
  PutFixed64BE(dst, static_cast<uint64_t>(created_sec));
  PutLengthPrefixed16(dst, creation_options.substr(0, 65535));
  PutFixed64BE(dst, pi::Xxh3(dst->data() + start, dst->size() - start));
}

Status Superblock::DecodeFrom(std::string_view src) {
  if (src.size() < kMagic.size() || src.substr(0, kMagic.size()) != kMagic) {
    return Status::Corruption("superblock: bad magic (not a stablefs store)");
  }
  if (src.size() < kMagic.size() + 4 + 8) {
    return Status::Corruption("superblock: truncated to " + std::to_string(src.size()) + " bytes");
  }
  std::string_view body = src.substr(0, src.size() - 8);
  uint64_t stored = DecodeFixed64BE(src.data() + body.size());
  uint64_t computed = pi::Xxh3(body.data(), body.size());
  if (stored != computed) {
    char buf[96];
    std::snprintf(
        buf, sizeof(buf), "superblock: checksum mismatch: expected 0x%016llx received 0x%016llx",
        static_cast<unsigned long long>(computed), static_cast<unsigned long long>(stored));
    return Status::Corruption(buf);
  }
  body.remove_prefix(kMagic.size());
  uint32_t version;
  GetFixed32BE(&body, &version);
  if (version < kOldestFormatVersion || version > kFormatVersion) {
    return Status::NotSupported(
        "store format version " + std::to_string(version) + "; this stablefs reads versions " +
        std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion));
  }
  std::string_view uuid_bytes, options;
  uint8_t guard, type;
  uint64_t created;
  if (!GetBytes(&body, uuid.size(), &uuid_bytes) || !GetFixed32BE(&body, &block_size) ||
      !GetFixed8(&body, &guard) || !GetFixed8(&body, &type) || !GetFixed32BE(&body, &pi.interval) ||
      !GetFixed64BE(&body, &created) || !GetLengthPrefixed16(&body, &options) || !body.empty()) {
    return Status::Corruption("superblock: malformed fields");
  }
  format_version = version;
  for (size_t i = 0; i < uuid.size(); i++) uuid[i] = static_cast<uint8_t>(uuid_bytes[i]);
  pi.guard = static_cast<pi::GuardKind>(guard);
  pi.type = static_cast<pi::Type>(type);
  created_sec = static_cast<int64_t>(created);
  creation_options.assign(options);
  if (block_size != kBlockSize) {
    return Status::Corruption("superblock: block size " + std::to_string(block_size) +
                              ", every format version has " + std::to_string(kBlockSize));
  }
  Status s = pi.Validate();
  if (!s.ok()) return Status::Corruption("superblock: " + s.message());
  return Status::Ok();
}

std::string Superblock::UuidString() const {
  char buf[37];
  char* p = buf;
  for (size_t i = 0; i < uuid.size(); i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    std::snprintf(p, 3, "%02x", uuid[i]);
    p += 2;
  }
  return std::string(buf, p - buf);
}

// ---- InodeRecord ----

void InodeRecord::EncodeTo(std::string* dst) const {
  PutFixed8(dst, kInodeRecordVersion);
  PutFixed32BE(dst, mode);
  PutFixed32BE(dst, uid);
  PutFixed32BE(dst, gid);
  PutFixed32BE(dst, nlink);
  PutFixed64BE(dst, size);
  PutFixed64BE(dst, blocks);
  PutFixed64BE(dst, rdev);
  PutFixed64BE(dst, generation);
  PutFixed32BE(dst, flags);
  PutFixed64BE(dst, next_cookie);
  PutTimespec(dst, atime);
  PutTimespec(dst, mtime);
  PutTimespec(dst, ctime);
  PutTimespec(dst, btime);
}

Status InodeRecord::DecodeFrom(std::string_view src) {
  if (src.size() != kInodeRecordSize) {
    return Status::Corruption("inode record: " + std::to_string(src.size()) + " bytes, expected " +
                              std::to_string(kInodeRecordSize));
  }
  uint8_t version;
  GetFixed8(&src, &version);
  if (version != kInodeRecordVersion) {
    return Status::Corruption("inode record: unknown version " + std::to_string(version));
  }
  InodeRecord r;
  bool ok = GetFixed32BE(&src, &r.mode) && GetFixed32BE(&src, &r.uid) &&
            GetFixed32BE(&src, &r.gid) && GetFixed32BE(&src, &r.nlink) &&
            GetFixed64BE(&src, &r.size) && GetFixed64BE(&src, &r.blocks) &&
            GetFixed64BE(&src, &r.rdev) && GetFixed64BE(&src, &r.generation) &&
            GetFixed32BE(&src, &r.flags) && GetFixed64BE(&src, &r.next_cookie) &&
            GetTimespec(&src, &r.atime) && GetTimespec(&src, &r.mtime) &&
            GetTimespec(&src, &r.ctime) && GetTimespec(&src, &r.btime);
  if (!ok) return Status::Corruption("inode record: nanoseconds out of range");
  *this = r;
  return Status::Ok();
}

// ---- DirentRecord ----

void DirentRecord::EncodeTo(std::string* dst) const {
  PutFixed8(dst, kDirentRecordVersion);
  PutFixed64BE(dst, ino);
  PutFixed8(dst, type);
  PutFixed64BE(dst, cookie);
}

Status DirentRecord::DecodeFrom(std::string_view src) {
  if (src.size() != kDirentRecordSize) {
    return Status::Corruption("dirent record: " + std::to_string(src.size()) + " bytes, expected " +
                              std::to_string(kDirentRecordSize));
  }
  uint8_t version;
  GetFixed8(&src, &version);
  if (version != kDirentRecordVersion) {
    return Status::Corruption("dirent record: unknown version " + std::to_string(version));
  }
  DirentRecord r;
  GetFixed64BE(&src, &r.ino);
  GetFixed8(&src, &r.type);
  GetFixed64BE(&src, &r.cookie);
  if (r.ino == 0) return Status::Corruption("dirent record: inode 0");
  *this = r;
  return Status::Ok();
}

uint8_t DirentTypeOf(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return DT_REG;
    case S_IFDIR:
      return DT_DIR;
    case S_IFLNK:
      return DT_LNK;
    case S_IFCHR:
      return DT_CHR;
    case S_IFBLK:
      return DT_BLK;
    case S_IFIFO:
      return DT_FIFO;
    case S_IFSOCK:
      return DT_SOCK;
  }
  return DT_UNKNOWN;
}

void EncodeCounter(std::string* dst, uint64_t v) { PutFixed64BE(dst, v); }

Status DecodeCounter(std::string_view src, uint64_t* v) {
  if (src.size() != 8) {
    return Status::Corruption("counter: " + std::to_string(src.size()) + " bytes, expected 8");
  }
  *v = DecodeFixed64BE(src.data());
  return Status::Ok();
}

void EncodeSegmentPointer(char* prefix, SegmentLocation loc) {
  EncodeFixed32BE(prefix, loc.segment);
  EncodeFixed32BE(prefix + 4, loc.slot);
}

SegmentLocation DecodeSegmentPointer(const char* prefix) {
  return SegmentLocation{DecodeFixed32BE(prefix), DecodeFixed32BE(prefix + 4)};
}

void EncodeSegmentWatermark(char* dst, SegmentWatermark mark) {
  EncodeFixed32BE(dst, mark.segment);
  EncodeFixed32BE(dst + 4, mark.slots);
}

bool DecodeSegmentWatermark(std::string_view src, SegmentWatermark* mark) {
  if (src.size() != kSegmentWatermarkSize) return false;
  *mark = SegmentWatermark{DecodeFixed32BE(src.data()), DecodeFixed32BE(src.data() + 4)};
  return true;
}

}  // namespace stablefs
