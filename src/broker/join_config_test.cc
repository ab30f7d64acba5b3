// `raftmq serve` flags for joining a running cluster (docs/operations.md "Adding a broker").
#include <gtest/gtest.h>

#include "broker/config.h"

namespace mq::broker {
namespace {

TEST(JoinConfig, JoinFlagIsParsed) {
  Result<BrokerConfig> config = parse_serve_args(
      {"--broker-id", "4", "--join", "127.0.0.1:19092, broker2:19093", "--join-timeout-ms",
       "5000", "--rack", "r1"});
  ASSERT_TRUE(config.has_value()) << config.error().to_string();
  ASSERT_EQ(config->join.size(), 2u);
  EXPECT_EQ(config->join[0].host, "127.0.0.1");
  EXPECT_EQ(config->join[0].port, 19092);
  EXPECT_EQ(config->join[1].host, "broker2");
  EXPECT_EQ(config->join_timeout_ms, 5000);
  EXPECT_EQ(config->rack, "r1");
  EXPECT_TRUE(config->peers.empty());
}

TEST(JoinConfig, BadJoinInputIsRefusedWithTheOptionNamed) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", ":19092", "127.0.0.1:0", "127.0.0.1:99999",
                          "127.0.0.1:19092,", "1@127.0.0.1:19092", "127.0.0.1:port"}) {
    Result<BrokerConfig> config = parse_serve_args({"--join", bad});
    ASSERT_FALSE(config.has_value()) << bad;
    EXPECT_NE(config.error().message().find("join"), std::string::npos)
        << bad << ": " << config.error().message();
  }
  EXPECT_FALSE(parse_serve_args({"--join", "127.0.0.1:1", "--join-timeout-ms", "0"}).has_value());
}

TEST(JoinConfig, JoinAndPeersAreExclusive) {
  Result<BrokerConfig> config =
      parse_serve_args({"--broker-id", "1", "--rpc-port", "19092", "--kafka-port", "9092",
                        "--peers", "1@127.0.0.1:19092:9092", "--join", "127.0.0.1:19093"});
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message().find("exclusive"), std::string::npos);
}

}  // namespace
}  // namespace mq::broker
