// Unit tests of the group coordinator: the classic protocol's state machine driven by a fake
// clock, persisted to and reloaded from a fake __consumer_offsets partition
// (kafka/testing/fake_cluster.h: an in-memory ClusterApi).
#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include "groups/coordinator.h"
#include "groups/records.h"
#include "kafka/testing/fake_cluster.h"
#include "protocol/gen/error_codes.h"
#include "protocol/record_batch.h"

namespace mq::groups {
namespace {

using KErr = protocol::ErrorCode;
constexpr std::int16_t E(KErr e) { return static_cast<std::int16_t>(e); }
constexpr std::int32_t kSession = 10000;

TEST(Records, JavaHashCodeAndPartitionMatchKafka) {
  // Values of Java's String.hashCode.
  EXPECT_EQ(java_string_hash("abc"), 96354);
  EXPECT_EQ(java_string_hash(""), 0);
  EXPECT_EQ(java_string_hash("\xc3\xa9"), 233);                // U+00E9
  EXPECT_EQ(java_string_hash("\xf0\x9f\x98\x80"), 1772899);     // U+1F600, a surrogate pair
  EXPECT_EQ(java_string_hash("my-group"), -1906497762);
  EXPECT_EQ(partition_for_group("my-group", 50), 36);
  EXPECT_EQ(partition_for_group("my-group", 16), 14);
  EXPECT_EQ(partition_for_group("console-consumer-12345", 50), 6);
}

TEST(Records, RoundTripInKafkaFormat) {
  Buffer key = encode_offset_key("g", "t", 3);
  // int16 version 1, then group, topic (int16-length strings), partition.
  ASSERT_GE(key.size(), 2u);
  EXPECT_EQ(key[0], 0);
  EXPECT_EQ(key[1], 1);
  protocol::OffsetCommitValue v;
  v.offset = 42;
  v.leader_epoch = 7;
  v.metadata = "m";
  v.commit_timestamp = 1000;
  Buffer value = encode_offset_value(v);
  EXPECT_EQ(value[1], 3);
  auto r = decode_record(BufferView(key), BufferView(value));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  const auto& o = std::get<OffsetRecord>(*r);
  EXPECT_EQ(o.key.group, "g");
  EXPECT_EQ(o.key.topic, "t");
  EXPECT_EQ(o.key.partition, 3);
  ASSERT_TRUE(o.value.has_value());
  EXPECT_EQ(o.value->offset, 42);
  EXPECT_EQ(o.value->leader_epoch, 7);
  auto tomb = decode_record(BufferView(encode_group_key("g")), std::nullopt);
  ASSERT_TRUE(tomb.has_value());
  EXPECT_FALSE(std::get<GroupRecord>(*tomb).value.has_value());
  Buffer junk(std::string_view("\x00\x09xyz", 5));
  EXPECT_FALSE(decode_record(BufferView(junk), std::nullopt).has_value());
}

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() : cluster_(io_) {
    EXPECT_TRUE(cluster_.add_topic(std::string(kOffsetsTopic), 4).is_ok());
    EXPECT_TRUE(cluster_.add_topic("t", 6).is_ok());
    coordinator_ = make();
  }

  std::unique_ptr<Coordinator> make() {
    CoordinatorConfig config;
    config.member_metadata_bytes_max = 1024;
    return std::make_unique<Coordinator>(cluster_, io_, config, [this] { return now_; });
  }

  void pump() {
    for (int i = 0; i < 100; ++i) {
      io_.restart();
      if (io_.poll() == 0) break;
    }
  }
  // Loads the partitions (the first request of each group would also trigger it).
  void load(Coordinator& c) {
    c.tick();
    pump();
  }
  void advance(std::int64_t ms) {
    now_ += ms;
    coordinator_->tick();
    pump();
  }

