// Dynamic broker addition with in-process brokers (docs/cluster.md "Adding a broker"): a new
// broker joins a running 3-broker cluster through any broker, learns the metadata as a
// member of the controller (learner, then voter), takes a moved partition's replica while
// writes continue, hosts replicas of new topics, restarts from its data directory alone; refused joins (an id in
// use, unreachable seeds) fail with a clear status.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "cluster/ids.h"
#include "cluster/test_cluster.h"
#include "protocol/record_batch.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

Buffer make_batch(const std::string& value) {
  std::vector<protocol::RecordInput> inputs(1);
  inputs[0].value = Buffer(std::string_view(value));
  inputs[0].timestamp = 1700000000000;
  auto batch = protocol::build_record_batch(protocol::RecordBatchOptions{}, inputs);
  MQ_ASSERT(batch.has_value());
  return std::move(*batch);
}

Status produce(TestBroker& b, const std::string& topic, const std::string& value) {
  return b.call_async<Status>([=](Node& n, std::function<void(Status)> reply) {
    auto p = n.local_partition(topic, 0);
    if (!p.has_value()) return reply(p.error());
    (*p)->produce(SharedBuffer(make_batch(value)), Acks::kAll,
                  [reply](Result<ProduceResult> r) { reply(r.has_value() ? Status::ok() : r.error()); });
  });
}

class BrokerJoin : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::make_temp_dir("raftmq-join-");
    for (int i = 0; i < 3; ++i) {
      addresses_.push_back(BrokerAddress{BrokerId(i), "127.0.0.1", testing::free_port(),
                                         static_cast<std::uint16_t>(19192 + i)});
    }
    for (int i = 0; i < 3; ++i) {
      NodeConfig c = base_config(i);
      c.brokers = addresses_;
      c.rpc_listen_port = addresses_[static_cast<std::size_t>(i)].rpc_port;
      brokers_.push_back(std::make_unique<TestBroker>(c));
    }
    for (auto& b : brokers_) ASSERT_TRUE(b->start().is_ok());
    ASSERT_NE(wait_controller(), nullptr);
  }
  void TearDown() override {
    for (auto& b : joiners_) b.reset();
    brokers_.clear();
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }
  NodeConfig base_config(int id, const std::string& dir_suffix = "") {
    NodeConfig c;
    c.id = BrokerId(id);
    c.data_dir = root_ + "/broker" + std::to_string(id) + dir_suffix;
    c.advertised_kafka_port = static_cast<std::uint16_t>(19192 + id);
    c.produce_timeout_ms = 5000;
    return c;
  }
  // A new broker joining through broker `seed`'s RPC address.
  NodeConfig joiner_config(int id, int seed, const std::string& dir_suffix = "") {
    NodeConfig c = base_config(id, dir_suffix);
    c.rpc_listen_port = testing::free_port();
    c.join_seeds = {JoinSeed{"127.0.0.1", addresses_[static_cast<std::size_t>(seed)].rpc_port}};
    c.join_timeout_ms = 10000;
    return c;
  }
  TestBroker* wait_controller() {
    TestBroker* leader = nullptr;
    wait_until([&] {
      for (auto& b : brokers_) {
        if (b->running() && b->call([](Node& n) { return n.controller()->leader_ready(); })) {
          leader = b.get();
          return true;
        }
      }
      return false;
    }, 10s);
    return leader;
  }
  TestBroker* wait_partition_leader(const std::string& topic) {
    return testing::wait_partition_leader(brokers_, topic, 0, 10s);
  }
  // Makes `target` lead "before"/0 (leadership transfer, thesis §3.10) and reads it there.
  std::vector<std::pair<std::int64_t, std::string>> lead_and_read(TestBroker& target) {
    BrokerId id = target.config().id;
    bool leads = wait_until([&] {
      if (target.call([](Node& n) { return n.local_partition("before", 0).has_value(); })) {
        return true;
      }
      for (auto& b : brokers_) {
        if (!b->running()) continue;
        b->call([&](Node& n) {
          auto p = n.local_partition("before", 0);
          auto* group = p.has_value() ? dynamic_cast<PartitionGroup*>(*p) : nullptr;
          if (group == nullptr) return;
          group->wake();  // a quiesced group is not ticked or pumped (docs/cluster.md)
          (void)group->node().transfer_leader(node_of(id));
        });
      }
      std::this_thread::sleep_for(200ms);
      return false;
    }, 20s);
    EXPECT_TRUE(leads);
    return testing::read_committed(target, "before", 0);
  }
  static bool lists_alive(TestBroker& b, BrokerId id) {
    return b.call([&](Node& n) {
      for (const BrokerInfo& info : n.metadata().brokers) {
        if (info.id == id) return info.alive;
      }
      return false;
    });
  }
  static Status failure_of(TestBroker& b) {
    return b.call([](Node& n) { return n.join_failure(); });
  }

  std::string root_;
  std::vector<BrokerAddress> addresses_;
  std::vector<std::unique_ptr<TestBroker>> brokers_;
  std::vector<std::unique_ptr<TestBroker>> joiners_;
};

