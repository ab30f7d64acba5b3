#include "raft/tracker/progress.h"

#include <algorithm>

#include "base/assert.h"

namespace mq::raft {

const char* progress_state_name(ProgressState state) {
  switch (state) {
    case ProgressState::kProbe: return "StateProbe";
    case ProgressState::kReplicate: return "StateReplicate";
    case ProgressState::kSnapshot: return "StateSnapshot";
  }
  return "StateUnknown";
}

}  // namespace mq::raft

namespace mq::raft::tracker {

void Progress::reset_state(ProgressState new_state) {
  msg_app_flow_paused = false;
  snapshot_round_passed = false;
  pending_snapshot = LogIndex(0);
  state = new_state;
  inflights.reset();
}

void Progress::become_probe() {
  // After a snapshot, resume just past it: the follower will have it once it acks.
  if (state == ProgressState::kSnapshot) {
    const LogIndex pending = pending_snapshot;
    reset_state(ProgressState::kProbe);
    next = std::max(match + 1, pending + 1);
  } else {
    reset_state(ProgressState::kProbe);
    next = match + 1;
  }
  MQ_DASSERT(match < next);
}

void Progress::become_replicate() {
  reset_state(ProgressState::kReplicate);
  next = match + 1;
}

void Progress::become_snapshot(LogIndex snapshot_index) {
  reset_state(ProgressState::kSnapshot);
  pending_snapshot = snapshot_index;
}

bool Progress::maybe_update(LogIndex n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    msg_app_flow_paused = false;  // the probe was answered
  }
  next = std::max(next, n + 1);
  MQ_DASSERT(match < next);
  return updated;
}

void Progress::update_on_entries_send(std::size_t entry_count, std::uint64_t bytes) {
  switch (state) {
    case ProgressState::kReplicate:
      if (entry_count > 0) {
        // Optimistic: assume the follower will accept and pipeline the next append.
        next += entry_count;
        inflights.add(next - 1, bytes);
      }
      // Throttled once the window is full; a heartbeat response lifts the pause for one
      // (empty) append so that a window whose appends were all lost cannot stall forever.
      msg_app_flow_paused = inflights.full();
      break;
    case ProgressState::kProbe:
      // One append per heartbeat interval until the follower answers (etcd ProbeSent).
      msg_app_flow_paused = true;
      break;
    case ProgressState::kSnapshot:
      MQ_UNREACHABLE("sending entries to a follower in StateSnapshot");
  }
}

bool Progress::maybe_decr_to(LogIndex rejected, LogIndex match_hint) {
  if (state == ProgressState::kReplicate) {
    // A rejection of an index we already know matches is stale (reordered message).
    if (rejected <= match) return false;
    // Pipelining went wrong: restart right after the known match.
    next = match + 1;
    return true;
  }
  // Probe (and snapshot): only the rejection of the last probe counts.
  if (next != rejected + 1) return false;
  if (rejected <= match) {
    // The follower rejects an entry it acknowledged before: it lost acknowledged data (a
    // corrupted or truncated segment cut by recovery, a minority replica: issue 6) or is
    // broken. `match` is no longer known to be on it, and keeping it would keep `next` above
    // the follower's log forever (nothing at or below match is ever sent again: the replica
    // would stay out of sync until a new leader reset its progress). Forget what it lost and
    // repair it from the hint (§5.3 log repair). Lowering match cannot lower the commit index
    // (commit only moves forward) and is conservative for transfers. Not at once: the next
    // heartbeat response resumes probing, so a peer that keeps losing data costs one probe per
    // heartbeat round, not a ping-pong.
    match = std::min(match, std::min(match_hint, rejected - 1));
    next = std::min(rejected, match_hint + 1);
    if (next <= match) next = match + 1;
    MQ_DASSERT(match < next);
    return false;
  }
  next = std::max(std::min(rejected, match_hint + 1), match + 1);
  msg_app_flow_paused = false;
  MQ_DASSERT(match < next);
  return true;
}

bool Progress::is_paused() const {
  switch (state) {
    case ProgressState::kProbe: return msg_app_flow_paused;
    case ProgressState::kReplicate: return msg_app_flow_paused;
    case ProgressState::kSnapshot: return true;
  }
  return true;
}

std::string Progress::describe() const {
  std::string out = progress_state_name(state);
  out += " match=" + std::to_string(match.value()) + " next=" + std::to_string(next.value());
  if (is_learner) out += " learner";
  if (msg_app_flow_paused) out += " paused";
  if (pending_snapshot != LogIndex(0)) {
    out += " pendingSnap=" + std::to_string(pending_snapshot.value());
  }
  if (!recent_active) out += " inactive";
  if (inflights.count() > 0) {
    out += " inflight=" + std::to_string(inflights.count());
    if (inflights.full()) out += "[full]";
  }
  return out;
}

namespace {
std::vector<NodeId> to_vector(const std::set<NodeId>& ids) {
  return std::vector<NodeId>(ids.begin(), ids.end());
}
std::string describe_set(const std::set<NodeId>& ids) {
  return quorum::MajorityConfig(to_vector(ids)).describe();
}
}  // namespace

ConfState Config::to_conf_state() const {
  ConfState cs;
  cs.voters = voters.incoming.ids();
  cs.voters_outgoing = voters.outgoing.ids();
  cs.learners = to_vector(learners);
  cs.learners_next = to_vector(learners_next);
  cs.auto_leave = auto_leave;
  return cs;
}

std::string Config::describe() const {
  std::string out = "voters=" + voters.describe();
  if (!learners.empty()) out += " learners=" + describe_set(learners);
  if (!learners_next.empty()) out += " learners_next=" + describe_set(learners_next);
  if (auto_leave) out += " autoleave";
  return out;
}

namespace {
class ProgressAckedIndexer : public quorum::AckedIndexer {
 public:
  explicit ProgressAckedIndexer(const ProgressMap& progress) : progress_(progress) {}
  std::optional<LogIndex> acked_index(NodeId id) const override {
    auto it = progress_.find(id);
    if (it == progress_.end()) return std::nullopt;
    return it->second.match;
  }

 private:
  const ProgressMap& progress_;
};
}  // namespace

LogIndex ProgressTracker::committed() const {
  return config.voters.committed_index(ProgressAckedIndexer(progress));
}

bool ProgressTracker::quorum_active(NodeId self) const {
  std::map<NodeId, bool> votes;
  for (const auto& [id, pr] : progress) {
    if (pr.is_learner) continue;
    votes[id] = pr.recent_active || id == self;
  }
  return config.voters.vote_result(votes) == quorum::VoteResult::kWon;
}

}  // namespace mq::raft::tracker
