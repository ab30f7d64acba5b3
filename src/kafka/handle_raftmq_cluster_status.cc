// RaftmqClusterStatus (raftmq's own API, key 10000; RaftmqClusterStatusRequest.json): the
// broker asked gathers every partition's Raft status from its leader (cluster/node_status.cc)
// and returns it encoded (cluster::encode_cluster_view) in the View bytes.
#include <algorithm>

#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

namespace {
constexpr std::int32_t kStatusWaitMaxMs = 30000;
}  // namespace

void handle_raftmq_cluster_status(const RequestContext& ctx,
                                  protocol::RaftmqClusterStatusRequest request, Respond respond) {
  std::int32_t wait_ms = std::clamp(request.timeout_ms, 1, kStatusWaitMaxMs);
  ctx.cluster->cluster_view(wait_ms, [respond = std::move(respond)](Result<Buffer> view) {
    protocol::RaftmqClusterStatusResponse response;
    if (view.has_value()) {
      response.view = std::move(*view);
    } else {
      response.error_code = code(KafkaError::kUnknownServerError);
      response.error_message = view.error().to_string();
    }
    respond(protocol::AnyResponse(std::move(response)));
  });
}

}  // namespace mq::kafka
