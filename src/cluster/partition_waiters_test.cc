// Produce waiters of a real PartitionGroup (Raft core, GroupStorage, in-memory file system)
// across a change of leader: every parked acks=all produce must be answered as soon as its
// entry is known to be gone, not when some later write happens to be applied at its index.
#include <gtest/gtest.h>

#include "cluster/group_storage.h"
#include "cluster/partition.h"
#include "protocol/record_batch.h"
#include "storage/memory_file_system.h"
#include "storage/metadata.h"

namespace mq::cluster {
namespace {

SharedBuffer plain_batch(const std::string& value) {
  protocol::RecordInput r;
  r.value = Buffer(std::string_view(value));
  r.timestamp = 5000;
  std::vector<protocol::RecordInput> inputs;
  inputs.push_back(std::move(r));
  return SharedBuffer(*protocol::build_record_batch(protocol::RecordBatchOptions{}, inputs));
}

// Keeps what the group sends so that the test can answer as node 2 would.
class RecordingHost : public GroupHost {
 public:
  bool send_message(GroupId, raft::Message m) override {
    sent.push_back(std::move(m));
    return true;
  }
  void log(std::string_view) override {}
  std::vector<raft::Message> sent;
};

struct Outcome {
  bool done = false;
  Result<ProduceResult> result = Status::internal("not answered");
};

// Node 1 of a two-voter group, made leader of term 1 by a hand-made vote from node 2.
class ClusterPartitionWaiters : public ::testing::Test {
 protected:
  void SetUp() override {
    GroupStorageOptions o;
    o.directory = "/w";
    o.name = "t-0";
    o.bootstrap.voters = {NodeId(1), NodeId(2)};
    auto s = GroupStorage::open(&fs_, &clock_, nullptr, o);
    ASSERT_TRUE(s.has_value()) << s.error().to_string();
    RaftGroupOptions go;
    go.group = GroupId(1);
    go.name = "t-0";
    go.raft.id = NodeId(1);
    go.raft.election_ticks = 1000;  // no elections but the ones the test starts
    go.raft.heartbeat_ticks = 1;
    p_ = std::make_unique<PartitionGroup>(&host_, go, PartitionOptions{}, std::move(*s));
    ASSERT_TRUE(p_->start().is_ok());
    ASSERT_TRUE(p_->init().is_ok());
    p_->node().campaign();
    // Grant whatever (pre-)vote node 1 asks for; bounded rounds.
    for (int round = 0; round < 6 && !p_->is_raft_leader(); ++round) {
      settle();
      std::vector<raft::Message> sent;
      sent.swap(host_.sent);
      for (const raft::Message& m : sent) {
        if (m.type != raft::MessageType::kVote && m.type != raft::MessageType::kPreVote) continue;
        raft::Message r;
        r.type = m.type == raft::MessageType::kVote ? raft::MessageType::kVoteResponse
                                                    : raft::MessageType::kPreVoteResponse;
        r.from = NodeId(2);
        r.to = NodeId(1);
        r.term = m.term;
        p_->step(r);
      }
    }
    settle();
    ASSERT_TRUE(p_->is_raft_leader());
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
