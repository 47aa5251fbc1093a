#!/usr/bin/env python3
"""The peer benchmark: stablefs side by side with kernel and FUSE baselines, in one run.

    tools/bench/peers.py [--build DIR] [--targets a,b,...] [--reps N] [--size BYTES]
                         [--runtime SECONDS] [--files N] [--workdir DIR] [--json FILE] [--quick]

Every target is set up and torn down by this script, also on failure or Ctrl-C:
  stablefs          the daemon with default options (stable_pages=wait)
  stablefs-bounce   stable_pages=bounce
  stablefs-off      stable_pages=off (no stable pages: the store rejects what changed under it)
  passthrough-disk  libfuse's passthrough_ll over a directory beside the stablefs store (the same
                    durability work, no checksums, no cache of its own)
  passthrough-disk-posix  the same with -o xattr,default_permissions: extended attributes and
                    the kernel's permission checks, as stablefs has, cost the same FUSE requests
                    (a GETXATTR of security.capability before every write, a GETATTR of the parent
                    directory before every create and unlink)
  passthrough-tmpfs passthrough_ll over tmpfs (a FUSE filesystem doing no work of its own)
  null              libfuse's null: writes discarded, reads return zeros (the FUSE ceiling)
  ext4              ext4 on a loop device over a sparse file beside the store
  tmpfs             tmpfs
Targets are run in turn, each repetition on a fresh filesystem. Workloads (fio psync, and
meta_bench for metadata):
  seqwrite      1 MiB writes of --size bytes, fsync at the end             MB/s
  seqread       1 MiB reads of that file after a remount and drop_caches   MB/s
  randwrite     4 KiB writes at random offsets of a new file of size/4,
                fsync at the end                                          IOPS
  randread      4 KiB reads at random offsets of the seqwrite file after
                a remount, for --runtime seconds                          IOPS
  fdatasync     4 KiB random writes, fdatasync after each, one thread      IOPS
  fdatasync4    the same from four threads on four files (group commit)  IOPS
  rewrite       two threads rewriting 16 pages, fsync every 4 writes      IOPS and p99 latency
  create/stat/unlink  --files files in one directory (default 18000)      ops/s
  walk          lstat and read of every entry of a tree (depth 4, fan-out 6) after a remount
For FUSE daemons the script also samples CPU time (user+system) per GB written and read, and the
peak RSS (VmHWM) of the daemon. The table prints medians with min-max and the ratio of stablefs
(default options) to each baseline; --json writes everything measured. Timings are the machine's:
the script asserts nothing. Needs root (mounts, loop devices, drop_caches), fio, and the build's
stablefs, mkfs.stablefs, meta_bench, fuse_passthrough_ll and fuse_null.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ALL_TARGETS = ["stablefs", "stablefs-bounce", "stablefs-off", "passthrough-disk",
               "passthrough-disk-posix", "passthrough-tmpfs", "null", "ext4", "tmpfs"]
# The workloads in table order: name, unit, higher is better.
METRICS = [
    ("seqwrite", "MB/s", True), ("seqread", "MB/s", True),
    ("randwrite", "IOPS", True), ("randread", "IOPS", True),
    ("fdatasync", "IOPS", True), ("fdatasync4", "IOPS", True),
    ("rewrite", "IOPS", True), ("rewrite_p99", "us", False),
    ("create", "ops/s", True), ("stat", "ops/s", True), ("unlink", "ops/s", True),
    ("walk", "ops/s", True),
    ("cpu_write", "CPU s/GB", False), ("cpu_read", "CPU s/GB", False),
    ("peak_rss", "MiB", False),
]
BASELINES = ["passthrough-disk", "passthrough-disk-posix", "passthrough-tmpfs", "null", "ext4",
             "tmpfs"]


def log(msg):
    print(f"peers: {msg}", file=sys.stderr, flush=True)


def run(argv, timeout=600, check=True):
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def is_mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass  # not root: the kernel's cache stays, the remount still empties the daemon's


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Target:
    """A filesystem to measure: set up once per repetition, mounted and unmounted around cold
    reads, torn down at the end. path is where the workloads put their files."""

    has_dirs = True  # null serves a single file

    def __init__(self, name, work):
        self.name = name
        self.work = os.path.join(work, name)
        self.mnt = os.path.join(self.work, "mnt")
        self.daemon = None
        self.peak_rss = 0.0

    @property
    def path(self):
        return self.mnt

    def setup(self):
        os.makedirs(self.mnt, exist_ok=True)

    def mount(self):
        raise NotImplementedError

    def umount(self):
        if is_mounted(self.mnt):
            run(["umount", self.mnt], timeout=300)

    def teardown(self):
        try:
            self.umount()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def cold(self):
        self.umount()
        drop_caches()
        self.mount()


class FuseTarget(Target):
    """A FUSE daemon run in the foreground as our child, so we own its PID."""

    def start_daemon(self, argv):
        # passthrough_ll holds a descriptor per inode it knows: 20,000 files need more than the
        # usual soft limit. Every daemon gets the hard limit, alike.
        def raise_fd_limit():
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        self.daemon = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       text=True, preexec_fn=raise_fd_limit)
        deadline = time.monotonic() + 60
        while not is_mounted(self.mnt):
            if self.daemon.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited {self.daemon.returncode}: "
                                   f"{self.daemon.stderr.read().strip()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not mount {self.mnt} in 60 s")
            time.sleep(0.02)  # polling for the mount to appear; nothing signals it

    def umount(self):
        if self.daemon is None:
            return
        try:
            self.peak_rss = max(self.peak_rss, proc_hwm_mib(self.daemon.pid))
        except OSError:
            pass
        if is_mounted(self.mnt):
            run(["fusermount3", "-u", self.mnt], timeout=300, check=False)
        try:
            # Unmounting writes back every dirty page and syncs the store before the exit.
            self.daemon.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        finally:
            self.daemon = None


class Stablefs(FuseTarget):
    def __init__(self, name, work, bindir, policy):
        super().__init__(name, work)
        self.bindir = bindir
        self.policy = policy
        self.store = os.path.join(self.work, "store")

    def setup(self):
        super().setup()
        run([os.path.join(self.bindir, "tools", "mkfs.stablefs"), "-q", self.store])

    def mount(self):
        self.start_daemon([os.path.join(self.bindir, "fs", "stablefs"), "-f", "-o",
                           f"stable_pages={self.policy}", self.store, self.mnt])


class Passthrough(FuseTarget):
    def __init__(self, name, work, bindir, on_tmpfs, posix=False):
        super().__init__(name, work)
        self.binary = os.path.join(bindir, "tools", "bench", "fuse_passthrough_ll")
        self.on_tmpfs = on_tmpfs
        self.posix = posix
        self.source = os.path.join(self.work, "source")

    def setup(self):
        super().setup()
        os.makedirs(self.source, exist_ok=True)
        if self.on_tmpfs:
            run(["mount", "-t", "tmpfs", "-o", "size=8g", "tmpfs", self.source])

    def mount(self):
        extra = ",xattr,default_permissions" if self.posix else ""
        self.start_daemon([self.binary, "-f", "-o", f"source={self.source}{extra}", self.mnt])

    def teardown(self):
        try:
            self.umount()
            if self.on_tmpfs and is_mounted(self.source):
                run(["umount", self.source])
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


class Null(FuseTarget):
    has_dirs = False

    def __init__(self, name, work, bindir):
        super().__init__(name, work)
        self.binary = os.path.join(bindir, "tools", "bench", "fuse_null")
        self.mnt = os.path.join(self.work, "file")

    def setup(self):
        os.makedirs(self.work, exist_ok=True)
        open(self.mnt, "w").close()

    def mount(self):
        self.start_daemon([self.binary, "-f", self.mnt])


class Ext4Loop(Target):
    def __init__(self, name, work, size):
        super().__init__(name, work)
        self.image = os.path.join(self.work, "ext4.img")
        self.size = size
        self.loop = None

    def setup(self):
        super().setup()
        with open(self.image, "w") as f:
            f.truncate(max(4 * self.size, 4 << 30))
        self.loop = run(["losetup", "--find", "--show", self.image]).stdout.strip()
        run(["mkfs.ext4", "-q", "-F", self.loop])

    def mount(self):
        run(["mount", self.loop, self.mnt])

    def teardown(self):
        try:
            self.umount()
        finally:
            if self.loop:
                run(["losetup", "-d", self.loop], check=False)
                self.loop = None
            shutil.rmtree(self.work, ignore_errors=True)


class Tmpfs(Target):
    def mount(self):
        run(["mount", "-t", "tmpfs", "-o", "size=8g", "tmpfs", self.mnt])

    def cold(self):
        drop_caches()  # unmounting tmpfs would drop its files


def make_target(name, work, bindir, size):
    if name.startswith("stablefs"):
        return Stablefs(name, work, bindir, name.split("-")[1] if "-" in name else "wait")
    if name.startswith("passthrough"):
        return Passthrough(name, work, bindir, on_tmpfs=name.endswith("tmpfs"),
                           posix=name.endswith("posix"))
    if name == "null":
        return Null(name, work, bindir)
    if name == "ext4":
        return Ext4Loop(name, work, size)
    if name == "tmpfs":
        return Tmpfs(name, work)
    raise ValueError(f"unknown target {name} (known: {', '.join(ALL_TARGETS)})")


def fio(target, job, args, runtime_limit):
    """Runs one fio job on the target and returns its JSON result's first (grouped) job."""
    out = os.path.join(os.path.dirname(target.work), f"fio-{target.name}-{job}.json")
    argv = ["fio", f"--name={job}", "--ioengine=psync", "--output-format=json",
            f"--output={out}", "--group_reporting"] + args
    run(argv, timeout=runtime_limit)
    with open(out) as f:
        result = json.load(f)
    os.unlink(out)
    return result["jobs"][0]