  JoinArgs join_args(const std::string& group, const std::string& member,
                     std::string metadata = "sub") {
    JoinArgs a;
    a.group_id = group;
    a.member_id = member;
    a.client_id = "client";
    a.session_timeout_ms = kSession;
    a.rebalance_timeout_ms = 20000;
    a.protocol_type = "consumer";
    a.protocols.push_back(Protocol{"range", Buffer(std::string_view(metadata))});
    a.require_known_member_id = true;
    return a;
  }

  // Sends a join; returns the result if answered at once (after pumping), else nullopt and
  // keeps the slot to read later.
  std::shared_ptr<std::optional<JoinResult>> join(JoinArgs a, Coordinator* c = nullptr) {
    auto slot = std::make_shared<std::optional<JoinResult>>();
    (c ? c : coordinator_.get())->join(std::move(a), [slot](JoinResult r) { *slot = std::move(r); });
    pump();
    return slot;
  }
  std::shared_ptr<std::optional<SyncResult>> sync(const std::string& group, std::int32_t gen,
                                                  const std::string& member,
                                                  std::vector<std::pair<std::string, Buffer>> a = {}) {
    auto slot = std::make_shared<std::optional<SyncResult>>();
    SyncArgs s;
    s.group_id = group;
    s.generation = gen;
    s.member_id = member;
    s.assignments = std::move(a);
    coordinator_->sync(std::move(s), [slot](SyncResult r) { *slot = std::move(r); });
    pump();
    return slot;
  }
  // A member joins a group alone (MEMBER_ID_REQUIRED round trip) and syncs: returns its id.
  std::string join_alone(const std::string& group, std::int32_t* generation) {
    auto first = join(join_args(group, ""));
    EXPECT_TRUE(first->has_value());
    EXPECT_EQ((*first)->error, E(KErr::kMemberIdRequired));
    std::string id = (*first)->member_id;
    auto second = join(join_args(group, id));
    EXPECT_TRUE(second->has_value());
    EXPECT_EQ((*second)->error, 0);
    EXPECT_EQ((*second)->leader, id);
    *generation = (*second)->generation;
    std::vector<std::pair<std::string, Buffer>> a;
    a.emplace_back(id, Buffer(std::string_view("assign-0")));
    auto s = sync(group, *generation, id, std::move(a));
    EXPECT_TRUE(s->has_value());
    EXPECT_EQ((*s)->error, 0);
    return id;
  }
  std::vector<std::int16_t> commit(const std::string& group, std::int32_t gen,
                                   const std::string& member, std::int64_t offset,
                                   std::string metadata = "") {
    CommitArgs c;
    c.group_id = group;
    c.generation = gen;
    c.member_id = member;
    c.partitions.push_back(CommitPartition{"t", 0, offset, -1, std::move(metadata), 0});
    c.partitions.push_back(CommitPartition{"nope", 0, offset, -1, "", 0});
    auto slot = std::make_shared<std::vector<std::int16_t>>();
    coordinator_->commit_offsets(std::move(c), [slot](CommitArgs done) {
      for (const auto& p : done.partitions) slot->push_back(p.error);
    });
    pump();
    return *slot;
  }
  std::int64_t committed(Coordinator& c, const std::string& group, std::int32_t partition) {
    std::vector<std::pair<std::string, std::vector<std::int32_t>>> topics{{"t", {partition}}};
    OffsetsResult r = c.fetch_offsets(group, topics);
    EXPECT_EQ(r.error, 0);
    return r.offsets.empty() ? -2 : r.offsets[0].offset;
  }

