// propose <id> <payload> [count=<n>]: the node proposes the payload (n times, payloads
// suffixed .1 .. .n when count > 1). Prints the index each proposal will have; errors
// (not leader, uncommitted limit, transfer in progress) are printed and stop the command.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_propose(const TestData& block) {
  if (block.args.size() < 2 || !block.args[1].values.empty()) {
    return Status::invalid_argument("usage: propose <id> <payload> [count=<n>]");
  }
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  MQ_ASSIGN_OR_RETURN(Node * n, node(ids.front()));
  std::uint64_t count = 1;
  if (block.has_arg("count")) {
    MQ_ASSIGN_OR_RETURN(count, block.arg_uint("count"));
  }
  constexpr std::uint64_t kProposalsMax = 1000;
  if (count == 0 || count > kProposalsMax) return Status::invalid_argument("bad count");
  const std::string& payload = block.args[1].key;
  for (std::uint64_t k = 1; k <= count; ++k) {
    const std::string data = count == 1 ? payload : payload + "." + std::to_string(k);
    MQ_ASSIGN_OR_RETURN(LogIndex index, n->raw_node->propose(SharedBuffer(data)));
    if (!quiet_) out_ << "proposed '" << data << "' at index " << index << "\n";
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
