// RaftLog (unstable + storage) and MemoryStorage.
#include "raft/raft_log.h"

#include <gtest/gtest.h>

#include "raft/memory_storage.h"

namespace mq::raft {
namespace {

Entry ent(std::uint64_t term, std::uint64_t index, std::string_view data = "") {
  return Entry{Term(term), LogIndex(index), EntryType::kNormal, SharedBuffer(data)};
}

std::vector<Entry> ents(std::initializer_list<std::pair<std::uint64_t, std::uint64_t>> ti) {
  std::vector<Entry> out;
  for (auto [t, i] : ti) out.push_back(ent(t, i));
  return out;
}

TEST(RaftMemoryStorage, AppendTruncatesConflictingSuffix) {
  MemoryStorage s;
  ASSERT_TRUE(s.append(ents({{1, 1}, {1, 2}, {2, 3}})).is_ok());
  EXPECT_EQ(s.last_index(), LogIndex(3));
  ASSERT_TRUE(s.append(ents({{3, 2}})).is_ok());
  EXPECT_EQ(s.last_index(), LogIndex(2));
  EXPECT_EQ(*s.term(LogIndex(2)), Term(3));
  EXPECT_FALSE(s.append(ents({{3, 5}})).is_ok());  // gap
  EXPECT_FALSE(s.append(ents({{3, 3}, {3, 5}})).is_ok());  // not contiguous
}

TEST(RaftMemoryStorage, EntriesRespectBytesButReturnOne) {
  MemoryStorage s;
  ASSERT_TRUE(s.append({ent(1, 1, "aaaa"), ent(1, 2, "bbbb"), ent(1, 3, "cccc")}).is_ok());
  const std::uint64_t one = ent(1, 1, "aaaa").size_bytes();
  EXPECT_EQ(s.entries(LogIndex(1), LogIndex(4), 0)->size(), 1u);
  EXPECT_EQ(s.entries(LogIndex(1), LogIndex(4), 2 * one)->size(), 2u);
  EXPECT_EQ(s.entries(LogIndex(1), LogIndex(4), 100 * one)->size(), 3u);
  EXPECT_EQ(s.entries(LogIndex(0), LogIndex(2), 100).status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.entries(LogIndex(1), LogIndex(5), 100).status().code(), ErrorCode::kOutOfRange);
}

TEST(RaftMemoryStorage, SnapshotAndCompact) {
  MemoryStorage s(ConfState{{NodeId(1)}, {}, {}, {}, false});
  ASSERT_TRUE(s.append(ents({{1, 1}, {1, 2}, {2, 3}, {2, 4}})).is_ok());
  auto snap = s.create_snapshot(LogIndex(3), ConfState{{NodeId(1)}, {}, {}, {}, false},
                                SharedBuffer(std::string_view("state")));
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->meta.term, Term(2));
  ASSERT_TRUE(s.compact(LogIndex(3)).is_ok());
  EXPECT_EQ(s.first_index(), LogIndex(4));
  EXPECT_EQ(*s.term(LogIndex(3)), Term(2));
  EXPECT_EQ(s.term(LogIndex(2)).status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.compact(LogIndex(9)).code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(s.create_snapshot(LogIndex(2), {}, {}).status().code(), ErrorCode::kOutOfRange);
  // A copy is independent.
  MemoryStorage copy = s;
  ASSERT_TRUE(copy.append(ents({{3, 5}})).is_ok());
  EXPECT_EQ(s.last_index(), LogIndex(4));
  EXPECT_EQ(copy.last_index(), LogIndex(5));
  // Applying a received snapshot replaces everything.
  Snapshot incoming;
  incoming.meta.index = LogIndex(10);
  incoming.meta.term = Term(4);
  ASSERT_TRUE(s.apply_snapshot(incoming).is_ok());
  EXPECT_EQ(s.first_index(), LogIndex(11));
  EXPECT_EQ(s.last_index(), LogIndex(10));
  EXPECT_EQ(s.apply_snapshot(*snap).code(), ErrorCode::kOutOfRange);  // older
  s.set_snapshot_unavailable(true);
  EXPECT_EQ(s.snapshot().status().code(), ErrorCode::kUnavailable);
}

RaftLog make_log(MemoryStorage& s) {
  auto log = RaftLog::create(&s);
  EXPECT_TRUE(log.has_value());
  return std::move(log).value();
}

TEST(RaftLog, TermAndBoundsAcrossStorageAndUnstable) {
  MemoryStorage s;
  ASSERT_TRUE(s.append(ents({{1, 1}, {1, 2}})).is_ok());
  RaftLog log = make_log(s);
  log.append(ents({{2, 3}, {2, 4}}));
  EXPECT_EQ(log.first_index(), LogIndex(1));
  EXPECT_EQ(log.last_index(), LogIndex(4));
  EXPECT_EQ(*log.term(LogIndex(2)), Term(1));
  EXPECT_EQ(*log.term(LogIndex(4)), Term(2));
  EXPECT_EQ(log.term(LogIndex(5)).status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(*log.term(LogIndex(0)), Term(0));
  auto all = log.entries(LogIndex(1), 1 << 20);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), 4u);
  EXPECT_EQ(log.entries(LogIndex(1), 0)->size(), 1u);
}

TEST(RaftLog, MaybeAppendTruncatesOnlyConflicts) {
  MemoryStorage s;
  RaftLog log = make_log(s);
  log.append(ents({{1, 1}, {2, 2}, {3, 3}}));
  // Mismatched previous entry: rejected.
  auto r = log.maybe_append(LogIndex(3), Term(2), LogIndex(3), ents({{4, 4}}), true);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->has_value());
  // Matching prefix with a duplicate: no truncation.
  r = log.maybe_append(LogIndex(1), Term(1), LogIndex(1), ents({{2, 2}}), true);
  ASSERT_TRUE(r.has_value() && r->has_value());
  EXPECT_EQ(**r, LogIndex(2));
  EXPECT_EQ(log.last_index(), LogIndex(3));
  EXPECT_EQ(log.committed(), LogIndex(1));
  // Conflict at 3: replaced.
  r = log.maybe_append(LogIndex(2), Term(2), LogIndex(4), ents({{4, 3}, {4, 4}}), true);
  ASSERT_TRUE(r.has_value() && r->has_value());
  EXPECT_EQ(log.last_index(), LogIndex(4));
  EXPECT_EQ(*log.term(LogIndex(3)), Term(4));
  EXPECT_EQ(log.committed(), LogIndex(4));
  // Overwriting a committed entry is refused as an error, not a crash.
  r = log.maybe_append(LogIndex(1), Term(1), LogIndex(4), ents({{5, 2}}), true);
  EXPECT_EQ(r.status().code(), ErrorCode::kInternal);
}

