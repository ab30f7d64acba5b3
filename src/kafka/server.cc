#include "kafka/server.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include <asio/ip/address.hpp>

namespace mq::kafka {

Server::Server(asio::io_context& io, cluster::ClusterApi& cluster, ServerConfig config)
    : io_(io), cluster_(cluster), config_(std::move(config)), acceptor_(io), timings_timer_(io) {
  if (config_.produce_timings_log_ms == 0) {
    if (const char* env = std::getenv("RAFTMQ_LOG_PRODUCE_TIMINGS_MS")) {
      config_.produce_timings_log_ms = std::max<long long>(0, std::atoll(env));
    }
  }
  if (config_.produce_timings_log_ms > 0) timings_ = std::make_unique<ProduceTimings>();
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

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  std::error_code ignored;
  acceptor_.close(ignored);
  timings_timer_.cancel();
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
            timings_.get());
        connections_.emplace(connection.get(), connection);
        cluster_.client_connections_changed(connections_.size());
        connection->start();
      }
    }
    accept();
  });
}

}  // namespace mq::kafka
