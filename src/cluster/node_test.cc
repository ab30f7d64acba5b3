// In-process clusters of Nodes on loopback: controller election, topic creation, produce
// with acks=all and fetch, leader failover, restart and catch-up, graceful shutdown.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "cluster/ids.h"
#include "cluster/test_cluster.h"
#include "protocol/record_batch.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

Buffer make_batch(const std::string& value, int records = 1) {
  std::vector<protocol::RecordInput> inputs;
  for (int i = 0; i < records; ++i) {
    protocol::RecordInput r;
    r.value = Buffer(std::string_view(value + "#" + std::to_string(i)));
    r.timestamp = 1700000000000 + i;
    inputs.push_back(std::move(r));
  }
  auto batch = protocol::build_record_batch(protocol::RecordBatchOptions{}, inputs);
  MQ_ASSERT(batch.has_value());
  return std::move(*batch);
}

struct Produced {
  Status status;
  KafkaOffset base_offset{-1};
};

Produced produce(TestBroker& b, const std::string& topic, std::int32_t partition,
                 const std::string& value, Acks acks = Acks::kAll, int records = 1) {
  auto r = testing::produce_batch(b, topic, partition, SharedBuffer(make_batch(value, records)),
                                  acks);
  return r.has_value() ? Produced{Status::ok(), r->base_offset} : Produced{r.error()};
}

using testing::create_topic;

class ClusterNode : public testing::ClusterFixture {
 protected:
  // Roles for a move of topic/0: its replicas, one of them that does not lead (departing) and
  // a broker hosting none (outsider); -1 when there is none.
  struct MoveRoles {
    std::vector<BrokerId> replicas;
    BrokerId departing{-1};
    BrokerId outsider{-1};
  };
  MoveRoles move_roles(TestBroker& controller, const std::string& topic, BrokerId leader) {
    MoveRoles roles;
    roles.replicas = controller.call([&](Node& n) {
      return n.metadata().find_topic(topic)->partitions[0].replicas;
    });
    for (std::size_t i = 0; i < brokers_.size(); ++i) {
      BrokerId b(static_cast<std::int32_t>(i));
      bool hosts = std::find(roles.replicas.begin(), roles.replicas.end(), b) != roles.replicas.end();
      if (!hosts) roles.outsider = b;
      if (hosts && b != leader) roles.departing = b;
    }
    return roles;
  }
  // Asks the controller leader to move topic/0 to `target`.
  AdminResult move(const std::string& topic, std::vector<BrokerId> target) {
    TestBroker* c = wait_controller();
    if (c == nullptr) return AdminResult{topic, Status::unavailable("no controller leader"), 0};
    return c->call_async<AdminResult>([&](Node& n, std::function<void(AdminResult)> reply) {
      n.move_partition(topic, 0, target, 5000, reply);
    });
  }
};

