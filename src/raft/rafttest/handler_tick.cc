// tick-election <id...>: election_ticks ticks; tick-heartbeat <id...>: heartbeat_ticks ticks;
// tick <id...> n=<k>: k ticks. Nothing is printed: the effects show in the next Ready.
// Note the randomized election timeout is in [election, 2*election) ticks (§5.2), so one
// tick-election does not necessarily start an election.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_tick(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  std::uint64_t explicit_ticks = 0;
  if (block.command == "tick") {
    MQ_ASSIGN_OR_RETURN(explicit_ticks, block.arg_uint("n"));
    constexpr std::uint64_t kTicksMax = 10000;
    if (explicit_ticks > kTicksMax) return Status::invalid_argument("too many ticks");
  }
  for (std::uint64_t id : ids) {
    Node* n = nodes_[id - 1].get();
    std::uint64_t ticks = explicit_ticks;
    if (block.command == "tick-election") ticks = n->config.election_ticks;
    if (block.command == "tick-heartbeat") ticks = n->config.heartbeat_ticks;
    for (std::uint64_t k = 0; k < ticks; ++k) n->raw_node->tick();
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
