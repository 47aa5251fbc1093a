// stablefsctl torture-store: states x damages x file kinds, each case checked through a mount.
#include "tools/torture/torture.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tools/compare/util.h"

namespace stablefs::torture {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kBlock = 4096;
constexpr int kClean = 0, kDamage = 4, kError = 8;

const std::vector<std::string> kStates = {"clean",     "kill-after-fsync", "kill-in-writeback",
                                          "power-cut", "collected",        "trimmed"};
const std::vector<std::string> kDamages = {"none", "bitflip",  "zero-sector",
                                           "swap", "truncate", "remove"};
const std::vector<std::string> kKinds = {"segment", "wal",      "sst",     "blob",  "manifest",
                                         "current", "identity", "options", "synced"};

struct Programs {
  std::string self, stablefs, mkfs, fsck;
};

// Beside this binary (the install, or the build tree's tools/ with the daemon in ../fs), else on
// PATH.
Programs FindPrograms() {
  Programs p;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  p.self = n > 0 ? std::string(self, static_cast<size_t>(n)) : "stablefsctl";
  const std::string dir = fs::path(p.self).parent_path().string();
  auto find = [&](const std::string& name, const std::vector<std::string>& dirs) {
    for (const std::string& d : dirs) {
      if (access((d + "/" + name).c_str(), X_OK) == 0) return d + "/" + name;
    }
    return name;
  };
  const std::string up = fs::path(dir).parent_path().string();
  p.stablefs = find("stablefs", {dir, up + "/fs", up + "/bin", up + "/sbin"});
  p.mkfs = find("mkfs.stablefs", {dir, up + "/sbin"});
  p.fsck = find("fsck.stablefs", {dir, up + "/sbin"});
  return p;
}

// ---- The model of what was acknowledged ----

struct FileModel {
  std::string path;                   // relative to the mount
  std::vector<std::string> versions;  // the contents after each write, from "" at the create
  int acked = -1;                     // the version an fsync or the unmount acknowledged
  int fd = -1;                        // open for the whole workload (errseq: see Fsync)
};

// The workload, run through a mount. Every file stays open from its create to the end, so that
// a writeback error reaches its next fsync (an fd opened after the error would not see it).
// From the first failure on (the power cut) nothing more counts as acknowledged.
class Workload {
 public:
  Workload(std::string mnt, uint64_t seed) : mnt_(std::move(mnt)), rng_(seed) {}
  ~Workload() { CloseAll(); }

  std::vector<FileModel>& files() { return files_; }
  bool failed() const { return failed_; }