  asio::io_context io_;
  kafka::testing::FakeCluster cluster_;
  std::int64_t now_ = 1'000'000;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorTest, AnswersLoadInProgressUntilLoadedThenServes) {
  EXPECT_EQ(coordinator_->heartbeat("g", 1, "m", std::nullopt),
            E(KErr::kCoordinatorLoadInProgress));
  pump();
  EXPECT_EQ(coordinator_->heartbeat("g", 1, "m", std::nullopt), E(KErr::kUnknownMemberId));
}

TEST_F(CoordinatorTest, JoinSyncHeartbeatOfOneMember) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  EXPECT_EQ(gen, 1);
  EXPECT_EQ(coordinator_->find_group("g")->state, GroupState::kStable);
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), 0);
  EXPECT_EQ(coordinator_->heartbeat("g", gen + 1, id, std::nullopt), E(KErr::kIllegalGeneration));
  EXPECT_EQ(coordinator_->heartbeat("g", gen, "stranger", std::nullopt), E(KErr::kUnknownMemberId));
  auto again = sync("g", gen, id);
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->assignment, Buffer(std::string_view("assign-0")));
}

TEST_F(CoordinatorTest, SecondMemberTriggersRebalanceAndBothGetTheNewGeneration) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string a = join_alone("g", &gen);
  auto b_first = join(join_args("g", ""));
  std::string b = (*b_first)->member_id;
  auto b_join = join(join_args("g", b));
  EXPECT_FALSE(b_join->has_value());  // waits for a to rejoin
  EXPECT_EQ(coordinator_->heartbeat("g", gen, a, std::nullopt), E(KErr::kRebalanceInProgress));
  auto a_join = join(join_args("g", a));
  ASSERT_TRUE(a_join->has_value() && b_join->has_value());
  EXPECT_EQ((*a_join)->generation, gen + 1);
  EXPECT_EQ((*b_join)->generation, gen + 1);
  EXPECT_EQ((*a_join)->leader, a);  // the leader stays leader when it rejoins
  EXPECT_EQ((*a_join)->members.size(), 2u);
  EXPECT_TRUE((*b_join)->members.empty());
  auto b_sync = sync("g", gen + 1, b);
  EXPECT_FALSE(b_sync->has_value());  // parked until the leader's assignment
  std::vector<std::pair<std::string, Buffer>> assignment;
  assignment.emplace_back(a, Buffer(std::string_view("A")));
  assignment.emplace_back(b, Buffer(std::string_view("B")));
  auto a_sync = sync("g", gen + 1, a, std::move(assignment));
  ASSERT_TRUE(a_sync->has_value() && b_sync->has_value());
  EXPECT_EQ((*a_sync)->assignment, Buffer(std::string_view("A")));
  EXPECT_EQ((*b_sync)->assignment, Buffer(std::string_view("B")));
  EXPECT_EQ(coordinator_->find_group("g")->state, GroupState::kStable);
}

TEST_F(CoordinatorTest, MemberThatNeverHeartbeatsIsRemovedAfterItsSessionTimeout) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  advance(kSession - 1);
  EXPECT_EQ(coordinator_->find_group("g")->members.size(), 1u);
  advance(2);
  EXPECT_EQ(coordinator_->find_group("g")->state, GroupState::kEmpty);
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), E(KErr::kUnknownMemberId));
}

TEST_F(CoordinatorTest, MemberThatDoesNotRejoinIsDroppedAtTheRebalanceTimeout) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string a = join_alone("g", &gen);
  auto b_first = join(join_args("g", ""));
  auto b_join = join(join_args("g", (*b_first)->member_id));
  EXPECT_FALSE(b_join->has_value());
  // a keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
  for (int i = 0; i < 4; ++i) {
    advance(4000);
    EXPECT_EQ(coordinator_->heartbeat("g", gen, a, std::nullopt), E(KErr::kRebalanceInProgress));
  }
  advance(5000);  // 21 s > rebalance timeout 20 s
  ASSERT_TRUE(b_join->has_value());
  EXPECT_EQ((*b_join)->error, 0);
  EXPECT_EQ((*b_join)->leader, (*b_first)->member_id);
  EXPECT_EQ(coordinator_->heartbeat("g", gen, a, std::nullopt), E(KErr::kUnknownMemberId));
}

