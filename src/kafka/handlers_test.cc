// API-level behaviour of the handlers against the in-memory FakeCluster, over real sockets.
#include <chrono>
#include <thread>

#include "kafka/testing/server_fixture.h"

namespace mq::kafka::testing {
namespace {

using protocol::AnyRequest;

protocol::ProduceRequest produce_request(const std::string& topic, std::int32_t partition,
                                         Buffer records, std::int16_t acks = -1) {
  protocol::ProduceRequest request;
  request.acks = acks;
  request.timeout_ms = 5000;
  auto& t = request.topic_data.emplace_back();
  t.name = topic;
  auto& p = t.partition_data.emplace_back();
  p.index = partition;
  p.records = std::move(records);
  return request;
}

protocol::FetchRequest fetch_request(const std::string& topic, std::int32_t partition,
                                     std::int64_t offset, std::int32_t wait_ms = 0) {
  protocol::FetchRequest fetch;
  fetch.max_wait_ms = wait_ms;
  fetch.min_bytes = 1;
  fetch.max_bytes = 1 << 20;
  auto& t = fetch.topics.emplace_back();
  t.topic = topic;
  auto& p = t.partitions.emplace_back();
  p.partition = partition;
  p.fetch_offset = offset;
  p.partition_max_bytes = 1 << 20;
  return fetch;
}

std::vector<std::string> values_of(const Buffer& records) {
  std::vector<std::string> values;
  Result<std::vector<protocol::RecordBatchView>> batches =
      protocol::parse_record_batches(records.view(), true);
  MQ_ASSERT(batches.has_value());
  for (const auto& batch : *batches) {
    Result<protocol::RecordSet> set = batch.decode_records();
    MQ_ASSERT(set.has_value());
    for (const auto& r : set->records) values.emplace_back(as_chars(*r.value));
  }
  return values;
}

class HandlersTest : public ServerFixture {};

TEST_F(HandlersTest, ProduceThenFetchRoundTripsEveryCodec) {
  start_server();
  add_topic("events", 2);
  auto client = connect();
  std::int64_t expected_offset = 0;
  std::vector<std::string> all;
  for (auto codec : {protocol::Compression::kNone, protocol::Compression::kGzip,
                     protocol::Compression::kSnappy, protocol::Compression::kLz4,
                     protocol::Compression::kZstd}) {
    std::vector<std::string> values = {"a" + std::to_string(expected_offset), "b", "c"};
    Result<protocol::AnyResponse> r =
        client->call(7, AnyRequest(produce_request("events", 1, make_batch(values, codec))));
    const auto& part = as<protocol::ProduceResponse>(r).responses.at(0).partition_responses.at(0);
    EXPECT_EQ(part.error_code, 0);
    EXPECT_EQ(part.base_offset, expected_offset);
    expected_offset += 3;
    all.insert(all.end(), values.begin(), values.end());
  }
  Result<protocol::AnyResponse> f = client->call(11, AnyRequest(fetch_request("events", 1, 0)));
  const auto& part = as<protocol::FetchResponse>(f).responses.at(0).partitions.at(0);
  EXPECT_EQ(part.error_code, 0);
  EXPECT_EQ(part.high_watermark, 15);
  EXPECT_EQ(part.log_start_offset, 0);
  EXPECT_EQ(values_of(*part.records), all);
}

TEST_F(HandlersTest, EveryAdvertisedVersionOfProduceFetchAndAdminIsAnswered) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  std::int64_t produced = 0;
  for (std::int16_t version = 3; version <= 10; ++version) {
    Result<protocol::AnyResponse> r = client->call(
        version, AnyRequest(produce_request("events", 0, make_batch({"v" + std::to_string(version)}))));
    ASSERT_TRUE(r.has_value()) << "produce v" << version << ": " << r.error().to_string();
    EXPECT_EQ(as<protocol::ProduceResponse>(r).responses[0].partition_responses[0].base_offset,
              produced++);
  }
  for (std::int16_t version = 4; version <= 15; ++version) {
    protocol::FetchRequest fetch = fetch_request("events", 0, 0);
    if (version >= 13) {
      fetch.topics[0].topic.clear();
      fetch.topics[0].topic_id = to_wire_uuid(
          on_loop([this] { return cluster_->metadata().topics.at(0).topic_id; }));
    }
    Result<protocol::AnyResponse> r = client->call(version, AnyRequest(fetch));
    ASSERT_TRUE(r.has_value()) << "fetch v" << version << ": " << r.error().to_string();
    const auto& part = as<protocol::FetchResponse>(r).responses.at(0).partitions.at(0);
    EXPECT_EQ(part.error_code, 0) << version;
    EXPECT_EQ(values_of(*part.records).size(), 8u) << version;
  }
  for (std::int16_t version = 0; version <= 4; ++version) {
    protocol::OffsetForLeaderEpochRequest request;
    auto& t = request.topics.emplace_back();
    t.topic = "events";
    t.partitions.emplace_back().leader_epoch = 3;
    ASSERT_TRUE(client->call(version, AnyRequest(request)).has_value()) << version;
  }
  for (std::int16_t version = 0; version <= 7; ++version) {
    protocol::CreateTopicsRequest create;
    auto& topic = create.topics.emplace_back();
    topic.name = "v" + std::to_string(version);
    topic.num_partitions = 1;
    topic.replication_factor = 1;
    Result<protocol::AnyResponse> r = client->call(version, AnyRequest(create));
    ASSERT_TRUE(r.has_value()) << "create v" << version << ": " << r.error().to_string();
    EXPECT_EQ(as<protocol::CreateTopicsResponse>(r).topics.at(0).error_code, 0);
  }
  for (std::int16_t version = 0; version <= 5; ++version) {
    protocol::DeleteTopicsRequest remove;
    remove.topic_names = {"v" + std::to_string(version)};
    Result<protocol::AnyResponse> r = client->call(version, AnyRequest(remove));
    ASSERT_TRUE(r.has_value()) << "delete v" << version << ": " << r.error().to_string();
    EXPECT_EQ(as<protocol::DeleteTopicsResponse>(r).responses.at(0).error_code, 0);
  }
  for (std::int16_t version = 0; version <= 3; ++version) {
    protocol::CreatePartitionsRequest grow;
    auto& g = grow.topics.emplace_back();
    g.name = "events";
    g.count = 2 + version;
    g.assignments = std::nullopt;
    ASSERT_TRUE(client->call(version, AnyRequest(grow)).has_value()) << version;
  }
  for (std::int16_t version = 0; version <= 1; ++version) {
    ASSERT_TRUE(client->call(version, AnyRequest(protocol::DescribeClusterRequest{})).has_value());
  }
}

TEST_F(HandlersTest, CorruptBatchIsRefusedAndNothingAppended) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  Buffer batch = make_batch({"x", "y"});
  batch[batch.size() - 1] ^= 0x40;  // inside the CRC'd range
  Result<protocol::AnyResponse> r =
      client->call(8, AnyRequest(produce_request("events", 0, std::move(batch))));
  const auto& part = as<protocol::ProduceResponse>(r).responses.at(0).partition_responses.at(0);
  EXPECT_EQ(part.error_code, 2);  // CORRUPT_MESSAGE
  EXPECT_EQ(on_loop([this] { return cluster_->partition("events", 0)->batch_count(); }), 0u);
  // A truncated batch (length says more than is there) is refused the same way.
  Buffer truncated = make_batch({"x"});
  truncated.resize(truncated.size() - 3);
  Result<protocol::AnyResponse> r2 =
      client->call(8, AnyRequest(produce_request("events", 0, std::move(truncated))));
  EXPECT_EQ(as<protocol::ProduceResponse>(r2).responses[0].partition_responses[0].error_code, 2);
}

