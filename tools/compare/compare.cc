// stablefsctl compare [--fs LIST] [--checks LIST] [--seconds N] [--json]
//                     [--stablefs-options OPTS]
//
// Runs the guarantee checks on each filesystem of LIST (default stablefs,ext4,xfs,btrfs,tmpfs; a
// path names a mount point someone else set up) and prints the table: rows are checks, columns
// filesystems, cells kept / broken / not measurable with a one-line reason; then the evidence.
// Everything it creates lives under a fresh /var/tmp/stablefs-compare-XXXXXX and is undone at the
// end, also after a failure or SIGINT/SIGTERM. Exit status: 0 every measured guarantee kept,
// 1 some broken, 8 an operational error, 130 interrupted.
#include "tools/compare/compare.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "tools/compare/crash.h"
#include "tools/compare/util.h"

namespace stablefs::compare {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void OnSignal(int) { g_interrupted = 1; }

// No SA_RESTART: a blocked wait returns EINTR and the tool gets on with tearing down.
void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

struct Row {
  const char* check;
  int group;  // the --checks number
  const char* title;
};
constexpr Row kRows[] = {
    {"stable-pages", 1, "1. Stable pages under rewrite (pwrite + fsync, mmap + msync)"},
    {"bit-flip", 2, "2a. Silent corruption: a bit flipped on the device"},
    {"misdirected-write", 2, "2b. Misdirected write: two blocks swapped"},
    {"torn-write", 2, "2c. Torn write: half a block replaced"},
    {"fsync-crash", 3, "3. fsync durability across a crash"},
    {"writeback-error", 4, "4. Writeback I/O error reaches fsync"},
    {"odirect-buffer-change", 5, "5. O_DIRECT from a buffer changed during the write"},
};

struct Options {
  std::vector<std::string> fs = {"stablefs", "ext4", "xfs", "btrfs", "tmpfs"};
  std::set<int> checks = {1, 2, 3, 4, 5};
  double seconds = 4;
  bool json = false;
  std::string stablefs_options;
  TestDamage test_damage = TestDamage::kNone;
};

void Usage() {
  std::fprintf(stderr,
               "usage: stablefsctl compare [--fs stablefs,ext4,xfs,btrfs,tmpfs,/MOUNTPOINT]\n"
               "                           [--checks 1,2,3,4,5] [--seconds N] [--json]\n"
               "                           [--stablefs-options OPTS]\n");
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string p;
  while (std::getline(ss, p, ',')) {
    if (!p.empty()) parts.push_back(p);
  }
  return parts;
}

bool ParseOptions(int argc, char** argv, Options* o) {
  for (int i = 2; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") {
      o->json = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (a == "--fs") {
      o->fs = Split(v);
    } else if (a == "--checks") {
      o->checks.clear();
      for (const std::string& c : Split(v)) o->checks.insert(std::atoi(c.c_str()));
    } else if (a == "--seconds") {
      o->seconds = std::atof(v.c_str());
      if (o->seconds <= 0) return false;
    } else if (a == "--stablefs-options") {
      o->stablefs_options = v;
    } else if (a == "--test-damage") {
      // Hidden, for the tests that prove a check can fail; stablefs only.
      if (v == "above-pi") {
        o->test_damage = TestDamage::kAbovePi;
      } else if (v == "drop-synced") {
        o->test_damage = TestDamage::kDropSynced;
      } else {
        return false;
      }
    } else {
      return false;
    }
  }
  if (o->test_damage != TestDamage::kNone && (o->fs.size() != 1 || o->fs[0] != "stablefs")) {
    std::fprintf(stderr, "stablefsctl: compare: --test-damage is for --fs stablefs only\n");
    return false;
  }
  return !o->fs.empty();
}

std::string Dirname(const std::string& p) { return p.substr(0, p.rfind('/')); }

// stablefs and mkfs.stablefs beside this binary, in its build tree's fs/, or on PATH.
Programs FindPrograms() {
  Programs progs;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  progs.self = n > 0 ? std::string(self, static_cast<size_t>(n)) : "stablefsctl";
  const std::string dir = Dirname(progs.self);
  progs.stablefs = "stablefs";
  for (const std::string& c : {dir + "/stablefs", Dirname(dir) + "/fs/stablefs"}) {
    if (access(c.c_str(), X_OK) == 0) {
      progs.stablefs = c;
      break;
    }
  }
  progs.mkfs = access((dir + "/mkfs.stablefs").c_str(), X_OK) == 0 ? dir + "/mkfs.stablefs"
                                                                   : "mkfs.stablefs";
  return progs;
}

bool OnPath(const std::string& prog) { return Run({"sh", "-c", "command -v \"$0\"", prog}) == 0; }

// Why a filesystem cannot be set up here, or "".
std::string Unavailable(const std::string& fs, const Programs& progs) {
  if (fs == "stablefs") {
    if (access("/dev/fuse", R_OK | W_OK) != 0) return "no /dev/fuse";
    if (!OnPath(progs.stablefs) || !OnPath(progs.mkfs)) return "stablefs programs not found";
    return "";
  }
  if (fs == "tmpfs") return "";
  if (fs != "ext4" && fs != "xfs" && fs != "btrfs") return "unknown filesystem";
  if (!OnPath("mkfs." + fs)) return "mkfs." + fs + " not installed";
  if (!OnPath("losetup")) return "losetup not installed";
  return "";
}

// Runs the selected checks on one filesystem; all its results, measured or not.
std::vector<Result> RunTarget(const std::string& fs, const Options& o, const Programs& progs,
                              const std::string& work) {
  std::vector<Result> results;
  auto fill = [&](Verdict v, const std::string& why) {
    std::set<std::string> have;
    for (const Result& r : results) have.insert(r.check);
    for (const Row& row : kRows) {
      if (o.checks.count(row.group) && !have.count(row.check)) {
        results.push_back(Result{row.check, fs, v, why, {}});
      }
    }
    return results;
  };
  if (fs[0] != '/') {
    std::string why = Unavailable(fs, progs);
    if (!why.empty()) return fill(Verdict::kNotMeasurable, why);
  }
  const std::string dir = work + "/" + (fs[0] == '/' ? "existing" : fs);
  mkdir(dir.c_str(), 0755);
  std::unique_ptr<Target> t;
  if (fs == "stablefs") {
    t = NewStablefsTarget(progs, dir, o.stablefs_options);
  } else if (fs[0] == '/') {
    t = NewExistingTarget(fs);
  } else {
    t = NewKernelTarget(fs, dir);
  }
  t->test_damage = o.test_damage;
  std::string err;
  if (!t->Setup(&err)) return fill(Verdict::kNotMeasurable, "setup failed: " + err);
  std::fprintf(stderr, "stablefsctl: compare: %s mounted at %s\n", fs.c_str(), t->mnt().c_str());
  if (o.checks.count(1) && !Interrupted()) results.push_back(CheckStablePages(t.get(), o.seconds));
  if (o.checks.count(5) && !Interrupted()) {
    results.push_back(CheckDirectIoBufferChange(t.get(), o.seconds));
  }
  if (o.checks.count(2) && !Interrupted()) {
    for (Result& r : CheckSilentCorruption(t.get())) results.push_back(r);
  }
  if (o.checks.count(3) && !Interrupted()) results.push_back(CheckCrashDurability(t.get()));
  if (o.checks.count(4) && !Interrupted()) {
    results.push_back(CheckWritebackError(t.get(), dir + "/small"));
  }
  return fill(Verdict::kNotMeasurable, "interrupted");
}

std::string Md(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string Json(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

const Result* Find(const std::vector<Result>& results, const std::string& check,
                   const std::string& fs) {
  for (const Result& r : results) {
    if (r.check == check && r.fs == fs) return &r;
  }
  return nullptr;
}

void PrintMarkdown(const Options& o, const std::vector<Result>& results) {
  std::printf("Kernel %s; timed workloads of %g s; `stablefsctl compare`.\n\n",
              KernelRelease().c_str(), o.seconds);
  std::printf("| check |");
  for (const std::string& fs : o.fs) std::printf(" %s |", Md(fs).c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < o.fs.size(); i++) std::printf("---|");
  std::printf("\n");
  for (const Row& row : kRows) {
    if (!o.checks.count(row.group)) continue;
    std::printf("| %s |", row.title);
    for (const std::string& fs : o.fs) {
      const Result* r = Find(results, row.check, fs);
      if (r == nullptr) {
        std::printf(" |");
        continue;
      }
      std::printf(" **%s**: %s |", VerdictName(r->verdict), Md(r->reason).c_str());
    }
    std::printf("\n");
  }
  std::printf("\nEvidence:\n\n");
  for (const Row& row : kRows) {
    for (const std::string& fs : o.fs) {
      const Result* r = Find(results, row.check, fs);
      if (r == nullptr || r->evidence.empty()) continue;
      std::printf("- %s, %s:", fs.c_str(), row.check);
      for (size_t i = 0; i < r->evidence.size(); i++) {
        std::printf("%s %s", i ? ";" : "", r->evidence[i].c_str());
      }
      std::printf("\n");
    }
  }
}

void PrintJson(const Options& o, const std::vector<Result>& results) {
  std::printf("{\"kernel\": %s, \"seconds\": %g, \"results\": [", Json(KernelRelease()).c_str(),
              o.seconds);
  for (size_t i = 0; i < results.size(); i++) {
    const Result& r = results[i];
    std::printf(
        "%s\n  {\"check\": %s, \"fs\": %s, \"verdict\": %s, \"reason\": %s, \"evidence\": [",
        i ? "," : "", Json(r.check).c_str(), Json(r.fs).c_str(),
        Json(VerdictName(r.verdict)).c_str(), Json(r.reason).c_str());
    for (size_t j = 0; j < r.evidence.size(); j++) {
      std::printf("%s%s", j ? ", " : "", Json(r.evidence[j]).c_str());
    }
    std::printf("]}");
  }
  std::printf("\n]}\n");
}

}  // namespace

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kKept:
      return "kept";
    case Verdict::kBroken:
      return "broken";
    case Verdict::kNotMeasurable:
      return "not measurable";
  }
  return "?";
}

