// cluster::Node: one broker's cluster engine — the entry point the broker process wires up
// (docs/cluster.md). It owns the storage Flusher (group commit thread), the Transport (its own
// thread), the controller group (Raft group 0) and the partition groups this broker hosts,
// and implements ClusterApi for the Kafka layer.
//
// Threading: every method runs on the broker's event loop (the asio::io_context passed in),
// as do all Raft groups. Inbound transport messages and flusher durability reports are
// posted to the loop (inbound posts are bounded by inbound_queue_messages_max: beyond it
// messages are dropped, which Raft tolerates). Nothing blocks the loop except the rare
// synchronous metadata writes (term/vote changes, checkpoints, snapshots).
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cluster/api.h"
#include "cluster/broker_join.h"
#include "cluster/controller.h"
#include "cluster/node_admin_rpc.h"
#include "cluster/partition.h"
#include "cluster/producer_id_allocator.h"
#include "cluster/replica_recovery.h"
#include "storage/flusher.h"
#include "storage/log.h"
#include "transport/transport.h"

namespace mq::cluster {

// One broker of the cluster: "id@host:rpc_port:kafka_port" (the Kafka host is the same host).
struct BrokerAddress {
  BrokerId id;
  std::string host;
  std::uint16_t rpc_port = 0;
  std::uint16_t kafka_port = 0;
  bool operator==(const BrokerAddress&) const = default;
};
Result<BrokerAddress> parse_broker_address(std::string_view text);

// NodeConfig::lazy_commit_broadcast's default: on unless RAFTMQ_LAZY_COMMIT=0.
bool default_lazy_commit_broadcast();
// NodeConfig::send_while_parked's default: on unless RAFTMQ_SEND_WHILE_PARKED=0.
bool default_send_while_parked();

struct NodeConfig {
  BrokerId id{1};
  std::string data_dir;
  std::string cluster_id = "raftmq";
  std::string rpc_listen_host = "127.0.0.1";
  std::uint16_t rpc_listen_port = 0;  // 0: ephemeral (tests); see rpc_port()
  std::string advertised_host = "127.0.0.1";
  std::uint16_t advertised_kafka_port = 9092;
  // Every broker of the cluster, this one included; all are voters of the controller group.
  // Empty: a single-broker cluster of this node (or a broker that joins: join_seeds).
  std::vector<BrokerAddress> brokers;
  // Dynamic addition (docs/cluster.md "Adding a broker"; node_join.cc): the RPC addresses of
  // brokers of a running cluster. With an empty `brokers` list this broker joins that cluster
  // as a non-voting member (a learner of the controller group); its data directory then
  // remembers the join (join.state), so a restart needs neither this nor `brokers`.
  std::vector<JoinSeed> join_seeds;
  std::int64_t join_timeout_ms = 30000;  // no answer to the join by then: start() fails late
  std::string rack;                       // registered for a joined broker (Metadata)

  // Time.
  std::uint32_t tick_ms = 10;
  std::uint32_t election_ticks = 30;   // election timeout in [30, 60) ticks = 300-600 ms
  std::uint32_t heartbeat_ticks = 3;
  // Partition groups (not the controller's) tell followers of commit advances with the next
  // append or tick instead of one append per advance (raft::Config::lazy_commit_broadcast):
  // half the Raft messages per entry; a follower applies up to one tick later. Default on;
  // RAFTMQ_LAZY_COMMIT=0 turns it off (for A/B measurements).
  bool lazy_commit_broadcast = default_lazy_commit_broadcast();
  // A leader whose Ready waits for its fsync sends the appends of proposals made meanwhile at
  // once (RaftGroupOptions::send_while_parked), every group. Default on;
  // RAFTMQ_SEND_WHILE_PARKED=0 turns it off (for A/B measurements).
  bool send_while_parked = default_send_while_parked();
  std::uint32_t reconcile_interval_ms = 100;
  // A replica moved away that never hears of its removal (removed while it was down) is
  // deleted after this long, unless the group still counts it (node_reconcile.cc).
  std::int64_t orphan_grace_ms = 10000;
  std::uint32_t leader_hint_interval_ms = 300;
  std::uint32_t retention_check_interval_ms = 60000;
  // Preferred leaders (node_reconcile.cc, docs/cluster.md "Leader balancing"): this often, a
  // broker hands each partition it leads, but is not the first replica of, to that first
  // replica when it is live and caught up (Kafka's auto leader rebalance). 0: never.
  std::uint32_t leader_rebalance_interval_ms = 30000;
  std::int64_t produce_timeout_ms = 30000;
  std::int64_t shutdown_transfer_timeout_ms = 2000;
  // Readiness (when_ready): the longest wait for this replica of the controller to catch up
  // with the controller leader's commit index; after it the broker serves anyway (logged).
  std::int64_t ready_timeout_ms = 10000;

