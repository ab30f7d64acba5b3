// UnregisterBroker (key 64, KIP-500/KIP-631; UnregisterBrokerRequest.json), v0: removes a
// drained broker's record from the cluster (ClusterApi::remove_broker, docs/cluster.md
// "Removing a broker"; `raftmq broker remove N`, like Kafka's `kafka-cluster.sh unregister`).
// Answered once the removal is committed and applied by every live broker (at most
// kUnregisterTimeoutMs; docs/cluster.md "Admin answers wait for the live brokers"), or
// refused: BROKER_ID_NOT_REGISTERED for an unknown (or already removed) id, INVALID_REQUEST
// with the reason when it still holds replicas or its removal would cost the controller its
// quorum, NOT_CONTROLLER / REQUEST_TIMED_OUT when no controller leader answered.
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

namespace {
constexpr std::int64_t kUnregisterTimeoutMs = 15000;
}  // namespace

void handle_unregister_broker(const RequestContext& ctx, protocol::UnregisterBrokerRequest request,
                              Respond respond) {
  ctx.cluster->remove_broker(BrokerId(request.broker_id), kUnregisterTimeoutMs,
                             [respond = std::move(respond)](cluster::AdminResult r) {
                               protocol::UnregisterBrokerResponse response;
                               response.error_code = code(admin_error(r));
                               if (!r.status.is_ok()) response.error_message = r.status.message();
                               respond(protocol::AnyResponse(std::move(response)));
                             });
}

}  // namespace mq::kafka
