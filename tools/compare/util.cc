#include "tools/compare/util.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace stablefs::compare {

namespace {

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> v;
  for (std::string& a : args) v.push_back(a.data());
  v.push_back(nullptr);
  return v;
}

// The mount points of /proc/self/mountinfo, unescaped enough for the paths this tool creates.
std::vector<std::string> MountPoints() {
  std::vector<std::string> points;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, point;
    ls >> id >> parent >> dev >> root >> point;
    points.push_back(point);
  }
  return points;
}

// Whether `text` names device `dev` ("loop1" but not "loop10").
bool NamesDevice(const std::string& text, const std::string& dev) {
  for (size_t at = text.find(dev); at != std::string::npos; at = text.find(dev, at + 1)) {
    size_t end = at + dev.size();
    if (end == text.size() || !std::isdigit(static_cast<unsigned char>(text[end]))) return true;
  }
  return false;
}

}  // namespace

int Reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

int Run(const std::vector<std::string>& argv, std::string* output) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    dup2(pipefd[1], STDERR_FILENO);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    std::vector<std::string> args = argv;
    std::vector<char*> v = Argv(args);
    execvp(v[0], v.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  if (output != nullptr) *output = out;
  return Reap(pid);
}

bool RunOk(const std::vector<std::string>& argv, std::string* err, std::string* output) {
  std::string out;
  int rc = Run(argv, &out);
  if (output != nullptr) *output = out;
  if (rc == 0) return true;
  std::string cmd;
  for (const std::string& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  *err = cmd + ": exit " + std::to_string(rc) + ": " + LastLine(out);
  return false;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
  }
  int null = open("/dev/null", O_RDONLY);
  if (null >= 0) dup2(null, STDIN_FILENO);
  std::vector<std::string> args = argv;
  std::vector<char*> v = Argv(args);
  execvp(v[0], v.data());
  _exit(127);
}

bool IsMountPoint(const std::string& path) {
  for (const std::string& p : MountPoints()) {
    if (p == path) return true;
  }
  return false;
}

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> under;
  for (const std::string& p : MountPoints()) {
    if (p == dir || p.starts_with(dir + "/")) under.push_back(p);
  }
  return under;
}

std::string Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

ssize_t PreadFull(int fd, void* buf, size_t n, off_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, static_cast<char*>(buf) + done, n - done, off + done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

ssize_t PwriteFull(int fd, const void* buf, size_t n, off_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pwrite(fd, static_cast<const char*>(buf) + done, n - done, off + done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

bool WriteWhole(const std::string& path, const std::string& data, bool do_fsync) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = PwriteFull(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(data.size());
  if (ok && do_fsync) ok = fsync(fd) == 0;
  int err = errno;
  close(fd);
  errno = err;
  return ok;
}

bool ReadWhole(const std::string& path, std::string* data, int flags) {
  int fd = open(path.c_str(), O_RDONLY | flags);
  if (fd < 0) return false;
  data->clear();
  char buf[65536];
  off_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      errno = err;
      return false;
    }
    if (n == 0) break;
    data->append(buf, static_cast<size_t>(n));
    off += n;
  }
  close(fd);
  return true;
}

std::string Errno(int err) {
  const char* name = strerrorname_np(err);
  return std::string(name ? name : "?") + " (" + strerror(err) + ")";
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string LastLine(const std::string& s) {
  std::string t = Trim(s);
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

std::string KernelRelease() {
  struct utsname u;
  return uname(&u) == 0 ? u.release : "?";
}

KernelLog::KernelLog() { fd_ = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC); }

KernelLog::~KernelLog() {
  if (fd_ >= 0) close(fd_);
}

void KernelLog::Mark() {
  if (fd_ >= 0) lseek(fd_, 0, SEEK_END);
}

std::vector<std::string> KernelLog::Since(const std::string& needle) {
  std::vector<std::string> lines;
  if (fd_ < 0) return lines;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd_, buf, sizeof(buf) - 1);
    if (n < 0 && errno == EPIPE) continue;  // records overwritten while we read: go on
    if (n <= 0) break;
    // "PRIORITY,SEQ,USEC,FLAGS;TEXT\n": the low three bits of PRIORITY are the level.
    std::string rec(buf, static_cast<size_t>(n));
    size_t semi = rec.find(';');
    if (semi == std::string::npos) continue;
    int level = std::atoi(rec.c_str()) & 7;
    std::string text = rec.substr(semi + 1);
    size_t nl = text.find('\n');
    if (nl != std::string::npos) text.resize(nl);
    if (level <= 4 && NamesDevice(text, needle)) lines.push_back(text);
  }
  return lines;
}

}  // namespace stablefs::compare
