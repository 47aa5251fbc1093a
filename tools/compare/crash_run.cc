// stablefsctl compare --crash: runs each workload on each filesystem over the recording disk and
// checks every crash state of its recording (crash.h). Everything lives in a tmpfs of its own
// under a fresh /var/tmp/stablefs-crash-XXXXXX; every mount, loop device and daemon is undone
// on every exit path, also after SIGINT/SIGTERM.
//
//   stablefsctl compare --crash [--fs ext4,xfs,btrfs,stablefs] [--workloads seq1|seq2:N|LIST]
//                       [--reorder N] [--seed N] [--limit N] [--filter TEXT] [--exclude TEXT]
//                       [--json]
//                       [--mount-options OPTS] [--verbose]
//
// Defaults: all four filesystems, --workloads seq1, --reorder 2 (two seeded subsets of the
// writes of every epoch besides the epoch's first and last state), --seed 1.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "tools/compare/compare.h"
#include "tools/compare/crash.h"
#include "tools/compare/util.h"

namespace stablefs::compare::crash {

namespace {

// How one filesystem is made, mounted and checked.
struct FsKind {
  std::string name;      // ext4, xfs, btrfs, stablefs
  std::string fstype;    // the kernel filesystem (stablefs: the ext4 its store lives on)
  uint64_t image_bytes;  // xfs refuses less than 300 MiB
  std::vector<std::string> mkfs;
  std::vector<std::string> fsck;  // DEV appended
};

FsKind Kind(const std::string& name) {
  if (name == "xfs")
    return {"xfs", "xfs", 320ull << 20, {"mkfs.xfs", "-q", "-f"}, {"xfs_repair", "-n"}};
  if (name == "btrfs") {
    return {"btrfs",
            "btrfs",
            256ull << 20,
            {"mkfs.btrfs", "-q", "-f"},
            {"btrfs", "check", "--readonly"}};
  }
  // ext4 and stablefs's ext4: 4 KiB blocks, as on any disk of today's size.
  return {name, "ext4", 128ull << 20, {"mkfs.ext4", "-q", "-F", "-b", "4096"}, {"e2fsck", "-fn"}};
}

std::string Dirname(const std::string& p) {
  size_t s = p.rfind('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

// Copies the allocated extents of `from` into a fresh sparse `to` of the same size.
bool SparseCopy(const std::string& from, const std::string& to, std::string* err) {
  int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
  int out = open(to.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
  bool ok = in >= 0 && out >= 0;
  struct stat st;
  if (ok) ok = fstat(in, &st) == 0 && ftruncate(out, st.st_size) == 0;
  std::vector<char> buf(1 << 20);
  for (off_t pos = 0; ok;) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0) break;  // ENXIO: no data after pos
    off_t hole = lseek(in, data, SEEK_HOLE);
    for (off_t at = data; ok && at < hole;) {
      size_t n = size_t(std::min<off_t>(hole - at, off_t(buf.size())));
      ok = PreadFull(in, buf.data(), n, at) == ssize_t(n) &&
           PwriteFull(out, buf.data(), n, at) == ssize_t(n);
      at += off_t(n);
    }
    pos = hole;
  }
  if (!ok) *err = "copy " + from + " to " + to + ": " + Errno(errno);
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  return ok;
}

// A loop device over a file, detached when this goes away.
class Loop {
 public:
  ~Loop() { Detach(); }
  bool Attach(const std::string& file, std::string* err) {
    std::string out;
    if (!RunOk({"losetup", "-f", "--show", file}, err, &out)) return false;
    dev_ = Trim(out);
    return true;
  }
  void Detach() {
    if (!dev_.empty()) Run({"losetup", "-d", dev_});
    dev_.clear();
  }
  const std::string& dev() const { return dev_; }

 private:
  std::string dev_;
};

// A kernel mount, unmounted when this goes away.
class Mount {
 public:
  ~Mount() { Unmount(nullptr); }
  bool Do(const std::string& dev, const std::string& dir, const std::string& fstype,
          const std::string& options, std::string* err) {
    if (mount(dev.c_str(), dir.c_str(), fstype.c_str(), 0,
              options.empty() ? nullptr : options.c_str()) != 0) {
      *err = "mount -t " + fstype + " " + dev + ": " + Errno(errno);
      return false;
    }
    dir_ = dir;
    return true;
  }
  bool Unmount(std::string* err) {
    if (dir_.empty()) return true;
    if (umount2(dir_.c_str(), 0) != 0) {
      if (err) *err = "umount " + dir_ + ": " + Errno(errno);
      umount2(dir_.c_str(), MNT_DETACH);
      dir_.clear();
      return false;
    }
    dir_.clear();
    return true;
  }

 private:
  std::string dir_;
};

// A FUSE daemon child (the recorder, or stablefs), unmounted and reaped when this goes away.
class Daemon {
 public:
  ~Daemon() { Stop(nullptr); }
  bool Start(const std::vector<std::string>& argv, const std::string& mnt, const std::string& log,
             std::string* err) {
    mnt_ = mnt;
    log_ = log;
    pid_ = Spawn(argv, log);
    if (pid_ < 0) {
      *err = "cannot start " + argv[0];
      return false;
    }
    // The daemon mounts, then serves; the mount table says when it is there.
    while (!IsMountPoint(mnt_)) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        std::string text;
        ReadWhole(log, &text);
        *err = argv[0] + " exited before mounting: " + LastLine(text);
        return false;
      }
      if (Interrupted()) {
        *err = "interrupted";
        return false;
      }
      usleep(1000);
    }
    return true;
  }
  // Unmounts and waits for the daemon's exit, its status checked.
  bool Stop(std::string* err) {
    if (pid_ <= 0) return true;
    bool ok = Run({"fusermount3", "-u", mnt_}) == 0;
    if (!ok) Run({"fusermount3", "-u", "-z", mnt_});
    int status = ok ? Reap(pid_) : -1;
    if (!ok) {
      kill(pid_, SIGKILL);
      Reap(pid_);
    }
    pid_ = -1;
    if (status != 0) {
      std::string text;
      ReadWhole(log_, &text);
      if (err)
        *err =
            "daemon at " + mnt_ + " exited with " + std::to_string(status) + ": " + LastLine(text);
      return false;
    }
    return true;
  }

