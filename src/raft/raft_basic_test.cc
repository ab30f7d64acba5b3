// Election, replication and commitment through the public RawNode API.
#include <gtest/gtest.h>

#include "raft/raw_node.h"
#include "raft/testing/cluster.h"

namespace mq::raft {
namespace {

using testing::Cluster;

SharedBuffer payload(std::string_view text) { return SharedBuffer(text); }

std::vector<std::string> applied_payloads(const testing::TestNode& tn) {
  std::vector<std::string> out;
  for (const Entry& e : tn.applied) {
    if (e.type == EntryType::kNormal) out.emplace_back(as_chars(e.payload.view()));
  }
  return out;
}

TEST(RaftBasic, SingleNodeElectsItselfAndCommits) {
  Cluster c(1);
  c.elect(NodeId(1));
  EXPECT_EQ(c.node(1).status().soft_state.role, Role::kLeader);
  EXPECT_EQ(c.node(1).status().hard_state.term, Term(1));
  auto index = c.node(1).propose(payload("a"));
  ASSERT_TRUE(index.has_value());
  EXPECT_EQ(*index, LogIndex(2));  // 1 is the leader's no-op
  c.stabilize();
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(2));
  EXPECT_EQ(applied_payloads(c.test_node(1)), std::vector<std::string>{"a"});
}

TEST(RaftBasic, ThreeNodesElectAndReplicate) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_EQ(c.leader(), NodeId(1));
  for (std::uint64_t id : {2u, 3u}) {
    EXPECT_EQ(c.node(id).status().soft_state.leader, NodeId(1));
    EXPECT_EQ(c.node(id).status().soft_state.role, Role::kFollower);
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(c.node(1).propose(payload("p" + std::to_string(i))).has_value());
  }
  c.stabilize();
  for (std::uint64_t id : {1u, 2u, 3u}) {
    EXPECT_EQ(c.node(id).status().hard_state.commit, LogIndex(11)) << id;
    EXPECT_EQ(applied_payloads(c.test_node(id)).size(), 10u) << id;
    EXPECT_EQ(c.storage(id).last_index(), LogIndex(11));
  }
}

// Several ticks at once (RawNode::tick(n), an idle host's stride): one heartbeat round for them,
// where as many single ticks send one per heartbeat interval.
TEST(RaftBasic, SeveralTicksAtOnceSendOneHeartbeatRound) {
  auto count_beats = [](Cluster& c) {
    c.process_ready(NodeId(1));
    std::size_t beats = 0;
    for (const Message& m : c.take_messages()) beats += m.type == MessageType::kHeartbeat;
    return beats;
  };
  Cluster c(3, [](Config& cfg) { cfg.heartbeat_ticks = 2; });
  c.elect(NodeId(1));
  c.take_messages();
  for (int i = 0; i < 6; ++i) c.node(1).tick();
  EXPECT_EQ(count_beats(c), 6u);  // three rounds, two followers
  c.node(1).tick(6);
  EXPECT_EQ(count_beats(c), 2u);  // one round
  c.node(1).tick(1);
  EXPECT_EQ(count_beats(c), 0u);  // the interval restarted at the round
  c.node(1).tick(1);
  EXPECT_EQ(count_beats(c), 2u);
}

// Time still runs at the same rate: a follower ticked past its election timeout in one call
// campaigns, and a leader that heard from nobody for an election timeout steps down
// (CheckQuorum) whether the ticks come one by one or at once.
TEST(RaftBasic, SeveralTicksAtOnceCountAsManySingleTicks) {
  for (bool at_once : {false, true}) {
    SCOPED_TRACE(at_once ? "at once" : "one by one");
    Cluster c(3);
    c.elect(NodeId(1));
    c.take_messages();
    // Nothing from the leader any more: follower 2's randomized timeout is < 20 ticks.
    if (at_once) {
      c.node(2).tick(20);
    } else {
      for (int i = 0; i < 20; ++i) c.node(2).tick();
    }
    c.process_ready(NodeId(2));
    bool pre_vote = false;
    for (const Message& m : c.take_messages()) pre_vote |= m.type == MessageType::kPreVote;
    EXPECT_TRUE(pre_vote);
    // The leader hears nothing for two election timeouts (the first CheckQuorum round still
    // counts the followers active from the election).
    if (at_once) {
      c.node(1).tick(20);
    } else {
      for (int i = 0; i < 20; ++i) c.node(1).tick();
    }
    EXPECT_EQ(c.node(1).status().soft_state.role, Role::kFollower);
  }
}

