// Copyright (c) the stablefs authors.
//
// Every namespace and file operation over a store that fails at each of its calls in turn.
//
// For an operation the suite first counts the store calls it makes (Get, Scan, block reads,
// Write, Sync: FaultBlockStore::FailCall counts them alike); then, for each k, it builds the same
// filesystem afresh, fails the k-th call, runs the operation and checks:
//  - the operation returns 0 or EIO: a failed read is never "no such file" or "no such
//    attribute", and a read that returns 0 returned the right answer;
//  - an operation that changes only metadata and failed left memory exactly as it was;
//  - once the faults are gone and everything is written back, the filesystem in memory equals
//    a fresh mount of the store (names, inodes, every attribute, flags, xattrs, link targets,
//    file contents): no change lives in memory alone, none was written but reported lost;
//  - fsck finds nothing wrong with the store.
// The background flusher is slowed so that the calls counted are the operation's own.

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cctype>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fs/acl.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "storage/fault_block_store.h"
#include "storage/mem_block_store.h"

namespace stablefs {
namespace {

// The operation's answer when it returned 0 with a wrong result (checked by the operation).
constexpr int kWrongAnswer = -1;

using Tree = std::map<std::string, std::string>;

std::string TimeString(const struct timespec& t) {
  return std::to_string(t.tv_sec) + "." + std::to_string(t.tv_nsec);
}

// What a user can see of one inode. Contents are read with O_NOATIME.
void Describe(Filesystem* fs, uint64_t ino, std::string* out) {
  struct stat st;
  ASSERT_EQ(fs->GetAttr(ino, &st), 0) << ino;
  *out = "ino " + std::to_string(st.st_ino) + " mode " + std::to_string(st.st_mode) + " nlink " +
         std::to_string(st.st_nlink) + " uid " + std::to_string(st.st_uid) + " gid " +
         std::to_string(st.st_gid) + " size " + std::to_string(st.st_size) + " blocks " +
         std::to_string(st.st_blocks) + " atime " + TimeString(st.st_atim) + " mtime " +
         TimeString(st.st_mtim) + " ctime " + TimeString(st.st_ctim);
  uint32_t flags = 0;
  ASSERT_EQ(fs->GetFlags(ino, &flags), 0);
  *out += " flags " + std::to_string(flags);
  std::string names;
  ASSERT_EQ(fs->ListXattr(ino, &names), 0);
  for (size_t at = 0; at < names.size();) {
    const std::string name = names.c_str() + at;
    at += name.size() + 1;
    std::string value;
    ASSERT_EQ(fs->GetXattr(ino, name, &value), 0) << name;
    *out += " xattr " + name + "=" + value;
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target;
    ASSERT_EQ(fs->Readlink(ino, &target), 0);
    *out += " -> " + target;
  }
  if (S_ISREG(st.st_mode)) {
    std::unique_ptr<OpenFile> f;
    ASSERT_EQ(fs->Open(ino, O_RDONLY | O_NOATIME, &f), 0);
    std::string data(static_cast<size_t>(st.st_size), '\0');
    size_t done = 0;
    if (!data.empty()) {
      ASSERT_EQ(fs->Read(f.get(), 0, data.size(), data.data(), &done), 0);
    }
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_EQ(done, data.size());
    *out += " data " + std::to_string(std::hash<std::string>()(data));
  }
}

// Every name under dir, with its inode number, readdir cookie and type; directories first
// listed, then described, so that a listing's atime update (strictatime) is in what is described.
struct Named {
  std::string path;
  Filesystem::DirEntry entry;
};

void List(Filesystem* fs, uint64_t dir, const std::string& path, std::vector<Named>* out) {
  std::vector<Filesystem::DirEntry> entries;
  ASSERT_EQ(fs->ReadDir(dir, 0, false,
                        [&](const Filesystem::DirEntry& e, const struct stat*) {
                          entries.push_back(e);
                          return true;
                        }),
            0);
  for (const auto& e : entries) {
    if (e.name == ".") continue;
    out->push_back(Named{path + e.name, e});
    if (e.name != ".." && e.type == DT_DIR) List(fs, e.ino, path + e.name + "/", out);
  }
}

Tree Snapshot(Filesystem* fs) {
  std::vector<Named> names;
  List(fs, kRootIno, "", &names);
  Tree t;
  Describe(fs, kRootIno, &t["/"]);
  for (const Named& n : names) {
    std::string& s = t[n.path];
    if (n.entry.name == "..") {
      s = "ino " + std::to_string(n.entry.ino);
      continue;
    }
    Describe(fs, n.entry.ino, &s);
    s += " cookie " + std::to_string(n.entry.next);
  }
  return t;
}

// The entries in which two trees differ, for a failure message that can be read.
std::string Diff(const Tree& a, const Tree& b) {
  std::string out;
  for (const auto& [name, s] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      out += "\n  only in the first: " + name + ": " + s;
    } else if (it->second != s) {
      out += "\n  " + name + ":\n    " + s + "\n    " + it->second;
    }
  }
  for (const auto& [name, s] : b) {
    if (a.count(name) == 0) out += "\n  only in the second: " + name + ": " + s;
  }
  return out;
}

// The filesystem every operation starts from.
struct Names {
  uint64_t d1 = 0, d2 = 0, e = 0, f = 0, x = 0, s = 0, big = 0, acl = 0;
};

class Env {
 public:
  Filesystem* fs;
  Names n;
  Filesystem::Caller root;
  Filesystem::Caller user;  // uid 1000, not in the files' group

