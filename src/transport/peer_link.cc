#include "transport/peer_link.h"

#include <algorithm>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "base/le_codec.h"
#include "base/trace.h"

namespace mq::transport::detail {

namespace {

// Shorter than any gap between two single in-flight produces (a client round trip), longer
// than the gaps between writes of a loaded link.
constexpr std::int64_t kDirectWriteQuietNs = 50'000;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Appends items to frames of one type, starting a new frame whenever the next item would take
// the body past body_bytes_max. Bodies start with a u32 item count.
class FrameSequence {
 public:
  FrameSequence(Buffer& out, FrameType type, std::size_t body_bytes_max)
      : out_(out), type_(type), body_bytes_max_(body_bytes_max) {}
  ~FrameSequence() { close(); }

  void before_item(std::size_t item_bytes) {
    if (open_ && out_.size() - frame_offset_ - kFrameHeaderSize + item_bytes > body_bytes_max_) {
      close();
    }
    if (!open_) {
      frame_offset_ = begin_frame(out_);
      count_offset_ = out_.size();
      le::put_u32(out_, 0);
      count_ = 0;
      open_ = true;
      ++frames_;
    }
    ++count_;
  }
  void close() {
    if (!open_) return;
    le::encode_u32(out_.data() + count_offset_, count_);
    finish_frame(out_, frame_offset_, type_);
    open_ = false;
  }
  std::uint64_t frames() const { return frames_; }

