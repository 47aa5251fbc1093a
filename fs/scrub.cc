// Scrub: the store's verifier (storage/verifier.h) over chunks of the data space, each read by
// one iterator, throttled between chunks.
#include "fs/scrub.h"

#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>

#include "fs/fsck.h"
#include "storage/verifier.h"

namespace stablefs {

namespace {

using Clock = std::chrono::steady_clock;

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  return buf;
}

}  // namespace

const char* ScrubStateName(ScrubState s) {
  switch (s) {
    case ScrubState::kIdle:
      return "idle";
    case ScrubState::kRunning:
      return "running";
    case ScrubState::kDone:
      return "done";
    case ScrubState::kFailed:
      return "failed";
    case ScrubState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

Scrubber::~Scrubber() {
  Cancel();
  Wait();
  MutexLock l(&mu_);
  if (thread_.joinable()) thread_.join();
}

Status Scrubber::Start(const ScrubOptions& options) {
  MutexLock l(&mu_);
  if (state_ == ScrubState::kRunning) return Status::Busy("a scrub is running");
  // The last scrub's thread has set its final state and is exiting: joining does not wait long.
  if (thread_.joinable()) thread_.join();
  state_ = ScrubState::kRunning;
  generation_++;
  cancel_ = false;
  max_problems_ = options.max_problems;
  problems_.clear();
  error_.clear();
  start_ = end_ = Clock::now();
  blocks_total_ = blocks_checked_ = problems_found_ = 0;
  thread_ = std::thread([this, options] { Run(options); });
  return Status::Ok();
}

void Scrubber::Cancel() {
  MutexLock l(&mu_);
  cancel_ = true;
  cv_.SignalAll();
}

void Scrubber::Wait() {
  MutexLock l(&mu_);
  while (state_ == ScrubState::kRunning) cv_.Wait();
}

bool Scrubber::cancelled() const {
  MutexLock l(&mu_);
  return cancel_;
}

ScrubProgress Scrubber::progress() const {
  ScrubProgress p;
  MutexLock l(&mu_);
  p.state = state_;
  p.generation = generation_;
  p.blocks_total = blocks_total_.load();
  p.blocks_checked = blocks_checked_.load();
  p.bytes_checked = p.blocks_checked * kBlockSize;
  p.problems = problems_found_.load();
  const Clock::time_point end = state_ == ScrubState::kRunning ? Clock::now() : end_;
  p.elapsed_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start_).count();
  p.error = error_;
  return p;
}

std::vector<ScrubProblem> Scrubber::problems(size_t first, size_t max) const {
  MutexLock l(&mu_);
  if (first >= problems_.size()) return {};
  const size_t n = std::min(max, problems_.size() - first);
  return std::vector<ScrubProblem>(problems_.begin() + first, problems_.begin() + first + n);
}

void Scrubber::Run(ScrubOptions options) {
  Status s = ScrubAll(options);
  if (s.ok()) FindPaths();
  MutexLock l(&mu_);
  end_ = Clock::now();
  if (cancel_) {
    state_ = ScrubState::kCancelled;
  } else if (!s.ok()) {
    state_ = ScrubState::kFailed;
    error_ = s.ToString();
  } else {
    state_ = ScrubState::kDone;
  }
  cv_.SignalAll();
}

Status Scrubber::ScrubAll(const ScrubOptions& options) {
  // The total, for the progress line: what the inodes say they hold. Cheap beside the data.
  uint64_t total = 0;
  STABLEFS_RETURN_IF_ERROR(
      store_->Scan(Space::kInode, "", "", [&](std::string_view, std::string_view v) {
        InodeRecord rec;
        if (rec.DecodeFrom(v).ok() && S_ISREG(rec.mode)) total += rec.blocks;
        return true;
      }));
  blocks_total_ = total;
  // A chunk holds at most a tenth of a second of the rate, so that throttling is smooth.
  size_t chunk = kChunkBlocks;
  if (options.rate_bytes_per_sec > 0) {
    chunk = std::clamp<size_t>(options.rate_bytes_per_sec / 10 / kBlockSize, 1, kChunkBlocks);
  }
  std::string from;
  for (bool more = true; more;) {
    if (cancelled()) return Status::Ok();
    STABLEFS_RETURN_IF_ERROR(ScrubChunk(&from, chunk, &more));
    if (more && !Throttle(options, blocks_checked_.load() * kBlockSize)) return Status::Ok();
  }
  return Status::Ok();
}

Status Scrubber::ScrubChunk(std::string* from, size_t max, bool* more) {
  class Sink : public BlockVerifierSink {
   public:
    explicit Sink(Scrubber* s) : s_(s) {}
    void Checked(uint64_t, uint64_t) override {
      s_->blocks_checked_.fetch_add(1, std::memory_order_relaxed);
    }
    void Found(const BlockFinding& f) override {
      const pi::Profile& p = s_->store_->profile();
      ScrubProblem r;
      r.ino = f.ino;
      r.offset = f.Offset(p);
      r.field = f.Field();
      r.has_values = f.kind == BlockFindingKind::kMismatch;
      r.expected = f.mismatch.expected;
      r.found = f.mismatch.received;
      r.what = f.What(p);
      s_->AddProblem(std::move(r));  // never re-protected
    }

   private:
    Scrubber* const s_;
  } sink(this);
  return VerifyBlocks(store_, *from, max, &sink, from, more);
}

void Scrubber::AddProblem(ScrubProblem p) {
  problems_found_.fetch_add(1, std::memory_order_relaxed);
  MutexLock l(&mu_);
  if (problems_.size() < max_problems_) problems_.push_back(std::move(p));
}

bool Scrubber::Throttle(const ScrubOptions& options, uint64_t bytes) {
  MutexLock l(&mu_);
  if (options.rate_bytes_per_sec == 0) return !cancel_;
  const auto due = start_ + std::chrono::nanoseconds(static_cast<uint64_t>(
                                static_cast<double>(bytes) / options.rate_bytes_per_sec * 1e9));
  while (!cancel_ && Clock::now() < due) cv_.WaitFor(due - Clock::now());
  return !cancel_;
}

void Scrubber::FindPaths() {
  std::set<uint64_t> want;
  {
    MutexLock l(&mu_);
    for (const ScrubProblem& p : problems_) {
      if (p.ino != 0) want.insert(p.ino);
    }
  }
  // Walk up from the damaged inodes: each pass over the directory entries finds the names of the
  // inodes wanted so far, and their parents are wanted next. Only damaged stores pay for this.
  std::map<uint64_t, std::pair<uint64_t, std::string>> name_of;  // inode -> (parent, name)
  for (int depth = 0; depth < 256 && !want.empty(); depth++) {
    std::set<uint64_t> parents;
    Status s = store_->Scan(Space::kDirent, "", "", [&](std::string_view k, std::string_view v) {
      uint64_t parent;
      std::string_view name;
      DirentRecord d;
      if (!ParseNameKey(k, &parent, &name) || name == ".." || !d.DecodeFrom(v).ok()) return true;
      if (want.count(d.ino) && !name_of.count(d.ino)) {
        name_of[d.ino] = {parent, std::string(name)};
        if (parent != kRootIno && !name_of.count(parent)) parents.insert(parent);
      }
      return true;
    });
    if (!s.ok()) return;  // paths are a convenience; the report stands without them
    want = std::move(parents);
  }
  MutexLock l(&mu_);
  for (ScrubProblem& p : problems_) {
    std::string path;
    uint64_t ino = p.ino;
    while (ino != kRootIno) {
      auto it = name_of.find(ino);
      if (it == name_of.end() || path.size() > 4096) {
        path.clear();
        break;
      }
      path = "/" + it->second.second + path;
      ino = it->second.first;
    }
    if (ino == kRootIno) p.path = path.empty() ? "/" : path;
  }
}

std::string ScrubReportJson(const ScrubProgress& p, const std::vector<ScrubProblem>& problems,
                            int exit) {
  std::string s = "{\"state\": \"" + std::string(ScrubStateName(p.state)) +
                  "\", \"blocks\": " + std::to_string(p.blocks_checked) +
                  ", \"blocks_total\": " + std::to_string(p.blocks_total) +
                  ", \"bytes\": " + std::to_string(p.bytes_checked) +
                  ", \"seconds\": " + std::to_string(p.elapsed_ns / 1e9) +
                  ", \"problems_found\": " + std::to_string(p.problems) + ", \"problems\": [";
  for (size_t i = 0; i < problems.size(); i++) {
    const ScrubProblem& q = problems[i];
    s += (i ? ", " : "") + std::string("{\"inode\": ") + std::to_string(q.ino) + ", \"path\": \"" +
         JsonEscape(q.path) + "\", \"offset\": " + std::to_string(q.offset) + ", \"field\": \"" +
         JsonEscape(q.field) +
         "\", \"expected\": " + (q.has_values ? "\"" + Hex(q.expected) + "\"" : "null") +
         ", \"found\": " + (q.has_values ? "\"" + Hex(q.found) + "\"" : "null") +
         ", \"problem\": \"" + JsonEscape(q.what) + "\"}";
  }
  s += "]";
  if (!p.error.empty()) s += ", \"error\": \"" + JsonEscape(p.error) + "\"";
  return s + ", \"exit\": " + std::to_string(exit) + "}";
}

}  // namespace stablefs