  // Limits (DESIGN.md principle 5).
  std::uint64_t max_message_bytes = 1u << 20;        // entries per Raft append message
  std::uint32_t max_inflight_msgs = 256;             // pipelined appends per follower
  // Unacked bytes per follower and group. Also the size of the burst a leader reads and
  // sends on its event loop when a returning follower starts catching up: 32 MiB bursts
  // (x every group) stalled the loop past the election timeout (FINDINGS.md F2).
  std::uint64_t max_inflight_bytes = 4u << 20;
  std::uint64_t max_uncommitted_bytes = 64u << 20;   // per group; beyond: back-pressure
  // Committed entries handed (and applied) per Ready: one Ready is one uninterrupted stretch
  // of the loop, and a catch-up's 8 MiB Readies took 60-200 ms of CPU to apply (FINDINGS.md F2).
  std::uint64_t max_committed_bytes_per_ready = 1u << 20;
  std::uint32_t max_batch_bytes = 16u << 20;         // one produced record batch
  std::uint32_t inbound_queue_messages_max = 65536;  // transport -> loop posts in flight
  std::uint32_t produce_waiters_max = 16384;         // per partition
  std::uint32_t fetch_waiters_max = 4096;            // per partition
  std::uint32_t peer_queue_messages_max = 16384;     // transport, per peer
  std::uint64_t peer_queue_bytes_max = 128u << 20;   // transport, per peer
  // The transport runs on this Node's event loop (TransportOptions::io) instead of a thread of
  // its own: a received Raft message then costs no wake-up of a transport thread and no
  // hand-over to the loop (about 6x fewer context switches and system calls for an idle
  // cluster). On by default since the A/Bs on the second development machine found no loss of
  // produce throughput and a lower produce p99 (docs/benchmarks.md, "The transport on the
  // loop by default"); the first machine had lost throughput at full load on the loop. The
  // environment variable RAFTMQ_TRANSPORT_ON_LOOP (1 or 0) overrides this field; 0 gives the
  // transport its own thread (rmq-transport) again.
  bool transport_on_loop = true;
  std::uint64_t segment_size_bytes = 128u << 20;
  // Pre-written space after each partition log's tail (storage::LogOptions::
  // zero_fill_window_bytes, docs/formats/segment_format.md "Pre-written space"): appends
  // overwrite written zeros, so the fdatasync an acks=all produce waits for needs no ext4
  // journal commit. Fills only run for logs synced in small pieces (a single in-flight
  // producer; LogOptions::zero_fill_sync_bytes_max) and after a quarter of the window was
  // appended since the log was opened, so idle and streaming partitions do not pay for it.
  // Default 2 MiB (RAFTMQ_ZERO_FILL_BYTES overrides it; 0 turns it off).
  std::uint64_t zero_fill_window_bytes = storage::zero_fill_window_bytes_or(storage::kBrokerZeroFillWindowBytes);
  // O_DIRECT writes in flight per partition log (storage::LogOptions::direct_write_depth,
  // 1-3; docs/formats/segment_format.md "Concurrent-write hole"). Default 2.
  std::uint32_t direct_write_depth = storage::kBrokerDirectWriteDepth;
  ProducerStateOptions producer_state;  // idempotent producers per partition, expiration
  std::uint64_t controller_snapshot_interval_entries = 4096;
  std::uint32_t partitions_hosted_max = 10000;

  // The event loop's stall detector (loop_watch.h): handlers holding the loop at least this
  // long are logged and counted (NodeMetrics::loop_stalls*); 0 turns the detector off.
  std::int64_t loop_stall_threshold_ms = 100;

  // Replicas stopped by a storage error are re-opened (replica_recovery.h).
  ReplicaRecoveryOptions replica_recovery;
  // The file system of the replicas (partitions, the controller, the sync ledger); nullptr:
  // POSIX (tests pass an in-memory one).
  storage::FileSystem* file_system = nullptr;

  // Topic defaults.
  std::int32_t default_partitions = 1;
  std::int16_t default_replication_factor = -1;  // -1: min(3, number of brokers)
  bool auto_create_topics = false;
  std::int64_t default_retention_ms = 7ll * 24 * 3600 * 1000;
  std::int64_t default_retention_bytes = -1;  // -1: unlimited

