// PeerLink: the outbound side of one peer. Owns the peer's bounded message queue (filled by
// any thread through enqueue()) and the one TCP connection that carries every Raft group's
// messages to the peer (driven on the transport thread).
//
// Connection state machine (transport thread):
//   kIdle ─start()→ kConnecting (resolve, connect, hello, wait for hello_ack; bounded by
//   connect_timeout) ─ack ok→ kConnected ─error/EOF/write timeout→ kBackoff ─timer→ kConnecting
//   any state ─close()→ kClosed (final)
// Back-off: the delay doubles from backoff_initial to backoff_max after each failure and is
// reset by a successful handshake; the wait is uniform in [delay/2, delay] (jitter) so that
// brokers restarted together do not reconnect in lock step.
#pragma once

#include <asio.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "transport/raft_rpc_codec.h"
#include "transport/transport_internal.h"

namespace mq::transport::detail {

class PeerLink : public std::enable_shared_from_this<PeerLink> {
 public:
  PeerLink(Context& context, BrokerId peer, std::string host, std::uint16_t port);

  BrokerId peer() const { return peer_; }
  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }

  // Any thread. Appends to the queue (dropping the oldest messages if it is full) and makes
  // sure a flush is scheduled. Returns false if the message itself was refused.
  bool enqueue(GroupId group, raft::Message message, std::uint64_t size_bytes);

  // Transport thread.
  void start();
  void close();  // final: cancels everything, drops the queue
  // Transport thread. The peer just connected to us, so it is up again: if this link waits
  // in reconnect back-off, connect now with the back-off reset (see Transport::on_handshake).
  void retry_now();

  // Transport thread (the caller's io_context thread, TransportOptions::io): writes now if a
  // flush was posted and not run yet (Transport::flush_on_caller).
  void flush_if_posted();

  PeerStats stats() const;  // any thread
  // Any thread: the established connection was closed or reset by the peer, as the kernel
  // knows right now (a poll, no read), possibly before the transport thread has handled it.
  bool connection_lost_now() const;

 private:
  enum class State { kIdle, kConnecting, kConnected, kBackoff, kClosed };
  struct Outbound {
    GroupId group;
    raft::Message message;
    std::uint64_t size_bytes;  // encoded message size
  };
  struct ChunkStream {  // a message too large for one frame, being sent in chunks
    GroupId group;
    std::uint64_t size_bytes = 0;  // counted in queue_bytes_ until fully written
    Buffer encoded;                // empty until it becomes the current stream
    raft::Message message;         // released once encoded
    std::uint32_t offset = 0;
    std::uint64_t message_id = 0;
  };

  void connect();
  void on_connected();
  void on_hello_ack();
  void fail(const std::string& reason);
  void schedule_reconnect();
  void arm_deadline(std::chrono::milliseconds timeout, const char* what);
  void disarm_deadline();
  void read_for_close();
  void arm_keepalive();
  void post_flush();
  void flush();
  bool build_write(Buffer& out, std::uint64_t* messages, std::uint64_t* frames);
  std::uint64_t append_chunk_frame(Buffer& out);
  void start_write(Buffer bytes, std::uint64_t messages, std::uint64_t frames);
  // With queue_mu_ held, direct_idle_ and the queue empty: encodes `message` as a one-item
  // MessageBatch frame and writes it to the socket without blocking (only if nothing was
  // written on the link for kDirectWriteQuietNs). Returns false if
  // nothing was written (the caller queues the message); a partial write leaves the rest in
  // direct_tail_ for the transport thread (a flush is then posted).
  bool try_write_direct(GroupId group, const raft::Message& message, bool* post);
  void on_write_done(std::size_t bytes, std::uint64_t messages, std::uint64_t frames);
  bool current(std::uint64_t generation) const {
    return generation == generation_ && state_ != State::kClosed;
  }

  Context& context_;
  // On a caller's io_context (TransportOptions::io) the context must outlive this object's
  // cancelled handlers, which may run after the Transport is gone; null otherwise.
  const std::shared_ptr<Context> keep_context_;
  const BrokerId peer_;
  const std::string host_;
  const std::uint16_t port_;

  // Guarded by queue_mu_ (any thread).
  mutable std::mutex queue_mu_;
  std::deque<Outbound> queue_;
  std::uint64_t queue_bytes_ = 0;  // queue_ plus chunk_streams_ (bytes not yet written)
  bool flush_posted_ = false;
  std::uint64_t dropped_ = 0;
  std::uint64_t messages_sent_ = 0;
  std::uint64_t connects_succeeded_ = 0;
  // Direct writes (try_write_direct): true while the transport thread is connected and has
  // nothing to write (not writing, queue, tail and chunk streams empty). Then the enqueuing
  // thread writes the message to the socket itself (non-blocking, under queue_mu_), saving
  // the hand-over to the transport thread and its wake-up on the path of every acks=all
  // produce (docs/benchmarks.md). Bytes a direct write could not send wait in direct_tail_,
  // which the transport thread writes before anything else. A message within
  // kDirectWriteQuietNs of the previous write is queued for the transport thread.
  bool direct_idle_ = false;
  Buffer direct_tail_;
  // 1 while direct_tail_ holds the rest of a message: that message counts as sent when the
  // write carrying the tail completes, as dropped if the connection is lost first.
  std::uint64_t direct_tail_messages_ = 0;
  // Steady-clock ns of the last write started on this connection (either path). A direct
  // write also needs the link quiet for kDirectWriteQuietNs: a link written to more often
  // (a steady load) keeps its writes, and their syscalls, on the transport thread, batched.
  std::int64_t last_write_ns_ = 0;
  bool connected_ = false;     // mirror of state_ == kConnected for stats()
  int connected_fd_ = -1;      // the connected socket's descriptor, for connection_lost_now()
  bool state_closed_ = false;  // mirror of state_ == kClosed for enqueue()
  // Invariant: queue_.size() <= queue_messages_max and queue_bytes_ <= queue_bytes_max.

  // Transport thread only.
  State state_ = State::kIdle;
  std::uint64_t generation_ = 0;  // bumped per connection attempt; stale handlers compare it
  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer deadline_;   // connect/handshake, then each write
  asio::steady_timer retry_;      // back-off
  asio::steady_timer keepalive_;
  std::chrono::milliseconds backoff_;
  std::uint64_t deadline_sequence_ = 0;  // a deadline handler acts only if still current
  std::uint64_t consecutive_failures_ = 0;
  bool writing_ = false;
  std::uint64_t write_messages_ = 0;  // messages in the write in progress
  std::chrono::steady_clock::time_point last_write_;
  Buffer write_buffer_;
  Buffer handshake_buffer_;
  Buffer ack_buffer_;
  std::uint8_t read_scratch_[64];
  std::deque<ChunkStream> chunk_streams_;
  std::uint64_t next_message_id_ = 1;
};

}  // namespace mq::transport::detail
