// Request/response headers, framing and the generated error codes.
#include "protocol/headers.h"

#include <gtest/gtest.h>

#include "protocol/gen/error_codes.h"

namespace mq::protocol {
namespace {

using StatusCode = ::mq::ErrorCode;  // ErrorCode here is Kafka's (gen/error_codes.h)

TEST(HeadersTest, HeaderVersionsFollowFlexibleVersions) {
  EXPECT_EQ(request_header_version(3, 8), 1);   // Metadata v8: not flexible
  EXPECT_EQ(request_header_version(3, 9), 2);   // Metadata v9: flexible
  EXPECT_EQ(response_header_version(3, 8), 0);
  EXPECT_EQ(response_header_version(3, 9), 1);
  EXPECT_EQ(request_header_version(18, 3), 2);  // ApiVersions v3 request header v2...
  EXPECT_EQ(response_header_version(18, 3), 0);  // ...but its response header stays v0
  EXPECT_EQ(request_header_version(17, 1), 1);  // SaslHandshake: never flexible
  EXPECT_EQ(request_header_version(18, 9), 2);  // a future ApiVersions version stays readable
}

TEST(HeadersTest, FlexibleResponseHeaderHasTaggedFields) {
  MetadataResponse resp;
  Buffer v8;
  Buffer v9;
  ASSERT_TRUE(encode_response_frame(5, 8, resp, &v8).is_ok());
  ASSERT_TRUE(encode_response_frame(5, 9, resp, &v9).is_ok());
  // header v1 = correlation id + empty tagged section; the v9 body is compact.
  EXPECT_EQ(to_hex(v9.view(4, 5)), "0000000500");
  EXPECT_EQ(to_hex(v8.view(4, 8)), "0000000500000000");  // header v0, then throttle_time_ms
  std::int32_t cid = 0;
  auto back = decode_response(v9.view(4, v9.size() - 4), 3, 9, &cid);
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(cid, 5);
}

TEST(HeadersTest, UnknownApiKeyAndVersionAreUnsupportedButHeaderIsReadable) {
  Buffer b;
  KafkaWriter w(&b);
  w.write_int16(999);
  w.write_int16(0);
  w.write_int32(77);
  ASSERT_TRUE(w.write_string(false, "c").is_ok());
  KafkaReader r(b);
  auto header = decode_request_header(r);
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->correlation_id, 77);
  EXPECT_EQ(decode_request(b).error().code(), StatusCode::kUnsupported);

  // ApiVersions v7 (newer than the schema): header v2 is read, the body is unsupported.
  Buffer c;
  KafkaWriter wc(&c);
  wc.write_int16(18);
  wc.write_int16(7);
  wc.write_int32(78);
  wc.write_null_string(false);
  wc.write_uvarint(0);
  KafkaReader rc(c);
  auto h2 = decode_request_header(rc);
  ASSERT_TRUE(h2.has_value());
  EXPECT_EQ(h2->correlation_id, 78);
  EXPECT_FALSE(h2->client_id.has_value());
  EXPECT_EQ(decode_request(c).error().code(), StatusCode::kUnsupported);
}

TEST(HeadersTest, TrailingBytesAfterTheBodyAreIgnoredAndCountedAsKafkaDoes) {
  RequestHeader h;
  h.request_api_key = 12;  // Heartbeat
  h.request_api_version = 0;
  h.correlation_id = 9;
  HeartbeatRequest body;
  body.group_id = "g";
  body.generation_id = 3;
  body.member_id = "m";
  Buffer out;
  ASSERT_TRUE(encode_request_frame(h, body, &out).is_ok());
  out.push_back(0);
  out.push_back(0xAB);
  auto req = decode_request(out.view(4, out.size() - 4));
  ASSERT_TRUE(req.has_value()) << req.error().to_string();
  EXPECT_EQ(req->trailing_bytes, 2u);
  EXPECT_EQ(req->header.correlation_id, 9);
  EXPECT_TRUE(std::get<HeartbeatRequest>(req->body) == body);
  // A body cut short is still an error: only bytes after a complete body are ignored.
  EXPECT_EQ(decode_request(out.view(4, out.size() - 4 - 3)).error().code(),
            StatusCode::kCorruption);
}

TEST(HeadersTest, HeaderAndBodyApiKeysMustAgree) {
  RequestHeader h;
  h.request_api_key = 3;
  Buffer out;
  EXPECT_EQ(encode_request_frame(h, HeartbeatRequest{}, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.empty());
}

TEST(FrameReaderTest, SplitsAStreamFedByteByByte) {
  Buffer stream;
  for (int i = 0; i < 3; ++i) {
    RequestHeader h;
    h.request_api_key = 18;
    h.request_api_version = 3;
    h.correlation_id = i;
    h.client_id = "x";
    ASSERT_TRUE(encode_request_frame(h, ApiVersionsRequest{}, &stream).is_ok());
  }
  FrameReader reader(1024);
  std::vector<Buffer> frames;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    ASSERT_TRUE(reader.feed(stream.view(i, 1)).is_ok());
    while (auto f = reader.next_frame()) frames.push_back(std::move(*f));
  }
  ASSERT_EQ(frames.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    auto req = decode_request(frames[i]);
    ASSERT_TRUE(req.has_value()) << req.error().to_string();
    EXPECT_EQ(req->header.correlation_id, i);
  }
  EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(FrameReaderTest, OversizedFrameIsRefusedFromItsPrefix) {
  FrameReader reader;  // default maximum: 100 MiB
  Buffer prefix;
  KafkaWriter w(&prefix);
  w.write_int32(100 * 1024 * 1024 + 1);
  EXPECT_EQ(reader.feed(prefix).code(), StatusCode::kLimitExceeded);
  EXPECT_FALSE(reader.next_frame().has_value());
  EXPECT_LE(reader.buffered_bytes(), 4u);
  // A negative size is corruption.
  FrameReader r2;
  Buffer neg;
  KafkaWriter wn(&neg);
  wn.write_int32(-5);
  EXPECT_EQ(r2.feed(neg).code(), StatusCode::kCorruption);
  // Exactly the maximum is fine.
  FrameReader r3(16);
  Buffer ok;
  KafkaWriter wo(&ok);
  wo.write_int32(16);
  EXPECT_TRUE(r3.feed(ok).is_ok());
  auto info = peek_frame(ok, 16);
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->complete);
  EXPECT_EQ(info->bytes_needed, 16u);
}

TEST(ErrorCodesTest, GeneratedFromKafkaList) {
  EXPECT_EQ(static_cast<int>(ErrorCode::kNone), 0);
  EXPECT_EQ(static_cast<int>(ErrorCode::kUnknownServerError), -1);
  EXPECT_EQ(static_cast<int>(ErrorCode::kCorruptMessage), 2);
  EXPECT_EQ(static_cast<int>(ErrorCode::kNotLeaderOrFollower), 6);
  EXPECT_EQ(static_cast<int>(ErrorCode::kUnsupportedVersion), 35);
  EXPECT_EQ(error_code_name(ErrorCode::kUnsupportedVersion), "UNSUPPORTED_VERSION");
  EXPECT_TRUE(is_known_error_code(35));
  EXPECT_FALSE(is_known_error_code(30000));
}

}  // namespace
}  // namespace mq::protocol
