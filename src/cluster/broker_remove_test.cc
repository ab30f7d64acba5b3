// Removing a broker and controller voter changes with in-process brokers (docs/cluster.md
// "Removing a broker", "Controller voters"): a 4th broker joins a 3-broker cluster and is
// promoted from controller learner to voter once caught up; an original broker is drained and
// removed (refused before that, with the reason); every broker forgets it (metadata, the
// controller group, its transport link) and the removed broker stops itself; its old data
// directory is refused when it comes back; another original broker is then killed and the
// controller still has a quorum: a topic can still be created; the two survivors restart and
// elect a controller leader from their persisted membership (not from --peers).
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <memory>

#include "cluster/ids.h"
#include "cluster/test_cluster.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

class BrokerRemove : public testing::ClusterFixture {
 protected:
  AdminResult remove(TestBroker& via, int id) {
    return via.call_async<AdminResult>([id](Node& n, std::function<void(AdminResult)> reply) {
      n.remove_broker(BrokerId(id), 5000, std::move(reply));
    });
  }
  AdminResult move(TestBroker& via, const std::string& topic, std::vector<BrokerId> replicas) {
    return via.call_async<AdminResult>([=](Node& n, std::function<void(AdminResult)> reply) {
      n.move_partition(topic, 0, replicas, 5000, std::move(reply));
    });
  }
  bool lists_broker(TestBroker& b, int id) {
    return b.call([id](Node& n) {
      auto m = n.metadata();
      return std::any_of(m.brokers.begin(), m.brokers.end(),
                         [id](const BrokerInfo& i) { return i.id == BrokerId(id); });
    });
  }
  // Moves the controller leadership to broker `id` (leadership transfer, thesis §3.10, through
  // test-only access to the controller's Raft node); true once it leads.
  bool move_controller_to(int id) {
    return wait_until(
        [&] {
          for (auto& b : brokers_) {
            b->call([id](Node& n) {
              auto* group = const_cast<ControllerGroup*>(n.controller());
              if (group->is_raft_leader())
                (void)group->node().transfer_leader(node_of(BrokerId(id)));
            });
          }
          return brokers_[id]->call([](Node& n) { return n.controller()->leader_ready(); });
        },
        std::chrono::seconds(10));
  }
  // A removed broker stops itself (its Node reports the removal as its join failure).
  bool wait_stopped_as_removed(int id) {
    return wait_until(
        [&] {
          return brokers_[id]->call(
              [](Node& n) { return n.join_failure().code() == ErrorCode::kAborted; });
        },
        std::chrono::seconds(5));
  }
  // The controller leader of a fresh 3-broker cluster, once it registered the three brokers.
  TestBroker* wait_controller_with_three_brokers() {
    TestBroker* controller = wait_controller();
    if (controller == nullptr) return nullptr;
    bool registered = wait_until(
        [&] {
          return controller->call(
              [](Node& n) { return n.controller()->state().brokers().size() == 3; });
        },
        std::chrono::seconds(5));
    return registered ? controller : nullptr;
  }
};

