// Mount: a store and a mount point in a temporary directory, and a stablefs daemon serving them
// in the foreground as a child of the test, so the test owns its PID. The destructor unmounts
// and reaps the daemon, also when a test fails. STABLEFS_BIN and MKFS_BIN name the programs.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/util/temp_dir.h"

namespace stablefs::testing {

using Clock = std::chrono::steady_clock;

inline bool IsMounted(const std::string& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, point;
    ls >> id >> parent >> dev >> root >> point;
    if (point == mnt && line.find("fuse.stablefs") != std::string::npos) return true;
  }
  return false;
}

inline int Run(const std::string& cmd) {
  int status = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs cmd with its output (stdout and stderr) appended to *out; returns its exit status (128 +
// signal if killed).
inline int RunCapture(const std::string& cmd, std::string* out) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out->append(buf.data(), n);
  int status = pclose(p);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A store and a mount point in a temporary directory, and the daemon serving them.
class Mount {
 public:
  // store_disk_bytes > 0 puts the store on a small ext4 of that size on a loop device (a disk to
  // fill); the loop device goes when it is unmounted (mount -o loop sets autoclear).
  explicit Mount(std::vector<std::string> options = {}, uint64_t store_disk_bytes = 0)
      : options_(std::move(options)) {
    store_ = dir_.Sub("store");
    mnt_ = dir_.Sub("mnt");
    mkdir(mnt_.c_str(), 0755);
    if (store_disk_bytes > 0) {
      const std::string image = dir_.Sub("disk.img");
      mkdir(store_.c_str(), 0755);
      { std::ofstream create(image); }
      if (truncate(image.c_str(), static_cast<off_t>(store_disk_bytes)) != 0 ||
          Run("mkfs.ext4 -q -F -m 0 " + image) != 0 ||
          Run("mount -o loop " + image + " " + store_) != 0) {
        return;  // mkfs_status_ stays -1: Start() fails
      }
      store_disk_ = true;
      rmdir((store_ + "/lost+found").c_str());  // mkfs.stablefs wants an empty directory
    }
    mkfs_status_ = Run(std::string(MKFS_BIN) + " -q " + store_);
  }
  ~Mount() {
    if (IsMounted(mnt_)) Run("fusermount3 -u -z " + mnt_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (store_disk_) Run("umount " + store_);
  }

  const std::string& store() const { return store_; }
  const std::string& mnt() const { return mnt_; }
  // The daemon's exit status when Start() failed because it exited (128 + signal if killed).
  int start_exit_status() const { return start_exit_status_; }
  std::string Path(const std::string& rel) const { return mnt_ + "/" + rel; }
  // The -o options of the next Start().
  void set_options(std::vector<std::string> options) { options_ = std::move(options); }

  // Starts the daemon and waits until the mount is there (or the daemon died).
  ::testing::AssertionResult Start() {
    if (mkfs_status_ != 0) return ::testing::AssertionFailure() << "mkfs failed";
    std::vector<std::string> argv = {STABLEFS_BIN, "-f"};
    for (const std::string& o : options_) {
      argv.push_back("-o");
      argv.push_back(o);
    }
    argv.push_back(store_);
    argv.push_back(mnt_);
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      if (IsMounted(mnt_)) return ::testing::AssertionSuccess();
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        start_exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                               : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return ::testing::AssertionFailure()
               << "the daemon exited before mounting (status " << start_exit_status_ << ")";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return ::testing::AssertionFailure() << "no mount after 30 s";
  }

  // Unmounts and waits for the daemon; returns its exit status.
  int Stop() {
    if (Run("fusermount3 -u " + mnt_) != 0) return -2;
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -3;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // SIGKILL of the daemon: a crash of the filesystem process. The dead mount is detached.
  void Crash() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    Run("fusermount3 -u -z " + mnt_);
  }

 private:
  TempDir dir_;
  std::vector<std::string> options_;
  std::string store_, mnt_;
  bool store_disk_ = false;
  int mkfs_status_ = -1;
  int start_exit_status_ = -1;
  pid_t pid_ = -1;
};

}  // namespace stablefs::testing
