// raft-state [ids...]: role, membership, term and known leader of each node (default: all).
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_raft_state(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/true));
  for (std::uint64_t id : ids) out_ << describe_state(id) << "\n";
  return Status::ok();
}

}  // namespace mq::raft::rafttest
