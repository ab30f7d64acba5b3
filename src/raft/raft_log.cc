#include "raft/raft_log.h"

#include <algorithm>

namespace mq::raft {

namespace {
std::string idx(LogIndex i) { return std::to_string(i.value()); }
}  // namespace

// ---------------------------------------------------------------------------------------
// Unstable

std::optional<LogIndex> Unstable::maybe_first_index() const {
  if (snapshot_) return snapshot_->meta.index + 1;
  return std::nullopt;
}

std::optional<LogIndex> Unstable::maybe_last_index() const {
  if (!entries_.empty()) return offset_ + (entries_.size() - 1);
  if (snapshot_) return snapshot_->meta.index;
  return std::nullopt;
}

std::optional<Term> Unstable::maybe_term(LogIndex i) const {
  if (i < offset_) {
    if (snapshot_ && snapshot_->meta.index == i) return snapshot_->meta.term;
    return std::nullopt;
  }
  if (i >= offset_ + entries_.size()) return std::nullopt;
  return entries_[i - offset_].term;
}

std::vector<Entry> Unstable::next_entries() const {
  const std::size_t from = offset_in_progress_ - offset_;
  if (from >= entries_.size()) return {};
  return std::vector<Entry>(entries_.begin() + static_cast<std::ptrdiff_t>(from), entries_.end());
}

void Unstable::accept_in_progress() {
  offset_in_progress_ = offset_ + entries_.size();
  snapshot_in_progress_ = snapshot_.has_value();
}

void Unstable::stable_to(LogIndex index, Term term) {
  const std::optional<Term> t = maybe_term(index);
  if (!t || index < offset_) return;  // not unstable (any more)
  if (*t != term) return;             // replaced by a newer leader since it was handed out
  const std::size_t n = index - offset_ + 1;
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(n));
  offset_ = index + 1;
  offset_in_progress_ = std::max(offset_in_progress_, offset_);
}

void Unstable::stable_snapshot_to(LogIndex index) {
  if (snapshot_ && snapshot_->meta.index == index) {
    snapshot_.reset();
    snapshot_in_progress_ = false;
  }
}

void Unstable::restore(Snapshot snapshot) {
  offset_ = snapshot.meta.index + 1;
  offset_in_progress_ = offset_;
  entries_.clear();
  snapshot_ = std::move(snapshot);
  snapshot_in_progress_ = false;
}

void Unstable::truncate_and_append(std::vector<Entry> entries) {
  if (entries.empty()) return;
  const LogIndex from = entries.front().index;
  if (from == offset_ + entries_.size()) {
    // The common case: plain append.
    if (entries_.empty()) {
      entries_ = std::move(entries);
    } else {
      entries_.insert(entries_.end(), std::make_move_iterator(entries.begin()),
                      std::make_move_iterator(entries.end()));
    }
  } else if (from <= offset_) {
    // Replaces every unstable entry (and what storage holds from `from` on).
    offset_ = from;
    offset_in_progress_ = from;
    entries_ = std::move(entries);
  } else {
    // Keeps [offset_, from), replaces the rest.
    entries_.resize(from - offset_);
    entries_.insert(entries_.end(), std::make_move_iterator(entries.begin()),
                    std::make_move_iterator(entries.end()));
    offset_in_progress_ = std::min(offset_in_progress_, from);
  }
}

void Unstable::slice(LogIndex lo, LogIndex hi, std::uint64_t bytes_max, std::uint64_t* bytes,
                     std::vector<Entry>* out) const {
  MQ_ASSERT(lo >= offset_, "unstable slice from %llu below offset %llu",
            static_cast<unsigned long long>(lo.value()),
            static_cast<unsigned long long>(offset_.value()));
  MQ_ASSERT(hi <= offset_ + entries_.size());
  for (LogIndex i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - offset_];
    if (!out->empty() && *bytes + e.size_bytes() > bytes_max) return;
    *bytes += e.size_bytes();
    out->push_back(e);
  }
}

// ---------------------------------------------------------------------------------------
// RaftLog