TEST_F(CoordinatorTest, InconsistentProtocolAndOversizedMetadataAreRefusedWithoutHarm) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string a = join_alone("g", &gen);
  JoinArgs other = join_args("g", "");
  other.protocols[0].name = "roundrobin";
  auto r = join(other);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->error, E(KErr::kInconsistentGroupProtocol));
  auto big = join(join_args("g", "", std::string(2000, 'x')));
  ASSERT_TRUE(big->has_value());
  EXPECT_EQ((*big)->error, E(KErr::kInvalidRequest));
  EXPECT_EQ(coordinator_->find_group("g")->state, GroupState::kStable);
  EXPECT_EQ(coordinator_->heartbeat("g", gen, a, std::nullopt), 0);
  JoinArgs bad_session = join_args("g", "");
  bad_session.session_timeout_ms = 10;
  EXPECT_EQ((*join(bad_session))->error, E(KErr::kInvalidSessionTimeout));
}

TEST_F(CoordinatorTest, CommitChecksGenerationMemberAndGroup) {
  load(*coordinator_);
  // Unknown group with a generation: ILLEGAL_GENERATION; simple commits are allowed.
  EXPECT_EQ(commit("nobody", 3, "m", 5)[0], E(KErr::kIllegalGeneration));
  auto simple = commit("simple", -1, "", 5);
  EXPECT_EQ(simple[0], 0);
  EXPECT_EQ(simple[1], E(KErr::kUnknownTopicOrPartition));
  EXPECT_EQ(committed(*coordinator_, "simple", 0), 5);
  EXPECT_EQ(committed(*coordinator_, "simple", 1), -1);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  EXPECT_EQ(commit("g", gen, "stranger", 7)[0], E(KErr::kUnknownMemberId));
  EXPECT_EQ(commit("g", gen + 5, id, 7)[0], E(KErr::kIllegalGeneration));
  EXPECT_EQ(commit("g", -1, "", 7)[0], E(KErr::kUnknownMemberId));  // group has members
  EXPECT_EQ(commit("g", gen, id, 7, std::string(5000, 'm'))[0], E(KErr::kOffsetMetadataTooLarge));
  EXPECT_EQ(committed(*coordinator_, "g", 0), -1);
  EXPECT_EQ(commit("g", gen, id, 7)[0], 0);
  EXPECT_EQ(committed(*coordinator_, "g", 0), 7);
}

TEST_F(CoordinatorTest, NewCoordinatorRebuildsGroupsAndOffsetsFromTheLog) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  ASSERT_EQ(commit("g", gen, id, 11)[0], 0);
  ASSERT_EQ(commit("g", gen, id, 12)[0], 0);
  ASSERT_EQ(commit("s", -1, "", 3)[0], 0);
  // The old coordinator goes away (crash); another one loads the same partitions.
  coordinator_.reset();
  coordinator_ = make();
  load(*coordinator_);
  EXPECT_EQ(committed(*coordinator_, "g", 0), 12);
  EXPECT_EQ(committed(*coordinator_, "s", 0), 3);
  const Group* g = coordinator_->find_group("g");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->state, GroupState::kStable);
  EXPECT_EQ(g->generation, gen);
  EXPECT_EQ(g->leader, id);
  // The member carries on with its generation, without a rebalance.
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), 0);
  auto s = sync("g", gen, id);
  ASSERT_TRUE(s->has_value());
  EXPECT_EQ((*s)->assignment, Buffer(std::string_view("assign-0")));
}

