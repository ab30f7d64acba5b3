// Metadata (key 3; MetadataRequest.json). v0-v12 served. Brokers are the live ones (plus this
// one and any partition leader), the controller is a real broker (kafkajs sends admin requests
// to it), leaders and epochs come from the cluster's metadata, topic ids from v10 and lookup
// by id from v10 (UNKNOWN_TOPIC_ID when absent). Unknown topics are auto-created only when the
// broker allows it (auto_create_topics, off by default) and the request does too (v4+);
// they are answered LEADER_NOT_AVAILABLE meanwhile, as Kafka does.
//
// Leader wait (ServerConfig::metadata_leader_wait_ms): a request naming topics of which a
// partition has no leader is answered once every such partition has one, or at the bound
// (then LEADER_NOT_AVAILABLE for those still without), re-checked every kLeaderPollMs on the
// loop. After a leader's death the client's first Metadata usually arrives during the
// election; answered "no leader", librdkafka asks again only on its own timers. Topics being
// auto-created and requests for every topic are answered at once.
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <set>

#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

using Response = protocol::MetadataResponse;

Response::MetadataResponseTopic describe_topic(const cluster::TopicInfo& topic) {
  Response::MetadataResponseTopic out;
  out.name = topic.name;
  out.topic_id = to_wire_uuid(topic.topic_id);
  out.is_internal = topic.internal;
  for (const cluster::PartitionInfo& p : topic.partitions) {
    Response::MetadataResponsePartition part;
    part.partition_index = p.partition;
    part.leader_id = p.leader.value();
    part.leader_epoch = p.leader_epoch;
    if (p.leader.value() < 0) part.error_code = code(KafkaError::kLeaderNotAvailable);
    for (BrokerId id : p.replicas) part.replica_nodes.push_back(id.value());
    for (BrokerId id : p.isr) part.isr_nodes.push_back(id.value());
    for (BrokerId id : p.offline) part.offline_replicas.push_back(id.value());
    out.partitions.push_back(std::move(part));
  }
  return out;
}

Response::MetadataResponseTopic topic_error(std::optional<std::string> name, Uuid id,
                                            KafkaError error) {
  Response::MetadataResponseTopic out;
  out.name = std::move(name);
  out.topic_id = id;
  out.error_code = code(error);
  return out;
}

bool valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void add_brokers(const RequestContext& ctx, const cluster::MetadataSnapshot& metadata,
                 Response* response) {
  std::set<std::int32_t> leaders;
  for (const cluster::TopicInfo& topic : metadata.topics) {
    for (const cluster::PartitionInfo& p : topic.partitions) leaders.insert(p.leader.value());
  }
  for (const cluster::BrokerInfo& broker : metadata.brokers) {
    bool listed = broker.alive || broker.id == ctx.cluster->self() ||
                  leaders.count(broker.id.value()) > 0 || broker.id == metadata.controller;
    if (!listed) continue;
    Response::MetadataResponseBroker entry;
    entry.node_id = broker.id.value();
    entry.host = broker.host;
    entry.port = broker.kafka_port;
    entry.rack = broker.rack;
    response->brokers.push_back(std::move(entry));
  }
}

constexpr std::int64_t kLeaderPollMs = 20;

bool all_topics_requested(const RequestContext& ctx, const protocol::MetadataRequest& request) {
  // v0: an empty list means every topic; v1+: null means every topic, empty means none.
  return !request.topics.has_value() || (ctx.api_version == 0 && request.topics->empty());
}

bool has_leaderless_partition(const Response& response) {
  for (const auto& topic : response.topics) {
    if (topic.error_code != 0) continue;  // unknown, being created...: nothing to wait for
    for (const auto& p : topic.partitions) {
      if (p.leader_id < 0) return true;
    }
  }
  return false;
}

