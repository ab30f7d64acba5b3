// Replication details: batching (max_msg_bytes), flow control (inflight window by count and
// bytes), fast backtracking, snapshots (§7), ReadIndex and lease reads (thesis §6.4), the
// uncommitted-bytes limit.
#include <gtest/gtest.h>

#include "raft/raw_node.h"
#include "raft/testing/cluster.h"

namespace mq::raft {
namespace {

using testing::Cluster;

SharedBuffer bytes_of(std::size_t n, char fill = 'x') { return SharedBuffer(std::string(n, fill)); }

std::size_t count_to(const std::vector<Message>& msgs, MessageType type, std::uint64_t to) {
  std::size_t n = 0;
  for (const Message& m : msgs) n += (m.type == type && m.to == NodeId(to)) ? 1 : 0;
  return n;
}

void run(Cluster& c, int ticks) {
  for (int i = 0; i < ticks; ++i) {
    c.tick_all(1);
    c.stabilize();
  }
}

// ---- Batching and flow control ----

TEST(RaftReplication, MessagesBoundedByMaxMsgBytes) {
  const std::uint64_t entry = 100 + Entry::kOverheadBytes;
  Cluster c(3, [&](Config& cfg) { cfg.max_msg_bytes = 3 * entry; });
  c.elect(NodeId(1));
  c.isolate(NodeId(3));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.node(1).propose(bytes_of(100)).has_value());
  c.stabilize();
  c.heal();
  c.delivered().clear();
  run(c, 3);
  std::size_t appends = 0, entries = 0;
  for (const Message& m : c.delivered()) {
    if (m.type != MessageType::kAppend || m.to != NodeId(3)) continue;
    ++appends;
    entries += m.entries.size();
    EXPECT_LE(m.entries.size(), 3u);
  }
  EXPECT_GE(entries, 10u);
  EXPECT_GE(appends, 4u);
  EXPECT_EQ(c.node(3).status().last_index, LogIndex(11));
}

TEST(RaftReplication, InflightWindowBoundedByCount) {
  Cluster c(3, [](Config& cfg) { cfg.max_inflight_msgs = 2; });
  c.elect(NodeId(1));
  ASSERT_EQ(c.node(1).status().progress.at(NodeId(2)).state, ProgressState::kReplicate);
  c.drop_type(MessageType::kAppendResponse);  // no acks: the window never drains
  c.delivered().clear();
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
    c.stabilize();
  }
  EXPECT_EQ(count_to(c.delivered(), MessageType::kAppend, 2), 2u);
  EXPECT_EQ(c.node(1).status().progress.at(NodeId(2)).inflight_msgs, 2u);
  c.heal();
  run(c, 2);  // heartbeat responses restart the flow; everything arrives
  EXPECT_EQ(c.node(2).status().last_index, LogIndex(7));
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(7));
}

TEST(RaftReplication, InflightWindowBoundedByBytes) {
  Cluster c(3, [](Config& cfg) { cfg.max_inflight_bytes = 1000; });
  c.elect(NodeId(1));
  c.drop_type(MessageType::kAppendResponse);
  c.delivered().clear();
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(c.node(1).propose(bytes_of(400)).has_value());
    c.stabilize();
  }
  // 424 + 424 < 1000 <= 424 * 3: the third append fills the window.
  EXPECT_EQ(count_to(c.delivered(), MessageType::kAppend, 2), 3u);
  c.heal();
  run(c, 3);
  EXPECT_EQ(c.node(2).status().last_index, LogIndex(7));
}

TEST(RaftReplication, FastBacktrackingSkipsWholeTerms) {
  // Follower 3 holds 50 entries of terms the leader never had; one round trip per term,
  // not per entry.
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(1));
  // 1 is leader of term 1 alone: its proposals never commit.
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(c.node(1).propose(bytes_of(5)).has_value());
  c.stabilize();
  c.cut(NodeId(1), NodeId(2));
  c.cut(NodeId(1), NodeId(3));
  run(c, 40);  // 2 or 3 becomes leader of a later term
  auto leader = c.leader();
  ASSERT_TRUE(leader.has_value());
  ASSERT_NE(*leader, NodeId(1));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.node(leader->value()).propose(bytes_of(5)).has_value());
  c.stabilize();
  c.heal();
  c.delivered().clear();
  run(c, 5);
  std::size_t rejects = 0;
  for (const Message& m : c.delivered()) {
    if (m.type == MessageType::kAppendResponse && m.reject && m.from == NodeId(1)) ++rejects;
  }
  EXPECT_LE(rejects, 3u);
  EXPECT_EQ(c.node(1).status().last_index, c.node(leader->value()).status().last_index);
  EXPECT_EQ(c.storage(1).all_entries(), c.storage(leader->value()).all_entries());
}

