// Abstention of a replica whose log lost entries it may have acknowledged
// (RawNode::set_abstain_until, abstain.cc; docs/cluster.md "Replica repair").
#include <gtest/gtest.h>

#include <algorithm>

#include "raft/raw_node.h"
#include "raft/testing/cluster.h"

namespace mq::raft {
namespace {

using testing::Cluster;

SharedBuffer payload(std::string_view text) { return SharedBuffer(text); }

Message vote_request(MessageType type, std::uint64_t from, std::uint64_t to, Term term,
                     LogIndex index, Term log_term) {
  Message m;
  m.type = type;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = term;
  m.index = index;
  m.log_term = log_term;
  return m;
}

Role role(Cluster& c, std::uint64_t id) { return c.node(id).status().soft_state.role; }
LogIndex last(Cluster& c, std::uint64_t id) { return c.node(id).status().last_index; }

// The answer `id` sends to a (Pre)Vote request: processes its Ready and returns the response.
std::optional<Message> answer(Cluster& c, std::uint64_t id, MessageType response_type) {
  c.process_ready(NodeId(id));
  std::optional<Message> out;
  for (Message& m : c.take_messages()) {
    if (m.type == response_type) out = m;
  }
  return out;
}

// Replaces `id`'s log by its prefix up to `keep` (what a cut at a damaged entry leaves),
// keeping term and vote, and restarts it.
void cut_log(Cluster& c, std::uint64_t id, LogIndex keep) {
  const MemoryStorage& old = c.storage(id);
  MemoryStorage cut(old.conf_state());
  std::vector<Entry> kept;
  for (const Entry& e : old.all_entries()) {
    if (e.index <= keep) kept.push_back(e);
  }
  ASSERT_TRUE(cut.append(kept).is_ok());
  HardState hs = old.hard_state();
  hs.commit = std::min(hs.commit, keep);
  cut.set_hard_state(hs);
  c.replace_storage(NodeId(id), cut);
}

bool holds(Cluster& c, std::uint64_t id, std::string_view text) {
  for (const Entry& e : c.storage(id).all_entries()) {
    if (e.payload == SharedBuffer(text)) return true;
  }
  return false;
}

TEST(RaftAbstain, RefusesPreVoteAndVoteWhileBelowTheBound) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(payload("a")).has_value());
  c.stabilize();
  const LogIndex held = last(c, 3);
  const Term term = c.node(3).status().hard_state.term;
  // Node 3 lost its last entry and abstains until it holds `held` again.
  cut_log(c, 3, held - 1);
  c.node(3).set_abstain_until(held);
  EXPECT_EQ(c.node(3).abstain_until(), held);

  // A candidate with a log even longer than node 3's: refused all the same.
  ASSERT_TRUE(c.node(3).step(vote_request(MessageType::kPreVote, 2, 3, term + 1, held + 5, term))
                  .is_ok());
  auto pre = answer(c, 3, MessageType::kPreVoteResponse);
  ASSERT_TRUE(pre.has_value());
  EXPECT_TRUE(pre->reject);
  ASSERT_TRUE(c.node(3).step(vote_request(MessageType::kVote, 2, 3, term + 1, held + 5, term))
                  .is_ok());
  auto vote = answer(c, 3, MessageType::kVoteResponse);
  ASSERT_TRUE(vote.has_value());
  EXPECT_TRUE(vote->reject);
  EXPECT_EQ(c.node(3).status().hard_state.vote, kNoNode);
}

TEST(RaftAbstain, NeverCampaignsThenResumesAfterCatchingUp) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(payload("a")).has_value());
  c.stabilize();
  const LogIndex held = last(c, 3);
  cut_log(c, 3, held - 1);
  c.node(3).set_abstain_until(held);

  // Isolated, it times out again and again but never (pre-)campaigns.
  c.isolate(NodeId(3));
  for (int i = 0; i < 200; ++i) {
    c.tick(NodeId(3));
    c.stabilize();
  }
  c.node(3).campaign();  // an explicit campaign (the host's fast failover) too
  c.stabilize();
  EXPECT_EQ(role(c, 3), Role::kFollower);
  EXPECT_EQ(c.node(3).status().hard_state.term, c.node(1).status().hard_state.term);

  // Back in touch: the next write shows the leader the gap (node 3 rejects it), the leader
  // repairs its log (§5.3, from the next heartbeat round on), node 3 acknowledges like any
  // follower, and once it holds `held` again the abstention is over.
  c.heal();
  ASSERT_TRUE(c.node(1).propose(payload("b")).has_value());
  c.stabilize();
  for (int i = 0; i < 50 && c.node(3).abstain_until() != LogIndex(0); ++i) {
    c.tick_all(1);
    c.stabilize();
  }
  EXPECT_EQ(c.node(3).abstain_until(), LogIndex(0));
  EXPECT_GE(last(c, 3), held);
  EXPECT_TRUE(holds(c, 3, "a"));
  EXPECT_TRUE(holds(c, 3, "b"));
  EXPECT_EQ(c.node(1).status().progress.at(NodeId(3)).match, last(c, 1));

  // And it campaigns and wins again (a leadership transfer: TimeoutNow makes it campaign).
  ASSERT_TRUE(c.node(1).transfer_leader(NodeId(3)).is_ok());
  c.stabilize();
  EXPECT_EQ(c.leader(), NodeId(3));
}