  size_t Create(const std::string& path) {
    FileModel f;
    f.path = path;
    f.versions.push_back("");
    f.fd = open((mnt_ + "/" + path).c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) failed_ = true;
    files_.push_back(f);
    return files_.size() - 1;
  }
  void Write(size_t i, size_t off, size_t n) {
    FileModel& f = files_[i];
    std::string data = compare::Pattern(n, rng_());
    std::string next = f.versions.back();
    if (next.size() < off + n) next.resize(off + n, '\0');
    std::memcpy(next.data() + off, data.data(), n);
    // A failed write may have changed the file or not: either version is possible.
    if (f.fd < 0 || compare::PwriteFull(f.fd, data.data(), n, static_cast<off_t>(off)) < 0) {
      failed_ = true;
    }
    f.versions.push_back(std::move(next));
  }
  void Fsync(size_t i) {
    FileModel& f = files_[i];
    if (f.fd < 0 || fsync(f.fd) != 0) failed_ = true;
    if (!failed_) f.acked = static_cast<int>(f.versions.size()) - 1;
  }
  void FsyncAll() {
    for (size_t i = 0; i < files_.size(); i++) Fsync(i);
  }
  // A clean unmount (exit status 0) acknowledged everything.
  void AckAll() {
    for (FileModel& f : files_) f.acked = static_cast<int>(f.versions.size()) - 1;
  }
  bool Trim() {
    int fd = open(mnt_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    fstrim_range r{0, ULLONG_MAX, 0};
    bool ok = ioctl(fd, FITRIM, &r) == 0;
    close(fd);
    return ok;
  }
  void CloseAll() {
    for (FileModel& f : files_) {
      if (f.fd >= 0) close(f.fd);
      f.fd = -1;
    }
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::string mnt_;
  std::mt19937_64 rng_;
  std::vector<FileModel> files_;
  bool failed_ = false;
};

// ---- A daemon the tool started (it ends only this PID) ----

class Daemon {
 public:
  Daemon(const Programs& p, const std::string& store, const std::string& mnt,
         const std::vector<std::string>& options, const std::string& log)
      : mnt_(mnt), log_(log) {
    std::vector<std::string> argv = {p.stablefs, "-f"};
    for (const std::string& o : options) {
      argv.push_back("-o");
      argv.push_back(o);
    }
    argv.push_back(store);
    argv.push_back(mnt);
    pid_ = compare::Spawn(argv, log);
  }
  ~Daemon() {
    if (pid_ > 0) Kill();
  }

  // Waits for the mount: true once mounted; false if the daemon exited (status()) or hung.
  bool WaitMounted(std::string* why) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      if (compare::IsMountPoint(mnt_)) return true;
      int st;
      pid_t r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        *why = "exit " + std::to_string(status_);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    *why = "no mount after 30 s";
    status_ = -1;
    Kill();
    return false;
  }
  // Unmounts and waits (60 s) for the daemon: its exit status, -1 if it hung (then killed).
  int Unmount() {
    compare::Run({"fusermount3", "-u", mnt_});
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Kill();
    return status_ = -1;
  }
  // SIGKILL: a crash of the daemon. The dead mount is detached.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    compare::Reap(pid_);
    pid_ = -1;
    compare::Run({"fusermount3", "-u", "-z", mnt_});
  }
  int status() const { return status_; }
  std::string LastLog() const {
    std::string s;
    compare::ReadWhole(log_, &s);
    return compare::LastLine(s);
  }

