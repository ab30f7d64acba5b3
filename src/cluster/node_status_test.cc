// Cluster-wide status (node_status.cc): the broker asked reports every partition of the
// cluster as its leader sees it, including partitions it does not host, and marks a killed
// broker unreachable while the leader's view of its lag grows.
#include <gtest/gtest.h>

#include <filesystem>

#include "cluster/ids.h"
#include "cluster/test_cluster.h"
#include "protocol/record_batch.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::metadata_leader;
using testing::wait_until;

Status produce_one(TestBroker& b, const std::string& topic, std::int32_t partition) {
  return testing::produce_value(b, topic, partition, "status-test");
}

ClusterView gather(TestBroker& b, std::int64_t timeout_ms = 2000) {
  return b.call_async<ClusterView>([=](Node& n, std::function<void(ClusterView)> reply) {
    n.gather_cluster_status(timeout_ms, reply);
  });
}

const PartitionStatus* find(const ClusterView& v, const std::string& topic, std::int32_t p) {
  for (const PartitionStatus& s : v.partitions) {
    if (s.topic == topic && s.partition == p) return &s;
  }
  return nullptr;
}

class ClusterStatusTest : public testing::ClusterFixture {
 protected:
  void make(int n) {
    // The leader keeps its term while a follower is dead.
    ClusterFixture::make(n, [](NodeConfig& c) { c.election_ticks = 200; });
  }
};

TEST(ClusterStatusCodec, RoundTripsAndRefusesMalformed) {
  PartitionStatus s;
  s.topic = "t";
  s.partition = 3;
  s.group = GroupId(9);
  s.leader = BrokerId(2);
  s.term = Term(5);
  s.commit_index = LogIndex(40);
  s.last_index = LogIndex(42);
  s.high_watermark = KafkaOffset(17);
  s.voters = {BrokerId(0), BrokerId(2)};
  s.replicas = {ReplicaLag{BrokerId(0), LogIndex(30), 12, false}};
  s.is_leader = true;
  Buffer bytes = encode_partition_statuses({s});
  auto back = decode_partition_statuses(bytes.view());
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), 1u);
  const PartitionStatus& d = (*back)[0];
  EXPECT_EQ(d.topic, "t");
  EXPECT_EQ(d.partition, 3);
  EXPECT_EQ(d.leader, BrokerId(2));
  EXPECT_EQ(d.term, Term(5));
  EXPECT_EQ(d.commit_index, LogIndex(40));
  EXPECT_EQ(d.high_watermark, KafkaOffset(17));
  ASSERT_EQ(d.replicas.size(), 1u);
  EXPECT_EQ(d.replicas[0].lag_entries, 12u);
  EXPECT_TRUE(d.is_leader);
  // Every truncation and a trailing byte are refused, never a crash.
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_partition_statuses(bytes.view().subspan(0, n)).has_value()) << n;
  }
  Buffer longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(decode_partition_statuses(longer.view()).has_value());
}

