// What stable pages cost writers: throughput and write latency under each StablePolicy.
//
// For `off` (the baseline), `wait` and `bounce`, in one run, each on a fresh RocksBlockStore in a
// temporary directory (removed afterwards, also on failure or SIGINT/SIGTERM) and a PageCache with
// default options but the policy and a flusher that writes back every few milliseconds
// (dirty_expire_ms = writeback_interval_ms = 5), it runs a rewrite-heavy load for --seconds:
// --threads writers each rewrite 512..4096 bytes at random offsets of a hot set of --pages pages
// of one file, serialized on the file as the kernel's i_rwsem serializes pwrite, while one thread
// calls Fsync every --fsync-ms ms. The latency of each write (i_rwsem wait included, as in
// pwrite) is recorded; writers meet pages under writeback all the time, which is what the policies
// differ in. Under `off` the store rejects batches a writer changed after PI generation (the 2011
// DIF/DIX failure): they are counted, their log lines silenced. It prints one table, each policy
// against `off`, and asserts nothing:
//   stable_pages_bench [--seconds N] [--threads N] [--pages N] [--fsync-ms N] [--dir PATH]
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
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fs/page_cache.h"
#include "storage/format.h"
#include "storage/log.h"
#include "storage/rocks_block_store.h"
#include "tools/bench/scratch_dir.h"

