// Scrub: chunked scans of the data space, each from one iterator, throttled between chunks.
#include "fs/scrub.h"

#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>

#include "fs/fsck.h"

namespace stablefs {

namespace {

using Clock = std::chrono::steady_clock;

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  return buf;
}

// The problem a block's failed check describes, field by field.
ScrubProblem MismatchProblem(const pi::Profile& p, uint64_t ino, uint64_t index,
                             const pi::Mismatch& m) {
  ScrubProblem r;
  r.ino = ino;
  r.offset = index * kBlockSize + uint64_t{m.interval} * p.interval;
  r.field = pi::FieldName(m.field);
  r.has_values = true;
  r.expected = m.expected;
  r.found = m.received;
  // DescribeMismatch says "inode I offset O: <what>"; the report names inode and offset itself.
  std::string line = pi::DescribeMismatch(p, ino, index * kBlockSize, m);
  const size_t colon = line.find(": ");
  r.what = colon == std::string::npos ? line : line.substr(colon + 2);
  return r;
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
  const size_t tb = store_->tuple_bytes_per_block();
  const pi::Profile& p = store_->profile();
  std::vector<std::string> seen;  // the chunk's data keys, in key order
  STABLEFS_RETURN_IF_ERROR(
      store_->Scan(Space::kData, *from, "", [&](std::string_view k, std::string_view v) {
        seen.emplace_back(k);
        uint64_t ino = 0, index = 0;
        pi::Mismatch m;
        if (!ParseDataKey(k, &ino, &index) || v.size() != kBlockSize + tb) {
          ScrubProblem r;
          r.ino = ino;
          r.offset = index * kBlockSize;
          r.field = "malformed";
          r.what = "malformed data record (" + std::to_string(v.size()) + " bytes)";
          AddProblem(std::move(r));
        } else if (!store_->CheckBlockPi(ino, index, v.data(), v.data() + kBlockSize, &m)) {
          AddProblem(MismatchProblem(p, ino, index, m));  // never re-protected
        }
        blocks_checked_.fetch_add(1, std::memory_order_relaxed);
        return seen.size() < max;
      }));
  *more = seen.size() == max;
  // The chunk ends after its last data key; at the end of the data, at the end of the space.
  std::string end = *more ? seen.back() + '\0' : std::string();
  std::vector<std::string> unseen;
  STABLEFS_RETURN_IF_ERROR(
      store_->Scan(Space::kBlockMap, *from, end, [&](std::string_view k, std::string_view v) {
        // A preallocated block has no data record by design.
        if (v != kBlockMapUnwritten && !std::binary_search(seen.begin(), seen.end(), k)) {
          unseen.emplace_back(k);
        }
        return true;
      }));
  for (const std::string& k : unseen) {
    uint64_t ino, index;
    BlockState state;
    if (!ParseDataKey(k, &ino, &index)) continue;
    STABLEFS_RETURN_IF_ERROR(store_->StateOfBlock(ino, index, &state));
    if (state != BlockState::kLost) continue;  // written or deleted since the chunk was read
    ScrubProblem r;
    r.ino = ino;
    r.offset = index * kBlockSize;
    r.field = "missing";
    r.what = "block missing: in the block map, not in the data";
    AddProblem(std::move(r));
  }
  if (*more) *from = end;
  return Status::Ok();
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
