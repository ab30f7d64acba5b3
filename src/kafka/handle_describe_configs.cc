// DescribeConfigs (key 32; DescribeConfigsRequest.json). v0-v4 served for topics (resource
// type 2: effective configs, explicitly set ones as DYNAMIC_TOPIC_CONFIG, the rest as
// DEFAULT_CONFIG) and for this broker (type 4, name "" or its own id: STATIC_BROKER_CONFIG).
// Other resource types get INVALID_REQUEST. Synonyms (v1+) list just the entry itself;
// documentation (v3+) is null.
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

using Response = protocol::DescribeConfigsResponse;

constexpr std::int8_t kResourceTopic = 2;
constexpr std::int8_t kResourceBroker = 4;
constexpr std::int8_t kSourceDynamicTopic = 1;
constexpr std::int8_t kSourceStaticBroker = 4;
constexpr std::int8_t kSourceDefault = 5;
constexpr std::int8_t kTypeString = 2;
constexpr std::int8_t kTypeLong = 5;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void add_entries(const std::map<std::string, std::string>& configs,
                 const std::map<std::string, std::string>& explicitly_set, std::int8_t set_source,
                 const protocol::DescribeConfigsRequest::DescribeConfigsResource& resource,
                 bool synonyms, std::int16_t version, Response::DescribeConfigsResult* out) {
  for (const auto& [name, value] : configs) {
    if (resource.configuration_keys.has_value() && !resource.configuration_keys->empty()) {
      const auto& keys = *resource.configuration_keys;
      if (std::find(keys.begin(), keys.end(), name) == keys.end()) continue;
    }
    Response::DescribeConfigsResourceResult entry;
    entry.name = name;
    entry.value = value;
    bool is_set = explicitly_set.count(name) > 0;
    entry.config_source = is_set ? set_source : kSourceDefault;
    if (version == 0) entry.is_default = !is_set;  // v1+: config_source instead
    entry.read_only = resource.resource_type == kResourceBroker;
    entry.config_type =
        ends_with(name, ".ms") || ends_with(name, ".bytes") ? kTypeLong : kTypeString;
    entry.documentation = std::nullopt;
    if (synonyms) {
      Response::DescribeConfigsSynonym synonym;
      synonym.name = name;
      synonym.value = value;
      synonym.source = entry.config_source;
      entry.synonyms.push_back(std::move(synonym));
    }
    out->configs.push_back(std::move(entry));
  }
}

}  // namespace

void handle_describe_configs(const RequestContext& ctx, protocol::DescribeConfigsRequest request,
                             Respond respond) {
  Response response;
  cluster::MetadataSnapshot metadata = ctx.cluster->metadata();
  for (const auto& resource : request.resources) {
    Response::DescribeConfigsResult& out = response.results.emplace_back();
    out.resource_type = resource.resource_type;
    out.resource_name = resource.resource_name;
    out.error_message = std::nullopt;
    if (resource.resource_type == kResourceTopic) {
      Result<std::map<std::string, std::string>> configs =
          ctx.cluster->describe_topic_configs(resource.resource_name);
      if (!configs.has_value()) {
        out.error_code = code(partition_error(configs.error()));
        out.error_message = configs.error().message();
        continue;
      }
      const cluster::TopicInfo* info = find_topic(metadata, resource.resource_name);
      add_entries(*configs, info != nullptr ? info->configs : std::map<std::string, std::string>{},
                  kSourceDynamicTopic, resource, request.include_synonyms, ctx.api_version, &out);
    } else if (resource.resource_type == kResourceBroker) {
      std::string self = std::to_string(ctx.cluster->self().value());
      if (!resource.resource_name.empty() && resource.resource_name != self) {
        out.error_code = code(KafkaError::kInvalidRequest);
        out.error_message = "ask broker " + resource.resource_name + " itself";
        continue;
      }
      std::map<std::string, std::string> configs = ctx.cluster->describe_broker_configs();
      add_entries(configs, configs, kSourceStaticBroker, resource, request.include_synonyms,
                  ctx.api_version, &out);
    } else {
      out.error_code = code(KafkaError::kInvalidRequest);
      out.error_message = "unsupported resource type " + std::to_string(resource.resource_type);
    }
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
