// Admin read-your-writes (docs/cluster.md "Admin answers wait for the live brokers"): once
// CreateTopics, DeleteTopics or CreatePartitions answers, every live broker's Metadata shows
// the change, even a broker that applies the controller's entries late; a stopped broker is
// not waited for; a live broker that has not applied the entry by the request's timeout
// makes the answer REQUEST_TIMED_OUT (the change itself stays committed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "cluster/test_cluster.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;
using testing::wait_until;

class AdminPropagation : public testing::ClusterFixture {
 protected:
  // The brokers other than the controller leader `c`.
  std::vector<TestBroker*> others(TestBroker* c) {
    std::vector<TestBroker*> out;
    for (auto& b : brokers_) {
      if (b.get() != c && b->running()) out.push_back(b.get());
    }
    return out;
  }
  // Partitions of `topic` in b's metadata; -1 if b does not list it.
  static int partitions_seen(TestBroker& b, const std::string& topic) {
    return b.call([&](Node& n) {
      MetadataSnapshot m = n.metadata();
      const TopicInfo* t = m.find_topic(topic);
      return t == nullptr ? -1 : static_cast<int>(t->partitions.size());
    });
  }
  static void hold(TestBroker& b, std::int64_t ms) {
    b.call([ms](Node& n) { n.hold_controller_for_test(ms); });
  }
  static std::vector<AdminResult> delete_topic(TestBroker& b, const std::string& name,
                                               std::int64_t timeout_ms) {
    return b.call_async<std::vector<AdminResult>>(
        [&](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
          n.delete_topics({name}, timeout_ms, reply);
        });
  }
  static std::vector<AdminResult> add_partitions(TestBroker& b, const std::string& name,
                                                 std::int32_t total, std::int64_t timeout_ms) {
    return b.call_async<std::vector<AdminResult>>(
        [&](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
          n.create_partitions({{name, total}}, timeout_ms, false, reply);
        });
  }
  static std::vector<AdminResult> create(TestBroker& b, const std::string& name, int partitions,
                                         int rf, std::int64_t timeout_ms) {
    return b.call_async<std::vector<AdminResult>>(
        [&](Node& n, std::function<void(std::vector<AdminResult>)> reply) {
          TopicSpec spec;
          spec.name = name;
          spec.partitions = partitions;
          spec.replication_factor = static_cast<std::int16_t>(rf);
          n.create_topics({spec}, timeout_ms, reply);
        });
  }
};

// Broker `late` drops the controller's messages for 700 ms before each command, so it
// applies each entry well after the other two have committed it. Each answer must still
// find every broker's Metadata changed, for a command on the controller leader and for one
// forwarded to it by the third broker.
TEST_F(AdminPropagation, AnswersAfterEveryLiveBrokerAppliedTheChange) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  std::vector<TestBroker*> rest = others(c);
  ASSERT_EQ(rest.size(), 2u);
  TestBroker* late = rest[0];
  TestBroker* forwarder = rest[1];

  hold(*late, 700);
  auto created = create(*c, "ryw", 2, 3, 10000);
  ASSERT_EQ(created.size(), 1u);
  ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  for (auto& b : brokers_) EXPECT_EQ(partitions_seen(*b, "ryw"), 2) << b->config().id.value();

  hold(*late, 700);
  auto grown = add_partitions(*c, "ryw", 4, 10000);
  ASSERT_EQ(grown.size(), 1u);
  ASSERT_TRUE(grown[0].status.is_ok()) << grown[0].status.to_string();
  for (auto& b : brokers_) EXPECT_EQ(partitions_seen(*b, "ryw"), 4) << b->config().id.value();

  hold(*late, 700);
  auto deleted = delete_topic(*forwarder, "ryw", 10000);  // forwarded to the controller
  ASSERT_EQ(deleted.size(), 1u);
  ASSERT_TRUE(deleted[0].status.is_ok()) << deleted[0].status.to_string();
  for (auto& b : brokers_) EXPECT_EQ(partitions_seen(*b, "ryw"), -1) << b->config().id.value();
}

