// The single in-flight produce path of a real PartitionGroup (Raft core, GroupStorage,
// in-memory file system, durability only by an explicit Log::sync): an acks=all produce is
// answered as soon as a majority of replicas acknowledged it, without waiting for the
// leader's own fsync and the Ready cycle after it — and never earlier than a majority
// including only replicas that persisted it (the leader counts itself only once its own
// write is durable: docs/raft_driver.md).
#include <gtest/gtest.h>

#include "cluster/partition_test_util.h"

namespace mq::cluster {
namespace {

using testing::campaign_with_votes_of_node2;
using testing::plain_batch;
using testing::RecordingHost;
using Outcome = testing::ProduceOutcome;

// Node 1 of the voters {1, 2, 3}, leader of term 1 (votes granted by hand).
class ClusterProduceLatency : public ::testing::Test {
 protected:
  void SetUp() override {
    p_ = testing::open_partition_node1(&fs_, &clock_, &host_, "/l", {NodeId(1), NodeId(2), NodeId(3)});
    ASSERT_TRUE(campaign_with_votes_of_node2(*p_, host_, [this] { settle(); }));
    ack(NodeId(2), p_->storage().log().last_index());
    settle();
    ASSERT_TRUE(p_->is_leader());
    host_.sent.clear();
  }

  // `from` acknowledges node 1's log up to `index` (it persisted it), as Node::deliver does:
  // step, then pump.
  void ack(NodeId from, LogIndex index) {
    raft::Message r;
    r.type = raft::MessageType::kAppendResponse;
    r.from = from;
    r.to = NodeId(1);
    r.term = Term(1);
    r.index = index;
    p_->step(r);
    p_->pump();
  }

  // The flusher's round: the log synced, its report handled on the loop.
  void fsync_leader() {
    ASSERT_TRUE(p_->storage().log().sync().is_ok());
    p_->on_durable(p_->storage().log().last_index());
  }

  void settle() {
    for (int i = 0; i < 10; ++i) {
      p_->pump();
      fsync_leader();
    }
  }

  std::shared_ptr<Outcome> produce(const std::string& value) {
    auto out = std::make_shared<Outcome>();
    p_->produce(plain_batch(value), Acks::kAll, [out](Result<ProduceResult> r) {
      out->done = true;
      out->result = std::move(r);
    });
    p_->pump();  // Node::schedule_pump
    return out;
  }

  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
  RecordingHost host_;
  std::unique_ptr<PartitionGroup> p_;
};

TEST_F(ClusterProduceLatency, AnsweredOnTwoFollowersAcksWhileTheLeadersFsyncRuns) {
  const KafkaOffset hw = p_->high_watermark();
  auto a = produce("a");
  const LogIndex index = p_->storage().log().last_index();
  // The append went out before the leader's own write was durable (thesis §10.2.1).
  bool append_sent = false;
  for (const raft::Message& m : host_.sent) {
    append_sent |= m.type == raft::MessageType::kAppend && !m.entries.empty() &&
                   m.entries.back().index == index;
  }
  EXPECT_TRUE(append_sent);
  ASSERT_LT(p_->storage().log().durable_index(), index);  // the leader's fsync still runs
  ack(NodeId(2), index);
  ack(NodeId(3), index);
  // Two of three voters persisted it: committed (§5.3) and answered now, not after the
  // leader's fsync and one more Ready.
  ASSERT_TRUE(a->done);
  ASSERT_TRUE(a->result.has_value()) << a->result.error().to_string();
  EXPECT_EQ(a->result->base_offset, hw);
  EXPECT_EQ(p_->high_watermark(), hw + 1);
  EXPECT_EQ(p_->applied(), index);
  EXPECT_LT(p_->storage().log().durable_index(), index);
  // The leader's fsync completes later: nothing is applied or answered twice, and the next
  // produce goes through the usual way.
  fsync_leader();
  p_->pump();
  EXPECT_EQ(p_->applied(), index);
  EXPECT_EQ(p_->high_watermark(), hw + 1);
  auto b = produce("b");
  fsync_leader();
  ack(NodeId(2), index + 1);
  ASSERT_TRUE(b->done);
  ASSERT_TRUE(b->result.has_value()) << b->result.error().to_string();
  EXPECT_EQ(b->result->base_offset, hw + 1);
}

TEST_F(ClusterProduceLatency, OneFollowerAckWaitsForTheLeadersOwnFsync) {
  const KafkaOffset hw = p_->high_watermark();
  auto a = produce("a");
  const LogIndex index = p_->storage().log().last_index();
  ASSERT_LT(p_->storage().log().durable_index(), index);
  ack(NodeId(2), index);
  // One follower plus a leader whose copy is only in the page cache is not a majority of
  // persisted copies: acks=all must not answer yet.
  EXPECT_FALSE(a->done);
  EXPECT_EQ(p_->high_watermark(), hw);
  EXPECT_LT(p_->applied(), index);
  fsync_leader();  // now the leader counts itself: 2 of 3
  p_->pump();
  ASSERT_TRUE(a->done);
  ASSERT_TRUE(a->result.has_value()) << a->result.error().to_string();
  EXPECT_EQ(p_->applied(), index);
}

TEST_F(ClusterProduceLatency, CheckpointNeverRecordsMoreThanTheLocallyDurableLog) {
  auto a = produce("a");
  const LogIndex index = p_->storage().log().last_index();
  ack(NodeId(2), index);
  ack(NodeId(3), index);
  ASSERT_TRUE(a->done);
  ASSERT_EQ(p_->applied(), index);
  // A shutdown checkpoint while the leader's own copy is not yet durable: a restart must not
  // find an applied index beyond its log (docs/raft_driver.md, restart rules).
  p_->checkpoint_now();
  EXPECT_LT(p_->storage().hard_state().commit, index);
  EXPECT_LE(p_->storage().hard_state().commit, p_->storage().log().durable_index());
}

}  // namespace
}  // namespace mq::cluster
