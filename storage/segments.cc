// Segments: appending runs, syncing, reading slots, walking runs, removing sealed files.
#include "storage/segments.h"

#include <fcntl.h>
#include <limits.h>
#include <rocksdb/file_system.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "storage/coding.h"
#include "storage/format.h"
#include "storage/rocks_status.h"

namespace stablefs {

namespace {

constexpr std::string_view kSegmentMagic = "stablseg";
constexpr std::string_view kRunMagic = "stablrun";
constexpr uint32_t kSegmentVersion = 1;
// Header fields before their checksum (FORMAT.md, "Segments").
constexpr size_t kSegmentHeaderFields = 8 + 4 + 16 + 4 + 1 + 1 + 4;
constexpr size_t kRunHeaderFields = 8 + 8 + 8 + 4;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

void EncodeSegmentHeader(char* block, uint32_t number, const std::array<uint8_t, 16>& uuid,
                         const pi::Profile& p) {
  std::memset(block, 0, kBlockSize);
  char* q = block;
  std::memcpy(q, kSegmentMagic.data(), 8);
  EncodeFixed32BE(q + 8, kSegmentVersion);
  std::memcpy(q + 12, uuid.data(), 16);
  EncodeFixed32BE(q + 28, number);
  q[32] = static_cast<char>(p.guard);
  q[33] = static_cast<char>(p.type);
  EncodeFixed32BE(q + 34, p.interval);
  EncodeFixed64BE(q + kSegmentHeaderFields, pi::Xxh3(block, kSegmentHeaderFields));
}

void EncodeRunHeader(char* block, uint64_t ino, uint64_t first, uint32_t count) {
  std::memset(block, 0, kBlockSize);
  std::memcpy(block, kRunMagic.data(), 8);
  EncodeFixed64BE(block + 8, ino);
  EncodeFixed64BE(block + 16, first);
  EncodeFixed32BE(block + 24, count);
  EncodeFixed64BE(block + kRunHeaderFields, pi::Xxh3(block, kRunHeaderFields));
}

bool AllZero(const char* p, size_t n) {
  return std::all_of(p, p + n, [](char c) { return c == 0; });
}

// Reads exactly n bytes at off; false (errno set, 0 for a short read) otherwise.
bool PreadFull(int fd, char* buf, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t r = pread(fd, buf, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = 0;
      return false;
    }
    buf += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return true;
}

}  // namespace

class Segments::File {
 public:
  File(uint32_t number, int fd) : number(number), fd(fd) {}
  ~File() { close(fd); }
  const uint32_t number;
  const int fd;
  std::array<uint8_t, 16> uuid{};
  pi::Profile pi;
};

struct Segments::Open_ {
  uint32_t number = 0;
  std::shared_ptr<File> file;
  Mutex file_mu;  // the writable: Sync() and sealing; ordered after mu_
  std::unique_ptr<rocksdb::FSWritableFile> writable GUARDED_BY(file_mu);
  uint32_t slots = 0;               // appended, header included; under Segments::mu_
  std::atomic<uint32_t> synced{0};  // durable prefix in slots
};

std::string Segments::FileName(const std::string& dir, uint32_t segment) {
  char name[32];
  std::snprintf(name, sizeof(name), "/%08" PRIu32 ".seg", segment);
  return dir + name;
}

Segments::Segments(const Options& options)
    : dir_(options.dir), fs_(options.fs), max_slots_(std::max<uint32_t>(options.max_slots, 3)) {
  MutexLock l(&mu_);
  uuid_ = options.uuid;
  pi_ = options.pi;
}

Segments::~Segments() {
  MutexLock l(&mu_);
  if (open_ != nullptr) {
    MutexLock f(&open_->file_mu);
    if (open_->writable != nullptr) {
      open_->writable->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
    }
  }
}

Status Segments::Open(const Options& options, bool create, std::unique_ptr<Segments>* out) {
  std::unique_ptr<Segments> s(new Segments(options));
  const rocksdb::IOOptions io;
  if (create) {
    STABLEFS_RETURN_IF_ERROR(
        FromRocks(s->fs_->CreateDirIfMissing(s->dir_, io, nullptr), "cannot create " + s->dir_));
  }
  std::vector<std::string> children;
  STABLEFS_RETURN_IF_ERROR(
      FromRocks(s->fs_->GetChildren(s->dir_, io, &children, nullptr), "cannot list " + s->dir_));
  MutexLock l(&s->mu_);
  for (const std::string& name : children) {
    unsigned number;
    char extra;
    if (name.size() != 12 || std::sscanf(name.c_str(), "%8u.seg%c", &number, &extra) != 1 ||
        number == 0) {
      continue;  // not a segment (RocksDB's or an editor's file)
    }
    const std::string path = FileName(s->dir_, number);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IOError(Errno("cannot open " + path));
    auto file = std::make_shared<File>(number, fd);
    char header[kBlockSize];
    if (!PreadFull(fd, header, kBlockSize, 0)) {
      // A power cut between creating the file and syncing its header: nothing refers to it.
      if (errno == 0) {
        STABLEFS_RETURN_IF_ERROR(FromRocks(s->fs_->DeleteFile(path, io, nullptr),
                                           "cannot remove the empty segment " + path));
        continue;
      }
      return Status::IOError(Errno("cannot read " + path));
    }
    if (AllZero(header, kBlockSize)) {
      // Also a power cut before the header's sync returned: the file's size and extent were
      // committed but its data was not (ext4 commits a written extent's conversion apart from
      // the allocation, so the file reads as zeros). The header is synced before any slot is
      // appended, so a file that is zeros from end to end holds nothing anything refers to.
      bool zeros = true;
      char buf[kBlockSize];
      for (off_t at = kBlockSize; zeros; at += kBlockSize) {
        ssize_t n = ::pread(fd, buf, kBlockSize, at);
        if (n < 0) return Status::IOError(Errno("cannot read " + path));
        if (n == 0) break;
        zeros = AllZero(buf, size_t(n));
      }
      if (zeros) {
        STABLEFS_RETURN_IF_ERROR(FromRocks(s->fs_->DeleteFile(path, io, nullptr),
                                           "cannot remove the unwritten segment " + path));
        continue;
      }
    }
    if (std::memcmp(header, kSegmentMagic.data(), 8) != 0) {
      return Status::Corruption(path + ": not a stablefs segment (bad magic)");
    }
    const uint64_t stored = DecodeFixed64BE(header + kSegmentHeaderFields);
    const uint64_t computed = pi::Xxh3(header, kSegmentHeaderFields);
    if (stored != computed) {
      char buf[160];
      std::snprintf(buf, sizeof(buf),
                    ": segment header checksum mismatch: expected 0x%016" PRIx64
                    " received 0x%016" PRIx64,
                    computed, stored);
      return Status::Corruption(path + buf);
    }
    const uint32_t version = DecodeFixed32BE(header + 8);
    if (version != kSegmentVersion) {
      return Status::NotSupported(path + ": segment version " + std::to_string(version) +
                                  "; this stablefs reads version " +
                                  std::to_string(kSegmentVersion));
    }
    if (DecodeFixed32BE(header + 28) != number) {
      return Status::Corruption(path + ": header names segment " +
                                std::to_string(DecodeFixed32BE(header + 28)));
    }
    std::memcpy(file->uuid.data(), header + 12, 16);
    file->pi.guard = static_cast<pi::GuardKind>(static_cast<uint8_t>(header[32]));
    file->pi.type = static_cast<pi::Type>(static_cast<uint8_t>(header[33]));
    file->pi.interval = DecodeFixed32BE(header + 34);
    Status v = file->pi.Validate();
    if (!v.ok()) return Status::Corruption(path + ": " + v.message());
    s->files_[number] = file;
    s->next_segment_ = std::max<uint32_t>(s->next_segment_, number + 1);
  }
  *out = std::move(s);
  return Status::Ok();
}

Status Segments::RecordedIdentity(std::array<uint8_t, 16>* uuid, pi::Profile* profile) const {
  MutexLock l(&mu_);
  if (files_.empty()) return Status::NotFound("no segments in " + dir_);
  *uuid = files_.begin()->second->uuid;
  *profile = files_.begin()->second->pi;
  return Status::Ok();
}

Status Segments::CheckIdentity(const std::array<uint8_t, 16>& uuid, const pi::Profile& profile) {
  MutexLock l(&mu_);
  for (const auto& [number, file] : files_) {
    if (file->uuid != uuid) {
      return Status::Corruption(FileName(dir_, number) + " belongs to another store");
    }
    if (!(file->pi == profile)) {
      return Status::Corruption(FileName(dir_, number) + " records PI " + file->pi.ToString() +
                                ", the store has " + profile.ToString());
    }
  }
  uuid_ = uuid;
  pi_ = profile;
  return Status::Ok();
}

Status Segments::SyncDir() {
  std::unique_ptr<rocksdb::FSDirectory> d;
  const rocksdb::IOOptions io;
  STABLEFS_RETURN_IF_ERROR(
      FromRocks(fs_->NewDirectory(dir_, io, &d, nullptr), "cannot open " + dir_));
  return FromRocks(d->Fsync(io, nullptr), "cannot sync " + dir_);
}

Status Segments::OpenNext() {
  const uint32_t number = next_segment_++;
  const std::string path = FileName(dir_, number);
  const rocksdb::IOOptions io;
  auto open = std::make_shared<Open_>();
  open->number = number;
  std::unique_ptr<rocksdb::FSWritableFile> w;
  STABLEFS_RETURN_IF_ERROR(
      FromRocks(fs_->NewWritableFile(path, rocksdb::FileOptions(), &w, nullptr),
                "cannot create segment " + path));
  char header[kBlockSize];
  EncodeSegmentHeader(header, number, uuid_, pi_);
  rocksdb::IOStatus st = w->Append(rocksdb::Slice(header, kBlockSize), io, nullptr);
  if (st.ok()) st = w->Sync(io, nullptr);
  Status s = FromRocks(st, "cannot write the header of segment " + path);
  // The name must be durable before any pointer into the file can be.
  if (s.ok()) s = SyncDir();
  int fd = s.ok() ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC) : -1;
  if (s.ok() && fd < 0) s = Status::IOError(Errno("cannot open " + path));
  if (!s.ok()) {
    w->Close(io, nullptr).PermitUncheckedError();
    fs_->DeleteFile(path, io, nullptr).PermitUncheckedError();
    return s;
  }
  open->file = std::make_shared<File>(number, fd);
  open->file->uuid = uuid_;
  open->file->pi = pi_;
  {
    MutexLock f(&open->file_mu);
    open->writable = std::move(w);
  }
  open->slots = 1;
  open->synced = 1;
  files_[number] = open->file;
  open_ = std::move(open);
  return Status::Ok();
}

