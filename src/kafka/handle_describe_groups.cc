// DescribeGroups (key 15; DescribeGroupsRequest.json). v0-v5 served: v3 authorized operations
// (not computed: no ACLs, INT32_MIN = "not requested/unknown"), v4 group.instance.id, v5
// flexible. A group this coordinator does not know is described as "Dead" with no error
// (Kafka's answer); a group coordinated elsewhere gets NOT_COORDINATOR.
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_describe_groups(const RequestContext& ctx, protocol::DescribeGroupsRequest request,
                            Respond respond) {
  groups::Coordinator& coordinator = groups::coordinator_for(*ctx.cluster, *ctx.io);
  protocol::DescribeGroupsResponse response;
  for (const std::string& id : request.groups) {
    groups::GroupDescription d = coordinator.describe(id);
    auto& out = response.groups.emplace_back();
    out.error_code = d.error;
    out.group_id = id;
    out.group_state = d.state;
    out.protocol_type = d.protocol_type;
    out.protocol_data = d.protocol;
    for (auto& m : d.members) {
      auto& om = out.members.emplace_back();
      om.member_id = std::move(m.member_id);
      if (ctx.api_version >= 4) om.group_instance_id = std::move(m.instance_id);
      om.client_id = std::move(m.client_id);
      om.client_host = std::move(m.client_host);
      om.member_metadata = std::move(m.metadata);
      om.member_assignment = std::move(m.assignment);
    }
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
