// report-unreachable <leader> <peer>: the transport could not reach the peer.
// report-snapshot <leader> <peer> ok=true|false: sending a snapshot finished or failed.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_report(const TestData& block) {
  if (block.args.size() < 2) {
    return Status::invalid_argument("usage: " + block.command + " <leader> <peer>");
  }
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  if (ids.size() != 2) return Status::invalid_argument("name the reporting node and the peer");
  RawNode& raw_node = *nodes_[ids[0] - 1]->raw_node;
  if (block.command == "report-unreachable") {
    raw_node.report_unreachable(NodeId(ids[1]));
    return Status::ok();
  }
  MQ_ASSIGN_OR_RETURN(bool ok, block.arg_bool("ok"));
  raw_node.report_snapshot(NodeId(ids[1]), ok);
  return Status::ok();
}

}  // namespace mq::raft::rafttest