def file_arg(target, name):
    return target.path if not target.has_dirs else os.path.join(target.path, name)


def measure(target, opts):
    """Runs every workload once on a mounted target; returns {metric: value}."""
    m = {}
    limit = opts.runtime * 20 + 600
    pid = lambda: target.daemon.pid if target.daemon else None
    size = opts.size if target.has_dirs else min(opts.size, 4 << 30)

    cpu0 = proc_cpu_seconds(pid()) if pid() else None
    j = fio(target, "seqwrite", [f"--filename={file_arg(target, 'seq')}", "--rw=write",
                                 "--bs=1M", f"--size={size}", "--end_fsync=1"], limit)
    m["seqwrite"] = j["write"]["bw_bytes"] / 1e6
    if cpu0 is not None:
        m["cpu_write"] = (proc_cpu_seconds(pid()) - cpu0) / (size / 1e9)

    target.cold()
    cpu0 = proc_cpu_seconds(pid()) if pid() else None
    j = fio(target, "seqread", [f"--filename={file_arg(target, 'seq')}", "--rw=read", "--bs=1M",
                                f"--size={size}"], limit)
    m["seqread"] = j["read"]["bw_bytes"] / 1e6
    if cpu0 is not None:
        m["cpu_read"] = (proc_cpu_seconds(pid()) - cpu0) / (size / 1e9)

    j = fio(target, "randwrite", [f"--filename={file_arg(target, 'rand')}", "--rw=randwrite",
                                  "--bs=4k", f"--size={size // 4}", "--end_fsync=1"], limit)
    m["randwrite"] = j["write"]["iops"]

    target.cold()
    j = fio(target, "randread", [f"--filename={file_arg(target, 'seq')}", "--rw=randread",
                                 "--bs=4k", f"--size={size}", f"--runtime={opts.runtime}",
                                 "--time_based"], limit)
    m["randread"] = j["read"]["iops"]

    j = fio(target, "fdatasync", [f"--filename={file_arg(target, 'sync')}", "--rw=randwrite",
                                  "--bs=4k", "--size=64m", "--fdatasync=1",
                                  f"--runtime={opts.runtime}", "--time_based"], limit)
    m["fdatasync"] = j["write"]["iops"]

    if target.has_dirs:
        j = fio(target, "fdatasync4", [f"--directory={target.path}", "--numjobs=4",
                                       "--rw=randwrite", "--bs=4k", "--size=16m",
                                       "--fdatasync=1", f"--runtime={opts.runtime}",
                                       "--time_based"], limit)
        m["fdatasync4"] = j["write"]["iops"]

    j = fio(target, "rewrite", [f"--filename={file_arg(target, 'hot')}", "--numjobs=2",
                                "--rw=randwrite", "--bs=4k", "--size=64k", "--fsync=4",
                                f"--runtime={opts.runtime}", "--time_based"], limit)
    m["rewrite"] = j["write"]["iops"]
    m["rewrite_p99"] = j["write"]["clat_ns"]["percentile"]["99.000000"] / 1000

    if target.has_dirs:
        for name in ("seq", "rand", "sync", "hot"):
            if os.path.exists(os.path.join(target.path, name)):
                os.unlink(os.path.join(target.path, name))
        for entry in os.listdir(target.path):
            if entry.startswith("fdatasync4"):
                os.unlink(os.path.join(target.path, entry))
        files = os.path.join(target.path, "files")
        os.mkdir(files)
        out = run([opts.meta_bench, "files", files, str(opts.files)], timeout=limit).stdout
        for line in out.splitlines():
            r = json.loads(line)
            m[r["phase"]] = r["ops_per_s"]
        os.rmdir(files)
        tree = os.path.join(target.path, "tree")
        os.mkdir(tree)
        run([opts.meta_bench, "mktree", tree, "4", "6"], timeout=limit)
        target.cold()
        r = json.loads(run([opts.meta_bench, "walk", tree], timeout=limit).stdout)
        m["walk"] = r["ops_per_s"]
    return m


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def summarize(samples):
    """samples: {target: {metric: [values]}} -> {target: {metric: {median, min, max}}}."""
    out = {}
    for t, metrics in samples.items():
        out[t] = {k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                  for k, v in metrics.items() if v}
    return out


