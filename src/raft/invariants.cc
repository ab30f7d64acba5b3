// Executable invariants of one replica (STYLE.md E; LogCabin RaftConsensusInvariants.cc).
// State invariants hold after every tick/step/advance; delta invariants compare with the
// state before it. Cross-replica invariants (one leader per term, identical committed
// prefixes) are the simulator's checkers.
#include "raft/confchange/confchange.h"
#include "raft/raft.h"

namespace mq::raft {

namespace {
unsigned long long u(std::uint64_t v) { return static_cast<unsigned long long>(v); }
}  // namespace

Raft::InvariantSnapshot Raft::invariant_snapshot() const {
  InvariantSnapshot s;
  s.term = term_;
  s.committed = log_.committed();
  if (auto t = log_.term(log_.committed()); t.has_value()) s.committed_term = *t;
  s.applied = log_.applied();
  s.role = role();
  s.last_index = log_.last_index();
  return s;
}

void Raft::check_invariants(const InvariantSnapshot* previous) const {
  // ---- State invariants ----
  const LogIndex last = log_.last_index();
  // applied <= applying <= committed <= last_index (raft_log.h).
  MQ_ASSERT(log_.applied() <= log_.applying(), "applied %llu > applying %llu",
            u(log_.applied().value()), u(log_.applying().value()));
  MQ_ASSERT(log_.applying() <= log_.committed(), "applying %llu > committed %llu",
            u(log_.applying().value()), u(log_.committed().value()));
  MQ_ASSERT(log_.committed() <= last, "committed %llu > last index %llu",
            u(log_.committed().value()), u(last.value()));
  MQ_ASSERT(log_.first_index() <= last + 1);
  // No entry is from a term later than ours (§5.1: terms only come from leaders we obeyed).
  MQ_ASSERT(log_.last_term() <= term_, "last log term %llu > term %llu",
            u(log_.last_term().value()), u(term_.value()));
  const Role r = role();
  if (r == Role::kCandidate) MQ_ASSERT(vote_ == id_, "candidate did not vote for itself");
  if (r == Role::kLeader) {
    MQ_ASSERT(lead_ == id_, "leader does not name itself leader");
    auto self = tracker_.progress.find(id_);
    // A removed leader (handing over leadership) has no progress of its own.
    if (tracker_.config.voters.contains(id_)) {
      MQ_ASSERT(self != tracker_.progress.end(), "leader without its own progress");
    }
    if (self != tracker_.progress.end() &&
        !config_.has_bug(Bug::kLeaderCountsSelfBeforePersist)) {
      MQ_ASSERT(self->second.match <= log_.persisted_index() || log_.unstable().has_snapshot(),
                "leader counts unpersisted entries: match %llu persisted %llu",
                u(self->second.match.value()), u(log_.persisted_index().value()));
    }
    for (const auto& [id, pr] : tracker_.progress) {
      MQ_ASSERT(pr.match <= last, "progress %llu match %llu beyond last %llu", u(id.value()),
                u(pr.match.value()), u(last.value()));
      if (id != id_) {
        MQ_ASSERT(pr.match < pr.next, "progress %llu match %llu >= next %llu", u(id.value()),
                  u(pr.match.value()), u(pr.next.value()));
      }
      MQ_ASSERT(pr.inflights.count() <= config_.max_inflight_msgs);
    }
    const Leader& leader = std::get<Leader>(role_);
    MQ_ASSERT(leader.pending_reads.size() <= kMaxPendingReads);
  }
  MQ_ASSERT(msgs_.size() + msgs_after_persist_.size() < (1u << 24), "unbounded message queue");
  Status membership = confchange::check_invariants(tracker_.config, tracker_.progress);
  MQ_ASSERT(membership.is_ok(), "membership: %s", membership.to_string().c_str());

  if (previous == nullptr) return;
  // ---- Delta invariants ----
  MQ_ASSERT(term_ >= previous->term, "term decreased %llu -> %llu", u(previous->term.value()),
            u(term_.value()));
  MQ_ASSERT(log_.committed() >= previous->committed, "commit decreased %llu -> %llu",
            u(previous->committed.value()), u(log_.committed().value()));
  MQ_ASSERT(log_.applied() >= previous->applied, "applied decreased");
  // A committed entry is never replaced (Leader Completeness / State Machine Safety, §5.4).
  if (previous->committed_term && previous->committed >= log_.first_index()) {
    auto t = log_.term(previous->committed);
    if (t.has_value()) {
      MQ_ASSERT(*t == *previous->committed_term,
                "committed entry %llu changed term %llu -> %llu",
                u(previous->committed.value()), u(previous->committed_term->value()),
                u(t->value()));
    }
  }
  // Leader Append-Only (§5.3, Figure 3): a leader never truncates its own log.
  if (previous->role == Role::kLeader && r == Role::kLeader && previous->term == term_) {
    MQ_ASSERT(last >= previous->last_index, "leader truncated its log %llu -> %llu",
              u(previous->last_index.value()), u(last.value()));
  }
}

}  // namespace mq::raft
