// A randomized file-operation tester in the spirit of fsx: one file is written, read, truncated,
// hole-punched, zeroed, written through a shared mapping, synced, dropped from the kernel's cache,
// reopened (also with O_TRUNC) and remounted for a bounded number of operations, and after every
// operation its size, and every 64 operations all of its bytes, are checked against an in-memory
// model (a std::string). Every run prints its seed: FSX_SEED=<seed> replays a run, FSX_OPS=<n>
// changes its length and FSX_SKIP=<op>,<op> leaves operations out (to get past a known bug). A
// mismatch fails the test with the seed, the operation number, the last 20 operations and the
// first differing offset with expected and received bytes. The same tester runs on tmpfs and on
// the local filesystem of $TMPDIR, to show that the model itself is right.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/util/mount.h"

namespace stablefs {
namespace {

using testing::Mount;

constexpr uint64_t kPage = 4096;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

struct FsxOptions {
  // Printed at the start and in every failure. Default: FSX_SEED, else random.
  uint64_t seed = 0;
  // Number of operations. Default: FSX_OPS, else the value the test gives.
  uint64_t ops = 1000;
  // Largest size the file reaches. Default: 1 MiB.
  uint64_t max_size = 1 << 20;
  // Operations between two full read-back compares. Default: 64.
  uint64_t check_every = 64;
  // Operations kept for the history in a failure message. Default: 20.
  size_t history = 20;
  // Called with the file closed; restarts whatever serves the directory and returns "" or an
  // error. Default: none (a remount is a close and reopen).
  std::function<std::string()> remount;
  // Operations not to use, by name, separated by commas (e.g. "punch_hole,mmap"), to get past a
  // known bug. Default: FSX_SKIP, else none.
  std::string skip;
  // Names the run in its output. Default: "fsx".
  std::string label = "fsx";
};

// One randomized run over one file, "fsx.file" in the directory given.
class FsxRun {
 public:
  FsxRun(std::string dir, FsxOptions options)
      : path_(dir + "/fsx.file"), o_(std::move(options)), rng_(o_.seed) {}
  ~FsxRun() {
    if (fd_ >= 0) close(fd_);
  }
  FsxRun(const FsxRun&) = delete;
  FsxRun& operator=(const FsxRun&) = delete;

  // Runs every operation; stops at the first mismatch or error, which it reports with
  // ADD_FAILURE. Returns true when the file matched the model throughout.
  bool Run();

 private:
  enum Op {
    kWrite,
    kRead,
    kTruncate,
    kPunch,
    kZero,
    kZeroKeepSize,
    kMmapWrite,
    kFsync,
    kFdatasync,
    kDropCache,
    kReopen,
    kReopenTrunc,
    kRemount,
    kNumOps
  };
  static constexpr const char* kOpNames[kNumOps] = {
      "pwrite", "pread",     "ftruncate",  "punch_hole", "zero_range",   "zero_range_keep", "mmap",
      "fsync",  "fdatasync", "drop_cache", "reopen",     "reopen_trunc", "remount"};
  // Relative frequencies.
  static constexpr int kWeights[kNumOps] = {24, 18, 8, 8, 5, 5, 9, 3, 2, 2, 3, 1, 1};

  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }  // [0, n)
  bool OneIn(uint64_t n) { return Rand(n) == 0; }
  Op PickOp();
  // A random range [*off, *off + *len), *len >= 1, *off + *len <= max_size: sometimes page
  // aligned, sometimes across a page boundary, sometimes at or past EOF (making holes).
  void PickRange(uint64_t* off, uint64_t* len);
  std::string RandomBytes(uint64_t n);

  bool DoWrite();
  bool DoRead();
  bool DoTruncate();
  bool DoFallocate(Op op);
  bool DoMmapWrite();
  bool DoSync(Op op);
  // Drops the file's clean pages from the kernel's cache, so that the next reads come from the
  // filesystem again (for FUSE: from the daemon) without a remount.
  bool DoDropCache();
  // Closes the file and opens it again: after a remount for kRemount, with O_TRUNC for
  // kReopenTrunc.
  bool Reopen(Op op);
  bool CheckSize();
  bool CheckAll(const char* when);

