#include "raft/memory_storage.h"

#include <string>

namespace mq::raft {

namespace {
std::string idx(LogIndex i) { return std::to_string(i.value()); }
}  // namespace

MemoryStorage::MemoryStorage() : entries_(1) {}

MemoryStorage::MemoryStorage(ConfState conf_state)
    : conf_state_(std::move(conf_state)), entries_(1) {
  snapshot_.meta.conf_state = conf_state_;
}

std::pair<HardState, ConfState> MemoryStorage::initial_state() const {
  return {hard_state_, conf_state_};
}

LogIndex MemoryStorage::first_index() const { return offset() + 1; }

LogIndex MemoryStorage::last_index() const { return offset() + (entries_.size() - 1); }

Status MemoryStorage::maybe_read_fault() const {
  if (read_fault_per_million_ == 0) return Status::ok();
  if (!read_fault_prng_.chance(read_fault_per_million_, 1000000)) return Status::ok();
  return Status::io_error("injected read fault");
}

Result<Term> MemoryStorage::term(LogIndex i) const {
  MQ_RETURN_IF_ERROR(maybe_read_fault());
  if (i < offset()) return Status::out_of_range("index " + idx(i) + " is compacted");
  if (i > last_index()) {
    return Status::out_of_range("index " + idx(i) + " beyond last index " + idx(last_index()));
  }
  return entries_[i - offset()].term;
}

Result<std::vector<Entry>> MemoryStorage::entries(LogIndex lo, LogIndex hi,
                                                  std::uint64_t bytes_max) const {
  MQ_RETURN_IF_ERROR(maybe_read_fault());
  if (lo <= offset()) return Status::out_of_range("index " + idx(lo) + " is compacted");
  if (hi > last_index() + 1) {
    return Status::out_of_range("entries up to " + idx(hi) + " beyond last index " +
                                idx(last_index()));
  }
  std::vector<Entry> out;
  if (lo >= hi) return out;
  std::uint64_t bytes = 0;
  for (LogIndex i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - offset()];
    bytes += e.size_bytes();
    if (!out.empty() && bytes > bytes_max) break;  // at least one entry
    out.push_back(e);
  }
  return out;
}

Result<Snapshot> MemoryStorage::snapshot() const {
  if (snapshot_unavailable_) return Status::unavailable("snapshot is being produced");
  return snapshot_;
}

Status MemoryStorage::append(const std::vector<Entry>& entries) {
  if (entries.empty()) return Status::ok();
  for (std::size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].index != entries[i - 1].index + 1) {
      return Status::invalid_argument("append: entries not contiguous at " + idx(entries[i].index));
    }
  }
  const LogIndex first = first_index();
  const LogIndex last_new = entries.back().index;
  if (last_new < first) return Status::ok();  // all compacted already
  std::size_t skip = 0;
  if (entries.front().index < first) skip = first - entries.front().index;
  const LogIndex start = entries[skip].index;
  if (start > last_index() + 1) {
    return Status::invalid_argument("append: gap, first new index " + idx(start) +
                                    " after last index " + idx(last_index()));
  }
  // Truncate the suffix that the new entries replace, then append.
  entries_.resize(start - offset());
  entries_.insert(entries_.end(), entries.begin() + static_cast<std::ptrdiff_t>(skip),
                  entries.end());
  MQ_DASSERT(last_index() == last_new);
  return Status::ok();
}

Status MemoryStorage::apply_snapshot(const Snapshot& snapshot) {
  if (snapshot.meta.index < snapshot_.meta.index) {
    return Status::out_of_range("apply_snapshot: snapshot " + idx(snapshot.meta.index) +
                                " older than " + idx(snapshot_.meta.index));
  }
  snapshot_ = snapshot;
  conf_state_ = snapshot.meta.conf_state;
  entries_.assign(1, Entry{snapshot.meta.term, snapshot.meta.index, EntryType::kNormal, {}});
  return Status::ok();
}

Result<Snapshot> MemoryStorage::create_snapshot(LogIndex index, const ConfState& conf_state,
                                                SharedBuffer data) {
  if (index <= snapshot_.meta.index) {
    return Status::out_of_range("create_snapshot: index " + idx(index) +
                                " not after the current snapshot " + idx(snapshot_.meta.index));
  }
  if (index > last_index()) {
    return Status::out_of_range("create_snapshot: index " + idx(index) + " beyond last index " +
                                idx(last_index()));
  }
  MQ_ASSIGN_OR_RETURN(Term t, term(index));
  snapshot_.meta.index = index;
  snapshot_.meta.term = t;
  snapshot_.meta.conf_state = conf_state;
  snapshot_.data = std::move(data);
  return snapshot_;
}

Status MemoryStorage::compact(LogIndex index) {
  if (index <= offset()) return Status::ok();  // already compacted
  if (index > last_index()) {
    return Status::out_of_range("compact: index " + idx(index) + " beyond last index " +
                                idx(last_index()));
  }
  const std::size_t cut = index - offset();
  Entry dummy{entries_[cut].term, index, EntryType::kNormal, {}};
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(cut));
  entries_[0] = std::move(dummy);
  return Status::ok();
}

std::vector<Entry> MemoryStorage::all_entries() const {
  return std::vector<Entry>(entries_.begin() + 1, entries_.end());
}

}  // namespace mq::raft
