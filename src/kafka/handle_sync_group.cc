// SyncGroup (key 14; SyncGroupRequest.json). v0-v5 served: v3 group.instance.id, v4 flexible,
// v5 protocol type/name checked against the group's and echoed (KIP-559). The leader's
// assignment is recorded in __consumer_offsets (acks=all) before any member receives its part.
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_sync_group(const RequestContext& ctx, protocol::SyncGroupRequest request,
                       Respond respond) {
  groups::SyncArgs args;
  args.group_id = std::move(request.group_id);
  args.generation = request.generation_id;
  args.member_id = std::move(request.member_id);
  args.instance_id = std::move(request.group_instance_id);
  args.protocol_type = std::move(request.protocol_type);
  args.protocol_name = std::move(request.protocol_name);
  for (auto& a : request.assignments) {
    args.assignments.emplace_back(std::move(a.member_id), std::move(a.assignment));
  }
  std::int16_t version = ctx.api_version;
  groups::coordinator_for(*ctx.cluster, *ctx.io)
      .sync(std::move(args), [version, respond = std::move(respond)](groups::SyncResult r) {
        protocol::SyncGroupResponse response;
        response.error_code = r.error;
        if (version >= 5 && r.error == 0) {
          response.protocol_type = r.protocol_type;
          response.protocol_name = r.protocol_name;
        }
        response.assignment = std::move(r.assignment);
        respond(protocol::AnyResponse(std::move(response)));
      });
}

}  // namespace mq::kafka
