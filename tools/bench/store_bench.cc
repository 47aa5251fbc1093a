// db_bench-like numbers for RocksBlockStore: format version 2 (runs of blocks in segment files,
// the default), and format version 1 with data blocks in BlobDB blob files and without.
//
// For each of the three, in one run, each on a fresh store with the default PI
// profile in a temporary directory (removed afterwards, also on failure or SIGINT/SIGTERM), it
// measures: (1) a sequential fill and (2) a random overwrite of --mib MiB of 4 KiB blocks over a
// few files, 32 blocks per WriteBatch, no sync per batch, one Sync() at the end; (3) --sync-writes
// single-block writes with sync=true on one thread and on four (group commit); (4) random 4 KiB
// reads and sequential 32-block reads, all verified by ReadBlocks; (5) the write amplification of
// (1) and (2): the process's storage writes (/proc/self/io write_bytes, counted when a page is
// first dirtied) once flushes and compactions settle, over the data bytes written, with the shares
// of WAL, SST, blob and segment files. It prints one table, the default against each version 1
// configuration, and asserts nothing:
//   store_bench [--mib N] [--sync-writes N] [--dir PATH]
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "storage/format.h"
#include "storage/rocks_block_store.h"
#include "tools/bench/scratch_dir.h"

namespace stablefs {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
// One row of the table: what was measured and its value under one configuration.
using Rows = std::vector<std::pair<std::string, double>>;

constexpr uint64_t kFiles = 4;            // inodes kFirstFreeIno .. + kFiles - 1
constexpr size_t kBatchBlocks = 32;       // blocks per WriteBatch and per sequential read
constexpr uint64_t kRandomReads = 50000;  // phase 4's random single-block reads
constexpr int kSyncThreads = 4;           // phase 3's group-commit writers
constexpr double kMiB = 1024.0 * 1024.0;

using bench::g_interrupted;
Status Interrupted() { return Status::IOError("interrupted by a signal"); }

// Stamped into the first bytes of every block written, so that no two writes carry equal data.
std::atomic<uint64_t> g_sequence{0};

struct Flags {
  uint64_t mib = 1024;          // --mib: data written by each of phases 1 and 2
  uint64_t sync_writes = 2000;  // --sync-writes: writes of each half of phase 3
  std::string dir;              // --dir: parent of the temporary directory
};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The counters of /proc/self/io by name ("write_bytes:", "wchar:", ...).
std::map<std::string, uint64_t> ProcIo() {
  std::map<std::string, uint64_t> counters;
  std::ifstream in("/proc/self/io");
  std::string name;
  uint64_t value;
  while (in >> name >> value) counters[name] = value;
  return counters;
}

// The apparent size of each file under `dir` (RocksDB's files, and segments/), by path
// relative to it; not st_blocks, which counts the space RocksDB preallocates for the WAL.
std::map<std::string, uint64_t> FileSizes(const fs::path& dir) {
  std::map<std::string, uint64_t> sizes;
  std::error_code ec, size_ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(size_ec)) continue;
    const uintmax_t size = it->file_size(size_ec);  // fails for a file deleted meanwhile
    if (!size_ec) sizes[fs::relative(it->path(), dir, size_ec).string()] = size;
  }
  return sizes;
}

uint64_t DirBytes(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& [name, size] : FileSizes(dir)) total += size;
  return total;
}

