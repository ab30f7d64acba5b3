// Replicas stopped by a storage error come back (tests/chaos/FINDINGS.md F1): the policy
// (back-off, free space, attempt budget) and a 3-broker cluster whose follower's disk fills
// up (in-memory file system with a capacity), stops, and rejoins once space returns.
#include "cluster/replica_recovery.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "cluster/ids.h"
#include "cluster/test_cluster.h"
#include "protocol/record_batch.h"
#include "storage/memory_file_system.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using Decision = ReplicaRecovery::Decision;
using testing::TestBroker;
using testing::wait_until;

ReplicaRecoveryOptions policy_options() {
  ReplicaRecoveryOptions o;
  o.backoff_initial_ms = 100;
  o.backoff_max_ms = 800;
  o.free_bytes_min = 1000;
  o.other_errors_attempts_max = 2;
  o.stable_ms = 5000;
  return o;
}

TEST(ReplicaRecoveryPolicy, NoSpaceWaitsForFreeSpaceAndBacksOffWithoutLimit) {
  ReplicaRecovery r(policy_options());
  GroupId g(7);
  Status full = Status::no_space("pwritev: No space left on device");
  EXPECT_EQ(r.decide(g, full, 0, 1u << 20), Decision::kWait);  // first back-off: 100 ms
  EXPECT_EQ(r.decide(g, full, 99, 1u << 20), Decision::kWait);
  EXPECT_EQ(r.decide(g, full, 100, 999), Decision::kWait);           // below free_bytes_min
  EXPECT_EQ(r.decide(g, full, 100, std::nullopt), Decision::kWait);  // statvfs failed
  EXPECT_EQ(r.decide(g, full, 100, 1000), Decision::kReopen);
  // Re-opened, failed again at once: the delay doubles (200, 400, 800, 800 ...) and never
  // runs out for kNoSpace.
  std::int64_t now = 100;
  std::int64_t expected[] = {200, 400, 800, 800, 800, 800};
  for (std::int64_t delay : expected) {
    r.reopened(g, now);
    EXPECT_EQ(r.decide(g, full, now + delay - 1, 1u << 20), Decision::kWait) << delay;
    EXPECT_EQ(r.decide(g, full, now + delay, 1u << 20), Decision::kReopen) << delay;
    now += delay;
  }
  EXPECT_EQ(r.attempts(g), 6u);
  EXPECT_FALSE(r.held(g));
}

TEST(ReplicaRecoveryPolicy, OtherErrorsGiveUpAfterTheAttemptBudgetOnce) {
  ReplicaRecovery r(policy_options());
  GroupId g(3);
  Status eio = Status::io_error("fsync: Input/output error");
  EXPECT_EQ(r.decide(g, eio, 0, std::nullopt), Decision::kWait);
  EXPECT_EQ(r.decide(g, eio, 100, std::nullopt), Decision::kReopen);  // free space irrelevant
  r.reopened(g, 100);
  EXPECT_EQ(r.decide(g, eio, 300, std::nullopt), Decision::kReopen);
  r.reopen_failed(g, "orders", 4, eio, 300);
  EXPECT_TRUE(r.held(g));
  ASSERT_NE(r.held_partition(g), nullptr);
  EXPECT_EQ(r.held_partition(g)->first, "orders");
  EXPECT_EQ(r.held_partition(g)->second, 4);
  EXPECT_EQ(r.held_error(g)->code(), ErrorCode::kIoError);
  EXPECT_EQ(r.decide(g, eio, 10000, std::nullopt), Decision::kGiveUp);  // 2 attempts used
  EXPECT_EQ(r.decide(g, eio, 20000, std::nullopt), Decision::kStopped);  // reported once
  EXPECT_EQ(r.attempts(g), 2u);
}

TEST(ReplicaRecoveryPolicy, AStableReplicaStartsAfreshAndOthersAreIndependent) {
  ReplicaRecovery r(policy_options());
  GroupId a(1), b(2);
  Status eio = Status::io_error("EIO");
  EXPECT_EQ(r.decide(a, eio, 0, std::nullopt), Decision::kWait);
  EXPECT_EQ(r.decide(a, eio, 100, std::nullopt), Decision::kReopen);
  r.reopened(a, 100);
  r.running(a, 5099);  // not yet stable: the record (1 attempt) stays
  EXPECT_EQ(r.attempts(a), 1u);
  EXPECT_EQ(r.decide(b, eio, 5099, std::nullopt), Decision::kWait);  // b has its own record
  r.running(a, 5100);
  EXPECT_EQ(r.attempts(a), 0u);
  EXPECT_EQ(r.attempts(b), 0u);
  EXPECT_EQ(r.decide(a, eio, 6000, std::nullopt), Decision::kWait);  // a fresh first back-off
}

TEST(ReplicaRecoveryPolicy, OptionsAreValidated) {
  ReplicaRecoveryOptions o = policy_options();
  EXPECT_TRUE(o.validate().is_ok());
  o.backoff_max_ms = 50;  // below the initial delay
  EXPECT_EQ(o.validate().code(), ErrorCode::kInvalidArgument);
  o = policy_options();
  o.backoff_initial_ms = 0;
  EXPECT_EQ(o.validate().code(), ErrorCode::kInvalidArgument);
}

// ---- A real cluster ----


Status produce(TestBroker& b, const std::string& topic, const std::string& value) {
  return testing::produce_value(b, topic, 0, value);
}

