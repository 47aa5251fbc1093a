// The crash comparison's model: recordings, workloads, the oracle and the crash states
// (crash.h). The run itself (disks, mounts, fsck, the table) is crash_run.cc.
#include "tools/compare/crash.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <set>

#include "tools/compare/util.h"

namespace stablefs::compare::crash {

namespace {

uint64_t GetLE(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | uint8_t(s[at + i]);
  return v;
}

// The file set of ACE's default bounds: the root's foo and bar, directories A and B with theirs.
const std::vector<std::string> kPaths = {"foo",   "bar", "A",     "A/foo",
                                         "A/bar", "B",   "B/foo", "B/bar"};

std::string Parent(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}

bool Under(const std::string& p, const std::string& dir) {
  return p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/';
}

const char* kXattrName = "user.crash";

}  // namespace

// ---- The recording ----

bool ParseRecording(const std::string& b, std::vector<Record>* records, std::string* err) {
  records->clear();
  if (b.size() < 8 || b.compare(0, 8, "SFSRECv1") != 0) {
    *err = "not a stablefs-recorder log (no SFSRECv1 header)";
    return false;
  }
  size_t at = 8;
  while (at < b.size()) {
    Record r;
    char t = b[at];
    size_t need;
    switch (t) {
      case 'W':
        if (at + 13 > b.size()) return true;
        r.offset = GetLE(b, at + 1, 8);
        r.length = GetLE(b, at + 9, 4);
        need = 13 + r.length;
        if (at + need > b.size()) return true;
        r.data = b.substr(at + 13, r.length);
        break;
      case 'Z':
        if (at + 17 > b.size()) return true;
        r.offset = GetLE(b, at + 1, 8);
        r.length = GetLE(b, at + 9, 8);
        need = 17;
        break;
      case 'F':
        if (at + 2 > b.size()) return true;
        need = 2;
        break;
      case 'M':
        if (at + 5 > b.size()) return true;
        r.length = GetLE(b, at + 1, 4);
        need = 5 + r.length;
        if (at + need > b.size()) return true;
        r.data = b.substr(at + 5, r.length);
        break;
      default:
        *err =
            "bad record type " + std::to_string(int(uint8_t(t))) + " at byte " + std::to_string(at);
        return false;
    }
    r.type = Record::Type(t);
    records->push_back(std::move(r));
    at += need;
  }
  return true;
}

// ---- Workloads ----

bool IsPersistence(Op op) { return op == Op::kFsync || op == Op::kFdatasync || op == Op::kSync; }

std::string Describe(const Step& s) {
  auto range = [&] { return " " + std::to_string(s.off) + "+" + std::to_string(s.len); };
  switch (s.op) {
    case Op::kCreat:
      return "creat " + s.a;
    case Op::kMkdir:
      return "mkdir " + s.a;
    case Op::kWrite:
      return "write " + s.a + range();
    case Op::kDwrite:
      return "dwrite " + s.a + range();
    case Op::kMmapWrite:
      return "mmapwrite+msync " + s.a + range();
    case Op::kFalloc: {
      std::string m;
      if (s.mode & FALLOC_FL_PUNCH_HOLE) m += "punch|";
      if (s.mode & FALLOC_FL_ZERO_RANGE) m += "zero|";
      if (s.mode & FALLOC_FL_KEEP_SIZE) m += "keep|";
      m = m.empty() ? "0" : m.substr(0, m.size() - 1);
      return "falloc(" + m + ") " + s.a + range();
    }
    case Op::kTruncate:
      return "truncate " + s.a + " " + std::to_string(s.off);
    case Op::kLink:
      return "link " + s.a + " " + s.b;
    case Op::kSymlink:
      return "symlink " + s.a + " " + s.b;
    case Op::kUnlink:
      return "unlink " + s.a;
    case Op::kRemove:
      return "remove " + s.a;
    case Op::kRename:
      return "rename " + s.a + " " + s.b;
    case Op::kSetxattr:
      return "setxattr " + s.a;
    case Op::kRemovexattr:
      return "removexattr " + s.a;
    case Op::kFsync:
      return "fsync " + (s.a.empty() ? std::string(".") : s.a);
    case Op::kFdatasync:
      return "fdatasync " + s.a;
    case Op::kSync:
      return "sync";
  }
  return "?";
}

std::string Workload::Describe() const {
  std::string d;
  for (const Step& s : steps) {
    if (!d.empty()) d += "; ";
    d += crash::Describe(s);
  }
  return d;
}

namespace {

// What the generator knows of the file set while it builds a workload: type and size per path,
// so that dependencies are inserted (a file to write to, a parent directory) and persistence
// operations name something that exists.
struct Model {
  std::map<std::string, mode_t> type;
  std::map<std::string, uint64_t> size;
  std::set<std::string> xattr;

  bool Has(const std::string& p) const { return p.empty() || type.count(p) != 0; }
  bool IsFile(const std::string& p) const {
    auto it = type.find(p);
    return it != type.end() && it->second == S_IFREG;
  }

