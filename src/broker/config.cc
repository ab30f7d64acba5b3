#include "broker/config.h"

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>

#include "base/heap.h"

namespace mq::broker {
namespace {

template <typename T>
Status parse_int(const std::string& name, const std::string& text, T min, T max, T* out) {
  long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < static_cast<long long>(min) ||
      value > static_cast<long long>(max)) {
    return Status::invalid_argument(name + ": '" + text + "' is not an integer in [" +
                                    std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  *out = static_cast<T>(value);
  return Status::ok();
}

Status parse_bool(const std::string& name, const std::string& text, bool* out) {
  if (text == "true" || text == "1" || text == "yes") *out = true;
  else if (text == "false" || text == "0" || text == "no") *out = false;
  else return Status::invalid_argument(name + ": '" + text + "' is not true/false");
  return Status::ok();
}

std::string trim(const std::string& s) {
  auto begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  auto end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

#define MQ_INT_OPTION(name, help, field, min, max)                                          \
  OptionInfo {                                                                             \
    name, help,                                                                            \
        [](BrokerConfig& c, const std::string& v) {                                        \
          return parse_int<decltype(c.field)>(name, v, min, max, &c.field);                \
        },                                                                                 \
        [](const BrokerConfig& c) { return std::to_string(c.field); }                      \
  }
#define MQ_STRING_OPTION(name, help, field)                                                \
  OptionInfo {                                                                             \
    name, help,                                                                            \
        [](BrokerConfig& c, const std::string& v) {                                        \
          if (v.empty()) return Status::invalid_argument(std::string(name) + ": empty");   \
          c.field = v;                                                                     \
          return Status::ok();                                                             \
        },                                                                                 \
        [](const BrokerConfig& c) { return std::string(c.field); }                         \
  }

constexpr std::int64_t kMiB = 1024 * 1024;

}  // namespace

std::uint64_t heap_reserve_mib_default() {
  const char* env = std::getenv("RAFTMQ_HEAP_RESERVE_MIB");
  if (env == nullptr || *env == '\0') return 256;
  char* end = nullptr;
  unsigned long long v = std::strtoull(env, &end, 10);
  if (*end != '\0' || v > (kReserveBytesMax >> 20)) return 256;
  return v;
}

const std::vector<OptionInfo>& option_table() {
  static const std::vector<OptionInfo> table = {
      MQ_INT_OPTION("broker-id", "this broker's id (>= 0, unique in the cluster)", broker_id, 0,
                    1'000'000),
      MQ_STRING_OPTION("cluster-id", "cluster id reported to clients", cluster_id),
      MQ_STRING_OPTION("data-dir", "directory of this broker's logs and Raft state", data_dir),
      MQ_STRING_OPTION("kafka-host", "address the Kafka listener binds", kafka.listen_host),
      MQ_INT_OPTION("kafka-port", "Kafka listener port", kafka.listen_port, 1, 65535),
      MQ_STRING_OPTION("advertised-host", "host name given to clients in Metadata",
                       advertised_host),
      MQ_STRING_OPTION("rpc-host", "address the inter-broker Raft RPC listener binds", rpc_host),
      MQ_INT_OPTION("rpc-port", "inter-broker Raft RPC port", rpc_port, 1, 65535),
      OptionInfo{"peers",
                 "every broker as id@host:rpc_port:kafka_port, comma-separated (this one too)",
                 [](BrokerConfig& c, const std::string& v) {
                   Result<std::vector<PeerAddress>> peers = parse_peers(v);
                   if (!peers.has_value()) return peers.error();
                   c.peers = std::move(peers).value();
                   return Status::ok();
                 },
                 [](const BrokerConfig& c) {
                   std::string out;
                   for (const PeerAddress& p : c.peers) {
                     if (!out.empty()) out += ",";
                     out += std::to_string(p.broker_id) + "@" + p.host + ":" +
                            std::to_string(p.rpc_port) + ":" + std::to_string(p.kafka_port);
                   }
                   return out;
                 }},
      OptionInfo{"join",
                 "join a running cluster as a new broker: RPC addresses host:rpc_port of some "
                 "of its brokers, comma-separated (instead of peers; a restart needs neither)",
                 [](BrokerConfig& c, const std::string& v) {
                   Result<std::vector<JoinAddress>> join = parse_join(v);
                   if (!join.has_value()) return join.error();
                   c.join = std::move(join).value();
                   return Status::ok();
                 },
                 [](const BrokerConfig& c) {
                   std::string out;
                   for (const JoinAddress& j : c.join) {
                     if (!out.empty()) out += ",";
                     out += j.host + ":" + std::to_string(j.port);
                   }
                   return out;
                 }},
      MQ_INT_OPTION("join-timeout-ms", "give up joining (exit 1) without an answer by then",
                    join_timeout_ms, std::int64_t{1}, std::int64_t{3'600'000}),
      OptionInfo{"rack", "rack of this broker, registered when it joins (Metadata)",
                 [](BrokerConfig& c, const std::string& v) {
                   if (v.size() > 255) return Status::invalid_argument("rack: longer than 255");
                   c.rack = v;
                   return Status::ok();
                 },
                 [](const BrokerConfig& c) { return c.rack; }},
      MQ_INT_OPTION("default-partitions", "partitions of a topic created without a count",
                    default_partitions, 1, 100'000),
      MQ_INT_OPTION("default-replication-factor",
                    "replicas of a topic created without one (-1: min(3, brokers))",
                    default_replication_factor, -1, 16),
      OptionInfo{"auto-create-topics", "Metadata for an unknown topic creates it (false)",
                 [](BrokerConfig& c, const std::string& v) {
                   return parse_bool("auto-create-topics", v, &c.kafka.auto_create_topics);
                 },
                 [](const BrokerConfig& c) {
                   return std::string(c.kafka.auto_create_topics ? "true" : "false");
                 }},
      MQ_INT_OPTION("frame-size-bytes-max", "largest Kafka request frame accepted",
                    kafka.frame_size_bytes_max, std::size_t{1024}, std::size_t(1024 * kMiB)),
      MQ_INT_OPTION("connections-max", "Kafka client connections accepted at once",
                    kafka.connections_max, std::size_t{1}, std::size_t{1'000'000}),
      MQ_INT_OPTION("inflight-requests-per-connection-max",
                    "unanswered requests per connection before it stops reading",
                    kafka.inflight_requests_per_connection_max, std::size_t{1},
                    std::size_t{10'000}),
      MQ_INT_OPTION("buffered-response-bytes-per-connection-max",
                    "unwritten response bytes per connection before it stops reading",
                    kafka.buffered_response_bytes_per_connection_max, std::size_t{64 * 1024},
                    std::size_t(4096 * kMiB)),
      MQ_INT_OPTION("fetch-response-bytes-max", "cap on one Fetch response's record bytes",
                    kafka.fetch_response_bytes_max, std::size_t{1024}, std::size_t(1024 * kMiB)),
      MQ_INT_OPTION("fetch-wait-ms-max", "cap on a Fetch long-poll (MaxWaitMs)",
                    kafka.fetch_wait_ms_max, 0, 600'000),
      MQ_INT_OPTION("metadata-leader-wait-ms",
                    "Metadata for a partition without a leader waits this long for an election",
                    kafka.metadata_leader_wait_ms, 0, 10'000),
      MQ_INT_OPTION(
          "produce-error-log-ms",
          "Produce error answers are logged as one summary line per this many ms (0: off)",
          kafka.produce_error_log_ms, 0, 3'600'000),
      MQ_INT_OPTION("zero-fill-bytes",
                    "written zeros kept after a partition log's tail (cheaper fdatasyncs; 0: off)",
                    zero_fill_bytes, std::uint64_t{0}, std::uint64_t{1} << 30),
      MQ_INT_OPTION("write-depth",
                    "O_DIRECT writes in flight per partition log (1-3; 1: one at a time)",
                    write_depth, std::uint32_t{1}, std::uint32_t{3}),
      MQ_INT_OPTION("heap-reserve-mib",
                    "heap reserved at start-up on huge pages, resident only as used (0: off)",
                    heap_reserve_mib, std::uint64_t{0}, std::uint64_t{kReserveBytesMax >> 20}),
      MQ_INT_OPTION(
          "read-cache-mib",
          "memory for the newest written data of led partitions, read by consumers (0: off)",
          read_cache_mib, std::uint64_t{0}, std::uint64_t{1} << 30),
      MQ_INT_OPTION("leader-rebalance-interval-ms",
                    "hand each led partition back to its preferred replica this often (0: never)",
                    leader_rebalance_interval_ms, std::uint32_t{0}, std::uint32_t{86'400'000}),
      MQ_INT_OPTION("shutdown-timeout-ms", "graceful shutdown budget before exiting anyway",
                    shutdown_timeout_ms, std::int64_t{0}, std::int64_t{600'000}),
  };
  return table;
}

Status set_option(BrokerConfig& config, const std::string& name, const std::string& value) {
  for (const OptionInfo& option : option_table()) {
    if (option.name == name) return option.set(config, value);
  }
  return Status::invalid_argument("unknown option '" + name + "'");
}

Result<std::vector<PeerAddress>> parse_peers(const std::string& text) {
  std::vector<PeerAddress> peers;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    std::string item = trim(text.substr(start, comma == std::string::npos ? std::string::npos
                                                                          : comma - start));
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) continue;
    // id@host:rpc_port:kafka_port
    auto at = item.find('@');
    auto last = item.rfind(':');
    auto middle = last == std::string::npos || last == 0 ? std::string::npos
                                                        : item.rfind(':', last - 1);
    if (at == std::string::npos || middle == std::string::npos || middle < at) {
      return Status::invalid_argument("peers: '" + item + "' is not id@host:rpc_port:kafka_port");
    }
    PeerAddress peer;
    MQ_RETURN_IF_ERROR(parse_int<std::int32_t>("peers", item.substr(0, at), 0, 1'000'000,
                                               &peer.broker_id));
    peer.host = item.substr(at + 1, middle - at - 1);
    MQ_RETURN_IF_ERROR(parse_int<std::uint16_t>("peers", item.substr(middle + 1, last - middle - 1),
                                                1, 65535, &peer.rpc_port));
    MQ_RETURN_IF_ERROR(
        parse_int<std::uint16_t>("peers", item.substr(last + 1), 1, 65535, &peer.kafka_port));
    if (peer.host.empty()) return Status::invalid_argument("peers: empty host in " + item);
    peers.push_back(std::move(peer));
  }
  return peers;
}

Status load_config_file(const std::string& path, BrokerConfig& config) {
  std::ifstream in(path);
  if (!in) return Status::not_found("config file " + path + " cannot be read");
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      return Status::invalid_argument(path + ":" + std::to_string(number) + ": expected name = value");
    }
    Status st = set_option(config, trim(line.substr(0, eq)), trim(line.substr(eq + 1)));
    if (!st.is_ok()) {
      return Status::invalid_argument(path + ":" + std::to_string(number) + ": " + st.message());
    }
  }
  return Status::ok();
}

Result<BrokerConfig> parse_serve_args(const std::vector<std::string>& args) {
  BrokerConfig config;
  std::vector<std::pair<std::string, std::string>> flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word.rfind("--", 0) != 0) return Status::invalid_argument("unexpected argument " + word);
    std::string name = word.substr(2);
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Status::invalid_argument(word + " needs a value");
    }
    if (name == "config") {
      MQ_RETURN_IF_ERROR(load_config_file(value, config));
    } else {
      flags.emplace_back(name, value);
    }
  }
  for (const auto& [name, value] : flags) MQ_RETURN_IF_ERROR(set_option(config, name, value));
  MQ_RETURN_IF_ERROR(validate(config));
  return config;
}

Result<std::vector<JoinAddress>> parse_join(const std::string& text) {
  std::vector<JoinAddress> out;
  std::size_t start = 0;
  while (true) {
    std::size_t comma = text.find(',', start);
    std::string item = trim(text.substr(start, comma == std::string::npos ? std::string::npos
                                                                           : comma - start));
    std::size_t colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return Status::invalid_argument("join: '" + item + "' is not host:rpc_port");
    }
    JoinAddress a;
    a.host = item.substr(0, colon);
    if (a.host.find_first_of(" @/") != std::string::npos) {
      return Status::invalid_argument("join: bad host in '" + item + "'");
    }
    MQ_RETURN_IF_ERROR(parse_int<std::uint16_t>("join", item.substr(colon + 1), 1, 65535, &a.port));
    out.push_back(std::move(a));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Status validate(const BrokerConfig& config) {
  if (!config.join.empty() && !config.peers.empty()) {
    return Status::invalid_argument("join and peers are exclusive: a new broker joins with --join "
                                    "only; the brokers of --peers are the controller voters");
  }
  if (config.peers.empty()) return Status::ok();
  std::set<std::int32_t> ids;
  bool self_listed = false;
  for (const PeerAddress& peer : config.peers) {
    if (!ids.insert(peer.broker_id).second) {
      return Status::invalid_argument("peers: broker " + std::to_string(peer.broker_id) +
                                      " listed twice");
    }
    if (peer.broker_id == config.broker_id) {
      self_listed = true;
      if (peer.rpc_port != config.rpc_port || peer.kafka_port != config.kafka.listen_port) {
        return Status::invalid_argument(
            "peers: this broker's entry differs from rpc-port / kafka-port");
      }
    }
  }
  if (!self_listed) return Status::invalid_argument("peers: this broker's id is not listed");
  if (config.kafka.listen_port == config.rpc_port) {
    return Status::invalid_argument("kafka-port and rpc-port must differ");
  }
  return Status::ok();
}

}  // namespace mq::broker
