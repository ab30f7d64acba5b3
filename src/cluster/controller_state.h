// The controller's replicated state machine: cluster metadata (docs/cluster.md, "Controller").
//
// Commands are proposed by the controller leader to group 0 and applied by every broker in
// log order. apply() is deterministic: it depends only on the state and the command bytes
// (UUIDs, group ids and replica assignments are chosen by the proposer and carried in the
// command), so every replica computes the same metadata. Validation that depends on the
// state (a topic that already exists, ...) happens again in apply(), because two proposals
// may race; the outcome of apply() is returned to the proposer.
//
// Encoding (docs/formats/controller_command_format.md): little-endian, versioned:
//   command := version u8 (=1) | type u8 | body
//   string  := length u16 | bytes
//   body per type, see encode_command(). Every decode is bounds-checked (kCorruption on
//   truncation, trailing bytes, unknown type/version or a count above its bound).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"
#include "cluster/api.h"

namespace mq::cluster {

inline constexpr std::size_t kTopicNameBytesMax = 249;     // Kafka's limit
inline constexpr std::uint32_t kPartitionsPerTopicMax = 10000;
inline constexpr std::uint32_t kReplicasMax = 16;
inline constexpr std::uint32_t kConfigsMax = 256;
inline constexpr std::size_t kStringBytesMax = 4096;
inline constexpr std::uint32_t kBrokersMax = 1024;

struct BrokerRecord {
  BrokerId id;
  std::string host;
  std::uint16_t kafka_port = 0;
  std::string rpc_host;
  std::uint16_t rpc_port = 0;
  std::string rack;  // empty: none
  // 0: a broker of the static list (--peers, a controller voter), registered by the
  // controller leader. Otherwise the random id of the data directory of a broker that joined
  // (JoinBroker): a restart with the same directory keeps it, a new directory has another.
  std::uint64_t incarnation = 0;
  bool operator==(const BrokerRecord&) const = default;
};

struct PartitionRecord {
  GroupId group;                          // the partition's Raft group
  std::vector<BrokerId> replicas;         // desired assignment (order = preference)
  std::vector<BrokerId> initial_replicas; // the group's bootstrap voters
  bool operator==(const PartitionRecord&) const = default;
};

struct TopicRecord {
  std::string name;
  Uuid id{};
  std::vector<PartitionRecord> partitions;
  std::map<std::string, std::string> configs;
  bool operator==(const TopicRecord&) const = default;
};

// ---- Commands ----
struct RegisterBroker {
  BrokerRecord broker;
  bool operator==(const RegisterBroker&) const = default;
};
// A broker that joined a running cluster (`raftmq serve --join`, docs/cluster.md "Adding a
// broker"). broker.incarnation must be non-zero. Refused (no change) when the id belongs to a
// static broker (incarnation 0), or is registered with another incarnation and still holds
// partition replicas (a new, empty data directory must not stand in for a replica's log).
// The same incarnation updates the addresses (a restarted broker that moved).
struct JoinBroker {
  BrokerRecord broker;
  bool operator==(const JoinBroker&) const = default;
};
// Removes a broker's record from the cluster (`raftmq broker remove N`, Kafka's
// UnregisterBroker; docs/cluster.md "Removing a broker"). Refused (no change) when the id is
// not registered or still holds partition replicas (decommission it first), or is the last
// broker. The record is replaced by a tombstone (RemovedBroker) so that the broker's data
// directory can never rejoin: RegisterBroker of the id is refused, and JoinBroker only with
// another incarnation (an empty data directory). The controller quorum rule (never remove a
// voter whose loss would leave the controller without a quorum) is the proposer's check: it
// depends on liveness, which apply() must not.
struct RemoveBroker {
  BrokerId id;
  bool operator==(const RemoveBroker&) const = default;
};
// What the cluster remembers of a removed broker: its data directory's incarnation (0: a
// broker of the static list) and where to tell it that it was removed if it comes back.
struct RemovedBroker {
  std::uint64_t incarnation = 0;
  std::string rpc_host;
  std::uint16_t rpc_port = 0;
  bool operator==(const RemovedBroker&) const = default;
};
inline constexpr std::uint32_t kRemovedBrokersMax = 1024;  // the oldest-id tombstone goes first

// The operator's choice for a broker's place in the controller group (`raftmq controller
// voters add|remove|auto N`; docs/cluster.md "Controller voters"). Refused (no change) when the
// broker is not registered. kAuto forgets the choice. The configuration change itself is the
// controller leader's (Node::reconcile_controller_membership): this only records what it must
// converge to, so the choice survives leader changes and restarts. RemoveBroker, and a
// JoinBroker with a new data directory, forget it.
struct SetVoterChoice {
  BrokerId broker;
  VoterChoice choice = VoterChoice::kAuto;
  bool operator==(const SetVoterChoice&) const = default;
};

struct CreateTopic {
  std::string name;
  Uuid id{};
  GroupId first_group;  // partitions get first_group, first_group+1, ...
  std::vector<std::vector<BrokerId>> assignment;  // one replica list per partition
  std::map<std::string, std::string> configs;
  bool operator==(const CreateTopic&) const = default;
};
struct DeleteTopic {
  std::string name;
  bool operator==(const DeleteTopic&) const = default;
};
struct CreatePartitions {
  std::string name;
  GroupId first_group;
  std::vector<std::vector<BrokerId>> assignment;  // the new partitions only
  bool operator==(const CreatePartitions&) const = default;
};
struct AlterConfigs {
  std::string name;
  std::map<std::string, std::string> set;  // replaces every explicitly set config
  bool operator==(const AlterConfigs&) const = default;
};
struct MovePartition {
  std::string name;
  std::int32_t partition = 0;
  std::vector<BrokerId> replicas;
  bool operator==(const MovePartition&) const = default;
};

// Reserves a block of producer ids for `broker` (KIP-98 producer ids; Kafka's
// AllocateProducerIds, KIP-730). The block is chosen at apply time from the state's next
// producer id, so every replica computes the same one; `request_id` lets the requesting
// broker recognise the answer to its own request in the replicated state.
inline constexpr std::uint32_t kProducerIdBlockMax = 1u << 20;
struct AllocateProducerIds {
  BrokerId broker;
  std::uint64_t request_id = 0;
  std::uint32_t count = 0;
  bool operator==(const AllocateProducerIds&) const = default;
};
struct ProducerIdBlock {
  std::uint64_t request_id = 0;
  std::int64_t first = 0;
  std::uint32_t count = 0;
  bool operator==(const ProducerIdBlock&) const = default;
};

using Command = std::variant<RegisterBroker, CreateTopic, DeleteTopic, CreatePartitions,
                             AlterConfigs, MovePartition, AllocateProducerIds, JoinBroker,
                             RemoveBroker, SetVoterChoice>;

Buffer encode_command(const Command& command);
Result<Command> decode_command(BufferView bytes);

// Spreads `partitions` x `replication_factor` replicas over `brokers` (sorted ids) round-robin
// with a rotating start (Kafka's rack-unaware assignment): partition p gets
// brokers[(start + p + j) % n] for j in [0, rf). kInvalidArgument when rf > n or rf < 1.
Result<std::vector<std::vector<BrokerId>>> assign_replicas(const std::vector<BrokerId>& brokers,
                                                           std::int32_t partitions,
                                                           std::int32_t replication_factor,
                                                           std::uint32_t start);

class ControllerState {
 public:
  // Applies one command. The Status is the command's outcome (a refused command changes
  // nothing); it is OK when applied.
  Status apply(const Command& command);

