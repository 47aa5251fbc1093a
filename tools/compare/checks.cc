// The five checks. Each sets up its files on the target, runs its workload, and judges from what
// the system calls returned, what the data reads back as after an unmount, and the integrity
// errors the filesystem reported (kernel log or daemon counters).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "tools/compare/compare.h"
#include "tools/compare/util.h"

namespace stablefs::compare {

namespace {

constexpr size_t kBlock = 4096;
using Clock = std::chrono::steady_clock;

// Failed system calls of a workload: how many, and the first one.
class OpErrors {
 public:
  void Add(const char* op, int err) {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_++ == 0) first_ = std::string(op) + ": " + Errno(err);
  }
  uint64_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  std::string first() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_;
  }

 private:
  mutable std::mutex mu_;
  uint64_t count_ = 0;
  std::string first_;
};

// Runs the workload for `seconds` (less if interrupted), then sets *stop.
void RunFor(double seconds, std::atomic<bool>* stop) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end && !Interrupted()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop->store(true);
}

Result NotMeasurable(const std::string& check, Target* t, const std::string& why) {
  return Result{check, t->name(), Verdict::kNotMeasurable, why, {}};
}

// Unmount and mount again, so reads come from the device or store, not from a cache.
bool Cycle(Target* t, std::string* err) { return t->Unmount(err) && t->Mount(err); }

// The filesystems this tool sets up that keep no checksums of file data (a mount point given by
// path is not guessed at).
bool NoDataChecksums(const std::string& fs) { return fs == "ext4" || fs == "xfs" || fs == "tmpfs"; }

std::string Mb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MB/s", bytes / 1e6);
  return buf;
}

// Reads `rel` after the checks' unmount; *err is the read's errno or 0.
std::string ReadBack(Target* t, const std::string& rel, int* err) {
  std::string data;
  *err = ReadWhole(t->Path(rel), &data) ? 0 : errno;
  return data;
}

// One rewriter of check 1: rewrites random pages of the file with new contents.
void Rewrite(int fd, uint64_t seed, int pages, std::atomic<bool>* stop,
             std::atomic<uint64_t>* bytes, OpErrors* errors) {
  std::mt19937_64 rng(seed);
  std::string page(kBlock, '\0');
  while (!stop->load(std::memory_order_relaxed)) {
    const uint64_t v = rng();
    for (size_t i = 0; i < kBlock; i += 8) std::memcpy(page.data() + i, &v, 8);
    if (PwriteFull(fd, page.data(), kBlock, (v % pages) * kBlock) < 0) {
      errors->Add("pwrite", errno);
    } else {
      bytes->fetch_add(kBlock, std::memory_order_relaxed);
    }
  }
}

}  // namespace

// ---- 1. Stable pages under rewrite ----

