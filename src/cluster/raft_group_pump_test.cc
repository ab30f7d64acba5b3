// RaftGroup::pump is bounded in time (RaftGroupOptions::pump_budget_ms): a follower handed a
// large catch-up (many committed entries, each slow to apply) must give the loop back after
// about the budget, ask its host to pump again (GroupHost::on_ready_pending), and still apply
// everything over later pumps (tests/chaos/FINDINGS.md F2, "Remaining": leader loop stalls).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <tuple>

#include "cluster/group_storage.h"
#include "cluster/raft_group.h"
#include "storage/memory_file_system.h"
#include "storage/metadata.h"

namespace mq::cluster {
namespace {

class PendingHost : public GroupHost {
 public:
  bool send_message(GroupId, raft::Message m) override {
    sent.push_back(std::move(m));
    return true;
  }
  void log(std::string_view) override {}
  void on_ready_pending(GroupId group) override {
    ++pending_calls;
    last_pending = group;
  }
  std::vector<raft::Message> sent;
  int pending_calls = 0;
  GroupId last_pending;
};

// Applying an entry takes `apply_ms` (a slow state machine stands in for megabytes of records).
class SlowGroup : public RaftGroup {
 public:
  SlowGroup(GroupHost* host, RaftGroupOptions options, std::unique_ptr<GroupStorage> storage,
            int apply_ms)
      : RaftGroup(host, std::move(options), std::move(storage)), apply_ms_(apply_ms) {}
  int applied_count = 0;

 protected:
  void on_apply(const raft::Entry& entry) override {
    if (entry.type != raft::EntryType::kNormal || entry.payload.size() == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(apply_ms_));
    ++applied_count;
  }

 private:
  int apply_ms_;
};

class RaftGroupPump : public ::testing::Test {
 protected:
  // Node 1's replica (voters 1 and 2) of group `id`, stored under /<name>.
  std::unique_ptr<GroupStorage> open_storage(const std::string& name,
                                             std::vector<NodeId> voters = {NodeId(1), NodeId(2)}) {
    GroupStorageOptions o;
    o.directory = "/" + name;
    o.name = name;
    o.format = PayloadFormat::kRaw;
    o.bootstrap.voters = std::move(voters);
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    MQ_ASSERT(s.has_value(), "%s", s.error().to_string().c_str());
    return std::move(*s);
  }
  static RaftGroupOptions group_options(GroupId id, const std::string& name) {
    RaftGroupOptions go;
    go.group = id;
    go.name = name;
    go.raft.id = NodeId(1);
    go.raft.election_ticks = 1000;
    go.raft.heartbeat_ticks = 1;
    return go;
  }
  std::unique_ptr<SlowGroup> make(std::int64_t budget_ms, int apply_ms) {
    auto s = open_storage("g");
    RaftGroupOptions go = group_options(GroupId(7), "g");
    // One committed entry per Ready: the budget is checked between Readies.
    go.raft.max_committed_bytes_per_ready = 1;
    go.pump_budget_ms = budget_ms;
    auto g = std::make_unique<SlowGroup>(&host_, go, std::move(s), apply_ms);
    MQ_ASSERT(g->start().is_ok());
    return g;
  }

  // Leader 2 of term 1 appends `count` entries after the follower's last and commits them.
  static raft::Message catch_up(const RaftGroup& g, int count) {
    raft::NodeStatus st = g.node().status();
    raft::Message m;
    m.type = raft::MessageType::kAppend;
    m.from = NodeId(2);
    m.to = NodeId(1);
    m.term = Term(1);
    m.index = st.last_index;
    m.log_term = st.last_index == LogIndex(0) ? Term(0) : Term(1);
    for (int i = 1; i <= count; ++i) {
      raft::Entry e;
      e.term = Term(1);
      e.index = st.last_index + static_cast<std::uint64_t>(i);
      e.payload = SharedBuffer(Buffer(std::string_view("entry")));
      m.entries.push_back(std::move(e));
    }
    m.commit = st.last_index + static_cast<std::uint64_t>(count);
    return m;
  }

