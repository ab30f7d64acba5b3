// The controller group's replica and storage errors (tests/chaos/FINDINGS.md F1; issue 6:
// "a full disk loses nothing"):
//   - a broker's controller replica stopped by a full disk is re-opened from its directory once
//     space returns (replica_recovery.h's policy, as for partition replicas), catches up as a
//     follower, and is a working voter again: the controller quorum then survives the loss
//     of another controller replica;
//   - the sync ledger covers the controller group: a controller replica whose log lost
//     entries it had synced (and acknowledged) abstains from elections until it has them
//     back, so two replicas lacking committed controller entries cannot elect one of them.
// Every broker runs on its own in-memory file system (capacity and truncation injected).
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

// This broker's controller replica, as the tests need it (running brokers only).
struct ControllerView {
  bool hosted = false;
  bool failed = false;
  bool leader = false;
  LogIndex applied;
  LogIndex commit;
  LogIndex last_index;
  LogIndex durable;
  LogIndex abstain_until;
  std::set<std::string> topics;
};

ControllerView controller_view(TestBroker& b) {
  return b.call([](Node& n) {
    ControllerView v;
    const ControllerGroup* c = n.controller();
    if (c == nullptr) return v;
    v.hosted = true;
    v.failed = c->failed();
    v.leader = c->is_raft_leader();
    v.applied = c->applied();
    v.commit = c->commit();
    v.last_index = c->storage().last_index();
    v.durable = c->storage().durable_index();
    if (c->started()) v.abstain_until = c->node().abstain_until();
    for (const auto& [name, t] : c->state().topics()) v.topics.insert(name);
    return v;
  });
}

// Creates a one-partition topic placed on `on` through `b` with a short timeout. The status
// may be a timeout while a live broker cannot apply controller entries (its replica is
// stopped): the callers check the controller state instead when that is expected.
Status create_topic_on(TestBroker& b, const std::string& name, BrokerId on,
                       std::int64_t timeout_ms = 1500) {
  auto results = b.call_async<std::vector<AdminResult>>(
      [&](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
        TopicSpec spec;
        spec.name = name;
        spec.assignments[0] = {on};  // one partition, one replica
        n.create_topics({spec}, timeout_ms, reply);
      });
  return results.empty() ? Status::internal("no result") : results[0].status;
}

class ControllerRecoveryCluster : public testing::MemoryFsClusterFixture {
 protected:
  void SetUp() override { make_on_memory(3, fast_replica_recovery); }
  // The topic is in `b`'s controller state (waiting up to `timeout`).
  bool has_topic(TestBroker& b, const std::string& name, std::chrono::milliseconds timeout = 5s) {
    return wait_until([&] { return controller_view(b).topics.count(name) != 0; }, timeout);
  }
  bool caught_up(TestBroker& follower, TestBroker& leader) {
    ControllerView l = controller_view(leader);
    ControllerView f = controller_view(follower);
    return f.hosted && !f.failed && f.applied >= l.commit && f.last_index == l.last_index;
  }
};

