// Pieces shared by the Transport's implementation files (not part of its interface).
#pragma once

#include <asio.hpp>
#include <atomic>
#include <cstdarg>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/prng.h"
#include "transport/transport.h"

namespace mq::transport::detail {

#define MQ_TRANSPORT_COUNTERS(X)                                                            \
  X(messages_sent) X(messages_received) X(frames_sent) X(frames_received) X(bytes_sent)      \
  X(bytes_received) X(writes) X(heartbeats_coalesced) X(heartbeat_frames_sent)              \
  X(chunks_sent) X(chunks_received) X(dropped_queue_full) X(dropped_too_large)              \
  X(dropped_unknown_peer) X(dropped_connection_lost) X(connects_attempted)                  \
  X(connects_succeeded) X(reconnects) X(connect_failures) X(disconnects)                    \
  X(unreachable_reports) X(inbound_accepted) X(inbound_refused) X(decode_errors)            \
  X(idle_timeouts) X(write_timeouts) X(direct_writes)

struct Counters {
#define MQ_TRANSPORT_COUNTER_FIELD(name) std::atomic<std::uint64_t> name{0};
  MQ_TRANSPORT_COUNTERS(MQ_TRANSPORT_COUNTER_FIELD)
#undef MQ_TRANSPORT_COUNTER_FIELD

  void add(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
  TransportStats snapshot() const {
    TransportStats s;
#define MQ_TRANSPORT_COUNTER_COPY(name) s.name = name.load(std::memory_order_relaxed);
    MQ_TRANSPORT_COUNTERS(MQ_TRANSPORT_COUNTER_COPY)
#undef MQ_TRANSPORT_COUNTER_COPY
    return s;
  }
};
#define MQ_TRANSPORT_COUNTER_ONE(name) +1
static_assert(sizeof(TransportStats) ==
                  sizeof(std::uint64_t) * (0 MQ_TRANSPORT_COUNTERS(MQ_TRANSPORT_COUNTER_ONE)),
              "every TransportStats field must be listed in MQ_TRANSPORT_COUNTERS");
#undef MQ_TRANSPORT_COUNTER_ONE

// State every connection object reaches: immutable options and callbacks, shared counters,
// and io-thread-only helpers. Owned by a shared_ptr that every PeerLink and InboundConnection
// also holds: on a caller's io_context (TransportOptions::io) their handlers may run after the
// Transport is gone (cancelled, they only look at their own state and this).
struct Context : std::enable_shared_from_this<Context> {
  Context(TransportOptions o, TransportCallbacks c)
      : options(std::move(o)),
        callbacks(std::move(c)),
        io(options.io != nullptr ? *options.io : own_io.emplace()),
        prng(options.jitter_seed != 0 ? options.jitter_seed
                                       : 0x9e3779b97f4a7c15ull ^ static_cast<std::uint64_t>(
                                                                      options.self.value())) {}

  const TransportOptions options;
  const TransportCallbacks callbacks;
  Counters counters;
  std::optional<asio::io_context> own_io;  // unless TransportOptions::io
  asio::io_context& io;
  std::atomic<bool> stopping{false};
  Prng prng;  // io thread only: reconnect jitter

  void log(LogLevel level, const char* format, ...) __attribute__((format(printf, 3, 4)));
};

}  // namespace mq::transport::detail
