// DeleteGroups (key 42; DeleteGroupsRequest.json). v0-v2 served (v2 flexible). Only an Empty
// group can be deleted (NON_EMPTY_GROUP otherwise, GROUP_ID_NOT_FOUND when unknown); its offsets
// and metadata get tombstones in __consumer_offsets before the answer.
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_delete_groups(const RequestContext& ctx, protocol::DeleteGroupsRequest request,
                          Respond respond) {
  groups::coordinator_for(*ctx.cluster, *ctx.io)
      .delete_groups(std::move(request.groups_names),
                     [respond = std::move(respond)](
                         std::vector<std::pair<std::string, std::int16_t>> results) {
                       protocol::DeleteGroupsResponse response;
                       for (auto& [id, error] : results) {
                         auto& out = response.results.emplace_back();
                         out.group_id = std::move(id);
                         out.error_code = error;
                       }
                       respond(protocol::AnyResponse(std::move(response)));
                     });
}

}  // namespace mq::kafka
