// Checker: the cross-node invariants of Raft (paper §5.2-§5.4, Figure 3) and of the client
// contract, checked after every step of the simulation. The cluster reports what each node
// does (becomes leader, makes a write durable, applies an entry, acknowledges a client write,
// serves a read); the checker keeps the *canonical* committed log — the first entry any node
// applied at each index — and compares everything against it:
//
//  - Election Safety: at most one leader per term (§5.2).
//  - Log Matching: two durable logs holding an entry with the same index and term are
//    identical up to it (§5.3). Checked with chain hashes: one global (index, term) → chain.
//  - Leader Completeness: a leader of term T holds every entry committed in a term < T (§5.4).
//    The term an entry was committed in is bounded from above by the applying node's term
//    when the checker first learns of it, so only entries whose bound is < T are required:
//    no false alarms, at the cost of missing a few violations.
//  - Commit durability: an entry applied anywhere is durable on at least a quorum of the
//    smallest voter configuration seen (so a crash of any minority cannot lose it).
//  - State Machine Safety: no two nodes apply different entries at one index (§5.4.3); when
//    the entry at that index had been acknowledged to a client, the violation is reported as
//    a lost acknowledged write.
//  - Linearizable reads: a read that completed with read index r is linearizable iff r >= the
//    index of every write acknowledged before the read was invoked, and the state served is
//    exactly the canonical applied prefix up to some a >= r (thesis §6.4).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "raft/types.h"
#include "sim/sim_disk.h"

namespace mq::sim {

// The state of the simulated state machine: the applied prefix, summarised.
struct StateDigest {
  LogIndex applied;
  std::uint64_t digest = 0;        // chain over the payloads of applied normal entries
  std::uint64_t normal_count = 0;  // applied normal entries
  bool operator==(const StateDigest&) const = default;
};

// The state machine's transition function (shared by hosts and checker).
StateDigest apply_to_state(const StateDigest& state, const raft::Entry& entry);

class Checker {
 public:
  Checker() = default;

  bool failed() const { return !violation_.empty(); }
  const std::string& invariant() const { return invariant_; }
  const std::string& violation() const { return violation_; }

  // Nodes' disks, for the durability check (disks outlive crashes).
  void register_disk(NodeId node, const SimDisk* disk) { disks_[node.value()] = disk; }
  // A configuration some node adopted; lowers the quorum the durability check requires.
  void on_conf_state(const raft::ConfState& conf_state);

  // The group's bootstrap snapshot: the committed prefix starts with it.
  void on_bootstrap(const raft::SnapshotMeta& meta, std::uint64_t chain, const StateDigest& state);

  void on_leader(NodeId node, Term term);
  // A node's in-memory commit index: the entry there must be durable on a quorum already
  // (the definition of committed, §5.3/§5.4.2), whether or not anyone applied it yet.
  void on_commit_index(NodeId node, LogIndex commit);
  // `disk` just made entries from `first` to its last index durable (fsync or torn write).
  void on_durable_entries(NodeId node, const SimDisk& disk, LogIndex first);
  // `disk` belongs to a node that is leader at `term` and holds (durably) all its log.
  void on_leader_log(NodeId node, Term term, const SimDisk& disk);
  // `node` (whose highest known term is `node_term`) applied `entry` on top of `before`.
  void on_apply(NodeId node, Term node_term, const StateDigest& before, const raft::Entry& entry);
  // `node` restored its state machine from a snapshot of state `state` at `term`.
  void on_restore(NodeId node, const StateDigest& state);
  // A snapshot arrived at `node` whose chain hash the host needs (its index must be committed).
  std::optional<std::uint64_t> chain_for_snapshot(NodeId node, const raft::SnapshotMeta& meta);

  // Client writes.
  void on_write_acked(std::uint64_t write_id, LogIndex index, const raft::Entry& entry);
  LogIndex max_acked_index() const { return max_acked_index_; }
  // A read invoked when max_acked_index() was `acked_before` completed at `node` with read
  // index `read_index` on state `served`.
  void on_read_completed(NodeId node, std::uint64_t read_id, LogIndex acked_before,
                         LogIndex read_index, const StateDigest& served);

  LogIndex committed_index() const { return LogIndex(canonical_.size()); }
  std::uint64_t canonical_chain(LogIndex i) const;
  const StateDigest& canonical_state(LogIndex i) const;
  std::uint64_t leaders_seen() const { return leaders_.size(); }
  std::uint64_t reads_checked() const { return reads_checked_; }

  void fail(std::string invariant, std::string detail);

 private:
  struct CanonicalEntry {
    Term term;
    std::uint64_t hash = 0;
    std::uint64_t chain = 0;
    StateDigest state;     // after applying it
    Term commit_term_max;  // upper bound of the term it was committed in
    std::uint64_t acked_write = 0;  // client write id acknowledged at this index, 0 if none
  };
  std::uint32_t durable_holders(LogIndex index) const;

  std::vector<CanonicalEntry> canonical_;  // canonical_[i-1] is index i
  std::map<std::uint64_t, std::uint64_t> leaders_;  // term → leader
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> leader_checked_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> log_chains_;  // (index, term) → chain
  std::map<std::uint64_t, const SimDisk*> disks_;
  std::uint32_t quorum_min_ = UINT32_MAX;  // lowered by on_conf_state
  LogIndex max_acked_index_;
  std::uint64_t reads_checked_ = 0;
  std::string invariant_;
  std::string violation_;
};

}  // namespace mq::sim
