#include "cluster/controller_state.h"

#include <gtest/gtest.h>

#include "cluster/group_storage.h"
#include "cluster/node.h"

namespace mq::cluster {
namespace {

BrokerRecord broker(std::int32_t id) {
  return BrokerRecord{BrokerId(id), "127.0.0.1", static_cast<std::uint16_t>(9090 + id),
                      "127.0.0.1", static_cast<std::uint16_t>(7070 + id), ""};
}

ControllerState with_brokers(int n) {
  ControllerState s;
  for (int i = 0; i < n; ++i) EXPECT_TRUE(s.apply(RegisterBroker{broker(i)}).is_ok());
  return s;
}

CreateTopic create(std::string name, GroupId first, std::vector<std::vector<BrokerId>> a) {
  CreateTopic c;
  c.name = std::move(name);
  c.id[0] = 7;
  c.first_group = first;
  c.assignment = std::move(a);
  c.configs = {{"retention.ms", "1000"}};
  return c;
}

TEST(ClusterControllerCommand, EveryCommandRoundTrips) {
  std::vector<Command> commands = {
      RegisterBroker{broker(3)},
      create("orders", GroupId(5), {{BrokerId(0), BrokerId(1)}, {BrokerId(1), BrokerId(2)}}),
      DeleteTopic{"orders"},
      CreatePartitions{"orders", GroupId(9), {{BrokerId(2)}}},
      AlterConfigs{"orders", {{"retention.bytes", "100"}, {"cleanup.policy", "delete"}}},
      MovePartition{"orders", 1, {BrokerId(2), BrokerId(0)}},
  };
  for (const Command& c : commands) {
    Buffer bytes = encode_command(c);
    auto decoded = decode_command(bytes.view());
    ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
    EXPECT_EQ(*decoded, c);
  }
}

TEST(ClusterControllerCommand, TruncationAtEveryByteIsRefused) {
  Buffer bytes = encode_command(
      create("orders", GroupId(5), {{BrokerId(0), BrokerId(1)}, {BrokerId(1), BrokerId(2)}}));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto decoded = decode_command(bytes.view(0, n));
    ASSERT_FALSE(decoded.has_value()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(decoded.error().code(), ErrorCode::kCorruption);
  }
}

TEST(ClusterControllerCommand, BadVersionTypeCountsAndTrailingBytesAreRefused) {
  Buffer good = encode_command(DeleteTopic{"t"});
  Buffer bad_version = good;
  bad_version[0] = 9;
  EXPECT_FALSE(decode_command(bad_version.view()).has_value());
  Buffer bad_type = good;
  bad_type[1] = 200;
  EXPECT_FALSE(decode_command(bad_type.view()).has_value());
  Buffer trailing = good;
  trailing.push_back(0);
  EXPECT_FALSE(decode_command(trailing.view()).has_value());
  // A replica count far above its bound must not allocate: refused.
  Buffer huge = encode_command(MovePartition{"t", 0, {BrokerId(1)}});
  std::size_t count_at = huge.size() - 8;  // u32 count, then one i32
  huge[count_at + 3] = 0x7f;
  EXPECT_FALSE(decode_command(huge.view()).has_value());
}

TEST(ClusterControllerState, CreateDeleteAndValidation) {
  ControllerState s = with_brokers(3);
  auto c = create("orders", GroupId(1), {{BrokerId(0), BrokerId(1)}, {BrokerId(1), BrokerId(2)}});
  ASSERT_TRUE(s.apply(c).is_ok());
  ASSERT_NE(s.find_topic("orders"), nullptr);
  EXPECT_EQ(s.find_topic("orders")->partitions[1].group, GroupId(2));
  EXPECT_EQ(s.next_group(), GroupId(3));
  // Same name again, or a reused group id, is refused and changes nothing.
  EXPECT_EQ(s.apply(create("orders", GroupId(3), {{BrokerId(0)}})).code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.apply(create("other", GroupId(2), {{BrokerId(0)}})).code(), ErrorCode::kAborted);
  EXPECT_EQ(s.apply(create("bad name!", GroupId(3), {{BrokerId(0)}})).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.apply(create("x", GroupId(3), {{BrokerId(7)}})).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.apply(create("x", GroupId(3), {{BrokerId(1), BrokerId(1)}})).code(),
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(s.apply(CreatePartitions{"orders", GroupId(3), {{BrokerId(2), BrokerId(0)}}}).is_ok());
  EXPECT_EQ(s.find_topic("orders")->partitions.size(), 3u);
  ASSERT_TRUE(s.apply(MovePartition{"orders", 0, {BrokerId(2), BrokerId(1)}}).is_ok());
  EXPECT_EQ(s.find_topic("orders")->partitions[0].initial_replicas,
            (std::vector<BrokerId>{BrokerId(0), BrokerId(1)}));
  EXPECT_EQ(s.apply(MovePartition{"orders", 5, {BrokerId(2)}}).code(), ErrorCode::kNotFound);
  ASSERT_TRUE(s.apply(DeleteTopic{"orders"}).is_ok());
  EXPECT_EQ(s.find_topic("orders"), nullptr);
  EXPECT_EQ(s.apply(DeleteTopic{"orders"}).code(), ErrorCode::kNotFound);
  EXPECT_EQ(s.next_group(), GroupId(4));  // ids are never reused
}

TEST(ClusterControllerState, SnapshotRoundTripsAndRejectsCorruption) {
  ControllerState s = with_brokers(3);
  ASSERT_TRUE(s.apply(create("a", GroupId(1), {{BrokerId(0)}, {BrokerId(1)}})).is_ok());
  ASSERT_TRUE(s.apply(AlterConfigs{"a", {{"retention.ms", "5"}}}).is_ok());
  Buffer image = s.encode_snapshot();
  auto back = ControllerState::decode_snapshot(image.view());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(*back, s);
  for (std::size_t n = 0; n < image.size(); ++n) {
    EXPECT_FALSE(ControllerState::decode_snapshot(image.view(0, n)).has_value()) << n;
  }
}

TEST(ClusterAssignment, SpreadsReplicasRoundRobinWithRotatingStart) {
  std::vector<BrokerId> b = {BrokerId(0), BrokerId(1), BrokerId(2)};
  auto a = assign_replicas(b, 3, 2, 0);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ((*a)[0], (std::vector<BrokerId>{BrokerId(0), BrokerId(1)}));
  EXPECT_EQ((*a)[1], (std::vector<BrokerId>{BrokerId(1), BrokerId(2)}));
  EXPECT_EQ((*a)[2], (std::vector<BrokerId>{BrokerId(2), BrokerId(0)}));
  // Every broker leads (is first for) exactly one partition, and holds two replicas.
  std::map<BrokerId, int> held;
  for (const auto& r : *a) {
    for (BrokerId x : r) ++held[x];
  }
  for (BrokerId x : b) EXPECT_EQ(held[x], 2);
  auto rotated = assign_replicas(b, 1, 3, 1);
  ASSERT_TRUE(rotated.has_value());
  EXPECT_EQ((*rotated)[0].front(), BrokerId(1));
  EXPECT_FALSE(assign_replicas(b, 1, 4, 0).has_value());
  EXPECT_FALSE(assign_replicas(b, 0, 1, 0).has_value());
  EXPECT_FALSE(assign_replicas(b, 1, 0, 0).has_value());
}

TEST(ClusterConfState, EncodingRoundTripsAndRejectsGarbage) {
  raft::ConfState cs;
  cs.voters = {NodeId(1), NodeId(2)};
  cs.voters_outgoing = {NodeId(1), NodeId(3)};
  cs.learners = {NodeId(4)};
  cs.auto_leave = true;
  Buffer bytes = encode_conf_state(cs);
  auto back = decode_conf_state(bytes.view());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, cs);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_conf_state(bytes.view(0, n)).has_value());
  }
}

