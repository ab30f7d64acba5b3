// Raft: the implementation behind RawNode (etcd raft.go, ScyllaDB fsm). One object per
// replica; single-threaded; deterministic given its Config, its StorageView and the
// sequence of calls.
//
// Files: raft.cc (construction, term logic common to all roles, elections, ticks),
// step_follower.cc, step_candidate.cc, step_leader.cc (one per role), raft_ready.cc (Ready
// and advance), invariants.cc (check_invariants).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "base/prng.h"
#include "base/result.h"
#include "raft/config.h"
#include "raft/raft_log.h"
#include "raft/raw_node.h"
#include "raft/ready.h"
#include "raft/tracker/progress.h"
#include "raft/types.h"

namespace mq::raft {

// ---- Role data (ScyllaDB fsm.hh: std::variant<follower, candidate, leader>) ----

struct Follower {};

struct Candidate {
  bool pre_vote = false;  // PreCandidate (thesis §9.6): term not bumped yet
  std::map<NodeId, bool> votes;
};

// One ReadIndex request (thesis §6.4).
struct ReadRequest {
  LogIndex index;           // the commit index when the request arrived
  std::uint64_t context = 0;
  NodeId from;              // the node that asked (this node or a follower)
  std::uint64_t round = 0;  // heartbeat round that confirms it
};

struct Leader {
  // Leadership transfer target (thesis §3.10); kNoNode when none.
  NodeId lead_transferee = kNoNode;
  // Payload bytes of entries appended in this term and not yet applied (etcd
  // uncommittedSize). Invariant: <= max_uncommitted_bytes + one entry.
  std::uint64_t uncommitted_bytes = 0;
  // ReadIndex requests waiting for a heartbeat round, oldest first (bounded by
  // kMaxPendingReads).
  std::deque<ReadRequest> pending_reads;
  // Requests that arrived before the leader committed an entry of its term (§6.4 step 1).
  std::vector<ReadRequest> reads_before_commit;
  // The highest heartbeat round each peer has echoed.
  std::map<NodeId, std::uint64_t> acked_round;
  // Every heartbeat broadcast starts a new round (periodic ones included).
  std::uint64_t read_round = 0;  // last round started
  // (first round sent at a tick, that tick), oldest first, for the last election timeout:
  // a round's send tick bounds from below when its ackers' leases began (lease reads).
  std::deque<std::pair<std::uint64_t, std::uint64_t>> round_ticks;
  // Once TimeoutNow went out, another node may win at once (it overrides leases): no more
  // lease reads in this term.
  bool timeout_now_sent = false;
};

using RoleState = std::variant<Follower, Candidate, Leader>;

// Terms and indexes beyond these are refused as malformed input (no overflow downstream).
inline constexpr Term kMaxTerm{std::uint64_t{1} << 62};
inline constexpr LogIndex kMaxIndex{std::uint64_t{1} << 62};

// Bound on queued ReadIndex requests (STYLE.md C: every queue bounded).
inline constexpr std::size_t kMaxPendingReads = 4096;

class Raft {
 public:
  static Result<std::unique_ptr<Raft>> create(const Config& config, const StorageView* storage);

  // RawNode's API (see raw_node.h for the contracts).
  void tick(std::uint32_t ticks = 1);
  Status step(const Message& message);
  void campaign(bool transfer);
  Result<LogIndex> propose(SharedBuffer payload);
  Result<LogIndex> propose_conf_change(const ConfChange& change);
  Status read_index(std::uint64_t request_context);
  Status transfer_leader(NodeId transferee);
  void report_snapshot(NodeId to, bool success);
  void report_unreachable(NodeId to);
  void forget_leader();
  bool has_ready() const;
  bool quiescable_as_leader(std::span<const NodeId> down) const;  // quiesce.cc
  bool quiescable_as_follower(NodeId leader, Term term, LogIndex index) const;
  void unquiesce();  // quiesce.cc
  Ready ready();
  void advance(const Ready& ready);
  std::vector<Message> take_leader_messages();  // raw_node.h
  NodeStatus status() const;
  // Abstention of a repaired replica (raw_node.h set_abstain_until; abstain.cc).
  void set_abstain_until(LogIndex index) { abstain_until_ = index; }
  LogIndex abstain_until() const;
  bool abstaining() const { return abstain_until() != LogIndex(0); }

  NodeId id() const { return id_; }
  Term term() const { return term_; }
  NodeId lead() const { return lead_; }
  Role role() const;
  const RaftLog& log() const { return log_; }
  const tracker::ProgressTracker& tracker() const { return tracker_; }
  const Config& config() const { return config_; }

  // State and delta invariants (invariants.cc). Aborts on violation: they guard the core's
  // own logic, never its input.
  struct InvariantSnapshot {
    Term term;
    LogIndex committed;
    std::optional<Term> committed_term;  // unknown when storage could not be read
    LogIndex applied;
    Role role = Role::kFollower;
    LogIndex last_index;
  };
  InvariantSnapshot invariant_snapshot() const;
  void check_invariants(const InvariantSnapshot* previous) const;
  bool invariants_enabled() const { return kDebugAsserts || config_.check_invariants; }

 private:
  Raft(const Config& config, const StorageView* storage, RaftLog log);
  Status load_state();