  bool Open(int flags);
  // Adds "#op name ..." to the history.
  void Log(const std::string& what);
  // ADD_FAILURE with the seed, the op number, the history and what is given; returns false.
  bool Fail(const std::string& what);
  // Fail() for a system call that returned an error.
  bool FailErrno(const std::string& call);
  // Fail() for data that differs from the model at [off, off + got.size()).
  bool FailData(const char* what, uint64_t off, const std::string& got);
  static std::string Hex(const std::string& s, uint64_t from, uint64_t n);

  const std::string path_;
  const FsxOptions o_;
  std::mt19937_64 rng_;
  std::string model_;
  int fd_ = -1;
  uint64_t op_no_ = 0;
  std::deque<std::string> history_;
  bool disabled_[kNumOps] = {};  // skipped, or EOPNOTSUPP
  uint64_t counts_[kNumOps] = {};
};

bool FsxRun::Run() {
  std::printf("[%s] seed=%" PRIu64 " ops=%" PRIu64 " max_size=%" PRIu64
              " (replay: FSX_SEED=%" PRIu64 ")\n",
              o_.label.c_str(), o_.seed, o_.ops, o_.max_size, o_.seed);
  for (int i = 0; i < kNumOps; i++) {
    if (("," + o_.skip + ",").find(std::string(",") + kOpNames[i] + ",") == std::string::npos) {
      continue;
    }
    disabled_[i] = true;
    std::printf("[%s] %s: skipped (FSX_SKIP)\n", o_.label.c_str(), kOpNames[i]);
  }
  std::fflush(stdout);
  unlink(path_.c_str());
  fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) return FailErrno("open(O_CREAT) " + path_);
  const auto start = std::chrono::steady_clock::now();
  for (op_no_ = 1; op_no_ <= o_.ops; op_no_++) {
    const Op op = PickOp();
    bool ok = true;
    switch (op) {
      case kWrite:
        ok = DoWrite();
        break;
      case kRead:
        ok = DoRead();
        break;
      case kTruncate:
        ok = DoTruncate();
        break;
      case kPunch:
      case kZero:
      case kZeroKeepSize:
        ok = DoFallocate(op);
        break;
      case kMmapWrite:
        ok = DoMmapWrite();
        break;
      case kFsync:
      case kFdatasync:
        ok = DoSync(op);
        break;
      case kDropCache:
        ok = DoDropCache();
        break;
      case kReopen:
      case kReopenTrunc:
      case kRemount:
        ok = Reopen(op);
        break;
      case kNumOps:
        break;
    }
    if (!ok || !CheckSize()) return false;
    if (!disabled_[op]) counts_[op]++;
    if (op_no_ % o_.check_every == 0 && !CheckAll("periodic full read-back")) return false;
  }
  op_no_ = o_.ops;
  if (!CheckAll("final full read-back")) return false;
  Log("final remount");
  if (!Reopen(kRemount) || !CheckSize() || !CheckAll("full read-back after the final remount")) {
    return false;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream done;
  for (int i = 0; i < kNumOps; i++) done << " " << kOpNames[i] << "=" << counts_[i];
  std::printf("[%s] seed=%" PRIu64 ": %" PRIu64 " ops passed in %.1f s, final size %zu;%s\n",
              o_.label.c_str(), o_.seed, o_.ops, secs, model_.size(), done.str().c_str());
  std::fflush(stdout);
  return true;
}

FsxRun::Op FsxRun::PickOp() {
  for (;;) {
    int total = 0;
    for (int i = 0; i < kNumOps; i++) total += kWeights[i];
    int r = static_cast<int>(Rand(total));
    int i = 0;
    while (r >= kWeights[i]) r -= kWeights[i++];
    // The draw is made also for an unsupported kind, so that skipping one keeps the rest of the
    // sequence close to the same seed's on another filesystem.
    if (!disabled_[i]) return static_cast<Op>(i);
  }
}

void FsxRun::PickRange(uint64_t* off, uint64_t* len) {
  const uint64_t size = model_.size();
  const uint64_t max = o_.max_size;
  uint64_t o;
  switch (Rand(8)) {
    case 0:  // at EOF
      o = size;
      break;
    case 1:  // past EOF: leaves a hole
      o = size + 1 + Rand(16 * kPage);
      break;
    case 2: {  // near EOF, either side
      const uint64_t d = Rand(2 * kPage);
      o = size + d >= kPage ? size + d - kPage : 0;
      break;
    }
    case 3:  // inside the file
      o = Rand(std::max<uint64_t>(size, 1));
      break;
    default:
      o = Rand(max);
      break;
  }
  uint64_t l;
  switch (Rand(8)) {
    case 0:
      l = 1 + Rand(64);
      break;
    case 1:
      l = 1 + Rand(kPage);
      break;
    case 2:  // large
      l = 1 + Rand(256 * 1024);
      break;
    default:
      l = 1 + Rand(64 * 1024);
      break;
  }
  switch (Rand(4)) {
    case 0:  // page aligned
      o &= ~(kPage - 1);
      l = (l + kPage - 1) & ~(kPage - 1);
      break;
    case 1:  // across a page boundary
      o = (o & ~(kPage - 1)) + kPage - 1 - Rand(kPage / 2);
      l = std::max<uint64_t>(l, kPage - (o % kPage) + 1 + Rand(64));
      break;
    default:
      break;
  }
  if (o >= max) o = Rand(max);  // past the largest size: anywhere instead
  if (o + l > max) l = max - o;
  *off = o;
  *len = l;
}

std::string FsxRun::RandomBytes(uint64_t n) {
  std::string s(n, '\0');
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = rng_();
    std::memcpy(&s[i], &v, 8);
  }
  for (; i < n; i++) s[i] = static_cast<char>(rng_());
  return s;
}

