// Learners, single-voter changes, joint consensus (thesis §4.3) and the one-change-in-flight
// rule, through the public API. Changes take effect when advance() acknowledges the applied
// kConfChange entry.
#include <gtest/gtest.h>

#include "raft/raw_node.h"
#include "raft/testing/cluster.h"

namespace mq::raft {
namespace {

using testing::Cluster;

ConfChangeSingle add(std::uint64_t id) { return {ConfChangeType::kAddNode, NodeId(id)}; }
ConfChangeSingle learner(std::uint64_t id) { return {ConfChangeType::kAddLearner, NodeId(id)}; }
ConfChangeSingle rm(std::uint64_t id) { return {ConfChangeType::kRemoveNode, NodeId(id)}; }

ConfState voters_cs(std::vector<std::uint64_t> ids) {
  ConfState cs;
  for (auto id : ids) cs.voters.push_back(NodeId(id));
  return cs;
}

void run(Cluster& c, int ticks) {
  for (int i = 0; i < ticks; ++i) {
    c.tick_all(1);
    c.stabilize();
  }
}

TEST(RaftLearner, LearnerReplicatesButNeverCountsOrCampaigns) {
  Cluster c({NodeId(1), NodeId(2)}, {NodeId(3)});
  c.elect(NodeId(1));
  c.isolate(NodeId(2));
  ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("x"))).has_value());
  c.stabilize();
  EXPECT_EQ(c.node(3).status().last_index, LogIndex(2));      // the learner has it
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(1));  // but it does not count
  c.isolate(NodeId(1));
  for (int i = 0; i < 60; ++i) {
    c.tick(NodeId(3));
    c.stabilize();
  }
  EXPECT_EQ(c.node(3).status().soft_state.role, Role::kFollower);  // never campaigns
  EXPECT_EQ(c.node(3).status().hard_state.term, Term(1));
}

TEST(RaftMembership, AddLearnerThenPromote) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.add_node(NodeId(4), voters_cs({1, 2, 3}));
  ASSERT_TRUE(c.node(1).propose_conf_change(ConfChange{{}, {learner(4)}}).has_value());
  c.stabilize();
  run(c, 3);
  EXPECT_EQ(c.node(1).conf_state().learners, std::vector<NodeId>{NodeId(4)});
  EXPECT_EQ(c.node(4).conf_state().learners, std::vector<NodeId>{NodeId(4)});
  EXPECT_EQ(c.node(4).status().last_index, c.node(1).status().last_index);
  ASSERT_TRUE(c.node(1).propose_conf_change(ConfChange{{}, {add(4)}}).has_value());
  c.stabilize();
  EXPECT_EQ(c.node(1).conf_state().voters.size(), 4u);
  EXPECT_TRUE(c.node(1).conf_state().learners.empty());
  EXPECT_EQ(c.node(3).conf_state(), c.node(1).conf_state());
  // The membership survives a restart through the storage's ConfState.
  c.restart(NodeId(2));
  EXPECT_EQ(c.node(2).conf_state().voters.size(), 4u);
}

TEST(RaftMembership, ChangeTakesEffectOnlyWhenApplied) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.add_node(NodeId(4), voters_cs({1, 2, 3}));
  ASSERT_TRUE(c.node(1).propose_conf_change(ConfChange{{}, {add(4)}}).has_value());
  // Appended, not even committed: no effect.
  EXPECT_EQ(c.node(1).conf_state().voters.size(), 3u);
  // Drive until committed but stop before the leader applies it.
  c.process_ready(NodeId(1));
  c.deliver_queued();
  c.process_ready(NodeId(2));
  c.process_ready(NodeId(3));
  c.deliver_queued();
  ASSERT_EQ(c.node(1).status().hard_state.commit, LogIndex(2));
  EXPECT_EQ(c.node(1).conf_state().voters.size(), 3u);
  Ready rd = c.node(1).ready();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].type, EntryType::kConfChange);
  EXPECT_EQ(c.node(1).conf_state().voters.size(), 3u);  // handed out, not yet applied
  c.handle_ready(NodeId(1), rd);                         // advance(): now in effect
  EXPECT_EQ(c.node(1).conf_state().voters.size(), 4u);
}

TEST(RaftMembership, OneChangeInFlight) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose_conf_change(ConfChange{{}, {learner(4)}}).has_value());
  auto second = c.node(1).propose_conf_change(ConfChange{{}, {learner(5)}});
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
  c.stabilize();
  EXPECT_TRUE(c.node(1).propose_conf_change(ConfChange{{}, {learner(5)}}).has_value());
}

