// StablePolicy: how the page cache keeps a page unchanged from PI generation to the store's
// acknowledgement (guarantee 1), and the debug check that catches a write that skipped it.
//
//   wait    (default) writers (WriteBegin) and write faults (PageMkwrite) wait on writeback
//           (WaitStable), as the kernel does for devices that ask for stable writes; truncate,
//           hole punching and invalidation wait too.
//   bounce  writeback copies each page into a bounce buffer under the page lock and generates PI
//           over the copy; writers do not wait, and a page they change is redirtied and written
//           again later.
//   off     no wait and no copy. It exists to reproduce the 2011 DIF/DIX failure on demand: a
//           writer that scribbles on a page under writeback makes the store reject the write with
//           a protection error. Never the default; the daemon warns loudly.
//
// debug (any policy): the buffer being checksummed (the page, or the bounce copy) is made
// read-only with mprotect from StartWriteback to EndWriteback, as the set_memory_ro trick of the
// 2011 thread, so a write that skipped the wait faults with a report naming inode and page instead
// of corrupting silently. Under `off`, a write fault through a mapping on a page under writeback is
// reported the same way.
#pragma once

#include <string_view>

#include "storage/status.h"

namespace stablefs {

enum class StablePolicy { kWait, kBounce, kOff };

const char* StablePolicyName(StablePolicy p);  // "wait", "bounce", "off"
Status ParseStablePolicy(std::string_view text, StablePolicy* out);

}  // namespace stablefs