Status Segments::SealLocked() {
  if (open_ == nullptr) return Status::Ok();
  std::shared_ptr<Open_> o = std::move(open_);
  MutexLock f(&o->file_mu);
  const rocksdb::IOOptions io;
  rocksdb::IOStatus st = o->writable->Sync(io, nullptr);
  if (st.ok()) o->synced = o->slots;
  rocksdb::IOStatus cl = o->writable->Close(io, nullptr);
  o->writable.reset();
  if (st.ok()) st = cl;
  Status s = FromRocks(st, "cannot seal segment " + FileName(dir_, o->number));
  if (!s.ok() && failed_.ok()) failed_ = s;
  return s;
}

Status Segments::Seal() {
  MutexLock l(&mu_);
  if (open_ == nullptr || open_->slots <= 1) return Status::Ok();
  return SealLocked();
}

Status Segments::Append(uint64_t ino, uint64_t first, size_t n, const char* const* blocks,
                        bool contiguous, SegmentLocation* loc, size_t* written) {
  MutexLock l(&mu_);
  STABLEFS_RETURN_IF_ERROR(failed_);
  if (open_ != nullptr && open_->slots + 2 > max_slots_) STABLEFS_RETURN_IF_ERROR(SealLocked());
  if (open_ == nullptr) STABLEFS_RETURN_IF_ERROR(OpenNext());
  Open_* o = open_.get();
  const size_t k = std::min<size_t>(n, max_slots_ - o->slots - 1);
  char header[kBlockSize];
  EncodeRunHeader(header, ino, first, static_cast<uint32_t>(k));
  const rocksdb::IOOptions io;
  rocksdb::IOStatus st;
  {
    MutexLock f(&o->file_mu);
    st = o->writable->Append(rocksdb::Slice(header, kBlockSize), io, nullptr);
    if (contiguous) {
      if (st.ok()) st = o->writable->Append(rocksdb::Slice(blocks[0], k * kBlockSize), io, nullptr);
    } else {
      for (size_t i = 0; i < k && st.ok(); i++) {
        st = o->writable->Append(rocksdb::Slice(blocks[i], kBlockSize), io, nullptr);
      }
    }
  }
  if (!st.ok()) {
    // The file may hold part of the run: later runs go to a new segment, and this one is
    // sealed as it is (its torn run is never referred to). A full disk is no lasting failure;
    // a failed sync of what was appended before is (SealLocked).
    Status s = FromRocks(st, "cannot append to segment " + FileName(dir_, o->number));
    (void)SealLocked();
    return s;
  }
  loc->segment = o->number;
  loc->slot = o->slots + 1;
  o->slots += static_cast<uint32_t>(1 + k);
  *written = k;
  return Status::Ok();
}