  // The first pump appends the entries and parks until they are durable (no flusher here);
  // the durability report then finishes that Ready and pumps on (RaftGroup::on_durable).
  static void append_then_report_durable(SlowGroup& g) {
    g.pump();
    ASSERT_TRUE(g.storage().log().sync().is_ok());
    g.on_durable(g.storage().log().last_index());
  }

  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
  PendingHost host_;
};

TEST_F(RaftGroupPump, ASlowCatchUpGivesTheLoopBackAfterTheBudgetAndFinishesLater) {
  auto g = make(/*budget_ms=*/20, /*apply_ms=*/5);
  g->step(catch_up(*g, 40));  // 40 x 5 ms = 200 ms of applying
  const auto started = std::chrono::steady_clock::now();
  append_then_report_durable(*g);
  const auto first_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
  // The budget plus the Ready in progress (5 ms), with slack for a loaded machine; without the
  // budget one pump applies all 40 entries (>= 200 ms).
  EXPECT_LT(first_ms, 150) << "one pump held the loop";
  EXPECT_LT(g->applied_count, 40);
  EXPECT_GE(g->applied_count, 1);
  EXPECT_GE(host_.pending_calls, 1);
  EXPECT_EQ(host_.last_pending, GroupId(7));
  // The host pumps again on later turns until everything is applied.
  for (int turn = 0; turn < 100 && g->applied_count < 40; ++turn) g->pump();
  EXPECT_EQ(g->applied_count, 40);
  EXPECT_EQ(g->applied(), g->node().status().last_index);
}

TEST_F(RaftGroupPump, WithoutABudgetOnePumpAppliesTheWholeCatchUp) {
  auto g = make(/*budget_ms=*/0, /*apply_ms=*/1);
  g->step(catch_up(*g, 30));
  append_then_report_durable(*g);
  EXPECT_EQ(g->applied_count, 30);
  EXPECT_EQ(host_.pending_calls, 0);
}

TEST_F(RaftGroupPump, AFastPumpDoesNotAskForMore) {
  auto g = make(/*budget_ms=*/20, /*apply_ms=*/0);
  g->step(catch_up(*g, 10));
  append_then_report_durable(*g);
  EXPECT_EQ(g->applied_count, 10);
  EXPECT_EQ(host_.pending_calls, 0);
  EXPECT_FALSE(g->node().has_ready());
}

// Records what is applied (index, term, payload).
class RecordingGroup : public RaftGroup {
 public:
  using RaftGroup::RaftGroup;
  std::vector<std::tuple<LogIndex, Term, std::string>> applied_entries;

