#include <limits>

#include <gtest/gtest.h>

#include "base/le_codec.h"
#include "base/varint.h"

namespace mq {
namespace {

TEST(LeCodec, RoundTripAndByteOrder) {
  Buffer out;
  le::put_u16(out, 0x0102);
  le::put_u32(out, 0x03040506);
  le::put_u64(out, 0x0708090a0b0c0d0eull);
  ASSERT_EQ(out.size(), 14u);
  EXPECT_EQ(out[0], 0x02);  // little-endian: low byte first
  EXPECT_EQ(out[2], 0x06);
  EXPECT_EQ(to_hex(out.view(0, 6)), "020106050403");
  le::LeReader reader(out);
  std::uint16_t a;
  std::uint32_t b;
  std::uint64_t c;
  ASSERT_TRUE(reader.read_u16(&a));
  ASSERT_TRUE(reader.read_u32(&b));
  ASSERT_TRUE(reader.read_u64(&c));
  EXPECT_EQ(a, 0x0102);
  EXPECT_EQ(b, 0x03040506u);
  EXPECT_EQ(c, 0x0708090a0b0c0d0eull);
  EXPECT_TRUE(reader.at_end());
  EXPECT_FALSE(reader.read_u16(&a));
}

TEST(LeCodec, ReaderRefusesShortInput) {
  Buffer out;
  le::put_u32(out, 1);
  for (std::size_t n = 0; n < 4; ++n) {
    le::LeReader reader(out.view(0, n));
    std::uint32_t v = 99;
    EXPECT_FALSE(reader.read_u32(&v));
    EXPECT_EQ(v, 99u);
    EXPECT_EQ(reader.position(), 0u);
  }
}

TEST(Varint, KnownEncodings) {
  Buffer out;
  varint::put_unsigned(out, 300);
  EXPECT_EQ(to_hex(out), "ac02");
  out.clear();
  varint::put_signed(out, -1);  // zigzag(-1) = 1
  EXPECT_EQ(to_hex(out), "01");
  out.clear();
  varint::put_signed(out, 1);  // zigzag(1) = 2
  EXPECT_EQ(to_hex(out), "02");
  EXPECT_EQ(varint::zigzag_encode32(-2), 3u);
  EXPECT_EQ(varint::zigzag_decode64(varint::zigzag_encode64(std::numeric_limits<std::int64_t>::min())),
            std::numeric_limits<std::int64_t>::min());
}

TEST(Varint, RoundTripsBoundaries) {
  for (std::uint64_t v : std::initializer_list<std::uint64_t>{0, 1, 127, 128, 16383, 16384, 0xffffffffu,
                          std::numeric_limits<std::uint64_t>::max()}) {
    Buffer out;
    varint::put_unsigned(out, v);
    EXPECT_EQ(out.size(), varint::length(v));
    std::uint64_t decoded = 0;
    EXPECT_EQ(varint::decode_unsigned(out.data(), out.data() + out.size(), &decoded), out.size());
    EXPECT_EQ(decoded, v);
    // Every truncation is refused.
    for (std::size_t n = 0; n < out.size(); ++n) {
      EXPECT_EQ(varint::decode_unsigned(out.data(), out.data() + n, &decoded), 0u);
    }
  }
}

TEST(Varint, RejectsOverlongAndOverflow) {
  std::uint8_t eleven[11];
  std::fill(std::begin(eleven), std::end(eleven), 0x80);
  eleven[10] = 0x01;
  std::uint64_t v;
  EXPECT_EQ(varint::decode_unsigned(eleven, eleven + 11, &v), 0u);
  std::uint8_t overflow[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
  EXPECT_EQ(varint::decode_unsigned(overflow, overflow + 10, &v), 0u);
  std::uint8_t big32[5] = {0xff, 0xff, 0xff, 0xff, 0x1f};  // > 2^32 - 1
  std::uint32_t v32;
  EXPECT_EQ(varint::decode_unsigned32(big32, big32 + 5, &v32), 0u);
  std::int32_t s32;
  std::uint8_t minus_one[1] = {0x01};
  EXPECT_EQ(varint::decode_signed32(minus_one, minus_one + 1, &s32), 1u);
  EXPECT_EQ(s32, -1);
}

}  // namespace
}  // namespace mq
