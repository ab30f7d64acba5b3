// OffsetCommit (key 8; OffsetCommitRequest.json). v0-v8 served: v0 a simple commit (no
// generation or member), v1 generation + member id (+ a per-partition commit timestamp, which
// is ignored: the broker stamps commits), v2-v4 retention time (ignored: offsets are kept until
// deleted, as with Kafka's offsets.retention and KIP-211 for live groups), v6 leader epoch,
// v7 group.instance.id, v8 flexible. Answered after the offset records are committed in
// __consumer_offsets (acks=all); docs/groups.md lists the checks and errors.
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_offset_commit(const RequestContext& ctx, protocol::OffsetCommitRequest request,
                          Respond respond) {
  groups::CommitArgs args;
  args.group_id = std::move(request.group_id);
  args.generation = request.generation_id_or_member_epoch;
  args.member_id = std::move(request.member_id);
  args.instance_id = std::move(request.group_instance_id);
  for (auto& topic : request.topics) {
    for (auto& p : topic.partitions) {
      groups::CommitPartition& out = args.partitions.emplace_back();
      out.topic = topic.name;
      out.partition = p.partition_index;
      out.offset = p.committed_offset;
      out.leader_epoch = p.committed_leader_epoch;
      out.metadata = p.committed_metadata.value_or("");
    }
  }
  groups::coordinator_for(*ctx.cluster, *ctx.io)
      .commit_offsets(std::move(args), [respond = std::move(respond)](groups::CommitArgs done) {
        protocol::OffsetCommitResponse response;
        for (const groups::CommitPartition& p : done.partitions) {
          if (response.topics.empty() || response.topics.back().name != p.topic) {
            response.topics.emplace_back().name = p.topic;
          }
          auto& out = response.topics.back().partitions.emplace_back();
          out.partition_index = p.partition;
          out.error_code = p.error;
        }
        respond(protocol::AnyResponse(std::move(response)));
      });
}

}  // namespace mq::kafka
