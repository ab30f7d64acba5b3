#include "sim/sim_disk.h"

#include <gtest/gtest.h>

namespace mq::sim {
namespace {

raft::Entry entry(std::uint64_t index, std::uint64_t term, std::string_view payload = "x") {
  raft::Entry e;
  e.index = LogIndex(index);
  e.term = Term(term);
  e.payload = SharedBuffer(payload);
  return e;
}

raft::ConfState voters(std::initializer_list<std::uint64_t> ids) {
  raft::ConfState conf;
  for (auto id : ids) conf.voters.push_back(NodeId(id));
  return conf;
}

PendingWrite write_of(std::vector<raft::Entry> entries, std::optional<raft::HardState> hs = {}) {
  PendingWrite w;
  w.entries = std::move(entries);
  w.hard_state = hs;
  return w;
}

TEST(SimDisk, EmptyDiskReportsBootstrapMembership) {
  SimDisk disk(voters({1, 2, 3}));
  auto [hs, conf] = disk.initial_state();
  EXPECT_TRUE(hs.empty());
  EXPECT_EQ(conf, voters({1, 2, 3}));
  EXPECT_EQ(disk.first_index(), LogIndex(1));
  EXPECT_EQ(disk.last_index(), LogIndex(0));
  EXPECT_EQ(disk.term(LogIndex(0)).value(), Term(0));
  EXPECT_EQ(disk.term(LogIndex(1)).error().code(), ErrorCode::kOutOfRange);
}

TEST(SimDisk, CommittedWriteIsReadable) {
  SimDisk disk(voters({1}));
  ASSERT_TRUE(disk.commit_write(write_of({entry(1, 1), entry(2, 1), entry(3, 2)})).is_ok());
  EXPECT_EQ(disk.last_index(), LogIndex(3));
  EXPECT_EQ(disk.term(LogIndex(3)).value(), Term(2));
  auto all = disk.entries(LogIndex(1), LogIndex(4), UINT64_MAX);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), 3u);
  // bytes_max bounds everything after the first entry.
  auto one = disk.entries(LogIndex(1), LogIndex(4), 1);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->size(), 1u);
  EXPECT_EQ(disk.entries(LogIndex(2), LogIndex(5), UINT64_MAX).error().code(),
            ErrorCode::kOutOfRange);
}

TEST(SimDisk, WriteReplacesConflictingSuffixAndChainsFollow) {
  SimDisk a(voters({1}));
  SimDisk b(voters({1}));
  ASSERT_TRUE(a.commit_write(write_of({entry(1, 1), entry(2, 1), entry(3, 1)})).is_ok());
  ASSERT_TRUE(b.commit_write(write_of({entry(1, 1), entry(2, 2)})).is_ok());
  EXPECT_EQ(a.chain_at(LogIndex(1)), b.chain_at(LogIndex(1)));
  EXPECT_NE(a.chain_at(LogIndex(2)), b.chain_at(LogIndex(2)));
  ASSERT_TRUE(a.commit_write(write_of({entry(2, 2)})).is_ok());
  EXPECT_EQ(a.last_index(), LogIndex(2));  // entry 3 of term 1 was truncated
  EXPECT_EQ(a.chain_at(LogIndex(2)), b.chain_at(LogIndex(2)));
}

TEST(SimDisk, GapAndBelowSnapshotWritesAreRejected) {
  SimDisk disk(voters({1}));
  EXPECT_FALSE(disk.commit_write(write_of({entry(2, 1)})).is_ok());
  ASSERT_TRUE(disk.commit_write(write_of({entry(1, 1), entry(2, 1)})).is_ok());
  ASSERT_TRUE(disk.compact(LogIndex(2), voters({1}), SharedBuffer("img")).is_ok());
  EXPECT_FALSE(disk.commit_write(write_of({entry(2, 1)})).is_ok());
}

TEST(SimDisk, TornWriteKeepsTermAndVoteThenEntriesThenCommit) {
  raft::HardState hs{Term(5), NodeId(2), LogIndex(2)};
  const PendingWrite w = write_of({entry(1, 5), entry(2, 5)}, hs);
  ASSERT_EQ(SimDisk::write_parts(w), 4u);
  {
    SimDisk disk(voters({1}));
    ASSERT_TRUE(disk.commit_torn_write(w, 0).is_ok());
    EXPECT_TRUE(disk.hard_state().empty());
    EXPECT_EQ(disk.last_index(), LogIndex(0));
  }
  {
    SimDisk disk(voters({1}));
    ASSERT_TRUE(disk.commit_torn_write(w, 2).is_ok());
    EXPECT_EQ(disk.hard_state().term, Term(5));
    EXPECT_EQ(disk.hard_state().vote, NodeId(2));
    EXPECT_EQ(disk.hard_state().commit, LogIndex(0));  // commit is written last
    EXPECT_EQ(disk.last_index(), LogIndex(1));
  }
  {
    SimDisk disk(voters({1}));
    ASSERT_TRUE(disk.commit_torn_write(w, 4).is_ok());
    EXPECT_EQ(disk.hard_state(), hs);
    EXPECT_EQ(disk.last_index(), LogIndex(2));
  }
}

TEST(SimDisk, CompactionMovesTheSnapshotAndKeepsTheChain) {
  SimDisk disk(voters({1, 2, 3}));
  ASSERT_TRUE(disk.commit_write(write_of({entry(1, 1), entry(2, 1), entry(3, 2)})).is_ok());
  const std::uint64_t chain2 = disk.chain_at(LogIndex(2));
  ASSERT_TRUE(disk.compact(LogIndex(2), voters({1, 2}), SharedBuffer("img")).is_ok());
  EXPECT_EQ(disk.first_index(), LogIndex(3));
  EXPECT_EQ(disk.term(LogIndex(2)).value(), Term(1));
  EXPECT_EQ(disk.term(LogIndex(1)).error().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(disk.entries(LogIndex(2), LogIndex(4), UINT64_MAX).error().code(),
            ErrorCode::kOutOfRange);
  EXPECT_EQ(disk.chain_at(LogIndex(2)), chain2);
  EXPECT_EQ(disk.initial_state().second, voters({1, 2}));
  EXPECT_EQ(disk.snapshot().value().meta.index, LogIndex(2));
}

TEST(SimDisk, InstalledSnapshotReplacesTheLog) {
  SimDisk disk(voters({1}));
  ASSERT_TRUE(disk.commit_write(write_of({entry(1, 1), entry(2, 1)})).is_ok());
  PendingWrite w;
  raft::Snapshot snapshot;
  snapshot.meta.index = LogIndex(10);
  snapshot.meta.term = Term(3);
  snapshot.meta.conf_state = voters({1, 2, 3});
  w.snapshot = snapshot;
  w.snapshot_chain = 77;
  w.entries = {entry(11, 3)};
  ASSERT_TRUE(disk.commit_write(w).is_ok());
  EXPECT_EQ(disk.first_index(), LogIndex(11));
  EXPECT_EQ(disk.last_index(), LogIndex(11));
  EXPECT_EQ(disk.chain_at(LogIndex(10)), 77u);
  EXPECT_EQ(disk.chain_at(LogIndex(11)), chain_next(77, entry(11, 3)));
}

}  // namespace
}  // namespace mq::sim