TEST_F(ClusterNode, SingleBrokerCreatesTopicProducesAndFetches) {
  make(1);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  auto results = create_topic(*c, "events", 2, 1);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].status.is_ok()) << results[0].status.to_string();
  EXPECT_EQ(create_topic(*c, "events", 1, 1)[0].status.code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(create_topic(*c, "bad/name", 1, 1)[0].status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(create_topic(*c, "toowide", 1, 2)[0].status.code(), ErrorCode::kInvalidArgument);
  ASSERT_NE(wait_partition_leader("events", 0), nullptr);
  ASSERT_NE(wait_partition_leader("events", 1), nullptr);

  std::vector<std::int64_t> offsets;
  for (int i = 0; i < 20; ++i) {
    Produced p = produce(*c, "events", 0, "v" + std::to_string(i));
    ASSERT_TRUE(p.status.is_ok()) << p.status.to_string();
    offsets.push_back(p.base_offset.value());
  }
  // Dense offsets: each one-record batch takes one offset, after the leader's no-op.
  for (std::size_t i = 1; i < offsets.size(); ++i) EXPECT_EQ(offsets[i], offsets[i - 1] + 1);
  Produced leader_ack = produce(*c, "events", 0, "acks1", Acks::kLeader);
  ASSERT_TRUE(leader_ack.status.is_ok());
  EXPECT_EQ(leader_ack.base_offset.value(), offsets.back() + 1);

  auto records = read_committed(*c, "events", 0);
  ASSERT_EQ(records.size(), 21u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(records[static_cast<std::size_t>(i)].first, offsets[static_cast<std::size_t>(i)]);
    EXPECT_EQ(records[static_cast<std::size_t>(i)].second, "v" + std::to_string(i) + "#0");
  }
  c->call([&](Node& n) {
    LocalPartition* p = *n.local_partition("events", 0);
    EXPECT_EQ(p->high_watermark().value(), offsets.back() + 2);
    // Out of range fetches are refused, a fetch at the high watermark is empty.
    EXPECT_EQ(p->fetch(KafkaOffset(offsets.back() + 3), 1000).status().code(), ErrorCode::kOutOfRange);
    auto empty = p->fetch(p->high_watermark(), 1000);
    ASSERT_TRUE(empty.has_value());
    EXPECT_TRUE(empty->records.empty());
    // The whole log is of epoch 1 (one term): its end is the log end.
    auto e = p->end_offset_for_epoch(p->leader_epoch());
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->leader_epoch, p->leader_epoch());
    EXPECT_EQ(e->end_offset, p->high_watermark());
    auto before = p->end_offset_for_epoch(0);
    ASSERT_TRUE(before.has_value());
    EXPECT_EQ(before->leader_epoch, -1);
    auto ts = p->offset_for_timestamp(1700000000000);
    ASSERT_TRUE(ts.has_value() && ts->has_value());
    EXPECT_EQ(ts->value(), KafkaOffset(offsets[0]));  // the first data batch, after the no-op
    auto none = p->offset_for_timestamp(1800000000000);
    ASSERT_TRUE(none.has_value());
    EXPECT_FALSE(none->has_value());
    // Metadata names this broker as the controller and the partition's leader.
    MetadataSnapshot m = n.metadata();
    EXPECT_EQ(m.controller, BrokerId(0));
    ASSERT_NE(m.find_topic("events"), nullptr);
    EXPECT_EQ(m.find_topic("events")->partitions.size(), 2u);
    EXPECT_EQ(m.find_topic("events")->partitions[0].leader, BrokerId(0));
    ASSERT_EQ(m.brokers.size(), 1u);
    EXPECT_EQ(m.brokers[0].kafka_port, 19092);
  });

  // Long poll: fires when data arrives.
  auto hw = c->call([](Node& n) { return (*n.local_partition("events", 1))->high_watermark(); });
  auto woke = std::make_shared<std::atomic<bool>>(false);
  c->call([&](Node& n) {
    (*n.local_partition("events", 1))->wait_for_data(hw, steady_now_ms() + 10000, [woke] { *woke = true; });
  });
  EXPECT_FALSE(woke->load());
  ASSERT_TRUE(produce(*c, "events", 1, "wake").status.is_ok());
  EXPECT_TRUE(wait_until([&] { return woke->load(); }, 2s));
  // ListOffsets by time finds the record inside a batch (timestamps base+0, +1, +2).
  Produced three = produce(*c, "events", 1, "three", Acks::kAll, 3);
  ASSERT_TRUE(three.status.is_ok());
  c->call([&](Node& n) {
    auto at = (*n.local_partition("events", 1))->offset_for_timestamp(1700000000002);
    ASSERT_TRUE(at.has_value() && at->has_value());
    EXPECT_EQ(at->value(), three.base_offset + 2);
  });

  // Restart from the data directory: everything acknowledged is still there.
  c->kill();
  ASSERT_TRUE(c->start().is_ok());
  ASSERT_NE(wait_partition_leader("events", 0), nullptr);
  auto again = read_committed(*c, "events", 0);
  ASSERT_GE(again.size(), 21u);
  for (std::size_t i = 0; i < 21; ++i) EXPECT_EQ(again[i], records[i]);
  Produced after = produce(*c, "events", 0, "after-restart");
  ASSERT_TRUE(after.status.is_ok());
  EXPECT_GT(after.base_offset.value(), offsets.back() + 1);
}

