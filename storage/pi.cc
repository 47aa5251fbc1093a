// Protection information: profiles, tuple encoding, guard dispatch, tags, Generate and Verify.
//
// Generate writes one tuple per interval and Verify checks them in the kernel's order (reference
// tag, application tag, guard), honouring the Type 1 and Type 3 escapes as block/t10-pi.c does;
// together they uphold guarantees 1 and 2 for whatever buffers the caller hands over. The CRC
// guards go through a function pointer chosen on first use: the PCLMULQDQ code (crc_clmul.cc)
// when the CPU has it, else the tables (crc_portable.cc). Tests and benchmarks may force either.
#include "storage/pi.h"

#include <xxhash.h>

#include <atomic>
#include <cassert>
#include <cinttypes>
#include <cstdio>

#include "storage/coding.h"

namespace stablefs::pi {

// ---- Profile ----

namespace {

const char* GuardName(GuardKind g) {
  switch (g) {
    case GuardKind::kCrc16T10Dif:
      return "crc16-t10dif";
    case GuardKind::kCrc64Nvme:
      return "crc64-nvme";
    case GuardKind::kXxh3:
      return "xxh3";
  }
  return nullptr;
}

bool ParseGuard(std::string_view s, GuardKind* g) {
  for (GuardKind k : {GuardKind::kCrc16T10Dif, GuardKind::kCrc64Nvme, GuardKind::kXxh3}) {
    if (s == GuardName(k)) {
      *g = k;
      return true;
    }
  }
  return false;
}

}  // namespace

Status Profile::Validate() const {
  if (GuardName(guard) == nullptr) {
    return Status::InvalidArgument("PI profile: unknown guard " +
                                   std::to_string(static_cast<int>(guard)));
  }
  if (type != Type::kType1 && type != Type::kType3) {
    return Status::InvalidArgument("PI profile: unsupported type " +
                                   std::to_string(static_cast<int>(type)));
  }
  if (interval != 512 && interval != 4096) {
    return Status::InvalidArgument("PI profile: interval " + std::to_string(interval) +
                                   " is not 512 or 4096");
  }
  return Status::Ok();
}

std::string Profile::ToString() const {
  const char* g = GuardName(guard);
  std::string s = g != nullptr ? g : "guard" + std::to_string(static_cast<int>(guard));
  s += ",type";
  s += std::to_string(static_cast<int>(type));
  s += ',';
  s += std::to_string(interval);
  return s;
}

Status Profile::Parse(std::string_view text, Profile* out) {
  const auto bad = [text](const char* why) {
    std::string msg = "PI profile \"";
    msg.append(text.data(), text.size());
    msg += "\": ";
    msg += why;
    return Status::InvalidArgument(msg);
  };
  // Split on commas into at most three fields; an empty field (",,", a trailing comma) is then
  // rejected by the field's own check.
  std::string_view fields[3];
  size_t n = 0;
  for (std::string_view rest = text;;) {
    if (n == 3) return bad("too many fields");
    const size_t comma = rest.find(',');
    fields[n++] = rest.substr(0, comma);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }

  Profile p;
  if (!ParseGuard(fields[0], &p.guard)) {
    return bad("guard must be crc16-t10dif, crc64-nvme or xxh3");
  }
  size_t i = 1;
  if (i < n && fields[i].substr(0, 4) == "type") {
    if (fields[i] == "type1") {
      p.type = Type::kType1;
    } else if (fields[i] == "type3") {
      p.type = Type::kType3;
    } else {
      return bad("type must be type1 or type3");
    }
    i++;
  }
  if (i < n) {
    if (fields[i] == "512") {
      p.interval = 512;
    } else if (fields[i] == "4096") {
      p.interval = 4096;
    } else {
      return bad("interval must be 512 or 4096, after the type if any");
    }
    i++;
  }
  if (i != n) return bad("unexpected field after the interval");
  *out = p;
  return Status::Ok();
}

// ---- Tuples ----

void EncodeTuple(const Profile& p, const Tuple& t, void* dst) {
  char* d = static_cast<char*>(dst);
  if (p.guard == GuardKind::kCrc16T10Dif) {
    EncodeFixed16BE(d, static_cast<uint16_t>(t.guard));
    EncodeFixed16BE(d + 2, t.app_tag);
    EncodeFixed32BE(d + 4, static_cast<uint32_t>(t.ref_tag));
  } else {
    EncodeFixed64BE(d, t.guard);
    EncodeFixed16BE(d + 8, t.app_tag);
    EncodeFixed48BE(d + 10, t.ref_tag);
  }
}

Tuple DecodeTuple(const Profile& p, const void* src) {
  const char* s = static_cast<const char*>(src);
  Tuple t;
  if (p.guard == GuardKind::kCrc16T10Dif) {
    t.guard = DecodeFixed16BE(s);
    t.app_tag = DecodeFixed16BE(s + 2);
    t.ref_tag = DecodeFixed32BE(s + 4);
  } else {
    t.guard = DecodeFixed64BE(s);
    t.app_tag = DecodeFixed16BE(s + 8);
    t.ref_tag = DecodeFixed48BE(s + 10);
  }
  return t;
}

// ---- Guards and their dispatch ----

bool CpuHasClmul() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  }();
  return has;
