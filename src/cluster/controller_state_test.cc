#include "cluster/controller_state.h"

#include <gtest/gtest.h>

#include "base/le_codec.h"

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


// ---- RemoveBroker (docs/cluster.md "Removing a broker") ----

BrokerRecord joined_broker(std::int32_t id, std::uint64_t incarnation) {
  BrokerRecord b = broker(id);
  b.incarnation = incarnation;
  return b;
}

TEST(ClusterRemoveBroker, CommandRoundTripsAndTruncationIsRefused) {
  Command remove = RemoveBroker{BrokerId(7)};
  Buffer bytes = encode_command(remove);
  auto decoded = decode_command(bytes.view());
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, remove);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_command(bytes.view(0, n)).has_value()) << n;
  }
  Buffer longer;
  longer.append(bytes.data(), bytes.size());
  le::put_u8(longer, 0);
  EXPECT_EQ(decode_command(longer.view()).error().code(), ErrorCode::kCorruption);
}

TEST(ClusterRemoveBroker, RefusedWhileItHoldsReplicasThenLeavesATombstone) {
  ControllerState s = with_brokers(3);
  ASSERT_TRUE(s.apply(create("t", GroupId(1), {{BrokerId(0), BrokerId(1)}})).is_ok());
  ASSERT_TRUE(s.apply(AllocateProducerIds{BrokerId(1), 42, 10}).is_ok());

  Status unknown = s.apply(RemoveBroker{BrokerId(9)});
  EXPECT_EQ(unknown.code(), ErrorCode::kNotFound);
  EXPECT_NE(unknown.message().find("not registered"), std::string::npos);

  Status busy = s.apply(RemoveBroker{BrokerId(1)});
  EXPECT_EQ(busy.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(busy.message().find("still holds 1 partition replica"), std::string::npos);
  EXPECT_NE(busy.message().find("decommission 1 --wait"), std::string::npos);
  EXPECT_EQ(s.brokers().count(BrokerId(1)), 1u);

  ASSERT_TRUE(s.apply(MovePartition{"t", 0, {BrokerId(0), BrokerId(2)}}).is_ok());
  std::uint64_t applied = s.applied_commands();
  ASSERT_TRUE(s.apply(RemoveBroker{BrokerId(1)}).is_ok());
  EXPECT_EQ(s.applied_commands(), applied + 1);
  EXPECT_EQ(s.brokers().count(BrokerId(1)), 0u);
  EXPECT_EQ(s.producer_id_block(BrokerId(1)), nullptr);
  const RemovedBroker* tomb = s.find_removed(BrokerId(1));
  ASSERT_NE(tomb, nullptr);
  EXPECT_EQ(tomb->incarnation, 0u);  // a static broker
  EXPECT_EQ(tomb->rpc_port, 7071);
  EXPECT_EQ(tomb->rpc_host, "127.0.0.1");

  Status again = s.apply(RemoveBroker{BrokerId(1)});
  EXPECT_EQ(again.code(), ErrorCode::kNotFound);
  EXPECT_NE(again.message().find("already removed"), std::string::npos);
  // Its static registration can never come back.
  Status back = s.apply(RegisterBroker{broker(1)});
  EXPECT_EQ(back.code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(back.message().find("removed from the cluster"), std::string::npos);
  EXPECT_EQ(s.brokers().count(BrokerId(1)), 0u);
  // A new data directory may join under the id: a new broker; the tombstone goes.
  ASSERT_TRUE(s.apply(JoinBroker{joined_broker(1, 77)}).is_ok());
  EXPECT_EQ(s.find_removed(BrokerId(1)), nullptr);
  EXPECT_EQ(s.brokers().at(BrokerId(1)).incarnation, 77u);
  // ... and a static registration cannot overwrite the joined record.
  EXPECT_EQ(s.apply(RegisterBroker{broker(1)}).code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.brokers().at(BrokerId(1)).incarnation, 77u);
}

TEST(ClusterRemoveBroker, TheRemovedDataDirectoryCannotRejoin) {
  ControllerState s = with_brokers(2);
  ASSERT_TRUE(s.apply(JoinBroker{joined_broker(5, 1234)}).is_ok());
  ASSERT_TRUE(s.apply(RemoveBroker{BrokerId(5)}).is_ok());
  EXPECT_EQ(s.find_removed(BrokerId(5))->incarnation, 1234u);
  Status stale = s.apply(JoinBroker{joined_broker(5, 1234)});
  EXPECT_EQ(stale.code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(stale.message().find("empty data directory"), std::string::npos);
  EXPECT_EQ(s.brokers().count(BrokerId(5)), 0u);
  ASSERT_TRUE(s.apply(JoinBroker{joined_broker(5, 1235)}).is_ok());
  EXPECT_EQ(s.brokers().at(BrokerId(5)).incarnation, 1235u);
}

TEST(ClusterRemoveBroker, TheLastBrokerStays) {
  ControllerState s = with_brokers(1);
  Status last = s.apply(RemoveBroker{BrokerId(0)});
  EXPECT_EQ(last.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(last.message().find("last broker"), std::string::npos);
  EXPECT_EQ(s.brokers().size(), 1u);
}

TEST(ClusterRemoveBroker, SnapshotKeepsTombstonesAndVersionThreeIsStillRead) {
  ControllerState s = with_brokers(3);
  ASSERT_TRUE(s.apply(JoinBroker{joined_broker(4, 0xabcdefull)}).is_ok());
  ASSERT_TRUE(s.apply(AllocateProducerIds{BrokerId(2), 9, 100}).is_ok());
  ASSERT_TRUE(s.apply(RemoveBroker{BrokerId(4)}).is_ok());
  ASSERT_TRUE(s.apply(RemoveBroker{BrokerId(1)}).is_ok());
  Buffer image = s.encode_snapshot();
  EXPECT_EQ(image.data()[0], 5);
  auto back = ControllerState::decode_snapshot(image.view());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(*back, s);
  ASSERT_EQ(back->removed().size(), 2u);
  EXPECT_EQ(back->find_removed(BrokerId(4))->incarnation, 0xabcdefull);
  EXPECT_EQ(back->find_removed(BrokerId(1))->rpc_port, 7071);
  for (std::size_t n = 0; n < image.size(); ++n) {
    EXPECT_FALSE(ControllerState::decode_snapshot(image.view().first(n)).has_value()) << n;
  }
  Buffer trailing;
  trailing.append(image.data(), image.size());
  le::put_u8(trailing, 0);
  EXPECT_FALSE(ControllerState::decode_snapshot(trailing.view()).has_value());

  // A version-3 image is a version-5 one without the removed-brokers and voter-choices
  // sections (each a tag u8 and an empty count u32 for a state without any); version 4 has
  // the first of them.
  ControllerState old = with_brokers(2);
  ASSERT_TRUE(old.apply(JoinBroker{joined_broker(3, 5)}).is_ok());
  ASSERT_TRUE(old.apply(AllocateProducerIds{BrokerId(3), 1, 10}).is_ok());
  Buffer current = old.encode_snapshot();
  for (std::uint8_t version : {3, 4}) {
    Buffer older;
    older.append(current.data(), current.size() - (version == 3 ? 10 : 5));
    older.data()[0] = version;
    auto decoded = ControllerState::decode_snapshot(older.view());
    ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
    EXPECT_EQ(*decoded, old) << int(version);
    EXPECT_TRUE(decoded->removed().empty());
    EXPECT_TRUE(decoded->voter_choices().empty());
  }
  // Version 6 is unknown.
  Buffer v6;
  v6.append(current.data(), current.size());
  v6.data()[0] = 6;
  EXPECT_EQ(ControllerState::decode_snapshot(v6.view()).error().code(), ErrorCode::kCorruption);
}

// `raftmq controller voters add|remove|auto N` records the operator's choice (docs/cluster.md
// "Controller voters"): a registered broker only; kAuto forgets it; removal and a new data
// directory under the id forget it; the snapshot keeps it; the command codec refuses a bad
// choice byte and truncation.
TEST(ClusterVoterChoice, RecordedForgottenAndKeptInTheSnapshot) {
  ControllerState s = with_brokers(3);
  ASSERT_TRUE(s.apply(JoinBroker{joined_broker(4, 44)}).is_ok());
  EXPECT_EQ(s.voter_choice(BrokerId(1)), VoterChoice::kAuto);
  Status unknown = s.apply(SetVoterChoice{BrokerId(9), VoterChoice::kLearner});
  EXPECT_EQ(unknown.code(), ErrorCode::kNotFound);
  EXPECT_NE(unknown.message().find("not registered"), std::string::npos);
  ASSERT_TRUE(s.apply(SetVoterChoice{BrokerId(1), VoterChoice::kLearner}).is_ok());
  ASSERT_TRUE(s.apply(SetVoterChoice{BrokerId(4), VoterChoice::kVoter}).is_ok());
  ASSERT_TRUE(s.apply(SetVoterChoice{BrokerId(2), VoterChoice::kVoter}).is_ok());
  EXPECT_EQ(s.voter_choice(BrokerId(1)), VoterChoice::kLearner);
  EXPECT_EQ(s.voter_choice(BrokerId(4)), VoterChoice::kVoter);
  ASSERT_TRUE(s.apply(SetVoterChoice{BrokerId(2), VoterChoice::kAuto}).is_ok());
  EXPECT_EQ(s.voter_choices().count(BrokerId(2)), 0u);

  Buffer image = s.encode_snapshot();
  auto back = ControllerState::decode_snapshot(image.view());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->voter_choice(BrokerId(1)), VoterChoice::kLearner);
  for (std::size_t n = 0; n < image.size(); ++n) {
    EXPECT_FALSE(ControllerState::decode_snapshot(image.view().first(n)).has_value()) << n;
  }
  Buffer bad_choice;
  bad_choice.append(image.data(), image.size());
  bad_choice.data()[bad_choice.size() - 1] = 0;  // kAuto is never stored
  EXPECT_FALSE(ControllerState::decode_snapshot(bad_choice.view()).has_value());

  // A new data directory under id 4 is a new broker: no choice made for it.
  ASSERT_TRUE(s.apply(JoinBroker{joined_broker(4, 45)}).is_ok());
  EXPECT_EQ(s.voter_choice(BrokerId(4)), VoterChoice::kAuto);
  ASSERT_TRUE(s.apply(RemoveBroker{BrokerId(1)}).is_ok());
  EXPECT_TRUE(s.voter_choices().empty());
  Status removed = s.apply(SetVoterChoice{BrokerId(1), VoterChoice::kVoter});
  EXPECT_EQ(removed.code(), ErrorCode::kNotFound);
  EXPECT_NE(removed.message().find("was removed"), std::string::npos);

  // The command codec.
  Command command = SetVoterChoice{BrokerId(7), VoterChoice::kLearner};
  Buffer bytes = encode_command(command);
  auto decoded = decode_command(bytes.view());
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, command);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_command(bytes.view().first(n)).has_value()) << n;
  }
  Buffer bad = encode_command(command);
  bad.data()[bad.size() - 1] = 3;  // no such choice
  EXPECT_EQ(decode_command(bad.view()).error().code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace mq::cluster
