// ErrSeq: a writeback error cursor that every open file observes once, as the kernel's errseq_t.
//
// Guarantee 4 lives here. A mapping (and the store as a whole) records each writeback error in
// an ErrSeq; each open file samples it at open; fsync calls CheckAndAdvance with the file's
// sample, which reports an error that happened since the sample and advances the file's cursor,
// so every file that was open when the error happened sees it at its next fsync, once.
//
// The value packs, as lib/errseq.c does: the latest error code in the low 12 bits (the kernel keeps
// an errno; the page cache keeps a Status code, fs/page_cache.h), a "seen" flag, and a counter
// above it that is bumped when a new error arrives after the previous one was seen. A
// file opened after an unseen error still sees it (Sample returns 0 then).
#pragma once

#include <atomic>
#include <cstdint>

namespace stablefs {

class ErrSeq {
 public:
  using Cursor = uint32_t;

  // Records error `err` (a positive code below 4096). Lock-free.
  void Set(int err);
  // The cursor a newly opened file starts from.
  Cursor Sample() const;
  // Returns the code recorded since *since (0 if none) and advances *since to now.
  int CheckAndAdvance(Cursor* since);
  // Whether an error was recorded since `since`, without advancing.
  bool Check(Cursor since) const;

 private:
  static constexpr uint32_t kErrnoBits = 12;
  static constexpr uint32_t kErrnoMask = (1u << kErrnoBits) - 1;
  static constexpr uint32_t kSeen = 1u << kErrnoBits;
  static constexpr uint32_t kCtrInc = 1u << (kErrnoBits + 1);

  std::atomic<uint32_t> value_{0};
};

}  // namespace stablefs
