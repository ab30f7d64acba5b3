// Cluster: the simulated Raft group — nodes (each a RawNode plus its host: the Ready loop,
// a simulated disk and a state machine), the network between them, one simulated clock and
// one event queue. Everything runs in one thread and every random decision is drawn from the
// run's single Prng, so a seed replays exactly.
//
// The host model (docs/raft_driver.md, ready.h) for each node:
//   on Ready: `messages` are sent at once; snapshot/entries/hard state are written and become
//   durable after a simulated fsync delay; then `messages_after_persist` are sent, committed
//   entries applied, read states answered, and advance() called. The node takes no further
//   Ready until then. A crash drops the unsynced write (or tears it, see sim_disk.h) and
//   everything in memory; a restart rebuilds the node from its disk.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/prng.h"
#include "raft/config.h"
#include "raft/raw_node.h"
#include "sim/checker.h"
#include "sim/network.h"
#include "sim/sim_disk.h"
#include "sim/trace.h"

namespace mq::sim {

struct ClusterOptions {
  std::uint32_t election_ticks = 10;
  std::uint32_t heartbeat_ticks = 1;
  std::uint64_t max_msg_bytes = 1 << 20;  // 1: one entry per append (fine-grained replication)
  std::uint32_t max_inflight_msgs = 256;
  std::uint64_t max_uncommitted_bytes = 64 << 20;  // back-pressure on proposals
  bool pre_vote = true;
  bool check_quorum = true;
  bool lazy_commit_broadcast = false;  // raft::Config::lazy_commit_broadcast
  // A leader's messages produced while its Ready is being persisted are sent at once
  // (raft::RawNode::take_leader_messages), as the broker's RaftGroup does.
  bool send_while_persisting = false;
  raft::ReadOnlyOption read_only = raft::ReadOnlyOption::kSafe;
  std::uint32_t bugs = 0;                 // raft::Bug bits set on every node
  bool check_commit_durability = true;    // sample leaders' in-memory commit index
  NetworkOptions network;
  std::uint32_t torn_write_per_mille = 0;  // crashes that keep a prefix of the unsynced write
  std::uint64_t snapshot_every_entries = 0;  // host compacts after this many applies (0: never)
  // Power loss in the middle of persisting a granted vote (restart 1-50 ms later): the
  // moment §5.2's "persist before responding" is about. Active until faults stop.
  std::uint32_t crash_on_vote_write_per_mille = 0;
};

// Per-node timing: how fast its clock ticks and how slow its disk is.
struct NodeTiming {
  SimTime tick_us = 10'000;
  SimTime fsync_min_us = 100;
  SimTime fsync_max_us = 2'000;
};

class SimNode {
 public:
  NodeId id;
  NodeTiming timing;
  std::unique_ptr<SimDisk> disk;
  std::unique_ptr<raft::RawNode> raft;  // null while down
  bool up = false;
  bool removed = false;  // removed from the membership: never restarted
  std::uint64_t incarnation = 0;
  SimTime paused_until = 0;

  std::optional<raft::Ready> in_progress;  // Ready taken, its write waiting for fsync
  PendingWrite pending;
  StateDigest state;  // the state machine
  Term known_term;    // highest term this node handed out in a HardState
  raft::SoftState soft;
  Term leader_term;  // the term of its leadership when soft.role is kLeader
  raft::ConfState conf_state;  // as of the last conf change it applied
  std::uint64_t applied_since_snapshot = 0;

  // CheckQuorum bookkeeping, in this node's own ticks (since its start).
  std::uint64_t ticks = 0;
  std::uint64_t leader_since_tick = 0;  // when the host learned it leads
  std::uint64_t grace_since_tick = 0;    // membership change or transfer request (both restart
                                         // the core's CheckQuorum period)
  std::map<std::uint64_t, std::uint64_t> heard_tick;  // peer → tick of its last message
};

// What the workload hears from the hosts.
class ClusterListener {
 public:
  virtual ~ClusterListener() = default;
  virtual void on_applied(SimNode& node, const raft::Entry& entry) = 0;
  virtual void on_read_state(SimNode& node, const raft::ReadState& read_state) = 0;
  virtual void on_crash(SimNode& node) = 0;
};

class Cluster {
 public:
  Cluster(Prng* prng, ClusterOptions options, const Trace* trace);
  ~Cluster();

