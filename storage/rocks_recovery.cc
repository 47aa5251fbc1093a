// Recovery and the checks an open makes: the WAL filter that judges each replayed record
// (RocksBlockStore::WalFilter), the check of the MANIFEST before the database opens
// (CheckManifest), and the check that a recovery keeps every acknowledged write (CheckRecovers,
// CheckSequence).
#include <endian.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "storage/log.h"
#include "storage/pi.h"
#include "storage/rocks_internal.h"
#include "storage/wal_marks.h"

namespace stablefs {

using rocks_internal::ToView;

namespace {

namespace fs = std::filesystem;

std::string WalName(uint64_t number) {
  char name[32];
  std::snprintf(name, sizeof(name), "%06llu.log", static_cast<unsigned long long>(number));
  return name;
}

}  // namespace

namespace rocks_internal {

Status CheckManifest(const std::string& path, const SyncedMark& mark) {
  std::error_code ec;
  std::string current;
  {
    std::FILE* f = std::fopen((path + "/CURRENT").c_str(), "re");
    if (f == nullptr) return Status::Ok();  // RocksDB's open says what is wrong
    char buf[64];
    const size_t n = std::fread(buf, 1, sizeof(buf), f);
    std::fclose(f);
    current.assign(buf, n);
  }
  unsigned long long number = 0;
  char nl = 0;
  if (std::sscanf(current.c_str(), "MANIFEST-%llu%c", &number, &nl) != 2 || nl != '\n') {
    return Status::Ok();  // not RocksDB's format: its open refuses it
  }
  char want[32];
  std::snprintf(want, sizeof(want), "MANIFEST-%06llu",
                static_cast<unsigned long long>(mark.manifest_number));
  const std::string tail =
      "; opening it would undo acknowledged writes, so the store is not opened (keep a copy of "
      "it before trying to repair it)";
  if (number < mark.manifest_number) {
    return Status::Corruption(path + ": CURRENT names " + current.substr(0, current.size() - 1) +
                              ", older than " + want + " that the synced log names" + tail);
  }
  if (number == mark.manifest_number) {
    const auto size = fs::file_size(fs::path(path) / want, ec);
    if (ec || size < mark.manifest_size) {
      return Status::Corruption(
          path + ": " + want + " is " +
          (ec ? std::string("missing") : std::to_string(size) + " bytes long") +
          ", but its version edits were synced up to " + std::to_string(mark.manifest_size) +
          " bytes" + tail);
    }
  }
  return Status::Ok();
}

}  // namespace rocks_internal

void RocksBlockStore::WalFilter::ColumnFamilyLogNumberMap(
    const std::map<uint32_t, uint64_t>& logs, const std::map<std::string, uint32_t>& ids) {
  family_logs_ = logs;
  auto d = ids.find(SpaceName(Space::kData));
  if (d != ids.end()) {
    data_id_ = d->second;
    auto l = logs.find(data_id_);
    if (l != logs.end()) data_log_ = l->second;
  }
  auto m = ids.find(SpaceName(Space::kMeta));
  if (m != ids.end()) meta_id_ = m->second;
  // Called once, with the database locked, before the first record: what every sync recorded.
  if (store_->segments_ != nullptr) durable_ = ReadWalMarks(store_->path_, meta_id_).highest;
}

rocksdb::WalFilter::WalProcessingOption RocksBlockStore::WalFilter::LogRecordFound(
    unsigned long long log_number, const std::string& /*log_file_name*/,
    const rocksdb::WriteBatch& batch, rocksdb::WriteBatch* /*new_batch*/, bool* /*batch_changed*/) {
  NoteRecord(log_number, batch);
  Segments* segs = store_->segments_.get();
  if (segs == nullptr) return WalProcessingOption::kContinueProcessing;
  struct Collect : PassOverHandler {
    uint32_t data_id, meta_id;
    std::vector<std::pair<std::string, std::string>> pointers;
    std::vector<SegmentWatermark> marks;
    rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      SegmentWatermark mark;
      if (cf == data_id && IsSegmentPointer(value.size())) {
        pointers.emplace_back(key.ToString(), value.ToString());
      } else if (cf == meta_id && ToView(key) == kSegmentsSyncedKey &&
                 DecodeSegmentWatermark(ToView(value), &mark)) {
        marks.push_back(mark);
      }
      return rocksdb::Status::OK();
    }
  } c;
  c.data_id = data_id_;
  c.meta_id = meta_id_;
  // A record this cannot read is not replayed unjudged: RocksDB would fail on it too.
  if (!batch.Iterate(&c).ok()) return WalProcessingOption::kCorruptedRecord;
  // A watermark in a record was durable before the record was written.
  for (const SegmentWatermark& m : c.marks) {
    if (m.segment > durable_.segment ||
        (m.segment == durable_.segment && m.slots > durable_.slots)) {
      durable_ = m;
    }
  }
  if (log_number < data_log_ || c.pointers.empty()) {
    return WalProcessingOption::kContinueProcessing;  // its data part is not replayed
  }
  pi::Profile profile;
  std::array<uint8_t, 16> uuid;
  const bool have_profile = segs->RecordedIdentity(&uuid, &profile).ok();
  char block[kBlockSize];
  for (const auto& [key, value] : c.pointers) {
    uint64_t ino = 0, index = 0;
    ParseDataKey(key, &ino, &index);
    Status s;
    SegmentLocation loc;
    if (value.size() < kSegmentPointerPrefix) {
      s = Status::Corruption("a segment pointer of " + std::to_string(value.size()) + " bytes");
    } else {
      loc = DecodeSegmentPointer(value.data());
      if (durable_.Covers(loc)) continue;
    }
    if (s.ok() && !have_profile) s = Status::NotFound("no segment files");
    if (s.ok() && value.size() != SegmentPointerSize(profile)) {
      s = Status::Corruption("a segment pointer of " + std::to_string(value.size()) + " bytes");
    }
    char* blocks[1] = {block};
    if (s.ok()) s = segs->Read(loc, 1, blocks);
    pi::Mismatch mismatch;
    if (s.ok() &&
        !pi::Verify(profile, block, kBlockSize, value.data() + kSegmentPointerPrefix,
                    FirstSectorOfBlock(profile, index), pi::AppTagForOwner(ino), &mismatch)) {
      s = Status::Protection(pi::DescribeMismatch(profile, ino, index * kBlockSize, mismatch));
    }
    if (!s.ok()) {
      Log(LogLevel::kWarning,
          "recovery: a write to inode %llu was not synced and its block at "
          "offset %llu (segment %u slot %u) did not survive the crash (%s); the write "
          "is undone",
          static_cast<unsigned long long>(ino), static_cast<unsigned long long>(index * kBlockSize),
          loc.segment, loc.slot, s.ToString().c_str());
      store_->recovery_dropped_++;
      return WalProcessingOption::kIgnoreCurrentRecord;
    }
  }
  return WalProcessingOption::kContinueProcessing;
}

