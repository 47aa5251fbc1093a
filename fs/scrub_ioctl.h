// The scrub ioctls: how stablefsctl scrub has a mounted filesystem's daemon scrub its store.
//
// The daemon holds the store's RocksDB lock, so a tool cannot open it; the daemon scrubs in a
// background thread (fs/scrub.h) and the tool polls its progress and then reads its report, a
// page of problems per call. An ABI between the daemon and its tools, as fs/stats.h's: fields are
// only ever added at the ends of the reserved space, and every size stays fixed.
#pragma once

#include <linux/ioctl.h>

#include <cstdint>

namespace stablefs {

// In: the rate. Out: the generation of the scrub started, to be named in the status requests.
struct StablefsScrubStart {
  uint64_t rate_bytes_per_sec;  // 0: no limit
  uint64_t generation;          // out
  uint64_t reserved[6];
};

// One problem of a scrub's report.
struct StablefsScrubRecord {
  uint64_t ino;
  uint64_t offset;
  uint64_t expected;  // when has_values
  uint64_t found;
  uint32_t has_values;
  uint32_t reserved;
  char field[24];  // NUL-terminated, as ScrubProblem::field
  char what[160];  // NUL-terminated, cut short if longer
  char path[256];  // NUL-terminated; empty if unknown or too long
};

inline constexpr uint32_t kScrubRecordsPerCall = 16;

// In: generation and first_problem. Out: the rest. A generation that is not the current one
// (another tool started a scrub since) gets ESTALE.
struct StablefsScrubStatus {
  uint64_t generation;     // in
  uint64_t first_problem;  // in: the index of records[0] in the report
  uint32_t state;          // out: a ScrubState
  uint32_t nrecords;       // out: records filled in
  uint64_t blocks_total;
  uint64_t blocks_checked;
  uint64_t bytes_checked;
  uint64_t problems;  // found so far; more than the report keeps if there were very many
  uint64_t elapsed_ns;
  char error[256];  // why it failed, NUL-terminated
  uint64_t reserved[8];
  StablefsScrubRecord records[kScrubRecordsPerCall];
};
// A restricted FUSE ioctl's size is 14 bits wide.
static_assert(sizeof(StablefsScrubStatus) < (1 << 14));

// Starts a scrub (EBUSY if one is running).
#define STABLEFS_IOC_SCRUB_START _IOWR('S', 3, stablefs::StablefsScrubStart)
// Progress and a page of the report of the scrub named.
#define STABLEFS_IOC_SCRUB_STATUS _IOWR('S', 4, stablefs::StablefsScrubStatus)
// Stops the running scrub (it ends "cancelled").
#define STABLEFS_IOC_SCRUB_CANCEL _IO('S', 5)

}  // namespace stablefs
