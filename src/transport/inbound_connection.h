// InboundConnection: one accepted TCP connection, read on the transport thread. It reads and
// checks the hello, answers with a hello_ack (refusing a wrong version, cluster or target with
// a log line that says so), then reads frames and hands the Raft messages they carry to the
// transport's on_message callback. Any malformed byte, oversized length, truncated frame or
// idle period closes this connection only, with a log line naming the peer and the reason.
//
// Memory: the read buffer grows only as bytes arrive (never to a length a peer merely
// announced) and is bounded by one frame (kFrameHeaderSize + frame_bytes_max) plus slack.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "transport/raft_rpc_codec.h"
#include "transport/transport_internal.h"

namespace mq::transport::detail {

class InboundConnection;

// Implemented by the Transport: keeps the set of inbound connections.
class InboundRegistry {
 public:
  virtual ~InboundRegistry() = default;
  // A handshake from `connection` succeeded (an older connection from the same broker is
  // closed: the peer reconnected).
  virtual void on_handshake(InboundConnection& connection) = 0;
  virtual void on_closed(InboundConnection& connection) = 0;
};

class InboundConnection : public std::enable_shared_from_this<InboundConnection> {
 public:
  InboundConnection(Context& context, InboundRegistry& registry, asio::ip::tcp::socket socket,
                    std::uint64_t id, bool over_limit);

  void start();
  // Closes the socket (idempotent) and logs `reason` unless it is empty.
  void close(LogLevel level, const std::string& reason);

  std::uint64_t id() const { return id_; }
  BrokerId source() const { return source_; }
  bool closed() const { return closed_; }

 private:
  void on_prefix();
  void on_hello();
  void refuse(HelloStatus status, const std::string& reason);
  void read_more();
  void on_read(const asio::error_code& error, std::size_t bytes);
  bool parse_frames();
  Status process(const FrameView& frame);
  void deliver(GroupMessage& message);
  void arm_idle();
  std::string who() const;  // "broker 3 (127.0.0.1:51234)" or "127.0.0.1:51234"

  Context& context_;
  // On a caller's io_context (TransportOptions::io) the context must outlive this object's
  // cancelled handlers, which may run after the Transport is gone; null otherwise.
  const std::shared_ptr<Context> keep_context_;
  InboundRegistry& registry_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer idle_;
  const std::uint64_t id_;
  const bool over_limit_;  // accepted beyond inbound_connections_max: refuse the hello
  std::string remote_;
  BrokerId source_{-1};
  bool handshake_done_ = false;
  bool closed_ = false;
  std::chrono::steady_clock::time_point last_activity_;

  Buffer hello_;
  Buffer ack_;
  // Invariant: read_begin_ <= read_end_ <= buffer_.size() <= read_buffer_bytes_max().
  Buffer buffer_;
  std::size_t read_begin_ = 0;
  std::size_t read_end_ = 0;
  ChunkAssembler assembler_;
  std::vector<GroupMessage> decoded_;
};

}  // namespace mq::transport::detail
