// Randomized whole-group runs over the test cluster: partitions, loss, duplication,
// reordering, crash-restarts losing unsynced state, membership changes, compaction with
// snapshots, leadership transfers and reads, with safety checked after every step:
//   - at most one leader per term (§5.2 Election Safety);
//   - every replica applies the same entry at each index (§5.4.3 State Machine Safety);
//   - the core's own state and delta invariants (check_invariants, on in the test cluster).
// Then faults stop and the group must converge (liveness). Seeds are fixed: a failure
// replays exactly.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "base/prng.h"
#include "raft/raw_node.h"
#include "raft/testing/cluster.h"

namespace mq::raft {
namespace {

using testing::Cluster;

class RandomRun {
 public:
  explicit RandomRun(std::uint64_t seed)
      : prng_(seed),
        cluster_({NodeId(1), NodeId(2), NodeId(3)}, {}, [seed](Config& cfg) {
          cfg.random_seed = seed;
          // Odd seeds use lease reads (all nodes tick together: the clock assumption holds).
          if (seed % 2 == 1) cfg.read_only = ReadOnlyOption::kLeaseBased;
          cfg.max_inflight_msgs = 4;
          cfg.max_msg_bytes = 256;
        }) {
    // Nodes 4 and 5 exist but start outside the group (bootstrapped with its membership so
    // they can join by a conf change).
    ConfState cs;
    cs.voters = {NodeId(1), NodeId(2), NodeId(3)};
    cluster_.add_node(NodeId(4), cs);
    cluster_.add_node(NodeId(5), cs);
  }

  void run(int steps) {
    for (int step = 0; step < steps; ++step) {
      random_action();
      check_safety();
    }
  }

  void heal_and_converge() {
    cluster_.heal();
    for (int i = 0; i < 200; ++i) {
      cluster_.tick_all(1);
      cluster_.stabilize();
      check_safety();
    }
    auto leader = cluster_.leader();
    if (!leader) {
      std::string all;
      for (NodeId id : cluster_.ids()) {
        const NodeStatus s = cluster_.node(id).status();
        all += "\n  node " + std::to_string(id.value()) + ": " + describe(s.hard_state) + " " +
               describe(s.soft_state) + " last=" + std::to_string(s.last_index.value()) +
               " applied=" + std::to_string(s.applied.value()) + " " +
               describe(cluster_.node(id).conf_state());
      }
      FAIL() << "no leader after healing:" << all;
    }
    ASSERT_TRUE(cluster_.node(*leader).propose(SharedBuffer(std::string_view("final"))).has_value());
    for (int i = 0; i < 20; ++i) {
      cluster_.tick_all(1);
      cluster_.stabilize();
    }
    check_safety();
    const NodeStatus ls = cluster_.node(*leader).status();
    const ConfState cs = cluster_.node(*leader).conf_state();
    std::vector<NodeId> members = cs.voters;
    members.insert(members.end(), cs.learners.begin(), cs.learners.end());
    for (NodeId id : members) {
      const NodeStatus s = cluster_.node(id).status();
      std::string progress = "none";
      if (auto it = ls.progress.find(id); it != ls.progress.end()) {
        progress = std::string(progress_state_name(it->second.state)) +
                   " match=" + std::to_string(it->second.match.value()) +
                   " next=" + std::to_string(it->second.next.value()) +
                   " active=" + std::to_string(it->second.recent_active);
      }
      EXPECT_EQ(s.applied, ls.hard_state.commit)
          << "member " << id << " lags: " << describe(s.hard_state) << " "
          << describe(s.soft_state) << " last=" << s.last_index << " conf "
          << describe(cluster_.node(id).conf_state()) << "; leader " << *leader
          << " conf " << describe(cs) << " progress " << progress;
    }
  }

  std::size_t committed() const { return committed_.size(); }

 private:
  NodeId random_node() { return NodeId(1 + prng_.uniform(5)); }

  void random_action() {
    const std::uint64_t r = prng_.uniform(100);
    if (r < 30) {
      cluster_.tick_all(1);
    } else if (r < 45) {
      if (auto leader = cluster_.leader()) {
        (void)cluster_.node(*leader).propose(SharedBuffer("v" + std::to_string(proposals_++)));
      }
    } else if (r < 70) {
      deliver_some();
    } else if (r < 80) {
      for (NodeId id : cluster_.ids()) cluster_.process_ready(id);
    } else if (r < 84) {
      partition();
    } else if (r < 86) {
      crash(random_node());
    } else if (r < 89) {
      conf_change();
    } else if (r < 92) {
      compact(random_node());
    } else if (r < 94) {
      if (auto leader = cluster_.leader()) {
        (void)cluster_.node(*leader).transfer_leader(random_node());
      }
    } else if (r < 97) {
      // Linearizability of ReadIndex (thesis §6.4): the answer must cover every entry
      // committed anywhere before the request was made.
      LogIndex max_commit;
      for (NodeId id : cluster_.ids()) {
        max_commit = std::max(max_commit, cluster_.node(id).status().hard_state.commit);
      }
      read_floor_[++read_context_] = max_commit;
      (void)cluster_.node(random_node()).read_index(read_context_);
    } else {
      cluster_.heal();
    }
  }

