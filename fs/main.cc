// stablefs: mounts a store.
//
//   stablefs [-f] [-d] [-s] [-o opt[,opt...]] STORE MOUNTPOINT
//
// stablefs options (every other -o option goes to FUSE: allow_other, default_permissions, ...):
//   stable_pages=wait|bounce|off  how pages stay stable under writeback. Default: wait.
//   debug_stable                  mprotect pages under writeback; report and abort on a write
//                                 that skipped the wait. Default: off.
//   cache_size=N[K|M|G]           page cache size. Default: 256M.
//   writeback_expire_ms=N         age at which dirty data is written back. Default: 5000.
//   attr_timeout=SECONDS          how long the kernel caches attributes and names. Default: 1.
//   relatime|strictatime|noatime  when reads update access times. Default: relatime.
//   nodiratime                    directories' access times are not updated. Default: off.
//   nokillpriv_v2                 suid/sgid clearing left to the kernel (fs/fuse_transport.h).
//   norecovery (noload)           with ro: the store is opened read-only, nothing is written to
//                                 it (no WAL replay written back, no orphan reclaimed). Default:
//                                 off.
//   debug_faults                  the store fails writes, syncs or reads on demand (stablefsctl
//                                 inject). Default: off.
//   debug_lose_writeback_errors   fsync forgets writeback errors (for testing checkers only).
//                                 Default: off.
//   debug_power_cut=N             the power is cut below the store after N more writes or syncs
//                                 of its files, and at exit the files become what the cut left
//                                 (fs/mount_options.h; for crash tests only). Default: off.
// -f stays in the foreground; -d prints FUSE requests (implies -f); -s runs single-threaded.
// Default: daemonize and serve with several threads. default_permissions is always on.
//
// Unmounting (fusermount3 -u, umount) or SIGTERM/SIGINT ends the session; then every dirty page
// is written back, the store is synced and closed, and the exit status is 0. Errors before the
// mount (a missing or locked store, a bad option) are one line on stderr and exit status 1, also
// when daemonizing: the parent waits for the mount to succeed or fail.
#include <fcntl.h>
#include <rocksdb/env.h>
#include <signal.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "fs/fuse_ops.h"
#include "fs/mount_options.h"
#include "storage/crash_file_system.h"
#include "storage/fault_block_store.h"
#include "storage/log.h"
#include "storage/rocks_block_store.h"

