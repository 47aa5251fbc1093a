// The filesystems the checks run on. Each target undoes what it did in its destructor (unmount,
// daemon reaped, loop device detached), so a failed check or a Ctrl-C leaves nothing behind.
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstring>
#include <fstream>
#include <map>

#include "fs/stats.h"
#include "tools/compare/compare.h"
#include "tools/compare/util.h"

namespace stablefs::compare {

namespace {

constexpr uint64_t kBlock = 4096;

#ifndef FS_IOC_SHUTDOWN
#define FS_IOC_SHUTDOWN _IOR('X', 125, uint32_t)
#endif
// Shut down without flushing the log: what a power cut leaves (FSOP_GOING_FLAGS_NOLOGFLUSH).
constexpr uint32_t kGoingDownNoLogFlush = 2;

std::string ReadSysfs(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  if (!(in >> v)) return "";
  return v;
}

bool ReadStats(const std::string& mnt, StablefsStats* stats) {
  int fd = open(mnt.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return false;
  *stats = {};
  bool ok = ioctl(fd, STABLEFS_IOC_STATS, stats) == 0;
  close(fd);
  return ok;
}

// The counters of the daemon that say integrity failed.
constexpr const char* kErrorCounters[] = {"protection_errors_write", "protection_errors_read",
                                          "read_eio", "writeback_errors"};

size_t StatIndex(const char* name) {
  for (size_t i = 0; i < kNumStats; i++) {
    if (std::strcmp(kStatNames[i], name) == 0) return i;
  }
  return 0;
}

// ---- stablefs: a fresh store and a daemon in the foreground, child of this process ----

class StablefsTarget : public Target {
 public:
  StablefsTarget(const Programs& progs, const std::string& dir, const std::string& options)
      : progs_(progs), dir_(dir), options_(options) {
    name_ = "stablefs";
    store_ = dir + "/store";
    mnt_ = dir + "/mnt";
  }
  ~StablefsTarget() override {
    if (IsMountPoint(mnt_)) Run({"fusermount3", "-u", "-z", mnt_});
    if (pid_ > 0) {
      // Unmounting ends the daemon; if it does not end on its own, it is ours to kill.
      kill(pid_, SIGKILL);
      Reap(pid_);
    }
  }

  bool Setup(std::string* err) override {
    if (mkdir(mnt_.c_str(), 0755) != 0 && errno != EEXIST) {
      *err = mnt_ + ": " + Errno(errno);
      return false;
    }
    if (!RunOk({progs_.mkfs, "-q", store_}, err)) return false;
    return Mount(err);
  }

  bool Mount(std::string* err) override {
    // Through FUSE the kernel holds the inode lock across write and fsync, so only the daemon's
    // own background writeback runs while writes arrive, as the kernel's flusher does beside
    // writers on a kernel filesystem. A 4 MiB cache keeps a check's 1 MiB of dirty pages above
    // the background threshold, so the flusher writes back without pause while the rewriters
    // run; writeback_expire_ms=0 lets it take pages of any age. Options given later override.
    std::vector<std::string> argv = {progs_.stablefs, "-f", "-o",
                                     "writeback_expire_ms=0,cache_size=4M"};
    if (!options_.empty()) argv.insert(argv.end(), {"-o", options_});
    argv.insert(argv.end(), {store_, mnt_});
    pid_ = Spawn(argv, dir_ + "/daemon.log");
    if (pid_ < 0) {
      *err = "cannot start " + progs_.stablefs;
      return false;
    }
    // The daemon mounts and then serves; the mount table says when it is there.
    while (!IsMountPoint(mnt_)) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        *err = "the daemon exited before mounting: " + DaemonLog();
        return false;
      }
      usleep(2000);
    }
    base_ = {};
    ReadStats(mnt_, &base_);
    return true;
  }

  bool Unmount(std::string* err) override {
    Accumulate();
    if (pid_ <= 0 || Died()) {
      Run({"fusermount3", "-u", "-z", mnt_});
      *err = "the daemon had died: " + DaemonLog();
      return false;
    }
    if (!RunOk({"fusermount3", "-u", mnt_}, err)) return false;
    // umount returns before the daemon has closed the store: its exit is the end.
    int status = Reap(pid_);
    pid_ = -1;
    if (status != 0) {
      *err = "the daemon exited with status " + std::to_string(status) + ": " + DaemonLog();
      return false;
    }
    return true;
  }

