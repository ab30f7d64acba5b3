// Bad input never crashes (random garbage messages, stale terms, unknown senders,
// out-of-range indexes), duplicated/reordered/lost delivery keeps the replicas consistent,
// and each Bug knob switches on its broken behaviour (for the simulator's mutation check).
#include <gtest/gtest.h>

#include <algorithm>

#include "base/prng.h"
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

void run(Cluster& c, int ticks) {
  for (int i = 0; i < ticks; ++i) {
    c.tick_all(1);
    c.stabilize();
  }
}

Message random_message(Prng& prng, NodeId to, Term near_term) {
  Message m;
  m.type = static_cast<MessageType>(prng.uniform(12));
  m.from = NodeId(prng.uniform(6));
  m.to = prng.chance(19, 20) ? to : NodeId(prng.uniform(6));
  const std::uint64_t t = near_term.value();
  m.term = Term(prng.chance(1, 50) ? prng.next() : t + prng.uniform(3) - std::min<std::uint64_t>(t, 1));
  m.index = LogIndex(prng.chance(1, 50) ? prng.next() : prng.uniform(30));
  m.log_term = Term(prng.uniform(t + 2));
  m.commit = LogIndex(prng.chance(1, 50) ? prng.next() : prng.uniform(30));
  m.reject = prng.chance(1, 3);
  m.reject_hint = LogIndex(prng.uniform(30));
  m.context = prng.uniform(4);
  const std::uint64_t n = prng.uniform(4);
  const bool contiguous = prng.chance(3, 4);
  for (std::uint64_t i = 0; i < n; ++i) {
    Entry e;
    e.index = contiguous ? m.index + (i + 1) : LogIndex(prng.uniform(30));
    e.term = contiguous ? std::max(m.log_term, Term(prng.uniform(t + 1))) : Term(prng.uniform(9));
    e.type = static_cast<EntryType>(prng.uniform(4));
    e.payload = SharedBuffer(std::string(prng.uniform(5), 'g'));
    m.entries.push_back(e);
  }
  if (m.type == MessageType::kSnapshot && prng.chance(3, 4)) {
    Snapshot s;
    s.meta.index = LogIndex(prng.uniform(40));
    s.meta.term = Term(prng.uniform(t + 1));
    for (std::uint64_t id = 1; id <= 3; ++id) {
      if (prng.chance(2, 3)) s.meta.conf_state.voters.push_back(NodeId(id));
    }
    if (prng.chance(1, 5)) s.meta.conf_state.learners.push_back(NodeId(prng.uniform(4)));
    m.snapshot = s;
  }
  return m;
}

TEST(RaftRobustness, RandomGarbageNeverCrashes) {
  // Invariants are checked after every call (check_invariants on in the test cluster).
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    Prng prng(seed);
    Cluster c(3, [seed](Config& cfg) { cfg.random_seed = seed; });
    std::size_t errors = 0;
    for (int round = 0; round < 300; ++round) {
      const NodeId target(1 + prng.uniform(3));
      const Term t = c.node(target).status().hard_state.term;
      Status s = c.node(target).step(random_message(prng, target, t));
      errors += s.is_ok() ? 0 : 1;
      if (prng.chance(1, 3)) c.tick_all(1);
      if (prng.chance(1, 4)) {
        auto leader = c.leader();
        if (leader) (void)c.node(*leader).propose(SharedBuffer(std::string_view("p")));
      }
      c.stabilize();
    }
    EXPECT_GT(errors, 0u);  // malformed messages were reported, not swallowed silently
  }
}