TEST_F(BrokerRemove, JoinedBrokerIsPromotedAnOriginalIsRemovedAndTheControllerSurvivesAKill) {
  make(3);
  ASSERT_NE(wait_controller(), nullptr);
  auto created = testing::create_topic(*brokers_[0], "t", 1, 3);
  ASSERT_TRUE(created.at(0).status.is_ok()) << created[0].status.to_string();
  TestBroker* leader = wait_partition_leader("t", 0);
  ASSERT_NE(leader, nullptr);
  ASSERT_TRUE(testing::produce_value(*leader, "t", 0, "before").is_ok());

  // A 4th broker joins through broker 0 and is promoted to controller voter once caught up.
  NodeConfig joiner;
  joiner.id = BrokerId(3);
  joiner.data_dir = root_ + "/broker3";
  joiner.rpc_listen_port = testing::free_port();
  joiner.advertised_kafka_port = 19095;
  joiner.produce_timeout_ms = 5000;
  joiner.join_timeout_ms = 10000;
  joiner.join_seeds = {JoinSeed{"127.0.0.1", brokers_[0]->config().rpc_listen_port}};
  brokers_.push_back(std::make_unique<TestBroker>(joiner));
  ASSERT_TRUE(brokers_[3]->start().is_ok());
  ASSERT_TRUE(wait_until(
      [&] {
        TestBroker* c = controller_leader();
        return c != nullptr && has_node(controller_conf(*c).voters, node_of(BrokerId(3))) &&
               controller_conf(*c).voters.size() == 4;
      },
      15s))
      << "broker 3 was not promoted to controller voter";
  // Every broker applies the promotion (its membership is that of the applied log).
  ASSERT_TRUE(wait_until(
      [&] {
        return std::all_of(brokers_.begin(), brokers_.end(), [&](auto& b) {
          return has_node(controller_conf(*b).voters, node_of(BrokerId(3)));
        });
      },
      10s));

  // Refusals: an unknown id; a broker still holding a replica (through a non-leader: forwarded).
  TestBroker* controller = wait_controller();
  ASSERT_NE(controller, nullptr);
  TestBroker* other = brokers_[controller->config().id.value() == 1 ? 2 : 1].get();
  AdminResult unknown = remove(*other, 9);
  EXPECT_EQ(unknown.status.code(), ErrorCode::kNotFound) << unknown.status.to_string();
  EXPECT_EQ(unknown.kafka_error, 102);  // BROKER_ID_NOT_REGISTERED
  AdminResult busy = remove(*other, 0);
  EXPECT_EQ(busy.status.code(), ErrorCode::kInvalidArgument) << busy.status.to_string();
  EXPECT_NE(busy.status.message().find("still holds 1 partition replica"), std::string::npos)
      << busy.status.to_string();

  // Decommission broker 0: its replica moves to broker 3; then it is removed.
  AdminResult moved = move(*other, "t", {BrokerId(3), BrokerId(1), BrokerId(2)});
  ASSERT_TRUE(moved.status.is_ok()) << moved.status.to_string();
  ASSERT_TRUE(wait_until(
      [&] {
        TestBroker* l = partition_leader("t", 0);
        if (l == nullptr) return false;
        auto st = replica_status(*l, "t", 0);
        return st && st->voters.size() == 3 &&
               std::find(st->voters.begin(), st->voters.end(), BrokerId(0)) == st->voters.end();
      },
      20s))
      << "the move off broker 0 did not finish";
  // The hardest case: broker 0 leads the controller when it applies its own removal (it stops,
  // the others refuse its messages but its answer; they elect a new leader).
  ASSERT_TRUE(move_controller_to(0)) << "broker 0 did not take over the controller";
  AdminResult removed;
  ASSERT_TRUE(wait_until(
      [&] {
        // A move's last step may still be applying on the controller leader's replica: retry.
        removed = remove(*other, 0);
        return removed.status.is_ok();
      },
      10s))
      << removed.status.to_string();
  // The answer came back even when broker 0 led the controller and stopped right after.

  // Everyone forgets broker 0: metadata, the controller voters; broker 0 stops itself.
  for (int i = 1; i < 4; ++i) {
    EXPECT_TRUE(wait_until([&] { return !lists_broker(*brokers_[i], 0); }, 5s)) << i;
  }
  EXPECT_TRUE(wait_stopped_as_removed(0)) << "the removed broker did not stop";
  brokers_[0]->kill();  // joins its (stopped) Node's thread: the fixture's helpers skip it
  ASSERT_TRUE(wait_until(
      [&] {
        TestBroker* c = controller_leader();
        if (c == nullptr || c == brokers_[0].get()) return false;
        raft::ConfState cs = controller_conf(*c);
        return !has_node(cs.voters, node_of(BrokerId(0))) &&
               !has_node(cs.learners, node_of(BrokerId(0))) && cs.voters.size() == 3 && !cs.joint();
      },
      15s))
      << "broker 0 did not leave the controller group";
  EXPECT_TRUE(brokers_[1]->call([](Node& n) {
    return !n.controller()->state().brokers().count(BrokerId(0)) &&
           n.controller()->state().find_removed(BrokerId(0)) != nullptr;
  }));

  // Its old data directory comes back: refused, it stops with the reason.
  ASSERT_TRUE(brokers_[0]->start().is_ok());
  EXPECT_TRUE(wait_until(
      [&] {
        return brokers_[0]->call(
            [](Node& n) { return n.join_failure().code() == ErrorCode::kAborted; });
      },
      10s))
      << "a removed broker's data directory was not refused";
  std::string why = brokers_[0]->call([](Node& n) { return n.join_failure().message(); });
  EXPECT_NE(why.find("removed from the cluster"), std::string::npos) << why;
  EXPECT_NE(why.find("empty data directory and --join"), std::string::npos) << why;
  EXPECT_FALSE(lists_broker(*brokers_[2], 0));
  brokers_[0]->kill();

  // Kill broker 1: voters {1, 2, 3} keep a quorum (2, 3); a topic can still be created.
  brokers_[1]->kill();
  TestBroker* survivor = nullptr;
  ASSERT_TRUE(wait_until(
      [&] {
        for (int i : {2, 3}) {
          auto* b = brokers_[i].get();
          if (b->call([](Node& n) { return n.controller()->leader_ready(); })) survivor = b;
        }
        return survivor != nullptr;
      },
      15s))
      << "no controller leader after removing broker 0 and killing broker 1";
  std::vector<AdminResult> after;
  ASSERT_TRUE(wait_until(
      [&] {
        after = testing::create_topic(*brokers_[2], "after", 1, 2);
        return after.at(0).status.is_ok();
      },
      15s))
      << after.at(0).status.to_string();
  TestBroker* after_leader = nullptr;
  ASSERT_TRUE(wait_until(
      [&] {
        for (int i : {2, 3}) {
          if (brokers_[i]->call(
                  [](Node& n) { return n.local_partition("after", 0).has_value(); })) {
            after_leader = brokers_[i].get();
          }
        }
        return after_leader != nullptr;
      },
      15s));
  EXPECT_TRUE(testing::produce_value(*after_leader, "after", 0, "x").is_ok());

  // Restart both survivors. Broker 2's --peers still names 0, 1, 2 and broker 3's join.state
  // the voters 0, 1, 2: with that bootstrap membership neither could win an election (1 and 0
  // are gone). The membership persisted in their controller snapshots ({1, 2, 3}) wins.
  brokers_[2]->kill();
  brokers_[3]->kill();
  ASSERT_TRUE(brokers_[2]->start().is_ok());
  ASSERT_TRUE(brokers_[3]->start().is_ok());
  ASSERT_TRUE(wait_until(
      [&] {
        for (int i : {2, 3}) {
          if (brokers_[i]->call([](Node& n) { return n.controller()->leader_ready(); }))
            return true;
        }
        return false;
      },
      15s))
      << "no controller leader after restarting voters 2 and 3";
  for (int i : {2, 3}) {
    raft::ConfState cs = controller_conf(*brokers_[i]);
    EXPECT_EQ(cs.voters.size(), 3u) << raft::describe(cs);
    EXPECT_FALSE(has_node(cs.voters, node_of(BrokerId(0)))) << raft::describe(cs);
    EXPECT_FALSE(lists_broker(*brokers_[i], 0));
  }
  std::vector<AdminResult> restarted;
  ASSERT_TRUE(wait_until(
      [&] {
        restarted = testing::create_topic(*brokers_[3], "after-restart", 1, 2);
        return restarted.at(0).status.is_ok();
      },
      15s))
      << restarted.at(0).status.to_string();
}

