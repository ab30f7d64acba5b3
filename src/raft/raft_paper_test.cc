// One test per rule of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
// Consensus Algorithm", extended version), cited by section, in the manner of etcd's
// raft_paper_test.go. PreVote and CheckQuorum are off: this is the paper's algorithm.
#include <gtest/gtest.h>

#include <set>

#include "raft/raw_node.h"
#include "raft/testing/cluster.h"

namespace mq::raft {
namespace {

using testing::Cluster;

void paper_config(Config& c) {
  c.pre_vote = false;
  c.check_quorum = false;
  c.election_ticks = 10;
  c.heartbeat_ticks = 1;
}

Message msg(MessageType type, std::uint64_t from, std::uint64_t to, std::uint64_t term) {
  Message m;
  m.type = type;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = Term(term);
  return m;
}

std::vector<Message> of_type(const std::vector<Message>& msgs, MessageType type) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type == type) out.push_back(m);
  }
  return out;
}

MemoryStorage storage_with(std::vector<std::uint64_t> terms, std::uint64_t hard_term,
                           std::size_t voters = 3) {
  ConfState cs;
  for (std::size_t i = 1; i <= voters; ++i) cs.voters.push_back(NodeId(i));
  MemoryStorage s(cs);
  std::vector<Entry> entries;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    entries.push_back(Entry{Term(terms[i]), LogIndex(i + 1), EntryType::kNormal, {}});
  }
  EXPECT_TRUE(s.append(entries).is_ok());
  s.set_hard_state(HardState{Term(hard_term), kNoNode, LogIndex(0)});
  return s;
}

std::vector<Term> log_terms(const MemoryStorage& s) {
  std::vector<Term> out;
  for (const Entry& e : s.all_entries()) out.push_back(e.term);
  return out;
}

// Makes node 1 leader of term (current+1) using a vote injected from node `voter`.
void force_leader(Cluster& c, std::uint64_t voter) {
  c.node(1).campaign();
  c.process_ready(NodeId(1));  // persists term and self-vote; counts it
  const Term term = c.node(1).status().hard_state.term;
  c.take_messages();
  ASSERT_TRUE(c.node(1).step(msg(MessageType::kVoteResponse, voter, 1, term.value())).is_ok());
  ASSERT_EQ(c.node(1).status().soft_state.role, Role::kLeader);
}

// §5.1: "If one server's current term is smaller than the other's, then it updates its
// current term to the larger value. If a candidate or leader discovers that its term is out
// of date, it immediately reverts to follower state."
TEST(RaftPaper, UpdateTermFromMessage) {
  for (Role role : {Role::kFollower, Role::kCandidate, Role::kLeader}) {
    Cluster c(3, paper_config);
    if (role == Role::kCandidate) c.node(1).campaign();
    if (role == Role::kLeader) force_leader(c, 2);
    ASSERT_EQ(c.node(1).status().soft_state.role, role);
    ASSERT_TRUE(c.node(1).step(msg(MessageType::kAppend, 2, 1, 5)).is_ok());
    EXPECT_EQ(c.node(1).status().hard_state.term, Term(5)) << role_name(role);
    EXPECT_EQ(c.node(1).status().soft_state.role, Role::kFollower) << role_name(role);
    EXPECT_EQ(c.node(1).status().soft_state.leader, NodeId(2));
  }
}

// §5.1: "If a server receives a request with a stale term number, it rejects the request."
TEST(RaftPaper, RejectStaleTermMessage) {
  Cluster c(3, paper_config);
  force_leader(c, 2);  // term 1
  ASSERT_TRUE(c.node(1).step(msg(MessageType::kAppend, 3, 1, 3)).is_ok());  // now term 3
  c.process_ready(NodeId(1));
  c.take_messages();
  Message stale = msg(MessageType::kAppend, 2, 1, 2);
  stale.entries.push_back(Entry{Term(2), LogIndex(1), EntryType::kNormal, SharedBuffer("x")});
  ASSERT_TRUE(c.node(1).step(stale).is_ok());
  EXPECT_EQ(c.node(1).status().hard_state.term, Term(3));
  EXPECT_EQ(c.node(1).status().soft_state.leader, NodeId(3));
  EXPECT_EQ(c.node(1).status().last_index, LogIndex(1));  // nothing appended
}

