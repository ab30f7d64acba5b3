#include "cluster/controller.h"

#include <algorithm>

#include "cluster/partition.h"  // steady_now_ms

namespace mq::cluster {

ControllerGroup::ControllerGroup(GroupHost* host, RaftGroupOptions options,
                                 std::unique_ptr<GroupStorage> storage,
                                 std::uint64_t snapshot_interval_entries)
    : RaftGroup(host, std::move(options), std::move(storage)),
      snapshot_interval_entries_(snapshot_interval_entries) {}

ControllerGroup::~ControllerGroup() { abort_all(Status::unavailable("controller stopped")); }

Status ControllerGroup::init() {
  auto snapshot = storage().snapshot();
  if (!snapshot.has_value()) return snapshot.error();
  last_snapshot_ = snapshot->meta.index;
  snapshot_conf_ = snapshot->meta.conf_state;
  if (!snapshot->data.empty()) {
    MQ_ASSIGN_OR_RETURN(state_, ControllerState::decode_snapshot(snapshot->data.view()));
  }
  return Status::ok();
}

ControllerGroup::Carry ControllerGroup::take_carry() {
  Carry carry;
  carry.applied = std::max(applied(), carried_applied_);
  carry.state = std::move(state_);
  carry.reserved_next_group = reserved_next_group_;
  state_ = ControllerState();
  return carry;
}

void ControllerGroup::adopt_carry(Carry carry) {
  if (carry.reserved_next_group > reserved_next_group_) {
    reserved_next_group_ = carry.reserved_next_group;
  }
  // The snapshot on disk is never newer than what the stopped replica had applied (it took
  // its snapshots at its applied index, or installed one and applied from there): this is
  // for a directory that changed behind our back.
  if (carry.applied <= applied()) return;
  state_ = std::move(carry.state);
  carried_applied_ = carry.applied;
}

GroupId ControllerGroup::reserve_groups(std::size_t count) {
  if (reserved_next_group_ < state_.next_group()) reserved_next_group_ = state_.next_group();
  GroupId first = reserved_next_group_;
  reserved_next_group_ = reserved_next_group_ + count;
  return first;
}

void ControllerGroup::propose(const Command& command, std::int64_t timeout_ms, Done done) {
  if (failed()) return done(Status::unavailable("controller replica failed"));
  if (!leader_ready()) return done(Status::not_leader("not the controller"));
  if (waiters_.size() >= kWaitersMax) {
    return done(Status::limit_exceeded("too many controller commands in flight"));
  }
  Buffer bytes = encode_command(command);
  Result<LogIndex> index = node().propose(SharedBuffer(std::move(bytes)));
  if (!index.has_value()) return done(index.error());
  waiters_[*index] = Waiter{term(), steady_now_ms() + timeout_ms, std::move(done)};
  if (on_proposed) on_proposed(this);
}

void ControllerGroup::on_apply(const raft::Entry& entry) {
  Status outcome;
  // Already in the carried state (adopt_carry): applying it again would apply it twice.
  const bool carried = entry.index <= carried_applied_;
  if (entry.type == raft::EntryType::kNormal && !carried) {
    Result<Command> command = decode_command(entry.payload.view());
    if (!command.has_value()) {
      // Only a leader's encoder writes these bytes; a bad one is skipped on every replica
      // alike (deterministic), never a crash.
      outcome = command.error();
      host_->log("controller: skipping undecodable command at index " +
                 std::to_string(entry.index.value()) + ": " + outcome.to_string());
    } else {
      outcome = state_.apply(*command);
    }
  }
  if (is_raft_leader() && entry.term == term()) leader_ready_ = true;
  for (auto it = waiters_.begin(); it != waiters_.end() && it->first <= entry.index;) {
    Waiter w = std::move(it->second);
    bool mine = it->first == entry.index && w.term == entry.term;
    it = waiters_.erase(it);
    if (w.done) w.done(mine ? outcome : Status::not_leader("controller leadership changed"));
  }
  if (entry.type == raft::EntryType::kConfChange) membership_dirty_ = true;
  if (entry.type == raft::EntryType::kNormal && !carried && on_state_changed) on_state_changed();
  if (carried && entry.index == carried_applied_) carried_applied_ = LogIndex(0);
  maybe_compact();
}

void ControllerGroup::maybe_compact() {
  if (membership_dirty_ || applied() - last_snapshot_ < snapshot_interval_entries_) return;
  take_snapshot();  // retried after the next apply if not possible now
}

void ControllerGroup::snapshot_if_membership_changed() {
  if (failed() || applied() <= last_snapshot_) return;
  if (!membership_dirty_ && node().conf_state() == snapshot_conf_) return;
  if (take_snapshot()) {
    membership_dirty_ = false;
    host_->log("controller: snapshot at index " + std::to_string(applied().value()) +
               " records the membership " + raft::describe(snapshot_conf_));
  }
}

bool ControllerGroup::take_snapshot() {
  if (applied() > storage().durable_index()) return false;
  // The carried state is ahead of applied(): an image of it is not the state at applied().
  if (applied() < carried_applied_) return false;
  auto t = storage().term(applied());
  if (!t.has_value()) return false;
  raft::ConfState conf = node().conf_state();
  Buffer image = state_.encode_snapshot();
  Status s = storage().compact(applied(), *t, conf, SharedBuffer(std::move(image)));
  if (!s.is_ok()) {
    host_->log("controller: snapshot failed: " + s.to_string());
    return false;
  }
  last_snapshot_ = applied();
  snapshot_conf_ = std::move(conf);
  return true;
}

void ControllerGroup::on_soft_state(const raft::SoftState& soft_state) {
  if (soft_state.role != raft::Role::kLeader) leader_ready_ = false;
}

void ControllerGroup::on_snapshot_installed(const raft::Snapshot& snapshot) {
  if (snapshot.meta.index <= carried_applied_) {
    // A snapshot older than the carried state (the leader's compaction point, sent to a
    // re-opened replica whose log lost entries): the carried state already contains it
    // (both are states of the one committed prefix); keep it and go on skipping.
    last_snapshot_ = snapshot.meta.index;
    snapshot_conf_ = snapshot.meta.conf_state;
    membership_dirty_ = false;
    if (snapshot.meta.index == carried_applied_) carried_applied_ = LogIndex(0);
    return;
  }
  carried_applied_ = LogIndex(0);
  auto decoded = ControllerState::decode_snapshot(snapshot.data.view());
  if (!decoded.has_value()) {
    host_->log("controller: bad snapshot from the leader: " + decoded.error().to_string());
    return;
  }
  state_ = std::move(*decoded);
  last_snapshot_ = snapshot.meta.index;
  snapshot_conf_ = snapshot.meta.conf_state;
  membership_dirty_ = false;
  if (on_state_changed) on_state_changed();
}

void ControllerGroup::sweep(std::int64_t now_ms) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.deadline_ms > now_ms) {
      ++it;
      continue;
    }
    Done done = std::move(it->second.done);
    it = waiters_.erase(it);
    if (done) done(Status::timeout("controller command not committed in time"));
  }
}

void ControllerGroup::on_failed(const Status& status) {
  leader_ready_ = false;
  abort_all(status);
}

void ControllerGroup::abort_all(const Status& status) {
  std::map<LogIndex, Waiter> waiters;
  waiters.swap(waiters_);
  for (auto& [index, w] : waiters) {
    if (w.done) w.done(status);
  }
}

}  // namespace mq::cluster
