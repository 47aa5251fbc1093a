// Crash consistency in the style of ACE (CrashMonkey, OSDI'18): every sequence of up to two (or,
// in the long configuration, three) file operations, each followed by fsync, fdatasync or
// nothing, run on the Filesystem in this process over a RocksBlockStore on the crash file system
// (storage/crash_file_system.h). The power is cut after each persistence call and after the last
// operation; the store is recovered, reopened, mounted the way the daemon mounts it (orphans
// reclaimed) and checked against GUARANTEES.md section 3:
//   - at a persistence point, the namespace (names, inode numbers, types, link counts, xattrs)
//     is exactly what it was when the call returned, whichever file or directory was synced: an
//     fsync makes every earlier namespace change durable, a new file's name included;
//   - after unsynced operations, it is what it was after one of them (each operation atomic,
//     rename included), and no earlier than at the last persistence point;
//   - every file whose data was written back by an fsync, fdatasync or syncfs and not changed
//     since has exactly that size and content; every other file reads without error;
//   - fsck finds nothing, and reading every file verifies every block against its tuples.
//
// Configurations (the environment variable STABLEFS_ACE):
//   unset or "ci"  sequences of one operation followed by each persistence call (fsync,
//                  fdatasync, fsync of the parent directory, syncfs, nothing), and of two: the
//                  first followed by fsync or nothing, the second by fsync (fsync and fdatasync
//                  run the same code): 80 + about 430 workloads, about 730 crash points, well
//                  under a minute
//   "full"         sequences of two with every persistence call after each (about 4000
//                  workloads), and of three with fsync or nothing after each (about 25000):
//                  sequences of three alone took 18 minutes here (21,312 workloads, 42,624
//                  crash points). Run: STABLEFS_ACE=full build/tests/ace_test
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "storage/crash_file_system.h"
#include "storage/log.h"
#include "storage/rocks_block_store.h"
#include "tests/util/temp_dir.h"

