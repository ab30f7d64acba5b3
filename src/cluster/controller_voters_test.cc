// The operator's choice of controller voters with in-process brokers (docs/cluster.md
// "Controller voters"; `raftmq controller voters`): a voter demoted through a non-leader
// (forwarded) becomes a learner on every broker and is not promoted back automatically, even
// across restarts; with it killed the controller still creates topics; the refusals change
// nothing (unknown broker, a dead broker promoted, a demotion that would cost the quorum, the
// last voter, a change already in progress); a demoted controller leader hands its leadership
// over first; a promotion makes a learner a voter again.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <memory>
#include <thread>

#include "cluster/ids.h"
#include "cluster/node_admin_rpc.h"
#include "cluster/test_cluster.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

class ControllerVoters : public testing::ClusterFixture {
 protected:
  AdminResult choose(TestBroker& via, int id, VoterChoice choice) {
    return via.call_async<AdminResult>([=](Node& n, std::function<void(AdminResult)> reply) {
      n.set_controller_voter(BrokerId(id), choice, 10000, std::move(reply));
    });
  }
  VoterChoice recorded(TestBroker& b, int id) {
    return b.call([id](Node& n) { return n.controller()->state().voter_choice(BrokerId(id)); });
  }
  // Every running broker's applied configuration has `id` as a learner (or as a voter).
  bool everywhere(int id, bool voter) {
    return std::all_of(brokers_.begin(), brokers_.end(), [&](auto& b) {
      if (!b->running()) return true;
      raft::ConfState cs = controller_conf(*b);
      return voter ? has_node(cs.voters, node_of(BrokerId(id)))
                   : has_node(cs.learners, node_of(BrokerId(id))) &&
                         !has_node(cs.voters, node_of(BrokerId(id)));
    });
  }
  TestBroker* ready_controller() {
    TestBroker* c = wait_controller();
    if (c == nullptr) return nullptr;
    bool registered = wait_until(
        [&] {
          return c->call([](Node& n) { return n.controller()->state().brokers().size() == 3; });
        },
        5s);
    return registered ? c : nullptr;
  }
  bool create(TestBroker& via, const std::string& name, int rf) {
    std::vector<AdminResult> r;
    bool ok = wait_until(
        [&] {
          r = testing::create_topic(via, name, 1, rf);
          return r.at(0).status.is_ok();
        },
        15s);
    EXPECT_TRUE(ok) << name << ": " << r.at(0).status.to_string();
    return ok;
  }
};

