// stabilize [ids...]: alternates "every node with a Ready handles it" and "every node
// receives its queued messages" until nothing is left to do (etcd's stabilize). Bounded: a
// core that never goes quiet is reported as an error instead of looping forever.
#include "raft/rafttest/interaction_env.h"

#include <algorithm>

namespace mq::raft::rafttest {
namespace {
constexpr int kStabilizeRoundsMax = 200;
}  // namespace

Status InteractionEnv::handle_stabilize(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/true));
  for (int round = 0; round < kStabilizeRoundsMax; ++round) {
    bool done = true;
    for (std::uint64_t id : ids) {
      const Node& n = *nodes_[id - 1];
      if (n.held_ready || !n.raw_node->has_ready()) continue;  // held: waits for ready-persist
      done = false;
      if (!quiet_) out_ << "> " << id << " handling Ready\n";
      MQ_RETURN_IF_ERROR(process_ready(id));
    }
    for (std::uint64_t id : ids) {
      const bool any = std::any_of(in_flight_.begin(), in_flight_.end(),
                                   [id](const Message& m) { return m.to.value() == id; });
      if (!any) continue;
      done = false;
      if (!quiet_) out_ << "> " << id << " receiving messages\n";
      deliver(id, {}, "");
    }
    if (done) return Status::ok();
  }
  return Status::internal("not stable after " + std::to_string(kStabilizeRoundsMax) + " rounds");
}

}  // namespace mq::raft::rafttest