namespace stablefs {
namespace {

using stablefs::testing::TempDir;

const Filesystem::Caller kRoot;

// ---- Paths on a Filesystem ----

// The inode at `path` ("" is the root): 0 and *ino, or an errno. Takes no lookup reference.
int Resolve(Filesystem* fs, const std::string& path, uint64_t* ino) {
  *ino = kRootIno;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    struct stat st;
    if (int e = fs->Lookup(*ino, part, &st)) return e;
    fs->Forget(st.st_ino, 1);
    *ino = st.st_ino;
  }
  return 0;
}

std::string Dir(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}
std::string Base(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Runs fn on an open file at `path` (created if `create`).
int WithFile(Filesystem* fs, const std::string& path, bool create,
             const std::function<int(OpenFile*)>& fn) {
  uint64_t ino;
  std::unique_ptr<OpenFile> f;
  int e = Resolve(fs, path, &ino);
  if (e == ENOENT && create) {
    uint64_t parent;
    if ((e = Resolve(fs, Dir(path), &parent))) return e;
    struct stat st;
    if ((e = fs->Create(parent, Base(path), 0644, O_RDWR, kRoot, &st, &f))) return e;
    fs->Forget(st.st_ino, 1);
  } else if (e == 0) {
    if ((e = fs->Open(ino, O_RDWR, &f))) return e;
  } else {
    return e;
  }
  e = fn(f.get());
  int r = fs->Release(std::move(f));
  return e != 0 ? e : r;
}

int WriteAt(Filesystem* fs, const std::string& path, bool create, int64_t off, size_t len, char c) {
  return WithFile(fs, path, create, [&](OpenFile* f) {
    uint64_t at = off;
    if (off < 0) {  // append
      struct stat st;
      if (int e = fs->GetAttr(f->inode->ino, &st)) return e;
      at = st.st_size;
    }
    std::string data(len, c);
    size_t done = 0;
    int e = fs->Write(f, at, data.data(), data.size(), &done);
    return e != 0 ? e : (done == len ? 0 : EIO);
  });
}

// ---- The operations ----

struct Op {
  const char* name;
  std::function<int(Filesystem*)> run;
  const char* target;  // what the persistence call after it syncs: a file or directory
  bool data;           // changes file data (or size) through the page cache
};

std::vector<Op> Ops() {
  auto rename = [](const char* from, const char* to) {
    return [=](Filesystem* fs) {
      uint64_t a, b;
      if (int e = Resolve(fs, Dir(from), &a)) return e;
      if (int e = Resolve(fs, Dir(to), &b)) return e;
      return fs->Rename(a, Base(from), b, Base(to), 0, kRoot);
    };
  };
  auto remove = [](const char* path, bool dir) {
    return [=](Filesystem* fs) {
      uint64_t p;
      if (int e = Resolve(fs, Dir(path), &p)) return e;
      return dir ? fs->Rmdir(p, Base(path)) : fs->Unlink(p, Base(path));
    };
  };
  auto falloc = [](int mode, uint64_t off, uint64_t len) {
    return [=](Filesystem* fs) {
      return WithFile(fs, "f", false,
                      [&](OpenFile* f) { return fs->Fallocate(f, mode, off, len, kRoot); });
    };
  };
  return {
      {"creat n",
       [](Filesystem* fs) { return WithFile(fs, "n", true, [](OpenFile*) { return 0; }); }, "n",
       false},
      {"write n", [](Filesystem* fs) { return WriteAt(fs, "n", true, 0, 5000, 'N'); }, "n", true},
      {"overwrite f", [](Filesystem* fs) { return WriteAt(fs, "f", false, 1000, 4000, 'O'); }, "f",
       true},
      {"append f", [](Filesystem* fs) { return WriteAt(fs, "f", false, -1, 3000, 'P'); }, "f",
       true},
      {"truncate f",
       [](Filesystem* fs) {
         uint64_t ino;
         if (int e = Resolve(fs, "f", &ino)) return e;
         struct stat attr = {}, out;
         attr.st_size = 3000;
         return fs->SetAttr(ino, attr, 1 << 3 /* FUSE_SET_ATTR_SIZE */, kRoot, &out);
       },
       "f", true},
      {"punch f", falloc(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096), "f", true},
      {"fallocate f", falloc(0, 0, 20000), "f", true},
      {"link f d/l",
       [](Filesystem* fs) {
         uint64_t f, d;
         if (int e = Resolve(fs, "f", &f)) return e;
         if (int e = Resolve(fs, "d", &d)) return e;
         struct stat st;
         int e = fs->Link(f, d, "l", &st);
         if (e == 0) fs->Forget(st.st_ino, 1);
         return e;
       },
       "d/l", false},
      {"unlink f", remove("f", false), "", false},
      {"unlink d/h", remove("d/h", false), "d", false},
      {"rename f d/h", rename("f", "d/h"), "d/h", false},
      {"rename f n", rename("f", "n"), "n", false},
      {"rename d/h e/h", rename("d/h", "e/h"), "e/h", false},
      {"mkdir d/x",
       [](Filesystem* fs) {
         uint64_t d;
         if (int e = Resolve(fs, "d", &d)) return e;
         struct stat st;
         int e = fs->Mkdir(d, "x", 0755, kRoot, &st);
         if (e == 0) fs->Forget(st.st_ino, 1);
         return e;
       },
       "d/x", false},
      {"rmdir e", remove("e", true), "", false},
      {"setxattr f",
       [](Filesystem* fs) {
         uint64_t f;
         if (int e = Resolve(fs, "f", &f)) return e;
         return fs->SetXattr(f, "user.k", "v", 0, kRoot);
       },
       "f", false},
  };
}

enum class Persist { kNone, kFsync, kFdatasync, kFsyncParent, kSyncfs };
const char* PersistName(Persist p) {
  switch (p) {
    case Persist::kNone:
      return "";
    case Persist::kFsync:
      return "fsync";
    case Persist::kFdatasync:
      return "fdatasync";
    case Persist::kFsyncParent:
      return "fsync-parent";
    case Persist::kSyncfs:
      return "syncfs";
  }
  return "?";
}

// Runs the persistence call on `target`; *synced_ino receives the file whose pages it wrote
// back (0: none; UINT64_MAX: all, for syncfs).
int RunPersist(Filesystem* fs, Persist p, const std::string& target, uint64_t* synced_ino) {
  *synced_ino = 0;
  if (p == Persist::kNone) return 0;
  if (p == Persist::kSyncfs) {
    *synced_ino = UINT64_MAX;
    return fs->SyncFs();
  }
  const std::string path = p == Persist::kFsyncParent ? Dir(target) : target;
  uint64_t ino;
  if (int e = Resolve(fs, path, &ino)) return e;
  struct stat st;
  if (int e = fs->GetAttr(ino, &st)) return e;
  if (S_ISDIR(st.st_mode)) return fs->FsyncDir(ino);
  *synced_ino = ino;
  return WithFile(fs, path, false,
                  [&](OpenFile* f) { return fs->Fsync(f, p == Persist::kFdatasync); });
}

// ---- What a filesystem holds ----

struct Image {
  std::string ns;                        // the namespace and xattrs, canonical
  std::map<uint64_t, std::string> data;  // regular files' bytes by inode
  std::map<uint64_t, int> read_errors;   // files that did not read back
  bool operator==(const Image&) const = default;
};

void Walk(Filesystem* fs, uint64_t dir, const std::string& path, Image* img,
          std::set<uint64_t>* seen) {
  std::vector<Filesystem::DirEntry> entries;
  fs->ReadDir(dir, 0, false, [&](const Filesystem::DirEntry& e, const struct stat*) {
    if (e.name != "." && e.name != "..") entries.push_back(e);
    return true;
  });
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& e : entries) {
    struct stat st;
    std::string p = path + "/" + e.name;
    if (int err = fs->GetAttr(e.ino, &st)) {
      img->ns += p + " getattr error " + std::to_string(err) + "\n";
      continue;
    }
    img->ns += p + " ino " + std::to_string(st.st_ino) + " mode " + std::to_string(st.st_mode) +
               " nlink " + std::to_string(st.st_nlink);
    std::string names;
    fs->ListXattr(e.ino, &names);
    for (size_t i = 0; i < names.size();) {
      std::string name = names.c_str() + i;
      i += name.size() + 1;
      std::string value;
      fs->GetXattr(e.ino, name, &value);
      img->ns += " " + name + "=" + value;
    }
    img->ns += "\n";
    if (S_ISDIR(st.st_mode)) {
      Walk(fs, e.ino, p, img, seen);
    } else if (S_ISREG(st.st_mode) && seen->insert(e.ino).second) {
      std::unique_ptr<OpenFile> f;
      int err = fs->Open(e.ino, O_RDONLY, &f);
      std::string bytes(st.st_size, '\0');
      size_t done = 0;
      if (err == 0) err = fs->Read(f.get(), 0, bytes.size(), bytes.data(), &done);
      if (err == 0 && done != bytes.size()) err = EIO;
      if (f) fs->Release(std::move(f));
      bytes.resize(done);
      img->data[e.ino] = bytes;
      if (err != 0) img->read_errors[e.ino] = err;
    }
  }
}

Image Snapshot(Filesystem* fs) {
  Image img;
  std::set<uint64_t> seen;
  Walk(fs, kRootIno, "", &img, &seen);
  return img;
}

// ---- The harness ----

struct Step {
  int op;
  Persist persist;
};

FilesystemOptions FsOptions() {
  FilesystemOptions o;
  o.cache.cache_bytes = 4 << 20;
  // No background writeback: what reaches the store before a crash is what the workload's own
  // calls put there, so each crash point is the same every run.
  o.cache.dirty_expire_ms = 3600 * 1000;
  o.cache.writeback_interval_ms = 3600 * 1000;
  return o;
}

RocksOptions SmallRocks(rocksdb::Env* env) {
  RocksOptions o;
  o.block_cache_bytes = 1 << 20;
  // RocksDB preallocates WAL files at 1.1 times the largest memtable: keep that small.
  o.data_write_buffer_bytes = 1 << 20;
  o.background_jobs = 1;
  // Every written-back block goes to a segment file (format version 2), so that every crash
  // point also checks the segments' ordering against the WAL.
  o.segment_min_run = 1;
  o.collect_segments = false;  // no background work: each crash point is the same every run
  o.env = env;
  return o;
}

class AceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    // The starting point of every workload: f (8 KiB), d/h (4 KiB) and the empty directory e.
    std::unique_ptr<RocksBlockStore> store;
    ASSERT_TRUE(
        RocksBlockStore::Create(Template(), CreateOptions(), SmallRocks(nullptr), &store).ok());
    std::unique_ptr<Filesystem> fs;
    ASSERT_TRUE(Filesystem::Open(store.get(), FsOptions(), &fs).ok());
    ASSERT_EQ(WriteAt(fs.get(), "f", true, 0, 8192, 'a'), 0);
    uint64_t ino;
    struct stat st;
    ASSERT_EQ(fs->Mkdir(kRootIno, "d", 0755, kRoot, &st), 0);
    ASSERT_EQ(fs->Mkdir(kRootIno, "e", 0755, kRoot, &st), 0);
    ASSERT_EQ(WriteAt(fs.get(), "d/h", true, 0, 4096, 'h'), 0);
    ASSERT_EQ(Resolve(fs.get(), "d/h", &ino), 0);
    ASSERT_TRUE(fs->Shutdown().ok());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Template() { return dir_->Sub("template"); }

