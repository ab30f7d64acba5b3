// OffsetForLeaderEpoch (key 23; OffsetForLeaderEpochRequest.json, KIP-101/KIP-320). v0-v4
// served. For each partition: the end offset of the requested leader epoch (the start offset of
// the next larger epoch, or the log end) as computed by the partition from its log. Consumers
// (librdkafka) use it to detect log truncation after a leader change. v2+ fences on
// current_leader_epoch. Served by the partition leader only.
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_offset_for_leader_epoch(const RequestContext& ctx,
                                    protocol::OffsetForLeaderEpochRequest request,
                                    Respond respond) {
  protocol::OffsetForLeaderEpochResponse response;
  for (const auto& topic : request.topics) {
    auto& out_topic = response.topics.emplace_back();
    out_topic.topic = topic.topic;
    for (const auto& in : topic.partitions) {
      auto& out = out_topic.partitions.emplace_back();
      out.partition = in.partition;
      Result<cluster::LocalPartition*> local = ctx.cluster->local_partition(topic.topic,
                                                                            in.partition);
      if (local.has_value() && !(*local)->is_leader()) local = Status::not_leader(topic.topic);
      if (!local.has_value()) {
        out.error_code = code(partition_error(local.error()));
        continue;
      }
      KafkaError fenced = check_leader_epoch(in.current_leader_epoch, (*local)->leader_epoch());
      if (fenced != KafkaError::kNone) {
        out.error_code = code(fenced);
        continue;
      }
      Result<cluster::OffsetForEpochResult> end = (*local)->end_offset_for_epoch(in.leader_epoch);
      if (!end.has_value()) {
        out.error_code = code(partition_error(end.error()));
        continue;
      }
      out.leader_epoch = end->leader_epoch;
      out.end_offset = end->end_offset.value();
    }
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