Status Segments::Sync(SegmentWatermark* durable) {
  MutexLock s(&sync_mu_);
  std::shared_ptr<Open_> o;
  uint32_t slots = 0;
  {
    MutexLock l(&mu_);
    STABLEFS_RETURN_IF_ERROR(failed_);
    if (open_ == nullptr) {
      if (durable != nullptr) *durable = SegmentWatermark{next_segment_, 0};
      return Status::Ok();
    }
    o = open_;
    slots = o->slots;
  }
  Status st;
  if (o->synced.load() < slots) {
    MutexLock f(&o->file_mu);
    // A segment sealed meanwhile was synced by the seal (which records a failure itself).
    if (o->writable != nullptr) {
      st = FromRocks(o->writable->Sync(rocksdb::IOOptions(), nullptr),
                     "cannot sync segment " + FileName(dir_, o->number));
      uint32_t prev = o->synced.load();
      while (st.ok() && prev < slots && !o->synced.compare_exchange_weak(prev, slots)) {
      }
    }
  }
  MutexLock l(&mu_);
  if (!st.ok() && failed_.ok()) failed_ = st;
  STABLEFS_RETURN_IF_ERROR(failed_);
  if (durable != nullptr) *durable = SegmentWatermark{o->number, o->synced.load()};
  return Status::Ok();
}

