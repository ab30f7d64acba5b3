// The idempotent producer on a real single-replica PartitionGroup (Raft core, GroupStorage,
// in-memory file system; durability by Log::sync()): duplicates, gaps, fencing, in-flight
// duplicates, restart from the persisted producer state and rebuild from the log.
#include <gtest/gtest.h>

#include "cluster/group_storage.h"
#include "cluster/partition.h"
#include "protocol/gen/error_codes.h"
#include "protocol/record_batch.h"
#include "storage/memory_file_system.h"
#include "storage/metadata.h"
#include "base/le_codec.h"

namespace mq::cluster {
namespace {

constexpr std::int64_t kProducer = 1000;

SharedBuffer idempotent_batch(std::int64_t producer, std::int16_t epoch, std::int32_t seq,
                              int records, std::int64_t timestamp = 5000) {
  std::vector<protocol::RecordInput> inputs;
  for (int i = 0; i < records; ++i) {
    protocol::RecordInput r;
    r.value = Buffer(std::string_view("v" + std::to_string(seq + i)));
    r.timestamp = timestamp;
    inputs.push_back(std::move(r));
  }
  protocol::RecordBatchOptions o;
  o.producer_id = producer;
  o.producer_epoch = epoch;
  o.base_sequence = seq;
  return SharedBuffer(*protocol::build_record_batch(o, inputs));
}

class NullHost : public GroupHost {
 public:
  bool send_message(GroupId, raft::Message) override { return true; }
  void log(std::string_view line) override { lines.emplace_back(line); }
  bool logged(std::string_view part) const {
    for (const std::string& l : lines) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<std::string> lines;
};

struct Outcome {
  bool done = false;
  Result<ProduceResult> result = Status::internal("not answered");
};

class ClusterPartitionIdempotence : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  void open() {
    GroupStorageOptions o;
    o.directory = "/p";
    o.name = "t-0";
    o.bootstrap.voters = {NodeId(1)};
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    ASSERT_TRUE(s.has_value()) << s.error().to_string();
    RaftGroupOptions go;
    go.group = GroupId(1);
    go.name = "t-0";
    go.raft.id = NodeId(1);
    go.raft.election_ticks = 10;
    go.raft.heartbeat_ticks = 1;
    go.checkpoint_interval_entries = 1u << 30;  // only explicit checkpoints
    PartitionOptions po;
    po.topic = "t";
    po.producer_state.sequence_gap_retry_ms = gap_window_ms_;
    po.steady_clock_ms = [this] { return now_ms_; };
    p_ = std::make_unique<PartitionGroup>(&host_, go, po, std::move(*s));
    ASSERT_TRUE(p_->start().is_ok());
    ASSERT_TRUE(p_->init().is_ok());
    p_->node().campaign();
    settle();
    ASSERT_TRUE(p_->is_leader());
  }

  // Runs Readies to completion, making appended entries durable.
  void settle() {
    for (int i = 0; i < 20; ++i) {
      p_->pump();
      ASSERT_TRUE(p_->storage().log().sync().is_ok());
      p_->on_durable(p_->storage().log().last_index());
    }
  }

  std::shared_ptr<Outcome> produce(SharedBuffer batch, Acks acks = Acks::kAll) {
    auto out = std::make_shared<Outcome>();
    p_->produce(std::move(batch), acks, [out](Result<ProduceResult> r) {
      out->done = true;
      out->result = std::move(r);
    });
    return out;
  }

  // Produces and settles; returns the base offset (or -100 - kafka error).
  std::int64_t write(std::int16_t epoch, std::int32_t seq, int records) {
    auto out = produce(idempotent_batch(kProducer, epoch, seq, records));
    settle();
    EXPECT_TRUE(out->done);
    if (!out->result.has_value()) {
      ADD_FAILURE() << out->result.error().to_string();
      return -1;
    }
    if (out->result->kafka_error != 0) return -100 - out->result->kafka_error;
    return out->result->base_offset.value();
  }