  void Apply(const Step& s) {
    switch (s.op) {
      case Op::kCreat:
        type[s.a] = S_IFREG;
        size[s.a] = 0;
        break;
      case Op::kMkdir:
        type[s.a] = S_IFDIR;
        break;
      case Op::kWrite:
      case Op::kDwrite:
      case Op::kMmapWrite:
        size[s.a] = std::max(size[s.a], s.off + s.len);
        break;
      case Op::kFalloc:
        if (!(s.mode & FALLOC_FL_KEEP_SIZE)) size[s.a] = std::max(size[s.a], s.off + s.len);
        break;
      case Op::kTruncate:
        size[s.a] = s.off;
        break;
      case Op::kLink:
        type[s.b] = S_IFREG;
        size[s.b] = size[s.a];
        break;
      case Op::kSymlink:
        type[s.b] = S_IFLNK;
        break;
      case Op::kUnlink:
      case Op::kRemove:
        type.erase(s.a);
        size.erase(s.a);
        xattr.erase(s.a);
        break;
      case Op::kRename: {
        std::map<std::string, mode_t> t2;
        std::map<std::string, uint64_t> s2;
        for (auto& [p, t] : type) {
          std::string q = p;
          if (p == s.a)
            q = s.b;
          else if (Under(p, s.a))
            q = s.b + p.substr(s.a.size());
          else if (p == s.b || Under(p, s.b))
            continue;
          t2[q] = t;
          if (size.count(p)) s2[q] = size[p];
        }
        type = t2;
        size = s2;
        if (xattr.erase(s.a)) xattr.insert(s.b);
        break;
      }
      case Op::kSetxattr:
        xattr.insert(s.a);
        break;
      case Op::kRemovexattr:
        xattr.erase(s.a);
        break;
      default:
        break;
    }
  }
};

void Push(std::vector<Step>* steps, Model* m, Step s, bool dep) {
  s.dependency = dep;
  m->Apply(s);
  steps->push_back(s);
}

// Inserts what `s` needs: parent directories, the file it acts on, data to overwrite, an xattr
// to remove.
void Satisfy(std::vector<Step>* steps, Model* m, const Step& s) {
  auto ensure_dir = [&](const std::string& d) {
    if (!d.empty() && !m->Has(d)) Push(steps, m, Step{Op::kMkdir, d}, true);
  };
  auto ensure_file = [&](const std::string& f) {
    ensure_dir(Parent(f));
    if (!m->Has(f)) Push(steps, m, Step{Op::kCreat, f}, true);
  };
  auto ensure_data = [&](const std::string& f) {
    ensure_file(f);
    if (m->size[f] == 0) {
      Step w{Op::kWrite, f};
      w.off = 0;
      w.len = 32768;
      Push(steps, m, w, true);
    }
  };
  switch (s.op) {
    case Op::kCreat:
    case Op::kMkdir:
      ensure_dir(Parent(s.a));
      break;
    case Op::kWrite:
    case Op::kDwrite:
    case Op::kMmapWrite:
    case Op::kFalloc:
    case Op::kTruncate:
      // Appends and overwrites of ACE's bounds all act on a file that has data, except an
      // append, which creates the file it appends to.
      if (s.off == 0 && s.op == Op::kWrite && s.len == 32768)
        ensure_file(s.a);
      else
        ensure_data(s.a);
      break;
    case Op::kLink:
    case Op::kRename:
      if (s.a == "A" || s.a == "B")
        ensure_dir(s.a);
      else
        ensure_file(s.a);
      ensure_dir(Parent(s.b));
      break;
    case Op::kSymlink:
      ensure_file(s.a);
      ensure_dir(Parent(s.b));
      break;
    case Op::kUnlink:
    case Op::kRemove:
    case Op::kSetxattr:
      ensure_file(s.a);
      break;
    case Op::kRemovexattr:
      ensure_file(s.a);
      if (!m->xattr.count(s.a)) Push(steps, m, Step{Op::kSetxattr, s.a}, true);
      break;
    default:
      break;
  }
}

// The core operations of ACE's bounds, as functions of the model (offsets depend on sizes).
using CoreOp = std::function<Step(const Model&)>;

uint64_t SizeOf(const Model& m, const std::string& f) {
  auto it = m.size.find(f);
  return it == m.size.end() ? 0 : it->second;
}

std::vector<std::pair<std::vector<std::string>, CoreOp>> CoreOps() {
  const std::vector<std::string> first = {"foo", "A/foo"}, second = {"bar", "A/bar"};
  std::vector<std::string> both = first;
  both.insert(both.end(), second.begin(), second.end());
  std::vector<std::pair<std::vector<std::string>, CoreOp>> ops;
  auto add = [&](std::vector<std::string> used, CoreOp f) { ops.emplace_back(used, f); };
  // Writes: ACE's append (32 KiB at the end), overlap_unaligned_start (5000 bytes at 0) and
  // overlap_extend (5000 bytes from 2000 before the end).
  for (const std::string& f : first) {
    add({f}, [f](const Model&) { return Step{Op::kCreat, f}; });
    for (Op op : {Op::kWrite}) {
      add({f}, [f, op](const Model& m) {
        Step s{op, f};
        s.off = SizeOf(m, f);
        s.len = 32768;
        return s;
      });
      add({f}, [f, op](const Model&) {
        Step s{op, f};
        s.off = 0;
        s.len = 5000;
        return s;
      });
      add({f}, [f, op](const Model& m) {
        Step s{op, f};
        uint64_t size = SizeOf(m, f);
        s.off = size > 2000 ? size - 2000 : 0;
        s.len = 5000;
        return s;
      });
    }
    // Direct and mmap writes: append 32 KiB, overlap_start 8 KiB at 0 (block aligned).
    for (Op op : {Op::kDwrite, Op::kMmapWrite}) {
      add({f}, [f, op](const Model& m) {
        Step s{op, f};
        s.off = SizeOf(m, f);
        s.len = 32768;
        return s;
      });
      add({f}, [f, op](const Model&) {
        Step s{op, f};
        s.off = 0;
        s.len = 8192;
        return s;
      });
    }
    for (int mode : {FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_KEEP_SIZE, 0}) {
      add({f}, [f, mode](const Model& m) {
        Step s{Op::kFalloc, f};
        s.mode = mode;
        s.off = SizeOf(m, f);
        s.len = 32768;
        return s;
      });
      add({f}, [f, mode](const Model&) {
        Step s{Op::kFalloc, f};
        s.mode = mode;
        s.off = 0;
        s.len = 5000;
        return s;
      });
      add({f}, [f, mode](const Model& m) {
        Step s{Op::kFalloc, f};
        s.mode = mode;
        s.off = SizeOf(m, f) > 2000 ? SizeOf(m, f) - 2000 : 0;
        s.len = 5000;
        return s;
      });
    }
    for (uint64_t len : {0, 2500}) {
      add({f}, [f, len](const Model&) {
        Step s{Op::kTruncate, f};
        s.off = len;
        return s;
      });
    }
    add({f}, [f](const Model&) { return Step{Op::kSetxattr, f}; });
    add({f}, [f](const Model&) { return Step{Op::kRemovexattr, f}; });
  }
  add({"A"}, [](const Model&) { return Step{Op::kMkdir, "A"}; });
  for (const std::string& a : both) {
    for (const std::string& b : second) {
      if (a == b) continue;
      add({a, b}, [a, b](const Model&) { return Step{Op::kLink, a, b}; });
      add({a, b}, [a, b](const Model&) { return Step{Op::kSymlink, a, b}; });
      add({a, b}, [a, b](const Model&) { return Step{Op::kRename, a, b}; });
    }
    add({a}, [a](const Model&) { return Step{Op::kUnlink, a}; });
    add({a}, [a](const Model&) { return Step{Op::kRemove, a}; });
  }
  add({"A", "B"}, [](const Model&) { return Step{Op::kRename, "A", "B"}; });
  return ops;
}

std::string Sibling(const std::string& p) {
  static const std::map<std::string, std::string> s = {
      {"foo", "bar"},     {"bar", "foo"},     {"A/foo", "A/bar"}, {"A/bar", "A/foo"},
      {"B/foo", "B/bar"}, {"B/bar", "B/foo"}, {"A", "B"},         {"B", "A"}};
  auto it = s.find(p);
  return it == s.end() ? p : it->second;
}

// ACE's file_range: the files used, their siblings and their parents ("" is the root).
std::vector<std::string> FileRange(const std::vector<std::string>& used) {
  std::set<std::string> r;
  for (const std::string& u : used) {
    r.insert(u);
    r.insert(Sibling(u));
    r.insert(Parent(u));
  }
  return {r.begin(), r.end()};
}

// The persistence operations that make sense after `m`: fsync of what exists and is not a
// symlink, fdatasync of a regular file, sync.
std::vector<Step> Persistence(const Model& m, const std::vector<std::string>& range) {
  std::vector<Step> p;
  for (const std::string& f : range) {
    if (!m.Has(f)) continue;
    auto it = m.type.find(f);
    if (it != m.type.end() && it->second == S_IFLNK) continue;
    p.push_back(Step{Op::kFsync, f});
    if (m.IsFile(f)) p.push_back(Step{Op::kFdatasync, f});
  }
  p.push_back(Step{Op::kSync});
  return p;
}

}  // namespace

std::vector<Workload> AceSeq1() {
  std::vector<Workload> out;
  for (auto& [used, core] : CoreOps()) {
    Model m;
    std::vector<Step> deps;
    // The dependencies depend on the core step, whose offsets depend on the dependencies: build
    // the step once on an empty model to learn what it needs, then again after them.
    Step probe = core(Model{});
    if (probe.op == Op::kFalloc || probe.op == Op::kTruncate ||
        ((probe.op == Op::kWrite || probe.op == Op::kDwrite || probe.op == Op::kMmapWrite) &&
         !(probe.off == 0 && probe.len == 32768))) {
      Satisfy(&deps, &m, Step{Op::kTruncate, probe.a});  // a file with data
    }
    Satisfy(&deps, &m, probe);
    Step s = core(m);
    Model after = m;
    after.Apply(s);
    for (const Step& p : Persistence(after, FileRange(used))) {
      Workload w;
      w.steps = deps;
      w.steps.push_back(s);
      w.steps.push_back(p);
      char name[32];
      std::snprintf(name, sizeof(name), "seq1-%04zu", out.size());
      w.name = name;
      out.push_back(std::move(w));
    }
  }
  return out;
}

std::vector<Workload> AceSeq2Sample(size_t n, uint64_t seed) {
  std::vector<Workload> out;
  auto ops = CoreOps();
  std::mt19937_64 rng(seed);
  for (size_t tries = 0; out.size() < n && tries < n * 20; tries++) {
    Model m;
    Workload w;
    std::vector<std::string> used;
    bool ok = true;
    for (int k = 0; k < 2; k++) {
      auto& [u, core] = ops[rng() % ops.size()];
      Step probe = core(m);
      if (probe.op == Op::kFalloc || probe.op == Op::kTruncate ||
          ((probe.op == Op::kWrite || probe.op == Op::kDwrite || probe.op == Op::kMmapWrite) &&
           !(probe.off == 0 && probe.len == 32768) && !m.IsFile(probe.a))) {
        Satisfy(&w.steps, &m, Step{Op::kTruncate, probe.a});
      }
      Satisfy(&w.steps, &m, probe);
      Step s = core(m);
      // Combinations the syscalls refuse (a link or directory over an existing name, a
      // directory renamed over a non-empty one) are not workloads.
      const std::string& target = s.op == Op::kMkdir ? s.a : s.b;
      bool refused =
          ((s.op == Op::kLink || s.op == Op::kSymlink || s.op == Op::kMkdir) && m.Has(target)) ||
          (s.op == Op::kRemovexattr && !m.xattr.count(s.a));
      if (s.op == Op::kRename && m.type.count(s.b) && m.type.at(s.b) == S_IFDIR) {
        for (auto& [p, t] : m.type) refused |= Under(p, s.b);
      }
      if (refused) {
        ok = false;
        break;
      }
      Push(&w.steps, &m, s, false);
      used.insert(used.end(), u.begin(), u.end());
      std::vector<Step> p = Persistence(m, FileRange(used));
      // After the first operation: one of its persistence operations, or none.
      size_t pick = rng() % (p.size() + (k == 0 ? 1 : 0));
      if (pick < p.size()) Push(&w.steps, &m, p[pick], false);
    }
    if (!ok || w.steps.empty() || !IsPersistence(w.steps.back().op)) continue;
    char name[32];
    std::snprintf(name, sizeof(name), "seq2-%04zu", out.size());
    w.name = name;
    out.push_back(std::move(w));
  }
  return out;
}

// ---- Running a workload and reading the oracle ----

namespace {

std::string Join(const std::string& root, const std::string& p) {
  return p.empty() ? root : root + "/" + p;
}

// The object at `p` now: type, size, bytes or target, and user xattrs if asked.
bool ReadObject(const std::string& root, const std::string& p, bool xattrs, Fact* f,
                std::string* err) {
  std::string path = Join(root, p);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    f->exists = false;
    return true;
  }
  f->exists = true;
  f->type = st.st_mode & S_IFMT;
  if (S_ISREG(st.st_mode)) {
    f->size = uint64_t(st.st_size);
    if (!ReadWhole(path, &f->content)) {
      *err = "read " + p + ": " + Errno(errno);
      return false;
    }
  } else if (S_ISLNK(st.st_mode)) {
    char buf[4096];
    ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
    if (n < 0) {
      *err = "readlink " + p + ": " + Errno(errno);
      return false;
    }
    f->content.assign(buf, size_t(n));
  }
  if (xattrs && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
    f->has_xattrs = true;
    char names[4096];
    ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
    for (ssize_t i = 0; n > 0 && i < n; i += ssize_t(std::strlen(names + i)) + 1) {
      std::string name = names + i;
      if (name.compare(0, 5, "user.") != 0) continue;
      char value[4096];
      ssize_t v = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
      if (v >= 0) f->xattrs[name] = std::string(value, size_t(v));
    }
  }
  return true;
}

void Mark(int fd, const std::string& name) {
  if (fd >= 0 && write(fd, name.data(), name.size()) < 0) {
    // A lost mark shows as a missing one when the recording is read.
  }
}

bool Fail(std::string* err, const Step& s, const std::string& what) {
  *err = Describe(s) + ": " + what + ": " + Errno(errno);
  return false;
}

// Runs one step; persistence steps and msync add their promise to *p.
bool RunStep(const Step& s, int index, const std::string& root, Promise* p, std::string* err) {
  const std::string a = Join(root, s.a), b = Join(root, s.b);
  std::string data = Pattern(s.len, uint64_t(index) + 1);
  switch (s.op) {
    case Op::kCreat: {
      int fd = open(a.c_str(), O_CREAT | O_RDWR, 0644);
      if (fd < 0) return Fail(err, s, "open");
      close(fd);
      return true;
    }
    case Op::kMkdir:
      if (mkdir(a.c_str(), 0755) != 0) return Fail(err, s, "mkdir");
      return true;
    case Op::kWrite: {
      int fd = open(a.c_str(), O_RDWR);
      if (fd < 0) return Fail(err, s, "open");
      bool ok = PwriteFull(fd, data.data(), data.size(), off_t(s.off)) == ssize_t(data.size());
      close(fd);
      return ok || Fail(err, s, "pwrite");
    }
    case Op::kDwrite: {
      int fd = open(a.c_str(), O_RDWR | O_DIRECT);
      if (fd < 0) return Fail(err, s, "open O_DIRECT");
      void* buf = nullptr;
      if (posix_memalign(&buf, 4096, s.len) != 0) {
        close(fd);
        return Fail(err, s, "posix_memalign");
      }
      std::memcpy(buf, data.data(), s.len);
      bool ok = PwriteFull(fd, buf, s.len, off_t(s.off)) == ssize_t(s.len);
      free(buf);
      close(fd);
      return ok || Fail(err, s, "pwrite O_DIRECT");
    }
    case Op::kMmapWrite: {
      int fd = open(a.c_str(), O_RDWR);
      if (fd < 0) return Fail(err, s, "open");
      struct stat st;
      if (fstat(fd, &st) != 0 ||
          (uint64_t(st.st_size) < s.off + s.len && ftruncate(fd, off_t(s.off + s.len)) != 0)) {
        close(fd);
        return Fail(err, s, "ftruncate");
      }
      void* map = mmap(nullptr, s.off + s.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (map == MAP_FAILED) {
        close(fd);
        return Fail(err, s, "mmap");
      }
      std::memcpy(static_cast<char*>(map) + s.off, data.data(), s.len);
      int rc = msync(map, s.off + s.len, MS_SYNC);
      int e = errno;
      munmap(map, s.off + s.len);
      close(fd);
      errno = e;
      if (rc != 0) return Fail(err, s, "msync");
      // msync(MS_SYNC) is fdatasync of the range: its bytes, and the size that reaches them.
      Fact f;
      f.exists = true;
      f.range_off = s.off;
      f.content = data;
      p->facts["r:" + s.a] = f;
      return true;
    }
    case Op::kFalloc: {
      int fd = open(a.c_str(), O_RDWR);
      if (fd < 0) return Fail(err, s, "open");
      int rc = fallocate(fd, s.mode, off_t(s.off), off_t(s.len));
      close(fd);
      return rc == 0 || Fail(err, s, "fallocate");
    }
    case Op::kTruncate:
      if (truncate(a.c_str(), off_t(s.off)) != 0) return Fail(err, s, "truncate");
      return true;
    case Op::kLink:
      if (link(a.c_str(), b.c_str()) != 0) return Fail(err, s, "link");
      return true;
    case Op::kSymlink:
      // The target is the name in the file set, as ACE writes it.
      if (symlink(a.c_str(), b.c_str()) != 0) return Fail(err, s, "symlink");
      return true;
    case Op::kUnlink:
      if (unlink(a.c_str()) != 0) return Fail(err, s, "unlink");
      return true;
    case Op::kRemove:
      if (remove(a.c_str()) != 0) return Fail(err, s, "remove");
      return true;
    case Op::kRename:
      if (rename(a.c_str(), b.c_str()) != 0) return Fail(err, s, "rename");
      return true;
    case Op::kSetxattr: {
      std::string v = "value-" + std::to_string(index);
      if (lsetxattr(a.c_str(), kXattrName, v.data(), v.size(), 0) != 0) {
        return Fail(err, s, "setxattr");
      }
      return true;
    }
    case Op::kRemovexattr:
      if (lremovexattr(a.c_str(), kXattrName) != 0) return Fail(err, s, "removexattr");
      return true;
    case Op::kFsync:
    case Op::kFdatasync: {
      int fd = open(a.c_str(), O_RDONLY);
      if (fd < 0) return Fail(err, s, "open");
      int rc = s.op == Op::kFsync ? fsync(fd) : fdatasync(fd);
      int e = errno;
      close(fd);
      errno = e;
      if (rc != 0) return Fail(err, s, s.op == Op::kFsync ? "fsync" : "fdatasync");
      Fact f;
      if (!ReadObject(root, s.a, s.op == Op::kFsync, &f, err)) return false;
      if (s.op == Op::kFsync) {
        // fsync of a file or directory makes its name durable (ext4, xfs and btrfs promise it
        // for a new file; ACE counts its loss as a bug) and, for a directory, every entry.
        if (!s.a.empty()) p->facts["n:" + s.a] = Fact::Name(true, f.type);
        if (f.type == S_IFDIR) {
          for (const std::string& q : kPaths) {
            if (Parent(q) != s.a) continue;
            struct stat st;
            Fact n;
            n.exists = lstat(Join(root, q).c_str(), &st) == 0;
            if (n.exists) n.type = st.st_mode & S_IFMT;
            p->facts["n:" + q] = n;
          }
        }
      }
      p->facts["d:" + s.a] = f;
      return true;
    }
    case Op::kSync:
      sync();
      for (const std::string& q : kPaths) {
        Fact f;
        if (!ReadObject(root, q, true, &f, err)) return false;
        p->facts["n:" + q] = Fact::Name(f.exists, f.type);
        if (f.exists) p->facts["d:" + q] = f;
      }
      return true;
  }
  return true;
}

// The keys step `s` changes, before name expansion.
std::vector<std::string> KeysOf(const Step& s, const std::map<std::string, ino_t>& inode_before) {
  std::vector<std::string> k;
  auto obj = [&](const std::string& p) {
    k.push_back("d:" + p);
    k.push_back("r:" + p);
  };
  auto name = [&](const std::string& p) { k.push_back("n:" + p); };
  switch (s.op) {
    case Op::kCreat:
    case Op::kMkdir:
    case Op::kSymlink:
      name(s.op == Op::kSymlink ? s.b : s.a);
      obj(s.op == Op::kSymlink ? s.b : s.a);
      break;
    case Op::kWrite:
    case Op::kDwrite:
    case Op::kMmapWrite:
    case Op::kFalloc:
    case Op::kTruncate:
    case Op::kSetxattr:
    case Op::kRemovexattr:
      obj(s.a);
      break;
    case Op::kLink:
      obj(s.a);
      name(s.b);
      obj(s.b);
      break;
    case Op::kUnlink:
    case Op::kRemove:
      name(s.a);
      obj(s.a);
      break;
    case Op::kRename:
      for (const std::string& p : kPaths) {
        if (p == s.a || p == s.b || Under(p, s.a) || Under(p, s.b)) {
          name(p);
          obj(p);
        }
      }
      break;
    default:
      break;
  }
  // A directory's own object changes with its entries (its size, on some filesystems).
  for (const std::string& key : std::vector<std::string>(k)) {
    if (key.compare(0, 2, "n:") == 0) k.push_back("d:" + Parent(key.substr(2)));
  }
  (void)inode_before;
  return k;
}

std::map<std::string, ino_t> Inodes(const std::string& root) {
  std::map<std::string, ino_t> m;
  for (const std::string& p : kPaths) {
    struct stat st;
    if (lstat(Join(root, p).c_str(), &st) == 0 && S_ISREG(st.st_mode)) m[p] = st.st_ino;
  }
  return m;
}

}  // namespace

bool Execute(const Workload& w, const std::string& root, int marks_fd, Execution* ex,
             std::string* err) {
  ex->promises.clear();
  ex->touches.clear();
  // The image before the workload was unmounted cleanly: all of it is durable.
  Promise base;
  for (const std::string& q : kPaths) {
    Fact f;
    if (!ReadObject(root, q, true, &f, err)) return false;
    base.facts["n:" + q] = Fact::Name(f.exists, f.type);
    if (f.exists) base.facts["d:" + q] = f;
  }
  ex->promises.push_back(base);
  for (size_t i = 0; i < w.steps.size(); i++) {
    const Step& s = w.steps[i];
    std::map<std::string, ino_t> before = Inodes(root);
    Mark(marks_fd, "b" + std::to_string(i));
    Promise p;
    p.step = int(i);
    if (!RunStep(s, int(i), root, &p, err)) return false;
    Mark(marks_fd, "e" + std::to_string(i));
    std::map<std::string, ino_t> after = Inodes(root);
    // Expand the object keys to every name of the same inode, before and after the step.
    Touch t;
    t.keys = KeysOf(s, before);
    for (const std::string& key : std::vector<std::string>(t.keys)) {
      if (key.compare(0, 2, "d:") != 0) continue;
      std::string p0 = key.substr(2);
      for (auto* m : {&before, &after}) {
        auto it = m->find(p0);
        if (it == m->end()) continue;
        for (auto& [q, ino] : *m) {
          if (ino == it->second && q != p0) {
            t.keys.push_back("d:" + q);
            t.keys.push_back("r:" + q);
          }
        }
      }
    }
    ex->touches.push_back(t);
    if (!p.facts.empty()) ex->promises.push_back(std::move(p));
  }
  Mark(marks_fd, "end");
  return true;
}

bool FindMarks(const std::vector<Record>& records, size_t steps, Marks* m, std::string* err) {
  m->begin.assign(steps, -1);
  m->end.assign(steps, -1);
  m->workload_end = -1;
  for (size_t i = 0; i < records.size(); i++) {
    if (records[i].type != Record::kMark) continue;
    const std::string& n = records[i].data;
    if (n == "end") {
      m->workload_end = int64_t(i);
      continue;
    }
    if (n.size() < 2 || (n[0] != 'b' && n[0] != 'e')) continue;
    size_t k = std::strtoul(n.c_str() + 1, nullptr, 10);
    if (k >= steps) continue;
    (n[0] == 'b' ? m->begin : m->end)[k] = int64_t(i);
  }
  for (size_t k = 0; k < steps; k++) {
    if (m->begin[k] < 0 || m->end[k] < 0) {
      *err = "the recording lacks the marks of step " + std::to_string(k);
      return false;
    }
  }
  if (m->workload_end < 0) {
    *err = "the recording lacks the workload's end mark";
    return false;
  }
  return true;
}

// ---- Checking a crash state ----

namespace {

std::string Show(const std::string& bytes) {
  if (bytes.size() > 24) return std::to_string(bytes.size()) + " bytes";
  std::string s = "\"";
  for (char c : bytes) s += (c >= 32 && c < 127) ? c : '.';
  return s + "\"";
}

// Where the contents first differ, for the problem line.
std::string Diff(const std::string& want, const std::string& got) {
  if (want.size() != got.size()) {
    return "size " + std::to_string(got.size()) + ", expected " + std::to_string(want.size());
  }
  size_t i = 0;
  while (i < want.size() && want[i] == got[i]) i++;
  return "bytes differ from offset " + std::to_string(i);
}

const char* TypeName(mode_t t) {
  switch (t) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    default:
      return "other";
  }
}

}  // namespace

