// How the core reads stable storage. The core never writes it: the host persists what Ready
// hands it and then the view reflects it (same shape as etcd's storage.go). MemoryStorage
// (memory_storage.h) is the in-memory implementation used by tests and the simulator;
// cluster/ adapts storage::Log to this interface.
#pragma once

#include <utility>
#include <vector>

#include "base/result.h"
#include "raft/types.h"

namespace mq::raft {

class StorageView {
 public:
  virtual ~StorageView() = default;

  // The persisted hard state and membership at start-up.
  virtual std::pair<HardState, ConfState> initial_state() const = 0;

  // Entries in [lo, hi), at least one entry if any is available, and beyond the first no more
  // than bytes_max in total (Entry::size_bytes). Errors: kOutOfRange when lo <= snapshot index
  // (compacted) or hi > last_index()+1; kCorruption/kIoError from the host's storage.
  virtual Result<std::vector<Entry>> entries(LogIndex lo, LogIndex hi,
                                             std::uint64_t bytes_max) const = 0;

  // Term of entry i, for i in [first_index()-1, last_index()]. first_index()-1 is the snapshot
  // index, whose term is known. kOutOfRange when compacted or beyond the end.
  virtual Result<Term> term(LogIndex i) const = 0;

  // Index of the first entry still in the log (snapshot index + 1).
  virtual LogIndex first_index() const = 0;
  // Index of the last entry (snapshot index when the log is empty).
  virtual LogIndex last_index() const = 0;

  // The most recent snapshot. kUnavailable when it is being produced (the core retries later).
  virtual Result<Snapshot> snapshot() const = 0;
};

}  // namespace mq::raft
