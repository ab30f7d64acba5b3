// `raftmq serve` with the cluster layer: cluster::Node and kafka::Server on one io_context
// thread (docs/architecture.md). SIGTERM/SIGINT → stop accepting Kafka connections →
// Node::shutdown (leadership hand-over, checkpoint) → exit 0; a second signal or
// shutdown-timeout-ms passing → Node::stop and exit at once.
#include "broker/serve.h"

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <cstdio>
#include <memory>

#include "base/heap.h"
#include "cluster/node.h"
#include "kafka/server.h"
#include "storage/read_cache.h"

namespace mq::broker {
namespace {

cluster::NodeConfig node_config(const BrokerConfig& config) {
  cluster::NodeConfig node;
  node.id = BrokerId(config.broker_id);
  node.data_dir = config.data_dir;
  node.cluster_id = config.cluster_id;
  node.rpc_listen_host = config.rpc_host;
  node.rpc_listen_port = config.rpc_port;
  node.advertised_host = config.advertised_host;
  node.advertised_kafka_port = config.kafka.listen_port;
  for (const PeerAddress& peer : config.peers) {
    cluster::BrokerAddress address;
    address.id = BrokerId(peer.broker_id);
    address.host = peer.host;
    address.rpc_port = peer.rpc_port;
    address.kafka_port = peer.kafka_port;
    node.brokers.push_back(std::move(address));
  }
  for (const JoinAddress& j : config.join) node.join_seeds.push_back({j.host, j.port});
  node.join_timeout_ms = config.join_timeout_ms;
  node.rack = config.rack;
  node.default_partitions = config.default_partitions;
  node.default_replication_factor = config.default_replication_factor;
  node.auto_create_topics = config.kafka.auto_create_topics;
  node.zero_fill_window_bytes = config.zero_fill_bytes;
  node.direct_write_depth = config.write_depth;
  node.leader_rebalance_interval_ms = config.leader_rebalance_interval_ms;
  return node;
}

}  // namespace

bool cluster_layer_available() { return true; }

int run_serve(const BrokerConfig& config) {
  // Before any thread starts (base/heap.h).
  HeapReserve heap = reserve_heap(config.heap_reserve_mib << 20);
  storage::ReadCache::instance().set_budget_bytes(config.read_cache_mib << 20);
  asio::io_context io(1);
  // Catches SIGTERM/SIGINT from here on: one that arrives while Node::start opens the logs is
  // held and handled as soon as the loop runs (a graceful shutdown), instead of killing the
  // process by the default action before the handler existed.
  asio::signal_set signals(io, SIGTERM, SIGINT);
  cluster::NodeConfig node_settings = node_config(config);
  Status valid = node_settings.validate();
  if (!valid.is_ok()) {
    std::fprintf(stderr, "raftmq serve: %s\n", valid.to_string().c_str());
    return 2;
  }
  cluster::Node node(io, node_settings);
  Status started = node.start();
  if (!started.is_ok()) {
    std::fprintf(stderr, "raftmq serve: broker %d cannot start: %s\n", config.broker_id,
                 started.to_string().c_str());
    return 1;
  }
  kafka::Server server(io, node.api(), config.kafka);
  int exit_code = 0;
  // A new broker whose join is refused or unanswered (docs/cluster.md "Adding a broker").
  node.when_failed([&](const Status& failure) {
    std::fprintf(stderr, "raftmq serve: broker %d cannot join the cluster: %s\n",
                 config.broker_id, failure.to_string().c_str());
    exit_code = 1;
    io.stop();
  });
  bool shutting_down = false;
  bool serving = false;
  // The Kafka listener opens only once the controller replica caught up (Node::when_ready):
  // a restarted broker must not answer Metadata/Produce/Fetch from stale metadata.
  node.when_ready([&] {
    if (shutting_down) return;
    Status listening = server.start();
    if (!listening.is_ok()) {
      std::fprintf(stderr, "raftmq serve: %s\n", listening.to_string().c_str());
      exit_code = 1;
      node.stop();
      io.stop();
      return;
    }
    serving = true;
    std::fprintf(stderr, "raftmq serve: broker %d up: kafka %s:%u, rpc %s:%u, data %s\n",
                 config.broker_id, config.kafka.listen_host.c_str(), server.port(),
                 config.rpc_host.c_str(), node.rpc_port(), config.data_dir.c_str());
    if (config.heap_reserve_mib > 0) {
      std::fprintf(stderr, "raftmq serve: heap: %zu MiB reserved%s%s%s\n",
                   heap.reserved_bytes >> 20, heap.huge_pages_advised ? " on huge pages" : "",
                   heap.note.empty() ? "" : ": ", heap.note.c_str());
    }
  });
  asio::steady_timer deadline(io);
  std::function<void(const std::error_code&, int)> on_signal;
  on_signal = [&](const std::error_code& ec, int signal_number) {
    if (ec) return;
    if (shutting_down) {
      std::fprintf(stderr, "raftmq serve: second signal %d: stopping now\n", signal_number);
      node.stop();
      io.stop();
      return;
    }
    shutting_down = true;
    std::fprintf(stderr, "raftmq serve: signal %d: shutting down\n", signal_number);
    if (serving) server.stop();
    deadline.expires_after(std::chrono::milliseconds(config.shutdown_timeout_ms));
    deadline.async_wait([&](const std::error_code& timer_ec) {
      if (timer_ec) return;
      std::fprintf(stderr, "raftmq serve: shutdown-timeout-ms passed: stopping now\n");
      node.stop();
      io.stop();
    });
    node.shutdown([&] {
      deadline.cancel();
      signals.cancel();
      io.stop();
    });
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  io.run();
  std::fprintf(stderr, "raftmq serve: broker %d stopped\n", config.broker_id);
  return exit_code;
}

}  // namespace mq::broker