void CheckState(const Workload& w, const Execution& ex, const Marks& m, int64_t at,
                const std::string& root, std::vector<std::string>* problems) {
  auto acked = [&](const Promise& p) { return p.step < 0 || m.end[size_t(p.step)] < at; };
  // Whether a step after `step` that had begun before `at` touched `key`.
  auto touched_after = [&](int step, const std::string& key, int64_t until) {
    for (size_t j = size_t(step + 1); j < w.steps.size(); j++) {
      if (m.begin[j] >= until) break;
      for (const std::string& k : ex.touches[j].keys) {
        if (k == key) return true;
      }
    }
    return false;
  };
  auto by = [&](const Promise& p) {
    return p.step < 0 ? std::string("the image before the workload")
                      : Describe(w.steps[size_t(p.step)]);
  };
  // The latest acknowledged promise of each key.
  std::map<std::string, const Promise*> latest;
  for (const Promise& p : ex.promises) {
    if (!acked(p)) continue;
    for (auto& [key, f] : p.facts) latest[key] = &p;
  }
  for (auto& [key, p] : latest) {
    if (touched_after(p->step, key, at)) continue;
    const Fact& want = p->facts.at(key);
    const std::string path = key.substr(2);
    Fact got;
    std::string err;
    if (!ReadObject(root, path, want.has_xattrs, &got, &err)) {
      problems->push_back(err);
      continue;
    }
    const std::string what = (path.empty() ? "/" : path) + " (" + by(*p) + ")";
    if (key[0] == 'n') {
      if (want.exists && !got.exists) {
        problems->push_back(what + ": missing");
      } else if (!want.exists && got.exists) {
        problems->push_back(what + ": still present, a " + TypeName(got.type));
      } else if (want.exists && got.type != want.type) {
        problems->push_back(what + ": a " + std::string(TypeName(got.type)) + ", expected a " +
                            TypeName(want.type));
      }
      continue;
    }
    if (!got.exists) continue;  // whether it must exist is the name's promise
    if (key[0] == 'r') {
      if (got.type != S_IFREG) continue;
      std::string have = got.content.size() > want.range_off
                             ? got.content.substr(want.range_off, want.content.size())
                             : std::string();
      if (have != want.content) {
        problems->push_back(what + ": range " + std::to_string(want.range_off) + "+" +
                            std::to_string(want.content.size()) + ": " + Diff(want.content, have));
      }
      continue;
    }
    if (got.type != want.type) {
      problems->push_back(what + ": a " + std::string(TypeName(got.type)) + ", expected a " +
                          TypeName(want.type));
    } else if (want.type == S_IFREG && got.content != want.content) {
      problems->push_back(what + ": " + Diff(want.content, got.content));
    } else if (want.type == S_IFLNK && got.content != want.content) {
      problems->push_back(what + ": target " + Show(got.content) + ", expected " +
                          Show(want.content));
    } else if (want.has_xattrs && got.xattrs != want.xattrs) {
      problems->push_back(what + ": xattrs " + std::to_string(got.xattrs.size()) + ", expected " +
                          std::to_string(want.xattrs.size()));
    }
  }
  // A rename is atomic: a file durable under its old name is, after any crash, under exactly
  // one of the two names.
  for (size_t j = 0; j < w.steps.size(); j++) {
    const Step& s = w.steps[j];
    if (s.op != Op::kRename || m.begin[j] >= at) continue;
    const Promise* src = nullptr;
    for (const Promise& p : ex.promises) {
      if ((p.step < 0 || m.end[size_t(p.step)] < m.begin[j]) && p.facts.count("d:" + s.a) &&
          p.facts.count("n:" + s.a) && p.facts.at("n:" + s.a).exists) {
        src = &p;
      }
    }
    if (src == nullptr || touched_after(src->step, "d:" + s.a, m.begin[j]) ||
        touched_after(src->step, "n:" + s.a, m.begin[j]) || touched_after(int(j), "n:" + s.a, at) ||
        touched_after(int(j), "n:" + s.b, at)) {
      continue;
    }
    const Fact& moved = src->facts.at("d:" + s.a);
    if (moved.type != S_IFREG) continue;
    Fact fa, fb;
    std::string err;
    ReadObject(root, s.a, false, &fa, &err);
    ReadObject(root, s.b, false, &fb, &err);
    bool in_a = fa.exists && fa.type == S_IFREG && fa.content == moved.content;
    bool in_b = fb.exists && fb.type == S_IFREG && fb.content == moved.content;
    struct stat sa, sb;
    bool same = in_a && in_b && lstat(Join(root, s.a).c_str(), &sa) == 0 &&
                lstat(Join(root, s.b).c_str(), &sb) == 0 && sa.st_ino == sb.st_ino;
    if (!fa.exists && !in_b) {
      problems->push_back(Describe(s) + ": the file is under neither name");
    } else if (same) {
      problems->push_back(Describe(s) + ": half a rename: both names link the file");
    }
  }
}

