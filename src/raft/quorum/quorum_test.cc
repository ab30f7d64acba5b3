// quorum math against naive references (etcd quorum/quick_test.go idea): thousands of
// random majority and joint configurations.
#include "raft/quorum/quorum.h"

#include <gtest/gtest.h>

#include "base/prng.h"

namespace mq::raft::quorum {
namespace {

// Naive: the largest v such that a majority of voters acked >= v.
LogIndex naive_committed(const std::vector<NodeId>& voters, const std::map<NodeId, LogIndex>& acked) {
  if (voters.empty()) return LogIndex::max();
  LogIndex best(0);
  for (NodeId candidate_voter : voters) {
    auto it = acked.find(candidate_voter);
    const LogIndex v = it == acked.end() ? LogIndex(0) : it->second;
    std::size_t count = 0;
    for (NodeId id : voters) {
      auto jt = acked.find(id);
      if ((jt == acked.end() ? LogIndex(0) : jt->second) >= v) ++count;
    }
    if (count > voters.size() / 2 && v > best) best = v;
  }
  return best;
}

VoteResult naive_vote(const std::vector<NodeId>& voters, const std::map<NodeId, bool>& votes) {
  if (voters.empty()) return VoteResult::kWon;
  std::size_t yes = 0, no = 0;
  for (NodeId id : voters) {
    auto it = votes.find(id);
    if (it == votes.end()) continue;
    (it->second ? yes : no)++;
  }
  const std::size_t half = voters.size() / 2;
  if (yes > half) return VoteResult::kWon;
  if (no > half || (voters.size() % 2 == 0 && no == half)) {
    return VoteResult::kLost;
  }
  return VoteResult::kPending;
}

std::vector<NodeId> random_voters(Prng& prng, std::size_t max_size) {
  std::vector<NodeId> ids;
  const std::size_t n = prng.uniform(max_size + 1);
  for (std::uint64_t id = 1; ids.size() < n; ++id) {
    if (prng.chance(2, 3)) ids.push_back(NodeId(id));
  }
  return ids;
}

TEST(RaftQuorum, MajorityCommittedIndexMatchesNaive) {
  Prng prng(1);
  for (int iter = 0; iter < 5000; ++iter) {
    auto voters = random_voters(prng, 9);
    std::map<NodeId, LogIndex> acked;
    for (NodeId id : voters) {
      if (prng.chance(4, 5)) acked[id] = LogIndex(prng.uniform(20));
    }
    MajorityConfig config(voters);
    EXPECT_EQ(config.committed_index(MapAckedIndexer(acked)), naive_committed(voters, acked))
        << config.describe();
  }
}

TEST(RaftQuorum, JointCommittedIndexIsMinOfHalves) {
  Prng prng(2);
  for (int iter = 0; iter < 5000; ++iter) {
    auto in = random_voters(prng, 7);
    auto out = random_voters(prng, 7);
    std::map<NodeId, LogIndex> acked;
    for (std::uint64_t id = 1; id <= 20; ++id) {
      if (prng.chance(4, 5)) acked[NodeId(id)] = LogIndex(prng.uniform(20));
    }
    JointConfig joint{MajorityConfig(in), MajorityConfig(out)};
    const LogIndex expected = std::min(naive_committed(in, acked), naive_committed(out, acked));
    EXPECT_EQ(joint.committed_index(MapAckedIndexer(acked)), expected) << joint.describe();
  }
}

TEST(RaftQuorum, MajorityVoteResultMatchesNaive) {
  Prng prng(3);
  for (int iter = 0; iter < 5000; ++iter) {
    auto voters = random_voters(prng, 9);
    std::map<NodeId, bool> votes;
    for (NodeId id : voters) {
      const std::uint64_t r = prng.uniform(3);
      if (r == 1) votes[id] = true;
      if (r == 2) votes[id] = false;
    }
    votes[NodeId(100)] = true;  // a non-voter's vote never counts
    MajorityConfig config(voters);
    EXPECT_EQ(config.vote_result(votes), naive_vote(voters, votes)) << config.describe();
  }
}

TEST(RaftQuorum, JointVoteResultNeedsBothHalves) {
  Prng prng(4);
  for (int iter = 0; iter < 5000; ++iter) {
    auto in = random_voters(prng, 7);
    auto out = random_voters(prng, 7);
    std::map<NodeId, bool> votes;
    for (std::uint64_t id = 1; id <= 20; ++id) {
      const std::uint64_t r = prng.uniform(3);
      if (r == 1) votes[NodeId(id)] = true;
      if (r == 2) votes[NodeId(id)] = false;
    }
    const VoteResult a = naive_vote(in, votes);
    const VoteResult b = naive_vote(out, votes);
    VoteResult expected = VoteResult::kPending;
    if (a == VoteResult::kLost || b == VoteResult::kLost) {
      expected = VoteResult::kLost;
    } else if (a == VoteResult::kWon && b == VoteResult::kWon) {
      expected = VoteResult::kWon;
    }
    JointConfig joint{MajorityConfig(in), MajorityConfig(out)};
    EXPECT_EQ(joint.vote_result(votes), expected) << joint.describe();
  }
}

TEST(RaftQuorum, Examples) {
  MajorityConfig three({NodeId(1), NodeId(2), NodeId(3)});
  EXPECT_EQ(three.describe(), "(1 2 3)");
  EXPECT_EQ(three.committed_index(MapAckedIndexer({{NodeId(1), LogIndex(5)},
                                                   {NodeId(2), LogIndex(3)}})),
            LogIndex(3));
  EXPECT_EQ(three.committed_index(MapAckedIndexer({{NodeId(1), LogIndex(5)}})), LogIndex(0));
  EXPECT_EQ(MajorityConfig().committed_index(MapAckedIndexer({})), LogIndex::max());
  EXPECT_EQ(three.vote_result({{NodeId(1), true}}), VoteResult::kPending);
  EXPECT_EQ(three.vote_result({{NodeId(1), true}, {NodeId(2), true}}), VoteResult::kWon);
  EXPECT_EQ(three.vote_result({{NodeId(1), false}, {NodeId(2), false}}), VoteResult::kLost);
  MajorityConfig four({NodeId(1), NodeId(2), NodeId(3), NodeId(4)});
  EXPECT_EQ(four.vote_result({{NodeId(1), true}, {NodeId(2), true}, {NodeId(3), false}}),
            VoteResult::kPending);
  EXPECT_EQ(four.vote_result({{NodeId(1), false}, {NodeId(2), false}}), VoteResult::kLost);
  JointConfig joint{three, MajorityConfig({NodeId(4), NodeId(5), NodeId(6)})};
  EXPECT_EQ(joint.describe(), "(1 2 3)&&(4 5 6)");
  EXPECT_EQ(joint.vote_result({{NodeId(1), true}, {NodeId(2), true}}), VoteResult::kPending);
}

}  // namespace
}  // namespace mq::raft::quorum