  void deliver_some() {
    for (NodeId id : cluster_.ids()) {
      if (prng_.chance(2, 3)) cluster_.process_ready(id);
    }
    std::vector<Message> msgs = cluster_.take_messages();
    std::vector<Message> keep;
    for (Message& m : msgs) {
      if (prng_.chance(1, 10)) continue;                         // lost
      if (prng_.chance(1, 8)) {                                  // delayed to a later round
        delayed_.push_back(m);
        continue;
      }
      if (prng_.chance(1, 12)) keep.push_back(m);                // duplicated
      keep.push_back(std::move(m));
    }
    if (!delayed_.empty() && prng_.chance(1, 2)) {
      keep.insert(keep.end(), delayed_.begin(), delayed_.end());  // reordered
      delayed_.clear();
    }
    for (std::size_t i = keep.size(); i > 1; --i) std::swap(keep[i - 1], keep[prng_.uniform(i)]);
    for (Message& m : keep) cluster_.queue().push_back(std::move(m));
    cluster_.deliver_queued();
  }

  void partition() {
    cluster_.heal();
    const NodeId a = random_node();
    if (prng_.chance(1, 2)) {
      cluster_.isolate(a);
    } else {
      cluster_.cut(a, random_node());
    }
  }

  void crash(NodeId id) {
    cluster_.crash_and_restart(id);
    applied_cursor_[id] = 0;
    read_cursor_[id] = 0;
    cluster_.test_node(id.value()).read_states.clear();
  }

  void conf_change() {
    auto leader = cluster_.leader();
    if (!leader) return;
    ConfChange cc;
    const std::uint64_t r = prng_.uniform(4);
    const NodeId target = random_node();
    if (r == 0) cc.changes = {{ConfChangeType::kAddNode, target}};
    if (r == 1) cc.changes = {{ConfChangeType::kAddLearner, target}};
    if (r == 2) cc.changes = {{ConfChangeType::kRemoveNode, target}};
    if (r == 3) {
      cc.changes = {{ConfChangeType::kAddNode, target}, {ConfChangeType::kAddNode, random_node()}};
    }
    (void)cluster_.node(*leader).propose_conf_change(cc);  // may be refused: fine
  }

  void compact(NodeId id) {
    MemoryStorage& s = cluster_.storage(id.value());
    const LogIndex applied = cluster_.node(id).status().applied;
    if (applied <= s.first_index()) return;
    if (!s.create_snapshot(applied, cluster_.node(id).conf_state(), {}).has_value()) return;
    ASSERT_TRUE(s.compact(applied).is_ok());
  }

  void check_safety() {
    for (NodeId id : cluster_.ids()) {
      const NodeStatus s = cluster_.node(id).status();
      if (s.soft_state.role == Role::kLeader) {
        auto [it, inserted] = leaders_.emplace(s.hard_state.term, id);
        ASSERT_EQ(it->second, id) << "two leaders in term " << s.hard_state.term;
      }
      const auto& reads = cluster_.test_node(id.value()).read_states;
      std::size_t& read_cursor = read_cursor_[id];
      for (; read_cursor < reads.size(); ++read_cursor) {
        auto it = read_floor_.find(reads[read_cursor].request_context);
        ASSERT_NE(it, read_floor_.end());
        const LogIndex index = reads[read_cursor].index;
        ++reads_answered_;
        ASSERT_GE(index, it->second) << "stale read at node " << id << " context " << it->first;
      }
      const auto& applied = cluster_.test_node(id.value()).applied;
      std::size_t& cursor = applied_cursor_[id];
      for (; cursor < applied.size(); ++cursor) {
        const Entry& e = applied[cursor];
        auto [it, inserted] = committed_.emplace(e.index, e);
        ASSERT_EQ(it->second, e) << "node " << id << " applied a different entry at "
                                 << e.index;
      }
    }
  }

  Prng prng_;
  Cluster cluster_;
  std::vector<Message> delayed_;
  std::map<Term, NodeId> leaders_;
  std::map<LogIndex, Entry> committed_;
  std::map<NodeId, std::size_t> applied_cursor_;
  std::map<NodeId, std::size_t> read_cursor_;
  std::map<std::uint64_t, LogIndex> read_floor_;

 public:
  std::size_t reads_answered_ = 0;

 private:
  std::uint64_t proposals_ = 0;
  std::uint64_t read_context_ = 0;
};

TEST(RaftRandom, SafetyUnderFaultsAndLivenessAfterHealing) {
  // RAFT_RANDOM_SEEDS=N runs more seeds (CI runs 30).
  std::uint64_t seeds = 30;
  if (const char* env = std::getenv("RAFT_RANDOM_SEEDS")) seeds = std::strtoull(env, nullptr, 10);
  std::size_t total_committed = 0;
  std::size_t total_reads = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RandomRun run(seed);
    run.run(1500);
    if (::testing::Test::HasFatalFailure()) return;
    run.heal_and_converge();
    if (::testing::Test::HasFatalFailure()) return;
    total_committed += run.committed();
    total_reads += run.reads_answered_;
  }
  EXPECT_GT(total_committed, 300u);
  EXPECT_GT(total_reads, 10u);
}

}  // namespace
}  // namespace mq::raft