 private:
  std::string mnt_, log_;
  pid_t pid_ = -1;
  int status_ = 0;
};

// ---- States ----

struct Base {
  std::string store;
  std::vector<FileModel> files;
  std::string error;  // why the state could not be made
};

// Makes a store in `dir` and leaves it in `state`. cut: the power-cut step (power-cut only).
// *steps: the store steps of the whole run, for a run with no cut reached.
Base MakeState(const Programs& p, const std::string& state, const std::string& dir, uint64_t seed,
               int64_t cut, uint64_t* steps = nullptr) {
  Base b;
  b.store = dir + "/store";
  const std::string mnt = dir + "/mnt";
  fs::create_directories(mnt);
  std::string err;
  if (!compare::RunOk({p.mkfs, "-q", b.store}, &err)) {
    b.error = err;
    return b;
  }
  std::vector<std::string> options;
  if (state == "kill-in-writeback") options.push_back("writeback_expire_ms=1");
  if (state == "power-cut") options.push_back("debug_power_cut=" + std::to_string(cut));
  const std::string log = dir + "/make.log";
  Daemon d(p, b.store, mnt, options, log);
  if (!d.WaitMounted(&err)) {
    b.error = "mount: " + err + ": " + d.LastLog();
    return b;
  }
  Workload w(mnt, seed);
  {
    // Under a power cut at step 0 even the mkdir fails: the files below then fail too.
    if (mkdir((mnt + "/d").c_str(), 0755) != 0 && state != "power-cut") b.error = "mkdir failed";
    const size_t seq = w.Create("seq"), big = w.Create("big"), small = w.Create("small"),
                 rnd = w.Create("rand"), nested = w.Create("d/nested");
    w.Write(seq, 0, 256 << 10);  // one run: a segment
    for (size_t off = 0; off < (1 << 20); off += 64 << 10) w.Write(big, off, 64 << 10);
    w.Write(small, 0, 5000);  // short: the data family
    std::vector<size_t> order(16);
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), w.rng());
    for (size_t i : order) w.Write(rnd, i * kBlock, kBlock);
    w.Write(nested, 0, 20000);
    w.FsyncAll();
    // Overwrites leave dead blocks in the segments, for a collection to move and remove.
    w.Write(big, 256 << 10, 512 << 10);
    for (int i = 0; i < 4; i++) w.Write(rnd, (w.rng()() % 16) * kBlock, kBlock);
    w.Write(small, 5000, 3000);
    w.FsyncAll();
    if (state == "kill-in-writeback" || state == "power-cut") {
      const size_t late = w.Create("late");
      w.Write(late, 0, 2 << 20);
      w.Write(seq, 0, 128 << 10);
      if (state == "power-cut") w.FsyncAll();
    }
    if (state == "collected" || state == "trimmed") {
      if (!w.Trim()) b.error = std::string("FITRIM: ") + std::strerror(errno);
    }
  }
  if (!b.error.empty()) return b;
  w.CloseAll();
  if (state == "clean" || state == "trimmed") {
    const int st = d.Unmount();
    if (st != 0) {
      b.error = "unmount: exit " + std::to_string(st) + ": " + d.LastLog();
      return b;
    }
    w.AckAll();
  } else if (state == "power-cut") {
    d.Unmount();  // the cut's files are written when the daemon exits (status 1 after a cut)
    if (d.status() < 0 || d.status() >= 128) {
      b.error = "the power-cut daemon ended with " + std::to_string(d.status());
      return b;
    }
    if (steps != nullptr) {
      std::string all;
      compare::ReadWhole(dir + "/make.log", &all);
      const size_t at = all.rfind("cut ");
      const size_t paren = all.find('(', at == std::string::npos ? 0 : at);
      *steps = paren == std::string::npos ? 0 : std::strtoull(all.c_str() + paren + 1, nullptr, 10);
    }
  } else {
    d.Kill();
  }
  b.files = w.files();
  return b;
}

// ---- Damage ----