// Without a late broker the wait costs one commit-index round to the followers: CreateTopics
// and DeleteTopics each answer well within 500 ms (median printed for the record).
TEST_F(AdminPropagation, AnswerLatencyWithAllBrokersPrompt) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  std::vector<double> ms;
  for (int i = 0; i < 10; ++i) {
    std::string name = "quick" + std::to_string(i);
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(create(*c, name, 1, 3, 10000)[0].status.is_ok());
    ASSERT_TRUE(delete_topic(*c, name, 10000)[0].status.is_ok());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count() / 2);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("admin answer (create+delete)/2: median %.1f ms, max %.1f ms\n", ms[ms.size() / 2],
              ms.back());
  EXPECT_LT(ms[ms.size() / 2], 500.0);
}

// A live broker that does not apply the entry within the request's timeout: the answer is
// kTimeout (REQUEST_TIMED_OUT) at about the timeout, and the topic is created anyway.
TEST_F(AdminPropagation, LateBrokerMakesTheAnswerTimeOutButTheTopicIsCreated) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  TestBroker* late = others(c)[0];
  hold(*late, 3000);
  auto start = std::chrono::steady_clock::now();
  auto created = create(*c, "slow", 1, 3, 800);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].status.code(), ErrorCode::kTimeout) << created[0].status.to_string();
  EXPECT_GE(elapsed, 700ms);
  EXPECT_LT(elapsed, 2500ms);
  EXPECT_EQ(partitions_seen(*c, "slow"), 1);
  EXPECT_TRUE(wait_until([&] { return partitions_seen(*late, "slow") == 1; }, 10s));
  // Creating it again is refused: the first command was committed.
  hold(*late, 0);
  EXPECT_EQ(create(*c, "slow", 1, 3, 5000)[0].status.code(), ErrorCode::kAlreadyExists);
}

// A broker cut off by a network partition (its connections stay up, messages are dropped)
// holds the answer at most until the timeout, or until the liveness pings call it down.
TEST_F(AdminPropagation, PartitionedBrokerDoesNotHoldTheAnswerBeyondTheTimeout) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  TestBroker* cut = others(c)[0];
  BrokerId cut_id = cut->config().id;
  std::set<BrokerId> rest;
  for (auto& b : brokers_) {
    if (b.get() != cut) rest.insert(b->config().id);
  }
  cut->call([&](Node& n) { n.block_links_for_test(rest); });
  for (auto& b : brokers_) {
    if (b.get() != cut) b->call([&](Node& n) { n.block_links_for_test({cut_id}); });
  }
  auto start = std::chrono::steady_clock::now();
  auto created = create(*c, "cutoff", 1, 2, 1500);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(created.size(), 1u);
  EXPECT_TRUE(created[0].status.is_ok() || created[0].status.code() == ErrorCode::kTimeout)
      << created[0].status.to_string();
  EXPECT_LT(elapsed, 2500ms);
  std::printf("partitioned broker: answer %s after %lld ms\n", created[0].status.to_string().c_str(),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()));
  EXPECT_EQ(partitions_seen(*c, "cutoff"), 1);
  for (auto& b : brokers_) b->call([](Node& n) { n.block_links_for_test({}); });
}

// A stopped broker is not live: it is not waited for, the answer comes at once.
TEST_F(AdminPropagation, StoppedBrokerIsNotWaitedFor) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  TestBroker* stopped = others(c)[0];
  BrokerId stopped_id = stopped->config().id;
  stopped->kill();
  ASSERT_TRUE(wait_until([&] {
    return c->call([&](Node& n) {
      for (const BrokerInfo& b : n.metadata().brokers) {
        if (b.id == stopped_id) return !b.alive;
      }
      return false;
    });
  }, 10s));
  auto start = std::chrono::steady_clock::now();
  auto created = create(*c, "without", 1, 2, 10000);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(created[0].status.is_ok()) << created[0].status.to_string();
  EXPECT_LT(elapsed, 2000ms);
  auto deleted = delete_topic(*c, "without", 10000);
  ASSERT_TRUE(deleted[0].status.is_ok()) << deleted[0].status.to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4000ms);
  for (auto& b : brokers_) {
    if (b->running()) {
      EXPECT_EQ(partitions_seen(*b, "without"), -1);
    }
  }
}

}  // namespace
}  // namespace mq::cluster
