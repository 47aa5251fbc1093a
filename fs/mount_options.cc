// Parsing of stablefs's -o options; see fs/mount_options.h.
//
// fuse_opt's own conversions ("%u", "%lf") are sscanf's: they take "-1" as 4294967295, ignore
// trailing garbage and accept "nan", which libfuse then converts to an integer timeout (undefined
// behaviour). So every option is a key here, and its value is parsed strictly.
#include "fs/mount_options.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace stablefs {

namespace {

enum Key {
  kHelp = 1,
  kStablePages,
  kDebugStable,
  kCacheSize,
  kWritebackExpireMs,
  kAttrTimeout,
  kDebugFaults,
  kDebugLoseWritebackErrors,
  kDebugPowerCut,
  kNokillprivV2,
  kNorecovery,
  kRo,
  kRw,
  kRelatime,
  kStrictatime,
  kNoatime,
  kAtime,
  kNodiratime,
  kDiratime,
  kLazytime,
};

const struct fuse_opt kOpts[] = {
    FUSE_OPT_KEY("stable_pages=", kStablePages),
    FUSE_OPT_KEY("debug_stable", kDebugStable),
    FUSE_OPT_KEY("cache_size=", kCacheSize),
    FUSE_OPT_KEY("writeback_expire_ms=", kWritebackExpireMs),
    FUSE_OPT_KEY("attr_timeout=", kAttrTimeout),
    FUSE_OPT_KEY("debug_faults", kDebugFaults),
    FUSE_OPT_KEY("debug_lose_writeback_errors", kDebugLoseWritebackErrors),
    FUSE_OPT_KEY("debug_power_cut=", kDebugPowerCut),
    FUSE_OPT_KEY("nokillpriv_v2", kNokillprivV2),
    FUSE_OPT_KEY("norecovery", kNorecovery),
    FUSE_OPT_KEY("noload", kNorecovery),
    FUSE_OPT_KEY("relatime", kRelatime),
    FUSE_OPT_KEY("strictatime", kStrictatime),
    FUSE_OPT_KEY("norelatime", kStrictatime),
    FUSE_OPT_KEY("noatime", kNoatime),
    FUSE_OPT_KEY("atime", kAtime),
    FUSE_OPT_KEY("nodiratime", kNodiratime),
    FUSE_OPT_KEY("diratime", kDiratime),
    FUSE_OPT_KEY("lazytime", kLazytime),
    FUSE_OPT_KEY("ro", kRo),
    FUSE_OPT_KEY("rw", kRw),
    FUSE_OPT_KEY("-h", kHelp),
    FUSE_OPT_KEY("--help", kHelp),
    FUSE_OPT_END};

struct ParseState {
  MountOptions* out;
  Status status;
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Decimal digits only, at most `max`.
bool ParseUnsigned(std::string_view text, uint64_t max, uint64_t* out) {
  if (text.empty()) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (!IsDigit(c)) return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// A finite, non-negative decimal such as "1", "0.5" or "1e-3". strtod alone would also take
// blanks, a sign, "inf", "nan" and hexadecimal.
bool ParseSeconds(std::string_view text, double* out) {
  if (text.empty() || !(IsDigit(text[0]) || text[0] == '.')) return false;
  for (char c : text) {
    if (!IsDigit(c) && c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+') return false;
  }
  const std::string copy(text);  // strtod needs a terminated string
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  // An overflow is infinite; an underflow is a timeout too short to matter, and allowed.
  if (end != copy.c_str() + copy.size() || !std::isfinite(v) || v < 0) return false;
  *out = v;
  return true;
}

// The value of "name=value".
std::string_view ValueOf(const char* arg) {
  std::string_view a(arg);
  size_t eq = a.find('=');
  return eq == std::string_view::npos ? std::string_view() : a.substr(eq + 1);
}

Status ParseOne(int key, const char* arg, MountOptions* o) {
  const std::string_view value = ValueOf(arg);
  switch (key) {
    case kStablePages:
      return ParseStablePolicy(value, &o->stable_pages);
    case kDebugStable:
      o->debug_stable = true;
      return Status::Ok();
    case kDebugFaults:
      o->debug_faults = true;
      return Status::Ok();
    case kNokillprivV2:
      o->nokillpriv_v2 = true;
      return Status::Ok();
    case kNorecovery:
      o->norecovery = true;
      return Status::Ok();
    case kRelatime:
      o->atime = AtimePolicy::kRelatime;
      return Status::Ok();
    case kStrictatime:
      o->atime = AtimePolicy::kStrict;
      return Status::Ok();
    case kNodiratime:
    case kDiratime:
      o->nodiratime = key == kNodiratime;
      return Status::Ok();
    case kLazytime:
      return Status::Ok();
    case kDebugLoseWritebackErrors:
      o->debug_lose_writeback_errors = true;
      return Status::Ok();
    case kCacheSize:
      if (!ParseSize(value, &o->cache_bytes)) {
        return Status::InvalidArgument("cache_size: not a size: " + std::string(value));
      }
      return Status::Ok();
    case kWritebackExpireMs: {
      uint64_t ms;
      if (!ParseUnsigned(value, std::numeric_limits<uint32_t>::max(), &ms)) {
        return Status::InvalidArgument("writeback_expire_ms: not a number of milliseconds: " +
                                       std::string(value));
      }
      o->writeback_expire_ms = static_cast<uint32_t>(ms);
      return Status::Ok();
    }
    case kDebugPowerCut: {
      uint64_t steps;
      if (!ParseUnsigned(value, std::numeric_limits<int64_t>::max(), &steps)) {
        return Status::InvalidArgument("debug_power_cut: not a number of steps: " +
                                       std::string(value));
      }
      o->debug_power_cut = static_cast<int64_t>(steps);
      return Status::Ok();
    }
    case kAttrTimeout:
      if (!ParseSeconds(value, &o->attr_timeout)) {
        return Status::InvalidArgument("attr_timeout: not a non-negative number of seconds: " +
                                       std::string(value));
      }
      return Status::Ok();
  }
  return Status::InvalidArgument("unknown option " + std::string(arg));
}

int OptProc(void* data, const char* arg, int key, struct fuse_args*) {
  ParseState* state = static_cast<ParseState*>(data);
  if (key == kHelp) {
    state->out->show_help = true;
    return 0;
  }
  if (key == FUSE_OPT_KEY_NONOPT && state->out->store.empty()) {
    state->out->store = arg;
    return 0;  // the first non-option is the store; the second (the mount point) stays for FUSE
  }
  if (key == FUSE_OPT_KEY_OPT || key == FUSE_OPT_KEY_NONOPT) return 1;  // FUSE's
  // ro and rw are FUSE's (the kernel enforces them); stablefs notes which came last.
  if (key == kRo || key == kRw) {
    state->out->read_only = key == kRo;
    return 1;
  }
  // libfuse knows noatime and atime (mount flags) but not the others.
  if (key == kNoatime || key == kAtime) {
    state->out->atime = key == kNoatime ? AtimePolicy::kNoatime : AtimePolicy::kRelatime;
    return 1;
  }
  Status s = ParseOne(key, arg, state->out);
  if (!s.ok()) {
    state->status = s;
    return -1;
  }
  return 0;
}

}  // namespace

bool ParseSize(std::string_view text, size_t* out) {
  unsigned shift = 0;
  if (!text.empty()) {
    switch (text.back()) {
      case 'G':
      case 'g':
        shift = 30;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'K':
      case 'k':
        shift = 10;
        break;
      default:
        break;
    }
  }
  if (shift != 0) text.remove_suffix(1);
  uint64_t v;
  if (!ParseUnsigned(text, std::numeric_limits<size_t>::max() >> shift, &v)) return false;
  *out = static_cast<size_t>(v << shift);
  return true;
}

Status ParseMountOptions(struct fuse_args* args, MountOptions* out) {
  ParseState state{out, Status::Ok()};
  if (fuse_opt_parse(args, &state, kOpts, OptProc) != 0) {
    if (!state.status.ok()) return state.status;
    return Status::InvalidArgument("");  // fuse_opt has said why on stderr
  }
  if (out->norecovery && !out->read_only) {
    return Status::InvalidArgument("norecovery: only with ro (the store is opened read-only)");
  }
  return Status::Ok();
}

std::string FormatMountOptions(const MountOptions& o) {
  char timeout[32];
  // 17 significant digits: strtod reads back the same double.
  std::snprintf(timeout, sizeof(timeout), "%.17g", o.attr_timeout);
  std::string s = std::string("stable_pages=") + StablePolicyName(o.stable_pages);
  if (o.debug_stable) s += ",debug_stable";
  s += ",cache_size=" + std::to_string(o.cache_bytes);
  s += ",writeback_expire_ms=" + std::to_string(o.writeback_expire_ms);
  s += ",attr_timeout=" + std::string(timeout);
  if (o.atime == AtimePolicy::kStrict) s += ",strictatime";
  if (o.atime == AtimePolicy::kNoatime) s += ",noatime";
  if (o.nodiratime) s += ",nodiratime";
  if (o.nokillpriv_v2) s += ",nokillpriv_v2";
  if (o.norecovery) s += ",norecovery";
  if (o.read_only) s += ",ro";
  if (o.debug_faults) s += ",debug_faults";
  if (o.debug_lose_writeback_errors) s += ",debug_lose_writeback_errors";
  if (o.debug_power_cut >= 0) s += ",debug_power_cut=" + std::to_string(o.debug_power_cut);
  return s;
}

}  // namespace stablefs