std::vector<std::string> FilesOfKind(const std::string& store, const std::string& kind) {
  std::vector<std::string> out;
  const std::string dir = kind == "segment" ? store + "/segments" : store;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    auto ends = [&](const char* suffix) {
      const size_t n = std::strlen(suffix);
      return name.size() > n && name.compare(name.size() - n, n, suffix) == 0;
    };
    bool match = (kind == "segment" && ends(".seg")) || (kind == "wal" && ends(".log")) ||
                 (kind == "sst" && ends(".sst")) || (kind == "blob" && ends(".blob")) ||
                 (kind == "manifest" && name.rfind("MANIFEST-", 0) == 0) ||
                 (kind == "current" && name == "CURRENT") ||
                 (kind == "identity" && name == "IDENTITY") ||
                 (kind == "synced" && name == "SYNCED") ||
                 (kind == "options" && name.rfind("OPTIONS-", 0) == 0);
    if (match) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Damages one file of `kind` in the store; "" if there was nothing to damage, else what was done.
std::string Damage(const std::string& store, const std::string& kind, const std::string& damage,
                   std::mt19937_64& rng) {
  std::vector<std::string> files = FilesOfKind(store, kind);
  // An empty WAL (the one a clean open starts) holds nothing to damage: take a non-empty one.
  files.erase(std::remove_if(files.begin(), files.end(),
                             [&](const std::string& f) {
                               return damage != "remove" && fs::file_size(f) == 0;
                             }),
              files.end());
  if (files.empty()) return "";
  const std::string file = files[rng() % files.size()];
  const uint64_t size = fs::file_size(file);
  const std::string name = fs::path(file).filename().string();
  if (damage == "remove") {
    fs::remove(file);
    return name + " removed";
  }
  if (damage == "truncate") {
    const uint64_t to = rng() % size;
    fs::resize_file(file, to);
    return name + " cut to " + std::to_string(to) + " of " + std::to_string(size) + " bytes";
  }
  int fd = open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return "";
  std::string what;
  if (damage == "bitflip") {
    const uint64_t off = rng() % size;
    const int bit = static_cast<int>(rng() % 8);
    char c;
    if (pread(fd, &c, 1, static_cast<off_t>(off)) == 1) {
      c = static_cast<char>(c ^ (1 << bit));
      if (pwrite(fd, &c, 1, static_cast<off_t>(off)) == 1) {
        what = name + " bit " + std::to_string(bit) + " of byte " + std::to_string(off);
      }
    }
  } else if (damage == "zero-sector") {
    const uint64_t sector = rng() % ((size + 511) / 512);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(512, size - sector * 512));
    std::string zeros(n, '\0');
    if (compare::PwriteFull(fd, zeros.data(), n, static_cast<off_t>(sector * 512)) >= 0) {
      what = name + " sector " + std::to_string(sector) + " zeroed";
    }
  } else if (damage == "swap") {
    // Two 4 KiB blocks, or two sectors of a smaller file.
    const size_t unit = size >= 2 * kBlock ? kBlock : 512;
    const uint64_t units = size / unit;
    if (units >= 2) {
      const uint64_t a = rng() % units;
      uint64_t b = rng() % (units - 1);
      if (b >= a) b++;
      std::string x(unit, '\0'), y(unit, '\0');
      if (compare::PreadFull(fd, x.data(), unit, static_cast<off_t>(a * unit)) >= 0 &&
          compare::PreadFull(fd, y.data(), unit, static_cast<off_t>(b * unit)) >= 0 &&
          compare::PwriteFull(fd, y.data(), unit, static_cast<off_t>(a * unit)) >= 0 &&
          compare::PwriteFull(fd, x.data(), unit, static_cast<off_t>(b * unit)) >= 0) {
        what = name + " " + std::to_string(unit) + "-byte units " + std::to_string(a) + " and " +
               std::to_string(b) + " swapped";
      }
    }
  }
  close(fd);
  return what;
}

// ---- Checking a case ----

struct Outcome {
  std::string kind;  // exact, eio, refused, n/a, WRONG, LOST
  std::string detail;
};

// Whether `got` (a read of block i) is block i of a version the model allows.
bool Allowed(const FileModel& f, size_t i, const std::string& got) {
  const size_t from = f.acked >= 0 ? static_cast<size_t>(f.acked) : 0;
  const size_t acked_size = f.acked >= 0 ? f.versions[from].size() : 0;
  auto block_of = [&](const std::string& v) {
    std::string b = i * kBlock < v.size() ? v.substr(i * kBlock, got.size()) : "";
    b.resize(got.size(), '\0');
    return b;
  };
  // Past the acknowledged size, a block no writeback reached reads as zeros.
  if (i * kBlock >= acked_size && got == std::string(got.size(), '\0')) return true;
  for (size_t v = from; v < f.versions.size(); v++) {
    if (block_of(f.versions[v]) == got) return true;
  }
  return false;
}

