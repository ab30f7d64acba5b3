#include "transport/transport.h"

#include <cstdio>
#include <future>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/thread_name.h"
#include "transport/inbound_connection.h"
#include "transport/peer_link.h"
#include "transport/raft_rpc_codec.h"
#include "transport/transport_internal.h"

namespace mq::transport {

namespace detail {

void Context::log(LogLevel level, const char* format, ...) {
  char text[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof(text), format, args);
  va_end(args);
  if (callbacks.on_log) {
    callbacks.on_log(level, text);
    return;
  }
  const char* label = level == LogLevel::kInfo ? "INFO" : level == LogLevel::kWarning ? "WARN" : "ERROR";
  std::fprintf(stderr, "transport[broker %d] %s: %s\n", options.self.value(), label, text);
}

}  // namespace detail

Status TransportOptions::validate() const {
  auto bad = [](const char* what) { return Status::invalid_argument(std::string("transport: ") + what); };
  if (cluster_id.size() > kClusterIdBytesMax) return bad("cluster_id longer than 255 bytes");
  if (self.value() < 0) return bad("self must be a broker id >= 0");
  if (frame_bytes_max < 4096) return bad("frame_bytes_max below 4096");
  if (chunk_bytes < 1024) return bad("chunk_bytes below 1024");
  if (std::uint64_t{chunk_bytes} + 64 > frame_bytes_max) {
    return bad("chunk_bytes must leave room for headers within frame_bytes_max");
  }
  if (message_bytes_max > 0xffffffffu) return bad("message_bytes_max above 4 GiB - 1");
  if (message_bytes_max < chunk_bytes) return bad("message_bytes_max below chunk_bytes");
  if (queue_messages_max == 0) return bad("queue_messages_max is 0");
  if (queue_bytes_max < message_bytes_max) return bad("queue_bytes_max below message_bytes_max");
  if (write_bytes_max < chunk_bytes) return bad("write_bytes_max below chunk_bytes");
  if (inbound_connections_max == 0) return bad("inbound_connections_max is 0");
  for (auto t : {connect_timeout, write_timeout, idle_timeout, keepalive_interval,
                 backoff_initial, backoff_max}) {
    if (t.count() <= 0) return bad("every timeout and back-off must be positive");
  }
  if (backoff_initial > backoff_max) return bad("backoff_initial above backoff_max");
  if (keepalive_interval >= idle_timeout) return bad("keepalive_interval must be below idle_timeout");
  return Status::ok();
}

class Transport::Impl : public detail::InboundRegistry {
 public:
  Impl(TransportOptions options, TransportCallbacks callbacks)
      : context_holder_(std::make_shared<detail::Context>(std::move(options), std::move(callbacks))),
        context_(*context_holder_),
        external_io_(context_.options.io != nullptr) {}
  ~Impl() override { stop(); }

  Status start();
  Result<std::uint16_t> listen(const std::string& host, std::uint16_t port);
  Status add_peer(BrokerId peer, const std::string& host, std::uint16_t port);
  void remove_peer(BrokerId peer);
  bool send(BrokerId to, GroupId group, raft::Message message);
  void flush_on_caller();
  void stop();
  TransportStats stats() const { return context_.counters.snapshot(); }
  std::optional<PeerStats> peer_stats(BrokerId peer) const;
  bool peer_connection_lost_now(BrokerId peer) const;

  void on_handshake(detail::InboundConnection& connection) override;
  void on_closed(detail::InboundConnection& connection) override;

 private:
  template <typename F>
  auto run_on_io(F&& function) -> decltype(function());
  void accept(asio::ip::tcp::acceptor& acceptor);
  void shutdown_on_io();

  // Declared first so it is destroyed last: sockets and timers below belong to its io_context.
  std::shared_ptr<detail::Context> context_holder_;
  detail::Context& context_;
  const bool external_io_;  // TransportOptions::io: no thread of our own
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::mutex lifecycle_mu_;

  mutable std::shared_mutex peers_mu_;
  std::unordered_map<BrokerId, std::shared_ptr<detail::PeerLink>> peers_;

