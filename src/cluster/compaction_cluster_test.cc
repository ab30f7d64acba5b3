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
  auto r = testing::produce_batch(b, kTopic, 0, SharedBuffer(keyed_batch(key, value)));
  if (!r.has_value()) return r.error();
  return r->base_offset;
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

std::uint64_t partition_log_bytes(const std::string& data_dir) {
  std::uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(data_dir + "/partitions")) {
    if (e.is_regular_file() && e.path().extension() == ".log") total += e.file_size();
  }
  return total;
}

class CompactionCluster : public testing::ClusterFixture {
 protected:
  void make(int n) {
    ClusterFixture::make(n, [](NodeConfig& c) { c.retention_check_interval_ms = 100; });
  }
  TestBroker* leader() { return partition_leader(kTopic, 0); }
  TestBroker* wait_leader() { return wait_partition_leader(kTopic, 0); }
  static std::optional<PartitionStatus> replica_status(TestBroker& b) {
    return ClusterFixture::replica_status(b, kTopic, 0);
  }
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
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  auto created = testing::create_topic(*c, kTopic, 1, 3,
                                       {{"cleanup.policy", "compact"},
                                        {"segment.bytes", "4096"},
                                        {"delete.retention.ms", "1000"}});
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