Outcome Check(const Programs& p, const std::string& store, const std::string& mnt,
              const std::vector<FileModel>& files, const std::string& log) {
  std::string fsck_out;
  const int fsck = compare::Run({p.fsck, "-n", store}, &fsck_out);
  if (fsck < 0 || fsck >= 128) {
    return {"WRONG", "fsck.stablefs crashed (" + std::to_string(fsck) + ")"};
  }
  Daemon d(p, store, mnt, {}, log);
  std::string why;
  if (!d.WaitMounted(&why)) {
    if (d.status() >= 128 || d.status() < 0) {
      return {"WRONG", "the daemon crashed or hung at mount (" + why + "): " + d.LastLog()};
    }
    if (fsck == 0) {
      return {"WRONG", "fsck found the store clean, but the daemon refused it: " + d.LastLog()};
    }
    return {"refused", d.LastLog()};
  }
  bool wrong = false, lost = false;
  int data_eio = 0, name_eio = 0;
  std::string detail;
  auto note = [&](const std::string& s) {
    if (detail.size() < 400) detail += (detail.empty() ? "" : "; ") + s;
  };
  for (const FileModel& f : files) {
    const std::string path = mnt + "/" + f.path;
    const size_t acked_size = f.acked >= 0 ? f.versions[f.acked].size() : 0;
    size_t max_size = 0;
    for (const std::string& v : f.versions) max_size = std::max(max_size, v.size());
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      if (errno == EIO) {
        name_eio++;
      } else if (f.acked >= 0) {
        lost = true;
        note(f.path + ": " + compare::Errno(errno));
      }
      continue;
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (size < acked_size) {
      lost = true;
      note(f.path + ": " + std::to_string(size) + " bytes, " + std::to_string(acked_size) +
           " acknowledged");
    }
    if (size > max_size) {
      wrong = true;
      note(f.path + ": " + std::to_string(size) + " bytes, more than ever written");
    }
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == EIO) {
        name_eio++;
      } else {
        wrong = true;
        note(f.path + ": open: " + compare::Errno(errno));
      }
      continue;
    }
    for (size_t i = 0; i * kBlock < size; i++) {
      std::string got(std::min(kBlock, size - i * kBlock), '\0');
      ssize_t r = compare::PreadFull(fd, got.data(), got.size(), static_cast<off_t>(i * kBlock));
      if (r < 0) {
        if (errno == EIO) {
          data_eio++;
        } else {
          wrong = true;
          note(f.path + " block " + std::to_string(i) + ": " + compare::Errno(errno));
        }
        continue;
      }
      if (!Allowed(f, i, got)) {
        wrong = true;
        note(f.path + " block " + std::to_string(i) + ": bytes no write put there");
      }
    }
    close(fd);
  }
  std::string scrub_out;
  const int scrub = compare::Run({p.self, "scrub", "--rate", "0", mnt}, &scrub_out);
  const int unmount = d.Unmount();
  if (unmount < 0 || unmount >= 128) {
    return {"WRONG", "the daemon crashed or hung at unmount (" + std::to_string(unmount) +
                         "): " + d.LastLog()};
  }
  if (scrub < 0 || scrub >= 128) return {"WRONG", "the scrub crashed"};
  if (wrong) return {"WRONG", detail};
  if (lost && fsck != kDamage) return {"LOST", detail + "; fsck exit " + std::to_string(fsck)};
  if (data_eio > 0 && (fsck != kDamage || scrub != kDamage)) {
    return {"WRONG", std::to_string(data_eio) + " blocks EIO, but fsck exit " +
                         std::to_string(fsck) + ", scrub exit " + std::to_string(scrub)};
  }
  if (name_eio > 0 && fsck != kDamage) {
    return {"WRONG",
            std::to_string(name_eio) + " names EIO, but fsck exit " + std::to_string(fsck)};
  }
  if (lost || data_eio > 0 || name_eio > 0) {
    return {"eio", std::to_string(data_eio) + " blocks and " + std::to_string(name_eio) +
                       " names EIO" + (lost ? "; " + detail : "") +
                       "; fsck: " + compare::LastLine(fsck_out)};
  }
  return {"exact", ""};
}

// ---- The campaign ----