TEST_F(ClusterNode, ThreeBrokersReplicateFailOverAndCatchUp) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  auto results = create_topic(*c, "orders", 3, 3);
  ASSERT_TRUE(results[0].status.is_ok()) << results[0].status.to_string();
  // Every broker learns the topic through its controller replica.
  for (auto& b : brokers_) {
    EXPECT_TRUE(wait_until([&] {
      return b->call([](Node& n) { return n.metadata().find_topic("orders") != nullptr; });
    }, 5s));
  }
  std::map<std::int32_t, std::vector<std::pair<std::int64_t, std::string>>> acked;
  for (std::int32_t p = 0; p < 3; ++p) {
    TestBroker* leader = wait_partition_leader("orders", p);
    ASSERT_NE(leader, nullptr) << "partition " << p;
    for (int i = 0; i < 10; ++i) {
      std::string v = "p" + std::to_string(p) + "-" + std::to_string(i);
      Produced r = produce(*leader, "orders", p, v);
      ASSERT_TRUE(r.status.is_ok()) << r.status.to_string();
      acked[p].emplace_back(r.base_offset.value(), v + "#0");
    }
  }
  // Metadata on a broker that does not lead partition 0 names the leader (leader hints).
  TestBroker* leader0 = wait_partition_leader("orders", 0);
  ASSERT_NE(leader0, nullptr);
  BrokerId leader0_id = leader0->config().id;
  for (auto& b : brokers_) {
    EXPECT_TRUE(wait_until([&] {
      return b->call([&](Node& n) {
        MetadataSnapshot m = n.metadata();
        const TopicInfo* t = m.find_topic("orders");
        return t != nullptr && t->partitions[0].leader == leader0_id;
      });
    }, 3s)) << "broker " << b->config().id.value();
  }

  // Kill partition 0's leader: another broker takes over quickly and accepts writes.
  auto killed_at = std::chrono::steady_clock::now();
  leader0->kill();
  TestBroker* next0 = wait_partition_leader("orders", 0, 10s);
  ASSERT_NE(next0, nullptr);
  auto failover = std::chrono::steady_clock::now() - killed_at;
  EXPECT_LT(failover, 3s);
  std::printf("partition 0 failover took %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(failover).count()));
  for (int i = 10; i < 20; ++i) {
    std::string v = "p0-" + std::to_string(i);
    Produced r;
    // The first attempt may race the new leader's no-op; retry as a client would.
    for (int attempt = 0; attempt < 50; ++attempt) {
      TestBroker* l = partition_leader("orders", 0);
      if (l != nullptr && (r = produce(*l, "orders", 0, v)).status.is_ok()) break;
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(r.status.is_ok()) << r.status.to_string();
    acked[0].emplace_back(r.base_offset.value(), v + "#0");
  }
  // Every acknowledged batch is readable, at the offset it was acknowledged with.
  for (std::int32_t p = 0; p < 3; ++p) {
    TestBroker* l = wait_partition_leader("orders", p);
    ASSERT_NE(l, nullptr);
    auto records = read_committed(*l, "orders", p);
    std::set<std::pair<std::int64_t, std::string>> have(records.begin(), records.end());
    for (const auto& a : acked[p]) {
      EXPECT_TRUE(have.count(a)) << "partition " << p << " lost offset " << a.first << " " << a.second;
    }
  }

  // Restart the killed broker from its data: its replica of partition 0 catches up.
  ASSERT_TRUE(leader0->start().is_ok());
  TestBroker* current = wait_partition_leader("orders", 0);
  ASSERT_NE(current, nullptr);
  LogIndex target = current->call([](Node& n) {
    for (const PartitionStatus& s : n.cluster_status().partitions) {
      if (s.topic == "orders" && s.partition == 0) return s.commit_index;
    }
    return LogIndex(0);
  });
  EXPECT_TRUE(wait_until([&] {
    return leader0->call([&](Node& n) {
      for (const PartitionStatus& s : n.cluster_status().partitions) {
        if (s.topic == "orders" && s.partition == 0) return s.applied_index >= target;
      }
      return false;
    });
  }, 10s));
  // Graceful shutdown of the current leader hands partition 0 over without an election gap.
  current->shutdown();
  TestBroker* after = wait_partition_leader("orders", 0, 5s);
  ASSERT_NE(after, nullptr);
  EXPECT_NE(after, current);
}


std::size_t replica_dirs(const std::string& data_dir) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(data_dir + "/partitions")) {
    n += e.is_directory() ? 1 : 0;
  }
  return n;
}

TEST_F(ClusterNode, DeleteTopicRemovesEveryReplicaAndItsData) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "gone", 2, 2)[0].status.is_ok());
  ASSERT_NE(wait_partition_leader("gone", 0), nullptr);
  ASSERT_NE(wait_partition_leader("gone", 1), nullptr);
  std::size_t total = 0;
  for (auto& b : brokers_) total += replica_dirs(b->config().data_dir);
  EXPECT_EQ(total, 4u);  // 2 partitions x 2 replicas, spread over the 3 brokers
  // Admin calls on a broker that does not lead the controller are forwarded to it.
  for (auto& b : brokers_) {
    if (b.get() == c) continue;
    auto r = create_topic(*b, "elsewhere", 1, 1);
    EXPECT_TRUE(r[0].status.is_ok()) << r[0].status.to_string();
    EXPECT_EQ(b->call([](Node& n) { return n.metadata().controller; }), c->config().id);
    break;
  }
  auto deleted = c->call_async<std::vector<AdminResult>>(
      [](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
        n.delete_topics({"gone", "never-existed", "elsewhere"}, 5000, reply);
      });
  ASSERT_EQ(deleted.size(), 3u);
  EXPECT_TRUE(deleted[0].status.is_ok()) << deleted[0].status.to_string();
  EXPECT_EQ(deleted[1].status.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(deleted[2].status.is_ok()) << deleted[2].status.to_string();
  for (auto& b : brokers_) {
    EXPECT_TRUE(wait_until([&] { return replica_dirs(b->config().data_dir) == 0; }, 5s));
    EXPECT_EQ(b->call([](Node& n) { return n.local_partition("gone", 0).status().code(); }),
              ErrorCode::kNotFound);
  }
}

