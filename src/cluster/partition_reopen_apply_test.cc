// A re-opened partition replica applying entries it stored before it was opened (a restart, a
// replica re-opened after a storage error: replica_recovery.h) finds their Kafka offsets with a
// few reads of many entries, not one log read per applied entry: thousands of single reads per
// Ready held the broker's event loop for ~100 ms of CPU each (tests/chaos/FINDINGS.md F2,
// "loop stalls"). Counted with the loop's stall detector (LoopWatch, section "read_offsets").
#include <gtest/gtest.h>

#include "cluster/partition_test_util.h"
#include "storage/metadata.h"

namespace mq::cluster {
namespace {

using testing::plain_batch;

class WatchedHost : public GroupHost {
 public:
  WatchedHost() : watch_(make_options()) {}
  bool send_message(GroupId, raft::Message) override { return true; }
  void log(std::string_view) override {}
  LoopWatch* loop_watch() override { return &watch_; }
  LoopWatch& watch() { return watch_; }

 private:
  static LoopWatchOptions make_options() {
    LoopWatchOptions o;
    o.sample_interval_ms = 0;  // no sampler thread: counting only
    o.count_sections = true;
    return o;
  }
  LoopWatch watch_;
};

class PartitionReopenApply : public ::testing::Test {
 protected:
  std::unique_ptr<PartitionGroup> open(GroupHost* host) {
    GroupStorageOptions o;
    o.directory = "/r";
    o.name = "t-0";
    o.bootstrap.voters = {NodeId(1), NodeId(2)};
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    MQ_ASSERT(s.has_value(), "%s", s.error().to_string().c_str());
    RaftGroupOptions go;
    go.group = GroupId(1);
    go.name = "t-0";
    go.raft.id = NodeId(1);
    go.raft.election_ticks = 1000;
    go.raft.heartbeat_ticks = 1;
    go.pump_budget_ms = 0;  // this test counts reads, not time
    auto p = std::make_unique<PartitionGroup>(host, go, PartitionOptions{}, std::move(*s));
    MQ_ASSERT(p->start().is_ok());
    MQ_ASSERT(p->init().is_ok());
    return p;
  }

  static void settle(PartitionGroup& p) {
    for (int i = 0; i < 20; ++i) {
      p.pump();
      ASSERT_TRUE(p.storage().log().sync().is_ok());
      p.on_durable(p.storage().log().last_index());
    }
  }

  // Leader 2 of term 1: entries [from, from + count) after (from - 1), committing `commit`.
  static raft::Message append(LogIndex after, Term after_term, int count, LogIndex commit) {
    raft::Message m;
    m.type = raft::MessageType::kAppend;
    m.from = NodeId(2);
    m.to = NodeId(1);
    m.term = Term(1);
    m.index = after;
    m.log_term = after_term;
    for (int i = 0; i < count; ++i) {
      m.entries.push_back(raft::Entry{Term(1), after + static_cast<std::uint64_t>(i + 1),
                                      raft::EntryType::kNormal, plain_batch("value-" + std::to_string(i))});
    }
    m.commit = commit;
    return m;
  }

  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
};

TEST_F(PartitionReopenApply, StoredEntriesAppliedAfterAReopenNeedFewReads) {
  constexpr int kEntries = 3000;
  LogIndex last;
  {
    WatchedHost host;
    auto p = open(&host);
    LogIndex start = p->storage().log().last_index();
    // Stored and durable, not yet committed: nothing applied.
    p->step(append(start, start == LogIndex(0) ? Term(0) : Term(1), kEntries, start));
    settle(*p);
    last = p->storage().log().last_index();
    ASSERT_EQ(last, start + kEntries);
    ASSERT_EQ(p->high_watermark(), KafkaOffset(0));
  }
  // Re-opened from its directory: the offsets of the stored entries are not in memory.
  WatchedHost host;
  auto p = open(&host);
  ASSERT_EQ(p->storage().log().last_index(), last);
  host.watch().attach();
  p->step(append(last, Term(1), 0, last));  // the leader commits everything
  settle(*p);
  ASSERT_EQ(p->applied(), last);
  EXPECT_EQ(p->high_watermark(), KafkaOffset(kEntries));  // one record per entry
  // A read per 1,024 entries (read-ahead), not one per entry (3,000 before the fix).
  EXPECT_LE(host.watch().sections("read_offsets"), 5u);
  EXPECT_GE(host.watch().sections("read_offsets"), 1u);
}

}  // namespace
}  // namespace mq::cluster