TEST_F(HandlersTest, ProduceToUnknownTopicIsUnknownTopicOrPartition) {
  start_server();
  auto client = connect();
  Result<protocol::AnyResponse> r =
      client->call(9, AnyRequest(produce_request("nope", 0, make_batch({"x"}))));
  EXPECT_EQ(as<protocol::ProduceResponse>(r).responses[0].partition_responses[0].error_code, 3);
}

TEST_F(HandlersTest, InvalidAcksIsInvalidRequiredAcks) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  Result<protocol::AnyResponse> r =
      client->call(7, AnyRequest(produce_request("events", 0, make_batch({"x"}), 2)));
  EXPECT_EQ(as<protocol::ProduceResponse>(r).responses[0].partition_responses[0].error_code, 21);
}

TEST_F(HandlersTest, NotLeaderCarriesLeaderHintFromV10) {
  start_server();
  add_topic("events", 1);
  on_loop([this] {
    cluster_->partition("events", 0)->leader = false;
    cluster_->partition("events", 0)->leader_id = 2;
  });
  auto client = connect();
  Result<protocol::AnyResponse> r =
      client->call(10, AnyRequest(produce_request("events", 0, make_batch({"x"}))));
  const auto& response = as<protocol::ProduceResponse>(r);
  const auto& part = response.responses[0].partition_responses[0];
  EXPECT_EQ(part.error_code, 6);  // NOT_LEADER_OR_FOLLOWER
  EXPECT_EQ(part.current_leader.leader_id, 2);
  ASSERT_EQ(response.node_endpoints.size(), 1u);
  EXPECT_EQ(response.node_endpoints[0].node_id, 2);
}