 private:
  Buffer& out_;
  const FrameType type_;
  const std::size_t body_bytes_max_;
  bool open_ = false;
  std::size_t frame_offset_ = 0;
  std::size_t count_offset_ = 0;
  std::uint32_t count_ = 0;
  std::uint64_t frames_ = 0;
};

}  // namespace

PeerLink::PeerLink(Context& context, BrokerId peer, std::string host, std::uint16_t port)
    : context_(context),
      keep_context_(context.options.io != nullptr ? context.shared_from_this() : nullptr),
      peer_(peer),
      host_(std::move(host)),
      port_(port),
      resolver_(context.io),
      socket_(context.io),
      deadline_(context.io),
      retry_(context.io),
      keepalive_(context.io),
      backoff_(context.options.backoff_initial) {}

bool PeerLink::enqueue(GroupId group, raft::Message message, std::uint64_t size_bytes) {
  trace::point(trace::Stage::kTransportEnqueue, group.value(), static_cast<std::uint64_t>(message.type));
  const TransportOptions& o = context_.options;
  std::uint64_t evicted = 0;
  bool refused = false;
  bool post = false;
  {
    std::lock_guard lock(queue_mu_);
    if (state_closed_) return false;
    // Make room by dropping the oldest messages: newer ones carry newer terms and indexes,
    // and Raft retransmits whatever a follower still needs (§5.3).
    while (!queue_.empty() && (queue_.size() + 1 > o.queue_messages_max ||
                               queue_bytes_ + size_bytes > o.queue_bytes_max)) {
      queue_bytes_ -= queue_.front().size_bytes;
      queue_.pop_front();
      ++evicted;
    }
    if (queue_bytes_ + size_bytes > o.queue_bytes_max) {
      refused = true;  // the chunk streams being written hold the room
    } else if (direct_idle_ && queue_.empty() && size_bytes <= o.chunk_bytes &&
               !coalescable(message) && try_write_direct(group, message, &post)) {
      // written (or its tail left to the transport thread)
    } else {
      queue_.push_back(Outbound{group, std::move(message), size_bytes});
      queue_bytes_ += size_bytes;
      if (!flush_posted_) {
        flush_posted_ = true;
        post = true;
      }
    }
    dropped_ += evicted + (refused ? 1 : 0);
    MQ_DASSERT(queue_.size() <= o.queue_messages_max);
    MQ_DASSERT(queue_bytes_ <= o.queue_bytes_max);
  }
  if (evicted > 0 || refused) {
    context_.counters.add(context_.counters.dropped_queue_full, evicted + (refused ? 1 : 0));
  }
  if (post) post_flush();
  return !refused;
}

bool PeerLink::try_write_direct(GroupId group, const raft::Message& message, bool* post) {
  if (connected_fd_ < 0) return false;
  const std::int64_t now = steady_ns();
  if (now - last_write_ns_ < kDirectWriteQuietNs) return false;
  thread_local Buffer out;
  out.clear();
  {
    FrameSequence batch(out, FrameType::kMessageBatch, context_.options.frame_bytes_max);
    batch.before_item(kBatchItemHeaderSize + encoded_message_size(message));
    append_batch_item(out, group, message);
  }
  ssize_t n = ::send(connected_fd_, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0 && errno == EINTR) n = ::send(connected_fd_, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n <= 0) return false;  // would block or failed: the transport thread writes (and sees errors)
  trace::point(trace::Stage::kTransportWrite, 1, out.size());
  const auto written = static_cast<std::size_t>(n);
  last_write_ns_ = now;
  if (written < out.size()) {
    // The rest of this frame must go out before anything else on this connection: the
    // transport thread writes it (and re-opens the direct path once nothing is left).
    direct_tail_.append(out.data() + written, out.size() - written);
    direct_tail_messages_ = 1;  // sent (or lost with the connection) with the tail's write
    direct_idle_ = false;
    if (!flush_posted_) {
      flush_posted_ = true;
      *post = true;
    }
    Counters& c = context_.counters;
    c.add(c.direct_writes);
    c.add(c.bytes_sent, written);
    return true;
  }
  // Written whole: the transport thread is not woken at all (a wake-up on two busy cores
  // competes with the receiver for the CPU). The next message within kDirectWriteQuietNs
  // is queued and batched by the transport thread as before.
  ++messages_sent_;
  Counters& c = context_.counters;
  c.add(c.direct_writes);
  c.add(c.bytes_sent, written);
  c.add(c.frames_sent);
  c.add(c.messages_sent);
  return true;
}

void PeerLink::post_flush() {
  asio::post(context_.io, [self = shared_from_this()] { self->flush(); });
}

void PeerLink::flush_if_posted() {
  {
    std::lock_guard lock(queue_mu_);
    if (!flush_posted_) return;
  }
  flush();  // the posted flush then finds nothing (or a write in progress) and returns
}

PeerStats PeerLink::stats() const {
  std::lock_guard lock(queue_mu_);
  PeerStats s;
  s.connected = connected_;
  s.queued_messages = queue_.size();
  s.queued_bytes = queue_bytes_;
  s.dropped = dropped_;
  s.messages_sent = messages_sent_;
  s.connects_succeeded = connects_succeeded_;
  return s;
}

void PeerLink::start() {
  MQ_ASSERT(state_ == State::kIdle);
  connect();
}

void PeerLink::retry_now() {
  if (state_ != State::kBackoff) return;
  retry_.cancel();  // its handler sees state_ != kBackoff (or a newer generation) and returns
  backoff_ = context_.options.backoff_initial;
  connect();
}

void PeerLink::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  ++generation_;
  {
    std::lock_guard lock(queue_mu_);  // before the socket closes: see connection_lost_now()
    state_closed_ = true;
    connected_ = false;
    connected_fd_ = -1;
    direct_idle_ = false;
    direct_tail_.clear();
    direct_tail_messages_ = 0;
    queue_.clear();
    queue_bytes_ = 0;
  }
  asio::error_code ignored;
  resolver_.cancel();
  socket_.close(ignored);
  deadline_.cancel();
  retry_.cancel();
  keepalive_.cancel();
  chunk_streams_.clear();
}

bool PeerLink::connection_lost_now() const {
  // Holding queue_mu_ keeps the descriptor open (fail() and close() clear connected_fd_ under
  // it before closing the socket), so the poll never looks at a reused descriptor.
  std::lock_guard lock(queue_mu_);
  if (connected_fd_ < 0) return false;
  pollfd p{};
  p.fd = connected_fd_;
#ifdef POLLRDHUP
  p.events = POLLRDHUP;
#else
  p.events = POLLIN;  // the peer never sends after the handshake: readable means EOF or reset
#endif
  return ::poll(&p, 1, 0) == 1 && (p.revents & (p.events | POLLHUP | POLLERR)) != 0;
}

