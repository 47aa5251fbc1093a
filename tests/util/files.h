// Small file helpers the store and mount tests share.
#pragma once

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>

namespace stablefs::testing {

// Every regular file directly in dir: name -> (size, mtime in ns). Equal listings before and after
// something mean it wrote nothing there (a read-only open, a norecovery mount).
inline std::map<std::string, std::pair<uint64_t, int64_t>> FileStamps(const std::string& dir) {
  std::map<std::string, std::pair<uint64_t, int64_t>> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    struct stat st;
    if (stat(e.path().c_str(), &st) != 0) continue;
    out[e.path().filename().string()] = {static_cast<uint64_t>(st.st_size),
                                         st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
  }
  return out;
}

// Bytes the files under dir take on disk (st_blocks), recursively.
inline uint64_t DiskBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st;
    if (e.is_regular_file() && stat(e.path().c_str(), &st) == 0) total += st.st_blocks * 512;
  }
  return total;
}

// ioctl(cmd, arg) on a directory (a mount point): 0 or the errno of the open or the ioctl.
inline int IoctlOnDir(const std::string& dir, unsigned long cmd, void* arg) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return errno;
  const int e = ioctl(fd, cmd, arg) == 0 ? 0 : errno;
  close(fd);
  return e;
}

}  // namespace stablefs::testing
