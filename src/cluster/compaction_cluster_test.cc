// Log compaction in a running cluster (Node::run_retention -> PartitionGroup::compact): every
// replica compacts its own log; a follower that was down catches up from a compacted leader
// (zero-record batches included) and, once leader, serves the latest value of every key.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "cluster/ids.h"
#include "cluster/test_cluster.h"
#include "protocol/record_batch.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

// The topic under test (set by each test before any broker call).
std::string kTopic = "compacted";

struct Record {
  std::int64_t offset;
  std::string key;
  std::string value;
};

Buffer keyed_batch(const std::string& key, const std::string& value) {
  protocol::RecordInput r;
  r.key = Buffer(std::string_view(key));
  r.value = Buffer(std::string_view(value));
  r.timestamp = 1700000000000;  // long ago: tombstones would be expired (none are written)
  auto batch = protocol::build_record_batch(protocol::RecordBatchOptions{},
                                            std::span<const protocol::RecordInput>(&r, 1));
  MQ_ASSERT(batch.has_value());
  return std::move(*batch);
}

Result<KafkaOffset> produce(TestBroker& b, const std::string& key, const std::string& value) {
  return b.call_async<Result<KafkaOffset>>(
      [=](Node& n, std::function<void(Result<KafkaOffset>)> reply) {
        auto p = n.local_partition(kTopic, 0);
        if (!p.has_value()) return reply(p.error());
        (*p)->produce(SharedBuffer(keyed_batch(key, value)), Acks::kAll,
                      [reply](Result<ProduceResult> r) {
                        reply(r.has_value() ? Result<KafkaOffset>(r->base_offset)
                                            : Result<KafkaOffset>(r.error()));
                      });
      });
}

// Every committed record from the leader, checking that each fetched batch parses and that
// offsets increase across batches.
std::optional<std::vector<Record>> read_all(TestBroker& b) {
  return b.call([&](Node& n) -> std::optional<std::vector<Record>> {
    std::vector<Record> out;
    auto p = n.local_partition(kTopic, 0);
    if (!p.has_value()) return std::nullopt;
    KafkaOffset next = (*p)->log_start_offset();
    for (int rounds = 0; rounds < 10000 && next < (*p)->high_watermark(); ++rounds) {
      auto f = (*p)->fetch(next, 64 * 1024);
      if (!f.has_value()) return std::nullopt;
      Buffer bytes;
      for (const RecordsChunk& c : f->records) {
        if (c.fd >= 0) {
          Buffer part(c.length);
          if (::pread(c.fd, part.data(), c.length, static_cast<off_t>(c.file_offset)) !=
              static_cast<ssize_t>(c.length)) {
            return std::nullopt;
          }
          bytes.append(part.view());
        } else {
          bytes.append(c.bytes.view());
        }
      }
      auto batches = protocol::parse_record_batches(bytes.view());
      EXPECT_TRUE(batches.has_value() && !batches->empty());
      if (!batches.has_value() || batches->empty()) return std::nullopt;
      for (const auto& batch : *batches) {
        EXPECT_EQ(batch.header().base_offset, next.value());
        next = KafkaOffset(batch.header().last_offset() + 1);
        if (batch.header().is_control()) continue;
        auto records = batch.decode_records();
        EXPECT_TRUE(records.has_value());
        if (!records.has_value()) return std::nullopt;
        for (const auto& r : records->records) {
          out.push_back(Record{batch.header().base_offset + r.offset_delta,
                               std::string(as_chars(*r.key)), std::string(as_chars(*r.value))});
        }
      }
    }
    return out;
  });
}

std::optional<PartitionStatus> replica_status(TestBroker& b) {
  return b.call([&](Node& n) -> std::optional<PartitionStatus> {
    for (const PartitionStatus& s : n.cluster_status().partitions) {
      if (s.topic == kTopic && s.partition == 0) return s;
    }
    return std::nullopt;
  });
}

std::uint64_t partition_log_bytes(const std::string& data_dir) {
  std::uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(data_dir + "/partitions")) {
    if (e.is_regular_file() && e.path().extension() == ".log") total += e.file_size();
  }
  return total;
}

class CompactionCluster : public ::testing::Test {
 protected:
  void make(int n) {
    root_ = testing::make_temp_dir("raftmq-compact-");
    std::vector<BrokerAddress> addresses;
    for (int i = 0; i < n; ++i) {
      addresses.push_back(BrokerAddress{BrokerId(i), "127.0.0.1", testing::free_port(),
                                        static_cast<std::uint16_t>(19592 + i)});
    }
    for (int i = 0; i < n; ++i) {
      NodeConfig c;
      c.id = BrokerId(i);
      c.data_dir = root_ + "/broker" + std::to_string(i);
      c.rpc_listen_port = addresses[static_cast<std::size_t>(i)].rpc_port;
      c.advertised_kafka_port = addresses[static_cast<std::size_t>(i)].kafka_port;
      c.brokers = addresses;
      c.produce_timeout_ms = 5000;
      c.retention_check_interval_ms = 100;
      brokers_.push_back(std::make_unique<TestBroker>(c));
    }
    for (auto& b : brokers_) ASSERT_TRUE(b->start().is_ok());
  }
  void TearDown() override {
    brokers_.clear();
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }
  TestBroker* leader() {
    for (auto& b : brokers_) {
      if (b->running() &&
          b->call([](Node& n) { return n.local_partition(kTopic, 0).has_value(); })) {
        return b.get();
      }
    }
    return nullptr;
  }
  TestBroker* wait_leader() {
    TestBroker* l = nullptr;
    wait_until([&] { return (l = leader()) != nullptr; }, 10s);
    return l;
  }
  TestBroker* controller() {
    TestBroker* c = nullptr;
    wait_until(
        [&] {
          for (auto& b : brokers_) {
            if (b->running() && b->call([](Node& n) { return n.controller()->leader_ready(); })) {
              c = b.get();
              return true;
            }
          }
          return false;
        },
        10s);
    return c;
  }