TEST_F(ClusterNode, RetentionTrimsTheLogAndALaggingFollowerCatchesUpFromTheLogStart) {
  make(3, [](NodeConfig& c) { c.retention_check_interval_ms = 100; });
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "logs", 1, 3,
                           {{"segment.bytes", "4096"}, {"retention.bytes", "8192"},
                            {"retention.ms", "-1"}})[0]
                  .status.is_ok());
  TestBroker* leader = wait_partition_leader("logs", 0);
  ASSERT_NE(leader, nullptr);
  TestBroker* follower = nullptr;
  for (auto& b : brokers_) {
    if (b.get() != leader) follower = b.get();
  }
  follower->kill();
  std::string pad(300, 'x');
  std::vector<std::pair<std::int64_t, std::string>> acked;
  for (int i = 0; i < 80; ++i) {
    Produced r;
    for (int attempt = 0; attempt < 50; ++attempt) {
      TestBroker* l = partition_leader("logs", 0);
      if (l != nullptr && (r = produce(*l, "logs", 0, pad + std::to_string(i))).status.is_ok()) break;
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(r.status.is_ok()) << r.status.to_string();
    acked.emplace_back(r.base_offset.value(), pad + std::to_string(i) + "#0");
  }
  leader = wait_partition_leader("logs", 0);
  ASSERT_NE(leader, nullptr);
  // Retention removed old segments below the commit index: the log start moved.
  ASSERT_TRUE(wait_until([&] { return replica_status(*leader, "logs", 0)->log_start_offset > KafkaOffset(0); }, 5s));
  KafkaOffset start = replica_status(*leader, "logs", 0)->log_start_offset;
  EXPECT_EQ(leader->call([&](Node& n) {
    return (*n.local_partition("logs", 0))->fetch(KafkaOffset(0), 1000).status().code();
  }), ErrorCode::kOutOfRange);
  // The follower restarts behind the leader's log start: it receives the log-start snapshot
  // and then the retained log.
  ASSERT_TRUE(follower->start().is_ok());
  LogIndex target = replica_status(*leader, "logs", 0)->commit_index;
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(*follower, "logs", 0);
    return s && s->applied_index >= target;
  }, 10s));
  auto fs = replica_status(*follower, "logs", 0);
  ASSERT_TRUE(fs.has_value());
  EXPECT_GE(fs->log_start_offset, start);
  EXPECT_EQ(fs->log_end_offset, replica_status(*leader, "logs", 0)->log_end_offset);
  // Every acknowledged record at or above the log start (as of the read: retention keeps
  // running) is served.
  auto records = read_committed(*leader, "logs", 0);
  ASSERT_FALSE(records.empty());
  EXPECT_LE(records.front().first, acked.back().first);
  std::set<std::pair<std::int64_t, std::string>> have(records.begin(), records.end());
  for (const auto& a : acked) {
    if (a.first >= records.front().first) {
      EXPECT_TRUE(have.count(a)) << a.first;
    }
  }
}

TEST_F(ClusterNode, MovePartitionSwapsAReplicaWithJointConsensus) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "moving", 1, 2)[0].status.is_ok());
  TestBroker* leader = wait_partition_leader("moving", 0);
  ASSERT_NE(leader, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(produce(*leader, "moving", 0, "before" + std::to_string(i)).status.is_ok());
  std::vector<BrokerId> old_replicas = c->call([](Node& n) {
    MetadataSnapshot m = n.metadata();
    return m.find_topic("moving")->partitions[0].replicas;
  });
  BrokerId outsider{-1};
  for (int i = 0; i < 3; ++i) {
    if (std::find(old_replicas.begin(), old_replicas.end(), BrokerId(i)) == old_replicas.end()) outsider = BrokerId(i);
  }
  // Keep the leader, replace the other replica by the outsider.
  BrokerId leader_id = leader->config().id;
  std::vector<BrokerId> target = {leader_id, outsider};
  auto moved = c->call_async<AdminResult>([&](Node& n, std::function<void(AdminResult)> reply) {
    n.move_partition("moving", 0, target, 5000, reply);
  });
  ASSERT_TRUE(moved.status.is_ok()) << moved.status.to_string();
  TestBroker* newcomer = brokers_[static_cast<std::size_t>(outsider.value())].get();
  // The leader's membership becomes exactly the target, the newcomer holds the data.
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(*leader, "moving", 0);
    if (!s) return false;
    std::vector<BrokerId> v = s->voters;
    std::sort(v.begin(), v.end());
    std::vector<BrokerId> t = target;
    std::sort(t.begin(), t.end());
    return v == t && s->learners.empty();
  }, 10s));
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(*newcomer, "moving", 0);
    auto l = replica_status(*leader, "moving", 0);
    return s && l && s->applied_index >= l->commit_index;
  }, 10s));
  // The newcomer replayed the changes on top of the creation membership: it sees the same
  // voters as the leader (never itself alone).
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(*newcomer, "moving", 0);
    if (!s) return false;
    std::vector<BrokerId> v = s->voters;
    std::sort(v.begin(), v.end());
    std::vector<BrokerId> t = target;
    std::sort(t.begin(), t.end());
    return v == t;
  }, 5s));
  ASSERT_TRUE(produce(*leader, "moving", 0, "after").status.is_ok());
  // The replica that left deletes its copy.
  for (BrokerId b : old_replicas) {
    if (b == leader_id) continue;
    EXPECT_TRUE(wait_until([&] {
      return replica_dirs(brokers_[static_cast<std::size_t>(b.value())]->config().data_dir) == 0;
    }, 15s));
  }
}

