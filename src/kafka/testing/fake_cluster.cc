#include "kafka/testing/fake_cluster.h"

#include <chrono>

#include <asio/post.hpp>

#include "protocol/record_batch.h"

namespace mq::kafka::testing {
namespace {

const std::map<std::string, std::string> kTopicDefaults = {
    {"cleanup.policy", "delete"},
    {"retention.bytes", "-1"},
    {"retention.ms", "604800000"},
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool FakePartition::is_leader() const { return leader; }

void FakePartition::produce(SharedBuffer batch, cluster::Acks /*acks*/,
                            std::function<void(Result<cluster::ProduceResult>)> done) {
  if (!leader) {
    done(Status::not_leader("fake: not the leader"));
    return;
  }
  Result<protocol::RecordBatchView> view = protocol::RecordBatchView::parse(batch.view());
  if (!view.has_value()) {
    done(view.error());
    return;
  }
  Buffer stamped(batch.view());
  std::int64_t base = log_end_;
  protocol::set_base_offset(std::span<std::uint8_t>(stamped.data(), stamped.size()), base);
  protocol::set_partition_leader_epoch(std::span<std::uint8_t>(stamped.data(), stamped.size()),
                                       epoch_);
  std::int64_t last = base + view->header().last_offset_delta;
  batches_.push_back({base, last, view->header().max_timestamp, epoch_,
                      SharedBuffer(std::move(stamped))});
  log_end_ = last + 1;
  cluster::ProduceResult result;
  result.base_offset = KafkaOffset(base);
  result.log_start_offset = KafkaOffset(0);
  if (cluster_->hold_acks) {
    cluster_->hold_ack([done = std::move(done), result] { done(result); });
    if (!cluster_->hold_commits) commit_all();
    return;
  }
  // Completes on a later turn of the loop, as a real replicated append does.
  asio::post(cluster_->io(), [done = std::move(done), result] { done(result); });
  if (!cluster_->hold_commits) commit_all();
}

void FakeCluster::release_acks() {
  std::vector<std::function<void()>> acks;
  acks.swap(held_acks_);
  for (auto& ack : acks) ack();
}

void FakePartition::commit_all() {
  committed_end_ = log_end_;
  auto waiters = waiters_;
  std::vector<std::shared_ptr<Waiter>> keep;
  for (auto& w : waiters) {
    if (committed_end_ > w->offset) {
      w->timer->cancel();
      asio::post(cluster_->io(), [ready = std::move(w->ready)] { ready(); });
    } else {
      keep.push_back(w);
    }
  }
  waiters_ = std::move(keep);
}

Result<cluster::FetchResult> FakePartition::fetch(KafkaOffset offset, std::uint64_t max_bytes) {
  if (offset.value() < 0 || offset.value() > committed_end_) {
    return Status::out_of_range("fake: offset " + std::to_string(offset.value()));
  }
  cluster::FetchResult result;
  result.high_watermark = KafkaOffset(committed_end_);
  result.last_stable_offset = result.high_watermark;
  result.log_start_offset = KafkaOffset(0);
  for (const StoredBatch& b : batches_) {
    if (b.last_offset < offset.value() || b.base_offset >= committed_end_) continue;
    if (result.bytes > 0 && result.bytes + b.bytes.size() > max_bytes) break;
    cluster::RecordsChunk chunk;
    chunk.bytes = b.bytes;
    result.bytes += b.bytes.size();
    result.records.push_back(std::move(chunk));
  }
  return result;
}

void FakePartition::wait_for_data(KafkaOffset offset, std::int64_t deadline_ms,
                                  std::function<void()> ready) {
  if (committed_end_ > offset.value()) {
    asio::post(cluster_->io(), std::move(ready));
    return;
  }
  auto waiter = std::make_shared<Waiter>();
  waiter->offset = offset.value();
  waiter->ready = std::move(ready);
  waiter->timer = std::make_shared<asio::steady_timer>(cluster_->io());
  waiter->timer->expires_after(std::chrono::milliseconds(std::max<std::int64_t>(
      0, deadline_ms - now_ms())));
  std::weak_ptr<Waiter> weak = waiter;
  waiters_.push_back(waiter);
  waiter->timer->async_wait([this, weak](const std::error_code& ec) {
    if (ec) return;
    std::shared_ptr<Waiter> w = weak.lock();
    if (!w) return;
    std::erase(waiters_, w);
    w->ready();
  });
}

Result<std::optional<KafkaOffset>> FakePartition::offset_for_timestamp(std::int64_t timestamp_ms) {
  for (const StoredBatch& b : batches_) {
    if (b.base_offset >= committed_end_) break;
    if (b.max_timestamp >= timestamp_ms) return std::optional<KafkaOffset>(KafkaOffset(b.base_offset));
  }
  return std::optional<KafkaOffset>();
}

Result<cluster::OffsetForEpochResult> FakePartition::end_offset_for_epoch(std::int32_t epoch) {
  cluster::OffsetForEpochResult result;
  if (epoch > epoch_) return result;  // unknown epoch: -1/-1
  result.leader_epoch = epoch;
  result.end_offset = KafkaOffset(log_end_);
  for (const StoredBatch& b : batches_) {
    if (b.epoch > epoch) {
      result.end_offset = KafkaOffset(b.base_offset);
      break;
    }
  }
  return result;
}

FakeCluster::FakeCluster(asio::io_context& io, std::uint16_t kafka_port)
    : io_(io), kafka_port_(kafka_port) {}

cluster::MetadataSnapshot FakeCluster::metadata() const {
  cluster::MetadataSnapshot snapshot;
  snapshot.cluster_id = "fake-cluster";
  snapshot.controller = BrokerId(1);
  snapshot.brokers.push_back({BrokerId(1), "127.0.0.1", kafka_port_, std::nullopt, true});
  snapshot.brokers.push_back({BrokerId(2), "127.0.0.1", 1, std::nullopt, true});
  for (const auto& [name, topic] : topics_) {
    cluster::TopicInfo info;
    info.name = name;
    info.topic_id = topic.id;
    info.configs = topic.configs;
    for (std::size_t i = 0; i < topic.partitions.size(); ++i) {
      const FakePartition& p = *topic.partitions[i];
      cluster::PartitionInfo part;
      part.partition = static_cast<std::int32_t>(i);
      part.leader = BrokerId(p.leader ? 1 : p.leader_id);
      part.leader_epoch = p.leader_epoch();
      part.replicas = {BrokerId(1)};
      part.isr = {BrokerId(1)};
      info.partitions.push_back(std::move(part));
    }
    snapshot.topics.push_back(std::move(info));
  }
  return snapshot;
}

Result<cluster::LocalPartition*> FakeCluster::local_partition(std::string_view topic,
                                                              std::int32_t partition) {
  auto it = topics_.find(topic);
  if (it == topics_.end() || partition < 0 ||
      static_cast<std::size_t>(partition) >= it->second.partitions.size()) {
    return Status::not_found("fake: no such partition");
  }
  return static_cast<cluster::LocalPartition*>(it->second.partitions[partition].get());
}

Status FakeCluster::add_topic(const std::string& name, std::int32_t partitions) {
  if (topics_.count(name) > 0) return Status::already_exists(name);
  Topic topic;
  topic.id[15] = next_id_++;
  for (std::int32_t i = 0; i < partitions; ++i) {
    topic.partitions.push_back(std::make_unique<FakePartition>(this, 3));
  }
  topics_.emplace(name, std::move(topic));
  return Status::ok();
}

FakePartition* FakeCluster::partition(const std::string& topic, std::int32_t index) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return nullptr;
  return it->second.partitions.at(index).get();
}

void FakeCluster::create_topics(std::vector<cluster::TopicSpec> topics, std::int64_t,
                                std::function<void(std::vector<cluster::AdminResult>)> done) {
  std::vector<cluster::AdminResult> results;
  for (cluster::TopicSpec& spec : topics) {
    cluster::AdminResult r;
    r.name = spec.name;
    std::int32_t partitions = spec.partitions < 0 ? 1 : spec.partitions;
    if (partitions == 0) {
      r.status = Status::invalid_argument("partitions must be positive");
      r.kafka_error = 37;  // INVALID_PARTITIONS
    } else if (spec.replication_factor > 1) {
      r.status = Status::invalid_argument("one broker only");
      r.kafka_error = 38;  // INVALID_REPLICATION_FACTOR
    } else if (topics_.count(spec.name) > 0) {
      r.status = Status::already_exists(spec.name);
    } else if (!spec.validate_only) {
      Status added = add_topic(spec.name, partitions);
      if (added.is_ok()) topics_.find(spec.name)->second.configs = spec.configs;
      r.status = added;
    }
    results.push_back(std::move(r));
  }
  asio::post(io_, [done = std::move(done), results = std::move(results)] { done(results); });
}

void FakeCluster::delete_topics(std::vector<std::string> names, std::int64_t,
                                std::function<void(std::vector<cluster::AdminResult>)> done) {
  std::vector<cluster::AdminResult> results;
  for (const std::string& name : names) {
    cluster::AdminResult r;
    r.name = name;
    if (topics_.erase(name) == 0) r.status = Status::not_found(name);
    results.push_back(std::move(r));
  }
  asio::post(io_, [done = std::move(done), results = std::move(results)] { done(results); });
}

void FakeCluster::create_partitions(
    std::vector<std::pair<std::string, std::int32_t>> new_totals, std::int64_t,
    bool validate_only, std::function<void(std::vector<cluster::AdminResult>)> done) {
  std::vector<cluster::AdminResult> results;
  for (const auto& [name, total] : new_totals) {
    cluster::AdminResult r;
    r.name = name;
    auto it = topics_.find(name);
    if (it == topics_.end()) {
      r.status = Status::not_found(name);
    } else if (static_cast<std::size_t>(total) <= it->second.partitions.size()) {
      r.status = Status::invalid_argument("partition count can only grow");
      r.kafka_error = 37;
    } else if (!validate_only) {
      while (it->second.partitions.size() < static_cast<std::size_t>(total)) {
        it->second.partitions.push_back(std::make_unique<FakePartition>(this, 3));
      }
    }
    results.push_back(std::move(r));
  }
  asio::post(io_, [done = std::move(done), results = std::move(results)] { done(results); });
}

Result<std::map<std::string, std::string>> FakeCluster::describe_topic_configs(
    std::string_view topic) const {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return Status::not_found(std::string(topic));
  std::map<std::string, std::string> configs = kTopicDefaults;
  for (const auto& [k, v] : it->second.configs) configs[k] = v;
  return configs;
}

std::map<std::string, std::string> FakeCluster::describe_broker_configs() const {
  return {{"broker.id", "1"}, {"num.partitions", "1"}};
}

}  // namespace mq::kafka::testing
