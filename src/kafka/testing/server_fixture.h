// gtest fixture: a Kafka Server over a FakeCluster on an io_context thread, plus helpers to run
// code on that thread and to build record batches (test-only).
#pragma once

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "kafka/server.h"
#include "kafka/testing/fake_cluster.h"
#include "kafka/testing/kafka_test_client.h"
#include "protocol/record_batch.h"

namespace mq::kafka::testing {

class ServerFixture : public ::testing::Test {
 protected:
  void start_server(ServerConfig config = {}) {
    config.listen_host = "127.0.0.1";
    config.listen_port = 0;
    cluster_ = std::make_unique<FakeCluster>(io_);
    server_ = std::make_unique<Server>(io_, *cluster_, config);
    Status started = server_->start();
    ASSERT_TRUE(started.is_ok()) << started.to_string();
    cluster_->set_kafka_port(server_->port());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      on_loop([this] { server_->stop(); });
      work_.reset();
      io_.stop();
      thread_.join();
    }
  }
  // Runs f on the event loop thread and waits for it.
  template <typename F>
  auto on_loop(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto future = task.get_future();
    asio::post(io_, [&task] { task(); });
    return future.get();
  }
  std::unique_ptr<TestClient> connect() {
    auto client = std::make_unique<TestClient>();
    Status st = client->connect(server_->port());
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return client;
  }
  void add_topic(const std::string& name, int partitions) {
    Status st = on_loop([&] { return cluster_->add_topic(name, partitions); });
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  }
  static Buffer make_batch(const std::vector<std::string>& values,
                           protocol::Compression compression = protocol::Compression::kNone) {
    std::vector<protocol::RecordInput> records;
    for (std::size_t i = 0; i < values.size(); ++i) {
      protocol::RecordInput r;
      r.key = Buffer(std::string_view("k" + std::to_string(i)));
      r.value = Buffer(std::string_view(values[i]));
      r.timestamp = 1'700'000'000'000 + static_cast<std::int64_t>(i);
      records.push_back(std::move(r));
    }
    protocol::RecordBatchOptions options;
    options.compression = compression;
    Result<Buffer> batch = protocol::build_record_batch(options, records);
    MQ_ASSERT(batch.has_value());
    return std::move(batch).value();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ =
      asio::make_work_guard(io_);
  std::unique_ptr<FakeCluster> cluster_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

template <typename T>
const T& as(const Result<protocol::AnyResponse>& response) {
  MQ_ASSERT(response.has_value(), "%s", response.error().to_string().c_str());
  return std::get<T>(*response);
}

}  // namespace mq::kafka::testing