TEST_F(HandlersTest, AcksZeroGetsNoResponse) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  ASSERT_TRUE(client->send(7, 1, AnyRequest(produce_request("events", 0, make_batch({"x"}), 0)))
                  .is_ok());
  ASSERT_TRUE(client->send(0, 2, AnyRequest(protocol::ApiVersionsRequest{})).is_ok());
  // The next frame on the wire answers request 2: request 1 had none.
  Result<protocol::AnyResponse> r = client->read_response(18, 0, 2);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(on_loop([this] { return cluster_->partition("events", 0)->log_end(); }), 1);
}

TEST_F(HandlersTest, FetchLongPollWakesOnCommit) {
  start_server();
  add_topic("events", 1);
  on_loop([this] { cluster_->hold_commits = true; });
  auto producer = connect();
  auto consumer = connect();
  ASSERT_TRUE(consumer->send(11, 1, AnyRequest(fetch_request("events", 0, 0, 5000))).is_ok());
  // Appended but not committed: the fetch keeps waiting.
  ASSERT_TRUE(producer->send(7, 9, AnyRequest(produce_request("events", 0, make_batch({"v"}), 1)))
                  .is_ok());
  EXPECT_EQ(consumer->read_frame(300).error().code(), ErrorCode::kTimeout);
  auto start = std::chrono::steady_clock::now();
  on_loop([this] { cluster_->partition("events", 0)->commit_all(); });
  Result<protocol::AnyResponse> r = consumer->read_response(1, 11, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  const auto& part = as<protocol::FetchResponse>(r).responses[0].partitions[0];
  EXPECT_EQ(values_of(*part.records), std::vector<std::string>{"v"});
}

// A long-poll over several partitions wakes when any of them commits, not only the first one
// (each partition's waiter is armed), and answers with that partition's records.
TEST_F(HandlersTest, MultiPartitionFetchLongPollWakesOnAnyPartition) {
  start_server();
  add_topic("events", 3);
  on_loop([this] { cluster_->hold_commits = true; });
  auto producer = connect();
  auto consumer = connect();
  protocol::FetchRequest fetch = fetch_request("events", 0, 0, 5000);
  for (std::int32_t p : {1, 2}) {
    auto& part = fetch.topics[0].partitions.emplace_back();
    part.partition = p;
    part.fetch_offset = 0;
    part.partition_max_bytes = 1 << 20;
  }
  ASSERT_TRUE(consumer->send(11, 1, AnyRequest(fetch)).is_ok());
  ASSERT_TRUE(producer->send(7, 9, AnyRequest(produce_request("events", 2, make_batch({"tail"}), 1)))
                  .is_ok());
  EXPECT_EQ(consumer->read_frame(300).error().code(), ErrorCode::kTimeout);
  auto start = std::chrono::steady_clock::now();
  on_loop([this] { cluster_->partition("events", 2)->commit_all(); });
  Result<protocol::AnyResponse> r = consumer->read_response(1, 11, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  const auto& parts = as<protocol::FetchResponse>(r).responses.at(0).partitions;
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].partition_index, 2);
  EXPECT_EQ(parts[2].high_watermark, 1);
  ASSERT_TRUE(parts[2].records.has_value());
  EXPECT_EQ(values_of(*parts[2].records), std::vector<std::string>{"tail"});
  EXPECT_EQ(parts[0].high_watermark, 0);
}