bool FsxRun::DoWrite() {
  uint64_t off, len;
  PickRange(&off, &len);
  const std::string data = RandomBytes(len);
  std::ostringstream d;
  d << "pwrite off=" << off << " len=" << len << " size " << model_.size();
  if (off + len > model_.size()) model_.resize(off + len, '\0');
  model_.replace(off, len, data);
  d << " -> " << model_.size();
  Log(d.str());
  uint64_t done = 0;
  while (done < len) {
    const ssize_t n = pwrite(fd_, data.data() + done, len - done, off + done);
    if (n < 0) return FailErrno("pwrite");
    if (n == 0) return Fail("pwrite returned 0 after " + std::to_string(done) + " bytes");
    done += n;
  }
  return true;
}

bool FsxRun::DoRead() {
  uint64_t off, len;
  PickRange(&off, &len);
  if (OneIn(8)) off = model_.size() + Rand(2 * kPage);  // at or past EOF: reads nothing
  const uint64_t size = model_.size();
  const uint64_t want = off >= size ? 0 : std::min(len, size - off);
  Log("pread off=" + std::to_string(off) + " len=" + std::to_string(len) + " size " +
      std::to_string(size) + " (expect " + std::to_string(want) + " bytes)");
  std::string got(len, '\0');
  uint64_t done = 0;
  while (done < len) {
    const ssize_t n = pread(fd_, got.data() + done, len - done, off + done);
    if (n < 0) return FailErrno("pread");
    if (n == 0) break;
    done += n;
  }
  got.resize(done);
  if (done != want) {
    return Fail("pread off=" + std::to_string(off) + " len=" + std::to_string(len) + " returned " +
                std::to_string(done) + " bytes, the model has " + std::to_string(want) + " (size " +
                std::to_string(size) + ")");
  }
  if (want > 0 && got.compare(0, want, model_, off, want) != 0) return FailData("pread", off, got);
  return true;
}

bool FsxRun::DoTruncate() {
  const uint64_t size = model_.size();
  uint64_t to;
  switch (Rand(4)) {
    case 0:  // shrink
      to = Rand(size + 1);
      break;
    case 1:  // grow a little
      to = std::min(o_.max_size, size + 1 + Rand(3 * kPage));
      break;
    case 2:  // page aligned anywhere
      to = Rand(o_.max_size / kPage + 1) * kPage;
      break;
    default:
      to = Rand(o_.max_size + 1);
      break;
  }
  Log("ftruncate " + std::to_string(size) + " -> " + std::to_string(to));
  model_.resize(to, '\0');
  if (ftruncate(fd_, to) != 0) return FailErrno("ftruncate");
  return true;
}