TEST(RaftMembership, InvalidChangesRefused) {
  Cluster c(1);
  c.elect(NodeId(1));
  EXPECT_EQ(c.node(1).propose_conf_change(ConfChange{{}, {rm(1)}}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(1).propose_conf_change(ConfChange{}).status().code(),
            ErrorCode::kInvalidArgument);  // nothing to leave
  Cluster d(3);
  d.elect(NodeId(1));
  EXPECT_EQ(d.node(2).propose_conf_change(ConfChange{{}, {add(4)}}).status().code(),
            ErrorCode::kNotLeader);
  // Two voters at once without a joint transition would be refused by simple(); kAuto
  // makes it joint, so it is accepted.
  EXPECT_TRUE(d.node(1)
                  .propose_conf_change(ConfChange{ConfChangeTransition::kAuto, {add(4), add(5)}})
                  .has_value());
}

TEST(RaftMembership, JointConsensusAutoLeave) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.add_node(NodeId(4), voters_cs({1, 2, 3}));
  c.add_node(NodeId(5), voters_cs({1, 2, 3}));
  // Replace 3 by 4 and 5 in one step: joint consensus, left automatically.
  ConfChange cc{ConfChangeTransition::kAuto, {add(4), add(5), rm(3)}};
  ASSERT_TRUE(c.node(1).propose_conf_change(cc).has_value());
  c.stabilize();
  run(c, 2);
  const ConfState cs = c.node(1).conf_state();
  EXPECT_EQ(describe(cs),
            "Voters:[1 2 4 5] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false");
  for (std::uint64_t id : {2u, 4u, 5u}) EXPECT_EQ(c.node(id).conf_state(), cs) << id;
  // The log holds the entering change and the automatic leave.
  std::size_t conf_entries = 0;
  for (const Entry& e : c.test_node(1).applied) {
    conf_entries += e.type == EntryType::kConfChange ? 1 : 0;
  }
  EXPECT_EQ(conf_entries, 2u);
  // The group still commits without node 3.
  c.isolate(NodeId(3));
  ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("after"))).has_value());
  c.stabilize();
  EXPECT_EQ(c.node(5).status().hard_state.commit, c.node(1).status().last_index);
}

TEST(RaftMembership, ExplicitJointNeedsLeaveAndBlocksOtherChanges) {
  Cluster c(3);
  c.elect(NodeId(1));
  ConfChange enter{ConfChangeTransition::kExplicit, {learner(3)}};  // demote 3
  ASSERT_TRUE(c.node(1).propose_conf_change(enter).has_value());
  c.stabilize();
  run(c, 2);
  ConfState joint = c.node(1).conf_state();
  EXPECT_EQ(joint.voters_outgoing.size(), 3u);
  EXPECT_EQ(joint.learners_next, std::vector<NodeId>{NodeId(3)});
  auto other = c.node(1).propose_conf_change(ConfChange{{}, {learner(4)}});
  EXPECT_EQ(other.status().code(), ErrorCode::kUnavailable);
  ASSERT_TRUE(c.node(1).propose_conf_change(ConfChange{}).has_value());
  c.stabilize();
  const ConfState left = c.node(1).conf_state();
  EXPECT_TRUE(left.voters_outgoing.empty());
  EXPECT_EQ(left.voters, (std::vector<NodeId>{NodeId(1), NodeId(2)}));
  EXPECT_EQ(left.learners, std::vector<NodeId>{NodeId(3)});
}

TEST(RaftMembership, RemovedLeaderHandsOverLeadership) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose_conf_change(ConfChange{{}, {rm(1)}}).has_value());
  c.stabilize();
  // Applied: node 1 is no voter any more. It keeps leading only to hand over (thesis
  // §3.10, §4.2.2) and refuses proposals meanwhile.
  if (c.node(1).status().soft_state.role == Role::kLeader) {
    EXPECT_NE(c.node(1).status().lead_transferee, kNoNode);
    EXPECT_FALSE(c.node(1).propose(SharedBuffer(std::string_view("no"))).has_value());
  }
  run(c, 25);
  EXPECT_EQ(c.node(1).status().soft_state.role, Role::kFollower);
  auto leader = c.leader();
  ASSERT_TRUE(leader.has_value());
  EXPECT_NE(*leader, NodeId(1));
  EXPECT_EQ(c.node(leader->value()).conf_state().voters,
            (std::vector<NodeId>{NodeId(2), NodeId(3)}));
  ASSERT_TRUE(c.node(leader->value()).propose(SharedBuffer(std::string_view("y"))).has_value());
  c.stabilize();
  EXPECT_EQ(c.node(2).status().hard_state.commit, c.node(3).status().hard_state.commit);
}

TEST(RaftMembership, MalformedConfChangeEntryIsNoOp) {
  // A committed kConfChange entry that does not decode changes nothing, on every node.
  Cluster c(3);
  c.elect(NodeId(1));
  const ConfState before = c.node(1).conf_state();
  Message app;
  app.type = MessageType::kAppend;
  app.from = NodeId(1);
  app.to = NodeId(2);
  app.term = Term(1);
  app.index = LogIndex(1);
  app.log_term = Term(1);
  app.commit = LogIndex(2);
  app.entries.push_back(
      Entry{Term(1), LogIndex(2), EntryType::kConfChange, SharedBuffer(std::string_view("junk"))});
  ASSERT_TRUE(c.node(2).step(app).is_ok());
  c.process_ready(NodeId(2));
  EXPECT_EQ(c.node(2).conf_state(), before);
  EXPECT_EQ(c.node(2).status().applied, LogIndex(2));
}

}  // namespace
}  // namespace mq::raft
