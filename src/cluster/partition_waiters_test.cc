// Produce waiters of a real PartitionGroup (Raft core, GroupStorage, in-memory file system)
// across a change of leader: every parked acks=all produce must be answered as soon as its
// entry is known to be gone, not when some later write happens to be applied at its index.
#include <gtest/gtest.h>

#include "cluster/partition_test_util.h"
#include "storage/metadata.h"

namespace mq::cluster {
namespace {

using testing::campaign_with_votes_of_node2;
using testing::plain_batch;
using testing::RecordingHost;
using Outcome = testing::ProduceOutcome;

// Node 1 of a two-voter group, made leader of term 1 by a hand-made vote from node 2.
class ClusterPartitionWaiters : public ::testing::Test {
 protected:
  void SetUp() override {
    p_ = testing::open_partition_node1(&fs_, &clock_, &host_, "/w", {NodeId(1), NodeId(2)});
    ASSERT_TRUE(campaign_with_votes_of_node2(*p_, host_, [this] { settle(); }));
    ASSERT_EQ(p_->term(), Term(1));
    ack_all();  // commits the leader's empty entry: the partition serves produce from now on
    ASSERT_TRUE(p_->is_leader());
  }

  // Node 2 acknowledges node 1's whole log (term 1).
  void ack_all() {
    raft::Message r;
    r.type = raft::MessageType::kAppendResponse;
    r.from = NodeId(2);
    r.to = NodeId(1);
    r.term = Term(1);
    r.index = p_->storage().log().last_index();
    p_->step(r);
    settle();
  }

  void settle() {
    for (int i = 0; i < 10; ++i) {
      p_->pump();
      ASSERT_TRUE(p_->storage().log().sync().is_ok());
      p_->on_durable(p_->storage().log().last_index());
    }
  }

  std::shared_ptr<Outcome> produce(const std::string& value) {
    auto out = std::make_shared<Outcome>();
    p_->produce(plain_batch(value), Acks::kAll, [out](Result<ProduceResult> r) {
      out->done = true;
      out->result = std::move(r);
    });
    return out;
  }

  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
  RecordingHost host_;
  std::unique_ptr<PartitionGroup> p_;
};

TEST_F(ClusterPartitionWaiters, WaitersBeyondATruncatedSuffixAreAnsweredAtOnce) {
  LogIndex noop = p_->storage().log().last_index();  // the term-1 leader's empty entry
  auto a = produce("a");
  auto b = produce("b");
  auto c = produce("c");
  settle();
  ASSERT_EQ(p_->storage().log().last_index(), noop + 3);
  EXPECT_FALSE(a->done);  // node 2 never acknowledged: uncommitted
  // Node 2 wins term 2 with a log ending at the no-op and replaces entry noop+1 only (§5.3:
  // the conflicting suffix noop+1.. is deleted, noop+2 and noop+3 with it).
  raft::Message m;
  m.type = raft::MessageType::kAppend;
  m.from = NodeId(2);
  m.to = NodeId(1);
  m.term = Term(2);
  m.index = noop;
  m.log_term = Term(1);
  m.commit = noop;
  m.entries.push_back(raft::Entry{Term(2), noop + 1, raft::EntryType::kNormal, plain_batch("x")});
  p_->step(m);
  settle();
  ASSERT_FALSE(p_->is_raft_leader());
  ASSERT_EQ(p_->storage().log().last_index(), noop + 1);
  for (const auto& out : {a, b, c}) {
    ASSERT_TRUE(out->done) << "a produce waiter was left without an answer";
    ASSERT_FALSE(out->result.has_value());
    EXPECT_EQ(out->result.error().code(), ErrorCode::kNotLeader);
  }
}

TEST_F(ClusterPartitionWaiters, ProposalsOfTheCurrentTermStayParked) {
  auto a = produce("a");
  settle();
  auto b = produce("b");
  EXPECT_FALSE(a->done);
  EXPECT_FALSE(b->done);
  settle();
  ack_all();  // both commit and are answered with their offsets
  ASSERT_TRUE(a->done);
  ASSERT_TRUE(b->done);
  ASSERT_TRUE(a->result.has_value()) << a->result.error().to_string();
  ASSERT_TRUE(b->result.has_value()) << b->result.error().to_string();
  EXPECT_EQ(b->result->base_offset, a->result->base_offset + 1);
}

}  // namespace
}  // namespace mq::cluster
