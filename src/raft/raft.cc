// Construction, the term logic common to all roles (§5.1), elections (§5.2, thesis §9.6
// PreVote, §6.2/§4.2.3 CheckQuorum leases) and ticks.
#include "raft/raft.h"

#include <algorithm>
#include <string>

#include "raft/confchange/confchange.h"

namespace mq::raft {

namespace {
std::string num(std::uint64_t v) { return std::to_string(v); }

std::uint64_t mix_seed(std::uint64_t seed, NodeId id) {
  // Different nodes with the same seed must not time out in lockstep.
  return seed ^ (id.value() * 0x9e3779b97f4a7c15ull);
}
}  // namespace

Raft::Raft(const Config& config, const StorageView* storage, RaftLog log)
    : config_(config),
      id_(config.id),
      storage_(storage),
      log_(std::move(log)),
      tracker_(config.max_inflight_msgs, config.max_inflight_bytes),
      prng_(mix_seed(config.random_seed, config.id)) {}

Result<std::unique_ptr<Raft>> Raft::create(const Config& config, const StorageView* storage) {
  MQ_RETURN_IF_ERROR(config.validate());
  if (storage == nullptr) return Status::invalid_argument("raft: storage must not be null");
  MQ_ASSIGN_OR_RETURN(RaftLog log, RaftLog::create(storage));
  std::unique_ptr<Raft> raft(new Raft(config, storage, std::move(log)));
  MQ_RETURN_IF_ERROR(raft->load_state());
  return raft;
}

Status Raft::load_state() {
  auto [hard_state, conf_state] = storage_->initial_state();
  MQ_ASSIGN_OR_RETURN(auto change,
                      confchange::restore(tracker_, log_.last_index(), conf_state));
  tracker_.config = std::move(change.config);
  tracker_.progress = std::move(change.progress);

  if (hard_state.commit > log_.last_index()) {
    return Status::corruption("raft: hard state commit " + num(hard_state.commit.value()) +
                              " beyond last index " + num(log_.last_index().value()));
  }
  log_.commit_to(hard_state.commit);
  term_ = hard_state.term;
  vote_ = hard_state.vote;
  synced_term_ = hard_state.term;
  restart_lease_ = config_.read_only == ReadOnlyOption::kLeaseBased && term_ > Term(0);
  if (config_.applied > LogIndex(0)) {
    if (config_.applied > log_.committed()) {
      return Status::invalid_argument("raft: config applied " + num(config_.applied.value()) +
                                      " beyond commit " + num(log_.committed().value()));
    }
    if (config_.applied >= log_.first_index() - 1) log_.set_applied(config_.applied);
  }
  become_follower(term_, kNoNode);
  prev_hard_state_ = HardState{term_, vote_, log_.committed()};
  prev_soft_state_ = SoftState{kNoNode, Role::kFollower};
  return Status::ok();
}

Role Raft::role() const {
  if (std::holds_alternative<Leader>(role_)) return Role::kLeader;
  if (const auto* c = std::get_if<Candidate>(&role_)) {
    return c->pre_vote ? Role::kPreCandidate : Role::kCandidate;
  }
  return Role::kFollower;
}

// ---------------------------------------------------------------------------------------
// Role transitions

void Raft::reset(Term term) {
  if (term_ != term) {
    MQ_ASSERT(term > term_, "term moving backwards");
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_randomized_election_timeout();
  const LogIndex last = log_.last_index();
  for (auto& [id, pr] : tracker_.progress) {
    const bool learner = pr.is_learner;
    pr = tracker_.new_progress();
    pr.next = last + 1;
    pr.is_learner = learner;
    // The leader counts itself only for what is durable (ready.h step 5).
    if (id == id_) pr.match = log_.persisted_index();
  }
  pending_conf_index_ = LogIndex(0);
  self_vote_pending_term_ = Term(0);
  bcast_pending_ = false;
  commit_unsent_ = false;
}

void Raft::become_follower(Term term, NodeId lead) {
  reset(term);
  role_ = Follower{};
  lead_ = lead;
}

void Raft::become_pre_candidate() {
  MQ_ASSERT(role() != Role::kLeader, "leader cannot become pre-candidate");
  // Thesis §9.6: no term change and no vote; only the role and the leader are forgotten.
  role_ = Candidate{.pre_vote = true, .votes = {}};
  lead_ = kNoNode;
}

void Raft::become_candidate() {
  MQ_ASSERT(role() != Role::kLeader, "leader cannot become candidate");
  reset(term_ + 1);
  vote_ = id_;
  role_ = Candidate{.pre_vote = false, .votes = {}};
}

void Raft::become_leader() {
  MQ_ASSERT(role() != Role::kFollower, "follower cannot become leader without an election");
  reset(term_);
  lead_ = id_;
  role_ = Leader{};
  auto self = tracker_.progress.find(id_);
  MQ_ASSERT(self != tracker_.progress.end(), "leader not in its own configuration");
  self->second.become_replicate();
  self->second.recent_active = true;
  // Conservatively refuse conf changes until everything in the log is applied: there may
  // be an unapplied change from an earlier term.
  pending_conf_index_ = log_.last_index();
  // §5.4.2 / §8: a no-op of the new term lets earlier entries commit and reads proceed.
  auto appended = append_proposal(std::get<Leader>(role_), EntryType::kNoop, SharedBuffer());
  MQ_ASSERT(appended.has_value(), "the leader's no-op was refused");
}

void Raft::reset_randomized_election_timeout() {
  // §5.2: randomized in [election, 2*election) so that split votes are rare.
  randomized_election_timeout_ =
      config_.election_ticks + static_cast<std::uint32_t>(prng_.uniform(config_.election_ticks));
}

bool Raft::promotable() const {
  auto it = tracker_.progress.find(id_);
  return it != tracker_.progress.end() && !it->second.is_learner &&
         tracker_.config.voters.contains(id_) && !log_.unstable().has_snapshot();
}

bool Raft::past_election_timeout() const {
  return election_elapsed_ >= randomized_election_timeout_;
}

bool Raft::in_lease() const {
  // Thesis §4.2.3: a node that heard from a live leader within the minimum election timeout
  // does not help depose it.
  if (!config_.check_quorum) return false;
  if (lead_ != kNoNode && election_elapsed_ < config_.election_ticks) return true;
  // After a restart we do not know whose lease we granted before the crash.
  return restart_lease_ && now_ticks_ < config_.election_ticks;
}

bool Raft::has_unapplied_conf_change() const {
  if (log_.committed() <= log_.applied()) return false;
  // Scan (applied, committed]; bounded by what the host has not applied yet.
  LogIndex lo = std::max(log_.applied() + 1, log_.first_index());
  const std::uint64_t kScanBytes = 1 << 20;
  while (lo <= log_.committed()) {
    auto entries = log_.slice(lo, log_.committed() + 1, kScanBytes);
    if (!entries.has_value() || entries->empty()) return true;  // unknown: be conservative
    for (const Entry& e : *entries) {
      if (e.type == EntryType::kConfChange) return true;
    }
    lo = entries->back().index + 1;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Elections

void Raft::campaign(bool transfer) {
  if (transfer) {
    start_campaign(CampaignType::kTransfer);
  } else {
    start_campaign(config_.pre_vote ? CampaignType::kPreElection : CampaignType::kElection);
  }
}

void Raft::start_campaign(CampaignType campaign_type) {
  if (!promotable() || role() == Role::kLeader) return;
  if (has_unapplied_conf_change()) return;
  if (abstaining()) return;  // lost entries it may have acknowledged (abstain.cc)  // the configuration it would run in is unsettled
  const bool transfer = campaign_type == CampaignType::kTransfer;
  MessageType type;
  Term vote_term;
  if (campaign_type == CampaignType::kPreElection) {
    become_pre_candidate();
    type = MessageType::kPreVote;
    vote_term = term_ + 1;  // the term it would campaign at
  } else {
    become_candidate();
    type = MessageType::kVote;
    vote_term = term_;
  }
  Candidate& candidate = std::get<Candidate>(role_);
  for (NodeId voter : tracker_.config.voters.ids()) {
    if (voter == id_) continue;
    Message m;
    m.type = type;
    m.to = voter;
    m.term = vote_term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    if (transfer) m.context = Message::kCampaignTransfer;
    send(std::move(m));
  }
  if (candidate.pre_vote) {
    // A pre-vote changes no persistent state: the own vote counts at once.
    record_vote_and_tally(candidate, id_, true);
  }
  // A real candidate's own vote counts once its term and vote are persisted (advance()).
}

Status Raft::step_vote_request(const Message& m) {
  const bool pre = m.type == MessageType::kPreVote;
  // §5.2: at most one vote per term, first come first served; a pre-vote for a later term
  // promises nothing.
  // A replica that lost entries it may have acknowledged abstains (abstain.cc).
  const bool can_vote = !abstaining() &&
                        (vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) ||
                         (pre && m.term > term_));
  // §5.4.1 election restriction: only for candidates whose log is at least as up-to-date.
  bool up_to_date = log_.is_up_to_date(m.index, m.log_term);
  if (config_.has_bug(Bug::kVoteWithoutLogCheck)) up_to_date = true;  // BUG knob
  Message resp;
  resp.type = pre ? MessageType::kPreVoteResponse : MessageType::kVoteResponse;
  resp.to = m.from;
  if (can_vote && up_to_date) {
    resp.term = m.term;  // for a pre-vote, the future term; for a vote, our (equal) term
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    resp.term = term_;
    resp.reject = true;
  }
  send(std::move(resp));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// Ticks

void Raft::tick(std::uint32_t ticks) {
  bool heartbeat_due = false;
  for (std::uint32_t i = 0; i < ticks; ++i) {
    ++now_ticks_;
    if (role() == Role::kLeader) {
      heartbeat_due = tick_heartbeat() || heartbeat_due;
    } else {
      tick_election();
    }
  }
  // One heartbeat round however many heartbeat intervals these ticks covered (a host that
  // ticks in strides, Node::idle_tick_stride): each round would reach the followers at the
  // same moment, so the later ones would only repeat the first.
  if (heartbeat_due && role() == Role::kLeader) {
    bcast_heartbeat(start_heartbeat_round(std::get<Leader>(role_)));
  }
  // After the heartbeats: a follower they told the commit index is not sent it again.
  if (commit_unsent_ && role() == Role::kLeader) send_unsent_commit();
}

void Raft::tick_election() {
  ++election_elapsed_;
  if (promotable() && past_election_timeout()) {
    election_elapsed_ = 0;
    campaign(/*transfer=*/false);
  }
}

bool Raft::tick_heartbeat() {
  Leader& leader = std::get<Leader>(role_);
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= config_.election_ticks) {
    election_elapsed_ = 0;
    if (config_.check_quorum) {
      // Thesis §6.2: step down when a quorum has not been heard from for an election
      // timeout, so a partitioned leader stops serving (lease) reads.
      bool step_down = !tracker_.quorum_active(id_);
      if (config_.has_bug(Bug::kNoCheckQuorumStepDown)) step_down = false;  // BUG knob
      if (step_down) {
        become_follower(term_, kNoNode);
        return false;
      }
      for (auto& [id, pr] : tracker_.progress) {
        if (id != id_) pr.recent_active = false;
      }
    }
    // Thesis §3.10: a transfer that did not finish within an election timeout is aborted.
    if (leader.lead_transferee != kNoNode) abort_leader_transfer(leader);
    // A removed or demoted leader retries handing over leadership every round.
    if (!tracker_.config.voters.contains(id_)) hand_over_leadership(leader);
    if (role() != Role::kLeader) return false;
    // A snapshot neither acknowledged nor reported (report_snapshot) within two
    // election-timeout rounds was most likely lost: probe again rather than wait forever.
    for (auto& [id, pr] : tracker_.progress) {
      if (pr.state != ProgressState::kSnapshot) continue;
      if (pr.snapshot_round_passed) {
        pr.become_probe();
      } else {
        pr.snapshot_round_passed = true;
      }
    }
  }
  if (heartbeat_elapsed_ < config_.heartbeat_ticks) return false;
  heartbeat_elapsed_ = 0;
  return true;
}

// ---------------------------------------------------------------------------------------
// step: validation, then the term logic common to all roles (§5.1), then the role.

namespace {
Status validate_message(const Message& m, NodeId self) {
  if (m.to != self) {
    return Status::invalid_argument("message for node " + num(m.to.value()) + " stepped into " +
                                    num(self.value()));
  }
  if (m.from == kNoNode || m.from == self) {
    return Status::invalid_argument("message with bad sender " + num(m.from.value()));
  }
  if (m.term == Term(0)) return Status::invalid_argument("message with term 0");
  // Far beyond any real term or index: refusing them keeps term_+1 and index arithmetic
  // from overflowing.
  if (m.term > kMaxTerm || m.log_term > kMaxTerm) {
    return Status::invalid_argument("message term out of range");
  }
  if (m.index > kMaxIndex || m.commit > kMaxIndex || m.reject_hint > kMaxIndex) {
    return Status::invalid_argument("message index out of range");
  }
  if (m.type == MessageType::kAppend) {
    if (m.log_term > m.term) return Status::invalid_argument("append: log term above term");
    if (m.entries.size() > kMaxIndex.value() - m.index.value()) {
      return Status::invalid_argument("append: index out of range");
    }
    Term prev = m.log_term;
    for (std::size_t i = 0; i < m.entries.size(); ++i) {
      const Entry& e = m.entries[i];
      if (e.index != m.index + (i + 1)) {
        return Status::invalid_argument("append: entries not contiguous after index " +
                                        num(m.index.value()));
      }
      if (e.term < prev || e.term > m.term) {
        return Status::invalid_argument("append: entry terms out of order at index " +
                                        num(e.index.value()));
      }
      prev = e.term;
    }
  }
  if (m.type == MessageType::kSnapshot) {
    if (!m.snapshot || m.snapshot->empty() || m.snapshot->meta.index > kMaxIndex) {
      return Status::invalid_argument("snapshot message without a snapshot");
    }
    if (m.snapshot->meta.term > m.term) {
      return Status::invalid_argument("snapshot from a later term than its message");
    }
  }
  return Status::ok();
}
}  // namespace

Status Raft::step(const Message& m) {
  MQ_RETURN_IF_ERROR(validate_message(m, id_));
  const bool vote_request = m.type == MessageType::kVote || m.type == MessageType::kPreVote;

  if (m.term > term_) {
    if (vote_request) {
      const bool force = m.context == Message::kCampaignTransfer;
      if (!force && in_lease()) {
        // Thesis §4.2.3: ignore — we heard from a leader recently. No term change.
        return Status::ok();
      }
    }
    if (m.type == MessageType::kPreVote) {
      // Never change the term for a pre-vote request (thesis §9.6).
    } else if (m.type == MessageType::kPreVoteResponse && !m.reject) {
      // A granted pre-vote carries the future term; the term changes when the real
      // election starts.
    } else {
      const bool from_leader = m.type == MessageType::kAppend ||
                               m.type == MessageType::kHeartbeat ||
                               m.type == MessageType::kSnapshot;
      if (m.type == MessageType::kVote) {
        // Figure 2 / §5.2: a follower's election timer restarts only when it hears from the
        // current leader or grants a vote (step_vote_request restarts it on a grant). A
        // higher-term vote request that is then refused must not restart it: otherwise a node
        // with a stale log that keeps campaigning (PreVote off) keeps every up-to-date node
        // from ever timing out, and the group stays leaderless (simulator seed 19911).
        const std::uint32_t elapsed = election_elapsed_;
        const std::uint32_t timeout = randomized_election_timeout_;
        become_follower(m.term, kNoNode);
        election_elapsed_ = std::min(elapsed, timeout);
        randomized_election_timeout_ = timeout;
      } else {
        become_follower(m.term, from_leader ? m.from : kNoNode);
      }
    }
  } else if (m.term < term_) {
    const bool from_old_leader =
        m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat;
    if (from_old_leader && config_.has_bug(Bug::kAcceptStaleLeaderAppend) &&
        role() == Role::kFollower) {
      // BUG knob: treat the stale leader as current (never do this).
      Follower& follower = std::get<Follower>(role_);
      return step_follower(follower, m);
    }
    if (from_old_leader && (config_.check_quorum || config_.pre_vote)) {
      // A deposed leader partitioned away would otherwise never learn the new term (its
      // heartbeats are ignored and, with PreVote/CheckQuorum, nobody's term rises).
      Message resp;
      resp.type = MessageType::kAppendResponse;
      resp.to = m.from;
      send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      // Tell the pre-candidate about our higher term so it can catch up.
      Message resp;
      resp.type = MessageType::kPreVoteResponse;
      resp.to = m.from;
      resp.term = term_;
      resp.reject = true;
      send(std::move(resp));
    }
    // Everything else from an older term is ignored (§5.1).
    return Status::ok();
  }

  if (vote_request) return step_vote_request(m);
  return std::visit(
      [&](auto& state) -> Status {
        using T = std::decay_t<decltype(state)>;
        if constexpr (std::is_same_v<T, Follower>) {
          return step_follower(state, m);
        } else if constexpr (std::is_same_v<T, Candidate>) {
          return step_candidate(state, m);
        } else {
          return step_leader(state, m);
        }
      },
      role_);
}

void Raft::send(Message m) {
  m.from = id_;
  if (m.term == Term(0)) m.term = term_;
  MQ_DASSERT(m.to != id_, "sending a message to itself");
  // Responses that acknowledge local persistence (an appended entry, a vote) may leave only
  // once the Ready's writes are durable (ready.h step 3; etcd msgsAfterAppend).
  bool after_persist = m.type == MessageType::kAppendResponse ||
                       m.type == MessageType::kVoteResponse ||
                       m.type == MessageType::kPreVoteResponse;
  if (m.type == MessageType::kVoteResponse && config_.has_bug(Bug::kVoteBeforePersist)) {
    after_persist = false;  // BUG knob: the vote may be forgotten by a crash yet counted
  }
  if (after_persist) {
    msgs_after_persist_.push_back(std::move(m));
  } else {
    msgs_.push_back(std::move(m));
  }
}

}  // namespace mq::raft