  KafkaOffset log_end() { return p_->storage().log().next_offset(); }

  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
  NullHost host_;
  std::int64_t gap_window_ms_ = 30000;  // the default
  std::int64_t now_ms_ = 1'000'000;     // the partition's monotonic clock for gap windows
  std::unique_ptr<PartitionGroup> p_;
};

constexpr std::int64_t error_of(protocol::ErrorCode e) { return -100 - static_cast<int>(e); }

TEST_F(ClusterPartitionIdempotence, DuplicateOfACommittedBatchGetsItsOriginalOffset) {
  std::int64_t first = write(0, 0, 3);
  std::int64_t second = write(0, 3, 2);
  ASSERT_GE(first, 0);
  EXPECT_EQ(second, first + 3);
  KafkaOffset end = log_end();
  LogIndex last = p_->storage().log().last_index();
  EXPECT_EQ(write(0, 0, 3), first);   // retry of the first batch
  EXPECT_EQ(write(0, 3, 2), second);  // and of the second
  EXPECT_EQ(log_end(), end);          // nothing written
  EXPECT_EQ(p_->storage().log().last_index(), last);
  EXPECT_EQ(write(0, 5, 1), second + 2);
}

TEST_F(ClusterPartitionIdempotence, GapsAndOldEpochsAreRefused) {
  ASSERT_GE(write(0, 0, 2), 0);
  KafkaOffset end = log_end();
  // Gaps (ahead of the expected sequence) get the retriable answer while the window is open.
  EXPECT_EQ(write(0, 3, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));
  EXPECT_EQ(write(1, 5, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));
  EXPECT_EQ(write(0, 1, 1), error_of(protocol::ErrorCode::kOutOfOrderSequenceNumber));  // behind
  EXPECT_EQ(log_end(), end);
  // Epoch bump (KIP-360): sequences restart at 0; the old epoch is fenced afterwards.
  std::int64_t bumped = write(1, 0, 1);
  EXPECT_GE(bumped, end.value());
  EXPECT_EQ(write(0, 2, 1), error_of(protocol::ErrorCode::kInvalidProducerEpoch));
  EXPECT_EQ(write(0, 0, 2), error_of(protocol::ErrorCode::kInvalidProducerEpoch));
  EXPECT_EQ(write(1, 1, 1), bumped + 1);
  // A transactional batch is refused: raftmq has no transactions.
  std::vector<protocol::RecordInput> one(1);
  protocol::RecordBatchOptions o;
  o.producer_id = 77;
  o.producer_epoch = 0;
  o.base_sequence = 0;
  o.transactional = true;
  auto out = produce(SharedBuffer(*protocol::build_record_batch(o, one)));
  ASSERT_TRUE(out->done && out->result.has_value());
  EXPECT_EQ(out->result->kafka_error, static_cast<std::int16_t>(protocol::ErrorCode::kInvalidRecord));
}

TEST_F(ClusterPartitionIdempotence, DuplicateOfAnInFlightBatchWaitsForIt) {
  ASSERT_GE(write(0, 0, 1), 0);
  LogIndex last = p_->storage().log().last_index();
  auto original = produce(idempotent_batch(kProducer, 0, 1, 4));
  auto retry = produce(idempotent_batch(kProducer, 0, 1, 4));  // before anything committed
  auto next = produce(idempotent_batch(kProducer, 0, 5, 1));   // continues after the in-flight
  EXPECT_FALSE(original->done);
  EXPECT_FALSE(retry->done);
  settle();
  ASSERT_TRUE(original->done && retry->done && next->done);
  ASSERT_TRUE(original->result.has_value() && retry->result.has_value());
  EXPECT_EQ(retry->result->kafka_error, 0);
  EXPECT_EQ(retry->result->base_offset, original->result->base_offset);
  EXPECT_EQ(next->result->base_offset, original->result->base_offset + 4);
  EXPECT_EQ(p_->storage().log().last_index(), last + 2);  // two entries, not three
  // A duplicate arriving after the append but before the commit also gets the offset.
  auto a = produce(idempotent_batch(kProducer, 0, 6, 1));
  p_->pump();  // appended (not yet durable, so not committed)
  auto b = produce(idempotent_batch(kProducer, 0, 6, 1));
  EXPECT_FALSE(b->done);
  settle();
  ASSERT_TRUE(a->done && b->done && a->result.has_value() && b->result.has_value());
  EXPECT_EQ(b->result->base_offset, a->result->base_offset);
}

TEST_F(ClusterPartitionIdempotence, RestartRestoresTheStateFromCheckpointAndLog) {
  ASSERT_GE(write(0, 0, 2), 0);
  std::int64_t second = write(0, 2, 2);
  p_->checkpoint_now();  // persists producer.state with the applied index
  ASSERT_TRUE(fs_.exists("/p/producer.state").value());
  std::int64_t third = write(0, 4, 3);  // above the checkpoint: rebuilt from the log
  ProducerStateTable before = p_->producer_state();
  p_.reset();
  open();
  EXPECT_EQ(p_->producer_state().find(kProducer)->batches,
            before.find(kProducer)->batches);
  EXPECT_FALSE(host_.logged("rebuilding"));  // loaded from the file, then the log above it
  EXPECT_EQ(write(0, 2, 2), second);
  EXPECT_EQ(write(0, 4, 3), third);
  EXPECT_EQ(write(0, 8, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));  // a gap
  EXPECT_EQ(write(0, 7, 1), third + 3 + 1);  // +1: the new term's no-op
}

// Issue 6 (chaos F9, librdkafka #4953): the head request R1 of 5 in flight failed before it
// was written (NOT_LEADER_FOR_PARTITION from a leader not yet ready, here: simply not sent
// again yet) and R2..R5 find a sequence gap. OUT_OF_ORDER_SEQUENCE_NUMBER on them makes
// librdkafka bump the producer's epoch (every partition's sequences restart at 0: duplicates
// elsewhere); NOT_ENOUGH_REPLICAS makes it re-queue them behind R1, which it then re-sends
// first. Nothing of R2..R5 is written until R1 is, and then each exactly once, in order.
TEST_F(ClusterPartitionIdempotence, GapBehindAFailedHeadRequestIsRetriableAndNothingIsWritten) {
  ASSERT_GE(write(0, 0, 2), 0);
  KafkaOffset end = log_end();
  LogIndex last = p_->storage().log().last_index();
  for (int r = 1; r < 5; ++r) {  // R2..R5: sequences 4, 6, 8, 10 (R1 = 2-3 is missing)
    EXPECT_EQ(write(0, 2 + 2 * r, 2), error_of(protocol::ErrorCode::kNotEnoughReplicas)) << r;
    now_ms_ += 100;
  }
  EXPECT_EQ(log_end(), end);
  EXPECT_EQ(p_->storage().log().last_index(), last);
  EXPECT_EQ(p_->sequence_gaps().size(), 1u);
  // The client re-sends R1..R5 in order: each appended once, contiguous.
  std::int64_t r1 = write(0, 2, 2);
  ASSERT_EQ(r1, end.value());
  EXPECT_EQ(p_->sequence_gaps().size(), 0u);  // progress closed the window
  for (int r = 1; r < 5; ++r) EXPECT_EQ(write(0, 2 + 2 * r, 2), r1 + 2 * r) << r;
  // A retry of any of them now is a duplicate with its original offset.
  EXPECT_EQ(write(0, 6, 2), r1 + 4);
  EXPECT_EQ(log_end().value(), r1 + 10);
}

// The bound: a gap that never closes (a broken client, state lost) is answered
// OUT_OF_ORDER_SEQUENCE_NUMBER once the producer's window (sequence_gap_retry_ms since the
// first gap answered to it, without an append of it in between) has passed.
TEST_F(ClusterPartitionIdempotence, AGapThatNeverClosesBecomesOutOfOrderAfterTheWindow) {
  ASSERT_GE(write(0, 0, 2), 0);
  EXPECT_EQ(write(0, 5, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));
  now_ms_ += 29'999;
  EXPECT_EQ(write(0, 5, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));
  EXPECT_EQ(write(0, 9, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));  // same window
  EXPECT_TRUE(host_.logged("expected sequence 2, got 5: sequence gap, answered "
                           "NOT_ENOUGH_REPLICAS for up to 30000 ms"));
  EXPECT_FALSE(host_.logged("still open after the window"));
  now_ms_ += 1;
  EXPECT_EQ(write(0, 5, 1), error_of(protocol::ErrorCode::kOutOfOrderSequenceNumber));
  EXPECT_TRUE(host_.logged("expected sequence 2, got 5: sequence gap still open after the "
                           "window: OUT_OF_ORDER_SEQUENCE_NUMBER"));
  now_ms_ += 60'000;
  EXPECT_EQ(write(0, 5, 1), error_of(protocol::ErrorCode::kOutOfOrderSequenceNumber));
  // Another producer's gap has its own window.
  auto other = produce(idempotent_batch(kProducer + 1, 0, 0, 1));
  settle();
  ASSERT_TRUE(other->done && other->result.has_value() && other->result->kafka_error == 0);
  auto other_gap = produce(idempotent_batch(kProducer + 1, 0, 3, 1));
  settle();
  ASSERT_TRUE(other_gap->done && other_gap->result.has_value());
  EXPECT_EQ(other_gap->result->kafka_error,
            static_cast<std::int16_t>(protocol::ErrorCode::kNotEnoughReplicas));
  // The stuck producer closes its gap at last: appended, and a later gap gets a new window.
  std::int64_t two = write(0, 2, 3);
  ASSERT_GE(two, 0);
  EXPECT_EQ(write(0, 7, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));
  EXPECT_EQ(write(0, 5, 1), two + 3);
}

// Leadership is lost and regained: windows opened under the old leadership are gone.
TEST_F(ClusterPartitionIdempotence, ANewLeadershipOpensNewWindows) {
  ASSERT_GE(write(0, 0, 2), 0);
  EXPECT_EQ(write(0, 5, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));
  now_ms_ += 30'000;
  EXPECT_EQ(write(0, 5, 1), error_of(protocol::ErrorCode::kOutOfOrderSequenceNumber));
  p_.reset();  // a restart: the window map is leader-local, never persisted
  open();
  EXPECT_EQ(p_->sequence_gaps().size(), 0u);
  EXPECT_EQ(write(0, 5, 1), error_of(protocol::ErrorCode::kNotEnoughReplicas));
}

// sequence_gap_retry_ms = 0: Kafka's answer, OUT_OF_ORDER_SEQUENCE_NUMBER at once.
TEST_F(ClusterPartitionIdempotence, AZeroWindowAnswersGapsOutOfOrderAtOnce) {
  p_.reset();
  gap_window_ms_ = 0;
  open();
  ASSERT_GE(write(0, 0, 2), 0);
  EXPECT_EQ(write(0, 3, 1), error_of(protocol::ErrorCode::kOutOfOrderSequenceNumber));
  EXPECT_EQ(write(1, 5, 1), error_of(protocol::ErrorCode::kOutOfOrderSequenceNumber));
  EXPECT_EQ(p_->sequence_gaps().size(), 0u);
}

TEST_F(ClusterPartitionIdempotence, RebuildsFromTheLogWhenTheStateFileIsMissingOrCorrupt) {
  std::int64_t first = write(0, 0, 2);
  ASSERT_GE(write(0, 2, 1), 0);
  p_->checkpoint_now();
  ProducerStateTable before = p_->producer_state();
  p_.reset();
  // Corrupt the file: derived data, so the replica rebuilds it from the whole log.
  auto bytes = fs_.read_file("/p/producer.state");
  ASSERT_TRUE(bytes.has_value());
  bytes->data()[bytes->size() / 2] ^= 0x10;
  const BufferView pieces[1] = {bytes->view()};
  ASSERT_TRUE(storage::write_file_atomically(&fs_, "/p", "producer.state", pieces).is_ok());
  open();
  EXPECT_TRUE(host_.logged("producer state: bad crc; rebuilding from the log"));
  EXPECT_EQ(p_->producer_state().find(kProducer)->batches, before.find(kProducer)->batches);
  EXPECT_EQ(write(0, 0, 2), first);
  // Missing: the same.
  p_.reset();
  ASSERT_TRUE(fs_.remove("/p/producer.state").is_ok());
  open();
  EXPECT_EQ(p_->producer_state().find(kProducer)->batches, before.find(kProducer)->batches);
  EXPECT_EQ(write(0, 2, 1), write(0, 2, 1));
}

TEST_F(ClusterPartitionIdempotence, NonIdempotentBatchesAreNotTracked) {
  std::vector<protocol::RecordInput> one(1);
  auto out = produce(SharedBuffer(*protocol::build_record_batch({}, one)));
  settle();
  ASSERT_TRUE(out->done && out->result.has_value());
  auto again = produce(SharedBuffer(*protocol::build_record_batch({}, one)));
  settle();
  EXPECT_EQ(again->result->base_offset, out->result->base_offset + 1);  // written twice
  EXPECT_EQ(p_->producer_state().size(), 0u);
}

// A follower replica driven by hand-made leader messages: the producer state follows only
// committed entries, so an uncommitted suffix replaced by a new leader (§5.3) leaves no
// trace, and a snapshot install (log-start snapshot, §7) restarts the table at its index.
class ClusterPartitionFollower : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open() {
    GroupStorageOptions o;
    o.directory = "/f";
    o.name = "t-0";
    o.bootstrap.voters = {NodeId(1), NodeId(2)};
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    ASSERT_TRUE(s.has_value()) << s.error().to_string();
    RaftGroupOptions go;
    go.group = GroupId(1);
    go.name = "t-0";
    go.raft.id = NodeId(1);
    go.raft.election_ticks = 1000;  // never campaigns during the test
    go.raft.heartbeat_ticks = 1;
    p_ = std::make_unique<PartitionGroup>(&host_, go, PartitionOptions{}, std::move(*s));
    ASSERT_TRUE(p_->start().is_ok());
    ASSERT_TRUE(p_->init().is_ok());
  }
  void settle() {
    for (int i = 0; i < 10; ++i) {
      p_->pump();
      ASSERT_TRUE(p_->storage().log().sync().is_ok());
      p_->on_durable(p_->storage().log().last_index());
    }
  }
  // AppendEntries from leader 2: entries (term, batch) after (prev_index, prev_term).
  void append(std::uint64_t term, std::uint64_t prev_index, std::uint64_t prev_term,
              std::vector<std::pair<std::uint64_t, SharedBuffer>> entries, std::uint64_t commit) {
    raft::Message m;
    m.type = raft::MessageType::kAppend;
    m.from = NodeId(2);
    m.to = NodeId(1);
    m.term = Term(term);
    m.index = LogIndex(prev_index);
    m.log_term = Term(prev_term);
    m.commit = LogIndex(commit);
    std::uint64_t index = prev_index;
    for (auto& [entry_term, batch] : entries) {
      m.entries.push_back(raft::Entry{Term(entry_term), LogIndex(++index),
                                      raft::EntryType::kNormal, std::move(batch)});
    }
    p_->step(m);
    settle();
  }

  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
  NullHost host_;
  std::unique_ptr<PartitionGroup> p_;
};

TEST_F(ClusterPartitionFollower, ReplacedUncommittedEntriesNeverEnterTheState) {
  append(1, 0, 0, {{1, idempotent_batch(kProducer, 0, 0, 2)}}, 1);  // committed
  append(1, 1, 1, {{1, idempotent_batch(kProducer, 0, 2, 3)}}, 1);  // not committed
  ASSERT_EQ(p_->applied(), LogIndex(1));
  EXPECT_EQ(p_->producer_state().find(kProducer)->batches.size(), 1u);
  // Leader of term 2 replaces entry 2 with another producer's batch and commits it.
  append(2, 1, 1, {{2, idempotent_batch(7, 0, 0, 1)}}, 2);
  ASSERT_EQ(p_->applied(), LogIndex(2));
  const ProducerEntry* e = p_->producer_state().find(kProducer);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->batches.size(), 1u);
  EXPECT_EQ(e->batches.back().last_seq, 1);  // the replaced batch (seq 2-4) left no trace
  ASSERT_NE(p_->producer_state().find(7), nullptr);
  EXPECT_EQ(p_->producer_state().find(7)->batches.back().base_offset, KafkaOffset(2));
  EXPECT_EQ(check_sequence(e, BatchIdentity{kProducer, 0, 2, 4, 2, 5000}).verdict,
            SequenceVerdict::kAppend);
}

