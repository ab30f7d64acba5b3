// restart <id>: the node crashes and restarts from its stable storage. Everything not persisted
// is lost: a Ready taken with ready-send but not yet persisted, the in-memory state machine
// (rebuilt from the storage's snapshot; committed entries after it are applied again), and all
// volatile Raft state (role, leader, progress). Messages already in the network stay there.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_restart(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  for (std::uint64_t id : ids) {
    Node& n = *nodes_[id - 1];
    const bool lost_ready = n.held_ready.has_value();
    n.held_ready.reset();
    n.raw_node.reset();
    MQ_RETURN_IF_ERROR(restore_from_storage(n));
    n.config.applied = n.applied;
    MQ_ASSIGN_OR_RETURN(n.raw_node, RawNode::create(n.config, n.storage.get()));
    if (!quiet_) {
      out_ << describe_state(id) << " restarted at applied " << n.applied
           << (lost_ready ? " (its unpersisted Ready was lost)" : "") << "\n";
    }
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
