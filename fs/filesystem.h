// Filesystem: the POSIX semantics of stablefs over the page cache and the block store, with no
// FUSE types in it. fs/fuse_ops.cc decodes requests, calls these, and replies; every method
// returns 0 or a positive errno, as the FUSE edge needs.
//
// Every namespace change (create, link, unlink, rename, mkdir, ...) commits as one store batch,
// so a crash leaves it done or not done; nothing is durable before an fsync, fdatasync, syncfs or
// O_SYNC write syncs the store's WAL, and that WAL is ordered, so an fsync makes every earlier
// namespace change durable too (a file's name included). File data goes through the page cache
// (guarantees 1, 2 and 4 live there).
//
// Implemented, as fs/ext4 is, in super.cc (mount, shutdown, space), inode.cc (inodes, setattr,
// NamespaceTxn), namei.cc (names), file.cc (open files), dir.cc, xattr.cc and ioctl.cc.
//
// Locks, outermost first:
//   ns_mu_            every namespace change and every inode lifetime decision (forget, release)
//   Inode::rwsem      i_rwsem: write, truncate, fallocate of one file
//   (page cache: I_SYNC, page locks)
//   Inode::meta_mu    the inode's attributes and its record commits (AddressSpaceOwner)
//   table_mu_         the in-memory inode table
//   (page cache: mu_)
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fs/page_cache.h"
#include "storage/block_store.h"
#include "storage/thread_annotations.h"

namespace stablefs {

inline constexpr size_t kNameMax = 255;
inline constexpr size_t kXattrNameMax = 255;
inline constexpr size_t kXattrSizeMax = 65536;
// The largest file size, as on xfs and btrfs and the kernel's FUSE limit (MAX_LFS_FILESIZE):
// 2^63 - 1 bytes. The last block index, 2^51 - 1, times 4096 plus 4096 still fits in 64 bits.
// Writes past it are EFBIG.
inline constexpr uint64_t kMaxFileSize = uint64_t{INT64_MAX};

// One inode in memory. Regular files have an AddressSpace in the page cache.
class Inode : public AddressSpaceOwner {
 public:
  Inode(uint64_t ino, const InodeRecord& rec, BlockStore* store);
  ~Inode() override;

  const uint64_t ino;
  Mutex rwsem ACQUIRED_BEFORE(meta_mu);  // i_rwsem
  Mutex meta_mu;
  // A regular file's size and block count as the store holds them are as->disk_size() and
  // as->blocks(), not rec's (which keeps what the inode was loaded or created with).
  InodeRecord rec GUARDED_BY(meta_mu);
  std::unique_ptr<AddressSpace> as;  // regular files only; set once at load

  // Lifetime counts, guarded by Filesystem::ns_mu_.
  uint64_t nlookup = 0;   // the kernel's references (lookup minus forget)
  uint32_t nopen = 0;     // open file handles
  bool dropped = false;   // out of the table, on a DisposeList (I_FREEING)
  bool linkable = false;  // I_LINKABLE: an O_TMPFILE inode (not O_EXCL) that link may name

  bool IsDir() const { return S_ISDIR(mode_); }
  bool IsReg() const { return S_ISREG(mode_); }

  // AddressSpaceOwner: data and the record with the given size and block count, atomically,
  // published under meta_mu.
  Status CommitWithInode(uint64_t disk_size, uint64_t blocks, WriteBatch* batch,
                         const std::function<void()>& publish) override;
  // Adds this inode's record to `batch` as it should be persisted now. REQUIRES: meta_mu.
  void AddRecordTo(WriteBatch* batch) REQUIRES(meta_mu) { AddRecordTo(rec, batch); }
  // Adds `r` as this inode's record to `batch`, with a regular file's size and block count as
  // the store holds them (not r's). REQUIRES: meta_mu.
  void AddRecordTo(const InodeRecord& r, WriteBatch* batch) REQUIRES(meta_mu);