 private:
  pid_t pid_ = -1;
  std::string mnt_, log_;
};

struct Programs2 {
  std::string self, stablefs, mkfs, recorder, fsck_stablefs;
};

// The workspace of one filesystem's run.
struct Work {
  std::string dir;  // on the run's tmpfs
  std::string base, rec_image, rec_log, rec_mnt, live, state, state_mnt, stablefs_mnt;
  explicit Work(const std::string& d)
      : dir(d),
        base(d + "/base.img"),
        rec_image(d + "/recorded.img"),
        rec_log(d + "/recording.log"),
        rec_mnt(d + "/recorder"),
        live(d + "/live"),
        state(d + "/state.img"),
        state_mnt(d + "/state"),
        stablefs_mnt(d + "/stablefs") {}
};

// The line of a fsck's output that says what is wrong: the first that is not a pass heading or
// progress.
std::string FsckLine(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t.compare(0, 5, "Pass ") == 0 || t.compare(0, 6, "Phase ") == 0 ||
        t[0] == '-' || t.compare(0, 7, "e2fsck ") == 0 || t.compare(0, 8, "Opening ") == 0 ||
        t.compare(0, 8, "Checking") == 0 || t.compare(0, 1, "[") == 0) {
      continue;
    }
    return t;
  }
  return LastLine(out);
}

constexpr char kStore[] = "store";  // the stablefs store's directory in its ext4