// Issue 6 (chaos F9): a replica whose log lost committed entries (a truncated segment) came
// back with a producer.state written before the loss, i.e. a table "applied" beyond its log.
// Raft re-applies the refilled indexes (the restart point is clamped to the log's end), but
// the table ignored every index at or below its own applied index: a new leader's different
// entries there (here the producer's next batches, a client retry among them) never entered
// it. Once this replica led, a retry of such a batch looked new and was stored twice.
TEST_F(ClusterPartitionFollower, TableAheadOfATruncatedLogIsRebuiltNotTrusted) {
  constexpr std::int64_t kOther = 77;
  append(1, 0, 0, {{1, idempotent_batch(kProducer, 0, 0, 2)}}, 1);
  append(1, 1, 1, {{1, idempotent_batch(kOther, 0, 0, 1)},
                   {1, idempotent_batch(kOther, 0, 1, 1)}}, 3);
  ASSERT_EQ(p_->applied(), LogIndex(3));
  p_->checkpoint_now();  // producer.state as of index 3
  ASSERT_EQ(p_->producer_state().applied_index(), LogIndex(3));
  // The disk loses entries 2-3 (the nemesis truncates the segment), then the broker restarts.
  ASSERT_TRUE(p_->storage().log().truncate_suffix(LogIndex(2)).is_ok());
  ASSERT_TRUE(p_->storage().log().sync().is_ok());
  p_.reset();
  open();
  ASSERT_EQ(p_->storage().log().last_index(), LogIndex(1));
  EXPECT_EQ(p_->producer_state().applied_index(), LogIndex(1));
  EXPECT_EQ(p_->producer_state().find(kOther), nullptr);  // only in the lost entries
  // A leader of term 2 that never had entries 2-3 fills them with kProducer's next batches.
  append(2, 1, 1, {{2, idempotent_batch(kProducer, 0, 2, 2)},
                   {2, idempotent_batch(kProducer, 0, 4, 1)}}, 3);
  ASSERT_EQ(p_->applied(), LogIndex(3));
  const ProducerEntry* e = p_->producer_state().find(kProducer);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->batches.size(), 3u);
  EXPECT_EQ(e->batches.back().last_seq, 4);
  EXPECT_EQ(e->batches.back().index, LogIndex(3));
  // Were this replica to lead now, the retry of sequence 2-3 is a duplicate, not a new batch.
  EXPECT_EQ(check_sequence(e, BatchIdentity{kProducer, 0, 2, 3, 1, 5000}).verdict,
            SequenceVerdict::kDuplicate);
  EXPECT_EQ(p_->producer_state().find(kOther), nullptr);
}

