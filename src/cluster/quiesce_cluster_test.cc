// Quiescing of idle partition groups on in-process clusters (node_quiesce.cc): idle groups
// stop ticking without elections, wake on produce, and a quiesced group whose leader dies or
// is partitioned away still gets a new leader (liveness), the old one stepping down
// (CheckQuorum, thesis §6.2).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <thread>

#include "cluster/test_cluster.h"
#include "protocol/record_batch.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

Status produce(TestBroker& b, const std::string& topic, std::int32_t partition,
               const std::string& value) {
  return testing::produce_value(b, topic, partition, value);
}

class ClusterQuiesce : public testing::ClusterFixture {
 protected:
  void create_topic(const std::string& name, int partitions) {
    TestBroker* c = wait_controller();
    ASSERT_NE(c, nullptr);
    auto results = testing::create_topic(*c, name, partitions, 3);
    ASSERT_EQ(results.size(), 1u);
    ASSERT_TRUE(results[0].status.is_ok()) << results[0].status.to_string();
  }
  // The broker leading topic/p, other than `except`.
  TestBroker* leader_of(const std::string& topic, std::int32_t p, TestBroker* except = nullptr) {
    for (auto& b : brokers_) {
      if (b.get() == except || !b->running()) continue;
      if (b->call([&](Node& n) { return n.local_partition(topic, p).has_value(); })) return b.get();
    }
    return nullptr;
  }
  bool all_quiesced() {
    for (auto& b : brokers_) {
      if (!b->running()) continue;
      bool idle = b->call([](Node& n) {
        return n.awake_partitions() == 0 && n.quiesced_partitions() > 0;
      });
      if (!idle) return false;
    }
    return true;
  }
  // The leader epoch (from the Raft term) of topic/p on `b`; -1 if b does not lead it.
  std::int64_t leader_epoch(TestBroker& b, const std::string& topic, std::int32_t p) {
    return b.call([&](Node& n) -> std::int64_t {
      auto lp = n.local_partition(topic, p);
      return lp.has_value() ? (*lp)->leader_epoch() : -1;
    });
  }
  PartitionStatus replica(TestBroker& b, const std::string& topic, std::int32_t p) {
    ClusterStatus status = b.call([](Node& n) { return n.cluster_status(); });
    for (const PartitionStatus& s : status.partitions) {
      if (s.topic == topic && s.partition == p) return s;
    }
    return PartitionStatus{};
  }
  bool leads(TestBroker& b, const std::string& topic, std::int32_t p) {
    return b.call([&](Node& n) { return n.local_partition(topic, p).has_value(); });
  }

};

TEST_F(ClusterQuiesce, IdleGroupsQuiesceWithoutElectionsAndWakeOnProduce) {
  make(3);
  create_topic("q", 4);
  for (int p = 0; p < 4; ++p) ASSERT_TRUE(wait_until([&] { return leader_of("q", p) != nullptr; }, 10s));
  ASSERT_TRUE(wait_until([&] { return all_quiesced(); }, 10s)) << "groups did not quiesce";
  TestBroker* leader = leader_of("q", 0);
  ASSERT_NE(leader, nullptr);
  const std::int64_t epoch = leader_epoch(*leader, "q", 0);
  ASSERT_GE(epoch, 0);
  // Quiesced for several election timeouts: nobody campaigns.
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(all_quiesced());
  ASSERT_EQ(leader_of("q", 0), leader);
  EXPECT_EQ(leader_epoch(*leader, "q", 0), epoch);
  // A produce wakes the group; acks=all needs the (quiesced) followers.
  ASSERT_TRUE(produce(*leader, "q", 0, "after quiescence").is_ok());
  auto records = testing::read_committed(*leader, "q", 0);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back().second, "after quiescence");
  // Every replica commits and applies it (the followers learn the commit index).
  const LogIndex last = replica(*leader, "q", 0).last_index;
  for (auto& b : brokers_) {
    EXPECT_TRUE(wait_until([&] {
      PartitionStatus s = replica(*b, "q", 0);
      return s.commit_index == last && s.applied_index == last;
    }, 5s)) << "broker " << b->config().id.value();
  }
  EXPECT_EQ(leader_epoch(*leader, "q", 0), epoch);
  // And it quiesces again.
  EXPECT_TRUE(wait_until([&] { return all_quiesced(); }, 10s));
}