bool FsxRun::DoFallocate(Op op) {
  uint64_t off, len;
  PickRange(&off, &len);
  const uint64_t size = model_.size();
  int mode = 0;
  switch (op) {
    case kPunch:
      mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
      break;
    case kZero:
      mode = FALLOC_FL_ZERO_RANGE;
      break;
    default:
      mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
      break;
  }
  if (fallocate(fd_, mode, off, len) != 0) {
    if (errno == EOPNOTSUPP) {
      disabled_[op] = true;
      std::printf("[%s] %s: EOPNOTSUPP, not used for the rest of the run\n", o_.label.c_str(),
                  kOpNames[op]);
      std::fflush(stdout);
      return true;  // nothing changed
    }
    Log(std::string(kOpNames[op]) + " off=" + std::to_string(off) + " len=" + std::to_string(len) +
        " size " + std::to_string(size));
    return FailErrno(std::string("fallocate ") + kOpNames[op]);
  }
  if (off < size) {
    const uint64_t end = std::min(size, off + len);
    std::fill(model_.begin() + off, model_.begin() + end, '\0');
  }
  if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > size) model_.resize(off + len, '\0');
  Log(std::string(kOpNames[op]) + " off=" + std::to_string(off) + " len=" + std::to_string(len) +
      " size " + std::to_string(size) + " -> " + std::to_string(model_.size()));
  return true;
}

bool FsxRun::DoMmapWrite() {
  const uint64_t size = model_.size();
  if (size == 0) return DoWrite();  // nothing to map
  uint64_t off, len;
  PickRange(&off, &len);
  off %= size;
  len = std::min(len, size - off);
  const uint64_t map_off = off & ~(kPage - 1);
  const uint64_t map_len = off + len - map_off;
  const bool check_first = OneIn(2), do_msync = OneIn(2);
  const std::string data = RandomBytes(len);
  Log(std::string("mmap write off=") + std::to_string(off) + " len=" + std::to_string(len) +
      " size " + std::to_string(size) + (check_first ? " check" : "") + (do_msync ? " msync" : ""));
  void* p = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, map_off);
  if (p == MAP_FAILED) return FailErrno("mmap");
  char* base = static_cast<char*>(p);
  bool ok = true;
  if (check_first && std::memcmp(base, model_.data() + map_off, map_len) != 0) {
    ok = FailData("read through the mapping", map_off, std::string(base, map_len));
  }
  if (ok) {
    std::memcpy(base + (off - map_off), data.data(), len);
    model_.replace(off, len, data);
    if (do_msync && msync(p, map_len, MS_SYNC) != 0) ok = FailErrno("msync(MS_SYNC)");
  }
  if (munmap(p, map_len) != 0 && ok) ok = FailErrno("munmap");
  return ok;
}

bool FsxRun::DoSync(Op op) {
  Log(kOpNames[op]);
  if ((op == kFsync ? fsync(fd_) : fdatasync(fd_)) != 0) return FailErrno(kOpNames[op]);
  return true;
}

bool FsxRun::DoDropCache() {
  Log("posix_fadvise(POSIX_FADV_DONTNEED)");
  const int e = posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  if (e != 0) {
    errno = e;
    return FailErrno("posix_fadvise(POSIX_FADV_DONTNEED)");
  }
  return true;
}

bool FsxRun::Reopen(Op op) {
  const bool remount = op == kRemount && o_.remount;
  if (op == kReopenTrunc) {
    Log("close and reopen with O_TRUNC, size " + std::to_string(model_.size()) + " -> 0");
    model_.clear();
  } else {
    Log(remount ? "remount" : "close and reopen");
  }
  const int fd = fd_;
  fd_ = -1;
  if (close(fd) != 0) return FailErrno("close");
  if (remount) {
    const std::string err = o_.remount();
    if (!err.empty()) return Fail("remount failed: " + err);
  }
  return Open(op == kReopenTrunc ? O_TRUNC : 0);
}

bool FsxRun::Open(int flags) {
  fd_ = open(path_.c_str(), O_RDWR | flags);
  if (fd_ < 0) return FailErrno("open " + path_);
  return true;
}

bool FsxRun::CheckSize() {
  struct stat st;
  if (fstat(fd_, &st) != 0) return FailErrno("fstat");
  if (static_cast<uint64_t>(st.st_size) != model_.size()) {
    return Fail("fstat size " + std::to_string(st.st_size) + ", the model has " +
                std::to_string(model_.size()));
  }
  return true;
}

