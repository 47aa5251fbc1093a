// The synced log: records of what the store's syncs acknowledged (synced_log.h).
#include "storage/synced_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/coding.h"
#include "storage/pi.h"
#include "storage/rocks_status.h"

namespace stablefs {

namespace {

constexpr std::string_view kMagic = "stablsyn";
constexpr size_t kFields = 8 + 8 + 8 + 8 + 8;  // before the checksum

void EncodeRecord(char* r, const SyncedMark& m) {
  std::memcpy(r, kMagic.data(), 8);
  EncodeFixed64BE(r + 8, m.generation);
  EncodeFixed64BE(r + 16, m.sequence);
  EncodeFixed64BE(r + 24, m.manifest_number);
  EncodeFixed64BE(r + 32, m.manifest_size);
  EncodeFixed64BE(r + kFields, pi::Xxh3(r, kFields));
}

bool DecodeRecord(const char* r, SyncedMark* m) {
  if (std::memcmp(r, kMagic.data(), 8) != 0) return false;
  if (DecodeFixed64BE(r + kFields) != pi::Xxh3(r, kFields)) return false;
  m->generation = DecodeFixed64BE(r + 8);
  m->sequence = DecodeFixed64BE(r + 16);
  m->manifest_number = DecodeFixed64BE(r + 24);
  m->manifest_size = DecodeFixed64BE(r + 32);
  return true;
}

}  // namespace

Status SyncedLog::Read(const std::string& store, bool* found, SyncedMark* mark, uint64_t* damaged) {
  *found = false;
  *mark = SyncedMark();
  if (damaged != nullptr) *damaged = 0;
  const std::string path = FileName(store);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  }
  std::string data;
  char buf[1 << 14];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return Status::IOError("cannot read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  *found = true;
  uint64_t bad = 0, good = 0;
  for (size_t off = 0; off + kRecordSize <= data.size(); off += kRecordSize) {
    SyncedMark m;
    if (!DecodeRecord(data.data() + off, &m)) {
      bad++;
      continue;
    }
    good++;
    if (m.generation >= mark->generation) *mark = m;
  }
  if (data.size() % kRecordSize != 0) bad++;
  if (damaged != nullptr) *damaged = bad;
  if (good == 0 && !data.empty()) {
    return Status::Corruption(path + " holds no intact record (" + std::to_string(data.size()) +
                              " bytes)");
  }
  return Status::Ok();
}

Status SyncedLog::Start(rocksdb::FileSystem* fs, const std::string& store, const SyncedMark& mark,
                        std::unique_ptr<SyncedLog>* out) {
  std::unique_ptr<SyncedLog> log(new SyncedLog(fs, store));
  STABLEFS_RETURN_IF_ERROR(log->Rewrite(mark));
  *out = std::move(log);
  return Status::Ok();
}

SyncedLog::~SyncedLog() {
  if (file_ != nullptr) file_->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
}

// A new file with the one record, synced, renamed over the log, the directory synced: a crash
// at any point leaves the old log or the new one whole.
Status SyncedLog::Rewrite(const SyncedMark& mark) {
  const rocksdb::IOOptions io;
  const std::string path = FileName(store_), fresh = path + ".new";
  if (file_ != nullptr) {
    file_->Close(io, nullptr).PermitUncheckedError();
    file_.reset();
  }
  std::unique_ptr<rocksdb::FSWritableFile> w;
  STABLEFS_RETURN_IF_ERROR(FromRocks(
      fs_->NewWritableFile(fresh, rocksdb::FileOptions(), &w, nullptr), "cannot create " + fresh));
  char r[kRecordSize];
  EncodeRecord(r, mark);
  rocksdb::IOStatus st = w->Append(rocksdb::Slice(r, kRecordSize), io, nullptr);
  if (st.ok()) st = w->Sync(io, nullptr);
  STABLEFS_RETURN_IF_ERROR(FromRocks(st, "cannot write " + fresh));
  STABLEFS_RETURN_IF_ERROR(
      FromRocks(fs_->RenameFile(fresh, path, io, nullptr), "cannot rename " + fresh));
  std::unique_ptr<rocksdb::FSDirectory> d;
  STABLEFS_RETURN_IF_ERROR(
      FromRocks(fs_->NewDirectory(store_, io, &d, nullptr), "cannot open " + store_));
  STABLEFS_RETURN_IF_ERROR(FromRocks(d->Fsync(io, nullptr), "cannot sync " + store_));
  file_ = std::move(w);
  bytes_ = kRecordSize;
  last_ = mark;
  return Status::Ok();
}

Status SyncedLog::Append(uint64_t sequence, uint64_t manifest_number, uint64_t manifest_size) {
  if (!error_.ok()) return error_;
  SyncedMark m;
  m.generation = last_.generation + 1;
  m.sequence = std::max(sequence, last_.sequence);
  m.manifest_number = manifest_number;
  m.manifest_size = manifest_size;
  Status s;
  if (bytes_ + kRecordSize > kMaxBytes) {
    s = Rewrite(m);
  } else {
    const rocksdb::IOOptions io;
    char r[kRecordSize];
    EncodeRecord(r, m);
    rocksdb::IOStatus st = file_->Append(rocksdb::Slice(r, kRecordSize), io, nullptr);
    if (st.ok()) st = file_->Sync(io, nullptr);
    s = FromRocks(st, "cannot write " + FileName(store_));
    if (s.ok()) {
      bytes_ += kRecordSize;
      last_ = m;
    }
  }
  if (!s.ok()) error_ = s;
  return s;
}

}  // namespace stablefs
