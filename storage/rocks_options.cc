// RocksDB's options for a store: the database's and each column family's, sized to the disk
// (SpaceFor), the logger RocksDB writes to, and the process's open-file limit.
#include <rocksdb/cache.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <sys/resource.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "storage/log.h"
#include "storage/rocks_internal.h"

namespace stablefs::rocks_internal {

namespace {

// RocksDB's warnings and errors go to stderr through Log (storage/log.h), with the program's other
// messages, instead of a LOG file in the store: the store's disk may be full, and RocksDB aborts
// the process (an assertion Debian's build keeps) when it appends to a log file whose last write
// failed.
class StderrLogger : public rocksdb::Logger {
 public:
  explicit StderrLogger(rocksdb::InfoLogLevel level) : rocksdb::Logger(level) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    std::vsnprintf(line, sizeof(line), format, ap);
    Log(LogLevel::kError, "rocksdb: %s", line);
  }
};

}  // namespace

Budget SpaceFor(const std::string& path, const RocksOptions& o) {
  uint64_t disk = 0;
  struct statvfs sv;
  if (statvfs(path.c_str(), &sv) == 0) disk = uint64_t{sv.f_blocks} * sv.f_frsize;
  Budget b;
  b.data_write_buffer = o.data_write_buffer_bytes;
  b.meta_write_buffer = 16 << 20;
  b.max_wal = o.max_wal_bytes;
  uint64_t slack = 16 << 20;
  if (disk > 0) {
    b.data_write_buffer =
        std::min<uint64_t>(b.data_write_buffer, std::max<uint64_t>(disk / 32, 1 << 20));
    b.meta_write_buffer =
        std::min<uint64_t>(b.meta_write_buffer, std::max<uint64_t>(disk / 256, 256 << 10));
    b.max_wal = std::min<uint64_t>(b.max_wal, std::max<uint64_t>(disk / 16, 1 << 20));
    slack = std::clamp<uint64_t>(disk / 32, 1 << 20, 16 << 20);
  }
  b.segment = o.segment_bytes;
  if (b.segment == 0) {
    b.segment = 256 << 20;
    if (disk > 0) b.segment = std::clamp<uint64_t>(disk / 64, 1 << 20, b.segment);
  }
  b.segment = std::clamp<uint64_t>(b.segment, 4 * kBlockSize, uint64_t{UINT32_MAX} * kBlockSize);
  // Every family may hold two full memtables (one flushing).
  b.reserve =
      2 * (b.data_write_buffer + (kNumSpaces - 1) * b.meta_write_buffer) + b.max_wal + slack;
  return b;
}

rocksdb::DBOptions DbOptions(const RocksOptions& options, bool create, const Budget& budget) {
  rocksdb::DBOptions db_options;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.create_if_missing = create;
  db_options.create_missing_column_families = create;
  db_options.error_if_exists = create;
  db_options.paranoid_checks = true;
  // The MANIFEST records every closed WAL file once it is synced, with its size, and recovery
  // refuses a store where one is missing or shorter. (The live WAL file is not recorded; the
  // synced log's WAL holder covers it: CheckSequence.)
  db_options.track_and_verify_wals_in_manifest = true;
  db_options.max_background_jobs = options.background_jobs;
  db_options.bytes_per_sync = 1 << 20;
  db_options.info_log_level = rocksdb::InfoLogLevel::ERROR_LEVEL;
  db_options.info_log = std::make_shared<StderrLogger>(db_options.info_log_level);
  db_options.keep_log_file_num = 4;
  // RocksDB would fadvise(RANDOM) every table and blob file it opens, which turns off the
  // kernel's readahead: a sequential read of a file then costs one disk read per 4 KiB blob
  // (measured: 104 MB/s cold). The kernel's readahead is adaptive and reads no more than asked
  // for a random pattern, so leaving it on costs point lookups nothing.
  db_options.advise_random_on_open = false;
  // Small metadata families would otherwise pin every WAL file until the WAL reaches four times
  // the memtable budget; past this size RocksDB flushes the families holding the oldest WAL.
  db_options.max_total_wal_size = budget.max_wal;
  return db_options;
}

rocksdb::ColumnFamilyOptions SpaceOptions(Space s, const Budget& budget, const RocksOptions& o,
                                          const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.cache_index_and_filter_blocks = true;
  // Point lookups of data blocks and block map entries skip SST files that cannot hold the key.
  if (s == Space::kData || s == Space::kBlockMap) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  }
  if (s == Space::kData) {
    // Data is protected and already dense; compression would cost CPU on every flush.
    cf.compression = rocksdb::kNoCompression;
    cf.write_buffer_size = budget.data_write_buffer;
    if (o.blob_files) {
      cf.enable_blob_files = true;
      // Whole blocks go to blob files; segment pointers (format version 2) stay in the tables.
      cf.min_blob_size = kBlockSize;
      cf.blob_file_size = 256ull << 20;
      cf.blob_compression_type = rocksdb::kNoCompression;
      cf.enable_blob_garbage_collection = true;
      cf.blob_garbage_collection_age_cutoff = 0.25;
    }
  } else {
    cf.write_buffer_size = budget.meta_write_buffer;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

rocksdb::FileSystem* FileSystemOf(const RocksOptions& o) {
  rocksdb::Env* env = o.env != nullptr ? o.env : rocksdb::Env::Default();
  return env->GetFileSystem().get();
}

void RaiseOpenFileLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace stablefs::rocks_internal
