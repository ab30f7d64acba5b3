// RawNode::quiescable_as_leader / quiescable_as_follower (raw_node.h): when a host may stop
// ticking an idle group.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mq::raft
