// Ready / advance (ready.h, docs/raft_driver.md) and configuration changes, which take
// effect when the host acknowledges their application in advance().
#include <algorithm>

#include "raft/confchange/confchange.h"
#include "raft/raft.h"

namespace mq::raft {

bool Raft::has_ready() const {
  if (bcast_pending_ && role() == Role::kLeader) return true;
  if (!msgs_.empty() || !msgs_after_persist_.empty() || !read_states_.empty()) return true;
  if (SoftState{lead_, role()} != prev_soft_state_) return true;
  if (HardState{term_, vote_, log_.committed()} != prev_hard_state_) return true;
  if (log_.unstable().has_next_entries() || log_.unstable().has_next_snapshot()) return true;
  return log_.has_next_committed_entries();
}

Ready Raft::ready() {
  MQ_ASSERT(!ready_outstanding_, "ready() called again before advance()");
  flush_pending_broadcast();
  Ready rd;
  const SoftState soft{lead_, role()};
  if (soft != prev_soft_state_) {
    rd.soft_state = soft;
    prev_soft_state_ = soft;
  }
  const HardState hard{term_, vote_, log_.committed()};
  if (hard != prev_hard_state_) {
    rd.hard_state = hard;
    // A commit-only change need not be synced: commit can be recomputed (§5.3).
    if (hard.term != prev_hard_state_.term || hard.vote != prev_hard_state_.vote) {
      rd.must_sync = true;
    }
    prev_hard_state_ = hard;
  }
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  Unstable& unstable = log_.unstable();
  if (unstable.has_next_snapshot()) {
    rd.snapshot = *unstable.snapshot();
    rd.must_sync = true;
  }
  rd.entries_to_persist = unstable.next_entries();
  if (!rd.entries_to_persist.empty()) rd.must_sync = true;
  unstable.accept_in_progress();
  rd.committed_entries = log_.next_committed_entries(config_.max_committed_bytes_per_ready);
  if (!rd.committed_entries.empty()) log_.accept_applying(rd.committed_entries.back().index);
  rd.messages = std::move(msgs_);
  msgs_.clear();
  rd.messages_after_persist = std::move(msgs_after_persist_);
  msgs_after_persist_.clear();
  // The candidate's own vote is durable once this Ready is (prev_hard_state_ now holds it).
  if (role() == Role::kCandidate) self_vote_pending_term_ = term_;
  ready_outstanding_ = true;
  return rd;
}

void Raft::flush_pending_broadcast() {
  if (!bcast_pending_) return;
  bcast_pending_ = false;
  if (role() != Role::kLeader) return;
  for (const auto& [id, pr] : tracker_.progress) {
    if (id != id_) maybe_send_append(id, /*send_if_empty=*/false);
  }
}

// The leader's `messages` (step 1) never depend on its own persistence: appends and
// heartbeats carry entries read from its log, durable or not, and a commit index reached by
// a majority that counts the leader only for what it advanced (thesis §10.2.1). So the part of
// the next Ready that is step 1 may go now, while the outstanding Ready is being persisted.
// Only at a term whose hard state is durable: a leader elected while the Ready carrying its
// term and vote is still being written waits for advance() (and anything that is not a
// leader, whose messages may acknowledge or reveal state not yet durable, always does).
// Messages after persistence stay for the next Ready.
std::vector<Message> Raft::take_leader_messages() {
  if (role() != Role::kLeader || term_ != synced_term_) return {};
  flush_pending_broadcast();
  std::vector<Message> out = std::move(msgs_);
  msgs_.clear();
  return out;
}

void Raft::advance(const Ready& rd) {
  MQ_ASSERT(ready_outstanding_, "advance() without an outstanding ready()");
  ready_outstanding_ = false;
  if (rd.hard_state) synced_term_ = rd.hard_state->term;
  Unstable& unstable = log_.unstable();
  if (rd.snapshot) {
    const LogIndex index = rd.snapshot->meta.index;
    unstable.stable_snapshot_to(index);
    if (index <= log_.committed()) log_.applied_to(index);
  }
  if (!rd.entries_to_persist.empty()) {
    const Entry& last = rd.entries_to_persist.back();
    unstable.stable_to(last.index, last.term);
  }
  if (!rd.committed_entries.empty()) {
    const LogIndex last = rd.committed_entries.back().index;
    if (last > log_.applied() && last <= log_.committed()) log_.applied_to(last);
    if (Leader* leader = leader_state()) {
      std::uint64_t bytes = 0;
      for (const Entry& e : rd.committed_entries) bytes += e.payload.size();
      leader->uncommitted_bytes -= std::min(leader->uncommitted_bytes, bytes);
    }
    apply_committed_conf_changes(rd.committed_entries);
  }
  if (Candidate* candidate = candidate_state()) {
    if (!candidate->pre_vote && self_vote_pending_term_ == term_) {
      self_vote_pending_term_ = Term(0);
      record_vote_and_tally(*candidate, id_, true);
    }
  }
  if (role() == Role::kLeader) {
    on_self_persisted();
    maybe_auto_leave_joint();
  }
}

// ---------------------------------------------------------------------------------------
// Configuration

void Raft::apply_committed_conf_changes(const std::vector<Entry>& entries) {
  for (const Entry& e : entries) {
    if (e.type != EntryType::kConfChange) continue;
    // A snapshot installed meanwhile already carries the membership after this entry.
    if (e.index <= conf_restored_index_) continue;
    auto change = ConfChange::decode(e.payload.view());
    // Malformed or inapplicable changes are no-ops, identically on every replica (they all
    // apply the same committed log to the same configuration).
    if (!change) continue;
    auto result = confchange::apply_conf_change(tracker_, log_.last_index(), *change);
    if (!result.has_value()) continue;
    switch_to_config(std::move(result->config), std::move(result->progress));
  }
}

void Raft::switch_to_config(tracker::Config config, tracker::ProgressMap progress) {
  std::vector<NodeId> added;
  for (const auto& [id, pr] : progress) {
    if (tracker_.progress.find(id) == tracker_.progress.end()) added.push_back(id);
  }
  tracker_.config = std::move(config);
  tracker_.progress = std::move(progress);
  Leader* leader = leader_state();
  if (leader == nullptr) return;
  if (leader->lead_transferee != kNoNode) {
    auto t = tracker_.progress.find(leader->lead_transferee);
    if (t == tracker_.progress.end() || t->second.is_learner) abort_leader_transfer(*leader);
  }
  if (!tracker_.config.voters.contains(id_)) {
    // Removed or demoted. Stepping down at once could leave the remaining voters unable to
    // learn that the change committed (they apply it only then) and unable to elect anyone
    // (thesis §4.2.2). Instead keep leading — replicating, not counting ourselves, refusing
    // proposals — and hand leadership to the most up-to-date voter (thesis §3.10).
    if (leader->lead_transferee == kNoNode) hand_over_leadership(*leader);
  }
  if (leader->lead_transferee != kNoNode) {
    auto t = tracker_.progress.find(leader->lead_transferee);
    if (t == tracker_.progress.end() || t->second.is_learner) abort_leader_transfer(*leader);
  }
  // The quorum changed: the commit index may move.
  if (maybe_commit()) {
    bcast_append();
  } else {
    for (NodeId id : added) maybe_send_append(id, /*send_if_empty=*/true);
  }
}

void Raft::hand_over_leadership(Leader& leader) {
  NodeId best = kNoNode;
  LogIndex best_match;
  for (NodeId id : tracker_.config.voters.ids()) {
    if (id == id_) continue;
    auto it = tracker_.progress.find(id);
    if (it == tracker_.progress.end()) continue;
    if (best == kNoNode || it->second.match > best_match) {
      best = id;
      best_match = it->second.match;
    }
  }
  if (best == kNoNode) {
    become_follower(term_, kNoNode);  // nobody to hand over to (cannot happen: voters != {})
    return;
  }
  leader.lead_transferee = best;
  if (best_match == log_.last_index()) {
    send_timeout_now(best);
  } else {
    maybe_send_append(best, /*send_if_empty=*/true);
  }
}

void Raft::maybe_auto_leave_joint() {
  Leader* leader = leader_state();
  if (leader == nullptr) return;
  const tracker::Config& config = tracker_.config;
  if (!config.voters.joint() || !config.auto_leave) return;
  if (pending_conf_index_ > log_.applied()) return;  // the entering change is not applied yet
  // Thesis §4.3: once C_old,new is in effect, the leader proposes C_new.
  auto index = append_proposal(*leader, EntryType::kConfChange, ConfChange{}.encode());
  if (!index.has_value()) return;  // retried at the next advance()
  pending_conf_index_ = *index;
  bcast_append();
}

// ---------------------------------------------------------------------------------------
// Status

NodeStatus Raft::status() const {
  NodeStatus s;
  s.id = id_;
  s.hard_state = HardState{term_, vote_, log_.committed()};
  s.soft_state = SoftState{lead_, role()};
  s.applied = log_.applied();
  s.last_index = log_.last_index();
  s.conf_state = tracker_.config.to_conf_state();
  if (const Leader* leader = leader_state()) {
    s.lead_transferee = leader->lead_transferee;
    for (const auto& [id, pr] : tracker_.progress) {
      ProgressStatus ps;
      ps.match = pr.match;
      ps.next = pr.next;
      ps.state = pr.state;
      ps.recent_active = pr.recent_active;
      ps.learner = pr.is_learner;
      ps.inflight_msgs = pr.inflights.count();
      s.progress.emplace(id, ps);
    }
  }
  return s;
}

}  // namespace mq::raft