struct Options {
  std::vector<std::string> states = kStates, damages = kDamages, kinds = kKinds;
  int rounds = 1;
  size_t sample = 0;  // 0: every cell
  bool every_cut = false;
  uint64_t seed = 0;
  bool keep = false;
  std::string work;
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: stablefsctl torture-store [--states LIST] [--damage LIST] [--kinds LIST]\n"
      "                                 [--rounds N] [--sample N] [--every-cut] [--seed N]\n"
      "                                 [--dir DIR] [--keep]\n"
      "  --states   clean,kill-after-fsync,kill-in-writeback,power-cut,collected,trimmed\n"
      "             (default: all)\n"
      "  --damage   none,bitflip,zero-sector,swap,truncate,remove (default: all)\n"
      "  --kinds    segment,wal,sst,blob,manifest,current,identity,options,synced\n"
      "             (default: all)\n"
      "  --rounds   damage positions tried per cell, 1 to 1000 (default: 1)\n"
      "  --sample   check only N cells, chosen by the seed (default: every cell)\n"
      "  --every-cut  also cut the power at every step of the workload, undamaged\n"
      "  --seed     the seed of positions and cut points (default: from the clock; printed)\n"
      "  --dir      where the stores are made (default: a new /var/tmp/stablefs-torture-*)\n"
      "  --keep     keep the stores of WRONG and LOST cases (default: remove everything)\n");
}

// The first of `some` that `all` does not hold, or "" when it holds every one.
std::string Unknown(const std::vector<std::string>& all, const std::vector<std::string>& some) {
  for (const std::string& s : some) {
    if (std::find(all.begin(), all.end(), s) == all.end()) return s.empty() ? "(empty)" : s;
  }
  return "";
}

// A decimal number, all of `s`.
bool ParseCount(const char* s, uint64_t* n) {
  if (*s < '0' || *s > '9') return false;
  char* end = nullptr;
  errno = 0;
  *n = std::strtoull(s, &end, 10);
  return errno == 0 && *end == '\0';
}

char Letter(const std::string& outcome) {
  if (outcome == "exact") return 'x';
  if (outcome == "eio") return 'e';
  if (outcome == "refused") return 'r';
  if (outcome == "n/a") return '-';
  if (outcome == "LOST") return 'L';
  return 'W';
}

}  // namespace

