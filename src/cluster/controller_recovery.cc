// The controller replica (Raft group 0) and storage errors (docs/cluster.md "A storage error
// stops that replica", "Lost synced entries"; tests/chaos/FINDINGS.md F1):
//
//   - Opening: the controller log reports its synced index to the broker's sync ledger under
//     key 0 (kControllerGroup; partition groups are >= 1), like a partition replica. A
//     controller replica whose log ends below its record lost entries it may have
//     acknowledged: it gets the abstention file in its directory and abstains (no vote, no
//     campaign) until its log holds that index again, then the file goes (Raft §5.4.3: the
//     commitment argument needs every voter to keep what it acknowledged; the controller's
//     voters are every broker, so one that forgot a committed entry could otherwise help elect
//     a controller leader lacking it, and committed metadata would be lost).
//   - Re-opening: a controller replica stopped by a storage error (RaftGroup::fail) is closed
//     and re-opened from its directory by the partition replicas' policy (replica_recovery.h:
//     kNoSpace once the free space is above free_bytes_min, with back-off and no attempt
//     limit; other errors a few times). It restarts as a follower from its log (§5.3: the
//     leader re-sends or overwrites what it lacks) and keeps the state machine of the stopped
//     replica (ControllerGroup::Carry): the broker's metadata never goes back in time.
//     A re-open that fails leaves the broker without a controller replica (as a broker that
//     has not joined yet: no metadata, no partitions served) and the policy retries.
#include <algorithm>
#include <asio/post.hpp>

#include "cluster/ids.h"
#include "cluster/node.h"
#include "cluster/replica_repair.h"
#include "storage/file_system.h"