def table(summary, targets):
    lines = []
    head = ["workload", "unit"] + targets
    ratio_cols = [b for b in BASELINES if b in targets] if "stablefs" in targets else []
    head += [f"stablefs/{b}" for b in ratio_cols]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for metric, unit, _ in METRICS:
        row = [metric, unit]
        present = False
        for t in targets:
            s = summary.get(t, {}).get(metric)
            if s:
                present = True
                spread = f" ({fmt(s['min'])}-{fmt(s['max'])})" if s["min"] != s["max"] else ""
                row.append(fmt(s["median"]) + spread)
            else:
                row.append("-")
        for b in ratio_cols:
            a, base = summary["stablefs"].get(metric), summary.get(b, {}).get(metric)
            row.append(f"{a['median'] / base['median']:.2f}x" if a and base and base["median"]
                       else "-")
        if present:
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(here, "..", "..", "build"))
    p.add_argument("--targets", default=",".join(ALL_TARGETS))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--size", type=int, default=1 << 30, help="seqwrite bytes (default 1 GiB)")
    p.add_argument("--runtime", type=int, default=10, help="seconds of timed jobs (default 10)")
    # 20,000 is the workload's size, but passthrough_ll keeps a descriptor per inode the kernel
    # knows, and a process here may hold at most 20,000 (a hard limit root cannot raise without
    # CAP_SYS_RESOURCE): the default leaves it room.
    p.add_argument("--files", type=int, default=18000, help="create/stat/unlink (default 18000)")
    p.add_argument("--workdir", default="/var/tmp/stablefs-bench",
                   help="stores, loop images, mount points (default /var/tmp/stablefs-bench)")
    p.add_argument("--json", help="write every sample and the summary here")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 64 MiB, 1 s jobs, 500 files, one repetition")
    opts = p.parse_args()
    if opts.quick:
        opts.size, opts.runtime, opts.files, opts.reps = 64 << 20, 1, 500, 1
    opts.build = os.path.abspath(opts.build)
    opts.meta_bench = os.path.join(opts.build, "tools", "bench", "meta_bench")
    targets = [t for t in opts.targets.split(",") if t]
    for t in targets:
        if t not in ALL_TARGETS:
            p.error(f"unknown target {t} (known: {', '.join(ALL_TARGETS)})")
    if shutil.which("fio") is None:
        p.error("fio is missing (apt-get install fio, or tools/install-deps.sh)")

    # SIGTERM tears down like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(opts.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="run-", dir=opts.workdir)
    samples = {t: {} for t in targets}
    failures = []
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        for rep in range(opts.reps):
            for name in targets:
                target = make_target(name, work, opts.build, opts.size)
                log(f"repetition {rep + 1}/{opts.reps}: {name}")
                m = {}
                try:
                    target.setup()
                    target.mount()
                    m = measure(target, opts)
                    target.umount()
                    if target.peak_rss:
                        m["peak_rss"] = target.peak_rss
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                    # One target failing a workload does not end the run: say so and go on.
                    log(f"{name}: {e}")
                    failures.append(f"{name} (repetition {rep + 1}): {e}")
                finally:
                    target.teardown()
                for k, v in m.items():
                    samples[name].setdefault(k, []).append(v)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = summarize(samples)
    header = (f"kernel {platform.release()}, {os.cpu_count()} CPUs, {started}, "
              f"{opts.reps} repetition(s), seq size {opts.size >> 20} MiB, "
              f"timed jobs {opts.runtime} s, {opts.files} files")
    print(header)
    print(table(summary, targets))
    for f in failures:
        print(f"failed: {f}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"header": header, "options": vars(opts), "samples": samples,
                       "summary": summary, "failures": failures}, f, indent=1)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
