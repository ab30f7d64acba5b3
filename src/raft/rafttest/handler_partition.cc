// partition g1=(1,2) g2=(3) ...: messages between different groups are dropped at delivery
//   (nodes named in no group form one more group together).
// isolate <id...>: each named node forms its own group.
// heal [ids...]: the named nodes (default: all) rejoin the rest.
#include "raft/rafttest/interaction_env.h"

#include <algorithm>

namespace mq::raft::rafttest {

Status InteractionEnv::handle_partition(const TestData& block) {
  std::vector<std::set<std::uint64_t>> groups;
  if (block.command == "heal" && block.args.empty()) {
    partition_.clear();
    if (!quiet_) out_ << "healed\n";
    return Status::ok();
  }
  if (block.command == "heal") {
    MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
    groups = partition_;
    for (std::uint64_t id : ids) {
      for (auto& group : groups) group.erase(id);
    }
    std::erase_if(groups, [](const auto& group) { return group.empty(); });
  } else if (block.command == "isolate") {
    MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
    groups = partition_;
    for (std::uint64_t id : ids) {
      for (auto& group : groups) group.erase(id);
      groups.push_back({id});
    }
    std::erase_if(groups, [](const auto& group) { return group.empty(); });
  } else {
    std::set<std::uint64_t> seen;
    for (const datadriven::CmdArg& arg : block.args) {
      MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> members, block.arg_uints(arg.key));
      if (members.empty()) return Status::invalid_argument("empty group " + arg.key);
      std::set<std::uint64_t> group;
      for (std::uint64_t id : members) {
        MQ_RETURN_IF_ERROR(node(id).status());
        if (!seen.insert(id).second) {
          return Status::invalid_argument("node " + std::to_string(id) + " in two groups");
        }
        group.insert(id);
      }
      groups.push_back(std::move(group));
    }
    if (groups.empty()) return Status::invalid_argument("usage: partition g1=(1,2) g2=(3)");
  }
  partition_ = std::move(groups);
  if (quiet_) return Status::ok();
  out_ << "groups:";
  for (const auto& group : partition_) {
    out_ << " (";
    bool first = true;
    for (std::uint64_t id : group) {
      out_ << (first ? "" : " ") << id;
      first = false;
    }
    out_ << ")";
  }
  out_ << (partition_.empty() ? " none" : " + the rest") << "\n";
  return Status::ok();
}

}  // namespace mq::raft::rafttest
