// Transport: inter-broker messaging for many Raft groups over TCP (Asio).
//
// One Transport per broker. It listens for inbound connections and keeps one outbound TCP
// connection to every peer broker added with add_peer(); that connection multiplexes the
// messages of every Raft group for that peer (wire format: docs/formats/raft_rpc_format.md).
// Each direction of a broker pair has its own connection: a broker sends on its outbound
// connections and receives on its inbound ones.
//
// Threads. The Transport owns an asio::io_context run by one thread it starts in start() and
// joins in stop(). send(), add_peer(), remove_peer(), stats() and peer_stats() are thread-safe
// and never block on the network: send() only appends to the peer's bounded queue. The
// callbacks (message, unreachable, log) are invoked on the transport's thread, one at a time;
// they must not block for long (every peer's traffic waits for them) and may call send(),
// add_peer() and remove_peer(), but not listen() or stop() (both wait for the transport
// thread; calling them from it is asserted against).
//
// Loss. Raft tolerates lost, duplicated and reordered messages (§5.3, §5.5), and the
// transport uses that freedom to stay bounded: a peer's queue holds at most
// queue_messages_max messages and queue_bytes_max bytes; when a new message does not fit, the
// oldest queued messages are dropped (counted in stats); messages in a write when a
// connection fails are lost. A slow or dead peer therefore never blocks the others nor grows
// memory. Messages to one peer that are delivered arrive in send() order, except that
// coalesced heartbeats may overtake the other messages queued with them.
//
// Failure reporting. Every failed connection attempt and every broken connection calls the
// unreachable callback with the peer's id (the host calls RawNode::report_unreachable for the
// groups it shares with that peer). The transport keeps reconnecting with exponential back-off
// and jitter while the peer is registered.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/strong_id.h"
#include "raft/types.h"
#include "transport/raft_rpc_format.h"

namespace asio {
class io_context;
}  // namespace asio

namespace mq::transport {

struct TransportOptions {
  BrokerId self;           // this broker; sent in the handshake
  // The io_context to run on. nullptr (default): the Transport owns one and runs it on a thread
  // of its own (see "Threads" above). Set: no thread of its own; sockets and timers live on
  // this io_context, which the caller runs on one thread (the broker's event loop), and every
  // callback is invoked on that thread. Received messages then reach the loop without a
  // hand-over between threads (no wake-up of a transport thread, none of the loop), and a
  // flush queued by the loop runs at the end of its turn. listen() and stop() must then be
  // called on that thread or while the io_context is not running; it must outlive the
  // Transport (handlers it still holds are cancelled and touch nothing of the Transport).
  asio::io_context* io = nullptr;
  std::string cluster_id;  // peers with another cluster id are refused (at most 255 bytes)

  // Wire limits (docs/formats/raft_rpc_format.md).
  std::uint32_t frame_bytes_max = kDefaultFrameBytesMax;  // inbound and outbound frame bodies
  std::uint32_t chunk_bytes = 1u << 20;         // larger messages are sent in chunks of this
  std::uint64_t message_bytes_max = 128u << 20;  // one encoded message (chunked or not)

  // Per-peer outbound queue bounds (drop oldest when full).
  std::uint32_t queue_messages_max = 16384;
  std::uint64_t queue_bytes_max = 128u << 20;
  std::uint64_t write_bytes_max = 4u << 20;  // bytes gathered into one socket write (soft)

  std::uint32_t inbound_connections_max = 256;

  // Time.
  std::chrono::milliseconds connect_timeout{1000};  // TCP connect + handshake
  std::chrono::milliseconds write_timeout{5000};    // one write; a peer not reading is dropped
  std::chrono::milliseconds idle_timeout{10000};    // inbound connection with no bytes
  std::chrono::milliseconds keepalive_interval{2000};  // outbound: send a Keepalive if idle
  std::chrono::milliseconds backoff_initial{50};    // reconnect delay, doubled per failure
  std::chrono::milliseconds backoff_max{2000};      // ... up to this; jitter: [d/2, d]

  std::uint64_t jitter_seed = 0;  // 0: derived from `self`

