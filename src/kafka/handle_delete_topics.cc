// DeleteTopics (key 20; DeleteTopicsRequest.json). v0-v6 served; v0-v5 name topics in
// topic_names, v6 in `topics` by name or by id (an unknown id gets UNKNOWN_TOPIC_ID).
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_delete_topics(const RequestContext& ctx, protocol::DeleteTopicsRequest request,
                          Respond respond) {
  using Result = protocol::DeleteTopicsResponse::DeletableTopicResult;
  std::vector<Result> early;      // answered without the controller
  std::vector<std::string> names;
  std::map<std::string, Uuid> ids;
  if (ctx.api_version >= 6) {
    cluster::MetadataSnapshot metadata = ctx.cluster->metadata();
    for (const auto& topic : request.topics) {
      if (topic.name.has_value() && !topic.name->empty()) {
        names.push_back(*topic.name);
        continue;
      }
      const cluster::TopicInfo* info = find_topic_by_id(metadata, topic.topic_id);
      if (info == nullptr) {
        Result out;
        out.name = std::nullopt;
        out.topic_id = topic.topic_id;
        out.error_code = code(KafkaError::kUnknownTopicId);
        early.push_back(std::move(out));
        continue;
      }
      names.push_back(info->name);
      ids[info->name] = topic.topic_id;
    }
  } else {
    names = request.topic_names;
  }
  auto finish = [early = std::move(early), ids = std::move(ids),
                 respond = std::move(respond)](std::vector<cluster::AdminResult> results) {
    protocol::DeleteTopicsResponse response;
    response.responses = early;
    for (const cluster::AdminResult& r : results) {
      Result out;
      out.name = r.name;
      if (auto it = ids.find(r.name); it != ids.end()) out.topic_id = it->second;
      out.error_code = code(admin_error(r));
      if (!r.status.is_ok()) out.error_message = r.status.message();
      response.responses.push_back(std::move(out));
    }
    respond(protocol::AnyResponse(std::move(response)));
  };
  if (names.empty()) {
    finish({});
    return;
  }
  ctx.cluster->delete_topics(std::move(names), request.timeout_ms, std::move(finish));
}

}  // namespace mq::kafka
