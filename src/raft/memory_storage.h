// MemoryStorage: an in-memory StorageView (etcd storage.go MemoryStorage) for tests, the
// simulator and benchmarks. Copyable: a copy is a full, independent image of the "disk"
// (entry payloads are shared immutable buffers, so copying costs a pointer per entry).
//
// The host writes it from Ready (append, set_hard_state, apply_snapshot) and compacts it
// (create_snapshot, compact); the core only reads it.
#pragma once

#include <vector>

#include "base/prng.h"
#include "raft/storage_view.h"

namespace mq::raft {

class MemoryStorage : public StorageView {
 public:
  MemoryStorage();
  // A storage bootstrapped with a membership and no entries (a new group).
  explicit MemoryStorage(ConfState conf_state);

  // StorageView.
  std::pair<HardState, ConfState> initial_state() const override;
  Result<std::vector<Entry>> entries(LogIndex lo, LogIndex hi,
                                     std::uint64_t bytes_max) const override;
  Result<Term> term(LogIndex i) const override;
  LogIndex first_index() const override;
  LogIndex last_index() const override;
  Result<Snapshot> snapshot() const override;

  // Writes. Entries must be contiguous; entries at indexes already present replace them and
  // everything after them (suffix truncation, §5.3). Entries at or below the snapshot index
  // are skipped. Errors: kInvalidArgument on a gap or non-contiguous batch.
  Status append(const std::vector<Entry>& entries);
  void set_hard_state(const HardState& hard_state) { hard_state_ = hard_state; }
  // The membership to report from initial_state() (bootstrap, or after applying a change).
  void set_conf_state(const ConfState& conf_state) { conf_state_ = conf_state; }
  // Replaces the whole log by a snapshot received from the leader. kOutOfRange when it is
  // older than the current snapshot.
  Status apply_snapshot(const Snapshot& snapshot);
  // Records a snapshot of the host's state machine at `index` (<= last_index, > current
  // snapshot index). Does not compact: call compact() for that.
  Result<Snapshot> create_snapshot(LogIndex index, const ConfState& conf_state,
                                   SharedBuffer data);
  // Discards entries up to and including `index` (<= last_index). Entries not covered by a
  // snapshot become unreachable for lagging followers, who then get the snapshot.
  Status compact(LogIndex index);
  // Makes snapshot() answer kUnavailable (a snapshot "being produced"), for tests.
  void set_snapshot_unavailable(bool unavailable) { snapshot_unavailable_ = unavailable; }
  // Fault injection for tests: term() and entries() fail with kIoError with probability
  // per_million / 1e6, drawn from a Prng seeded with `seed`. 0 turns faults off.
  void set_read_faults(std::uint64_t seed, std::uint32_t per_million) {
    read_fault_prng_ = Prng(seed);
    read_fault_per_million_ = per_million;
  }

  const HardState& hard_state() const { return hard_state_; }
  const ConfState& conf_state() const { return conf_state_; }
  // All entries held (after the compaction point), for inspection.
  std::vector<Entry> all_entries() const;

 private:
  // Index/term of the dummy entry at entries_[0]: the last compacted entry (or the snapshot).
  LogIndex offset() const { return entries_.front().index; }

  HardState hard_state_;
  ConfState conf_state_;
  Snapshot snapshot_;
  // Invariant: entries_[0] is a dummy with the index/term of the compaction point; the rest
  // are contiguous real entries.
  std::vector<Entry> entries_;
  bool snapshot_unavailable_ = false;
  Status maybe_read_fault() const;
  mutable Prng read_fault_prng_{0};
  std::uint32_t read_fault_per_million_ = 0;
};

}  // namespace mq::raft
