// CrashFileSystem: the model of what survives a power cut, kept beside the real files.
#include "storage/crash_file_system.h"

#include <rocksdb/system_clock.h>

#include <algorithm>
#include <filesystem>
#include <vector>

namespace stablefs {

namespace {

rocksdb::IOStatus ToIOStatus(const Status& s) {
  if (s.ok()) return rocksdb::IOStatus::OK();
  return rocksdb::IOStatus::IOError(s.ToString());
}

}  // namespace

// A writable file: each change goes through the file system's model.
class CrashFileSystem::File : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  File(CrashFileSystem* fs, NodeRef node, std::unique_ptr<rocksdb::FSWritableFile> target)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs), node_(std::move(node)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    return fs_->Append(node_, target(), data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& /*info*/,
                           rocksdb::IODebugContext* dbg) override {
    return fs_->Append(node_, target(), data, options, dbg);
  }
  // Positioned appends come with direct I/O only, which the store does not use; refusing them
  // keeps every byte written inside the model.
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                     rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("CrashFileSystem: PositionedAppend");
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                     const rocksdb::DataVerificationInfo&,
                                     rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("CrashFileSystem: PositionedAppend");
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    return fs_->TruncateOpen(node_, target(), size, options, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    return fs_->SyncFile(node_);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return fs_->SyncFile(node_);
  }

 private:
  CrashFileSystem* const fs_;
  const NodeRef node_;
};

// A directory: its Fsync makes the names in it durable.
class CrashFileSystem::Directory : public rocksdb::FSDirectoryWrapper {
 public:
  Directory(CrashFileSystem* fs, std::string path, std::unique_ptr<rocksdb::FSDirectory> target)
      : FSDirectoryWrapper(std::move(target)), fs_(fs), path_(std::move(path)) {}

  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return fs_->FsyncDir(path_);
  }
  // Whatever the reason RocksDB gives (a rename, a new file already synced), the model needs the
  // directory itself synced: on btrfs the base would only sync the file, and the model is not
  // btrfs.
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& options,
                                        rocksdb::IODebugContext* dbg,
                                        const rocksdb::DirFsyncOptions&) override {
    return Fsync(options, dbg);
  }

 private:
  CrashFileSystem* const fs_;
  const std::string path_;
};

CrashFileSystem::CrashFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(base != nullptr ? std::move(base) : rocksdb::FileSystem::Default()) {}

CrashFileSystem::~CrashFileSystem() = default;

uint64_t CrashFileSystem::steps() const {
  MutexLock lock(&mu_);
  return steps_;
}

void CrashFileSystem::CutPowerAfter(uint64_t n) {
  MutexLock lock(&mu_);
  cut_at_ = steps_ + n;
  if (n == 0) powered_ = false;
}

bool CrashFileSystem::powered() const {
  MutexLock lock(&mu_);
  return powered_;
}