int TortureMain(int argc, char** argv) {
  Options o;
  o.seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  for (int i = 2; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else if (a == "--every-cut") {
      o.every_cut = true;
    } else if (a == "--keep") {
      o.keep = true;
    } else if ((a == "--states" || a == "--damage" || a == "--kinds" || a == "--rounds" ||
                a == "--sample" || a == "--seed" || a == "--dir") &&
               (v = value()) != nullptr) {
      if (a == "--states") o.states = SplitList(v);
      if (a == "--damage") o.damages = SplitList(v);
      if (a == "--kinds") o.kinds = SplitList(v);
      uint64_t n = 0;
      const bool number = a == "--rounds" || a == "--sample" || a == "--seed";
      if (number && !ParseCount(v, &n)) {
        std::fprintf(stderr, "stablefsctl: torture-store: %s takes a number, not '%s'\n", a.c_str(),
                     v);
        return kError;
      }
      if (a == "--rounds" && (n < 1 || n > 1000)) {
        std::fprintf(stderr, "stablefsctl: torture-store: --rounds takes 1 to 1000, not %s\n", v);
        return kError;
      }
      if (a == "--rounds") o.rounds = static_cast<int>(n);
      if (a == "--sample") o.sample = n;
      if (a == "--seed") o.seed = n;
      if (a == "--dir") o.work = v;
    } else {
      Usage();
      std::fprintf(stderr, "stablefsctl: torture-store: bad argument %s\n", a.c_str());
      return kError;
    }
  }
  for (const auto& [what, all, some] :
       {std::tuple{"state", &kStates, &o.states}, std::tuple{"damage", &kDamages, &o.damages},
        std::tuple{"kind", &kKinds, &o.kinds}}) {
    const std::string unknown = Unknown(*all, *some);
    if (!unknown.empty()) {
      Usage();
      std::fprintf(stderr, "stablefsctl: torture-store: no %s is called '%s'\n", what,
                   unknown.c_str());
      return kError;
    }
  }
  if (access("/dev/fuse", R_OK | W_OK) != 0) {
    std::fprintf(stderr, "stablefsctl: torture-store: no /dev/fuse\n");
    return kError;
  }
  const Programs p = FindPrograms();
  bool made_work = false;
  if (o.work.empty()) {
    char tmpl[] = "/var/tmp/stablefs-torture-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::fprintf(stderr, "stablefsctl: torture-store: mkdtemp: %s\n", std::strerror(errno));
      return kError;
    }
    o.work = tmpl;
    made_work = true;
  }
  fs::create_directories(o.work);
  std::printf("torture-store: seed %llu, work in %s\n", static_cast<unsigned long long>(o.seed),
              o.work.c_str());
  std::mt19937_64 rng(o.seed);

  // The cells: (state, kind, damage); "none" once per state.
  struct Cell {
    std::string state, kind, damage;
  };
  std::vector<Cell> cells;
  for (const std::string& s : o.states) {
    for (const std::string& d : o.damages) {
      if (d == "none") {
        cells.push_back({s, "-", d});
        continue;
      }
      for (const std::string& k : o.kinds) cells.push_back({s, k, d});
    }
  }
  if (o.sample > 0 && o.sample < cells.size()) {
    std::shuffle(cells.begin(), cells.end(), rng);
    cells.resize(o.sample);
  }

  int status = kClean;
  std::map<std::string, uint64_t> totals;
  std::map<std::string, std::string> matrix;  // "state/kind/damage" -> letters
  std::vector<std::string> bad;
  uint64_t power_steps = 0;
  auto record = [&](const std::string& key, const Outcome& out, const std::string& what,
                    const std::string& case_dir) {
    totals[out.kind]++;
    matrix[key] += Letter(out.kind);
    if (out.kind == "WRONG" || out.kind == "LOST") {
      status = kDamage;
      bad.push_back(out.kind + " " + key + ": " + what + ": " + out.detail +
                    (o.keep ? " (kept in " + case_dir + ")" : ""));
    }
  };
  const auto started = Clock::now();
  int case_no = 0;
  for (const std::string& state : o.states) {
    bool wanted = false;
    for (const Cell& c : cells) wanted |= c.state == state;
    if (!wanted) continue;
    for (int round = 0; round < o.rounds; round++) {
      const std::string sdir = o.work + "/" + state + "-" + std::to_string(round);
      int64_t cut = -1;
      if (state == "power-cut") {
        if (power_steps == 0) {
          // A run with no cut counts the workload's steps.
          const std::string cal = o.work + "/calibrate";
          Base c = MakeState(p, state, cal, o.seed, INT64_MAX / 2, &power_steps);
          fs::remove_all(cal);
          if (!c.error.empty() || power_steps == 0) {
            std::fprintf(stderr, "torture-store: cannot count the power-cut steps: %s\n",
                         c.error.c_str());
            return kError;
          }
        }
        cut = static_cast<int64_t>(rng() % (power_steps + 1));
      }
      Base base = MakeState(p, state, sdir, o.seed + round, cut);
      if (!base.error.empty()) {
        std::fprintf(stderr, "torture-store: cannot make state %s: %s\n", state.c_str(),
                     base.error.c_str());
        return kError;
      }
      for (const Cell& c : cells) {
        if (c.state != state) continue;
        const std::string key = c.state + "/" + c.kind + "/" + c.damage;
        const std::string cdir = o.work + "/case-" + std::to_string(case_no++);
        const std::string cstore = cdir + "/store", cmnt = cdir + "/mnt";
        fs::create_directories(cmnt);
        fs::copy(base.store, cstore, fs::copy_options::recursive);
        std::string what = "undamaged";
        if (c.damage != "none") what = Damage(cstore, c.kind, c.damage, rng);
        if (cut >= 0) what += " (power cut at step " + std::to_string(cut) + ")";
        Outcome out;
        if (what.empty()) {
          out = {"n/a", ""};
        } else {
          out = Check(p, cstore, cmnt, base.files, cdir + "/daemon.log");
        }
        record(key, out, what, cdir);
        if (!(o.keep && (out.kind == "WRONG" || out.kind == "LOST")) &&
            compare::MountsUnder(cdir).empty()) {
          fs::remove_all(cdir);
        }
      }
      if (compare::MountsUnder(sdir).empty()) fs::remove_all(sdir);
    }
  }
  // Every step of the workload as the power-cut point, undamaged.
  std::map<std::string, uint64_t> cut_totals;
  if (o.every_cut) {
    if (power_steps == 0) {
      const std::string cal = o.work + "/calibrate";
      Base c = MakeState(p, "power-cut", cal, o.seed, INT64_MAX / 2, &power_steps);
      fs::remove_all(cal);
    }
    for (uint64_t cut = 0; cut <= power_steps; cut++) {
      const std::string sdir = o.work + "/cut-" + std::to_string(cut);
      Base base = MakeState(p, "power-cut", sdir, o.seed, static_cast<int64_t>(cut));
      Outcome out;
      if (!base.error.empty()) {
        out = {"WRONG", "cannot make the state: " + base.error};
      } else {
        out = Check(p, base.store, sdir + "/mnt", base.files, sdir + "/check.log");
      }
      cut_totals[out.kind]++;
      totals[out.kind]++;
      if (out.kind == "WRONG" || out.kind == "LOST") {
        status = kDamage;
        bad.push_back(out.kind + " power cut at step " + std::to_string(cut) + ": " + out.detail);
      }
      if (!(o.keep && (out.kind == "WRONG" || out.kind == "LOST")) &&
          compare::MountsUnder(sdir).empty()) {
        fs::remove_all(sdir);
      }
    }
  }

  // The matrix: a table per state, file kinds down, damages across.
  std::printf(
      "\noutcomes: x exact, e EIO and found, r refused (one line, nonzero exit), - n/a,"
      " W WRONG, L LOST; one letter per round\n");
  for (const std::string& state : o.states) {
    bool any = false;
    for (const auto& [key, letters] : matrix) any |= key.rfind(state + "/", 0) == 0;
    if (!any) continue;
    std::printf("\n%s", state.c_str());
    if (state == "power-cut") std::printf(" (%llu steps)", (unsigned long long)power_steps);
    std::printf("\n%-10s", "");
    for (const std::string& d : o.damages) std::printf(" %-12s", d.c_str());
    std::printf("\n");
    for (const std::string& k : o.kinds) {
      std::printf("%-10s", k.c_str());
      for (const std::string& d : o.damages) {
        auto it = matrix.find(state + "/" + (d == "none" ? "-" : k) + "/" + d);
        std::printf(" %-12s", it == matrix.end() ? "." : it->second.c_str());
      }
      std::printf("\n");
    }
  }
  if (o.every_cut) {
    std::printf("\npower cut at every step (0..%llu), undamaged:", (unsigned long long)power_steps);
    for (const auto& [k, n] : cut_totals) std::printf(" %s %llu", k.c_str(), (unsigned long long)n);
    std::printf("\n");
  }
  uint64_t tried = 0;
  for (const auto& [k, n] : totals) tried += n;
  std::printf("\ncases %llu:", static_cast<unsigned long long>(tried));
  for (const char* k : {"exact", "eio", "refused", "n/a", "WRONG", "LOST"}) {
    std::printf(" %s %llu", k, static_cast<unsigned long long>(totals[k]));
  }
  std::printf(" (%.0f s)\n", std::chrono::duration<double>(Clock::now() - started).count());
  for (const std::string& b : bad) std::printf("%s\n", b.c_str());
  if (made_work && !o.keep && compare::MountsUnder(o.work).empty()) fs::remove_all(o.work);
  return status;
}

}  // namespace stablefs::torture
