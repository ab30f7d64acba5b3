// LeaveGroup (key 13; LeaveGroupRequest.json). v0-v5 served: v0-v2 one member id; v3+ a batch
// of members by member id and/or group.instance.id (KIP-345), per-member errors; v4 flexible;
// v5 reason (logged nowhere; accepted).
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_leave_group(const RequestContext& ctx, protocol::LeaveGroupRequest request,
                        Respond respond) {
  std::vector<groups::MemberIdentity> members;
  if (ctx.api_version <= 2) {
    members.push_back(groups::MemberIdentity{request.member_id, std::nullopt});
  } else {
    for (const auto& m : request.members) {
      members.push_back(groups::MemberIdentity{m.member_id, m.group_instance_id});
    }
  }
  groups::LeaveResult result =
      groups::coordinator_for(*ctx.cluster, *ctx.io).leave(request.group_id, members);
  protocol::LeaveGroupResponse response;
  if (ctx.api_version <= 2) {
    response.error_code = result.error != 0 ? result.error : result.member_errors.front();
  } else {
    response.error_code = result.error;
    if (result.error == 0) {
      for (std::size_t i = 0; i < members.size(); ++i) {
        auto& out = response.members.emplace_back();
        out.member_id = members[i].member_id;
        out.group_instance_id = members[i].instance_id;
        out.error_code = result.member_errors[i];
      }
    }
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
