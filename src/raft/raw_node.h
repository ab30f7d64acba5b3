// RawNode: the deterministic Raft core (etcd's RawNode shape, ScyllaDB's fsm role variant).
// Single-threaded value object: no threads, sockets, clocks, files or randomness sources.
// Time arrives through tick(); randomness from Config::random_seed. See ready.h and
// docs/raft_driver.md for the host contract.
#pragma once

#include <map>
#include <memory>
#include <span>

#include "base/result.h"
#include "raft/config.h"
#include "raft/progress_state.h"
#include "raft/ready.h"
#include "raft/storage_view.h"
#include "raft/types.h"

namespace mq::raft {

class Raft;  // the implementation (raft.h)

struct ProgressStatus {
  LogIndex match;
  LogIndex next;
  ProgressState state = ProgressState::kProbe;
  bool recent_active = false;
  bool learner = false;
  std::uint32_t inflight_msgs = 0;
};

// A snapshot of the node's state for observers (cluster status, tests, the simulator).
struct NodeStatus {
  NodeId id;
  HardState hard_state;
  SoftState soft_state;
  LogIndex applied;
  LogIndex last_index;
  ConfState conf_state;
  NodeId lead_transferee = kNoNode;
  std::map<NodeId, ProgressStatus> progress;  // leader only
};

class RawNode {
 public:
  // `storage` must outlive the node. Errors: invalid config, or storage that cannot be read.
  static Result<std::unique_ptr<RawNode>> create(const Config& config, const StorageView* storage);
  ~RawNode();
  RawNode(const RawNode&) = delete;
  RawNode& operator=(const RawNode&) = delete;

  // `ticks` logical ticks (default one): drive election timeouts (followers/candidates) and
  // heartbeats and the CheckQuorum check (leaders). Several ticks at once count exactly as
  // many single ticks would, except that a leader sends at most one heartbeat round for
  // them (at their end).
  void tick(std::uint32_t ticks = 1);

  // Feeds a message from the network. Messages with stale terms, from unknown or removed
  // nodes, with out-of-range indexes, duplicated or reordered are handled per the protocol
  // (ignored or answered); they never crash the node. Returns an error only for messages
  // that are malformed beyond what the protocol tolerates (reported, then dropped).
  Status step(const Message& message);

  // Starts an election now (PreVote first when enabled).
  void campaign();

  // Appends a client payload to the leader's log. Errors: kNotLeader (message names the
  // leader if known), kLimitExceeded (max_uncommitted_bytes), kAborted (leadership transfer
  // in progress). Returns the index the entry will have.
  Result<LogIndex> propose(SharedBuffer payload);

  // Proposes a membership change (at most one in flight: kUnavailable otherwise).
  Result<LogIndex> propose_conf_change(const ConfChange& change);

  // Requests a linearizable read. The answer arrives as a ReadState with this context in a
  // later Ready. Errors: kNotLeader when there is no known leader to forward to.
  Status read_index(std::uint64_t request_context);

  // Transfers leadership to `transferee` (thesis §3.10). kNotLeader / kInvalidArgument.
  Status transfer_leader(NodeId transferee);

  // Tells the core the host's snapshot of its state machine can be sent to lagging followers
  // (the host compacted its storage); nothing to call for that — the core reads StorageView.
  // Reports that sending a snapshot to `to` failed or finished (etcd ReportSnapshot).
  void report_snapshot(NodeId to, bool success);
  // Reports that `to` could not be reached (move its progress back to probing).
  void report_unreachable(NodeId to);
  // A follower forgets its leader (etcd's ForgetLeader): it stays a leaderless follower in the
  // same term and does not campaign, but it is no longer "in lease" (thesis §4.2.3), so it
  // grants a PreVote/vote to an up-to-date candidate before its election timeout. For hosts
  // whose transport knows the leader's process is gone (connection refused/reset), so that a
  // new leader is elected without waiting for every follower's election timeout. Ignored
  // unless this node is a follower; refused (ignored) with lease-based reads, whose safety
  // relies on followers not voting within the lease.
  void forget_leader();