  Env(Filesystem* fs_arg, const Names& names) : fs(fs_arg), n(names) {
    user.uid = 1000;
    user.gid = 1000;
  }

  // Opens ino, runs fn on it, releases it: the first error wins.
  int WithOpen(uint64_t ino, int flags, const std::function<int(OpenFile*)>& fn) {
    std::unique_ptr<OpenFile> f;
    if (int e = fs->Open(ino, flags, &f)) return e;
    int e = fn(f.get());
    int r = fs->Release(std::move(f));
    return e != 0 ? e : r;
  }
  int WriteAt(uint64_t ino, int flags, uint64_t off, const std::string& data, bool fsync) {
    return WithOpen(ino, flags, [&](OpenFile* f) {
      size_t done = 0;
      if (int e = fs->Write(f, off, data.data(), data.size(), &done)) return e;
      if (done != data.size()) return EIO;
      return fsync ? fs->Fsync(f, false) : 0;
    });
  }
  int SetAttr(uint64_t ino, const struct stat& attr, int to_set, const Filesystem::Caller& c) {
    struct stat out;
    return fs->SetAttr(ino, attr, to_set, c, &out);
  }
};

struct Operation {
  const char* name;
  // Changes nothing but metadata: a failure must leave memory as it was.
  bool atomic;
  AtimePolicy atime;
  std::function<int(Env*)> run;
};

std::ostream& operator<<(std::ostream& os, const Operation& op) { return os << op.name; }

// The FUSE_SET_ATTR_* bits SetAttr takes.
constexpr int kSetMode = 1 << 0, kSetUid = 1 << 1, kSetGid = 1 << 2, kSetSize = 1 << 3,
              kSetAtime = 1 << 4, kSetMtime = 1 << 5;

std::string AclValue(const std::vector<AclEntry>& entries) {
  Acl acl;
  acl.entries = entries;
  return acl.Encode();
}

// user::rw- user:1000:rw- group::r-- mask::rw- other::r--: not expressible as a mode.
std::string ExtendedAcl() {
  return AclValue({{AclEntry::kUserObj, 6, 0},
                   {AclEntry::kUser, 6, 1000},
                   {AclEntry::kGroupObj, 4, 0},
                   {AclEntry::kMask, 6, 0},
                   {AclEntry::kOther, 4, 0}});
}

std::vector<Operation> Operations() {
  const AtimePolicy no = AtimePolicy::kNoatime;
  std::vector<Operation> ops = {
      // ---- The namespace ----
      {"mknod", true, no,
       [](Env* v) {
         struct stat st;
         return v->fs->Mknod(kRootIno, "n", S_IFIFO | 0644, 0, v->root, &st);
       }},
      {"mkdir", true, no,
       [](Env* v) {
         struct stat st;
         return v->fs->Mkdir(v->n.d1, "n", 0755, v->root, &st);
       }},
      {"symlink", true, no,
       [](Env* v) {
         struct stat st;
         return v->fs->Symlink("t", kRootIno, "n", v->root, &st);
       }},
      {"create in a directory with a default ACL", true, no,
       [](Env* v) {
         struct stat st;
         std::unique_ptr<OpenFile> f;
         if (int e = v->fs->Create(v->n.d2, "n", 0644, O_RDWR, v->root, &st, &f)) return e;
         return v->fs->Release(std::move(f));
       }},
      {"tmpfile never linked, then its release and forget", true, no,
       [](Env* v) {
         struct stat st;
         std::unique_ptr<OpenFile> f;
         if (int e = v->fs->Tmpfile(v->n.d1, 0600, O_RDWR, v->root, &st, &f)) return e;
         int r = v->fs->Release(std::move(f));
         v->fs->Forget(st.st_ino, 1);
         return r;
       }},
      {"tmpfile in a directory with a default ACL, written, linked, released", false, no,
       [](Env* v) {
         struct stat st, linked;
         std::unique_ptr<OpenFile> f;
         if (int e = v->fs->Tmpfile(v->n.d2, 0644, O_RDWR, v->root, &st, &f)) return e;
         size_t done = 0;
         int e = v->fs->Write(f.get(), 0, "tmp", 3, &done);
         if (e == 0) e = v->fs->Link(st.st_ino, v->n.d2, "n", &linked);
         if (e == 0) v->fs->Forget(st.st_ino, 1);  // the link's lookup
         int r = v->fs->Release(std::move(f));
         v->fs->Forget(st.st_ino, 1);
         return e != 0 ? e : r;
       }},
      {"link", true, no,
       [](Env* v) {
         struct stat st;
         return v->fs->Link(v->n.f, v->n.d2, "n", &st);
       }},
      {"unlink of one of two links", true, no, [](Env* v) { return v->fs->Unlink(kRootIno, "f"); }},
      {"unlink of the last link", true, no, [](Env* v) { return v->fs->Unlink(v->n.d2, "x"); }},
      {"unlink of a file while it is open, then its release", false, no,
       [](Env* v) {
         std::unique_ptr<OpenFile> f;
         if (int e = v->fs->Open(v->n.x, O_RDWR, &f)) return e;
         int e = v->fs->Unlink(v->n.d2, "x");
         int r = v->fs->Release(std::move(f));
         return e != 0 ? e : r;
       }},
      {"rmdir", true, no, [](Env* v) { return v->fs->Rmdir(kRootIno, "e"); }},
      {"rename", true, no,
       [](Env* v) { return v->fs->Rename(kRootIno, "f", kRootIno, "n", 0, v->root); }},
      {"rename of a directory to another directory", true, no,
       [](Env* v) { return v->fs->Rename(kRootIno, "e", v->n.d1, "e2", 0, v->root); }},
      {"rename over the last link of another file", true, no,
       [](Env* v) { return v->fs->Rename(kRootIno, "s", v->n.d2, "x", 0, v->root); }},
      {"rename over an empty directory", true, no,
       [](Env* v) { return v->fs->Rename(kRootIno, "e", v->n.d1, "e3", 0, v->root); }},
      {"exchange across directories", true, no,
       [](Env* v) { return v->fs->Rename(kRootIno, "f", v->n.d2, "x", RENAME_EXCHANGE, v->root); }},
      {"rename with a whiteout", true, no,
       [](Env* v) {
         return v->fs->Rename(kRootIno, "f", kRootIno, "n", RENAME_WHITEOUT, v->root);
       }},
      // ---- Attributes ----
      {"chmod", true, no,
       [](Env* v) {
         struct stat a = {};
         a.st_mode = 0600;
         return v->SetAttr(v->n.f, a, kSetMode, v->root);
       }},
      {"chmod of a file with an access ACL", true, no,
       [](Env* v) {
         struct stat a = {};
         a.st_mode = 0640;
         return v->SetAttr(v->n.acl, a, kSetMode, v->root);
       }},
      {"chown", true, no,
       [](Env* v) {
         struct stat a = {};
         a.st_uid = 7;
         a.st_gid = 8;
         return v->SetAttr(v->n.f, a, kSetUid | kSetGid, v->root);
       }},
      {"utimens", true, no,
       [](Env* v) {
         struct stat a = {};
         a.st_atim = {1000, 1};
         a.st_mtim = {2000, 2};
         return v->SetAttr(v->n.d1, a, kSetAtime | kSetMtime, v->root);
       }},
      {"truncate down", false, no,
       [](Env* v) {
         struct stat a = {};
         a.st_size = 5000;
         return v->SetAttr(v->n.big, a, kSetSize, v->root);
       }},
      {"truncate up", false, no,
       [](Env* v) {
         struct stat a = {};
         a.st_size = 1 << 20;
         return v->SetAttr(v->n.f, a, kSetSize, v->root);
       }},
      {"open with O_TRUNC", false, no,
       [](Env* v) { return v->WithOpen(v->n.big, O_RDWR | O_TRUNC, [](OpenFile*) { return 0; }); }},
      {"chattr +a", true, no, [](Env* v) { return v->fs->SetFlags(v->n.f, FS_APPEND_FL); }},
      // ---- Extended attributes ----
      {"setxattr of a new name", true, no,
       [](Env* v) { return v->fs->SetXattr(v->n.f, "user.new", "v", XATTR_CREATE, v->root); }},
      {"setxattr replacing a value", true, no,
       [](Env* v) { return v->fs->SetXattr(v->n.f, "user.a", "bb", XATTR_REPLACE, v->root); }},
      {"setxattr of an access ACL by a user outside the group", true, no,
       [](Env* v) { return v->fs->SetXattr(v->n.f, kAclAccess, ExtendedAcl(), 0, v->user); }},
      {"setxattr of an access ACL a mode says in full", true, no,
       [](Env* v) {
         std::string mode_only = AclValue(
             {{AclEntry::kUserObj, 7, 0}, {AclEntry::kGroupObj, 0, 0}, {AclEntry::kOther, 0, 0}});
         return v->fs->SetXattr(v->n.acl, kAclAccess, mode_only, 0, v->root);
       }},
      {"setxattr of a default ACL", true, no,
       [](Env* v) { return v->fs->SetXattr(v->n.d1, kAclDefault, ExtendedAcl(), 0, v->root); }},
      {"removexattr", true, no, [](Env* v) { return v->fs->RemoveXattr(v->n.f, "user.a"); }},
      // ---- Data ----
      {"write and fsync", false, no,
       [](Env* v) { return v->WriteAt(v->n.f, O_RDWR, 2, "new bytes", true); }},
      {"write across blocks, written back later", false, no,
       [](Env* v) { return v->WriteAt(v->n.big, O_RDWR, 4000, std::string(9000, 'w'), false); }},
      {"O_SYNC append", false, no,
       [](Env* v) { return v->WriteAt(v->n.f, O_RDWR | O_SYNC, 5, "tail", false); }},
      {"fallocate past the end", false, no,
       [](Env* v) {
         return v->WithOpen(v->n.f, O_RDWR, [&](OpenFile* f) {
           return v->fs->Fallocate(f, 0, 0, 3 * 4096, v->root);
         });
       }},
      {"fallocate with KEEP_SIZE by a user (clears set-user-ID)", false, no,
       [](Env* v) {
         return v->WithOpen(v->n.big, O_RDWR, [&](OpenFile* f) {
           return v->fs->Fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 8 * 4096, v->user);
         });
       }},
      {"punch hole", false, no,
       [](Env* v) {
         return v->WithOpen(v->n.big, O_RDWR, [&](OpenFile* f) {
           return v->fs->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096,
                                   v->root);
         });
       }},
      {"zero range", false, no,
       [](Env* v) {
         return v->WithOpen(v->n.big, O_RDWR, [&](OpenFile* f) {
           return v->fs->Fallocate(f, FALLOC_FL_ZERO_RANGE, 100, 6000, v->root);
         });
       }},
      {"read with strictatime", false, AtimePolicy::kStrict,
       [](Env* v) {
         return v->WithOpen(v->n.big, O_RDONLY, [&](OpenFile* f) {
           std::string buf(20000, '\0');
           size_t done = 0;
           if (int e = v->fs->Read(f, 0, buf.size(), buf.data(), &done)) return e;
           return done == 12288 && buf[0] == 'b' && buf[12287] == 'b' ? 0 : kWrongAnswer;
         });
       }},
      // ---- Lookups and reads of metadata ----
      {"lookup and forget", true, no,
       [](Env* v) {
         struct stat st;
         if (int e = v->fs->Lookup(v->n.d1, "g", &st)) return e;
         v->fs->Forget(st.st_ino, 1);
         return st.st_ino == v->n.f && st.st_nlink == 2 ? 0 : kWrongAnswer;
       }},
      {"readdir", true, no,
       [](Env* v) {
         std::vector<std::string> names;
         int e = v->fs->ReadDir(kRootIno, 0, false,
                                [&](const Filesystem::DirEntry& d, const struct stat*) {
                                  names.push_back(d.name + ":" + std::to_string(d.ino));
                                  return true;
                                });
         if (e != 0) return e;
         return names.size() == 10 && names[1] == "..:1" ? 0 : kWrongAnswer;
       }},
      {"getxattr and listxattr", true, no,
       [](Env* v) {
         std::string value, names;
         if (int e = v->fs->GetXattr(v->n.f, "user.a", &value)) return e;
         if (int e = v->fs->ListXattr(v->n.f, &names)) return e;
         return value == "a" && names == std::string("user.a\0", 7) ? 0 : kWrongAnswer;
       }},
  };
  return ops;
}

