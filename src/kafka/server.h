// The Kafka-facing TCP server: accepts client connections on one address and serves them on
// the broker's event loop (one asio::io_context thread, docs/architecture.md). Connections
// beyond ServerConfig::connections_max are closed at once. stop() closes the listener and
// every connection; in-flight handler callbacks then find their connection gone.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "base/result.h"
#include "cluster/api.h"
#include "kafka/connection.h"
#include "kafka/server_config.h"

namespace mq::kafka {

class Server {
 public:
  Server(asio::io_context& io, cluster::ClusterApi& cluster, ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting. Errors: kIoError (address in use, bad host).
  Status start();
  void stop();
  std::uint16_t port() const { return port_; }
  std::size_t connection_count() const { return connections_.size(); }
  std::uint64_t refused_connections() const { return refused_connections_; }
  // Produce timings of the current interval (nullptr when produce_timings_log_ms is 0).
  ProduceTimings* produce_timings() { return timings_.get(); }
  // Produce error answers of the current interval (nullptr when produce_error_log_ms is 0).
  ProduceErrors* produce_errors() { return errors_.get(); }

 private:
  void accept();
  void log_timings_later();
  void log_errors_later();
  void log_errors(const std::string& line) const;

  asio::io_context& io_;
  cluster::ClusterApi& cluster_;
  ServerConfig config_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
  std::map<Connection*, std::shared_ptr<Connection>> connections_;
  std::uint64_t refused_connections_ = 0;
  std::unique_ptr<ProduceTimings> timings_;
  asio::steady_timer timings_timer_;
  std::shared_ptr<ProduceErrors> errors_;  // shared with Produce requests still in flight
  asio::steady_timer errors_timer_;
};

}  // namespace mq::kafka