TEST(RaftBasic, ElectionTimeoutStartsElection) {
  Cluster c(3);
  // Nobody campaigns until its randomized timeout [10, 20) expires.
  c.tick_all(9);
  c.stabilize();
  EXPECT_FALSE(c.leader().has_value());
  for (int i = 0; i < 20 && !c.leader(); ++i) {
    c.tick_all(1);
    c.stabilize();
  }
  ASSERT_TRUE(c.leader().has_value());
}

TEST(RaftBasic, FollowerRejectsProposalWithLeaderHint) {
  Cluster c(3);
  c.elect(NodeId(1));
  auto r = c.node(2).propose(payload("x"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotLeader);
  EXPECT_NE(r.error().message().find("leader is 1"), std::string::npos);
}

TEST(RaftBasic, LeaderCommitsOnlyAfterOwnPersistOrQuorum) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(payload("x")).has_value());
  // Take the leader's Ready but do not advance yet: entries go out in `messages` at once.
  Ready rd = c.node(1).ready();
  ASSERT_EQ(rd.entries_to_persist.size(), 1u);
  ASSERT_EQ(rd.messages.size(), 2u);
  EXPECT_TRUE(rd.must_sync);
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(1));
  // The leader's own match does not include the unpersisted entry.
  EXPECT_EQ(c.node(1).status().progress.at(NodeId(1)).match, LogIndex(1));
  ASSERT_TRUE(c.storage(1).append(rd.entries_to_persist).is_ok());
  c.node(1).advance(rd);
  EXPECT_EQ(c.node(1).status().progress.at(NodeId(1)).match, LogIndex(2));
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(1));  // 1 of 3 is no quorum
}

TEST(RaftBasic, AppendResponsesWaitForPersistence) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(payload("x")).has_value());
  ASSERT_TRUE(c.process_ready(NodeId(1)));
  c.deliver_queued();
  Ready rd = c.node(2).ready();
  EXPECT_EQ(rd.entries_to_persist.size(), 1u);
  EXPECT_TRUE(rd.messages.empty());
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_EQ(rd.messages_after_persist[0].type, MessageType::kAppendResponse);
  EXPECT_EQ(rd.messages_after_persist[0].index, LogIndex(2));
  c.handle_ready(NodeId(2), rd);
}

TEST(RaftBasic, RestartKeepsLogAndTerm) {
  Cluster c(3);
  c.elect(NodeId(1));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.node(1).propose(payload("x")).has_value());
  c.stabilize();
  c.restart(NodeId(2));
  EXPECT_EQ(c.node(2).status().hard_state.term, Term(1));
  EXPECT_EQ(c.node(2).status().last_index, LogIndex(4));
  EXPECT_EQ(c.node(2).status().hard_state.commit, LogIndex(4));
  c.stabilize();
  EXPECT_EQ(c.test_node(2).applied.size(), 4u);  // re-applied from the start
}

TEST(RaftBasic, NewLeaderAfterLeaderIsolated) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(payload("a")).has_value());
  c.stabilize();
  c.isolate(NodeId(1));
  for (int i = 0; i < 50; ++i) {
    c.tick_all(1);
    c.stabilize();
  }
  auto leader = c.leader();
  ASSERT_TRUE(leader.has_value());
  EXPECT_NE(*leader, NodeId(1));
  ASSERT_TRUE(c.node(leader->value()).propose(payload("b")).has_value());
  c.stabilize();
  c.heal();
  for (int i = 0; i < 5; ++i) {
    c.tick_all(1);
    c.stabilize();
  }
  EXPECT_EQ(applied_payloads(c.test_node(1)), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.node(1).status().soft_state.role, Role::kFollower);
}

}  // namespace
}  // namespace mq::raft
