#include "raft/config.h"

#include <string>

namespace mq::raft {

Status Config::validate() const {
  if (id == kNoNode) return Status::invalid_argument("raft config: id must not be 0");
  if (heartbeat_ticks == 0) {
    return Status::invalid_argument("raft config: heartbeat_ticks must be >= 1");
  }
  if (election_ticks <= heartbeat_ticks) {
    return Status::invalid_argument("raft config: election_ticks (" +
                                    std::to_string(election_ticks) +
                                    ") must be greater than heartbeat_ticks (" +
                                    std::to_string(heartbeat_ticks) + ")");
  }
  if (max_msg_bytes == 0) return Status::invalid_argument("raft config: max_msg_bytes must be > 0");
  if (max_inflight_msgs == 0) {
    return Status::invalid_argument("raft config: max_inflight_msgs must be >= 1");
  }
  if (max_inflight_bytes == 0) {
    return Status::invalid_argument("raft config: max_inflight_bytes must be > 0");
  }
  if (max_uncommitted_bytes == 0) {
    return Status::invalid_argument("raft config: max_uncommitted_bytes must be > 0");
  }
  if (max_committed_bytes_per_ready == 0) {
    return Status::invalid_argument("raft config: max_committed_bytes_per_ready must be > 0");
  }
  if (read_only == ReadOnlyOption::kLeaseBased && !check_quorum) {
    return Status::invalid_argument(
        "raft config: read_only=kLeaseBased requires check_quorum (thesis §6.4.1)");
  }
  return Status::ok();
}

}  // namespace mq::raft