  bool Crash(std::string* why) override {
    Accumulate();
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Reap(pid_);
      pid_ = -1;
    }
    Run({"fusermount3", "-u", "-z", mnt_});
    if (!RunOk({progs_.self, "wait", store_}, why)) return false;
    if (test_damage == TestDamage::kDropSynced) {
      return RunOk({progs_.self, "corrupt", store_, "/synced", "--offset", "0", "--what", "drop"},
                   why);
    }
    return true;
  }

  bool Corrupt(const std::string& rel, Damage kind, uint64_t offset, uint64_t other,
               const std::string& expect, const std::string& expect_other, std::string* evidence,
               std::string* err) override {
    std::vector<std::string> argv = {progs_.self, "corrupt",  store_,
                                     "/" + rel,   "--offset", std::to_string(offset)};
    switch (kind) {
      case Damage::kBitFlip:
        argv.insert(argv.end(), {"--what", "data"});
        break;
      case Damage::kSwap:
        argv.insert(argv.end(), {"--what", "swap", "--to-offset", std::to_string(other)});
        break;
      case Damage::kTorn:
        argv.insert(argv.end(), {"--what", "torn", "--to-offset", std::to_string(other)});
        break;
    }
    if (test_damage == TestDamage::kAbovePi) argv.push_back("--above-pi");
    std::string out;
    if (!RunOk(argv, err, &out)) return false;
    *evidence =
        "stablefsctl corrupt " + rel + " --offset " + std::to_string(offset) + ": " + LastLine(out);
    return true;
  }

  void MarkErrors() override {
    accumulated_ = {};
    base_ = {};
    ReadStats(mnt_, &base_);
  }

  ErrorReport ErrorsSinceMark() override {
    StablefsStats total = accumulated_;
    StablefsStats now{};
    const bool died = Died();
    if (pid_ > 0 && ReadStats(mnt_, &now)) {
      for (size_t i = 0; i < kNumStats; i++) total.values[i] += now.values[i] - base_.values[i];
    }
    ErrorReport r;
    if (died) {
      r.count++;
      r.first = "the daemon died: " + DaemonLog();
    }
    for (const char* name : kErrorCounters) {
      uint64_t v = total.values[StatIndex(name)];
      if (v == 0) continue;
      r.count += v;
      r.first += (r.first.empty() ? "" : ", ") + std::string(name) + " " + std::to_string(v);
    }
    return r;
  }

  std::string StableWrites() const override {
    std::string policy = "wait";
    size_t at = options_.find("stable_pages=");
    if (at != std::string::npos) {
      policy = options_.substr(at + 13, options_.find(',', at) - (at + 13));
    }
    return "no block device; the daemon's page cache, stable_pages=" + policy;
  }

  // The store of a daemon mounted with -o debug_faults fails its writes on request
  // (STABLEFS_IOC_INJECT_FAULT, as stablefsctl inject sends it): a failing disk below the store.
  bool CanFailWrites() const override { return options_.find("debug_faults") != std::string::npos; }
  bool FailWrites(std::string* err) override { return Inject({kFaultWriteErrors, -1}, err); }
  void HealWrites() override {
    std::string ignored;
    Inject({kFaultClear, 0}, &ignored);
  }

  std::unique_ptr<Target> CloneIn(const std::string& dir) const override {
    // The clone serves check 4: written pages stay dirty (the default cache, no expiry) until
    // the fsync, which must meet the failure below the store; the store fails on request
    // (debug_faults). The user's options come after.
    std::string options = "writeback_expire_ms=600000,cache_size=256M,debug_faults";
    if (!options_.empty()) options += "," + options_;
    auto t = std::make_unique<StablefsTarget>(progs_, dir, options);
    t->test_damage = test_damage;
    return t;
  }

  uint64_t Counter(const char* name) {
    StablefsStats now{};
    ReadStats(mnt_, &now);
    return now.values[StatIndex(name)];
  }

