// RaftGroup: hosts one raft::RawNode on the broker's event loop and carries out its Ready
// contract (ready.h, docs/raft_driver.md) against a GroupStorage and the transport:
//
//   1. `messages` are handed to the transport at once (the leader's disk write runs in
//      parallel with replication, thesis §10.2.1);
//   2. a received snapshot is installed, `entries_to_persist` appended to the Log (page
//      cache), the hard state written when term/vote changed (synchronously: rare);
//   3. if the appended entries are not yet durable, the group parks the Ready until the
//      storage Flusher (group commit, its own thread) reports them durable — the report is
//      posted back to the loop and arrives through on_durable(); meanwhile tick/step/propose
//      continue and new proposals accumulate for the next Ready (batching);
//   4. `messages_after_persist` are sent, `committed_entries` applied (subclass hook), and
//      advance() called; the applied index is checkpointed now and then.
//
// Subclasses (PartitionGroup, ControllerGroup) implement the state machine hooks.
// Not thread-safe: event loop only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "cluster/entry_cache.h"
#include "cluster/group_storage.h"
#include "cluster/loop_watch.h"
#include "raft/raw_node.h"

namespace mq::cluster {

// What a group needs from its host (the Node).
class GroupHost {
 public:
  virtual ~GroupHost() = default;
  // Sends a Raft message of `group` to node `to` (never blocks; may drop).
  virtual bool send_message(GroupId group, raft::Message message) = 0;
  // The messages of one step of the Ready contract were handed to send_message(): write them
  // out now, before the step that follows (the leader's own log write), so that replication
  // runs in parallel with it (thesis §10.2.1). Default: no-op (the transport flushes itself).
  virtual void flush_messages() {}
  virtual void log(std::string_view line) = 0;
  // The group's leader changed (as this replica sees it; kNoNode: none known). Default: no-op.
  virtual void on_leader_changed(GroupId group, NodeId leader) {
    (void)group;
    (void)leader;
  }
  // `group` started or woke from quiescence: the host ticks it again (only awake groups are
  // ticked, so a tick costs O(awake groups), not O(all)). Default: no-op.
  virtual void on_awake(GroupId group) { (void)group; }
  // `group` parked a produce or fetch waiter with a deadline: the host sweeps it
  // (PartitionGroup::sweep) until it has none, whether it is awake or quiesced. Default: no-op.
  virtual void on_waiter(GroupId group) { (void)group; }
  // A ReadIndex request of `group` was confirmed (after the Ready's entries were applied).
  virtual void on_read_state(GroupId group, const raft::ReadState& state) {
    (void)group;
    (void)state;
  }
  // pump() stopped at its time budget with Readies left: pump `group` again soon, after the
  // loop's other handlers (a later turn of the loop). Default: no-op (the next tick pumps).
  virtual void on_ready_pending(GroupId group) { (void)group; }
  // The stall detector of the loop the group runs on (loop_watch.h); nullptr: none.
  virtual LoopWatch* loop_watch() { return nullptr; }
};

struct RaftGroupOptions {
  GroupId group;
  std::string name;
  raft::Config raft;  // id, ticks, limits, seed
  // Checkpoint the applied index every this many applied entries (bounds re-application
  // work after a restart).
  std::uint64_t checkpoint_interval_entries = 4096;
  // The most recent entries kept in memory for the core (entry_cache.h); cleared when the
  // group quiesces.
  std::uint64_t entry_cache_bytes = 2u << 20;
  // One pump() handles Readies for at most about this long (plus the one in progress), then
  // leaves the rest for a later turn of the loop (GroupHost::on_ready_pending), so that the
  // loop's heartbeats, ticks and acknowledgements are not held behind a catch-up backlog
  // (tests/chaos/FINDINGS.md F2, "Remaining"). 0: no limit but the round count.
  std::int64_t pump_budget_ms = 20;
  // While a leader's Ready is parked for its fsync, send what the core produced meanwhile
  // (appends of new proposals, heartbeats: raft::RawNode::take_leader_messages) instead of
  // holding it for the next Ready (docs/raft_driver.md "A leader's messages while its Ready
  // is being persisted").
  bool send_while_parked = true;
};

class RaftGroup {
 public:
  RaftGroup(GroupHost* host, RaftGroupOptions options, std::unique_ptr<GroupStorage> storage);
  virtual ~RaftGroup();
  RaftGroup(const RaftGroup&) = delete;
  RaftGroup& operator=(const RaftGroup&) = delete;

  // Creates the RawNode from the storage's state. Call once.
  Status start();

  // `ticks` Raft ticks at once (raft::RawNode::tick: at most one heartbeat round for them).
  void tick(std::uint32_t ticks = 1);
  void step(const raft::Message& message);
  // Processes Readies until none is pending, one waits for durability, or the time budget
  // (RaftGroupOptions::pump_budget_ms) is spent; then GroupHost::on_ready_pending.
  void pump();
  // The Flusher made the log durable up to `index` (posted to the loop).
  void on_durable(LogIndex index);
  void report_unreachable(NodeId node);
  // The transport's connection to `node` failed (refused or reset: on loopback and LANs that
  // means its process is gone). If `node` is this follower's leader it is forgotten
  // (RawNode::forget_leader), so this replica grants an up-to-date candidate's (Pre)Vote at
  // once. Returns whether the leader was forgotten.
  bool forget_leader_if(NodeId node);
  // ReadIndex (thesis §6.4); the answer comes through GroupHost::on_read_state.
  Status read_index(std::uint64_t request_context);
  // Starts a (Pre)Vote campaign now if this replica is a follower without a known leader.
  void campaign_if_leaderless();
  // Checkpoints the applied index now (shutdown).
  void checkpoint_now();

