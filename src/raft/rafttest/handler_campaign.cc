// campaign <id>: the node starts an election now (a PreVote round first when enabled).
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_campaign(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  for (std::uint64_t id : ids) nodes_[id - 1]->raw_node->campaign();
  return Status::ok();
}

}  // namespace mq::raft::rafttest
