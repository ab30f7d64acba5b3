// The idempotent producer across a leader failover, in an in-process three-broker cluster
// (test_cluster.h): producer ids from the controller, a leader killed between the append of
// a batch and its answer, and the producer's retry to the new leader deduplicated.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "cluster/test_cluster.h"
#include "protocol/gen/error_codes.h"
#include "protocol/record_batch.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

Buffer idempotent_batch(std::int64_t producer, std::int16_t epoch, std::int32_t seq) {
  std::vector<protocol::RecordInput> inputs(1);
  inputs[0].value = Buffer(std::string_view("n" + std::to_string(seq)));
  inputs[0].timestamp = 1700000000000 + seq;
  protocol::RecordBatchOptions o;
  o.producer_id = producer;
  o.producer_epoch = epoch;
  o.base_sequence = seq;
  auto batch = protocol::build_record_batch(o, inputs);
  MQ_ASSERT(batch.has_value());
  return std::move(*batch);
}

struct Produced {
  Status status;
  KafkaOffset base_offset{-1};
  std::int16_t kafka_error = 0;
};

Produced produce(TestBroker& b, const std::string& topic, Buffer batch) {
  auto r = testing::produce_batch(b, topic, 0, SharedBuffer(std::move(batch)));
  if (!r.has_value()) return Produced{r.error()};
  return Produced{Status::ok(), r->base_offset, r->kafka_error};
}

Result<ProducerIdResult> init_producer_id(TestBroker& b, std::int64_t id = -1,
                                          std::int16_t epoch = -1) {
  return b.call_async<Result<ProducerIdResult>>(
      [=](Node& n, std::function<void(Result<ProducerIdResult>)> reply) {
        n.init_producer_id(id, epoch, 5000, reply);
      });
}

class ClusterIdempotence : public testing::ClusterFixture {
 protected:
  TestBroker* partition_leader(const std::string& topic) {
    return ClusterFixture::partition_leader(topic, 0);
  }
  KafkaOffset log_end_on(TestBroker& b, const std::string& topic) {
    auto s = replica_status(b, topic, 0);
    return s.has_value() ? s->log_end_offset : KafkaOffset(-1);
  }
};

TEST_F(ClusterIdempotence, ProducerIdsAreUniqueAcrossBrokersAndEpochsBump) {
  make(3);
  ASSERT_TRUE(wait_until([&] { return controller_leader() != nullptr; }, 10s));
  std::set<std::int64_t> ids;
  for (int round = 0; round < 5; ++round) {
    for (auto& b : brokers_) {  // the controller and the others (forwarded requests)
      auto r = init_producer_id(*b);
      ASSERT_TRUE(r.has_value()) << r.error().to_string();
      EXPECT_EQ(r->producer_epoch, 0);
      EXPECT_TRUE(ids.insert(r->producer_id).second) << "duplicate id " << r->producer_id;
    }
  }
  std::int64_t some = *ids.begin();
  auto bumped = init_producer_id(*brokers_[1], some, 4);
  ASSERT_TRUE(bumped.has_value());
  EXPECT_EQ(bumped->producer_id, some);
  EXPECT_EQ(bumped->producer_epoch, 5);
  // An id never handed out gets a fresh one instead of a bump.
  auto fresh = init_producer_id(*brokers_[2], 1ll << 40, 0);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_NE(fresh->producer_id, 1ll << 40);
  EXPECT_EQ(fresh->producer_epoch, 0);
  EXPECT_TRUE(ids.insert(fresh->producer_id).second);
  // Across a restart of a broker its ids stay unique (the controller's next id is replicated).
  brokers_[0]->kill();
  ASSERT_TRUE(brokers_[0]->start().is_ok());
  for (int i = 0; i < 3; ++i) {
    auto r = init_producer_id(*brokers_[0]);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_TRUE(ids.insert(r->producer_id).second) << "reused id " << r->producer_id;
  }
}