class ReplicaRecoveryCluster : public testing::MemoryFsClusterFixture {
 protected:
  void SetUp() override { make_on_memory(3, fast_replica_recovery); }
  TestBroker* leader_of(const std::string& topic) { return wait_partition_leader(topic, 0); }
  static std::optional<PartitionStatus> replica_status(TestBroker& b, const std::string& topic) {
    return ClusterFixture::replica_status(b, topic, 0);
  }
  static BrokerId metadata_leader(TestBroker& b, const std::string& topic) {
    return testing::metadata_leader(b, topic, 0);
  }
};

TEST_F(ReplicaRecoveryCluster, DiskFullFollowerStopsThenRejoinsAndCatchesUpWhenSpaceReturns) {
  TestBroker* controller = wait_controller();
  ASSERT_NE(controller, nullptr);
  auto created = testing::create_topic(*controller, "full", 1, 3);
  ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  TestBroker* leader = leader_of("full");
  ASSERT_NE(leader, nullptr);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(produce(*leader, "full", "a" + std::to_string(i)).is_ok());
  std::size_t li = static_cast<std::size_t>(leader->config().id.value());
  std::size_t vi = (li + 1) % 3, oi = (li + 2) % 3;  // victim (a follower) and the other one
  TestBroker& victim = *brokers_[vi];
  TestBroker& other = *brokers_[oi];

  // The victim's disk is full: its next append fails with kNoSpace and stops its replica;
  // the partition goes on with the two others (acks=all = the current quorum, §5.3).
  fs_[vi]->set_capacity_bytes(fs_[vi]->used_bytes());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(produce(*leader, "full", "b" + std::to_string(i)).is_ok());
  ASSERT_TRUE(wait_until([&] {
    auto s = replica_status(victim, "full");
    return s && s->failed;
  }, 5s));
  // The stopped replica's broker names the real leader (leader hint), not -1.
  EXPECT_TRUE(wait_until([&] { return metadata_leader(victim, "full") == leader->config().id; }, 3s));
  // No space, no re-open: still stopped after several back-off periods.
  std::this_thread::sleep_for(600ms);
  auto still = replica_status(victim, "full");
  ASSERT_TRUE(still.has_value());
  EXPECT_TRUE(still->failed);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(produce(*leader, "full", "c" + std::to_string(i)).is_ok());

  // Space returns: the replica is re-opened from its directory and catches up.
  fs_[vi]->set_capacity_bytes(UINT64_MAX);
  auto leader_status = replica_status(*leader, "full");
  ASSERT_TRUE(leader_status.has_value());
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(victim, "full");
    return s && !s->failed && s->applied_index >= leader_status->commit_index &&
           s->log_end_offset == leader_status->high_watermark;
  }, 10s));
  auto back = replica_status(victim, "full");
  ASSERT_TRUE(back.has_value());
  EXPECT_FALSE(back->failed);
  EXPECT_EQ(back->log_end_offset, leader_status->high_watermark);
  EXPECT_GE(back->log_end_offset.value(), 30);  // 30 records (and any control batches)

  // It is a working voter again: with the other follower down, acks=all writes need it.
  other.kill();
  for (int i = 0; i < 5; ++i) {
    Status s = produce(*leader, "full", "d" + std::to_string(i));
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }
  auto after = replica_status(*leader, "full");
  ASSERT_TRUE(after.has_value());
  EXPECT_GE(after->high_watermark.value(), back->log_end_offset.value() + 5);
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(victim, "full");
    return s && s->log_end_offset == after->high_watermark;
  }, 5s));
  EXPECT_EQ(metadata_leader(victim, "full"), leader->config().id);
}

// FINDINGS.md F2: nothing is queued for a broker whose link is down, so a restarted broker is
// not flooded with the stale heartbeats and appends of its downtime (which stalled both event
// loops past the election timeout); it still catches up from the leader once it is back.
TEST_F(ReplicaRecoveryCluster, MessagesForADownBrokerAreDroppedNotQueuedAndItCatchesUpAfter) {
  TestBroker* controller = wait_controller();
  ASSERT_NE(controller, nullptr);
  auto created = testing::create_topic(*controller, "down", 1, 3);
  ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  TestBroker* leader = leader_of("down");
  ASSERT_NE(leader, nullptr);
  ASSERT_TRUE(produce(*leader, "down", "before").is_ok());
  std::size_t li = static_cast<std::size_t>(leader->config().id.value());
  TestBroker& victim = *brokers_[(li + 1) % 3];
  auto dropped = [&] {
    return leader->call([](Node& n) { return n.cluster_status().metrics.messages_send_dropped; });
  };
  victim.kill();
  const std::uint64_t dropped_at_kill = dropped();
  // Writes go on meanwhile; the leader's messages for the dead broker are dropped, not queued.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(produce(*leader, "down", "while-down-" + std::to_string(i)).is_ok());
    std::this_thread::sleep_for(20ms);
  }
  // At least the heartbeats of the ~0.5 s (one per 30 ms; appends wait in probe state).
  // Without the gate every one of them is queued and this stays 0.
  EXPECT_GE(dropped() - dropped_at_kill, 5u);
  ASSERT_TRUE(victim.start().is_ok());
  auto leader_status = replica_status(*leader, "down");
  ASSERT_TRUE(leader_status.has_value());
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(victim, "down");
    return s && s->log_end_offset == leader_status->high_watermark;
  }, 10s));
}

}  // namespace
}  // namespace mq::cluster