// The unsafe case the abstention prevents. Node 2 is cut off; node 1 (leader) commits "x"
// with node 3's acknowledgement. Node 3 then loses "x" (a damaged tail cut at restart) and
// node 1 goes away. Node 2, which never had "x", campaigns.
//  - Without abstention node 3's log looks like node 2's, so it votes for node 2, which wins
//    without the committed "x" (Leader Completeness broken, §5.4).
//  - With abstention nobody wins until node 1 is back; "x" survives and node 3 catches up.
void run_lost_acknowledgement(Cluster& c, bool abstain) {
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(payload("a")).has_value());
  c.stabilize();
  c.isolate(NodeId(2));
  auto x = c.node(1).propose(payload("x"));
  ASSERT_TRUE(x.has_value());
  c.stabilize();
  ASSERT_GE(c.node(1).status().hard_state.commit, *x) << "x committed by nodes 1 and 3";
  ASSERT_TRUE(holds(c, 3, "x"));
  const LogIndex held = last(c, 3);
  cut_log(c, 3, *x - 1);
  if (abstain) c.node(3).set_abstain_until(held);
  c.heal();
  c.isolate(NodeId(1));
  c.elect(NodeId(2));
  for (int i = 0; i < 100; ++i) {
    c.tick(NodeId(2));
    c.tick(NodeId(3));
    c.stabilize();
  }
}

TEST(RaftAbstain, WithoutAbstentionALostAcknowledgementElectsALeaderMissingACommittedEntry) {
  // The demonstration that the scenario is real (so the next test can fail).
  Cluster c(3);
  run_lost_acknowledgement(c, /*abstain=*/false);
  ASSERT_EQ(role(c, 2), Role::kLeader);
  EXPECT_FALSE(holds(c, 2, "x"));
}

TEST(RaftAbstain, AbstentionKeepsACommittedEntryFromBeingLost) {
  Cluster c(3);
  run_lost_acknowledgement(c, /*abstain=*/true);
  EXPECT_NE(role(c, 2), Role::kLeader);
  EXPECT_NE(role(c, 3), Role::kLeader);
  EXPECT_FALSE(holds(c, 3, "x"));
  // Node 1 comes back: it alone can win (its log holds "x"), node 3 catches up (after the
  // next write shows the gap) and stops abstaining, and every node holds "x".
  c.heal();
  for (int i = 0; i < 200 && !c.leader().has_value(); ++i) {
    c.tick_all(1);
    c.stabilize();
  }
  ASSERT_TRUE(c.leader().has_value());
  ASSERT_TRUE(c.node(*c.leader()).propose(payload("y")).has_value());
  c.stabilize();
  for (int i = 0; i < 200 && !holds(c, 3, "x"); ++i) {
    c.tick_all(1);
    c.stabilize();
  }
  ASSERT_TRUE(c.leader().has_value());
  EXPECT_EQ(*c.leader(), NodeId(1));
  for (std::uint64_t id : {1, 2, 3}) EXPECT_TRUE(holds(c, id, "x")) << "node " << id;
  EXPECT_EQ(c.node(3).abstain_until(), LogIndex(0));
}

TEST(RaftAbstain, IgnoresTimeoutNowUntilClearedByZero) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.node(2).set_abstain_until(LogIndex(1000));
  EXPECT_EQ(c.node(2).abstain_until(), LogIndex(1000));
  // A leadership transfer to an abstaining node goes nowhere (it does not campaign).
  ASSERT_TRUE(c.node(1).transfer_leader(NodeId(2)).is_ok());
  c.stabilize();
  EXPECT_EQ(c.leader(), NodeId(1));
  EXPECT_NE(role(c, 2), Role::kCandidate);
  for (int i = 0; i < 30; ++i) {  // the transfer times out; node 1 stays leader
    c.tick_all(1);
    c.stabilize();
  }
  EXPECT_EQ(c.leader(), NodeId(1));
  EXPECT_EQ(c.node(1).status().lead_transferee, kNoNode);
  // Cleared by the host: the same transfer now succeeds.
  c.node(2).set_abstain_until(LogIndex(0));
  EXPECT_EQ(c.node(2).abstain_until(), LogIndex(0));
  ASSERT_TRUE(c.node(1).transfer_leader(NodeId(2)).is_ok());
  c.stabilize();
  EXPECT_EQ(c.leader(), NodeId(2));
}

}  // namespace
}  // namespace mq::raft