// Bytes written to each kind of file of a directory, from the largest size seen of each file,
// sampled every 50 ms on a thread. RocksDB only appends and never reuses a file name, so this is
// exact but for files that come and go between two samples.
class FileWriteSampler {
 public:
  explicit FileWriteSampler(fs::path dir) : dir_(std::move(dir)), thread_([this] { Loop(); }) {}
  ~FileWriteSampler() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
  }
  // Bytes in files whose names end with `suffix`. REQUIRES: Stop() returned.
  uint64_t Bytes(const std::string& suffix) const {
    uint64_t total = 0;
    for (const auto& [name, size] : largest_) total += name.ends_with(suffix) ? size : 0;
    return total;
  }

 private:
  void Loop() {
    for (bool last = false; !last;) {
      last = stop_;
      for (const auto& [name, size] : FileSizes(dir_)) {
        largest_[name] = std::max(largest_[name], size);
      }
      if (!last) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  const fs::path dir_;
  std::atomic<bool> stop_{false};
  std::map<std::string, uint64_t> largest_;  // written by the thread alone until Stop()
  std::thread thread_;
};

// An integer property of the data column family; 0 if unknown.
uint64_t IntProperty(const RocksBlockStore& store, const std::string& name) {
  return std::strtoull(store.DataProperty(name).c_str(), nullptr, 10);
}

// Writes blocks pick(0) .. pick(count - 1), `per_batch` to a WriteBatch. A block number n is
// block n % per_file of file n / per_file. Data is random (seeded by `seed`) and stamped.
Status WriteBlocks(RocksBlockStore* store, uint64_t per_file, uint64_t count, size_t per_batch,
                   bool sync, const std::function<uint64_t(uint64_t)>& pick, uint64_t seed) {
  const size_t tb = store->tuple_bytes_per_block();
  std::vector<char> data(per_batch * kBlockSize), tuples(per_batch * tb);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < data.size(); i += sizeof(uint64_t)) {
    const uint64_t r = rng();
    std::memcpy(&data[i], &r, sizeof(r));
  }
  WriteOptions options;
  options.sync = sync;
  WriteBatch batch;
  for (uint64_t i = 0; i < count;) {
    if (g_interrupted) return Interrupted();
    batch.Clear();
    for (size_t j = 0; j < per_batch && i < count; j++, i++) {
      const uint64_t n = pick(i), ino = kFirstFreeIno + n / per_file, index = n % per_file;
      const uint64_t stamp = g_sequence.fetch_add(1, std::memory_order_relaxed);
      std::memcpy(&data[j * kBlockSize], &stamp, sizeof(stamp));
      store->GenerateBlockPi(ino, index, &data[j * kBlockSize], &tuples[j * tb]);
      batch.PutBlock(ino, index, &data[j * kBlockSize], &tuples[j * tb]);
    }
    STABLEFS_RETURN_IF_ERROR(store->Write(batch, options));
  }
  return Status::Ok();
}