TEST_F(ClusterPartitionFollower, SnapshotInstallRestartsTheTableAtTheSnapshot) {
  append(1, 0, 0, {{1, idempotent_batch(kProducer, 0, 0, 2)}}, 1);
  ASSERT_NE(p_->producer_state().find(kProducer), nullptr);
  raft::Message m;
  m.type = raft::MessageType::kSnapshot;
  m.from = NodeId(2);
  m.to = NodeId(1);
  m.term = Term(3);
  raft::Snapshot snapshot;
  snapshot.meta.index = LogIndex(50);
  snapshot.meta.term = Term(3);
  snapshot.meta.conf_state.voters = {NodeId(1), NodeId(2)};
  Buffer data;
  le::put_u64(data, 900);  // the leader's log start offset
  snapshot.data = SharedBuffer(std::move(data));
  m.snapshot = snapshot;
  p_->step(m);
  settle();
  EXPECT_EQ(p_->producer_state().applied_index(), LogIndex(50));
  EXPECT_EQ(p_->producer_state().size(), 0u);  // its batches lie below the leader's log start
  append(3, 50, 3, {{3, idempotent_batch(8, 2, 10, 3)}}, 51);
  ASSERT_EQ(p_->applied(), LogIndex(51));
  const ProducerEntry* e = p_->producer_state().find(8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->epoch, 2);
  EXPECT_EQ(e->batches.back().base_offset, KafkaOffset(900));
  EXPECT_EQ(e->batches.back().last_offset, KafkaOffset(902));
}

}  // namespace
}  // namespace mq::cluster