TEST_F(ClusterIdempotence, RetryToTheNewLeaderAfterAFailoverIsDeduplicated) {
  make(3);
  TestBroker* c = nullptr;
  ASSERT_TRUE(wait_until([&] { return (c = controller_leader()) != nullptr; }, 10s));
  auto created = testing::create_topic(*c, "idem", 1, 3);
  ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  auto pid = init_producer_id(*c);
  ASSERT_TRUE(pid.has_value());
  const std::int64_t producer = pid->producer_id;

  TestBroker* leader = nullptr;
  ASSERT_TRUE(wait_until([&] { return (leader = partition_leader("idem")) != nullptr; }, 10s));
  std::map<std::int32_t, std::int64_t> acked;  // seq -> offset
  for (std::int32_t seq = 0; seq < 10; ++seq) {
    Produced r = produce(*leader, "idem", idempotent_batch(producer, 0, seq));
    ASSERT_TRUE(r.status.is_ok() && r.kafka_error == 0) << r.status.to_string();
    acked[seq] = r.base_offset.value();
  }

  // Batch 10 is appended on the leader and replicated, but the leader dies before the
  // client sees the answer (the answer is dropped).
  KafkaOffset before = log_end_on(*leader, "idem");
  leader->call([&](Node& n) {
    (*n.local_partition("idem", 0))
        ->produce(SharedBuffer(idempotent_batch(producer, 0, 10)), Acks::kAll,
                  [](Result<ProduceResult>) {});
  });
  for (auto& b : brokers_) {
    ASSERT_TRUE(wait_until([&] { return log_end_on(*b, "idem") > before; }, 5s));
  }
  leader->kill();

  // The producer retries batch 10 (and, having lost track, batch 9) to the new leader.
  TestBroker* next = nullptr;
  ASSERT_TRUE(wait_until([&] { return (next = partition_leader("idem")) != nullptr; }, 10s));
  Produced retry;
  for (int attempt = 0; attempt < 50; ++attempt) {  // may race the new leader's readiness
    TestBroker* l = partition_leader("idem");
    if (l != nullptr && (retry = produce(*l, "idem", idempotent_batch(producer, 0, 10))).status.is_ok()) {
      next = l;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(retry.status.is_ok()) << retry.status.to_string();
  EXPECT_EQ(retry.kafka_error, 0);
  EXPECT_EQ(retry.base_offset, before);  // the original offset, from the dead leader's append
  Produced again = produce(*next, "idem", idempotent_batch(producer, 0, 9));
  EXPECT_EQ(again.base_offset.value(), acked[9]);
  // A gap (12 before 11) is answered retriably (FINDINGS.md F9): the client retries it after 11.
  Produced gap = produce(*next, "idem", idempotent_batch(producer, 0, 12));
  EXPECT_EQ(gap.kafka_error, static_cast<std::int16_t>(protocol::ErrorCode::kNotEnoughReplicas));
  Produced eleven = produce(*next, "idem", idempotent_batch(producer, 0, 11));
  ASSERT_TRUE(eleven.status.is_ok() && eleven.kafka_error == 0);

  // Every number exactly once, in order.
  auto records = read_committed(*next, "idem", 0);
  ASSERT_EQ(records.size(), 12u);
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].second, "n" + std::to_string(i));
  }
  EXPECT_EQ(records[10].first, before.value());

  // The killed leader restarts from its own data (producer.state + log) and, once caught up,
  // deduplicates as well when it leads again.
  ASSERT_TRUE(leader->start().is_ok());
  ASSERT_TRUE(wait_until([&] { return log_end_on(*leader, "idem") >= log_end_on(*next, "idem"); }, 10s));
  next->kill();
  TestBroker* third = nullptr;
  Produced late;
  for (int attempt = 0; attempt < 100; ++attempt) {
    third = partition_leader("idem");
    if (third != nullptr && (late = produce(*third, "idem", idempotent_batch(producer, 0, 11))).status.is_ok()) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(late.status.is_ok()) << late.status.to_string();
  EXPECT_EQ(late.base_offset, eleven.base_offset);
  EXPECT_EQ(read_committed(*third, "idem", 0).size(), 12u);
}

}  // namespace
}  // namespace mq::cluster