 private:
  BlockStore* const store_;
  const uint32_t mode_;  // the file type never changes
  // Writes `r` with `disk_size` and `blocks` as a regular file's size and block count.
  void EncodeRecord(const InodeRecord& r, uint64_t disk_size, uint64_t blocks, WriteBatch* batch);
};

// A namespace or attribute change, staged and then published, as LevelDB's VersionSet::LogAndApply
// installs a version only after its log write. The records of the inodes the change touches are
// edited as copies (Edit); batch() takes every other record it writes or deletes; Commit writes one
// batch, the edited records first and then batch()'s operations (so that a deletion of a freed
// inode wins over its record), and only when the store has taken it installs the copies in the
// inodes and runs the OnCommit steps. A failed write leaves memory as it was: memory never says
// what the store does not (an nlink lowered in memory alone would let a later forget free an
// inode that still has a name).
//
// Attribute changes (setattr, chattr, xattrs, fallocate's times, atime) edit one inode and run
// under its meta_mu alone. The caller holds the meta_mu of every inode it edits from its Edit
// until Commit returns, and for a change of names also ns_mu_ (every namespace change runs
// under it, so no two that touch the same names interleave).
class NamespaceTxn {
 public:
  WriteBatch* batch() { return &batch_; }
  // The staged copy of the inode's record: copied at the first call for the inode.
  InodeRecord* Edit(Inode* inode) REQUIRES(inode->meta_mu);
  // Runs `publish` after a successful commit: other staged state (inode numbers) goes live.
  void OnCommit(std::function<void()> publish) { publish_.push_back(std::move(publish)); }
  Status Commit(BlockStore* store);

 private:
  struct Staged {
    Inode* inode;
    InodeRecord rec;
  };
  std::deque<Staged> staged_;  // a deque: Edit's pointers stay valid as it grows
  std::vector<std::function<void()>> publish_;
  WriteBatch batch_;
};

// An open file (the kernel's struct file): its writeback error cursor and flags.
struct OpenFile {
  std::shared_ptr<Inode> inode;
  FileErrCursor wb_err;
  int flags = 0;
};

// When a read updates the access time, as the kernel's atime mount options say
// (fs/inode.c: atime_needs_update, relatime_need_update).
enum class AtimePolicy {
  kRelatime,  // when atime is not after mtime or ctime, or is a day old (Linux's default)
  kStrict,    // on every read (strictatime)
  kNoatime,   // never (noatime, and ro mounts)
};

struct FilesystemOptions {
  PageCacheOptions cache;
  // Access time updates on read and readdir. Default: kRelatime.
  AtimePolicy atime = AtimePolicy::kRelatime;
  // Directories' access times are never updated (nodiratime). Default: false.
  bool nodiratime = false;
  // The store's directory, whose file system statfs reports. Default: empty (statfs reports
  // no space figures).
  std::string store_path;
};

class Filesystem {
 public:
  // Opens the filesystem on an opened store: starts the page cache and reclaims orphans left by
  // a crash (unlinked inodes that were still open).
  static Status Open(BlockStore* store, const FilesystemOptions& options,
                     std::unique_ptr<Filesystem>* out);
  // Writes back and syncs everything (the unmount path), then drops every inode.
  ~Filesystem();
  Status Shutdown();

  // The caller of a request, for ownership of new files.
  struct Caller {
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t umask = 0;            // applied at create when the parent has no default ACL
    std::vector<uint32_t> groups;  // supplementary groups, where a decision needs them
    bool InGroup(uint32_t g) const {
      return gid == g || std::find(groups.begin(), groups.end(), g) != groups.end();
    }
  };

  // ---- Namespace (each returns 0 or an errno) ----
  // On success *st describes the inode and its lookup count went up by one.
  int Lookup(uint64_t parent, std::string_view name, struct stat* st);
  void Forget(uint64_t ino, uint64_t nlookup);
  // btime (if not null) receives the birth time, which struct stat has no field for.
  int GetAttr(uint64_t ino, struct stat* st, struct timespec* btime = nullptr);
  // to_set: FUSE_SET_ATTR_* bits, and kSetAttrKillSuidgid.
  int SetAttr(uint64_t ino, const struct stat& attr, int to_set, const Caller& c, struct stat* out);
  // With a chown or truncate of a file that is not a directory: clear the set-user-ID bit, and
  // the set-group-ID bit if the group may execute the file, in the same change, as the kernel
  // does for a local filesystem (FATTR_KILL_SUIDGID under FUSE_HANDLE_KILLPRIV_V2; libfuse
  // 3.14's FUSE_SET_ATTR_* has no name for it).
  static constexpr int kSetAttrKillSuidgid = 1 << 11;
  int Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev, const Caller& c,
            struct stat* st);
  int Mkdir(uint64_t parent, std::string_view name, mode_t mode, const Caller& c, struct stat* st);
  int Symlink(std::string_view target, uint64_t parent, std::string_view name, const Caller& c,
              struct stat* st);
  int Readlink(uint64_t ino, std::string* target);
  int Link(uint64_t ino, uint64_t new_parent, std::string_view new_name, struct stat* st);
  int Unlink(uint64_t parent, std::string_view name);
  int Rmdir(uint64_t parent, std::string_view name);
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT (the old name becomes a whiteout
  // owned by the caller).
  int Rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name,
             unsigned flags, const Caller& caller);

