// open_probe STORE: opens a store as a separate process would and prints the status. Exit status
// 0 if it opened, 2 if it was Busy, 1 otherwise. The lock test runs it with exec, not fork: a
// forked child of a process with RocksDB's threads may deadlock (and does under TSan).
#include <cstdio>

#include "storage/rocks_block_store.h"

int main(int argc, char** argv) {
  if (argc != 2) return 1;
  std::unique_ptr<stablefs::RocksBlockStore> store;
  stablefs::Status s = stablefs::RocksBlockStore::Open(argv[1], stablefs::RocksOptions(), &store);
  std::printf("%s\n", s.ToString().c_str());
  return s.ok() ? 0 : s.IsBusy() ? 2 : 1;
}