TEST(RaftReplication, ReportUnreachableMovesToProbe) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_EQ(c.node(1).status().progress.at(NodeId(2)).state, ProgressState::kReplicate);
  c.node(1).report_unreachable(NodeId(2));
  EXPECT_EQ(c.node(1).status().progress.at(NodeId(2)).state, ProgressState::kProbe);
  c.node(1).report_unreachable(NodeId(99));  // unknown: ignored
}

// ---- Commit broadcast (Config::lazy_commit_broadcast) ----

LogIndex commit_of(Cluster& c, std::uint64_t id) { return c.node(id).status().hard_state.commit; }

std::size_t empty_appends_to(const std::vector<Message>& msgs, std::uint64_t to) {
  std::size_t n = 0;
  for (const Message& m : msgs) {
    n += (m.type == MessageType::kAppend && m.to == NodeId(to) && m.entries.empty()) ? 1 : 0;
  }
  return n;
}

void enable_lazy_commit(Config& cfg) {
  cfg.lazy_commit_broadcast = true;
  cfg.heartbeat_ticks = 3;  // heartbeats at the third tick only: the first tick's sends show
}

// Elects node 1 and ticks everyone `ticks` times (the election's own commit reaches the
// followers), then has the leader commit one entry; returns its index.
LogIndex elect_then_commit_one(Cluster& c, int ticks) {
  c.elect(NodeId(1));
  run(c, ticks);
  EXPECT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
  c.stabilize();
  return c.node(1).status().last_index;
}

TEST(RaftCommitBroadcast, EagerSendsAnEmptyAppendPerFollowerForEachCommit) {
  Cluster c(3, [](Config& cfg) { cfg.heartbeat_ticks = 3; });
  c.elect(NodeId(1));
  c.delivered().clear();
  ASSERT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
  c.stabilize();
  const LogIndex index = c.node(1).status().last_index;
  for (std::uint64_t f : {2, 3}) {
    EXPECT_EQ(count_to(c.delivered(), MessageType::kAppend, f), 2u) << f;  // entry, then commit
    EXPECT_EQ(empty_appends_to(c.delivered(), f), 1u) << f;
    EXPECT_EQ(count_to(c.delivered(), MessageType::kAppendResponse, 1), 4u);
    EXPECT_EQ(commit_of(c, f), index) << f;
  }
}

TEST(RaftCommitBroadcast, LazyCommitReachesFollowersAtTheNextTickWithOneEmptyAppend) {
  Cluster c(3, enable_lazy_commit);
  c.elect(NodeId(1));
  run(c, 3);  // the election's own commit has been told
  c.delivered().clear();
  ASSERT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
  c.stabilize();
  const LogIndex index = c.node(1).status().last_index;
  EXPECT_EQ(commit_of(c, 1), index);  // the leader commits (and applies) as before
  for (std::uint64_t f : {2, 3}) {
    EXPECT_EQ(count_to(c.delivered(), MessageType::kAppend, f), 1u) << f;  // the entry only
    EXPECT_EQ(empty_appends_to(c.delivered(), f), 0u) << f;
    EXPECT_LT(commit_of(c, f), index) << f;
  }
  EXPECT_EQ(count_to(c.delivered(), MessageType::kAppendResponse, 1), 2u);
  EXPECT_FALSE(c.node(1).quiescable_as_leader({}));  // the commit index is still owed
  c.delivered().clear();
  c.tick(NodeId(1), 1);  // not a heartbeat tick
  c.stabilize();
  for (std::uint64_t f : {2, 3}) {
    EXPECT_EQ(empty_appends_to(c.delivered(), f), 1u) << f;
    EXPECT_EQ(commit_of(c, f), index) << f;
  }
  // Told once: the following ticks send no more appends.
  c.delivered().clear();
  c.tick(NodeId(1), 1);
  c.stabilize();
  EXPECT_EQ(count_to(c.delivered(), MessageType::kAppend, 2), 0u);
  EXPECT_EQ(count_to(c.delivered(), MessageType::kAppend, 3), 0u);
}

