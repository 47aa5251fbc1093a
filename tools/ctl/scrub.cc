// stablefsctl scrub [--rate MB/s] [--json] STORE-or-MOUNTPOINT
//
// Checks every data block against its tuples and every block map entry against the data: on a
// mounted filesystem by its daemon while it is in use (fs/scrub.h, through the scrub ioctls), on
// an unmounted store here, at most --rate MB/s (default 100, 0: no limit). Progress is shown on a
// terminal; the report is printed at the end, or one JSON object with --json. Interrupted, the
// scrub is cancelled.
#include "fs/scrub.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fs/scrub_ioctl.h"
#include "tools/ctl/ctl.h"
#include "tools/progress.h"

namespace stablefs::ctl {

namespace {

volatile std::sig_atomic_t interrupted = 0;
void OnInterrupt(int) { interrupted = 1; }

// Where a scrub runs: the daemon of a mount (through its ioctls), or a Scrubber in this process
// on an unmounted store. Both are polled the same way.
class ScrubTarget {
 public:
  virtual ~ScrubTarget() = default;
  virtual Status Start(uint64_t rate_bytes_per_sec) = 0;
  virtual Status Poll(ScrubProgress* p) = 0;
  // The whole report; REQUIRES: the scrub has ended.
  virtual Status Report(std::vector<ScrubProblem>* problems) = 0;
  virtual void Cancel() = 0;
};

class MountedScrub : public ScrubTarget {
 public:
  explicit MountedScrub(int fd) : fd_(fd) {}
  ~MountedScrub() override { close(fd_); }

  Status Start(uint64_t rate) override {
    StablefsScrubStart start{};
    start.rate_bytes_per_sec = rate;
    if (ioctl(fd_, STABLEFS_IOC_SCRUB_START, &start) != 0) {
      if (errno == EBUSY) return Status::Busy("a scrub is already running on this filesystem");
      return Status::IOError(std::string("not a stablefs mount (scrub ioctl: ") + strerror(errno) +
                             ")");
    }
    generation_ = start.generation;
    return Status::Ok();
  }

  Status Poll(ScrubProgress* p) override {
    StablefsScrubStatus* st = FetchStatus(0);
    if (st == nullptr) return error_;
    p->state = static_cast<ScrubState>(st->state);
    p->generation = st->generation;
    p->blocks_total = st->blocks_total;
    p->blocks_checked = st->blocks_checked;
    p->bytes_checked = st->bytes_checked;
    p->problems = st->problems;
    p->elapsed_ns = st->elapsed_ns;
    p->error = st->error;
    return Status::Ok();
  }

  Status Report(std::vector<ScrubProblem>* problems) override {
    for (;;) {
      StablefsScrubStatus* st = FetchStatus(problems->size());
      if (st == nullptr) return error_;
      for (uint32_t i = 0; i < st->nrecords && i < kScrubRecordsPerCall; i++) {
        const StablefsScrubRecord& r = st->records[i];
        ScrubProblem q;
        q.ino = r.ino;
        q.offset = r.offset;
        q.has_values = r.has_values != 0;
        q.expected = r.expected;
        q.found = r.found;
        q.field = std::string(r.field, strnlen(r.field, sizeof(r.field)));
        q.what = std::string(r.what, strnlen(r.what, sizeof(r.what)));
        q.path = std::string(r.path, strnlen(r.path, sizeof(r.path)));
        problems->push_back(std::move(q));
      }
      if (st->nrecords < kScrubRecordsPerCall) break;
    }
    return Status::Ok();
  }

  void Cancel() override { ioctl(fd_, STABLEFS_IOC_SCRUB_CANCEL); }

 private:
  // The status with the report's records from `first` on; null on failure (error_ says why).
  StablefsScrubStatus* FetchStatus(uint64_t first) {
    std::memset(&status_, 0, sizeof(status_));
    status_.generation = generation_;
    status_.first_problem = first;
    if (ioctl(fd_, STABLEFS_IOC_SCRUB_STATUS, &status_) != 0) {
      error_ = errno == ESTALE
                   ? Status::Busy("another scrub was started on this filesystem meanwhile")
                   : Status::IOError(std::string("scrub status ioctl: ") + strerror(errno));
      return nullptr;
    }
    return &status_;
  }

  const int fd_;
  uint64_t generation_ = 0;
  StablefsScrubStatus status_;
  Status error_;
};

class LocalScrub : public ScrubTarget {
 public:
  explicit LocalScrub(std::unique_ptr<RocksBlockStore> store)
      : store_(std::move(store)), scrubber_(store_.get()) {}

  Status Start(uint64_t rate) override {
    return scrubber_.Start(ScrubOptions{.rate_bytes_per_sec = rate});
  }
  Status Poll(ScrubProgress* p) override {
    *p = scrubber_.progress();
    return Status::Ok();
  }
  Status Report(std::vector<ScrubProblem>* problems) override {
    *problems = scrubber_.problems(0, SIZE_MAX);
    return Status::Ok();
  }
  void Cancel() override { scrubber_.Cancel(); }