  // Quiescing (hosts with many idle groups stop ticking them, as CockroachDB quiesces idle
  // ranges; docs/cluster.md "Quiescing"). Safety never depends on it: a quiesced replica only
  // stops counting time; the host resumes ticking it on any message, proposal or peer loss.
  // A leader may quiesce when nothing is left to do: every entry of its log committed and
  // applied, every peer not listed in `down` known to hold the whole log (match == last
  // index), the peers not in `down` a quorum (else CheckQuorum must keep running), no
  // ReadIndex, leadership transfer, joint configuration or unsent message pending.
  bool quiescable_as_leader(std::span<const NodeId> down) const;
  // Leader: the lowest `next` of the followers and learners it replicates to (recently active,
  // not waiting for a snapshot): the host's entry cache keeps entries from there on, which the
  // leader will read again to send. LogIndex max when not leader or no such peer.
  LogIndex lowest_active_follower_next() const;
  // A follower may quiesce when told so by `leader` at `term` for a log ending at `index`
  // if it follows that leader in that term and its log ends at `index`, committed and
  // applied (it then holds exactly the leader's log).
  bool quiescable_as_follower(NodeId leader, Term term, LogIndex index) const;
  // The host resumes ticking this replica after it was quiesced. A follower restarts its
  // election timer with a fresh randomized timeout: the time it spent quiesced was not its
  // leader's silence (the host's liveness checks stood in for heartbeats, and wake it when the
  // leader's broker is lost), so it stays in its lease (thesis §4.2.3: it refuses PreVotes
  // and votes) for a full minimum election timeout, which gives the host time to wake the
  // leader too (tests/chaos/FINDINGS.md F2). A leader heartbeats at its next tick. Safety does
  // not depend on it: it only moves timers.
  void unquiesce();
  // Abstention of a replica whose log lost entries it may have acknowledged (a damaged tail
  // cut by the host's repair, docs/cluster.md "Replica repair"): until its last index is
  // >= `index` it grants no PreVote or vote and never campaigns (nor on TimeoutNow). Raft's
  // commitment argument (§5.4.2/§5.4.3) needs every voter to keep what it acknowledged; a
  // replica that lost entries could otherwise help elect a candidate lacking a committed
  // entry. It still appends and acknowledges as a follower. LogIndex(0) clears it; the host
  // persists it across restarts. abstain_until() is 0 once the log reached the bound.
  void set_abstain_until(LogIndex index);
  LogIndex abstain_until() const;

  bool has_ready() const;
  Ready ready();
  void advance(const Ready& ready);
  // While a Ready is outstanding (its persistence in progress): the messages a leader has
  // produced since, which the host may send at once (the appends of proposals made meanwhile,
  // heartbeats, commit updates). They are step-1 messages of the next Ready taken early: a
  // leader's appends never wait for its own write (thesis §10.2.1), and without this they
  // waited for the outstanding Ready's fsync. Empty unless this node leads at a term whose
  // hard state is durable (a Ready carrying it was advanced, or it was restored); messages
  // to send after persistence stay for the next Ready. Callable at any time.
  std::vector<Message> take_leader_messages();

  NodeStatus status() const;
  NodeId id() const;
  // The commit index as the core knows it now (cheap; status() copies the progress map). It
  // may run ahead of the last Ready's hard state: a host waiting for its own persistence
  // while followers' acknowledgements arrive sees the entries commit here (§5.3: committed
  // once a majority stored them; the leader counts itself only after advance()).
  LogIndex committed() const;
  // Whether the core's log holds an entry of `term` at `index` now (then it is the same entry
  // as any other with that index and term, Log Matching §5.3). An entry handed out in a Ready
  // may have been replaced since by a newer leader's (a conflict truncation stepped in while
  // the host persisted it): this tells the host before it relies on the handed-out copy.
  bool holds(LogIndex index, Term term) const;
  // The membership in effect. It changes when advance() acknowledges the application of a
  // kConfChange entry (or when a snapshot is installed); a host persisting its applied index
  // persists this alongside (MemoryStorage::set_conf_state), since initial_state() must
  // return the membership as of the applied index after a restart.
  ConfState conf_state() const;

 private:
  explicit RawNode(std::unique_ptr<Raft> raft);
  std::unique_ptr<Raft> raft_;
};

}  // namespace mq::raft
