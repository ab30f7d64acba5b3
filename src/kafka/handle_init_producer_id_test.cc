// InitProducerId (handle_init_producer_id.cc) over real sockets, against a FakeCluster whose
// init_producer_id is scripted: advertised range, every served version, the KIP-360 fields
// reaching the cluster layer, and the refusals (transactions, half-set fields, no ids).
#include <atomic>

#include "kafka/error_codes.h"
#include "kafka/testing/server_fixture.h"

namespace mq::kafka::testing {
namespace {

using protocol::AnyRequest;

class ScriptedCluster : public FakeCluster {
 public:
  using FakeCluster::FakeCluster;
  void init_producer_id(std::int64_t producer_id, std::int16_t producer_epoch,
                        std::int64_t timeout_ms,
                        std::function<void(Result<cluster::ProducerIdResult>)> done) override {
    ++calls;
    last_id = producer_id;
    last_epoch = producer_epoch;
    EXPECT_GT(timeout_ms, 0);
    if (!answer.is_ok()) return done(answer);
    cluster::ProducerIdResult r;
    r.producer_id = producer_id >= 0 ? producer_id : 4000 + calls;
    r.producer_epoch = static_cast<std::int16_t>(producer_id >= 0 ? producer_epoch + 1 : 0);
    done(r);
  }
  std::atomic<int> calls{0};  // written on the loop, read by the test thread
  std::atomic<std::int64_t> last_id{0};
  std::atomic<std::int16_t> last_epoch{0};
  Status answer;  // loop only
};

class InitProducerIdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.listen_host = "127.0.0.1";
    config.listen_port = 0;
    cluster_ = std::make_unique<ScriptedCluster>(io_);
    server_ = std::make_unique<Server>(io_, *cluster_, config);
    ASSERT_TRUE(server_->start().is_ok());
    cluster_->set_kafka_port(server_->port());
    thread_ = std::thread([this] { io_.run(); });
    client_ = std::make_unique<TestClient>();
    ASSERT_TRUE(client_->connect(server_->port()).is_ok());
  }
  void TearDown() override {
    client_.reset();
    asio::post(io_, [this] { server_->stop(); });
    work_.reset();
    thread_.join();
  }
  protocol::InitProducerIdResponse call(std::int16_t version,
                                        const protocol::InitProducerIdRequest& request) {
    Result<protocol::AnyResponse> r = client_->call(version, AnyRequest(request));
    EXPECT_TRUE(r.has_value()) << "v" << version << ": " << r.error().to_string();
    if (!r.has_value()) return {};
    return as<protocol::InitProducerIdResponse>(r);
  }
  static protocol::InitProducerIdRequest idempotent() {
    protocol::InitProducerIdRequest request;
    request.transactional_id = std::nullopt;
    request.transaction_timeout_ms = 60000;
    return request;
  }

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      asio::make_work_guard(io_)};
  std::unique_ptr<ScriptedCluster> cluster_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<TestClient> client_;
  std::thread thread_;
};

TEST_F(InitProducerIdTest, AdvertisedFromV0AndEveryVersionAnswers) {
  Result<protocol::AnyResponse> r = client_->call(3, AnyRequest(protocol::ApiVersionsRequest{}));
  ASSERT_TRUE(r.has_value());
  bool found = false;
  for (const auto& api : as<protocol::ApiVersionsResponse>(r).api_keys) {
    if (api.api_key != 22) continue;
    found = true;
    EXPECT_EQ(api.min_version, 0);  // librdkafka 2.0.2 needs v0 in the range
    EXPECT_EQ(api.max_version, 4);
  }
  EXPECT_TRUE(found);
  for (std::int16_t version = 0; version <= 4; ++version) {
    protocol::InitProducerIdResponse response = call(version, idempotent());
    EXPECT_EQ(response.error_code, 0) << version;
    EXPECT_EQ(response.producer_id, 4000 + version + 1) << version;
    EXPECT_EQ(response.producer_epoch, 0);
  }
}

TEST_F(InitProducerIdTest, Kip360FieldsReachTheClusterLayer) {
  protocol::InitProducerIdRequest request = idempotent();
  request.producer_id = 77;
  request.producer_epoch = 3;
  protocol::InitProducerIdResponse response = call(3, request);
  EXPECT_EQ(response.error_code, 0);
  EXPECT_EQ(response.producer_id, 77);
  EXPECT_EQ(response.producer_epoch, 4);
  EXPECT_EQ(cluster_->last_id, 77);
  EXPECT_EQ(cluster_->last_epoch, 3);
}

TEST_F(InitProducerIdTest, TransactionsAndHalfSetFieldsAreInvalidRequests) {
  protocol::InitProducerIdRequest tx = idempotent();
  tx.transactional_id = "orders-tx";
  EXPECT_EQ(call(0, tx).error_code, code(KafkaError::kInvalidRequest));
  EXPECT_EQ(call(4, tx).error_code, code(KafkaError::kInvalidRequest));
  protocol::InitProducerIdRequest empty = idempotent();
  empty.transactional_id = "";
  EXPECT_EQ(call(1, empty).error_code, code(KafkaError::kInvalidRequest));
  protocol::InitProducerIdRequest half = idempotent();
  half.producer_id = 77;  // epoch left at -1
  EXPECT_EQ(call(3, half).error_code, code(KafkaError::kInvalidRequest));
  EXPECT_EQ(cluster_->calls.load(), 0);
}

TEST_F(InitProducerIdTest, NoIdsInTimeIsRetriable) {
  asio::post(io_, [this] { cluster_->answer = Status::timeout("no block"); });
  protocol::InitProducerIdResponse response = call(0, idempotent());
  EXPECT_EQ(response.error_code, code(KafkaError::kCoordinatorNotAvailable));
  EXPECT_EQ(response.producer_id, -1);
}

}  // namespace
}  // namespace mq::kafka::testing