Result CheckStablePages(Target* t, double seconds) {
  const std::string check = "stable-pages";
  // A full writeback batch of stablefs (256 pages): the longer a batch takes from its first
  // checksum to its last copy, the wider the window in which a rewrite can change a page.
  constexpr int kPages = 256;
  const size_t len = kPages * kBlock;
  if (!WriteWhole(t->Path("sp-write"), std::string(len, 'w'), true) ||
      !WriteWhole(t->Path("sp-map"), std::string(len, 'm'), true)) {
    return NotMeasurable(check, t, "cannot create the files: " + Errno(errno));
  }
  int fd = open(t->Path("sp-write").c_str(), O_RDWR);
  int mfd = open(t->Path("sp-map").c_str(), O_RDWR);
  char* map = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0));
  if (fd < 0 || mfd < 0 || map == MAP_FAILED) {
    if (fd >= 0) close(fd);
    if (mfd >= 0) close(mfd);
    return NotMeasurable(check, t, "cannot open or map the files: " + Errno(errno));
  }
  t->MarkErrors();
  OpErrors errors;
  std::atomic<uint64_t> fsyncs{0}, msyncs{0};

  // Phase one: rewriters alone, the throughput without anything under writeback from fsync.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> alone{0};
  {
    std::thread w1(Rewrite, fd, 1, kPages, &stop, &alone, &errors);
    std::thread w2(Rewrite, fd, 2, kPages, &stop, &alone, &errors);
    RunFor(seconds / 2, &stop);
    w1.join();
    w2.join();
  }
  // Phase two: the same rewriters while fsync writes the pages back, and a mapping of the
  // second file scribbled on while msync writes it back.
  stop = false;
  std::atomic<uint64_t> under{0};
  {
    std::thread w1(Rewrite, fd, 3, kPages, &stop, &under, &errors);
    std::thread w2(Rewrite, fd, 4, kPages, &stop, &under, &errors);
    std::thread syncer([&] {
      while (!stop.load()) {
        if (fsync(fd) != 0) errors.Add("fsync", errno);
        fsyncs++;
      }
    });
    std::thread scribbler([&] {
      volatile char* p = map;
      for (uint64_t n = 0; !stop.load(std::memory_order_relaxed); n++) {
        for (size_t i = 0; i < len; i += 64) p[i] = static_cast<char>(n + i);
      }
    });
    std::thread msyncer([&] {
      while (!stop.load()) {
        if (msync(map, len, MS_SYNC) != 0) errors.Add("msync", errno);
        msyncs++;
      }
    });
    RunFor(seconds / 2, &stop);
    for (std::thread* th : {&w1, &w2, &syncer, &scribbler, &msyncer}) th->join();
  }
  if (msync(map, len, MS_SYNC) != 0) errors.Add("msync", errno);
  munmap(map, len);
  if (fsync(fd) != 0) errors.Add("fsync", errno);
  if (fsync(mfd) != 0) errors.Add("fsync", errno);
  close(fd);
  close(mfd);

  // What the cache says was last synced, then what the device or store holds.
  int rerr = 0;
  const std::string synced_w = ReadBack(t, "sp-write", &rerr);
  const std::string synced_m = ReadBack(t, "sp-map", &rerr);
  if (rerr != 0) errors.Add("read", rerr);
  std::string err;
  bool same = true;
  if (t->Persistent() && t->Owned()) {
    if (!Cycle(t, &err)) errors.Add(("remount: " + err).c_str(), EIO);
    int e1 = 0, e2 = 0;
    same = ReadBack(t, "sp-write", &e1) == synced_w && ReadBack(t, "sp-map", &e2) == synced_m;
    if (e1 != 0 || e2 != 0) errors.Add("read after remount", e1 ? e1 : e2);
  }
  ErrorReport integrity = t->ErrorsSinceMark();

  Result r = NotMeasurable(check, t, "");
  const double half = seconds / 2;
  const double a = alone / half, u = under / half;
  r.evidence.push_back(t->StableWrites());
  r.evidence.push_back(
      "rewrites alone " + Mb(a) + ", under fsync/msync " + Mb(u) +
      (a > 0 ? " (" + std::to_string(static_cast<int>(100 - 100 * u / a)) + "% cost)" : ""));
  r.evidence.push_back(std::to_string((alone + under) / kBlock) + " page rewrites, " +
                       std::to_string(fsyncs.load()) + " fsyncs, " + std::to_string(msyncs.load()) +
                       " msyncs");
  if (errors.count() > 0) {
    r.verdict = Verdict::kBroken;
    r.reason = std::to_string(errors.count()) + " failed calls, first " + errors.first();
  } else if (integrity.count > 0) {
    r.verdict = Verdict::kBroken;
    r.reason = "integrity errors: " + integrity.first;
  } else if (!same) {
    r.verdict = Verdict::kBroken;
    r.reason = "after remount the data differs from the last synced content";
  } else {
    r.verdict = Verdict::kKept;
    r.reason = "no EIO, no checksum error, data as last synced";
    if (NoDataChecksums(t->name())) r.reason += " (no data checksums to fail)";
  }
  if (integrity.count > 0) r.evidence.push_back("integrity errors: " + integrity.first);
  return r;
}

// ---- 2. Silent corruption: a flipped bit, a misdirected write, a torn write ----