  Status validate() const;
};

struct NodeMetrics {
  std::uint64_t inbound_messages = 0;
  std::uint64_t inbound_dropped = 0;   // loop queue full or unknown group
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_send_dropped = 0;
  std::uint64_t groups_created = 0;
  std::uint64_t groups_removed = 0;
  std::uint64_t leader_transfers = 0;
  std::uint64_t leader_rebalances = 0;  // transfers to a partition's preferred replica
  std::uint64_t retention_runs = 0;
  std::uint64_t replicas_repaired = 0;  // damaged tails cut (replica_repair.h)
  std::uint64_t replicas_lost_synced = 0;  // opened below their sync ledger record (abstain)
  std::uint64_t tick_wakeups = 0;       // Node::on_tick runs (fewer when idle: idle_tick_stride)
  std::uint64_t pings_sent = 0;         // liveness pings (node_quiesce.cc)
  std::uint64_t pings_suppressed = 0;   // not needed: other traffic reached the peer
  std::uint64_t wake_requests_sent = 0;      // woken followers asking their leaders to wake
  std::uint64_t wake_requests_honoured = 0;  // quiesced groups led here woken by one
  // Event-loop stalls (loop_watch.h): handlers that held the loop >= loop_stall_threshold_ms,
  // those >= 400 ms (a leader's followers may time out), the longest and what it was.
  std::uint64_t loop_stalls = 0;
  std::uint64_t loop_stalls_severe = 0;
  std::int64_t loop_stall_longest_ms = 0;
  std::string loop_stall_longest;
};

struct BrokerStatus {
  BrokerId id;
  std::string host;
  std::uint16_t kafka_port = 0;
  bool alive = false;
};

// `raftmq cluster status`: this broker's view.
struct ClusterStatus {
  BrokerId self;
  BrokerId controller_leader{-1};
  Term controller_term;
  LogIndex controller_commit;
  std::vector<BrokerStatus> brokers;
  std::vector<PartitionStatus> partitions;  // hosted replicas (full detail)
  NodeMetrics metrics;
};

// node_status.cc: every partition of the cluster, each as its leader reports it.
struct ClusterView {
  ClusterStatus local;                      // the broker asked
  std::vector<PartitionStatus> partitions;  // every partition; leader -1 if none answered
  std::vector<BrokerId> unreachable;        // peers down or silent until the timeout
};
Buffer encode_partition_statuses(const std::vector<PartitionStatus>& statuses);
Result<std::vector<PartitionStatus>> decode_partition_statuses(BufferView bytes);
Buffer encode_cluster_view(const ClusterView& view);
Result<ClusterView> decode_cluster_view(BufferView bytes);

class Node final : public ClusterApi, public GroupHost {
 public:
  Node(asio::io_context& loop, NodeConfig config);
  ~Node() override;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Opens storage, starts the flusher and transport, the controller group and the timers.
  // Call on the loop thread (or before the loop runs).
  Status start();
  // Graceful: transfers leadership of every locally led group to a caught-up follower,
  // waits up to shutdown_transfer_timeout_ms, checkpoints, stops; then `done` (on the loop).
  void shutdown(std::function<void()> done);
  // Immediate stop, as a crash would (nothing is transferred or checkpointed). Idempotent.
  void stop();

  ClusterApi& api() { return *this; }
  // The counters, with the loop stall figures filled in (loop thread).
  NodeMetrics metrics() const;
  // ClusterApi: the Kafka listener's open client connections (fast failover's evidence that
  // clients can reach this broker, node_failover.cc).
  void client_connections_changed(std::size_t open) override;
  // Calls `ready` (on the loop) once this broker's controller replica has applied everything
  // the controller leader had committed when the broker started (a ReadIndex, thesis §6.4,
  // answered by the leader and then applied here), or after ready_timeout_ms: before that its
  // metadata may be stale, so the broker opens its Kafka listener only then. At once if ready.
  void when_ready(std::function<void()> ready);
  bool is_ready() const { return ready_; }
  // Calls `failed` (on the loop) if the join of a new broker (join_seeds) is refused or
  // unanswered within join_timeout_ms; the broker is stopped then. Not called otherwise.
  void when_failed(std::function<void(Status)> failed) { join_failed_ = std::move(failed); }
  // True while a new broker waits for the cluster's answer to its join.
  bool joining() const { return join_pending_; }
  // Why the join failed (OK while joining, joined, or for a broker of the static list).
  const Status& join_failure() const { return join_failure_; }
  std::uint16_t rpc_port() const { return rpc_port_; }
  ClusterStatus cluster_status() const;
  // Gathers every partition's status from its leader (node_status.cc); `done` on the loop.
  void gather_cluster_status(std::int64_t timeout_ms, std::function<void(ClusterView)> done);
  const NodeConfig& config() const { return config_; }
  const ControllerGroup* controller() const { return controller_.get(); }

  // ClusterApi.
  BrokerId self() const override { return config_.id; }
  MetadataSnapshot metadata() const override;
  Result<LocalPartition*> local_partition(std::string_view topic, std::int32_t partition) override;
  void create_topics(std::vector<TopicSpec> topics, std::int64_t timeout_ms,
                     std::function<void(std::vector<AdminResult>)> done) override;
  void delete_topics(std::vector<std::string> names, std::int64_t timeout_ms,
                     std::function<void(std::vector<AdminResult>)> done) override;
  void create_partitions(std::vector<std::pair<std::string, std::int32_t>> new_totals,
                         std::int64_t timeout_ms, bool validate_only,
                         std::function<void(std::vector<AdminResult>)> done) override;
  Result<std::map<std::string, std::string>> describe_topic_configs(
      std::string_view topic) const override;
  std::map<std::string, std::string> describe_broker_configs() const override;
  void alter_topic_configs(std::string topic, std::map<std::string, std::string> configs,
                           std::int64_t timeout_ms, std::function<void(AdminResult)> done) override;
  void move_partition(std::string topic, std::int32_t partition, std::vector<BrokerId> replicas,
                      std::int64_t timeout_ms, std::function<void(AdminResult)> done) override;
  // node_producer_ids.cc
  void init_producer_id(std::int64_t producer_id, std::int16_t producer_epoch,
                        std::int64_t timeout_ms,
                        std::function<void(Result<ProducerIdResult>)> done) override;
  std::vector<ReassignmentInfo> list_reassignments() const override;
  // node_membership.cc (docs/cluster.md "Removing a broker").
  void remove_broker(BrokerId broker, std::int64_t timeout_ms,
                     std::function<void(AdminResult)> done) override;
  void cluster_view(std::int64_t timeout_ms, std::function<void(Result<Buffer>)> done) override;
  // node_voters.cc (docs/cluster.md "Controller voters"): the operator's choice of controller
  // voters (`raftmq controller voters`).
  void set_controller_voter(BrokerId broker, VoterChoice choice, std::int64_t timeout_ms,
                            std::function<void(AdminResult)> done) override;
  Result<ControllerMembers> controller_members() const override;