  // ---- Files ----
  // kill_suidgid, with O_TRUNC: the truncation clears the set-user-ID bit and the set-group-ID
  // bit of a group-executable file (FUSE_OPEN_KILL_SUIDGID), even of an empty file.
  // *killed (if not null) says whether it changed the mode: the kernel's cached attributes are
  // then stale.
  int Open(uint64_t ino, int flags, std::unique_ptr<OpenFile>* file, bool kill_suidgid = false,
           bool* killed = nullptr);
  int Create(uint64_t parent, std::string_view name, mode_t mode, int flags, const Caller& c,
             struct stat* st, std::unique_ptr<OpenFile>* file);
  // O_TMPFILE: a regular file with no name (nlink 0, an orphan until linked), in `parent`'s
  // filesystem and with the ownership and default ACL a file created there would get, opened
  // with `flags`. Unless flags has O_EXCL, Link may give it a name (linkat with AT_EMPTY_PATH);
  // otherwise it goes at its last close, and a crash before that leaves an orphan the next
  // mount reclaims. The parent directory is not changed.
  int Tmpfile(uint64_t parent, mode_t mode, int flags, const Caller& c, struct stat* st,
              std::unique_ptr<OpenFile>* file);
  int Read(OpenFile* f, uint64_t off, size_t size, char* buf, size_t* done);
  // kill_suidgid: before the data, clear the set-user-ID bit and the set-group-ID bit of a
  // group-executable file, as a write by a caller without CAP_FSETID does on a local filesystem
  // (FUSE_WRITE_KILL_SUIDGID); *killed as for Open.
  int Write(OpenFile* f, uint64_t off, const char* buf, size_t size, size_t* done,
            bool kill_suidgid = false, bool* killed = nullptr);
  int Flush(OpenFile* f);
  int Fsync(OpenFile* f, bool datasync);
  int Release(std::unique_ptr<OpenFile> f);
  // An unprivileged caller's fallocate clears set-user-ID, and set-group-ID where the file is
  // group-executable or the caller is outside its group, as file_modified() does locally.
  int Fallocate(OpenFile* f, int mode, uint64_t off, uint64_t len, const Caller& caller);
  // Whether a read through f now would update the access time (options().atime, O_NOATIME, the
  // noatime attribute flag). The FUSE edge opens such a file without keep_cache, so that its
  // first read comes here and not from the kernel's cache, which updates no FUSE atime.
  bool AtimeDue(OpenFile* f);
  // SEEK_DATA / SEEK_HOLE: data is every block the store holds and every dirty page.
  int SeekDataHole(OpenFile* f, uint64_t off, int whence, uint64_t* result);

  // ---- Directories ----
  int OpenDir(uint64_t ino);
  // One entry of a directory listing. `next` is the offset to resume after it.
  struct DirEntry {
    std::string name;
    uint64_t ino;
    uint32_t type;  // DT_*
    uint64_t next;
  };
  // Entries at offset `off` onward until fn returns false. With plus, each entry but "." and ".."
  // takes a lookup reference (readdirplus); fn gets its attributes.
  int ReadDir(uint64_t ino, uint64_t off, bool plus,
              const std::function<bool(const DirEntry&, const struct stat*)>& fn);
  int FsyncDir(uint64_t ino);

  // ---- Attribute flags (chattr) ----
  // FS_IOC_GETFLAGS / FS_IOC_SETFLAGS. Supported: immutable, append-only, nodump, noatime, sync,
  // dirsync; others are EOPNOTSUPP. The kernel does not see a FUSE inode's flags, so the
  // filesystem enforces immutable (no change of any kind) and append-only (writes at EOF only,
  // no truncate, no removal or rename) itself.
  int GetFlags(uint64_t ino, uint32_t* flags);
  int SetFlags(uint64_t ino, uint32_t flags);

  // ---- Whole filesystem ----
  int Statfs(struct statvfs* st);
  int SyncFs();

  // FITRIM (fstrim): has the store give the space of deleted data back to its disk now, and
  // reports in *trimmed the free bytes of [start, start + len) that this covered. The filesystem's
  // address space is the Statfs size, f_blocks blocks; having no block addresses of its own, it
  // counts the used space as lying first and the free space as one extent after it, which is
  // counted only if at least minlen long. EINVAL if start is past the end or len is less than a
  // block, as ext4 and xfs answer; EOPNOTSUPP if the store's disk size is unknown.
  int Trim(uint64_t start, uint64_t len, uint64_t minlen, uint64_t* trimmed);