TEST_F(BrokerJoin, NewBrokerJoinsTakesAMovedPartitionAndRestarts) {
  TestBroker* controller = wait_controller();
  auto created = controller->call_async<std::vector<AdminResult>>(
      [](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
        n.create_topics({TopicSpec{"before", 1, 3, {}, {}, false}}, 5000, reply);
      });
  ASSERT_TRUE(created.at(0).status.is_ok()) << created[0].status.to_string();
  TestBroker* leader = wait_partition_leader("before");
  ASSERT_NE(leader, nullptr);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(produce(*leader, "before", "v" + std::to_string(i)).is_ok());

  // Join through a broker that is not the controller leader when there is one: forwarded.
  int seed = 0;
  while (brokers_[static_cast<std::size_t>(seed)].get() == controller) ++seed;
  NodeConfig config = joiner_config(3, seed);
  joiners_.push_back(std::make_unique<TestBroker>(config));
  TestBroker& joiner = *joiners_.back();
  ASSERT_TRUE(joiner.start().is_ok());
  ASSERT_TRUE(wait_until([&] { return joiner.call([](Node& n) { return n.is_ready(); }); }, 20s))
      << failure_of(joiner).to_string();
  EXPECT_TRUE(failure_of(joiner).is_ok());
  // Every broker lists it alive (it connects to them, they to it); it knows the topic.
  for (auto& b : brokers_) EXPECT_TRUE(wait_until([&] { return lists_alive(*b, BrokerId(3)); }, 10s));
  EXPECT_TRUE(wait_until([&] { return lists_alive(joiner, BrokerId(0)); }, 10s));
  EXPECT_TRUE(joiner.call([](Node& n) { return n.metadata().find_topic("before") != nullptr; }));
  // It joins the controller group as a learner and is promoted to voter once caught up
  // (docs/cluster.md "Controller voters"; the steps themselves: cluster_remove_test).
  controller = wait_controller();
  EXPECT_TRUE(wait_until([&] {
    return controller->call([](Node& n) {
      const raft::ConfState& cs = n.controller()->node().conf_state();
      return cs.voters.size() == 4 && cs.learners.empty() &&
             std::count(cs.voters.begin(), cs.voters.end(), node_of(BrokerId(3))) == 1;
    });
  }, 10s));

  // Move the partition onto it while writing.
  std::atomic<bool> stop{false};
  std::atomic<int> acked{20};
  std::thread writer([&] {
    for (int i = 20; i < 2000 && !stop; ++i) {
      TestBroker* l = wait_partition_leader("before");
      if (l == nullptr || !produce(*l, "before", "v" + std::to_string(i)).is_ok()) {
        --i;
        std::this_thread::sleep_for(20ms);
        continue;
      }
      acked = i + 1;
    }
  });
  std::vector<BrokerId> target = {BrokerId(0), BrokerId(1), BrokerId(3)};
  auto moved = controller->call_async<AdminResult>([&](Node& n, std::function<void(AdminResult)> reply) {
    n.move_partition("before", 0, target, 5000, reply);
  });
  ASSERT_TRUE(moved.status.is_ok()) << moved.status.to_string();
  auto joiner_is_voter = [&] {
    return joiner.call([](Node& n) {
      auto p = n.cluster_status().partitions;
      for (const PartitionStatus& s : p) {
        if (s.topic == "before") {
          return std::count(s.voters.begin(), s.voters.end(), BrokerId(3)) == 1 &&
                 std::count(s.voters.begin(), s.voters.end(), BrokerId(2)) == 0;
        }
      }
      return false;
    });
  };
  EXPECT_TRUE(wait_until(joiner_is_voter, 20s));
  int before_stop = acked;
  EXPECT_TRUE(wait_until([&] { return acked > before_stop + 20; }, 10s)) << "writes stalled";
  stop = true;
  writer.join();
  int total = acked;
  std::printf("acknowledged writes: %d\n", total);
  // Every acknowledged write is on the new replica: it leads the partition, then reads it.
  EXPECT_GE(static_cast<int>(lead_and_read(joiner).size()), total);
  auto records = testing::read_committed(joiner, "before", 0);
  std::set<std::string> values;
  for (const auto& [offset, value] : records) values.insert(value);
  for (int i = 0; i < total; ++i) EXPECT_EQ(values.count("v" + std::to_string(i)), 1u) << i;

  // New topics place replicas on it.
  controller = wait_controller();
  created = controller->call_async<std::vector<AdminResult>>(
      [](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
        n.create_topics({TopicSpec{"after", 4, 1, {}, {}, false}}, 5000, reply);
      });
  ASSERT_TRUE(created.at(0).status.is_ok()) << created[0].status.to_string();
  std::string placed = controller->call([](Node& n) {
    std::string out;
    // The snapshot must outlive the loop (a temporary's member would dangle in the range-for).
    MetadataSnapshot md = n.metadata();
    const TopicInfo* t = md.find_topic("after");
    if (t == nullptr) return out;
    for (const PartitionInfo& p : t->partitions) {
      for (BrokerId r : p.replicas) out += std::to_string(r.value()) + " ";
    }
    return out;
  });
  EXPECT_NE(placed.find('3'), std::string::npos) << "replicas of the new topic: " << placed;

  // Restart from its data directory alone (no seeds): it comes back with the same identity.
  joiner.kill();
  NodeConfig restart = base_config(3);
  restart.rpc_listen_port = config.rpc_listen_port;
  joiners_.push_back(std::make_unique<TestBroker>(restart));
  TestBroker& again = *joiners_.back();
  ASSERT_TRUE(again.start().is_ok());
  EXPECT_FALSE(again.call([](Node& n) { return n.joining(); }));
  ASSERT_TRUE(wait_until([&] { return again.call([](Node& n) { return n.is_ready(); }); }, 20s));
  for (auto& b : brokers_) EXPECT_TRUE(wait_until([&] { return lists_alive(*b, BrokerId(3)); }, 10s));
  EXPECT_GE(static_cast<int>(lead_and_read(again).size()), total);

  // Restart at a new RPC address: it registers it again (same data directory), every broker
  // re-addresses its link, and it serves its replica again.
  again.kill();
  NodeConfig moved_config = restart;
  moved_config.rpc_listen_port = testing::free_port();
  joiners_.push_back(std::make_unique<TestBroker>(moved_config));
  TestBroker& relocated = *joiners_.back();
  ASSERT_TRUE(relocated.start().is_ok());
  for (auto& b : brokers_) {
    EXPECT_TRUE(wait_until([&] {
      return b->call([&](Node& n) {
        const auto& brokers = n.controller()->state().brokers();
        auto it = brokers.find(BrokerId(3));
        return it != brokers.end() && it->second.rpc_port == moved_config.rpc_listen_port;
      }) && lists_alive(*b, BrokerId(3));
    }, 20s));
  }
  ASSERT_TRUE(wait_until([&] { return relocated.call([](Node& n) { return n.is_ready(); }); }, 20s));
  EXPECT_GE(static_cast<int>(lead_and_read(relocated).size()), total);
}

