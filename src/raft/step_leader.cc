// Leaders: proposals, replication with flow control (§5.3, thesis §10.2.1), commitment
// (§5.3/§5.4.2), ReadIndex (thesis §6.4), leadership transfer (thesis §3.10), snapshots (§7).
#include <algorithm>
#include <string>

#include "raft/confchange/confchange.h"
#include "raft/raft.h"

namespace mq::raft {

namespace {
std::string num(std::uint64_t v) { return std::to_string(v); }
}  // namespace

Status Raft::step_leader(Leader& leader, const Message& m) {
  switch (m.type) {
    case MessageType::kAppendResponse:
      handle_append_response(leader, m);
      return Status::ok();
    case MessageType::kHeartbeatResponse:
      handle_heartbeat_response(leader, m);
      return Status::ok();
    case MessageType::kReadIndex:
      if (tracker_.progress.find(m.from) == tracker_.progress.end()) return Status::ok();
      handle_read_request(leader, ReadRequest{LogIndex(0), m.context, m.from, 0});
      return Status::ok();
    default:
      // Vote responses after winning, stray appends: nothing to do.
      return Status::ok();
  }
}

// ---------------------------------------------------------------------------------------
// Replication

void Raft::handle_append_response(Leader& leader, const Message& m) {
  auto it = tracker_.progress.find(m.from);
  if (it == tracker_.progress.end()) return;  // removed or unknown node
  tracker::Progress& pr = it->second;
  pr.recent_active = true;
  if (m.index > log_.last_index()) return;  // acks something we never sent: ignore

  if (m.reject) {
    // Fast backtracking: skip every entry of a term the follower cannot match.
    LogIndex next_probe = m.reject_hint;
    if (m.log_term > Term(0)) next_probe = log_.find_conflict_by_term(m.reject_hint, m.log_term).first;
    if (pr.maybe_decr_to(m.index, next_probe)) {
      if (pr.state == ProgressState::kReplicate) pr.become_probe();
      maybe_send_append(m.from, /*send_if_empty=*/true);
    }
    return;
  }

  const bool old_paused = pr.is_paused();
  const bool probe_acked = pr.match == m.index && pr.state == ProgressState::kProbe;
  if (!pr.maybe_update(m.index) && !probe_acked) return;  // stale ack
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.become_replicate();
      break;
    case ProgressState::kSnapshot:
      // The follower caught up past the snapshot (or got it): resume replication.
      if (pr.match + 1 >= log_.first_index()) {
        pr.become_probe();
        pr.become_replicate();
      }
      break;
    case ProgressState::kReplicate:
      pr.inflights.free_le(m.index);
      pr.msg_app_flow_paused = pr.inflights.full();
      break;
  }
  if (maybe_commit()) {
    on_commit_advanced();  // tell followers the new commit index (now or at the next tick)
    // A paused follower's window just reopened (eager: the broadcast above sent to it).
    if (config_.lazy_commit_broadcast && old_paused)
      maybe_send_append(m.from, /*send_if_empty=*/true);
  } else if (old_paused) {
    maybe_send_append(m.from, /*send_if_empty=*/true);
  }
  // Keep the pipeline full while the window allows.
  while (maybe_send_append(m.from, /*send_if_empty=*/false)) {
  }
  // Thesis §3.10: the transferee is caught up; tell it to campaign now.
  if (leader.lead_transferee == m.from && pr.match == log_.last_index()) {
    send_timeout_now(m.from);
  }
}

void Raft::handle_heartbeat_response(Leader& leader, const Message& m) {
  auto it = tracker_.progress.find(m.from);
  if (it == tracker_.progress.end()) return;
  tracker::Progress& pr = it->second;
  pr.recent_active = true;
  pr.msg_app_flow_paused = false;
  if (pr.match < log_.last_index() || pr.state == ProgressState::kProbe) {
    maybe_send_append(m.from, /*send_if_empty=*/true);
  }
  if (m.context != 0 && m.context <= leader.read_round) {
    std::uint64_t& acked = leader.acked_round[m.from];
    acked = std::max(acked, m.context);
    release_confirmed_reads(leader);
  }
}