// With min_bytes > 1 each small commit wakes the long-poll without satisfying it; however many
// such wake-ups came first, the commit that reaches min_bytes must answer at once, not at
// max_wait (the handler used to stop re-arming after 16 wake-ups).
TEST_F(HandlersTest, FetchMinBytesIsAnsweredWhenReachedAfterManySmallCommits) {
  start_server();
  add_topic("events", 2);
  on_loop([this] { cluster_->hold_commits = true; });
  auto producer = connect();
  auto consumer = connect();
  protocol::FetchRequest fetch = fetch_request("events", 0, 0, 8000);
  fetch.min_bytes = 6000;
  auto& second = fetch.topics[0].partitions.emplace_back();
  second.partition = 1;
  second.fetch_offset = 0;
  second.partition_max_bytes = 1 << 20;
  ASSERT_TRUE(consumer->send(11, 1, AnyRequest(fetch)).is_ok());
  for (int i = 0; i < 24; ++i) {
    ASSERT_TRUE(producer->call(7, AnyRequest(produce_request("events", 0, make_batch({"s"}), 1)))
                    .has_value());
    on_loop([this] { cluster_->partition("events", 0)->commit_all(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the wake-up runs
  }
  EXPECT_EQ(consumer->read_frame(200).error().code(), ErrorCode::kTimeout);  // < min_bytes
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(producer->call(7, AnyRequest(produce_request("events", 0,
                                                           make_batch({std::string(8000, 'b')}), 1)))
                  .has_value());
  on_loop([this] { cluster_->partition("events", 0)->commit_all(); });
  Result<protocol::AnyResponse> r = consumer->read_response(1, 11, 1);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(3000));
  const auto& parts = as<protocol::FetchResponse>(r).responses.at(0).partitions;
  EXPECT_EQ(parts.at(0).high_watermark, 25);
  EXPECT_EQ(values_of(*parts.at(0).records).size(), 25u);
}

TEST_F(HandlersTest, FetchWaitsMaxWaitWhenNoData) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  auto start = std::chrono::steady_clock::now();
  Result<protocol::AnyResponse> r = client->call(11, AnyRequest(fetch_request("events", 0, 0, 250)));
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(240));
  EXPECT_LT(waited, std::chrono::milliseconds(3000));
  const auto& part = as<protocol::FetchResponse>(r).responses[0].partitions[0];
  EXPECT_EQ(part.error_code, 0);
  EXPECT_TRUE(!part.records.has_value() || part.records->empty());
}

TEST_F(HandlersTest, FetchBeyondHighWatermarkIsOffsetOutOfRange) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  Result<protocol::AnyResponse> r = client->call(11, AnyRequest(fetch_request("events", 0, 42)));
  EXPECT_EQ(as<protocol::FetchResponse>(r).responses[0].partitions[0].error_code, 1);
}

TEST_F(HandlersTest, FetchRespectsPartitionMaxBytesButReturnsOneBatch) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  for (int i = 0; i < 3; ++i) {
    Result<protocol::AnyResponse> r = client->call(
        7, AnyRequest(produce_request("events", 0, make_batch({std::string(1000, 'a' + i)}))));
    ASSERT_TRUE(r.has_value());
  }
  protocol::FetchRequest fetch = fetch_request("events", 0, 0);
  fetch.topics[0].partitions[0].partition_max_bytes = 10;  // smaller than one batch
  Result<protocol::AnyResponse> r = client->call(11, AnyRequest(fetch));
  const auto& part = as<protocol::FetchResponse>(r).responses[0].partitions[0];
  EXPECT_EQ(values_of(*part.records).size(), 1u);
}

TEST_F(HandlersTest, FetchVersion3IsRefusedPerPartition) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  Result<protocol::AnyResponse> r = client->call(3, AnyRequest(fetch_request("events", 0, 0)));
  EXPECT_EQ(as<protocol::FetchResponse>(r).responses[0].partitions[0].error_code, 43);
}

