// RawNode::quiescable_as_leader / quiescable_as_follower (raw_node.h): when a host may stop
// ticking an idle group.
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "raft/testing/cluster.h"

namespace mq::raft {
namespace {

using testing::Cluster;

SharedBuffer payload(const char* text) { return SharedBuffer(std::string_view(text)); }

LogIndex last_index(Cluster& c, std::uint64_t id) { return c.node(id).status().last_index; }
Term term_of(Cluster& c, std::uint64_t id) { return c.node(id).status().hard_state.term; }

TEST(RaftQuiesce, IdleLeaderWithReplicatedLogIsQuiescable) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.stabilize();
  EXPECT_TRUE(c.node(1).quiescable_as_leader({}));
  // Followers: only for the leader, term and last index they hold.
  const LogIndex last = last_index(c, 1);
  const Term term = term_of(c, 1);
  EXPECT_TRUE(c.node(2).quiescable_as_follower(NodeId(1), term, last));
  EXPECT_FALSE(c.node(2).quiescable_as_follower(NodeId(3), term, last));
  EXPECT_FALSE(c.node(2).quiescable_as_follower(NodeId(1), Term(term.value() + 1), last));
  EXPECT_FALSE(c.node(2).quiescable_as_follower(NodeId(1), term, LogIndex(last.value() + 1)));
  EXPECT_FALSE(c.node(2).quiescable_as_follower(kNoNode, term, last));
  // A follower is never quiescable as a leader and vice versa.
  EXPECT_FALSE(c.node(2).quiescable_as_leader({}));
  EXPECT_FALSE(c.node(1).quiescable_as_follower(NodeId(1), term, last));
}

TEST(RaftQuiesce, PendingProposalPreventsQuiescing) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.stabilize();
  ASSERT_TRUE(c.node(1).propose(payload("x")).has_value());
  // Appended, not yet sent, replicated, committed or applied.
  EXPECT_FALSE(c.node(1).quiescable_as_leader({}));
  ASSERT_TRUE(c.process_ready(NodeId(1)));
  EXPECT_FALSE(c.node(1).quiescable_as_leader({}));
  c.stabilize();
  EXPECT_TRUE(c.node(1).quiescable_as_leader({}));
}

TEST(RaftQuiesce, LaggingFollowerPreventsQuiescingUnlessDown) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.stabilize();
  c.isolate(NodeId(3));
  ASSERT_TRUE(c.node(1).propose(payload("x")).has_value());
  c.stabilize();
  // Committed by 1 and 2; 3 lags.
  EXPECT_FALSE(c.node(1).quiescable_as_leader({}));
  const std::vector<NodeId> down3{NodeId(3)};
  EXPECT_TRUE(c.node(1).quiescable_as_leader(down3));
  // The follower that did not get the entry must not quiesce at the leader's last index.
  EXPECT_FALSE(c.node(3).quiescable_as_follower(NodeId(1), term_of(c, 1), last_index(c, 1)));
}

TEST(RaftQuiesce, QuorumDownKeepsTheLeaderTicking) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.stabilize();
  const std::vector<NodeId> down{NodeId(2), NodeId(3)};
  // CheckQuorum (thesis §6.2) must run: a leader without a live quorum does not quiesce.
  EXPECT_FALSE(c.node(1).quiescable_as_leader(down));
}

TEST(RaftQuiesce, ReadIndexAndTransferPreventQuiescing) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.stabilize();
  ASSERT_TRUE(c.node(1).read_index(7).is_ok());
  EXPECT_FALSE(c.node(1).quiescable_as_leader({}));
  c.stabilize();
  EXPECT_TRUE(c.node(1).quiescable_as_leader({}));
  c.isolate(NodeId(2));
  ASSERT_TRUE(c.node(1).transfer_leader(NodeId(2)).is_ok());
  EXPECT_FALSE(c.node(1).quiescable_as_leader({}));
}