void PeerLink::arm_deadline(std::chrono::milliseconds timeout, const char* what) {
  deadline_.expires_after(timeout);
  const std::uint64_t sequence = ++deadline_sequence_;
  deadline_.async_wait([self = shared_from_this(), generation = generation_, sequence,
                        what](const asio::error_code& error) {
    if (error || !self->current(generation) || sequence != self->deadline_sequence_) return;
    if (self->state_ == State::kConnected) {
      self->context_.counters.add(self->context_.counters.write_timeouts);
    }
    self->fail(std::string(what) + " timed out");
  });
}

void PeerLink::disarm_deadline() {
  ++deadline_sequence_;
  deadline_.cancel();
}

void PeerLink::connect() {
  state_ = State::kConnecting;
  const std::uint64_t generation = ++generation_;
  context_.counters.add(context_.counters.connects_attempted);
  asio::error_code ignored;
  socket_.close(ignored);
  arm_deadline(context_.options.connect_timeout, "connect and handshake");
  resolver_.async_resolve(
      host_, std::to_string(port_),
      [self = shared_from_this(), generation](const asio::error_code& error,
                                              asio::ip::tcp::resolver::results_type endpoints) {
        if (!self->current(generation)) return;
        if (error) {
          self->fail("cannot resolve " + self->host_ + ": " + error.message());
          return;
        }
        asio::async_connect(self->socket_, endpoints,
                            [self, generation](const asio::error_code& error,
                                               const asio::ip::tcp::endpoint&) {
                              if (!self->current(generation)) return;
                              if (error) {
                                self->fail("connect failed: " + error.message());
                                return;
                              }
                              self->on_connected();
                            });
      });
}

void PeerLink::on_connected() {
  asio::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  handshake_buffer_.clear();
  // A link to an address (negative key, transport.h) asks for whichever broker listens there.
  const BrokerId target = peer_.value() < 0 ? BrokerId(kAnyBrokerTarget) : peer_;
  encode_hello(Hello{kMaxProtocolVersion, context_.options.self, target, context_.options.cluster_id},
               handshake_buffer_);
  const std::uint64_t generation = generation_;
  asio::async_write(socket_, asio::buffer(handshake_buffer_.data(), handshake_buffer_.size()),
                    [self = shared_from_this(), generation](const asio::error_code& error,
                                                            std::size_t) {
                      if (!self->current(generation)) return;
                      if (error) self->fail("cannot send hello: " + error.message());
                    });
  ack_buffer_.resize(kHelloAckSize);
  asio::async_read(socket_, asio::buffer(ack_buffer_.data(), kHelloAckSize),
                   [self = shared_from_this(), generation](const asio::error_code& error,
                                                           std::size_t) {
                     if (!self->current(generation)) return;
                     if (error) {
                       self->fail("no hello ack (" + error.message() + ")");
                       return;
                     }
                     self->on_hello_ack();
                   });
}

void PeerLink::on_hello_ack() {
  auto ack = decode_hello_ack(ack_buffer_.view());
  if (!ack.has_value()) {
    fail("bad hello ack: " + ack.error().message());
    return;
  }
  if (ack->status != HelloStatus::kOk) {
    fail(std::string("refused by the peer: ") + hello_status_name(ack->status) +
         " (it speaks version " + std::to_string(ack->version) + ", we speak " +
         std::to_string(kMinProtocolVersion) + ".." + std::to_string(kMaxProtocolVersion) + ")");
    return;
  }
  if (ack->version < kMinProtocolVersion || ack->version > kMaxProtocolVersion) {
    fail("peer chose unsupported protocol version " + std::to_string(ack->version));
    return;
  }
  if (ack->broker_id != peer_ && peer_.value() >= 0) {
    fail("reached broker " + std::to_string(ack->broker_id.value()) + " instead");
    return;
  }
  disarm_deadline();
  state_ = State::kConnected;
  backoff_ = context_.options.backoff_initial;
  consecutive_failures_ = 0;
  bool reconnect = false;
  {
    std::lock_guard lock(queue_mu_);
    reconnect = connects_succeeded_ > 0;
    ++connects_succeeded_;
    connected_ = true;
    connected_fd_ = socket_.native_handle();
  }
  context_.counters.add(context_.counters.connects_succeeded);
  if (reconnect) context_.counters.add(context_.counters.reconnects);
  context_.log(LogLevel::kInfo, "connected to broker %d at %s:%u", peer_.value(), host_.c_str(),
               static_cast<unsigned>(port_));
  // A chunk stream interrupted by the old connection starts over under a new message id
  // (the receiver's reassembly state died with that connection).
  if (!chunk_streams_.empty() && !chunk_streams_.front().encoded.empty()) {
    chunk_streams_.front().offset = 0;
    chunk_streams_.front().message_id = next_message_id_++;
  }
  last_write_ = std::chrono::steady_clock::now();
  read_for_close();
  arm_keepalive();
  flush();
}

