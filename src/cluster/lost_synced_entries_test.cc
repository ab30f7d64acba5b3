// Lost synced entries (storage/sync_ledger.h, replica_repair.h; tests/chaos/FINDINGS.md F9):
// a follower's tail segment is cut cleanly at an entry boundary below what it had synced and
// acknowledged (no damaged entry: the segment looks like an ordinary crash before a sync).
// At its next open the sync ledger shows the loss and the replica abstains, so with the only
// other holder of the committed entries (the old leader) down, the remaining replica (which
// lacks them) cannot be elected; once the old leader is back the follower catches up, votes
// again, and every committed record survives. Without the ledger the two would elect a leader
// that lacks committed records (the test then fails at "no leader while it abstains").
#include <gtest/gtest.h>

#include <filesystem>

#include "cluster/ids.h"
#include "cluster/replica_repair.h"
#include "cluster/test_cluster.h"
#include "storage/memory_file_system.h"
#include "storage/segment_format.h"
#include "storage/sync_ledger.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;


std::optional<PartitionStatus> partition0_status(TestBroker& b, const std::string& topic) {
  return b.call([&](Node& n) -> std::optional<PartitionStatus> {
    for (const PartitionStatus& s : n.cluster_status().partitions) {
      if (s.topic == topic && s.partition == 0) return s;
    }
    return std::nullopt;
  });
}

bool leads(TestBroker& b, const std::string& topic) {
  if (!b.running()) return false;
  auto s = partition0_status(b, topic);
  return s && s->is_leader;
}

class LostSyncedEntriesCluster : public testing::MemoryFsClusterFixture {
 protected:
  void SetUp() override { make_on_memory(3); }
  void create_topic(const std::string& name) {
    TestBroker* controller = wait_controller();
    ASSERT_NE(controller, nullptr);
    auto created = testing::create_topic(*controller, name, /*partitions=*/1, /*rf=*/3);
    ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  }
  void produce_n(TestBroker& leader, const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) {
      written_.push_back(prefix + std::to_string(i) + std::string(50, 'x'));
      Status s = testing::produce_value(leader, "lost", 0, written_.back());
      ASSERT_TRUE(s.is_ok()) << s.to_string();
    }
  }
  void expect_all_committed(TestBroker& leader) {
    std::vector<std::pair<std::int64_t, std::string>> records;
    ASSERT_TRUE(wait_until([&] {
      records = testing::read_committed(leader, "lost", 0);
      return records.size() >= written_.size();
    }, 5s)) << "the leader serves " << records.size() << " of " << written_.size();
    ASSERT_EQ(records.size(), written_.size());
    for (std::size_t i = 0; i < written_.size(); ++i) {
      EXPECT_EQ(records[i].second, written_[i]) << "record " << i;
    }
  }

  std::vector<std::string> written_;
};

TEST_F(LostSyncedEntriesCluster, AFollowerThatLostAcknowledgedEntriesAbstainsUntilItHasThemBack) {
  create_topic("lost");
  TestBroker* a = testing::wait_partition_leader(brokers_, "lost", 0, 10s);
  ASSERT_NE(a, nullptr);
  const std::size_t ai = static_cast<std::size_t>(a->config().id.value());
  TestBroker& b = *brokers_[(ai + 1) % 3];  // the follower that will lose entries
  TestBroker& c = *brokers_[(ai + 2) % 3];  // the follower that never had them
  storage::MemoryFileSystem& b_fs = *fs_[(ai + 1) % 3];

  produce_n(*a, "a", 20);  // on all three
  ASSERT_TRUE(wait_until([&] {
    auto s = partition0_status(c, "lost");
    auto l = partition0_status(*a, "lost");
    return s && l && s->last_index == l->last_index;
  }, 5s));
  const LogIndex c_last = partition0_status(c, "lost")->last_index;
  c.kill();
  // Committed by a and b alone: b synced and acknowledged every one of them.
  produce_n(*a, "b", 10);
  const auto a_status = partition0_status(*a, "lost");
  ASSERT_TRUE(a_status.has_value());
  ASSERT_TRUE(wait_until([&] {
    auto s = partition0_status(b, "lost");
    return s && s->last_index == a_status->last_index;
  }, 5s));
  const GroupId group = a_status->group;
  const std::string dir = b.config().data_dir + "/partitions/lost-0-g" + std::to_string(group.value());
  b.kill();
  a->kill();

  // b's ledger records what it synced; then its tail segment loses, at an entry boundary,
  // every entry c lacks (a clean cut: Log::open sees nothing wrong with the shorter file).
  {
    auto end = testing::ledger_synced_end(b_fs, b.config().data_dir, group.value());
    ASSERT_TRUE(end.has_value()) << end.status().to_string();
    ASSERT_TRUE(end->has_value());
    EXPECT_EQ(**end, a_status->last_index);
  }
  const std::string segment = dir + "/00000000000000000001.log";
  auto cut_at = testing::entry_position(b_fs, segment, c_last + 1);
  ASSERT_TRUE(cut_at.has_value());
  ASSERT_TRUE(b_fs.truncate_file(segment, *cut_at).is_ok());

  // b and c alone: c lacks the committed entries and b, which abstains, grants it nothing,
  // so no leader (the group waits for a, as if b were down).
  ASSERT_TRUE(b.start().is_ok());
  ASSERT_TRUE(c.start().is_ok());
  ASSERT_TRUE(wait_until([&] { return partition0_status(b, "lost").has_value(); }, 10s));
  EXPECT_EQ(b.call([](Node& n) { return n.cluster_status().metrics.replicas_lost_synced; }), 1u);
  EXPECT_TRUE(b_fs.exists(dir + "/abstain").value());
  auto b_open = partition0_status(b, "lost");
  ASSERT_TRUE(b_open.has_value());
  EXPECT_EQ(b_open->last_index, c_last);
  const auto quiet_until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < quiet_until) {
    ASSERT_FALSE(leads(b, "lost")) << "the abstaining replica became leader";
    ASSERT_FALSE(leads(c, "lost")) << "a replica lacking committed entries was elected";
    std::this_thread::sleep_for(50ms);
  }

  // a returns: it is elected (b's and c's votes), b catches up and votes again.
  ASSERT_TRUE(a->start().is_ok());
  TestBroker* leader = testing::wait_partition_leader(brokers_, "lost", 0, 10s);
  ASSERT_EQ(leader, a);
  ASSERT_TRUE(wait_until([&] {
    auto s = partition0_status(b, "lost");
    auto l = partition0_status(*a, "lost");
    return s && l && s->last_index >= a_status->last_index && s->last_index == l->last_index;
  }, 10s)) << "b did not catch up";
  EXPECT_TRUE(wait_until([&] { return !b_fs.exists(dir + "/abstain").value(); }, 5s))
      << "b still abstains after catching up";
  expect_all_committed(*a);

  // b votes normally again: with a down, b and c elect a leader, and nothing committed is lost.
  ASSERT_TRUE(wait_until([&] {
    auto s = partition0_status(c, "lost");
    auto l = partition0_status(*a, "lost");
    return s && l && s->last_index == l->last_index;
  }, 10s));
  a->kill();
  TestBroker* next = testing::wait_partition_leader(brokers_, "lost", 0, 10s);
  ASSERT_NE(next, nullptr);
  ASSERT_NE(next, a);
  produce_n(*next, "c", 1);
  expect_all_committed(*next);
}

}  // namespace
}  // namespace mq::cluster
