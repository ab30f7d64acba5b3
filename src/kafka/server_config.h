// Bounds and switches of the Kafka-facing server. Every limit is named with its unit and is
// enforced in connection.cc / server.cc (DESIGN.md principle 5); docs/operations.md lists them
// with the `raftmq serve` flags that set them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/headers.h"

namespace mq::kafka {

struct ServerConfig {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 9092;  // 0: pick an ephemeral port (tests)
  // A request frame above this is refused from its 4-byte prefix, before any allocation, and
  // the connection is closed (Kafka's socket.request.max.bytes).
  std::size_t frame_size_bytes_max = protocol::kFrameSizeBytesMaxDefault;
  // Accepted connections beyond this are closed at once (Kafka's max.connections).
  std::size_t connections_max = 4096;
  // Requests read from one connection and not yet answered; at the bound the connection stops
  // reading (back-pressure) until responses go out.
  std::size_t inflight_requests_per_connection_max = 64;
  // Response bytes of one connection waiting to be written; above it reading stops as well.
  std::size_t buffered_response_bytes_per_connection_max = 64 * 1024 * 1024;
  // Bytes read per socket read call.
  std::size_t read_chunk_bytes = 64 * 1024;
  // Caps on what a Fetch may ask for: the response bytes and the long-poll wait.
  std::size_t fetch_response_bytes_max = 64 * 1024 * 1024;
  std::int32_t fetch_wait_ms_max = 30'000;
  // Metadata naming a topic with a partition without a leader (an election under way, typically
  // a leader that just died) waits up to this long for a leader before answering
  // LEADER_NOT_AVAILABLE. A client told "no leader" asks again only on its own timer (librdkafka:
  // 250 ms to 1 s later), which was most of a failover's pause once the election itself took
  // 30-200 ms. 0: answer at once (Kafka's behaviour). Requests for every topic never wait.
  std::int32_t metadata_leader_wait_ms = 500;
  // Metadata for an unknown topic creates it (Kafka's auto.create.topics.enable). Off by default.
  bool auto_create_topics = false;
  // > 0: the server times every Produce request (kafka/produce_timings.h) and logs a summary
  // on stderr every this many ms; 0: off. The environment variable
  // RAFTMQ_LOG_PRODUCE_TIMINGS_MS sets it when this is 0 (a diagnostic for benchmark runs).
  std::int64_t produce_timings_log_ms = 0;
  // Produce error answers (NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, ...) are counted per
  // topic, partition and error and logged on stderr as one line per this many ms in which any
  // occurred (kafka/produce_errors.h); 0: not logged.
  std::int64_t produce_error_log_ms = 1000;
};

}  // namespace mq::kafka