// §5.2: "When servers start up, they begin as followers."
TEST(RaftPaper, StartAsFollower) {
  Cluster c(3, paper_config);
  EXPECT_EQ(c.node(1).status().soft_state.role, Role::kFollower);
  EXPECT_EQ(c.node(1).status().hard_state.term, Term(0));
}

// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to
// all followers in order to maintain their authority."
TEST(RaftPaper, LeaderBroadcastsHeartbeat) {
  Cluster c(3, [](Config& cfg) {
    paper_config(cfg);
    cfg.heartbeat_ticks = 2;
  });
  force_leader(c, 2);
  c.process_ready(NodeId(1));
  c.take_messages();
  c.tick(NodeId(1));
  c.process_ready(NodeId(1));
  EXPECT_TRUE(of_type(c.take_messages(), MessageType::kHeartbeat).empty());
  c.tick(NodeId(1));
  c.process_ready(NodeId(1));
  auto beats = of_type(c.take_messages(), MessageType::kHeartbeat);
  ASSERT_EQ(beats.size(), 2u);
  std::set<NodeId> to;
  for (const Message& m : beats) {
    to.insert(m.to);
    EXPECT_TRUE(m.entries.empty());
    EXPECT_EQ(m.term, Term(1));
  }
  EXPECT_EQ(to, (std::set<NodeId>{NodeId(2), NodeId(3)}));
}

// §5.2: "If a follower receives no communication over a period of time called the election
// timeout, then it ... begins an election": increments its term, votes for itself and issues
// RequestVote RPCs in parallel. A candidate whose election times out starts a new one.
TEST(RaftPaper, FollowerAndCandidateStartElectionOnTimeout) {
  Cluster c(3, paper_config);
  c.tick(NodeId(1), 20);  // >= any randomized timeout in [10, 20)
  EXPECT_EQ(c.node(1).status().soft_state.role, Role::kCandidate);
  EXPECT_EQ(c.node(1).status().hard_state.term, Term(1));
  EXPECT_EQ(c.node(1).status().hard_state.vote, NodeId(1));
  c.process_ready(NodeId(1));
  auto votes = of_type(c.take_messages(), MessageType::kVote);
  EXPECT_EQ(votes.size(), 2u);
  c.tick(NodeId(1), 40);  // no answers: new elections
  EXPECT_EQ(c.node(1).status().soft_state.role, Role::kCandidate);
  EXPECT_GE(c.node(1).status().hard_state.term, Term(3));
}

// §5.2: "A candidate wins an election if it receives votes from a majority of the servers
// in the full cluster for the same term." It loses when a majority rejects.
TEST(RaftPaper, LeaderElectionInOneRound) {
  struct Case {
    std::size_t size;
    std::vector<std::pair<std::uint64_t, bool>> votes;
    Role role;
  };
  const std::vector<Case> cases = {
      {1, {}, Role::kLeader},
      {3, {{2, true}, {3, true}}, Role::kLeader},
      {3, {{2, true}}, Role::kLeader},
      {5, {{2, true}, {3, true}, {4, true}, {5, true}}, Role::kLeader},
      {5, {{2, true}, {3, true}}, Role::kLeader},
      {3, {{2, false}, {3, false}}, Role::kFollower},
      {5, {{2, false}, {3, false}, {4, false}}, Role::kFollower},
      {5, {{2, true}}, Role::kCandidate},
      {5, {{2, true}, {3, false}, {4, false}}, Role::kCandidate},
  };
  for (const Case& tc : cases) {
    Cluster c(tc.size, paper_config);
    c.node(1).campaign();
    c.process_ready(NodeId(1));
    for (auto [from, granted] : tc.votes) {
      Message m = msg(MessageType::kVoteResponse, from, 1, 1);
      m.reject = !granted;
      ASSERT_TRUE(c.node(1).step(m).is_ok());
    }
    EXPECT_EQ(c.node(1).status().soft_state.role, tc.role) << tc.size << " " << tc.votes.size();
  }
}

