// Kafka request/response headers and framing.
//
// Framing: every request and response is `int32 size (big-endian) + size bytes`. A frame whose
// size exceeds the configured maximum (default 100 MiB, Kafka's socket.request.max.bytes) is
// refused as soon as its 4-byte prefix is seen, before any allocation.
//
// Header versions (KIP-482): request header v0 (api_key, api_version, correlation_id), v1
// (+ nullable non-compact client_id), v2 (v1 + tagged fields); response header v0
// (correlation_id), v1 (+ tagged fields). A flexible request version uses request header v2 and
// response header v1, except ApiVersions, whose response header is always v0 so that a client
// can read it before it knows what the broker supports. (ControlledShutdown v0's request header
// v0 is not needed: that API is not served.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/buffer.h"
#include "base/kafka_wire.h"
#include "base/result.h"
#include "protocol/gen/messages.h"

namespace mq::protocol {

inline constexpr std::size_t kFrameSizeBytesMaxDefault = 100 * 1024 * 1024;
inline constexpr std::size_t kFramePrefixBytes = 4;
inline constexpr std::int16_t kApiVersionsKey = 18;

// Header versions for an API key and version. Unknown API keys get the non-flexible versions
// (the broker cannot answer them anyway; it closes the connection as Kafka does).
std::int16_t request_header_version(std::int16_t api_key, std::int16_t api_version);
std::int16_t response_header_version(std::int16_t api_key, std::int16_t api_version);

// Reads a request header: api key and version first, then the rest at the header version they
// imply.
Result<RequestHeader> decode_request_header(KafkaReader& in);
Status encode_request_header(const RequestHeader& header, KafkaWriter& out);

struct DecodedRequest {
  RequestHeader header;
  AnyRequest body;
  // Bytes after the complete body, ignored (see decode_request).
  std::size_t trailing_bytes = 0;
};
// Decodes a whole request frame payload (without the size prefix). Errors: Unsupported for an
// unknown API or version (the header is still available through decode_request_header),
// Corruption for malformed bytes (a truncated body, hostile counts, a malformed tagged field).
//
// Bytes left after a complete body are ignored and counted in `trailing_bytes`, as Kafka's own
// broker does (it parses the body's fields and never checks that the buffer was consumed).
// Clients depend on it: librdkafka 2.0.2 sends OffsetFetch v6-v7 "all topics" with the 4-byte
// array-count placeholder it never finalizes (compact null + 3 stray bytes) and ListGroups v3-v4
// with a second empty tagged-field section (1 stray byte); see the golden fixtures
// testdata/librdkafka_offset_fetch_v7.hex and librdkafka_list_groups_v4.hex.
Result<DecodedRequest> decode_request(BufferView payload);

// Appends a complete frame (size prefix, header, body) to *out.
Status encode_request_frame(const RequestHeader& header, const AnyRequest& body, Buffer* out);
Status encode_response_frame(std::int32_t correlation_id, std::int16_t api_version,
                             const AnyResponse& body, Buffer* out);
// Decodes a response payload (without size prefix) for a known request.
Result<AnyResponse> decode_response(BufferView payload, std::int16_t api_key,
                                    std::int16_t api_version, std::int32_t* correlation_id);

// Looks at buffered stream bytes and reports the next frame.
struct FrameInfo {
  bool complete = false;           // all payload bytes are buffered
  std::size_t payload_bytes = 0;   // valid once the prefix is buffered
  std::size_t bytes_needed = 0;    // more bytes needed for a complete frame
};
Result<FrameInfo> peek_frame(BufferView buffered, std::size_t frame_size_bytes_max);

// Splits a byte stream into frames; refuses a frame above the maximum before buffering it.
class FrameReader {
 public:
  explicit FrameReader(std::size_t frame_size_bytes_max = kFrameSizeBytesMaxDefault)
      : frame_size_bytes_max_(frame_size_bytes_max) {}
  // Appends stream bytes. After an error the stream is unusable (close the connection).
  Status feed(BufferView bytes);
  // The next complete frame payload, if any.
  std::optional<Buffer> next_frame();
  std::size_t buffered_bytes() const { return pending_.size() - consumed_; }

 private:
  std::size_t frame_size_bytes_max_;
  Buffer pending_;
  std::size_t consumed_ = 0;
  bool failed_ = false;
};

}  // namespace mq::protocol