  // Quiescing (node_quiesce.cc; docs/cluster.md "Quiescing"): partition groups ticked
  // (awake) and hosted groups that are quiesced; whether `peer` is considered down (silent
  // for a liveness timeout, or its connection failed).
  std::size_t awake_partitions() const;
  std::size_t quiesced_partitions() const;
  bool peer_down(BrokerId peer) const;
  // Tests: simulates a network partition between this broker and `peers` (every message to
  // or from them is dropped here; their connections stay up, so only the liveness pings'
  // absence reveals it). Empty: heals.
  void block_links_for_test(std::set<BrokerId> peers);
  // Tests: drops every inbound controller-group (Raft group 0) message for `ms` from now, so
  // this broker applies controller entries late (its links stay up: it is still live).
  void hold_controller_for_test(std::int64_t ms);

 private:
  struct Hint {
    Term term;
    BrokerId leader{-1};
    std::int64_t received_ms = 0;
  };

  // GroupHost.
  bool send_message(GroupId group, raft::Message message) override;
  void flush_messages() override;
  void log(std::string_view line) override;
  void on_leader_changed(GroupId group, NodeId leader) override;

  // Quiescing and per-broker-pair liveness (node_quiesce.cc).
  void on_awake(GroupId group) override;
  void tick_partitions(std::int64_t now_ms);
  // Sweeps the partition groups with produce/fetch waiters (on_waiter), not all of them.
  void on_waiter(GroupId group) override;
  void sweep_partitions(std::int64_t now_ms);
  // The periodic reconciliation's interval: reconcile_interval_ms while anything may need a
  // retry (a hosted group awake: a move's next step; orphans; registrations), longer when
  // every hosted group is quiesced (a metadata change reconciles at once anyway).
  std::int64_t reconcile_interval_ms() const;
  // Idle brokers (every hosted partition quiesced, nothing waiting or due): the tick timer
  // fires every idle_tick_stride() ticks and ticks the controller that many times (same tick
  // rate, fewer wake-ups), and the waiter/recovery sweep runs every sweep_interval_ms().
  std::uint32_t idle_tick_stride() const;
  // A group woke while the tick timer waits out an idle stride: it fires within tick_ms.
  void cut_idle_tick_short();
  std::int64_t last_tick_wake_ms_ = 0;  // steady ms of the last Node::on_tick
  std::int64_t sweep_interval_ms() const;
  // recover_replicas' interval: kSweepIntervalMs, or kIdleRecoverIntervalMs (node_quiesce.cc)
  // on an idle broker with no recovery record: the scan then only looks for a replica stopped
  // since the last one (up to that much later than on a busy broker; its first re-open waits
  // for a back-off of 500 ms anyway), over every hosted partition.
  std::int64_t recover_interval_ms() const;
  bool idle() const;
  std::uint32_t tick_stride_ = 1;  // ticks the controller gets at the next on_tick
  void handle_quiesce(BrokerId from, const raft::Message& message);
  // Every inbound message: records that `from` is alive. False: dropped (test partition).
  bool note_inbound(BrokerId from);
  bool link_blocked(BrokerId peer) const;
  void check_liveness(std::int64_t now_ms);
  void mark_peer_down(BrokerId peer, std::int64_t now_ms, const char* why);
  // Wakes the quiesced groups this broker leads and, if `peer` is set, those `peer` leads.
  void wake_groups_for(BrokerId peer);
  // Followers woken from quiescence since the last tick (on_awake): each asks its leader's
  // broker to wake the group there too (tests/chaos/FINDINGS.md F2: a returning peer's PreVote
  // woke a follower while its quiesced leader, still cut off from that peer, sent nothing; the
  // follower's election timer ran out and it was elected with the returning peer's vote).
  void ask_leaders_to_wake(const std::vector<NodeId>& down);
  std::set<GroupId> woken_;
  struct PeerLiveness {
    BrokerId peer;
    std::int64_t last_heard_ms = 0;
    bool down = false;
    // Ping suppression (check_liveness): the peer's messages_sent counter at the last ping
    // round, and whether that round sent a ping.
    std::uint64_t sent_at_round = 0;
    bool pinged = false;
  };
  // Whether `l.peer` needs a ping this round: only when nothing else was written to it since
  // the last round (any message is a sign of life). Updates the round's bookkeeping.
  bool ping_needed(PeerLiveness& l);
  std::set<GroupId> awake_;  // partition groups to tick; quiesced or removed ones pruned lazily
  std::set<GroupId> waiting_;  // partition groups with waiters to sweep (pruned when none)
  std::vector<PeerLiveness> liveness_;
  std::int64_t last_ping_ms_ = 0;
  std::set<BrokerId> blocked_for_test_;
  std::int64_t controller_hold_until_ms_ = 0;  // hold_controller_for_test