TEST_F(HandlersTest, FetchFencesStaleLeaderEpoch) {
  start_server();
  add_topic("events", 1);  // the fake's epoch is 3
  auto client = connect();
  protocol::FetchRequest fetch = fetch_request("events", 0, 0);
  fetch.topics[0].partitions[0].current_leader_epoch = 2;
  Result<protocol::AnyResponse> r = client->call(11, AnyRequest(fetch));
  EXPECT_EQ(as<protocol::FetchResponse>(r).responses[0].partitions[0].error_code, 74);
}

TEST_F(HandlersTest, MetadataListsTopicsLeadersAndController) {
  start_server();
  add_topic("alpha", 3);
  auto client = connect();
  for (std::int16_t version : {0, 1, 4, 9, 12}) {
    protocol::MetadataRequest request;
    if (version > 0) request.topics = std::nullopt;  // all topics
    Result<protocol::AnyResponse> r = client->call(version, AnyRequest(request));
    const auto& response = as<protocol::MetadataResponse>(r);
    ASSERT_EQ(response.topics.size(), 1u) << version;
    EXPECT_EQ(response.topics[0].partitions.size(), 3u);
    EXPECT_EQ(response.topics[0].partitions[0].leader_id, 1);
    EXPECT_EQ(response.brokers.size(), 2u);
    if (version >= 1) {
      EXPECT_EQ(response.controller_id, 1);
    }
    if (version >= 10) {
      EXPECT_FALSE(response.topics[0].topic_id.is_zero());
    }
  }
}

// A partition without a leader (an election under way): the answer waits for the leader
// instead of telling the client "no leader" (it would ask again only on its own timer), and
// answers LEADER_NOT_AVAILABLE at the bound if none comes. Requests for every topic never wait.
TEST_F(HandlersTest, MetadataWaitsBoundedlyForALeaderlessPartition) {
  ServerConfig config;
  config.metadata_leader_wait_ms = 400;
  start_server(config);
  add_topic("orphan", 2);
  auto set_leader = [this](std::int32_t id) {
    on_loop([this, id] {
      cluster_->partition("orphan", 1)->leader = id == 1;
      cluster_->partition("orphan", 1)->leader_id = id;
      return 0;
    });
  };
  set_leader(-1);
  auto client = connect();
  protocol::MetadataRequest named;
  named.topics.emplace();
  named.topics->emplace_back().name = "orphan";
  // The leader is elected 150 ms after the request: the answer names it.
  std::thread elect([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    set_leader(2);
  });
  auto started = std::chrono::steady_clock::now();
  Result<protocol::AnyResponse> r = client->call(9, AnyRequest(named));
  auto waited = std::chrono::steady_clock::now() - started;
  elect.join();
  const auto& found = as<protocol::MetadataResponse>(r);
  ASSERT_EQ(found.topics.size(), 1u);
  EXPECT_EQ(found.topics[0].partitions.at(1).leader_id, 2);
  EXPECT_EQ(found.topics[0].partitions.at(1).error_code, 0);
  EXPECT_GE(waited, std::chrono::milliseconds(140));
  EXPECT_LT(waited, std::chrono::milliseconds(390));
  // No leader within the bound: LEADER_NOT_AVAILABLE after about 400 ms, the other partition's
  // leader named as usual.
  set_leader(-1);
  started = std::chrono::steady_clock::now();
  Result<protocol::AnyResponse> none = client->call(9, AnyRequest(named));
  waited = std::chrono::steady_clock::now() - started;
  const auto& leaderless = as<protocol::MetadataResponse>(none);
  EXPECT_EQ(leaderless.topics.at(0).partitions.at(1).error_code, 5);  // LEADER_NOT_AVAILABLE
  EXPECT_EQ(leaderless.topics.at(0).partitions.at(0).leader_id, 1);
  EXPECT_GE(waited, std::chrono::milliseconds(390));
  EXPECT_LT(waited, std::chrono::milliseconds(5000));
  // Every topic: at once.
  protocol::MetadataRequest all;
  all.topics = std::nullopt;
  started = std::chrono::steady_clock::now();
  Result<protocol::AnyResponse> listed = client->call(9, AnyRequest(all));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(350));
  EXPECT_EQ(as<protocol::MetadataResponse>(listed).topics.at(0).partitions.at(1).error_code, 5);
}

