// CachingStorageView (entry_cache.h): recent entries served from memory with the storage's
// contract (bounds, bytes_max, suffix truncation, eviction), everything else from storage.
#include <gtest/gtest.h>

#include "cluster/entry_cache.h"
#include "protocol/record_batch.h"
#include "storage/memory_file_system.h"

namespace mq::cluster {
namespace {

SharedBuffer batch(const std::string& value) {
  std::vector<protocol::RecordInput> inputs(1);
  inputs[0].value = Buffer(std::string_view(value));
  inputs[0].timestamp = 1000;
  return SharedBuffer(*protocol::build_record_batch({}, inputs));
}

raft::Entry entry(std::uint64_t index, std::uint64_t term, const std::string& value) {
  return raft::Entry{Term(term), LogIndex(index), raft::EntryType::kNormal, batch(value)};
}

std::string value_of(const raft::Entry& e) {
  auto view = protocol::RecordBatchView::parse(e.payload.view());
  MQ_ASSERT(view.has_value());
  auto records = view->decode_records();
  MQ_ASSERT(records.has_value() && records->records.size() == 1);
  const auto& v = records->records[0].value;
  return std::string(reinterpret_cast<const char*>(v->data()), v->size());
}

class EntryCache : public ::testing::Test {
 protected:
  void SetUp() override {
    GroupStorageOptions o;
    o.directory = "/p";
    o.name = "t-0";
    o.bootstrap.voters = {NodeId(1)};
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    MQ_ASSERT(s.has_value(), "%s", s.error().to_string().c_str());
    storage_ = std::move(*s);
  }
  void append(CachingStorageView& view, std::vector<raft::Entry> entries) {
    ASSERT_TRUE(storage_->append(entries, nullptr).is_ok());
    view.on_appended(entries);
  }
  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
  std::unique_ptr<GroupStorage> storage_;
};

TEST_F(EntryCache, ServesRecentEntriesFromMemoryWithTheStorageContract) {
  CachingStorageView view(storage_.get(), 1u << 20);
  append(view, {entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")});
  auto got = view.entries(LogIndex(2), LogIndex(4), UINT64_MAX);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ(value_of((*got)[0]), "b");
  EXPECT_EQ(value_of((*got)[1]), "c");
  EXPECT_EQ(view.hits(), 1u);
  // bytes_max: at least one entry, then no more than bytes_max in total.
  auto one = view.entries(LogIndex(1), LogIndex(4), 1);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->size(), 1u);
  auto two = view.entries(LogIndex(1), LogIndex(4), (*got)[0].size_bytes() * 2 + 1);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->size(), 2u);
  // Out of range: the storage's answer.
  EXPECT_FALSE(view.entries(LogIndex(2), LogIndex(9), UINT64_MAX).has_value());
  EXPECT_EQ(view.last_index(), LogIndex(3));
  EXPECT_EQ(view.term(LogIndex(3)).value(), Term(1));
}

TEST_F(EntryCache, SuffixTruncationReplacesCachedEntries) {
  CachingStorageView view(storage_.get(), 1u << 20);
  append(view, {entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")});
  append(view, {entry(2, 2, "B"), entry(3, 2, "C"), entry(4, 2, "D")});  // §5.3 conflict
  auto got = view.entries(LogIndex(1), LogIndex(5), UINT64_MAX);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ(value_of((*got)[1]), "B");
  EXPECT_EQ((*got)[1].term, Term(2));
  EXPECT_EQ(view.term(LogIndex(1)).value(), Term(1));
  EXPECT_EQ(view.term(LogIndex(2)).value(), Term(2));
  EXPECT_EQ(view.term(LogIndex(4)).value(), Term(2));
  EXPECT_FALSE(view.term(LogIndex(5)).has_value());
  EXPECT_EQ(value_of((*got)[3]), "D");
  // The same as the storage holds.
  auto stored = storage_->entries(LogIndex(1), LogIndex(5), UINT64_MAX);
  ASSERT_TRUE(stored.has_value());
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*stored)[i].term, (*got)[i].term);
    EXPECT_EQ(value_of((*stored)[i]), value_of((*got)[i]));
  }
}

TEST_F(EntryCache, EvictsOldestBeyondBoundAndFallsBackToStorage) {
  const std::uint64_t one = entry(1, 1, "a").size_bytes();
  CachingStorageView view(storage_.get(), one * 2);
  view.on_applied(LogIndex(3));  // applied entries are not pinned
  append(view, {entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")});
  EXPECT_EQ(view.cached_entries(), 2u);
  EXPECT_LE(view.cached_bytes(), one * 2);
  auto got = view.entries(LogIndex(1), LogIndex(4), UINT64_MAX);  // 1 is not cached: storage
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ(value_of((*got)[0]), "a");
  EXPECT_EQ(view.misses(), 1u);
  view.clear();
  EXPECT_EQ(view.cached_entries(), 0u);
  got = view.entries(LogIndex(3), LogIndex(4), UINT64_MAX);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(value_of((*got)[0]), "c");
  EXPECT_EQ(view.misses(), 2u);
  // A gap (entries not contiguous with the cache) starts the cache over.
  append(view, {entry(4, 1, "d")});
  EXPECT_EQ(view.cached_entries(), 1u);
}

TEST_F(EntryCache, KeepsUnappliedEntriesBeyondTheBoundUntilApplied) {
  const std::uint64_t one = entry(1, 1, "a").size_bytes();
  // Room for one entry, a hard cap of three for the unapplied ones.
  CachingStorageView view(storage_.get(), one, one * 3);
  append(view, {entry(1, 1, "a"), entry(2, 1, "b")});
  append(view, {entry(3, 1, "c")});
  EXPECT_EQ(view.cached_entries(), 3u);  // nothing applied: all pinned
  auto got = view.entries(LogIndex(1), LogIndex(4), UINT64_MAX);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->size(), 3u);
  EXPECT_EQ(view.misses(), 0u);
  view.on_applied(LogIndex(2));  // 1 and 2 may go now
  EXPECT_EQ(view.cached_entries(), 1u);
  EXPECT_EQ(view.term(LogIndex(3)).value(), Term(1));
  // Past the hard cap even unapplied entries are evicted (oldest first).
  append(view, {entry(4, 1, "d"), entry(5, 1, "e"), entry(6, 1, "f")});
  EXPECT_EQ(view.cached_entries(), 3u);
  got = view.entries(LogIndex(4), LogIndex(7), UINT64_MAX);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ(value_of((*got)[2]), "f");
  EXPECT_EQ(view.misses(), 0u);
  got = view.entries(LogIndex(3), LogIndex(4), UINT64_MAX);  // evicted: from storage
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(value_of((*got)[0]), "c");
  EXPECT_EQ(view.misses(), 1u);
}

TEST_F(EntryCache, KeepsEntriesALaggingFollowerStillNeeds) {
  const std::uint64_t one = entry(1, 1, "a").size_bytes();
  CachingStorageView view(storage_.get(), one, one * 10);
  append(view, {entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c"), entry(4, 1, "d")});
  view.on_applied(LogIndex(4), LogIndex(3));  // all applied; a follower's next is 3
  EXPECT_EQ(view.cached_entries(), 2u);
  auto got = view.entries(LogIndex(3), LogIndex(5), UINT64_MAX);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->size(), 2u);
  EXPECT_EQ(view.misses(), 0u);
  view.on_applied(LogIndex(4));  // no follower behind: back to bytes_max
  EXPECT_EQ(view.cached_entries(), 1u);
}

}  // namespace
}  // namespace mq::cluster