class StoreFaultSuite : public ::testing::TestWithParam<Operation> {
 protected:
  // The starting filesystem, synced, then mounted afresh (the kernel holds no lookups).
  void Build() {
    std::unique_ptr<MemBlockStore> mem;
    ASSERT_TRUE(MemBlockStore::Create(CreateOptions(), &mem).ok());
    fault_ = std::make_unique<FaultBlockStore>(std::move(mem));
    std::unique_ptr<Filesystem> fs;
    ASSERT_TRUE(Filesystem::Open(fault_.get(), Options(), &fs).ok());
    Filesystem::Caller c;
    struct stat st;
    std::unique_ptr<OpenFile> f;
    size_t done;
    ASSERT_EQ(fs->Mkdir(kRootIno, "d1", 0755, c, &st), 0);
    names_.d1 = st.st_ino;
    ASSERT_EQ(fs->Mkdir(kRootIno, "d2", 0755, c, &st), 0);
    names_.d2 = st.st_ino;
    ASSERT_EQ(fs->Mkdir(kRootIno, "e", 0755, c, &st), 0);
    names_.e = st.st_ino;
    ASSERT_EQ(fs->Mkdir(names_.d1, "e3", 0755, c, &st), 0);
    ASSERT_EQ(fs->Create(kRootIno, "f", 04755, O_RDWR, c, &st, &f), 0);
    names_.f = st.st_ino;
    ASSERT_EQ(fs->Write(f.get(), 0, "hello", 5, &done), 0);
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_EQ(fs->SetXattr(names_.f, "user.a", "a", 0, c), 0);
    ASSERT_EQ(fs->Link(names_.f, names_.d1, "g", &st), 0);
    ASSERT_EQ(fs->SetXattr(names_.d2, kAclDefault, ExtendedAcl(), 0, c), 0);
    ASSERT_EQ(fs->Create(names_.d2, "x", 0644, O_RDWR, c, &st, &f), 0);
    names_.x = st.st_ino;
    ASSERT_EQ(fs->Write(f.get(), 0, "x", 1, &done), 0);
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_EQ(fs->Symlink("target", kRootIno, "s", c, &st), 0);
    names_.s = st.st_ino;
    ASSERT_EQ(fs->Create(kRootIno, "big", 06755, O_RDWR, c, &st, &f), 0);
    names_.big = st.st_ino;
    const std::string b(3 * 4096, 'b');
    ASSERT_EQ(fs->Write(f.get(), 0, b.data(), b.size(), &done), 0);
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_EQ(fs->Create(kRootIno, "acl", 0644, O_RDWR, c, &st, &f), 0);
    names_.acl = st.st_ino;
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_EQ(fs->SetXattr(names_.acl, kAclAccess, ExtendedAcl(), 0, c), 0);
    ASSERT_EQ(fs->Mknod(kRootIno, "p", S_IFIFO | 0600, 0, c, &st), 0);
    ASSERT_TRUE(fs->Shutdown().ok());
    fs.reset();
    ASSERT_TRUE(Filesystem::Open(fault_.get(), Options(), &fs_).ok());
  }