#else
  return false;
#endif
}

bool CpuHasVpclmul() {
#if defined(__x86_64__) || defined(__i386__)
  // The compiler's CPU model reports AVX-512 only when the OS saves the 512-bit state (XCR0).
  static const bool has = [] {
    __builtin_cpu_init();
    return CpuHasClmul() && __builtin_cpu_supports("vpclmulqdq") &&
           __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return has;
#else
  return false;
#endif
}

bool CpuCanRun(CrcImpl impl) {
  switch (impl) {
    case CrcImpl::kPortable:
      return true;
    case CrcImpl::kClmul:
      return CpuHasClmul();
    case CrcImpl::kVpclmul:
      return CpuHasVpclmul();
  }
  return false;
}

namespace {

using Crc16Fn = uint16_t (*)(uint16_t, const void*, size_t);
using Crc64Fn = uint64_t (*)(uint64_t, const void*, size_t);

uint16_t Crc16Resolve(uint16_t crc, const void* data, size_t len);
uint64_t Crc64Resolve(uint64_t crc, const void* data, size_t len);

// Constant-initialized, so callers in other translation units' static initializers find the
// resolvers, which install the best implementation on first use.
std::atomic<Crc16Fn> g_crc16{&Crc16Resolve};
std::atomic<Crc64Fn> g_crc64{&Crc64Resolve};

Crc16Fn Crc16For(CrcImpl impl) {
  switch (impl) {
    case CrcImpl::kVpclmul:
      return &Crc16T10DifVpclmul;
    case CrcImpl::kClmul:
      return &Crc16T10DifClmul;
    case CrcImpl::kPortable:
      break;
  }
  return &Crc16T10DifPortable;
}

Crc64Fn Crc64For(CrcImpl impl) {
  switch (impl) {
    case CrcImpl::kVpclmul:
      return &Crc64NvmeVpclmul;
    case CrcImpl::kClmul:
      return &Crc64NvmeClmul;
    case CrcImpl::kPortable:
      break;
  }
  return &Crc64NvmePortable;
}

CrcImpl BestCrcImpl() {
  if (CpuHasVpclmul()) return CrcImpl::kVpclmul;
  return CpuHasClmul() ? CrcImpl::kClmul : CrcImpl::kPortable;
}

// Installs the implementation for this CPU unless one is installed already (by an earlier call or
// by SetCrcImplForTesting).
void InstallDefaultCrcs() {
  const CrcImpl best = BestCrcImpl();
  Crc16Fn r16 = &Crc16Resolve;
  g_crc16.compare_exchange_strong(r16, Crc16For(best), std::memory_order_acq_rel);
  Crc64Fn r64 = &Crc64Resolve;
  g_crc64.compare_exchange_strong(r64, Crc64For(best), std::memory_order_acq_rel);
}

uint16_t Crc16Resolve(uint16_t crc, const void* data, size_t len) {
  InstallDefaultCrcs();
  return g_crc16.load(std::memory_order_acquire)(crc, data, len);
}

uint64_t Crc64Resolve(uint64_t crc, const void* data, size_t len) {
  InstallDefaultCrcs();
  return g_crc64.load(std::memory_order_acquire)(crc, data, len);
}

}  // namespace

CrcImpl ActiveCrcImpl() {
  InstallDefaultCrcs();
  const Crc64Fn f = g_crc64.load(std::memory_order_acquire);
  if (f == &Crc64NvmeVpclmul) return CrcImpl::kVpclmul;
  return f == &Crc64NvmeClmul ? CrcImpl::kClmul : CrcImpl::kPortable;
}

void SetCrcImplForTesting(CrcImpl impl) {
  // An implementation the CPU lacks would fault; the precondition is the caller's, but fall back
  // to the tables rather than crash.
  assert(CpuCanRun(impl));
  if (!CpuCanRun(impl)) impl = CrcImpl::kPortable;
  g_crc16.store(Crc16For(impl), std::memory_order_release);
  g_crc64.store(Crc64For(impl), std::memory_order_release);
}

uint16_t Crc16T10Dif(uint16_t crc, const void* data, size_t len) {
  return g_crc16.load(std::memory_order_acquire)(crc, data, len);
}

uint64_t Crc64Nvme(uint64_t crc, const void* data, size_t len) {
  return g_crc64.load(std::memory_order_acquire)(crc, data, len);
}

uint64_t Xxh3(const void* data, size_t len) { return XXH3_64bits(data, len); }

uint64_t ComputeGuard(GuardKind g, const void* data, size_t len) {
  switch (g) {
    case GuardKind::kCrc16T10Dif:
      return Crc16T10Dif(0, data, len);
    case GuardKind::kCrc64Nvme:
      return Crc64Nvme(0, data, len);
    case GuardKind::kXxh3:
      return Xxh3(data, len);
  }
  assert(false && "unknown guard kind");
  return 0;
}

// ---- Tags ----

uint16_t AppTagForOwner(uint64_t ino) {
  // The low 16 bits of the inode, XORed with an even 16-bit hash of the rest, go through a
  // bijection of 16-bit values (odd multiplies and xorshifts). Inodes ino and ino + 1 therefore
  // always differ: within one block of 65536 their inputs differ by a value of the form 2^k - 1;
  // across a block boundary the inputs differ by an odd value, since the hash is even. The one
  // input that maps to the escape is moved to the image of itself XOR 0xAAAA, which neither kind
  // of neighbour can produce. This is part of the on-disk format: do not change it.
  uint64_t h = ino >> 16;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  const uint16_t x = static_cast<uint16_t>(ino ^ (h & 0xFFFE));
  const auto permute = [](uint16_t v) {
    uint32_t y = v;
    y = (y * 0x9E37u) & 0xFFFF;
    y ^= y >> 7;
    y = (y * 0x2C1Bu) & 0xFFFF;
    y ^= y >> 9;
    return static_cast<uint16_t>(y);
  };
  uint16_t tag = permute(x);
  if (tag == kAppTagEscape) tag = permute(static_cast<uint16_t>(x ^ 0xAAAA));
  return tag;
}

uint64_t RefTagFor(const Profile& p, uint64_t sector) {
  return p.type == Type::kType3 ? p.ref_tag_mask() : sector & p.ref_tag_mask();
}

// ---- Generate and Verify ----

void Generate(const Profile& p, const void* data, size_t len, uint64_t first_sector,
              uint16_t app_tag, void* tuples) {
  assert(len % p.interval == 0);
  const auto* d = static_cast<const unsigned char*>(data);
  auto* out = static_cast<unsigned char*>(tuples);
  const size_t n = len / p.interval;
  const size_t ts = p.tuple_size();
  for (size_t i = 0; i < n; i++) {
    Tuple t;
    t.guard = ComputeGuard(p.guard, d + i * p.interval, p.interval);
    t.app_tag = app_tag;
    t.ref_tag = RefTagFor(p, first_sector + i);
    EncodeTuple(p, t, out + i * ts);
  }
}

const char* FieldName(Field f) {
  switch (f) {
    case Field::kNone:
      return "none";
    case Field::kGuard:
      return "guard";
    case Field::kAppTag:
      return "application tag";
    case Field::kRefTag:
      return "reference tag";
  }
  return "unknown field";
}

bool Verify(const Profile& p, const void* data, size_t len, const void* tuples,
            uint64_t first_sector, uint16_t app_tag, Mismatch* m) {
  assert(len % p.interval == 0);
  const auto* d = static_cast<const unsigned char*>(data);
  const auto* in = static_cast<const unsigned char*>(tuples);
  const size_t n = len / p.interval;
  const size_t ts = p.tuple_size();
  const auto fail = [m](size_t i, Field f, uint64_t expected, uint64_t received) {
    if (m != nullptr) *m = Mismatch{i, f, expected, received};
    return false;
  };
  for (size_t i = 0; i < n; i++) {
    const Tuple t = DecodeTuple(p, in + i * ts);
    if (p.type == Type::kType1) {
      if (t.app_tag == kAppTagEscape) continue;
      const uint64_t ref = RefTagFor(p, first_sector + i);
      if (t.ref_tag != ref) return fail(i, Field::kRefTag, ref, t.ref_tag);
      if (t.app_tag != app_tag) return fail(i, Field::kAppTag, app_tag, t.app_tag);
    } else if (t.app_tag == kAppTagEscape && t.ref_tag == p.ref_tag_mask()) {
      continue;
    }
    const uint64_t guard = ComputeGuard(p.guard, d + i * p.interval, p.interval);
    if (t.guard != guard) return fail(i, Field::kGuard, guard, t.guard);
  }
  if (m != nullptr) *m = Mismatch{};
  return true;
}

std::string DescribeMismatch(const Profile& p, uint64_t ino, uint64_t data_offset,
                             const Mismatch& m) {
  const uint64_t offset = data_offset + uint64_t{m.interval} * p.interval;
  const bool t10 = p.guard == GuardKind::kCrc16T10Dif;
  int digits = 0;
  switch (m.field) {
    case Field::kGuard:
      digits = t10 ? 4 : 16;
      break;
    case Field::kAppTag:
      digits = 4;
      break;
    case Field::kRefTag:
      digits = t10 ? 8 : 12;
      break;
    case Field::kNone:
      break;
  }
  char buf[160];
  if (digits == 0) {
    std::snprintf(buf, sizeof(buf), "inode %" PRIu64 " offset %" PRIu64 ": no mismatch", ino,
                  offset);
  } else {
    std::snprintf(buf, sizeof(buf),
                  "inode %" PRIu64 " offset %" PRIu64 ": %s mismatch: expected 0x%0*" PRIx64
                  " received 0x%0*" PRIx64,
                  ino, offset, FieldName(m.field), digits, m.expected, digits, m.received);
  }
  return buf;
}

}  // namespace stablefs::pi
