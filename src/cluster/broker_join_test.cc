// Dynamic broker addition, the pure parts: the join request/answer codec, join.state,
// --join parsing, and the controller's JoinBroker rules and snapshot (docs/cluster.md
// "Adding a broker", docs/formats/join_state_format.md).
#include <gtest/gtest.h>

#include <filesystem>

#include "base/le_codec.h"
#include "cluster/broker_join.h"
#include "cluster/controller_state.h"
#include "cluster/test_cluster.h"
#include "storage/file_system.h"

namespace mq::cluster {
namespace {

BrokerRecord joined(std::int32_t id, std::uint64_t incarnation, std::uint16_t rpc_port = 7004) {
  BrokerRecord b;
  b.id = BrokerId(id);
  b.host = "10.0.0.4";
  b.kafka_port = 9004;
  b.rpc_host = "10.0.0.4";
  b.rpc_port = rpc_port;
  b.rack = "r2";
  b.incarnation = incarnation;
  return b;
}

BrokerRecord static_broker(std::int32_t id) {
  BrokerRecord b = joined(id, 0, static_cast<std::uint16_t>(7000 + id));
  b.rack.clear();
  return b;
}

TEST(JoinCodec, RequestRoundTripsAndRefusesDamage) {
  JoinRequest q;
  q.request_id = 0x1122334455667788ull;
  q.hops = 1;
  q.broker = joined(4, 99);
  Buffer bytes = encode_join_request(q);
  auto back = decode_join_request(bytes.view());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(*back, q);
  // Every truncation is refused, never a crash.
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_join_request(bytes.view().first(n)).has_value()) << n;
  }
  Buffer longer;
  longer.append(bytes.data(), bytes.size());
  le::put_u8(longer, 0);
  EXPECT_FALSE(decode_join_request(longer.view()).has_value());
  Buffer newer;
  newer.append(bytes.data(), bytes.size());
  newer.data()[0] = 2;  // unknown version
  EXPECT_FALSE(decode_join_request(newer.view()).has_value());
  q.broker.incarnation = 0;  // a join must name its data directory
  EXPECT_FALSE(decode_join_request(encode_join_request(q).view()).has_value());
}

TEST(JoinCodec, AnswerCarriesStatusAndVoters) {
  JoinAnswer a;
  a.request_id = 7;
  a.status = Status::ok();
  a.voters = {JoinVoter{BrokerId(1), "h1", 7001, 9001}, JoinVoter{BrokerId(2), "h2", 7002, 9002}};
  Buffer bytes = encode_join_answer(a);
  auto back = decode_join_answer(bytes.view());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->request_id, 7u);
  EXPECT_TRUE(back->status.is_ok());
  EXPECT_EQ(back->voters, a.voters);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_join_answer(bytes.view().first(n)).has_value()) << n;
  }
  JoinAnswer refused;
  refused.request_id = 8;
  refused.status = Status::already_exists("broker id 2 is in use");
  auto r = decode_join_answer(encode_join_answer(refused).view());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status.code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(r->status.message(), "broker id 2 is in use");
  EXPECT_TRUE(r->voters.empty());
  // A voter count larger than the bytes can hold is refused before allocating.
  Buffer huge;
  le::put_u8(huge, 1);
  le::put_u64(huge, 1);
  le::put_u8(huge, 0);
  le::put_u16(huge, 0);
  le::put_u32(huge, 1000);
  EXPECT_FALSE(decode_join_answer(huge.view()).has_value());
}

