// Followers: AppendEntries (§5.3), heartbeats, InstallSnapshot (§7), TimeoutNow (thesis
// §3.10) and forwarded ReadIndex answers (thesis §6.4).
#include <algorithm>

#include "raft/confchange/confchange.h"
#include "raft/raft.h"

namespace mq::raft {

Status Raft::step_follower(Follower& /*follower*/, const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      election_elapsed_ = 0;
      lead_ = m.from;
      return handle_append(m);
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_heartbeat(m);
      return Status::ok();
    case MessageType::kSnapshot:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_snapshot(m);
      return Status::ok();
    case MessageType::kTimeoutNow:
      // Thesis §3.10: the leader asks us to start an election at once, skipping PreVote and
      // overriding other nodes' leases (kCampaignTransfer).
      campaign(/*transfer=*/true);
      return Status::ok();
    case MessageType::kReadIndexResponse:
      if (read_states_.size() < kMaxPendingReads) {
        read_states_.push_back(ReadState{m.index, m.context});
      }
      return Status::ok();
    default:
      // Responses meant for a leader or candidate of this term (duplicates, reordering).
      return Status::ok();
  }
}

Status Raft::handle_append(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppendResponse;
  resp.to = m.from;
  if (m.index < log_.committed()) {
    // Everything up to commit is known to match (Log Matching, §5.3): a duplicate or
    // reordered append. Tell the leader where we are.
    resp.index = log_.committed();
    send(std::move(resp));
    return Status::ok();
  }
  const bool truncate = !config_.has_bug(Bug::kNoConflictTruncation);
  MQ_ASSIGN_OR_RETURN(std::optional<LogIndex> last_new,
                      log_.maybe_append(m.index, m.log_term, m.commit, m.entries, truncate));
  if (last_new) {
    resp.index = *last_new;
    send(std::move(resp));
    return Status::ok();
  }
  // §5.3: reject; with a hint so the leader can skip a whole term per round trip
  // (thesis §5.3 "fast backtracking", etcd findConflictByTerm).
  const LogIndex hint_index = std::min(m.index, log_.last_index());
  auto [index, term] = log_.find_conflict_by_term(hint_index, m.log_term);
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = index;
  resp.log_term = term;
  send(std::move(resp));
  return Status::ok();
}

void Raft::handle_heartbeat(const Message& m) {
  // The leader bounds the commit by our match, so we hold those entries; min() guards
  // against a misbehaving peer.
  log_.commit_to(std::min(m.commit, log_.last_index()));
  Message resp;
  resp.type = MessageType::kHeartbeatResponse;
  resp.to = m.from;
  resp.context = m.context;
  send(std::move(resp));
}

void Raft::handle_snapshot(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppendResponse;
  resp.to = m.from;
  if (restore(*m.snapshot)) {
    resp.index = log_.last_index();
  } else {
    resp.index = log_.committed();
  }
  send(std::move(resp));
}

bool Raft::restore(const Snapshot& snapshot) {
  const SnapshotMeta& meta = snapshot.meta;
  if (meta.index <= log_.committed()) return false;  // stale or duplicate
  if (role() != Role::kFollower) return false;       // only a follower installs snapshots
  // Unlike etcd, a snapshot whose membership does not include us is accepted: it is
  // committed state from the current leader (installing it is safe), and a node added by a
  // change after the snapshot index could otherwise never catch up until the leader takes
  // a newer snapshot. The change that adds us follows in the log and is applied after it.
  const ConfState& cs = meta.conf_state;
  auto change = confchange::restore(tracker_, meta.index, cs);
  if (!change.has_value()) return false;  // a corrupt membership: refuse the snapshot
  if (log_.match_term(meta.index, meta.term)) {
    // We already have the entry: fast-forward the commit instead of replacing the log.
    log_.commit_to(meta.index);
    return false;
  }
  log_.restore(snapshot);
  conf_restored_index_ = meta.index;
  switch_to_config(std::move(change->config), std::move(change->progress));
  return true;
}

}  // namespace mq::raft

namespace mq::raft {

// etcd's ForgetLeader: the follower stays in its term without a leader; in_lease() is then
// false, so it grants votes to an up-to-date candidate at once (thesis §4.2.3 only protects a
// leader the follower still hears from). Not with lease-based reads (the leader's lease
// relies on followers not voting for another candidate within the election timeout).
void Raft::forget_leader() {
  if (config_.read_only == ReadOnlyOption::kLeaseBased) return;
  if (role() != Role::kFollower || lead_ == kNoNode) return;
  lead_ = kNoNode;
}

}  // namespace mq::raft
