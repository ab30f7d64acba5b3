// CreateTopics (key 19; CreateTopicsRequest.json). v0-v7 served: partitions and replication
// factor (-1 = the broker default, v4+), manual assignments, configs (retention.ms,
// retention.bytes, ... validated by the cluster layer: INVALID_CONFIG), validate_only (v1+).
// Names appearing twice in one request get INVALID_REQUEST (as Kafka). The controller decides;
// errors map through kafka/error_codes.h. v5+ answers carry the resulting partitions,
// replication factor and configs, v7+ the topic id.
#include <map>

#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

using Response = protocol::CreateTopicsResponse;

cluster::TopicSpec to_spec(const protocol::CreateTopicsRequest::CreatableTopic& topic,
                           bool validate_only) {
  cluster::TopicSpec spec;
  spec.name = topic.name;
  spec.partitions = topic.num_partitions;
  spec.replication_factor = topic.replication_factor;
  for (const auto& assignment : topic.assignments) {
    std::vector<BrokerId>& brokers = spec.assignments[assignment.partition_index];
    for (std::int32_t id : assignment.broker_ids) brokers.emplace_back(id);
  }
  for (const auto& config : topic.configs) {
    if (config.value.has_value()) spec.configs[config.name] = *config.value;
  }
  spec.validate_only = validate_only;
  return spec;
}

void fill_details(const RequestContext& ctx, const cluster::TopicSpec* spec,
                  Response::CreatableTopicResult* out) {
  cluster::MetadataSnapshot metadata = ctx.cluster->metadata();
  const cluster::TopicInfo* info = find_topic(metadata, out->name);
  if (info != nullptr && (spec == nullptr || !spec->validate_only)) {
    out->topic_id = to_wire_uuid(info->topic_id);
    out->num_partitions = static_cast<std::int32_t>(info->partitions.size());
    out->replication_factor = info->partitions.empty()
                                  ? -1
                                  : static_cast<std::int16_t>(info->partitions[0].replicas.size());
  } else if (spec != nullptr) {
    out->num_partitions = spec->partitions;
    out->replication_factor = spec->replication_factor;
  }
  Result<std::map<std::string, std::string>> configs =
      ctx.cluster->describe_topic_configs(out->name);
  if (!configs.has_value()) {
    out->configs = std::nullopt;
    return;
  }
  out->configs.emplace();
  for (const auto& [name, value] : *configs) {
    Response::CreatableTopicConfigs entry;
    entry.name = name;
    entry.value = value;
    bool set = info != nullptr && info->configs.count(name) > 0;
    entry.config_source = set ? 1 : 5;  // DYNAMIC_TOPIC_CONFIG or DEFAULT_CONFIG
    out->configs->push_back(std::move(entry));
  }
}

}  // namespace

void handle_create_topics(const RequestContext& ctx, protocol::CreateTopicsRequest request,
                          Respond respond) {
  std::map<std::string, int> seen;
  for (const auto& topic : request.topics) ++seen[topic.name];
  std::vector<cluster::TopicSpec> specs;
  for (const auto& topic : request.topics) {
    if (seen[topic.name] == 1) specs.push_back(to_spec(topic, request.validate_only));
  }
  auto finish = [ctx, seen, specs, order = request.topics, respond = std::move(respond)](
                    std::vector<cluster::AdminResult> results) {
    Response response;
    std::map<std::string, const cluster::AdminResult*> by_name;
    for (const cluster::AdminResult& r : results) by_name[r.name] = &r;
    std::map<std::string, const cluster::TopicSpec*> spec_by_name;
    for (const cluster::TopicSpec& s : specs) spec_by_name[s.name] = &s;
    for (const auto& topic : order) {
      Response::CreatableTopicResult out;
      out.name = topic.name;
      if (seen.at(topic.name) > 1) {
        out.error_code = code(KafkaError::kInvalidRequest);
        out.error_message = "topic named more than once in one request";
      } else if (auto it = by_name.find(topic.name); it == by_name.end()) {
        out.error_code = code(KafkaError::kUnknownServerError);
        out.error_message = "no result from the controller";
      } else {
        out.error_code = code(admin_error(*it->second));
        if (!it->second->status.is_ok()) out.error_message = it->second->status.message();
        else out.error_message = std::nullopt;
      }
      if (out.error_code == 0 && ctx.api_version >= 5) {
        fill_details(ctx, spec_by_name[topic.name], &out);
      }
      response.topics.push_back(std::move(out));
    }
    respond(protocol::AnyResponse(std::move(response)));
  };
  if (specs.empty()) {
    finish({});
    return;
  }
  ctx.cluster->create_topics(std::move(specs), request.timeout_ms, std::move(finish));
}

}  // namespace mq::kafka