TEST_F(ClusterQuiesce, KilledLeaderOfQuiescedGroupIsReplaced) {
  make(3);
  create_topic("q", 3);
  for (int p = 0; p < 3; ++p) ASSERT_TRUE(wait_until([&] { return leader_of("q", p) != nullptr; }, 10s));
  ASSERT_TRUE(wait_until([&] { return all_quiesced(); }, 10s));
  TestBroker* old_leader = leader_of("q", 0);
  ASSERT_NE(old_leader, nullptr);
  auto killed = std::chrono::steady_clock::now();
  old_leader->kill();
  TestBroker* next = nullptr;
  // Election timeout 300-600 ms (plus the fast-failover stagger): well within 3 s.
  ASSERT_TRUE(wait_until([&] { return (next = leader_of("q", 0, old_leader)) != nullptr; }, 3s));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - killed);
  EXPECT_LT(took.count(), 3000);
  EXPECT_TRUE(produce(*next, "q", 0, "after failover").is_ok());
}

TEST_F(ClusterQuiesce, PartitionedQuiescedLeaderStepsDownAndIsReplaced) {
  make(3);
  create_topic("q", 3);
  for (int p = 0; p < 3; ++p) ASSERT_TRUE(wait_until([&] { return leader_of("q", p) != nullptr; }, 10s));
  ASSERT_TRUE(wait_until([&] { return all_quiesced(); }, 10s));
  TestBroker* old_leader = leader_of("q", 0);
  ASSERT_NE(old_leader, nullptr);
  const BrokerId cut = old_leader->config().id;
  std::set<BrokerId> others;
  for (auto& b : brokers_) {
    if (b.get() != old_leader) others.insert(b->config().id);
  }
  // Messages are dropped both ways; the TCP connections stay up, so only the absence of the
  // liveness pings reveals the partition.
  old_leader->call([&](Node& n) { n.block_links_for_test(others); });
  for (auto& b : brokers_) {
    if (b.get() != old_leader) b->call([&](Node& n) { n.block_links_for_test({cut}); });
  }
  // Liveness timeout (300 ms) + election timeout (300-600 ms) on the majority side.
  TestBroker* next = nullptr;
  EXPECT_TRUE(wait_until([&] { return (next = leader_of("q", 0, old_leader)) != nullptr; }, 5s));
  // The minority leader steps down: CheckQuorum runs again once its peers are down.
  EXPECT_TRUE(wait_until([&] { return !leads(*old_leader, "q", 0); }, 5s));
  for (BrokerId other : others) {
    EXPECT_TRUE(old_leader->call([&](Node& n) { return n.peer_down(other); }));
  }
  // Heal: one leader, writes go through, every replica quiesces again.
  for (auto& b : brokers_) b->call([](Node& n) { n.block_links_for_test({}); });
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(wait_until([&] {
    TestBroker* l = leader_of("q", 0);
    return l != nullptr && produce(*l, "q", 0, "healed").is_ok();
  }, 10s));
  EXPECT_TRUE(wait_until([&] { return all_quiesced(); }, 10s));
}

