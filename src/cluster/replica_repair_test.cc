// Replica repair (replica_repair.h, tests/chaos FINDINGS-chaos2 F8): the abstention file, and
// a 3-broker cluster whose follower's tail segment gets a flipped bit in the middle (a damaged
// entry with valid entries after it): the follower's broker restarts, cuts the damaged tail,
// abstains, is repaired by the leader, and every committed record is intact and in order.
#include "cluster/replica_repair.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "cluster/ids.h"
#include "cluster/test_cluster.h"
#include "protocol/record_batch.h"
#include "storage/log.h"
#include "storage/memory_file_system.h"
#include "storage/metadata.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

TEST(ReplicaRepairFile, RoundTripsRejectsDamageAndRemoves) {
  storage::MemoryFileSystem fs;
  ASSERT_TRUE(fs.create_dirs("/p").is_ok());
  auto none = replica_repair::load_abstention(&fs, "/p");
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(replica_repair::save_abstention(&fs, "/p", LogIndex(4242)).is_ok());
  auto some = replica_repair::load_abstention(&fs, "/p");
  ASSERT_TRUE(some.has_value());
  ASSERT_TRUE(some->has_value());
  EXPECT_EQ(**some, LogIndex(4242));
  for (std::uint64_t at : {0u, 5u, 9u, 17u}) {  // magic, version, bound, checksum
    ASSERT_TRUE(replica_repair::save_abstention(&fs, "/p", LogIndex(4242)).is_ok());
    ASSERT_TRUE(fs.corrupt_byte("/p/abstain", at, 0x10).is_ok());
    auto bad = replica_repair::load_abstention(&fs, "/p");
    ASSERT_FALSE(bad.has_value()) << "flip at " << at;
    EXPECT_EQ(bad.error().code(), ErrorCode::kCorruption);
  }
  ASSERT_TRUE(replica_repair::remove_abstention(&fs, "/p").is_ok());
  EXPECT_FALSE(replica_repair::load_abstention(&fs, "/p").value().has_value());
  EXPECT_TRUE(replica_repair::remove_abstention(&fs, "/p").is_ok());  // already gone
}


Status produce(TestBroker& b, const std::string& topic, const std::string& value) {
  return testing::produce_value(b, topic, 0, value);
}

std::optional<PartitionStatus> partition0_status(TestBroker& b, const std::string& topic) {
  return b.call([&](Node& n) -> std::optional<PartitionStatus> {
    for (const PartitionStatus& s : n.cluster_status().partitions) {
      if (s.topic == topic && s.partition == 0) return s;
    }
    return std::nullopt;
  });
}

class ReplicaRepairCluster : public testing::MemoryFsClusterFixture {
 protected:
  void SetUp() override { make_on_memory(3); }
  TestBroker* leader_of(const std::string& topic) {
    return testing::wait_partition_leader(brokers_, topic, 0, 10s);
  }
  void create_topic(const std::string& name) {
    TestBroker* controller = wait_controller();
    ASSERT_NE(controller, nullptr);
    auto created = testing::create_topic(*controller, name, /*partitions=*/1, /*rf=*/3);
    ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  }
};