void Segments::NumberAfter(uint32_t n) {
  MutexLock l(&mu_);
  if (open_ == nullptr) next_segment_ = std::max<uint32_t>(next_segment_, n + 1);
}

uint64_t Segments::unsynced_slots() const {
  MutexLock l(&mu_);
  if (open_ == nullptr) return 0;
  return open_->slots - std::min(open_->slots, open_->synced.load());
}

std::shared_ptr<Segments::File> Segments::Find(uint32_t segment) const {
  MutexLock l(&mu_);
  auto it = files_.find(segment);
  return it == files_.end() ? nullptr : it->second;
}

Status Segments::Read(SegmentLocation loc, size_t n, char* const* blocks) {
  std::shared_ptr<File> f = Find(loc.segment);
  if (f == nullptr) return Status::NotFound("segment " + std::to_string(loc.segment) + " is gone");
  size_t done = 0;
  while (done < n) {
    iovec iov[IOV_MAX];
    const size_t k = std::min<size_t>(n - done, IOV_MAX);
    for (size_t i = 0; i < k; i++) iov[i] = iovec{blocks[done + i], kBlockSize};
    uint64_t off = (uint64_t{loc.slot} + done) * kBlockSize;
    size_t want = k * kBlockSize, got = 0;
    iovec* v = iov;
    int vn = static_cast<int>(k);
    while (got < want) {
      ssize_t r = preadv(f->fd, v, vn, static_cast<off_t>(off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        return Status::IOError(Errno("read of " + FileName(dir_, loc.segment)));
      }
      if (r == 0) {
        return Status::Corruption(FileName(dir_, loc.segment) + " ends before slot " +
                                  std::to_string(off / kBlockSize + got / kBlockSize));
      }
      got += static_cast<size_t>(r);
      // Step over the buffers filled.
      size_t adv = static_cast<size_t>(r);
      while (vn > 0 && adv >= v->iov_len) {
        adv -= v->iov_len;
        v++;
        vn--;
      }
      if (vn > 0 && adv > 0) {
        v->iov_base = static_cast<char*>(v->iov_base) + adv;
        v->iov_len -= adv;
      }
    }
    done += k;
  }
  return Status::Ok();
}

std::vector<uint32_t> Segments::Sealed() const {
  MutexLock l(&mu_);
  std::vector<uint32_t> out;
  for (const auto& [number, file] : files_) {
    if (open_ == nullptr || number != open_->number) out.push_back(number);
  }
  return out;
}

uint32_t Segments::open_segment() const {
  MutexLock l(&mu_);
  return open_ == nullptr ? 0 : open_->number;
}

Status Segments::ForEachRun(
    uint32_t segment, const std::function<Status(uint64_t, uint64_t, uint32_t, uint32_t)>& fn) {
  std::shared_ptr<File> f = Find(segment);
  const std::string path = FileName(dir_, segment);
  if (f == nullptr) return Status::NotFound(path + " is gone");
  struct stat st;
  if (fstat(f->fd, &st) != 0) return Status::IOError(Errno("cannot stat " + path));
  const uint64_t slots = static_cast<uint64_t>(st.st_size) / kBlockSize;
  char header[kBlockSize];
  for (uint64_t slot = 1; slot < slots;) {
    if (!PreadFull(f->fd, header, kBlockSize, slot * kBlockSize)) {
      return Status::IOError(Errno("cannot read " + path));
    }
    // A power cut can leave zeros where the last run's header was to be: the end.
    if (AllZero(header, kBlockSize)) break;
    if (std::memcmp(header, kRunMagic.data(), 8) != 0 ||
        DecodeFixed64BE(header + kRunHeaderFields) != pi::Xxh3(header, kRunHeaderFields)) {
      return Status::Corruption(path + ": damaged run header at slot " + std::to_string(slot));
    }
    const uint32_t count = DecodeFixed32BE(header + 24);
    const uint64_t have = std::min<uint64_t>(count, slots - slot - 1);
    if (have > 0) {
      STABLEFS_RETURN_IF_ERROR(fn(DecodeFixed64BE(header + 8), DecodeFixed64BE(header + 16),
                                  static_cast<uint32_t>(have), static_cast<uint32_t>(slot + 1)));
    }
    slot += 1 + uint64_t{count};
  }
  return Status::Ok();
}

Status Segments::Forget(uint32_t segment) {
  MutexLock l(&mu_);
  if (open_ != nullptr && open_->number == segment) {
    return Status::InvalidArgument(FileName(dir_, segment) + " is open for appends");
  }
  files_.erase(segment);
  return Status::Ok();
}

Status Segments::Remove(uint32_t segment) {
  const std::string path = FileName(dir_, segment);
  STABLEFS_RETURN_IF_ERROR(Forget(segment));
  STABLEFS_RETURN_IF_ERROR(
      FromRocks(fs_->DeleteFile(path, rocksdb::IOOptions(), nullptr), "cannot remove " + path));
  return SyncDir();
}

uint64_t Segments::bytes() const {
  MutexLock l(&mu_);
  uint64_t total = 0;
  for (const auto& [number, file] : files_) {
    struct stat st;
    if (fstat(file->fd, &st) == 0) total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

}  // namespace stablefs
