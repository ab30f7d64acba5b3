#include "kafka/server.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include <asio/ip/address.hpp>

namespace mq::kafka {

Server::Server(asio::io_context& io, cluster::ClusterApi& cluster, ServerConfig config)
    : io_(io), cluster_(cluster), config_(std::move(config)), acceptor_(io), timings_timer_(io),
      errors_timer_(io) {
  if (config_.produce_timings_log_ms == 0) {
    if (const char* env = std::getenv("RAFTMQ_LOG_PRODUCE_TIMINGS_MS")) {
      config_.produce_timings_log_ms = std::max<long long>(0, std::atoll(env));
    }
  }
  if (config_.produce_timings_log_ms > 0) timings_ = std::make_unique<ProduceTimings>();
  if (config_.produce_error_log_ms > 0) {
    errors_ = std::make_shared<ProduceErrors>();
    errors_->on_first = [this] { log_errors_later(); };
  }
}

Server::~Server() { stop(); }

Status Server::start() {
  // sendfile(2) to a socket the client closed raises SIGPIPE (there is no MSG_NOSIGNAL for
  // it): the connection sees EPIPE and closes instead of the process dying.
  std::signal(SIGPIPE, SIG_IGN);
  std::error_code ec;
  asio::ip::address address = asio::ip::make_address(config_.listen_host, ec);
  if (ec) return Status::invalid_argument("kafka: bad listen host " + config_.listen_host);
  asio::ip::tcp::endpoint endpoint(address, config_.listen_port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::io_error("kafka: cannot listen on " + config_.listen_host + ":" +
                            std::to_string(config_.listen_port) + ": " + ec.message());
  }
  port_ = acceptor_.local_endpoint().port();
  accept();
  if (timings_) log_timings_later();
  return Status::ok();
}

void Server::log_timings_later() {
  timings_timer_.expires_after(std::chrono::milliseconds(config_.produce_timings_log_ms));
  timings_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped_) return;
    ProduceTimings::Summary s = timings_->take();
    if (s.requests > 0 || s.answered > 0) {
      std::fprintf(stderr, "kafka:%u %s\n", static_cast<unsigned>(port_),
                   ProduceTimings::format(s).c_str());
    }
    log_timings_later();
  });
}

// Wall-clock seconds with milliseconds first, as the cluster's lines (cluster/node.cc): the
// answers can be lined up with elections and with the clients' logs.
void Server::log_errors(const std::string& line) const {
  if (line.empty()) return;
  std::int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::fprintf(stderr, "%lld.%03lld kafka:%u %s\n", static_cast<long long>(wall_ms / 1000),
               static_cast<long long>(wall_ms % 1000), static_cast<unsigned>(port_),
               line.c_str());
}

// Armed by the first error answer of an interval; logs the interval when it ends.
void Server::log_errors_later() {
  errors_timer_.expires_after(std::chrono::milliseconds(config_.produce_error_log_ms));
  errors_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped_) return;
    log_errors(errors_->take(config_.produce_error_log_ms));
  });
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  std::error_code ignored;
  acceptor_.close(ignored);
  timings_timer_.cancel();
  errors_timer_.cancel();
  if (errors_) {
    // Requests still in flight hold errors_; their answers must not reach this server.
    errors_->on_first = nullptr;
    log_errors(errors_->take(config_.produce_error_log_ms));
  }
  auto connections = std::move(connections_);
  connections_.clear();
  for (auto& [raw, connection] : connections) connection->close("server stopping");
}

void Server::accept() {
  acceptor_.async_accept([this](const std::error_code& ec, asio::ip::tcp::socket socket) {
    if (stopped_) return;
    if (!ec) {
      if (connections_.size() >= config_.connections_max) {
        ++refused_connections_;
        std::error_code ignored;
        socket.close(ignored);
      } else {
        auto connection = std::make_shared<Connection>(
            std::move(socket), config_, cluster_, io_,
            [this](Connection* closed) {
              connections_.erase(closed);
              if (!stopped_) cluster_.client_connections_changed(connections_.size());
            },
            timings_.get(), errors_);
        connections_.emplace(connection.get(), connection);
        cluster_.client_connections_changed(connections_.size());
        connection->start();
      }
    }
    accept();
  });
}

}  // namespace mq::kafka