TEST_F(ControllerVoters, DemotedVoterStaysALearnerAcrossRestartsAndIsPromotedOnRequest) {
  make(3);
  TestBroker* controller = ready_controller();
  ASSERT_NE(controller, nullptr);
  const int leader = controller->config().id.value();
  const int x = (leader + 1) % 3, y = (leader + 2) % 3;

  // Demote x, asked through y (not the leader: forwarded).
  AdminResult demoted = choose(*brokers_[y], x, VoterChoice::kLearner);
  ASSERT_TRUE(demoted.status.is_ok()) << demoted.status.to_string();
  // The answer comes once the change is in effect on the leader; every broker applies it.
  EXPECT_TRUE(has_node(controller_conf(*controller).learners, node_of(BrokerId(x))));
  ASSERT_TRUE(wait_until([&] { return everywhere(x, false); }, 5s));
  EXPECT_EQ(recorded(*brokers_[x], x), VoterChoice::kLearner);
  Result<ControllerMembers> members = brokers_[x]->call([](Node& n) {
    return n.controller_members();
  });
  ASSERT_TRUE(members.has_value());
  ASSERT_EQ(members->members.size(), 3u);
  for (const ControllerMember& m : members->members) {
    EXPECT_EQ(m.voter, m.id != BrokerId(x)) << m.id.value();
    EXPECT_EQ(m.learner, m.id == BrokerId(x)) << m.id.value();
    EXPECT_EQ(m.choice, m.id == BrokerId(x) ? VoterChoice::kLearner : VoterChoice::kAuto);
    EXPECT_TRUE(m.alive);
  }
  // Not promoted back automatically (2 voters < 5, x alive and caught up): 1.5 s is 7 steps.
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(everywhere(x, false));
  EXPECT_EQ(controller_conf(*controller).voters.size(), 2u);

  // Refusals, nothing changed: an unknown broker; a change already in progress (two choices
  // in one turn of the leader's loop).
  AdminResult unknown = choose(*brokers_[y], 9, VoterChoice::kVoter);
  EXPECT_EQ(unknown.status.code(), ErrorCode::kNotFound) << unknown.status.to_string();
  EXPECT_EQ(unknown.kafka_error, 102);
  auto first = std::make_shared<std::promise<AdminResult>>();
  auto second = std::make_shared<std::promise<AdminResult>>();
  controller->call([&](Node& n) {
    n.set_controller_voter(BrokerId(x), VoterChoice::kVoter, 10000,
                           [first](AdminResult r) { first->set_value(r); });
    n.set_controller_voter(BrokerId(y), VoterChoice::kLearner, 10000,
                           [second](AdminResult r) { second->set_value(r); });
  });
  AdminResult busy = second->get_future().get();
  EXPECT_EQ(busy.status.code(), ErrorCode::kUnavailable) << busy.status.to_string();
  EXPECT_NE(busy.status.message().find("in progress"), std::string::npos);
  AdminResult promoted = first->get_future().get();
  ASSERT_TRUE(promoted.status.is_ok()) << promoted.status.to_string();
  ASSERT_TRUE(wait_until([&] { return everywhere(x, true); }, 5s));
  EXPECT_EQ(recorded(*controller, y), VoterChoice::kAuto);  // the refused one left no trace

  // Demote x again, kill it: voters {leader, y} still commit; a topic is created.
  ASSERT_TRUE(choose(*controller, x, VoterChoice::kLearner).status.is_ok());
  ASSERT_TRUE(wait_until([&] { return everywhere(x, false); }, 5s));
  brokers_[x]->kill();
  ASSERT_TRUE(wait_until(
      [&] { return controller->call([x](Node& n) { return n.peer_down(BrokerId(x)); }); }, 5s));
  ASSERT_TRUE(create(*brokers_[y], "after-demotion", 2));
  // Promoting a dead broker is refused.
  AdminResult dead = choose(*controller, x, VoterChoice::kVoter);
  EXPECT_EQ(dead.status.code(), ErrorCode::kInvalidArgument) << dead.status.to_string();
  EXPECT_NE(dead.status.message().find("not alive"), std::string::npos);
  EXPECT_EQ(recorded(*controller, x), VoterChoice::kLearner);

  // Restart every broker: x comes back a learner (the choice and the configuration are in
  // the controller snapshot), and is still not promoted automatically.
  for (auto& b : brokers_) {
    if (b->running()) b->kill();
  }
  for (auto& b : brokers_) ASSERT_TRUE(b->start().is_ok());
  controller = wait_controller(15s);
  ASSERT_NE(controller, nullptr);
  EXPECT_NE(controller->config().id.value(), x);  // a learner never leads
  ASSERT_TRUE(create(*brokers_[x], "after-restart", 3));
  std::this_thread::sleep_for(1000ms);
  EXPECT_TRUE(everywhere(x, false));
  EXPECT_EQ(recorded(*brokers_[x], x), VoterChoice::kLearner);

  // Back to automatic: the choice goes, and the automatic promotion takes x (2 voters < 5).
  AdminResult automatic = choose(*brokers_[x], x, VoterChoice::kAuto);
  ASSERT_TRUE(automatic.status.is_ok()) << automatic.status.to_string();
  EXPECT_TRUE(wait_until([&] { return everywhere(x, true); }, 10s));
  EXPECT_EQ(recorded(*brokers_[y], x), VoterChoice::kAuto);
}