namespace mq::cluster {

Status Node::open_controller() {
  MQ_ASSIGN_OR_RETURN(controller_, open_controller_group());
  return Status::ok();
}

Result<std::unique_ptr<ControllerGroup>> Node::open_controller_group() {
  raft::ConfState bootstrap;
  for (const BrokerAddress& b : config_.brokers) bootstrap.voters.push_back(node_of(b.id));
  std::sort(bootstrap.voters.begin(), bootstrap.voters.end());
  GroupStorageOptions so;
  so.directory = config_.data_dir + "/controller";
  so.name = "controller";
  so.format = PayloadFormat::kRaw;
  so.bootstrap = bootstrap;
  so.segment_size_bytes_max = 64u << 20;
  so.sync_ledger = sync_ledger_.get();  // null with RAFTMQ_SYNC_LEDGER=off
  so.sync_ledger_key = kControllerGroup.value();
  auto alive = alive_;
  so.on_durable = [this, alive](LogIndex index) {
    asio::post(loop_, [this, alive, index] {
      // A report of a closed (re-opened) log is clamped by RaftGroup::on_durable.
      if (*alive && controller_) controller_->on_durable(index);
    });
  };
  MQ_ASSIGN_OR_RETURN(auto storage, GroupStorage::open(partition_file_system(),
                                                       storage::SystemClock::instance(),
                                                       flusher_.get(), std::move(so)));
  RaftGroupOptions go;
  go.group = kControllerGroup;
  go.name = "controller";
  go.raft = raft_config(bootstrap.voters);
  go.send_while_parked = config_.send_while_parked;
  auto group = std::make_unique<ControllerGroup>(this, go, std::move(storage),
                                                 config_.controller_snapshot_interval_entries);
  MQ_RETURN_IF_ERROR(group->start());
  MQ_RETURN_IF_ERROR(apply_controller_abstention(*group));
  MQ_RETURN_IF_ERROR(group->init());
  group->on_state_changed = [this] {
    sync_peers();  // node_join.cc: brokers that joined
    answer_applied_queries();  // node_propagation.cc
    // Reconcile soon (not from inside the controller's apply): a new topic's replicas then
    // start within one loop turn instead of up to reconcile_interval_ms later.
    metadata_changed_ = true;
    if (reconcile_posted_) return;
    reconcile_posted_ = true;
    asio::post(loop_, [this, alive = alive_] {
      if (!*alive) return;
      reconcile_posted_ = false;
      LoopWatch::Section section(loop_watch(), "reconcile");
      reconcile();
    });
  };
  group->on_proposed = [this](ControllerGroup*) { schedule_pump(kControllerGroup); };
  return group;
}

Status Node::apply_controller_abstention(ControllerGroup& group) {
  storage::FileSystem* fs = partition_file_system();
  const std::string& dir = group.storage().options().directory;
  MQ_ASSIGN_OR_RETURN(auto until, replica_repair::load_abstention(fs, dir));
  if (auto lost = group.storage().lost_synced_end()) {
    // Durable before the replica takes part in anything (it has not run yet).
    LogIndex bound = std::max(*lost, until.value_or(LogIndex(0)));
    MQ_RETURN_IF_ERROR(replica_repair::save_abstention(fs, dir, bound));
    ++metrics_.replicas_lost_synced;
    log("controller: LOST SYNCED ENTRIES: its log ends at index " +
        std::to_string(group.storage().last_index().value()) +
        " but the sync ledger records it synced up to index " + std::to_string(lost->value()) +
        " (it may have acknowledged them: a truncated segment?); the controller leader re-sends "
        "them, and this replica abstains until it holds index " + std::to_string(bound.value()) +
        " again");
    until = bound;
  }
  controller_repair_bound_ = LogIndex(0);
  if (!until) return Status::ok();
  // If the log already holds the bound the core does not abstain; finish_controller_repair
  // removes the file.
  group.node().set_abstain_until(*until);
  controller_repair_bound_ = *until;
  log("controller: replica abstains (no vote, no campaign) until its log reaches index " +
      std::to_string(until->value()) + " again (it lost entries it had synced)");
  return Status::ok();
}

void Node::finish_controller_repair() {
  if (controller_repair_bound_ == LogIndex(0) || !controller_ || controller_->failed()) return;
  if (controller_->storage().durable_index() < controller_repair_bound_) return;
  Status removed = replica_repair::remove_abstention(partition_file_system(),
                                                     controller_->storage().options().directory);
  if (!removed.is_ok()) {
    log("controller: cannot remove the abstention file (retrying): " + removed.to_string());
    return;
  }
  controller_->node().set_abstain_until(LogIndex(0));
  log("controller: replica caught up to index " + std::to_string(controller_repair_bound_.value()) +
      ": it votes and campaigns again");
  controller_repair_bound_ = LogIndex(0);
}

void Node::recover_controller(std::int64_t now_ms) {
  finish_controller_repair();
  if (shutting_down_ || stopped_ || !config_.replica_recovery.enabled) return;
  Status failure;
  if (controller_) {
    if (!controller_->failed()) {
      recovery_.running(kControllerGroup, now_ms);
      return;
    }
    failure = controller_->failure();
  } else if (controller_held_) {
    failure = controller_held_error_;
  } else {
    return;  // not opened yet (a broker waiting for its join)
  }
  std::optional<std::uint64_t> free;
  auto f = partition_file_system()->free_bytes(config_.data_dir + "/controller");
  if (f.has_value()) free = *f;
  switch (recovery_.decide(kControllerGroup, failure, now_ms, free)) {
    case ReplicaRecovery::Decision::kWait:
    case ReplicaRecovery::Decision::kStopped:
      break;
    case ReplicaRecovery::Decision::kGiveUp:
      log("controller: replica stays stopped after " +
          std::to_string(recovery_.attempts(kControllerGroup)) + " re-open attempts: " +
          failure.to_string() +
          " (the controller quorum runs without this broker: fix the disk, then restart it)");
      break;
    case ReplicaRecovery::Decision::kReopen:
      reopen_controller(now_ms);
      break;
  }
}

void Node::reopen_controller(std::int64_t now_ms) {
  std::optional<ControllerGroup::Carry> carry;
  if (controller_) {
    // The crash path (replica_recovery.h): drop the frozen replica (its waiters failed when
    // it stopped), keeping its state machine, then recover it from its directory.
    controller_->abort_all(Status::unavailable("controller replica re-opening"));
    carry = controller_->take_carry();
    auto stopped = std::move(controller_);
    controller_.reset();
    stopped.reset();  // closes the log (the flusher forgets it)
  } else {
    carry = std::move(controller_held_);
    controller_held_.reset();
  }
  auto group = open_controller_group();
  if (!group.has_value()) {
    controller_held_ = std::move(carry);
    controller_held_error_ = group.error();
    recovery_.reopen_failed(kControllerGroup, "controller", -1, group.error(), now_ms);
    log("controller: re-opening the stopped replica failed (attempt " +
        std::to_string(recovery_.attempts(kControllerGroup)) + "): " +
        group.error().to_string() + "; this broker serves no metadata until it opens");
    return;
  }
  const LogIndex applied = carry ? carry->applied : LogIndex(0);
  if (carry) (*group)->adopt_carry(std::move(*carry));
  controller_ = std::move(*group);
  controller_held_error_ = Status::ok();
  recovery_.reopened(kControllerGroup, now_ms);
  log("controller: stopped replica re-opened from its directory (attempt " +
      std::to_string(recovery_.attempts(kControllerGroup)) + "): log ends at index " +
      std::to_string(controller_->storage().last_index().value()) + ", metadata kept as of index " +
      std::to_string(std::max(applied, controller_->applied()).value()) +
      "; it rejoins as a follower and catches up from the leader");
  schedule_pump(kControllerGroup);
}

}  // namespace mq::cluster