// tests/chaos/FINDINGS.md F2, "Extra leader changes that are not stalls": a broker cut off
// from both others comes back to one of them first (its links heal at different moments:
// reconnect back-offs). Its PreVotes (it has no leader: it is out of its lease) wake the
// quiesced followers on that broker, which refuse them (in lease); but their leader, quiesced
// too and still unreachable from the returning broker, hears nothing and sends nothing. Unless
// the woken follower asks its leader to wake, its election timer runs out, it pre-votes, the
// returning broker grants, and it wins one term more although its leader never failed.
TEST_F(ClusterQuiesce, PartialHealDoesNotDeposeAQuiescedLeader) {
  make(3);
  constexpr int kPartitions = 4;
  create_topic("h", kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    ASSERT_TRUE(wait_until([&] { return leader_of("h", p) != nullptr; }, 10s));
  }
  ASSERT_TRUE(wait_until([&] { return all_quiesced(); }, 10s));
  // Cut broker `ret` off (messages dropped both ways, connections kept: a blackhole).
  TestBroker* ret = brokers_[2].get();
  TestBroker* x = brokers_[0].get();
  TestBroker* y = brokers_[1].get();
  const BrokerId ret_id = ret->config().id, x_id = x->config().id, y_id = y->config().id;
  ret->call([&](Node& n) { n.block_links_for_test({x_id, y_id}); });
  x->call([&](Node& n) { n.block_links_for_test({ret_id}); });
  y->call([&](Node& n) { n.block_links_for_test({ret_id}); });
  // The majority side: every partition led there (those `ret` led fail over), then idle again.
  auto led_by_majority = [&] {
    for (int p = 0; p < kPartitions; ++p) {
      TestBroker* l = leader_of("h", p, ret);
      if (l == nullptr) return false;  // (`ret`'s replicas are not counted: it steps down)
    }
    return true;
  };
  ASSERT_TRUE(wait_until(led_by_majority, 10s));
  auto majority_quiesced = [&] {
    for (TestBroker* b : {x, y}) {
      if (b->call([](Node& n) { return n.awake_partitions(); }) != 0) return false;
    }
    return true;
  };
  ASSERT_TRUE(wait_until(majority_quiesced, 10s)) << "the majority side did not quiesce";
  // Heal `ret` with the broker that follows more partitions; the other one leads them.
  auto leads_count = [&](TestBroker* b) {
    int n = 0;
    for (int p = 0; p < kPartitions; ++p) n += leads(*b, "h", p) ? 1 : 0;
    return n;
  };
  TestBroker* follower = leads_count(x) <= leads_count(y) ? x : y;
  TestBroker* leader = follower == x ? y : x;
  ASSERT_GT(leads_count(leader), 0);
  std::map<int, std::pair<TestBroker*, Term>> before;
  for (int p = 0; p < kPartitions; ++p) {
    TestBroker* l = leader_of("h", p, ret);
    ASSERT_NE(l, nullptr);
    before[p] = {l, replica(*l, "h", p).term};
  }
  const BrokerId leader_id = leader->config().id, follower_id = follower->config().id;
  ret->call([&](Node& n) { n.block_links_for_test({leader_id}); });
  follower->call([&](Node& n) { n.block_links_for_test({}); });
  // Several of `ret`'s election timeouts (300-600 ms): its PreVotes reach `follower` only.
  std::this_thread::sleep_for(2000ms);
  auto check_unchanged = [&](const char* when) {
    for (int p = 0; p < kPartitions; ++p) {
      auto [l, term] = before[p];
      EXPECT_TRUE(leads(*l, "h", p)) << when << ": partition " << p << " changed leader";
      EXPECT_EQ(replica(*l, "h", p).term, term) << when << ": partition " << p;
      EXPECT_EQ(replica(*follower, "h", p).term, term) << when << ": partition " << p
                                                       << " on broker " << follower_id.value();
    }
  };
  check_unchanged("after the partial heal");
  // The woken followers asked their leader to wake (node_quiesce.cc ask_leaders_to_wake).
  EXPECT_GT(leader->call([](Node& n) { return n.metrics().wake_requests_honoured; }), 0u);
  // Full heal: `ret` catches up under the same leaders, in the same terms.
  for (auto& b : brokers_) b->call([](Node& n) { n.block_links_for_test({}); });
  std::this_thread::sleep_for(1500ms);
  check_unchanged("after the full heal");
  for (int p = 0; p < kPartitions; ++p) {
    EXPECT_TRUE(wait_until([&] {
      return replica(*ret, "h", p).term == before[p].second;
    }, 5s)) << "broker " << ret_id.value() << " did not rejoin partition " << p;
  }
}