std::vector<Result> CheckSilentCorruption(Target* t) {
  struct Case {
    const char* check;
    const char* file;
    Damage kind;
    uint64_t block, other;  // damaged block, and the second block it involves
  };
  const Case cases[] = {{"bit-flip", "c-flip", Damage::kBitFlip, 1, 1},
                        {"misdirected-write", "c-swap", Damage::kSwap, 2, 3},
                        {"torn-write", "c-torn", Damage::kTorn, 5, 6}};
  std::vector<Result> results;
  auto all = [&](Verdict v, const std::string& why) {
    results.clear();
    for (const Case& c : cases) results.push_back(Result{c.check, t->name(), v, why, {}});
    return results;
  };
  if (!t->Owned())
    return all(Verdict::kNotMeasurable, "not our mount: the tool damages only its own");
  if (!t->Persistent()) return all(Verdict::kNotMeasurable, "no device: nothing to damage");

  constexpr size_t kFileBlocks = 8;
  std::vector<std::string> content;
  std::string err;
  for (size_t i = 0; i < std::size(cases); i++) {
    content.push_back(Pattern(kFileBlocks * kBlock, 100 + i));
    if (!WriteWhole(t->Path(cases[i].file), content[i], true)) {
      return all(Verdict::kNotMeasurable, "cannot write the files: " + Errno(errno));
    }
  }
  auto block = [&](size_t i, uint64_t b) { return content[i].substr(b * kBlock, kBlock); };
  for (size_t i = 0; i < std::size(cases); i++) {
    for (uint64_t b : {cases[i].block, cases[i].other}) {
      if (!t->Locate(cases[i].file, b * kBlock, block(i, b), &err)) {
        return all(Verdict::kNotMeasurable, "cannot find the block on the device: " + err);
      }
    }
  }
  if (!t->Unmount(&err)) return all(Verdict::kNotMeasurable, err);
  std::vector<std::string> how(std::size(cases));
  for (size_t i = 0; i < std::size(cases); i++) {
    const Case& c = cases[i];
    const uint64_t off = c.block * kBlock + (c.kind == Damage::kBitFlip ? 100 : 0);
    if (!t->Corrupt(c.file, c.kind, off, c.other * kBlock, block(i, c.block), block(i, c.other),
                    &how[i], &err)) {
      std::string mount_err;
      t->Mount(&mount_err);
      return all(Verdict::kNotMeasurable, "cannot damage the block: " + err);
    }
  }
  if (!t->Mount(&err)) return all(Verdict::kNotMeasurable, "remount after the damage: " + err);
  t->MarkErrors();

  for (size_t i = 0; i < std::size(cases); i++) {
    const Case& c = cases[i];
    Result r = NotMeasurable(c.check, t, "");
    r.evidence.push_back(how[i]);
    int fd = open(t->Path(c.file).c_str(), O_RDONLY);
    std::string got(kBlock, '\0');
    int eio = 0, silent = 0, intact = 0;
    std::vector<uint64_t> blocks = {c.block};
    if (c.kind == Damage::kSwap) blocks.push_back(c.other);
    for (uint64_t b : blocks) {
      if (fd < 0 || PreadFull(fd, got.data(), kBlock, b * kBlock) != kBlock) {
        eio++;
        r.evidence.push_back("read of block " + std::to_string(b) + ": " + Errno(errno));
      } else if (got == block(i, b)) {
        intact++;
        r.evidence.push_back("read of block " + std::to_string(b) + ": the data as written");
      } else {
        silent++;
        r.evidence.push_back("read of block " + std::to_string(b) + ": wrong bytes, no error");
      }
    }
    if (fd >= 0) close(fd);
    if (silent > 0) {
      r.verdict = Verdict::kBroken;
      r.reason = "silent: the damaged bytes were returned without an error";
    } else if (eio > 0) {
      r.verdict = Verdict::kKept;
      r.reason = "detected: the read failed with EIO";
    } else {
      r.verdict = Verdict::kKept;
      r.reason = "repaired: the read returned the data as written";
    }
    results.push_back(r);
  }
  ErrorReport integrity = t->ErrorsSinceMark();
  if (integrity.count > 0) {
    for (Result& r : results) r.evidence.push_back("reported: " + integrity.first);
  }
  return results;
}

// ---- 3. fsync durability across a crash ----