TEST_F(ReplicaRepairCluster, FollowerWithADamagedMidTailEntryRepairsItselfFromTheLeader) {
  create_topic("rep");
  TestBroker* leader = leader_of("rep");
  ASSERT_NE(leader, nullptr);
  std::vector<std::string> written;
  for (int i = 0; i < 40; ++i) {
    written.push_back("a" + std::to_string(i) + std::string(100, 'x'));
    ASSERT_TRUE(produce(*leader, "rep", written.back()).is_ok());
  }
  std::size_t li = static_cast<std::size_t>(leader->config().id.value());
  std::size_t vi = (li + 1) % 3, oi = (li + 2) % 3;
  TestBroker& victim = *brokers_[vi];
  TestBroker& other = *brokers_[oi];
  ASSERT_TRUE(wait_until([&] {
    auto s = partition0_status(victim, "rep");
    auto l = partition0_status(*leader, "rep");
    return s && l && s->last_index == l->last_index;
  }, 5s));
  auto before = partition0_status(victim, "rep");
  ASSERT_TRUE(before.has_value());
  const std::string dir = victim.config().data_dir + "/partitions/rep-0-g" +
                          std::to_string(before->group.value());
  victim.kill();

  // A flipped bit in the middle of the victim's only (tail) segment: a damaged entry with
  // valid entries after it. A normal open refuses it (it may hold acknowledged entries).
  storage::MemoryFileSystem& fs = *fs_[vi];
  const std::string segment = dir + "/00000000000000000001.log";
  auto bytes = fs.read_file(segment);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().to_string();
  ASSERT_TRUE(fs.corrupt_byte(segment, bytes->size() / 2, 0x04).is_ok());
  {
    storage::LogOptions o;
    o.directory = dir;
    o.name = "rep-0";
    auto plain = storage::Log::open(&fs, storage::SystemClock::instance(), o);
    ASSERT_FALSE(plain.has_value());
    EXPECT_NE(plain.error().message().find("not a torn write"), std::string::npos)
        << plain.error().to_string();
  }
  // Writes go on with two replicas meanwhile.
  for (int i = 0; i < 10; ++i) {
    written.push_back("b" + std::to_string(i));
    ASSERT_TRUE(produce(*leader, "rep", written.back()).is_ok());
  }

  ASSERT_TRUE(victim.start().is_ok());
  auto leader_status = partition0_status(*leader, "rep");
  ASSERT_TRUE(leader_status.has_value());
  EXPECT_TRUE(wait_until([&] {
    auto s = partition0_status(victim, "rep");
    return s && !s->failed && s->last_index >= leader_status->last_index &&
           s->log_end_offset == leader_status->high_watermark;
  }, 10s)) << "the damaged replica did not come back in sync";
  EXPECT_EQ(victim.call([](Node& n) { return n.cluster_status().metrics.replicas_repaired; }), 1u);
  // Caught up past the bound: the abstention file is gone.
  EXPECT_TRUE(wait_until([&] {
    return !fs.exists(dir + "/abstain").value();
  }, 5s));

  // It is a full voter again: with the other follower down, acks=all writes need it, and
  // with the leader down it (with the other back) elects a new leader.
  other.kill();
  for (int i = 0; i < 5; ++i) {
    written.push_back("c" + std::to_string(i));
    Status s = produce(*leader, "rep", written.back());
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }
  ASSERT_TRUE(other.start().is_ok());
  ASSERT_TRUE(wait_until([&] {
    auto s = partition0_status(other, "rep");
    auto l = partition0_status(*leader, "rep");
    return s && l && s->log_end_offset == l->high_watermark;
  }, 10s));
  leader->kill();
  TestBroker* next = leader_of("rep");
  ASSERT_NE(next, nullptr);
  EXPECT_NE(next, leader);
  written.push_back("d0");
  ASSERT_TRUE(produce(*next, "rep", "d0").is_ok());

  // Every committed record, intact and in order, as the new leader serves it (the new leader
  // is the repaired replica or the other one; either way the repaired one holds the same log).
  std::vector<std::pair<std::int64_t, std::string>> records;
  ASSERT_TRUE(wait_until([&] {
    records = testing::read_committed(*next, "rep", 0);
    return records.size() >= written.size();
  }, 5s)) << "the new leader serves " << records.size();
  ASSERT_EQ(records.size(), written.size());
  for (std::size_t i = 0; i < written.size(); ++i) {
    EXPECT_EQ(records[i].second, written[i]) << "record " << i;
    if (i > 0) {
      EXPECT_GT(records[i].first, records[i - 1].first);
    }
  }
  auto final_leader = partition0_status(*next, "rep");
  ASSERT_TRUE(final_leader.has_value());
  EXPECT_TRUE(wait_until([&] {
    auto s = partition0_status(victim, "rep");
    return s && s->log_end_offset == final_leader->high_watermark;
  }, 5s));
}

}  // namespace
}  // namespace mq::cluster
