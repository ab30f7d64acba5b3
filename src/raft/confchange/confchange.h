// Membership changes on the tracker's configuration (thesis §4.3 joint consensus, §4.2.1
// learners; etcd confchange/). Pure: every function takes the current tracker state and
// returns the new config and progress map, or an error, without touching its input.
//
// When changes take effect: a ConfChange entry changes the configuration when it is APPLIED,
// i.e. when the host acknowledges it with RawNode::advance() after it was handed out in
// Ready::committed_entries (raw_node.cc). Never on append, never on commit alone.
#pragma once

#include <vector>

#include "base/result.h"
#include "raft/tracker/progress.h"
#include "raft/types.h"

namespace mq::raft::confchange {

struct ChangeResult {
  tracker::Config config;
  tracker::ProgressMap progress;
};

class Changer {
 public:
  // `last_index` initialises the progress of added members (next = last_index + 1).
  Changer(const tracker::ProgressTracker& tracker, LogIndex last_index)
      : tracker_(tracker), last_index_(last_index) {}

  // Enters the joint config C_old,new: outgoing = the current voters, then `changes`
  // are applied to the incoming half. Errors: already joint, no voters.
  Result<ChangeResult> enter_joint(bool auto_leave,
                                   const std::vector<ConfChangeSingle>& changes) const;
  // Leaves the joint config: outgoing dropped, learners_next become learners.
  Result<ChangeResult> leave_joint() const;
  // A change of at most one voter without a joint config (§4.1 single-server change).
  Result<ChangeResult> simple(const std::vector<ConfChangeSingle>& changes) const;

 private:
  Status apply(ChangeResult& result, const std::vector<ConfChangeSingle>& changes) const;
  void make_voter(ChangeResult& result, NodeId id) const;
  void make_learner(ChangeResult& result, NodeId id) const;
  void remove(ChangeResult& result, NodeId id) const;
  void init_progress(ChangeResult& result, NodeId id, bool learner) const;

  const tracker::ProgressTracker& tracker_;
  LogIndex last_index_;
};

// Applies a ConfChange as the state machine does: leave_joint() for an empty change,
// enter_joint() for a joint transition, simple() otherwise.
Result<ChangeResult> apply_conf_change(const tracker::ProgressTracker& tracker,
                                       LogIndex last_index, const ConfChange& change);

// Builds the tracker state for a persisted or received ConfState (start-up, snapshots).
// Errors (kCorruption) when the ConfState breaks a membership invariant.
Result<ChangeResult> restore(const tracker::ProgressTracker& tracker, LogIndex last_index,
                             const ConfState& conf_state);

// Checks the membership invariants of a config/progress pair.
Status check_invariants(const tracker::Config& config, const tracker::ProgressMap& progress);

}  // namespace mq::raft::confchange