bool Raft::maybe_send_append(NodeId to, bool send_if_empty) {
  auto it = tracker_.progress.find(to);
  if (it == tracker_.progress.end() || to == id_) return false;
  tracker::Progress& pr = it->second;
  if (pr.is_paused()) return false;
  const LogIndex prev_index = pr.next - 1;
  auto prev_term = log_.term(prev_index);
  // A full window in StateReplicate only gets empty appends: they are acked or rejected,
  // which frees the window even if every append that filled it was lost (etcd).
  const bool throttled = pr.state == ProgressState::kReplicate && pr.inflights.full();
  Result<std::vector<Entry>> entries =
      throttled ? Result<std::vector<Entry>>(std::vector<Entry>{})
                : log_.entries(pr.next, config_.max_msg_bytes);
  if (entries.has_value() && entries->empty() && !send_if_empty) return false;
  if (!prev_term.has_value() || !entries.has_value()) {
    // §7: the entries the follower needs are compacted; send the snapshot instead.
    const bool compacted =
        (!prev_term.has_value() && prev_term.error().code() == ErrorCode::kOutOfRange) ||
        (!entries.has_value() && entries.error().code() == ErrorCode::kOutOfRange);
    if (!compacted) return false;  // storage trouble: retried later
    return send_snapshot(to, pr);
  }
  Message m;
  m.type = MessageType::kAppend;
  m.to = to;
  m.index = prev_index;
  m.log_term = *prev_term;
  m.commit = log_.committed();
  pr.sent_commit = std::max(pr.sent_commit, m.commit);
  std::uint64_t bytes = 0;
  for (const Entry& e : *entries) bytes += e.size_bytes();
  const std::size_t count = entries->size();
  m.entries = std::move(entries).value();
  pr.update_on_entries_send(count, bytes);
  send(std::move(m));
  return true;
}

bool Raft::send_snapshot(NodeId to, tracker::Progress& pr) {
  // A follower that has not answered recently may be down; do not ship it a snapshot.
  if (!pr.recent_active) return false;
  auto snapshot = storage_->snapshot();
  if (!snapshot.has_value() || snapshot->empty()) return false;  // kUnavailable: retry later
  const LogIndex index = snapshot->meta.index;
  Message m;
  m.type = MessageType::kSnapshot;
  m.to = to;
  m.snapshot = std::move(snapshot).value();
  pr.become_snapshot(index);
  send(std::move(m));
  return true;
}

void Raft::send_heartbeat(NodeId to, std::uint64_t round) {
  auto it = tracker_.progress.find(to);
  if (it == tracker_.progress.end()) return;
  Message m;
  m.type = MessageType::kHeartbeat;
  m.to = to;
  // The follower may not hold entries beyond its match; never make it commit those.
  m.commit = std::min(it->second.match, log_.committed());
  it->second.sent_commit = std::max(it->second.sent_commit, m.commit);
  m.context = round;
  send(std::move(m));
}

void Raft::bcast_append() {
  for (const auto& [id, pr] : tracker_.progress) {
    if (id != id_) maybe_send_append(id, /*send_if_empty=*/true);
  }
}

void Raft::on_commit_advanced() {
  if (config_.lazy_commit_broadcast) {
    commit_unsent_ = true;
  } else {
    bcast_append();
  }
}

void Raft::send_unsent_commit() {
  commit_unsent_ = false;
  const LogIndex committed = log_.committed();
  for (const auto& [id, pr] : tracker_.progress) {
    if (id != id_ && pr.sent_commit < committed) maybe_send_append(id, /*send_if_empty=*/true);
  }
}

void Raft::bcast_heartbeat(std::uint64_t round) {
  for (const auto& [id, pr] : tracker_.progress) {
    if (id != id_) send_heartbeat(id, round);
  }
}

bool Raft::maybe_commit() {
  // §5.4.2 / Figure 8: only entries of the current term are committed by counting.
  const bool any_term = config_.has_bug(Bug::kCommitPreviousTermByCount);  // BUG knob
  if (!log_.maybe_commit(tracker_.committed(), term_, any_term)) return false;
  if (Leader* leader = leader_state()) release_reads_before_commit(*leader);
  return true;
}

