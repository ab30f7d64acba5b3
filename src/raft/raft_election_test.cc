// PreVote (thesis §9.6), CheckQuorum and leader leases (thesis §6.2, §4.2.3), leadership
// transfer (thesis §3.10).
#include <gtest/gtest.h>

#include "raft/raw_node.h"
#include "raft/testing/cluster.h"

namespace mq::raft {
namespace {

using testing::Cluster;

Message msg(MessageType type, std::uint64_t from, std::uint64_t to, std::uint64_t term) {
  Message m;
  m.type = type;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = Term(term);
  return m;
}

Role role(Cluster& c, std::uint64_t id) { return c.node(id).status().soft_state.role; }
Term term(Cluster& c, std::uint64_t id) { return c.node(id).status().hard_state.term; }

void run(Cluster& c, int ticks) {
  for (int i = 0; i < ticks; ++i) {
    c.tick_all(1);
    c.stabilize();
  }
}

// ---- PreVote ----

TEST(RaftPreVote, PartitionedNodeDoesNotInflateTerm) {
  Cluster c(3);  // pre_vote and check_quorum on (defaults)
  c.elect(NodeId(1));
  ASSERT_EQ(term(c, 1), Term(1));
  c.isolate(NodeId(3));
  for (int i = 0; i < 100; ++i) {
    c.tick(NodeId(3));
    c.stabilize();
  }
  // Node 3 kept pre-campaigning without ever bumping its term.
  EXPECT_EQ(term(c, 3), Term(1));
  EXPECT_EQ(role(c, 3), Role::kPreCandidate);
  c.heal();
  run(c, 3);
  // Rejoining did not depose the leader.
  EXPECT_EQ(role(c, 1), Role::kLeader);
  EXPECT_EQ(term(c, 1), Term(1));
  EXPECT_EQ(role(c, 3), Role::kFollower);
}

TEST(RaftPreVote, PreVoteSucceedsThenRealElection) {
  Cluster c(3);
  c.record_readies = true;
  c.node(1).campaign();
  EXPECT_EQ(role(c, 1), Role::kPreCandidate);
  EXPECT_EQ(term(c, 1), Term(0));
  c.stabilize();
  EXPECT_EQ(role(c, 1), Role::kLeader);
  EXPECT_EQ(term(c, 1), Term(1));
  bool saw_pre_vote = false;
  for (const Message& m : c.delivered()) {
    if (m.type == MessageType::kPreVote) {
      saw_pre_vote = true;
      EXPECT_EQ(m.term, Term(1));  // the term it would campaign at
    }
  }
  EXPECT_TRUE(saw_pre_vote);
}

TEST(RaftPreVote, PreVoteGrantDoesNotChangeVoterState) {
  Cluster c(3);
  Message pre = msg(MessageType::kPreVote, 2, 1, 5);
  ASSERT_TRUE(c.node(1).step(pre).is_ok());
  Ready rd = c.node(1).ready();
  EXPECT_FALSE(rd.hard_state.has_value());  // neither term nor vote changed
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_EQ(rd.messages_after_persist[0].type, MessageType::kPreVoteResponse);
  EXPECT_FALSE(rd.messages_after_persist[0].reject);
  EXPECT_EQ(rd.messages_after_persist[0].term, Term(5));
  c.handle_ready(NodeId(1), rd);
  EXPECT_EQ(term(c, 1), Term(0));
}

TEST(RaftPreVote, PreCandidateLosesAndStaysAtTerm) {
  Cluster c(3);
  c.elect(NodeId(2));
  c.isolate(NodeId(1));
  c.node(1).campaign();
  ASSERT_EQ(role(c, 1), Role::kPreCandidate);
  for (std::uint64_t from : {2u, 3u}) {
    Message resp = msg(MessageType::kPreVoteResponse, from, 1, 1);  // voters' own term
    resp.reject = true;
    ASSERT_TRUE(c.node(1).step(resp).is_ok());
  }
  EXPECT_EQ(role(c, 1), Role::kFollower);
  EXPECT_EQ(term(c, 1), Term(1));
}

TEST(RaftPreVote, StaleTermPreVoteIsRejectedWithHigherTerm) {
  Cluster c(3);
  ASSERT_TRUE(c.node(2).step(msg(MessageType::kHeartbeat, 3, 2, 3)).is_ok());
  c.process_ready(NodeId(2));
  c.take_messages();
  Message pre = msg(MessageType::kPreVote, 1, 2, 2);
  ASSERT_TRUE(c.node(2).step(pre).is_ok());
  Ready rd = c.node(2).ready();
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_EQ(rd.messages_after_persist[0].type, MessageType::kPreVoteResponse);
  EXPECT_TRUE(rd.messages_after_persist[0].reject);
  EXPECT_EQ(rd.messages_after_persist[0].term, Term(3));
  c.handle_ready(NodeId(2), rd);
}

// ---- CheckQuorum ----

TEST(RaftCheckQuorum, IsolatedLeaderStepsDown) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(1));
  for (int i = 0; i < 25; ++i) {
    c.tick(NodeId(1));
    c.stabilize();
  }
  EXPECT_EQ(role(c, 1), Role::kFollower);
  EXPECT_EQ(term(c, 1), Term(1));
}

