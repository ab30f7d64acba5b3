// A single-process, in-memory ClusterApi for unit tests of the Kafka layer (test-only; never
// linked into the broker). Partitions keep appended batches in memory, stamp base offsets and
// the leader epoch like a leader would, and commit at once (high watermark = log end) unless
// `hold_commits` is set, in which case commit_all() publishes what was appended. Leadership
// can be moved away to simulate NOT_LEADER_OR_FOLLOWER.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "cluster/api.h"

namespace mq::kafka::testing {

class FakeCluster;

class FakePartition : public cluster::LocalPartition {
 public:
  FakePartition(FakeCluster* cluster, std::int32_t epoch) : cluster_(cluster), epoch_(epoch) {}
  bool is_leader() const override;
  std::int32_t leader_epoch() const override { return epoch_; }
  void produce(SharedBuffer batch, cluster::Acks acks,
               std::function<void(Result<cluster::ProduceResult>)> done) override;
  Result<cluster::FetchResult> fetch(KafkaOffset offset, std::uint64_t max_bytes) override;
  void wait_for_data(KafkaOffset offset, std::int64_t deadline_ms,
                     std::function<void()> ready) override;
  KafkaOffset high_watermark() const override { return KafkaOffset(committed_end_); }
  KafkaOffset log_start_offset() const override { return KafkaOffset(0); }
  Result<std::optional<KafkaOffset>> offset_for_timestamp(std::int64_t timestamp_ms) override;
  Result<cluster::OffsetForEpochResult> end_offset_for_epoch(std::int32_t epoch) override;

  // Publishes every appended batch (raises the high watermark) and wakes long-polls.
  void commit_all();
  std::size_t batch_count() const { return batches_.size(); }
  std::int64_t log_end() const { return log_end_; }

  bool leader = true;
  std::int32_t leader_id = 1;

 private:
  struct StoredBatch {
    std::int64_t base_offset;
    std::int64_t last_offset;
    std::int64_t max_timestamp;
    std::int32_t epoch;
    SharedBuffer bytes;
  };
  struct Waiter {
    std::int64_t offset;
    std::function<void()> ready;
    std::shared_ptr<asio::steady_timer> timer;
  };
  FakeCluster* cluster_;
  std::int32_t epoch_;
  std::vector<StoredBatch> batches_;
  std::int64_t log_end_ = 0;
  std::int64_t committed_end_ = 0;
  std::vector<std::shared_ptr<Waiter>> waiters_;
};

class FakeCluster : public cluster::ClusterApi {
 public:
  explicit FakeCluster(asio::io_context& io, std::uint16_t kafka_port = 9092);
  BrokerId self() const override { return BrokerId(1); }
  cluster::MetadataSnapshot metadata() const override;
  Result<cluster::LocalPartition*> local_partition(std::string_view topic,
                                                   std::int32_t partition) override;
  void create_topics(std::vector<cluster::TopicSpec> topics, std::int64_t timeout_ms,
                     std::function<void(std::vector<cluster::AdminResult>)> done) override;
  void delete_topics(std::vector<std::string> names, std::int64_t timeout_ms,
                     std::function<void(std::vector<cluster::AdminResult>)> done) override;
  void create_partitions(std::vector<std::pair<std::string, std::int32_t>> new_totals,
                         std::int64_t timeout_ms, bool validate_only,
                         std::function<void(std::vector<cluster::AdminResult>)> done) override;
  Result<std::map<std::string, std::string>> describe_topic_configs(
      std::string_view topic) const override;
  std::map<std::string, std::string> describe_broker_configs() const override;

  // Test helpers.
  Status add_topic(const std::string& name, std::int32_t partitions);
  FakePartition* partition(const std::string& topic, std::int32_t index);
  asio::io_context& io() { return io_; }
  void set_kafka_port(std::uint16_t port) { kafka_port_ = port; }
  bool hold_commits = false;
  // Produce acknowledgements are kept until release_acks() (an entry proposed but not yet
  // committed), in the order of the appends.
  bool hold_acks = false;
  std::size_t held_acks() const { return held_acks_.size(); }
  void release_acks();
  void hold_ack(std::function<void()> ack) { held_acks_.push_back(std::move(ack)); }

 private:
  std::vector<std::function<void()>> held_acks_;
  struct Topic {
    cluster::Uuid id{};
    std::map<std::string, std::string> configs;
    std::vector<std::unique_ptr<FakePartition>> partitions;
  };
  asio::io_context& io_;
  std::uint16_t kafka_port_;
  std::map<std::string, Topic, std::less<>> topics_;
  std::uint8_t next_id_ = 1;
};

}  // namespace mq::kafka::testing
