// Fsck: one pass over every key space of the store, then the checks, then one repair batch.
#include "fs/fsck.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <deque>
#include <map>
#include <set>

#include "storage/verifier.h"

namespace stablefs {

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

struct Entry {
  uint64_t parent;
  std::string name;
  DirentRecord rec;
};

}  // namespace

int FsckReport::ExitCode() const {
  bool left = false, fixed_any = false;
  for (const FsckProblem& p : problems) {
    (p.fixed ? fixed_any : left) = true;
  }
  return left ? 4 : fixed_any ? 1 : 0;
}

std::string FsckReport::ToJson() const {
  std::string s = "{\"inodes\": " + std::to_string(inodes) +
                  ", \"entries\": " + std::to_string(entries) +
                  ", \"blocks\": " + std::to_string(blocks) + ", \"problems\": [";
  for (size_t i = 0; i < problems.size(); i++) {
    const FsckProblem& p = problems[i];
    s += (i ? ", " : "") + std::string("{\"inode\": ") + std::to_string(p.ino) + ", \"path\": \"" +
         JsonEscape(p.path) + "\", \"offset\": " + std::to_string(p.offset) + ", \"problem\": \"" +
         JsonEscape(p.what) + "\", \"fixed\": " + (p.fixed ? "true" : "false") + "}";
  }
  return s + "], \"exit\": " + std::to_string(ExitCode()) + "}";
}