namespace stablefs {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Rows = std::vector<std::pair<std::string, double>>;  // metric, value under one policy

constexpr StablePolicy kPolicies[] = {StablePolicy::kOff, StablePolicy::kWait,
                                      StablePolicy::kBounce};
constexpr size_t kMinWrite = 512;

using bench::g_interrupted;

std::atomic<uint64_t> g_log_lines{0};  // log lines silenced during the runs

struct Flags {
  uint64_t seconds = 3;    // --seconds: load duration per policy
  uint64_t threads = 2;    // --threads: writer threads
  uint64_t pages = 16;     // --pages: hot set of the file
  uint64_t fsync_ms = 10;  // --fsync-ms: pause between two fsyncs
  std::string dir;         // --dir: parent of the temporary directory
};

std::string LoadAvg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// The value at quantile q of sorted v, in microseconds.
double QuantileUs(const std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  return v[i] / 1e3;
}

// Nanoseconds one 4 KiB memcpy takes here: the price of one bounce copy.
double MemcpyNsPerPage() {
  std::vector<char> src(1 << 20, 'x'), dst(1 << 20);
  const int rounds = 64;
  const Clock::time_point t = Clock::now();
  for (int r = 0; r < rounds; r++) {
    for (size_t off = 0; off < src.size(); off += kBlockSize) {
      std::memcpy(&dst[off], &src[off], kBlockSize);
    }
    src[r] = dst[src.size() - 1 - r];  // keep the copies observable
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t).count();
  return ns / (rounds * (src.size() / kBlockSize));
}

// Runs the load on a new store at `path` under `policy` and appends the numbers to *rows.
Status RunOne(const fs::path& path, StablePolicy policy, const Flags& flags, Rows* rows) {
  std::unique_ptr<RocksBlockStore> store;
  STABLEFS_RETURN_IF_ERROR(
      RocksBlockStore::Create(path.string(), CreateOptions(), RocksOptions(), &store));
  PageCacheOptions options;
  options.stable_pages = policy;
  options.dirty_expire_ms = 5;
  options.writeback_interval_ms = 5;
  std::unique_ptr<PageCache> cache;
  STABLEFS_RETURN_IF_ERROR(PageCache::Create(store.get(), options, &cache));
  const uint64_t file_bytes = flags.pages * kBlockSize;
  AddressSpace as(cache.get(), kFirstFreeIno, 0, 0, nullptr);
  std::mutex i_rwsem;  // callers serialize Write on one AddressSpace

  // Fill the hot set and write it back, so that the load starts from cached, clean pages.
  std::vector<char> fill(file_bytes, 'f');
  size_t done = 0;
  Status s = cache->Write(&as, 0, fill.data(), fill.size(), &done);
  FileErrCursor cursor = cache->OpenCursor(&as);
  if (s.ok()) s = cache->Fsync(&as, &cursor);
  const PageCacheCounters c0 = cache->counters();
  const uint64_t logged0 = g_log_lines.load();

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bytes{0}, write_errors{0}, fsyncs{0}, fsync_errors{0};
  std::vector<std::vector<int64_t>> latency(flags.threads);
  std::vector<std::thread> threads;
  const Clock::time_point start = Clock::now();
  for (uint64_t w = 0; s.ok() && w < flags.threads; w++) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(w + 1);
      std::vector<char> buf(kBlockSize);
      for (char& ch : buf) ch = static_cast<char>(rng());
      latency[w].reserve(1 << 20);
      for (uint64_t n = 0; !stop.load(std::memory_order_relaxed); n++) {
        const size_t len = kMinWrite + rng() % (kBlockSize - kMinWrite + 1);
        const uint64_t pos = rng() % (file_bytes - len + 1);
        std::memcpy(buf.data(), &n, sizeof(n));  // every rewrite changes the bytes
        buf[len - 1] = static_cast<char>(n);
        size_t copied = 0;
        const Clock::time_point t = Clock::now();
        Status ws;
        {
          std::lock_guard<std::mutex> lock(i_rwsem);
          ws = cache->Write(&as, pos, buf.data(), len, &copied);
        }
        latency[w].push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
        bytes.fetch_add(copied, std::memory_order_relaxed);
        if (!ws.ok()) write_errors++;
      }
    });
  }
  if (s.ok()) {
    threads.emplace_back([&] {
      FileErrCursor c = cache->OpenCursor(&as);
      while (!stop.load(std::memory_order_relaxed)) {
        if (!cache->Fsync(&as, &c).ok()) fsync_errors++;
        fsyncs++;
        std::this_thread::sleep_for(std::chrono::milliseconds(flags.fsync_ms));
      }
    });
  }
  const Clock::time_point deadline = start + std::chrono::seconds(flags.seconds);
  while (s.ok() && Clock::now() < deadline && !g_interrupted) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const PageCacheCounters c1 = cache->counters();
  const uint64_t logged = g_log_lines.load() - logged0;
  Status evicted = cache->Evict(&as, /*write_back=*/false);
  STABLEFS_RETURN_IF_ERROR(s);
  STABLEFS_RETURN_IF_ERROR(evicted);
  if (g_interrupted) return Status::IOError("interrupted by a signal");

  std::vector<int64_t> all;
  for (auto& v : latency) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto add = [&](const char* name, double value) { rows->emplace_back(name, value); };
  add("writes/s", all.size() / secs);
  add("MB/s written", bytes / secs / 1e6);
  add("write p50 us", QuantileUs(all, 0.50));
  add("write p99 us", QuantileUs(all, 0.99));
  add("write p99.9 us", QuantileUs(all, 0.999));
  add("write max us", all.empty() ? 0 : all.back() / 1e3);
  add("write errors", write_errors);
  add("waits on writeback", c1.waits_on_writeback - c0.waits_on_writeback);
  add("  time waited ms", (c1.wait_on_writeback_ns - c0.wait_on_writeback_ns) / 1e6);
  add("bounce copies", c1.bounce_copies - c0.bounce_copies);
  add("  copy cost est. ms (memcpy)",
      (c1.bounce_copies - c0.bounce_copies) * MemcpyNsPerPage() / 1e6);
  add("pages written back", c1.pages_written_back - c0.pages_written_back);
  add("writeback batches", c1.writeback_batches - c0.writeback_batches);
  add("protection_errors_write", c1.protection_errors_write - c0.protection_errors_write);
  add("writeback errors", c1.writeback_errors - c0.writeback_errors);
  add("error log lines (silenced)", logged);
  add("fsyncs", fsyncs);
  add("fsyncs returning an error", fsync_errors);
  add("dirty throttle waits", c1.dirty_throttle_waits - c0.dirty_throttle_waits);
  std::fprintf(stderr, "[%s] %.0f writes/s, p99 %.1f us\n", StablePolicyName(policy),
               all.size() / secs, QuantileUs(all, 0.99));
  return Status::Ok();
}

