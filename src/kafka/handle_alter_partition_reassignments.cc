// AlterPartitionReassignments (key 45, KIP-455; AlterPartitionReassignmentsRequest.json). v0
// served: each partition's replicas become the given list (ClusterApi::move_partition: the
// partition leader adds the new replicas as learners, waits for them to catch up, then swaps
// the voters with one joint-consensus change, docs/cluster.md "Partition moves"). The answer
// comes when the new assignment is recorded by the controller, not when the move ends (as in
// Kafka). Cancelling (null replicas) is not supported: INVALID_REPLICA_ASSIGNMENT.
#include <memory>

#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_alter_partition_reassignments(const RequestContext& ctx,
                                          protocol::AlterPartitionReassignmentsRequest request,
                                          Respond respond) {
  using Response = protocol::AlterPartitionReassignmentsResponse;
  struct State {
    Response response;
    std::size_t pending = 1;  // released after the loop below
    Respond respond;
    void done() {
      if (--pending == 0) respond(protocol::AnyResponse(std::move(response)));
    }
  };
  auto state = std::make_shared<State>();
  state->respond = std::move(respond);
  for (const auto& topic : request.topics) {
    Response::ReassignableTopicResponse t;
    t.name = topic.name;
    for (const auto& p : topic.partitions) {
      Response::ReassignablePartitionResponse out;
      out.partition_index = p.partition_index;
      if (!p.replicas.has_value()) {
        out.error_code = code(KafkaError::kInvalidReplicaAssignment);
        out.error_message = "cancelling a reassignment is not supported";
      } else if (p.replicas->empty()) {
        out.error_code = code(KafkaError::kInvalidReplicaAssignment);
        out.error_message = "a partition needs at least one replica";
      }
      t.partitions.push_back(std::move(out));
    }
    state->response.responses.push_back(std::move(t));
  }
  for (std::size_t ti = 0; ti < request.topics.size(); ++ti) {
    const auto& topic = request.topics[ti];
    for (std::size_t pi = 0; pi < topic.partitions.size(); ++pi) {
      const auto& p = topic.partitions[pi];
      if (state->response.responses[ti].partitions[pi].error_code != 0) continue;
      std::vector<BrokerId> replicas;
      for (std::int32_t b : *p.replicas) replicas.push_back(BrokerId(b));
      ++state->pending;
      ctx.cluster->move_partition(
          topic.name, p.partition_index, std::move(replicas), request.timeout_ms,
          [state, ti, pi](cluster::AdminResult r) {
            auto& out = state->response.responses[ti].partitions[pi];
            out.error_code = code(admin_error(r));
            if (!r.status.is_ok()) out.error_message = r.status.message();
            state->done();
          });
    }
  }
  state->done();
}

}  // namespace mq::kafka
