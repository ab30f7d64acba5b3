#include "protocol/headers.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace mq::protocol {

std::int16_t request_header_version(std::int16_t api_key, std::int16_t api_version) {
  const ApiSpec* api = find_api(api_key);
  if (api == nullptr) return 1;
  // A version above the range still uses the flexible header when flexible_from is reached,
  // so that a newer client's ApiVersions request can be read and answered.
  return api->request_header_version(api_version);
}

std::int16_t response_header_version(std::int16_t api_key, std::int16_t api_version) {
  const ApiSpec* api = find_api(api_key);
  if (api == nullptr) return 0;
  return api->response_header_version(api_version);
}

Result<RequestHeader> decode_request_header(KafkaReader& in) {
  KafkaReader peek(in.rest());
  std::int16_t api_key = 0;
  std::int16_t api_version = 0;
  MQ_RETURN_IF_ERROR(peek.read_int16(&api_key));
  MQ_RETURN_IF_ERROR(peek.read_int16(&api_version));
  RequestHeader header;
  MQ_RETURN_IF_ERROR(header.decode(in, request_header_version(api_key, api_version)));
  return header;
}

Status encode_request_header(const RequestHeader& header, KafkaWriter& out) {
  return header.encode(out, request_header_version(header.request_api_key,
                                                   header.request_api_version));
}

Result<DecodedRequest> decode_request(BufferView payload) {
  KafkaReader in(payload);
  MQ_ASSIGN_OR_RETURN(RequestHeader header, decode_request_header(in));
  MQ_ASSIGN_OR_RETURN(AnyRequest body,
                      decode_request_body(header.request_api_key, header.request_api_version, in));
  // Trailing bytes are ignored, as Kafka does (headers.h).
  return DecodedRequest{std::move(header), std::move(body), in.remaining()};
}

namespace {

// Reserves the size prefix, runs `fill`, then patches the prefix.
template <typename Fill>
Status write_frame(Buffer* out, Fill fill) {
  std::size_t start = out->size();
  KafkaWriter w(out);
  w.write_int32(0);
  Status st = fill(w);
  if (!st.is_ok()) {
    out->resize(start);
    return st;
  }
  std::size_t payload = out->size() - start - kFramePrefixBytes;
  if (payload > 0x7fffffff) {
    out->resize(start);
    return Status::invalid_argument("kafka: frame too large");
  }
  w.patch_int32(start, static_cast<std::int32_t>(payload));
  return Status::ok();
}

}  // namespace

Status encode_request_frame(const RequestHeader& header, const AnyRequest& body, Buffer* out) {
  if (api_key_of(body) != header.request_api_key) {
    return Status::invalid_argument("kafka: header api key does not match the body");
  }
  return write_frame(out, [&](KafkaWriter& w) {
    MQ_RETURN_IF_ERROR(encode_request_header(header, w));
    return encode_request_body(body, header.request_api_version, w);
  });
}

Status encode_response_frame(std::int32_t correlation_id, std::int16_t api_version,
                             const AnyResponse& body, Buffer* out) {
  std::int16_t api_key = api_key_of(body);
  return write_frame(out, [&](KafkaWriter& w) {
    ResponseHeader header;
    header.correlation_id = correlation_id;
    MQ_RETURN_IF_ERROR(header.encode(w, response_header_version(api_key, api_version)));
    return encode_response_body(body, api_version, w);
  });
}

Result<AnyResponse> decode_response(BufferView payload, std::int16_t api_key,
                                    std::int16_t api_version, std::int32_t* correlation_id) {
  KafkaReader in(payload);
  ResponseHeader header;
  MQ_RETURN_IF_ERROR(header.decode(in, response_header_version(api_key, api_version)));
  *correlation_id = header.correlation_id;
  MQ_ASSIGN_OR_RETURN(AnyResponse body, decode_response_body(api_key, api_version, in));
  if (!in.at_end()) {
    return Status::corruption("kafka: " + std::to_string(in.remaining()) +
                              " bytes after the response body");
  }
  return body;
}

Result<FrameInfo> peek_frame(BufferView buffered, std::size_t frame_size_bytes_max) {
  FrameInfo info;
  if (buffered.size() < kFramePrefixBytes) {
    info.bytes_needed = kFramePrefixBytes - buffered.size();
    return info;
  }
  KafkaReader r(buffered);
  std::int32_t size = 0;
  MQ_RETURN_IF_ERROR(r.read_int32(&size));
  if (size < 0) return Status::corruption("kafka: negative frame size " + std::to_string(size));
  if (static_cast<std::size_t>(size) > frame_size_bytes_max) {
    return Status::limit_exceeded("kafka: frame of " + std::to_string(size) +
                                  " bytes exceeds the maximum of " +
                                  std::to_string(frame_size_bytes_max));
  }
  info.payload_bytes = static_cast<std::size_t>(size);
  std::size_t have = buffered.size() - kFramePrefixBytes;
  info.complete = have >= info.payload_bytes;
  info.bytes_needed = info.complete ? 0 : info.payload_bytes - have;
  return info;
}

Status FrameReader::feed(BufferView bytes) {
  if (failed_) return Status::invalid_argument("kafka: frame stream already failed");
  // Compact: drop consumed bytes before growing.
  if (consumed_ > 0) {
    std::size_t left = pending_.size() - consumed_;
    std::memmove(pending_.data(), pending_.data() + consumed_, left);
    pending_.resize(left);
    consumed_ = 0;
  }
  pending_.append(bytes);
  // Validate every frame prefix that is now visible, so an oversized one fails immediately.
  std::size_t pos = 0;
  while (true) {
    Result<FrameInfo> info = peek_frame(pending_.view().subspan(pos), frame_size_bytes_max_);
    if (!info.has_value()) {
      failed_ = true;
      return info.error();
    }
    if (!info->complete) break;
    pos += kFramePrefixBytes + info->payload_bytes;
  }
  return Status::ok();
}

std::optional<Buffer> FrameReader::next_frame() {
  if (failed_) return std::nullopt;
  BufferView rest = pending_.view().subspan(consumed_);
  Result<FrameInfo> info = peek_frame(rest, frame_size_bytes_max_);
  if (!info.has_value() || !info->complete) return std::nullopt;
  Buffer frame(rest.subspan(kFramePrefixBytes, info->payload_bytes));
  consumed_ += kFramePrefixBytes + info->payload_bytes;
  return frame;
}

}  // namespace mq::protocol
