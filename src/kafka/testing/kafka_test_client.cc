#include "kafka/testing/kafka_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace mq::kafka::testing {

TestClient::~TestClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status TestClient::connect(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return Status::from_errno(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::from_errno(errno, "connect");
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return Status::ok();
}

Status TestClient::send_raw(BufferView bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno(errno, "send");
    sent += static_cast<std::size_t>(n);
  }
  return Status::ok();
}

Status TestClient::send(std::int16_t version, std::int32_t correlation_id,
                        const protocol::AnyRequest& request) {
  protocol::RequestHeader header;
  header.request_api_key = protocol::api_key_of(request);
  header.request_api_version = version;
  header.correlation_id = correlation_id;
  header.client_id = "kafka_test";
  Buffer frame;
  MQ_RETURN_IF_ERROR(protocol::encode_request_frame(header, request, &frame));
  return send_raw(frame.view());
}

Status TestClient::read_exact(std::uint8_t* out, std::size_t n, int timeout_ms) {
  std::size_t got = 0;
  while (got < n) {
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, timeout_ms);
    if (ready == 0) return Status::timeout("no response in time");
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Status::from_errno(errno, "poll");
    ssize_t r = ::recv(fd_, out + got, n - got, 0);
    if (r == 0) return Status::unavailable("connection closed by the server");
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      if (errno == ECONNRESET) return Status::unavailable("connection reset by the server");
      return Status::from_errno(errno, "recv");
    }
    got += static_cast<std::size_t>(r);
  }
  return Status::ok();
}

Result<Buffer> TestClient::read_frame(int timeout_ms) {
  std::uint8_t prefix[4];
  MQ_RETURN_IF_ERROR(read_exact(prefix, 4, timeout_ms));
  std::uint32_t size = (std::uint32_t{prefix[0]} << 24) | (std::uint32_t{prefix[1]} << 16) |
                       (std::uint32_t{prefix[2]} << 8) | std::uint32_t{prefix[3]};
  if (size > 256u * 1024 * 1024) return Status::corruption("response frame too large");
  Buffer payload(size);
  MQ_RETURN_IF_ERROR(read_exact(payload.data(), size, timeout_ms));
  return payload;
}

Result<protocol::AnyResponse> TestClient::read_response(std::int16_t api_key,
                                                        std::int16_t version,
                                                        std::int32_t correlation_id,
                                                        int timeout_ms) {
  MQ_ASSIGN_OR_RETURN(Buffer payload, read_frame(timeout_ms));
  std::int32_t got_id = 0;
  MQ_ASSIGN_OR_RETURN(protocol::AnyResponse response,
                      protocol::decode_response(payload.view(), api_key, version, &got_id));
  if (got_id != correlation_id) {
    return Status::corruption("correlation id " + std::to_string(got_id) + ", expected " +
                              std::to_string(correlation_id));
  }
  return response;
}

Result<protocol::AnyResponse> TestClient::call(std::int16_t version,
                                               const protocol::AnyRequest& request,
                                               int timeout_ms) {
  std::int32_t id = next_correlation_id_++;
  MQ_RETURN_IF_ERROR(send(version, id, request));
  return read_response(protocol::api_key_of(request), version, id, timeout_ms);
}

bool TestClient::closed_by_peer(int timeout_ms) {
  std::uint8_t byte;
  for (;;) {
    Status st = read_exact(&byte, 1, timeout_ms);
    if (st.code() == ErrorCode::kUnavailable) return true;
    if (!st.is_ok()) return false;  // timeout: still open
  }
}

}  // namespace mq::kafka::testing