TEST(RaftCommitBroadcast, LazyCommitRidesOnTheNextAppendWithEntries) {
  Cluster c(3, enable_lazy_commit);
  const LogIndex first = elect_then_commit_one(c, 3);
  c.delivered().clear();
  ASSERT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
  c.stabilize();
  // The second entry's append carried the first one's commit: no tick needed for it.
  for (std::uint64_t f : {2, 3}) {
    EXPECT_EQ(commit_of(c, f), first) << f;
    EXPECT_EQ(empty_appends_to(c.delivered(), f), 0u) << f;
  }
  // The tick then owes both followers the second commit only.
  c.delivered().clear();
  c.tick(NodeId(1), 1);
  c.stabilize();
  for (std::uint64_t f : {2, 3}) {
    EXPECT_EQ(empty_appends_to(c.delivered(), f), 1u) << f;
    EXPECT_EQ(commit_of(c, f), LogIndex(first.value() + 1)) << f;
  }
}

TEST(RaftCommitBroadcast, LazyCommitSkipsFollowersTheHeartbeatTold) {
  Cluster c(3, [](Config& cfg) {
    cfg.lazy_commit_broadcast = true;
    cfg.heartbeat_ticks = 1;  // every tick heartbeats
  });
  const LogIndex index = elect_then_commit_one(c, 2);
  c.delivered().clear();
  c.tick(NodeId(1), 1);
  c.stabilize();
  for (std::uint64_t f : {2, 3}) {
    EXPECT_EQ(count_to(c.delivered(), MessageType::kHeartbeat, f), 1u) << f;
    EXPECT_EQ(count_to(c.delivered(), MessageType::kAppend, f), 0u) << f;
    EXPECT_EQ(commit_of(c, f), index) << f;
  }
}

TEST(RaftCommitBroadcast, LazyCommitLostOnTheWireArrivesWithTheHeartbeat) {
  Cluster c(3, enable_lazy_commit);
  const LogIndex index = elect_then_commit_one(c, 3);
  // The tick's empty append to 3 is lost; the leader counts 3 as told.
  c.set_message_filter([](Message& m) {
    return !(m.type == MessageType::kAppend && m.to == NodeId(3) && m.entries.empty());
  });
  c.tick(NodeId(1), 1);
  c.stabilize();
  EXPECT_EQ(commit_of(c, 2), index);
  EXPECT_LT(commit_of(c, 3), index);
  c.set_message_filter(nullptr);
  c.tick(NodeId(1), 2);  // the heartbeat tick
  c.stabilize();
  EXPECT_EQ(commit_of(c, 3), index);
}

// ---- A leader's messages while its Ready is being persisted (take_leader_messages) ----

bool has_append_with(const std::vector<Message>& msgs, std::uint64_t to, LogIndex index) {
  for (const Message& m : msgs) {
    if (m.type != MessageType::kAppend || m.to != NodeId(to)) continue;
    for (const Entry& e : m.entries) {
      if (e.index == index) return true;
    }
  }
  return false;
}

void queue_all(Cluster& c, const std::vector<Message>& msgs) {
  for (const Message& m : msgs) c.queue().push_back(m);
}

TEST(RaftLeaderMessagesWhileParked, AppendsOfNewProposalsGoBeforeTheOutstandingReadyAdvances) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(bytes_of(10, 'a')).has_value());
  // Node 1's Ready with entry a is being persisted (not advanced).
  Ready first = c.node(1).ready();
  ASSERT_EQ(first.entries_to_persist.size(), 1u);
  const LogIndex a = first.entries_to_persist.back().index;
  queue_all(c, first.messages);
  ASSERT_TRUE(c.node(1).propose(bytes_of(10, 'b')).has_value());
  const LogIndex b = a + 1;
  std::vector<Message> early = c.node(1).take_leader_messages();
  for (std::uint64_t f : {2, 3}) EXPECT_TRUE(has_append_with(early, f, b)) << f;
  EXPECT_TRUE(c.node(1).take_leader_messages().empty());  // handed out once
  queue_all(c, early);
  // The followers store a and b and acknowledge them; node 1 still persists a.
  c.deliver_queued();
  ASSERT_TRUE(c.process_ready(NodeId(2)));
  ASSERT_TRUE(c.process_ready(NodeId(3)));
  c.deliver_queued();
  EXPECT_EQ(c.node(1).committed(), b);  // on the followers' acknowledgements alone
  first.messages.clear();               // sent above
  c.handle_ready(NodeId(1), first);
  // The next Ready writes b on the leader and does not send it again.
  ASSERT_TRUE(c.node(1).has_ready());
  Ready second = c.node(1).ready();
  ASSERT_EQ(second.entries_to_persist.size(), 1u);
  EXPECT_EQ(second.entries_to_persist.back().index, b);
  for (std::uint64_t f : {2, 3}) EXPECT_FALSE(has_append_with(second.messages, f, b)) << f;
  c.handle_ready(NodeId(1), second);
  c.stabilize();
  for (std::uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(c.storage(id).all_entries(), c.storage(1).all_entries()) << id;
    EXPECT_EQ(commit_of(c, id), b) << id;
  }
}