class FsRun {
 public:
  FsRun(const FsKind& kind, const CrashOptions& o, const Programs2& progs, const std::string& dir)
      : kind_(kind), o_(o), progs_(progs), w_(dir) {}

  bool Prepare(std::string* err) {
    for (const std::string& d : {w_.dir, w_.rec_mnt, w_.live, w_.state_mnt, w_.stablefs_mnt}) {
      if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) {
        *err = d + ": " + Errno(errno);
        return false;
      }
    }
    int fd = open(w_.base.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0 || ftruncate(fd, off_t(kind_.image_bytes)) != 0) {
      *err = w_.base + ": " + Errno(errno);
      if (fd >= 0) close(fd);
      return false;
    }
    close(fd);
    std::vector<std::string> mkfs = kind_.mkfs;
    mkfs.push_back(w_.base);
    if (!RunOk(mkfs, err)) return false;
    if (kind_.name == "stablefs") {
      // The base image holds a fresh store, made on the ext4 and unmounted.
      Loop loop;
      Mount m;
      if (!loop.Attach(w_.base, err) || !m.Do(loop.dev(), w_.live, "ext4", "", err)) return false;
      if (!RunOk({progs_.mkfs, "-q", w_.live + "/" + kStore}, err)) return false;
      if (!m.Unmount(err)) return false;
    }
    return true;
  }

  // Runs workload `w` over the recorder and checks every crash state of its recording.
  bool RunOne(const Workload& w, FsResult* r, std::string* err) {
    Execution ex;
    std::vector<Record> records;
    if (!Record_(w, &ex, &records, err)) return false;
    Marks m;
    if (!FindMarks(records, w.steps.size(), &m, err)) return false;
    std::vector<State> states = CrashStates(records, m, o_.reorder, o_.seed);
    bool any_failed = false;
    for (const State& s : states) {
      if (Interrupted()) {
        *err = "interrupted";
        return false;
      }
      std::vector<std::string> problems;
      std::string kind;
      if (!CheckOne(w, ex, m, records, s, &problems, &kind, err)) return false;
      r->states++;
      if (problems.empty()) continue;
      any_failed = true;
      r->failed_states++;
      if (kind == "fsck")
        r->fsck_failed++;
      else if (kind == "unmountable")
        r->unmountable++;
      else
        r->lost++;
      std::string line = w.name + " [" + w.Describe() + "] at " + s.Describe() + ": " + problems[0];
      if (problems.size() > 1) line += " (+" + std::to_string(problems.size() - 1) + " more)";
      r->failures.push_back(line);
      if (o_.verbose) std::fprintf(stderr, "  %s\n", line.c_str());
    }
    if (o_.verbose && !any_failed) {
      std::fprintf(stderr, "  %s: %zu states kept\n", w.name.c_str(), states.size());
    }
    r->workloads++;
    return true;
  }

 private:
  // The live run: base image → recorder → loop → filesystem (→ stablefs) → workload.
  bool Record_(const Workload& w, Execution* ex, std::vector<Record>* records, std::string* err) {
    if (!SparseCopy(w_.base, w_.rec_image, err)) return false;
    {
      Daemon rec;
      std::vector<std::string> argv = {progs_.recorder};
      if (o_.drop_flushes) argv.push_back("--drop-flushes");
      argv.insert(argv.end(), {w_.rec_image, w_.rec_log, w_.rec_mnt});
      if (!rec.Start(argv, w_.rec_mnt, w_.dir + "/recorder.out", err)) return false;
      {
        Loop loop;
        Mount m;
        Daemon sfs;
        if (!loop.Attach(w_.rec_mnt + "/disk", err)) return false;
        std::string opts = kind_.name == "stablefs" ? "" : o_.mount_options;
        if (!m.Do(loop.dev(), w_.live, kind_.fstype, opts, err)) return false;
        std::string root = w_.live;
        if (kind_.name == "stablefs") {
          if (!StartStablefs(&sfs, w_.live + "/" + kStore, err)) return false;
          root = w_.stablefs_mnt;
        }
        int marks = open((w_.rec_mnt + "/marks").c_str(), O_WRONLY | O_CLOEXEC);
        if (marks < 0) {
          *err = "open marks: " + Errno(errno);
          return false;
        }
        bool ok = Execute(w, root, marks, ex, err);
        close(marks);
        if (!ok) return false;
        if (!sfs.Stop(err) || !m.Unmount(err)) return false;
      }
      if (!rec.Stop(err)) return false;
    }
    std::string bytes;
    if (!ReadWhole(w_.rec_log, &bytes)) {
      *err = w_.rec_log + ": " + Errno(errno);
      return false;
    }
    return ParseRecording(bytes, records, err);
  }

  bool StartStablefs(Daemon* d, const std::string& store, std::string* err) {
    std::vector<std::string> argv = {progs_.stablefs, "-f"};
    if (!o_.mount_options.empty()) argv.insert(argv.end(), {"-o", o_.mount_options});
    argv.insert(argv.end(), {store, w_.stablefs_mnt});
    return d->Start(argv, w_.stablefs_mnt, w_.dir + "/stablefs.out", err);
  }

  // Builds state `s`, mounts it, checks it at each of its crash points, unmounts and fscks it.
  // *kind: "lost" (a promise broken), "unmountable" or "fsck".
  bool CheckOne(const Workload& w, const Execution& ex, const Marks& m,
                const std::vector<Record>& records, const State& s,
                std::vector<std::string>* problems, std::string* kind, std::string* err) {
    if (!SparseCopy(w_.base, w_.state, err)) return false;
    int fd = open(w_.state.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      *err = w_.state + ": " + Errno(errno);
      return false;
    }
    bool ok = ApplyState(records, s, fd, err);
    if (ok && o_.test_damage == "superblock") {
      // ext4's primary superblock is at 1024, xfs's at 0, btrfs's at 64 KiB.
      static const std::string zeros(4096, '\0');
      ok = PwriteFull(fd, zeros.data(), zeros.size(), 0) == 4096 &&
           PwriteFull(fd, zeros.data(), zeros.size(), 65536) == 4096;
      if (!ok) *err = "damage state: " + Errno(errno);
    }
    close(fd);
    if (!ok) return false;
    Loop loop;
    if (!loop.Attach(w_.state, err)) return false;
    {
      Mount mnt;
      std::string why;
      if (!mnt.Do(loop.dev(), w_.state_mnt, kind_.fstype, "", &why)) {
        problems->push_back("does not mount: " + why);
        *kind = "unmountable";
        return true;
      }
      std::string root = w_.state_mnt;
      Daemon sfs;
      if (kind_.name == "stablefs") {
        std::vector<std::string> argv = {progs_.stablefs, "-f"};
        if (!o_.mount_options.empty()) argv.insert(argv.end(), {"-o", o_.mount_options});
        argv.insert(argv.end(), {w_.state_mnt + "/" + kStore, w_.stablefs_mnt});
        if (!sfs.Start(argv, w_.stablefs_mnt, w_.dir + "/stablefs-state.out", &why)) {
          problems->push_back("stablefs does not mount the store: " + why);
          *kind = "unmountable";
          return true;
        }
        root = w_.stablefs_mnt;
      }
      for (int64_t at : s.at) CheckState(w, ex, m, at, root, problems);
      if (!problems->empty()) *kind = "lost";
      if (kind_.name == "stablefs") {
        if (!sfs.Stop(&why)) {
          problems->push_back("stablefs: " + why);
          if (kind->empty()) *kind = "lost";
        }
        std::string out;
        if (Run({progs_.fsck_stablefs, w_.state_mnt + "/" + kStore}, &out) != 0) {
          problems->push_back("fsck.stablefs: " + LastLine(out));
          if (kind->empty()) *kind = "fsck";
        }
      }
      if (!mnt.Unmount(&why)) {
        problems->push_back(why);
        if (kind->empty()) *kind = "lost";
      }
    }
    std::string out;
    if (o_.test_damage == "fsck" &&
        !RunOk({"debugfs", "-w", "-R", "sif <2> links_count 9", loop.dev()}, err, &out)) {
      return false;
    }
    std::vector<std::string> fsck = kind_.fsck;
    fsck.push_back(loop.dev());
    int st = Run(fsck, &out);
    if (st != 0) {
      problems->push_back(fsck[0] + " exit " + std::to_string(st) + ": " + FsckLine(out));
      if (kind->empty()) *kind = "fsck";
    }
    return true;
  }

  FsKind kind_;
  const CrashOptions& o_;
  const Programs2& progs_;
  Work w_;
};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string p;
  while (std::getline(ss, p, ',')) {
    if (!p.empty()) parts.push_back(p);
  }
  return parts;
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: stablefsctl compare --crash [--fs ext4,xfs,btrfs,stablefs]\n"
      "           [--workloads seq1|seq2:N|seq1,seq2:N] [--reorder N] [--seed N]\n"
      "           [--limit N] [--filter TEXT] [--exclude TEXT] [--json] [--mount-options OPTS]\n"
      "           [--verbose]\n");
}