TEST(RaftQuiesce, FollowerWithUncommittedTailIsNotQuiescable) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.stabilize();
  // 2 gets the append but not the commit index that follows.
  c.cut(NodeId(1), NodeId(3));
  ASSERT_TRUE(c.node(1).propose(payload("y")).has_value());
  ASSERT_TRUE(c.process_ready(NodeId(1)));
  c.deliver_queued();  // append to 2
  ASSERT_TRUE(c.process_ready(NodeId(2)));
  EXPECT_EQ(last_index(c, 2), last_index(c, 1));
  EXPECT_FALSE(c.node(2).quiescable_as_follower(NodeId(1), term_of(c, 1), last_index(c, 1)));
  c.stabilize();  // the leader commits and tells 2
  EXPECT_TRUE(c.node(2).quiescable_as_follower(NodeId(1), term_of(c, 1), last_index(c, 1)));
}


// RawNode::unquiesce (tests/chaos/FINDINGS.md F2). A follower's election timer counts ticks;
// a host that stops ticking it while quiesced and resumes later must not leave it with the
// time it had counted before: it restarts the timer and stays in its lease (thesis §4.2.3) for
// a full minimum election timeout.
std::optional<Message> pre_vote_answer(Cluster& c, std::uint64_t voter) {
  for (const Message& m : c.queue()) {
    if (m.type == MessageType::kPreVoteResponse && m.from == NodeId(voter)) return m;
  }
  return std::nullopt;
}

TEST(RaftQuiesce, UnquiescedFollowerRestartsItsElectionTimerAndKeepsItsLease) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.stabilize();
  const Term term = term_of(c, 1);
  const std::uint32_t election = Config{}.election_ticks;
  // Follower 2 counted election - 1 ticks without its leader before it quiesced.
  c.tick(NodeId(2), election - 1);
  c.node(2).unquiesce();
  c.tick(NodeId(2), election - 1);
  ASSERT_EQ(c.node(2).status().soft_state.role, Role::kFollower) << "campaigned after waking";
  // Node 3 pre-votes: 2 heard from its leader within the minimum election timeout (counted
  // from its wake-up): it ignores the request (no answer), as does the leader.
  c.node(3).campaign();
  ASSERT_TRUE(c.process_ready(NodeId(3)));
  c.deliver_queued();
  c.process_ready(NodeId(2));
  auto answer = pre_vote_answer(c, 2);
  EXPECT_FALSE(answer.has_value() && !answer->reject) << "granted a PreVote within its lease";
  c.stabilize();
  EXPECT_EQ(term_of(c, 2), term);
  EXPECT_EQ(c.node(2).status().soft_state.leader, NodeId(1));
}

// The chaos mechanism itself, with ticks standing for the host: leader 1 and follower 2
// quiesced (not ticked), 3 cut off and leaderless. The link 3-2 heals first; 3's PreVote wakes
// 2. If only 2 resumes ticking, 1 sends nothing, 2's timer runs out and it is elected with 3's
// vote: one term more although 1 never failed. If the host wakes 1 too (node_quiesce.cc: the
// woken follower asks its leader's broker), 1's heartbeats keep 2 in its lease.
Term partial_heal(bool wake_leader) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.stabilize();
  c.isolate(NodeId(3));
  const std::uint32_t election = Config{}.election_ticks;
  c.tick(NodeId(3), 2 * election);  // 3 times out and pre-votes into the void
  c.stabilize();
  c.heal();
  c.cut(NodeId(1), NodeId(3));
  // 3's next PreVote reaches 2, which ignores it (in lease) and wakes.
  c.tick(NodeId(3), 2 * election);
  c.stabilize();
  c.node(2).unquiesce();
  if (wake_leader) c.node(1).unquiesce();
  for (std::uint32_t i = 0; i < 4 * election; ++i) {
    c.tick(NodeId(2));
    c.tick(NodeId(3));
    if (wake_leader) c.tick(NodeId(1));
    c.stabilize();
  }
  return term_of(c, 2);
}

TEST(RaftQuiesce, FollowerWokenWithoutItsLeaderDeposesIt) {
  EXPECT_GT(partial_heal(/*wake_leader=*/false), Term(1));
}

TEST(RaftQuiesce, FollowerWokenWithItsLeaderKeepsIt) {
  EXPECT_EQ(partial_heal(/*wake_leader=*/true), Term(1));
}

}  // namespace
}  // namespace mq::raft
