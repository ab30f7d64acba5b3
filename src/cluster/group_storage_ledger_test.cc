// GroupStorage and the sync ledger (storage/sync_ledger.h): each sync records the synced end,
// a log that comes back shorter than its record is reported (lost_synced_end), a §5.3 suffix
// truncation lowers the record durably before it cuts, and a brand-new replica directory
// keeps the record of the group's earlier replica on this broker.
#include <gtest/gtest.h>

#include "cluster/group_storage.h"
#include "storage/memory_file_system.h"

namespace mq::cluster {
namespace {

constexpr std::uint64_t kKey = 5;

raft::Entry noop(std::uint64_t index, std::uint64_t term) {
  return raft::Entry{Term(term), LogIndex(index), raft::EntryType::kNoop, {}};
}

class GroupStorageLedger : public ::testing::Test {
 protected:
  void SetUp() override { open_ledger(); }
  void open_ledger() {
    ledger_.reset();
    storage::SyncLedgerOptions o;
    o.directory = "/data/partitions";
    o.sync_thread = false;
    auto l = storage::SyncLedger::open(&fs_, o);
    ASSERT_TRUE(l.has_value()) << l.status().to_string();
    ledger_ = std::move(*l);
  }
  std::unique_ptr<GroupStorage> open(const std::string& dir = "/data/partitions/t-0-g5",
                                     std::uint64_t key = kKey) {
    GroupStorageOptions o;
    o.directory = dir;
    o.name = "t-0";
    o.format = PayloadFormat::kRaw;
    o.bootstrap.voters = {NodeId(1)};
    o.sync_ledger = ledger_.get();
    o.sync_ledger_key = key;
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    EXPECT_TRUE(s.has_value()) << s.status().to_string();
    return s.has_value() ? std::move(*s) : nullptr;
  }
  void append(GroupStorage& s, std::vector<raft::Entry> entries) {
    ASSERT_TRUE(s.append(entries, nullptr).is_ok());
  }

  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
  std::unique_ptr<storage::SyncLedger> ledger_;
};

TEST_F(GroupStorageLedger, EachSyncRecordsTheSyncedEndAndAShorterLogIsReportedAtOpen) {
  {
    auto s = open();
    ASSERT_TRUE(s);
    append(*s, {noop(1, 1), noop(2, 1), noop(3, 1), noop(4, 1), noop(5, 1)});
    EXPECT_FALSE(ledger_->synced_end(kKey).has_value()) << "nothing synced yet";
    ASSERT_TRUE(s->log().sync().is_ok());
    EXPECT_EQ(ledger_->synced_end(kKey), LogIndex(5));
    EXPECT_FALSE(s->lost_synced_end().has_value());
  }
  {
    auto s = open();  // intact: nothing lost
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->lost_synced_end().has_value());
  }
  {
    // A fault removes entries 4-5 behind the ledger's back (a plain Log truncation).
    storage::LogOptions o;
    o.directory = "/data/partitions/t-0-g5";
    auto log = storage::Log::open(&fs_, &clock_, o);
    ASSERT_TRUE(log.has_value());
    ASSERT_TRUE((*log)->truncate_suffix(LogIndex(4)).is_ok());
  }
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->last_index(), LogIndex(3));
  EXPECT_EQ(s->lost_synced_end(), LogIndex(5));
}

TEST_F(GroupStorageLedger, ASuffixTruncationLowersTheRecordDurablyBeforeCutting) {
  auto s = open();
  ASSERT_TRUE(s);
  append(*s, {noop(1, 1), noop(2, 1), noop(3, 1), noop(4, 1), noop(5, 1)});
  ASSERT_TRUE(s->log().sync().is_ok());
  EXPECT_EQ(ledger_->synced_end(kKey), LogIndex(5));
  append(*s, {noop(3, 2)});  // conflicts with 3-5 of term 1 (§5.3)
  EXPECT_EQ(ledger_->synced_end(kKey), LogIndex(2));
  s.reset();
  ledger_.reset();
  fs_.crash();  // every unsynced write is lost: the lower record was synced
  open_ledger();
  EXPECT_EQ(ledger_->synced_end(kKey), LogIndex(2));
  s = open();
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->lost_synced_end().has_value());
}

TEST_F(GroupStorageLedger, ABrandNewReplicaDirectoryKeepsTheRecordOfTheEarlierReplica) {
  // The group's earlier replica on this broker synced up to 40 (and may have acknowledged
  // it), then its directory went (moved away and back, or deleted while still counted as a
  // voter): the new, empty replica must hold 40 again before it may vote.
  ASSERT_TRUE(ledger_->record_synced(kKey, LogIndex(40)).is_ok());
  auto s = open("/data/partitions/t-0-g5");  // the directory does not exist yet
  ASSERT_TRUE(s);
  EXPECT_EQ(s->lost_synced_end(), LogIndex(40));
  EXPECT_EQ(ledger_->synced_end(kKey), LogIndex(40));
  // A group never seen here (no record) opens as a new replica.
  auto other = open("/data/partitions/t-1-g6", kKey + 1);
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->lost_synced_end().has_value());
}

}  // namespace
}  // namespace mq::cluster