Result<RaftLog> RaftLog::create(const StorageView* storage) {
  MQ_ASSERT(storage != nullptr);
  RaftLog log(storage);
  const LogIndex first = storage->first_index();
  const LogIndex last = storage->last_index();
  if (first == LogIndex(0) || last + 1 < first) {
    return Status::corruption("storage reports first index " + idx(first) + " and last index " +
                              idx(last));
  }
  log.unstable_.set_offset(last + 1);
  // Everything up to the snapshot is committed and applied by definition.
  log.committed_ = first - 1;
  log.applying_ = first - 1;
  log.applied_ = first - 1;
  return log;
}

LogIndex RaftLog::first_index() const {
  if (auto i = unstable_.maybe_first_index()) return *i;
  return storage_->first_index();
}

LogIndex RaftLog::last_index() const {
  if (auto i = unstable_.maybe_last_index()) return *i;
  return storage_->last_index();
}

Term RaftLog::last_term() const { return term_or_zero(last_index()); }

Result<Term> RaftLog::term(LogIndex i) const {
  const LogIndex dummy = first_index() - 1;
  if (i < dummy) return Status::out_of_range("index " + idx(i) + " is compacted");
  if (i > last_index()) {
    return Status::out_of_range("index " + idx(i) + " beyond last index " + idx(last_index()));
  }
  if (auto t = unstable_.maybe_term(i)) return *t;
  return storage_->term(i);
}

Term RaftLog::term_or_zero(LogIndex i) const {
  auto t = term(i);
  return t.has_value() ? *t : Term(0);
}

bool RaftLog::match_term(LogIndex i, Term t) const {
  auto ours = term(i);
  return ours.has_value() && *ours == t;
}

bool RaftLog::is_up_to_date(LogIndex last, Term t) const {
  auto ours = term(last_index());
  if (!ours.has_value()) return false;  // cannot read our log: never vote on a guess
  const Term our_last_term = *ours;
  return t > our_last_term || (t == our_last_term && last >= last_index());
}

Result<std::vector<Entry>> RaftLog::entries(LogIndex lo, std::uint64_t bytes_max) const {
  if (lo > last_index()) return std::vector<Entry>{};
  return slice(lo, last_index() + 1, bytes_max);
}

Result<std::vector<Entry>> RaftLog::slice(LogIndex lo, LogIndex hi,
                                          std::uint64_t bytes_max) const {
  if (lo < first_index()) return Status::out_of_range("index " + idx(lo) + " is compacted");
  if (hi > last_index() + 1) {
    return Status::out_of_range("slice up to " + idx(hi) + " beyond last index " +
                                idx(last_index()));
  }
  std::vector<Entry> out;
  if (lo >= hi) return out;
  std::uint64_t bytes = 0;
  const LogIndex offset = unstable_.offset();
  if (lo < offset) {
    const LogIndex stable_hi = std::min(hi, offset);
    MQ_ASSIGN_OR_RETURN(out, storage_->entries(lo, stable_hi, bytes_max));
    if (out.empty()) return Status::internal("storage returned no entries from " + idx(lo));
    for (const Entry& e : out) bytes += e.size_bytes();
    if (out.back().index + 1 < stable_hi) return out;  // the size limit was hit
  }
  if (hi > offset) {
    unstable_.slice(std::max(lo, offset), hi, bytes_max, &bytes, &out);
  }
  return out;
}

Result<std::optional<LogIndex>> RaftLog::maybe_append(LogIndex index, Term log_term,
                                                      LogIndex commit,
                                                      const std::vector<Entry>& entries,
                                                      bool truncate_conflicts) {
  if (!match_term(index, log_term)) return std::optional<LogIndex>();
  const LogIndex last_new = index + entries.size();
  const LogIndex conflict = find_conflict(entries);
  if (conflict != LogIndex(0)) {
    if (conflict <= committed_) {
      return Status::internal("append would overwrite committed entry " + idx(conflict) +
                              " (committed " + idx(committed_) + ")");
    }
    const std::size_t from = conflict - (index + 1);
    if (truncate_conflicts) {
      append(std::vector<Entry>(entries.begin() + static_cast<std::ptrdiff_t>(from),
                                entries.end()));
    } else {
      // BUG knob kNoConflictTruncation: keep our conflicting suffix and only add what lies
      // beyond it, leaving a divergent log (never do this).
      const LogIndex last = last_index();
      std::vector<Entry> beyond;
      for (const Entry& e : entries) {
        if (e.index > last) beyond.push_back(e);
      }
      if (!beyond.empty()) append(std::move(beyond));
    }
  }
  commit_to(std::min(commit, last_new));
  return std::optional<LogIndex>(last_new);
}

