// JoinGroup (key 11; JoinGroupRequest.json). v0-v9 served: v1 rebalance timeout (KIP-62),
// v4 MEMBER_ID_REQUIRED (KIP-394), v5 group.instance.id (KIP-345), v6 flexible, v7 protocol
// type/name in the response, v8 reason, v9 skip_assignment (always false: a static leader that
// rejoins triggers a rebalance instead). The state machine is groups::Coordinator.
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_join_group(const RequestContext& ctx, protocol::JoinGroupRequest request,
                       Respond respond) {
  groups::JoinArgs args;
  args.group_id = std::move(request.group_id);
  args.member_id = std::move(request.member_id);
  args.instance_id = std::move(request.group_instance_id);
  args.client_id = ctx.client_id;
  args.session_timeout_ms = request.session_timeout_ms;
  // v0 has no rebalance timeout: the session timeout is used (Kafka does the same).
  args.rebalance_timeout_ms =
      ctx.api_version >= 1 ? request.rebalance_timeout_ms : request.session_timeout_ms;
  args.protocol_type = std::move(request.protocol_type);
  for (auto& p : request.protocols) {
    args.protocols.push_back(groups::Protocol{std::move(p.name), std::move(p.metadata)});
  }
  args.require_known_member_id = ctx.api_version >= 4;
  std::int16_t version = ctx.api_version;
  groups::coordinator_for(*ctx.cluster, *ctx.io)
      .join(std::move(args), [version, respond = std::move(respond)](groups::JoinResult r) {
        protocol::JoinGroupResponse response;
        response.error_code = r.error;
        response.generation_id = r.generation;
        response.protocol_name = r.protocol_name;
        if (version >= 7 && r.error == 0) response.protocol_type = r.protocol_type;
        response.leader = r.leader;
        response.member_id = r.member_id;
        for (auto& m : r.members) {
          auto& out = response.members.emplace_back();
          out.member_id = std::move(m.member_id);
          if (version >= 5) out.group_instance_id = std::move(m.instance_id);
          out.metadata = std::move(m.metadata);
        }
        respond(protocol::AnyResponse(std::move(response)));
      });
}

}  // namespace mq::kafka
