// ListPartitionReassignments (key 46, KIP-455; ListPartitionReassignmentsRequest.json). v0
// served: the partitions whose Raft membership still differs from their assignment, as seen by
// the answering broker (ClusterApi::list_reassignments: partitions it hosts a replica of —
// every partition being moved has a replica on its leader, and clients send this request to
// the controller, which usually hosts most partitions; docs/cluster.md).
#include <map>

#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {

void handle_list_partition_reassignments(const RequestContext& ctx,
                                         protocol::ListPartitionReassignmentsRequest request,
                                         Respond respond) {
  using Response = protocol::ListPartitionReassignmentsResponse;
  // Requested partitions (null topics: all).
  std::map<std::string, std::vector<std::int32_t>> wanted;
  if (request.topics.has_value()) {
    for (const auto& t : *request.topics) wanted[t.name] = t.partition_indexes;
  }
  std::map<std::string, Response::OngoingTopicReassignment> by_topic;
  for (const cluster::ReassignmentInfo& r : ctx.cluster->list_reassignments()) {
    if (request.topics.has_value()) {
      auto it = wanted.find(r.topic);
      if (it == wanted.end()) continue;
      bool listed = false;
      for (std::int32_t p : it->second) listed |= p == r.partition;
      if (!listed) continue;
    }
    Response::OngoingPartitionReassignment p;
    p.partition_index = r.partition;
    for (BrokerId b : r.replicas) p.replicas.push_back(b.value());
    for (BrokerId b : r.adding) p.adding_replicas.push_back(b.value());
    for (BrokerId b : r.removing) p.removing_replicas.push_back(b.value());
    Response::OngoingTopicReassignment& t = by_topic[r.topic];
    t.name = r.topic;
    t.partitions.push_back(std::move(p));
  }
  Response response;
  for (auto& [name, t] : by_topic) response.topics.push_back(std::move(t));
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace mq::kafka