  // ---- Term and role transitions (raft.cc) ----
  void reset(Term term);
  void become_follower(Term term, NodeId lead);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void reset_randomized_election_timeout();
  bool promotable() const;
  bool past_election_timeout() const;
  bool in_lease() const;
  bool lease_valid(const Leader& leader) const;
  std::uint64_t start_heartbeat_round(Leader& leader);
  void tick_election();
  // One tick of a leader's timers; true when a heartbeat round is due (tick() sends it).
  bool tick_heartbeat();
  enum class CampaignType : std::uint8_t { kPreElection, kElection, kTransfer };
  void start_campaign(CampaignType type);
  Status step_vote_request(const Message& m);
  void send(Message m);
  bool has_unapplied_conf_change() const;

  // ---- Followers (step_follower.cc) ----
  Status step_follower(Follower& follower, const Message& m);
  Status handle_append(const Message& m);
  void handle_heartbeat(const Message& m);
  void handle_snapshot(const Message& m);
  bool restore(const Snapshot& snapshot);

  // ---- Candidates (step_candidate.cc) ----
  Status step_candidate(Candidate& candidate, const Message& m);
  void record_vote_and_tally(Candidate& candidate, NodeId from, bool granted);

  // ---- Leaders (step_leader.cc) ----
  Status step_leader(Leader& leader, const Message& m);
  void handle_append_response(Leader& leader, const Message& m);
  void handle_heartbeat_response(Leader& leader, const Message& m);
  void handle_read_request(Leader& leader, ReadRequest request);
  void answer_read(const ReadRequest& request);
  void release_confirmed_reads(Leader& leader);
  void release_reads_before_commit(Leader& leader);
  bool committed_entry_in_current_term() const;
  Result<LogIndex> append_proposal(Leader& leader, EntryType type, SharedBuffer payload);
  bool maybe_send_append(NodeId to, bool send_if_empty);
  bool send_snapshot(NodeId to, tracker::Progress& pr);
  void send_heartbeat(NodeId to, std::uint64_t round);
  void bcast_append();
  // The commit index advanced: broadcast it now, or at the next tick when lazy
  // (Config::lazy_commit_broadcast).
  void on_commit_advanced();
  // The appends of proposals batched since the last ready() (bcast_pending_), into msgs_.
  void flush_pending_broadcast();
  void send_unsent_commit();
  void bcast_heartbeat(std::uint64_t round);
  bool maybe_commit();
  void on_self_persisted();
  void abort_leader_transfer(Leader& leader);
  void send_timeout_now(NodeId to);

  // ---- Configuration (raft_ready.cc) ----
  void apply_committed_conf_changes(const std::vector<Entry>& entries);
  void switch_to_config(tracker::Config config, tracker::ProgressMap progress);
  void maybe_auto_leave_joint();
  void hand_over_leadership(Leader& leader);

  Leader* leader_state() { return std::get_if<Leader>(&role_); }
  const Leader* leader_state() const { return std::get_if<Leader>(&role_); }
  Candidate* candidate_state() { return std::get_if<Candidate>(&role_); }

  Config config_;
  NodeId id_;
  const StorageView* storage_;
  RaftLog log_;
  tracker::ProgressTracker tracker_;
  Prng prng_;

  // Persistent state (§5 Figure 2), handed to the host through Ready::hard_state.
  Term term_;
  NodeId vote_ = kNoNode;

  RoleState role_ = Follower{};
  NodeId lead_ = kNoNode;
  // Index of the last conf change appended by this leader; proposals of another change are
  // refused until it is applied (at most one in flight).
  LogIndex pending_conf_index_;

  // Ticks since the last election timeout reset (followers/candidates) or the last
  // CheckQuorum round (leaders). Invariant: < randomized_election_timeout_ + 1 after tick().
  std::uint32_t election_elapsed_ = 0;
  std::uint32_t heartbeat_elapsed_ = 0;
  std::uint32_t randomized_election_timeout_ = 0;
  // Ticks since this node started (a logical clock; never reset).
  std::uint64_t now_ticks_ = 0;
  // Restarted with lease reads on: refuse votes for the first election timeout, since a
  // lease granted before the crash may still be in force (thesis §6.4.1).
  bool restart_lease_ = false;
  // A replica whose log lost entries it may have acknowledged (a repaired damaged tail)
  // grants no (Pre)Vote and never campaigns while its last index is below this (0: none).
  LogIndex abstain_until_;

  std::vector<Message> msgs_;
  std::vector<Message> msgs_after_persist_;
  std::vector<ReadState> read_states_;

  // Ready bookkeeping.
  HardState prev_hard_state_;
  SoftState prev_soft_state_;
  bool ready_outstanding_ = false;
  // Proposals were appended since the last ready(): send them (batched) at the next one
  // (or at take_leader_messages()).
  bool bcast_pending_ = false;
  // The term of the last hard state known durable: the restored one, then each advanced
  // Ready's. take_leader_messages() hands out messages early only at this term.
  Term synced_term_;
  // Config::lazy_commit_broadcast: the commit index advanced and was not broadcast; the next
  // tick sends it to the followers no message has carried it to.
  bool commit_unsent_ = false;
  // A candidate's own vote counts only once its term and vote are persisted: the term at
  // which the outstanding Ready carried them (0 when none).
  Term self_vote_pending_term_;
  // Index of the last snapshot installed by restore(): conf change entries at or below it
  // are already reflected in the membership.
  LogIndex conf_restored_index_;
};

}  // namespace mq::raft