TEST(RaftLeaderMessagesWhileParked, HeartbeatsOfTicksWhileParkedGoToo) {
  Cluster c(3, [](Config& cfg) { cfg.heartbeat_ticks = 1; });
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
  Ready rd = c.node(1).ready();
  c.tick(NodeId(1), 1);
  std::vector<Message> early = c.node(1).take_leader_messages();
  for (std::uint64_t f : {2, 3}) EXPECT_EQ(count_to(early, MessageType::kHeartbeat, f), 1u) << f;
  c.handle_ready(NodeId(1), rd);
}

TEST(RaftLeaderMessagesWhileParked, NothingEarlyFromAFollower) {
  Cluster c(3, [](Config& cfg) { cfg.heartbeat_ticks = 1; });
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
  ASSERT_TRUE(c.process_ready(NodeId(1)));
  c.deliver_queued();
  // Follower 2 persists the entry; its acknowledgement must wait for that.
  Ready rd = c.node(2).ready();
  ASSERT_FALSE(rd.messages_after_persist.empty());
  // A heartbeat arrives meanwhile: its answer waits for the follower's next Ready.
  c.tick(NodeId(1), 1);
  ASSERT_TRUE(c.process_ready(NodeId(1)));
  c.set_message_filter([](Message& m) { return m.to == NodeId(2); });
  c.deliver_queued();
  c.set_message_filter(nullptr);
  ASSERT_TRUE(c.node(2).has_ready());
  EXPECT_TRUE(c.node(2).take_leader_messages().empty());
  c.handle_ready(NodeId(2), rd);
  c.stabilize();
}

TEST(RaftLeaderMessagesWhileParked, ALeaderWhoseTermIsNotYetDurableWaitsForAdvance) {
  Cluster c(3, [](Config& cfg) { cfg.pre_vote = false; });
  // Node 1 campaigns; the Ready carrying its new term and vote is being persisted.
  c.node(1).campaign();
  Ready vote = c.node(1).ready();
  ASSERT_TRUE(vote.hard_state.has_value());
  ASSERT_TRUE(vote.must_sync);
  const Term term = vote.hard_state->term;
  queue_all(c, vote.messages);
  vote.messages.clear();  // sent now
  c.deliver_queued();
  ASSERT_TRUE(c.process_ready(NodeId(2)));
  ASSERT_TRUE(c.process_ready(NodeId(3)));
  c.deliver_queued();
  // Elected on the two grants while its own term and vote are not durable yet.
  ASSERT_EQ(c.node(1).status().soft_state.role, Role::kLeader);
  ASSERT_EQ(c.node(1).status().hard_state.term, term);
  EXPECT_TRUE(c.node(1).take_leader_messages().empty());
  c.handle_ready(NodeId(1), vote);
  // Durable now: its appends go with the next Ready, and the appends of proposals made while
  // a later Ready is outstanding go early.
  ASSERT_TRUE(c.node(1).has_ready());
  Ready next = c.node(1).ready();
  for (std::uint64_t f : {2, 3}) {
    EXPECT_GE(count_to(next.messages, MessageType::kAppend, f), 1u) << f;
  }
  c.handle_ready(NodeId(1), next);
  c.stabilize();
  ASSERT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
  Ready outstanding = c.node(1).ready();
  ASSERT_TRUE(c.node(1).propose(bytes_of(10)).has_value());
  const LogIndex index = c.node(1).status().last_index;
  std::vector<Message> early = c.node(1).take_leader_messages();
  for (std::uint64_t f : {2, 3}) EXPECT_TRUE(has_append_with(early, f, index)) << f;
  c.handle_ready(NodeId(1), outstanding);  // sends its messages
  queue_all(c, early);
  c.stabilize();
  for (std::uint64_t id : {1, 2, 3}) EXPECT_EQ(commit_of(c, id), index) << id;
}