  FilesystemOptions Options() const {
    FilesystemOptions o;
    o.atime = GetParam().atime;
    o.cache.dirty_expire_ms = 3600 * 1000;
    o.cache.writeback_interval_ms = 3600 * 1000;
    return o;
  }

  // Writes everything back once the faults are gone: a writeback error the operation left is
  // reported once, by the first call.
  void WriteBackAll() {
    int e = fs_->SyncFs();
    if (e != 0) e = fs_->SyncFs();
    ASSERT_EQ(e, 0);
  }

  // Runs the operation with the k-th store call failing (k == 0: none) and checks it.
  void RunFailingAt(uint64_t k, uint64_t* calls) {
    ASSERT_NO_FATAL_FAILURE(Build());
    const Operation& op = GetParam();
    const Tree before = Snapshot(fs_.get());
    Env env(fs_.get(), names_);
    const uint64_t start = fault_->calls();
    if (k > 0) fault_->FailCall(k, Status::IOError("injected"));
    const int r = op.run(&env);
    if (calls != nullptr) *calls = fault_->calls() - start;
    fault_->ClearFaults();
    if (k == 0) {
      ASSERT_EQ(r, 0) << "without a fault";
    } else {
      EXPECT_TRUE(r == 0 || r == EIO) << "returned " << r;
      if (r != 0 && op.atomic) {
        const Tree after = Snapshot(fs_.get());
        EXPECT_TRUE(after == before)
            << "changed by a failure (after, before):" << Diff(after, before);
      }
    }
    ASSERT_NO_FATAL_FAILURE(WriteBackAll());
    const Tree live = Snapshot(fs_.get());
    {
      ReadOnlyView view(fault_->base());
      std::unique_ptr<Filesystem> fresh;
      ASSERT_TRUE(Filesystem::Open(&view, Options(), &fresh).ok());
      const Tree seen = Snapshot(fresh.get());
      EXPECT_TRUE(seen == live) << "memory differs from a fresh mount (memory, fresh mount):"
                                << Diff(live, seen);
      ASSERT_TRUE(fresh->Shutdown().ok());
    }
    ASSERT_TRUE(fs_->Shutdown().ok());
    fs_.reset();
    // An inode whose freeing failed keeps its orphan record; the next mount frees it. There a new
    // inode takes a number no existing one has (a number handed out by a failed change is never
    // handed out again, and the reservation of numbers survived).
    ASSERT_TRUE(Filesystem::Open(fault_.get(), Options(), &fs_).ok());
    struct stat st;
    ASSERT_EQ(
        fs_->Mknod(kRootIno, "new after reopen", S_IFIFO | 0644, 0, Filesystem::Caller(), &st), 0);
    for (const auto& [name, desc] : live) {
      EXPECT_EQ(desc.find("ino " + std::to_string(st.st_ino) + " "), std::string::npos)
          << "the new inode's number is that of " << name;
    }
    ASSERT_TRUE(fs_->Shutdown().ok());
    fs_.reset();
    FsckReport report;
    ASSERT_TRUE(Fsck(fault_->base(), false, &report).ok());
    EXPECT_EQ(report.ExitCode(), 0) << report.ToJson();
  }

  Names names_;
  std::unique_ptr<FaultBlockStore> fault_;
  std::unique_ptr<Filesystem> fs_;
};

TEST_P(StoreFaultSuite, FailingAtEachStoreCallLeavesMemoryAsAFreshMountSeesTheStore) {
  uint64_t calls = 0;
  ASSERT_NO_FATAL_FAILURE(RunFailingAt(0, &calls));
  ASSERT_GT(calls, 0u);
  for (uint64_t k = 1; k <= calls; k++) {
    SCOPED_TRACE("store call " + std::to_string(k) + " of " + std::to_string(calls) + " fails");
    ASSERT_NO_FATAL_FAILURE(RunFailingAt(k, nullptr));
    if (HasFailure()) break;  // the first call that shows a fault is the one to read
  }
}

std::string TestName(const ::testing::TestParamInfo<Operation>& info) {
  std::string name;
  for (const char* p = info.param.name; *p != '\0'; p++) {
    name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(EveryOperation, StoreFaultSuite, ::testing::ValuesIn(Operations()),
                         TestName);

}  // namespace
}  // namespace stablefs
