// mkfs.stablefs: creates a stablefs store (a directory) with its superblock and root directory.
//
//   mkfs.stablefs [-p GUARD[,typeN][,INTERVAL]] [-q] STORE
//
// -p, --pi   protection format. GUARD is crc16-t10dif (8-byte T10 tuples), crc64-nvme (16-byte
//            NVMe tuples) or xxh3 (16-byte tuples, XXH3-64 guard); typeN is type1 (reference and
//            application tags checked) or type3 (guard only); INTERVAL is 512 or 4096.
//            Default: crc64-nvme,type1,4096.
// --root-owner UID:GID  owner of the root directory. Default: the caller's uid and gid.
// --format-version N  2 (runs of blocks written once to segment files) or 1 (every block in the
//            RocksDB data family, readable by builds from before version 2). Default: 2.
// -q, --quiet  print nothing on success. Default: print the store's identity.
//
// STORE must be missing or an empty directory. Exit status: 0 on success, 1 on a usage error or
// failure, with one line on stderr saying why.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "storage/rocks_block_store.h"

namespace {

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: mkfs.stablefs [-p GUARD[,typeN][,INTERVAL]] [--root-owner UID:GID] "
               "[--format-version N] [-q] STORE\n"
               "  -p, --pi      crc16-t10dif | crc64-nvme | xxh3, type1 | type3, 512 | 4096\n"
               "                (default: crc64-nvme,type1,4096)\n"
               "  --root-owner  owner of the root directory (default: the caller)\n"
               "  --format-version N  2: data runs in segment files; 1: all data in RocksDB\n"
               "                (default: 2)\n"
               "  -q, --quiet   print nothing on success\n");
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "mkfs.stablefs: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  stablefs::CreateOptions create;
  create.root_uid = getuid();
  create.root_gid = getgid();
  bool quiet = false;
  std::string store, options_text;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      Usage(stdout);
      return 0;
    } else if (arg == "-q" || arg == "--quiet") {
      quiet = true;
    } else if (arg == "-p" || arg == "--pi") {
      const char* v = value("--pi");
      if (v == nullptr) return Fail("-p needs a value"), Usage(stderr), 1;
      stablefs::Status s = stablefs::pi::Profile::Parse(v, &create.pi);
      if (!s.ok()) return Fail(s.message());
      options_text += " -p " + std::string(v);
    } else if (arg == "--root-owner") {
      const char* v = value("--root-owner");
      unsigned uid, gid;
      char extra;
      if (v == nullptr || std::sscanf(v, "%u:%u%c", &uid, &gid, &extra) != 2) {
        return Fail("--root-owner takes UID:GID");
      }
      create.root_uid = uid;
      create.root_gid = gid;
      options_text += " --root-owner " + std::string(v);
    } else if (arg == "--format-version") {
      const char* v = value("--format-version");
      unsigned version;
      char extra;
      if (v == nullptr || std::sscanf(v, "%u%c", &version, &extra) != 1) {
        return Fail("--format-version takes a number");
      }
      create.format_version = version;
      options_text += " --format-version " + std::string(v);
    } else if (!arg.empty() && arg[0] == '-') {
      Usage(stderr);
      return Fail("unknown option " + arg);
    } else if (store.empty()) {
      store = arg;
    } else {
      Usage(stderr);
      return Fail("more than one STORE given");
    }
  }
  if (store.empty()) {
    Usage(stderr);
    return Fail("no STORE given");
  }
  create.creation_options = options_text.empty() ? "" : options_text.substr(1);
  std::unique_ptr<stablefs::RocksBlockStore> s;
  stablefs::Status st =
      stablefs::RocksBlockStore::Create(store, create, stablefs::RocksOptions(), &s);
  if (!st.ok()) return Fail(st.ToString());
  if (!quiet) {
    std::printf("stablefs store %s\n  uuid %s\n  format version %u, block size %u\n  pi %s\n",
                store.c_str(), s->superblock().UuidString().c_str(), s->superblock().format_version,
                s->superblock().block_size, s->profile().ToString().c_str());
  }
  return 0;
}
