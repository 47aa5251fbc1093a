// The synced log side of the store (storage/synced_log.h): acknowledging synced writes
// (Acknowledge, WriteAndAcknowledge), recording the MANIFEST after a flush, starting the log at an
// open; and the flush listener (RocksBlockStore::FlushListener) that syncs the segments before a
// flush of the data family and records the MANIFEST after every flush.
#include <endian.h>
#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "storage/log.h"
#include "storage/rocks_internal.h"
#include "storage/rocks_status.h"
#include "storage/synced_log.h"

namespace stablefs {

using rocks_internal::FileSystemOf;

void RocksBlockStore::FlushListener::OnFlushCompleted(rocksdb::DB* /*db*/,
                                                      const rocksdb::FlushJobInfo& /*info*/) {
  RocksBlockStore* store = store_->load(std::memory_order_acquire);
  if (store != nullptr) store->RecordManifest();
}

void RocksBlockStore::FlushListener::OnFlushBegin(rocksdb::DB* /*db*/,
                                                  const rocksdb::FlushJobInfo& info) {
  if (info.cf_name != SpaceName(Space::kData)) return;
  Segments* segs = segments_->load(std::memory_order_acquire);
  if (segs == nullptr) return;
  Status s = segs->Sync();
  if (!s.ok()) Log(LogLevel::kError, "sync of segments before a flush: %s", s.ToString().c_str());
}

Status RocksBlockStore::ManifestNow(uint64_t* number, uint64_t* size) {
  std::vector<std::string> files;
  STABLEFS_RETURN_IF_ERROR(FromRocks(db_->GetLiveFiles(files, size, /*flush_memtable=*/false),
                                     [&] { return "the live files of store " + path_; }));
  *number = 0;
  for (const std::string& f : files) {
    unsigned long long n = 0;
    if (std::sscanf(f.c_str(), "/MANIFEST-%llu", &n) == 1) *number = n;
  }
  return Status::Ok();
}

Status RocksBlockStore::StartSyncedLog(const RocksOptions& options, SyncedMark mark) {
  mark.generation++;
  STABLEFS_RETURN_IF_ERROR(ManifestNow(&mark.manifest_number, &mark.manifest_size));
  std::unique_ptr<SyncedLog> log;
  STABLEFS_RETURN_IF_ERROR(SyncedLog::Start(FileSystemOf(options), path_, mark, &log));
  {
    MutexLock l(&synced_mu_);
    synced_log_ = std::move(log);
  }
  synced_store_.store(this, std::memory_order_release);
  return Status::Ok();
}

uint64_t RocksBlockStore::CurrentWalNumber() {
  std::unique_ptr<rocksdb::LogFile> wal;
  if (!db_->GetCurrentWalFile(&wal).ok() || wal == nullptr) return 0;
  return wal->LogNumber();
}

Status RocksBlockStore::Acknowledge(uint64_t sequence) {
  return Acknowledge(sequence, WalHolder());
}

Status RocksBlockStore::Acknowledge(uint64_t sequence, const WalHolder& holder) {
  uint64_t wanted = acknowledge_wanted_.load(std::memory_order_relaxed);
  while (wanted < sequence &&
         !acknowledge_wanted_.compare_exchange_weak(wanted, sequence, std::memory_order_relaxed)) {
  }
  if (acknowledge_hook_) acknowledge_hook_(AcknowledgeStep::kWanted, sequence);
  MutexLock l(&synced_mu_);
  if (acknowledge_hook_) acknowledge_hook_(AcknowledgeStep::kLocked, sequence);
  if (holder.number != 0 && holder.sequence > holder_wanted_.sequence) holder_wanted_ = holder;
  if (synced_log_ == nullptr || synced_log_->last().sequence >= sequence) return Status::Ok();
  uint64_t number = 0, size = 0;
  STABLEFS_RETURN_IF_ERROR(ManifestNow(&number, &size));
  return synced_log_
      ->Append(acknowledge_wanted_.load(std::memory_order_relaxed), number, size,
               holder_wanted_.number, holder_wanted_.sequence)
      .WithContext("the synced log of store " + path_);
}

void RocksBlockStore::RecordManifest() {
  MutexLock l(&synced_mu_);
  if (synced_log_ == nullptr) return;
  uint64_t number = 0, size = 0;
  Status s = ManifestNow(&number, &size);
  if (s.ok() && number == synced_log_->last().manifest_number &&
      size == synced_log_->last().manifest_size) {
    return;
  }
  if (s.ok()) s = synced_log_->Append(synced_log_->last().sequence, number, size);
  if (!s.ok()) {
    Log(LogLevel::kError, "recording the MANIFEST of store %s after a flush: %s", path_.c_str(),
        s.ToString().c_str());
  }
}

// Not inlined: the suppression of RocksDB's own races (tests/tsan.supp) matches this frame.
__attribute__((noinline)) rocksdb::Status RocksBlockStore::DbWrite(const rocksdb::WriteOptions& wo,
                                                                   rocksdb::WriteBatch* wb) {
  return db_->Write(wo, wb);
}

Status RocksBlockStore::WriteAndAcknowledge(const rocksdb::WriteOptions& wo,
                                            rocksdb::WriteBatch* wb,
                                            const std::function<std::string()>& what) {
  // Every write published before this one is in the WAL ahead of it; with sync set, all of them
  // and this one are durable when Write returns (the batch then carries its sequence number).
  const uint64_t before = wo.sync ? db_->GetLatestSequenceNumber() : 0;
  // The WAL file the batch goes to: the current one before and after the write, if they are
  // the same (a switch in between leaves it unknown). It was synced with the batch.
  const uint64_t wal_before = wo.sync && wb->Count() > 0 ? CurrentWalNumber() : 0;
  STABLEFS_RETURN_IF_ERROR(FromRocks(DbWrite(wo, wb), what));
  if (!wo.sync) return Status::Ok();
  uint64_t covered = before;
  WalHolder holder;
  const std::string& rep = wb->Data();
  if (wb->Count() > 0 && rep.size() >= 12) {
    uint64_t first;
    std::memcpy(&first, rep.data(), 8);  // WriteBatch: fixed64 sequence, fixed32 count, records
    first = le64toh(first);
    if (first != 0) {
      covered = std::max(covered, first + wb->Count() - 1);
      if (wal_before != 0 && CurrentWalNumber() == wal_before) {
        holder.number = wal_before;
        holder.sequence = first + wb->Count() - 1;
      }
    }
  }
  return Acknowledge(covered, holder).WithContext(what());
}

}  // namespace stablefs