TEST_F(ControllerVoters, QuorumRuleAndTheLastVoterAreRefused) {
  make(3);
  TestBroker* controller = ready_controller();
  ASSERT_NE(controller, nullptr);
  const int leader = controller->config().id.value();
  const int x = (leader + 1) % 3, y = (leader + 2) % 3;
  // One voter dead: demoting the other live non-leader would leave {leader, dead}: 1 of 2.
  brokers_[y]->kill();
  ASSERT_TRUE(wait_until(
      [&] { return controller->call([y](Node& n) { return n.peer_down(BrokerId(y)); }); }, 5s));
  AdminResult refused = choose(*controller, x, VoterChoice::kLearner);
  EXPECT_EQ(refused.status.code(), ErrorCode::kInvalidArgument) << refused.status.to_string();
  EXPECT_NE(refused.status.message().find("without a quorum"), std::string::npos)
      << refused.status.to_string();
  EXPECT_EQ(recorded(*controller, x), VoterChoice::kAuto);
  EXPECT_EQ(controller_conf(*controller).voters.size(), 3u);
  // The dead voter itself may be demoted: {leader, x} are both alive.
  AdminResult dead_demoted = choose(*controller, y, VoterChoice::kLearner);
  ASSERT_TRUE(dead_demoted.status.is_ok()) << dead_demoted.status.to_string();
  EXPECT_TRUE(has_node(controller_conf(*controller).learners, node_of(BrokerId(y))));
  // Now demote x (both remaining voters alive: allowed), leaving the leader the only voter.
  ASSERT_TRUE(choose(*brokers_[x], x, VoterChoice::kLearner).status.is_ok());
  ASSERT_TRUE(wait_until([&] { return controller_conf(*controller).voters.size() == 1; }, 5s));
  // The last voter cannot go.
  AdminResult last = choose(*brokers_[x], leader, VoterChoice::kLearner);
  EXPECT_EQ(last.status.code(), ErrorCode::kInvalidArgument) << last.status.to_string();
  EXPECT_NE(last.status.message().find("only controller voter"), std::string::npos)
      << last.status.to_string();
  // The single voter still commits: a topic is created.
  ASSERT_TRUE(create(*brokers_[x], "one-voter", 2));
}

TEST_F(ControllerVoters, DemotingTheLeaderHandsItsLeadershipOverFirst) {
  make(3);
  TestBroker* controller = ready_controller();
  ASSERT_NE(controller, nullptr);
  const int leader = controller->config().id.value();
  AdminResult demoted = choose(*controller, leader, VoterChoice::kLearner);
  ASSERT_TRUE(demoted.status.is_ok()) << demoted.status.to_string();
  ASSERT_TRUE(wait_until([&] { return everywhere(leader, false); }, 5s));
  TestBroker* next = wait_controller();
  ASSERT_NE(next, nullptr);
  EXPECT_NE(next->config().id.value(), leader);
  EXPECT_EQ(controller_conf(*next).voters.size(), 2u);
  ASSERT_TRUE(create(*brokers_[leader], "after-leader-demotion", 3));
}

// The forwarded request (AdminOp kControllerVoter): round trip; a bad choice byte and
// truncation refused.
TEST(ControllerVoterAdminRequest, CodecRoundTripAndRefusals) {
  AdminRequest q;
  q.op = AdminOp::kControllerVoter;
  q.timeout_ms = 7000;
  q.broker = BrokerId(4);
  q.voter_choice = VoterChoice::kLearner;
  Buffer bytes = encode_admin_request(q);
  auto back = decode_admin_request(bytes.view());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(back->op, AdminOp::kControllerVoter);
  EXPECT_EQ(back->broker, BrokerId(4));
  EXPECT_EQ(back->voter_choice, VoterChoice::kLearner);
  EXPECT_EQ(back->timeout_ms, 7000);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_admin_request(bytes.view().first(n)).has_value()) << n;
  }
  Buffer bad = encode_admin_request(q);
  bad.data()[bad.size() - 1] = 3;
  EXPECT_FALSE(decode_admin_request(bad.view()).has_value());
}

}  // namespace
}  // namespace mq::cluster
