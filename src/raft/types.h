// The Raft core's value types: log entries, hard state, configurations, snapshots, messages.
// No I/O here; every type is a plain value. Field names follow the Raft paper (§5) and etcd.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/strong_id.h"

namespace mq::raft {

enum class EntryType : std::uint8_t {
  kNormal = 0,      // a client proposal (for a partition: one Kafka record batch)
  kNoop = 1,        // appended by every new leader at the start of its term (§5.4.2, §8)
  kConfChange = 2,  // payload is an encoded ConfChange (joint consensus, thesis §4.3)
};

struct Entry {
  Term term;
  LogIndex index;
  EntryType type = EntryType::kNormal;
  SharedBuffer payload;

  // Bytes this entry counts for against the message, in-flight and uncommitted limits.
  std::uint64_t size_bytes() const { return payload.size() + kOverheadBytes; }
  static constexpr std::uint64_t kOverheadBytes = 24;
  bool operator==(const Entry&) const = default;
};

// State that must be on stable storage before any message that depends on it is sent (§5,
// Figure 2: currentTerm, votedFor; commit is persisted too so a restart can re-apply quickly).
struct HardState {
  Term term;
  NodeId vote = kNoNode;
  LogIndex commit;
  bool operator==(const HardState&) const = default;
  bool empty() const { return *this == HardState{}; }
};

// The membership of a group. In a joint configuration (thesis §4.3) voters_outgoing is the old
// voter set and voters the new one; decisions need a majority of each. learners never vote;
// learners_next are voters of the outgoing config that become learners when the joint config
// is left (etcd's LearnersNext).
struct ConfState {
  std::vector<NodeId> voters;
  std::vector<NodeId> voters_outgoing;
  std::vector<NodeId> learners;
  std::vector<NodeId> learners_next;
  bool auto_leave = false;  // leave the joint config automatically once it is committed
  bool operator==(const ConfState&) const = default;
  bool joint() const { return !voters_outgoing.empty(); }
};

enum class ConfChangeType : std::uint8_t {
  kAddNode = 0,     // add a voter (or promote a learner)
  kAddLearner = 1,  // add a learner (or demote a voter)
  kRemoveNode = 2,
};

struct ConfChangeSingle {
  ConfChangeType type = ConfChangeType::kAddNode;
  NodeId node_id;
  bool operator==(const ConfChangeSingle&) const = default;
};

enum class ConfChangeTransition : std::uint8_t {
  kAuto = 0,      // simple change when possible (one voter changes), else joint + auto leave
  kImplicit = 1,  // always joint; leave automatically
  kExplicit = 2,  // always joint; the host proposes an empty ConfChange to leave
};

// A membership change proposal. An empty `changes` with a joint config in place means
// "leave the joint configuration".
struct ConfChange {
  ConfChangeTransition transition = ConfChangeTransition::kAuto;
  std::vector<ConfChangeSingle> changes;
  bool operator==(const ConfChange&) const = default;

  bool leave_joint() const { return changes.empty(); }
  SharedBuffer encode() const;  // little-endian, versioned; see conf_change.cc
  static std::optional<ConfChange> decode(BufferView bytes);  // nullopt when malformed
};

struct SnapshotMeta {
  LogIndex index;  // last index covered by the snapshot
  Term term;       // term of that entry
  ConfState conf_state;
  bool operator==(const SnapshotMeta&) const = default;
};

struct Snapshot {
  SnapshotMeta meta;
  SharedBuffer data;  // the host's state machine image; opaque to the core
  bool empty() const { return meta.index == LogIndex(0); }
  bool operator==(const Snapshot&) const = default;
};

enum class MessageType : std::uint8_t {
  kAppend,             // AppendEntries (§5.3): entries after (index, log_term), commit
  kAppendResponse,     // reject + reject_hint/log_term for fast backtracking, or index acked
  kHeartbeat,          // leader → follower: commit (bounded by the follower's match), context
  kHeartbeatResponse,  // follower → leader: context echoed (ReadIndex confirmation)
  kVote,               // RequestVote (§5.2): candidate's last (index, log_term)
  kVoteResponse,
  kPreVote,            // thesis §9.6: would you vote for me at term+1? (term not bumped)
  kPreVoteResponse,
  kSnapshot,           // InstallSnapshot (§7): snapshot
  kTimeoutNow,         // leadership transfer (thesis §3.10): campaign now, skip PreVote
  kReadIndex,          // follower → leader: forwarded ReadIndex request (context)
  kReadIndexResponse,  // leader → follower: index at which the read may be served
};

const char* message_type_name(MessageType type);

struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from;
  NodeId to;
  Term term;  // sender's term (for kPreVote: the term it would campaign at)

  // kAppend: (index, log_term) identify the entry preceding `entries`.
  // kVote/kPreVote: (index, log_term) are the candidate's last entry.
  // kAppendResponse: index is the acked last index, or on reject the rejected index.
  // kReadIndexResponse: index is the read index.
  LogIndex index;
  Term log_term;
  std::vector<Entry> entries;
  LogIndex commit;

  bool reject = false;
  LogIndex reject_hint;  // kAppendResponse on reject: follower's best guess of a match point

  std::optional<Snapshot> snapshot;  // kSnapshot only

  // Opaque to the core: kHeartbeat/kHeartbeatResponse carry the ReadIndex round;
  // kReadIndex/kReadIndexResponse the request context; kVote carries kCampaignTransfer when
  // the election was started by TimeoutNow (so CheckQuorum lease does not refuse it).
  std::uint64_t context = 0;
  static constexpr std::uint64_t kCampaignTransfer = 1;

  bool operator==(const Message&) const = default;
};

// Result of a ReadIndex request, handed to the host in Ready::read_states: once the host has
// applied up to `index`, a read of the state machine is linearizable (thesis §6.4).
struct ReadState {
  LogIndex index;
  std::uint64_t request_context = 0;
  bool operator==(const ReadState&) const = default;
};

enum class Role : std::uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
const char* role_name(Role role);

// Volatile state the host may want to observe (leader for re-routing clients, role).
struct SoftState {
  NodeId leader = kNoNode;
  Role role = Role::kFollower;
  bool operator==(const SoftState&) const = default;
};

std::string describe(const Entry& entry);      // "1/5 EntryNormal 'abc'" style, for traces
std::string describe(const Message& message);  // "1->2 MsgApp Term:3 Log:2/4 Commit:4 [...]"
std::string describe(const ConfState& conf_state);  // "Voters:[1 2 3] VotersOutgoing:[] ..."
std::string describe(const ConfChange& change);      // "v2 l3 r4", "explicit v2", "leave-joint"
std::string describe(const SnapshotMeta& meta);      // "Index:5 Term:2 ConfState:..."
std::string describe(const HardState& hard_state);   // "Term:2 Vote:1 Commit:5"
std::string describe(const SoftState& soft_state);   // "Lead:1 State:StateLeader"
std::string describe(const ReadState& read_state);   // "Index:5 Context:7"

}  // namespace mq::raft