void RocksBlockStore::WalFilter::NoteRecord(uint64_t log_number, const rocksdb::WriteBatch& batch) {
  const std::string& rep = batch.Data();
  const uint32_t count = batch.Count();
  if (rep.size() < 12 || count == 0) return;  // a record without writes has no sequence numbers
  uint64_t first;
  std::memcpy(&first, rep.data(), 8);  // WriteBatch: fixed64 sequence, fixed32 count, records
  first = le64toh(first);
  const uint64_t last = first + count - 1;
  if (!runs_.empty() && runs_.back().log_number == log_number && runs_.back().last + 1 == first) {
    runs_.back().last = last;
  } else {
    runs_.push_back(Run{log_number, first, last});
  }
}

Status RocksBlockStore::CheckRecovers(const std::string& path, const RocksOptions& options,
                                      const SyncedMark& mark) {
  std::unique_ptr<RocksBlockStore> probe(new RocksBlockStore(path));
  probe->probe_ = true;
  RocksOptions o = options;
  o.read_only = true;
  STABLEFS_RETURN_IF_ERROR(probe->OpenDb(o, /*create=*/false));
  return probe->CheckSequence(mark);
}

Status RocksBlockStore::CheckSequence(const SyncedMark& mark) {
  const std::string acked = path_ + ": its syncs acknowledged every write up to sequence number " +
                            std::to_string(mark.sequence) + " (the synced log), but ";
  const std::string tail =
      "; opening it would undo acknowledged writes, so the store is not opened (keep a copy of it "
      "before trying to repair it)";
  const uint64_t reached = db_->GetLatestSequenceNumber();
  if (reached < mark.sequence) {
    return Status::Corruption(acked + "a recovery of its files reaches only " +
                              std::to_string(reached) +
                              ": the WAL or the MANIFEST was damaged or cut short" + tail);
  }
  // The recovered sequence alone does not show that nothing is missing: the MANIFEST records the
  // database's last sequence number at each flush, past writes that only the WAL holds.
  //
  // Every write after the oldest point a column family has not flushed is in the WAL files
  // RocksDB replays, contiguously: from the first record replayed up to the mark, no sequence
  // number may be missing. (Past the mark, a power cut may leave a gap: unsynced records of one
  // file lost, a later file's kept.)
  const std::vector<WalFilter::Run>& runs = wal_filter_->runs();
  if (!runs.empty() && runs.front().first <= mark.sequence) {
    size_t i = 0;
    uint64_t reach = runs[0].last;
    while (i + 1 < runs.size() && runs[i + 1].first == reach + 1) reach = runs[++i].last;
    if (reach < mark.sequence) {
      const std::string after = i + 1 < runs.size()
                                    ? "resume at " + std::to_string(runs[i + 1].first) + " in " +
                                          WalName(runs[i + 1].log_number)
                                    : "end there";
      return Status::Corruption(acked + "its WAL records run from sequence number " +
                                std::to_string(runs[0].first) + " (" + WalName(runs[0].log_number) +
                                ") only to " + std::to_string(reach) + " (" +
                                WalName(runs[i].log_number) + ") and " + after +
                                ": a WAL file was removed, cut short or damaged" + tail);
    }
  }
  // Writes before the first record replayed were flushed, unless the file holding them is gone:
  // the mark names a WAL file that held an acknowledged batch. If the MANIFEST does not let
  // recovery skip that file (its number is at least every family's log number or the lowest log
  // number to keep, whichever is higher: what RocksDB replays from), the batch must have been
  // replayed. RocksDB removes a WAL file only once that number has passed it.
  if (mark.wal_number != 0) {
    uint64_t replay_from = 0;
    for (const auto& [id, log] : wal_filter_->family_logs()) {
      replay_from = replay_from == 0 ? log : std::min(replay_from, log);
    }
    uint64_t keep = 0;
    if (db_->GetIntProperty(rocksdb::DB::Properties::kMinLogNumberToKeep, &keep)) {
      replay_from = std::max(replay_from, keep);
    }
    bool replayed = false;
    for (const WalFilter::Run& r : runs) {
      if (r.log_number == mark.wal_number && r.first <= mark.wal_sequence &&
          mark.wal_sequence <= r.last) {
        replayed = true;
      }
    }
    if (mark.wal_number >= replay_from && !replayed) {
      std::error_code ec;
      const bool exists = fs::exists(fs::path(path_) / WalName(mark.wal_number), ec);
      return Status::Corruption(
          acked + WalName(mark.wal_number) + ", which held the acknowledged write ending at " +
          "sequence number " + std::to_string(mark.wal_sequence) +
          " and which the MANIFEST says is not yet all in tables, " +
          (exists ? "no longer holds it (cut short or damaged)" : "is missing") + tail);
    }
  }
  return Status::Ok();
}

}  // namespace stablefs