TEST_F(ControllerRecoveryCluster, DiskFullControllerReplicaIsReopenedCatchesUpAndKeepsTheQuorum) {
  TestBroker* leader = wait_controller();
  ASSERT_NE(leader, nullptr);
  const BrokerId lid = leader->config().id;
  ASSERT_TRUE(create_topic_on(*leader, "t0", lid, 5000).is_ok());
  std::size_t li = static_cast<std::size_t>(lid.value());
  std::size_t vi = (li + 1) % 3, oi = (li + 2) % 3;  // victim (a follower) and the other one
  TestBroker& victim = *brokers_[vi];
  TestBroker& other = *brokers_[oi];
  // A partition hosted by the victim (its only replica), with a record: the re-open must not
  // make the victim's metadata go back in time, or reconciliation would remove it.
  ASSERT_TRUE(create_topic_on(*leader, "v0", victim.config().id, 5000).is_ok());
  TestBroker* v0_leader = wait_partition_leader("v0", 0);
  ASSERT_EQ(v0_leader, &victim);
  ASSERT_TRUE(testing::produce_value(victim, "v0", 0, "kept").is_ok());
  ASSERT_TRUE(wait_until([&] { return caught_up(victim, *leader); }, 5s));
  auto removed = [&] {
    return victim.call([](Node& n) { return n.cluster_status().metrics.groups_removed; });
  };
  const std::uint64_t removed_before = removed();

  // The victim's disk is full: its next controller append fails with kNoSpace and stops its
  // controller replica; the leader and the other replica commit without it.
  fs_[vi]->set_capacity_bytes(fs_[vi]->used_bytes());
  for (int i = 1; i <= 3; ++i) {
    (void)create_topic_on(*leader, "t" + std::to_string(i), lid, 1000);
    ASSERT_TRUE(has_topic(*leader, "t" + std::to_string(i)));
  }
  ASSERT_TRUE(wait_until([&] { return controller_view(victim).failed; }, 5s))
      << "the victim's controller replica did not stop on the full disk";
  // No space, no re-open: still stopped after several back-off periods.
  std::this_thread::sleep_for(600ms);
  EXPECT_TRUE(controller_view(victim).failed);
  (void)create_topic_on(*leader, "t4", lid, 1000);
  ASSERT_TRUE(has_topic(*leader, "t4"));

  // Space returns: the replica is re-opened from its directory and catches up; it lost
  // nothing and applies every command exactly once (the topics are all there).
  fs_[vi]->set_capacity_bytes(UINT64_MAX);
  ASSERT_TRUE(wait_until([&] { return caught_up(victim, *leader); }, 10s))
      << "the victim's controller replica was not re-opened / did not catch up";
  ControllerView back = controller_view(victim);
  EXPECT_FALSE(back.failed);
  EXPECT_EQ(back.topics, controller_view(*leader).topics);
  EXPECT_EQ(back.topics.size(), 6u);
  EXPECT_EQ(removed(), removed_before) << "a hosted replica was removed after the re-open";
  auto kept = testing::read_committed(victim, "v0", 0);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].second, "kept");

  // It is a working voter again: with the other replica down, a controller command commits
  // only with the victim's acknowledgement (2 of 3).
  other.kill();
  Status created = create_topic_on(*leader, "t5", lid, 5000);
  EXPECT_TRUE(created.is_ok()) << created.to_string();
  EXPECT_TRUE(has_topic(victim, "t5"));
  // And it takes part in elections: the leader goes too and comes back; the two elect one.
  leader->kill();
  ASSERT_TRUE(leader->start().is_ok());
  TestBroker* next = wait_controller(10s);
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(create_topic_on(*next, "t6", next->config().id, 5000).is_ok());
  EXPECT_TRUE(has_topic(victim, "t6"));
}

// The leader compacts its controller log (a snapshot every 4 commands) while the victim's
// replica is stopped: the re-opened replica is behind the leader's first index and receives
// the leader's snapshot (Raft §7), which is newer than the state it carried over and
// replaces it; it then applies from there and snapshots again itself.
class ControllerRecoverySnapshotCluster : public ControllerRecoveryCluster {
 protected:
  void SetUp() override {
    make_on_memory(3, [](NodeConfig& c) {
      fast_replica_recovery(c);
      c.controller_snapshot_interval_entries = 4;
    });
  }
};

TEST_F(ControllerRecoverySnapshotCluster, ReopenedReplicaBehindTheLeadersSnapshotInstallsIt) {
  TestBroker* leader = wait_controller();
  ASSERT_NE(leader, nullptr);
  const BrokerId lid = leader->config().id;
  ASSERT_TRUE(create_topic_on(*leader, "s0", lid, 5000).is_ok());
  std::size_t li = static_cast<std::size_t>(lid.value());
  std::size_t vi = (li + 1) % 3, oi = (li + 2) % 3;
  TestBroker& victim = *brokers_[vi];
  TestBroker& other = *brokers_[oi];
  ASSERT_TRUE(wait_until([&] { return caught_up(victim, *leader); }, 5s));
  fs_[vi]->set_capacity_bytes(fs_[vi]->used_bytes());
  (void)create_topic_on(*leader, "s1", lid, 300);
  ASSERT_TRUE(wait_until([&] { return controller_view(victim).failed; }, 5s));
  const LogIndex victim_end = controller_view(victim).last_index;
  for (int i = 2; i <= 12; ++i) {
    (void)create_topic_on(*leader, "s" + std::to_string(i), lid, 300);
    ASSERT_TRUE(has_topic(*leader, "s" + std::to_string(i)));
  }
  const LogIndex leader_first = leader->call([](Node& n) {
    return n.controller()->storage().first_index();
  });
  ASSERT_GT(leader_first, victim_end + 1) << "the leader did not compact past the victim's log";
  fs_[vi]->set_capacity_bytes(UINT64_MAX);
  ASSERT_TRUE(wait_until([&] { return caught_up(victim, *leader); }, 10s));
  EXPECT_EQ(controller_view(victim).topics, controller_view(*leader).topics);
  EXPECT_EQ(controller_view(victim).topics.size(), 13u);
  const LogIndex victim_first = victim.call([](Node& n) {
    return n.controller()->storage().first_index();
  });
  EXPECT_GT(victim_first, victim_end + 1) << "the victim did not install the leader's snapshot";
  // Still a working voter: with the other replica down, commands commit with its ack.
  other.kill();
  EXPECT_TRUE(create_topic_on(*leader, "s13", lid, 5000).is_ok());
  EXPECT_TRUE(has_topic(victim, "s13"));
}

