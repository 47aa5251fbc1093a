// FUZZ_CHECK: a property a fuzz target asserts. A failure prints the condition and aborts, so
// libFuzzer keeps the input as a crash artifact, in every build mode (assert() is compiled out
// of release builds).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