TEST_F(BrokerRemove, RemovingAVoterIsRefusedWhenTheRestWouldHaveNoQuorum) {
  make(3);
  TestBroker* controller = wait_controller_with_three_brokers();
  ASSERT_NE(controller, nullptr) << "no controller leader with the static brokers registered";
  // Kill one voter that is not the controller leader: removing another live voter would
  // leave 1 of the 2 other voters alive, 2 of 3 needed.
  int leader_id = controller->config().id.value();
  int dead = leader_id == 0 ? 1 : 0;
  int victim = 3 - leader_id - dead;
  brokers_[dead]->kill();
  ASSERT_TRUE(wait_until(
      [&] { return controller->call([dead](Node& n) { return n.peer_down(BrokerId(dead)); }); },
      5s));
  AdminResult refused = remove(*controller, victim);
  EXPECT_EQ(refused.status.code(), ErrorCode::kInvalidArgument) << refused.status.to_string();
  EXPECT_NE(refused.status.message().find("without a quorum"), std::string::npos)
      << refused.status.to_string();
  EXPECT_TRUE(lists_broker(*controller, victim));
  // The dead voter itself may go: the two others form a majority of the three voters.
  AdminResult gone = remove(*controller, dead);
  EXPECT_TRUE(gone.status.is_ok()) << gone.status.to_string();
  EXPECT_TRUE(wait_until(
      [&] {
        raft::ConfState cs = controller_conf(*controller);
        return cs.voters.size() == 2 && !has_node(cs.voters, node_of(BrokerId(dead)));
      },
      10s));
  // Now two voters: removing either would leave one of two: refused.
  AdminResult last = remove(*controller, victim);
  EXPECT_EQ(last.status.code(), ErrorCode::kInvalidArgument) << last.status.to_string();
}