// §5.2: "Each server will vote for at most one candidate in a given term, on a
// first-come-first-served basis."
TEST(RaftPaper, FollowerVotesOncePerTerm) {
  struct Case {
    std::uint64_t vote;
    std::uint64_t from;
    bool reject;
  };
  for (Case tc : {Case{0, 2, false}, Case{0, 3, false}, Case{2, 2, false}, Case{3, 3, false},
                  Case{2, 3, true}, Case{3, 2, true}}) {
    Cluster c(3, paper_config);
    MemoryStorage s = storage_with({}, 1);
    s.set_hard_state(HardState{Term(1), NodeId(tc.vote), LogIndex(0)});
    c.replace_storage(NodeId(1), s);
    ASSERT_TRUE(c.node(1).step(msg(MessageType::kVote, tc.from, 1, 1)).is_ok());
    Ready rd = c.node(1).ready();
    ASSERT_EQ(rd.messages_after_persist.size(), 1u);
    EXPECT_EQ(rd.messages_after_persist[0].type, MessageType::kVoteResponse);
    EXPECT_EQ(rd.messages_after_persist[0].reject, tc.reject) << tc.vote << " " << tc.from;
    c.handle_ready(NodeId(1), rd);
  }
}

// §5.2: "While waiting for votes, a candidate may receive an AppendEntries RPC from another
// server claiming to be leader. If the leader's term is at least as large as the candidate's
// current term, then the candidate ... returns to follower state."
TEST(RaftPaper, CandidateFallsBackOnAppendOfSameTerm) {
  Cluster c(3, paper_config);
  c.node(1).campaign();
  ASSERT_EQ(c.node(1).status().soft_state.role, Role::kCandidate);
  ASSERT_TRUE(c.node(1).step(msg(MessageType::kAppend, 2, 1, 1)).is_ok());
  EXPECT_EQ(c.node(1).status().soft_state.role, Role::kFollower);
  EXPECT_EQ(c.node(1).status().soft_state.leader, NodeId(2));
  EXPECT_EQ(c.node(1).status().hard_state.term, Term(1));
}

// §5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed interval."
// Ours: [election_ticks, 2*election_ticks).
TEST(RaftPaper, ElectionTimeoutIsRandomizedInRange) {
  std::set<std::size_t> seen;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    Cluster c(3, [seed](Config& cfg) {
      paper_config(cfg);
      cfg.random_seed = seed;
    });
    std::size_t ticks = 0;
    while (c.node(1).status().soft_state.role == Role::kFollower && ticks < 100) {
      c.tick(NodeId(1));
      ++ticks;
    }
    EXPECT_GE(ticks, 10u);
    EXPECT_LT(ticks, 20u);
    seen.insert(ticks);
  }
  EXPECT_GE(seen.size(), 8u);  // spread over the interval, not a constant
}

// §5.2: randomization spreads the servers' timeouts "so that in most cases only a single
// server will time out". Different node ids with the same seed must differ.
TEST(RaftPaper, ElectionTimeoutsDifferAcrossNodes) {
  std::size_t single_first = 0;
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    Cluster c(5, [seed](Config& cfg) {
      paper_config(cfg);
      cfg.random_seed = seed;
    });
    std::size_t candidates = 0;
    for (int t = 0; t < 20 && candidates == 0; ++t) {
      c.tick_all(1);
      for (NodeId id : c.ids()) {
        candidates += c.node(id).status().soft_state.role == Role::kCandidate ? 1 : 0;
      }
    }
    single_first += candidates == 1 ? 1 : 0;
  }
  EXPECT_GE(single_first, 50u);
}

// §5.3: "The leader appends the command to its log as a new entry, then issues
// AppendEntries RPCs in parallel to each of the other servers to replicate the entry."
TEST(RaftPaper, LeaderStartsReplication) {
  Cluster c(3, paper_config);
  force_leader(c, 2);
  c.stabilize();
  c.take_messages();
  ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("some data"))).has_value());
  Ready rd = c.node(1).ready();
  auto apps = of_type(rd.messages, MessageType::kAppend);
  ASSERT_EQ(apps.size(), 2u);
  for (const Message& m : apps) {
    EXPECT_EQ(m.index, LogIndex(1));
    EXPECT_EQ(m.log_term, Term(1));
    EXPECT_EQ(m.commit, LogIndex(1));
    ASSERT_EQ(m.entries.size(), 1u);
    EXPECT_EQ(m.entries[0].index, LogIndex(2));
    EXPECT_EQ(describe(m.entries[0]), "1/2 EntryNormal 'some data'");
  }
  ASSERT_EQ(rd.entries_to_persist.size(), 1u);
  c.handle_ready(NodeId(1), rd);
}