  // The shutdown ioctl (XFS_IOC_GOINGDOWN, ext4's EXT4_IOC_SHUTDOWN), as xfs_fs_goingdown does it:
  // kGoingDownDefault writes back every dirty page and syncs the store first; kGoingDownLogFlush
  // syncs what the store already holds (the log) and drops the dirty pages; kGoingDownNoLogFlush
  // stops at once, as a power cut would for the data not yet synced. Afterwards the store
  // refuses every write and sync, writeback fails quietly (dirty pages are lost), and the FUSE
  // edge answers every request but forget and release with EIO until the filesystem is unmounted
  // and mounted again. What writeback handed to the store before the shutdown but no sync
  // covered may survive, as data a disk wrote before a crash does; what stayed dirty is gone.
  // Returns 0, or EINVAL for an unknown `how`. A second call does nothing.
  static constexpr uint32_t kGoingDownDefault = 0;     // XFS_FSOP_GOING_FLAGS_DEFAULT
  static constexpr uint32_t kGoingDownLogFlush = 1;    // XFS_FSOP_GOING_FLAGS_LOGFLUSH
  static constexpr uint32_t kGoingDownNoLogFlush = 2;  // XFS_FSOP_GOING_FLAGS_NOLOGFLUSH
  int GoingDown(uint32_t how);
  bool is_shut_down() const { return store_->is_shut_down(); }
  // The inodes in memory (those the kernel may have cached pages of).
  std::vector<uint64_t> CachedInodes();