TEST(RaftRobustness, MalformedMessagesReported) {
  Cluster c(3);
  EXPECT_EQ(c.node(1).step(msg(MessageType::kAppend, 2, 3, 1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(1).step(msg(MessageType::kAppend, 1, 1, 1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(1).step(msg(MessageType::kAppend, 0, 1, 1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(1).step(msg(MessageType::kAppend, 2, 1, 0)).code(), ErrorCode::kInvalidArgument);
  Message gap = msg(MessageType::kAppend, 2, 1, 1);
  gap.entries.push_back(Entry{Term(1), LogIndex(5), EntryType::kNormal, {}});
  EXPECT_EQ(c.node(1).step(gap).code(), ErrorCode::kInvalidArgument);
  Message future = msg(MessageType::kAppend, 2, 1, 1);
  future.entries.push_back(Entry{Term(2), LogIndex(1), EntryType::kNormal, {}});
  EXPECT_EQ(c.node(1).step(future).code(), ErrorCode::kInvalidArgument);
  Message huge = msg(MessageType::kHeartbeat, 2, 1, 1);
  huge.commit = LogIndex::max();
  EXPECT_EQ(c.node(1).step(huge).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(1).step(msg(MessageType::kVote, 2, 1, ~0ull)).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(1).step(msg(MessageType::kSnapshot, 2, 1, 1)).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.node(1).status().hard_state.term, Term(0));  // nothing took effect
}

TEST(RaftRobustness, UnknownSendersAndOutOfRangeAcksIgnored) {
  Cluster c(3);
  c.elect(NodeId(1));
  const NodeStatus before = c.node(1).status();
  Message ack = msg(MessageType::kAppendResponse, 9, 1, 1);
  ack.index = LogIndex(1);
  ASSERT_TRUE(c.node(1).step(ack).is_ok());
  Message beyond = msg(MessageType::kAppendResponse, 2, 1, 1);
  beyond.index = LogIndex(1000);  // acks entries that do not exist
  ASSERT_TRUE(c.node(1).step(beyond).is_ok());
  Message reject = msg(MessageType::kAppendResponse, 2, 1, 1);
  reject.reject = true;
  reject.index = LogIndex(0);  // stale rejection
  ASSERT_TRUE(c.node(1).step(reject).is_ok());
  ASSERT_TRUE(c.node(1).step(msg(MessageType::kHeartbeatResponse, 9, 1, 1)).is_ok());
  ASSERT_TRUE(c.node(1).step(msg(MessageType::kReadIndex, 9, 1, 1)).is_ok());
  const NodeStatus after = c.node(1).status();
  EXPECT_EQ(after.hard_state, before.hard_state);
  EXPECT_EQ(after.progress.at(NodeId(2)).match, before.progress.at(NodeId(2)).match);
  EXPECT_EQ(after.soft_state.role, Role::kLeader);
}

TEST(RaftRobustness, StaleTermMessagesIgnored) {
  Cluster c(3);
  c.elect(NodeId(1));
  run(c, 1);
  c.isolate(NodeId(1));
  run(c, 40);
  auto leader = c.leader();
  ASSERT_TRUE(leader.has_value() && *leader != NodeId(1));
  const NodeId follower = *leader == NodeId(2) ? NodeId(3) : NodeId(2);
  const NodeStatus before = c.node(follower).status();
  for (MessageType type : {MessageType::kVoteResponse, MessageType::kHeartbeatResponse,
                           MessageType::kReadIndexResponse, MessageType::kTimeoutNow,
                           MessageType::kVote}) {
    ASSERT_TRUE(c.node(follower).step(msg(type, 1, follower.value(), 1)).is_ok());
  }
  const NodeStatus after = c.node(follower).status();
  EXPECT_EQ(after.hard_state, before.hard_state);
  EXPECT_EQ(after.soft_state, before.soft_state);
}

// Replicas stay consistent (applied sequences are prefixes of each other) under message
// loss, duplication and reordering, and converge once delivery is reliable again.
TEST(RaftRobustness, DuplicateReorderDropKeepsReplicasConsistent) {
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    Prng prng(seed * 7919);
    Cluster c(3, [seed](Config& cfg) { cfg.random_seed = seed; });
    std::uint64_t proposed = 0;
    for (int step = 0; step < 400; ++step) {
      for (NodeId id : c.ids()) c.process_ready(id);
      std::vector<Message> msgs = c.take_messages();
      std::vector<Message> chaos;
      for (Message& m : msgs) {
        if (prng.chance(1, 5)) continue;  // lost
        chaos.push_back(m);
        if (prng.chance(1, 6)) chaos.push_back(m);  // duplicated
      }
      for (std::size_t i = chaos.size(); i > 1; --i) {  // reordered (Fisher-Yates)
        std::swap(chaos[i - 1], chaos[prng.uniform(i)]);
      }
      for (Message& m : chaos) c.queue().push_back(std::move(m));
      c.deliver_queued();
      if (prng.chance(1, 2)) c.tick_all(1);
      if (auto leader = c.leader(); leader && prng.chance(1, 2)) {
        if (c.node(*leader).propose(SharedBuffer("v" + std::to_string(proposed))).has_value()) {
          ++proposed;
        }
      }
    }
    run(c, 30);
    const auto& reference = c.test_node(1).applied;
    for (NodeId id : c.ids()) {
      const auto& applied = c.test_node(id.value()).applied;
      EXPECT_EQ(applied.size(), reference.size()) << "seed " << seed << " node " << id;
      const std::size_t n = std::min(applied.size(), reference.size());
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(applied[i], reference[i]) << "seed " << seed << " node " << id << " at " << i;
      }
    }
    EXPECT_GT(reference.size(), 5u) << seed;
  }
}

// Storage read errors (kIoError from term()/entries()) may slow the group down but never
// break safety: nobody votes or commits on a guess.
TEST(RaftRobustness, StorageReadFaultsAreSafe) {
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    Prng prng(seed);
    Cluster c(3, [seed](Config& cfg) { cfg.random_seed = seed; });
    for (NodeId id : c.ids()) c.storage(id.value()).set_read_faults(seed * 31 + id.value(), 200000);
    for (int step = 0; step < 300; ++step) {
      if (prng.chance(1, 2)) c.tick_all(1);
      if (auto leader = c.leader(); leader && prng.chance(1, 2)) {
        (void)c.node(*leader).propose(SharedBuffer(std::string_view("f")));
      }
      for (NodeId id : c.ids()) c.process_ready(id);
      for (Message& m : c.take_messages()) {
        if (prng.chance(1, 10)) continue;
        c.queue().push_back(std::move(m));
      }
      c.deliver_queued();
      // Applied sequences are always prefixes of one another.
      const auto& a = c.test_node(1).applied;
      for (NodeId id : c.ids()) {
        const auto& b = c.test_node(id.value()).applied;
        const std::size_t n = std::min(a.size(), b.size());
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(a[i], b[i]) << seed << " " << id;
      }
    }
    for (NodeId id : c.ids()) c.storage(id.value()).set_read_faults(0, 0);
    run(c, 40);
    EXPECT_EQ(c.test_node(1).applied.size(), c.test_node(2).applied.size()) << seed;
    EXPECT_EQ(c.test_node(1).applied.size(), c.test_node(3).applied.size()) << seed;
    EXPECT_GT(c.test_node(1).applied.size(), 3u) << seed;
  }
}

// ---- Bug knobs: each must produce its broken behaviour ----

TEST(RaftBugKnobs, VoteWithoutLogCheck) {
  for (bool bug : {false, true}) {
    Cluster c(3, [bug](Config& cfg) {
      cfg.pre_vote = false;
      if (bug) cfg.bugs = static_cast<std::uint32_t>(Bug::kVoteWithoutLogCheck);
    });
    c.elect(NodeId(1));
    ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("x"))).has_value());
    c.stabilize();
    c.isolate(NodeId(1));
    c.tick(NodeId(2), 30);  // lease expired
    Message vote = msg(MessageType::kVote, 3, 2, 5);
    vote.index = LogIndex(1);  // behind node 2's log (last index 2)
    vote.log_term = Term(1);
    ASSERT_TRUE(c.node(2).step(vote).is_ok());
    EXPECT_EQ(c.node(2).status().hard_state.vote, bug ? NodeId(3) : kNoNode) << bug;
  }
}