// Builds the answer from the current metadata; `to_create` (may be null: no creation) gets
// the unknown topics to auto-create.
Response build_response(const RequestContext& ctx, const protocol::MetadataRequest& request,
                        std::vector<cluster::TopicSpec>* to_create) {
  const std::int16_t version = ctx.api_version;
  cluster::MetadataSnapshot metadata = ctx.cluster->metadata();
  Response response;
  response.cluster_id = metadata.cluster_id;
  response.controller_id = metadata.controller.value();
  add_brokers(ctx, metadata, &response);
  if (all_topics_requested(ctx, request)) {
    for (const cluster::TopicInfo& topic : metadata.topics) {
      response.topics.push_back(describe_topic(topic));
    }
    return response;
  }
  bool may_create = to_create != nullptr && ctx.config->auto_create_topics &&
                    (version < 4 || request.allow_auto_topic_creation);
  for (const auto& wanted : *request.topics) {
    if (!wanted.name.has_value() || wanted.name->empty()) {
      const cluster::TopicInfo* topic = find_topic_by_id(metadata, wanted.topic_id);
      if (topic == nullptr) {
        response.topics.push_back(
            topic_error(std::nullopt, wanted.topic_id, KafkaError::kUnknownTopicId));
      } else {
        response.topics.push_back(describe_topic(*topic));
      }
      continue;
    }
    const std::string& name = *wanted.name;
    if (const cluster::TopicInfo* topic = find_topic(metadata, name)) {
      response.topics.push_back(describe_topic(*topic));
    } else if (!valid_topic_name(name)) {
      response.topics.push_back(topic_error(name, {}, KafkaError::kInvalidTopicException));
    } else if (may_create) {
      cluster::TopicSpec spec;
      spec.name = name;
      to_create->push_back(std::move(spec));
      response.topics.push_back(topic_error(name, {}, KafkaError::kLeaderNotAvailable));
    } else {
      response.topics.push_back(topic_error(name, {}, KafkaError::kUnknownTopicOrPartition));
    }
  }
  return response;
}

// A Metadata answer waiting for leaders (see the top of the file).
struct LeaderWait : std::enable_shared_from_this<LeaderWait> {
  LeaderWait(const RequestContext& c, protocol::MetadataRequest r, Respond d,
             std::chrono::steady_clock::time_point until)
      : ctx(c), request(std::move(r)), respond(std::move(d)), timer(*c.io), deadline(until) {}

  void arm() {
    timer.expires_after(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(kLeaderPollMs),
        std::max<std::chrono::steady_clock::duration>(
            deadline - std::chrono::steady_clock::now(), std::chrono::milliseconds(0))));
    timer.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (!ec) self->poll();  // cancelled: the server is stopping
    });
  }

  void poll() {
    Response response = build_response(ctx, request, nullptr);
    if (has_leaderless_partition(response) && std::chrono::steady_clock::now() < deadline) {
      arm();
      return;
    }
    respond(protocol::AnyResponse(std::move(response)));
  }

  RequestContext ctx;
  protocol::MetadataRequest request;
  Respond respond;
  asio::steady_timer timer;
  std::chrono::steady_clock::time_point deadline;
};

}  // namespace

void handle_metadata(const RequestContext& ctx, protocol::MetadataRequest request,
                     Respond respond) {
  std::vector<cluster::TopicSpec> to_create;
  Response response = build_response(ctx, request, &to_create);
  if (!to_create.empty()) {
    // Fire and forget: the client retries Metadata until the leaders are elected.
    ctx.cluster->create_topics(std::move(to_create), 30'000,
                               [](std::vector<cluster::AdminResult>) {});
  }
  if (ctx.config->metadata_leader_wait_ms > 0 && ctx.io != nullptr &&
      !all_topics_requested(ctx, request) && has_leaderless_partition(response)) {
    auto wait = std::make_shared<LeaderWait>(
        ctx, std::move(request), std::move(respond),
        std::chrono::steady_clock::now() +
            std::chrono::milliseconds(ctx.config->metadata_leader_wait_ms));
    wait->arm();
    return;
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