Status Fsck(BlockStore* store, bool repair, FsckReport* r, const FsckProgress& progress) {
  // Progress every 256 records: often enough for a terminal, cheap beside the records.
  auto tick = [&](const char* phase, uint64_t done, uint64_t total) {
    if (progress && done % 256 == 0) progress(phase, done, total);
  };
  WriteBatch fix;
  std::map<uint64_t, InodeRecord> inodes;
  std::map<uint64_t, std::string> paths;
  auto problem = [&](uint64_t ino, uint64_t offset, std::string what, bool fixable) {
    FsckProblem p;
    p.ino = ino;
    auto it = paths.find(ino);
    if (it != paths.end()) p.path = it->second;
    p.offset = offset;
    p.what = std::move(what);
    p.fixed = repair && fixable;
    r->problems.push_back(std::move(p));
    return repair && fixable;
  };

  // The store's files, each against its own checksums: a damaged table block holding records no
  // walk below reaches (the superblock, next_ino) is found too.
  if (Status v = store->VerifyFiles(); !v.ok()) {
    if (!v.IsCorruption()) return v;
    problem(0, 0, v.message(), false);
  }

  // Inodes.
  STABLEFS_RETURN_IF_ERROR(
      store->Scan(Space::kInode, "", "", [&](std::string_view k, std::string_view v) {
        uint64_t ino = 0;
        InodeRecord rec;
        tick("inodes", inodes.size() + 1, 0);
        if (!ParseInodeKey(k, &ino)) {
          problem(0, 0, "malformed inode key", false);
        } else if (Status s = rec.DecodeFrom(v); !s.ok()) {
          problem(ino, 0, "inode record: " + s.message(), false);
        } else {
          inodes[ino] = rec;
        }
        return true;
      }));
  r->inodes = inodes.size();
  std::set<uint64_t> orphans;
  STABLEFS_RETURN_IF_ERROR(
      store->Scan(Space::kOrphan, "", "", [&](std::string_view k, std::string_view) {
        uint64_t ino;
        if (ParseInodeKey(k, &ino)) orphans.insert(ino);
        return true;
      }));

  // Directory entries and "..".
  std::vector<Entry> entries;
  std::map<uint64_t, uint64_t> dotdot;
  STABLEFS_RETURN_IF_ERROR(
      store->Scan(Space::kDirent, "", "", [&](std::string_view k, std::string_view v) {
        uint64_t parent;
        std::string_view name;
        DirentRecord d;
        tick("entries", entries.size() + 1, 0);
        if (!ParseNameKey(k, &parent, &name) || !d.DecodeFrom(v).ok()) {
          problem(0, 0, "malformed directory entry", false);
          return true;
        }
        if (name == "..") {
          dotdot[parent] = d.ino;
        } else {
          entries.push_back(Entry{parent, std::string(name), d});
        }
        return true;
      }));
  r->entries = entries.size();
  std::map<uint64_t, std::vector<uint64_t>> children;  // directory -> inodes named in it
  for (const Entry& e : entries) children[e.parent].push_back(e.rec.ino);

  // Paths, from the root down (the first name found wins).
  paths[kRootIno] = "/";
  std::deque<uint64_t> queue{kRootIno};
  std::map<uint64_t, std::vector<const Entry*>> by_parent;
  for (const Entry& e : entries) by_parent[e.parent].push_back(&e);
  while (!queue.empty()) {
    uint64_t dir = queue.front();
    queue.pop_front();
    for (const Entry* e : by_parent[dir]) {
      if (paths.count(e->rec.ino)) continue;
      paths[e->rec.ino] = (dir == kRootIno ? "/" : paths[dir] + "/") + e->name;
      if (e->rec.type == DT_DIR) queue.push_back(e->rec.ino);
    }
  }

  // Each entry: a live target of the right type, with its cookie.
  std::map<uint64_t, uint32_t> names_of;  // inode -> number of entries naming it
  std::map<uint64_t, uint32_t> subdirs;   // directory -> number of subdirectories
  for (const Entry& e : entries) {
    auto parent = inodes.find(e.parent);
    auto target = inodes.find(e.rec.ino);
    const std::string where = "entry '" + e.name + "' in directory " + std::to_string(e.parent);
    if (parent == inodes.end() || !S_ISDIR(parent->second.mode)) {
      if (problem(e.parent, 0, where + ": the directory does not exist", true)) {
        fix.Delete(Space::kDirent, NameKey(e.parent, e.name));
        fix.Delete(Space::kDirCookie, CookieKey(e.parent, e.rec.cookie));
      }
      continue;
    }
    if (target == inodes.end()) {
      if (problem(e.parent, 0,
                  where + ": names inode " + std::to_string(e.rec.ino) + ", which does not exist",
                  true)) {
        fix.Delete(Space::kDirent, NameKey(e.parent, e.name));
        fix.Delete(Space::kDirCookie, CookieKey(e.parent, e.rec.cookie));
      }
      continue;
    }
    names_of[e.rec.ino]++;
    if (S_ISDIR(target->second.mode)) subdirs[e.parent]++;
    if (e.rec.type != DirentTypeOf(target->second.mode)) {
      if (problem(e.rec.ino, 0,
                  where + ": type " + std::to_string(e.rec.type) + ", the inode's is " +
                      std::to_string(DirentTypeOf(target->second.mode)),
                  true)) {
        DirentRecord d = e.rec;
        d.type = DirentTypeOf(target->second.mode);
        std::string v;
        d.EncodeTo(&v);
        fix.Put(Space::kDirent, NameKey(e.parent, e.name), v);
      }
    }
    std::string cookie_name;
    Status s = store->Get(Space::kDirCookie, CookieKey(e.parent, e.rec.cookie), &cookie_name);
    if (!s.ok() || cookie_name != e.name) {
      if (problem(e.rec.ino, 0, where + ": its readdir cookie is missing", true)) {
        fix.Put(Space::kDirCookie, CookieKey(e.parent, e.rec.cookie), e.name);
      }
    }
  }

  // Each inode: links, "..", orphans, blocks.
  for (auto& [ino, rec] : inodes) {
    const uint32_t names = names_of[ino];
    bool changed = false;
    if (S_ISDIR(rec.mode)) {
      if (ino != kRootIno && names != 1) {
        problem(ino, 0, "directory has " + std::to_string(names) + " names, expected 1", false);
      }
      const uint32_t want = 2 + subdirs[ino];
      if (ino != kRootIno && names == 1 && dotdot.count(ino) && paths.count(ino) &&
          dotdot[ino] != 0) {
        // ".." must name the directory that names it.
        for (const Entry& e : entries) {
          if (e.rec.ino == ino && dotdot[ino] != e.parent &&
              problem(ino, 0,
                      "'..' names " + std::to_string(dotdot[ino]) + ", expected " +
                          std::to_string(e.parent),
                      true)) {
            std::string v;
            DirentRecord{.ino = e.parent, .type = DT_DIR, .cookie = 2}.EncodeTo(&v);
            fix.Put(Space::kDirent, NameKey(ino, ".."), v);
          }
        }
      }
      if (rec.nlink != want) {
        changed = problem(
            ino, 0,
            "link count " + std::to_string(rec.nlink) + ", expected " + std::to_string(want), true);
        rec.nlink = want;
      }
    } else if (names == 0) {
      const bool orphan = orphans.count(ino) > 0;
      if (orphan || rec.nlink == 0) {
        if (problem(ino, 0, orphan ? "orphan left by a crash" : "unlinked inode", true)) {
          uint64_t removed;
          STABLEFS_RETURN_IF_ERROR(store->StageDeleteBlocks(ino, 0, UINT64_MAX, &fix, &removed));
          fix.Delete(Space::kInode, InodeKey(ino));
          fix.Delete(Space::kOrphan, InodeKey(ino));
          fix.Delete(Space::kSymlink, InodeKey(ino));
          STABLEFS_RETURN_IF_ERROR(store->StageDeleteRange(Space::kXattr, NamePrefixBegin(ino),
                                                           NamePrefixEnd(ino), &fix));
        }
        continue;
      }
      problem(ino, 0, "no directory entry names it (link count " + std::to_string(rec.nlink) + ")",
              false);
    } else if (rec.nlink != names) {
      changed = problem(
          ino, 0, "link count " + std::to_string(rec.nlink) + ", expected " + std::to_string(names),
          true);
      rec.nlink = names;
    }
    if (names > 0 && orphans.count(ino) &&
        problem(ino, 0, "orphan record on an inode that has names", true)) {
      fix.Delete(Space::kOrphan, InodeKey(ino));
    }
    if (S_ISLNK(rec.mode)) {
      std::string target;
      if (!store->Get(Space::kSymlink, InodeKey(ino), &target).ok()) {
        problem(ino, 0, "symlink without a target", false);
      }
    }
    if (S_ISREG(rec.mode)) {
      const uint64_t eof_block = (rec.size + kBlockSize - 1) / kBlockSize;
      uint64_t past = 0, total = 0;
      // Preallocated blocks past the size are fallocate's KEEP_SIZE: only written ones are wrong.
      STABLEFS_RETURN_IF_ERROR(
          store->CountBlocks(ino, eof_block, UINT64_MAX, &past, /*written_only=*/true));
      STABLEFS_RETURN_IF_ERROR(store->CountBlocks(ino, 0, UINT64_MAX, &total));
      if (past > 0 &&
          problem(ino, eof_block * kBlockSize,
                  std::to_string(past) + " blocks past the size " + std::to_string(rec.size),
                  true)) {
        uint64_t removed;
        STABLEFS_RETURN_IF_ERROR(
            store->StageDeleteBlocks(ino, eof_block, UINT64_MAX, &fix, &removed));
        total -= removed;
      }
      if (rec.blocks != total) {
        changed |= problem(ino, 0,
                           "block count " + std::to_string(rec.blocks) + ", the store holds " +
                               std::to_string(total),
                           true);
        rec.blocks = total;
      }
    }
    if (changed) {
      std::string v;
      rec.EncodeTo(&v);
      fix.Put(Space::kInode, InodeKey(ino), v);
    }
  }

  // Records of inodes that do not exist.
  std::set<uint64_t> dead_xattrs, dead_blocks;
  STABLEFS_RETURN_IF_ERROR(
      store->Scan(Space::kXattr, "", "", [&](std::string_view k, std::string_view) {
        uint64_t ino;
        std::string_view name;
        if (ParseNameKey(k, &ino, &name) && !inodes.count(ino)) dead_xattrs.insert(ino);
        return true;
      }));
  for (uint64_t ino : dead_xattrs) {
    if (problem(ino, 0, "xattrs of an inode that does not exist", true)) {
      STABLEFS_RETURN_IF_ERROR(
          store->StageDeleteRange(Space::kXattr, NamePrefixBegin(ino), NamePrefixEnd(ino), &fix));
    }
  }

  // Every block against its tuples; every block map entry against the data (storage/verifier.h,
  // the same check scrub and stablefsctl verify make). Data or preallocated blocks of an inode
  // that does not exist are collected for repair.
  uint64_t expected_blocks = 0;
  for (const auto& [ino, rec] : inodes) {
    if (S_ISREG(rec.mode)) expected_blocks += rec.blocks;
  }
  struct Sink : BlockVerifierSink {
    void Checked(uint64_t ino, uint64_t) override { checked(ino); }
    void Unwritten(uint64_t ino, uint64_t) override { unwritten(ino); }
    void Found(const BlockFinding& f) override { found(f); }
    std::function<void(uint64_t ino)> checked, unwritten;
    std::function<void(const BlockFinding&)> found;
  } sink;
  sink.checked = [&](uint64_t ino) {
    r->blocks++;
    tick("blocks", r->blocks, expected_blocks);
    if (ino != 0 && !inodes.count(ino)) dead_blocks.insert(ino);
  };
  sink.unwritten = [&](uint64_t ino) {
    if (!inodes.count(ino)) dead_blocks.insert(ino);
  };
  const pi::Profile& profile = store->profile();
  sink.found = [&](const BlockFinding& f) {
    problem(f.ino, f.Offset(profile), f.What(profile), false);  // never re-protected
  };
  STABLEFS_RETURN_IF_ERROR(VerifyAllBlocks(store, &sink));
  for (uint64_t ino : dead_blocks) {
    if (problem(ino, 0, "data blocks of an inode that does not exist", true)) {
      uint64_t removed;
      STABLEFS_RETURN_IF_ERROR(store->StageDeleteBlocks(ino, 0, UINT64_MAX, &fix, &removed));
    }
  }

  if (repair && !fix.empty()) {
    STABLEFS_RETURN_IF_ERROR(store->Write(fix, WriteOptions{.sync = true}));
  }
  return Status::Ok();
}

}  // namespace stablefs