// ---- Snapshots (§7) ----

TEST(RaftSnapshot, LaggingFollowerGetsSnapshot) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(3));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.node(1).propose(bytes_of(8)).has_value());
  c.stabilize();
  // The host compacts: snapshot at 8, entries up to 8 dropped.
  auto snap = c.storage(1).create_snapshot(LogIndex(8), c.node(1).conf_state(),
                                           SharedBuffer(std::string_view("image@8")));
  ASSERT_TRUE(snap.has_value());
  ASSERT_TRUE(c.storage(1).compact(LogIndex(8)).is_ok());
  c.heal();
  c.record_readies = true;
  run(c, 3);
  bool got_snapshot = false;
  for (const Ready& rd : c.test_node(3).readies) {
    if (rd.snapshot) {
      got_snapshot = true;
      EXPECT_EQ(rd.snapshot->meta.index, LogIndex(8));
      EXPECT_EQ(as_chars(rd.snapshot->data.view()), "image@8");
      EXPECT_TRUE(rd.committed_entries.empty());  // the snapshot is applied first
    }
  }
  EXPECT_TRUE(got_snapshot);
  EXPECT_EQ(c.storage(3).first_index(), LogIndex(9));
  EXPECT_EQ(c.node(3).status().last_index, LogIndex(11));
  EXPECT_EQ(c.node(3).status().applied, LogIndex(11));
  c.node(1).report_snapshot(NodeId(3), true);  // after the fact: harmless
  EXPECT_EQ(c.node(1).status().progress.at(NodeId(3)).state, ProgressState::kReplicate);
}

TEST(RaftSnapshot, UnavailableSnapshotIsRetried) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(3));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(c.node(1).propose(bytes_of(8)).has_value());
  c.stabilize();
  ASSERT_TRUE(c.storage(1).create_snapshot(LogIndex(4), c.node(1).conf_state(), {}).has_value());
  ASSERT_TRUE(c.storage(1).compact(LogIndex(4)).is_ok());
  c.storage(1).set_snapshot_unavailable(true);
  c.heal();
  run(c, 3);
  EXPECT_EQ(c.node(3).status().last_index, LogIndex(1));
  c.storage(1).set_snapshot_unavailable(false);
  run(c, 3);
  EXPECT_EQ(c.node(3).status().last_index, LogIndex(5));
}

TEST(RaftSnapshot, FailedSnapshotReportProbesAgain) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(3));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(c.node(1).propose(bytes_of(8)).has_value());
  c.stabilize();
  ASSERT_TRUE(c.storage(1).create_snapshot(LogIndex(4), c.node(1).conf_state(), {}).has_value());
  ASSERT_TRUE(c.storage(1).compact(LogIndex(4)).is_ok());
  c.heal();
  c.drop_type(MessageType::kSnapshot);  // the snapshot transfer "fails"
  run(c, 2);
  ASSERT_EQ(c.node(1).status().progress.at(NodeId(3)).state, ProgressState::kSnapshot);
  c.node(1).report_snapshot(NodeId(3), false);
  EXPECT_EQ(c.node(1).status().progress.at(NodeId(3)).state, ProgressState::kProbe);
  c.heal();
  run(c, 3);
  EXPECT_EQ(c.node(3).status().last_index, LogIndex(5));
}

TEST(RaftSnapshot, StaleSnapshotIgnored) {
  Cluster c(3);
  c.elect(NodeId(1));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(c.node(1).propose(bytes_of(8)).has_value());
  c.stabilize();
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(1);
  m.snapshot = Snapshot{};
  m.snapshot->meta.index = LogIndex(3);  // below commit
  m.snapshot->meta.term = Term(1);
  m.snapshot->meta.conf_state = c.node(1).conf_state();
  ASSERT_TRUE(c.node(2).step(m).is_ok());
  Ready rd = c.node(2).ready();
  EXPECT_FALSE(rd.snapshot.has_value());
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_EQ(rd.messages_after_persist[0].index, LogIndex(5));  // our commit
  c.handle_ready(NodeId(2), rd);
}

