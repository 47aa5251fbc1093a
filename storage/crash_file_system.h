// CrashFileSystem: a rocksdb::FileSystem that simulates a power cut below RocksDB.
//
// It forwards everything to the file system it wraps and keeps a model of what a power cut would
// leave, with the rules of a strict POSIX file system (ext4 with data=writeback, not its
// friendlier defaults):
//   - bytes appended to a file are durable once a Sync or Fsync of that file returns;
//   - a new name (create, rename, link) and a removed name (delete, rename over) are durable once
//     an Fsync of the directory holding the name returns; until then a power cut undoes them;
//   - a file opened with O_TRUNC over an existing name is a new file under that name.
// RangeSync (sync_file_range), Flush and Close make nothing durable. Syncs are not passed down:
// what survives is the model's to decide, and a test does not outlive the machine it runs on.
//
// Every mutating call (append, truncate, file sync, create, delete, rename, link, directory sync)
// is one step. CutPowerAfter(n) lets n more steps happen and then cuts the power: from then on
// every mutating call fails with IOError and changes nothing, while reads still see the files as
// the page cache of a still-running machine would. RecoverFromPowerCut() then rewrites the files
// on disk into what the model says survived (files truncated to their synced length, undone
// creates removed, undone deletes and renames put back with their synced bytes), and powers the
// file system back on. RocksDB must not be open on it during the recovery: close the database
// first (its writes fail while the power is out) and open it again afterwards, as a reboot would.
//
// Files and names the model has not seen change since the last recovery (those that existed
// before, and RocksDB's info LOG, which RocksDB writes outside the FileSystem) are taken as
// durable. Directories are created and removed durably at once; NewRandomRWFile is forwarded
// untracked (RocksDB's database paths do not use it).
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "storage/status.h"
#include "storage/thread_annotations.h"

namespace stablefs {

class CrashFileSystem : public rocksdb::FileSystemWrapper {
 public:
  // Wraps `base`; null wraps rocksdb::FileSystem::Default().
  explicit CrashFileSystem(std::shared_ptr<rocksdb::FileSystem> base = nullptr);
  ~CrashFileSystem() override;

  static const char* kClassName() { return "StablefsCrashFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // Mutating calls so far (each counts when it completes), power cuts included.
  uint64_t steps() const;
  // Lets `n` more steps complete, then cuts the power. n == 0 cuts it now.
  void CutPowerAfter(uint64_t n);
  void CutPower() { CutPowerAfter(0); }
  bool powered() const;
  // Rewrites the files into what survives the power cut (see above), forgets the model, and
  // powers on. May be called with the power on: that is a power cut at this instant.
  Status RecoverFromPowerCut();

  // ---- rocksdb::FileSystem ----
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& fname, size_t size,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& dirname,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;

 private:
  class File;
  class Directory;

  // One file (an inode): its length as written and the prefix a file sync made durable. Once no
  // name on disk reaches it but a durable name still does, its durable bytes move to `detached`.
  struct Node {
    uint64_t size = 0;
    uint64_t synced = 0;
    std::optional<std::string> detached;
  };
  using NodeRef = std::shared_ptr<Node>;

  static std::string Normalize(const std::string& path);
  static std::string DirOf(const std::string& path);

  // IOError if the power is out. REQUIRES: mu_.
  rocksdb::IOStatus CheckPower() const REQUIRES(mu_);
  // Counts a completed step and cuts the power if it was the last one allowed. REQUIRES: mu_.
  void Step() REQUIRES(mu_);
  // The node under live name `path`, adopting a file the model has not seen as durable; null if
  // there is none. REQUIRES: mu_.
  NodeRef Adopt(const std::string& path) REQUIRES(mu_);
  // Takes live name `path` away from its node (before the name is removed or replaced on disk),
  // keeping the node's durable bytes if only a durable name still reaches it. REQUIRES: mu_.
  Status DropLiveName(const std::string& path) REQUIRES(mu_);
  // The bytes of `node` that survive a power cut. REQUIRES: mu_.
  Status DurableBytes(const NodeRef& node, std::string* out) REQUIRES(mu_);
  // A directory sync: every name in `dir` becomes durable as it is live. REQUIRES: mu_.
  void SyncDir(const std::string& dir) REQUIRES(mu_);

  // Called by File.
  rocksdb::IOStatus Append(const NodeRef& node, rocksdb::FSWritableFile* target,
                           const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg);
  rocksdb::IOStatus TruncateOpen(const NodeRef& node, rocksdb::FSWritableFile* target,
                                 uint64_t size, const rocksdb::IOOptions& options,
                                 rocksdb::IODebugContext* dbg);
  rocksdb::IOStatus SyncFile(const NodeRef& node);
  // Called by Directory.
  rocksdb::IOStatus FsyncDir(const std::string& dir);

  mutable Mutex mu_;  // the model, and the calls that change what it describes
  bool powered_ GUARDED_BY(mu_) = true;
  uint64_t steps_ GUARDED_BY(mu_) = 0;
  std::optional<uint64_t> cut_at_ GUARDED_BY(mu_);  // the step after which the power goes
  // Names as they are on disk, and as a power cut would leave them, for every name the model
  // has seen change (or adopted); a name in neither is untouched and durable.
  std::map<std::string, NodeRef> live_ GUARDED_BY(mu_);
  std::map<std::string, NodeRef> durable_ GUARDED_BY(mu_);
};

// An Env over `fs` for RocksOptions::env. Its clock does not sleep while the power is cut:
// RocksDB backs off for a second after every failed flush, and a machine without power has
// nothing to wait for; with the power on it sleeps as the system clock does.
std::unique_ptr<rocksdb::Env> NewCrashEnv(std::shared_ptr<CrashFileSystem> fs);

}  // namespace stablefs
