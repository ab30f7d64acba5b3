// RaftGroup::pump is bounded in time (RaftGroupOptions::pump_budget_ms): a follower handed a
// large catch-up (many committed entries, each slow to apply) must give the loop back after
// about the budget, ask its host to pump again (GroupHost::on_ready_pending), and still apply
// everything over later pumps (tests/chaos/FINDINGS.md F2, "Remaining": leader loop stalls).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

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
  std::unique_ptr<SlowGroup> make(std::int64_t budget_ms, int apply_ms) {
    GroupStorageOptions o;
    o.directory = "/g";
    o.name = "g";
    o.format = PayloadFormat::kRaw;
    o.bootstrap.voters = {NodeId(1), NodeId(2)};
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    MQ_ASSERT(s.has_value(), "%s", s.error().to_string().c_str());
    RaftGroupOptions go;
    go.group = GroupId(7);
    go.name = "g";
    go.raft.id = NodeId(1);
    go.raft.election_ticks = 1000;
    go.raft.heartbeat_ticks = 1;
    // One committed entry per Ready: the budget is checked between Readies.
    go.raft.max_committed_bytes_per_ready = 1;
    go.pump_budget_ms = budget_ms;
    auto g = std::make_unique<SlowGroup>(&host_, go, std::move(*s), apply_ms);
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

}  // namespace
}  // namespace mq::cluster