// ---- ReadIndex (thesis §6.4) ----

TEST(RaftReadIndex, LeaderConfirmsWithHeartbeatRound) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).read_index(77).is_ok());
  // Before any heartbeat response, nothing is answered.
  c.process_ready(NodeId(1));
  EXPECT_TRUE(c.test_node(1).read_states.empty());
  auto msgs = c.take_messages();
  std::size_t beats = 0;
  for (const Message& m : msgs) {
    if (m.type == MessageType::kHeartbeat) {
      ++beats;
      EXPECT_NE(m.context, 0u);
    }
  }
  EXPECT_EQ(beats, 2u);
  for (Message& m : msgs) c.queue().push_back(m);
  c.stabilize();
  ASSERT_EQ(c.test_node(1).read_states.size(), 1u);
  EXPECT_EQ(c.test_node(1).read_states[0].request_context, 77u);
  EXPECT_EQ(c.test_node(1).read_states[0].index, LogIndex(1));
}

TEST(RaftReadIndex, NoQuorumNoAnswer) {
  Cluster c(3);
  c.elect(NodeId(1));
  c.isolate(NodeId(1));
  ASSERT_TRUE(c.node(1).read_index(5).is_ok());
  for (int i = 0; i < 5; ++i) {
    c.tick(NodeId(1));
    c.stabilize();
  }
  EXPECT_TRUE(c.test_node(1).read_states.empty());
}

TEST(RaftReadIndex, FollowerForwardsToLeader) {
  Cluster c(3);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(bytes_of(3)).has_value());
  c.stabilize();
  ASSERT_TRUE(c.node(2).read_index(9).is_ok());
  c.stabilize();
  ASSERT_EQ(c.test_node(2).read_states.size(), 1u);
  EXPECT_EQ(c.test_node(2).read_states[0].index, LogIndex(2));
  EXPECT_EQ(c.test_node(2).read_states[0].request_context, 9u);
  EXPECT_TRUE(c.test_node(1).read_states.empty());
}

TEST(RaftReadIndex, NoLeaderKnownIsNotLeader) {
  Cluster c(3);
  EXPECT_EQ(c.node(2).read_index(1).code(), ErrorCode::kNotLeader);
}

TEST(RaftReadIndex, NewLeaderWaitsForCommitInItsTerm) {
  // The new leader's appends (carrying its no-op) are dropped, so no entry of its term
  // commits and it must not answer reads yet (§6.4 step 1).
  Cluster d(3);
  d.drop_type(MessageType::kAppend);
  d.elect(NodeId(1));
  ASSERT_EQ(d.node(1).status().soft_state.role, Role::kLeader);
  ASSERT_TRUE(d.node(1).read_index(3).is_ok());
  run(d, 3);
  EXPECT_TRUE(d.test_node(1).read_states.empty());  // no entry of term 1 committed yet
  d.heal();
  run(d, 3);
  ASSERT_EQ(d.test_node(1).read_states.size(), 1u);
  EXPECT_EQ(d.test_node(1).read_states[0].index, LogIndex(1));
}

TEST(RaftReadIndex, LeaseBasedAnswersWithoutRoundTrip) {
  Cluster c(3, [](Config& cfg) { cfg.read_only = ReadOnlyOption::kLeaseBased; });
  c.elect(NodeId(1));
  run(c, 1);  // one heartbeat round acknowledged by the followers starts the lease
  ASSERT_TRUE(c.node(1).read_index(4).is_ok());
  Ready rd = c.node(1).ready();
  ASSERT_EQ(rd.read_states.size(), 1u);
  EXPECT_EQ(rd.read_states[0].index, LogIndex(1));
  c.handle_ready(NodeId(1), rd);
}

TEST(RaftReadIndex, LeaseExpiresBeforeCheckQuorumStepDown) {
  // CheckQuorum alone may keep a cut-off leader in office for up to two election timeouts;
  // its lease must end one election timeout after the last acknowledged heartbeat.
  Cluster c(3, [](Config& cfg) { cfg.read_only = ReadOnlyOption::kLeaseBased; });
  c.elect(NodeId(1));
  run(c, 1);  // acks for the round sent at tick 1
  c.isolate(NodeId(1));
  for (int i = 0; i < 9; ++i) {
    c.tick(NodeId(1));
    c.stabilize();
  }
  ASSERT_EQ(c.node(1).status().soft_state.role, Role::kLeader);  // not stepped down yet
  ASSERT_TRUE(c.node(1).read_index(6).is_ok());
  c.stabilize();
  EXPECT_TRUE(c.test_node(1).read_states.empty());  // lease over, no quorum for a round
}