// A move whose newcomer cannot catch up (its broker is down) leaves the departing replica a
// voter: the leader keeps counting its acknowledgements, so the grace period that deletes
// replicas never told of their removal must not delete it (its copy is part of committed
// entries' majorities; an empty replica re-created there would vote). Once the move completes
// it is deleted as usual.
TEST_F(ClusterNode, AMovedAwayVoterTheGroupStillCountsOutlivesTheGracePeriod) {
  make(3, [](NodeConfig& config) { config.orphan_grace_ms = 400; });
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "stuck", 1, 2)[0].status.is_ok());
  TestBroker* leader = wait_partition_leader("stuck", 0);
  ASSERT_NE(leader, nullptr);
  BrokerId leader_id = leader->config().id;
  MoveRoles roles = move_roles(*c, "stuck", leader_id);
  ASSERT_NE(roles.outsider, BrokerId(-1));
  ASSERT_NE(roles.departing, BrokerId(-1));
  TestBroker& newcomer = *brokers_[static_cast<std::size_t>(roles.outsider.value())];
  TestBroker& leaving = *brokers_[static_cast<std::size_t>(roles.departing.value())];
  newcomer.kill();
  AdminResult moved = move("stuck", {leader_id, roles.outsider});
  ASSERT_TRUE(moved.status.is_ok()) << moved.status.to_string();
  // Five grace periods of writes, each needing the departing voter's acknowledgement (the
  // newcomer is a learner that cannot catch up): its replica stays. A write may meet a leader
  // change (a loaded machine's stalled loop costs the leader its quorum contact); it is
  // retried at the new leader, and the group must keep accepting writes throughout.
  auto until = std::chrono::steady_clock::now() + 2s;
  int written = 0;
  int retried = 0;
  while (std::chrono::steady_clock::now() < until) {
    Produced p = produce(*leader, "stuck", 0, "during" + std::to_string(written));
    if (!p.status.is_ok()) {
      ASSERT_LT(++retried, 5) << p.status.to_string();
      leader = wait_partition_leader("stuck", 0);
      ASSERT_NE(leader, nullptr) << "no leader after " << written << " writes";
      continue;
    }
    ++written;
    ASSERT_EQ(replica_dirs(leaving.config().data_dir), 1u) << "after " << written << " writes";
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(replica_dirs(leaving.config().data_dir), 1u);
  // The newcomer back: the move completes and the departing replica applies its removal.
  ASSERT_TRUE(newcomer.start().is_ok());
  EXPECT_TRUE(wait_until([&] { return replica_dirs(leaving.config().data_dir) == 0; }, 15s));
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(newcomer, "stuck", 0);
    auto l = replica_status(*leader, "stuck", 0);
    return s && l && s->applied_index >= l->commit_index;
  }, 10s));
}

// A replica removed from its group while its broker was down never hears of its removal (no
// leader replicates to it any more) and still finds itself a voter in its log: it is deleted
// once a leader on another broker has kept reporting its leadership for the grace period
// without replicating anything to it.
TEST_F(ClusterNode, AVoterRemovedWhileItsBrokerWasDownIsDeletedAfterTheGracePeriod) {
  make(4, [](NodeConfig& config) { config.orphan_grace_ms = 400; });
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "left", 1, 3)[0].status.is_ok());
  TestBroker* leader = wait_partition_leader("left", 0);
  ASSERT_NE(leader, nullptr);
  ASSERT_TRUE(produce(*leader, "left", 0, "before").status.is_ok());
  MoveRoles roles = move_roles(*c, "left", leader->config().id);
  ASSERT_NE(roles.outsider, BrokerId(-1));
  ASSERT_NE(roles.departing, BrokerId(-1));
  TestBroker& leaving = *brokers_[static_cast<std::size_t>(roles.departing.value())];
  leaving.kill();
  std::vector<BrokerId> target;
  for (BrokerId b : roles.replicas) target.push_back(b == roles.departing ? roles.outsider : b);
  std::sort(target.begin(), target.end());
  AdminResult moved = move("left", target);
  ASSERT_TRUE(moved.status.is_ok()) << moved.status.to_string();
  // The move completes without the departing broker (the old and new majorities are alive).
  ASSERT_TRUE(wait_until([&] {
    TestBroker* l = partition_leader("left", 0);
    auto st = l == nullptr ? std::nullopt : replica_status(*l, "left", 0);
    if (!st) return false;
    std::vector<BrokerId> v = st->voters;
    std::sort(v.begin(), v.end());
    return v == target && st->learners.empty();
  }, 15s));
  ASSERT_EQ(replica_dirs(leaving.config().data_dir), 1u);
  // Back, it still counts itself a voter, hears the new leader's reports but nothing from it.
  ASSERT_TRUE(leaving.start().is_ok());
  EXPECT_TRUE(wait_until([&] { return replica_dirs(leaving.config().data_dir) == 0; }, 15s));
  leader = wait_partition_leader("left", 0);
  ASSERT_NE(leader, nullptr);
  EXPECT_TRUE(produce(*leader, "left", 0, "after").status.is_ok());
}