TEST_F(ClusterStatusTest, EveryPartitionFromItsLeaderAndLagOfAKilledFollower) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  // rf 1: each partition lives on one broker only, so most are not hosted by the one asked.
  auto r = c->call_async<std::vector<AdminResult>>(
      [](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
        TopicSpec one{"single", 3, 1, {}, {}, false};
        TopicSpec three{"triple", 1, 3, {}, {}, false};
        n.create_topics({one, three}, 5000, reply);
      });
  ASSERT_EQ(r.size(), 2u);
  ASSERT_TRUE(r[0].status.is_ok() && r[1].status.is_ok());
  TestBroker& asked = *brokers_[0];
  ASSERT_TRUE(wait_until([&] {
    for (std::int32_t p = 0; p < 3; ++p) {
      if (metadata_leader(asked, "single", p).value() < 0) return false;
    }
    return metadata_leader(asked, "triple", 0).value() >= 0;
  }, 10s));
  // A Raft leader reports its partition once it has applied an entry of its own term
  // (PartitionGroup::is_leader); until then the view lists it from the metadata, leaderless.
  ClusterView v;
  ASSERT_TRUE(wait_until([&] {
    v = gather(asked);
    for (std::int32_t p = 0; p < 3; ++p) {
      const PartitionStatus* s = find(v, "single", p);
      if (s == nullptr || !s->is_leader) return false;
    }
    const PartitionStatus* s = find(v, "triple", 0);
    return s != nullptr && s->is_leader;
  }, 10s));
  EXPECT_TRUE(v.unreachable.empty());
  int not_hosted = 0;
  for (std::int32_t p = 0; p < 3; ++p) {
    const PartitionStatus* s = find(v, "single", p);
    ASSERT_NE(s, nullptr) << p;
    EXPECT_EQ(s->leader, metadata_leader(asked, "single", p)) << p;
    EXPECT_TRUE(s->is_leader);
    EXPECT_GE(s->term.value(), 1u);
    if (s->leader != BrokerId(0)) ++not_hosted;
  }
  EXPECT_GE(not_hosted, 1);  // three partitions on three brokers: some live elsewhere
  // The same view as the Kafka API carries it (encode_cluster_view / decode_cluster_view).
  Result<Buffer> encoded = asked.call_async<Result<Buffer>>(
      [](Node& n, std::function<void(Result<Buffer>)> reply) { n.cluster_view(2000, reply); });
  ASSERT_TRUE(encoded.has_value());
  auto decoded = decode_cluster_view(encoded->view());
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  EXPECT_EQ(decoded->local.self, BrokerId(0));
  EXPECT_EQ(decoded->local.brokers.size(), 3u);
  EXPECT_GE(decoded->local.controller_leader.value(), 0);
  ASSERT_EQ(decoded->partitions.size(), v.partitions.size());
  for (std::size_t i = 0; i < v.partitions.size(); ++i) {
    EXPECT_EQ(decoded->partitions[i].topic, v.partitions[i].topic);
    EXPECT_EQ(decoded->partitions[i].leader, v.partitions[i].leader);
    EXPECT_EQ(decoded->partitions[i].voters, v.partitions[i].voters);
  }
  Buffer cut = *encoded;
  cut.resize(cut.size() - 1);
  EXPECT_FALSE(decode_cluster_view(cut.view()).has_value());
  const PartitionStatus* t = find(v, "triple", 0);
  ASSERT_NE(t, nullptr);
  BrokerId leader = t->leader;
  EXPECT_EQ(leader, metadata_leader(asked, "triple", 0));
  EXPECT_EQ(t->voters.size(), 3u);
  EXPECT_EQ(t->replicas.size(), 3u);
  LogIndex commit_before = t->commit_index;

  // Produce on the leader: the gathered commit index advances.
  TestBroker& lb = *brokers_[static_cast<std::size_t>(leader.value())];
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(produce_one(lb, "triple", 0).is_ok());
  v = gather(asked);
  t = find(v, "triple", 0);
  ASSERT_NE(t, nullptr);
  EXPECT_GE(t->commit_index.value(), commit_before.value() + 5);

  // Kill a follower other than the broker asked: it is unreachable and its lag grows.
  int victim = leader == BrokerId(1) ? 2 : 1;
  brokers_[static_cast<std::size_t>(victim)]->kill();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(produce_one(lb, "triple", 0).is_ok());
  TestBroker& asker = asked;
  v = gather(asker, 1000);
  t = find(v, "triple", 0);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->leader, leader);
  bool saw_victim = false;
  for (const ReplicaLag& lag : t->replicas) {
    if (lag.broker == BrokerId(victim)) {
      saw_victim = true;
      EXPECT_GE(lag.lag_entries, 20u);
    } else {
      EXPECT_LT(lag.lag_entries, 20u);
    }
  }
  EXPECT_TRUE(saw_victim);
  EXPECT_TRUE(std::find(v.unreachable.begin(), v.unreachable.end(), BrokerId(victim)) !=
              v.unreachable.end());
  // The rf-1 partition the victim led has no answering leader now.
  for (std::int32_t p = 0; p < 3; ++p) {
    const PartitionStatus* s = find(v, "single", p);
    ASSERT_NE(s, nullptr);
    if (s->voters.size() == 1 && s->voters[0] == BrokerId(victim)) {
      EXPECT_EQ(s->leader.value(), -1);
    }
  }
}

}  // namespace
}  // namespace mq::cluster