TEST_F(BrokerRemove, TwoVoterRemovalsAtOnceCannotTogetherBreakTheQuorum) {
  make(3);
  TestBroker* controller = wait_controller_with_three_brokers();
  ASSERT_NE(controller, nullptr) << "no controller leader with the static brokers registered";
  int leader_id = controller->config().id.value();
  std::vector<int> others;
  for (int i = 0; i < 3; ++i) {
    if (i != leader_id) others.push_back(i);
  }
  // Both asked in one turn of the leader's loop: each alone would keep a quorum (2 of 3), but
  // the second must count the first as gone already.
  auto first = std::make_shared<std::promise<AdminResult>>();
  auto second = std::make_shared<std::promise<AdminResult>>();
  controller->call([&](Node& n) {
    n.remove_broker(BrokerId(others[0]), 5000, [first](AdminResult r) { first->set_value(r); });
    n.remove_broker(BrokerId(others[1]), 5000, [second](AdminResult r) { second->set_value(r); });
  });
  AdminResult a = first->get_future().get();
  AdminResult b = second->get_future().get();
  EXPECT_TRUE(a.status.is_ok()) << a.status.to_string();
  EXPECT_EQ(b.status.code(), ErrorCode::kInvalidArgument) << b.status.to_string();
  EXPECT_NE(b.status.message().find("without a quorum"), std::string::npos) << b.status.to_string();
  EXPECT_TRUE(wait_until(
      [&] {
        raft::ConfState cs = controller_conf(*controller);
        return cs.voters.size() == 2 && !has_node(cs.voters, node_of(BrokerId(others[0])));
      },
      10s));
  EXPECT_TRUE(lists_broker(*controller, others[1]));
  brokers_[others[0]]->kill();  // stopped itself; joined here so the fixture skips it
}

// Removing the controller leader through another broker whose link to it fails right after
// the request left: the leader applies its own removal and stops, so its answer never
// arrives. The forwarding broker still answers success, from the tombstone it applies once
// a new controller leader replicates the entry (docs/cluster.md "Admin forwarding").
TEST_F(BrokerRemove, RemovingTheControllerLeaderIsAnsweredWhenItsAnswerIsLost) {
  make(3);
  ASSERT_NE(wait_controller_with_three_brokers(), nullptr);
  ASSERT_TRUE(move_controller_to(0)) << "broker 0 did not take over the controller";
  // In one turn of broker 1's loop: forward the removal to broker 0, then drop everything
  // broker 0 sends here (its answer and its Raft messages). Broker 0 commits with broker 2.
  AdminResult removed =
      brokers_[1]->call_async<AdminResult>([](Node& n, std::function<void(AdminResult)> reply) {
        n.remove_broker(BrokerId(0), 5000, std::move(reply));
        n.block_links_for_test({BrokerId(0)});
      });
  EXPECT_TRUE(removed.status.is_ok()) << removed.status.to_string();
  EXPECT_TRUE(brokers_[1]->call(
      [](Node& n) { return n.controller()->state().find_removed(BrokerId(0)) != nullptr; }));
  EXPECT_TRUE(wait_stopped_as_removed(0)) << "the removed broker did not stop";
  brokers_[0]->kill();
  // A second request is a fresh one: broker 0 is already gone, and it says so.
  AdminResult again = remove(*brokers_[1], 0);
  EXPECT_EQ(again.status.code(), ErrorCode::kNotFound) << again.status.to_string();
  EXPECT_NE(again.status.message().find("already removed"), std::string::npos)
      << again.status.to_string();
}

}  // namespace
}  // namespace mq::cluster
