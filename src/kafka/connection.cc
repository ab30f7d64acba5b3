#include "kafka/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <asio/buffer.hpp>
#include <asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "base/trace.h"
#include "kafka/api_table.h"
#include "protocol/headers.h"

namespace mq::kafka {
namespace {
constexpr std::int16_t kProduceApiKey = 0;  // Kafka protocol: Produce

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Connection::Connection(asio::ip::tcp::socket socket, const ServerConfig& config,
                       cluster::ClusterApi& cluster, asio::io_context& io,
                       std::function<void(Connection*)> on_closed, ProduceTimings* timings,
                       std::shared_ptr<ProduceErrors> produce_errors)
    : socket_(std::move(socket)),
      config_(config),
      cluster_(cluster),
      io_(io),
      on_closed_(std::move(on_closed)),
      chunk_(config.read_chunk_bytes),
      timings_(timings),
      produce_errors_(std::move(produce_errors)) {
  MQ_ASSERT(config.read_chunk_bytes > 0);
  MQ_ASSERT(config.inflight_requests_per_connection_max > 0);
}

void Connection::start() {
  std::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  std::error_code ec;
  socket_.non_blocking(true, ec);  // write_queued() writes with plain syscalls
  if (ec) {
    close("cannot make the socket non-blocking");
    return;
  }
  read_more();
}

void Connection::close(const char* reason) {
  if (closed_) return;
  closed_ = true;
  (void)reason;
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  slots_.clear();
  write_queue_.clear();  // releases the segment files of unsent Fetch responses
  if (on_closed_) {
    auto callback = std::move(on_closed_);
    callback(this);
  }
}

bool Connection::may_read() const {
  return !closed_ && !reading_ && slots_.size() < config_.inflight_requests_per_connection_max &&
         response_bytes_ < config_.buffered_response_bytes_per_connection_max;
}

void Connection::read_more() {
  if (!may_read()) return;
  reading_ = true;
  socket_.async_read_some(asio::buffer(chunk_),
                          [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
                            self->on_read(ec, n);
                          });
}

void Connection::on_read(const std::error_code& ec, std::size_t n) {
  reading_ = false;
  if (closed_) return;
  if (ec) {
    close("read failed or peer closed");
    return;
  }
  read_buffer_.append(chunk_.data(), n);
  if (!process_frames()) return;
  read_more();
}

bool Connection::process_frames() {
  if (processing_) return !closed_;  // re-entered from a synchronous completion
  processing_ = true;
  std::size_t consumed = 0;
  while (!closed_ && slots_.size() < config_.inflight_requests_per_connection_max) {
    BufferView rest = read_buffer_.view().subspan(consumed);
    Result<protocol::FrameInfo> info = protocol::peek_frame(rest, config_.frame_size_bytes_max);
    if (!info.has_value()) {
      processing_ = false;
      close("oversized or negative frame size");  // refused before allocating the frame
      return false;
    }
    if (!info->complete) break;
    BufferView payload = rest.subspan(protocol::kFramePrefixBytes, info->payload_bytes);
    consumed += protocol::kFramePrefixBytes + info->payload_bytes;
    handle_frame(payload);
  }
  processing_ = false;
  if (closed_) return false;
  if (consumed > 0) {
    auto& bytes = read_buffer_.vector();
    bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(consumed));
  }
  return true;
}

void Connection::handle_frame(BufferView payload) {
  ++stats_.requests;
  trace::point(trace::Stage::kKafkaRead, payload.size());
  KafkaReader reader(payload);
  Result<protocol::RequestHeader> header = protocol::decode_request_header(reader);
  if (!header.has_value()) {
    close("malformed request header");
    return;
  }
  const std::int16_t api_key = header->request_api_key;
  const std::int16_t version = header->request_api_version;
  const std::int32_t correlation_id = header->correlation_id;
  const std::uint64_t sequence = first_sequence_ + slots_.size();
  slots_.emplace_back();
  if (timings_ != nullptr && api_key == kProduceApiKey) {
    slots_.back().read_ns = steady_ns();
    timings_->on_read(slots_.size());
  }

  const SupportedApi* api = find_supported_api(api_key);
  if (api_key == protocol::kApiVersionsKey && api != nullptr &&
      (version < api->min_version || version > api->max_version)) {
    // KIP-511: answer an unknown ApiVersions version in the v0 format with the supported
    // ranges, so that the client retries with one of them.
    Buffer frame;
    Status st = protocol::encode_response_frame(
        correlation_id, 0, protocol::AnyResponse(unsupported_api_versions_response()), &frame);
    MQ_ASSERT(st.is_ok(), "encoding the ApiVersions fallback: %s", st.to_string().c_str());
    complete(sequence, OutFrame(std::move(frame)));
    return;
  }
  if (api == nullptr || version < api->min_version || version > api->max_version) {
    close("unsupported api key or version");  // as Kafka: the request cannot be parsed
    return;
  }
  Result<protocol::DecodedRequest> decoded = protocol::decode_request(payload);
  if (!decoded.has_value()) {
    close("malformed request body");
    return;
  }
  RequestContext ctx;
  ctx.cluster = &cluster_;
  ctx.config = &config_;
  ctx.io = &io_;
  if (api_key == kProduceApiKey) ctx.produce_errors = produce_errors_;
  ctx.api_version = version;
  ctx.client_id = header->client_id.value_or("");
  std::weak_ptr<Connection> weak = weak_from_this();
  Respond respond = [weak, sequence, correlation_id,
                     version](std::optional<protocol::AnyResponse> response) {
    std::shared_ptr<Connection> self = weak.lock();
    if (!self || self->closed_) return;
    if (!response.has_value()) {
      self->complete(sequence, std::nullopt);
      return;
    }
    Buffer frame;
    Status st = protocol::encode_response_frame(correlation_id, version, *response, &frame);
    if (!st.is_ok()) {
      std::fprintf(stderr, "kafka: cannot encode a response: %s\n", st.to_string().c_str());
      self->close("response encoding failed");
      return;
    }
    self->complete(sequence, OutFrame(std::move(frame)));
  };
  ctx.correlation_id = correlation_id;
  ctx.respond_frame = [weak, sequence](Result<OutFrame> frame) {
    std::shared_ptr<Connection> self = weak.lock();
    if (!self || self->closed_) return;
    if (!frame.has_value()) {
      std::fprintf(stderr, "kafka: cannot encode a response: %s\n",
                   frame.error().to_string().c_str());
      self->close("response encoding failed");
      return;
    }
    self->complete(sequence, std::move(*frame));
  };
  if (!dispatch(ctx, std::move(decoded->body), std::move(respond))) {
    close("api not served");
  }
}

void Connection::complete(std::uint64_t sequence, std::optional<OutFrame> frame) {
  if (closed_) return;
  MQ_ASSERT(sequence >= first_sequence_ && sequence < first_sequence_ + slots_.size(),
            "response for an unknown request slot");
  Slot& slot = slots_[sequence - first_sequence_];
  MQ_ASSERT(!slot.done, "a request answered twice");
  slot.done = true;
  if (slot.read_ns != 0) {
    slot.answered_ns = steady_ns();
    timings_->on_answered(slot.answered_ns - slot.read_ns);
  }
  if (frame.has_value()) response_bytes_ += frame->size();
  slot.frame = std::move(frame);
  flush();
}

void Connection::flush() {
  if (closed_) return;
  // Strict request order: only the finished prefix of the queue goes out.
  while (!slots_.empty() && slots_.front().done) {
    if (slots_.front().answered_ns != 0) timings_->on_queued(steady_ns() - slots_.front().answered_ns);
    if (slots_.front().frame.has_value()) write_queue_.push_back(std::move(*slots_.front().frame));
    else ++stats_.responses;  // acks=0: answered by not answering
    slots_.pop_front();
    ++first_sequence_;
  }
  if (!writing_ && !write_pass_posted_ && !write_queue_.empty()) {
    write_queued();
    // Responses completed later in this loop turn (the other produce acks of one Raft Ready,
    // say) go out together in one write at the end of it, not one syscall each.
    if (!closed_) {
      write_pass_posted_ = true;
      asio::post(io_, [self = shared_from_this()] {
        self->write_pass_posted_ = false;
        self->flush();
      });
    }
  }
  if (closed_ || writing_ || write_pass_posted_ || !write_queue_.empty()) return;
  // Everything due is written: frames left buffered while the request slots were full (or
  // the response bytes above their bound) can go now.
  if (process_frames()) read_more();
}

namespace {
constexpr int kIovMax = 64;
}

void Connection::write_queued() {
  const int fd = socket_.native_handle();
  while (!write_queue_.empty() && !closed_) {
    const OutFrame& front = write_queue_.front();
    if (write_piece_ >= front.pieces().size()) {  // a frame without bytes
      consume_written(0);
      continue;
    }
    const OutFrame::Piece& piece = front.pieces()[write_piece_];
    ssize_t n = 0;
    if (piece.source == OutFrame::Source::kFile) {
      // Record batches straight from the page cache; the frame's bytes around them are
      // coalesced with them into full segments while corked.
      if (!corked_) set_cork(true);
      off_t offset = static_cast<off_t>(piece.offset + write_offset_);
      std::size_t length = static_cast<std::size_t>(
          std::min<std::uint64_t>(piece.length - write_offset_, 1u << 30));
      n = ::sendfile(fd, piece.fd, &offset, length);
      if (n == 0) {
        // The frame's size prefix is out: nothing else can be sent on this connection.
        std::fprintf(stderr, "kafka: fetch: a segment file is shorter than its index says\n");
        close("segment shorter than expected");
        return;
      }
    } else {
      // Gather the memory pieces up to the next file piece, across frames.
      iovec iov[kIovMax];
      int count = 0;
      bool stop = false;
      for (auto it = write_queue_.begin(); it != write_queue_.end() && !stop; ++it) {
        const bool is_front = it == write_queue_.begin();
        const auto& pieces = it->pieces();
        for (std::size_t i = is_front ? write_piece_ : 0; i < pieces.size(); ++i) {
          if (pieces[i].source == OutFrame::Source::kFile || count == kIovMax) {
            stop = true;
            break;
          }
          std::uint64_t skip = is_front && i == write_piece_ ? write_offset_ : 0;
          iov[count].iov_base = const_cast<std::uint8_t*>(it->data_of(pieces[i]) + skip);
          iov[count].iov_len = static_cast<std::size_t>(pieces[i].length - skip);
          ++count;
        }
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(count);
      n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      trace::point(trace::Stage::kKafkaWritten, static_cast<std::uint64_t>(n));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        writing_ = true;
        socket_.async_wait(asio::ip::tcp::socket::wait_write,
                           [self = shared_from_this()](const std::error_code& ec) {
                             self->writing_ = false;
                             if (self->closed_) return;
                             if (ec) {
                               self->close("write failed");
                               return;
                             }
                             self->flush();  // writes on, then resumes reading
                           });
        return;
      }
      close("write failed");
      return;
    }
    consume_written(static_cast<std::uint64_t>(n));
  }
  if (corked_ && !closed_) set_cork(false);
}

void Connection::consume_written(std::uint64_t n) {
  while (!write_queue_.empty()) {
    OutFrame& front = write_queue_.front();
    const auto& pieces = front.pieces();
    while (write_piece_ < pieces.size()) {
      std::uint64_t left = pieces[write_piece_].length - write_offset_;
      if (n < left) {
        write_offset_ += n;
        return;
      }
      n -= left;
      ++write_piece_;
      write_offset_ = 0;
    }
    response_bytes_ -= front.size();
    ++stats_.responses;
    write_queue_.pop_front();
    write_piece_ = 0;
    write_offset_ = 0;
  }
  MQ_ASSERT(n == 0, "more bytes written than queued");
}

void Connection::set_cork(bool on) {
  int value = on ? 1 : 0;
  // Best effort: without it the pieces still go out, in smaller segments.
  (void)::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_CORK, &value, sizeof value);
  corked_ = on;
}

}  // namespace mq::kafka