  // Transport thread only.
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::unordered_map<std::uint64_t, std::shared_ptr<detail::InboundConnection>> inbound_;
  std::unordered_map<BrokerId, std::uint64_t> inbound_by_source_;
  std::uint64_t next_inbound_id_ = 1;
};

template <typename F>
auto Transport::Impl::run_on_io(F&& function) -> decltype(function()) {
  // The caller's io_context: we are on its thread (or it is not running), as transport.h asks.
  if (external_io_) return function();
  MQ_ASSERT(thread_.get_id() != std::this_thread::get_id(),
            "blocking transport call from the transport thread (a callback)");
  std::packaged_task<decltype(function())()> task(std::forward<F>(function));
  auto result = task.get_future();
  asio::post(context_.io, [&task] { task(); });
  return result.get();
}

Status Transport::Impl::start() {
  MQ_RETURN_IF_ERROR(context_.options.validate());
  std::lock_guard lock(lifecycle_mu_);
  if (running_ || context_.stopping) return Status::invalid_argument("transport: start() twice");
  if (!external_io_) {
    work_.emplace(context_.io.get_executor());
    thread_ = std::thread([this] {
      name_this_thread("rmq-transport");
      context_.io.run();
    });
  }
  running_ = true;
  return Status::ok();
}

Result<std::uint16_t> Transport::Impl::listen(const std::string& host, std::uint16_t port) {
  if (!running_) return Status::unavailable("transport: listen() before start() or after stop()");
  return run_on_io([&]() -> Result<std::uint16_t> {
    asio::error_code error;
    const asio::ip::address address = asio::ip::make_address(host, error);
    if (error) return Status::invalid_argument("transport: bad listen address '" + host + "'");
    const asio::ip::tcp::endpoint endpoint(address, port);
    auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(context_.io);
    if (acceptor->open(endpoint.protocol(), error) ||
        acceptor->set_option(asio::socket_base::reuse_address(true), error) ||
        acceptor->bind(endpoint, error) || acceptor->listen(asio::socket_base::max_listen_connections, error)) {
      return Status::io_error("transport: cannot listen on " + host + ":" + std::to_string(port) +
                              ": " + error.message());
    }
    const std::uint16_t bound = acceptor->local_endpoint(error).port();
    if (error) return Status::io_error("transport: local_endpoint: " + error.message());
    context_.log(LogLevel::kInfo, "listening on %s:%u", host.c_str(), static_cast<unsigned>(bound));
    accept(*acceptor);
    acceptors_.push_back(std::move(acceptor));
    return bound;
  });
}

void Transport::Impl::accept(asio::ip::tcp::acceptor& acceptor) {
  // `context` first: on a caller's io_context this handler may run (cancelled) after the
  // Transport is gone, and then must not touch `this`.
  acceptor.async_accept([this, &acceptor, context = context_holder_](
                            const asio::error_code& error, asio::ip::tcp::socket socket) {
    if (context->stopping) return;
    if (error) {
      if (error == asio::error::operation_aborted) return;
      context_.log(LogLevel::kWarning, "accept failed: %s", error.message().c_str());
      // Out of descriptors and the like: try again shortly rather than spin.
      auto timer = std::make_shared<asio::steady_timer>(context_.io, std::chrono::milliseconds(100));
      timer->async_wait([this, &acceptor, timer](const asio::error_code& e) {
        if (!e && !context_.stopping) accept(acceptor);
      });
      return;
    }
    const std::size_t limit = context_.options.inbound_connections_max;
    if (inbound_.size() >= 2 * limit) {
      // Far over the limit: do not even read a hello.
      context_.counters.add(context_.counters.inbound_refused);
      context_.log(LogLevel::kWarning, "refusing a connection: %zu inbound connections open",
                   inbound_.size());
    } else {
      const std::uint64_t id = next_inbound_id_++;
      auto connection = std::make_shared<detail::InboundConnection>(
          context_, *this, std::move(socket), id, inbound_.size() >= limit);
      inbound_.emplace(id, connection);
      connection->start();
    }
    accept(acceptor);
  });
}

void Transport::Impl::on_handshake(detail::InboundConnection& connection) {
  // A peer that connects to us is up: our link to it should not sit out its back-off (up to
  // backoff_max) meanwhile. After a restart or a healed partition that delay kept the
  // leader's heartbeats from the returning broker, which stayed leaderless and so granted
  // another follower's pre-vote (tests/chaos/FINDINGS.md F2).
  std::shared_ptr<detail::PeerLink> link;
  {
    std::shared_lock lock(peers_mu_);
    auto peer = peers_.find(connection.source());
    if (peer != peers_.end()) link = peer->second;
  }
  if (link) link->retry_now();
  auto [it, inserted] = inbound_by_source_.try_emplace(connection.source(), connection.id());
  if (inserted) return;
  const std::uint64_t older = it->second;
  it->second = connection.id();
  auto found = inbound_.find(older);
  if (found != inbound_.end()) {
    auto keep = found->second;  // close() erases it from inbound_
    keep->close(LogLevel::kInfo, "replaced by a newer connection from the same broker");
  }
}

void Transport::Impl::on_closed(detail::InboundConnection& connection) {
  auto it = inbound_by_source_.find(connection.source());
  if (it != inbound_by_source_.end() && it->second == connection.id()) inbound_by_source_.erase(it);
  inbound_.erase(connection.id());
}

Status Transport::Impl::add_peer(BrokerId peer, const std::string& host, std::uint16_t port) {
  if (peer == context_.options.self) {
    return Status::invalid_argument("transport: cannot add self as a peer");
  }
  if (!running_) return Status::unavailable("transport: add_peer() before start() or after stop()");
  std::shared_ptr<detail::PeerLink> old;
  auto link = std::make_shared<detail::PeerLink>(context_, peer, host, port);
  {
    std::unique_lock lock(peers_mu_);
    auto it = peers_.find(peer);
    if (it != peers_.end()) {
      if (it->second->host() == host && it->second->port() == port) return Status::ok();
      old = std::move(it->second);
      it->second = link;
    } else {
      peers_.emplace(peer, link);
    }
  }
  asio::post(context_.io, [old, link] {
    if (old) old->close();
    link->start();
  });
  return Status::ok();
}

void Transport::Impl::remove_peer(BrokerId peer) {
  std::shared_ptr<detail::PeerLink> link;
  {
    std::unique_lock lock(peers_mu_);
    auto it = peers_.find(peer);
    if (it == peers_.end()) return;
    link = std::move(it->second);
    peers_.erase(it);
  }
  asio::post(context_.io, [link] { link->close(); });
}

bool Transport::Impl::send(BrokerId to, GroupId group, raft::Message message) {
  detail::Counters& c = context_.counters;
  const std::uint64_t size = encoded_message_size(message);
  if (size > context_.options.message_bytes_max) {
    c.add(c.dropped_too_large);
    return false;
  }
  std::shared_ptr<detail::PeerLink> link;
  {
    std::shared_lock lock(peers_mu_);
    auto it = peers_.find(to);
    if (it != peers_.end() && running_) link = it->second;
  }
  if (!link) {
    c.add(c.dropped_unknown_peer);
    return false;
  }
  return link->enqueue(group, std::move(message), size);
}

void Transport::Impl::flush_on_caller() {
  if (!external_io_ || !running_) return;
  std::shared_lock lock(peers_mu_);
  for (auto& [id, link] : peers_) link->flush_if_posted();
}

std::optional<PeerStats> Transport::Impl::peer_stats(BrokerId peer) const {
  std::shared_lock lock(peers_mu_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  return it->second->stats();
}

bool Transport::Impl::peer_connection_lost_now(BrokerId peer) const {
  std::shared_lock lock(peers_mu_);
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second->connection_lost_now();
}

void Transport::Impl::shutdown_on_io() {
  asio::error_code ignored;
  for (auto& acceptor : acceptors_) acceptor->close(ignored);
  std::vector<std::shared_ptr<detail::PeerLink>> links;
  {
    std::shared_lock lock(peers_mu_);
    for (auto& [id, link] : peers_) links.push_back(link);
  }
  for (auto& link : links) link->close();
  std::vector<std::shared_ptr<detail::InboundConnection>> connections;
  for (auto& [id, connection] : inbound_) connections.push_back(connection);
  for (auto& connection : connections) connection->close(LogLevel::kInfo, "");
}

void Transport::Impl::stop() {
  MQ_ASSERT(thread_.get_id() != std::this_thread::get_id(),
            "Transport::stop() from the transport thread (a callback) would join itself");
  std::lock_guard lock(lifecycle_mu_);
  if (!running_) return;
  context_.stopping = true;
  running_ = false;
  if (external_io_) {
    // On the io_context's thread (or with it not running): close everything now. The handlers
    // of the cancelled operations run later and return at once (closed links and connections).
    shutdown_on_io();
    acceptors_.clear();
    inbound_.clear();
    inbound_by_source_.clear();
    std::unique_lock peers_lock(peers_mu_);
    peers_.clear();
    return;
  }
  // Posted directly (not run_on_io): stop() may be called from any thread but the transport's.
  std::promise<void> done;
  asio::post(context_.io, [this, &done] {
    shutdown_on_io();
    done.set_value();
  });
  done.get_future().wait();
  work_.reset();
  // Every socket and timer is closed or cancelled, so run() returns once their handlers ran.
  thread_.join();
  acceptors_.clear();
  inbound_.clear();
  inbound_by_source_.clear();
  std::unique_lock peers_lock(peers_mu_);
  peers_.clear();
}

Transport::Transport(TransportOptions options, TransportCallbacks callbacks)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(callbacks))) {}
Transport::~Transport() = default;
Status Transport::start() { return impl_->start(); }
Result<std::uint16_t> Transport::listen(const std::string& host, std::uint16_t port) {
  return impl_->listen(host, port);
}
Status Transport::add_peer(BrokerId peer, const std::string& host, std::uint16_t port) {
  return impl_->add_peer(peer, host, port);
}
void Transport::remove_peer(BrokerId peer) { impl_->remove_peer(peer); }
bool Transport::send(BrokerId to, GroupId group, raft::Message message) {
  return impl_->send(to, group, std::move(message));
}
void Transport::flush_on_caller() { impl_->flush_on_caller(); }
void Transport::stop() { impl_->stop(); }
TransportStats Transport::stats() const { return impl_->stats(); }
std::optional<PeerStats> Transport::peer_stats(BrokerId peer) const {
  return impl_->peer_stats(peer);
}

bool Transport::peer_connection_lost_now(BrokerId peer) const {
  return impl_->peer_connection_lost_now(peer);
}

}  // namespace mq::transport