int Run(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i], value = i + 1 < argc ? argv[i + 1] : "";
    uint64_t* target = flag == "--seconds"    ? &flags.seconds
                       : flag == "--threads"  ? &flags.threads
                       : flag == "--pages"    ? &flags.pages
                       : flag == "--fsync-ms" ? &flags.fsync_ms
                                              : nullptr;
    if (target != nullptr && !value.empty()) {
      *target = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--dir" && !value.empty()) {
      flags.dir = value;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seconds N] [--threads N] [--pages N] [--fsync-ms N] "
                   "[--dir PATH]\n",
                   argv[0]);
      return 2;
    }
  }
  if (flags.seconds < 1 || flags.threads < 1 || flags.pages < 1 || flags.pages > 4096) {
    std::fprintf(stderr, "--seconds and --threads must be at least 1, --pages in 1..4096\n");
    return 2;
  }
  std::string command;
  for (int i = 0; i < argc; i++) command += (i ? " " : "") + std::string(argv[i]);
  struct utsname uts;
  std::printf("command: %s\nkernel: %s; %u cpus; load average %s\n", command.c_str(),
              uname(&uts) == 0 ? uts.release : "?", std::thread::hardware_concurrency(),
              LoadAvg().c_str());

  std::unique_ptr<bench::ScratchDir> scratch =
      bench::MakeScratchDir(flags.dir, "stable_pages_bench");
  if (scratch == nullptr) return 1;
  const bench::ScratchDir& tmp = *scratch;
  std::printf(
      "stores in %s; %llu s per policy; %llu writers of 512..4096 B at random offsets in %llu "
      "hot pages of one file; fsync every %llu ms; dirty_expire_ms = writeback_interval_ms = 5\n\n",
      tmp.path.c_str(), static_cast<unsigned long long>(flags.seconds),
      static_cast<unsigned long long>(flags.threads), static_cast<unsigned long long>(flags.pages),
      static_cast<unsigned long long>(flags.fsync_ms));
  std::fflush(stdout);

  SetLogSinkForTesting([](LogLevel, const std::string&) { g_log_lines++; });
  Rows rows[3];  // in kPolicies order
  for (int p = 0; p < 3; p++) {
    const fs::path path = tmp.path / StablePolicyName(kPolicies[p]);
    Status s = RunOne(path, kPolicies[p], flags, &rows[p]);
    std::error_code ec;
    fs::remove_all(path, ec);
    if (!s.ok()) {
      SetLogSinkForTesting(nullptr);
      std::fprintf(stderr, "stable_pages_bench: %s: %s\n", StablePolicyName(kPolicies[p]),
                   s.ToString().c_str());
      return 1;
    }
  }
  SetLogSinkForTesting(nullptr);

  auto ratio = [](double a, double b, char* out, size_t n) {
    if (b != 0) {
      std::snprintf(out, n, "%.2f", a / b);
    } else {
      std::snprintf(out, n, "-");
    }
  };
  std::printf("%-30s %12s %12s %12s %9s %10s\n", "metric", "off", "wait", "bounce", "wait/off",
              "bounce/off");
  for (size_t i = 0; i < rows[0].size(); i++) {
    const double off = rows[0][i].second, wait = rows[1][i].second, bounce = rows[2][i].second;
    char wr[16], br[16];
    ratio(wait, off, wr, sizeof(wr));
    ratio(bounce, off, br, sizeof(br));
    std::printf("%-30s %12.1f %12.1f %12.1f %9s %10s\n", rows[0][i].first.c_str(), off, wait,
                bounce, wr, br);
  }
  auto find = [&](int p, const std::string& name) {
    for (const auto& [n, v] : rows[p]) {
      if (n == name) return v;
    }
    return 0.0;
  };
  const double off_max = find(0, "write max us"), off_p99 = find(0, "write p99 us");
  std::printf(
      "\nkernel, 2013 (ext2, dbench): stable pages raised max latency 4.3 ms -> 59.8 ms (13.9x); "
      "here wait/off: max %.2fx, p99 %.2fx; bounce/off: max %.2fx, p99 %.2fx (informational)\n",
      off_max ? find(1, "write max us") / off_max : 0.0,
      off_p99 ? find(1, "write p99 us") / off_p99 : 0.0,
      off_max ? find(2, "write max us") / off_max : 0.0,
      off_p99 ? find(2, "write p99 us") / off_p99 : 0.0);
  std::printf("load average at the end: %s\n", LoadAvg().c_str());
  return 0;
}

}  // namespace
}  // namespace stablefs

int main(int argc, char** argv) {
  try {
    return stablefs::Run(argc, argv);  // unwinds the temporary directory's remover on exceptions
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stable_pages_bench: %s\n", e.what());
    return 1;
  }
}