 private:
  // Whether the daemon exited on its own (reaped here).
  bool Died() {
    int status;
    if (pid_ <= 0 || waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }

  bool Inject(StablefsFault f, std::string* err) {
    int fd = open(mnt_.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
      *err = mnt_ + ": " + Errno(errno);
      return false;
    }
    const bool ok = ioctl(fd, STABLEFS_IOC_INJECT_FAULT, &f) == 0;
    if (!ok) *err = "inject: " + Errno(errno);
    close(fd);
    return ok;
  }

  // A daemon's counters start at zero: keep what the one about to end counted.
  void Accumulate() {
    StablefsStats now{};
    if (!ReadStats(mnt_, &now)) return;
    for (size_t i = 0; i < kNumStats; i++)
      accumulated_.values[i] += now.values[i] - base_.values[i];
    base_ = now;
  }

  std::string DaemonLog() const {
    std::string log;
    ReadWhole(dir_ + "/daemon.log", &log);
    return LastLine(log);
  }

  Programs progs_;
  std::string dir_, options_, store_;
  pid_t pid_ = -1;
  StablefsStats base_{}, accumulated_{};
};

// ---- a kernel filesystem on a loop device over a sparse file, or tmpfs ----

class KernelTarget : public Target {
 public:
  KernelTarget(const std::string& fstype, const std::string& dir) : fstype_(fstype), dir_(dir) {
    name_ = fstype;
    image_ = dir + "/image";
    mnt_ = dir + "/mnt";
  }
  ~KernelTarget() override {
    if (IsMountPoint(mnt_) && Run({"umount", mnt_}) != 0) Run({"umount", "-l", mnt_});
    if (!dev_.empty()) Run({"losetup", "-d", dev_});
  }

  bool Setup(std::string* err) override {
    if (mkdir(mnt_.c_str(), 0755) != 0 && errno != EEXIST) {
      *err = mnt_ + ": " + Errno(errno);
      return false;
    }
    if (fstype_ == "tmpfs") return Mount(err);
    // 512 MiB: above mkfs.xfs's 300 MiB minimum; sparse, so only what is written takes space.
    int fd = open(image_.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 512 << 20) != 0) {
      *err = image_ + ": " + Errno(errno);
      if (fd >= 0) close(fd);
      return false;
    }
    close(fd);
    std::string out;
    if (!RunOk({"losetup", "-f", "--show", image_}, err, &out)) return false;
    dev_ = Trim(out);
    std::vector<std::string> mkfs = {"mkfs." + fstype_, "-q"};
    mkfs.push_back(fstype_ == "ext4" ? "-F" : "-f");
    mkfs.push_back(dev_);
    if (!RunOk(mkfs, err)) return false;
    return Mount(err);
  }

  bool Mount(std::string* err) override {
    if (fstype_ == "tmpfs")
      return RunOk({"mount", "-t", "tmpfs", "-o", "size=1G", "tmpfs", mnt_}, err);
    return RunOk({"mount", "-t", fstype_, dev_, mnt_}, err);
  }

  bool Unmount(std::string* err) override { return RunOk({"umount", mnt_}, err); }

  bool Persistent() const override { return fstype_ != "tmpfs"; }

  bool Crash(std::string* why) override {
    if (fstype_ == "tmpfs") {
      *why = "tmpfs keeps nothing across a crash";
      return false;
    }
    int fd = open(mnt_.c_str(), O_RDONLY | O_DIRECTORY);
    uint32_t flags = kGoingDownNoLogFlush;
    int rc = fd < 0 ? -1 : ioctl(fd, FS_IOC_SHUTDOWN, &flags);
    int err = errno;
    if (fd >= 0) close(fd);
    if (rc != 0) {
      *why = "no shutdown ioctl here: FS_IOC_SHUTDOWN: " + Errno(err) +
             "; no device-mapper for dm-flakey";
      return false;
    }
    return RunOk({"umount", mnt_}, why);
  }

  bool Locate(const std::string& rel, uint64_t offset, const std::string& expect,
              std::string* err) override {
    if (dev_.empty()) {
      *err = "no device";
      return false;
    }
    uint64_t phys = 0;
    std::string how;
    if (!Fiemap(Path(rel), offset, &phys, err)) return false;
    how = "FIEMAP";
    if (!ImageHolds(phys, expect)) {
      // btrfs's FIEMAP answers in its own logical address space, which its chunk tree maps to
      // the device: find the block by its content instead.
      uint64_t found = 0;
      if (!ScanImage(expect, &found)) {
        *err = "block of " + rel + " at " + std::to_string(offset) + " not found on " + dev_;
        return false;
      }
      how = "FIEMAP said " + std::to_string(phys) + " (a logical address), found by content";
      phys = found;
    }
    located_[Key(rel, offset)] = {phys, how};
    return true;
  }

