#include "sim/network.h"

#include <gtest/gtest.h>

namespace mq::sim {
namespace {

TEST(SimNetwork, SameSeedSameFates) {
  NetworkOptions options;
  options.drop_per_mille = 100;
  options.duplicate_per_mille = 100;
  options.long_delay_per_mille = 100;
  Prng a(42);
  Prng b(42);
  SimNetwork na(&a, options);
  SimNetwork nb(&b, options);
  int dropped = 0;
  int duplicated = 0;
  for (int i = 0; i < 2000; ++i) {
    auto fa = na.fate();
    ASSERT_EQ(fa, nb.fate());
    dropped += fa.empty();
    duplicated += fa.size() == 2;
    for (SimTime d : fa) {
      EXPECT_GE(d, options.delay_min_us);
      EXPECT_LE(d, options.long_delay_max_us);
    }
  }
  // ~10% each; wide bounds, but a knob that does nothing fails.
  EXPECT_GT(dropped, 100);
  EXPECT_LT(dropped, 320);
  EXPECT_GT(duplicated, 100);
  EXPECT_LT(duplicated, 320);
}

TEST(SimNetwork, PartitionsBlockDirectedLinks) {
  Prng prng(1);
  SimNetwork network(&prng, NetworkOptions{});
  const NodeId n1(1), n2(2), n3(3);
  EXPECT_TRUE(network.connected(n1, n2));
  network.one_way(n1, {n2});
  EXPECT_FALSE(network.connected(n1, n2));
  EXPECT_TRUE(network.connected(n2, n1));
  network.heal();
  network.bridge({n1}, n3, {n2});
  EXPECT_FALSE(network.connected(n1, n2));
  EXPECT_FALSE(network.connected(n2, n1));
  EXPECT_TRUE(network.connected(n1, n3));
  EXPECT_TRUE(network.connected(n3, n2));
  network.heal();
  network.isolate(n2, {n1, n2, n3});
  EXPECT_FALSE(network.connected(n2, n3));
  EXPECT_FALSE(network.connected(n1, n2));
  EXPECT_TRUE(network.connected(n1, n3));
  EXPECT_EQ(network.describe_partition(), "1-x->2 2-x->1 2-x->3 3-x->2");
}

}  // namespace
}  // namespace mq::sim