// With the wait off, the answer is immediate (Kafka's behaviour).
TEST_F(HandlersTest, MetadataLeaderWaitOffAnswersAtOnce) {
  ServerConfig config;
  config.metadata_leader_wait_ms = 0;
  start_server(config);
  add_topic("orphan", 1);
  on_loop([this] {
    cluster_->partition("orphan", 0)->leader = false;
    cluster_->partition("orphan", 0)->leader_id = -1;
    return 0;
  });
  auto client = connect();
  protocol::MetadataRequest named;
  named.topics.emplace();
  named.topics->emplace_back().name = "orphan";
  auto started = std::chrono::steady_clock::now();
  Result<protocol::AnyResponse> r = client->call(9, AnyRequest(named));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(350));
  EXPECT_EQ(as<protocol::MetadataResponse>(r).topics.at(0).partitions.at(0).error_code, 5);
}

TEST_F(HandlersTest, MetadataUnknownTopicAndAutoCreate) {
  ServerConfig config;
  start_server(config);
  auto client = connect();
  protocol::MetadataRequest request;
  request.topics.emplace();
  request.topics->emplace_back().name = "missing";
  Result<protocol::AnyResponse> r = client->call(9, AnyRequest(request));
  EXPECT_EQ(as<protocol::MetadataResponse>(r).topics.at(0).error_code, 3);
  EXPECT_EQ(on_loop([this] { return cluster_->metadata().topics.size(); }), 0u);
}

TEST_F(HandlersTest, MetadataAutoCreatesWhenEnabled) {
  ServerConfig config;
  config.auto_create_topics = true;
  start_server(config);
  auto client = connect();
  protocol::MetadataRequest request;
  request.topics.emplace();
  request.topics->emplace_back().name = "fresh";
  Result<protocol::AnyResponse> r = client->call(9, AnyRequest(request));
  EXPECT_EQ(as<protocol::MetadataResponse>(r).topics.at(0).error_code, 5);  // LEADER_NOT_AVAILABLE
  Result<protocol::AnyResponse> again = client->call(9, AnyRequest(request));
  EXPECT_EQ(as<protocol::MetadataResponse>(again).topics.at(0).error_code, 0);
}

TEST_F(HandlersTest, ListOffsetsEarliestLatestAndByTimestamp) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  ASSERT_TRUE(client->call(7, AnyRequest(produce_request("events", 0, make_batch({"a", "b"}))))
                  .has_value());
  ASSERT_TRUE(client->call(7, AnyRequest(produce_request("events", 0, make_batch({"c"}))))
                  .has_value());
  for (std::int16_t version : {0, 1, 4, 6}) {
    protocol::ListOffsetsRequest request;
    auto& t = request.topics.emplace_back();
    t.name = "events";
    for (std::int64_t ts : {std::int64_t{-2}, std::int64_t{-1}, std::int64_t{1'700'000'000'000}}) {
      auto& p = t.partitions.emplace_back();
      p.partition_index = 0;
      p.timestamp = ts;
    }
    Result<protocol::AnyResponse> r = client->call(version, AnyRequest(request));
    const auto& parts = as<protocol::ListOffsetsResponse>(r).topics.at(0).partitions;
    ASSERT_EQ(parts.size(), 3u);
    if (version == 0) {
      EXPECT_EQ(parts[0].old_style_offsets, std::vector<std::int64_t>{0});
      EXPECT_EQ(parts[1].old_style_offsets, std::vector<std::int64_t>{3});
    } else {
      EXPECT_EQ(parts[0].offset, 0);
      EXPECT_EQ(parts[1].offset, 3);
      EXPECT_EQ(parts[2].offset, 0);  // the first batch's max timestamp reaches it
    }
  }
}

TEST_F(HandlersTest, OffsetForLeaderEpoch) {
  start_server();
  add_topic("events", 1);
  auto client = connect();
  ASSERT_TRUE(client->call(7, AnyRequest(produce_request("events", 0, make_batch({"a", "b"}))))
                  .has_value());
  protocol::OffsetForLeaderEpochRequest request;
  auto& t = request.topics.emplace_back();
  t.topic = "events";
  auto& p = t.partitions.emplace_back();
  p.partition = 0;
  p.leader_epoch = 3;
  Result<protocol::AnyResponse> r = client->call(3, AnyRequest(request));
  const auto& part = as<protocol::OffsetForLeaderEpochResponse>(r).topics.at(0).partitions.at(0);
  EXPECT_EQ(part.error_code, 0);
  EXPECT_EQ(part.leader_epoch, 3);
  EXPECT_EQ(part.end_offset, 2);
}

