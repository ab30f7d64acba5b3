// read-index <id> ctx=<n>: requests a linearizable read (thesis §6.4); the ReadState with
// this context shows in a later Ready once the leader has confirmed its leadership.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_read_index(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  MQ_ASSIGN_OR_RETURN(std::uint64_t context, block.arg_uint("ctx"));
  return nodes_[ids.front() - 1]->raw_node->read_index(context);
}

}  // namespace mq::raft::rafttest