Result CheckCrashDurability(Target* t) {
  const std::string check = "fsync-crash";
  if (!t->Owned()) return NotMeasurable(check, t, "not our mount: the tool crashes only its own");
  const std::string synced = Pattern((1 << 20) + 7, 31);
  const std::string renamed = Pattern(65536, 32);
  const std::string extra = Pattern(65536, 33);
  // Synced: a file's data, and a name changed by rename and made durable by fsync of the dir.
  int fd = open(t->Path("synced").c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
  bool ok = fd >= 0 && PwriteFull(fd, synced.data(), synced.size(), 0) >= 0 && fsync(fd) == 0;
  ok = ok && WriteWhole(t->Path("tmpname"), renamed, true) &&
       rename(t->Path("tmpname").c_str(), t->Path("renamed").c_str()) == 0;
  int dfd = open(t->mnt().c_str(), O_RDONLY | O_DIRECTORY);
  ok = ok && dfd >= 0 && fsync(dfd) == 0;
  // Not synced: an append and a new file.
  ok = ok && PwriteFull(fd, extra.data(), extra.size(), synced.size()) >= 0 &&
       WriteWhole(t->Path("unsynced"), extra, false);
  const int werr = errno;
  if (fd >= 0) close(fd);
  if (dfd >= 0) close(dfd);
  if (!ok) return NotMeasurable(check, t, "cannot write the files: " + Errno(werr));

  Result r = NotMeasurable(check, t, "");
  std::string why;
  if (!t->Crash(&why)) return NotMeasurable(check, t, why);
  if (!t->Mount(&why)) {
    r.verdict = Verdict::kBroken;
    r.reason = "does not mount after the crash: " + why;
    return r;
  }
  int e1 = 0, e2 = 0, e3 = 0;
  const std::string got = ReadBack(t, "synced", &e1);
  const std::string got_renamed = ReadBack(t, "renamed", &e2);
  const std::string got_unsynced = ReadBack(t, "unsynced", &e3);
  const bool old_name = access(t->Path("tmpname").c_str(), F_OK) == 0;
  r.evidence.push_back("synced file: " + (e1 ? Errno(e1) : std::to_string(got.size()) + " bytes"));
  r.evidence.push_back("unsynced append: " +
                       std::string(got.size() > synced.size() ? "survived" : "lost (allowed)") +
                       "; unsynced file: " + (e3 ? "absent (allowed)" : "present"));
  if (e1 != 0 || got.size() < synced.size() || got.compare(0, synced.size(), synced) != 0) {
    r.verdict = Verdict::kBroken;
    r.reason = e1 ? "fsynced file unreadable: " + Errno(e1) : "fsynced data differs or is short";
  } else if (e2 != 0 || got_renamed != renamed || old_name) {
    r.verdict = Verdict::kBroken;
    r.reason = "fsynced rename lost: " + std::string(e2 ? Errno(e2) : "data differs") +
               (old_name ? ", old name back" : "");
  } else {
    r.verdict = Verdict::kKept;
    r.reason = "fsynced data, size and rename exact after the crash";
  }
  return r;
}

// ---- 4. Writeback errors reach fsync ----

namespace {

// A tmpfs mount this check owns: the device or store of a target lives in it, and shrinking it
// to what is used makes the next writes to them fail with ENOSPC, below the filesystem.
class SmallTmpfs {
 public:
  explicit SmallTmpfs(const std::string& dir) : dir_(dir) {}
  ~SmallTmpfs() {
    if (mounted_) Run({"umount", dir_});
  }
  bool Mount(std::string* err) {
    if (mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
      *err = dir_ + ": " + Errno(errno);
      return false;
    }
    mounted_ = RunOk({"mount", "-t", "tmpfs", "-o", "size=2G", "tmpfs", dir_}, err);
    return mounted_;
  }
  // Shrinks the tmpfs to what is used plus `slack` bytes.
  bool Shrink(uint64_t slack, std::string* err) {
    struct statvfs sv;
    if (statvfs(dir_.c_str(), &sv) != 0) {
      *err = dir_ + ": " + Errno(errno);
      return false;
    }
    const uint64_t used = (sv.f_blocks - sv.f_bfree) * sv.f_frsize;
    return RunOk(
        {"mount", "-o", "remount,size=" + std::to_string((used + slack) / 1024) + "k", dir_}, err);
  }

 private:
  std::string dir_;
  bool mounted_ = false;
};

}  // namespace

Result CheckWritebackError(Target* t, const std::string& scratch) {
  const std::string check = "writeback-error";
  if (!t->Owned()) return NotMeasurable(check, t, "not our mount: cannot make its device fail");
  if (!t->Persistent()) return NotMeasurable(check, t, "no writeback: tmpfs has no device");
  SmallTmpfs space(scratch);
  std::string err;
  if (!space.Mount(&err)) return NotMeasurable(check, t, "no tmpfs to fill: " + err);
  const std::string dir = scratch + "/target";
  mkdir(dir.c_str(), 0755);
  std::unique_ptr<Target> small = t->CloneIn(dir);
  if (small == nullptr) return NotMeasurable(check, t, "cannot recreate this filesystem");
  if (!small->Setup(&err)) return NotMeasurable(check, t, "setup on a small tmpfs: " + err);

  // Where the target can make its store or device fail (stablefs: -o debug_faults), it does so
  // after the write, with the pages still dirty; else the disk below it fills up, and then more
  // than the store preallocates for its WAL (1.1 memtables) is written, so that it needs space.
  const bool inject = small->CanFailWrites();
  const size_t kWrite = inject ? size_t{1} << 20 : size_t{96} << 20;
  // Two files open before the error: each must see it at its next fsync (errseq).
  int fd1 = open(small->Path("wb").c_str(), O_CREAT | O_RDWR, 0644);
  int fd2 = open(small->Path("wb").c_str(), O_RDONLY);
  if (fd1 < 0 || fd2 < 0) return NotMeasurable(check, t, "open: " + Errno(errno));
  small->MarkErrors();
  // The write is accepted while there is room; then the disk fills below the filesystem (the
  // tmpfs shrinks to what it holds), so writing the dirty pages back fails.
  const std::string data = Pattern(kWrite, 41);
  int write_err = PwriteFull(fd1, data.data(), data.size(), 0) < 0 ? errno : 0;
  if (inject) {
    if (!small->FailWrites(&err)) return NotMeasurable(check, t, err);
  } else {
    // The filesystem may still be writing (its flusher): then the tmpfs holds more by the time
    // of the remount than it did at its statfs, and the remount fails; try a little higher.
    bool shrunk = false;
    for (uint64_t slack : {0u, 1u << 20, 4u << 20}) {
      if ((shrunk = space.Shrink(slack, &err))) break;
    }
    if (!shrunk) return NotMeasurable(check, t, err);
  }
  int e1 = fsync(fd1) == 0 ? 0 : errno;
  int e2 = fsync(fd2) == 0 ? 0 : errno;
  int e3 = fsync(fd1) == 0 ? 0 : errno;
  close(fd1);
  close(fd2);
  ErrorReport reported = small->ErrorsSinceMark();
  if (inject) small->HealWrites();
  // May fail on a filesystem that shut itself down (the target cleans up); then it tells why.
  const bool unmounted = small->Unmount(&err);
  small.reset();

  Result r = NotMeasurable(check, t, "");
  r.evidence.push_back(inject ? std::to_string(kWrite >> 20) +
                                    " MiB written, then every write of the store made to fail "
                                    "(-o debug_faults: a failing disk)"
                              : "device or store on a tmpfs, " + std::to_string(kWrite >> 20) +
                                    " MiB written, then the tmpfs shrunk to what it held");
  r.evidence.push_back(std::string("fsync: ") + (e1 ? Errno(e1) : "0") +
                       "; fsync of a second fd: " + (e2 ? Errno(e2) : "0") +
                       "; fsync again: " + (e3 ? Errno(e3) : "0"));
  if (reported.count > 0) r.evidence.push_back("reported: " + reported.first);
  if (!unmounted) r.evidence.push_back("unmount: " + err);
  if (write_err != 0) {
    r.evidence.push_back("write: " + Errno(write_err));
    if (e1 == 0 && reported.count == 0) {
      return NotMeasurable(check, t, "the error came at write(), before writeback");
    }
  }
  auto io_error = [](int e) { return e == EIO || e == ENOSPC || e == EDQUOT; };
  if (e1 == ENOTCONN || e2 == ENOTCONN) {
    r.verdict = Verdict::kBroken;
    r.reason = "the filesystem's process died instead of reporting the error (ENOTCONN)";
  } else if (io_error(e1) && io_error(e2)) {
    r.verdict = Verdict::kKept;
    r.reason = "fsync reported " + std::string(strerrorname_np(e1)) +
               ", and so did every other fd open at the time";
  } else if (e1 != 0) {
    r.verdict = Verdict::kBroken;
    r.reason = io_error(e1) ? "fsync of a second open fd returned " + Errno(e2)
                            : "fsync returned " + Errno(e1) + ", not an I/O error";
  } else if (reported.count > 0) {
    r.verdict = Verdict::kBroken;
    r.reason = "fsync returned 0 although writeback failed";
  } else {
    r.verdict = Verdict::kNotMeasurable;
    r.reason = "no writeback error could be provoked";
  }
  return r;
}

// ---- 5. O_DIRECT from a buffer changed during the write ----

Result CheckDirectIoBufferChange(Target* t, double seconds) {
  const std::string check = "odirect-buffer-change";
  constexpr int kPages = 256;
  if (!WriteWhole(t->Path("dio"), Pattern(kPages * kBlock, 51), true)) {
    return NotMeasurable(check, t, "cannot create the file: " + Errno(errno));
  }
  int fd = open(t->Path("dio").c_str(), O_RDWR | O_DIRECT);
  if (fd < 0) return NotMeasurable(check, t, "no O_DIRECT: " + Errno(errno));
  t->MarkErrors();
  OpErrors errors;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0};
  // Two writers, each from a buffer another thread keeps changing, over the same pages:
  // checksums computed from a buffer that then changes show up as a mismatch when the block is
  // read back, or (stablefs) when writeback hands it to the store.
  constexpr int kWriters = 2;
  char* bufs[kWriters];
  for (char*& b : bufs) {
    void* p = nullptr;
    if (posix_memalign(&p, kBlock, kBlock) != 0) std::abort();
    std::memset(p, 'd', kBlock);
    b = static_cast<char*>(p);
  }
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; w++) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(60 + w);
      while (!stop.load(std::memory_order_relaxed)) {
        if (pwrite(fd, bufs[w], kBlock, (rng() % kPages) * kBlock) != kBlock) {
          errors.Add("O_DIRECT pwrite", errno);
        }
        writes++;
      }
    });
    threads.emplace_back([&, w] {
      volatile char* p = bufs[w];
      for (uint64_t n = 0; !stop.load(std::memory_order_relaxed); n++) {
        for (size_t i = 0; i < kBlock; i += 16) p[i] = static_cast<char>(n + i);
      }
    });
  }
  RunFor(seconds, &stop);
  for (std::thread& th : threads) th.join();
  for (char* b : bufs) std::free(b);
  if (fsync(fd) != 0) errors.Add("fsync", errno);
  close(fd);

  std::string err;
  if (t->Persistent() && t->Owned() && !Cycle(t, &err))
    errors.Add(("remount: " + err).c_str(), EIO);
  // Every block must read back, through O_DIRECT and through the cache, without an error.
  int rerr = 0;
  std::string buffered = ReadBack(t, "dio", &rerr);
  if (rerr != 0) errors.Add("read", rerr);
  int dfd = open(t->Path("dio").c_str(), O_RDONLY | O_DIRECT);
  void* p = nullptr;
  if (dfd >= 0 && posix_memalign(&p, kBlock, kPages * kBlock) == 0) {
    if (PreadFull(dfd, p, kPages * kBlock, 0) != kPages * kBlock) {
      errors.Add("O_DIRECT read", errno);
    } else if (std::memcmp(p, buffered.data(), std::min(buffered.size(), kPages * kBlock)) != 0) {
      errors.Add("O_DIRECT read differs from buffered read", EIO);
    }
  }
  std::free(p);
  if (dfd >= 0) close(dfd);
  ErrorReport integrity = t->ErrorsSinceMark();

  Result r = NotMeasurable(check, t, "");
  r.evidence.push_back(std::to_string(writes.load()) + " O_DIRECT writes from " +
                       std::to_string(kWriters) + " changing buffers");
  if (integrity.count > 0) r.evidence.push_back("integrity errors: " + integrity.first);
  if (errors.count() > 0) {
    r.verdict = Verdict::kBroken;
    r.reason = std::to_string(errors.count()) + " failed calls, first " + errors.first();
  } else if (integrity.count > 0) {
    r.verdict = Verdict::kBroken;
    r.reason = "checksum mismatch: " + integrity.first;
  } else {
    r.verdict = Verdict::kKept;
    r.reason = "every block reads back without an error";
    if (NoDataChecksums(t->name())) r.reason += " (no data checksums to mismatch)";
  }
  return r;
}

}  // namespace stablefs::compare
