// Legacy message sets (magic 0/1) up-converted to record batch v2: real librdkafka fixtures
// and hand-built sets for the error cases.
#include "protocol/legacy_message_set.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "base/kafka_wire.h"
#include "protocol/headers.h"
#include "protocol/hex_fixture.h"

namespace mq::protocol {
namespace {

using StatusCode = ::mq::ErrorCode;

Buffer produce_records(const std::string& name) {
  auto frames = load_hex_frames(std::string(MQ_PROTOCOL_TESTDATA_DIR) + "/" + name);
  EXPECT_TRUE(frames.has_value());
  if (!frames.has_value() || frames->size() != 1) return Buffer();
  auto req = decode_request((*frames)[0]);
  EXPECT_TRUE(req.has_value());
  if (!req.has_value()) return Buffer();
  const auto& produce = std::get<ProduceRequest>(req->body);
  return *produce.topic_data.at(0).partition_data.at(0).records;
}

void expect_converted(const std::string& fixture, Compression codec, bool has_timestamps) {
  Buffer legacy = produce_records(fixture);
  ASSERT_TRUE(is_legacy_message_set(legacy));
  auto converted = convert_legacy_message_set(legacy);
  ASSERT_TRUE(converted.has_value()) << converted.error().to_string();
  auto view = RecordBatchView::parse(*converted);
  ASSERT_TRUE(view.has_value()) << view.error().to_string();
  EXPECT_EQ(view->header().compression(), codec);
  EXPECT_EQ(view->header().producer_id, -1);
  EXPECT_TRUE(view->validate_for_produce().is_ok());
  auto set = view->decode_records();
  ASSERT_TRUE(set.has_value());
  ASSERT_EQ(set->records.size(), 2u);
  std::string hello;
  for (int i = 0; i < 40; ++i) hello += "hello ";
  EXPECT_EQ(as_chars(*set->records[0].key), "key1");
  EXPECT_EQ(as_chars(*set->records[0].value), hello);
  EXPECT_EQ(as_chars(*set->records[1].value).substr(0, 18), "value without key ");
  if (has_timestamps) {
    EXPECT_GT(view->header().base_timestamp, 1600000000000);  // librdkafka's wall clock
  } else {
    EXPECT_EQ(view->header().base_timestamp, -1);  // v0 has no timestamps
  }
}

TEST(LegacyMessageSetTest, LibrdkafkaMagic0Converts) {
  expect_converted("librdkafka_produce_legacy_v0.hex", Compression::kNone, false);
}
TEST(LegacyMessageSetTest, LibrdkafkaMagic1Converts) {
  expect_converted("librdkafka_produce_legacy_v1.hex", Compression::kNone, true);
}
TEST(LegacyMessageSetTest, LibrdkafkaMagic1GzipWrapperConverts) {
  expect_converted("librdkafka_produce_legacy_v1_gzip.hex", Compression::kGzip, true);
}

// Appends one legacy message (with a correct CRC-32 unless told otherwise).
void put_message(Buffer* set, std::int8_t magic, std::int8_t attributes, std::int64_t timestamp,
                 std::optional<std::string_view> key, BufferView value, bool bad_crc = false) {
  Buffer body;
  KafkaWriter b(&body);
  b.write_int8(magic);
  b.write_int8(attributes);
  if (magic == 1) b.write_int64(timestamp);
  if (key) {
    ASSERT_TRUE(b.write_bytes(false, as_bytes(*key)).is_ok());
  } else {
    b.write_null_bytes(false);
  }
  ASSERT_TRUE(b.write_bytes(false, value).is_ok());
  auto crc = static_cast<std::uint32_t>(crc32(0L, body.data(), static_cast<uInt>(body.size())));
  KafkaWriter w(set);
  w.write_int64(0);
  w.write_int32(static_cast<std::int32_t>(body.size() + 4));
  w.write_uint32(bad_crc ? crc ^ 1 : crc);
  w.write_raw(body);
}

TEST(LegacyMessageSetTest, LogAppendTimeWrapperStampsInnerRecords) {
  Buffer inner;
  put_message(&inner, 1, 0, 5, "a", as_bytes("x"));
  put_message(&inner, 1, 0, 6, std::nullopt, as_bytes("y"));
  Buffer packed;
  ASSERT_TRUE(compress(Compression::kGzip, inner, &packed).is_ok());
  Buffer outer;
  put_message(&outer, 1, static_cast<std::int8_t>(1 | kAttributeLogAppendTime), 777, std::nullopt,
              packed);
  auto converted = convert_legacy_message_set(outer);
  ASSERT_TRUE(converted.has_value()) << converted.error().to_string();
  auto view = RecordBatchView::parse(*converted);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->header().base_timestamp, 777);
  EXPECT_EQ(view->header().max_timestamp, 777);
  EXPECT_EQ(view->header().record_count, 2);
}

TEST(LegacyMessageSetTest, ErrorsAreNamed) {
  Buffer bad_crc;
  put_message(&bad_crc, 1, 0, 1, "k", as_bytes("v"), /*bad_crc=*/true);
  EXPECT_EQ(convert_legacy_message_set(bad_crc).error().code(), StatusCode::kCorruption);

  Buffer inner;
  put_message(&inner, 1, 1, 1, "k", as_bytes("already compressed?"));
  Buffer packed;
  ASSERT_TRUE(compress(Compression::kGzip, inner, &packed).is_ok());
  Buffer nested;
  put_message(&nested, 1, 1, 1, std::nullopt, packed);
  auto r = convert_legacy_message_set(nested);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("nested"), std::string::npos);

  Buffer zstd_legacy;
  put_message(&zstd_legacy, 1, 4, 1, "k", as_bytes("v"));
  EXPECT_EQ(convert_legacy_message_set(zstd_legacy).error().code(), StatusCode::kUnsupported);

  Buffer ok;
  put_message(&ok, 0, 0, 0, "k", as_bytes("v"));
  for (std::size_t cut = 1; cut < ok.size(); ++cut) {
    EXPECT_EQ(convert_legacy_message_set(ok.view(0, cut)).error().code(), StatusCode::kCorruption)
        << cut;
  }
  EXPECT_FALSE(convert_legacy_message_set(Buffer()).has_value());
}

TEST(LegacyMessageSetTest, BombGuardAppliesToWrappers) {
  Buffer inner;
  put_message(&inner, 1, 0, 1, "k", Buffer(2 * 1024 * 1024));
  Buffer packed;
  ASSERT_TRUE(compress(Compression::kGzip, inner, &packed).is_ok());
  Buffer outer;
  put_message(&outer, 1, 1, 1, std::nullopt, packed);
  RecordBatchLimits tight;
  tight.decompressed_size_bytes_max = 1024 * 1024;
  EXPECT_EQ(convert_legacy_message_set(outer, tight).error().code(), StatusCode::kLimitExceeded);
}

}  // namespace
}  // namespace mq::protocol