TEST(JoinState, SavedAtomicallyAndChecked) {
  std::string dir = testing::make_temp_dir("raftmq-join-state-");
  storage::FileSystem* fs = storage::posix_file_system();
  auto missing = load_join_state(fs, dir);
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->has_value());
  JoinState s;
  s.broker = BrokerId(4);
  s.incarnation = 12345;
  ASSERT_TRUE(save_join_state(fs, dir, s).is_ok());
  auto loaded = load_join_state(fs, dir);
  ASSERT_TRUE(loaded.has_value() && loaded->has_value());
  EXPECT_EQ(**loaded, s);
  s.voters = {JoinVoter{BrokerId(1), "127.0.0.1", 7001, 9001}};
  ASSERT_TRUE(save_join_state(fs, dir, s).is_ok());
  loaded = load_join_state(fs, dir);
  ASSERT_TRUE(loaded.has_value() && loaded->has_value());
  EXPECT_EQ(**loaded, s);
  // A flipped bit is caught by the CRC and named.
  Buffer bytes = encode_join_state(s);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    Buffer bad;
    bad.append(bytes.data(), bytes.size());
    bad.data()[i] ^= 0x10;
    EXPECT_FALSE(decode_join_state(bad.view()).has_value()) << i;
  }
  {
    auto file = fs->open(dir + "/join.state", storage::OpenOptions{});
    ASSERT_TRUE(file.has_value());
    std::uint8_t junk = 0xff;
    ASSERT_TRUE((*file)->write_at(3, BufferView(&junk, 1)).is_ok());
  }
  auto corrupt = load_join_state(fs, dir);
  ASSERT_FALSE(corrupt.has_value());
  EXPECT_EQ(corrupt.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(corrupt.error().message().find("join.state"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(JoinSeeds, ParsedOrRefusedClearly) {
  auto seeds = parse_join_seeds("127.0.0.1:7001,broker2.example:7002");
  ASSERT_TRUE(seeds.has_value());
  ASSERT_EQ(seeds->size(), 2u);
  EXPECT_EQ((*seeds)[1], (JoinSeed{"broker2.example", 7002}));
  for (const char* bad : {"", "127.0.0.1", ":7001", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:70x", "1@127.0.0.1:7001", "127.0.0.1:7001,"}) {
    auto r = parse_join_seeds(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(JoinBrokerCommand, EncodesAndAppliesTheRules) {
  ControllerState s;
  ASSERT_TRUE(s.apply(RegisterBroker{static_broker(1)}).is_ok());
  ASSERT_TRUE(s.apply(RegisterBroker{static_broker(2)}).is_ok());
  Command join = JoinBroker{joined(4, 99)};
  auto decoded = decode_command(encode_command(join).view());
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, join);
  ASSERT_TRUE(s.apply(join).is_ok());
  EXPECT_EQ(s.brokers().at(BrokerId(4)).incarnation, 99u);
  EXPECT_EQ(s.brokers().at(BrokerId(4)).rack, "r2");

  // A static broker's id cannot be taken.
  Status taken = s.apply(JoinBroker{joined(2, 5)});
  EXPECT_EQ(taken.code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.brokers().at(BrokerId(2)), static_broker(2));
  // No incarnation: refused.
  EXPECT_FALSE(s.apply(JoinBroker{joined(5, 0)}).is_ok());
  // The same data directory at a new address: updated.
  ASSERT_TRUE(s.apply(JoinBroker{joined(4, 99, 7777)}).is_ok());
  EXPECT_EQ(s.brokers().at(BrokerId(4)).rpc_port, 7777);

  // Give broker 4 a replica: another data directory under its id is refused from then on.
  CreateTopic t;
  t.name = "t";
  t.first_group = s.next_group();
  t.assignment = {{BrokerId(1), BrokerId(4)}};
  ASSERT_TRUE(s.apply(t).is_ok());
  EXPECT_EQ(s.replica_count(BrokerId(4)), 1u);
  Status replaced = s.apply(JoinBroker{joined(4, 100)});
  EXPECT_EQ(replaced.code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(replaced.message().find("holds 1 partition replica"), std::string::npos);
  EXPECT_EQ(s.brokers().at(BrokerId(4)).incarnation, 99u);
  // Once drained (moved off), a new directory may take the id.
  ASSERT_TRUE(s.apply(MovePartition{"t", 0, {BrokerId(1), BrokerId(2)}}).is_ok());
  ASSERT_TRUE(s.apply(JoinBroker{joined(4, 100)}).is_ok());
  EXPECT_EQ(s.brokers().at(BrokerId(4)).incarnation, 100u);
}

TEST(JoinBrokerCommand, SnapshotKeepsIncarnations) {
  ControllerState s;
  ASSERT_TRUE(s.apply(RegisterBroker{static_broker(1)}).is_ok());
  ASSERT_TRUE(s.apply(JoinBroker{joined(4, 0xfeedull)}).is_ok());
  Buffer image = s.encode_snapshot();
  EXPECT_EQ(image.data()[0], 5);  // snapshot version 5: + voter choices (4: removed brokers, 3: incarnations)
  auto back = ControllerState::decode_snapshot(image.view());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->brokers().at(BrokerId(4)).incarnation, 0xfeedull);
  for (std::size_t n = 0; n < image.size(); ++n) {
    EXPECT_FALSE(ControllerState::decode_snapshot(image.view().first(n)).has_value()) << n;
  }
}

TEST(JoinBrokerCommand, VersionTwoSnapshotIsStillRead) {
  // A version-2 image (before incarnations): one static broker, no topics, no producer ids.
  Buffer v2;
  le::put_u8(v2, 2);
  le::put_u64(v2, 1);   // next_group
  le::put_u32(v2, 0);   // assignment_start
  le::put_u64(v2, 1);   // applied_commands
  le::put_u32(v2, 1);   // brokers
  le::put_u32(v2, 1);   // id
  le::put_u16(v2, 1);
  v2.append("h", 1);
  le::put_u16(v2, 9001);
  le::put_u16(v2, 1);
  v2.append("h", 1);
  le::put_u16(v2, 7001);
  le::put_u16(v2, 0);   // rack
  le::put_u32(v2, 0);   // topics
  le::put_u8(v2, 1);    // producer ids section
  le::put_i64(v2, 0);
  le::put_u32(v2, 0);
  auto s = ControllerState::decode_snapshot(v2.view());
  ASSERT_TRUE(s.has_value()) << s.error().to_string();
  ASSERT_EQ(s->brokers().size(), 1u);
  EXPECT_EQ(s->brokers().at(BrokerId(1)).incarnation, 0u);
  EXPECT_EQ(s->brokers().at(BrokerId(1)).rpc_port, 7001);
}


TEST(JoinCodec, RemovedNoticeRoundTripsAndRefusesDamage) {
  RemovedNotice notice{BrokerId(7), 0x1122334455667788ull};
  Buffer bytes = encode_removed_notice(notice);
  auto back = decode_removed_notice(bytes.view());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(*back, notice);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(decode_removed_notice(bytes.view().first(n)).error().code(), ErrorCode::kCorruption)
        << n;
  }
  Buffer trailing;
  trailing.append(bytes.data(), bytes.size());
  le::put_u8(trailing, 0);
  EXPECT_EQ(decode_removed_notice(trailing.view()).error().code(), ErrorCode::kCorruption);
  Buffer version;
  version.append(bytes.data(), bytes.size());
  version.data()[0] = 2;
  EXPECT_EQ(decode_removed_notice(version.view()).error().code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace mq::cluster
