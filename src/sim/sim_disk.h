// SimDisk: one simulated node's stable storage, and the StorageView its Raft core reads.
//
// The disk model (DESIGN.md "Failure model"): what the host hands it from a Ready is first
// *written* (a PendingWrite, still volatile) and becomes *durable* only when the simulated
// fsync completes (commit_pending()). A crash discards the pending write, or — a torn write —
// keeps a prefix of it in this order:
//
//     snapshot | term+vote | entry 1 | entry 2 | ... | entry n | commit
//
// which is the order a host that writes term/vote before appending and the commit index last
// would leave on a real disk. The core only ever sees what is durable: the view is updated at
// fsync time, and advance() is called after that (ready.h step 5).
//
// Alongside each entry the disk keeps the entry's *chain hash* — a hash over the whole log
// prefix up to it — so the checkers can compare logs (Log Matching, Leader Completeness) in
// O(1). The chain hash is simulator bookkeeping, not part of the Raft state.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "raft/storage_view.h"
#include "raft/types.h"

namespace mq::sim {

// What the host wrote for one Ready and has not yet fsynced.
struct PendingWrite {
  std::optional<raft::Snapshot> snapshot;
  std::uint64_t snapshot_chain = 0;  // chain hash at the snapshot's index
  std::vector<raft::Entry> entries;
  std::optional<raft::HardState> hard_state;
  bool empty() const { return !snapshot && entries.empty() && !hard_state; }
};

// Hash of one entry's identity and content (term, index, type, payload).
std::uint64_t entry_hash(const raft::Entry& entry);
// Chain hash of a log prefix: chain(i) = mix(chain(i-1), entry_hash(entry i)).
std::uint64_t chain_next(std::uint64_t previous_chain, const raft::Entry& entry);
// Hash mixing helper (splitmix64 finaliser over a ^ b-rotation).
std::uint64_t mix_hash(std::uint64_t a, std::uint64_t b);

class SimDisk final : public raft::StorageView {
 public:
  // An empty disk. `bootstrap` is the membership a brand-new cluster starts from (empty for
  // a node that joins later and learns its configuration from the leader).
  explicit SimDisk(raft::ConfState bootstrap);

  // Seeds a brand-new group's disk with its bootstrap snapshot (the initial membership, an
  // empty state machine) and the matching hard state. Nodes that join later start empty and
  // receive a snapshot from the leader, which carries the membership they need.
  void bootstrap_with(const raft::Snapshot& snapshot, std::uint64_t chain);

  // StorageView.
  std::pair<raft::HardState, raft::ConfState> initial_state() const override;
  Result<std::vector<raft::Entry>> entries(LogIndex lo, LogIndex hi,
                                           std::uint64_t bytes_max) const override;
  Result<Term> term(LogIndex i) const override;
  LogIndex first_index() const override;
  LogIndex last_index() const override;
  Result<raft::Snapshot> snapshot() const override;

  // Makes `write` durable (the fsync completed). Entries replace any durable suffix starting
  // at the first written index. Returns an error when the write does not fit the log (a gap,
  // or entries below the snapshot): that is a core bug the checker reports.
  Status commit_write(const PendingWrite& write);
  // The node crashed with `write` in flight: keep only the first `durable_parts` parts of it
  // in the order documented above (0 = nothing survives).
  Status commit_torn_write(const PendingWrite& write, std::size_t durable_parts);
  static std::size_t write_parts(const PendingWrite& write);

  // Host-side compaction (the host took a snapshot of its state machine at `index`, which it
  // has applied): the snapshot becomes durable and entries up to `index` are dropped.
  Status compact(LogIndex index, raft::ConfState conf_state, SharedBuffer data);

  const raft::HardState& hard_state() const { return hard_state_; }
  const raft::Snapshot& durable_snapshot() const { return snapshot_; }
  LogIndex snapshot_index() const { return snapshot_.meta.index; }
  // Chain hash at index i in [snapshot_index(), last_index()].
  std::uint64_t chain_at(LogIndex i) const;
  // The durable entry at i in (snapshot_index(), last_index()].
  const raft::Entry& entry_at(LogIndex i) const;
  // Durable entries after the snapshot, in order.
  const std::vector<raft::Entry>& log() const { return log_; }

 private:
  Status append(const std::vector<raft::Entry>& entries, std::size_t count);
  Status install_snapshot(const raft::Snapshot& snapshot, std::uint64_t chain);

  raft::ConfState bootstrap_;
  raft::HardState hard_state_;
  raft::Snapshot snapshot_;
  std::uint64_t snapshot_chain_ = 0;
  std::vector<raft::Entry> log_;        // entries snapshot_index()+1 .. last_index()
  std::vector<std::uint64_t> chain_;    // chain_[k] = chain hash of log_[k]
};

}  // namespace mq::sim
