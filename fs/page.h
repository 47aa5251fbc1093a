// Page: one 4 KiB page of a file in the page cache, with the kernel's flags and their meaning.
//
//   PG_locked     held by one thread that is changing the page's identity, contents or state:
//                 filling it from the store, write_begin..write_end, ClearDirtyForIo, truncate.
//                 Waiters sleep; nobody holds it while waiting for anything but the store.
//   PG_uptodate   the page holds the file's current data (filled, or wholly written).
//   PG_dirty      the page holds data the store does not have yet.
//   PG_writeback  the page's data is on its way to the store: from StartWriteback to
//                 EndWriteback. Under the `wait` policy nobody modifies it then (guarantee 1).
//   PG_error      the last fill failed (EIO to the reader); the page is not uptodate.
//
// A page's descriptor lives in PageCache's array for the life of the cache, as struct page lives
// in mem_map; it belongs to one (mapping, index) at a time or is free. Its flags, counts, identity
// and list hooks are guarded by PageCache::mu_ (the flags are private to PageCache's accessors);
// its bytes are guarded by PG_locked for writers that go through WriteBegin, and by the writeback
// protocol (WaitStable, PageMkwrite) for all.
#pragma once

#include <boost/intrusive/list.hpp>
#include <boost/intrusive/set.hpp>
#include <cstddef>
#include <cstdint>

#include "storage/format.h"

namespace stablefs {

class AddressSpace;

inline constexpr size_t kPageSize = kBlockSize;
static_assert(kPageSize == 4096, "a page is one store block");

enum PageFlag : uint32_t {
  PG_locked = 1u << 0,
  PG_uptodate = 1u << 1,
  PG_dirty = 1u << 2,
  PG_writeback = 1u << 3,
  PG_error = 1u << 4,
};

namespace bi = boost::intrusive;
// safe_link: hooks know whether they are linked (is_linked), and unlinking resets them.
using NormalLink = bi::link_mode<bi::safe_link>;

struct Page {
  uint32_t refcount = 0;            // users holding the page (lookups, I/O, mappings)
  uint32_t mapcount = 0;            // in-process mappings that map it
  AddressSpace* mapping = nullptr;  // null: free
  uint64_t index = 0;               // page index in the file: offset / kPageSize
  char* data = nullptr;             // kPageSize bytes in the cache's frame pool
  uint32_t frame = 0;               // which frame; data == pool + frame * kPageSize

  bi::set_member_hook<NormalLink> index_hook;  // AddressSpace::pages_
  bi::set_member_hook<NormalLink> dirty_hook;  // AddressSpace::dirty_, while PG_dirty
  bi::list_member_hook<NormalLink> lru_hook;   // PageCache::lru_ or free_

 private:
  // The PG_* bits. Read and changed only through PageCache's accessors, which require its mu_
  // (the analysis checks every use).
  uint32_t flags_ = 0;
  friend class PageCache;
};

// Orders pages by index, for the intrusive sets.
struct PageIndexKey {
  using type = uint64_t;
  uint64_t operator()(const Page& p) const { return p.index; }
};

using PageIndexSet =
    bi::set<Page, bi::member_hook<Page, bi::set_member_hook<NormalLink>, &Page::index_hook>,
            bi::key_of_value<PageIndexKey>, bi::constant_time_size<true>>;
using PageDirtySet =
    bi::set<Page, bi::member_hook<Page, bi::set_member_hook<NormalLink>, &Page::dirty_hook>,
            bi::key_of_value<PageIndexKey>, bi::constant_time_size<true>>;
using PageList =
    bi::list<Page, bi::member_hook<Page, bi::list_member_hook<NormalLink>, &Page::lru_hook>,
             bi::constant_time_size<true>>;

}  // namespace stablefs
