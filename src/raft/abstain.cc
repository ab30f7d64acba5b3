// Abstention of a replica whose log lost entries it may have acknowledged (RawNode::
// set_abstain_until; docs/cluster.md "Replica repair").
//
// Why: Raft's commitment argument (§5.4.2, the proof of Leader Completeness in §5.4.3) rests
// on every voter that acknowledged an entry still holding it when it later votes: a committed
// entry is on a majority, every winning candidate needs a majority, the two majorities share a
// voter, and that voter's log check (§5.4.1) refuses a candidate lacking the entry. A replica
// whose damaged tail was cut may have acknowledged entries it no longer holds; if it voted
// (or campaigned) before getting them back, a candidate lacking a committed entry could win
// with its help. So until its log again reaches the highest index it held before the cut it
// grants nothing and never campaigns. Appends, heartbeats and acknowledgements go on as for any
// follower (an acknowledgement is only ever sent for entries it now holds).
#include "raft/raft.h"

namespace mq::raft {

LogIndex Raft::abstain_until() const {
  if (abstain_until_ == LogIndex(0) || log_.last_index() >= abstain_until_) return LogIndex(0);
  return abstain_until_;
}

}  // namespace mq::raft
