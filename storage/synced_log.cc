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

constexpr std::string_view kMagic = "stablsy2";
constexpr std::string_view kMagicV1 = "stablsyn";
constexpr size_t kFields = SyncedLog::kRecordSize - 8;      // before the checksum
constexpr size_t kFieldsV1 = SyncedLog::kRecordSizeV1 - 8;  // format 1

void EncodeRecord(char* r, const SyncedMark& m) {
  std::memcpy(r, kMagic.data(), 8);
  EncodeFixed64BE(r + 8, m.generation);
  EncodeFixed64BE(r + 16, m.sequence);
  EncodeFixed64BE(r + 24, m.manifest_number);
  EncodeFixed64BE(r + 32, m.manifest_size);
  EncodeFixed64BE(r + 40, m.wal_number);
  EncodeFixed64BE(r + 48, m.wal_sequence);
  EncodeFixed64BE(r + kFields, pi::Xxh3(r, kFields));
}

// A record of format 1: the fields up to the MANIFEST's size, no WAL holder.
bool DecodeRecordV1(const char* r, SyncedMark* m) {
  if (std::memcmp(r, kMagicV1.data(), 8) != 0) return false;
  if (DecodeFixed64BE(r + kFieldsV1) != pi::Xxh3(r, kFieldsV1)) return false;
  m->generation = DecodeFixed64BE(r + 8);
  m->sequence = DecodeFixed64BE(r + 16);
  m->manifest_number = DecodeFixed64BE(r + 24);
  m->manifest_size = DecodeFixed64BE(r + 32);
  return true;
}

bool DecodeRecord(const char* r, SyncedMark* m) {
  if (std::memcmp(r, kMagic.data(), 8) != 0) return false;
  if (DecodeFixed64BE(r + kFields) != pi::Xxh3(r, kFields)) return false;
  m->generation = DecodeFixed64BE(r + 8);
  m->sequence = DecodeFixed64BE(r + 16);
  m->manifest_number = DecodeFixed64BE(r + 24);
  m->manifest_size = DecodeFixed64BE(r + 32);
  m->wal_number = DecodeFixed64BE(r + 40);
  m->wal_sequence = DecodeFixed64BE(r + 48);
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
  // A file holds records of one format, the one it was written in at its last rewrite: format 1
  // if no record slot of the current size starts with the current magic but one of format 1 does.
  bool v1 = false;
  {
    bool current = false, old = false;
    for (size_t off = 0; off + 8 <= data.size(); off += kRecordSize) {
      current = current || std::memcmp(data.data() + off, kMagic.data(), 8) == 0;
    }
    for (size_t off = 0; off + 8 <= data.size(); off += kRecordSizeV1) {
      old = old || std::memcmp(data.data() + off, kMagicV1.data(), 8) == 0;
    }
    v1 = !current && old;
  }
  const size_t size = v1 ? kRecordSizeV1 : kRecordSize;
  uint64_t bad = 0, good = 0;
  for (size_t off = 0; off + size <= data.size(); off += size) {
    SyncedMark m;
    if (!(v1 ? DecodeRecordV1(data.data() + off, &m) : DecodeRecord(data.data() + off, &m))) {
      bad++;
      continue;
    }
    good++;
    if (m.generation >= mark->generation) *mark = m;
  }
  if (data.size() % size != 0) bad++;
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

Status SyncedLog::Append(uint64_t sequence, uint64_t manifest_number, uint64_t manifest_size,
                         uint64_t wal_number, uint64_t wal_sequence) {
  if (!error_.ok()) return error_;
  SyncedMark m;
  m.generation = last_.generation + 1;
  m.sequence = std::max(sequence, last_.sequence);
  m.manifest_number = manifest_number;
  m.manifest_size = manifest_size;
  m.wal_number = last_.wal_number;
  m.wal_sequence = last_.wal_sequence;
  if (wal_number != 0 && wal_sequence > last_.wal_sequence) {
    m.wal_number = wal_number;
    m.wal_sequence = wal_sequence;
  }
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
