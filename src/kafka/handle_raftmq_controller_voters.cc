// RaftmqControllerVoters (raftmq's own API, key 10001; RaftmqControllerVotersRequest.json):
// `raftmq controller voters`. Choice -1 only lists the controller group as the asked broker
// sees it; 0/1/2 record the operator's choice (automatic / voter / learner) for BrokerId
// through the controller leader (ClusterApi::set_controller_voter, forwarded like every admin
// call) and answer once the configuration matches it, then list (docs/cluster.md "Controller
// voters"). Errors: BROKER_ID_NOT_REGISTERED, INVALID_REQUEST (a refusal, with the reason),
// REQUEST_TIMED_OUT (a change in progress, or the choice recorded but not carried out yet),
// NOT_CONTROLLER; always with the message.
#include <algorithm>

#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

namespace {

constexpr std::int32_t kVotersWaitMaxMs = 120000;

void fill_members(const cluster::ClusterApi& cluster,
                  protocol::RaftmqControllerVotersResponse* response) {
  Result<cluster::ControllerMembers> members = cluster.controller_members();
  if (!members.has_value()) {
    if (response->error_code == 0) {
      response->error_code = code(KafkaError::kUnknownServerError);
      response->error_message = members.error().to_string();
    }
    return;
  }
  response->leader_id = members->leader.value();
  response->joint = members->joint;
  for (const cluster::ControllerMember& m : members->members) {
    protocol::RaftmqControllerVotersResponse::ControllerMember out;
    out.broker_id = m.id.value();
    out.voter = m.voter;
    out.learner = m.learner;
    out.choice = static_cast<std::int8_t>(m.choice);
    out.alive = m.alive;
    response->members.push_back(std::move(out));
  }
}

}  // namespace

void handle_raftmq_controller_voters(const RequestContext& ctx,
                                     protocol::RaftmqControllerVotersRequest request,
                                     Respond respond) {
  cluster::ClusterApi* cluster = ctx.cluster;
  if (request.choice < 0) {
    protocol::RaftmqControllerVotersResponse response;
    fill_members(*cluster, &response);
    return respond(protocol::AnyResponse(std::move(response)));
  }
  if (request.choice > static_cast<std::int8_t>(cluster::VoterChoice::kLearner)) {
    protocol::RaftmqControllerVotersResponse response;
    response.error_code = code(KafkaError::kInvalidRequest);
    response.error_message = "unknown controller voter choice " + std::to_string(request.choice);
    return respond(protocol::AnyResponse(std::move(response)));
  }
  std::int32_t wait_ms = std::clamp(request.timeout_ms, 0, kVotersWaitMaxMs);
  cluster->set_controller_voter(
      BrokerId(request.broker_id), static_cast<cluster::VoterChoice>(request.choice), wait_ms,
      [cluster, respond = std::move(respond)](cluster::AdminResult r) {
        protocol::RaftmqControllerVotersResponse response;
        response.error_code = code(admin_error(r));
        if (!r.status.is_ok()) response.error_message = r.status.message();
        fill_members(*cluster, &response);
        respond(protocol::AnyResponse(std::move(response)));
      });
}

}  // namespace mq::kafka