bool FsxRun::CheckAll(const char* when) {
  const uint64_t size = model_.size();
  std::string got(size + kPage, '\0');  // one page more, to see that the read stops at EOF
  uint64_t done = 0;
  while (done < got.size()) {
    const ssize_t n = pread(fd_, got.data() + done, got.size() - done, done);
    if (n < 0) return FailErrno(std::string("pread (") + when + ")");
    if (n == 0) break;
    done += n;
  }
  got.resize(done);
  if (done != size) {
    return Fail(std::string(when) + ": read " + std::to_string(done) + " bytes, the model has " +
                std::to_string(size));
  }
  if (got != model_) return FailData(when, 0, got);
  return true;
}

void FsxRun::Log(const std::string& what) {
  history_.push_back("#" + std::to_string(op_no_) + " " + what);
  while (history_.size() > o_.history) history_.pop_front();
}

bool FsxRun::Fail(const std::string& what) {
  std::ostringstream m;
  m << "[" << o_.label << "] FAILED at op #" << op_no_ << " of " << o_.ops << ", seed " << o_.seed
    << " (replay: FSX_SEED=" << o_.seed << " FSX_OPS=" << o_.ops
    << (o_.skip.empty() ? "" : " FSX_SKIP=" + o_.skip) << "): " << what
    << "\nlast operations (oldest first):\n";
  for (const std::string& h : history_) m << "  " << h << "\n";
  ADD_FAILURE() << m.str();
  std::fflush(stdout);
  return false;
}

bool FsxRun::FailErrno(const std::string& call) {
  const int e = errno;
  return Fail(call + ": " + std::strerror(e) + " (errno " + std::to_string(e) + ")");
}

bool FsxRun::FailData(const char* what, uint64_t off, const std::string& got) {
  uint64_t first = 0, last = 0, differ = 0;
  for (uint64_t i = 0; i < got.size(); i++) {
    if (got[i] == model_[off + i]) continue;
    if (differ++ == 0) first = i;
    last = i;
  }
  bool all_zero = true;
  for (uint64_t i = first; i <= last && all_zero; i++) all_zero = got[i] == '\0';
  // Reading again tells a transient difference from a lasting one.
  std::string again(got.size(), '\0');
  const ssize_t n = pread(fd_, again.data(), again.size(), off);
  const char* reread = n != static_cast<ssize_t>(again.size()) ? "short or failed"
                       : again == got                          ? "same bytes as the first read"
                       : again.compare(0, again.size(), model_, off, again.size()) == 0
                           ? "matches the model"
                           : "differs from both";
  std::ostringstream m;
  m << what << ": data differs from the model at file offset " << off + first << " (page "
    << (off + first) / kPage << " + " << (off + first) % kPage << "); " << differ
    << " bytes differ in [" << off + first << ", " << off + last + 1 << ")"
    << (all_zero ? ", read as zeros" : "") << "; file size " << model_.size()
    << "\n  expected: " << Hex(model_, off + first, 32) << "\n  received: " << Hex(got, first, 32)
    << "\n  a second pread of the range: " << reread;
  return Fail(m.str());
}

std::string FsxRun::Hex(const std::string& s, uint64_t from, uint64_t n) {
  std::string out;
  char b[4];
  for (uint64_t i = from; i < s.size() && i < from + n; i++) {
    std::snprintf(b, sizeof(b), "%02x ", static_cast<unsigned char>(s[i]));
    out += b;
  }
  return out;
}

FsxOptions Options(const std::string& label, uint64_t ops) {
  FsxOptions o;
  o.label = label;
  o.seed = EnvOr("FSX_SEED", std::random_device{}());
  o.ops = EnvOr("FSX_OPS", ops);
  const char* skip = getenv("FSX_SKIP");
  if (skip != nullptr) o.skip = skip;
  return o;
}