void PeerLink::read_for_close() {
  socket_.async_read_some(asio::buffer(read_scratch_, sizeof(read_scratch_)),
                          [self = shared_from_this(), generation = generation_](
                              const asio::error_code& error, std::size_t) {
                            if (!self->current(generation)) return;
                            if (error == asio::error::eof) {
                              self->fail("connection closed by the peer");
                            } else if (error) {
                              self->fail("connection error: " + error.message());
                            } else {
                              self->fail("unexpected bytes from the peer after the handshake");
                            }
                          });
}

void PeerLink::arm_keepalive() {
  keepalive_.expires_after(context_.options.keepalive_interval);
  keepalive_.async_wait([self = shared_from_this(),
                         generation = generation_](const asio::error_code& error) {
    if (error || !self->current(generation) || self->state_ != State::kConnected) return;
    const auto since = std::chrono::steady_clock::now() - self->last_write_;
    if (!self->writing_ && since >= self->context_.options.keepalive_interval) {
      Buffer out;
      append_frame(out, FrameType::kKeepalive, {});
      self->start_write(std::move(out), 0, 1);
    }
    self->arm_keepalive();
  });
}

void PeerLink::fail(const std::string& reason) {
  if (state_ == State::kClosed) return;
  const bool was_connected = state_ == State::kConnected;
  if (writing_) {
    context_.counters.add(context_.counters.dropped_connection_lost, write_messages_);
    writing_ = false;
  }
  ++generation_;
  std::uint64_t tail_lost = 0;
  {
    std::lock_guard lock(queue_mu_);  // before the socket closes: see connection_lost_now()
    connected_ = false;
    connected_fd_ = -1;
    // A partial frame must not start the next connection; Raft retransmits what it needs.
    direct_idle_ = false;
    direct_tail_.clear();
    tail_lost = std::exchange(direct_tail_messages_, 0);
  }
  if (tail_lost > 0) context_.counters.add(context_.counters.dropped_connection_lost, tail_lost);
  asio::error_code ignored;
  resolver_.cancel();
  socket_.close(ignored);
  disarm_deadline();
  keepalive_.cancel();
  if (was_connected) {
    context_.counters.add(context_.counters.disconnects);
    context_.log(LogLevel::kWarning, "lost connection to broker %d at %s:%u: %s", peer_.value(),
                 host_.c_str(), static_cast<unsigned>(port_), reason.c_str());
  } else {
    context_.counters.add(context_.counters.connect_failures);
    // A dead peer fails every couple of seconds: log the first failure and then every 30th.
    if (consecutive_failures_ % 30 == 0) {
      context_.log(LogLevel::kWarning, "cannot connect to broker %d at %s:%u: %s (attempt %llu)",
                   peer_.value(), host_.c_str(), static_cast<unsigned>(port_), reason.c_str(),
                   static_cast<unsigned long long>(consecutive_failures_ + 1));
    }
    ++consecutive_failures_;
  }
  context_.counters.add(context_.counters.unreachable_reports);
  // Links to an address (negative keys) are no broker's: nothing to report for them.
  if (context_.callbacks.on_unreachable && !context_.stopping.load() && peer_.value() >= 0) {
    context_.callbacks.on_unreachable(peer_);
  }
  if (state_ != State::kClosed) schedule_reconnect();  // the callback may have removed us
}

