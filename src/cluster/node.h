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
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cluster/api.h"
#include "cluster/controller.h"
#include "cluster/partition.h"
#include "cluster/producer_id_allocator.h"
#include "cluster/replica_recovery.h"
#include "storage/flusher.h"
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

struct NodeConfig {
  BrokerId id{1};
  std::string data_dir;
  std::string cluster_id = "raftmq";
  std::string rpc_listen_host = "127.0.0.1";
  std::uint16_t rpc_listen_port = 0;  // 0: ephemeral (tests); see rpc_port()
  std::string advertised_host = "127.0.0.1";
  std::uint16_t advertised_kafka_port = 9092;
  // Every broker of the cluster, this one included; all are voters of the controller group.
  // Empty: a single-broker cluster of this node.
  std::vector<BrokerAddress> brokers;

  // Time.
  std::uint32_t tick_ms = 10;
  std::uint32_t election_ticks = 30;   // election timeout in [30, 60) ticks = 300-600 ms
  std::uint32_t heartbeat_ticks = 3;
  std::uint32_t reconcile_interval_ms = 100;
  std::uint32_t leader_hint_interval_ms = 300;
  std::uint32_t retention_check_interval_ms = 60000;
  std::int64_t produce_timeout_ms = 30000;
  std::int64_t shutdown_transfer_timeout_ms = 2000;

  // Limits (DESIGN.md principle 5).
  std::uint64_t max_message_bytes = 1u << 20;        // entries per Raft append message
  std::uint32_t max_inflight_msgs = 256;             // pipelined appends per follower
  // Unacked bytes per follower and group. Also the size of the burst a leader reads and
  // sends on its event loop when a returning follower starts catching up: 32 MiB bursts
  // (x every group) stalled the loop past the election timeout (FINDINGS.md F2).
  std::uint64_t max_inflight_bytes = 4u << 20;
  std::uint64_t max_uncommitted_bytes = 64u << 20;   // per group; beyond: back-pressure
  std::uint64_t max_committed_bytes_per_ready = 8u << 20;
  std::uint32_t max_batch_bytes = 16u << 20;         // one produced record batch
  std::uint32_t inbound_queue_messages_max = 65536;  // transport -> loop posts in flight
  std::uint32_t produce_waiters_max = 16384;         // per partition
  std::uint32_t fetch_waiters_max = 4096;            // per partition
  std::uint32_t peer_queue_messages_max = 16384;     // transport, per peer
  std::uint64_t peer_queue_bytes_max = 128u << 20;   // transport, per peer
  std::uint64_t segment_size_bytes = 128u << 20;
  ProducerStateOptions producer_state;  // idempotent producers per partition, expiration
  std::uint64_t controller_snapshot_interval_entries = 4096;
  std::uint32_t partitions_hosted_max = 10000;

  // Replicas stopped by a storage error are re-opened (replica_recovery.h).
  ReplicaRecoveryOptions replica_recovery;
  // The file system of the partition replicas; nullptr: POSIX (tests pass an in-memory one).
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
  std::uint64_t retention_runs = 0;
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
  std::uint16_t rpc_port() const { return rpc_port_; }
  ClusterStatus cluster_status() const;
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

 private:
  struct Hint {
    Term term;
    BrokerId leader{-1};
    std::int64_t received_ms = 0;
  };

  // GroupHost.
  bool send_message(GroupId group, raft::Message message) override;
  void log(std::string_view line) override;

  raft::Config raft_config(const std::vector<NodeId>& voters) const;
  std::string partition_dir(const std::string& topic, std::int32_t partition, GroupId group) const;
  Status open_controller();
  Result<std::unique_ptr<PartitionGroup>> open_partition(const TopicRecord& topic,
                                                         std::int32_t partition);
  void deliver(BrokerId from, GroupId group, raft::Message message);
  void handle_hints(BrokerId from, const raft::Message& message);
  void broadcast_hints();
  void schedule_pump(GroupId group);
  void drain_pumps();
  RaftGroup* find_group(GroupId group);
  void on_tick();
  void reconcile();
  void reconcile_membership(PartitionGroup& group, const PartitionRecord& record);
  void remove_partition(GroupId group);
  void remove_stray_directories();
  void register_brokers();
  void run_retention();
  void arm(asio::steady_timer& timer, std::uint32_t ms, void (Node::*handler)());
  void shutdown_step(std::int64_t deadline_ms, std::function<void()> done);
  bool broker_alive(BrokerId broker) const;
  PartitionInfo partition_info(const PartitionRecord& record, std::int32_t index) const;
  std::vector<BrokerId> broker_ids() const;
  std::int16_t default_replication_factor() const;
  void start_producer_ids();  // node_producer_ids.cc
  void handle_producer_id_request(BrokerId from, const raft::Message& message);
  void propose_admin(Command command, std::string name, std::int64_t timeout_ms,
                     std::function<void(AdminResult)> done);
  // replica_recovery.cc
  storage::FileSystem* partition_file_system() const;
  void recover_replicas(std::int64_t now_ms);
  void reopen_replica(GroupId group, const std::string& topic, std::int32_t partition,
                      std::int64_t now_ms);

  asio::io_context& loop_;
  NodeConfig config_;
  std::shared_ptr<bool> alive_;  // false once stopped; checked by posted handlers (loop only)
  std::shared_ptr<std::atomic<std::uint32_t>> inbound_pending_;
  std::unique_ptr<storage::Flusher> flusher_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<ControllerGroup> controller_;
  std::unique_ptr<ProducerIdAllocator> producer_ids_;
  std::map<GroupId, std::unique_ptr<PartitionGroup>> partitions_;
  std::map<std::pair<std::string, std::int32_t>, GroupId> by_name_;
  std::map<GroupId, Hint> hints_;
  std::set<GroupId> dirty_;
  bool pump_scheduled_ = false;
  asio::steady_timer tick_timer_;
  std::int64_t last_reconcile_ms_ = 0;
  std::int64_t last_hint_ms_ = 0;
  std::int64_t last_retention_ms_ = 0;
  std::int64_t last_sweep_ms_ = 0;
  bool metadata_changed_ = true;
  bool reconcile_posted_ = false;
  std::set<BrokerId> registering_;  // registrations proposed, not yet applied
  std::uint32_t assignment_rotation_ = 0;
  std::map<GroupId, std::int64_t> orphan_since_ms_;  // hosted groups no longer assigned here
  std::map<GroupId, std::int64_t> move_step_ms_;     // last membership step per group
  std::uint16_t rpc_port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  bool shutting_down_ = false;
  NodeMetrics metrics_;
  ReplicaRecovery recovery_{config_.replica_recovery};
};

}  // namespace mq::cluster