namespace {

using stablefs::Status;

// Set once the daemon has left the terminal (stderr is /dev/null from then on).
std::atomic<bool> detached{false};

void Usage(const char* prog) {
  std::printf(
      "usage: %s [-f] [-d] [-s] [-o opt[,opt...]] STORE MOUNTPOINT\n\n"
      "stablefs options:\n"
      "    -o stable_pages=wait|bounce|off  stable pages policy (default: wait)\n"
      "    -o debug_stable                  mprotect pages under writeback (default: off)\n"
      "    -o cache_size=N[K|M|G]           page cache size (default: 256M)\n"
      "    -o writeback_expire_ms=N         dirty data age before writeback (default: 5000)\n"
      "    -o attr_timeout=SECONDS          kernel attribute cache time (default: 1)\n"
      "    -o relatime|strictatime|noatime  access time updates (default: relatime)\n"
      "    -o nodiratime                    no access time updates of directories (default: off)\n"
      "    -o nokillpriv_v2                 leave suid/sgid clearing to the kernel (default:\n"
      "                                     FUSE_HANDLE_KILLPRIV_V2 when the kernel offers it)\n"
      "    -o norecovery                    with ro: open the store read-only (default: off)\n"
      "    -o debug_faults                  accept stablefsctl inject (default: off)\n"
      "    -o debug_lose_writeback_errors   forget writeback errors, to test checkers\n"
      "                                     (default: off)\n"
      "    -o debug_power_cut=N             cut the power below the store after N of its\n"
      "                                     writes and syncs, for crash tests (default: off)\n\n",
      prog);
  fuse_cmdline_help();
  fuse_lowlevel_help();
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "stablefs: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
  stablefs::MountOptions cfg;
  if (Status s = stablefs::ParseMountOptions(&args, &cfg); !s.ok()) {
    return s.message().empty() ? 1 : Fail(s.message());
  }
  struct fuse_cmdline_opts cmd;
  if (fuse_parse_cmdline(&args, &cmd) != 0) return 1;
  if (cfg.show_help || cmd.show_help) {
    Usage(argv[0]);
    return 0;
  }
  if (cmd.show_version) {
    std::printf("stablefs 0.1, FUSE library %s\n", fuse_pkgversion());
    return 0;
  }
  if (cfg.store.empty() || cmd.mountpoint == nullptr) {
    Usage(argv[0]);
    return Fail("STORE and MOUNTPOINT are required");
  }
  // The daemon leaves its working directory for "/" when it detaches, and RocksDB opens files
  // of the store long after Open(): a relative store path would name files that are not there.
  cfg.store = std::filesystem::absolute(cfg.store).lexically_normal().string();

  stablefs::FilesystemOptions fs_options;
  fs_options.store_path = cfg.store;
  fs_options.cache.stable_pages = cfg.stable_pages;
  fs_options.cache.debug_readonly = cfg.debug_stable;
  fs_options.cache.cache_bytes = cfg.cache_bytes;
  fs_options.cache.dirty_expire_ms = cfg.writeback_expire_ms;
  fs_options.cache.debug_lose_writeback_errors = cfg.debug_lose_writeback_errors;
  // A read-only mount updates no access times (the kernel's touch_atime skips them too).
  fs_options.atime = cfg.read_only ? stablefs::AtimePolicy::kNoatime : cfg.atime;
  fs_options.nodiratime = cfg.nodiratime;
  if (fs_options.cache.stable_pages == stablefs::StablePolicy::kOff) {
    std::fprintf(stderr,
                 "stablefs: WARNING: stable_pages=off: pages may change after their protection "
                 "information is generated; the store will reject such writes and their data "
                 "will be lost. Use it only to reproduce that failure.\n");
  }
  fuse_opt_add_arg(&args, "-odefault_permissions");
  // The mount's source and type: STORE and fuse.stablefs unless the caller names the source
  // (fsname=, as mount.fuse.stablefs does for xfstests, which wants exactly its device name and
  // type fuse).
  bool named = false;
  for (int i = 0; i < args.argc; i++) {
    named |= std::strstr(args.argv[i], "fsname=") != nullptr;
  }
  if (!named) {
    fuse_opt_add_arg(&args, ("-ofsname=" + cfg.store).c_str());
    fuse_opt_add_arg(&args, "-osubtype=stablefs");
  }

  // Daemonize first (RocksDB's threads do not survive a fork), but let the parent report the
  // outcome of the mount and exit with it.
  int ready_pipe[2] = {-1, -1};
  if (!cmd.foreground) {
    if (pipe(ready_pipe) != 0) return Fail(std::string("pipe: ") + strerror(errno));
    pid_t pid = fork();
    if (pid < 0) return Fail(std::string("fork: ") + strerror(errno));
    if (pid > 0) {
      close(ready_pipe[1]);
      char c = 1;
      if (read(ready_pipe[0], &c, 1) == 1 && c == 0) _exit(0);
      int status = 0;
      waitpid(pid, &status, 0);
      _exit(WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1);
    }
    close(ready_pipe[0]);
    setsid();
    // The daemon logs to syslog. Until it leaves the terminal, errors and warnings also go to
    // stderr, beside the mount command; informational lines (orphans reclaimed at mount) only to
    // syslog, as a kernel filesystem's go to the kernel log rather than to mount(8)'s output.
    openlog("stablefs", LOG_PID, LOG_DAEMON);
    stablefs::SetLogSinkForTesting([](stablefs::LogLevel level, const std::string& line) {
      const int priority = level == stablefs::LogLevel::kError     ? LOG_ERR
                           : level == stablefs::LogLevel::kWarning ? LOG_WARNING
                                                                   : LOG_INFO;
      syslog(priority, "%s", line.c_str());
      if (level != stablefs::LogLevel::kInfo && !detached.load(std::memory_order_relaxed)) {
        std::fprintf(stderr, "stablefs: %s\n", line.c_str());
      }
    });
  }

  // A store still held by a daemon that is finishing its unmount is waited for, up to 10 s.
  std::unique_ptr<stablefs::RocksBlockStore> store;
  stablefs::RocksOptions rocks_options;
  rocks_options.busy_wait_ms = 10000;
  rocks_options.read_only = cfg.norecovery;
  // -o debug_power_cut: the store's files go through a power-cut model (outliving the store).
  std::shared_ptr<stablefs::CrashFileSystem> power;
  std::unique_ptr<rocksdb::Env> power_env;
  if (cfg.debug_power_cut >= 0) {
    power = std::make_shared<stablefs::CrashFileSystem>();
    power_env = rocksdb::NewCompositeEnv(power);
    rocks_options.env = power_env.get();
  }
  Status s = stablefs::RocksBlockStore::Open(cfg.store, rocks_options, &store);
  if (!s.ok()) return Fail(s.ToString());
  uint64_t steps_at_mount = 0;
  if (power != nullptr) {
    steps_at_mount = power->steps();
    power->CutPowerAfter(static_cast<uint64_t>(cfg.debug_power_cut));
  }
  // -o debug_faults: the store is reached through a fault injector (stablefsctl inject).
  std::unique_ptr<stablefs::BlockStore> top;
  stablefs::FaultBlockStore* faults = nullptr;
  if (cfg.debug_faults) {
    auto f = std::make_unique<stablefs::FaultBlockStore>(std::move(store), /*undo_log=*/false);
    faults = f.get();
    top = std::move(f);
  } else {
    top = std::move(store);
  }
  std::unique_ptr<stablefs::Filesystem> fs;
  s = stablefs::Filesystem::Open(top.get(), fs_options, &fs);
  if (!s.ok()) return Fail(s.ToString());

  // The scrub reads the store only; it ends before the filesystem shuts down.
  auto scrubber = std::make_unique<stablefs::Scrubber>(top.get());
  stablefs::FuseContext ctx;
  ctx.fs = fs.get();
  ctx.scrubber = scrubber.get();
  ctx.faults = faults;
  ctx.attr_timeout = ctx.entry_timeout = cfg.attr_timeout;
  struct fuse_session* se =
      fuse_session_new(&args, stablefs::StablefsLowlevelOps(), sizeof(fuse_lowlevel_ops), &ctx);
  if (se == nullptr) return Fail("cannot create the FUSE session (see the message above)");
  ctx.se = se;
  if (fuse_set_signal_handlers(se) != 0) return Fail("cannot install signal handlers");
  if (fuse_session_mount(se, cmd.mountpoint) != 0) {
    return Fail(std::string("cannot mount on ") + cmd.mountpoint);
  }
  stablefs::TransportCounters transport;
  transport.offer_killpriv_v2 = !cfg.nokillpriv_v2;
  ctx.transport = &transport;
  if (int e = stablefs::AttachDevFuseTransport(se, &ctx); e != 0) {
    fuse_session_unmount(se);
    return Fail(std::string("cannot attach the /dev/fuse transport: ") + strerror(-e));
  }
  if (!cmd.foreground) {
    // Mounted: tell the parent, and leave the terminal.
    detached.store(true, std::memory_order_relaxed);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      if (devnull > 2) close(devnull);
    }
    if (chdir("/") != 0) {
    }
    char ok = 0;
    if (write(ready_pipe[1], &ok, 1) != 1) {
    }
    close(ready_pipe[1]);
  }

