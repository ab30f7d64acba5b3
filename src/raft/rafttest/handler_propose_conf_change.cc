// propose-conf-change <id> [transition=auto|implicit|explicit] [v<id> l<id> r<id> ...]
// The changes may also be given as input lines (etcd style). No change at all proposes
// leaving the joint configuration.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_propose_conf_change(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  if (ids.size() != 1) return Status::invalid_argument("name exactly one node");
  MQ_ASSIGN_OR_RETURN(Node * n, node(ids.front()));
  ConfChange change;
  if (block.has_arg("transition")) {
    MQ_ASSIGN_OR_RETURN(std::string transition, block.arg_string("transition"));
    if (transition == "auto") {
      change.transition = ConfChangeTransition::kAuto;
    } else if (transition == "implicit") {
      change.transition = ConfChangeTransition::kImplicit;
    } else if (transition == "explicit") {
      change.transition = ConfChangeTransition::kExplicit;
    } else {
      return Status::invalid_argument("transition must be auto, implicit or explicit");
    }
  }
  std::vector<std::string> tokens;
  for (std::size_t k = 1; k < block.args.size(); ++k) {
    if (block.args[k].values.empty()) tokens.push_back(block.args[k].key);
  }
  std::string_view input = block.input;
  while (!input.empty()) {
    const std::size_t space = input.find_first_of(" \n\t");
    std::string_view token = input.substr(0, space);
    if (!token.empty()) tokens.emplace_back(token);
    if (space == std::string_view::npos) break;
    input.remove_prefix(space + 1);
  }
  for (const std::string& token : tokens) {
    MQ_ASSIGN_OR_RETURN(ConfChangeSingle single, parse_conf_change_token(token));
    change.changes.push_back(single);
  }
  MQ_ASSIGN_OR_RETURN(LogIndex index, n->raw_node->propose_conf_change(change));
  if (!quiet_) {
    out_ << "proposed conf change " << describe(change) << " at index " << index
         << "\n";
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
