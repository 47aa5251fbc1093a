// The SSE4.2 CRC32C that RocksDB's calls are wrapped with (storage/rocks_crc32c.h): same values
// as the library's own, and really reached by RocksDB's writes.
#include "storage/rocks_crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "storage/rocks_block_store.h"
#include "tests/util/temp_dir.h"

namespace rocksdb::crc32c {
uint32_t Extend(uint32_t crc, const char* buf, size_t size);
}

namespace stablefs {
namespace {

uint32_t Value(const std::string& s) { return rocksdb::crc32c::Extend(0, s.data(), s.size()); }

TEST(RocksCrc32c, KnownAnswers) {
  // The CRC-32C check value and RFC 3720's (iSCSI) test vectors.
  EXPECT_EQ(Value("123456789"), 0xE3069283u);
  EXPECT_EQ(Value(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Value(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; i++) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(Value(ascending), 0x46DD794Eu);
  EXPECT_EQ(Value(""), 0u);
}

TEST(RocksCrc32c, SameAsTheLibraryAtEveryLengthAlignmentAndSplit) {
  std::mt19937_64 rng(7);
  std::string buf(4200, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  for (size_t offset = 0; offset < 8; offset++) {
    for (size_t len = 0; len + offset <= buf.size(); len += (len < 80 ? 1 : 61)) {
      const char* p = buf.data() + offset;
      uint32_t lib = RocksCrc32cLibraryExtend(0, p, len);
      ASSERT_EQ(rocksdb::crc32c::Extend(0, p, len), lib) << "offset " << offset << " len " << len;
      size_t split = len / 3;
      uint32_t first = rocksdb::crc32c::Extend(0, p, split);
      ASSERT_EQ(rocksdb::crc32c::Extend(first, p + split, len - split), lib);
    }
  }
}

// Long buffers take the three-stream rounds (3 KiB, then 384 bytes) and join them.
TEST(RocksCrc32c, SameAsTheLibraryOnLongBuffersInPieces) {
  std::mt19937_64 rng(8);
  std::string buf(100000, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  for (size_t len : {size_t{383}, size_t{384}, size_t{3071}, size_t{3072}, size_t{3072 + 384},
                     size_t{4160}, size_t{32768}, size_t{99991}}) {
    for (size_t offset : {0, 1, 5, 8}) {
      const char* p = buf.data() + offset;
      const uint32_t lib = RocksCrc32cLibraryExtend(0, p, len);
      ASSERT_EQ(rocksdb::crc32c::Extend(0, p, len), lib) << "offset " << offset << " len " << len;
      ASSERT_EQ(rocksdb::crc32c::Extend(0x12345678, p, len),
                RocksCrc32cLibraryExtend(0x12345678, p, len))
          << "offset " << offset << " len " << len;
    }
  }
  for (int round = 0; round < 20; round++) {
    uint32_t crc = 0;
    for (size_t pos = 0; pos < buf.size();) {
      const size_t piece = std::min<size_t>(buf.size() - pos, rng() % 9000);
      crc = rocksdb::crc32c::Extend(crc, buf.data() + pos, piece);
      pos += piece;
    }
    ASSERT_EQ(crc, RocksCrc32cLibraryExtend(0, buf.data(), buf.size())) << "round " << round;
  }
}

TEST(RocksCrc32c, RocksDbWritesReachTheWrapper) {
  testing::TempDir dir;
  std::unique_ptr<RocksBlockStore> store;
  ASSERT_TRUE(
      RocksBlockStore::Create(dir.Sub("store"), CreateOptions(), RocksOptions(), &store).ok());
  ResetRocksCrc32cReached();
  WriteBatch b;
  b.Put(Space::kMeta, "key", "value");
  ASSERT_TRUE(store->Write(b, WriteOptions{.sync = true}).ok());
  // The WAL record of that write was checksummed by the wrapper.
  EXPECT_TRUE(RocksCrc32cReached());
  EXPECT_TRUE(RocksCrc32cAccelerated()) << "this CPU has no SSE4.2: the library's CRC is used";
}

}  // namespace
}  // namespace stablefs