// Liveness pings only go where nothing else does (node_quiesce.cc): the controller leader and
// its followers exchange heartbeats every heartbeat interval, so the leader pings no one and a
// follower pings only the other follower; the failure detection of the other tests here
// (a killed or partitioned quiesced leader is replaced) runs with the same suppression.
// An idle broker (every group quiesced) wakes its tick timer once per 10 ticks (100 ms) and
// the controller still gets its heartbeats: its term does not move. A produce wakes a group,
// and the broker ticks every 10 ms again while the group is awake.
TEST_F(ClusterQuiesce, IdleBrokersTickEveryHundredMillisecondsAndTheControllerHolds) {
  make(3);
  create_topic("q", 2);
  for (int p = 0; p < 2; ++p) {
    ASSERT_TRUE(wait_until([&] { return leader_of("q", p) != nullptr; }, 10s));
  }
  ASSERT_TRUE(wait_until([&] { return all_quiesced(); }, 10s)) << "groups did not quiesce";
  std::this_thread::sleep_for(300ms);  // the last wake-ups of the busy period
  auto wakeups = [&](TestBroker& b) {
    return b.call([](Node& n) { return n.metrics().tick_wakeups; });
  };
  auto controller_term = [&](TestBroker& b) {
    return b.call([](Node& n) { return n.cluster_status().controller_term; });
  };
  std::map<TestBroker*, std::uint64_t> before;
  std::map<TestBroker*, Term> terms;
  for (auto& b : brokers_) {
    before[b.get()] = wakeups(*b);
    terms[b.get()] = controller_term(*b);
  }
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(2000ms);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto& b : brokers_) {
    const double rate = static_cast<double>(wakeups(*b) - before[b.get()]) / secs;
    // 10 per second idle; 33 with the former stride of 3 ticks, 100 unstrided.
    EXPECT_GE(rate, 5.0) << "broker " << b->config().id.value();
    EXPECT_LE(rate, 16.0) << "broker " << b->config().id.value();
    EXPECT_EQ(controller_term(*b), terms[b.get()]) << "broker " << b->config().id.value();
  }
  ASSERT_TRUE(all_quiesced());
  // A produce: the leader's group wakes and its broker leaves the idle stride at once.
  TestBroker* leader = leader_of("q", 0);
  ASSERT_NE(leader, nullptr);
  const std::uint64_t at_produce = wakeups(*leader);
  const auto produced = std::chrono::steady_clock::now();
  ASSERT_TRUE(produce(*leader, "q", 0, "wake").is_ok());
  const bool awake_ticks = wait_until([&] { return wakeups(*leader) >= at_produce + 5; }, 2s);
  const auto took = std::chrono::steady_clock::now() - produced;
  EXPECT_TRUE(awake_ticks);
  // Five wake-ups at the idle stride would take 400-500 ms.
  EXPECT_LT(took, 300ms) << "the produce did not cut the idle stride short";
}

TEST_F(ClusterQuiesce, LivenessPingsOnlyWhereNoOtherTrafficFlows) {
  make(3);
  TestBroker* controller = wait_controller();
  ASSERT_NE(controller, nullptr);
  std::this_thread::sleep_for(300ms);  // connections up, controller heartbeats flowing
  auto pings = [&](TestBroker& b) {
    return b.call([](Node& n) { return n.metrics().pings_sent; });
  };
  std::map<TestBroker*, std::uint64_t> before;
  for (auto& b : brokers_) before[b.get()] = pings(*b);
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(1500ms);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Without suppression: one ping per peer every 50 ms.
  const auto rounds = static_cast<std::uint64_t>(elapsed / 50ms);
  for (auto& b : brokers_) {
    std::uint64_t sent = pings(*b) - before[b.get()];
    if (b.get() == controller) {
      EXPECT_LT(sent, rounds / 4) << "the controller leader pinged " << sent << " times in "
                                  << rounds << " rounds";
    } else {
      // The other follower is reached by pings only.
      EXPECT_GT(sent, rounds / 4) << "a follower pinged " << sent << " times in " << rounds;
      EXPECT_LE(sent, rounds + 2) << "a follower pinged both peers: " << sent;
    }
  }
}

}  // namespace
}  // namespace mq::cluster