// §5.3: "A log entry is committed once the leader that created the entry has replicated it
// on a majority of the servers ... the leader ... includes that index in future
// AppendEntries RPCs ... so that the other servers eventually find out."
TEST(RaftPaper, LeaderCommitsOnMajorityAndTellsFollowers) {
  Cluster c(3, paper_config);
  c.elect(NodeId(1));
  ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("x"))).has_value());
  c.process_ready(NodeId(1));
  auto apps = of_type(c.take_messages(), MessageType::kAppend);
  ASSERT_EQ(apps.size(), 2u);
  Message ack = msg(MessageType::kAppendResponse, 2, 1, 1);
  ack.index = LogIndex(2);
  ASSERT_TRUE(c.node(1).step(ack).is_ok());
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(2));
  Ready rd = c.node(1).ready();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].index, LogIndex(2));
  for (const Message& m : of_type(rd.messages, MessageType::kAppend)) {
    EXPECT_EQ(m.commit, LogIndex(2));
  }
  c.handle_ready(NodeId(1), rd);
}

// §5.3: "the leader ... commits all preceding entries in the leader's log, including
// entries created by previous leaders" (once an entry of its term is committed).
TEST(RaftPaper, LeaderCommitsPrecedingEntries) {
  Cluster c(3, paper_config);
  c.replace_storage(NodeId(1), storage_with({1, 1, 2}, 2));
  force_leader(c, 2);  // term 3, no-op at 4
  c.process_ready(NodeId(1));
  c.take_messages();
  Message ack = msg(MessageType::kAppendResponse, 2, 1, 3);
  ack.index = LogIndex(4);
  ASSERT_TRUE(c.node(1).step(ack).is_ok());
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(4));
  Ready rd = c.node(1).ready();
  EXPECT_EQ(rd.committed_entries.size(), 4u);
  c.handle_ready(NodeId(1), rd);
}

// §5.3: "Once a follower learns that a log entry is committed, it applies the entry to its
// local state machine (in log order)." A follower commits min(leaderCommit, last new entry).
TEST(RaftPaper, FollowerCommitsPerLeaderCommit) {
  Cluster c(3, paper_config);
  Message app = msg(MessageType::kAppend, 2, 1, 1);
  for (std::uint64_t i = 1; i <= 3; ++i) {
    app.entries.push_back(Entry{Term(1), LogIndex(i), EntryType::kNormal, SharedBuffer("e")});
  }
  app.commit = LogIndex(5);  // beyond what this message carries
  ASSERT_TRUE(c.node(1).step(app).is_ok());
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(3));
  Ready rd = c.node(1).ready();
  EXPECT_EQ(rd.committed_entries.size(), 3u);
  EXPECT_EQ(rd.entries_to_persist.size(), 3u);
  c.handle_ready(NodeId(1), rd);
}

// §5.3: "If the follower does not find an entry in its log with the same index and term,
// then it refuses the new entries."
TEST(RaftPaper, FollowerChecksPreviousEntry) {
  struct Case {
    std::uint64_t term, index;
    bool reject;
    std::uint64_t hint;
  };
  for (Case tc : {Case{0, 0, false, 0}, Case{1, 1, false, 0}, Case{2, 2, false, 0},
                  Case{1, 2, true, 1}, Case{3, 3, true, 2}}) {
    Cluster c(3, paper_config);
    c.replace_storage(NodeId(1), storage_with({1, 2}, 2));
    Message app = msg(MessageType::kAppend, 2, 1, 3);
    app.index = LogIndex(tc.index);
    app.log_term = Term(tc.term);
    ASSERT_TRUE(c.node(1).step(app).is_ok());
    Ready rd = c.node(1).ready();
    ASSERT_EQ(rd.messages_after_persist.size(), 1u);
    const Message& resp = rd.messages_after_persist[0];
    EXPECT_EQ(resp.reject, tc.reject) << tc.term << "/" << tc.index;
    if (tc.reject) {
      EXPECT_EQ(resp.reject_hint, LogIndex(tc.hint));
      EXPECT_EQ(resp.index, LogIndex(tc.index));
    }
    c.handle_ready(NodeId(1), rd);
  }
}

