// MemBlockStore: a BlockStore held in memory, for tests of the layers above.
//
// Each space is a sorted map under one mutex; a batch is applied under that mutex, so it is
// atomic as the real store's is. Sync() has nothing to do: durability is simulated by wrapping
// this store in a FaultBlockStore.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "storage/block_store.h"
#include "storage/thread_annotations.h"

namespace stablefs {

class MemBlockStore : public BlockStore {
 public:
  // A new store formatted with `options`.
  static Status Create(const CreateOptions& options, std::unique_ptr<MemBlockStore>* out);

 protected:
  Status DoGet(Space s, std::string_view key, std::string* value) override;
  Status DoScan(Space s, std::string_view begin, std::string_view end,
                const std::function<bool(std::string_view, std::string_view)>& fn) override;
  Status DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks, char* tuples,
                      BlockState* state) override;
  Status DoWrite(const WriteBatch& batch, bool sync) override;
  Status DoSync() override;

 private:
  MemBlockStore() = default;

  using Map = std::map<std::string, std::string, std::less<>>;
  Mutex mu_;
  Map spaces_[kNumSpaces] GUARDED_BY(mu_);
};

}  // namespace stablefs