  Buffer encode_snapshot() const;
  static Result<ControllerState> decode_snapshot(BufferView bytes);

  const std::map<BrokerId, BrokerRecord>& brokers() const { return brokers_; }
  const std::map<std::string, TopicRecord>& topics() const { return topics_; }
  const TopicRecord* find_topic(std::string_view name) const;
  // Tombstones of removed brokers (RemoveBroker); an id that joined again is not listed.
  const std::map<BrokerId, RemovedBroker>& removed() const { return removed_; }
  const RemovedBroker* find_removed(BrokerId id) const;
  // Partitions whose assignment (replicas) lists `broker`.
  std::size_t replica_count(BrokerId broker) const;
  GroupId next_group() const { return next_group_; }
  std::uint32_t assignment_start() const { return assignment_start_; }
  std::uint64_t applied_commands() const { return applied_commands_; }
  // Producer ids: every id below next_producer_id() has been handed out; the last block
  // given to each broker (the broker matches its request id).
  std::int64_t next_producer_id() const { return next_producer_id_; }
  const ProducerIdBlock* producer_id_block(BrokerId broker) const;
  // The operator's controller voter choices (SetVoterChoice); a broker not listed is kAuto.
  const std::map<BrokerId, VoterChoice>& voter_choices() const { return voter_choices_; }
  VoterChoice voter_choice(BrokerId broker) const;
  bool operator==(const ControllerState&) const = default;

 private:
  Status apply_create(const CreateTopic& c);
  Status apply_create_partitions(const CreatePartitions& c);
  Status apply_move(const MovePartition& c);
  Status apply_join(const JoinBroker& c);
  Status apply_register(const RegisterBroker& c);
  Status apply_remove(const RemoveBroker& c);
  Status apply_voter_choice(const SetVoterChoice& c);
  Status check_assignment(const std::vector<std::vector<BrokerId>>& assignment) const;
  Status apply_allocate_producer_ids(const AllocateProducerIds& c);
  void encode_producer_ids(Buffer& out) const;
  void encode_removed(Buffer& out) const;
  void encode_voter_choices(Buffer& out) const;
  static bool decode_sections(BufferView bytes, std::uint8_t version, ControllerState* s);

  std::map<BrokerId, BrokerRecord> brokers_;
  std::map<std::string, TopicRecord> topics_;
  GroupId next_group_{1};            // the next unused partition group id
  std::uint32_t assignment_start_ = 0;  // rotates per created topic
  std::uint64_t applied_commands_ = 0;
  std::int64_t next_producer_id_ = 0;
  std::map<BrokerId, ProducerIdBlock> producer_blocks_;
  std::map<BrokerId, RemovedBroker> removed_;
  std::map<BrokerId, VoterChoice> voter_choices_;  // kVoter / kLearner only
};

// Topic name rules (Kafka): 1..249 of [a-zA-Z0-9._-], not "." or "..".
Status validate_topic_name(std::string_view name);

}  // namespace mq::cluster
