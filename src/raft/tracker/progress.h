// The leader's view of one follower (etcd tracker/progress.go): how far its log is known to
// match (match), what to send next (next), and the flow-control state.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/strong_id.h"
#include "raft/progress_state.h"
#include "raft/quorum/quorum.h"
#include "raft/tracker/inflights.h"
#include "raft/types.h"

namespace mq::raft::tracker {

struct Progress {
  Progress(std::uint32_t max_inflight_msgs, std::uint64_t max_inflight_bytes)
      : inflights(max_inflight_msgs, max_inflight_bytes) {}

  // Invariant: match < next. match is the highest index known to be durable on the follower
  // and identical to the leader's log (§5.3); next is the next index to send.
  LogIndex match;
  LogIndex next{1};
  ProgressState state = ProgressState::kProbe;
  // kSnapshot: the index of the snapshot being sent. 0 otherwise.
  LogIndex pending_snapshot;
  // kSnapshot: one election-timeout round has passed since the snapshot was sent (the
  // next round gives up on it, see Raft::tick_heartbeat).
  bool snapshot_round_passed = false;
  // Heard from since the last CheckQuorum round (thesis §6.2).
  bool recent_active = false;
  // kProbe: an append was sent and we wait for its answer or the next heartbeat response.
  // kReplicate: the inflight window is full (a heartbeat response allows one empty append).
  bool msg_app_flow_paused = false;
  Inflights inflights;
  bool is_learner = false;
  // The highest commit index this follower was sent (in an append or a heartbeat) since this
  // node became leader; Config::lazy_commit_broadcast's tick skips followers already told.
  // A message carrying it may be lost: the heartbeats repeat the commit index anyway.
  LogIndex sent_commit;

  void become_probe();
  void become_replicate();
  void become_snapshot(LogIndex snapshot_index);

  // An append acknowledging n arrived. Returns true when match moved (stale acks return
  // false).
  bool maybe_update(LogIndex n);
  // An append carrying `entry_count` entries (`bytes` in total) starting at next was sent.
  void update_on_entries_send(std::size_t entry_count, std::uint64_t bytes);
  // The follower rejected the append after `rejected`; `match_hint` is where it suggests to
  // continue (fast backtracking). Returns false when the rejection is stale.
  bool maybe_decr_to(LogIndex rejected, LogIndex match_hint);
  // Whether sending more appends to this follower must wait.
  bool is_paused() const;

  // "StateReplicate match=5 next=6 [learner] inflight=2[full]", as in etcd's String().
  std::string describe() const;

 private:
  void reset_state(ProgressState new_state);
};

using ProgressMap = std::map<NodeId, Progress>;

// The membership as the tracker sees it (etcd tracker.Config).
struct Config {
  quorum::JointConfig voters;
  // Invariant: learners ∩ voters = ∅; learners_next ⊆ voters.outgoing, ∩ learners = ∅.
  std::set<NodeId> learners;
  std::set<NodeId> learners_next;
  bool auto_leave = false;
  bool operator==(const Config&) const = default;

  ConfState to_conf_state() const;
  std::string describe() const;  // "voters=(1 2 3)&&(1 2) learners=(4) learners_next=(3) autoleave"
};

// Config + progress of every member, on every node (only the leader uses progress).
struct ProgressTracker {
  ProgressTracker(std::uint32_t max_inflight_msgs, std::uint64_t max_inflight_bytes)
      : max_inflight_msgs(max_inflight_msgs), max_inflight_bytes(max_inflight_bytes) {}

  Config config;
  ProgressMap progress;
  std::uint32_t max_inflight_msgs;
  std::uint64_t max_inflight_bytes;

  Progress new_progress() const { return Progress(max_inflight_msgs, max_inflight_bytes); }
  bool is_voter(NodeId id) const { return config.voters.contains(id); }
  // The only voter is `id` (the node may commit and elect itself alone).
  bool is_singleton() const {
    return config.voters.outgoing.empty() && config.voters.incoming.size() == 1;
  }
  // The largest index durable on a quorum (both halves when joint).
  LogIndex committed() const;
  // A quorum of voters was recently active (thesis §6.2 CheckQuorum). `self` always counts.
  bool quorum_active(NodeId self) const;
};

}  // namespace mq::raft::tracker
