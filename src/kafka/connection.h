// One client connection of the Kafka server. Reads 4-byte size-prefixed frames, decodes each
// request, hands it to dispatch() and writes the responses back strictly in request order
// (Kafka guarantees per-connection ordering; kafka-python pipelines ApiVersions and Metadata),
// even when a later request completes first.
//
// Bounds (ServerConfig): a frame above frame_size_bytes_max is refused from its size prefix and
// the connection closed; at inflight_requests_per_connection_max unanswered requests, or
// buffered_response_bytes_per_connection_max response bytes not yet written, the connection
// stops reading until it drains (back-pressure through TCP). A malformed frame closes this
// connection only. Single-threaded: everything runs on the server's io_context thread.
//
// Writing: responses are OutFrames (out_frame.h) written with non-blocking sendmsg(2) (the
// frames' own bytes and shared buffers, gathered) and sendfile(2) (a Fetch response's record
// batches, straight from the segment files: no copy in the broker), as soon as they are due;
// when the socket is full the connection waits for it to be writable.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "base/buffer.h"
#include "kafka/handlers.h"
#include "kafka/out_frame.h"
#include "kafka/produce_errors.h"
#include "kafka/produce_timings.h"
#include "kafka/server_config.h"

namespace mq::kafka {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Stats {
    std::uint64_t requests = 0;
    std::uint64_t responses = 0;
  };
  Connection(asio::ip::tcp::socket socket, const ServerConfig& config,
             cluster::ClusterApi& cluster, asio::io_context& io,
             std::function<void(Connection*)> on_closed, ProduceTimings* timings = nullptr,
             std::shared_ptr<ProduceErrors> produce_errors = nullptr);
  void start();
  // Closes the socket; pending handler callbacks find the connection gone and drop their
  // responses.
  void close(const char* reason);
  bool closed() const { return closed_; }
  const Stats& stats() const { return stats_; }

 private:
  struct Slot {
    bool done = false;
    std::optional<OutFrame> frame;  // nullopt when done: no response (Produce acks=0)
    // Produce requests, when timings_ is set (steady clock, ns): read, answer complete.
    std::int64_t read_ns = 0;
    std::int64_t answered_ns = 0;
  };
  bool may_read() const;
  void read_more();
  void on_read(const std::error_code& ec, std::size_t n);
  // Handles every complete frame in the read buffer; false when the connection was closed.
  bool process_frames();
  void handle_frame(BufferView payload);
  void complete(std::uint64_t sequence, std::optional<OutFrame> frame);
  void flush();
  // Writes queued frames until done or the socket is full (then waits for it to be writable).
  void write_queued();
  // Consumes `n` written bytes from the front of the queue; counts finished frames.
  void consume_written(std::uint64_t n);
  void set_cork(bool on);

  asio::ip::tcp::socket socket_;
  const ServerConfig& config_;
  cluster::ClusterApi& cluster_;
  asio::io_context& io_;
  std::function<void(Connection*)> on_closed_;
  Buffer read_buffer_;            // unconsumed bytes, at most one frame + one read chunk
  std::vector<std::uint8_t> chunk_;
  bool reading_ = false;
  bool writing_ = false;
  bool processing_ = false;  // inside process_frames (guards re-entry)
  bool closed_ = false;
  // Requests in arrival order; front() has sequence first_sequence_.
  std::deque<Slot> slots_;
  std::uint64_t first_sequence_ = 0;
  std::deque<OutFrame> write_queue_;  // due frames, in order; the front is being written
  std::size_t write_piece_ = 0;       // first unwritten piece of the front frame
  std::uint64_t write_offset_ = 0;    // bytes of that piece already written
  bool corked_ = false;               // TCP_CORK while file pieces are sent
  bool write_pass_posted_ = false;    // a flush() at the end of this loop turn is posted
  std::size_t response_bytes_ = 0;    // bytes in slots_ and write_queue_
  Stats stats_;
  ProduceTimings* timings_;  // nullptr: not recorded (ServerConfig::produce_timings_log_ms)
  std::shared_ptr<ProduceErrors> produce_errors_;  // null: not counted
};

}  // namespace mq::kafka