  // Checks every bound and their relations; kInvalidArgument naming the offending field.
  Status validate() const;
};

enum class LogLevel : std::uint8_t { kInfo, kWarning, kError };

struct TransportCallbacks {
  // A message from broker `from` for Raft group `group`. Transport thread.
  std::function<void(BrokerId from, GroupId group, raft::Message message)> on_message;
  // A connection attempt to `peer` failed or its connection broke. Transport thread.
  std::function<void(BrokerId peer)> on_unreachable;
  // One log line (no trailing newline). Transport thread (or the caller's, for errors in
  // calls such as listen()). Default: stderr.
  std::function<void(LogLevel level, std::string_view line)> on_log;
};

// Monotonic counters since construction (plain values: a snapshot).
struct TransportStats {
  std::uint64_t messages_sent = 0;      // written to a socket (each coalesced heartbeat counts)
  std::uint64_t messages_received = 0;  // handed to on_message
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t writes = 0;                 // socket writes (each gathers many frames)
  std::uint64_t heartbeats_coalesced = 0;   // heartbeat messages sent as compact records
  std::uint64_t heartbeat_frames_sent = 0;  // Heartbeats + HeartbeatResponses frames
  std::uint64_t chunks_sent = 0;
  std::uint64_t chunks_received = 0;
  std::uint64_t dropped_queue_full = 0;     // evicted (oldest) or refused for lack of room
  std::uint64_t dropped_too_large = 0;      // encoded message above message_bytes_max
  std::uint64_t dropped_unknown_peer = 0;   // send() to a peer not added (or stopped)
  std::uint64_t dropped_connection_lost = 0;  // in a write or chunk stream when it failed
  std::uint64_t connects_attempted = 0;
  std::uint64_t connects_succeeded = 0;     // handshake acknowledged
  std::uint64_t reconnects = 0;             // successes after a peer's first
  std::uint64_t connect_failures = 0;       // refused, timed out or handshake refused
  std::uint64_t disconnects = 0;            // established outbound connections lost
  std::uint64_t unreachable_reports = 0;
  std::uint64_t inbound_accepted = 0;       // handshakes accepted
  std::uint64_t inbound_refused = 0;        // handshakes refused (version, cluster, ...)
  std::uint64_t decode_errors = 0;          // inbound connections closed for bad bytes
  std::uint64_t idle_timeouts = 0;
  std::uint64_t write_timeouts = 0;
  std::uint64_t direct_writes = 0;  // messages written by the sending thread itself (idle link)
};

struct PeerStats {
  bool connected = false;
  std::uint64_t queued_messages = 0;
  std::uint64_t queued_bytes = 0;
  std::uint64_t dropped = 0;  // queue full, for this peer
  std::uint64_t messages_sent = 0;
  std::uint64_t connects_succeeded = 0;
};

class Transport {
 public:
  Transport(TransportOptions options, TransportCallbacks callbacks);
  ~Transport();  // stop()s
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Validates the options and starts the transport thread.
  Status start();
  // Binds and listens (port 0: an ephemeral port); returns the bound port. Call after start().
  Result<std::uint16_t> listen(const std::string& host, std::uint16_t port);
  // Registers (or re-addresses) a peer and starts connecting to it. A negative `peer` is a
  // local key for a link to an address rather than to a broker id: its hello asks for
  // whichever broker listens there (kAnyBrokerTarget) and accepts the ack of any broker, and
  // its failures are not reported to on_unreachable. Used to reach a broker whose id is not
  // known yet, or an address whose broker id may belong to another, registered broker
  // (cluster::Node's join). Messages from that broker arrive under its own id.
  Status add_peer(BrokerId peer, const std::string& host, std::uint16_t port);
  // Forgets a peer: closes its connection and drops its queue.
  void remove_peer(BrokerId peer);
  // Queues `message` for `group` on `to`'s connection. Returns false if it was dropped at
  // once (unknown peer, stopped, too large, no room); never blocks.
  bool send(BrokerId to, GroupId group, raft::Message message);
  // With TransportOptions::io, on its thread: writes what send() queued for every peer now
  // (what the calling handler sent is coalesced per peer, then written before it goes on),
  // instead of in a handler posted to the io_context, which runs after whatever the loop has
  // queued meanwhile. Without TransportOptions::io: nothing (the transport thread writes).
  void flush_on_caller();
  // Closes every socket, joins the thread. Idempotent. Callbacks are not invoked afterwards.
  void stop();

  TransportStats stats() const;
  std::optional<PeerStats> peer_stats(BrokerId peer) const;
  // Any thread: the connection to `peer` is established but its peer closed or reset it, as
  // the kernel reports right now — before the transport thread may have noticed (then
  // on_unreachable follows). False for an unknown peer or one not connected.
  bool peer_connection_lost_now(BrokerId peer) const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mq::transport
