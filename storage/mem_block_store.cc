// MemBlockStore: sorted maps under one mutex.
#include "storage/mem_block_store.h"

#include <cstring>
#include <vector>

namespace stablefs {

Status MemBlockStore::Create(const CreateOptions& options, std::unique_ptr<MemBlockStore>* out) {
  std::unique_ptr<MemBlockStore> store(new MemBlockStore());
  STABLEFS_RETURN_IF_ERROR(store->InitializeNewStore(options));
  *out = std::move(store);
  return Status::Ok();
}

Status MemBlockStore::DoGet(Space s, std::string_view key, std::string* value) {
  MutexLock lock(&mu_);
  const Map& m = spaces_[static_cast<int>(s)];
  auto it = m.find(key);
  if (it == m.end()) return Status::NotFound(SpaceName(s));
  *value = it->second;
  return Status::Ok();
}

Status MemBlockStore::DoScan(Space s, std::string_view begin, std::string_view end,
                             const std::function<bool(std::string_view, std::string_view)>& fn) {
  // Copy the range out so that fn may call back into the store.
  std::vector<std::pair<std::string, std::string>> records;
  {
    MutexLock lock(&mu_);
    const Map& m = spaces_[static_cast<int>(s)];
    for (auto it = m.lower_bound(begin); it != m.end(); ++it) {
      if (!end.empty() && it->first >= end) break;
      records.emplace_back(it->first, it->second);
    }
  }
  for (const auto& [k, v] : records) {
    if (!fn(k, v)) break;
  }
  return Status::Ok();
}

Status MemBlockStore::DoReadBlocks(uint64_t ino, uint64_t first, size_t n, char* const* blocks,
                                   char* tuples, BlockState* state) {
  const size_t tb = tuple_bytes_per_block();
  MutexLock lock(&mu_);
  const Map& m = spaces_[static_cast<int>(Space::kData)];
  const Map& map = spaces_[static_cast<int>(Space::kBlockMap)];
  for (size_t i = 0; i < n; i++) {
    std::string key = DataKey(ino, first + i);
    auto it = m.find(key);
    if (it == m.end()) {
      auto entry = map.find(key);  // an entry without data: lost, unless preallocated
      state[i] = entry != map.end() && entry->second != kBlockMapUnwritten ? BlockState::kLost
                                                                           : BlockState::kHole;
      std::memset(blocks[i], 0, kBlockSize);
      continue;
    }
    if (it->second.size() != kBlockSize + tb) {
      return Status::Corruption("inode " + std::to_string(ino) + " block " +
                                std::to_string(first + i) + ": stored value has " +
                                std::to_string(it->second.size()) + " bytes");
    }
    state[i] = BlockState::kPresent;
    std::memcpy(blocks[i], it->second.data(), kBlockSize);
    std::memcpy(tuples + i * tb, it->second.data() + kBlockSize, tb);
  }
  return Status::Ok();
}

Status MemBlockStore::DoWrite(const WriteBatch& batch, bool sync) {
  const size_t tb = tuple_bytes_per_block();
  MutexLock lock(&mu_);
  for (const WriteBatch::Op& op : batch.ops()) {
    Map& m = spaces_[static_cast<int>(op.space)];
    switch (op.kind) {
      case WriteBatch::OpKind::kPut:
        m.insert_or_assign(op.key, op.value);
        break;
      case WriteBatch::OpKind::kDelete:
        m.erase(op.key);
        break;
      case WriteBatch::OpKind::kDeleteRange:
        if (op.key < op.value) m.erase(m.lower_bound(op.key), m.lower_bound(op.value));
        break;
      case WriteBatch::OpKind::kPutBlock: {
        std::string value(op.data, kBlockSize);
        value.append(op.tuples, tb);
        std::string key = DataKey(op.ino, op.index);
        m.insert_or_assign(key, std::move(value));
        spaces_[static_cast<int>(Space::kBlockMap)].insert_or_assign(std::move(key), "");
        break;
      }
      case WriteBatch::OpKind::kDeleteBlocks: {
        std::string begin = DataKey(op.ino, op.index);
        std::string end = DataKeyRangeEnd(op.ino, op.end);
        if (begin < end) {
          m.erase(m.lower_bound(begin), m.lower_bound(end));
          Map& map = spaces_[static_cast<int>(Space::kBlockMap)];
          map.erase(map.lower_bound(begin), map.lower_bound(end));
        }
        break;
      }
    }
  }
  return Status::Ok();
}

Status MemBlockStore::DoSync() { return Status::Ok(); }

}  // namespace stablefs
