// Configuration of `raftmq serve`: a file of `name = value` lines (# comments) and command-line
// flags `--name value` with the same names; flags override the file. Every bound is a named
// option with its unit in the name (docs/operations.md lists them all, generated from
// option_table()).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "kafka/server_config.h"
#include "storage/log.h"
#include "storage/read_cache.h"

namespace mq::broker {

struct PeerAddress {
  std::int32_t broker_id = 0;
  std::string host;
  std::uint16_t rpc_port = 0;
  std::uint16_t kafka_port = 0;
};

// A running broker's Raft RPC address (--join).
struct JoinAddress {
  std::string host;
  std::uint16_t port = 0;
};

// 256, or RAFTMQ_HEAP_RESERVE_MIB when set to a number.
std::uint64_t heap_reserve_mib_default();

struct BrokerConfig {
  std::int32_t broker_id = 1;
  std::string cluster_id = "raftmq";
  std::string data_dir = "./raftmq-data/broker-1";
  // Kafka listener (kafka.listen_host/kafka.port are in `kafka`); the host clients are told.
  std::string advertised_host = "127.0.0.1";
  std::string rpc_host = "127.0.0.1";
  std::uint16_t rpc_port = 19092;
  // All brokers of the cluster (this one included), by Raft RPC address. Empty: single broker.
  std::vector<PeerAddress> peers;
  // A new broker joining a running cluster (docs/cluster.md "Adding a broker"): the RPC
  // addresses of some of its brokers. Exclusive with `peers`.
  std::vector<JoinAddress> join;
  std::int64_t join_timeout_ms = 30'000;
  std::string rack;  // reported in Metadata for a broker that joined
  std::int32_t default_partitions = 1;
  std::int16_t default_replication_factor = -1;  // -1: min(3, brokers)
  std::int64_t shutdown_timeout_ms = 10'000;
  // cluster::NodeConfig::leader_rebalance_interval_ms (0: leaders are never moved back).
  std::uint32_t leader_rebalance_interval_ms = 30'000;
  // cluster::NodeConfig::zero_fill_window_bytes (pre-written space after each partition tail).
  std::uint64_t zero_fill_bytes = storage::zero_fill_window_bytes_or(storage::kBrokerZeroFillWindowBytes);
  // cluster::NodeConfig::direct_write_depth.
  std::uint32_t write_depth = storage::kBrokerDirectWriteDepth;
  // base/heap.h reserve_heap(): heap range advised as huge pages at start-up; 0: glibc's
  // default heap. RAFTMQ_HEAP_RESERVE_MIB sets the default (for A/B runs).
  std::uint64_t heap_reserve_mib = heap_reserve_mib_default();
  // storage/read_cache.h: memory for the newest written parts of the partitions this broker
  // leads (consumers read them from there); 0: off. RAFTMQ_READ_CACHE_MIB sets the default,
  // else 1/8 of the machine's memory.
  std::uint64_t read_cache_mib = storage::read_cache_default_mib();
  kafka::ServerConfig kafka;
};

struct OptionInfo {
  std::string name;
  std::string help;
  std::function<Status(BrokerConfig&, const std::string&)> set;
  std::function<std::string(const BrokerConfig&)> get;
};
const std::vector<OptionInfo>& option_table();

// Applies one option by name (file key or flag name without the dashes).
Status set_option(BrokerConfig& config, const std::string& name, const std::string& value);
// Reads a configuration file into `config`.
Status load_config_file(const std::string& path, BrokerConfig& config);
// Parses `--name value` / `--name=value` flags (after the file named by --config, if any).
Result<BrokerConfig> parse_serve_args(const std::vector<std::string>& args);
// Checks cross-option rules (this broker among the peers, distinct ports, ...).
Status validate(const BrokerConfig& config);
// "peers = 1@127.0.0.1:19092:9092,2@127.0.0.1:19093:9093" (id@host:rpc_port:kafka_port)
Result<std::vector<PeerAddress>> parse_peers(const std::string& text);
// "join = 127.0.0.1:19092,127.0.0.1:19093" (host:rpc_port)
Result<std::vector<JoinAddress>> parse_join(const std::string& text);

}  // namespace mq::broker