bool Interrupted() { return g_interrupted != 0; }

int CompareMain(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--crash") != 0) continue;
    if (geteuid() != 0) {
      std::fprintf(stderr, "stablefsctl: compare --crash: needs root (mount, losetup, mkfs)\n");
      return 8;
    }
    InstallSignalHandlers();
    const Programs progs = FindPrograms();
    return crash::CrashMain(argc, argv, progs.self, progs.stablefs, progs.mkfs);
  }
  Options o;
  if (!ParseOptions(argc, argv, &o)) {
    Usage();
    return 8;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "stablefsctl: compare: needs root (mount, losetup, mkfs)\n");
    return 8;
  }
  InstallSignalHandlers();
  const Programs progs = FindPrograms();
  char tmpl[] = "/var/tmp/stablefs-compare-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::fprintf(stderr, "stablefsctl: compare: mkdtemp: %s\n", strerror(errno));
    return 8;
  }
  const std::string work = tmpl;
  std::vector<Result> results;
  for (const std::string& fs : o.fs) {
    if (Interrupted()) break;
    for (Result& r : RunTarget(fs, o, progs, work)) results.push_back(r);
  }
  // Every target unmounted itself; remove the directory only if nothing is left mounted in it.
  std::vector<std::string> left = MountsUnder(work);
  if (left.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  } else {
    std::fprintf(stderr, "stablefsctl: compare: %s still mounted; %s kept\n", left[0].c_str(),
                 work.c_str());
  }
  if (Interrupted()) {
    std::fprintf(stderr, "stablefsctl: compare: interrupted; everything torn down\n");
    return 130;
  }
  if (o.json) {
    PrintJson(o, results);
  } else {
    PrintMarkdown(o, results);
  }
  for (const Result& r : results) {
    if (r.verdict == Verdict::kBroken) return 1;
  }
  return 0;
}

}  // namespace stablefs::compare
