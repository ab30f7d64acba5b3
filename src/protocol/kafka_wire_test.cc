// Tests of base/kafka_wire.h (kept with the protocol tests: Kafka primitives are only used
// by the codec).
#include "base/kafka_wire.h"

#include <gtest/gtest.h>

#include <limits>

namespace mq {
namespace {

Buffer hex(std::string_view h) {
  Buffer b;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    b.push_back(static_cast<std::uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return b;
}

TEST(KafkaWireTest, IntegersAreBigEndian) {
  Buffer b;
  KafkaWriter w(&b);
  w.write_int16(0x0102);
  w.write_int32(-2);
  w.write_int64(0x0102030405060708);
  w.write_uint16(0xfffe);
  w.write_uint32(0x80000001u);
  w.write_float64(1.5);
  EXPECT_EQ(to_hex(b), "0102fffffffe0102030405060708fffe800000013ff8000000000000");
  KafkaReader r(b);
  std::int16_t a = 0;
  std::int32_t c = 0;
  std::int64_t d = 0;
  std::uint16_t e = 0;
  std::uint32_t f = 0;
  double g = 0;
  ASSERT_TRUE(r.read_int16(&a).is_ok());
  ASSERT_TRUE(r.read_int32(&c).is_ok());
  ASSERT_TRUE(r.read_int64(&d).is_ok());
  ASSERT_TRUE(r.read_uint16(&e).is_ok());
  ASSERT_TRUE(r.read_uint32(&f).is_ok());
  ASSERT_TRUE(r.read_float64(&g).is_ok());
  EXPECT_EQ(a, 0x0102);
  EXPECT_EQ(c, -2);
  EXPECT_EQ(d, 0x0102030405060708);
  EXPECT_EQ(e, 0xfffe);
  EXPECT_EQ(f, 0x80000001u);
  EXPECT_EQ(g, 1.5);
  EXPECT_TRUE(r.at_end());
  std::int8_t x = 0;
  EXPECT_EQ(r.read_int8(&x).code(), ErrorCode::kCorruption);
}

TEST(KafkaWireTest, StringsCompactAndNot) {
  Buffer b;
  KafkaWriter w(&b);
  ASSERT_TRUE(w.write_string(false, "ab").is_ok());
  w.write_null_string(false);
  ASSERT_TRUE(w.write_string(true, "ab").is_ok());
  w.write_null_string(true);
  EXPECT_EQ(to_hex(b), "00026162ffff03616200");
  KafkaReader r(b);
  std::string s;
  std::optional<std::string> o;
  ASSERT_TRUE(r.read_string(false, &s).is_ok());
  EXPECT_EQ(s, "ab");
  ASSERT_TRUE(r.read_nullable_string(false, &o).is_ok());
  EXPECT_FALSE(o.has_value());
  ASSERT_TRUE(r.read_nullable_string(true, &o).is_ok());
  EXPECT_EQ(o, "ab");
  EXPECT_EQ(r.read_string(true, &s).code(), ErrorCode::kCorruption);  // null, not nullable
}

TEST(KafkaWireTest, StringTooLongForInt16IsRefused) {
  Buffer b;
  KafkaWriter w(&b);
  EXPECT_EQ(w.write_string(false, std::string(40000, 'x')).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(w.write_string(true, std::string(40000, 'x')).is_ok());
}

TEST(KafkaWireTest, BytesAndNullBytes) {
  Buffer b;
  KafkaWriter w(&b);
  ASSERT_TRUE(w.write_bytes(false, hex("abcd")).is_ok());
  w.write_null_bytes(false);
  ASSERT_TRUE(w.write_bytes(true, hex("ab")).is_ok());
  w.write_null_bytes(true);
  EXPECT_EQ(to_hex(b), "00000002abcdffffffff02ab00");
  KafkaReader r(b);
  Buffer v;
  std::optional<Buffer> o;
  ASSERT_TRUE(r.read_bytes(false, &v).is_ok());
  EXPECT_EQ(to_hex(v), "abcd");
  ASSERT_TRUE(r.read_nullable_bytes(false, &o).is_ok());
  EXPECT_FALSE(o.has_value());
  ASSERT_TRUE(r.read_bytes(true, &v).is_ok());
  EXPECT_EQ(to_hex(v), "ab");
  ASSERT_TRUE(r.read_nullable_bytes(true, &o).is_ok());
  EXPECT_FALSE(o.has_value());
}

TEST(KafkaWireTest, HostileLengthsAreRefusedBeforeAllocation) {
  // int32 bytes length 0x7fffffff with 1 byte behind it.
  Buffer b = hex("7fffffff00");
  KafkaReader r(b);
  Buffer v;
  EXPECT_EQ(r.read_bytes(false, &v).code(), ErrorCode::kCorruption);
  EXPECT_EQ(v.capacity(), 0u);
  // Array count 2^31-1 with min element size 4.
  KafkaReader r2(b);
  std::int32_t count = 0;
  EXPECT_EQ(r2.read_array_length(false, 4, &count).code(), ErrorCode::kCorruption);
  // Compact array count via uvarint (0xffffffff + ...): overflows.
  Buffer c = hex("ffffffff0f");
  KafkaReader r3(c);
  EXPECT_EQ(r3.read_array_length(true, 1, &count).code(), ErrorCode::kCorruption);
  // Negative lengths other than -1.
  Buffer d = hex("fffe");
  KafkaReader r4(d);
  std::string s;
  EXPECT_EQ(r4.read_string(false, &s).code(), ErrorCode::kCorruption);
}

TEST(KafkaWireTest, ArrayCountsBoundedByElementSize) {
  Buffer b = hex("00000003" "0000000100000002");  // 3 int32s announced, 2 present
  KafkaReader r(b);
  std::int32_t count = 0;
  EXPECT_EQ(r.read_array_length(false, 4, &count).code(), ErrorCode::kCorruption);
  KafkaReader r2(b);
  ASSERT_TRUE(r2.read_array_length(false, 2, &count).is_ok());  // 3*2 <= 8
  EXPECT_EQ(count, 3);
  Buffer n = hex("ffffffff00");
  KafkaReader r3(n);
  ASSERT_TRUE(r3.read_array_length(false, 4, &count).is_ok());
  EXPECT_EQ(count, -1);
}

TEST(KafkaWireTest, VarintsAndUuid) {
  Buffer b;
  KafkaWriter w(&b);
  w.write_uvarint(300);
  w.write_varint(-1);
  w.write_varlong(std::numeric_limits<std::int64_t>::min());
  Uuid u;
  for (int i = 0; i < 16; ++i) u.bytes[i] = static_cast<std::uint8_t>(i);
  w.write_uuid(u);
  KafkaReader r(b);
  std::uint64_t a = 0;
  std::int32_t c = 0;
  std::int64_t d = 0;
  Uuid e;
  ASSERT_TRUE(r.read_uvarint(&a).is_ok());
  ASSERT_TRUE(r.read_varint(&c).is_ok());
  ASSERT_TRUE(r.read_varlong(&d).is_ok());
  ASSERT_TRUE(r.read_uuid(&e).is_ok());
  EXPECT_EQ(a, 300u);
  EXPECT_EQ(c, -1);
  EXPECT_EQ(d, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(e, u);
  EXPECT_TRUE(r.at_end());
  Buffer bad = hex("8080");  // truncated varint
  KafkaReader r2(bad);
  EXPECT_EQ(r2.read_uvarint(&a).code(), ErrorCode::kCorruption);
}

TEST(KafkaWireTest, SkipTaggedFields) {
  Buffer b = hex("02" "00" "02abcd" "05" "00" "ee");
  KafkaReader r(b);
  ASSERT_TRUE(r.skip_tagged_fields().is_ok());
  EXPECT_EQ(r.remaining(), 1u);
  Buffer bad = hex("01" "00" "05ab");
  KafkaReader r2(bad);
  EXPECT_EQ(r2.skip_tagged_fields().code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace mq
