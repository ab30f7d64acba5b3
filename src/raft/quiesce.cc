// Quiescing checks (raw_node.h). Read-only: they decide nothing in the protocol, they only
// tell the host that stopping the ticks of this replica loses nothing (no election timeout
// or heartbeat is needed while nothing changes; any message or proposal wakes it).
#include <algorithm>

#include "raft/raft.h"

namespace mq::raft {

bool Raft::quiescable_as_leader(std::span<const NodeId> down) const {
  const Leader* leader = leader_state();
  if (leader == nullptr) return false;
  // Anything still to hand to the host, or a Ready not yet acknowledged.
  if (ready_outstanding_ || bcast_pending_ || commit_unsent_ || !msgs_.empty() ||
      !msgs_after_persist_.empty() || !read_states_.empty()) {
    return false;
  }
  if (leader->lead_transferee != kNoNode || !leader->pending_reads.empty() ||
      !leader->reads_before_commit.empty()) {
    return false;
  }
  // A joint configuration is left by an entry the leader proposes itself (auto leave).
  if (tracker_.config.voters.joint() || !tracker_.config.voters.contains(id_)) return false;
  const LogIndex last = log_.last_index();
  if (log_.committed() != last || log_.applied() != last) return false;
  auto is_down = [&](NodeId id) { return std::find(down.begin(), down.end(), id) != down.end(); };
  std::map<NodeId, bool> live;
  for (const auto& [id, pr] : tracker_.progress) {
    if (id == id_) {
      live[id] = true;
      continue;
    }
    if (is_down(id)) {
      live[id] = false;
      continue;
    }
    // §5.3: match == last means the follower's log is identical to ours.
    if (pr.match != last || pr.state == ProgressState::kSnapshot) return false;
    live[id] = true;
  }
  // Thesis §6.2: with a quorum down the leader must keep ticking, so that CheckQuorum makes
  // it step down.
  return tracker_.config.voters.vote_result(live) == quorum::VoteResult::kWon;
}

bool Raft::quiescable_as_follower(NodeId leader, Term term, LogIndex index) const {
  if (role() != Role::kFollower || leader == kNoNode || lead_ != leader || term_ != term) {
    return false;
  }
  if (ready_outstanding_ || !msgs_.empty() || !msgs_after_persist_.empty()) return false;
  return log_.last_index() == index && log_.committed() == index && log_.applied() == index;
}

void Raft::unquiesce() {
  if (role() == Role::kLeader) {
    // Its followers may have woken without it (a returning peer's PreVote): they hear from it
    // again at the next tick rather than up to a heartbeat interval later.
    heartbeat_elapsed_ = config_.heartbeat_ticks;
    return;
  }
  if (role() != Role::kFollower) return;
  // §5.2: the election timer restarts with a fresh random timeout. Without it a follower woken
  // by a message not from its leader kept the time it had counted before quiescing; either way
  // its quiesced leader, sending nothing, must be woken by the host within this timeout.
  election_elapsed_ = 0;
  reset_randomized_election_timeout();
}

}  // namespace mq::raft