TEST_F(BrokerJoin, RefusedJoinsFailWithAClearStatus) {
  // An id of the static list.
  joiners_.push_back(std::make_unique<TestBroker>(joiner_config(1, 0, "-impostor")));
  TestBroker& impostor = *joiners_.back();
  ASSERT_TRUE(impostor.start().is_ok());
  ASSERT_TRUE(wait_until([&] { return !failure_of(impostor).is_ok(); }, 10s));
  EXPECT_EQ(failure_of(impostor).code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(failure_of(impostor).message().find("static broker"), std::string::npos)
      << failure_of(impostor).to_string();

  // A live joined broker's id, from another data directory.
  joiners_.push_back(std::make_unique<TestBroker>(joiner_config(5, 1)));
  TestBroker& first = *joiners_.back();
  ASSERT_TRUE(first.start().is_ok());
  ASSERT_TRUE(wait_until([&] { return first.call([](Node& n) { return n.is_ready(); }); }, 20s));
  for (auto& b : brokers_) ASSERT_TRUE(wait_until([&] { return lists_alive(*b, BrokerId(5)); }, 10s));
  joiners_.push_back(std::make_unique<TestBroker>(joiner_config(5, 2, "-second")));
  TestBroker& second = *joiners_.back();
  ASSERT_TRUE(second.start().is_ok());
  ASSERT_TRUE(wait_until([&] { return !failure_of(second).is_ok(); }, 10s));
  EXPECT_EQ(failure_of(second).code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(failure_of(second).message().find("in use by a live broker"), std::string::npos)
      << failure_of(second).to_string();
  // The live broker is untouched: still listed, at its own address.
  EXPECT_TRUE(lists_alive(*brokers_[0], BrokerId(5)));
  EXPECT_TRUE(first.call([](Node& n) { return n.join_failure().is_ok() && n.is_ready(); }));

  // Nobody listening at the seed: a timeout naming the seed.
  NodeConfig lost = joiner_config(6, 0);
  lost.join_seeds = {JoinSeed{"127.0.0.1", testing::free_port()}};
  lost.join_timeout_ms = 1500;
  joiners_.push_back(std::make_unique<TestBroker>(lost));
  TestBroker& orphan = *joiners_.back();
  ASSERT_TRUE(orphan.start().is_ok());
  ASSERT_TRUE(wait_until([&] { return !failure_of(orphan).is_ok(); }, 10s));
  EXPECT_EQ(failure_of(orphan).code(), ErrorCode::kTimeout);
  EXPECT_NE(failure_of(orphan).message().find("cannot reach any join seed"), std::string::npos)
      << failure_of(orphan).to_string();

  // A static broker's data directory cannot be used to join.
  NodeConfig reuse = joiner_config(7, 0);
  reuse.data_dir = base_config(2).data_dir;
  joiners_.push_back(std::make_unique<TestBroker>(reuse));
  Status refused = joiners_.back()->start();
  EXPECT_EQ(refused.code(), ErrorCode::kInvalidArgument) << refused.to_string();
}

}  // namespace
}  // namespace mq::cluster
