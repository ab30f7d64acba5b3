#include "raft/confchange/confchange.h"

#include <algorithm>
#include <string>

namespace mq::raft::confchange {

namespace {
std::string id_str(NodeId id) { return std::to_string(id.value()); }

ChangeResult copy_of(const tracker::ProgressTracker& tracker) {
  return ChangeResult{tracker.config, tracker.progress};
}

// Number of voters that differ between two majority configs (symmetric difference).
std::size_t symmetric_difference(const quorum::MajorityConfig& a,
                                 const quorum::MajorityConfig& b) {
  std::size_t n = 0;
  for (NodeId id : a.ids()) n += b.contains(id) ? 0 : 1;
  for (NodeId id : b.ids()) n += a.contains(id) ? 0 : 1;
  return n;
}
}  // namespace

Status check_invariants(const tracker::Config& config, const tracker::ProgressMap& progress) {
  // Every member has a progress entry, and learner flags agree with the sets.
  for (NodeId id : config.voters.ids()) {
    if (progress.find(id) == progress.end()) {
      return Status::corruption("no progress for voter " + id_str(id));
    }
  }
  for (NodeId id : config.learners) {
    auto it = progress.find(id);
    if (it == progress.end()) return Status::corruption("no progress for learner " + id_str(id));
    if (!it->second.is_learner) {
      return Status::corruption("learner " + id_str(id) + " not marked as learner");
    }
    if (config.voters.contains(id)) {
      return Status::corruption("node " + id_str(id) + " is both voter and learner");
    }
  }
  for (NodeId id : config.learners_next) {
    if (progress.find(id) == progress.end()) {
      return Status::corruption("no progress for learner_next " + id_str(id));
    }
    if (!config.voters.outgoing.contains(id)) {
      return Status::corruption("learner_next " + id_str(id) + " is not an outgoing voter");
    }
    if (config.learners.count(id) != 0) {
      return Status::corruption("node " + id_str(id) + " is both learner and learner_next");
    }
    if (progress.at(id).is_learner) {
      return Status::corruption("learner_next " + id_str(id) + " marked learner too early");
    }
  }
  for (const auto& [id, pr] : progress) {
    const bool member = config.voters.contains(id) || config.learners.count(id) != 0;
    if (!member) return Status::corruption("progress for non-member " + id_str(id));
    if (pr.is_learner && config.learners.count(id) == 0) {
      return Status::corruption("node " + id_str(id) + " marked learner but is not one");
    }
  }
  if (!config.voters.joint()) {
    if (!config.learners_next.empty()) {
      return Status::corruption("learners_next set outside a joint config");
    }
    if (config.auto_leave) return Status::corruption("auto_leave set outside a joint config");
  }
  return Status::ok();
}

void Changer::init_progress(ChangeResult& result, NodeId id, bool learner) const {
  tracker::Progress pr = tracker_.new_progress();
  pr.next = last_index_ + 1;
  pr.is_learner = learner;
  // A new member counts as active: CheckQuorum must not depose the leader before the
  // member had a chance to answer (etcd initProgress).
  pr.recent_active = true;
  result.progress.insert_or_assign(id, std::move(pr));
}

void Changer::make_voter(ChangeResult& result, NodeId id) const {
  auto it = result.progress.find(id);
  if (it == result.progress.end()) {
    init_progress(result, id, /*learner=*/false);
  } else {
    it->second.is_learner = false;
  }
  result.config.learners.erase(id);
  result.config.learners_next.erase(id);
  result.config.voters.incoming.insert(id);
}

void Changer::make_learner(ChangeResult& result, NodeId id) const {
  auto it = result.progress.find(id);
  if (it == result.progress.end()) {
    init_progress(result, id, /*learner=*/true);
    result.config.learners.insert(id);
    return;
  }
  if (it->second.is_learner) return;
  // Demoting a voter: drop it from the incoming half but keep its progress.
  result.config.voters.incoming.erase(id);
  result.config.learners.erase(id);
  result.config.learners_next.erase(id);
  if (result.config.voters.outgoing.contains(id)) {
    // Still a voter of C_old: it becomes a learner only when the joint config is left.
    result.config.learners_next.insert(id);
  } else {
    it->second.is_learner = true;
    result.config.learners.insert(id);
  }
}

void Changer::remove(ChangeResult& result, NodeId id) const {
  if (result.progress.find(id) == result.progress.end()) return;
  result.config.voters.incoming.erase(id);
  result.config.learners.erase(id);
  result.config.learners_next.erase(id);
  // A voter of C_old keeps its progress until the joint config is left.
  if (!result.config.voters.outgoing.contains(id)) result.progress.erase(id);
}

Status Changer::apply(ChangeResult& result, const std::vector<ConfChangeSingle>& changes) const {
  for (const ConfChangeSingle& change : changes) {
    if (change.node_id == kNoNode) continue;  // etcd: node id 0 is a no-op
    switch (change.type) {
      case ConfChangeType::kAddNode: make_voter(result, change.node_id); break;
      case ConfChangeType::kAddLearner: make_learner(result, change.node_id); break;
      case ConfChangeType::kRemoveNode: remove(result, change.node_id); break;
      default:
        return Status::invalid_argument("unknown conf change type " +
                                        std::to_string(static_cast<int>(change.type)));
    }
  }
  if (result.config.voters.incoming.empty()) {
    return Status::invalid_argument("the change removes all voters");
  }
  return Status::ok();
}

Result<ChangeResult> Changer::enter_joint(bool auto_leave,
                                          const std::vector<ConfChangeSingle>& changes) const {
  if (tracker_.config.voters.joint()) {
    return Status::invalid_argument("config is already joint: " + tracker_.config.describe());
  }
  if (tracker_.config.voters.incoming.empty()) {
    return Status::invalid_argument("cannot make a zero-voter config joint");
  }
  ChangeResult result = copy_of(tracker_);
  result.config.voters.outgoing = result.config.voters.incoming;
  MQ_RETURN_IF_ERROR(apply(result, changes));
  result.config.auto_leave = auto_leave;
  MQ_RETURN_IF_ERROR(check_invariants(result.config, result.progress));
  return result;
}

Result<ChangeResult> Changer::leave_joint() const {
  if (!tracker_.config.voters.joint()) {
    return Status::invalid_argument("cannot leave a non-joint config: " +
                                    tracker_.config.describe());
  }
  ChangeResult result = copy_of(tracker_);
  for (NodeId id : result.config.learners_next) {
    result.config.learners.insert(id);
    result.progress.at(id).is_learner = true;
  }
  result.config.learners_next.clear();
  for (NodeId id : result.config.voters.outgoing.ids()) {
    const bool stays = result.config.voters.incoming.contains(id) ||
                       result.config.learners.count(id) != 0;
    if (!stays) result.progress.erase(id);
  }
  result.config.voters.outgoing = quorum::MajorityConfig();
  result.config.auto_leave = false;
  MQ_RETURN_IF_ERROR(check_invariants(result.config, result.progress));
  return result;
}

Result<ChangeResult> Changer::simple(const std::vector<ConfChangeSingle>& changes) const {
  if (tracker_.config.voters.joint()) {
    return Status::invalid_argument("cannot apply a simple change in a joint config");
  }
  ChangeResult result = copy_of(tracker_);
  MQ_RETURN_IF_ERROR(apply(result, changes));
  // §4.1: only one voter may change without joint consensus, or two disjoint majorities
  // could exist.
  if (symmetric_difference(tracker_.config.voters.incoming, result.config.voters.incoming) > 1) {
    return Status::invalid_argument(
        "more than one voter changed without entering a joint config");
  }
  MQ_RETURN_IF_ERROR(check_invariants(result.config, result.progress));
  return result;
}

Result<ChangeResult> apply_conf_change(const tracker::ProgressTracker& tracker,
                                       LogIndex last_index, const ConfChange& change) {
  Changer changer(tracker, last_index);
  if (change.leave_joint()) return changer.leave_joint();
  const bool joint = change.transition != ConfChangeTransition::kAuto || change.changes.size() > 1;
  if (joint) {
    const bool auto_leave = change.transition != ConfChangeTransition::kExplicit;
    return changer.enter_joint(auto_leave, change.changes);
  }
  return changer.simple(change.changes);
}

Result<ChangeResult> restore(const tracker::ProgressTracker& tracker, LogIndex last_index,
                             const ConfState& conf_state) {
  tracker::ProgressTracker empty(tracker.max_inflight_msgs, tracker.max_inflight_bytes);
  ChangeResult result = copy_of(empty);
  auto add = [&](NodeId id, bool learner) -> Status {
    if (id == kNoNode) return Status::corruption("conf state names node 0");
    if (result.progress.find(id) == result.progress.end()) {
      tracker::Progress pr = tracker.new_progress();
      pr.next = last_index + 1;
      pr.is_learner = learner;
      pr.recent_active = true;
      result.progress.emplace(id, std::move(pr));
    }
    return Status::ok();
  };
  for (NodeId id : conf_state.voters) {
    MQ_RETURN_IF_ERROR(add(id, false));
    result.config.voters.incoming.insert(id);
  }
  for (NodeId id : conf_state.voters_outgoing) {
    MQ_RETURN_IF_ERROR(add(id, false));
    result.config.voters.outgoing.insert(id);
  }
  for (NodeId id : conf_state.learners) {
    if (result.config.voters.contains(id)) {
      return Status::corruption("conf state: node " + id_str(id) + " is voter and learner");
    }
    MQ_RETURN_IF_ERROR(add(id, true));
    result.config.learners.insert(id);
  }
  for (NodeId id : conf_state.learners_next) {
    MQ_RETURN_IF_ERROR(add(id, false));
    result.config.learners_next.insert(id);
  }
  result.config.auto_leave = conf_state.auto_leave;
  if (!conf_state.voters_outgoing.empty() && conf_state.voters.empty()) {
    return Status::corruption("conf state: joint config without incoming voters");
  }
  MQ_RETURN_IF_ERROR(check_invariants(result.config, result.progress));
  return result;
}

}  // namespace mq::raft::confchange