// The processes that have a file, a mapping, a working or root directory under dir, for a
// busy unmount.
std::string Holders(const std::string& dir) {
  std::string out;
  const std::string prefix = dir + "/";
  auto under = [&](const std::string& p) { return p == dir || p.rfind(prefix, 0) == 0; };
  std::error_code ec;
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::vector<std::string> what;
    for (const char* link : {"cwd", "root"}) {
      std::error_code e;
      if (under(std::filesystem::read_symlink(proc.path() / link, e).string())) {
        what.push_back(link);
      }
    }
    std::error_code e;
    for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", e)) {
      std::error_code e2;
      const std::string target = std::filesystem::read_symlink(fd.path(), e2).string();
      if (under(target)) what.push_back("fd " + fd.path().filename().string() + " " + target);
    }
    std::ifstream maps(proc.path() / "maps");
    std::string line;
    while (std::getline(maps, line)) {
      if (line.find(prefix) != std::string::npos) what.push_back("map " + line);
    }
    if (what.empty()) continue;
    std::ifstream comm(proc.path() / "comm");
    std::string name;
    std::getline(comm, name);
    out += "[pid " + pid + " " + name + ":";
    for (const std::string& w : what) out += " " + w + ";";
    out += "] ";
  }
  return out.empty() ? "none found" : out;
}

class FsxTest : public ::testing::Test {
 protected:
  // Runs the tester on a stablefs mount with the options given, remounting as one of its
  // operations, and checks the daemon exits 0 at the end.
  void RunOnStablefs(std::vector<std::string> mount_options, const std::string& label,
                     uint64_t ops) {
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    Mount m(std::move(mount_options));
    ASSERT_TRUE(m.Start());
    FsxOptions o = Options(label, ops);
    int remounts = 0;
    std::string dir = m.Path("");
    dir.pop_back();
    o.remount = [&m, &remounts, &dir, &label]() -> std::string {
      remounts++;
      int rc = m.Stop();
      // -2 is a failed fusermount3 -u: the mount is busy, which only a process holding something
      // on it causes, not the daemon. Say who, and try again a few times.
      for (int retry = 0; rc == -2 && retry < 5; retry++) {
        std::printf("[%s] remount: fusermount3 -u failed; holders of %s: %s; retrying\n",
                    label.c_str(), dir.c_str(), Holders(dir).c_str());
        std::fflush(stdout);
        std::this_thread::sleep_for(std::chrono::milliseconds(100 << retry));
        rc = m.Stop();
      }
      if (rc != 0) return "Mount::Stop() returned " + std::to_string(rc);
      ::testing::AssertionResult started = m.Start();
      if (!started) return std::string("Mount::Start(): ") + started.message();
      return "";
    };
    {
      FsxRun run(dir, std::move(o));
      EXPECT_TRUE(run.Run());
    }
    std::printf("[%s] %d remounts\n", label.c_str(), remounts);
    // After the long randomized workload the store is clean, to fsck and to a scrub.
    EXPECT_EQ(stablefs::testing::Run(std::string(STABLEFSCTL_BIN) + " scrub " + dir), 0);
    EXPECT_EQ(m.Stop(), 0);
    EXPECT_EQ(stablefs::testing::Run(std::string(FSCK_BIN) + " -n " + m.store()), 0);
  }
};

TEST_F(FsxTest, Stablefs) { RunOnStablefs({}, "stablefs", 8000); }

// Bounced stable pages and writeback of everything 1 ms old: writeback runs all the time, racing
// with the writes, truncates, punches and mapped writes of the run.
TEST_F(FsxTest, StablefsBounce) {
  RunOnStablefs({"stable_pages=bounce", "writeback_expire_ms=1"}, "stablefs-bounce", 8000);
}

// The model against filesystems the kernel implements: tmpfs (/dev/shm) if there is one, and the
// filesystem of $TMPDIR, which (unlike tmpfs) has FALLOC_FL_ZERO_RANGE when it is ext4 or xfs.
TEST_F(FsxTest, SanityOnTmpfsOrTmpDir) {
  std::vector<std::string> bases;
  struct statfs sf;
  if (statfs("/dev/shm", &sf) == 0 && access("/dev/shm", W_OK) == 0) bases.push_back("/dev/shm");
  const char* tmp = getenv("TMPDIR");
  bases.push_back(tmp && *tmp ? tmp : "/tmp");
  for (const std::string& base : bases) {
    std::string dir = base + "/stablefs-fsx-XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr) << dir << ": " << std::strerror(errno);
    bool ok;
    {
      FsxRun run(dir, Options("sanity " + base, 8000));
      ok = run.Run();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    ASSERT_TRUE(ok) << "on " << base;
  }
}

}  // namespace
}  // namespace stablefs