TEST(RaftReadIndex, NoLeaseReadsAfterTimeoutNow) {
  Cluster c(3, [](Config& cfg) { cfg.read_only = ReadOnlyOption::kLeaseBased; });
  c.elect(NodeId(1));
  run(c, 1);
  c.drop_type(MessageType::kTimeoutNow);
  ASSERT_TRUE(c.node(1).transfer_leader(NodeId(2)).is_ok());
  c.stabilize();
  c.isolate(NodeId(1));
  ASSERT_TRUE(c.node(1).read_index(6).is_ok());
  c.stabilize();
  EXPECT_TRUE(c.test_node(1).read_states.empty());
}

TEST(RaftReadIndex, RestartedNodeWithLeaseReadsRefusesVotesForAnElectionTimeout) {
  Cluster c(3, [](Config& cfg) { cfg.read_only = ReadOnlyOption::kLeaseBased; });
  c.elect(NodeId(1));
  run(c, 1);
  c.restart(NodeId(3));
  Message vote;
  vote.type = MessageType::kVote;
  vote.from = NodeId(2);
  vote.to = NodeId(3);
  vote.term = Term(2);
  vote.index = LogIndex(9);
  vote.log_term = Term(1);
  ASSERT_TRUE(c.node(3).step(vote).is_ok());
  EXPECT_EQ(c.node(3).status().hard_state.term, Term(1));  // ignored: maybe still in lease
  c.isolate(NodeId(3));
  c.tick(NodeId(3), 10);
  ASSERT_TRUE(c.node(3).step(vote).is_ok());
  EXPECT_EQ(c.node(3).status().hard_state.vote, NodeId(2));
}

TEST(RaftReadIndex, SingleNodeAnswersImmediately) {
  Cluster c(1);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).read_index(8).is_ok());
  c.stabilize();
  ASSERT_EQ(c.test_node(1).read_states.size(), 1u);
}

TEST(RaftReadIndex, LeaseConfigRequiresCheckQuorum) {
  Config cfg;
  cfg.id = NodeId(1);
  cfg.read_only = ReadOnlyOption::kLeaseBased;
  cfg.check_quorum = false;
  EXPECT_EQ(cfg.validate().code(), ErrorCode::kInvalidArgument);
}

// ---- Limits ----

TEST(RaftLimits, UncommittedBytesLimitRefusesProposals) {
  Cluster c(3, [](Config& cfg) { cfg.max_uncommitted_bytes = 1000; });
  c.elect(NodeId(1));
  c.isolate(NodeId(1));  // nothing commits
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.node(1).propose(bytes_of(300)).has_value());
  auto refused = c.node(1).propose(bytes_of(300));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(refused.error().message().find("max_uncommitted_bytes=1000"), std::string::npos);
  EXPECT_TRUE(c.node(1).propose(bytes_of(100)).has_value());  // still fits
  // Once the entries commit and are applied, proposals flow again.
  c.heal();
  c.stabilize();
  run(c, 2);
  EXPECT_TRUE(c.node(1).propose(bytes_of(300)).has_value());
}

TEST(RaftLimits, OneLargeEntryAlwaysAcceptedWhenNothingUncommitted) {
  Cluster c(3, [](Config& cfg) { cfg.max_uncommitted_bytes = 100; });
  c.elect(NodeId(1));
  EXPECT_TRUE(c.node(1).propose(bytes_of(500)).has_value());
  EXPECT_EQ(c.node(1).propose(bytes_of(1)).status().code(), ErrorCode::kLimitExceeded);
}

TEST(RaftLimits, CommittedEntriesPerReadyBounded) {
  Cluster c(1, [](Config& cfg) { cfg.max_committed_bytes_per_ready = 250; });
  c.elect(NodeId(1));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.node(1).propose(bytes_of(100)).has_value());
  c.record_readies = true;
  c.stabilize();
  std::size_t total = 0;
  for (const Ready& rd : c.test_node(1).readies) {
    EXPECT_LE(rd.committed_entries.size(), 2u);
    total += rd.committed_entries.size();
  }
  EXPECT_EQ(total, 10u);
}

}  // namespace
}  // namespace mq::raft
