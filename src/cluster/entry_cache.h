// CachingStorageView: the Raft core's view of a group's storage (raft::StorageView) with the
// group's most recent entries kept in memory, as they were appended (payloads are shared
// buffers: no copy). Without it every committed entry was read back from the segment file to
// be applied (pread + a CRC-32C check + a fresh buffer per entry) on every replica, and so
// were entries sent to followers after they became stable: under a produce load that was
// about half of each broker's CPU (docs/benchmarks.md, "Optimisation pass").
//
// The cached entries are those the core itself handed over in Ready::entries_to_persist. A
// kNormal entry's payload is the record batch as proposed (or received), before the storage
// stamped its base offset and leader epoch into it; both fields lie outside the batch CRC and
// every reader of Raft entries ignores them (a follower stamps its own; apply reads the batch
// identity only). Everything else (bounds, snapshots, entries and terms not cached) comes from
// the GroupStorage. Cleared on a snapshot and when the group quiesces.
//
// Eviction: entries above the applied index (on_applied) are pinned, because the core reads
// every one of them once more to apply it, and so are a leader's entries from the lowest
// `next` of its active followers on (it reads them again to send them to a follower that is
// behind the others); only entries below both are evicted to stay within bytes_max.
// A librdkafka producer's batch is up to 1 MB, so a 2 MiB cache held about two entries and
// under a produce load most committed entries were read back from the segment (pread,
// CRC-32C, a fresh buffer) before they were applied (docs/benchmarks.md, "Produce CPU").
// The pinned bytes are bounded by what Raft itself keeps unapplied (max_uncommitted_bytes on
// the leader, the pipeline depth on followers); pinned_bytes_max is a hard cap beyond that.
// Event loop only.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <vector>

#include "cluster/group_storage.h"
#include "raft/storage_view.h"

namespace mq::cluster {

class CachingStorageView final : public raft::StorageView {
 public:
  CachingStorageView(const GroupStorage* storage, std::uint64_t bytes_max,
                     std::uint64_t pinned_bytes_max = kPinnedBytesMaxDefault)
      : storage_(storage), bytes_max_(bytes_max), pinned_bytes_max_(pinned_bytes_max) {}

  static constexpr std::uint64_t kPinnedBytesMaxDefault = 64u << 20;

  std::pair<raft::HardState, raft::ConfState> initial_state() const override {
    return storage_->initial_state();
  }
  Result<std::vector<raft::Entry>> entries(LogIndex lo, LogIndex hi,
                                           std::uint64_t bytes_max) const override;
  // Cached indexes answer from memory: the storage finds a term by scanning the segment from
  // its sparse index (a pread and header checksums per call), and the core asks for terms on
  // every append and append response.
  Result<Term> term(LogIndex i) const override;
  LogIndex first_index() const override { return storage_->first_index(); }
  LogIndex last_index() const override { return storage_->last_index(); }
  Result<raft::Snapshot> snapshot() const override { return storage_->snapshot(); }

  // `entries` (contiguous) were appended to the storage (suffix truncation included).
  void on_appended(const std::vector<raft::Entry>& entries);
  // Entries up to `applied` were applied and entries from `needed_from` on will be read again
  // (a leader's lowest follower `next`; LogIndex max: none): entries below both may be
  // evicted from now on.
  void on_applied(LogIndex applied,
                  LogIndex needed_from = LogIndex(std::numeric_limits<std::uint64_t>::max()));
  void clear();

  std::size_t cached_entries() const { return cache_.size(); }
  std::uint64_t cached_bytes() const { return bytes_; }
  std::uint64_t hits() const { return hits_; }
  std::uint64_t misses() const { return misses_; }

 private:
  LogIndex cache_end() const;  // one past the last cached index
  void evict();

  const GroupStorage* storage_;
  std::uint64_t bytes_max_;
  std::uint64_t pinned_bytes_max_;
  LogIndex keep_from_{1};  // entries from it on are kept (up to pinned_bytes_max_)
  std::deque<raft::Entry> cache_;  // contiguous indexes
  std::uint64_t bytes_ = 0;
  mutable std::uint64_t hits_ = 0;
  mutable std::uint64_t misses_ = 0;
};

}  // namespace mq::cluster
