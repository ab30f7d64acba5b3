// Each invariant of the checker fires on a hand-made violation and stays quiet on the
// corresponding correct history (a checker that cannot fail is a defect).
#include "sim/checker.h"

#include <gtest/gtest.h>

namespace mq::sim {
namespace {

raft::Entry entry(std::uint64_t index, std::uint64_t term, std::string_view payload) {
  raft::Entry e;
  e.index = LogIndex(index);
  e.term = Term(term);
  e.payload = SharedBuffer(payload);
  return e;
}

raft::ConfState voters3() {
  raft::ConfState conf;
  conf.voters = {NodeId(1), NodeId(2), NodeId(3)};
  return conf;
}

struct CheckerTest : ::testing::Test {
  CheckerTest() : d1(voters3()), d2(voters3()), d3(voters3()) {
    checker.on_conf_state(voters3());
    checker.register_disk(NodeId(1), &d1);
    checker.register_disk(NodeId(2), &d2);
    checker.register_disk(NodeId(3), &d3);
  }
  void persist(SimDisk& disk, std::vector<raft::Entry> entries, NodeId node) {
    PendingWrite w;
    w.entries = std::move(entries);
    const LogIndex first = w.entries.front().index;
    ASSERT_TRUE(disk.commit_write(w).is_ok());
    checker.on_durable_entries(node, disk, first);
  }
  Checker checker;
  SimDisk d1, d2, d3;
};

TEST_F(CheckerTest, ElectionSafety) {
  checker.on_leader(NodeId(1), Term(2));
  checker.on_leader(NodeId(1), Term(2));
  checker.on_leader(NodeId(2), Term(3));
  EXPECT_FALSE(checker.failed());
  checker.on_leader(NodeId(3), Term(3));
  EXPECT_EQ(checker.invariant(), "election-safety");
}

TEST_F(CheckerTest, LogMatching) {
  persist(d1, {entry(1, 1, "a"), entry(2, 2, "b")}, NodeId(1));
  persist(d2, {entry(1, 1, "a"), entry(2, 2, "b")}, NodeId(2));
  EXPECT_FALSE(checker.failed());
  // Same (index 2, term 2) on top of a different entry 1.
  persist(d3, {entry(1, 1, "z"), entry(2, 2, "b")}, NodeId(3));
  EXPECT_EQ(checker.invariant(), "log-matching");
}

TEST_F(CheckerTest, StateMachineSafetyAndAckedWrites) {
  persist(d1, {entry(1, 1, "a")}, NodeId(1));
  persist(d2, {entry(1, 1, "a")}, NodeId(2));
  checker.on_apply(NodeId(1), Term(1), StateDigest{}, entry(1, 1, "a"));
  checker.on_write_acked(7, LogIndex(1), entry(1, 1, "a"));
  checker.on_apply(NodeId(2), Term(1), StateDigest{}, entry(1, 1, "a"));
  EXPECT_FALSE(checker.failed());
  checker.on_apply(NodeId(3), Term(2), StateDigest{}, entry(1, 2, "other"));
  EXPECT_EQ(checker.invariant(), "acknowledged-write-lost");
}

TEST_F(CheckerTest, ApplyGapIsAViolation) {
  persist(d1, {entry(1, 1, "a"), entry(2, 1, "b")}, NodeId(1));
  persist(d2, {entry(1, 1, "a"), entry(2, 1, "b")}, NodeId(2));
  checker.on_apply(NodeId(1), Term(1), StateDigest{}, entry(2, 1, "b"));
  EXPECT_EQ(checker.invariant(), "state-machine-safety");
}

TEST_F(CheckerTest, CommitNeedsADurableQuorum) {
  persist(d1, {entry(1, 1, "a")}, NodeId(1));
  checker.on_apply(NodeId(1), Term(1), StateDigest{}, entry(1, 1, "a"));
  EXPECT_EQ(checker.invariant(), "commit-durability");
}

TEST_F(CheckerTest, LeaderCompleteness) {
  persist(d1, {entry(1, 1, "a")}, NodeId(1));
  persist(d2, {entry(1, 1, "a")}, NodeId(2));
  checker.on_apply(NodeId(1), Term(1), StateDigest{}, entry(1, 1, "a"));
  ASSERT_FALSE(checker.failed());
  checker.on_leader_log(NodeId(2), Term(2), d2);  // holds it
  EXPECT_FALSE(checker.failed());
  checker.on_leader_log(NodeId(3), Term(1), d3);  // same term as the commit: not required
  EXPECT_FALSE(checker.failed());
  checker.on_leader_log(NodeId(3), Term(3), d3);  // lacks it
  EXPECT_EQ(checker.invariant(), "leader-completeness");
}

TEST_F(CheckerTest, LinearizableReads) {
  persist(d1, {entry(1, 1, "a"), entry(2, 1, "b")}, NodeId(1));
  persist(d2, {entry(1, 1, "a"), entry(2, 1, "b")}, NodeId(2));
  StateDigest s0;
  checker.on_apply(NodeId(1), Term(1), s0, entry(1, 1, "a"));
  StateDigest s1 = apply_to_state(s0, entry(1, 1, "a"));
  checker.on_apply(NodeId(1), Term(1), s1, entry(2, 1, "b"));
  StateDigest s2 = apply_to_state(s1, entry(2, 1, "b"));
  checker.on_write_acked(1, LogIndex(2), entry(2, 1, "b"));
  checker.on_read_completed(NodeId(1), 1, LogIndex(2), LogIndex(2), s2);
  EXPECT_FALSE(checker.failed());
  // Served state does not match the committed prefix.
  StateDigest forged = s2;
  forged.digest ^= 1;
  Checker other = checker;
  other.on_read_completed(NodeId(1), 2, LogIndex(2), LogIndex(2), forged);
  EXPECT_EQ(other.invariant(), "linearizable-read");
  // Read index below an acknowledged write: stale.
  checker.on_read_completed(NodeId(2), 3, LogIndex(2), LogIndex(1), s1);
  EXPECT_EQ(checker.invariant(), "linearizable-read");
}

}  // namespace
}  // namespace mq::sim
