// meta_bench: the metadata workloads of the peer benchmark (tools/bench/peers.py), run on any
// mounted filesystem. Each phase prints one JSON object: the phase, the operations done, the
// seconds taken and the operations per second.
//
//   meta_bench files DIR N        creates N empty files in DIR (open O_CREAT, close), then stats
//                                 each, then unlinks each: three lines, "create", "stat", "unlink"
//   meta_bench mktree DIR D F     builds a tree of depth D and fan-out F under DIR, with F small
//                                 files (4 KiB each) in every directory: one line, "mktree"
//   meta_bench walk DIR           walks the tree under DIR (lstat of every entry, read of every
//                                 regular file): one line, "walk"
//
// Exit status 0, or 1 with a message naming the failing call and path.
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const char* call, const std::string& path) {
  std::fprintf(stderr, "meta_bench: %s %s: %s\n", call, path.c_str(), std::strerror(errno));
  std::exit(1);
}

void Report(const char* phase, long ops, Clock::time_point start) {
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("{\"phase\": \"%s\", \"ops\": %ld, \"seconds\": %.6f, \"ops_per_s\": %.1f}\n", phase,
              ops, seconds, seconds > 0 ? ops / seconds : 0.0);
  std::fflush(stdout);
}

std::string FileName(const std::string& dir, long i) { return dir + "/f" + std::to_string(i); }

int Files(const std::string& dir, long n) {
  auto start = Clock::now();
  for (long i = 0; i < n; i++) {
    std::string path = FileName(dir, i);
    int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) Die("open", path);
    if (close(fd) != 0) Die("close", path);
  }
  Report("create", n, start);

  start = Clock::now();
  for (long i = 0; i < n; i++) {
    std::string path = FileName(dir, i);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) Die("stat", path);
  }
  Report("stat", n, start);

  start = Clock::now();
  for (long i = 0; i < n; i++) {
    std::string path = FileName(dir, i);
    if (unlink(path.c_str()) != 0) Die("unlink", path);
  }
  Report("unlink", n, start);
  return 0;
}

long MakeTree(const std::string& dir, int depth, int fanout, const char* block) {
  long ops = 0;
  for (int f = 0; f < fanout; f++) {
    std::string path = dir + "/file" + std::to_string(f);
    int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) Die("open", path);
    if (write(fd, block, 4096) != 4096) Die("write", path);
    if (close(fd) != 0) Die("close", path);
    ops++;
  }
  if (depth == 0) return ops;
  for (int d = 0; d < fanout; d++) {
    std::string sub = dir + "/dir" + std::to_string(d);
    if (mkdir(sub.c_str(), 0755) != 0) Die("mkdir", sub);
    ops += 1 + MakeTree(sub, depth - 1, fanout, block);
  }
  return ops;
}

long walked = 0;

int Visit(const char* path, const struct stat* st, int type, struct FTW*) {
  walked++;
  if (type == FTW_F && S_ISREG(st->st_mode)) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) Die("open", path);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
    }
    if (n < 0) Die("read", path);
    close(fd);
  }
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: meta_bench files DIR N\n"
               "       meta_bench mktree DIR DEPTH FANOUT\n"
               "       meta_bench walk DIR\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  std::string cmd = argv[1], dir = argv[2];
  if (cmd == "files" && argc == 4) return Files(dir, std::atol(argv[3]));
  if (cmd == "mktree" && argc == 5) {
    static char block[4096];
    std::memset(block, 'x', sizeof(block));
    auto start = Clock::now();
    long ops = MakeTree(dir, std::atoi(argv[3]), std::atoi(argv[4]), block);
    Report("mktree", ops, start);
    return 0;
  }
  if (cmd == "walk" && argc == 3) {
    auto start = Clock::now();
    if (nftw(dir.c_str(), Visit, 64, FTW_PHYS) != 0) Die("nftw", dir);
    Report("walk", walked, start);
    return 0;
  }
  return Usage();
}