TEST(RaftBugKnobs, CommitPreviousTermByCount) {
  for (bool bug : {false, true}) {
    Cluster c(3, [bug](Config& cfg) {
      cfg.pre_vote = false;
      if (bug) cfg.bugs = static_cast<std::uint32_t>(Bug::kCommitPreviousTermByCount);
    });
    MemoryStorage s(ConfState{{NodeId(1), NodeId(2), NodeId(3)}, {}, {}, {}, false});
    ASSERT_TRUE(s.append({Entry{Term(1), LogIndex(1), EntryType::kNormal, {}},
                          Entry{Term(2), LogIndex(2), EntryType::kNormal, {}}})
                    .is_ok());
    s.set_hard_state(HardState{Term(2), kNoNode, LogIndex(0)});
    c.replace_storage(NodeId(1), s);
    c.node(1).campaign();
    c.process_ready(NodeId(1));
    ASSERT_TRUE(c.node(1).step(msg(MessageType::kVoteResponse, 2, 1, 3)).is_ok());
    c.process_ready(NodeId(1));
    Message ack = msg(MessageType::kAppendResponse, 2, 1, 3);
    ack.index = LogIndex(2);
    ASSERT_TRUE(c.node(1).step(ack).is_ok());
    EXPECT_EQ(c.node(1).status().hard_state.commit, bug ? LogIndex(2) : LogIndex(0)) << bug;
  }
}

TEST(RaftBugKnobs, VoteBeforePersist) {
  for (bool bug : {false, true}) {
    Cluster c(3, [bug](Config& cfg) {
      if (bug) cfg.bugs = static_cast<std::uint32_t>(Bug::kVoteBeforePersist);
    });
    ASSERT_TRUE(c.node(1).step(msg(MessageType::kVote, 2, 1, 1)).is_ok());
    Ready rd = c.node(1).ready();
    EXPECT_EQ(rd.messages.size(), bug ? 1u : 0u);
    EXPECT_EQ(rd.messages_after_persist.size(), bug ? 0u : 1u);
    c.handle_ready(NodeId(1), rd);
  }
}

