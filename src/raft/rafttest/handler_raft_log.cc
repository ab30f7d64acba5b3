// raft-log <id>: the entries in the node's stable storage (what the host has persisted).
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_raft_log(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  for (std::uint64_t id : ids) {
    Node* n = nodes_[id - 1].get();
    const LogIndex first = n->storage->first_index();
    const LogIndex last = n->storage->last_index();
    if (ids.size() > 1) out_ << "> " << id << "\n";
    if (last < first) {
      out_ << "log is empty: first index=" << first << ", last index=" << last << "\n";
      continue;
    }
    MQ_ASSIGN_OR_RETURN(std::vector<Entry> entries,
                        n->storage->entries(first, last + 1, UINT64_MAX));
    for (const Entry& entry : entries) out_ << describe(entry) << "\n";
  }
  return Status::ok();
}

}  // namespace mq::raft::rafttest
