// CreatePartitions (key 37; CreatePartitionsRequest.json). v0-v3 served: raises a topic's
// partition count (never lowers it: INVALID_PARTITIONS from the controller), validate_only.
// Manual assignments of the new partitions are not supported (INVALID_REPLICA_ASSIGNMENT):
// the controller places them.
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_create_partitions(const RequestContext& ctx,
                              protocol::CreatePartitionsRequest request, Respond respond) {
  using TopicResult = protocol::CreatePartitionsResponse::CreatePartitionsTopicResult;
  std::vector<TopicResult> early;
  std::vector<std::pair<std::string, std::int32_t>> totals;
  for (const auto& topic : request.topics) {
    if (topic.assignments.has_value() && !topic.assignments->empty()) {
      TopicResult out;
      out.name = topic.name;
      out.error_code = code(KafkaError::kInvalidReplicaAssignment);
      out.error_message = "raftmq places new partitions itself";
      early.push_back(std::move(out));
      continue;
    }
    totals.emplace_back(topic.name, topic.count);
  }
  auto finish = [early = std::move(early),
                 respond = std::move(respond)](std::vector<cluster::AdminResult> results) {
    protocol::CreatePartitionsResponse response;
    response.results = early;
    for (const cluster::AdminResult& r : results) {
      TopicResult out;
      out.name = r.name;
      out.error_code = code(admin_error(r));
      if (!r.status.is_ok()) out.error_message = r.status.message();
      response.results.push_back(std::move(out));
    }
    respond(protocol::AnyResponse(std::move(response)));
  };
  if (totals.empty()) {
    finish({});
    return;
  }
  ctx.cluster->create_partitions(std::move(totals), request.timeout_ms, request.validate_only,
                                 std::move(finish));
}

}  // namespace mq::kafka
