// duplicate-msgs <id...>: every queued message addressed to the named nodes is queued a
// second time (after all current messages), as a network that retransmits would.
#include "raft/rafttest/interaction_env.h"

namespace mq::raft::rafttest {

Status InteractionEnv::handle_duplicate_msgs(const TestData& block) {
  MQ_ASSIGN_OR_RETURN(std::vector<std::uint64_t> ids, node_ids(block, /*default_all=*/false));
  std::vector<Message> copies;
  for (const Message& m : in_flight_) {
    for (std::uint64_t id : ids) {
      if (m.to.value() == id) copies.push_back(m);
    }
  }
  if (!quiet_) out_ << "duplicated " << copies.size() << " messages\n";
  in_flight_.insert(in_flight_.end(), copies.begin(), copies.end());
  return Status::ok();
}

}  // namespace mq::raft::rafttest
