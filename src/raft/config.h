// Configuration of one Raft node. Every bound is named here with its unit and checked by
// validate() (STYLE.md C: "limits live in Config and are checked").
#pragma once

#include <cstdint>

#include "base/result.h"
#include "base/strong_id.h"

namespace mq::raft {

enum class ReadOnlyOption : std::uint8_t {
  // ReadIndex (thesis §6.4): the leader confirms it is still leader with a heartbeat round
  // to a quorum before answering. Safe under any clock behaviour.
  kSafe,
  // Lease (thesis §6.4.1): the leader answers from its lease without a round trip. Requires
  // check_quorum. Safe only if clock drift between nodes is bounded well below the election
  // timeout (documented in docs/raft_driver.md).
  kLeaseBased,
};

// Deliberately broken behaviours, for the simulator's mutation check (`raftmq-sim --bug`).
// Never set outside tests. Each must be caught by the simulator's checkers.
enum class Bug : std::uint32_t {
  kNone = 0,
  kVoteWithoutLogCheck = 1u << 0,         // grant votes ignoring the election restriction §5.4.1
  kCommitPreviousTermByCount = 1u << 1,   // count replicas for earlier-term entries (Figure 8)
  kVoteBeforePersist = 1u << 2,           // send vote responses before the vote is persisted
  kNoCheckQuorumStepDown = 1u << 3,       // leader keeps serving lease reads after losing quorum
  kReadWithoutLeadershipCheck = 1u << 4,  // answer ReadIndex without a heartbeat round
  kAcceptStaleLeaderAppend = 1u << 5,     // accept AppendEntries from an older term
  kLeaderCountsSelfBeforePersist = 1u << 6,  // leader counts its own unpersisted entries
  kNoConflictTruncation = 1u << 7,        // append over a conflicting suffix without truncating
};

struct Config {
  NodeId id;

  // Time, in ticks (the host decides how long a tick is; the broker uses 10 ms).
  std::uint32_t election_ticks = 10;   // randomized per term in [election, 2*election) §5.2
  std::uint32_t heartbeat_ticks = 1;   // must be < election_ticks

  std::uint64_t random_seed = 0;  // seeds the randomized election timeout; no other randomness

  // Limits.
  std::uint64_t max_msg_bytes = 1 << 20;               // entries per kAppend message (>=1 entry)
  std::uint32_t max_inflight_msgs = 256;               // pipelined kAppend per follower
  std::uint64_t max_inflight_bytes = 32 << 20;         // unacked entry bytes per follower
  std::uint64_t max_uncommitted_bytes = 64 << 20;      // payload bytes; proposals beyond: refused
  std::uint64_t max_committed_bytes_per_ready = 8 << 20;  // committed entries handed per Ready

  // How followers learn that the commit index advanced. false (etcd): at once, one append per
  // follower per advance, empty when the follower already has every entry; that append and
  // its answer double the messages of a group that commits one entry at a time. true: the
  // advance rides on the next append that carries entries, or on the next tick's heartbeat
  // or, for a follower that heard nothing carrying it, on one empty append at the leader's
  // next tick. A follower then learns of a commit up to one tick later (it applies, and
  // answers forwarded ReadIndex requests, that much later); the leader's own commit and
  // apply are unchanged. The broker sets it for partition groups (docs/raft_driver.md).
  bool lazy_commit_broadcast = false;

  bool pre_vote = true;      // thesis §9.6
  bool check_quorum = true;  // thesis §6.2 and §4.2.3
  ReadOnlyOption read_only = ReadOnlyOption::kSafe;

  // The applied index the host restarts from (entries up to it are not handed out again).
  LogIndex applied;

  // Run check_invariants() (state + delta, invariants.cc) after every tick/step/advance even
  // in release builds. Always on when MQ_DEBUG_ASSERTS is.
  bool check_invariants = false;

  std::uint32_t bugs = 0;  // bitwise OR of Bug; tests only
  bool has_bug(Bug bug) const { return (bugs & static_cast<std::uint32_t>(bug)) != 0; }

  Status validate() const;
};

}  // namespace mq::raft