// ---- Crash states ----

std::string State::Describe() const {
  std::string d = "writes before record " + std::to_string(prefix);
  if (!extra.empty()) d += " + " + std::to_string(extra.size()) + " of the next epoch";
  return d;
}

std::vector<State> CrashStates(const std::vector<Record>& records, const Marks& m, size_t reorder,
                               uint64_t seed) {
  const size_t end = size_t(m.workload_end);
  // Flush positions up to the workload's end, and the end itself.
  std::vector<size_t> flushes;
  for (size_t i = 0; i < end; i++) {
    if (records[i].type == Record::kFlush) flushes.push_back(i);
  }
  auto writes_in = [&](size_t from, size_t to) {
    std::vector<size_t> w;
    for (size_t i = from; i < to; i++) {
      if (records[i].type == Record::kWrite || records[i].type == Record::kZero) w.push_back(i);
    }
    return w;
  };
  // Epoch k: from flush k (or the start) to flush k+1 (or the end). The state "everything
  // before flush k" is what a crash leaves just before flush k (every write made it) and just
  // before flush k+1 (none of epoch k's writes did).
  std::vector<size_t> bounds = {0};
  bounds.insert(bounds.end(), flushes.begin(), flushes.end());
  bounds.push_back(end);
  std::map<size_t, State> by_prefix;  // states with no extra writes, by their write count
  std::vector<State> out;
  auto add_plain = [&](size_t prefix, int64_t at) {
    // Two prefixes with the same writes are the same image: check it once, at both points.
    size_t key = writes_in(0, prefix).size();
    State& s = by_prefix[key];
    s.prefix = prefix;
    if (std::find(s.at.begin(), s.at.end(), at) == s.at.end()) s.at.push_back(at);
  };
  std::mt19937_64 rng(seed);
  for (size_t k = 0; k + 1 < bounds.size(); k++) {
    size_t from = bounds[k], to = bounds[k + 1];
    add_plain(from, int64_t(from));  // crash just before this flush, all before it durable
    add_plain(from, int64_t(to));    // crash just before the next, none of this epoch durable
    std::vector<size_t> w = writes_in(from, to);
    if (w.size() >= 2) {
      for (size_t r = 0; r < reorder; r++) {
        State s;
        s.prefix = from;
        for (size_t i : w) {
          if (rng() & 1) s.extra.push_back(i);
        }
        if (s.extra.empty() || s.extra.size() == w.size()) continue;
        s.at.push_back(int64_t(to));
        out.push_back(std::move(s));
      }
    }
  }
  add_plain(end, int64_t(end));  // every write of the workload durable
  std::vector<State> plain;
  for (auto& [k, s] : by_prefix) plain.push_back(std::move(s));
  plain.insert(plain.end(), out.begin(), out.end());
  return plain;
}

bool ApplyState(const std::vector<Record>& records, const State& state, int fd, std::string* err) {
  auto apply = [&](const Record& r) {
    if (r.type == Record::kWrite) {
      if (PwriteFull(fd, r.data.data(), r.data.size(), off_t(r.offset)) != ssize_t(r.length)) {
        *err = "pwrite state image: " + Errno(errno);
        return false;
      }
    } else if (r.type == Record::kZero) {
      if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(r.offset),
                    off_t(r.length)) != 0) {
        *err = "punch state image: " + Errno(errno);
        return false;
      }
    }
    return true;
  };
  for (size_t i = 0; i < state.prefix && i < records.size(); i++) {
    if (!apply(records[i])) return false;
  }
  for (size_t i : state.extra) {
    if (!apply(records[i])) return false;
  }
  return true;
}

}  // namespace stablefs::compare::crash