TEST(RaftCheckQuorum, ConnectedLeaderStays) {
  Cluster c(3);
  c.elect(NodeId(1));
  run(c, 100);
  EXPECT_EQ(role(c, 1), Role::kLeader);
  EXPECT_EQ(term(c, 1), Term(1));
}

TEST(RaftCheckQuorum, FollowerInLeaseIgnoresVoteRequests) {
  Cluster c(3);
  c.elect(NodeId(1));
  Message vote = msg(MessageType::kVote, 3, 2, 5);
  vote.index = LogIndex(10);
  vote.log_term = Term(5);
  ASSERT_TRUE(c.node(2).step(vote).is_ok());
  EXPECT_EQ(term(c, 2), Term(1));  // ignored, term not bumped
  EXPECT_FALSE(c.node(2).has_ready());
  // Once the lease has expired (no leader heard for an election timeout) it votes.
  c.isolate(NodeId(1));
  c.tick(NodeId(2), 10);
  ASSERT_TRUE(c.node(2).step(vote).is_ok());
  EXPECT_EQ(term(c, 2), Term(5));
  EXPECT_EQ(c.node(2).status().hard_state.vote, NodeId(3));
}

TEST(RaftCheckQuorum, TransferVoteOverridesLease) {
  Cluster c(3);
  c.elect(NodeId(1));
  Message vote = msg(MessageType::kVote, 3, 2, 2);
  vote.index = LogIndex(10);
  vote.log_term = Term(1);
  vote.context = Message::kCampaignTransfer;
  ASSERT_TRUE(c.node(2).step(vote).is_ok());
  EXPECT_EQ(term(c, 2), Term(2));
  EXPECT_EQ(c.node(2).status().hard_state.vote, NodeId(3));
}

TEST(RaftCheckQuorum, DeposedLeaderLearnsNewTermFromAppendResponse) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(1));
  run(c, 40);
  auto leader = c.leader();
  ASSERT_TRUE(leader.has_value());
  // Node 1 still thinks it might lead (it stepped down to follower via CheckQuorum, but a
  // stale heartbeat from it must still be answered so it learns the term).
  Message stale = msg(MessageType::kHeartbeat, 1, leader->value(), 1);
  ASSERT_TRUE(c.node(leader->value()).step(stale).is_ok());
  Ready rd = c.node(leader->value()).ready();
  bool answered = false;
  for (const Message& m : rd.messages_after_persist) {
    if (m.type == MessageType::kAppendResponse && m.to == NodeId(1)) {
      answered = true;
      EXPECT_GT(m.term, Term(1));
    }
  }
  EXPECT_TRUE(answered);
  c.handle_ready(*leader, rd);
}

// ---- Leadership transfer ----

TEST(RaftTransfer, TransferToUpToDateFollower) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).transfer_leader(NodeId(2)).is_ok());
  c.stabilize();
  EXPECT_EQ(role(c, 2), Role::kLeader);
  EXPECT_EQ(role(c, 1), Role::kFollower);
  EXPECT_EQ(term(c, 2), Term(2));
  bool saw_timeout_now = false;
  for (const Message& m : c.delivered()) {
    saw_timeout_now |= m.type == MessageType::kTimeoutNow;
    if (m.type == MessageType::kPreVote && m.from == NodeId(2)) ADD_FAILURE() << "pre-voted";
  }
  EXPECT_TRUE(saw_timeout_now);
}

TEST(RaftTransfer, LaggingTransfereeIsCaughtUpFirst) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(3));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("x"))).has_value());
  c.stabilize();
  c.heal();
  ASSERT_TRUE(c.node(1).transfer_leader(NodeId(3)).is_ok());
  EXPECT_EQ(c.node(1).status().lead_transferee, NodeId(3));
  // Proposals are refused while the transfer runs.
  auto refused = c.node(1).propose(SharedBuffer(std::string_view("y")));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kAborted);
  run(c, 3);
  EXPECT_EQ(role(c, 3), Role::kLeader);
  EXPECT_EQ(c.node(3).status().last_index, LogIndex(7));  // 5 entries + 2 no-ops
}

TEST(RaftTransfer, AbortedAfterElectionTimeout) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(3));
  ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("x"))).has_value());
  c.stabilize();
  ASSERT_TRUE(c.node(1).transfer_leader(NodeId(3)).is_ok());
  for (int i = 0; i < 10; ++i) {
    c.tick(NodeId(1));
    c.tick(NodeId(2));
    c.stabilize();
  }
  EXPECT_EQ(role(c, 1), Role::kLeader);
  EXPECT_EQ(c.node(1).status().lead_transferee, kNoNode);
  EXPECT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("y"))).has_value());
}

TEST(RaftTransfer, InvalidTargetsRefused) {
  Cluster c({NodeId(1), NodeId(2), NodeId(3)}, {NodeId(4)});
  c.elect(NodeId(1));
  EXPECT_EQ(c.node(1).transfer_leader(NodeId(9)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(1).transfer_leader(NodeId(4)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(2).transfer_leader(NodeId(3)).code(), ErrorCode::kNotLeader);
  EXPECT_TRUE(c.node(1).transfer_leader(NodeId(1)).is_ok());  // already leader: no-op
  EXPECT_EQ(role(c, 1), Role::kLeader);
}

}  // namespace
}  // namespace mq::raft