  // Creates and starts the initial voters 1..count.
  void bootstrap(std::uint32_t count, const std::vector<NodeTiming>& timings);
  // Creates and starts a node with an empty disk that joins through a membership change.
  SimNode& add_node(NodeId id, NodeTiming timing);
  void set_listener(ClusterListener* listener) { listener_ = listener; }

  // Runs events until the queue is empty, `until` is reached or a check fails.
  void run_until(SimTime until);
  SimTime now() const { return now_; }
  // Schedules an action (client or nemesis) at now + delay.
  void schedule(SimTime delay, std::function<void()> action);

  // Faults.
  void crash(NodeId id);
  void restart(NodeId id);
  void pause(NodeId id, SimTime duration);
  void shutdown_removed(NodeId id);
  void stop_faults() { options_.crash_on_vote_write_per_mille = 0; }

  // Client entry points (no-ops with an error when the node is down).
  Result<LogIndex> propose(NodeId id, SharedBuffer payload);
  Result<LogIndex> propose_conf_change(NodeId id, const raft::ConfChange& change);
  Status read_index(NodeId id, std::uint64_t context);
  Status transfer_leader(NodeId id, NodeId transferee);

  SimNode* node(NodeId id);
  const std::map<std::uint64_t, std::unique_ptr<SimNode>>& nodes() const { return nodes_; }
  // Up nodes that believe they lead, highest term first.
  std::vector<NodeId> leaders() const;
  std::vector<NodeId> up_nodes() const;
  std::vector<NodeId> member_ids() const;  // not removed
  bool ever_member(NodeId id) const { return ever_member_.count(id.value()) != 0; }

  SimNetwork& network() { return network_; }
  Checker& checker() { return checker_; }
  const Trace& trace() const { return *trace_; }
  Prng& prng() { return *prng_; }
  void trace_line(std::string_view actor, const std::string& text) const;
  bool tracing() const { return trace_->enabled(); }
  std::uint64_t events_processed() const { return events_processed_; }
  std::uint64_t messages_sent() const { return messages_sent_; }

 private:
  enum class EventKind : std::uint8_t { kTick, kDeliver, kFsync, kAction };
  struct Event {
    SimTime time = 0;
    std::uint64_t seq = 0;
    EventKind kind = EventKind::kAction;
    std::uint64_t node = 0;
    std::uint64_t incarnation = 0;
    std::uint64_t sender_incarnation = 0;
    raft::Message message;
    std::function<void()> action;
  };
  struct EventLater {
    bool operator()(const Event& a, const Event& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };

  void push(Event event);
  void dispatch(Event& event);
  void on_tick(SimNode& node);
  void on_deliver(Event& event);
  void start(SimNode& node);
  void send(SimNode& from, const raft::Message& message);
  void report_snapshot_outcome(NodeId from, std::uint64_t incarnation, NodeId to, bool success);
  void drive(SimNode& node);
  void take_ready(SimNode& node);
  void finish_ready(SimNode& node);
  void apply_committed(SimNode& node, const raft::Ready& ready);
  void maybe_compact(SimNode& node, bool force);
  void check_node(SimNode& node);
  void check_quorum_contact(SimNode& node);
  void note_soft_state(SimNode& node, const raft::SoftState& soft);
  void note_conf_state(SimNode& node);
  std::string node_name(NodeId id) const { return "n" + std::to_string(id.value()); }

  Prng* prng_;
  ClusterOptions options_;
  const Trace* trace_;
  SimNetwork network_;
  Checker checker_;
  ClusterListener* listener_ = nullptr;
  std::map<std::uint64_t, std::unique_ptr<SimNode>> nodes_;  // ordered by id: deterministic
  std::vector<Event> queue_;                                  // a heap (EventLater)
  SimTime now_ = 0;
  std::uint64_t next_seq_ = 0;
  std::uint64_t events_processed_ = 0;
  std::uint64_t messages_sent_ = 0;
  LogIndex last_conf_applied_;             // applied index of the newest membership seen
  std::set<std::uint64_t> ever_member_;    // ids that were in some adopted configuration
  std::vector<NodeId> removed_pending_;
};

// Snapshot data of the simulated state machine (little-endian applied, digest, count).
SharedBuffer encode_state(const StateDigest& state);
std::optional<StateDigest> decode_state(BufferView bytes);

}  // namespace mq::sim