  bool Corrupt(const std::string& rel, Damage kind, uint64_t offset, uint64_t other,
               const std::string& expect, const std::string& expect_other, std::string* evidence,
               std::string* err) override {
    auto a = located_.find(Key(rel, offset));
    auto b = located_.find(Key(rel, other));
    if (a == located_.end() || (kind != Damage::kBitFlip && b == located_.end())) {
      *err = "block not located";
      return false;
    }
    int fd = open(image_.c_str(), O_RDWR);
    if (fd < 0) {
      *err = image_ + ": " + Errno(errno);
      return false;
    }
    const uint64_t pa = a->second.phys;
    bool ok = true;
    std::string block = expect;
    switch (kind) {
      case Damage::kBitFlip:
        block[offset % kBlock] ^= 0x01;
        ok = PwriteFull(fd, block.data(), kBlock, pa) == kBlock;
        *evidence = "flipped a bit at device byte " + std::to_string(pa + offset % kBlock);
        break;
      case Damage::kSwap:
        ok = PwriteFull(fd, expect_other.data(), kBlock, pa) == kBlock &&
             PwriteFull(fd, expect.data(), kBlock, b->second.phys) == kBlock;
        *evidence = "swapped device blocks at " + std::to_string(pa) + " and " +
                    std::to_string(b->second.phys);
        break;
      case Damage::kTorn:
        ok = PwriteFull(fd, expect_other.data() + kBlock / 2, kBlock / 2, pa + kBlock / 2) ==
             kBlock / 2;
        *evidence = "second half of device block " + std::to_string(pa) + " replaced";
        break;
    }
    *evidence += " (" + a->second.how + ")";
    if (ok) ok = fsync(fd) == 0;
    if (!ok) *err = image_ + ": " + Errno(errno);
    close(fd);
    return ok;
  }

  void MarkErrors() override { log_.Mark(); }

  ErrorReport ErrorsSinceMark() override {
    ErrorReport r;
    if (dev_.empty()) return r;
    std::vector<std::string> lines = log_.Since(dev_.substr(dev_.rfind('/') + 1));
    r.count = lines.size();
    if (!lines.empty()) r.first = lines.front();
    return r;
  }

  std::string StableWrites() const override {
    if (dev_.empty()) return "no block device";
    std::string dev = dev_.substr(dev_.rfind('/') + 1);
    std::string v = ReadSysfs("/sys/block/" + dev + "/queue/stable_writes");
    return "/sys/block/" + dev + "/queue/stable_writes=" + (v.empty() ? "?" : v);
  }

  std::unique_ptr<Target> CloneIn(const std::string& dir) const override {
    return std::make_unique<KernelTarget>(fstype_, dir);
  }

  const std::string& image() const { return image_; }

 private:
  struct Location {
    uint64_t phys;
    std::string how;
  };

  static std::string Key(const std::string& rel, uint64_t offset) {
    return rel + "@" + std::to_string(offset / kBlock);
  }

  static bool Fiemap(const std::string& path, uint64_t offset, uint64_t* phys, std::string* err) {
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) {
      *err = path + ": " + Errno(errno);
      return false;
    }
    constexpr unsigned kExtents = 32;
    std::vector<char> buf(sizeof(fiemap) + kExtents * sizeof(fiemap_extent));
    auto* fm = reinterpret_cast<fiemap*>(buf.data());
    fm->fm_start = 0;
    fm->fm_length = FIEMAP_MAX_OFFSET;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = kExtents;
    int rc = ioctl(fd, FS_IOC_FIEMAP, fm);
    int e = errno;
    close(fd);
    if (rc != 0) {
      *err = path + ": FIEMAP: " + Errno(e);
      return false;
    }
    for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
      const fiemap_extent& x = fm->fm_extents[i];
      if (offset >= x.fe_logical && offset < x.fe_logical + x.fe_length) {
        if (x.fe_flags & (FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_INLINE)) break;
        *phys = x.fe_physical + (offset - x.fe_logical) / kBlock * kBlock;
        return true;
      }
    }
    *err = path + ": no plain extent holds offset " + std::to_string(offset);
    return false;
  }

  bool ImageHolds(uint64_t phys, const std::string& expect) const {
    int fd = open(image_.c_str(), O_RDONLY);
    if (fd < 0) return false;
    std::string got(kBlock, '\0');
    bool same = PreadFull(fd, got.data(), kBlock, phys) == kBlock && got == expect;
    close(fd);
    return same;
  }

  // Searches the image's allocated extents for a block equal to `expect`.
  bool ScanImage(const std::string& expect, uint64_t* phys) const {
    int fd = open(image_.c_str(), O_RDONLY);
    if (fd < 0) return false;
    std::string chunk(1 << 20, '\0');
    off_t data = lseek(fd, 0, SEEK_DATA);
    bool found = false;
    while (data >= 0 && !found) {
      off_t hole = lseek(fd, data, SEEK_HOLE);
      for (off_t at = data / kBlock * kBlock; at < hole && !found; at += chunk.size()) {
        ssize_t n = PreadFull(fd, chunk.data(), chunk.size(), at);
        if (n <= 0) break;
        for (size_t i = 0; i + kBlock <= static_cast<size_t>(n); i += kBlock) {
          if (std::memcmp(chunk.data() + i, expect.data(), kBlock) == 0) {
            *phys = at + i;
            found = true;
            break;
          }
        }
      }
      data = lseek(fd, hole, SEEK_DATA);
    }
    close(fd);
    return found;
  }

  std::string fstype_, dir_, image_, dev_;
  KernelLog log_;
  std::map<std::string, Location> located_;
};

