// SIGKILL of the daemon under a mixed load (issue 8, guarantee 3): several threads create,
// write, overwrite, append, fsync, fdatasync, rename and unlink files on a mount; the daemon is
// killed after a random number of operations (seeded; the seed is printed), the store remounted,
// and what each thread's acknowledged fsyncs covered is checked against GUARANTEES.md section 3:
//
//  - namespace: an fsync or fdatasync makes every earlier namespace change durable, and each
//    change is atomic, so a thread's directory after the crash is its state after some prefix of
//    its namespace operations, at least up to its last acknowledged fsync;
//  - data: a file holds, at each byte of what its last acknowledged fsync covered, that byte of
//    the acknowledged content or of a later write to it (never anything else, never an error);
//    bytes no fsync covered hold some earlier write's byte or zero (not written back); the size
//    is one the file had, or a 4 KiB boundary below one, never below the acknowledged size.
//
// Then the daemon unmounts cleanly and fsck.stablefs -n finds the store clean. Each round uses a
// new directory of the same store. STABLEFS_SIGKILL_ROUNDS (default 5) and STABLEFS_SIGKILL_SEED
// (default: from the clock) set the run; the counts are printed.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/util/mount.h"

namespace stablefs::testing {
namespace {

constexpr int kThreads = 4;
constexpr size_t kMaxFileSize = 64 << 10;
constexpr size_t kMaxFiles = 8;
// An inode number the model does not know: a create that was under way when the daemon died.
constexpr uint64_t kUnknownIno = 0;

using Namespace = std::map<std::string, uint64_t>;  // name -> inode number

// What one file went through, as its thread saw it.
struct FileModel {
  std::string content;  // now
  // The states the file may be found in after the crash: the acknowledged content first (when
  // acked), then every later one; or every state since its creation.
  std::vector<std::string> states{""};
  bool acked = false;
  size_t acked_size = 0;
};

// One thread's files and the history of its directory.
struct ThreadModel {
  std::map<uint64_t, FileModel> files;  // by inode number
  Namespace names;
  std::vector<Namespace> ns_states{Namespace{}};  // after each namespace operation
  size_t durable_ns = 0;                          // ns_states[durable_ns] was acked
  int acks = 0;
  int ops = 0;
};

// Counts operations and tells the test when to kill.
class OpCounter {
 public:
  explicit OpCounter(int kill_at) : kill_at_(kill_at) {}
  void Count() {
    std::lock_guard<std::mutex> l(mu_);
    if (++ops_ == kill_at_) cv_.notify_all();
  }
  void ThreadDone() {
    std::lock_guard<std::mutex> l(mu_);
    done_++;
    cv_.notify_all();
  }
  // Until kill_at operations were made or every thread stopped; false after 60 s.
  bool WaitForKillMoment() {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(60),
                        [&] { return ops_ >= kill_at_ || done_ == kThreads; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int kill_at_;
  int ops_ = 0;
  int done_ = 0;
};

class LoadThread {
 public:
  LoadThread(int dirfd, uint64_t seed, OpCounter* counter, std::atomic<bool>* killed)
      : dirfd_(dirfd), rng_(seed), counter_(counter), killed_(killed) {}

  // Runs operations until one fails (the daemon is gone) or 20000 were made.
  void Run() {
    for (int i = 0; i < 20000 && Step(); i++) {
      model_.ops++;
      counter_->Count();
    }
    counter_->ThreadDone();
  }
  ThreadModel& model() { return model_; }
  // A failure while the daemon was alive.
  const std::string& error() const { return error_; }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string RandomBytes(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng_());
    return s;
  }
  std::string NewName() { return "f" + std::to_string(next_name_++); }
  // A random existing name, or "" when there is none.
  std::string AnyName() {
    if (model_.names.empty()) return "";
    auto it = model_.names.begin();
    std::advance(it, Pick(model_.names.size()));
    return it->first;
  }

  // False when the operation failed; a failure before the kill is an error of the test.
  bool Failed(const char* what) {
    if (!killed_->load()) error_ = std::string(what) + ": " + strerror(errno);
    return false;
  }
  void NamespaceChanged() { model_.ns_states.push_back(model_.names); }
  // A write that may or may not have reached the daemon before it died is a possible state.
  void ApplyWrite(FileModel* f, size_t off, const std::string& data) {
    if (f->content.size() < off + data.size()) f->content.resize(off + data.size(), '\0');
    f->content.replace(off, data.size(), data);
    f->states.push_back(f->content);
  }

  bool Create() {
    const std::string name = NewName();
    int fd = openat(dirfd_, name.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) {
      model_.names[name] = kUnknownIno;  // the create may have happened
      NamespaceChanged();
      return Failed("create");
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      return Failed("fstat");
    }
    model_.names[name] = st.st_ino;
    NamespaceChanged();
    FileModel& f = model_.files[st.st_ino];
    const std::string data = RandomBytes(Pick(20000));
    ApplyWrite(&f, 0, data);
    const bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
    close(fd);
    return ok || Failed("write");
  }

  // A write at `off` (or an append when off < 0) to a random file.
  bool Write(ssize_t off, size_t len) {
    const std::string name = AnyName();
    if (name.empty()) return Create();
    const uint64_t ino = model_.names[name];
    if (ino == kUnknownIno) return true;
    FileModel& f = model_.files[ino];
    const bool append = off < 0;
    if (append) off = static_cast<ssize_t>(f.content.size());  // one writer: the end is known
    len = std::min(len, kMaxFileSize - std::min<size_t>(kMaxFileSize, off));
    int fd = openat(dirfd_, name.c_str(), O_WRONLY | (append ? O_APPEND : 0));
    if (fd < 0) return Failed("open");
    const std::string data = RandomBytes(len);
    ApplyWrite(&f, off, data);
    const bool ok = pwrite(fd, data.data(), len, off) == static_cast<ssize_t>(len);
    close(fd);
    return ok || Failed("pwrite");
  }

  bool Sync(bool data_only) {
    const std::string name = AnyName();
    if (name.empty() || model_.names[name] == kUnknownIno) return true;
    FileModel& f = model_.files[model_.names[name]];
    int fd = openat(dirfd_, name.c_str(), O_WRONLY);
    if (fd < 0) return Failed("open");
    const int r = data_only ? fdatasync(fd) : fsync(fd);
    close(fd);
    if (r != 0) return Failed("fsync");
    // Acknowledged: this file's content and every earlier namespace change are durable.
    f.states = {f.content};
    f.acked = true;
    f.acked_size = f.content.size();
    model_.durable_ns = model_.ns_states.size() - 1;
    model_.acks++;
    return true;
  }

  bool Rename() {
    const std::string from = AnyName();
    if (from.empty()) return true;
    // To a new name, or over another file.
    const std::string to = Pick(2) == 0 ? NewName() : AnyName();
    if (to == from) return true;
    const uint64_t ino = model_.names[from];
    model_.names.erase(from);
    model_.names[to] = ino;
    NamespaceChanged();
    return renameat(dirfd_, from.c_str(), dirfd_, to.c_str()) == 0 || Failed("rename");
  }

  bool Unlink() {
    const std::string name = AnyName();
    if (name.empty()) return true;
    model_.names.erase(name);
    NamespaceChanged();
    return unlinkat(dirfd_, name.c_str(), 0) == 0 || Failed("unlink");
  }

  bool Step() {
    switch (Pick(10)) {
      case 0:
        return model_.names.size() < kMaxFiles ? Create() : Unlink();
      case 1:
        return Write(static_cast<ssize_t>(Pick(kMaxFileSize / 2)), 1 + Pick(8192));  // overwrite
      case 2:
        return Write(static_cast<ssize_t>(Pick(kMaxFileSize)), 1 + Pick(20000));  // anywhere
      case 3:
        return Write(-1, 1 + Pick(6000));  // append
      case 4:
      case 5:
        return Sync(/*data_only=*/false);
      case 6:
        return Sync(/*data_only=*/true);
      case 7:
        return Rename();
      case 8:
        return Unlink();
      default:
        return Write(static_cast<ssize_t>(Pick(4096)), 1 + Pick(512));  // small overwrite
    }
  }

  const int dirfd_;
  std::mt19937_64 rng_;
  OpCounter* counter_;
  std::atomic<bool>* killed_;
  ThreadModel model_;
  int next_name_ = 0;
  std::string error_;
};

std::string ReadAll(const std::string& path, bool* ok) {
  int fd = open(path.c_str(), O_RDONLY);
  *ok = fd >= 0;
  std::string out;
  char buf[65536];
  ssize_t n;
  while (*ok && (n = read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0) {
      *ok = false;
      break;
    }
    out.append(buf, n);
  }
  if (fd >= 0) close(fd);
  return out;
}

// The names in dir and their inode numbers.
Namespace ListDir(const std::string& dir) {
  Namespace names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    names[name] = lstat((dir + "/" + name).c_str(), &st) == 0 ? st.st_ino : ~uint64_t{0};
  }
  closedir(d);
  return names;
}

bool Matches(const Namespace& found, const Namespace& want) {
  if (found.size() != want.size()) return false;
  for (const auto& [name, ino] : want) {
    auto it = found.find(name);
    if (it == found.end() || (ino != kUnknownIno && it->second != ino)) return false;
  }
  return true;
}

// The file's bytes are each from one of its possible states, or zero where no acknowledged fsync
// covered them; its size is one of the states'. Returns "" or what is wrong.
std::string CheckContent(const FileModel& f, const std::string& got) {
  bool size_ok = false;
  size_t max_size = 0;
  for (const std::string& s : f.states) {
    size_ok |= s.size() == got.size();
    max_size = std::max(max_size, s.size());
  }
  // Writeback records the size up to the end of the last page it wrote (fs/writeback.cc), so a
  // file may also end at a 4 KiB boundary below a size it had; never below an acknowledged size.
  size_ok |= got.size() % 4096 == 0 && got.size() < max_size;
  if (f.acked && got.size() < f.acked_size) size_ok = false;
  if (!size_ok) return "size " + std::to_string(got.size()) + " is no state's size";
  for (size_t pos = 0; pos < got.size(); pos++) {
    bool ok = (!f.acked || pos >= f.acked_size) && got[pos] == '\0';
    for (size_t k = 0; !ok && k < f.states.size(); k++) {
      ok = pos < f.states[k].size() && f.states[k][pos] == got[pos];
    }
    if (!ok) return "byte " + std::to_string(pos) + " is from no write";
  }
  return "";
}

// Checks one thread's directory after the crash; adds the acknowledged files checked.
void CheckThread(const std::string& dir, const ThreadModel& m, int* acked_files_checked) {
  const Namespace found = ListDir(dir);
  bool prefix = false;
  for (size_t i = m.durable_ns; i < m.ns_states.size() && !prefix; i++) {
    prefix = Matches(found, m.ns_states[i]);
  }
  std::string listing;
  for (const auto& [name, ino] : found) listing += " " + name + ":" + std::to_string(ino);
  EXPECT_TRUE(prefix) << dir << " holds" << listing << ", which is no state after its "
                      << m.durable_ns << " acknowledged namespace operations";
  for (const auto& [name, ino] : found) {
    auto it = m.files.find(ino);
    if (it == m.files.end()) continue;  // a create under way at the kill
    bool read_ok;
    const std::string got = ReadAll(dir + "/" + name, &read_ok);
    EXPECT_TRUE(read_ok) << dir << "/" << name << ": " << strerror(errno);
    const std::string why = CheckContent(it->second, got);
    EXPECT_EQ(why, "") << dir << "/" << name << " (inode " << ino << ", "
                       << (it->second.acked ? "fsynced" : "never fsynced") << ")";
    if (it->second.acked && why.empty()) ++*acked_files_checked;
  }
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST(SigkillTest, AcknowledgedFsyncsSurviveSigkillUnderLoad) {
  const uint64_t rounds = EnvOr("STABLEFS_SIGKILL_ROUNDS", 5);
  const uint64_t seed = EnvOr("STABLEFS_SIGKILL_SEED",
                              static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  std::printf("sigkill: seed %llu (STABLEFS_SIGKILL_SEED to repeat), %llu rounds\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(rounds));
  std::mt19937_64 rng(seed);
  // A short or a long expiry, and a small cache: some of what fsync did not cover is written
  // back under the load (by age or to make room), the rest dies with the daemon.
  Mount m({"writeback_expire_ms=" + std::to_string(rng() % 2 == 0 ? 1 : 60000), "cache_size=1M"});
  ASSERT_TRUE(m.Start());
  int total_acks = 0, total_ops = 0, total_checked = 0;
  for (uint64_t round = 0; round < rounds; round++) {
    const std::string rdir = "r" + std::to_string(round);
    ASSERT_EQ(mkdir(m.Path(rdir).c_str(), 0755), 0) << strerror(errno);
    std::vector<int> dirfds;
    for (int t = 0; t < kThreads; t++) {
      const std::string tdir = m.Path(rdir + "/t" + std::to_string(t));
      ASSERT_EQ(mkdir(tdir.c_str(), 0755), 0) << strerror(errno);
      dirfds.push_back(open(tdir.c_str(), O_RDONLY | O_DIRECTORY));
      ASSERT_GE(dirfds.back(), 0);
    }
    ASSERT_EQ(fsync(dirfds[0]), 0);  // the directories are there whatever happens next

    const int kill_at = 50 + static_cast<int>(rng() % 3000);
    OpCounter counter(kill_at);
    std::atomic<bool> killed{false};
    std::vector<std::unique_ptr<LoadThread>> loads;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
      loads.push_back(std::make_unique<LoadThread>(dirfds[t], rng(), &counter, &killed));
    }
    for (auto& l : loads) threads.emplace_back([&l] { l->Run(); });
    const bool in_time = counter.WaitForKillMoment();
    killed = true;
    m.Crash();
    for (std::thread& t : threads) t.join();
    for (int fd : dirfds) close(fd);
    ASSERT_TRUE(in_time) << "the load made fewer than " << kill_at << " operations in 60 s";

    ASSERT_TRUE(m.Start()) << "round " << round;
    int acks = 0, ops = 0, checked = 0;
    for (int t = 0; t < kThreads; t++) {
      EXPECT_EQ(loads[t]->error(), "") << "thread " << t << " before the kill";
      CheckThread(m.Path(rdir + "/t" + std::to_string(t)), loads[t]->model(), &checked);
      acks += loads[t]->model().acks;
      ops += loads[t]->model().ops;
    }
    std::printf(
        "sigkill: round %llu: killed after %d operations (%d made), %d fsyncs "
        "acknowledged, %d fsynced files verified\n",
        static_cast<unsigned long long>(round), kill_at, ops, acks, checked);
    total_acks += acks;
    total_ops += ops;
    total_checked += checked;
    ASSERT_EQ(m.Stop(), 0);
    EXPECT_EQ(stablefs::testing::Run(std::string(FSCK_BIN) + " -n " + m.store()), 0)
        << "round " << round;
    if (::testing::Test::HasFailure()) {
      std::printf("sigkill: failed in round %llu; seed %llu\n",
                  static_cast<unsigned long long>(round), static_cast<unsigned long long>(seed));
      return;
    }
    if (round + 1 < rounds) {
      ASSERT_TRUE(m.Start());
    }
  }
  std::printf(
      "sigkill: %llu rounds, %d operations, %d fsyncs acknowledged, %d fsynced files "
      "verified after the kills\n",
      static_cast<unsigned long long>(rounds), total_ops, total_acks, total_checked);
  EXPECT_GT(total_acks, 0);
}

}  // namespace
}  // namespace stablefs::testing
