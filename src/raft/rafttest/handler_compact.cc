// snapshot <id>: the host snapshots its state machine at its applied index (the log stays).
// snapshot-unavailable <id> true|false: the node's storage answers snapshot() with
// Unavailable (a snapshot "being produced", storage_view.h) until set back to false.
// compact <id> <index>: snapshot at <index> (<= applied) and discard the log up to it; a
// follower that then needs an earlier entry gets the snapshot (§7).
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {
namespace {

Result<std::uint64_t> positional_number(const TestData& block, std::size_t k) {
  if (k >= block.args.size() || !block.args[k].values.empty()) {
    return Status::invalid_argument("usage: snapshot <id> | compact <id> <index>");
  }
  const std::string& text = block.args[k].key;
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos) {
    return Status::invalid_argument("'" + text + "' is not a number");
  }
  return std::stoull(text);
}

}  // namespace

Status InteractionEnv::handle_compact(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::uint64_t id, positional_number(block, 0));
  MQ_ASSIGN_OR_RETURN(Node * n, node(id));
  if (block.command == "snapshot") return create_snapshot_and_compact(*n, n->applied, false);
  if (block.command == "snapshot-unavailable") {
    if (block.args.size() != 2 || !block.args[1].values.empty() ||
        (block.args[1].key != "true" && block.args[1].key != "false")) {
      return Status::invalid_argument("usage: snapshot-unavailable <id> true|false");
    }
    set_snapshot_unavailable(*n, block.args[1].key == "true");
    return Status::ok();
  }
  MQ_ASSIGN_OR_RETURN(std::uint64_t index, positional_number(block, 1));
  return create_snapshot_and_compact(*n, LogIndex(index), true);
}

}  // namespace mq::raft::rafttest