TEST_F(ControllerRecoveryCluster, ControllerReplicaThatLostSyncedEntriesAbstainsUntilItHasThemBack) {
  TestBroker* a = wait_controller();
  ASSERT_NE(a, nullptr);
  const BrokerId aid = a->config().id;
  const std::size_t ai = static_cast<std::size_t>(aid.value());
  TestBroker& b = *brokers_[(ai + 1) % 3];  // the follower that will lose entries
  TestBroker& c = *brokers_[(ai + 2) % 3];  // the follower that never had them
  storage::MemoryFileSystem& b_fs = *fs_[(ai + 1) % 3];
  ASSERT_TRUE(create_topic_on(*a, "a0", aid, 5000).is_ok());
  ASSERT_TRUE(wait_until([&] { return caught_up(c, *a) && caught_up(b, *a); }, 5s));
  const LogIndex c_last = controller_view(c).last_index;
  c.kill();
  // Committed by a and b alone: b synced and acknowledged every one of them.
  for (int i = 0; i < 3; ++i) {
    (void)create_topic_on(*a, "b" + std::to_string(i), aid, 1000);
    ASSERT_TRUE(has_topic(*a, "b" + std::to_string(i)));
  }
  const LogIndex a_last = controller_view(*a).last_index;
  ASSERT_TRUE(wait_until([&] { return controller_view(b).durable >= a_last; }, 5s));
  b.kill();
  a->kill();

  // b's ledger records what its controller log synced (key 0, the controller group) ...
  {
    auto end = testing::ledger_synced_end(b_fs, b.config().data_dir, kControllerGroup.value());
    ASSERT_TRUE(end.has_value()) << end.status().to_string();
    ASSERT_TRUE(end->has_value()) << "the sync ledger has no record of the controller group";
    EXPECT_EQ(**end, a_last);
  }
  // ... then its controller segment loses, at an entry boundary, every entry c lacks.
  const std::string dir = b.config().data_dir + "/controller";
  const std::string segment = dir + "/00000000000000000001.log";
  auto cut_at = testing::entry_position(b_fs, segment, c_last + 1);
  ASSERT_TRUE(cut_at.has_value());
  ASSERT_TRUE(b_fs.truncate_file(segment, *cut_at).is_ok());

  // b and c alone: c lacks committed entries and b abstains, so nobody is elected.
  ASSERT_TRUE(b.start().is_ok());
  ASSERT_TRUE(c.start().is_ok());
  ControllerView b_open = controller_view(b);
  EXPECT_EQ(b_open.last_index, c_last);
  EXPECT_EQ(b_open.abstain_until, a_last);
  EXPECT_TRUE(b_fs.exists(dir + "/" + replica_repair::kAbstainFileName).value());
  EXPECT_GE(b.call([](Node& n) { return n.cluster_status().metrics.replicas_lost_synced; }), 1u);
  const auto quiet_until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < quiet_until) {
    ASSERT_FALSE(controller_view(b).leader) << "the abstaining controller replica became leader";
    ASSERT_FALSE(controller_view(c).leader)
        << "a controller replica lacking committed entries was elected";
    std::this_thread::sleep_for(50ms);
  }

  // a returns: it is elected, b catches up, stops abstaining, and nothing committed is lost.
  ASSERT_TRUE(a->start().is_ok());
  TestBroker* leader = wait_controller(10s);
  ASSERT_EQ(leader, a);
  ASSERT_TRUE(wait_until([&] { return caught_up(b, *a) && caught_up(c, *a); }, 10s));
  EXPECT_TRUE(wait_until([&] {
    return !b_fs.exists(dir + "/" + replica_repair::kAbstainFileName).value() &&
           controller_view(b).abstain_until == LogIndex(0);
  }, 5s)) << "b still abstains after catching up";
  for (TestBroker* x : {&b, &c}) {
    for (const char* t : {"a0", "b0", "b1", "b2"}) EXPECT_TRUE(has_topic(*x, t)) << t;
  }
  // b votes again: with a down, b and c elect a controller leader that has everything.
  a->kill();
  TestBroker* next = wait_controller(10s);
  ASSERT_NE(next, nullptr);
  ASSERT_NE(next, a);
  EXPECT_TRUE(create_topic_on(*next, "c0", next->config().id, 5000).is_ok());
  for (const char* t : {"a0", "b0", "b1", "b2", "c0"}) EXPECT_TRUE(has_topic(*next, t)) << t;
}

}  // namespace
}  // namespace mq::cluster
