// Round trips, truncation at every byte and every single-bit flip, for each format
// (STYLE.md F, leveldb log_test.cc style).
#include <gtest/gtest.h>

#include <functional>

#include "base/crc32c.h"
#include "storage/index_format.h"
#include "storage/metadata_format.h"
#include "storage/segment_format.h"

namespace mq::storage {
namespace {

// Every strict prefix fails to decode; every single-bit flip fails or (for the reserved-free
// structures) never decodes to the original value.
void check_damage(const std::vector<std::uint8_t>& good,
                  const std::function<bool(BufferView)>& decodes_ok) {
  ASSERT_TRUE(decodes_ok(BufferView(good)));
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decodes_ok(BufferView(good.data(), n))) << "prefix of " << n << " bytes";
  }
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    auto bad = good;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(decodes_ok(BufferView(bad))) << "bit " << bit;
  }
}

TEST(SegmentFormat, SegmentHeaderRoundTripAndDamage) {
  SegmentHeader h;
  h.base_index = LogIndex(42);
  h.created_ms = 1700000000000;
  std::vector<std::uint8_t> bytes(SegmentHeader::kEncodedSize);
  h.encode_to(bytes.data());
  auto back = SegmentHeader::decode_from(BufferView(bytes));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->base_index, LogIndex(42));
  EXPECT_EQ(back->created_ms, 1700000000000);
  EXPECT_EQ(bytes[0], 'M');
  EXPECT_EQ(bytes[1], 'Q');
  check_damage(bytes, [](BufferView b) { return SegmentHeader::decode_from(b).has_value(); });
}

TEST(SegmentFormat, NewerVersionIsUnsupported) {
  SegmentHeader h;
  h.base_index = LogIndex(1);
  h.version = segment_format::kVersion + 1;
  std::vector<std::uint8_t> bytes(SegmentHeader::kEncodedSize);
  h.encode_to(bytes.data());
  auto back = SegmentHeader::decode_from(BufferView(bytes));
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().code(), ErrorCode::kUnsupported);
}

TEST(SegmentFormat, EntryHeaderRoundTripAndDamage) {
  EntryHeader h;
  h.payload_crc = 0xdeadbeef;
  h.payload_length = 1234;
  h.last_offset_delta = 9;
  h.term = Term(7);
  h.index = LogIndex(99);
  h.base_offset = KafkaOffset(1000);
  h.max_timestamp = 1700000000123;
  h.kind = EntryKind::kConfigChange;
  std::vector<std::uint8_t> bytes(EntryHeader::kEncodedSize);
  h.encode_to(bytes.data());
  auto back = EntryHeader::decode_from(BufferView(bytes));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->payload_crc, h.payload_crc);
  EXPECT_EQ(back->payload_length, 1234u);
  EXPECT_EQ(back->last_offset(), KafkaOffset(1009));
  EXPECT_EQ(back->term, Term(7));
  EXPECT_EQ(back->index, LogIndex(99));
  EXPECT_EQ(back->max_timestamp, h.max_timestamp);
  EXPECT_EQ(back->kind, EntryKind::kConfigChange);
  check_damage(bytes, [](BufferView b) { return EntryHeader::decode_from(b).has_value(); });
}

TEST(SegmentFormat, PayloadChecksumDetectsEveryBitFlip) {
  Buffer payload(as_bytes("a kafka record batch, verbatim"));
  EntryHeader h;
  h.index = LogIndex(1);
  h.payload_length = static_cast<std::uint32_t>(payload.size());
  h.payload_crc = crc32c::value(payload);
  EXPECT_TRUE(h.verify_payload(payload).is_ok());
  for (std::size_t bit = 0; bit < payload.size() * 8; ++bit) {
    Buffer bad = payload;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    EXPECT_EQ(h.verify_payload(bad).code(), ErrorCode::kCorruption);
  }
}

TEST(SegmentFormat, FileNames) {
  EXPECT_EQ(segment_format::file_stem(LogIndex(1)), "00000000000000000001");
  LogIndex base;
  EXPECT_TRUE(segment_format::parse_file_name("00000000000000000123.log", ".log", &base));
  EXPECT_EQ(base, LogIndex(123));
  EXPECT_FALSE(segment_format::parse_file_name("0000000000000000123.log", ".log", &base));
  EXPECT_FALSE(segment_format::parse_file_name("0000000000000000012x.log", ".log", &base));
  EXPECT_FALSE(segment_format::parse_file_name("00000000000000000123.index", ".log", &base));
  EXPECT_FALSE(segment_format::parse_file_name("99999999999999999999.log", ".log", &base));
}

TEST(IndexFormat, EntriesRoundTripAndDamage) {
  OffsetIndexEntry o{5, 77, 4096};
  std::vector<std::uint8_t> a(16);
  o.encode_to(a.data());
  EXPECT_EQ(OffsetIndexEntry::decode_from(BufferView(a)).value(), o);
  check_damage(a, [](BufferView b) { return OffsetIndexEntry::decode_from(b).has_value(); });
  TimeIndexEntry t{1700000000000, 8192};
  std::vector<std::uint8_t> c(16);
  t.encode_to(c.data());
  EXPECT_EQ(TimeIndexEntry::decode_from(BufferView(c)).value(), t);
  check_damage(c, [](BufferView b) { return TimeIndexEntry::decode_from(b).has_value(); });
  IndexHeader h;
  h.base_index = LogIndex(10);
  h.base_offset = KafkaOffset(20);
  std::vector<std::uint8_t> d(32);
  h.encode_to(d.data());
  check_damage(d, [](BufferView b) {
    return IndexHeader::decode_from(b, index_format::kOffsetIndexMagic).has_value();
  });
  EXPECT_FALSE(IndexHeader::decode_from(BufferView(d), index_format::kTimeIndexMagic).has_value());
}

TEST(MetadataFormat, RecordsRoundTripAndDamage) {
  HardStateRecord hs{Term(3), NodeId(2), LogIndex(17)};
  std::vector<std::uint8_t> a(40);
  hs.encode_to(a.data());
  EXPECT_EQ(HardStateRecord::decode_from(BufferView(a)).value(), hs);
  check_damage(a, [](BufferView b) { return HardStateRecord::decode_from(b).has_value(); });
  LogMetaRecord meta{LogIndex(5), KafkaOffset(50), LogIndex(9)};
  std::vector<std::uint8_t> c(40);
  meta.encode_to(c.data());
  EXPECT_EQ(LogMetaRecord::decode_from(BufferView(c)).value(), meta);
  check_damage(c, [](BufferView b) { return LogMetaRecord::decode_from(b).has_value(); });
  SnapshotHeader sh;
  sh.index = LogIndex(100);
  sh.term = Term(4);
  sh.data_length = 1 << 20;
  sh.config_length = 12;
  std::vector<std::uint8_t> d(48);
  sh.encode_to(d.data());
  check_damage(d, [](BufferView b) { return SnapshotHeader::decode_from(b).has_value(); });
}

}  // namespace
}  // namespace mq::storage
