#include "cluster/test_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "base/assert.h"
#include "protocol/record_batch.h"
#include "storage/segment_format.h"
#include "storage/sync_ledger.h"

namespace mq::cluster::testing {

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  MQ_ASSERT(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  MQ_ASSERT(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  MQ_ASSERT(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string make_temp_dir(const std::string& prefix) {
  std::string templ = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  char* made = ::mkdtemp(templ.data());
  MQ_ASSERT(made != nullptr);
  return templ;
}

TestBroker::TestBroker(NodeConfig config) : config_(std::move(config)) {}

TestBroker::~TestBroker() {
  if (running()) kill();
}

Status TestBroker::start() {
  MQ_ASSERT(!running());
  io_ = std::make_unique<asio::io_context>();
  guard_.emplace(io_->get_executor());
  node_ = std::make_unique<Node>(*io_, config_);
  thread_ = std::thread([this] { io_->run(); });
  Status started = call([](Node& n) { return n.start(); });
  if (!started.is_ok()) kill();
  return started;
}

void TestBroker::join() {
  guard_.reset();
  io_->stop();
  thread_.join();
  node_.reset();
  io_.reset();
}

void TestBroker::kill() {
  call([](Node& n) { n.stop(); });
  join();
}

void TestBroker::shutdown() {
  auto promise = std::make_shared<std::promise<void>>();
  auto future = promise->get_future();
  asio::post(*io_, [this, promise] { node_->shutdown([promise] { promise->set_value(); }); });
  future.get();
  join();
}

bool wait_until(std::function<bool()> predicate, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return predicate();
}

std::vector<std::pair<std::int64_t, std::string>> read_committed(TestBroker& b,
                                                                 const std::string& topic,
                                                                 std::int32_t partition) {
  return b.call([&](Node& n) {
    std::vector<std::pair<std::int64_t, std::string>> out;
    auto p = n.local_partition(topic, partition);
    if (!p.has_value()) return out;
    KafkaOffset next = (*p)->log_start_offset();
    for (int rounds = 0; rounds < 10000 && next < (*p)->high_watermark(); ++rounds) {
      auto f = (*p)->fetch(next, 64 * 1024);
      MQ_ASSERT(f.has_value(), "%s", f.error().to_string().c_str());
      Buffer bytes;
      for (const RecordsChunk& c : f->records) {
        if (c.fd >= 0) {
          Buffer part(c.length);
          MQ_ASSERT(::pread(c.fd, part.data(), c.length, static_cast<off_t>(c.file_offset)) ==
                    static_cast<ssize_t>(c.length));
          bytes.append(part.view());
        } else {
          bytes.append(c.bytes.view());
        }
      }
      auto batches = protocol::parse_record_batches(bytes.view());
      MQ_ASSERT(batches.has_value() && !batches->empty());
      for (const auto& batch : *batches) {
        next = KafkaOffset(batch.header().last_offset() + 1);
        if (batch.header().is_control()) continue;
        auto records = batch.decode_records();
        MQ_ASSERT(records.has_value());
        for (const auto& r : records->records) {
          out.emplace_back(batch.header().base_offset + r.offset_delta,
                           std::string(as_chars(*r.value)));
        }
      }
    }
    return out;
  });
}

Result<ProduceResult> produce_batch(TestBroker& b, const std::string& topic,
                                    std::int32_t partition, SharedBuffer batch, Acks acks) {
  return b.call_async<Result<ProduceResult>>(
      [&](Node& n, std::function<void(Result<ProduceResult>)> reply) {
        auto p = n.local_partition(topic, partition);
        if (!p.has_value()) return reply(p.error());
        (*p)->produce(std::move(batch), acks, reply);
      });
}

Status produce_value(TestBroker& b, const std::string& topic, std::int32_t partition,
                     const std::string& value) {
  protocol::RecordInput r;
  r.value = Buffer(std::string_view(value));
  r.timestamp = 1700000000000;
  auto batch = protocol::build_record_batch(protocol::RecordBatchOptions{},
                                            std::span<const protocol::RecordInput>(&r, 1));
  MQ_ASSERT(batch.has_value());
  auto result = produce_batch(b, topic, partition, SharedBuffer(std::move(*batch)));
  return result.has_value() ? Status::ok() : result.error();
}

std::vector<AdminResult> create_topic(TestBroker& b, const std::string& name, int partitions,
                                      int replication_factor,
                                      std::map<std::string, std::string> configs) {
  return b.call_async<std::vector<AdminResult>>(
      [&](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
        TopicSpec spec;
        spec.name = name;
        spec.partitions = partitions;
        spec.replication_factor = static_cast<std::int16_t>(replication_factor);
        spec.configs = configs;
        n.create_topics({spec}, 5000, reply);
      });
}

BrokerId metadata_leader(TestBroker& b, const std::string& topic, std::int32_t p) {
  return b.call([&](Node& n) {
    MetadataSnapshot md = n.metadata();
    const TopicInfo* t = md.find_topic(topic);
    if (t == nullptr) return BrokerId(-1);
    for (const PartitionInfo& info : t->partitions) {
      // An expected winner (named while an election is under way) is advice, not a leader.
      if (info.partition == p) return info.leader_expected ? BrokerId(-1) : info.leader;
    }
    return BrokerId(-1);
  });
}

void ClusterFixture::make(int n, std::function<void(NodeConfig&)> tweak) {
  root_ = make_temp_dir("raftmq-cluster-");
  std::vector<BrokerAddress> addresses;
  for (int i = 0; i < n; ++i) {
    // The Kafka port is only advertised (no listener in these tests).
    addresses.push_back(BrokerAddress{BrokerId(i), "127.0.0.1", free_port(),
                                      static_cast<std::uint16_t>(19092 + i)});
  }
  for (int i = 0; i < n; ++i) {
    NodeConfig c;
    c.id = BrokerId(i);
    c.data_dir = root_ + "/broker" + std::to_string(i);
    c.rpc_listen_port = addresses[static_cast<std::size_t>(i)].rpc_port;
    c.advertised_kafka_port = addresses[static_cast<std::size_t>(i)].kafka_port;
    c.brokers = addresses;
    c.produce_timeout_ms = 5000;
    if (tweak) tweak(c);
    brokers_.push_back(std::make_unique<TestBroker>(c));
  }
  for (auto& b : brokers_) ASSERT_TRUE(b->start().is_ok());
}

void ClusterFixture::TearDown() {
  brokers_.clear();
  if (!root_.empty()) std::filesystem::remove_all(root_);
}

void MemoryFsClusterFixture::make_on_memory(int n, std::function<void(NodeConfig&)> tweak) {
  for (int i = 0; i < n; ++i) fs_.push_back(std::make_unique<storage::MemoryFileSystem>());
  make(n, [this, tweak = std::move(tweak)](NodeConfig& c) {
    c.file_system = fs_[static_cast<std::size_t>(c.id.value())].get();
    if (tweak) tweak(c);
  });
}

void MemoryFsClusterFixture::TearDown() {
  ClusterFixture::TearDown();  // the brokers go before their file systems
  fs_.clear();
}

void MemoryFsClusterFixture::fast_replica_recovery(NodeConfig& c) {
  c.replica_recovery.backoff_initial_ms = 100;
  c.replica_recovery.backoff_max_ms = 400;
  c.replica_recovery.free_bytes_min = 1u << 20;
}

Result<std::optional<LogIndex>> ledger_synced_end(storage::FileSystem& fs,
                                                  const std::string& data_dir, std::uint64_t key) {
  storage::SyncLedgerOptions o;
  o.directory = data_dir + "/partitions";
  o.sync_thread = false;
  MQ_ASSIGN_OR_RETURN(auto ledger, storage::SyncLedger::open(&fs, o));
  return ledger->synced_end(key);
}

std::optional<std::uint64_t> entry_position(storage::MemoryFileSystem& fs,
                                            const std::string& segment, LogIndex index) {
  auto bytes = fs.read_file(segment);
  if (!bytes.has_value()) return std::nullopt;
  std::uint64_t at = storage::segment_format::kSegmentHeaderSize;
  while (at + storage::segment_format::kEntryHeaderSize <= bytes->size()) {
    auto h = storage::EntryHeader::decode_from(
        bytes->view(at, storage::segment_format::kEntryHeaderSize));
    if (!h.has_value()) return std::nullopt;
    if (h->index == index) return at;
    at += h->stored_size();
  }
  return std::nullopt;
}

TestBroker* ClusterFixture::controller_leader() {
  for (auto& b : brokers_) {
    if (b->running() && b->call([](Node& n) { return n.controller()->leader_ready(); })) {
      return b.get();
    }
  }
  return nullptr;
}

TestBroker* ClusterFixture::wait_controller(std::chrono::milliseconds timeout) {
  TestBroker* leader = nullptr;
  wait_until([&] { return (leader = controller_leader()) != nullptr; }, timeout);
  return leader;
}

namespace {
TestBroker* partition_leader_among(const std::vector<std::unique_ptr<TestBroker>>& brokers,
                                   const std::string& topic, std::int32_t p) {
  for (const auto& b : brokers) {
    if (b->running() &&
        b->call([&](Node& n) { return n.local_partition(topic, p).has_value(); })) {
      return b.get();
    }
  }
  return nullptr;
}
}  // namespace

TestBroker* wait_partition_leader(const std::vector<std::unique_ptr<TestBroker>>& brokers,
                                  const std::string& topic, std::int32_t p,
                                  std::chrono::milliseconds timeout) {
  TestBroker* leader = nullptr;
  wait_until([&] { return (leader = partition_leader_among(brokers, topic, p)) != nullptr; },
             timeout);
  return leader;
}

TestBroker* ClusterFixture::partition_leader(const std::string& topic, std::int32_t p) {
  return partition_leader_among(brokers_, topic, p);
}

TestBroker* ClusterFixture::wait_partition_leader(const std::string& topic, std::int32_t p,
                                                  std::chrono::milliseconds timeout) {
  return testing::wait_partition_leader(brokers_, topic, p, timeout);
}

std::optional<PartitionStatus> ClusterFixture::replica_status(TestBroker& b,
                                                              const std::string& topic,
                                                              std::int32_t p) {
  return b.call([&](Node& n) -> std::optional<PartitionStatus> {
    for (const PartitionStatus& s : n.cluster_status().partitions) {
      if (s.topic == topic && s.partition == p) return s;
    }
    return std::nullopt;
  });
}

}  // namespace mq::cluster::testing
