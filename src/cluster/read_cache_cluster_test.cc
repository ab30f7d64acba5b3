// The read cache in a cluster (storage/read_cache.h): a partition's leader hands its log's
// written parts to the cache, its followers do not, and after a failover the new leader does.
// The brokers share one process here, so one cache: the test counts what it holds against
// what one replica wrote.
#include <gtest/gtest.h>

#include <string>

#include "cluster/test_cluster.h"
#include "storage/read_cache.h"

namespace mq::cluster {
namespace {

using namespace std::chrono_literals;
using testing::TestBroker;

bool plenty_of_memory(std::uint64_t* available, std::uint64_t* total) {
  *total = 16ull << 30;
  *available = 8ull << 30;
  return true;
}

class ClusterReadCache : public testing::ClusterFixture {
 protected:
  void SetUp() override {
    ClusterFixture::SetUp();
    cache().set_budget_bytes(0);
    cache().set_memory_source(&plenty_of_memory);
    cache().set_grow_inline(true);
    cache().set_budget_bytes(512ull << 20);
  }
  void TearDown() override {
    ClusterFixture::TearDown();
    cache().set_budget_bytes(0);
    cache().set_memory_source(nullptr);
    cache().set_grow_inline(false);
  }
  static storage::ReadCache& cache() { return storage::ReadCache::instance(); }

  // `mib` MiB in values of 256 KiB (appends of this size go through the write-behind buffer).
  static void produce_mib(TestBroker& leader, const std::string& topic, int mib) {
    const std::string value(256u << 10, 'v');
    for (int i = 0; i < mib * 4; ++i) {
      ASSERT_TRUE(testing::produce_value(leader, topic, 0, value).is_ok()) << "value " << i;
    }
  }
};

TEST_F(ClusterReadCache, OnlyTheLeaderKeepsWrittenPartsAndAFailoverMovesThat) {
  make(3);
  TestBroker* c = wait_controller();
  ASSERT_NE(c, nullptr);
  auto results = testing::create_topic(*c, "cached", 1, 3);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].status.is_ok()) << results[0].status.to_string();
  TestBroker* leader = wait_partition_leader("cached", 0);
  ASSERT_NE(leader, nullptr);
  const int kMib = 16;
  produce_mib(*leader, "cached", kMib);
  // One replica's parts, less the ring's newest four (not handed over yet); three replicas'
  // would be about three times as many.
  std::uint64_t cached = cache().stats().cached_bytes;
  EXPECT_GE(cached, std::uint64_t(kMib - 6) << 20);
  EXPECT_LE(cached, std::uint64_t(kMib) << 20);

  // The leader goes: its blocks go with its logs; the new leader keeps its own parts.
  leader->kill();
  TestBroker* next = wait_partition_leader("cached", 0, 15s);
  ASSERT_NE(next, nullptr);
  ASSERT_NE(next, leader);
  EXPECT_EQ(cache().stats().cached_bytes, 0u) << "a follower's log kept written parts";
  produce_mib(*next, "cached", kMib);
  cached = cache().stats().cached_bytes;
  EXPECT_GE(cached, std::uint64_t(kMib - 6) << 20);
  EXPECT_LE(cached, std::uint64_t(kMib) << 20);
}

}  // namespace
}  // namespace mq::cluster