// A replica moved away (deleted once it applied its removal) and later moved back starts
// from an empty directory, and replays history through configurations in which it was a voter
// with only a prefix of the log: its vote could elect a candidate lacking entries it had once
// acknowledged (tests/chaos/FINDINGS.md F10: both lost writes of the 2-hour run came with such
// a re-created replica). The broker's sync ledger keeps the earlier replica's record, so the
// new one opens below it and abstains until it holds that index again.
TEST_F(ClusterNode, AReplicaMovedAwayAndBackAbstainsUntilItHoldsWhatItHadSynced) {
  make(4);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "back", 1, 3)[0].status.is_ok());
  TestBroker* leader = wait_partition_leader("back", 0);
  ASSERT_NE(leader, nullptr);
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(produce(*leader, "back", 0, "first" + std::to_string(i)).status.is_ok());
  }
  MoveRoles roles = move_roles(*c, "back", leader->config().id);
  ASSERT_NE(roles.outsider, BrokerId(-1));
  ASSERT_NE(roles.departing, BrokerId(-1));
  TestBroker& away = *brokers_[static_cast<std::size_t>(roles.departing.value())];
  // Its replica has synced the 30 records.
  ASSERT_TRUE(wait_until([&] {
    auto s = replica_status(away, "back", 0);
    auto l = replica_status(*leader, "back", 0);
    return s && l && s->applied_index >= l->commit_index;
  }, 10s));
  std::vector<BrokerId> elsewhere;
  for (BrokerId b : roles.replicas) elsewhere.push_back(b == roles.departing ? roles.outsider : b);
  AdminResult moved = move("back", elsewhere);
  ASSERT_TRUE(moved.status.is_ok()) << moved.status.to_string();
  ASSERT_TRUE(wait_until([&] { return replica_dirs(away.config().data_dir) == 0; }, 15s))
      << "the moved-away replica was not deleted";
  leader = wait_partition_leader("back", 0);
  ASSERT_NE(leader, nullptr);
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(produce(*leader, "back", 0, "second" + std::to_string(i)).status.is_ok());
  }
  auto lost_synced = [&] {
    return away.call([](Node& n) { return n.cluster_status().metrics.replicas_lost_synced; });
  };
  std::uint64_t before = lost_synced();
  moved = move("back", roles.replicas);
  ASSERT_TRUE(moved.status.is_ok()) << moved.status.to_string();
  // Back: the fresh replica opened below the earlier replica's ledger record (it abstained),
  // caught up, and serves the 60 records like the others.
  ASSERT_TRUE(wait_until([&] { return replica_status(away, "back", 0).has_value(); }, 15s));
  EXPECT_EQ(lost_synced(), before + 1);
  EXPECT_TRUE(wait_until([&] {
    auto s = replica_status(away, "back", 0);
    TestBroker* l = partition_leader("back", 0);
    auto ls = l == nullptr ? std::nullopt : replica_status(*l, "back", 0);
    return s && ls && s->applied_index >= ls->commit_index && s->high_watermark.value() >= 60;
  }, 15s));
}

