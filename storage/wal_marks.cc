// WAL marks: RocksDB's log format read for the segment watermarks it carries.
#include "storage/wal_marks.h"

#include <dirent.h>
#include <fcntl.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "storage/format.h"
#include "storage/rocks_crc32c.h"

namespace stablefs {

namespace {

// db/log_format.h of RocksDB.
constexpr size_t kLogBlockSize = 32768;
constexpr size_t kHeaderSize = 4 + 2 + 1;
constexpr size_t kRecyclableHeaderSize = kHeaderSize + 4;
enum RecordType : uint8_t {
  kZeroType = 0,
  kFullType = 1,
  kFirstType = 2,
  kMiddleType = 3,
  kLastType = 4,
  kRecyclableFullType = 5,
  kRecyclableFirstType = 6,
  kRecyclableMiddleType = 7,
  kRecyclableLastType = 8,
};
constexpr uint32_t kMaskDelta = 0xa282ead8u;

uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

uint32_t DecodeFixed32LE(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return le32toh(v);
}

struct MarkFinder : PassOverHandler {
  uint32_t meta_cf = 0;
  SegmentWatermark* highest = nullptr;
  rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key,
                        const rocksdb::Slice& value) override {
    SegmentWatermark m;
    if (cf == meta_cf && key.size() == kSegmentsSyncedKey.size() &&
        std::memcmp(key.data(), kSegmentsSyncedKey.data(), key.size()) == 0 &&
        DecodeSegmentWatermark(std::string_view(value.data(), value.size()), &m)) {
      if (m.segment > highest->segment ||
          (m.segment == highest->segment && m.slots > highest->slots)) {
        *highest = m;
      }
    }
    return rocksdb::Status::OK();
  }
};

void ReadFile(int fd, const std::string& name, uint32_t meta_cf, WalMarks* out,
              std::string* damage_at) {
  std::vector<char> block(kLogBlockSize);
  std::string batch;  // fragments of the batch being put together
  bool in_batch = false;
  MarkFinder finder;
  finder.meta_cf = meta_cf;
  finder.highest = &out->highest;
  auto found = [&](const char* p, size_t n) {
    if (n < 12) {  // a WriteBatch starts with its sequence number and count
      out->damaged++;
      return;
    }
    rocksdb::WriteBatch wb(std::string(p, n));
    out->records++;
    if (!damage_at->empty() && !out->hole) {
      out->hole = true;
      out->hole_at = *damage_at;
    }
    // A batch that fails part way has given its watermarks before the failure.
    wb.Iterate(&finder).PermitUncheckedError();
  };
  for (uint64_t off = 0;; off += kLogBlockSize) {
    ssize_t got;
    do {
      got = pread(fd, block.data(), kLogBlockSize, static_cast<off_t>(off));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) return;
    const size_t end = static_cast<size_t>(got);
    for (size_t pos = 0; pos + kHeaderSize <= end;) {
      const char* h = block.data() + pos;
      const uint8_t type = static_cast<uint8_t>(h[6]);
      const size_t length = static_cast<uint8_t>(h[4]) | (size_t{static_cast<uint8_t>(h[5])} << 8);
      const bool recyclable = type >= kRecyclableFullType && type <= kRecyclableLastType;
      const size_t header = recyclable ? kRecyclableHeaderSize : kHeaderSize;
      if (type == kZeroType && length == 0) break;  // the block's zero trailer, or unwritten
      if (pos + header + length > end) {
        out->damaged++;
        if (damage_at->empty()) *damage_at = name + " byte " + std::to_string(off + pos);
        in_batch = false;
        break;
      }
      // The checksum covers the type byte, the log number if any, and the payload.
      const uint32_t crc = RocksCrc32cExtend(0, h + 6, header - 6 + length);
      if (Unmask(DecodeFixed32LE(h)) != crc) {
        // Damaged or torn: the rest of this block cannot be framed.
        out->damaged++;
        if (damage_at->empty()) *damage_at = name + " byte " + std::to_string(off + pos);
        in_batch = false;
        break;
      }
      const char* payload = h + header;
      switch (recyclable ? type - (kRecyclableFullType - kFullType) : type) {
        case kFullType:
          found(payload, length);
          in_batch = false;
          break;
        case kFirstType:
          batch.assign(payload, length);
          in_batch = true;
          break;
        case kMiddleType:
          if (in_batch) batch.append(payload, length);
          break;
        case kLastType:
          if (in_batch) {
            batch.append(payload, length);
            found(batch.data(), batch.size());
          }
          in_batch = false;
          break;
        default:  // metadata records (compression type, timestamp sizes)
          break;
      }
      pos += header + length;
    }
  }
}

}  // namespace

WalMarks ReadWalMarks(const std::string& dir, uint32_t meta_cf) {
  WalMarks out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  std::vector<std::pair<uint64_t, std::string>> logs;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0 &&
        std::all_of(name.begin(), name.end() - 4, [](char c) { return c >= '0' && c <= '9'; })) {
      logs.emplace_back(std::strtoull(name.c_str(), nullptr, 10), name);
    }
  }
  closedir(d);
  std::sort(logs.begin(), logs.end());
  std::string damage_at;  // the first damaged record, once one was found
  for (const auto& [number, name] : logs) {
    int fd = open((dir + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    out.files++;
    ReadFile(fd, name, meta_cf, &out, &damage_at);
    close(fd);
  }
  return out;
}

}  // namespace stablefs