 private:
  std::unique_ptr<RocksBlockStore> store_;
  Scrubber scrubber_;  // destroyed (its thread joined) before the store
};

// The daemon's scrub for a mount point, a local one for an unmounted store.
Status OpenScrubTarget(const std::string& path, std::unique_ptr<ScrubTarget>* out) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) {
    std::unique_ptr<RocksBlockStore> store;
    Status s = RocksBlockStore::Open(path, RocksOptions(), &store);
    if (s.IsBusy()) {
      return Status::Busy(path + " is in use, by a daemon serving it: scrub its mount point");
    }
    STABLEFS_RETURN_IF_ERROR(s);
    *out = std::make_unique<LocalScrub>(std::move(store));
    return Status::Ok();
  }
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Status::NotFound(path + ": " + strerror(errno));
  *out = std::make_unique<MountedScrub>(fd);
  return Status::Ok();
}

std::string ScrubProgressLine(const ScrubProgress& p) {
  char buf[160];
  const double secs = p.elapsed_ns / 1e9;
  const double pct = p.blocks_total ? 100.0 * p.blocks_checked / p.blocks_total : 0;
  std::snprintf(
      buf, sizeof(buf),
      "scrub: %" PRIu64 "/%" PRIu64 " blocks (%.0f%%), %s, %.1f MB/s, %" PRIu64 " problems",
      p.blocks_checked, p.blocks_total, std::min(pct, 100.0), FormatBytes(p.bytes_checked).c_str(),
      secs > 0 ? p.bytes_checked / secs / 1e6 : 0, p.problems);
  return buf;
}

void PrintScrubReport(const std::string& target, const ScrubProgress& p,
                      const std::vector<ScrubProblem>& problems) {
  for (const ScrubProblem& q : problems) {
    std::printf("inode %" PRIu64 "%s%s%s offset %" PRIu64 ": %s\n", q.ino,
                q.path.empty() ? "" : " (", q.path.c_str(), q.path.empty() ? "" : ")", q.offset,
                q.what.c_str());
  }
  if (p.problems > problems.size()) {
    std::printf("(%" PRIu64 " more problems not listed)\n", p.problems - problems.size());
  }
  std::printf("%s: %" PRIu64 " blocks (%s) scrubbed in %.1f s; %" PRIu64 " problems\n",
              target.c_str(), p.blocks_checked, FormatBytes(p.bytes_checked).c_str(),
              p.elapsed_ns / 1e9, p.problems);
}

int Scrub(const std::string& path, double rate_mb, bool json) {
  std::unique_ptr<ScrubTarget> target;
  Status s = OpenScrubTarget(path, &target);
  if (!s.ok()) return Fail(s.ToString());
  s = target->Start(static_cast<uint64_t>(rate_mb * 1e6));
  if (!s.ok()) return Fail(path + ": " + s.ToString());
  // Interrupted, the scrub is cancelled rather than left running in the daemon.
  std::signal(SIGINT, OnInterrupt);
  std::signal(SIGTERM, OnInterrupt);
  ProgressLine line;
  ScrubProgress p;
  bool cancelled = false;
  for (;;) {
    s = target->Poll(&p);
    if (!s.ok()) return Fail(path + ": " + s.ToString());
    if (p.state != ScrubState::kRunning) break;
    if (interrupted && !cancelled) {
      target->Cancel();
      cancelled = true;
    }
    line.Update(ScrubProgressLine(p));
    // The daemon cannot notify this process; progress is polled, ten times a second.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  line.Clear();
  std::vector<ScrubProblem> problems;
  if (p.state == ScrubState::kDone) {
    s = target->Report(&problems);
    if (!s.ok()) return Fail(path + ": " + s.ToString());
  }
  int exit = p.state != ScrubState::kDone ? kError : p.problems > 0 ? kDamage : kClean;
  if (json) {
    std::printf("%s\n", ScrubReportJson(p, problems, exit).c_str());
  } else {
    PrintScrubReport(path, p, problems);
  }
  if (p.state == ScrubState::kFailed) Fail(path + ": scrub failed: " + p.error);
  if (p.state == ScrubState::kCancelled) Fail(path + ": scrub cancelled");
  return exit;
}

}  // namespace

int ScrubMain(int argc, char** argv) {
  double rate_mb = 100;
  bool json = false;
  std::string path;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--rate" && i + 1 < argc) {
      char* end = nullptr;
      rate_mb = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || rate_mb < 0)
        return Fail(std::string("bad --rate ") + argv[i]);
    } else if (!a.empty() && a[0] != '-' && path.empty()) {
      path = a;
    } else {
      Usage();
      return Fail("unknown argument " + a);
    }
  }
  if (path.empty()) {
    Usage();
    return kError;
  }
  return Scrub(path, rate_mb, json);
}

}  // namespace stablefs::ctl
