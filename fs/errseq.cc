// ErrSeq: the compare-and-swap loops of lib/errseq.c.
#include "fs/errseq.h"

namespace stablefs {

void ErrSeq::Set(int err) {
  if (err <= 0 || static_cast<uint32_t>(err) > kErrnoMask) return;
  uint32_t old = value_.load(std::memory_order_acquire);
  for (;;) {
    uint32_t next = (old & ~(kErrnoMask | kSeen)) | static_cast<uint32_t>(err);
    // Only bump the counter if the last error was seen; otherwise nobody can tell them apart.
    if (old & kSeen) next += kCtrInc;
    if (next == old) return;
    if (value_.compare_exchange_weak(old, next, std::memory_order_acq_rel)) return;
  }
}

ErrSeq::Cursor ErrSeq::Sample() const {
  uint32_t old = value_.load(std::memory_order_acquire);
  // An error nobody has seen yet must still be reported to this new file.
  return (old & kSeen) ? old : 0;
}

bool ErrSeq::Check(Cursor since) const {
  uint32_t cur = value_.load(std::memory_order_acquire);
  return (cur | kSeen) != (since | kSeen);
}

int ErrSeq::CheckAndAdvance(Cursor* since) {
  uint32_t old = value_.load(std::memory_order_acquire);
  if (old == *since) return 0;
  // Mark the error seen so that the next one bumps the counter. If a new error races in, the
  // exchange fails and that error differs from *since, so the next call reports it.
  uint32_t next = old | kSeen;
  if (next != old) value_.compare_exchange_strong(old, next, std::memory_order_acq_rel);
  *since = next;
  return static_cast<int>(next & kErrnoMask);
}

}  // namespace stablefs