// A coordinator that takes over answers COORDINATOR_LOAD_IN_PROGRESS until its replay of the
// partition reaches the high watermark it started from: no request sees a partial state (an
// older committed offset, a group without its members). The replay reads one batch per step here.
TEST_F(CoordinatorTest, LoadingCoordinatorNeverAnswersWithPartialState) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  for (std::int64_t offset = 1; offset <= 20; ++offset) {
    ASSERT_EQ(commit("g", gen, id, offset)[0], 0);
  }
  coordinator_.reset();  // the old coordinator crashes
  CoordinatorConfig config;
  config.load_chunk_bytes = 1;  // at least one whole batch per step: 20+ steps
  coordinator_ = std::make_unique<Coordinator>(cluster_, io_, config, [this] { return now_; });
  const std::vector<std::pair<std::string, std::vector<std::int32_t>>> topics{{"t", {0}}};
  // The first request starts the replay; every group request is refused until it ends.
  EXPECT_EQ(coordinator_->fetch_offsets("g", topics).error, E(KErr::kCoordinatorLoadInProgress));
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt),
            E(KErr::kCoordinatorLoadInProgress));
  EXPECT_EQ(coordinator_->find_group("g"), nullptr);  // nothing partial is exposed either
  // A commit sent meanwhile is refused (retriable), not applied and then overwritten by the
  // replay; commit() pumps the loop, so the replay completes here.
  EXPECT_EQ(commit("g", gen, id, 99)[0], E(KErr::kCoordinatorLoadInProgress));
  OffsetsResult r = coordinator_->fetch_offsets("g", topics);
  ASSERT_EQ(r.error, 0);
  ASSERT_EQ(r.offsets.size(), 1u);
  EXPECT_EQ(r.offsets[0].offset, 20);
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), 0);
  const Group* g = coordinator_->find_group("g");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->state, GroupState::kStable);
  EXPECT_EQ(g->generation, gen);
  EXPECT_EQ(g->members.count(id), 1u);
}

// Step by step: the replay's intermediate states are never visible (every request is refused
// until the last step), and a replay slower than a session timeout expires no member.
TEST_F(CoordinatorTest, SlowReplayIsRefusedAtEveryStepAndExpiresNobody) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  for (std::int64_t offset = 1; offset <= 20; ++offset) {
    ASSERT_EQ(commit("g", gen, id, offset)[0], 0);
  }
  coordinator_.reset();
  const std::size_t batches =
      cluster_.partition(std::string(kOffsetsTopic), partition_for_group("g", 4))->batch_count();
  CoordinatorConfig config;
  config.load_chunk_bytes = 1;
  coordinator_ = std::make_unique<Coordinator>(cluster_, io_, config, [this] { return now_; });
  const std::vector<std::pair<std::string, std::vector<std::int32_t>>> topics{{"t", {0}}};
  int steps = 0;
  for (;;) {
    OffsetsResult r = coordinator_->fetch_offsets("g", topics);  // the first call starts the load
    if (r.error == 0) {
      ASSERT_EQ(r.offsets.size(), 1u);
      EXPECT_EQ(r.offsets[0].offset, 20);
      break;
    }
    ASSERT_EQ(r.error, E(KErr::kCoordinatorLoadInProgress));
    // A slow replay: 1 s per step, far beyond the member's session timeout in all. The member
    // cannot heartbeat meanwhile, so it must not expire, and nothing may be written.
    now_ += 1000;
    coordinator_->tick();
    io_.restart();
    ASSERT_EQ(io_.run_one(), 1u) << "the load stalled after " << steps << " steps";
    ASSERT_LT(++steps, 1000);
  }
  EXPECT_GE(steps, 20);  // one batch per step: it really was replayed piecewise
  EXPECT_EQ(
      cluster_.partition(std::string(kOffsetsTopic), partition_for_group("g", 4))->batch_count(),
      batches);
  // Its session starts with the load's end: a heartbeat within it keeps the member.
  advance(kSession - 1000);
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), 0);
  EXPECT_EQ(coordinator_->find_group("g")->state, GroupState::kStable);
}

TEST_F(CoordinatorTest, LosingLeadershipDropsGroupsAndRegainingReloads) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  ASSERT_EQ(commit("g", gen, id, 9)[0], 0);
  std::int32_t p = partition_for_group("g", 4);
  cluster_.partition(std::string(kOffsetsTopic), p)->leader = false;
  cluster_.partition(std::string(kOffsetsTopic), p)->leader_id = 2;  // another broker leads
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), E(KErr::kNotCoordinator));
  EXPECT_EQ(coordinator_->find_group("g"), nullptr);
  cluster_.partition(std::string(kOffsetsTopic), p)->leader = true;
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), E(KErr::kCoordinatorLoadInProgress));
  pump();
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), 0);
  EXPECT_EQ(committed(*coordinator_, "g", 0), 9);
}

