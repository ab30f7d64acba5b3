#include "transport/inbound_connection.h"

#include <algorithm>

#include "base/trace.h"

namespace mq::transport::detail {

namespace {

constexpr std::size_t kReadBufferBytesInitial = 64u << 10;
// Shrink back when idle and above this. Kept above the largest usual frame plus what follows
// it in one read (an append of a 1 MB producer batch): shrinking after every such frame made
// the next one grow the buffer again by doubling (allocation, zero fill, copy, page faults).
// There is one inbound connection per peer broker.
constexpr std::size_t kReadBufferBytesKeep = 8u << 20;

std::string endpoint_text(const asio::ip::tcp::socket& socket) {
  asio::error_code error;
  const auto endpoint = socket.remote_endpoint(error);
  if (error) return "unknown peer";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

}  // namespace

InboundConnection::InboundConnection(Context& context, InboundRegistry& registry,
                                     asio::ip::tcp::socket socket, std::uint64_t id,
                                     bool over_limit)
    : context_(context),
      keep_context_(context.options.io != nullptr ? context.shared_from_this() : nullptr),
      registry_(registry),
      socket_(std::move(socket)),
      idle_(context.io),
      id_(id),
      over_limit_(over_limit),
      assembler_(context.options.message_bytes_max) {}

std::string InboundConnection::who() const {
  if (handshake_done_ || source_ != BrokerId(-1)) {
    return "broker " + std::to_string(source_.value()) + " (" + remote_ + ")";
  }
  return remote_;
}

void InboundConnection::start() {
  remote_ = endpoint_text(socket_);
  asio::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  last_activity_ = std::chrono::steady_clock::now();
  arm_idle();
  hello_.resize(kHelloPrefixSize);
  asio::async_read(socket_, asio::buffer(hello_.data(), kHelloPrefixSize),
                   [self = shared_from_this()](const asio::error_code& error, std::size_t) {
                     if (self->closed_) return;
                     if (error) {
                       self->close(LogLevel::kWarning, "connection closed during the handshake: " +
                                                           error.message());
                       return;
                     }
                     self->on_prefix();
                   });
}

void InboundConnection::on_prefix() {
  auto prefix = decode_hello_prefix(hello_.view());
  if (!prefix.has_value()) {
    // Not a raftmq broker (or not speaking our handshake): nothing sensible to answer.
    context_.counters.add(context_.counters.decode_errors);
    close(LogLevel::kWarning, "not a raftmq peer: " + prefix.error().message());
    return;
  }
  if (prefix->version < kMinProtocolVersion || prefix->version > kMaxProtocolVersion) {
    refuse(HelloStatus::kUnsupportedVersion,
           "unsupported protocol version " + std::to_string(prefix->version) + " (we speak " +
               std::to_string(kMinProtocolVersion) + ".." + std::to_string(kMaxProtocolVersion) +
               ")");
    return;
  }
  const std::size_t rest = prefix->rest_size();
  hello_.resize(kHelloPrefixSize + rest);
  asio::async_read(socket_, asio::buffer(hello_.data() + kHelloPrefixSize, rest),
                   [self = shared_from_this()](const asio::error_code& error, std::size_t) {
                     if (self->closed_) return;
                     if (error) {
                       self->close(LogLevel::kWarning,
                                   "connection closed inside the hello: " + error.message());
                       return;
                     }
                     self->on_hello();
                   });
}

void InboundConnection::on_hello() {
  auto hello = decode_hello(hello_.view());
  if (!hello.has_value()) {
    context_.counters.add(context_.counters.decode_errors);
    refuse(HelloStatus::kMalformed, hello.error().message());
    return;
  }
  source_ = hello->source;
  const TransportOptions& o = context_.options;
  if (hello->source.value() < 0) {
    refuse(HelloStatus::kMalformed, "negative source broker id");
  } else if (hello->cluster_id != o.cluster_id) {
    refuse(HelloStatus::kClusterMismatch,
           "cluster id '" + hello->cluster_id + "' is not ours ('" + o.cluster_id + "')");
  } else if (hello->target != o.self && hello->target != BrokerId(kAnyBrokerTarget)) {
    refuse(HelloStatus::kWrongTarget, "it meant broker " + std::to_string(hello->target.value()) +
                                          ", we are broker " + std::to_string(o.self.value()));
  } else if (hello->source == o.self && hello->target != BrokerId(kAnyBrokerTarget)) {
    // (An address-only link may reach a broker that claims our id: a joining broker refused
    // for that very reason must still hear the refusal.)
    refuse(HelloStatus::kSelfConnection, "it claims our own broker id");
  } else if (over_limit_) {
    refuse(HelloStatus::kTooManyConnections,
           "inbound connection limit " + std::to_string(o.inbound_connections_max) + " reached");
  } else {
    handshake_done_ = true;
    context_.counters.add(context_.counters.inbound_accepted);
    registry_.on_handshake(*this);
    encode_hello_ack(HelloAck{hello->version, HelloStatus::kOk, o.self}, ack_);
    asio::async_write(socket_, asio::buffer(ack_.data(), ack_.size()),
                      [self = shared_from_this()](const asio::error_code& error, std::size_t) {
                        if (self->closed_ || !error) return;
                        self->close(LogLevel::kWarning, "cannot send hello ack: " + error.message());
                      });
    context_.log(LogLevel::kInfo, "accepted connection from %s", who().c_str());
    buffer_.resize(kReadBufferBytesInitial);
    read_more();
  }
}

void InboundConnection::refuse(HelloStatus status, const std::string& reason) {
  context_.counters.add(context_.counters.inbound_refused);
  context_.log(LogLevel::kWarning, "refusing connection from %s: %s", who().c_str(),
               reason.c_str());
  encode_hello_ack(HelloAck{kMaxProtocolVersion, status, context_.options.self}, ack_);
  asio::async_write(socket_, asio::buffer(ack_.data(), ack_.size()),
                    [self = shared_from_this()](const asio::error_code&, std::size_t) {
                      self->close(LogLevel::kInfo, "");
                    });
}

void InboundConnection::read_more() {
  if (read_end_ == buffer_.size()) {
    if (read_begin_ > 0) {  // move the incomplete frame to the front
      std::memmove(buffer_.data(), buffer_.data() + read_begin_, read_end_ - read_begin_);
      read_end_ -= read_begin_;
      read_begin_ = 0;
    }
    if (read_end_ == buffer_.size()) {
      // Still full: the incomplete frame is bigger than the buffer. Its header was already
      // checked against frame_bytes_max, so doubling stays within one frame.
      const std::size_t cap = kFrameHeaderSize + std::size_t{context_.options.frame_bytes_max};
      MQ_ASSERT(buffer_.size() < cap, "read buffer full of a frame within the limit");
      buffer_.resize(std::min(cap, buffer_.size() * 2));
    }
  }
  socket_.async_read_some(
      asio::buffer(buffer_.data() + read_end_, buffer_.size() - read_end_),
      [self = shared_from_this()](const asio::error_code& error, std::size_t bytes) {
        self->on_read(error, bytes);
      });
}

void InboundConnection::on_read(const asio::error_code& error, std::size_t bytes) {
  if (closed_) return;
  if (error) {
    if (read_end_ > read_begin_) {
      context_.counters.add(context_.counters.decode_errors);
      close(LogLevel::kWarning, "connection ended inside a frame (" +
                                    std::to_string(read_end_ - read_begin_) +
                                    " bytes of a truncated frame): " + error.message());
    } else {
      close(LogLevel::kInfo, "connection closed: " + error.message());
    }
    return;
  }
  last_activity_ = std::chrono::steady_clock::now();
  context_.counters.add(context_.counters.bytes_received, bytes);
  read_end_ += bytes;
  MQ_DASSERT(read_end_ <= buffer_.size());
  if (!parse_frames()) return;
  if (read_begin_ == read_end_) {
    read_begin_ = read_end_ = 0;
    if (buffer_.size() > kReadBufferBytesKeep) buffer_ = Buffer(kReadBufferBytesInitial);
  }
  read_more();
}

// Takes every complete frame out of the buffer. Returns false if the connection was closed.
bool InboundConnection::parse_frames() {
  while (read_begin_ < read_end_) {
    FrameView frame;
    auto used = parse_frame(buffer_.view(read_begin_, read_end_ - read_begin_),
                            context_.options.frame_bytes_max, &frame);
    if (!used.has_value()) {
      context_.counters.add(context_.counters.decode_errors);
      close(LogLevel::kWarning, "bad frame: " + used.error().to_string());
      return false;
    }
    if (*used == 0) return true;
    context_.counters.add(context_.counters.frames_received);
    Status status = process(frame);
    if (!status.is_ok()) {
      context_.counters.add(context_.counters.decode_errors);
      close(LogLevel::kWarning, std::string("bad ") + frame_type_name(frame.type) +
                                    " frame: " + status.to_string());
      return false;
    }
    if (closed_) return false;  // a callback stopped the transport
    read_begin_ += *used;
  }
  return true;
}

Status InboundConnection::process(const FrameView& frame) {
  decoded_.clear();
  switch (frame.type) {
    case FrameType::kMessageBatch:
      MQ_RETURN_IF_ERROR(decode_batch(frame.body, &decoded_));
      break;
    case FrameType::kHeartbeats:
    case FrameType::kHeartbeatResponses:
      MQ_RETURN_IF_ERROR(decode_heartbeats(frame.body, frame.type, &decoded_));
      break;
    case FrameType::kMessageChunk: {
      BufferView data;
      MQ_ASSIGN_OR_RETURN(ChunkHeader header, decode_chunk(frame.body, &data));
      context_.counters.add(context_.counters.chunks_received);
      GroupMessage done;
      MQ_ASSIGN_OR_RETURN(bool complete, assembler_.add(header, data, &done));
      if (complete) decoded_.push_back(std::move(done));
      break;
    }
    case FrameType::kKeepalive:
      break;
  }
  for (GroupMessage& message : decoded_) deliver(message);
  decoded_.clear();
  return Status::ok();
}

void InboundConnection::deliver(GroupMessage& message) {
  if (context_.stopping.load(std::memory_order_relaxed)) return;
  context_.counters.add(context_.counters.messages_received);
  trace::point(trace::Stage::kTransportRecv, message.group.value(),
               static_cast<std::uint64_t>(message.message.type));
  if (context_.callbacks.on_message) {
    context_.callbacks.on_message(source_, message.group, std::move(message.message));
  }
}

void InboundConnection::arm_idle() {
  const auto limit =
      handshake_done_ ? context_.options.idle_timeout : context_.options.connect_timeout;
  const auto idle = std::chrono::steady_clock::now() - last_activity_;
  idle_.expires_after(limit - std::chrono::duration_cast<std::chrono::milliseconds>(idle));
  idle_.async_wait([self = shared_from_this()](const asio::error_code& error) {
    if (error || self->closed_) return;
    const auto limit = self->handshake_done_ ? self->context_.options.idle_timeout
                                             : self->context_.options.connect_timeout;
    const auto idle = std::chrono::steady_clock::now() - self->last_activity_;
    if (idle >= limit) {
      self->context_.counters.add(self->context_.counters.idle_timeouts);
      self->close(LogLevel::kWarning,
                  std::string(self->handshake_done_ ? "idle" : "no handshake") + " for " +
                      std::to_string(limit.count()) + " ms");
      return;
    }
    self->arm_idle();
  });
}

void InboundConnection::close(LogLevel level, const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  if (!reason.empty()) {
    context_.log(level, "closing connection from %s: %s", who().c_str(), reason.c_str());
  }
  asio::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  idle_.cancel();
  registry_.on_closed(*this);
}

}  // namespace mq::transport::detail