  void SetUp() override {
    SetLogSinkForTesting([this](LogLevel level, const std::string& line) {
      if (level == LogLevel::kError && !power_cut_) log_errors_ += line + "\n";
    });
  }
  void TearDown() override { SetLogSinkForTesting(nullptr); }

  // Runs `steps` on a fresh copy of the template, cutting the power after the persistence call
  // of step `cut` (or after the last step when cut == steps.size()), and checks what recovery
  // finds. Returns false if an operation of the workload fails (the sequence is not
  // meaningful, e.g. rmdir of a removed directory); the caller skips it.
  bool RunAndCheck(const std::vector<Step>& steps, size_t cut, const std::string& name) {
    static const std::vector<Op> ops = Ops();
    const std::string store_path = dir_->Sub("store");
    std::filesystem::remove_all(store_path);
    std::filesystem::copy(Template(), store_path, std::filesystem::copy_options::recursive);
    auto crash_fs = std::make_shared<CrashFileSystem>();
    std::unique_ptr<rocksdb::Env> env = NewCrashEnv(crash_fs);

    // The images after each step: images[0] before the first.
    std::vector<Image> images;
    size_t last_sync = 0;             // the step whose persistence call came last (0: setup)
    std::map<uint64_t, bool> dirty;   // files with data no writeback has stored
    std::map<uint64_t, bool> synced;  // ... and those written back since
    power_cut_ = false;
    {
      std::unique_ptr<RocksBlockStore> store;
      Status s = RocksBlockStore::Open(store_path, SmallRocks(env.get()), &store);
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok()) return true;
      std::unique_ptr<Filesystem> fs;
      s = Filesystem::Open(store.get(), FsOptions(), &fs);
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok()) return true;
      images.push_back(Snapshot(fs.get()));
      for (size_t i = 0; i < cut; i++) {
        const Op& op = ops[steps[i].op];
        if (op.run(fs.get()) != 0) return false;
        if (op.data) {
          uint64_t ino;
          if (Resolve(fs.get(), op.target, &ino) == 0) dirty[ino] = true;
        }
        uint64_t synced_ino;
        if (RunPersist(fs.get(), steps[i].persist, op.target, &synced_ino) != 0) return false;
        if (steps[i].persist != Persist::kNone) last_sync = i + 1;
        for (auto& [ino, d] : dirty) {
          if (synced_ino == UINT64_MAX || synced_ino == ino) d = false;
        }
        images.push_back(Snapshot(fs.get()));
      }
      power_cut_ = true;
      crash_fs->CutPower();
      // The Filesystem and the store close now; every write they try fails.
    }
    {
      Status s = crash_fs->RecoverFromPowerCut();
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    power_cut_ = false;
    checked_points_++;

    SCOPED_TRACE(name + ", power cut after step " + std::to_string(cut));
    std::unique_ptr<RocksBlockStore> store;
    Status s = RocksBlockStore::Open(store_path, SmallRocks(nullptr), &store);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return true;
    Image got;
    {
      std::unique_ptr<Filesystem> fs;
      s = Filesystem::Open(store.get(), FsOptions(), &fs);  // the mount's recovery
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok()) return true;
      got = Snapshot(fs.get());
      EXPECT_TRUE(fs->Shutdown().ok());
    }
    // The namespace: that of one step from the last persistence point on.
    size_t match = images.size();
    for (size_t j = last_sync; j < images.size(); j++) {
      if (images[j].ns == got.ns) match = j;
    }
    EXPECT_NE(match, images.size())
        << "recovered namespace:\n"
        << got.ns << "at the last persistence point (step " << last_sync << "):\n"
        << images[last_sync].ns << "at the cut:\n"
        << images.back().ns;
    EXPECT_TRUE(got.read_errors.empty()) << "a file failed to read back";
    // Data written back and not changed since is exact (the step the namespace matched has the
    // same bytes for such a file as every later step).
    if (match != images.size()) {
      for (const auto& [ino, bytes] : images[match].data) {
        auto d = dirty.find(ino);
        if (d != dirty.end() && d->second) continue;
        auto g = got.data.find(ino);
        EXPECT_TRUE(g != got.data.end() && g->second == bytes)
            << "inode " << ino << " has " << (g == got.data.end() ? -1 : (long)g->second.size())
            << " bytes, expected the " << bytes.size() << " written back";
      }
    }
    FsckReport report;
    s = Fsck(store.get(), false, &report);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(report.ExitCode(), 0) << report.ToJson();
    EXPECT_EQ(log_errors_, "");
    log_errors_.clear();
    store.reset();
    std::filesystem::remove_all(store_path);
    return true;
  }

  // Every workload of `length` steps whose persistence calls come from `first` (for all but
  // the last step) and `last`; prints and checks the counts.
  void RunAll(size_t length, const std::vector<Persist>& first, const std::vector<Persist>& last) {
    const size_t nops = Ops().size();
    std::vector<Step> steps(length);
    uint64_t workloads = 0, skipped = 0;
    std::function<void(size_t)> rec = [&](size_t i) {
      if (HasFailure()) return;
      if (i == length) {
        std::string name;
        for (const Step& s : steps) {
          name += std::string(Ops()[s.op].name) + (s.persist != Persist::kNone ? ", " : "") +
                  PersistName(s.persist) + "; ";
        }
        // The last cut first: it runs every step, so an inapplicable sequence is found at once.
        if (!RunAndCheck(steps, length, name)) {
          skipped++;
          return;
        }
        workloads++;
        for (size_t cut = length - 1; cut >= 1; cut--) {
          if (steps[cut - 1].persist != Persist::kNone) RunAndCheck(steps, cut, name);
        }
        return;
      }
      for (size_t op = 0; op < nops; op++) {
        for (Persist p : i + 1 == length ? last : first) {
          steps[i] = Step{static_cast<int>(op), p};
          rec(i + 1);
        }
      }
    };
    const uint64_t points_before = checked_points_;
    rec(0);
    std::printf(
        "ACE sequences of %zu: %llu workloads checked (%llu not applicable), %llu crash "
        "points\n",
        length, static_cast<unsigned long long>(workloads),
        static_cast<unsigned long long>(skipped),
        static_cast<unsigned long long>(checked_points_ - points_before));
    EXPECT_GT(workloads, 0u);
  }

  static bool Full() {
    const char* v = getenv("STABLEFS_ACE");
    return v != nullptr && std::string(v) == "full";
  }

  static TempDir* dir_;
  bool power_cut_ = false;
  std::string log_errors_;
  uint64_t checked_points_ = 0;
};

TempDir* AceTest::dir_ = nullptr;

const std::vector<Persist> kAll = {Persist::kNone, Persist::kFsync, Persist::kFdatasync,
                                   Persist::kFsyncParent, Persist::kSyncfs};

TEST_F(AceTest, SequencesOfOne) { RunAll(1, kAll, kAll); }

TEST_F(AceTest, SequencesOfTwo) {
  if (Full()) {
    RunAll(2, kAll, kAll);
  } else {
    RunAll(2, {Persist::kNone, Persist::kFsync}, {Persist::kFsync});
  }
}

TEST_F(AceTest, SequencesOfThree) {
  if (!Full()) GTEST_SKIP() << "set STABLEFS_ACE=full";
  RunAll(3, {Persist::kNone, Persist::kFsync}, {Persist::kNone, Persist::kFsync});
}

}  // namespace
}  // namespace stablefs