// §5.3: "If an existing entry conflicts with a new one (same index but different terms),
// delete the existing entry and all that follow it; append any new entries not already in
// the log."
TEST(RaftPaper, FollowerAppendsAndTruncatesConflicts) {
  struct Case {
    std::uint64_t index, log_term;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> entries;  // (term, index)
    std::vector<std::uint64_t> want;                                // terms
  };
  const std::vector<Case> cases = {
      {2, 2, {{3, 3}}, {1, 2, 3}},
      {1, 1, {{3, 2}, {4, 3}}, {1, 3, 4}},
      {0, 0, {{1, 1}}, {1, 2}},
      {0, 0, {{3, 1}}, {3}},
  };
  for (const Case& tc : cases) {
    Cluster c(3, paper_config);
    c.replace_storage(NodeId(1), storage_with({1, 2}, 2));
    Message app = msg(MessageType::kAppend, 2, 1, 4);
    app.index = LogIndex(tc.index);
    app.log_term = Term(tc.log_term);
    for (auto [t, i] : tc.entries) {
      app.entries.push_back(Entry{Term(t), LogIndex(i), EntryType::kNormal, {}});
    }
    ASSERT_TRUE(c.node(1).step(app).is_ok());
    c.process_ready(NodeId(1));
    std::vector<Term> want;
    for (auto t : tc.want) want.push_back(Term(t));
    EXPECT_EQ(log_terms(c.storage(1)), want);
  }
}

// §5.3, Figure 7: whatever the follower's log (missing entries, extra uncommitted entries,
// both), the leader forces it to duplicate its own.
TEST(RaftPaper, Figure7LeaderSyncsFollowerLog) {
  const std::vector<std::uint64_t> leader_log = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<std::uint64_t>> followers = {
      {1, 1, 1, 4, 4, 5, 5, 6, 6},           // (a)
      {1, 1, 1, 4},                          // (b)
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c)
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d)
      {1, 1, 1, 4, 4, 4, 4},                 // (e)
      {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f)
  };
  for (std::size_t f = 0; f < followers.size(); ++f) {
    Cluster c(3, paper_config);
    c.replace_storage(NodeId(1), storage_with(leader_log, 7));
    c.replace_storage(NodeId(2), storage_with(followers[f], 7));
    c.isolate(NodeId(3));
    force_leader(c, 3);  // term 8, with a vote from the otherwise silent node 3
    ASSERT_TRUE(c.node(1).propose(SharedBuffer(std::string_view("x"))).has_value());
    for (int i = 0; i < 5; ++i) {
      c.tick(NodeId(1));  // heartbeats drive probing
      c.stabilize();
    }
    EXPECT_EQ(log_terms(c.storage(2)), log_terms(c.storage(1))) << "follower " << f;
    EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(12)) << f;
  }
}

// §5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
// candidate": later last term wins; equal terms compare length.
TEST(RaftPaper, VoterRejectsLessUpToDateCandidate) {
  struct Case {
    std::uint64_t last_term, last_index;
    bool reject;
  };
  // The voter's log is {1/1, 2/2}.
  for (Case tc : {Case{1, 1, true}, Case{1, 2, true}, Case{1, 3, true}, Case{2, 1, true},
                  Case{2, 2, false}, Case{2, 3, false}, Case{3, 1, false}, Case{3, 3, false}}) {
    Cluster c(3, paper_config);
    c.replace_storage(NodeId(1), storage_with({1, 2}, 2));
    Message vote = msg(MessageType::kVote, 2, 1, 3);
    vote.index = LogIndex(tc.last_index);
    vote.log_term = Term(tc.last_term);
    ASSERT_TRUE(c.node(1).step(vote).is_ok());
    Ready rd = c.node(1).ready();
    ASSERT_EQ(rd.messages_after_persist.size(), 1u);
    EXPECT_EQ(rd.messages_after_persist[0].reject, tc.reject)
        << tc.last_term << "/" << tc.last_index;
    c.handle_ready(NodeId(1), rd);
  }
}