void Raft::on_self_persisted() {
  // ready.h step 5: the leader's own log counts for commitment only once durable.
  auto it = tracker_.progress.find(id_);
  if (it == tracker_.progress.end()) return;
  it->second.maybe_update(log_.persisted_index());
  if (maybe_commit()) on_commit_advanced();
}

// ---------------------------------------------------------------------------------------
// Proposals

Result<LogIndex> Raft::append_proposal(Leader& leader, EntryType type, SharedBuffer payload) {
  const std::uint64_t bytes = payload.size();
  // etcd uncommittedSize: one entry is always accepted when nothing is uncommitted, so a
  // single large entry cannot wedge the group.
  if (leader.uncommitted_bytes > 0 && bytes > 0 &&
      leader.uncommitted_bytes + bytes > config_.max_uncommitted_bytes) {
    return Status::limit_exceeded(
        "uncommitted entries hold " + num(leader.uncommitted_bytes) + " bytes; adding " +
        num(bytes) + " would exceed max_uncommitted_bytes=" + num(config_.max_uncommitted_bytes) +
        " (retry once earlier proposals commit)");
  }
  Entry e;
  e.term = term_;
  e.index = log_.last_index() + 1;
  e.type = type;
  e.payload = std::move(payload);
  const LogIndex index = e.index;
  std::vector<Entry> entries;
  entries.push_back(std::move(e));
  log_.append(std::move(entries));
  leader.uncommitted_bytes += bytes;
  auto self = tracker_.progress.find(id_);  // absent when this leader was removed
  if (self != tracker_.progress.end()) {
    self->second.next = index + 1;
    if (config_.has_bug(Bug::kLeaderCountsSelfBeforePersist)) {
      // BUG knob: count our own entry before it is durable (never do this).
      self->second.maybe_update(index);
      maybe_commit();
    }
  }
  return index;
}

Result<LogIndex> Raft::propose(SharedBuffer payload) {
  Leader* leader = leader_state();
  if (leader == nullptr) {
    if (lead_ == kNoNode) return Status::not_leader("not the leader; no leader known");
    return Status::not_leader("not the leader; leader is " + num(lead_.value()));
  }
  if (leader->lead_transferee != kNoNode) {
    return Status::aborted("leadership transfer to " + num(leader->lead_transferee.value()) +
                           " in progress");
  }
  if (!tracker_.config.voters.contains(id_)) {
    return Status::not_leader(
        "this leader was removed from the voters; leadership is being handed over");
  }
  MQ_ASSIGN_OR_RETURN(LogIndex index, append_proposal(*leader, EntryType::kNormal,
                                                      std::move(payload)));
  // Batching: the appends go out when the host next calls ready(), one message per
  // follower for all proposals made since (still in that Ready's `messages`, before the
  // leader's own write is persisted).
  bcast_pending_ = true;
  return index;
}

Result<LogIndex> Raft::propose_conf_change(const ConfChange& change) {
  Leader* leader = leader_state();
  if (leader == nullptr) {
    if (lead_ == kNoNode) return Status::not_leader("not the leader; no leader known");
    return Status::not_leader("not the leader; leader is " + num(lead_.value()));
  }
  if (leader->lead_transferee != kNoNode) {
    return Status::aborted("leadership transfer to " + num(leader->lead_transferee.value()) +
                           " in progress");
  }
  // At most one change in flight: the previous one must be applied (it takes effect then).
  if (pending_conf_index_ > log_.applied()) {
    return Status::unavailable("a configuration change is in flight (index " +
                               num(pending_conf_index_.value()) + ", applied " +
                               num(log_.applied().value()) + ")");
  }
  const bool joint = tracker_.config.voters.joint();
  if (joint && !change.leave_joint()) {
    return Status::unavailable("the configuration is joint (" + tracker_.config.describe() +
                               "); leave it before another change");
  }
  if (!joint && change.leave_joint()) {
    return Status::invalid_argument("not in a joint configuration: nothing to leave");
  }
  if (change.changes.size() > 64) {
    return Status::invalid_argument("too many changes in one ConfChange (max 64)");
  }
  // Refuse changes that would fail when applied (they would be no-ops on every node).
  auto check = confchange::apply_conf_change(tracker_, log_.last_index(), change);
  if (!check.has_value()) {
    return Status::invalid_argument("invalid configuration change: " + check.error().message());
  }
  // A leader that removes or demotes itself and then crashes before handing over can leave
  // the remaining voters unable to learn that the change committed and unable to elect
  // anyone (configurations take effect when applied). Require a transfer first.
  if (!change.leave_joint() && !check->config.voters.incoming.contains(id_)) {
    return Status::invalid_argument(
        "the leader cannot remove or demote itself; transfer leadership first (thesis §3.10)");
  }
  MQ_ASSIGN_OR_RETURN(LogIndex index,
                      append_proposal(*leader, EntryType::kConfChange, change.encode()));
  pending_conf_index_ = index;
  bcast_pending_ = true;
  return index;
}