bool Parse(int argc, char** argv, CrashOptions* o) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&](std::string* v) {
      if (i + 1 >= argc) return false;
      *v = argv[++i];
      return true;
    };
    auto number = [&](uint64_t* n) {
      std::string v;
      if (!value(&v)) return false;
      char* end = nullptr;
      errno = 0;
      *n = std::strtoull(v.c_str(), &end, 10);
      return errno == 0 && end != v.c_str() && *end == '\0';
    };
    std::string v;
    uint64_t n = 0;
    if (a == "compare" || a == "--crash") continue;
    if (a == "--fs") {
      if (!value(&v)) return false;
      o->fs = Split(v);
    } else if (a == "--workloads") {
      if (!value(&o->workloads)) return false;
    } else if (a == "--reorder") {
      if (!number(&n)) return false;
      o->reorder = n;
    } else if (a == "--seed") {
      if (!number(&o->seed)) return false;
    } else if (a == "--limit") {
      if (!number(&n)) return false;
      o->limit = n;
    } else if (a == "--filter") {
      if (!value(&o->filter)) return false;
    } else if (a == "--exclude") {
      if (!value(&o->exclude)) return false;
    } else if (a == "--mount-options") {
      if (!value(&o->mount_options)) return false;
    } else if (a == "--json") {
      o->json = true;
    } else if (a == "--verbose") {
      o->verbose = true;
    } else if (a == "--test-drop-flushes") {
      o->drop_flushes = true;
    } else if (a == "--test-damage-state") {
      if (!value(&o->test_damage)) return false;
      if (o->test_damage != "superblock" && o->test_damage != "fsck") return false;
    } else {
      std::fprintf(stderr, "stablefsctl: compare --crash: unknown argument %s\n", a.c_str());
      return false;
    }
  }
  for (const std::string& fs : o->fs) {
    if (o->test_damage == "fsck" && fs != "ext4") {
      std::fprintf(stderr, "stablefsctl: compare --crash: --test-damage-state fsck: ext4 only\n");
      return false;
    }
    if (fs != "ext4" && fs != "xfs" && fs != "btrfs" && fs != "stablefs") {
      std::fprintf(stderr, "stablefsctl: compare --crash: unknown filesystem %s\n", fs.c_str());
      return false;
    }
  }
  return true;
}