void PeerLink::schedule_reconnect() {
  state_ = State::kBackoff;
  const auto delay_ms = static_cast<std::uint64_t>(backoff_.count());
  // Jitter: uniform in [delay/2, delay].
  const auto wait = std::chrono::milliseconds(context_.prng.range(delay_ms / 2, delay_ms));
  backoff_ = std::min(backoff_ * 2, context_.options.backoff_max);
  retry_.expires_after(wait);
  retry_.async_wait([self = shared_from_this(), generation = generation_](
                        const asio::error_code& error) {
    if (error || !self->current(generation) || self->state_ != State::kBackoff) return;
    self->connect();
  });
}

void PeerLink::flush() {
  if (state_ != State::kConnected || writing_) return;  // on_connected/on_write_done flush
  // Reuse the last write's buffer (kept by on_write_done): a fresh multi-MiB buffer per write
  // cost an allocation and its page faults on every write under a produce load.
  Buffer out = std::move(write_buffer_);
  out.clear();
  std::uint64_t messages = 0;
  std::uint64_t frames = 0;
  if (!build_write(out, &messages, &frames)) {
    write_buffer_ = std::move(out);
    return;
  }
  start_write(std::move(out), messages, frames);
}

void PeerLink::start_write(Buffer bytes, std::uint64_t messages, std::uint64_t frames) {
  MQ_ASSERT(!writing_);
  MQ_ASSERT(state_ == State::kConnected);
  writing_ = true;
  {
    std::lock_guard lock(queue_mu_);  // no direct write while this one is in progress
    direct_idle_ = false;
    last_write_ns_ = steady_ns();
  }
  write_messages_ = messages;
  write_buffer_ = std::move(bytes);
  arm_deadline(context_.options.write_timeout, "write");
  trace::point(trace::Stage::kTransportWrite, messages, write_buffer_.size());
  asio::async_write(socket_, asio::buffer(write_buffer_.data(), write_buffer_.size()),
                    [self = shared_from_this(), generation = generation_, messages, frames](
                        const asio::error_code& error, std::size_t bytes) {
                      if (!self->current(generation)) return;
                      if (error) {
                        self->fail("write failed: " + error.message());
                        return;
                      }
                      self->on_write_done(bytes, messages, frames);
                    });
}

void PeerLink::on_write_done(std::size_t bytes, std::uint64_t messages, std::uint64_t frames) {
  disarm_deadline();
  writing_ = false;
  last_write_ = std::chrono::steady_clock::now();
  Counters& c = context_.counters;
  c.add(c.writes);
  c.add(c.bytes_sent, bytes);
  c.add(c.frames_sent, frames);
  c.add(c.messages_sent, messages);
  {
    std::lock_guard lock(queue_mu_);
    messages_sent_ += messages;
  }
  // Keep the write buffer's capacity for the next write unless it grew unusually large.
  if (write_buffer_.capacity() > 2 * context_.options.write_bytes_max) write_buffer_ = Buffer();
  flush();
}