TEST(RaftLog, FindConflictByTerm) {
  MemoryStorage s;
  RaftLog log = make_log(s);
  log.append(ents({{1, 1}, {1, 2}, {3, 3}, {3, 4}, {5, 5}}));
  EXPECT_EQ(log.find_conflict_by_term(LogIndex(5), Term(4)), std::make_pair(LogIndex(4), Term(3)));
  EXPECT_EQ(log.find_conflict_by_term(LogIndex(5), Term(2)), std::make_pair(LogIndex(2), Term(1)));
  EXPECT_EQ(log.find_conflict_by_term(LogIndex(9), Term(9)), std::make_pair(LogIndex(5), Term(5)));
  EXPECT_EQ(log.find_conflict_by_term(LogIndex(5), Term(0)), std::make_pair(LogIndex(0), Term(0)));
}

TEST(RaftLog, UnstableHandOutAndStableTo) {
  MemoryStorage s;
  RaftLog log = make_log(s);
  log.append(ents({{1, 1}, {1, 2}}));
  Unstable& u = log.unstable();
  auto handed = u.next_entries();
  EXPECT_EQ(handed.size(), 2u);
  u.accept_in_progress();
  EXPECT_FALSE(u.has_next_entries());
  log.append(ents({{1, 3}}));
  EXPECT_EQ(u.next_entries().size(), 1u);
  ASSERT_TRUE(s.append(handed).is_ok());
  u.stable_to(LogIndex(2), Term(1));
  EXPECT_EQ(u.offset(), LogIndex(3));
  EXPECT_EQ(log.persisted_index(), LogIndex(2));
  // A handed-out entry replaced before advance(): stable_to is ignored.
  u.accept_in_progress();
  log.append(ents({{2, 3}}));
  u.stable_to(LogIndex(3), Term(1));
  EXPECT_EQ(u.offset(), LogIndex(3));
  EXPECT_EQ(u.next_entries().size(), 1u);
  EXPECT_EQ(u.next_entries()[0].term, Term(2));
}

TEST(RaftLog, CommittedEntriesBoundedByBytes) {
  MemoryStorage s;
  ASSERT_TRUE(s.append({ent(1, 1, "aaaa"), ent(1, 2, "bbbb"), ent(1, 3, "cccc")}).is_ok());
  RaftLog log = make_log(s);
  log.commit_to(LogIndex(3));
  EXPECT_EQ(log.next_committed_entries(0).size(), 1u);
  EXPECT_EQ(log.next_committed_entries(1 << 20).size(), 3u);
  log.accept_applying(LogIndex(2));
  EXPECT_EQ(log.next_committed_entries(1 << 20).size(), 1u);
  log.applied_to(LogIndex(3));
  EXPECT_FALSE(log.has_next_committed_entries());
}

TEST(RaftLog, RestoreSnapshot) {
  MemoryStorage s;
  ASSERT_TRUE(s.append(ents({{1, 1}, {1, 2}})).is_ok());
  RaftLog log = make_log(s);
  Snapshot snap;
  snap.meta.index = LogIndex(10);
  snap.meta.term = Term(3);
  log.restore(snap);
  EXPECT_EQ(log.first_index(), LogIndex(11));
  EXPECT_EQ(log.last_index(), LogIndex(10));
  EXPECT_EQ(log.committed(), LogIndex(10));
  EXPECT_EQ(*log.term(LogIndex(10)), Term(3));
  EXPECT_FALSE(log.has_next_committed_entries());
  EXPECT_TRUE(log.unstable().has_next_snapshot());
}

TEST(RaftLog, IsUpToDate) {
  MemoryStorage s;
  RaftLog log = make_log(s);
  log.append(ents({{1, 1}, {2, 2}, {2, 3}}));
  EXPECT_TRUE(log.is_up_to_date(LogIndex(3), Term(2)));
  EXPECT_TRUE(log.is_up_to_date(LogIndex(1), Term(3)));  // later term wins (§5.4.1)
  EXPECT_FALSE(log.is_up_to_date(LogIndex(2), Term(2)));
  EXPECT_FALSE(log.is_up_to_date(LogIndex(9), Term(1)));
}

}  // namespace
}  // namespace mq::raft
