// log-level none|info: with none, commands still run but print nothing (for long setups);
// queries (raft-log, raft-state, status) always print.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_log_level(const TestData& block) {
  if (block.args.size() != 1 || !block.args[0].values.empty()) {
    return Status::invalid_argument("usage: log-level none|info");
  }
  const std::string& level = block.args[0].key;
  if (level != "none" && level != "info") {
    return Status::invalid_argument("log level must be none or info, not " + level);
  }
  quiet_ = level == "none";
  return Status::ok();
}

}  // namespace mq::raft::rafttest
