// The Raft log as the core sees it (etcd log.go + log_unstable.go): what stable storage
// holds (through StorageView, read-only) plus the `unstable` suffix the core appended and
// the host has not yet acknowledged as persisted.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "raft/storage_view.h"
#include "raft/types.h"

namespace mq::raft {

// Entries (and possibly a snapshot) not yet acknowledged as persisted by advance().
class Unstable {
 public:
  // Invariant: entries_[i].index == offset_ + i; snapshot_ (if any) has index offset_ - 1.
  // Entries in [offset_, offset_in_progress_) have been handed out in a Ready and await
  // advance(); the rest are still to hand out.
  std::optional<LogIndex> maybe_first_index() const;
  std::optional<LogIndex> maybe_last_index() const;
  std::optional<Term> maybe_term(LogIndex i) const;

  // Entries to hand out in the next Ready (not yet in progress).
  std::vector<Entry> next_entries() const;
  bool has_next_entries() const { return offset_in_progress_ < offset_ + entries_.size(); }
  const std::optional<Snapshot>& snapshot() const { return snapshot_; }
  bool has_next_snapshot() const { return snapshot_.has_value() && !snapshot_in_progress_; }
  bool has_snapshot() const { return snapshot_.has_value(); }

  // Marks everything handed out (ready()).
  void accept_in_progress();
  // The host persisted up to (index, term) (advance()). Ignored when the entry has since
  // been replaced (its term differs) or is no longer unstable.
  void stable_to(LogIndex index, Term term);
  void stable_snapshot_to(LogIndex index);
  void restore(Snapshot snapshot);
  // Appends, replacing any entries at or after entries.front().index.
  void truncate_and_append(std::vector<Entry> entries);
  // Entries in [lo, hi) that are unstable; lo >= offset_.
  void slice(LogIndex lo, LogIndex hi, std::uint64_t bytes_max, std::uint64_t* bytes,
             std::vector<Entry>* out) const;

  LogIndex offset() const { return offset_; }
  void set_offset(LogIndex offset) {
    offset_ = offset;
    offset_in_progress_ = offset;
  }
  std::size_t entry_count() const { return entries_.size(); }

 private:
  std::optional<Snapshot> snapshot_;
  bool snapshot_in_progress_ = false;
  std::vector<Entry> entries_;
  LogIndex offset_{1};
  LogIndex offset_in_progress_{1};
};

class RaftLog {
 public:
  // Errors: storage unreadable (propagated).
  static Result<RaftLog> create(const StorageView* storage);

  LogIndex first_index() const;
  LogIndex last_index() const;
  Term last_term() const;
  // kOutOfRange for compacted (< first_index()-1) or beyond last_index(); storage errors.
  Result<Term> term(LogIndex i) const;
  // Term, or 0 when unknown (compacted or absent).
  Term term_or_zero(LogIndex i) const;
  bool match_term(LogIndex i, Term t) const;
  // §5.4.1: (last_index, last_term) is at least as up-to-date as our log. False when our
  // last term cannot be read (a storage error must not win anyone a vote).
  bool is_up_to_date(LogIndex last, Term t) const;

  // Entries in [lo, last_index()], at most bytes_max (at least one entry).
  Result<std::vector<Entry>> entries(LogIndex lo, std::uint64_t bytes_max) const;
  Result<std::vector<Entry>> slice(LogIndex lo, LogIndex hi, std::uint64_t bytes_max) const;

  // §5.3 AppendEntries receiver: if the entry at `index` has `log_term`, append `entries`
  // (truncating any conflicting suffix) and advance commit to min(commit, last new index).
  // Returns the last new index, nullopt on a mismatch. kInternal when the message would
  // overwrite a committed entry (only a broken peer can send that).
  Result<std::optional<LogIndex>> maybe_append(LogIndex index, Term log_term, LogIndex commit,
                                               const std::vector<Entry>& entries,
                                               bool truncate_conflicts);
  // Appends at the end (leader). Returns the new last index.
  LogIndex append(std::vector<Entry> entries);
  // The first index among `entries` whose term differs from ours (or that we lack); 0 when
  // all match.
  LogIndex find_conflict(const std::vector<Entry>& entries) const;
  // Fast backtracking (etcd findConflictByTerm): the largest index <= `index` whose term is
  // <= `term`, and that term. (0, 0) when there is none.
  std::pair<LogIndex, Term> find_conflict_by_term(LogIndex index, Term term) const;

  LogIndex committed() const { return committed_; }
  LogIndex applied() const { return applied_; }
  LogIndex applying() const { return applying_; }
  void commit_to(LogIndex index);
  // The leader's commit rule (§5.4.2): commit `index` only if its entry is from `term`.
  bool maybe_commit(LogIndex index, Term term, bool any_term);
  void set_applied(LogIndex index);  // start-up (Config::applied)
  void applied_to(LogIndex index);
  void accept_applying(LogIndex index) { applying_ = index; }

  // Entries committed and not yet handed out, up to max_bytes (at least one).
  std::vector<Entry> next_committed_entries(std::uint64_t max_bytes) const;
  bool has_next_committed_entries() const;

  // Last index of the prefix known to be persisted locally (leader self-acknowledgement).
  LogIndex persisted_index() const;
  // A snapshot received from the leader replaces the log.
  void restore(Snapshot snapshot);

  Unstable& unstable() { return unstable_; }
  const Unstable& unstable() const { return unstable_; }
  const StorageView* storage() const { return storage_; }

  std::string describe() const;  // "committed=5 applied=3 last=7 unstable=[6,7]"

 private:
  explicit RaftLog(const StorageView* storage) : storage_(storage) {}

  const StorageView* storage_;
  Unstable unstable_;
  // Invariant: applied_ <= applying_ <= committed_ <= last_index().
  LogIndex committed_;
  LogIndex applying_;  // handed out in committed_entries, not yet acknowledged by advance()
  LogIndex applied_;
};

}  // namespace mq::raft