bool Workloads(const CrashOptions& o, std::vector<Workload>* out) {
  for (const std::string& part : Split(o.workloads)) {
    if (part == "seq1") {
      for (Workload& w : AceSeq1()) out->push_back(std::move(w));
    } else if (part.compare(0, 5, "seq2:") == 0) {
      char* end = nullptr;
      uint64_t n = std::strtoull(part.c_str() + 5, &end, 10);
      if (end == part.c_str() + 5 || *end != '\0') return false;
      for (Workload& w : AceSeq2Sample(n, o.seed)) out->push_back(std::move(w));
    } else {
      return false;
    }
  }
  if (!o.filter.empty() || !o.exclude.empty()) {
    std::vector<Workload> kept;
    for (Workload& w : *out) {
      const std::string d = w.name + " [" + w.Describe() + "]";
      if (!o.filter.empty() && d.find(o.filter) == std::string::npos) continue;
      if (!o.exclude.empty() && d.find(o.exclude) != std::string::npos) continue;
      kept.push_back(std::move(w));
    }
    *out = std::move(kept);
  }
  if (o.limit > 0 && out->size() > o.limit) out->resize(o.limit);
  return true;
}

std::string JsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (uint8_t(c) < 32) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\u%04x", c);
      o += b;
      continue;
    }
    o += c;
  }
  return o;
}