TEST(ClusterNodeConfig, BrokerAddressesParseAndBadOnesAreRefused) {
  auto a = parse_broker_address("2@10.0.0.7:9093:9092");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->id, BrokerId(2));
  EXPECT_EQ(a->host, "10.0.0.7");
  EXPECT_EQ(a->rpc_port, 9093);
  EXPECT_EQ(a->kafka_port, 9092);
  for (const char* bad : {"", "2", "2@host", "2@host:1", "x@host:1:2", "2@:1:2", "2@h:0:2",
                          "2@h:1:70000", "-1@h:1:2", "2@h:1:2x"}) {
    EXPECT_FALSE(parse_broker_address(bad).has_value()) << bad;
  }
}

TEST(ClusterNodeConfig, ValidateNamesTheProblem) {
  NodeConfig c;
  c.data_dir = "/tmp/x";
  EXPECT_TRUE(c.validate().is_ok());
  c.brokers = {BrokerAddress{BrokerId(5), "h", 1, 2}};
  EXPECT_EQ(c.validate().code(), ErrorCode::kInvalidArgument);  // self not listed
  c.brokers.push_back(BrokerAddress{c.id, "h", 3, 4});
  EXPECT_TRUE(c.validate().is_ok());
  c.brokers.push_back(BrokerAddress{BrokerId(5), "h", 5, 6});
  EXPECT_EQ(c.validate().code(), ErrorCode::kInvalidArgument);  // listed twice
  NodeConfig d;
  d.data_dir = "/tmp/x";
  d.heartbeat_ticks = d.election_ticks;
  EXPECT_EQ(d.validate().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace mq::cluster

namespace mq::cluster {
namespace {

TEST(ClusterProducerIds, BlocksAreDisjointAndSurviveSnapshots) {
  ControllerState s = with_brokers(3);
  AllocateProducerIds a{BrokerId(1), 77, 1000};
  Buffer bytes = encode_command(Command{a});
  auto decoded = decode_command(bytes.view());
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(std::get<AllocateProducerIds>(*decoded), a);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(decode_command(bytes.view().subspan(0, cut)).has_value());
  }
  ASSERT_TRUE(s.apply(a).is_ok());
  ASSERT_TRUE(s.apply(AllocateProducerIds{BrokerId(2), 5, 10}).is_ok());
  ASSERT_TRUE(s.apply(AllocateProducerIds{BrokerId(1), 78, 1000}).is_ok());
  EXPECT_EQ(s.producer_id_block(BrokerId(2))->first, 1000);
  EXPECT_EQ(s.producer_id_block(BrokerId(1))->first, 1010);
  EXPECT_EQ(s.producer_id_block(BrokerId(1))->request_id, 78u);
  EXPECT_EQ(s.next_producer_id(), 2010);
  EXPECT_EQ(s.producer_id_block(BrokerId(0)), nullptr);
  // Refused: unknown broker, empty or oversized block; nothing changes.
  EXPECT_FALSE(s.apply(AllocateProducerIds{BrokerId(9), 1, 10}).is_ok());
  EXPECT_FALSE(s.apply(AllocateProducerIds{BrokerId(1), 1, 0}).is_ok());
  EXPECT_FALSE(s.apply(AllocateProducerIds{BrokerId(1), 1, kProducerIdBlockMax + 1}).is_ok());
  EXPECT_EQ(s.next_producer_id(), 2010);
  // The next block start is part of the snapshot (unique across restarts).
  Buffer image = s.encode_snapshot();
  auto restored = ControllerState::decode_snapshot(image.view());
  ASSERT_TRUE(restored.has_value()) << restored.error().to_string();
  EXPECT_EQ(*restored, s);
  EXPECT_EQ(restored->next_producer_id(), 2010);
}

}  // namespace
}  // namespace mq::cluster
