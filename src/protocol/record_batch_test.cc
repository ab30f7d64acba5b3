// Record batch v2 view: parse/validate, CRC, stamping, codecs, bomb guard, control batches,
// legacy formats.
#include "protocol/record_batch.h"

#include <gtest/gtest.h>

#include "base/kafka_wire.h"
#include "base/prng.h"

namespace mq::protocol {
namespace {

std::vector<RecordInput> sample_records(int n) {
  std::vector<RecordInput> out;
  for (int i = 0; i < n; ++i) {
    RecordInput r;
    if (i % 3 != 0) r.key = Buffer(std::string_view("key-" + std::to_string(i)));
    if (i % 5 != 4) r.value = Buffer(std::string_view(std::string(10 + i, 'a' + i % 26)));
    if (i % 2 == 0) r.headers.push_back({"h" + std::to_string(i), Buffer(std::string_view("hv"))});
    if (i % 4 == 1) r.headers.push_back({"nullvalue", std::nullopt});
    r.timestamp = 1700000000000 + i * 7;
    out.push_back(std::move(r));
  }
  return out;
}

Buffer build(const RecordBatchOptions& o, const std::vector<RecordInput>& recs) {
  auto b = build_record_batch(o, recs);
  EXPECT_TRUE(b.has_value()) << b.error().to_string();
  return b.has_value() ? std::move(b).value() : Buffer();
}

void expect_records_equal(const RecordSet& set, const std::vector<RecordInput>& in,
                          std::int64_t base_timestamp) {
  ASSERT_EQ(set.records.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const Record& r = set.records[i];
    EXPECT_EQ(r.offset_delta, static_cast<std::int32_t>(i));
    EXPECT_EQ(base_timestamp + r.timestamp_delta, in[i].timestamp);
    ASSERT_EQ(r.key.has_value(), in[i].key.has_value());
    if (r.key) {
      EXPECT_TRUE(equal_bytes(*r.key, *in[i].key));
    }
    ASSERT_EQ(r.value.has_value(), in[i].value.has_value());
    if (r.value) {
      EXPECT_TRUE(equal_bytes(*r.value, *in[i].value));
    }
    ASSERT_EQ(r.headers.size(), in[i].headers.size());
    for (std::size_t h = 0; h < r.headers.size(); ++h) {
      EXPECT_EQ(r.headers[h].key, in[i].headers[h].first);
      ASSERT_EQ(r.headers[h].value.has_value(), in[i].headers[h].second.has_value());
    }
  }
}

class CodecRoundTrip : public ::testing::TestWithParam<Compression> {};

TEST_P(CodecRoundTrip, BuildParseDecode) {
  auto recs = sample_records(25);
  RecordBatchOptions o;
  o.compression = GetParam();
  o.producer_id = 4242;
  o.producer_epoch = 3;
  o.base_sequence = 100;
  o.transactional = true;
  Buffer bytes = build(o, recs);
  auto view = RecordBatchView::parse(bytes);
  ASSERT_TRUE(view.has_value()) << view.error().to_string();
  const auto& h = view->header();
  EXPECT_EQ(h.compression(), GetParam());
  EXPECT_EQ(h.producer_id, 4242);
  EXPECT_EQ(h.producer_epoch, 3);
  EXPECT_EQ(h.base_sequence, 100);
  EXPECT_TRUE(h.is_transactional());
  EXPECT_FALSE(h.is_control());
  EXPECT_EQ(h.record_count, 25);
  EXPECT_EQ(h.last_offset_delta, 24);
  EXPECT_EQ(h.base_timestamp, 1700000000000);
  EXPECT_EQ(h.max_timestamp, 1700000000000 + 24 * 7);
  EXPECT_EQ(view->bytes().size(), bytes.size());
  auto set = view->decode_records();
  ASSERT_TRUE(set.has_value()) << set.error().to_string();
  expect_records_equal(*set, recs, h.base_timestamp);
  EXPECT_TRUE(view->validate_for_produce().is_ok());
}

TEST_P(CodecRoundTrip, BombGuardRefusesOversizedOutput) {
  Buffer zeros(8 * 1024 * 1024);
  Buffer packed;
  ASSERT_TRUE(compress(GetParam(), zeros, &packed).is_ok());
  if (GetParam() != Compression::kNone) {
    EXPECT_LT(packed.size(), zeros.size() / 20);
  }
  Buffer out;
  EXPECT_EQ(decompress(GetParam(), packed, 1024 * 1024, &out).code(), ErrorCode::kLimitExceeded);
  EXPECT_LE(out.capacity(), 2u * 1024 * 1024);
  ASSERT_TRUE(decompress(GetParam(), packed, zeros.size(), &out).is_ok());
  EXPECT_TRUE(out == zeros);
}

TEST_P(CodecRoundTrip, BombGuardInsideABatch) {
  RecordInput big;
  big.value = Buffer(4 * 1024 * 1024);
  RecordBatchOptions o;
  o.compression = GetParam();
  Buffer bytes = build(o, {big});
  auto view = RecordBatchView::parse(bytes);
  ASSERT_TRUE(view.has_value());
  RecordBatchLimits tight;
  tight.decompressed_size_bytes_max = 1024 * 1024;
  auto set = view->decode_records(tight);
  if (GetParam() == Compression::kNone) {
    // Uncompressed bytes are already bounded by the frame size; the guard is for inflation.
    EXPECT_TRUE(set.has_value());
  } else {
    ASSERT_FALSE(set.has_value());
    EXPECT_EQ(set.error().code(), ErrorCode::kLimitExceeded);
  }
}

TEST_P(CodecRoundTrip, GarbageInputIsAnErrorNotACrash) {
  if (GetParam() == Compression::kNone) return;
  Prng rng(7);
  Buffer packed;
  ASSERT_TRUE(compress(GetParam(), as_bytes(std::string(5000, 'q')), &packed).is_ok());
  for (int i = 0; i < 300; ++i) {
    Buffer mutated = packed;
    std::size_t flips = 1 + rng.uniform(4);
    for (std::size_t f = 0; f < flips; ++f) {
      mutated[rng.uniform(mutated.size())] ^= static_cast<std::uint8_t>(1 + rng.uniform(255));
    }
    if (rng.chance(1, 3)) mutated.resize(rng.uniform(mutated.size()));
    Buffer out;
    Status st = decompress(GetParam(), mutated, 1 << 20, &out);
    if (!st.is_ok()) {
      EXPECT_TRUE(st.code() == ErrorCode::kCorruption || st.code() == ErrorCode::kLimitExceeded)
          << st.to_string();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CodecRoundTrip,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kSnappy, Compression::kLz4,
                                           Compression::kZstd),
                         [](const auto& info) { return std::string(compression_name(info.param)); });

TEST(SnappyTest, XerialFramingAsTheJavaClientWritesIt) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "record " + std::to_string(i) + ";";
  BufferView all = as_bytes(text);
  Buffer framed;
  const std::uint8_t magic[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
  framed.append(magic, 16);
  KafkaWriter w(&framed);
  for (std::size_t at = 0; at < all.size(); at += 7000) {  // several xerial blocks
    Buffer block;
    ASSERT_TRUE(compress(Compression::kSnappy, all.subspan(at, std::min<std::size_t>(7000, all.size() - at)), &block).is_ok());
    w.write_int32(static_cast<std::int32_t>(block.size()));
    w.write_raw(block);
  }
  Buffer out;
  ASSERT_TRUE(decompress(Compression::kSnappy, framed, 1 << 20, &out).is_ok());
  EXPECT_EQ(out.as_string_view(), text);
  // The limit applies across blocks.
  EXPECT_EQ(decompress(Compression::kSnappy, framed, 10000, &out).code(), ErrorCode::kLimitExceeded);
  // A truncated block is corruption.
  framed.resize(framed.size() - 3);
  EXPECT_EQ(decompress(Compression::kSnappy, framed, 1 << 20, &out).code(), ErrorCode::kCorruption);
}

TEST(RecordBatchTest, EveryFlippedByteInTheCrcRangeIsDetected) {
  Buffer bytes = build({}, sample_records(3));
  for (std::size_t i = kRecordBatchCrcOffset; i < bytes.size(); ++i) {
    Buffer bad = bytes;
    bad[i] ^= 0x01;
    auto view = RecordBatchView::parse(bad);
    ASSERT_FALSE(view.has_value()) << "flip at " << i;
    EXPECT_EQ(view.error().code(), ErrorCode::kCorruption) << i << view.error().to_string();
  }
}

TEST(RecordBatchTest, StampingBaseOffsetAndEpochKeepsTheCrcValid) {
  Buffer bytes = build({}, sample_records(4));
  std::uint32_t crc_before = RecordBatchView::parse(bytes)->header().crc;
  set_base_offset(std::span<std::uint8_t>(bytes.data(), bytes.size()), 123456789012);
  set_partition_leader_epoch(std::span<std::uint8_t>(bytes.data(), bytes.size()), 17);
  auto view = RecordBatchView::parse(bytes);
  ASSERT_TRUE(view.has_value()) << view.error().to_string();
  EXPECT_EQ(view->header().base_offset, 123456789012);
  EXPECT_EQ(view->header().partition_leader_epoch, 17);
  EXPECT_EQ(view->header().crc, crc_before);
  EXPECT_EQ(view->header().last_offset(), 123456789012 + 3);
}

TEST(RecordBatchTest, LogAppendTimeStampsAttributesAndMaxTimestamp) {
  Buffer bytes = build({}, sample_records(3));
  set_log_append_time(std::span<std::uint8_t>(bytes.data(), bytes.size()), 1800000000000);
  auto view = RecordBatchView::parse(bytes);
  ASSERT_TRUE(view.has_value()) << view.error().to_string();
  EXPECT_TRUE(view->header().is_log_append_time());
  EXPECT_EQ(view->header().max_timestamp, 1800000000000);
  EXPECT_EQ(view->header().compression(), Compression::kNone);
  EXPECT_EQ(view->header().base_timestamp, 1700000000000);
}

TEST(RecordBatchTest, TruncationAtEveryByteIsAnError) {
  Buffer bytes = build({}, sample_records(3));
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    auto view = RecordBatchView::parse(bytes.view(0, cut));
    ASSERT_FALSE(view.has_value()) << cut;
    EXPECT_EQ(view.error().code(), ErrorCode::kOutOfRange) << cut;
    auto produce = parse_record_batches(bytes.view(0, cut));
    if (cut > 0) {
      ASSERT_FALSE(produce.has_value());
      EXPECT_EQ(produce.error().code(), ErrorCode::kCorruption);
    }
  }
}

TEST(RecordBatchTest, SetsOfBatchesAndAPartialTail) {
  Buffer a = build({}, sample_records(2));
  RecordBatchOptions o;
  o.compression = Compression::kZstd;
  o.base_offset = 2;
  Buffer b = build(o, sample_records(5));
  Buffer all;
  all.append(a);
  all.append(b);
  auto both = parse_record_batches(all);
  ASSERT_TRUE(both.has_value()) << both.error().to_string();
  ASSERT_EQ(both->size(), 2u);
  EXPECT_EQ((*both)[1].header().base_offset, 2);
  all.append(b.view(0, 30));  // a fetch response may end inside a batch
  EXPECT_FALSE(parse_record_batches(all).has_value());
  auto fetch = parse_record_batches(all, /*allow_partial_tail=*/true);
  ASSERT_TRUE(fetch.has_value());
  EXPECT_EQ(fetch->size(), 2u);
}

// Rewrites a header field then fixes the CRC, to test checks behind the CRC.
Buffer with_field(Buffer bytes, std::size_t at, std::int64_t v, int width) {
  for (int i = 0; i < width; ++i) bytes[at + i] = static_cast<std::uint8_t>(v >> (8 * (width - 1 - i)));
  update_crc(std::span<std::uint8_t>(bytes.data(), bytes.size()));
  return bytes;
}

TEST(RecordBatchTest, InconsistentCountsAndLengthsAreCorruption) {
  Buffer bytes = build({}, sample_records(3));
  // Each mutated copy must outlive the view parsed from it.
  Buffer hostile = with_field(bytes, 57, 0x7fffffff, 4);  // recordCount 2^31-1
  EXPECT_EQ(RecordBatchView::parse(hostile).error().code(), ErrorCode::kCorruption);
  Buffer too_many = with_field(bytes, 57, 4, 4);  // recordCount 4 > lastOffsetDelta + 1
  EXPECT_EQ(RecordBatchView::parse(too_many).error().code(), ErrorCode::kCorruption);
  // recordCount 2 < actual: parses (compaction leaves gaps) but decoding sees trailing bytes.
  Buffer too_few = with_field(bytes, 57, 2, 4);
  auto v = RecordBatchView::parse(too_few);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->decode_records().error().code(), ErrorCode::kCorruption);
  EXPECT_EQ(v->validate_for_produce().code(), ErrorCode::kCorruption);
  Buffer negative_delta = with_field(bytes, 23, -1, 4);
  EXPECT_EQ(RecordBatchView::parse(negative_delta).error().code(), ErrorCode::kCorruption);
  // batchLength below the header size.
  Buffer shortlen = bytes;
  shortlen[8] = shortlen[9] = shortlen[10] = 0;
  shortlen[11] = 10;
  EXPECT_EQ(RecordBatchView::parse(shortlen).error().code(), ErrorCode::kCorruption);
  Buffer codec5 = with_field(bytes, 21, 5, 2);  // unknown codec
  EXPECT_EQ(RecordBatchView::parse(codec5).error().code(), ErrorCode::kUnsupported);
}

TEST(RecordBatchTest, LegacyMessageSetsAreUnsupported) {
  // Message set v1 entry: offset, message size, crc (CRC-32), magic 1, attributes, timestamp...
  Buffer v1;
  KafkaWriter w(&v1);
  w.write_int64(0);
  w.write_int32(22);
  w.write_uint32(0x12345678);
  w.write_int8(1);
  w.write_int8(0);
  w.write_int64(0);
  w.write_int32(-1);
  w.write_int32(1);
  w.write_raw(as_bytes("v"));
  auto v = RecordBatchView::parse(v1);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(v.error().message().find("legacy"), std::string::npos);
  v1[16] = 0;
  EXPECT_EQ(RecordBatchView::parse(v1).error().code(), ErrorCode::kUnsupported);
  v1[16] = 3;
  EXPECT_EQ(RecordBatchView::parse(v1).error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(parse_record_batches(v1).error().code(), ErrorCode::kUnsupported);
}

TEST(RecordBatchTest, ControlBatchForRaftEntries) {
  ControlBatchOptions o;
  o.base_offset = 99;
  o.partition_leader_epoch = 5;
  o.timestamp = 1700000000123;
  Buffer bytes = std::move(build_control_batch(o, as_bytes("leader-change")).value());
  auto view = RecordBatchView::parse(bytes);
  ASSERT_TRUE(view.has_value()) << view.error().to_string();
  EXPECT_TRUE(view->header().is_control());
  EXPECT_FALSE(view->header().is_transactional());
  EXPECT_EQ(view->header().base_offset, 99);
  EXPECT_EQ(view->header().partition_leader_epoch, 5);
  EXPECT_EQ(view->header().record_count, 1);
  auto set = view->decode_records();
  ASSERT_TRUE(set.has_value());
  ASSERT_TRUE(set->records[0].key.has_value());
  auto type = parse_control_key(*set->records[0].key);
  ASSERT_TRUE(type.has_value());
  EXPECT_EQ(*type, ControlType::kLeaderChange);
  EXPECT_EQ(as_chars(*set->records[0].value), "leader-change");
  EXPECT_EQ(view->validate_for_produce().code(), ErrorCode::kInvalidArgument);

  o.type = ControlType::kCommit;
  Buffer commit = std::move(build_control_batch(o, {}).value());
  EXPECT_TRUE(RecordBatchView::parse(commit)->header().is_transactional());
  Buffer bad_key;
  KafkaWriter w(&bad_key);
  w.write_int16(1);
  w.write_int16(0);
  EXPECT_EQ(parse_control_key(bad_key).error().code(), ErrorCode::kUnsupported);
}

TEST(RecordBatchTest, RecordLengthMustMatchItsFields) {
  Buffer bytes = build({}, sample_records(1));
  // The first record's length varint sits at offset 61; make it one larger and fix the CRC.
  Buffer bad = bytes;
  bad[61] = static_cast<std::uint8_t>(bad[61] + 2);  // zigzag: +2 = length + 1
  update_crc(std::span<std::uint8_t>(bad.data(), bad.size()));
  auto view = RecordBatchView::parse(bad);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->decode_records().error().code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace mq::protocol
