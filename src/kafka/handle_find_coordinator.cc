// FindCoordinator (key 10; FindCoordinatorRequest.json). v0-v4 served: v1 adds the key type
// (0 = group; transactions are not served: INVALID_REQUEST), v3 is flexible, v4 batches keys
// (KIP-699). The coordinator of a group is the leader of its __consumer_offsets partition
// (docs/groups.md); any broker answers from its metadata. COORDINATOR_NOT_AVAILABLE while the
// topic or that partition's leader is unknown.
#include "groups/records.h"
#include "groups/registry.h"
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

constexpr std::int8_t kGroupKeyType = 0;

groups::CoordinatorLocation locate(const RequestContext& ctx,
                                   const cluster::MetadataSnapshot& metadata,
                                   const std::string& key, std::int8_t key_type) {
  groups::CoordinatorLocation loc;
  if (key_type != kGroupKeyType) {
    loc.error = code(KafkaError::kInvalidRequest);
    return loc;
  }
  if (key.empty()) {
    loc.error = code(KafkaError::kInvalidGroupId);
    return loc;
  }
  loc = groups::Coordinator::locate(metadata, key);
  // The coordinator is this broker: make sure it is running (and loading the partition), so
  // the client's next request finds the state ready.
  if (loc.error == 0 && loc.node_id == ctx.cluster->self().value()) {
    (void)groups::coordinator_for(*ctx.cluster, *ctx.io);
  }
  return loc;
}

}  // namespace

void handle_find_coordinator(const RequestContext& ctx, protocol::FindCoordinatorRequest request,
                             Respond respond) {
  cluster::MetadataSnapshot metadata = ctx.cluster->metadata();
  protocol::FindCoordinatorResponse response;
  if (ctx.api_version >= 4) {
    for (const std::string& key : request.coordinator_keys) {
      groups::CoordinatorLocation loc = locate(ctx, metadata, key, request.key_type);
      auto& out = response.coordinators.emplace_back();
      out.key = key;
      out.error_code = loc.error;
      out.node_id = loc.node_id;
      out.host = loc.host;
      out.port = loc.port;
      if (loc.error != 0) out.error_message = std::nullopt;
    }
  } else {
    groups::CoordinatorLocation loc = locate(ctx, metadata, request.key, request.key_type);
    response.error_code = loc.error;
    response.node_id = loc.node_id;
    response.host = loc.host;
    response.port = loc.port;
    if (loc.error != 0 && ctx.api_version >= 1) response.error_message = std::nullopt;
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