  int loop;
  if (cmd.singlethread) {
    loop = fuse_session_loop(se);
  } else {
    struct fuse_loop_config* lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(lc, cmd.clone_fd);
    // -o max_idle_threads is UINT_MAX when not given, which libfuse 3.14 reports as an invalid
    // value on every mount: leave its default then. -o max_threads defaults to 10.
    if (cmd.max_idle_threads != UINT_MAX) fuse_loop_cfg_set_idle_threads(lc, cmd.max_idle_threads);
    fuse_loop_cfg_set_max_threads(lc, cmd.max_threads);
    loop = fuse_session_loop_mt(se, lc);
    fuse_loop_cfg_destroy(lc);
  }
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);

  scrubber.reset();  // cancels a running scrub and waits for it
  // Write back and sync everything before the store closes.
  s = fs->Shutdown();
  fs.reset();
  top.reset();
  if (power != nullptr) {
    // The store is closed: its files become what the power cut left (now, if it never came).
    const bool cut = !power->powered();
    const uint64_t steps = power->steps() - steps_at_mount;
    Status r = power->RecoverFromPowerCut();
    stablefs::Log(stablefs::LogLevel::kWarning,
                  "debug_power_cut: the power was cut %s (%llu steps since the store opened); the "
                  "store's files are now what it left%s%s",
                  cut ? "as asked" : "at the exit", static_cast<unsigned long long>(steps),
                  r.ok() ? "" : ": ", r.ok() ? "" : r.ToString().c_str());
    if (!r.ok()) return 1;
  }
  free(cmd.mountpoint);
  fuse_opt_free_args(&args);
  if (!s.ok()) {
    stablefs::Log(stablefs::LogLevel::kError, "unmount: %s", s.ToString().c_str());
    return 1;
  }
  return loop < 0 ? 1 : 0;
}
