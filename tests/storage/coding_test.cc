// Big-endian coding: byte layouts, round trips, and short-input rejection.
#include "storage/coding.h"

#include <gtest/gtest.h>

namespace stablefs {
namespace {

TEST(CodingTest, BigEndianLayout) {
  std::string s;
  PutFixed16BE(&s, 0x0102);
  PutFixed32BE(&s, 0x03040506);
  PutFixed64BE(&s, 0x0708090A0B0C0D0Eull);
  ASSERT_EQ(s, std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x0B\x0C\x0D\x0E", 14));
  char b48[6];
  EncodeFixed48BE(b48, 0x112233445566ull);
  EXPECT_EQ(std::string(b48, 6), std::string("\x11\x22\x33\x44\x55\x66", 6));
  EXPECT_EQ(DecodeFixed48BE(b48), 0x112233445566ull);
}

TEST(CodingTest, RoundTripExtremes) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x80}, ~uint64_t{0}, uint64_t{1} << 63}) {
    std::string s;
    PutFixed64BE(&s, v);
    std::string_view in = s;
    uint64_t out;
    ASSERT_TRUE(GetFixed64BE(&in, &out));
    EXPECT_EQ(out, v);
    EXPECT_TRUE(in.empty());
  }
}

TEST(CodingTest, KeysSortNumerically) {
  std::string a, b;
  PutFixed64BE(&a, 255);
  PutFixed64BE(&b, 256);
  EXPECT_LT(a, b);
}

TEST(CodingTest, ShortInputConsumesNothing) {
  std::string_view in("\x01\x02\x03", 3);
  uint32_t v;
  EXPECT_FALSE(GetFixed32BE(&in, &v));
  EXPECT_EQ(in.size(), 3u);
  std::string lp;
  PutFixed16BE(&lp, 10);
  lp += "abc";
  std::string_view lin = lp;
  std::string_view out;
  EXPECT_FALSE(GetLengthPrefixed16(&lin, &out));
  EXPECT_EQ(lin.size(), lp.size());
}

}  // namespace
}  // namespace stablefs