  // ---- Quiescing (docs/cluster.md "Quiescing"; CockroachDB's quiesced ranges) ----
  // A quiesced group is not ticked: no heartbeats (leader), no election timer (follower).
  // It wakes on any stepped message but a heartbeat response, on any Ready (a proposal,
  // a read, a transfer), on campaign_if_leaderless / forget_leader_if, and on wake().
  bool quiesced() const { return quiesced_; }
  void wake();
  // Leader, once per tick: quiesces after the group has been quiescable
  // (RawNode::quiescable_as_leader, peers in `down` excepted) for kQuiesceAfterTicks
  // consecutive ticks — long enough for a heartbeat to carry the final commit index to every
  // follower. Returns true when it quiesced; the caller then tells the followers
  // (quiesced_at()).
  bool maybe_quiesce_as_leader(std::span<const NodeId> down);
  // The (term, last index) the leader quiesced at.
  std::pair<Term, LogIndex> quiesced_at() const { return {quiesced_term_, quiesced_index_}; }
  // Follower: the leader's notice that it quiesced at (term, index); quiesces if this
  // replica follows it in that term and holds exactly its log, committed and applied.
  bool quiesce_as_follower(NodeId leader, Term term, LogIndex index);

  GroupId id() const { return options_.group; }
  const std::string& name() const { return options_.name; }
  raft::RawNode& node() { return *node_; }
  const raft::RawNode& node() const { return *node_; }
  bool started() const { return node_ != nullptr; }
  bool failed() const { return !failed_.is_ok(); }
  const Status& failure() const { return failed_; }
  bool is_raft_leader() const { return soft_state_.role == raft::Role::kLeader; }
  // Steady-clock ms of the last Append, Heartbeat or Snapshot received from a leader (0: never).
  std::int64_t last_leader_message_ms() const { return last_leader_message_ms_; }
  NodeId leader() const { return soft_state_.leader; }
  Term term() const { return term_; }
  LogIndex applied() const { return applied_; }
  LogIndex commit() const { return commit_; }
  GroupStorage& storage() { return *storage_; }
  const GroupStorage& storage() const { return *storage_; }
  const CachingStorageView* entry_cache() const { return view_.get(); }

 protected:
  // Hooks, all on the loop.
  virtual void on_appended(const std::vector<AppendedEntry>& appended) { (void)appended; }
  virtual void on_apply(const raft::Entry& entry) = 0;
  // After a run of on_apply() calls (the committed entries of one Ready, or its durable
  // prefix): work that wants all of them at once (waking parked fetches).
  virtual void on_applied() {}
  virtual void on_local_durable(LogIndex index) { (void)index; }
  virtual void on_soft_state(const raft::SoftState& soft_state) { (void)soft_state; }
  virtual void on_snapshot_installed(const raft::Snapshot& snapshot) { (void)snapshot; }
  virtual void on_failed(const Status& status) { (void)status; }
  // Runs before the applied index is checkpointed (state that must be persisted with it,
  // e.g. the partition's producer state). An error stops the replica like a storage error.
  virtual Status on_checkpoint(LogIndex applied) {
    (void)applied;
    return Status::ok();
  }

  GroupHost* host_;

 private:
  void process(raft::Ready ready);
  void finish(raft::Ready ready);
  // Applies the committed entries of `ready` that are locally durable before its new entries
  // are (so that a commit does not wait for the next fsync); finish() applies the rest.
  void apply_durable_prefix(const raft::Ready& ready);
  // While a Ready is parked for the local fsync: applies the entries it carries (committed or
  // to persist) that the core has meanwhile seen committed by a majority of *other* replicas'
  // acknowledgements, so that a produce is answered without waiting for the leader's own
  // fsync and the Ready cycle after it. finish() skips what was applied here.
  void apply_committed_while_parked();
  void fail(Status status);
  void send_all(std::vector<raft::Message>& messages);
  // One log line per role change, with what explains an election (FINDINGS.md F2): how long
  // ago a leader was last heard from and the longest gap between two ticks since.
  void log_role_change(const raft::SoftState& before, const raft::SoftState& after);
  std::string explain_gap(std::int64_t gap_ms);

  RaftGroupOptions options_;
  std::unique_ptr<GroupStorage> storage_;
  std::unique_ptr<CachingStorageView> view_;  // what the core reads; before node_
  std::unique_ptr<raft::RawNode> node_;
  raft::SoftState soft_state_;
  Term term_;
  LogIndex applied_;
  LogIndex commit_;
  // A Ready whose entries wait for the Flusher; set => no ready() until it is finished.
  std::optional<raft::Ready> parked_;
  LogIndex parked_until_;
  LogIndex last_checkpoint_;
  bool conf_changed_since_checkpoint_ = false;
  Status failed_;
  std::int64_t last_leader_message_ms_ = 0;  // steady clock; an Append/Heartbeat/Snapshot
  std::int64_t last_tick_ms_ = 0;
  std::int64_t max_tick_gap_ms_ = 0;  // since the last role change
  bool quiesced_ = false;
  std::uint32_t quiescable_ticks_ = 0;  // consecutive ticks quiescable (leader)
  Term quiesced_term_;
  LogIndex quiesced_index_;
};

}  // namespace mq::cluster