TEST_F(ClusterNode, PipelinedProducesCommitInOrderAndBackPressureIsAnError) {
  make(3, [](NodeConfig& c) { c.max_uncommitted_bytes = 256 * 1024; });
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "fast", 1, 3)[0].status.is_ok());
  TestBroker* leader = wait_partition_leader("fast", 0);
  ASSERT_NE(leader, nullptr);
  // 400 produces issued at once (no waiting in between), 1 KiB each: they are batched into
  // shared Raft appends and fsyncs, commit in issue order, and the ones beyond the
  // uncommitted-bytes cap are refused with kLimitExceeded rather than queued without bound.
  constexpr int kCount = 400;
  struct Outcome {
    std::vector<std::int64_t> offsets;  // issue order; -1 = refused
    int limit_exceeded = 0;
    int other_errors = 0;
  };
  auto started = std::chrono::steady_clock::now();
  Outcome out = leader->call_async<Outcome>([&](Node& n, std::function<void(Outcome)> reply) {
    auto state = std::make_shared<Outcome>();
    state->offsets.assign(kCount, -1);
    auto remaining = std::make_shared<int>(kCount);
    LocalPartition* p = *n.local_partition("fast", 0);
    std::string value(1024, 'v');
    for (int i = 0; i < kCount; ++i) {
      p->produce(SharedBuffer(make_batch(value + std::to_string(i))), Acks::kAll,
                 [state, remaining, reply, i](Result<ProduceResult> r) {
                   if (r.has_value()) {
                     state->offsets[static_cast<std::size_t>(i)] = r->base_offset.value();
                   } else if (r.error().code() == ErrorCode::kLimitExceeded) {
                     ++state->limit_exceeded;
                   } else {
                     ++state->other_errors;
                   }
                   if (--*remaining == 0) reply(std::move(*state));
                 });
    }
  });
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(out.other_errors, 0);
  EXPECT_GT(out.limit_exceeded, 0);  // 400 KiB > the 256 KiB cap
  std::int64_t last = -1;
  int accepted = 0;
  for (std::int64_t o : out.offsets) {
    if (o < 0) continue;
    EXPECT_GT(o, last);
    last = o;
    ++accepted;
  }
  EXPECT_GT(accepted, 100);
  std::printf("%d of %d pipelined 1 KiB acks=all produces committed in %lld ms (%d refused)\n",
              accepted, kCount,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()),
              out.limit_exceeded);
  auto records = read_committed(*leader, "fast", 0);
  EXPECT_EQ(records.size(), static_cast<std::size_t>(accepted));
  // `cluster status` data on the leader: three voters, each follower's match and lag.
  EXPECT_TRUE(wait_until([&] {
    auto st = replica_status(*leader, "fast", 0);
    if (!st || !st->is_leader || st->voters.size() != 3 || st->replicas.size() != 3) return false;
    for (const ReplicaLag& r : st->replicas) {
      if (r.lag_entries != 0 || r.match != st->last_index) return false;
    }
    return st->high_watermark == st->log_end_offset;
  }, 5s));
  ClusterStatus cs = leader->call([](Node& n) { return n.cluster_status(); });
  EXPECT_EQ(cs.brokers.size(), 3u);
  EXPECT_GE(cs.controller_leader.value(), 0);
  EXPECT_GT(cs.metrics.messages_sent, 0u);
}

TEST_F(ClusterNode, ControllerFailoverKeepsMetadataAndAdminWorking) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "first", 1, 3)[0].status.is_ok());
  c->kill();
  TestBroker* next = wait_controller();
  ASSERT_NE(next, nullptr);
  EXPECT_NE(next, c);
  // The new controller has the metadata and accepts admin commands.
  EXPECT_TRUE(next->call([](Node& n) { return n.metadata().find_topic("first") != nullptr; }));
  auto r = create_topic(*next, "second", 2, 2);
  ASSERT_TRUE(r[0].status.is_ok()) << r[0].status.to_string();
  ASSERT_NE(wait_partition_leader("second", 0), nullptr);
  ASSERT_NE(wait_partition_leader("second", 1), nullptr);
  // The restarted old controller learns what happened while it was down.
  ASSERT_TRUE(c->start().is_ok());
  EXPECT_TRUE(wait_until([&] {
    return c->call([](Node& n) { return n.metadata().find_topic("second") != nullptr; });
  }, 10s));
}

// Kafka answers OFFSET_OUT_OF_RANGE only below the log start or beyond the log end. Between the
// high watermark and the log end (appended, not yet committed: a new leader's state until it
// commits an entry of its term) a fetch is empty, so a consumer already there is not reset.
TEST_F(ClusterNode, FetchBetweenHighWatermarkAndLogEndIsEmptyNotOutOfRange) {
  // Long election timeouts (2-4 s): the leader must not step down (CheckQuorum) while the test
  // looks at it after its followers died.
  make(3, [](NodeConfig& c) { c.election_ticks = 200; });
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "hw", 1, 3)[0].status.is_ok());
  TestBroker* leader = wait_partition_leader("hw", 0);
  ASSERT_NE(leader, nullptr);
  ASSERT_TRUE(produce(*leader, "hw", 0, "committed").status.is_ok());
  for (auto& b : brokers_) {
    if (b.get() != leader) b->kill();
  }
  // acks=1: the leader's own durable append answers; without followers nothing commits.
  Produced local = produce(*leader, "hw", 0, "uncommitted", Acks::kLeader);
  ASSERT_TRUE(local.status.is_ok()) << local.status.to_string();
  leader->call([&](Node& n) {
    auto found = n.local_partition("hw", 0);
    ASSERT_TRUE(found.has_value()) << found.status().to_string();
    LocalPartition* p = *found;
    const KafkaOffset hw = p->high_watermark();
    EXPECT_EQ(hw.value(), local.base_offset.value());  // the uncommitted batch is above it
    auto empty = p->fetch(KafkaOffset(hw.value() + 1), 1000);
    ASSERT_TRUE(empty.has_value()) << empty.status().to_string();
    EXPECT_TRUE(empty->records.empty());
    EXPECT_EQ(empty->high_watermark, hw);
    EXPECT_EQ(p->fetch(KafkaOffset(hw.value() + 2), 1000).status().code(),
              ErrorCode::kOutOfRange);
  });
}

