// Generated codec: round trips of every generated message at every valid version with randomly
// populated fields, truncation at every byte, hostile counts, version rules.
#include <gtest/gtest.h>

#include <set>

#include "base/kafka_wire.h"
#include "base/prng.h"
#include "protocol/gen/messages.h"
#include "protocol/gen/randomize.h"

namespace mq::protocol {
namespace {

// Default-constructs the alternative of Any whose kApiKey is api_key and randomizes it.
template <typename Any, std::size_t I = 0>
Any random_message(std::int16_t api_key, Prng& rng, std::int16_t version) {
  if constexpr (I < std::variant_size_v<Any>) {
    using T = std::variant_alternative_t<I, Any>;
    if (T::kApiKey == api_key) {
      T m;
      randomize(m, rng, version);
      return Any(std::move(m));
    }
    return random_message<Any, I + 1>(api_key, rng, version);
  } else {
    ADD_FAILURE() << "no message for api key " << api_key;
    return Any();
  }
}

template <typename Any>
Status encode_any(const Any& msg, std::int16_t version, KafkaWriter& w) {
  if constexpr (std::is_same_v<Any, AnyRequest>) {
    return encode_request_body(msg, version, w);
  } else {
    return encode_response_body(msg, version, w);
  }
}

template <typename Any>
Result<Any> decode_any(std::int16_t api_key, std::int16_t version, KafkaReader& r) {
  if constexpr (std::is_same_v<Any, AnyRequest>) {
    return decode_request_body(api_key, version, r);
  } else {
    return decode_response_body(api_key, version, r);
  }
}

template <typename Any>
void round_trip_all(int seeds_per_version) {
  int checked = 0;
  for (const ApiSpec& api : api_table()) {
    for (std::int16_t v = api.min_version; v <= api.max_version; ++v) {
      for (int seed = 0; seed < seeds_per_version; ++seed) {
        Prng rng(static_cast<std::uint64_t>(api.api_key) * 1000003 + v * 101 + seed);
        Any msg = random_message<Any>(api.api_key, rng, v);
        Buffer bytes;
        KafkaWriter w(&bytes);
        Status st = encode_any(msg, v, w);
        ASSERT_TRUE(st.is_ok()) << api.name << " v" << v << ": " << st.to_string();
        KafkaReader r(bytes);
        Result<Any> back = decode_any<Any>(api.api_key, v, r);
        ASSERT_TRUE(back.has_value()) << api.name << " v" << v << ": " << back.error().to_string();
        EXPECT_TRUE(r.at_end()) << api.name << " v" << v << " left " << r.remaining();
        EXPECT_TRUE(*back == msg) << api.name << " v" << v << " seed " << seed;
        // Truncation at every byte is an error, never a crash.
        for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
          KafkaReader t(bytes.view(0, cut));
          Result<Any> partial = decode_any<Any>(api.api_key, v, t);
          ASSERT_FALSE(partial.has_value()) << api.name << " v" << v << " cut " << cut;
          EXPECT_EQ(partial.error().code(), ErrorCode::kCorruption);
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(CodecTest, EveryRequestRoundTripsAtEveryVersion) { round_trip_all<AnyRequest>(6); }
TEST(CodecTest, EveryResponseRoundTripsAtEveryVersion) { round_trip_all<AnyResponse>(6); }

TEST(CodecTest, ApiTableCoversTheBrokerSet) {
  std::set<std::int16_t> keys;
  for (const ApiSpec& a : api_table()) keys.insert(a.api_key);
  for (int key : {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 32,
                  33, 36, 37, 42, 45, 46, 60}) {
    EXPECT_TRUE(keys.count(static_cast<std::int16_t>(key))) << key;
  }
  const ApiSpec* produce = find_api(0);
  ASSERT_NE(produce, nullptr);
  EXPECT_EQ(produce->name, "Produce");
  EXPECT_EQ(produce->min_version, 0);
  EXPECT_EQ(produce->flexible_from, 9);
  EXPECT_TRUE(produce->is_flexible(9));
  EXPECT_FALSE(produce->is_flexible(8));
  const ApiSpec* sasl = find_api(17);
  ASSERT_NE(sasl, nullptr);
  EXPECT_EQ(sasl->flexible_from, -1);
  EXPECT_EQ(find_api(9999), nullptr);
  EXPECT_EQ(produce->request_header_version(8), 1);
  EXPECT_EQ(produce->request_header_version(9), 2);
  EXPECT_EQ(produce->response_header_version(9), 1);
  EXPECT_EQ(find_api(18)->request_header_version(3), 2);
  EXPECT_EQ(find_api(18)->response_header_version(3), 0);
}

TEST(CodecTest, UnknownApiAndVersionAreUnsupported) {
  Buffer empty;
  KafkaReader r(empty);
  EXPECT_EQ(decode_request_body(9999, 0, r).error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(decode_request_body(18, 99, r).error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(decode_request_body(18, -1, r).error().code(), ErrorCode::kUnsupported);
}

TEST(CodecTest, NonIgnorableFieldAbsentInVersionIsAnEncodeError) {
  // ProduceRequest.TransactionalId exists from v3 and is not ignorable... use a field that is
  // certainly non-ignorable: MetadataRequest.AllowAutoTopicCreation (v4+, default true).
  MetadataRequest m;
  m.allow_auto_topic_creation = false;
  Buffer b;
  KafkaWriter w(&b);
  EXPECT_EQ(m.encode(w, 3).code(), ErrorCode::kInvalidArgument);
  b.clear();
  EXPECT_TRUE(m.encode(w, 4).is_ok());
  // An ignorable field (ApiVersionsRequest.ClientSoftwareName, v3+) is silently dropped.
  ApiVersionsRequest a;
  a.client_software_name = "x";
  b.clear();
  ASSERT_TRUE(a.encode(w, 0).is_ok());
  EXPECT_EQ(b.size(), 0u);
}

TEST(CodecTest, NullInNonNullableVersionIsAnEncodeError) {
  MetadataRequest m;
  m.topics.reset();  // null = all topics, nullable from v1
  Buffer b;
  KafkaWriter w(&b);
  EXPECT_EQ(m.encode(w, 0).code(), ErrorCode::kInvalidArgument);
  b.clear();
  ASSERT_TRUE(m.encode(w, 1).is_ok());
  EXPECT_EQ(to_hex(b), "ffffffff");
}

TEST(CodecTest, HostileArrayCountDoesNotAllocate) {
  // MetadataRequest v1: topics count 0x7fffffff followed by a few bytes.
  Buffer b;
  KafkaWriter w(&b);
  w.write_int32(0x7fffffff);
  w.write_int16(1);
  w.write_raw(as_bytes("a"));
  KafkaReader r(b);
  MetadataRequest m;
  Status st = m.decode(r, 1);
  EXPECT_EQ(st.code(), ErrorCode::kCorruption) << st.to_string();
  // Same with a compact count in a flexible version (v9).
  Buffer c;
  KafkaWriter wc(&c);
  wc.write_uvarint(0x7fffffff);
  KafkaReader rc(c);
  EXPECT_EQ(m.decode(rc, 9).code(), ErrorCode::kCorruption);
}

TEST(CodecTest, UnknownTaggedFieldsAreSkippedAndKnownOnesDecoded) {
  // ApiVersionsResponse v3: error 0, 0 api keys (compact 1), throttle 0, tagged section with an
  // unknown tag 7 and the known tag 1 (FinalizedFeaturesEpoch int64).
  Buffer b;
  KafkaWriter w(&b);
  w.write_int16(0);
  w.write_uvarint(1);
  w.write_int32(0);
  w.write_uvarint(2);
  w.write_uvarint(1);
  w.write_uvarint(8);
  w.write_int64(42);
  w.write_uvarint(7);
  w.write_uvarint(3);
  w.write_raw(as_bytes("xyz"));
  KafkaReader r(b);
  ApiVersionsResponse m;
  ASSERT_TRUE(m.decode(r, 3).is_ok());
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(m.finalized_features_epoch, 42);
  // Re-encoding writes only the known, non-default tag.
  Buffer again;
  KafkaWriter w2(&again);
  ASSERT_TRUE(m.encode(w2, 3).is_ok());
  EXPECT_EQ(to_hex(again), "00000100000000" "01" "0108000000000000002a");
}

TEST(CodecTest, DefaultsFollowTheSchema) {
  MetadataResponse m;
  EXPECT_EQ(m.controller_id, -1);
  EXPECT_FALSE(m.cluster_id.has_value());
  MetadataRequest q;
  EXPECT_TRUE(q.allow_auto_topic_creation);
  ASSERT_TRUE(q.topics.has_value());
  EXPECT_TRUE(q.topics->empty());
  FetchRequest f;
  EXPECT_EQ(f.max_bytes, 0x7fffffff);
  EXPECT_EQ(f.replica_id, -1);
}

}  // namespace
}  // namespace mq::protocol

namespace mq::protocol {
namespace {

// Round trip + truncation for a non-API schema (headers, __consumer_offsets records).
template <typename T>
void round_trip_data(int seeds_per_version) {
  for (std::int16_t v = T::kLowestVersion; v <= T::kHighestVersion; ++v) {
    for (int seed = 0; seed < seeds_per_version; ++seed) {
      Prng rng(static_cast<std::uint64_t>(v) * 7919 + seed);
      T m;
      randomize(m, rng, v);
      Buffer bytes;
      KafkaWriter w(&bytes);
      Status st = m.encode(w, v);
      ASSERT_TRUE(st.is_ok()) << T::kName << " v" << v << ": " << st.to_string();
      KafkaReader r(bytes);
      T back;
      ASSERT_TRUE(back.decode(r, v).is_ok()) << T::kName << " v" << v;
      EXPECT_TRUE(r.at_end());
      EXPECT_TRUE(back == m) << T::kName << " v" << v;
      for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
        KafkaReader t(bytes.view(0, cut));
        T partial;
        EXPECT_FALSE(partial.decode(t, v).is_ok()) << T::kName << " v" << v << " cut " << cut;
      }
    }
  }
}

TEST(CodecTest, HeadersAndConsumerOffsetsRecordsRoundTrip) {
  round_trip_data<RequestHeader>(10);
  round_trip_data<ResponseHeader>(10);
  round_trip_data<OffsetCommitKey>(10);
  round_trip_data<OffsetCommitValue>(10);
  round_trip_data<GroupMetadataKey>(10);
  round_trip_data<GroupMetadataValue>(10);
}

TEST(CodecTest, ConsumerOffsetsKeyLayoutMatchesKafka) {
  // A __consumer_offsets record key: int16 schema version (1 = OffsetCommitKey), then the key
  // struct at that version: group, topic (int16 strings), partition int32.
  OffsetCommitKey key;
  key.group = "g";
  key.topic = "t";
  key.partition = 3;
  Buffer b;
  KafkaWriter w(&b);
  w.write_int16(1);
  ASSERT_TRUE(key.encode(w, 1).is_ok());
  EXPECT_EQ(to_hex(b), "0001" "000167" "000174" "00000003");
  // OffsetCommitValue v1 carries expireTimestamp, v3 leaderEpoch instead.
  OffsetCommitValue value;
  value.offset = 5;
  value.expire_timestamp = 9;
  Buffer v1;
  KafkaWriter w1(&v1);
  ASSERT_TRUE(value.encode(w1, 1).is_ok());
  EXPECT_EQ(to_hex(v1), "0000000000000005" "0000" "0000000000000000" "0000000000000009");
  Buffer v3;
  KafkaWriter w3(&v3);
  ASSERT_TRUE(value.encode(w3, 3).is_ok());  // expireTimestamp is ignorable: dropped
  EXPECT_EQ(v3.size(), 8u + 4u + 2u + 8u);
}

}  // namespace
}  // namespace mq::protocol
