#include "kafka/server.h"

#include <csignal>

#include <asio/ip/address.hpp>

namespace mq::kafka {

Server::Server(asio::io_context& io, cluster::ClusterApi& cluster, ServerConfig config)
    : io_(io), cluster_(cluster), config_(std::move(config)), acceptor_(io) {}

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
  return Status::ok();
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  std::error_code ignored;
  acceptor_.close(ignored);
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
            std::move(socket), config_, cluster_, io_, [this](Connection* closed) {
              connections_.erase(closed);
              if (!stopped_) cluster_.client_connections_changed(connections_.size());
            });
        connections_.emplace(connection.get(), connection);
        cluster_.client_connections_changed(connections_.size());
        connection->start();
      }
    }
    accept();
  });
}

}  // namespace mq::kafka