 protected:
  void on_apply(const raft::Entry& entry) override {
    if (entry.type != raft::EntryType::kNormal || entry.payload.size() == 0) return;
    auto v = entry.payload.view();
    applied_entries.emplace_back(entry.index, entry.term,
                                 std::string(reinterpret_cast<const char*>(v.data()), v.size()));
  }
};

// tests/chaos/FINDINGS.md F11. A replica's Ready is parked on its fsync with an entry of term 1
// at index 2; meanwhile the leader of term 2 replaces that entry with its own and commits it.
// Applying while parked (RaftGroup::apply_committed_while_parked) must not apply the parked,
// replaced copy as if it were the committed entry: a produce waiting at that index would be
// answered "committed" with an offset that holds another entry.
TEST_F(RaftGroupPump, AParkedEntryReplacedByANewerLeaderIsNotAppliedAsCommitted) {
  RecordingGroup g(&host_, group_options(GroupId(8), "r"), open_storage("r"));
  ASSERT_TRUE(g.start().is_ok());
  auto append = [](Term term, LogIndex prev, Term prev_term, LogIndex index, std::string_view what,
                   LogIndex commit) {
    raft::Message m;
    m.type = raft::MessageType::kAppend;
    m.from = NodeId(2);
    m.to = NodeId(1);
    m.term = term;
    m.index = prev;
    m.log_term = prev_term;
    raft::Entry e;
    e.term = term;
    e.index = index;
    e.payload = SharedBuffer(Buffer(what));
    m.entries.push_back(std::move(e));
    m.commit = commit;
    return m;
  };
  const LogIndex base = g.node().status().last_index;  // the bootstrap's entries, if any
  // Term 1: entry base+1 committed and applied.
  g.step(append(Term(1), base, base == LogIndex(0) ? Term(0) : Term(1), base + 1, "one", base + 1));
  g.pump();
  ASSERT_TRUE(g.storage().log().sync().is_ok());
  g.on_durable(g.storage().log().last_index());
  ASSERT_EQ(g.applied(), base + 1);
  // Term 1: entry base+2 ("old"), not committed; its Ready parks (no durability report yet).
  g.step(append(Term(1), base + 1, Term(1), base + 2, "old", base + 1));
  g.pump();
  // Term 2: the new leader replaces base+2 with "new" and commits it.
  g.step(append(Term(2), base + 1, Term(1), base + 2, "new", base + 2));
  g.pump();  // still parked: applies what is committed and still held
  for (const auto& [index, term, what] : g.applied_entries) {
    EXPECT_NE(what, "old") << "applied the replaced entry at " << index.value() << " (term "
                           << term.value() << ")";
  }
  // The durability report of the old Ready, then the new entry's: "new" is applied.
  ASSERT_TRUE(g.storage().log().sync().is_ok());
  g.on_durable(g.storage().log().last_index());
  for (int turn = 0; turn < 10 && g.applied() < base + 2; ++turn) {
    ASSERT_TRUE(g.storage().log().sync().is_ok());
    g.on_durable(g.storage().log().last_index());
    g.pump();
  }
  ASSERT_EQ(g.applied(), base + 2);
  ASSERT_FALSE(g.applied_entries.empty());
  EXPECT_EQ(std::get<2>(g.applied_entries.back()), "new");
  EXPECT_EQ(std::get<1>(g.applied_entries.back()), Term(2));
  for (const auto& [index, term, what] : g.applied_entries) EXPECT_NE(what, "old");
}

// A leader whose Ready is parked on its fsync sends the appends of proposals made meanwhile at
// once (RaftGroupOptions::send_while_parked, raft::RawNode::take_leader_messages): the
// follower's fsync then runs alongside the leader's instead of after it. Turned off, they wait
// for the durability report.
class RaftGroupSendWhileParked : public RaftGroupPump,
                                 public ::testing::WithParamInterface<bool> {};

TEST_P(RaftGroupSendWhileParked, AppendsOfProposalsMadeWhileParked) {
  const bool on = GetParam();
  RaftGroupOptions go = group_options(GroupId(9), "l");
  go.raft.pre_vote = false;
  go.send_while_parked = on;
  RecordingGroup g(&host_, go, open_storage("l", {NodeId(1), NodeId(2), NodeId(3)}));
  ASSERT_TRUE(g.start().is_ok());
  auto durable = [&] {
    ASSERT_TRUE(g.storage().log().sync().is_ok());
    g.on_durable(g.storage().log().last_index());
  };
  // Elected by node 2's vote; the leader's first entry is written and made durable.
  g.node().campaign();
  g.pump();
  raft::Message grant;
  grant.type = raft::MessageType::kVoteResponse;
  grant.from = NodeId(2);
  grant.to = NodeId(1);
  grant.term = g.node().status().hard_state.term;
  g.step(grant);
  g.pump();
  ASSERT_TRUE(g.is_raft_leader());
  durable();
  // Nodes 2 and 3 have the leader's log (their answers move the leader to pipelining).
  raft::Message ack;
  ack.type = raft::MessageType::kAppendResponse;
  ack.to = NodeId(1);
  ack.term = grant.term;
  ack.index = g.node().status().last_index;
  for (NodeId from : {NodeId(2), NodeId(3)}) {
    ack.from = from;
    g.step(ack);
  }
  g.pump();
  durable();
  // Entry x is appended and parked on the leader's fsync.
  ASSERT_TRUE(g.node().propose(SharedBuffer(Buffer(std::string_view("x")))).has_value());
  g.pump();
  const LogIndex x = g.node().status().last_index;
  ASSERT_LT(g.storage().durable_index(), x);  // parked
  host_.sent.clear();
  // Entry y is proposed while x's Ready is parked.
  ASSERT_TRUE(g.node().propose(SharedBuffer(Buffer(std::string_view("y")))).has_value());
  g.pump();
  const LogIndex y = x + 1;
  auto sent_y = [&] {
    for (const raft::Message& m : host_.sent) {
      if (m.type != raft::MessageType::kAppend || m.to != NodeId(2)) continue;
      for (const raft::Entry& e : m.entries) {
        if (e.index == y) return true;  // (node 3 is sent the same)
      }
    }
    return false;
  };
  EXPECT_EQ(sent_y(), on);
  // Nodes 2 and 3 acknowledge x and y (durable there): both commit while the leader still
  // waits for its own fsync of x, and x is applied; y is not written here yet, so it waits.
  if (on) {
    ack.index = y;
    for (NodeId from : {NodeId(2), NodeId(3)}) {
      ack.from = from;
      g.step(ack);
    }
    g.pump();
    EXPECT_EQ(g.node().committed(), y);
    ASSERT_FALSE(g.applied_entries.empty());
    EXPECT_EQ(std::get<2>(g.applied_entries.back()), "x");
  }
  durable();  // x durable: the next Ready writes y (and sends it, when it was not sent yet)
  EXPECT_TRUE(sent_y());
  if (on) {
    // y was committed by the followers' acknowledgements: applied once written here.
    ASSERT_FALSE(g.applied_entries.empty());
    EXPECT_EQ(std::get<2>(g.applied_entries.back()), "y");
  }
}

INSTANTIATE_TEST_SUITE_P(OnAndOff, RaftGroupSendWhileParked, ::testing::Bool());

}  // namespace
}  // namespace mq::cluster