  std::string root_;
  std::vector<std::unique_ptr<TestBroker>> brokers_;
};

class CompactionClusterTopics : public CompactionCluster,
                                public ::testing::WithParamInterface<const char*> {};

// "compacted": a user topic, compacted in place. "__compacted": an internal-style topic, whose
// emptied leading segments also go (trim_empty_prefix; the log start moves), so the follower
// that was down may be sent the log-start snapshot first (Raft §7).
TEST_P(CompactionClusterTopics, ReplicasCompactAndACatchingUpFollowerServesTheLatestPerKey) {
  kTopic = GetParam();
  const bool internal = kTopic.starts_with("__");
  make(3);
  TestBroker* c = controller();
  ASSERT_NE(c, nullptr);
  auto created = c->call_async<std::vector<AdminResult>>(
      [](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
        TopicSpec spec;
        spec.name = kTopic;
        spec.partitions = 1;
        spec.replication_factor = 3;
        spec.configs = {{"cleanup.policy", "compact"},
                        {"segment.bytes", "4096"},
                        {"delete.retention.ms", "1000"}};
        n.create_topics({spec}, 5000, reply);
      });
  ASSERT_EQ(created.size(), 1u);
  ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  TestBroker* l = wait_leader();
  ASSERT_NE(l, nullptr);
  TestBroker* follower = nullptr;
  for (auto& b : brokers_) {
    if (b.get() != l) follower = b.get();
  }
  follower->kill();

  const int kKeys = 8;
  const std::string pad(200, 'p');
  std::map<std::string, std::pair<std::int64_t, std::string>> latest;  // key -> (offset, value)
  for (int i = 0; i < 120; ++i) {
    std::string key = "k" + std::to_string(i % kKeys);
    std::string value = pad + std::to_string(i);
    Result<KafkaOffset> r = Status::unavailable("no leader");
    for (int attempt = 0; attempt < 50; ++attempt) {
      TestBroker* now = leader();
      if (now != nullptr && (r = produce(*now, key, value)).has_value()) break;
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    latest[key] = {r->value(), value};
  }
  l = wait_leader();
  ASSERT_NE(l, nullptr);
  // The leader compacts its closed segments: superseded records disappear from fetches.
  std::size_t seen = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        auto records = read_all(*l);
        seen = records ? records->size() : 0;
        return records && records->size() < 60;
      },
      10s))
      << seen << " records still visible";
  std::uint64_t leader_bytes = partition_log_bytes(l->config().data_dir);
  if (internal) {
    EXPECT_TRUE(
        wait_until([&] { return replica_status(*l)->log_start_offset > KafkaOffset(0); }, 10s));
  } else {
    EXPECT_EQ(replica_status(*l)->log_start_offset, KafkaOffset(0));
  }

  // The follower catches up from the compacted leader, then compacts its own copy.
  ASSERT_TRUE(follower->start().is_ok());
  LogIndex target = replica_status(*l)->commit_index;
  EXPECT_TRUE(wait_until(
      [&] {
        auto s = replica_status(*follower);
        return s && s->applied_index >= target;
      },
      15s));
  EXPECT_EQ(replica_status(*follower)->log_end_offset, replica_status(*l)->log_end_offset);
  std::printf("leader partition log %llu bytes, follower %llu bytes\n",
              static_cast<unsigned long long>(leader_bytes),
              static_cast<unsigned long long>(partition_log_bytes(follower->config().data_dir)));
  // The caught-up follower and the third broker remain (a quorum): one of them leads.
  l->kill();
  TestBroker* next = wait_leader();
  ASSERT_NE(next, nullptr);
  std::optional<std::vector<Record>> records;
  ASSERT_TRUE(wait_until([&] { return (records = read_all(*next)).has_value(); }, 10s));
  std::map<std::string, std::pair<std::int64_t, std::string>> served;
  for (const Record& r : *records) served[r.key] = {r.offset, r.value};
  EXPECT_EQ(served, latest);  // every key's latest value, at its acknowledged offset
  EXPECT_LT(records->size(), 120u);
}

INSTANTIATE_TEST_SUITE_P(UserAndInternal, CompactionClusterTopics,
                         ::testing::Values("compacted", "__compacted"));

}  // namespace
}  // namespace mq::cluster
