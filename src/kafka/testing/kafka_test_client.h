// A blocking raw-socket Kafka client for unit tests of the server (test-only): sends frames
// built with the generated codec, or arbitrary bytes, and reads response frames with a timeout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/buffer.h"
#include "base/result.h"
#include "protocol/headers.h"

namespace mq::kafka::testing {

class TestClient {
 public:
  TestClient() = default;
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  Status connect(std::uint16_t port);
  Status send_raw(BufferView bytes);
  // Encodes a request frame (header v1/v2 per the API version) and sends it.
  Status send(std::int16_t version, std::int32_t correlation_id,
              const protocol::AnyRequest& request);
  // The next response frame payload; kTimeout after timeout_ms, kUnavailable when the server
  // closed the connection.
  Result<Buffer> read_frame(int timeout_ms = 5000);
  // Reads one response and decodes it for the given API/version; checks the correlation id.
  Result<protocol::AnyResponse> read_response(std::int16_t api_key, std::int16_t version,
                                              std::int32_t correlation_id,
                                              int timeout_ms = 5000);
  // Sends and reads in one step.
  Result<protocol::AnyResponse> call(std::int16_t version, const protocol::AnyRequest& request,
                                     int timeout_ms = 5000);
  // True once the server has closed the connection (reads EOF within timeout_ms).
  bool closed_by_peer(int timeout_ms = 2000);

 private:
  Status read_exact(std::uint8_t* out, std::size_t n, int timeout_ms);
  int fd_ = -1;
  std::int32_t next_correlation_id_ = 1000;
};

}  // namespace mq::kafka::testing