// §5.4.1: the candidate's RequestVote carries the index and term of its last log entry.
TEST(RaftPaper, CandidateSendsLastLogPosition) {
  Cluster c(3, paper_config);
  c.replace_storage(NodeId(1), storage_with({1, 1, 2}, 2));
  c.node(1).campaign();
  c.process_ready(NodeId(1));
  auto votes = of_type(c.take_messages(), MessageType::kVote);
  ASSERT_EQ(votes.size(), 2u);
  for (const Message& m : votes) {
    EXPECT_EQ(m.index, LogIndex(3));
    EXPECT_EQ(m.log_term, Term(2));
    EXPECT_EQ(m.term, Term(3));
  }
}

// §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only
// log entries from the leader's current term are committed by counting replicas."
TEST(RaftPaper, LeaderOnlyCommitsEntriesOfCurrentTerm) {
  struct Case {
    std::uint64_t acked;
    std::uint64_t commit;
  };
  for (Case tc : {Case{1, 0}, Case{2, 0}, Case{3, 3}}) {
    Cluster c(3, paper_config);
    c.replace_storage(NodeId(1), storage_with({1, 2}, 2));
    force_leader(c, 2);  // term 3; no-op at index 3
    c.process_ready(NodeId(1));
    Message ack = msg(MessageType::kAppendResponse, 2, 1, 3);
    ack.index = LogIndex(tc.acked);
    ASSERT_TRUE(c.node(1).step(ack).is_ok());
    EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(tc.commit)) << tc.acked;
  }
}

// §5.4.2, Figure 8: S1 (term 2) replicates index 2 to S2 and crashes; S5 wins term 3 with
// a different index 2; S1 wins term 4 and brings its term-2 entry to a majority (S1-S3).
// It must not be considered committed: S5 could still win and overwrite it. Only when an
// entry of term 4 reaches a majority does everything before it commit.
TEST(RaftPaper, Figure8PreviousTermEntryNotCommittedByCount) {
  Cluster c(5, paper_config);
  // S1: [1/1, 2/2] at term 4 leadership; S2: [1/1, 2/2]; S3: [1/1]; S5: [1/1, 3/2].
  c.replace_storage(NodeId(1), storage_with({1, 2}, 3));
  c.replace_storage(NodeId(2), storage_with({1, 2}, 3));
  c.replace_storage(NodeId(3), storage_with({1}, 3));
  c.replace_storage(NodeId(4), storage_with({1}, 3));
  c.replace_storage(NodeId(5), storage_with({1, 3}, 3));
  c.isolate(NodeId(4));
  c.isolate(NodeId(5));
  // S1 becomes leader of term 4; only S2 and S3 hear it. Strip the term-4 no-op from its
  // appends so only the term-2 entry spreads.
  c.set_message_filter([](Message& m) {
    if (m.type != MessageType::kAppend) return true;
    std::erase_if(m.entries, [](const Entry& e) { return e.term == Term(4); });
    return true;
  });
  c.node(1).campaign();
  c.stabilize();
  ASSERT_EQ(c.node(1).status().soft_state.role, Role::kLeader);
  ASSERT_EQ(c.node(1).status().hard_state.term, Term(4));
  for (int i = 0; i < 5; ++i) {
    c.tick(NodeId(1));
    c.stabilize();
  }
  // Index 2 (term 2) is on S1, S2, S3: a majority of 5, but not committed (nor is index 1,
  // also from an earlier term).
  ASSERT_EQ(log_terms(c.storage(3)), (std::vector<Term>{Term(1), Term(2)}));
  ASSERT_EQ(log_terms(c.storage(2)), (std::vector<Term>{Term(1), Term(2)}));
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(0));
  // Once the term-4 no-op reaches the majority, both commit.
  c.set_message_filter(nullptr);
  for (int i = 0; i < 3; ++i) {
    c.tick(NodeId(1));
    c.stabilize();
  }
  EXPECT_EQ(c.node(1).status().hard_state.commit, LogIndex(3));
}

}  // namespace
}  // namespace mq::raft