  // Fast failover (node_failover.cc, docs/cluster.md "Failover"): the transport lost `peer`.
  void on_peer_unreachable(BrokerId peer);
  void run_due_campaigns(std::int64_t now_ms);
  // The live voters of `voters` (without `dead`) in the order they campaign after a leader
  // loss (by id; see node_failover.cc for the penalty that moves one behind the others).
  std::vector<NodeId> campaign_order(const std::vector<NodeId>& voters, NodeId dead) const;
  // For Metadata while a hosted group is leaderless shortly after losing its leader (or whose
  // leader `dead` is known gone): the replica expected to win the election, or -1.
  BrokerId expected_leader(const RaftGroup& group, NodeId dead = kNoNode) const;
  // `broker` (this one included) started, or came back, within the window in which Kafka
  // clients may still be in reconnect back-off towards it (a peer: as far as this broker can
  // tell; while this broker is itself that young, it cannot, and says yes).
  bool recently_restarted(BrokerId broker, std::int64_t now_ms) const;
  // Kafka clients can probably connect to this broker now.
  bool clients_can_reach_self(std::int64_t now_ms) const;
  void note_peer_heard(BrokerId peer);  // a message from a peer that was lost: it is back
  // `leader` is a peer whose connection the kernel reports closed or reset right now.
  bool leader_connection_lost_now(BrokerId leader) const;
  void on_read_state(GroupId group, const raft::ReadState& state) override;
  LoopWatch* loop_watch() override { return loop_watch_.get(); }
  void on_ready_pending(GroupId group) override;
  void check_ready(std::int64_t now_ms);

  // Admin forwarding to the controller leader (node_forward.cc).
  struct Forward {
    AdminRequest request;
    std::vector<std::string> names;
    std::int64_t locate_deadline_ms = 0;  // give up finding a controller leader (NOT_CONTROLLER)
    std::int64_t deadline_ms = 0;         // give up waiting for its answer (timeout)
    BrokerId sent_to{-1};                 // -1: not outstanding (retried by sweep_forwards)
    BrokerId failed_leader{-1};           // died or refused: not asked again in failed_term
    Term failed_term;
    // kRemoveBroker: the broker's tombstone here when the request was made (none: nullopt),
    // and an "already removed" answer held until this broker applies the tombstone.
    std::optional<RemovedBroker> removed_before;
    std::vector<AdminResult> held;
    std::function<void(std::vector<AdminResult>)> done;
  };
  static constexpr std::uint64_t kAdminRequestContext = 1;
  static constexpr std::uint64_t kAdminResponseContext = 2;
  bool should_forward() const;
  void forward_admin(AdminRequest request, std::function<void(std::vector<AdminResult>)> done);
  void try_forward(std::uint64_t id, std::int64_t now_ms);
  void sweep_forwards(std::int64_t now_ms);
  void fail_forwards(const Status& status);
  bool removal_applied_since(const Forward& f) const;
  void serve_admin(AdminRequest request, std::function<void(std::vector<AdminResult>)> done);
  void handle_admin_request(BrokerId from, const raft::Message& message);
  void handle_admin_response(BrokerId from, const raft::Message& message);
  // Admin read-your-writes (node_propagation.cc, docs/cluster.md "Admin answers wait for the
  // live brokers"): the controller leader asks every live broker to confirm it applied a
  // controller entry (query: context kAppliedQueryContext, id in `index`, the entry's index
  // in `commit`; the ack echoes the id and carries the broker's applied index in `commit`).
  static constexpr std::uint64_t kAppliedQueryContext = 0x61707071ull;  // "apq"
  static constexpr std::uint64_t kAppliedAckContext = 0x61706161ull;    // "apaa"
  struct Propagation {
    LogIndex index;
    std::set<BrokerId> waiting;
    std::int64_t deadline_ms = 0;
    std::int64_t sent_ms = 0;
    std::function<void(std::set<BrokerId>)> done;  // the live brokers not confirmed (or none)
  };
  struct AppliedQuery {
    BrokerId from;
    std::uint64_t id = 0;
    LogIndex index;
    std::int64_t received_ms = 0;
  };
  // Wraps an admin command's completion: a committed command (timeout_ms > 0) completes once
  // every live broker applied it, or at now + timeout_ms with kTimeout if `timeout_is_error`
  // (the Kafka APIs with a timeout_ms field), else with the command's own outcome.
  std::function<void(Status)> after_propagation(std::int64_t timeout_ms, bool timeout_is_error,
                                                std::function<void(Status)> done);
  void await_propagation(LogIndex index, std::int64_t deadline_ms,
                         std::function<void(std::set<BrokerId>)> done);
  void send_applied_query(BrokerId to, std::uint64_t id, LogIndex index);
  void handle_applied_query(BrokerId from, const raft::Message& message);
  void handle_applied_ack(BrokerId from, const raft::Message& message);
  void answer_applied_queries();
  void sweep_propagations(std::int64_t now_ms);
  void fail_propagations();
  std::map<std::uint64_t, Propagation> propagations_;
  std::uint64_t next_propagation_id_ = 1;
  std::vector<AppliedQuery> applied_queries_;
  // Cluster status gathering (node_status.cc).
  struct StatusGather {
    ClusterView view;
    std::vector<PartitionStatus> led;  // answers: the partitions each broker leads
    std::set<BrokerId> waiting;
    std::shared_ptr<asio::steady_timer> timer;
    std::function<void(ClusterView)> done;
  };
  static constexpr std::uint64_t kStatusRequestContext = 3;
  static constexpr std::uint64_t kStatusResponseContext = 4;
  // Control-plane contexts of node_quiesce.cc (ASCII "quiesce", "ping": apart from the small
  // numbers above).
  static constexpr std::uint64_t kQuiesceContext = 0x71756965736365ull;
  static constexpr std::uint64_t kPingContext = 0x70696e67ull;
  void handle_status_request(BrokerId from, const raft::Message& message);
  void handle_status_response(BrokerId from, const raft::Message& message);
  void finish_status_gather(std::uint64_t id);
  void fail_status_gathers();
  std::map<std::uint64_t, StatusGather> status_gathers_;
  std::uint64_t next_status_id_ = 1;