  // ---- Extended attributes ----
  // Setting an access ACL clears the set-group-ID bit when the caller is neither root nor in
  // the file's group (posix_acl_update_mode).
  int SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags,
               const Caller& caller);
  // *value gets the whole value; the FUSE layer answers a size-0 query with its length and a
  // buffer too small with ERANGE.
  int GetXattr(uint64_t ino, std::string_view name, std::string* value);
  int ListXattr(uint64_t ino, std::string* names);  // NUL-separated
  int RemoveXattr(uint64_t ino, std::string_view name);

  PageCache* cache() const { return cache_.get(); }
  // Called under table_mu_ when GetInode starts to wait for a
  // number that is being read or disposed of by another thread. For tests.
  void TEST_SetBusyWaitHook(std::function<void(uint64_t ino)> hook);
  BlockStore* store() const { return store_; }

 private:
  // Inodes that a request let go of, evicted (their dirty pages written back if they still have
  // a name) or freed once the request has released ns_mu_, as the kernel's evict() runs from a
  // dispose list: a final writeback of a large file does not hold up every namespace change.
  // Declared before the request's MutexLock on ns_mu_, so that its destructor runs after the
  // lock's.
  class DisposeList {
   public:
    explicit DisposeList(Filesystem* fs) : fs_(fs) {}
    ~DisposeList() { fs_->Dispose(this); }
    DisposeList(const DisposeList&) = delete;
    DisposeList& operator=(const DisposeList&) = delete;

   private:
    friend class Filesystem;
    Filesystem* const fs_;
    std::vector<std::shared_ptr<Inode>> inodes_;  // dropped from the table, to evict
    std::vector<uint64_t> reclaim_;               // freed by the request: give back their space
  };

  Filesystem(BlockStore* store, const FilesystemOptions& options);

  // EPERM if the inode is immutable, or append-only and `append_ok` is false.
  static int CheckMutable(Inode* inode, bool append_ok);
  // Clears in *r the mode bits a write, truncate or chown drops: S_ISUID, and S_ISGID when
  // S_IXGRP is set (a set-group-ID file without group execute marks mandatory locking and keeps
  // it). True if it changed anything.
  static bool KillSuidgid(InodeRecord* r);
  // The in-memory inode, loaded from the store if needed (table_mu_ is not held while the store
  // reads: the number is busy meanwhile, and so is the number of an inode being disposed of).
  int GetInode(uint64_t ino, std::shared_ptr<Inode>* out);
  void FillStat(Inode* inode, struct stat* st, struct timespec* btime = nullptr);
  // Loads directory `dir` into *out and checks that `name` is free in it: 0, ENOTDIR, EEXIST,
  // or the store's error.
  int CheckNewEntry(uint64_t dir, std::string_view name, std::shared_ptr<Inode>* out);
  // 0 if the directory has no entries, else ENOTEMPTY (or the store's error).
  int CheckEmptyDir(uint64_t dir);
  // Looks up name in dir: 0 and *rec, or ENOENT.
  int FindEntry(uint64_t dir, std::string_view name, DirentRecord* rec);
  // The common part of mknod, mkdir, symlink, create and tmpfile. `nameless` (tmpfile; `name`
  // is then unused) makes a regular file with no name: nlink 0, an orphan record, the parent
  // unchanged. REQUIRES: ns_mu_.
  int CreateNode(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                 std::string_view symlink, const Caller& c, std::shared_ptr<Inode>* out,
                 bool nameless = false) REQUIRES(ns_mu_);
  // Create's and Tmpfile's end: the new inode looked up once and opened. REQUIRES: ns_mu_.
  int OpenNew(std::shared_ptr<Inode> inode, int flags, struct stat* st,
              std::unique_ptr<OpenFile>* file) REQUIRES(ns_mu_);
  // Removes name from dir, dropping the inode's link; rmdir semantics if want_dir.
  int RemoveEntry(uint64_t parent, std::string_view name, bool want_dir, DisposeList* dispose)
      REQUIRES(ns_mu_);
  // Stages an inode's link drop into *txn; *free_now says whether the inode must go in the same
  // batch (no links, not in use), else it becomes an orphan or keeps links.
  void DropLink(Inode* inode, NamespaceTxn* txn, bool* free_now) REQUIRES(ns_mu_, inode->meta_mu);
  // Deletes everything an unused, unlinked inode owns (StageFreeInode stages it into a batch).
  Status FreeInode(uint64_t ino);
  Status StageFreeInode(uint64_t ino, WriteBatch* batch);
  // After a freed inode's deletion is written: when space is short, has the store give its
  // blocks' space back now, so that deleting files makes room on a full disk.
  void ReclaimFreed(uint64_t ino);

  // 0 if `bytes` more of new data fit on the store's disk: its free space less the store's
  // reserve (BlockStore::reserved_bytes()) and the dirty pages not yet written back; else
  // ENOSPC. Writes, creates and xattrs check it; deletions never do (they use the reserve).
  // accept false: only asks (nothing is about to be written). While the disk has room to spare,
  // a statvfs at most 100 ms old answers, less what was accepted since.
  int CheckSpace(uint64_t bytes, bool accept = true);
  // The store's disk (statvfs of the store) and its usable bytes, as CheckSpace counts them;
  // false if unknown.
  bool StoreSpace(struct statvfs* host, uint64_t* usable);
  // Called when nlookup or nopen may have reached 0: if nothing holds the inode any more, takes
  // it out of the table and marks its number busy (GetInode waits until it is gone, so nobody
  // loads a second copy while this one still writes), and puts it on `dispose`.
  void MaybeDrop(std::shared_ptr<Inode> inode, DisposeList* dispose) REQUIRES(ns_mu_);
  // Evicts or frees the inodes on `dispose`, then frees their numbers for GetInode.
  void Dispose(DisposeList* dispose) EXCLUDES(ns_mu_);
  // A new inode number, staged in txn: a new reservation chunk goes into its batch, and the
  // counters move on only when it commits.
  uint64_t AllocIno(NamespaceTxn* txn) REQUIRES(ns_mu_);
  Status ReclaimOrphans();
  // Whether reading the inode now updates its atime. REQUIRES: inode->meta_mu.
  bool AtimeNeedsUpdate(Inode* inode, const Timespec& now) REQUIRES(inode->meta_mu);
  // touch_atime: after a read or readdir, sets the atime to now if the policy says so and
  // writes the record (not synced: it travels with the next sync, as on ext4).
  void TouchAtime(Inode* inode, int open_flags);

  BlockStore* const store_;
  const FilesystemOptions options_;
  std::unique_ptr<PageCache> cache_;

  Mutex ns_mu_ ACQUIRED_BEFORE(table_mu_);
  uint64_t next_ino_ GUARDED_BY(ns_mu_) = 0;      // next number to hand out
  uint64_t ino_reserved_ GUARDED_BY(ns_mu_) = 0;  // numbers below this are reserved in the store

  Mutex table_mu_;
  std::map<uint64_t, std::shared_ptr<Inode>> inodes_ GUARDED_BY(table_mu_);
  // Numbers whose inode is being read from the store (I_NEW) or evicted (I_FREEING): GetInode
  // waits on busy_cv_ until they are not.
  std::set<uint64_t> busy_ GUARDED_BY(table_mu_);
  CondVar busy_cv_{&table_mu_};
  std::function<void(uint64_t)> busy_wait_hook_ GUARDED_BY(table_mu_);

  // CheckSpace's last look at the store's disk: when, what was usable, what was accepted since.
  Mutex space_mu_;
  int64_t space_checked_ns_ GUARDED_BY(space_mu_) = INT64_MIN / 2;
  uint64_t space_usable_ GUARDED_BY(space_mu_) = 0;
  uint64_t space_accepted_ GUARDED_BY(space_mu_) = 0;
};

}  // namespace stablefs
