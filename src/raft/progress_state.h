// The replication state of one follower as seen by the leader (etcd tracker/state.go).
#pragma once

#include <cstdint>

namespace mq::raft {

enum class ProgressState : std::uint8_t {
  kProbe,      // the leader sends at most one append per heartbeat until a match is found
  kReplicate,  // the leader pipelines appends, bounded by the inflight window
  kSnapshot,   // the leader sent a snapshot and waits for it to be reported or acked
};

const char* progress_state_name(ProgressState state);

}  // namespace mq::raft