void PrintTable(const CrashOptions& o, const std::vector<FsResult>& results, size_t workloads,
                double seconds) {
  if (o.json) {
    std::printf(
        "{\"kernel\": \"%s\", \"workloads\": \"%s\", \"reorder\": %zu, \"seed\": %llu, "
        "\"seconds\": %.0f, \"filesystems\": [",
        JsonEscape(KernelRelease()).c_str(), JsonEscape(o.workloads).c_str(), o.reorder,
        (unsigned long long)o.seed, seconds);
    for (size_t i = 0; i < results.size(); i++) {
      const FsResult& r = results[i];
      std::printf(
          "%s\n {\"fs\": \"%s\", \"workloads\": %zu, \"states\": %zu, "
          "\"failed_states\": %zu, \"lost\": %zu, \"unmountable\": %zu, "
          "\"fsck_failed\": %zu, \"seconds\": %.1f, \"error\": \"%s\", \"failures\": [",
          i ? "," : "", r.fs.c_str(), r.workloads, r.states, r.failed_states, r.lost, r.unmountable,
          r.fsck_failed, r.seconds, JsonEscape(r.error).c_str());
      for (size_t k = 0; k < r.failures.size(); k++) {
        std::printf("%s\"%s\"", k ? ", " : "", JsonEscape(r.failures[k]).c_str());
      }
      std::printf("]}");
    }
    std::printf("]}\n");
    return;
  }
  std::printf(
      "Kernel %s; workloads %s (%zu), %zu reordered subsets per epoch, seed %llu; "
      "`stablefsctl compare --crash`, %.0f s.\n\n",
      KernelRelease().c_str(), o.workloads.c_str(), workloads, o.reorder,
      (unsigned long long)o.seed, seconds);
  std::printf(
      "| filesystem | workloads | crash states | failed states | acknowledged data "
      "lost | unmountable | fsck failed | time |\n|---|---|---|---|---|---|---|---|\n");
  for (const FsResult& r : results) {
    if (!r.error.empty()) {
      std::printf("| %s | %zu | %zu | not measured: %s | | | | %.0f s |\n", r.fs.c_str(),
                  r.workloads, r.states, r.error.c_str(), r.seconds);
      continue;
    }
    std::printf("| %s | %zu | %zu | %s%zu%s | %zu | %zu | %zu | %.0f s |\n", r.fs.c_str(),
                r.workloads, r.states, r.failed_states ? "**" : "", r.failed_states,
                r.failed_states ? "**" : "", r.lost, r.unmountable, r.fsck_failed, r.seconds);
  }
  for (const FsResult& r : results) {
    if (r.failures.empty()) continue;
    std::printf("\n%s: %zu failed states:\n", r.fs.c_str(), r.failures.size());
    size_t shown = 0;
    for (const std::string& f : r.failures) {
      if (shown++ == 20) {
        std::printf("- ... %zu more (--json lists all)\n", r.failures.size() - 20);
        break;
      }
      std::printf("- %s\n", f.c_str());
    }
  }
}

}  // namespace