LogIndex RaftLog::append(std::vector<Entry> entries) {
  if (entries.empty()) return last_index();
  MQ_ASSERT(entries.front().index > committed_, "append at %llu overwrites committed %llu",
            static_cast<unsigned long long>(entries.front().index.value()),
            static_cast<unsigned long long>(committed_.value()));
  MQ_ASSERT(entries.front().index <= last_index() + 1, "append leaves a gap");
  unstable_.truncate_and_append(std::move(entries));
  return last_index();
}

LogIndex RaftLog::find_conflict(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries) {
    if (!match_term(e.index, e.term)) return e.index;
  }
  return LogIndex(0);
}

std::pair<LogIndex, Term> RaftLog::find_conflict_by_term(LogIndex index, Term term) const {
  // Every index above ours is beyond our log; start from our last entry.
  index = std::min(index, last_index());
  for (; index > LogIndex(0); --index) {
    auto ours = this->term(index);
    if (!ours.has_value()) return {index, Term(0)};  // compacted: cannot look further back
    if (*ours <= term) return {index, *ours};
  }
  return {LogIndex(0), Term(0)};
}

void RaftLog::commit_to(LogIndex index) {
  if (index <= committed_) return;  // never decreases
  MQ_ASSERT(index <= last_index(), "commit %llu beyond last index %llu",
            static_cast<unsigned long long>(index.value()),
            static_cast<unsigned long long>(last_index().value()));
  committed_ = index;
}

bool RaftLog::maybe_commit(LogIndex index, Term term, bool any_term) {
  if (index <= committed_ || index > last_index()) return false;
  // §5.4.2 / Figure 8: a leader commits by counting replicas only entries of its own term.
  if (!any_term && term_or_zero(index) != term) return false;
  commit_to(index);
  return true;
}

void RaftLog::set_applied(LogIndex index) {
  applied_ = index;
  applying_ = index;
}

void RaftLog::applied_to(LogIndex index) {
  if (index <= applied_) return;
  MQ_ASSERT(index <= committed_, "applied %llu beyond committed %llu",
            static_cast<unsigned long long>(index.value()),
            static_cast<unsigned long long>(committed_.value()));
  applied_ = index;
  applying_ = std::max(applying_, index);
}

bool RaftLog::has_next_committed_entries() const {
  if (unstable_.has_snapshot()) return false;  // apply the snapshot first
  const LogIndex lo = std::max(applying_ + 1, first_index());
  return lo <= committed_;
}

std::vector<Entry> RaftLog::next_committed_entries(std::uint64_t max_bytes) const {
  if (!has_next_committed_entries()) return {};
  const LogIndex lo = std::max(applying_ + 1, first_index());
  auto entries = slice(lo, committed_ + 1, max_bytes);
  if (!entries.has_value()) return {};  // storage trouble: retried at the next Ready
  return std::move(entries).value();
}

LogIndex RaftLog::persisted_index() const {
  if (unstable_.has_snapshot()) return LogIndex(0);
  if (unstable_.entry_count() > 0) return unstable_.offset() - 1;
  return storage_->last_index();
}

void RaftLog::restore(Snapshot snapshot) {
  MQ_ASSERT(snapshot.meta.index > committed_);
  committed_ = snapshot.meta.index;
  unstable_.restore(std::move(snapshot));
}

std::string RaftLog::describe() const {
  std::string out = "committed=" + idx(committed_) + " applied=" + idx(applied_) +
                    " first=" + idx(first_index()) + " last=" + idx(last_index());
  if (unstable_.entry_count() > 0) {
    out += " unstable=[" + idx(unstable_.offset()) + "," +
           idx(unstable_.offset() + (unstable_.entry_count() - 1)) + "]";
  }
  if (unstable_.has_snapshot()) out += " snapshot=" + idx(unstable_.snapshot()->meta.index);
  return out;
}

}  // namespace mq::raft
