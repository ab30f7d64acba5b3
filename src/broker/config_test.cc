#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "broker/config.h"

namespace mq::broker {
namespace {

TEST(BrokerConfigTest, FlagsOverrideFileAndEveryBoundIsNamed) {
  std::string path = ::testing::TempDir() + "/raftmq_config_test.conf";
  {
    std::ofstream out(path);
    out << "# a broker\nbroker-id = 2\nkafka-port = 9093\nrpc-port = 19093\n"
        << "peers = 1@127.0.0.1:19092:9092, 2@127.0.0.1:19093:9999,3@127.0.0.1:19094:9094\n"
        << "frame-size-bytes-max = 2048\n";
  }
  Result<BrokerConfig> config =
      parse_serve_args({"--config", path, "--kafka-port=9999", "--auto-create-topics", "true"});
  ASSERT_TRUE(config.has_value()) << config.error().to_string();
  EXPECT_EQ(config->broker_id, 2);
  EXPECT_EQ(config->kafka.listen_port, 9999);
  EXPECT_EQ(config->kafka.frame_size_bytes_max, 2048u);
  EXPECT_TRUE(config->kafka.auto_create_topics);
  ASSERT_EQ(config->peers.size(), 3u);
  EXPECT_EQ(config->peers[2].rpc_port, 19094);
  EXPECT_EQ(config->peers[2].kafka_port, 9094);
  std::remove(path.c_str());
}

TEST(BrokerConfigTest, BadValuesAreRefusedWithTheirName) {
  Result<BrokerConfig> bad_port = parse_serve_args({"--kafka-port", "70000"});
  ASSERT_FALSE(bad_port.has_value());
  EXPECT_NE(bad_port.error().message().find("kafka-port"), std::string::npos);
  EXPECT_FALSE(parse_serve_args({"--no-such-option", "1"}).has_value());
  EXPECT_FALSE(parse_serve_args({"--frame-size-bytes-max", "12abc"}).has_value());
  EXPECT_FALSE(parse_serve_args({"--kafka-port"}).has_value());
  EXPECT_FALSE(parse_serve_args({"--config", "/nonexistent/raftmq.conf"}).has_value());
}

TEST(BrokerConfigTest, PeersMustIncludeThisBrokerOnce) {
  EXPECT_FALSE(
      parse_serve_args({"--broker-id", "4", "--peers", "1@h:1:9092,2@h:2:9093"}).has_value());
  EXPECT_FALSE(parse_serve_args({"--broker-id", "1", "--rpc-port", "1", "--peers",
                                 "1@h:1:9092,1@h:2:9093"})
                   .has_value());
  EXPECT_FALSE(parse_serve_args({"--peers", "1@h:5"}).has_value());
  EXPECT_FALSE(parse_serve_args({"--rpc-port", "5", "--peers", "1@h:5:9000"}).has_value());
  Result<BrokerConfig> ok = parse_serve_args(
      {"--broker-id", "1", "--rpc-port", "5", "--peers", "1@h:5:9092,2@other:6:9093"});
  ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  EXPECT_EQ(ok->peers[1].host, "other");
}

TEST(BrokerConfigTest, HeapReserveDefaultsTo256MiBAndCanBeTurnedOff) {
  ::unsetenv("RAFTMQ_HEAP_RESERVE_MIB");
  EXPECT_EQ(BrokerConfig{}.heap_reserve_mib, 256u);
  Result<BrokerConfig> off = parse_serve_args({"--heap-reserve-mib", "0"});
  ASSERT_TRUE(off.has_value()) << off.error().to_string();
  EXPECT_EQ(off->heap_reserve_mib, 0u);
  EXPECT_FALSE(parse_serve_args({"--heap-reserve-mib", "-1"}).has_value());
  EXPECT_FALSE(parse_serve_args({"--heap-reserve-mib", "1025"}).has_value());  // > 1 GiB
  EXPECT_TRUE(parse_serve_args({"--heap-reserve-mib", "1024"}).has_value());
  ::setenv("RAFTMQ_HEAP_RESERVE_MIB", "64", 1);
  EXPECT_EQ(BrokerConfig{}.heap_reserve_mib, 64u);
  ::setenv("RAFTMQ_HEAP_RESERVE_MIB", "lots", 1);  // not a number: the built-in default
  EXPECT_EQ(BrokerConfig{}.heap_reserve_mib, 256u);
  ::unsetenv("RAFTMQ_HEAP_RESERVE_MIB");
}

}  // namespace
}  // namespace mq::broker
