// The contract between the Kafka-facing layer (src/kafka) and the cluster layer (src/cluster).
// The Kafka layer decodes requests, validates record batches and maps errors to Kafka codes; the
// cluster layer owns Raft groups, storage, the controller and replication. Nothing here knows
// the Kafka wire format beyond "a record batch v2 is bytes".
//
// Threading: every method is called on, and every callback is invoked on, the broker's event
// loop thread (one asio::io_context; see docs/architecture.md). Implementations never block it:
// disk syncs and network I/O complete asynchronously and post their callbacks back to it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"

namespace mq::cluster {

using Uuid = std::array<std::uint8_t, 16>;

struct BrokerInfo {
  BrokerId id;
  std::string host;          // advertised Kafka host
  std::uint16_t kafka_port = 0;
  std::optional<std::string> rack;
  bool alive = true;         // as seen by the controller (heartbeats)
};

struct PartitionInfo {
  std::int32_t partition = 0;
  BrokerId leader{-1};               // -1 when there is no leader right now
  std::int32_t leader_epoch = 0;     // the Raft term of the partition group (saturated to int32)
  std::vector<BrokerId> replicas;    // voters and learners, the assignment order
  std::vector<BrokerId> isr;         // replicas caught up with the leader's commit index
  std::vector<BrokerId> offline;     // replicas on brokers that are down
  // `leader` is only the replica expected to win an election in progress (routing advice for
  // produce/fetch clients, which retry on NOT_LEADER_OR_FOLLOWER); group coordinators are
  // located by real leaders only.
  bool leader_expected = false;
};

struct TopicInfo {
  std::string name;
  Uuid topic_id{};
  bool internal = false;
  std::vector<PartitionInfo> partitions;
  std::map<std::string, std::string> configs;  // only explicitly set configs
};

struct MetadataSnapshot {
  std::string cluster_id;
  BrokerId controller{-1};  // a real, reachable broker (kafkajs sends admin requests there)
  std::vector<BrokerInfo> brokers;
  std::vector<TopicInfo> topics;
  const TopicInfo* find_topic(std::string_view name) const;
};

struct TopicSpec {
  std::string name;
  std::int32_t partitions = -1;          // -1: the broker default
  std::int16_t replication_factor = -1;  // -1: the broker default
  std::map<std::int32_t, std::vector<BrokerId>> assignments;  // optional manual assignment
  std::map<std::string, std::string> configs;
  bool validate_only = false;
};

// Outcome of one topic-level admin operation. `status` codes the Kafka layer maps:
// kAlreadyExists → TOPIC_ALREADY_EXISTS, kNotFound → UNKNOWN_TOPIC_OR_PARTITION,
// kInvalidArgument → the specific INVALID_* named in `kafka_error` when set, kNotLeader →
// NOT_CONTROLLER, kTimeout → REQUEST_TIMED_OUT.
struct AdminResult {
  std::string name;
  Status status;
  std::int16_t kafka_error = 0;  // a specific Kafka code when the generic mapping is too coarse
};

// A partition whose Raft membership differs from its assignment (a move in progress), for
// ListPartitionReassignments (KIP-455).
struct ReassignmentInfo {
  std::string topic;
  std::int32_t partition = 0;
  std::vector<BrokerId> replicas;  // the target assignment
  std::vector<BrokerId> adding;    // in the target, not yet voters
  std::vector<BrokerId> removing;  // voters not in the target
};

enum class Acks : std::int16_t { kNone = 0, kLeader = 1, kAll = -1 };

struct ProduceResult {
  KafkaOffset base_offset;
  std::int64_t log_append_time_ms = -1;
  KafkaOffset log_start_offset;
  // Idempotent producer (KIP-98): a Kafka error code the generic Status mapping cannot
  // express (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, INVALID_RECORD for a
  // transactional batch). Non-zero means the batch was NOT written; the other fields are unset.
  std::int16_t kafka_error = 0;
  std::string error_message{};
};

// InitProducerId (KIP-98, KIP-360) outcome: a producer id and epoch, or a Kafka error code.
struct ProducerIdResult {
  std::int64_t producer_id = -1;
  std::int16_t producer_epoch = -1;
  std::int16_t kafka_error = 0;
  std::string error_message{};
};

// A piece of a partition's log for a fetch response: either file bytes (sendfile-able) or
// in-memory bytes. Always whole record batches.
struct RecordsChunk {
  int fd = -1;                  // >= 0: send [file_offset, file_offset+length) of this fd
  std::uint64_t file_offset = 0;
  std::uint64_t length = 0;
  SharedBuffer bytes;           // used when fd < 0
  std::shared_ptr<const void> keep_alive;  // holds the file open while the chunk is in flight
};

struct FetchResult {
  KafkaOffset high_watermark;     // = commit (consumers never see beyond it)
  KafkaOffset last_stable_offset; // = high watermark (no transactions yet)
  KafkaOffset log_start_offset;
  std::vector<RecordsChunk> records;
  std::uint64_t bytes = 0;
};

struct OffsetForEpochResult {
  std::int32_t leader_epoch = -1;
  KafkaOffset end_offset{-1};
};

// A partition replica hosted by this broker. Obtained from ClusterApi::local_partition; valid
// until the next return to the event loop (do not store it across callbacks: look it up again).
class LocalPartition {
 public:
  virtual ~LocalPartition() = default;
  virtual bool is_leader() const = 0;
  virtual std::int32_t leader_epoch() const = 0;

