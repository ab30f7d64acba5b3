// transfer-leadership from=<leader> to=<transferee> (thesis §3.10).
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_transfer_leadership(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::uint64_t from, block.arg_uint("from"));
  MQ_ASSIGN_OR_RETURN(std::uint64_t to, block.arg_uint("to"));
  MQ_ASSIGN_OR_RETURN(Node * n, node(from));
  return n->raw_node->transfer_leader(NodeId(to));
}

}  // namespace mq::raft::rafttest