  raft::Config raft_config(const std::vector<NodeId>& voters) const;
  std::string partition_dir(const std::string& topic, std::int32_t partition, GroupId group) const;
  Status open_controller();
  // The rest of start() once the controller voters are known (at once, or after a join).
  Status open_cluster();

  // Dynamic broker addition (node_join.cc, docs/cluster.md "Adding a broker").
  Status prepare_join();
  void start_membership_timer();
  void on_membership_timer();
  void send_join_request(std::int64_t now_ms);
  void fail_join(Status status);
  void handle_join_request(BrokerId from, const raft::Message& message);
  void handle_join_answer(BrokerId from, const raft::Message& message);
  Status check_join(const BrokerRecord& broker) const;
  void answer_join(const JoinRequest& request, const Status& status);
  BrokerRecord own_join_record() const;
  void maybe_reregister(std::int64_t now_ms);
  // Adds (or re-addresses) a transport peer for every registered broker outside the static
  // list (brokers that joined); on every controller state change.
  void sync_peers();
  // Broker removal and controller voters (node_membership.cc, docs/cluster.md "Removing a
  // broker", "Controller voters"). Controller leader, one configuration change per step:
  // removed brokers leave group 0, registered brokers outside it become learners, caught-up
  // live learners are promoted to voters up to kControllerVotersMax.
  void reconcile_controller_membership(std::int64_t now_ms);
  // The controller leader's checks before RemoveBroker (replicas, moves, the quorum rule).
  Status check_remove(BrokerId broker) const;
  // Controller voter choices (node_voters.cc). The leader's checks before SetVoterChoice; the
  // quorum rule of a demotion (also re-checked before the configuration change is proposed);
  // whether a voter change is under way; the reconciliation step that demotes voters chosen
  // to be learners (transferring the leadership first when it is this broker) and promotes
  // learners (chosen ones beyond kControllerVotersMax, automatic ones up to it).
  Status check_voter_choice(BrokerId broker, VoterChoice choice) const;
  Status check_demotion(const raft::ConfState& cs, BrokerId broker) const;
  bool voter_change_under_way(const raft::ConfState& cs) const;
  bool controller_peer_alive(BrokerId broker) const;
  // Returns true when it proposed a change (or started a leadership transfer).
  bool reconcile_controller_voters(std::int64_t now_ms, const raft::ConfState& cs);
  void check_voter_waits(std::int64_t now_ms);
  void fail_voter_waits(const Status& status);
  struct VoterWait {
    BrokerId broker;
    VoterChoice choice = VoterChoice::kAuto;
    std::int64_t deadline_ms = 0;
    std::function<void(AdminResult)> done;
  };
  std::vector<VoterWait> voter_waits_;
  bool voter_choice_in_flight_ = false;  // controller leader: SetVoterChoice proposed
  LogIndex voter_change_index_;          // the last voter configuration change proposed here
  std::string voter_blocked_;            // why the pending voter change waits (logged, answered)
  std::int64_t voter_blocked_log_ms_ = 0;
  std::int64_t voter_transfer_ms_ = 0;   // last leadership transfer before a self-demotion
  // On every controller state change: removed (or re-joined) ids leave the static list and
  // the transport; this broker stops if its own record was removed.
  void prune_removed_brokers();
  // A message from a removed broker: dropped, and the broker told (at most once a second).
  // A join request (a new data directory under the removed id) is let through.
  bool refuse_removed_peer(BrokerId from, GroupId group, const raft::Message& message);
  void handle_removed_notice(BrokerId from, const raft::Message& message);
  void leave_removed(const Status& status);
  // The controller group's voters now, with their addresses (a join answer).
  std::vector<JoinVoter> controller_voters() const;
  std::uint64_t own_incarnation() const { return join_state_ ? join_state_->incarnation : 0; }
  std::map<BrokerId, std::int64_t> removed_notice_ms_;
  std::set<BrokerId> removals_in_flight_;  // controller leader: RemoveBroker proposed, not applied
  bool leaving_removed_ = false;
  // Every broker known (static list and registered), without this one.
  std::vector<BrokerId> peer_ids() const;
  // A transport link to an address rather than a broker id (transport.h), for answers to a
  // broker that is not registered at that address (yet); removed after kReplyLinkIdleMs.
  BrokerId reply_link(const std::string& host, std::uint16_t port, std::int64_t now_ms);
  // `cut` non-null: the log opens in the "cut at the first damaged entry" repair mode and
  // *cut says what was cut (replica_repair.h).
  Result<std::unique_ptr<PartitionGroup>> open_partition(
      const TopicRecord& topic, std::int32_t partition,
      std::optional<storage::DamagedTailCut>* cut = nullptr);
  void deliver(BrokerId from, GroupId group, raft::Message message);
  void handle_hints(BrokerId from, const raft::Message& message);
  void broadcast_hints();
  void schedule_pump(GroupId group);
  void drain_pumps();
  RaftGroup* find_group(GroupId group);
  void on_tick();
  void reconcile();
  // The leadership report of `group` received from its leader's broker, if still fresh (three
  // report intervals and 500 ms): that leader is alive. Null otherwise.
  const Hint* fresh_hint(GroupId group, std::int64_t now_ms) const;
  void reconcile_membership(PartitionGroup& group, const PartitionRecord& record);
  void remove_partition(GroupId group);
  void remove_stray_directories();
  void register_brokers();
  void run_retention();
  void rebalance_leaders();
  void arm(asio::steady_timer& timer, std::uint32_t ms, void (Node::*handler)());
  void shutdown_step(std::int64_t deadline_ms, std::function<void()> done);
  bool broker_alive(BrokerId broker) const;
  // A quorum of the group's voters (of both halves of a joint configuration) is alive as
  // this broker sees it (itself included): connection up, not silent for the liveness timeout.
  bool sees_quorum_of_voters(const RaftGroup& group) const;
  PartitionInfo partition_info(const PartitionRecord& record, std::int32_t index) const;
  std::vector<BrokerId> broker_ids() const;
  std::int16_t default_replication_factor() const;
  void start_producer_ids();  // node_producer_ids.cc
  void handle_producer_id_request(BrokerId from, const raft::Message& message);
  // `timeout_is_error`: see after_propagation (node_propagation.cc).
  void propose_admin(Command command, std::string name, std::int64_t timeout_ms,
                     std::function<void(AdminResult)> done, bool timeout_is_error = true);
  // replica_recovery.cc
  storage::FileSystem* partition_file_system() const;
  void recover_replicas(std::int64_t now_ms);
  void reopen_replica(GroupId group, const std::string& topic, std::int32_t partition,
                      std::int64_t now_ms);
  // replica_repair.cc: open_partition, repairing a damaged tail (then abstaining); the
  // abstention bound of a repaired replica is applied at every open and dropped once reached.
  Result<std::unique_ptr<PartitionGroup>> open_partition_repairing(const TopicRecord& topic,
                                                                   std::int32_t partition);
  Status apply_abstention(PartitionGroup& group, const std::string& dir);
  void finish_repairs();
  // replica_repair.cc: a replica whose log ends below its sync ledger record (it lost synced
  // entries) gets the abstention file (then apply_abstention applies it).
  Status abstain_for_lost_synced_entries(PartitionGroup& group, const std::string& dir);
  Status open_sync_ledger();
  // controller_recovery.cc: the controller replica (Raft group 0) and storage errors: opened
  // with the sync ledger (key 0) and its abstention file; re-opened from its directory by
  // replica_recovery.h's policy once stopped by a storage error, carrying its state over.
  Result<std::unique_ptr<ControllerGroup>> open_controller_group();
  Status apply_controller_abstention(ControllerGroup& group);
  void recover_controller(std::int64_t now_ms);
  void reopen_controller(std::int64_t now_ms);
  void finish_controller_repair();