  // Appends one validated record batch v2 (the leader assigns offsets and stamps the term).
  // kAll: callback after commit (majority durable); kLeader: after the leader's own durable
  // append; kNone: the caller does not wait (the callback still runs). Errors: kNotLeader,
  // kLimitExceeded (back-pressure), kNoSpace, kTimeout, kCorruption, kInvalidArgument.
  virtual void produce(SharedBuffer batch, Acks acks,
                       std::function<void(Result<ProduceResult>)> done) = 0;

  // Reads committed batches from `offset` (the batch containing it first), up to max_bytes
  // (at least one whole batch if any is available, as Kafka's fetch does). kOutOfRange when
  // offset < log start or > high watermark.
  virtual Result<FetchResult> fetch(KafkaOffset offset, std::uint64_t max_bytes) = 0;

  // Calls `ready` once the high watermark moves past `offset` or `deadline_ms` (a steady-clock
  // deadline in ms) passes, whichever comes first. For Fetch long-polling (MaxWaitMs/MinBytes).
  virtual void wait_for_data(KafkaOffset offset, std::int64_t deadline_ms,
                             std::function<void()> ready) = 0;

  virtual KafkaOffset high_watermark() const = 0;
  virtual KafkaOffset log_start_offset() const = 0;
  // ListOffsets by timestamp: the first offset whose batch max timestamp >= timestamp_ms.
  virtual Result<std::optional<KafkaOffset>> offset_for_timestamp(std::int64_t timestamp_ms) = 0;
  virtual Result<OffsetForEpochResult> end_offset_for_epoch(std::int32_t leader_epoch) = 0;
};

// The operator's choice for a broker's place in the controller group (Raft group 0;
// docs/cluster.md "Controller voters"): kAuto lets the controller leader promote the broker
// when it needs voters (up to 5, lowest id first); kVoter keeps it a voter (promoted once
// caught up, even beyond 5); kLearner keeps it a learner (demoted if it is a voter, never
// promoted automatically). Persisted in the controller's replicated state.
enum class VoterChoice : std::uint8_t { kAuto = 0, kVoter = 1, kLearner = 2 };
inline const char* voter_choice_name(VoterChoice choice) {
  switch (choice) {
    case VoterChoice::kVoter: return "voter";
    case VoterChoice::kLearner: return "learner";
    case VoterChoice::kAuto: break;
  }
  return "auto";
}

// One broker's place in the controller group as the asked broker sees it (its applied
// configuration, ClusterApi::controller_members).
struct ControllerMember {
  BrokerId id;
  bool voter = false;    // a voter of the configuration in effect
  bool learner = false;  // a learner of it (neither: not in the group yet, or leaving it)
  VoterChoice choice = VoterChoice::kAuto;
  bool alive = false;    // the asked broker's transport is connected to it (itself: true)
};
struct ControllerMembers {
  BrokerId leader{-1};   // the controller leader known to the asked broker
  bool joint = false;    // a joint configuration is in effect
  std::vector<ControllerMember> members;  // by id: registered brokers and group members
};

class ClusterApi {
 public:
  virtual ~ClusterApi() = default;
  virtual BrokerId self() const = 0;
  virtual MetadataSnapshot metadata() const = 0;

  // The local replica of topic/partition. kNotFound: unknown topic or partition;
  // kNotLeader: hosted elsewhere or not leader here (message names the leader if known).
  virtual Result<LocalPartition*> local_partition(std::string_view topic,
                                                  std::int32_t partition) = 0;