TEST_F(HandlersTest, CreateDescribeGrowAndDeleteTopics) {
  start_server();
  auto client = connect();
  protocol::CreateTopicsRequest create;
  auto& topic = create.topics.emplace_back();
  topic.name = "admin";
  topic.num_partitions = 2;
  topic.replication_factor = 1;
  auto& config = topic.configs.emplace_back();
  config.name = "retention.ms";
  config.value = "1000";
  auto& dup1 = create.topics.emplace_back();
  dup1.name = "twice";
  dup1.num_partitions = 1;
  dup1.replication_factor = 1;
  create.topics.push_back(dup1);
  Result<protocol::AnyResponse> r = client->call(7, AnyRequest(create));
  const auto& created = as<protocol::CreateTopicsResponse>(r);
  ASSERT_EQ(created.topics.size(), 3u);
  EXPECT_EQ(created.topics[0].error_code, 0);
  EXPECT_EQ(created.topics[0].num_partitions, 2);
  EXPECT_FALSE(created.topics[0].topic_id.is_zero());
  EXPECT_EQ(created.topics[1].error_code, 42);  // INVALID_REQUEST: named twice
  Result<protocol::AnyResponse> again = client->call(4, AnyRequest(create));
  EXPECT_EQ(as<protocol::CreateTopicsResponse>(again).topics[0].error_code, 36);

  protocol::DescribeConfigsRequest describe;
  auto& resource = describe.resources.emplace_back();
  resource.resource_type = 2;
  resource.resource_name = "admin";
  Result<protocol::AnyResponse> d0 = client->call(0, AnyRequest(describe));
  EXPECT_EQ(as<protocol::DescribeConfigsResponse>(d0).results.at(0).error_code, 0);
  describe.include_synonyms = true;
  Result<protocol::AnyResponse> d = client->call(4, AnyRequest(describe));
  const auto& result = as<protocol::DescribeConfigsResponse>(d).results.at(0);
  EXPECT_EQ(result.error_code, 0);
  bool found = false;
  for (const auto& entry : result.configs) {
    if (entry.name == "retention.ms") {
      found = true;
      EXPECT_EQ(entry.value, "1000");
      EXPECT_EQ(entry.config_source, 1);
    }
  }
  EXPECT_TRUE(found);

  protocol::CreatePartitionsRequest grow;
  auto& g = grow.topics.emplace_back();
  g.name = "admin";
  g.count = 4;
  g.assignments = std::nullopt;
  Result<protocol::AnyResponse> gr = client->call(3, AnyRequest(grow));
  EXPECT_EQ(as<protocol::CreatePartitionsResponse>(gr).results.at(0).error_code, 0);
  EXPECT_EQ(on_loop([this] { return cluster_->metadata().topics[0].partitions.size(); }), 4u);

  protocol::DeleteTopicsRequest remove;
  remove.topic_names = {"admin", "ghost"};
  Result<protocol::AnyResponse> del = client->call(3, AnyRequest(remove));
  const auto& deleted = as<protocol::DeleteTopicsResponse>(del);
  ASSERT_EQ(deleted.responses.size(), 2u);
  EXPECT_EQ(deleted.responses[0].error_code, 0);
  EXPECT_EQ(deleted.responses[1].error_code, 3);
}

TEST_F(HandlersTest, DescribeClusterNamesBrokersAndController) {
  start_server();
  auto client = connect();
  Result<protocol::AnyResponse> r = client->call(0, AnyRequest(protocol::DescribeClusterRequest{}));
  const auto& response = as<protocol::DescribeClusterResponse>(r);
  EXPECT_EQ(response.error_code, 0);
  EXPECT_EQ(response.cluster_id, "fake-cluster");
  EXPECT_EQ(response.controller_id, 1);
  EXPECT_EQ(response.brokers.size(), 2u);
}

}  // namespace
}  // namespace mq::kafka::testing