// ---- a mount point someone else set up: only the checks that leave it mounted ----

class ExistingTarget : public Target {
 public:
  explicit ExistingTarget(const std::string& mnt) {
    mnt_ = mnt;
    name_ = mnt;
  }
  bool Setup(std::string* err) override {
    if (!IsMountPoint(mnt_)) {
      *err = mnt_ + " is not a mount point";
      return false;
    }
    // A directory of our own inside it, so the checks touch nothing else.
    char tmpl[] = "/stablefs-compare-XXXXXX";
    std::string t = mnt_ + tmpl;
    if (mkdtemp(t.data()) == nullptr) {
      *err = t + ": " + Errno(errno);
      return false;
    }
    root_ = mnt_;
    mnt_ = t;
    return true;
  }
  ~ExistingTarget() override {
    if (!root_.empty()) Run({"rm", "-rf", "--one-file-system", mnt_});
  }
  bool Owned() const override { return false; }
  bool Unmount(std::string* err) override {
    *err = "not unmounted: the tool unmounts only what it mounted";
    return false;
  }
  bool Mount(std::string* err) override { return Unmount(err); }
  bool Crash(std::string* why) override { return Unmount(why); }
  bool Corrupt(const std::string&, Damage, uint64_t, uint64_t, const std::string&,
               const std::string&, std::string*, std::string* err) override {
    return Unmount(err);
  }
  void MarkErrors() override {
    stats_ok_ = ReadStats(root_, &base_);
    log_.Mark();
  }
  ErrorReport ErrorsSinceMark() override {
    ErrorReport r;
    StablefsStats now{};
    if (stats_ok_ && ReadStats(root_, &now)) {
      for (const char* name : kErrorCounters) {
        uint64_t v = now.values[StatIndex(name)] - base_.values[StatIndex(name)];
        if (v == 0) continue;
        r.count += v;
        r.first += (r.first.empty() ? "" : ", ") + std::string(name) + " " + std::to_string(v);
      }
      return r;
    }
    std::vector<std::string> lines = log_.Since(DeviceName());
    r.count = lines.size();
    if (!lines.empty()) r.first = lines.front();
    return r;
  }
  std::string StableWrites() const override {
    std::string dev = DeviceName();
    std::string v = ReadSysfs("/sys/block/" + dev + "/queue/stable_writes");
    return v.empty() ? "no block device" : "/sys/block/" + dev + "/queue/stable_writes=" + v;
  }
  std::unique_ptr<Target> CloneIn(const std::string&) const override { return nullptr; }

 private:
  // The block device under the mount ("sda1", "loop0"), from sysfs; empty without one.
  std::string DeviceName() const {
    struct stat st;
    if (stat(root_.c_str(), &st) != 0) return "";
    std::string link = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" +
                       std::to_string(minor(st.st_dev));
    char target[PATH_MAX];
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) return "";
    std::string t(target, static_cast<size_t>(n));
    return t.substr(t.rfind('/') + 1);
  }

  std::string root_;
  KernelLog log_;
  bool stats_ok_ = false;
  StablefsStats base_{};
};

}  // namespace

std::unique_ptr<Target> NewStablefsTarget(const Programs& progs, const std::string& dir,
                                          const std::string& options) {
  return std::make_unique<StablefsTarget>(progs, dir, options);
}

std::unique_ptr<Target> NewKernelTarget(const std::string& fstype, const std::string& dir) {
  return std::make_unique<KernelTarget>(fstype, dir);
}

std::unique_ptr<Target> NewExistingTarget(const std::string& mountpoint) {
  return std::make_unique<ExistingTarget>(mountpoint);
}

}  // namespace stablefs::compare
