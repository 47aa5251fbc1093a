// Helpers of the compare tool: running programs (fork + exec, never a shell), files, the kernel
// log and the mount table.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace stablefs::compare {

// Runs argv[0] (searched on PATH) with its output captured into *output (stdout and stderr).
// Returns its exit status, 128+signal if killed, -1 if it could not be started.
int Run(const std::vector<std::string>& argv, std::string* output = nullptr);
// Run, and on a nonzero status a one-line *err naming the command and its last output line.
bool RunOk(const std::vector<std::string>& argv, std::string* err, std::string* output = nullptr);

// Starts argv in its own process group (a Ctrl-C at the terminal reaches this tool, which then
// unmounts in order, not the child), output appended to `log`. Returns its PID or -1.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log);
// waitpid that retries on EINTR; returns the exit status as Run does.
int Reap(pid_t pid);

bool IsMountPoint(const std::string& path);
// Mounts listed in /proc/self/mountinfo at or below `dir`.
std::vector<std::string> MountsUnder(const std::string& dir);

// Deterministic data: n bytes from a seed.
std::string Pattern(size_t n, uint64_t seed);
// Whole-file helpers; false with errno set on failure.
bool WriteWhole(const std::string& path, const std::string& data, bool do_fsync);
bool ReadWhole(const std::string& path, std::string* data, int flags = 0);
// pread/pwrite of exactly n bytes; -1 with errno on failure.
ssize_t PreadFull(int fd, void* buf, size_t n, off_t off);
ssize_t PwriteFull(int fd, const void* buf, size_t n, off_t off);

std::string Errno(int err);  // "EIO (Input/output error)"
std::string Trim(const std::string& s);
std::string LastLine(const std::string& s);
std::string KernelRelease();

// The kernel log from a point on: Mark() skips what is there, Since() returns the records
// logged after it at warning level or worse that name device `needle` ("loop1", not "loop10").
class KernelLog {
 public:
  KernelLog();
  ~KernelLog();
  void Mark();
  std::vector<std::string> Since(const std::string& needle);

 private:
  int fd_ = -1;
};

}  // namespace stablefs::compare