int CrashMain(int argc, char** argv, const std::string& self, const std::string& stablefs,
              const std::string& mkfs) {
  CrashOptions o;
  if (!Parse(argc, argv, &o)) {
    Usage();
    return 8;
  }
  std::vector<Workload> workloads;
  if (!Workloads(o, &workloads)) {
    std::fprintf(stderr, "stablefsctl: compare --crash: bad --workloads %s\n", o.workloads.c_str());
    return 8;
  }
  Programs2 progs{self, stablefs, mkfs, "stablefs-recorder", "fsck.stablefs"};
  for (const std::string& c : {Dirname(self) + "/stablefs-recorder"}) {
    if (access(c.c_str(), X_OK) == 0) progs.recorder = c;
  }
  std::string mkfs_dir = Dirname(mkfs);
  if (mkfs.find('/') != std::string::npos &&
      access((mkfs_dir + "/fsck.stablefs").c_str(), X_OK) == 0) {
    progs.fsck_stablefs = mkfs_dir + "/fsck.stablefs";
  }
  char tmpl[] = "/var/tmp/stablefs-crash-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::fprintf(stderr, "stablefsctl: compare --crash: mkdtemp: %s\n", strerror(errno));
    return 8;
  }
  const std::string work = tmpl;
  // Images, recordings and states live in memory: a state is copied and mounted hundreds of
  // times per filesystem.
  std::string err;
  if (!RunOk({"mount", "-t", "tmpfs", "-o", "size=4G,mode=0700", "tmpfs", work}, &err)) {
    std::fprintf(stderr, "stablefsctl: compare --crash: %s\n", err.c_str());
    rmdir(work.c_str());
    return 8;
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<FsResult> results;
  for (const std::string& fs : o.fs) {
    if (Interrupted()) break;
    FsResult r;
    r.fs = fs;
    auto t1 = std::chrono::steady_clock::now();
    {
      FsRun run(Kind(fs), o, progs, work + "/" + fs);
      if (!run.Prepare(&err)) {
        r.error = err;
      } else {
        for (const Workload& w : workloads) {
          if (Interrupted()) break;
          if (o.verbose) {
            std::fprintf(stderr, "%s %s: %s\n", fs.c_str(), w.name.c_str(), w.Describe().c_str());
          }
          if (!run.RunOne(w, &r, &err)) {
            r.error = w.name + ": " + err;
            break;
          }
        }
      }
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    std::fprintf(stderr,
                 "stablefsctl: compare --crash: %s: %zu workloads, %zu states, %zu failed"
                 ", %.0f s%s%s\n",
                 fs.c_str(), r.workloads, r.states, r.failed_states, r.seconds,
                 r.error.empty() ? "" : "; error: ", r.error.c_str());
    results.push_back(std::move(r));
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::string> left = MountsUnder(work);
  bool clean = true;
  for (const std::string& m : left) {
    if (m != work) {
      std::fprintf(stderr, "stablefsctl: compare --crash: %s still mounted\n", m.c_str());
      clean = false;
    }
  }
  if (clean) {
    Run({"umount", work});
    rmdir(work.c_str());
  }
  if (Interrupted()) {
    std::fprintf(stderr, "stablefsctl: compare --crash: interrupted; everything torn down\n");
    return 130;
  }
  PrintTable(o, results, workloads.size(), seconds);
  bool error = false, failed = false;
  for (const FsResult& r : results) {
    error |= !r.error.empty();
    failed |= r.failed_states > 0;
  }
  return error ? 8 : failed ? 1 : 0;
}

}  // namespace stablefs::compare::crash