// ---------------------------------------------------------------------------------------
// ReadIndex (thesis §6.4)

Status Raft::read_index(std::uint64_t request_context) {
  if (Leader* leader = leader_state()) {
    handle_read_request(*leader, ReadRequest{LogIndex(0), request_context, id_, 0});
    return Status::ok();
  }
  if (lead_ == kNoNode) return Status::not_leader("no leader known to serve ReadIndex");
  Message m;
  m.type = MessageType::kReadIndex;
  m.to = lead_;
  m.context = request_context;
  send(std::move(m));
  return Status::ok();
}

bool Raft::committed_entry_in_current_term() const {
  return log_.term_or_zero(log_.committed()) == term_;
}

void Raft::handle_read_request(Leader& leader, ReadRequest request) {
  // §6.4 step 1: a new leader does not know the commit index until it commits an entry of
  // its own term (its no-op); park the request until then.
  if (!committed_entry_in_current_term()) {
    if (leader.reads_before_commit.size() < kMaxPendingReads) {
      leader.reads_before_commit.push_back(request);
    }
    return;
  }
  request.index = log_.committed();
  if (tracker_.is_singleton() && tracker_.config.voters.contains(id_)) {
    answer_read(request);  // we alone are the quorum
    return;
  }
  if (config_.read_only == ReadOnlyOption::kLeaseBased && lease_valid(leader)) {
    // Thesis §6.4.1: while a quorum's leases hold, no other leader can exist (clock
    // assumption in docs/raft_driver.md). Otherwise fall through to a heartbeat round.
    answer_read(request);
    return;
  }
  if (config_.has_bug(Bug::kReadWithoutLeadershipCheck)) {
    answer_read(request);  // BUG knob: a deposed leader may answer stale reads
    return;
  }
  // §6.4 steps 2-3: confirm leadership with a heartbeat round to a quorum.
  if (leader.pending_reads.size() >= kMaxPendingReads) return;  // the requester retries
  request.round = start_heartbeat_round(leader);
  leader.pending_reads.push_back(request);
  bcast_heartbeat(request.round);
}

std::uint64_t Raft::start_heartbeat_round(Leader& leader) {
  const std::uint64_t round = ++leader.read_round;
  leader.acked_round[id_] = round;
  if (leader.round_ticks.empty() || leader.round_ticks.back().second != now_ticks_) {
    leader.round_ticks.emplace_back(round, now_ticks_);
  }
  // Rounds older than an election timeout can no longer back a lease.
  while (leader.round_ticks.size() > 1 &&
         leader.round_ticks[1].second + config_.election_ticks <= now_ticks_) {
    leader.round_ticks.pop_front();
  }
  return round;
}