  asio::io_context& loop_;
  NodeConfig config_;
  std::shared_ptr<bool> alive_;  // false once stopped; checked by posted handlers (loop only)
  std::unique_ptr<LoopWatch> loop_watch_;  // nullptr: off (loop_stall_threshold_ms 0)
  // drain_pumps() and the tick's pumps stop after this long; the rest go to a later turn.
  static constexpr std::int64_t kDrainBudgetMs = 20;
  GroupId drain_cursor_{0};  // the last group drain_pumps() pumped (fair restarts)
  std::shared_ptr<std::atomic<std::uint32_t>> inbound_pending_;
  // Outlives the flusher and the logs (their on_durable callbacks write to it).
  std::unique_ptr<storage::SyncLedger> sync_ledger_;  // replica_repair.cc
  std::unique_ptr<storage::Flusher> flusher_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<ControllerGroup> controller_;
  // controller_recovery.cc: a controller replica whose re-open failed is closed (controller_
  // null, as before a join) and its state kept here for the next attempt.
  std::optional<ControllerGroup::Carry> controller_held_;
  Status controller_held_error_;
  LogIndex controller_repair_bound_;  // abstains until its log reaches it (0: none)
  std::unique_ptr<ProducerIdAllocator> producer_ids_;
  std::map<GroupId, std::unique_ptr<PartitionGroup>> partitions_;
  std::map<std::pair<std::string, std::int32_t>, GroupId> by_name_;
  std::map<GroupId, Hint> hints_;
  std::set<GroupId> dirty_;
  std::map<GroupId, std::int64_t> campaign_due_ms_;  // leaderless after the leader's loss
  std::map<GroupId, std::int64_t> leaderless_since_ms_;  // hosted groups without a leader
  std::map<BrokerId, std::int64_t> peer_lost_ms_;        // last connection failure per peer
  std::map<BrokerId, std::int64_t> peer_back_ms_;        // first message after a loss
  std::set<BrokerId> peers_awaiting_back_;               // lost, not heard from since
  std::map<GroupId, std::int64_t> campaign_penalty_ms_;  // postponement if clients can't reach us
  struct PostponedCampaign {
    std::int64_t lost_ms = 0;  // when the leader was lost
    std::int64_t rank = 0;     // in the campaign order
    std::int64_t voters = 0;   // live voters in that order
  };
  std::map<GroupId, PostponedCampaign> postponed_campaigns_;  // penalized, still pending
  std::size_t client_connections_ = 0;                   // open Kafka client connections
  std::int64_t last_postpone_log_ms_ = 0;
  bool hints_due_ = false;
  std::map<std::uint64_t, Forward> forwards_;
  std::uint64_t next_forward_id_ = 1;
  bool serving_forwarded_ = false;  // executing a forwarded request: never forward it again
  // Readiness: see when_ready().
  bool ready_ = false;
  std::int64_t ready_deadline_ms_ = 0;
  std::int64_t ready_started_ms_ = 0;
  std::int64_t ready_asked_ms_ = 0;
  std::optional<LogIndex> ready_index_;
  std::vector<std::function<void()>> ready_waiters_;  // a group became led here: broadcast hints on the next tick
  bool pump_scheduled_ = false;
  asio::steady_timer tick_timer_;
  std::int64_t last_reconcile_ms_ = 0;
  std::int64_t last_hint_ms_ = 0;
  std::int64_t last_retention_ms_ = 0;
  std::int64_t last_rebalance_ms_ = 0;
  std::int64_t last_sweep_ms_ = 0;
  std::int64_t last_recover_ms_ = 0;  // recover_replicas (recover_interval_ms)
  bool metadata_changed_ = true;
  bool reconcile_posted_ = false;
  std::set<BrokerId> registering_;  // registrations proposed, not yet applied
  std::uint32_t assignment_rotation_ = 0;
  std::map<GroupId, std::int64_t> orphan_since_ms_;  // hosted groups no longer assigned here
  std::map<GroupId, std::int64_t> move_step_ms_;     // last membership step per group
  std::uint16_t rpc_port_ = 0;
  // Join (node_join.cc).
  std::optional<JoinState> join_state_;  // set for a broker that joined (or is joining)
  bool join_pending_ = false;            // waiting for the answer: no controller replica yet
  std::uint64_t join_request_id_ = 0;
  std::int64_t join_deadline_ms_ = 0;
  std::int64_t join_sent_ms_ = 0;
  std::size_t join_next_target_ = 0;
  std::function<void(Status)> join_failed_;
  Status join_failure_;
  std::set<BrokerId> joins_in_flight_;  // controller leader: JoinBroker proposed, not applied
  struct ReplyLink {
    BrokerId key;
    std::int64_t used_ms = 0;
  };
  std::map<std::pair<std::string, std::uint16_t>, ReplyLink> reply_links_;
  std::int32_t next_reply_key_ = 0;
  std::map<BrokerId, std::pair<std::string, std::uint16_t>> joined_peers_;  // links added
  std::int64_t learner_step_ms_ = 0;
  std::unique_ptr<asio::steady_timer> membership_timer_;
  bool started_ = false;
  bool stopped_ = false;
  bool shutting_down_ = false;
  NodeMetrics metrics_;
  ReplicaRecovery recovery_{config_.replica_recovery};
  std::map<GroupId, LogIndex> repair_bounds_;  // hosted repaired replicas still abstaining
};

}  // namespace mq::cluster