// FindCoordinator names real leaders only: a replica named while its election runs could lose
// it and answer NOT_COORDINATOR, which librdkafka's committed() does not retry.
TEST(CoordinatorLocate, IgnoresAnExpectedElectionWinner) {
  cluster::MetadataSnapshot md;
  md.brokers.push_back({BrokerId(1), "127.0.0.1", 9092, std::nullopt, true});
  cluster::TopicInfo topic;
  topic.name = std::string(kOffsetsTopic);
  topic.internal = true;
  cluster::PartitionInfo part;
  part.partition = 0;
  part.leader = BrokerId(1);
  topic.partitions.push_back(part);
  md.topics.push_back(topic);
  CoordinatorLocation found = Coordinator::locate(md, "g");
  EXPECT_EQ(found.error, 0);
  EXPECT_EQ(found.node_id, 1);
  EXPECT_EQ(found.port, 9092);
  md.topics[0].partitions[0].leader_expected = true;
  EXPECT_EQ(Coordinator::locate(md, "g").error, E(KErr::kCoordinatorNotAvailable));
}

// Metadata may name this broker as the expected winner of an election before it has won: the
// group's requests get the retriable LOAD_IN_PROGRESS there, not NOT_COORDINATOR (which would
// send clients back to a FindCoordinator that names this broker again).
TEST_F(CoordinatorTest, NamedButNotYetLeaderAnswersLoadInProgress) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  ASSERT_EQ(commit("g", gen, id, 5)[0], 0);
  std::int32_t p = partition_for_group("g", 4);
  auto* partition = cluster_.partition(std::string(kOffsetsTopic), p);
  partition->leader = false;
  partition->leader_id = 1;  // metadata still names this broker (1)
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt),
            E(KErr::kCoordinatorLoadInProgress));
  partition->leader_id = 2;  // another broker won
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt), E(KErr::kNotCoordinator));
  partition->leader = true;  // this broker won after all: it reloads
  EXPECT_EQ(coordinator_->heartbeat("g", gen, id, std::nullopt),
            E(KErr::kCoordinatorLoadInProgress));
  pump();
  EXPECT_EQ(committed(*coordinator_, "g", 0), 5);
}

TEST_F(CoordinatorTest, StaticMemberRejoinsWithoutRebalanceAndFencesItsOldId) {
  load(*coordinator_);
  JoinArgs a = join_args("g", "");
  a.instance_id = "inst-1";
  auto joined = join(a);  // static members need no MEMBER_ID_REQUIRED round trip
  ASSERT_TRUE(joined->has_value());
  ASSERT_EQ((*joined)->error, 0);
  std::string old_id = (*joined)->member_id;
  std::int32_t gen = (*joined)->generation;
  JoinArgs b = join_args("g", "");
  b.instance_id = "inst-2";
  auto b_join = join(b);
  EXPECT_FALSE(b_join->has_value());
  JoinArgs a2 = join_args("g", old_id);
  a2.instance_id = "inst-1";
  auto a_join = join(a2);
  ASSERT_TRUE(a_join->has_value() && b_join->has_value());
  gen = (*a_join)->generation;
  std::string leader = (*a_join)->leader;
  std::string follower = leader == old_id ? (*b_join)->member_id : old_id;
  std::vector<std::pair<std::string, Buffer>> assignment;
  assignment.emplace_back(old_id, Buffer(std::string_view("A")));
  assignment.emplace_back((*b_join)->member_id, Buffer(std::string_view("B")));
  auto fs = sync("g", gen, follower);
  auto ls = sync("g", gen, leader, std::move(assignment));
  ASSERT_TRUE(fs->has_value() && ls->has_value());
  // The follower restarts: same instance id, no member id, same metadata.
  JoinArgs again = join_args("g", "");
  bool follower_is_a = follower == old_id;
  again.instance_id = follower_is_a ? "inst-1" : "inst-2";
  const Group* before = coordinator_->find_group("g");
  ASSERT_EQ(before->state, GroupState::kStable);
  ASSERT_EQ(before->static_members.count(*again.instance_id), 1u);
  ASSERT_EQ(before->leader, leader);
  auto rejoin = join(again);
  ASSERT_TRUE(rejoin->has_value()) << "members " << coordinator_->find_group("g")->members.size()
                                   << " state " << state_name(coordinator_->find_group("g")->state);
  EXPECT_EQ((*rejoin)->error, 0);
  EXPECT_EQ((*rejoin)->generation, gen);  // no rebalance
  EXPECT_NE((*rejoin)->member_id, follower);
  EXPECT_EQ(coordinator_->find_group("g")->state, GroupState::kStable);
  EXPECT_EQ(coordinator_->heartbeat("g", gen, follower, again.instance_id),
            E(KErr::kFencedInstanceId));
  EXPECT_EQ(coordinator_->heartbeat("g", gen, (*rejoin)->member_id, again.instance_id), 0);
}