  virtual void create_topics(std::vector<TopicSpec> topics, std::int64_t timeout_ms,
                             std::function<void(std::vector<AdminResult>)> done) = 0;
  virtual void delete_topics(std::vector<std::string> names, std::int64_t timeout_ms,
                             std::function<void(std::vector<AdminResult>)> done) = 0;
  virtual void create_partitions(std::vector<std::pair<std::string, std::int32_t>> new_totals,
                                 std::int64_t timeout_ms, bool validate_only,
                                 std::function<void(std::vector<AdminResult>)> done) = 0;
  // Effective configs of a topic (defaults included), or kNotFound.
  virtual Result<std::map<std::string, std::string>> describe_topic_configs(
      std::string_view topic) const = 0;
  virtual std::map<std::string, std::string> describe_broker_configs() const = 0;

  // Additions (cluster branch). Both have defaults so existing implementations still compile.
  // AlterConfigs (non-incremental): replaces every explicitly set config of `topic`.
  virtual void alter_topic_configs(std::string topic, std::map<std::string, std::string> configs,
                                   std::int64_t timeout_ms, std::function<void(AdminResult)> done) {
    (void)configs;
    (void)timeout_ms;
    done(AdminResult{std::move(topic), Status::unsupported("alter configs"), 0});
  }
  // AlterPartitionReassignments: the partition's replicas become `replicas` (the partition
  // leader adds the new ones as learners, waits for them to catch up, then swaps voters with
  // joint consensus). `done` runs when the new assignment is recorded, not when the move ends.
  virtual void move_partition(std::string topic, std::int32_t partition,
                              std::vector<BrokerId> replicas, std::int64_t timeout_ms,
                              std::function<void(AdminResult)> done) {
    (void)partition;
    (void)replicas;
    (void)timeout_ms;
    done(AdminResult{std::move(topic), Status::unsupported("partition reassignment"), 0});
  }
  // UnregisterBroker (`raftmq broker remove N`): removes a drained broker's record from the
  // cluster (docs/cluster.md "Removing a broker"); `done` once the removal is committed or
  // refused (kNotFound: not registered; kInvalidArgument: still holds replicas, or removing it
  // would cost the controller its quorum).
  virtual void remove_broker(BrokerId broker, std::int64_t timeout_ms,
                             std::function<void(AdminResult)> done) {
    (void)timeout_ms;
    done(AdminResult{"broker " + std::to_string(broker.value()),
                     Status::unsupported("broker removal"), 0});
  }
  // `raftmq controller voters add|remove|auto N` (docs/cluster.md "Controller voters"):
  // records the operator's choice for broker N in the controller state and, for kVoter /
  // kLearner, answers once the controller configuration matches it (promoted / demoted) or
  // after timeout_ms (kTimeout: the choice stays recorded and is carried out later). Refused
  // with nothing changed: kNotFound (unknown or removed broker), kInvalidArgument (a dead
  // broker promoted, the last voter demoted, a demotion that would cost the quorum),
  // kUnavailable (a controller membership change in progress).
  virtual void set_controller_voter(BrokerId broker, VoterChoice choice, std::int64_t timeout_ms,
                                    std::function<void(AdminResult)> done) {
    (void)choice;
    (void)timeout_ms;
    done(AdminResult{"broker " + std::to_string(broker.value()),
                     Status::unsupported("controller voter changes"), 0});
  }
  // This broker's view of the controller group: voters, learners, choices, liveness.
  virtual Result<ControllerMembers> controller_members() const {
    return Status::unsupported("controller voters");
  }
  // InitProducerId for an idempotent (non-transactional) producer: a new producer id with
  // epoch 0, or — when `producer_id`/`producer_epoch` name an id this cluster allocated
  // (KIP-360, v3+) — the same id with the epoch bumped. Ids come from blocks the controller
  // allocates (unique across the cluster and restarts).
  virtual void init_producer_id(std::int64_t producer_id, std::int16_t producer_epoch,
                                std::int64_t timeout_ms,
                                std::function<void(Result<ProducerIdResult>)> done) {
    (void)producer_id;
    (void)producer_epoch;
    (void)timeout_ms;
    done(Status::unsupported("idempotent producer"));
  }
  // Moves in progress as far as this broker can see them (partitions it hosts a replica of).
  virtual std::vector<ReassignmentInfo> list_reassignments() const { return {}; }
  // raftmq's own cluster status (RaftmqClusterStatus, node_status.cc): every partition's Raft
  // state from its leader, encoded by encode_cluster_view.
  virtual void cluster_view(std::int64_t timeout_ms, std::function<void(Result<Buffer>)> done) {
    (void)timeout_ms;
    done(Status::unsupported("cluster status"));
  }
  // The Kafka listener reports its number of open client connections after each accept and
  // close (fast failover uses it as evidence that clients can reach this broker).
  virtual void client_connections_changed(std::size_t open) { (void)open; }
};

}  // namespace mq::cluster
