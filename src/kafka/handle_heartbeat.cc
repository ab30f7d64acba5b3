// Heartbeat (key 12; HeartbeatRequest.json). v0-v4 served: v3 group.instance.id, v4 flexible.
// REBALANCE_IN_PROGRESS tells a member to rejoin; ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID /
// FENCED_INSTANCE_ID as Kafka's GroupCoordinator.handleHeartbeat.
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_heartbeat(const RequestContext& ctx, protocol::HeartbeatRequest request,
                      Respond respond) {
  protocol::HeartbeatResponse response;
  response.error_code = groups::coordinator_for(*ctx.cluster, *ctx.io)
                            .heartbeat(request.group_id, request.generation_id,
                                       request.member_id, request.group_instance_id);
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