// Waits until the data family has no flush or compaction running or pending (two polls in a row,
// 100 ms apart), at most 10 minutes.
Status Settle(const RocksBlockStore& store) {
  static const char* const kBusy[] = {
      "rocksdb.num-running-flushes", "rocksdb.mem-table-flush-pending",
      "rocksdb.num-running-compactions", "rocksdb.compaction-pending"};
  int idle = 0;
  for (int poll = 0; poll < 6000 && idle < 2; poll++) {
    if (g_interrupted) return Interrupted();
    uint64_t busy = 0;
    for (const char* name : kBusy) busy += IntProperty(store, name);
    idle = busy == 0 ? idle + 1 : 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (idle < 2) std::fprintf(stderr, "warning: compaction still busy after 600 s\n");
  return Status::Ok();
}

// A store configuration measured.
struct Config {
  const char* name;
  uint32_t format_version;
  bool blob_files;
};
constexpr Config kConfigs[] = {
    {"v2-segments", 2, true}, {"v1-blob", 1, true}, {"v1-noblob", 1, false}};

// Runs every phase on a new store at `path` and appends the numbers to *rows.
Status RunOne(const fs::path& path, const Config& config, const Flags& flags, Rows* rows) {
  RocksOptions options;
  options.blob_files = config.blob_files;
  CreateOptions create;
  create.format_version = config.format_version;
  std::unique_ptr<RocksBlockStore> store;
  STABLEFS_RETURN_IF_ERROR(RocksBlockStore::Create(path.string(), create, options, &store));
  const uint64_t per_file = flags.mib * (1 << 20) / kBlockSize / kFiles;
  const uint64_t total = per_file * kFiles;
  const double mib = total * kBlockSize / kMiB;
  const char* tag = config.name;
  auto add = [&](const char* name, double value) {  // also reports progress
    rows->emplace_back(name, value);
    std::fprintf(stderr, "[%s] %s: %.2f\n", tag, name, value);
  };
  std::mt19937_64 rng(1);  // the same blocks in both configurations

  // 1, 2: fill, then overwrite at random, each followed by one Sync().
  std::map<std::string, uint64_t> io0 = ProcIo();
  FileWriteSampler sampler(path);
  Clock::time_point t = Clock::now();
  STABLEFS_RETURN_IF_ERROR(WriteBlocks(
      store.get(), per_file, total, kBatchBlocks, false, [](uint64_t i) { return i; }, 1));
  STABLEFS_RETURN_IF_ERROR(store->Sync());
  add("1 seq fill MiB/s", mib / Seconds(t));
  t = Clock::now();
  STABLEFS_RETURN_IF_ERROR(WriteBlocks(
      store.get(), per_file, total, kBatchBlocks, false, [&](uint64_t) { return rng() % total; },
      2));
  STABLEFS_RETURN_IF_ERROR(store->Sync());
  add("2 random overwrite MiB/s", mib / Seconds(t));

  // 5: what reached the files for phases 1 and 2, once the background work they caused is done.
  t = Clock::now();
  STABLEFS_RETURN_IF_ERROR(Settle(*store));
  add("  settle after 2: flush+compaction s", Seconds(t));
  std::map<std::string, uint64_t> io = ProcIo();
  double written = io["write_bytes:"] - io0["write_bytes:"];
  if (written == 0) {
    written = io["wchar:"] - io0["wchar:"];
    std::printf("note: %s: write_bytes is 0 on this file system; 5 uses wchar\n", tag);
  }
  add("5 write amp 1+2: file writes / data", written / (2 * mib * kMiB));
  add("  file writes 1+2 MiB", written / kMiB);
  sampler.Stop();
  add("  to WAL files (.log) MiB", sampler.Bytes(".log") / kMiB);
  add("  to SST files (.sst) MiB", sampler.Bytes(".sst") / kMiB);
  add("  to blob files (.blob) MiB", sampler.Bytes(".blob") / kMiB);
  add("  to segment files (.seg) MiB", sampler.Bytes(".seg") / kMiB);
  add("  cancelled (deleted while dirty) MiB",
      (io["cancelled_write_bytes:"] - io0["cancelled_write_bytes:"]) / kMiB);
  add("  memtables not yet flushed MiB",
      IntProperty(*store, "rocksdb.cur-size-all-mem-tables") / kMiB);
  add("  store dir after 2 MiB", DirBytes(path) / kMiB);

  // 3: single-block synced writes at random blocks, on one thread, then on kSyncThreads.
  for (int threads : {1, kSyncThreads}) {
    const uint64_t each = flags.sync_writes / threads;
    std::vector<Status> status(threads);
    std::vector<std::thread> workers;
    t = Clock::now();
    for (int w = 0; w < threads; w++) {
      workers.emplace_back([&, w] {
        std::mt19937_64 r(100 * threads + w);
        status[w] = WriteBlocks(
            store.get(), per_file, each, 1, true, [&](uint64_t) { return r() % total; }, 3 + w);
      });
    }
    for (std::thread& worker : workers) worker.join();
    for (const Status& s : status) STABLEFS_RETURN_IF_ERROR(s);
    add(threads == 1 ? "3 synced 1-block writes/s, 1 thread"
                     : "3 synced 1-block writes/s, 4 threads",
        each * threads / Seconds(t));
  }

  // 4: random single-block reads, then every file in kBatchBlocks-block reads.
  std::vector<char> data(kBatchBlocks * kBlockSize);
  std::unique_ptr<bool[]> present(new bool[kBatchBlocks]);
  auto read = [&](uint64_t ino, uint64_t index, size_t n) -> Status {
    if (g_interrupted) return Interrupted();
    STABLEFS_RETURN_IF_ERROR(store->ReadBlocks(ino, index, n, data.data(), present.get()));
    const bool* hole = std::find(present.get(), present.get() + n, false);
    if (hole == present.get() + n) return Status::Ok();
    return Status::Corruption("inode " + std::to_string(ino) + " block " +
                              std::to_string(index + (hole - present.get())) + " reads as a hole");
  };
  t = Clock::now();
  for (uint64_t i = 0; i < kRandomReads; i++) {
    const uint64_t n = rng() % total;
    STABLEFS_RETURN_IF_ERROR(read(kFirstFreeIno + n / per_file, n % per_file, 1));
  }
  add("4 random 4K reads MiB/s", kRandomReads * kBlockSize / kMiB / Seconds(t));
  t = Clock::now();
  for (uint64_t f = 0; f < kFiles; f++) {
    for (uint64_t index = 0; index < per_file; index += kBatchBlocks) {
      STABLEFS_RETURN_IF_ERROR(
          read(kFirstFreeIno + f, index, std::min<uint64_t>(kBatchBlocks, per_file - index)));
    }
  }
  add("4 seq 32-block reads MiB/s", mib / Seconds(t));

  // Sizes at the end.
  add("final store dir MiB", DirBytes(path) / kMiB);
  add("  estimate-live-data-size MiB",
      IntProperty(*store, "rocksdb.estimate-live-data-size") / kMiB);
  add("  total-blob-file-size MiB", IntProperty(*store, "rocksdb.total-blob-file-size") / kMiB);
  add("  live-blob-file-size MiB", IntProperty(*store, "rocksdb.live-blob-file-size") / kMiB);
  return Status::Ok();
}

int Run(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i], value = i + 1 < argc ? argv[i + 1] : "";
    if (flag == "--mib" && !value.empty()) {
      flags.mib = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--sync-writes" && !value.empty()) {
      flags.sync_writes = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--dir" && !value.empty()) {
      flags.dir = value;
    } else {
      std::fprintf(stderr, "usage: %s [--mib N] [--sync-writes N] [--dir PATH]\n", argv[0]);
      return 2;
    }
  }
  if (flags.mib < 1 || flags.sync_writes < kSyncThreads) {
    std::fprintf(stderr, "--mib must be at least 1 and --sync-writes at least %d\n", kSyncThreads);
    return 2;
  }
  std::string command;
  for (int i = 0; i < argc; i++) command += (i ? " " : "") + std::string(argv[i]);
  struct utsname uts;
  std::printf("command: %s\nkernel: %s\n", command.c_str(), uname(&uts) == 0 ? uts.release : "?");

  std::unique_ptr<bench::ScratchDir> scratch = bench::MakeScratchDir(flags.dir, "store_bench");
  if (scratch == nullptr) return 1;
  const bench::ScratchDir& tmp = *scratch;
  std::printf(
      "stores in %s; PI %s; %llu files of %llu 4 KiB blocks; %zu blocks per batch\n\n",
      tmp.path.c_str(), pi::Profile().ToString().c_str(), static_cast<unsigned long long>(kFiles),
      static_cast<unsigned long long>(flags.mib * (1 << 20) / kBlockSize / kFiles), kBatchBlocks);
  std::fflush(stdout);

  constexpr size_t kN = std::size(kConfigs);
  Rows rows[kN];
  for (size_t c = 0; c < kN; c++) {
    const fs::path path = tmp.path / kConfigs[c].name;
    Status s = RunOne(path, kConfigs[c], flags, &rows[c]);
    std::error_code ec;
    fs::remove_all(path, ec);
    if (!s.ok()) {
      std::fprintf(stderr, "store_bench: %s\n", s.ToString().c_str());
      return 1;
    }
  }

  std::printf("%-40s %12s %12s %12s %10s %10s\n", "phase", kConfigs[0].name, kConfigs[1].name,
              kConfigs[2].name, "v2/v1-blob", "v2/noblob");
  for (size_t i = 0; i < rows[0].size(); i++) {
    const double v2 = rows[0][i].second, blob = rows[1][i].second, noblob = rows[2][i].second;
    char r1[16] = "-", r2[16] = "-";
    if (blob != 0) std::snprintf(r1, sizeof(r1), "%.2f", v2 / blob);
    if (noblob != 0) std::snprintf(r2, sizeof(r2), "%.2f", v2 / noblob);
    std::printf("%-40s %12.2f %12.2f %12.2f %10s %10s\n", rows[0][i].first.c_str(), v2, blob,
                noblob, r1, r2);
  }
  return 0;
}

}  // namespace
}  // namespace stablefs

int main(int argc, char** argv) {
  try {
    return stablefs::Run(argc, argv);  // unwinds the temporary directory's remover on exceptions
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_bench: %s\n", e.what());
    return 1;
  }
}
