// The helpers the subcommands share (tools/ctl/ctl.h): failing with a message, opening a store,
// resolving a path in it.
#include <cstdio>
#include <string>

#include "storage/format.h"
#include "tools/ctl/ctl.h"

namespace stablefs::ctl {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "stablefsctl: %s\n", msg.c_str());
  return kError;
}

Status OpenStore(const std::string& path, std::unique_ptr<RocksBlockStore>* store) {
  RocksOptions options;
  options.busy_wait_ms = 10000;  // a daemon may still be finishing its unmount
  return RocksBlockStore::Open(path, options, store);
}

Status Resolve(BlockStore* store, const std::string& path, uint64_t* ino) {
  *ino = kRootIno;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    std::string name = path.substr(pos, next - pos);
    pos = next + 1;
    if (name.empty() || name == ".") continue;
    std::string v;
    Status s = store->Get(Space::kDirent, NameKey(*ino, name), &v);
    if (s.IsNotFound()) return Status::NotFound(path + ": no entry '" + name + "'");
    STABLEFS_RETURN_IF_ERROR(s);
    DirentRecord d;
    STABLEFS_RETURN_IF_ERROR(d.DecodeFrom(v));
    *ino = d.ino;
  }
  return Status::Ok();
}

}  // namespace stablefs::ctl
