// ListOffsets (key 2; ListOffsetsRequest.json). v0-v6 served (librdkafka's offsets_for_times
// needs v1). Timestamps: -2 earliest (log start offset), -1 latest (high watermark; with no
// transactions the last stable offset is the same, so isolation_level changes nothing),
// otherwise the first offset whose batch max timestamp >= the timestamp (offset -1 when none).
// v0 answers in old_style_offsets (one offset; max_num_offsets is not honoured beyond 1).
// v4+ fences on current_leader_epoch (KIP-320). Served by the partition leader only.
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

constexpr std::int64_t kLatestTimestamp = -1;
constexpr std::int64_t kEarliestTimestamp = -2;

using Response = protocol::ListOffsetsResponse;

void list_partition(const RequestContext& ctx, const std::string& topic,
                    const protocol::ListOffsetsRequest::ListOffsetsPartition& in,
                    Response::ListOffsetsPartitionResponse* out) {
  out->partition_index = in.partition_index;
  Result<cluster::LocalPartition*> local = ctx.cluster->local_partition(topic, in.partition_index);
  if (local.has_value() && !(*local)->is_leader()) local = Status::not_leader(topic);
  if (!local.has_value()) {
    out->error_code = code(partition_error(local.error()));
    return;
  }
  cluster::LocalPartition* partition = *local;
  KafkaError fenced = check_leader_epoch(in.current_leader_epoch, partition->leader_epoch());
  if (fenced != KafkaError::kNone) {
    out->error_code = code(fenced);
    return;
  }
  std::int64_t offset = -1;
  if (in.timestamp == kLatestTimestamp) {
    offset = partition->high_watermark().value();
  } else if (in.timestamp == kEarliestTimestamp) {
    offset = partition->log_start_offset().value();
  } else if (in.timestamp < 0) {
    out->error_code = code(KafkaError::kUnsupportedVersion);  // -3 (max timestamp) needs v7
    return;
  } else {
    Result<std::optional<KafkaOffset>> found = partition->offset_for_timestamp(in.timestamp);
    if (!found.has_value()) {
      out->error_code = code(partition_error(found.error()));
      return;
    }
    if (found->has_value()) offset = (*found)->value();
  }
  // Fields outside a version must stay at their defaults (the codec refuses them).
  if (ctx.api_version == 0) {
    if (offset >= 0 && in.max_num_offsets > 0) out->old_style_offsets.push_back(offset);
    return;
  }
  out->offset = offset;
  if (in.timestamp >= 0 && offset >= 0) out->timestamp = in.timestamp;
  if (ctx.api_version >= 4) out->leader_epoch = partition->leader_epoch();
}

}  // namespace

void handle_list_offsets(const RequestContext& ctx, protocol::ListOffsetsRequest request,
                         Respond respond) {
  Response response;
  for (const auto& topic : request.topics) {
    Response::ListOffsetsTopicResponse& out = response.topics.emplace_back();
    out.name = topic.name;
    for (const auto& partition : topic.partitions) {
      list_partition(ctx, topic.name, partition, &out.partitions.emplace_back());
    }
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