// Gathers queued messages into frames: the coalesced heartbeats first, then one or more
// MessageBatch frames in queue order, then at most one chunk of a large message. Returns false
// when there is nothing to write.
bool PeerLink::build_write(Buffer& out, std::uint64_t* messages, std::uint64_t* frames) {
  const TransportOptions& o = context_.options;
  std::vector<Outbound> items;
  std::uint64_t tail_messages = 0;  // the message whose direct write left this tail
  {
    std::lock_guard lock(queue_mu_);
    flush_posted_ = false;
    // The rest of a partial direct write goes first.
    if (!direct_tail_.empty()) {
      out.append(direct_tail_.data(), direct_tail_.size());
      direct_tail_.clear();
      tail_messages = std::exchange(direct_tail_messages_, 0);
    }
    std::uint64_t taken = 0;
    while (!queue_.empty() &&
           (taken == 0 || taken + queue_.front().size_bytes <= o.write_bytes_max)) {
      Outbound& front = queue_.front();
      taken += front.size_bytes;
      if (front.size_bytes > o.chunk_bytes) {
        // Stays counted in queue_bytes_ until its last chunk is written.
        chunk_streams_.push_back(ChunkStream{front.group, front.size_bytes, Buffer(),
                                             std::move(front.message), 0, 0});
      } else {
        queue_bytes_ -= front.size_bytes;
        items.push_back(std::move(front));
      }
      queue_.pop_front();
    }
    // More left: on_write_done() will flush again. Nothing at all: until the next write the
    // enqueuing threads may write directly (flush() runs only connected and not writing).
    direct_idle_ = out.empty() && items.empty() && chunk_streams_.empty();
  }
  // One allocation for the whole write: items plus per-item and per-frame overheads.
  std::size_t estimate = 256;
  for (const Outbound& item : items) estimate += kBatchItemHeaderSize + item.size_bytes;
  if (!chunk_streams_.empty()) estimate += kFrameHeaderSize + kChunkHeaderSize + o.chunk_bytes;
  out.reserve(estimate);
  const std::size_t body_max = o.frame_bytes_max;
  std::uint64_t heartbeats = 0;
  std::uint64_t heartbeat_frames = 0;
  for (raft::MessageType type : {raft::MessageType::kHeartbeat,
                                 raft::MessageType::kHeartbeatResponse}) {
    FrameSequence sequence(out,
                           type == raft::MessageType::kHeartbeat ? FrameType::kHeartbeats
                                                                 : FrameType::kHeartbeatResponses,
                           body_max);
    for (const Outbound& item : items) {
      if (item.message.type != type || !coalescable(item.message)) continue;
      sequence.before_item(heartbeat_record_size(item.group, item.message));
      append_heartbeat_record(out, item.group, item.message);
      ++heartbeats;
    }
    sequence.close();
    heartbeat_frames += sequence.frames();
  }
  FrameSequence batch(out, FrameType::kMessageBatch, body_max);
  for (const Outbound& item : items) {
    if (coalescable(item.message)) continue;
    batch.before_item(kBatchItemHeaderSize + item.size_bytes);
    append_batch_item(out, item.group, item.message);
  }
  batch.close();
  *messages = items.size() + tail_messages;
  *frames = heartbeat_frames + batch.frames();
  Counters& c = context_.counters;
  c.add(c.heartbeats_coalesced, heartbeats);
  c.add(c.heartbeat_frames_sent, heartbeat_frames);
  if (!chunk_streams_.empty()) {
    *messages += append_chunk_frame(out);
    *frames += 1;
  }
  return !out.empty();
}

// Appends the next chunk of the first chunk stream; returns 1 if that finished the message.
std::uint64_t PeerLink::append_chunk_frame(Buffer& out) {
  ChunkStream& stream = chunk_streams_.front();
  if (stream.encoded.empty()) {
    encode_message(stream.message, stream.encoded);
    stream.message = raft::Message();
    stream.message_id = next_message_id_++;
    stream.offset = 0;
    MQ_ASSERT(stream.encoded.size() == stream.size_bytes);
  }
  const std::size_t n =
      std::min<std::size_t>(context_.options.chunk_bytes, stream.encoded.size() - stream.offset);
  const std::size_t frame = begin_frame(out);
  append_chunk(out,
               ChunkHeader{stream.group, stream.message_id,
                           static_cast<std::uint32_t>(stream.encoded.size()), stream.offset},
               stream.encoded.view(stream.offset, n));
  finish_frame(out, frame, FrameType::kMessageChunk);
  context_.counters.add(context_.counters.chunks_sent);
  stream.offset += static_cast<std::uint32_t>(n);
  if (stream.offset < stream.encoded.size()) return 0;
  const std::uint64_t size = stream.size_bytes;
  chunk_streams_.pop_front();
  std::lock_guard lock(queue_mu_);
  queue_bytes_ -= size;
  return 1;
}

}  // namespace mq::transport::detail
