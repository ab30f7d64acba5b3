#include "sim/checker.h"

#include <algorithm>

namespace mq::sim {

namespace {
std::string str(std::uint64_t v) { return std::to_string(v); }
std::pair<std::uint64_t, std::uint64_t> log_key(LogIndex index, Term term) {
  return {index.value(), term.value()};
}
std::uint32_t majority(std::size_t voters) { return static_cast<std::uint32_t>(voters / 2 + 1); }
}  // namespace

StateDigest apply_to_state(const StateDigest& state, const raft::Entry& entry) {
  StateDigest next = state;
  next.applied = entry.index;
  if (entry.type == raft::EntryType::kNormal && !entry.payload.empty()) {
    raft::Entry normalized;  // the digest depends on the payloads only, not on index or term
    normalized.payload = entry.payload;
    next.digest = chain_next(state.digest, normalized);
    ++next.normal_count;
  }
  return next;
}

void Checker::fail(std::string invariant, std::string detail) {
  if (failed()) return;  // keep the first violation
  invariant_ = std::move(invariant);
  violation_ = std::move(detail);
}

void Checker::on_conf_state(const raft::ConfState& conf_state) {
  if (!conf_state.voters.empty()) {
    quorum_min_ = std::min(quorum_min_, majority(conf_state.voters.size()));
  }
  if (!conf_state.voters_outgoing.empty()) {
    quorum_min_ = std::min(quorum_min_, majority(conf_state.voters_outgoing.size()));
  }
}

void Checker::on_bootstrap(const raft::SnapshotMeta& meta, std::uint64_t chain,
                           const StateDigest& state) {
  MQ_ASSERT(canonical_.empty() && meta.index == LogIndex(1));
  CanonicalEntry canon;
  canon.term = meta.term;
  canon.hash = chain;
  canon.chain = chain;
  canon.state = state;
  canon.commit_term_max = Term(0);  // committed before any election: every leader needs it
  canonical_.push_back(canon);
}

void Checker::on_commit_index(NodeId node, LogIndex commit) {
  if (commit <= committed_index() || commit == LogIndex(0)) return;  // checked when applied
  // Beyond what anyone applied: count the disks holding the most widespread version of the
  // entry at `commit` (a different entry on other disks only lowers the count).
  std::map<std::uint64_t, std::uint32_t> holders;
  for (const auto& [id, disk] : disks_) {
    if (disk->last_index() < commit || disk->snapshot_index() >= commit) continue;
    ++holders[disk->chain_at(commit)];
  }
  std::uint32_t best = 0;
  for (const auto& [chain, count] : holders) best = std::max(best, count);
  if (best < quorum_min_) {
    fail("commit-durability", "n" + str(node.value()) + " considers index " +
                                  str(commit.value()) + " committed while it is durable on " +
                                  str(best) + " node(s); a quorum needs " + str(quorum_min_));
  }
}

void Checker::on_leader(NodeId node, Term term) {
  auto [it, inserted] = leaders_.emplace(term.value(), node.value());
  if (!inserted && it->second != node.value()) {
    fail("election-safety", "two leaders in term " + str(term.value()) + ": n" +
                                str(it->second) + " and n" + str(node.value()));
  }
}

void Checker::on_durable_entries(NodeId node, const SimDisk& disk, LogIndex first) {
  for (LogIndex i = std::max(first, disk.first_index()); i <= disk.last_index(); ++i) {
    const raft::Entry& entry = disk.entry_at(i);
    if (entry.index != i) {
      fail("log-matching", "n" + str(node.value()) + " stored entry " + str(entry.index.value()) +
                               " at position " + str(i.value()));
      return;
    }
    const std::uint64_t chain = disk.chain_at(i);
    auto [it, inserted] = log_chains_.emplace(log_key(i, entry.term), chain);
    if (!inserted && it->second != chain) {
      fail("log-matching", "n" + str(node.value()) + " holds entry " + str(i.value()) + " of term " +
                               str(entry.term.value()) +
                               " but its log differs from another log holding the same entry");
      return;
    }
    if (i <= committed_index() && canonical_[i.value() - 1].term == entry.term &&
        canonical_[i.value() - 1].chain != chain) {
      fail("log-matching", "n" + str(node.value()) + " entry " + str(i.value()) +
                               " has the committed entry's term but a different prefix");
      return;
    }
  }
}

void Checker::on_leader_log(NodeId node, Term term, const SimDisk& disk) {
  auto key = std::make_pair(node.value(), term.value());
  if (leader_checked_.count(key) != 0) return;
  leader_checked_[key] = 1;
  // §5.4.1: entries committed in earlier terms must be in the leader's log. The committed
  // log is a prefix, so one chain comparison at the last such index suffices.
  std::uint64_t k = canonical_.size();
  while (k > 0 && canonical_[k - 1].commit_term_max >= term) --k;
  if (k == 0) return;
  const LogIndex need(k);
  if (disk.last_index() < need) {
    fail("leader-completeness",
         "n" + str(node.value()) + " leads term " + str(term.value()) + " with last index " +
             str(disk.last_index().value()) + " but entry " + str(k) +
             " was committed in an earlier term");
    return;
  }
  const LogIndex at = std::max(need, disk.snapshot_index());
  if (at > committed_index()) return;  // its snapshot is newer than anything applied yet
  if (disk.chain_at(at) != canonical_chain(at)) {
    fail("leader-completeness", "n" + str(node.value()) + " leads term " + str(term.value()) +
                                    " but its log differs from the committed log at or before " +
                                    str(at.value()));
  }
}

std::uint32_t Checker::durable_holders(LogIndex index) const {
  std::uint32_t count = 0;
  const std::uint64_t chain = canonical_chain(index);
  for (const auto& [id, disk] : disks_) {
    if (disk->last_index() < index) continue;
    const LogIndex at = std::max(index, disk->snapshot_index());
    if (at > committed_index()) continue;
    if (disk->snapshot_index() >= index) {
      if (disk->chain_at(at) == canonical_chain(at)) ++count;
    } else if (disk->chain_at(index) == chain) {
      ++count;
    }
  }
  return count;
}

void Checker::on_apply(NodeId node, Term node_term, const StateDigest& before,
                       const raft::Entry& entry) {
  const LogIndex i = entry.index;
  if (i != before.applied + 1) {
    fail("state-machine-safety", "n" + str(node.value()) + " applied entry " + str(i.value()) +
                                     " after " + str(before.applied.value()) + " (a gap)");
    return;
  }
  const std::uint64_t hash = entry_hash(entry);
  if (i <= committed_index()) {
    CanonicalEntry& canon = canonical_[i.value() - 1];
    if (canon.hash != hash) {
      const bool acked = canon.acked_write != 0;
      fail(acked ? "acknowledged-write-lost" : "state-machine-safety",
           "n" + str(node.value()) + " applied " + raft::describe(entry) + " at index " +
               str(i.value()) + " where another node applied an entry of term " +
               str(canon.term.value()) +
               (acked ? " acknowledged to a client as write " + str(canon.acked_write) : ""));
      return;
    }
    if (before != (i.value() == 1 ? StateDigest{} : canonical_[i.value() - 2].state)) {
      fail("state-machine-safety",
           "n" + str(node.value()) + " applied entry " + str(i.value()) +
               " on a state machine that differs from the committed prefix");
    }
    return;
  }
  if (i.value() != canonical_.size() + 1) {
    fail("state-machine-safety", "n" + str(node.value()) + " applied entry " + str(i.value()) +
                                     " beyond the known committed prefix " +
                                     str(canonical_.size()));
    return;
  }
  CanonicalEntry canon;
  canon.term = entry.term;
  canon.hash = hash;
  canon.chain = chain_next(i.value() == 1 ? 0 : canonical_.back().chain, entry);
  canon.state = apply_to_state(before, entry);
  canon.commit_term_max = node_term;
  if (before != (i.value() == 1 ? StateDigest{} : canonical_.back().state)) {
    fail("state-machine-safety", "n" + str(node.value()) + " applied entry " + str(i.value()) +
                                     " on a state that differs from the committed prefix");
    return;
  }
  canonical_.push_back(canon);
  const std::uint32_t holders = durable_holders(i);
  if (holders < quorum_min_) {
    fail("commit-durability", "entry " + str(i.value()) + " of term " + str(entry.term.value()) +
                                  " was applied by n" + str(node.value()) +
                                  " while durable on only " + str(holders) +
                                  " node(s); a quorum needs " + str(quorum_min_));
  }
}

void Checker::on_restore(NodeId node, const StateDigest& state) {
  if (state.applied == LogIndex(0)) return;
  if (state.applied > committed_index()) {
    fail("state-machine-safety", "n" + str(node.value()) + " restored a snapshot at " +
                                     str(state.applied.value()) +
                                     " beyond the committed prefix " +
                                     str(committed_index().value()));
    return;
  }
  if (canonical_state(state.applied) != state) {
    fail("state-machine-safety", "n" + str(node.value()) + " restored a snapshot at " +
                                     str(state.applied.value()) +
                                     " that differs from the committed state there");
  }
}

std::optional<std::uint64_t> Checker::chain_for_snapshot(NodeId node,
                                                         const raft::SnapshotMeta& meta) {
  if (meta.index == LogIndex(0)) return 0;
  if (meta.index > committed_index()) {
    fail("state-machine-safety", "n" + str(node.value()) + " received a snapshot at " +
                                     str(meta.index.value()) + " beyond the committed prefix " +
                                     str(committed_index().value()));
    return std::nullopt;
  }
  if (canonical_[meta.index.value() - 1].term != meta.term) {
    fail("state-machine-safety", "n" + str(node.value()) + " received a snapshot at " +
                                     str(meta.index.value()) + " with term " +
                                     str(meta.term.value()) + " but the committed entry has term " +
                                     str(canonical_[meta.index.value() - 1].term.value()));
    return std::nullopt;
  }
  return canonical_chain(meta.index);
}

void Checker::on_write_acked(std::uint64_t write_id, LogIndex index, const raft::Entry& entry) {
  if (index > committed_index() || canonical_[index.value() - 1].hash != entry_hash(entry)) {
    fail("acknowledged-write-lost", "write " + str(write_id) + " acknowledged at index " +
                                        str(index.value()) + " is not the committed entry there");
    return;
  }
  canonical_[index.value() - 1].acked_write = write_id;
  max_acked_index_ = std::max(max_acked_index_, index);
}

void Checker::on_read_completed(NodeId node, std::uint64_t read_id, LogIndex acked_before,
                                LogIndex read_index, const StateDigest& served) {
  ++reads_checked_;
  const std::string who = "read " + str(read_id) + " at n" + str(node.value());
  if (read_index < acked_before) {
    fail("linearizable-read", who + " completed with read index " + str(read_index.value()) +
                                  " but write at index " + str(acked_before.value()) +
                                  " was acknowledged before the read was invoked (stale read)");
    return;
  }
  if (served.applied < read_index) {
    fail("linearizable-read", who + " served state at " + str(served.applied.value()) +
                                  " below its read index " + str(read_index.value()));
    return;
  }
  if (served.applied > committed_index() || canonical_state(served.applied) != served) {
    fail("linearizable-read", who + " served a state at " + str(served.applied.value()) +
                                  " that is not the committed prefix");
  }
}

std::uint64_t Checker::canonical_chain(LogIndex i) const {
  if (i == LogIndex(0)) return 0;
  MQ_ASSERT(i <= committed_index());
  return canonical_[i.value() - 1].chain;
}

const StateDigest& Checker::canonical_state(LogIndex i) const {
  static const StateDigest kEmpty{};
  if (i == LogIndex(0)) return kEmpty;
  MQ_ASSERT(i <= committed_index());
  return canonical_[i.value() - 1].state;
}

}  // namespace mq::sim