TEST_F(CoordinatorTest, LeaveRebalancesAndDeleteNeedsAnEmptyGroup) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  ASSERT_EQ(commit("g", gen, id, 4)[0], 0);
  auto del = std::make_shared<std::vector<std::pair<std::string, std::int16_t>>>();
  coordinator_->delete_groups({"g", "missing"}, [del](auto r) { *del = std::move(r); });
  pump();
  ASSERT_EQ(del->size(), 2u);
  EXPECT_EQ((*del)[0].second, E(KErr::kNonEmptyGroup));
  EXPECT_EQ((*del)[1].second, E(KErr::kGroupIdNotFound));
  LeaveResult left = coordinator_->leave("g", {MemberIdentity{id, std::nullopt}, MemberIdentity{"x", std::nullopt}});
  EXPECT_EQ(left.member_errors, (std::vector<std::int16_t>{0, E(KErr::kUnknownMemberId)}));
  pump();
  EXPECT_EQ(coordinator_->find_group("g")->state, GroupState::kEmpty);
  coordinator_->delete_groups({"g"}, [del](auto r) { *del = std::move(r); });
  pump();
  EXPECT_EQ((*del)[0].second, 0);
  EXPECT_EQ(coordinator_->find_group("g"), nullptr);
  EXPECT_EQ(committed(*coordinator_, "g", 0), -1);
  // The tombstones are in the log: a reload does not bring the group back.
  coordinator_ = make();
  load(*coordinator_);
  EXPECT_EQ(coordinator_->find_group("g"), nullptr);
  EXPECT_EQ(committed(*coordinator_, "g", 0), -1);
}

TEST_F(CoordinatorTest, ListAndDescribe) {
  load(*coordinator_);
  std::int32_t gen = 0;
  std::string id = join_alone("g", &gen);
  ASSERT_EQ(commit("s", -1, "", 3)[0], 0);
  auto [error, groups] = coordinator_->list({});
  EXPECT_EQ(error, 0);
  ASSERT_EQ(groups.size(), 2u);
  auto [e2, stable] = coordinator_->list({"stable"});
  ASSERT_EQ(stable.size(), 1u);
  EXPECT_EQ(stable[0].group_id, "g");
  GroupDescription d = coordinator_->describe("g");
  EXPECT_EQ(d.state, "Stable");
  EXPECT_EQ(d.protocol, "range");
  ASSERT_EQ(d.members.size(), 1u);
  EXPECT_EQ(d.members[0].assignment, Buffer(std::string_view("assign-0")));
  EXPECT_EQ(coordinator_->describe("unknown").state, "Dead");
}

}  // namespace
}  // namespace mq::groups
