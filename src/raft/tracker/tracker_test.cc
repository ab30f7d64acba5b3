// Progress state machine and the Inflights window (etcd tracker/*_test.go ideas).
#include <gtest/gtest.h>

#include "raft/tracker/inflights.h"
#include "raft/tracker/progress.h"

namespace mq::raft::tracker {
namespace {

TEST(RaftInflights, BoundedByCount) {
  Inflights in(3, 1 << 20);
  in.add(LogIndex(1), 10);
  in.add(LogIndex(2), 10);
  EXPECT_FALSE(in.full());
  in.add(LogIndex(3), 10);
  EXPECT_TRUE(in.full());
  in.free_le(LogIndex(1));
  EXPECT_FALSE(in.full());
  EXPECT_EQ(in.count(), 2u);
  EXPECT_EQ(in.bytes(), 20u);
}

TEST(RaftInflights, BoundedByBytes) {
  Inflights in(100, 250);
  in.add(LogIndex(1), 100);
  in.add(LogIndex(2), 100);
  EXPECT_FALSE(in.full());
  in.add(LogIndex(3), 100);  // 300 >= 250
  EXPECT_TRUE(in.full());
  in.free_le(LogIndex(2));
  EXPECT_FALSE(in.full());
  EXPECT_EQ(in.bytes(), 100u);
}

TEST(RaftInflights, RingWrapsAround) {
  Inflights in(4, 1 << 20);
  std::uint64_t next = 1;
  for (int round = 0; round < 50; ++round) {
    while (!in.full()) in.add(LogIndex(next++), 1);
    EXPECT_EQ(in.count(), 4u);
    in.free_le(LogIndex(next - 3));  // frees two or so
    EXPECT_EQ(in.count(), 2u);
    EXPECT_EQ(in.bytes(), 2u);
  }
  in.free_le(LogIndex(next));
  EXPECT_EQ(in.count(), 0u);
  EXPECT_EQ(in.bytes(), 0u);
}

TEST(RaftInflights, FreeBeyondAllAndReset) {
  Inflights in(8, 1000);
  for (std::uint64_t i = 1; i <= 5; ++i) in.add(LogIndex(i * 2), 7);
  in.free_le(LogIndex(5));  // frees 2 and 4
  EXPECT_EQ(in.count(), 3u);
  in.free_le(LogIndex(0));
  EXPECT_EQ(in.count(), 3u);
  in.reset();
  EXPECT_EQ(in.count(), 0u);
  EXPECT_EQ(in.bytes(), 0u);
}

Progress make(LogIndex match, LogIndex next, ProgressState state) {
  Progress pr(4, 1 << 20);
  pr.match = match;
  pr.next = next;
  if (state == ProgressState::kReplicate) {
    pr.become_replicate();
    pr.next = next;
  }
  if (state == ProgressState::kSnapshot) pr.become_snapshot(LogIndex(10));
  return pr;
}

TEST(RaftProgress, MaybeUpdate) {
  Progress pr = make(LogIndex(3), LogIndex(5), ProgressState::kProbe);
  EXPECT_FALSE(pr.maybe_update(LogIndex(2)));  // stale
  EXPECT_EQ(pr.match, LogIndex(3));
  EXPECT_EQ(pr.next, LogIndex(5));
  EXPECT_TRUE(pr.maybe_update(LogIndex(6)));
  EXPECT_EQ(pr.match, LogIndex(6));
  EXPECT_EQ(pr.next, LogIndex(7));
}

TEST(RaftProgress, ProbePausesAfterOneAppend) {
  Progress pr = make(LogIndex(0), LogIndex(1), ProgressState::kProbe);
  EXPECT_FALSE(pr.is_paused());
  pr.update_on_entries_send(3, 30);
  EXPECT_TRUE(pr.is_paused());
  EXPECT_EQ(pr.next, LogIndex(1));  // probing does not advance next optimistically
  EXPECT_TRUE(pr.maybe_update(LogIndex(3)));
  EXPECT_FALSE(pr.is_paused());
}

TEST(RaftProgress, ReplicatePipelinesUntilWindowFull) {
  Progress pr = make(LogIndex(5), LogIndex(6), ProgressState::kReplicate);
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(pr.is_paused());
    pr.update_on_entries_send(2, 20);
  }
  EXPECT_EQ(pr.next, LogIndex(14));
  EXPECT_TRUE(pr.is_paused());
  pr.maybe_update(LogIndex(9));
  pr.inflights.free_le(LogIndex(9));
  EXPECT_FALSE(pr.is_paused());
}

TEST(RaftProgress, MaybeDecrToInReplicate) {
  Progress pr = make(LogIndex(5), LogIndex(10), ProgressState::kReplicate);
  EXPECT_FALSE(pr.maybe_decr_to(LogIndex(4), LogIndex(4)));  // rejected <= match: stale
  EXPECT_EQ(pr.next, LogIndex(10));
  EXPECT_TRUE(pr.maybe_decr_to(LogIndex(9), LogIndex(9)));
  EXPECT_EQ(pr.next, LogIndex(6));  // back to match + 1
}

TEST(RaftProgress, MaybeDecrToInProbeUsesHint) {
  Progress pr = make(LogIndex(0), LogIndex(10), ProgressState::kProbe);
  EXPECT_FALSE(pr.maybe_decr_to(LogIndex(5), LogIndex(2)));  // not the last probe: stale
  EXPECT_TRUE(pr.maybe_decr_to(LogIndex(9), LogIndex(2)));
  EXPECT_EQ(pr.next, LogIndex(3));
  pr.msg_app_flow_paused = true;
  EXPECT_TRUE(pr.maybe_decr_to(LogIndex(2), LogIndex(7)));  // hint above rejected is capped
  EXPECT_EQ(pr.next, LogIndex(2));
  EXPECT_FALSE(pr.msg_app_flow_paused);
  Progress low = make(LogIndex(4), LogIndex(6), ProgressState::kProbe);
  EXPECT_TRUE(low.maybe_decr_to(LogIndex(5), LogIndex(0)));
  EXPECT_EQ(low.next, LogIndex(5));  // never below match + 1
}

// A follower that lost acknowledged entries (a corrupted segment truncated by recovery) is
// repaired: match drops to what it still has, and the next probe (after the next heartbeat
// response, not at once) starts there. Before, next stayed above its log forever.
TEST(RaftProgress, ProbeRejectedAtOrBelowMatchForgetsTheLostEntries) {
  Progress pr = make(LogIndex(100), LogIndex(101), ProgressState::kProbe);
  pr.msg_app_flow_paused = true;
  EXPECT_FALSE(pr.maybe_decr_to(LogIndex(100), LogIndex(80)));  // its log now ends at 80
  EXPECT_EQ(pr.match, LogIndex(80));
  EXPECT_EQ(pr.next, LogIndex(81));
  EXPECT_TRUE(pr.msg_app_flow_paused);  // resumes on the next heartbeat response
  // A hint at or above the rejected index (a conflicting entry, not a shorter log).
  Progress conflict = make(LogIndex(50), LogIndex(51), ProgressState::kProbe);
  EXPECT_FALSE(conflict.maybe_decr_to(LogIndex(50), LogIndex(60)));
  EXPECT_EQ(conflict.match, LogIndex(49));
  EXPECT_EQ(conflict.next, LogIndex(50));
  // Replicate state still treats it as a reordered (stale) rejection.
  Progress rep = make(LogIndex(100), LogIndex(120), ProgressState::kReplicate);
  EXPECT_FALSE(rep.maybe_decr_to(LogIndex(100), LogIndex(80)));
  EXPECT_EQ(rep.match, LogIndex(100));
}

TEST(RaftProgress, SnapshotStateIsPausedAndProbesAfter) {
  Progress pr = make(LogIndex(2), LogIndex(3), ProgressState::kSnapshot);
  EXPECT_TRUE(pr.is_paused());
  EXPECT_EQ(pr.pending_snapshot, LogIndex(10));
  pr.become_probe();
  EXPECT_EQ(pr.state, ProgressState::kProbe);
  EXPECT_EQ(pr.next, LogIndex(11));  // resumes after the snapshot
  EXPECT_EQ(pr.pending_snapshot, LogIndex(0));
}

TEST(RaftProgress, DescribeIsStable) {
  Progress pr = make(LogIndex(5), LogIndex(6), ProgressState::kReplicate);
  pr.recent_active = true;
  EXPECT_EQ(pr.describe(), "StateReplicate match=5 next=6");
  pr.update_on_entries_send(1, 10);
  EXPECT_EQ(pr.describe(), "StateReplicate match=5 next=7 inflight=1");
}

TEST(RaftProgressTracker, QuorumActiveCountsSelf) {
  ProgressTracker trk(4, 1000);
  trk.config.voters.incoming = quorum::MajorityConfig({NodeId(1), NodeId(2), NodeId(3)});
  for (std::uint64_t id = 1; id <= 3; ++id) trk.progress.emplace(NodeId(id), trk.new_progress());
  EXPECT_FALSE(trk.quorum_active(NodeId(1)));
  trk.progress.at(NodeId(3)).recent_active = true;
  EXPECT_TRUE(trk.quorum_active(NodeId(1)));
  trk.progress.at(NodeId(1)).match = LogIndex(7);
  trk.progress.at(NodeId(2)).match = LogIndex(5);
  EXPECT_EQ(trk.committed(), LogIndex(5));
}

}  // namespace
}  // namespace mq::raft::tracker