// Fast failover: a follower whose transport loses the leader's connection forgets it and the
// remaining voters campaign at once. With a 2-4 s election timeout a new leader would take
// at least 2 s by timeouts alone; the forget-and-campaign path must be far quicker.
TEST_F(ClusterNode, KilledLeaderIsReplacedWithoutWaitingForTheElectionTimeout) {
  make(3, [](NodeConfig& c) { c.election_ticks = 200; });  // 2-4 s
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(create_topic(*c, "fast", 1, 3)[0].status.is_ok());
  for (int round = 0; round < 2; ++round) {
    TestBroker* leader = wait_partition_leader("fast", 0);
    ASSERT_NE(leader, nullptr);
    ASSERT_TRUE(produce(*leader, "fast", 0, "before").status.is_ok());
    auto killed_at = std::chrono::steady_clock::now();
    leader->kill();
    TestBroker* next = wait_partition_leader("fast", 0, 10s);
    auto took = std::chrono::steady_clock::now() - killed_at;
    ASSERT_NE(next, nullptr);
    EXPECT_LT(took, 1500ms) << "new leader after "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                            << " ms";
    // Metadata on the survivors never names the dead broker as leader.
    for (auto& b : brokers_) {
      if (!b->running()) continue;
      BrokerId named = b->call([](Node& n) {
        return n.metadata().find_topic("fast")->partitions[0].leader;
      });
      EXPECT_NE(named, leader->config().id);
    }
    ASSERT_TRUE(produce(*next, "fast", 0, "after").status.is_ok());
    ASSERT_TRUE(leader->start().is_ok());
    ASSERT_TRUE(wait_until([&] {
      return leader->call([](Node& n) { return n.is_ready(); });
    }, 10s));
  }
}

// Admin calls work on any broker: a non-controller forwards them to the controller leader.
TEST_F(ClusterNode, AdminCallsOnAFollowerAreForwardedToTheControllerLeader) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  TestBroker* follower = nullptr;
  for (auto& b : brokers_) {
    if (b.get() != c) follower = b.get();
  }
  auto created = create_topic(*follower, "forwarded", 2, 3);
  ASSERT_EQ(created.size(), 1u);
  ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  EXPECT_TRUE(c->call([](Node& n) { return n.metadata().find_topic("forwarded") != nullptr; }));
  // The controller's validation answers travel back too.
  auto again = create_topic(*follower, "forwarded", 2, 3);
  EXPECT_EQ(again[0].status.code(), ErrorCode::kAlreadyExists);
  auto altered = follower->call_async<AdminResult>([](Node& n, std::function<void(AdminResult)> reply) {
    n.alter_topic_configs("forwarded", {{"retention.ms", "60000"}}, 5000, reply);
  });
  EXPECT_TRUE(altered.status.is_ok()) << altered.status.to_string();
  auto deleted = follower->call_async<std::vector<AdminResult>>(
      [](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
        n.delete_topics({"forwarded", "never-existed"}, 5000, reply);
      });
  ASSERT_EQ(deleted.size(), 2u);
  EXPECT_TRUE(deleted[0].status.is_ok()) << deleted[0].status.to_string();
  EXPECT_EQ(deleted[1].status.code(), ErrorCode::kNotFound);
  // Without a controller quorum nothing can be forwarded: NOT_CONTROLLER after the wait.
  for (auto& b : brokers_) {
    if (b.get() != follower) b->kill();
  }
  auto lonely = create_topic(*follower, "orphan", 1, 1);
  EXPECT_EQ(lonely[0].status.code(), ErrorCode::kNotLeader) << lonely[0].status.to_string();
}

// A restarted broker reports ready (and serve opens its Kafka listener) only once its
// controller replica applied what the controller leader had committed.
TEST_F(ClusterNode, RestartedBrokerIsReadyOnlyWithCurrentMetadata) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  TestBroker* other = nullptr;
  for (auto& b : brokers_) {
    if (b.get() != c) other = b.get();
  }
  other->kill();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(create_topic(*c, "while-down-" + std::to_string(i), 1, 2)[0].status.is_ok());
  }
  ASSERT_TRUE(other->start().is_ok());
  bool current = other->call_async<bool>([](Node& n, std::function<void(bool)> reply) {
    n.when_ready([&n, reply] { reply(n.metadata().find_topic("while-down-19") != nullptr); });
  });
  EXPECT_TRUE(current);
}

}  // namespace
}  // namespace mq::cluster