bool Raft::lease_valid(const Leader& leader) const {
  if (config_.has_bug(Bug::kNoCheckQuorumStepDown)) return true;  // BUG knob: lease assumed
  if (leader.timeout_now_sent) return false;
  // A follower that acked round r received it at or after r's send tick, and refuses votes
  // for election_ticks from then; keep a heartbeat interval of margin for clock drift.
  const std::uint64_t lease_ticks = config_.election_ticks - config_.heartbeat_ticks;
  std::map<NodeId, bool> votes;
  for (const auto& [id, round] : leader.acked_round) {
    if (id == id_) {
      votes[id] = true;
      continue;
    }
    // The send tick of `round`: the last entry whose first round is <= round.
    std::optional<std::uint64_t> sent;
    for (const auto& [first_round, tick] : leader.round_ticks) {
      if (first_round > round) break;
      sent = tick;
    }
    if (sent && now_ticks_ - *sent < lease_ticks) votes[id] = true;
  }
  votes[id_] = true;
  return tracker_.config.voters.vote_result(votes) == quorum::VoteResult::kWon;
}

void Raft::release_confirmed_reads(Leader& leader) {
  while (!leader.pending_reads.empty()) {
    const ReadRequest& front = leader.pending_reads.front();
    std::map<NodeId, bool> acks;
    for (const auto& [id, round] : leader.acked_round) {
      if (round >= front.round) acks[id] = true;
    }
    if (tracker_.config.voters.vote_result(acks) != quorum::VoteResult::kWon) return;
    answer_read(front);
    leader.pending_reads.pop_front();
  }
}

void Raft::release_reads_before_commit(Leader& leader) {
  if (leader.reads_before_commit.empty() || !committed_entry_in_current_term()) return;
  std::vector<ReadRequest> parked;
  parked.swap(leader.reads_before_commit);
  for (ReadRequest& request : parked) handle_read_request(leader, request);
}

void Raft::answer_read(const ReadRequest& request) {
  if (request.from == id_) {
    if (read_states_.size() < kMaxPendingReads) {
      read_states_.push_back(ReadState{request.index, request.context});
    }
    return;
  }
  Message m;
  m.type = MessageType::kReadIndexResponse;
  m.to = request.from;
  m.index = request.index;
  m.context = request.context;
  send(std::move(m));
}

// ---------------------------------------------------------------------------------------
// Leadership transfer (thesis §3.10)

Status Raft::transfer_leader(NodeId transferee) {
  Leader* leader = leader_state();
  if (leader == nullptr) return Status::not_leader("only the leader can transfer leadership");
  if (transferee == id_) {
    if (leader->lead_transferee != kNoNode) abort_leader_transfer(*leader);
    return Status::ok();  // already the leader
  }
  auto it = tracker_.progress.find(transferee);
  if (it == tracker_.progress.end()) {
    return Status::invalid_argument("transfer target " + num(transferee.value()) +
                                    " is not a member");
  }
  if (it->second.is_learner) {
    return Status::invalid_argument("transfer target " + num(transferee.value()) +
                                    " is a learner");
  }
  if (leader->lead_transferee == transferee) return Status::ok();  // already under way
  // The transfer must finish within an election timeout (tick_heartbeat aborts it).
  election_elapsed_ = 0;
  leader->lead_transferee = transferee;
  if (it->second.match == log_.last_index()) {
    send_timeout_now(transferee);
  } else {
    maybe_send_append(transferee, /*send_if_empty=*/true);
  }
  return Status::ok();
}

void Raft::abort_leader_transfer(Leader& leader) { leader.lead_transferee = kNoNode; }

void Raft::send_timeout_now(NodeId to) {
  if (Leader* leader = leader_state()) leader->timeout_now_sent = true;
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = to;
  send(std::move(m));
}

// ---------------------------------------------------------------------------------------
// Host reports

void Raft::report_snapshot(NodeId to, bool success) {
  if (leader_state() == nullptr) return;
  auto it = tracker_.progress.find(to);
  if (it == tracker_.progress.end()) return;
  tracker::Progress& pr = it->second;
  if (pr.state != ProgressState::kSnapshot) return;
  // On failure forget the snapshot; either way probe again after the next heartbeat.
  if (!success) pr.pending_snapshot = LogIndex(0);
  pr.become_probe();
  pr.msg_app_flow_paused = true;
}

void Raft::report_unreachable(NodeId to) {
  if (leader_state() == nullptr) return;
  auto it = tracker_.progress.find(to);
  if (it == tracker_.progress.end()) return;
  if (it->second.state == ProgressState::kReplicate) it->second.become_probe();
}

}  // namespace mq::raft
