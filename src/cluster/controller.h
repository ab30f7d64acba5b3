// ControllerGroup: Raft group 0, replicated on every broker of the static broker list (the
// seed brokers are its voters), holding the ControllerState. Every broker therefore learns
// metadata by hosting a controller replica and applying its log (docs/cluster.md).
//
// Only the controller leader proposes; the Kafka-facing admin calls on another broker get
// kNotLeader (NOT_CONTROLLER), and Metadata names the controller leader as the controller.
// Snapshots: every snapshot_interval_entries applied commands the state is encoded and the
// log compacted up to the applied index (GroupStorage::compact); a follower behind that
// receives the snapshot (Raft §7) and replaces its state.
#pragma once

#include <functional>
#include <map>

#include "cluster/controller_state.h"
#include "cluster/raft_group.h"

namespace mq::cluster {

class ControllerGroup final : public RaftGroup {
 public:
  static constexpr std::size_t kWaitersMax = 1024;  // admin commands awaiting commit
  using Done = std::function<void(Status)>;
  ControllerGroup(GroupHost* host, RaftGroupOptions options, std::unique_ptr<GroupStorage> storage,
                  std::uint64_t snapshot_interval_entries);
  ~ControllerGroup() override;

  // Loads the latest snapshot into the state (after RaftGroup::start()).
  Status init();

  // Re-opening a replica stopped by a storage error (controller_recovery.cc,
  // replica_recovery.h): the state machine of the stopped replica, carried into the one
  // re-opened from disk. A re-opened controller replica restarts from its snapshot and
  // re-applies the log only as the leader tells it the commit index again; until then its
  // state would go BACK in time, and the broker's reconciliation would take the topics
  // created since the snapshot for deleted ones and remove their replicas. So the new replica
  // keeps the state as of `applied` and skips re-applying entries up to it: the committed
  // prefix up to `applied` is the same on every replica (Log Matching, Leader Completeness,
  // Raft §5.3/§5.4), so those entries are exactly the ones already applied.
  struct Carry {
    ControllerState state;
    LogIndex applied;
    GroupId reserved_next_group{1};
  };
  // Moves the state out (the group is stopped and about to be destroyed).
  Carry take_carry();
  // After init(): adopts `carry` unless the snapshot loaded from disk is newer.
  void adopt_carry(Carry carry);
  // Entries up to this index are already in the state (adopt_carry); 0 when none.
  LogIndex carried_applied() const { return carried_applied_; }
  // Proposes a command; `done` gets apply()'s outcome once committed, kNotLeader, or
  // kTimeout after timeout_ms (checked by sweep()).
  void propose(const Command& command, std::int64_t timeout_ms, Done done);
  void sweep(std::int64_t now_ms);
  void abort_all(const Status& status);

  const ControllerState& state() const { return state_; }
  // The next unused partition group id, counting proposals not yet applied.
  GroupId reserve_groups(std::size_t count);
  // True once this leader has applied an entry of its own term (its metadata is current).
  bool leader_ready() const { return is_raft_leader() && leader_ready_; }
  // Takes a snapshot when the membership in effect differs from the last snapshot's (the Node
  // calls it periodically). A restarted controller replica starts from its snapshot's
  // membership, not from the membership of entries it re-applies later: without this, a
  // replica restarted after a voter change would count votes with the bootstrap voters
  // (--peers) until it learned the commit index, and the remaining voters could fail to elect
  // anyone (docs/cluster.md "Controller voters").
  void snapshot_if_membership_changed();
  // Invoked after every applied command (the Node reconciles).
  std::function<void()> on_state_changed;
  std::function<void(ControllerGroup*)> on_proposed;

 protected:
  void on_apply(const raft::Entry& entry) override;
  void on_soft_state(const raft::SoftState& soft_state) override;
  void on_snapshot_installed(const raft::Snapshot& snapshot) override;
  void on_failed(const Status& status) override;

 private:
  struct Waiter {
    Term term;
    std::int64_t deadline_ms = 0;
    Done done;
  };
  void maybe_compact();
  bool take_snapshot();

  ControllerState state_;
  std::uint64_t snapshot_interval_entries_;
  LogIndex last_snapshot_;
  raft::ConfState snapshot_conf_;  // the membership of the last snapshot (or the bootstrap)
  // A configuration entry was applied and no snapshot records it yet. Until the Ready is
  // advanced, node().conf_state() does not reflect it, so no snapshot is taken from on_apply.
  bool membership_dirty_ = false;
  std::map<LogIndex, Waiter> waiters_;
  GroupId reserved_next_group_{1};
  bool leader_ready_ = false;
  LogIndex carried_applied_;  // adopt_carry: applied() below it => state_ is ahead of applied()
};

}  // namespace mq::cluster
