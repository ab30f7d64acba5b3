// status <id>: the node's hard state, applied index, membership and (on a leader) the
// progress of every peer: state, match, next, inflight window, activity, learner.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_status(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  for (std::uint64_t id : ids) {
    Node* n = nodes_[id - 1].get();
    const NodeStatus st = n->raw_node->status();
    out_ << describe_state(id) << "\n";
    out_ << "HardState " << describe(st.hard_state) << " Applied:" << st.applied
         << " LastIndex:" << st.last_index << "\n";
    out_ << describe(st.conf_state) << "\n";
    if (st.lead_transferee != kNoNode) out_ << "transferring to " << st.lead_transferee << "\n";
    for (const auto& [peer, p] : st.progress) {
      out_ << peer << ": " << progress_state_name(p.state) << " match=" << p.match
           << " next=" << p.next;
      if (p.inflight_msgs > 0) out_ << " inflight=" << p.inflight_msgs;
      if (!p.recent_active) out_ << " inactive";
      if (p.learner) out_ << " learner";
      out_ << "\n";
    }
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