std::string CrashFileSystem::Normalize(const std::string& path) {
  std::string p = std::filesystem::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string CrashFileSystem::DirOf(const std::string& path) {
  return std::filesystem::path(path).parent_path().string();
}

rocksdb::IOStatus CrashFileSystem::CheckPower() const {
  if (powered_) return rocksdb::IOStatus::OK();
  return rocksdb::IOStatus::IOError("CrashFileSystem: the power is cut");
}

void CrashFileSystem::Step() {
  steps_++;
  if (cut_at_.has_value() && steps_ >= *cut_at_) powered_ = false;
}

CrashFileSystem::NodeRef CrashFileSystem::Adopt(const std::string& path) {
  auto it = live_.find(path);
  if (it != live_.end()) return it->second;
  // Removed in the model: whatever is on disk under the name did not come through here.
  if (durable_.count(path) != 0) return nullptr;
  uint64_t size = 0;
  if (!target()->GetFileSize(path, rocksdb::IOOptions(), &size, nullptr).ok()) return nullptr;
  auto node = std::make_shared<Node>();
  node->size = node->synced = size;
  live_[path] = durable_[path] = node;
  return node;
}

Status CrashFileSystem::DurableBytes(const NodeRef& node, std::string* out) {
  if (node->detached.has_value()) {
    *out = *node->detached;
    return Status::Ok();
  }
  for (const auto& [path, n] : live_) {
    if (n != node) continue;
    rocksdb::IOStatus s = rocksdb::ReadFileToString(target(), path, out);
    if (!s.ok()) return Status::IOError("CrashFileSystem: reading " + path + ": " + s.ToString());
    out->resize(std::min<uint64_t>(node->synced, out->size()));
    return Status::Ok();
  }
  return Status::Corruption("CrashFileSystem: a durable file has neither a name nor a copy");
}

Status CrashFileSystem::DropLiveName(const std::string& path) {
  auto it = live_.find(path);
  if (it == live_.end()) return Status::Ok();
  NodeRef node = it->second;
  bool other_live = false, durable = false;
  for (const auto& [p, n] : live_) other_live |= n == node && p != path;
  for (const auto& [p, n] : durable_) durable |= n == node;
  if (durable && !other_live && !node->detached.has_value()) {
    std::string bytes;
    STABLEFS_RETURN_IF_ERROR(DurableBytes(node, &bytes));
    node->detached = std::move(bytes);
  }
  live_.erase(it);
  return Status::Ok();
}

void CrashFileSystem::SyncDir(const std::string& dir) {
  for (auto it = durable_.begin(); it != durable_.end();) {
    if (DirOf(it->first) == dir && live_.count(it->first) == 0) {
      it = durable_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [path, node] : live_) {
    if (DirOf(path) == dir) durable_[path] = node;
  }
}

rocksdb::IOStatus CrashFileSystem::NewWritableFile(const std::string& fname,
                                                   const rocksdb::FileOptions& opts,
                                                   std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                   rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(fname);
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  NodeRef node = Adopt(path);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->NewWritableFile(fname, opts, &file, dbg);
  if (!s.ok()) return s;
  if (node != nullptr) {
    // O_TRUNC of an existing file: a truncate, which shortens the durable part at once.
    node->size = node->synced = 0;
  } else {
    node = std::make_shared<Node>();
    live_[path] = node;
  }
  Step();
  *result = std::make_unique<File>(this, node, std::move(file));
  return s;
}

rocksdb::IOStatus CrashFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& opts,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(fname);
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  NodeRef node = Adopt(path);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->ReopenWritableFile(fname, opts, &file, dbg);
  if (!s.ok()) return s;
  if (node == nullptr) {
    node = std::make_shared<Node>();
    live_[path] = node;
  }
  Step();
  *result = std::make_unique<File>(this, node, std::move(file));
  return s;
}

rocksdb::IOStatus CrashFileSystem::ReuseWritableFile(const std::string&, const std::string&,
                                                     const rocksdb::FileOptions&,
                                                     std::unique_ptr<rocksdb::FSWritableFile>*,
                                                     rocksdb::IODebugContext*) {
  // Only recycled WAL files use it (recycle_log_file_num > 0), which the store does not set.
  return rocksdb::IOStatus::NotSupported("CrashFileSystem: ReuseWritableFile");
}

rocksdb::IOStatus CrashFileSystem::NewDirectory(const std::string& name,
                                                const rocksdb::IOOptions& io_opts,
                                                std::unique_ptr<rocksdb::FSDirectory>* result,
                                                rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  rocksdb::IOStatus s = target()->NewDirectory(name, io_opts, &dir, dbg);
  if (s.ok()) *result = std::make_unique<Directory>(this, Normalize(name), std::move(dir));
  return s;
}

rocksdb::IOStatus CrashFileSystem::DeleteFile(const std::string& fname,
                                              const rocksdb::IOOptions& options,
                                              rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(fname);
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  if (Adopt(path) != nullptr) {
    s = ToIOStatus(DropLiveName(path));
    if (!s.ok()) return s;
  }
  s = target()->DeleteFile(fname, options, dbg);
  if (s.ok()) Step();
  return s;
}

rocksdb::IOStatus CrashFileSystem::Truncate(const std::string& fname, size_t size,
                                            const rocksdb::IOOptions& options,
                                            rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(fname);
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  NodeRef node = Adopt(path);
  s = target()->Truncate(fname, size, options, dbg);
  if (!s.ok()) return s;
  if (node != nullptr) {
    node->size = size;
    node->synced = std::min<uint64_t>(node->synced, size);
  }
  Step();
  return s;
}

rocksdb::IOStatus CrashFileSystem::RenameFile(const std::string& src, const std::string& target,
                                              const rocksdb::IOOptions& options,
                                              rocksdb::IODebugContext* dbg) {
  const std::string from = Normalize(src), to = Normalize(target);
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  NodeRef node = Adopt(from);
  if (node != nullptr && from != to) {
    // The file keeps its live name until the rename is done, so that a replaced target's
    // durable bytes can still be read from the disk.
    Adopt(to);
    s = ToIOStatus(DropLiveName(to));
    if (!s.ok()) return s;
  }
  s = this->target()->RenameFile(src, target, options, dbg);
  if (!s.ok()) return s;
  if (node != nullptr && from != to) {
    live_.erase(from);
    live_[to] = node;
  }
  Step();
  return s;
}

rocksdb::IOStatus CrashFileSystem::LinkFile(const std::string& src, const std::string& target,
                                            const rocksdb::IOOptions& options,
                                            rocksdb::IODebugContext* dbg) {
  const std::string from = Normalize(src), to = Normalize(target);
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  NodeRef node = Adopt(from);
  s = this->target()->LinkFile(src, target, options, dbg);
  if (!s.ok()) return s;
  if (node != nullptr) live_[to] = node;
  Step();
  return s;
}

rocksdb::IOStatus CrashFileSystem::CreateDir(const std::string& dirname,
                                             const rocksdb::IOOptions& options,
                                             rocksdb::IODebugContext* dbg) {
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  return s.ok() ? target()->CreateDir(dirname, options, dbg) : s;
}

rocksdb::IOStatus CrashFileSystem::CreateDirIfMissing(const std::string& dirname,
                                                      const rocksdb::IOOptions& options,
                                                      rocksdb::IODebugContext* dbg) {
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  return s.ok() ? target()->CreateDirIfMissing(dirname, options, dbg) : s;
}

rocksdb::IOStatus CrashFileSystem::DeleteDir(const std::string& dirname,
                                             const rocksdb::IOOptions& options,
                                             rocksdb::IODebugContext* dbg) {
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  return s.ok() ? target()->DeleteDir(dirname, options, dbg) : s;
}

rocksdb::IOStatus CrashFileSystem::Append(const NodeRef& node, rocksdb::FSWritableFile* file,
                                          const rocksdb::Slice& data,
                                          const rocksdb::IOOptions& options,
                                          rocksdb::IODebugContext* dbg) {
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  s = file->Append(data, options, dbg);
  if (!s.ok()) return s;
  node->size += data.size();
  Step();
  return s;
}

rocksdb::IOStatus CrashFileSystem::TruncateOpen(const NodeRef& node, rocksdb::FSWritableFile* file,
                                                uint64_t size, const rocksdb::IOOptions& options,
                                                rocksdb::IODebugContext* dbg) {
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  s = file->Truncate(size, options, dbg);
  if (!s.ok()) return s;
  node->size = size;
  node->synced = std::min(node->synced, size);
  Step();
  return s;
}

rocksdb::IOStatus CrashFileSystem::SyncFile(const NodeRef& node) {
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  node->synced = node->size;
  Step();
  return s;
}

rocksdb::IOStatus CrashFileSystem::FsyncDir(const std::string& dir) {
  MutexLock lock(&mu_);
  rocksdb::IOStatus s = CheckPower();
  if (!s.ok()) return s;
  SyncDir(dir);
  Step();
  return s;
}

Status CrashFileSystem::RecoverFromPowerCut() {
  MutexLock lock(&mu_);
  powered_ = false;
  // Every durable name whose file on disk is not as it survives (another file, or longer) gets
  // its durable bytes back; read them all before anything on disk changes (a rename may have
  // swapped two names).
  std::vector<std::pair<std::string, std::string>> rewrites;
  for (const auto& [path, node] : durable_) {
    auto it = live_.find(path);
    if (it != live_.end() && it->second == node && node->synced >= node->size) continue;
    std::string bytes;
    STABLEFS_RETURN_IF_ERROR(DurableBytes(node, &bytes));
    rewrites.emplace_back(path, std::move(bytes));
  }
  // Names the power cut undoes go.
  for (const auto& [path, node] : live_) {
    if (durable_.count(path) != 0) continue;
    rocksdb::IOStatus s = target()->DeleteFile(path, rocksdb::IOOptions(), nullptr);
    if (!s.ok())
      return Status::IOError("CrashFileSystem: recovering " + path + ": " + s.ToString());
  }
  for (const auto& [path, bytes] : rewrites) {
    rocksdb::IOStatus s = rocksdb::WriteStringToFile(target(), bytes, path);
    if (!s.ok()) return Status::IOError("CrashFileSystem: restoring " + path + ": " + s.ToString());
  }
  live_.clear();
  durable_.clear();
  cut_at_.reset();
  powered_ = true;
  return Status::Ok();
}

namespace {

class CrashClock : public rocksdb::SystemClockWrapper {
 public:
  CrashClock(const std::shared_ptr<rocksdb::SystemClock>& base, std::shared_ptr<CrashFileSystem> fs)
      : SystemClockWrapper(base), fs_(std::move(fs)) {}
  static const char* kClassName() { return "StablefsCrashClock"; }
  const char* Name() const override { return kClassName(); }
  void SleepForMicroseconds(int micros) override {
    if (fs_->powered()) SystemClockWrapper::SleepForMicroseconds(micros);
  }

 private:
  const std::shared_ptr<CrashFileSystem> fs_;
};

// The composite Env over the crash file system, with the clock replaced (Env keeps both as
// protected members, which is how RocksDB's own wrappers set them).
class CrashEnv : public rocksdb::EnvWrapper {
 public:
  explicit CrashEnv(std::shared_ptr<CrashFileSystem> fs)
      : EnvWrapper(rocksdb::NewCompositeEnv(fs)) {
    system_clock_ = std::make_shared<CrashClock>(system_clock_, std::move(fs));
  }
  static const char* kClassName() { return "StablefsCrashEnv"; }
  const char* Name() const override { return kClassName(); }
};

}  // namespace

std::unique_ptr<rocksdb::Env> NewCrashEnv(std::shared_ptr<CrashFileSystem> fs) {
  return std::make_unique<CrashEnv>(std::move(fs));
}

}  // namespace stablefs