TEST(RaftBugKnobs, NoCheckQuorumStepDown) {
  for (bool bug : {false, true}) {
    Cluster c(3, [bug](Config& cfg) {
      cfg.read_only = ReadOnlyOption::kLeaseBased;
      if (bug) cfg.bugs = static_cast<std::uint32_t>(Bug::kNoCheckQuorumStepDown);
    });
    c.elect(NodeId(1));
    c.isolate(NodeId(1));
    for (int i = 0; i < 30; ++i) {
      c.tick(NodeId(1));
      c.stabilize();
    }
    EXPECT_EQ(c.node(1).status().soft_state.role, bug ? Role::kLeader : Role::kFollower);
    (void)c.node(1).read_index(1);
    c.stabilize();
    EXPECT_EQ(c.test_node(1).read_states.size(), bug ? 1u : 0u);  // stale lease read
  }
}

TEST(RaftBugKnobs, ReadWithoutLeadershipCheck) {
  for (bool bug : {false, true}) {
    Cluster c(3, [bug](Config& cfg) {
      if (bug) cfg.bugs = static_cast<std::uint32_t>(Bug::kReadWithoutLeadershipCheck);
    });
    c.elect(NodeId(1));
    c.isolate(NodeId(1));
    ASSERT_TRUE(c.node(1).read_index(1).is_ok());
    c.stabilize();
    EXPECT_EQ(c.test_node(1).read_states.size(), bug ? 1u : 0u);
  }
}

TEST(RaftBugKnobs, AcceptStaleLeaderAppend) {
  for (bool bug : {false, true}) {
    Cluster c(3, [bug](Config& cfg) {
      if (bug) cfg.bugs = static_cast<std::uint32_t>(Bug::kAcceptStaleLeaderAppend);
    });
    ASSERT_TRUE(c.node(1).step(msg(MessageType::kHeartbeat, 3, 1, 3)).is_ok());
    c.process_ready(NodeId(1));
    Message stale = msg(MessageType::kAppend, 2, 1, 2);
    stale.entries.push_back(Entry{Term(2), LogIndex(1), EntryType::kNormal, {}});
    ASSERT_TRUE(c.node(1).step(stale).is_ok());
    EXPECT_EQ(c.node(1).status().last_index, bug ? LogIndex(1) : LogIndex(0)) << bug;
  }
}

TEST(RaftBugKnobs, LeaderCountsSelfBeforePersist) {
  for (bool bug : {false, true}) {
    Cluster c(1, [bug](Config& cfg) {
      if (bug) cfg.bugs = static_cast<std::uint32_t>(Bug::kLeaderCountsSelfBeforePersist);
    });
    c.elect(NodeId(1));
    ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("x"))).has_value());
    // Not yet persisted: committed only with the bug.
    EXPECT_EQ(c.node(1).status().hard_state.commit, bug ? LogIndex(2) : LogIndex(1)) << bug;
  }
}

TEST(RaftBugKnobs, NoConflictTruncation) {
  for (bool bug : {false, true}) {
    Cluster c(3, [bug](Config& cfg) {
      if (bug) cfg.bugs = static_cast<std::uint32_t>(Bug::kNoConflictTruncation);
    });
    Message first = msg(MessageType::kAppend, 2, 1, 1);
    first.entries = {Entry{Term(1), LogIndex(1), EntryType::kNormal, {}},
                     Entry{Term(1), LogIndex(2), EntryType::kNormal, {}}};
    ASSERT_TRUE(c.node(1).step(first).is_ok());
    c.process_ready(NodeId(1));
    Message conflicting = msg(MessageType::kAppend, 3, 1, 2);
    conflicting.index = LogIndex(1);
    conflicting.log_term = Term(1);
    conflicting.entries = {Entry{Term(2), LogIndex(2), EntryType::kNormal, {}},
                           Entry{Term(2), LogIndex(3), EntryType::kNormal, {}}};
    ASSERT_TRUE(c.node(1).step(conflicting).is_ok());
    c.process_ready(NodeId(1));
    EXPECT_EQ(*c.storage(1).term(LogIndex(2)), bug ? Term(1) : Term(2)) << bug;
    EXPECT_EQ(c.storage(1).last_index(), LogIndex(3));
  }
}

}  // namespace
}  // namespace mq::raft
