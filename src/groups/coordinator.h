// groups::Coordinator: one broker's group coordinator (docs/groups.md). It serves the groups
// whose `__consumer_offsets` partition this broker leads: loads their state from that
// partition when it becomes leader, runs the classic group protocol (KIP-62 session and
// rebalance timeouts, KIP-394 member ids, KIP-345 static membership) and writes every change
// back as Kafka-format records with acks=all before answering.
//
// Threading: everything runs on the broker's event loop (as cluster::ClusterApi). Time comes
// from `clock` (steady milliseconds) so unit tests drive it; tick() checks deadlines and
// leadership and must be called periodically (run_ticks() arms an asio timer for that).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "cluster/api.h"
#include "groups/group.h"
#include "groups/records.h"

namespace mq::groups {

struct CoordinatorConfig {
  std::int32_t session_timeout_min_ms = 6000;     // Kafka's group.min.session.timeout.ms
  std::int32_t session_timeout_max_ms = 1800000;  // group.max.session.timeout.ms
  std::size_t group_members_max = 1000;           // GROUP_MAX_SIZE_REACHED beyond
  std::size_t member_metadata_bytes_max = 1 << 20;    // protocols of one member (names + bytes)
  std::size_t member_assignment_bytes_max = 1 << 20;  // one member's assignment
  std::size_t groups_max = 100000;                     // per coordinator
  std::size_t offset_metadata_bytes_max = 4096;  // offset.metadata.max.bytes
  std::size_t offsets_per_commit_max = 100000;   // partitions in one OffsetCommit
  // A group that rebalances from Empty waits this long for more members before completing the
  // first join (Kafka's group.initial.rebalance.delay.ms; extended by each join up to the
  // rebalance timeout).
  std::int32_t initial_rebalance_delay_ms = 0;
  std::uint64_t load_chunk_bytes = 1 << 20;  // bytes fetched per loading step
  std::uint32_t tick_ms = 100;
};

struct JoinArgs {
  std::string group_id;
  std::string member_id;
  std::optional<std::string> instance_id;
  std::string client_id;
  std::string client_host;
  std::int32_t session_timeout_ms = 0;
  std::int32_t rebalance_timeout_ms = 0;
  std::string protocol_type;
  std::vector<Protocol> protocols;
  bool require_known_member_id = false;  // JoinGroup v4+ (KIP-394)
};
struct SyncArgs {
  std::string group_id;
  std::int32_t generation = -1;
  std::string member_id;
  std::optional<std::string> instance_id;
  std::optional<std::string> protocol_type;  // v5+
  std::optional<std::string> protocol_name;  // v5+
  std::vector<std::pair<std::string, Buffer>> assignments;
};
struct MemberIdentity {
  std::string member_id;
  std::optional<std::string> instance_id;
};
struct LeaveResult {
  std::int16_t error = 0;
  std::vector<std::int16_t> member_errors;  // one per identity
};
struct CommitPartition {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int32_t leader_epoch = -1;
  std::string metadata;
  std::int16_t error = 0;  // out
};
struct CommitArgs {
  std::string group_id;
  std::int32_t generation = -1;
  std::string member_id;
  std::optional<std::string> instance_id;
  std::vector<CommitPartition> partitions;
};
struct FetchedOffset {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = -1;
  std::int32_t leader_epoch = -1;
  std::string metadata;
  std::int16_t error = 0;
};
struct OffsetsResult {
  std::int16_t error = 0;
  std::vector<FetchedOffset> offsets;
};
struct DescribedMember {
  std::string member_id;
  std::optional<std::string> instance_id;
  std::string client_id;
  std::string client_host;
  Buffer metadata;
  Buffer assignment;
};
struct GroupDescription {
  std::int16_t error = 0;
  std::string group_id;
  std::string state;
  std::string protocol_type;
  std::string protocol;
  std::vector<DescribedMember> members;
};
struct ListedGroup {
  std::string group_id;
  std::string protocol_type;
  std::string state;
};
struct CoordinatorLocation {
  std::int16_t error = 0;
  std::int32_t node_id = -1;
  std::string host;
  std::int32_t port = -1;
};

class Coordinator {
 public:
  using Clock = std::function<std::int64_t()>;
  Coordinator(cluster::ClusterApi& cluster, asio::io_context& io, CoordinatorConfig config,
              Clock clock);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Leadership changes of the offsets partitions, session/rebalance deadlines.
  void tick();
  // Arms a timer on `io` that calls tick() every config.tick_ms (the broker's mode).
  void run_ticks();

  // FindCoordinator: the broker leading the group's partition (any broker can answer).
  static CoordinatorLocation locate(const cluster::MetadataSnapshot& metadata,
                                    std::string_view group_id);

  void join(JoinArgs args, JoinCallback done);
  void sync(SyncArgs args, SyncCallback done);
  std::int16_t heartbeat(const std::string& group_id, std::int32_t generation,
                         const std::string& member_id,
                         const std::optional<std::string>& instance_id);
  LeaveResult leave(const std::string& group_id, const std::vector<MemberIdentity>& members);
  void commit_offsets(CommitArgs args, std::function<void(CommitArgs)> done);
  // topics: nullopt = every committed offset of the group.
  OffsetsResult fetch_offsets(
      const std::string& group_id,
      const std::optional<std::vector<std::pair<std::string, std::vector<std::int32_t>>>>& topics);
  GroupDescription describe(const std::string& group_id);
  std::pair<std::int16_t, std::vector<ListedGroup>> list(
      const std::vector<std::string>& states_filter);
  void delete_groups(std::vector<std::string> group_ids,
                     std::function<void(std::vector<std::pair<std::string, std::int16_t>>)> done);

  // Introspection for tests.
  const Group* find_group(std::string_view group_id) const;
  bool loaded(std::int32_t partition) const;
  // Whether a partition this broker leads is still being loaded (after refreshing leadership).
  bool any_loading();

 private:
  enum class PartitionStatus { kLoading, kLoaded };
  struct OwnedPartition {
    std::int32_t epoch = -1;
    PartitionStatus status = PartitionStatus::kLoading;
    std::uint64_t incarnation = 0;
  };
  struct LoadCursor {
    std::int32_t partition = 0;
    std::uint64_t incarnation = 0;
    std::int64_t next = 0;
    std::int64_t target = 0;
  };

  // Partitions: ownership and loading (coordinator.cc).
  // Whether this broker's metadata names it as the leader of `partition` (possibly the
  // expected winner of an election still running).
  bool named_coordinator(std::int32_t partition) const;
  std::int32_t partition_count() const;
  // 0 when this coordinator serves the group now; else NOT_COORDINATOR,
  // COORDINATOR_LOAD_IN_PROGRESS or COORDINATOR_NOT_AVAILABLE. Checks leadership first.
  std::int16_t check_group(std::string_view group_id, std::int32_t* partition);
  void refresh_partition(std::int32_t partition);
  void start_load(std::int32_t partition, std::int32_t epoch);
  void load_step(LoadCursor cursor);
  void finish_load(std::int32_t partition);
  void drop_partition(std::int32_t partition);
  void apply_record(std::int32_t partition, const LogRecord& record);
  void restore_group(std::int32_t partition, const protocol::GroupMetadataValue& value,
                     const std::string& group_id);
  // Appends records to the partition with acks=all; `done` gets a Kafka error code (0 = ok).
  void write(std::int32_t partition, std::vector<std::pair<Buffer, std::optional<Buffer>>> records,
             std::function<void(std::int16_t)> done);
  void write_group(Group& group, std::function<void(std::int16_t)> done);
  Group* group_of(std::string_view group_id);
  Group& create_group(const std::string& group_id, std::int32_t partition);

  // Membership (coordinator_membership.cc).
  void join_new_member(Group& group, JoinArgs args, JoinCallback done);
  void join_known_member(Group& group, JoinArgs args, JoinCallback done);
  void replace_static_member(Group& group, JoinArgs args, JoinCallback done);
  void add_member_and_rebalance(Group& group, Member member, JoinCallback done);
  void prepare_rebalance(Group& group);
  void maybe_complete_join(Group& group);
  void complete_join(Group& group);
  void complete_sync(Group& group);
  JoinResult join_result(const Group& group, const std::string& member_id) const;
  void remove_member(Group& group, const std::string& member_id, std::int16_t error);
  void after_member_removed(Group& group);
  void check_deadlines(Group& group, std::int64_t now);
  std::string new_member_id(std::string_view prefix);

  cluster::ClusterApi& cluster_;
  asio::io_context& io_;
  CoordinatorConfig config_;
  Clock clock_;
  std::shared_ptr<bool> alive_;
  std::map<std::int32_t, OwnedPartition> owned_;
  std::map<std::string, Group, std::less<>> groups_;
  std::uint64_t next_incarnation_ = 1;
  std::uint64_t member_counter_ = 0;
  std::uint64_t member_id_salt_ = 0;
  std::unique_ptr<asio::steady_timer> timer_;
};

// Maps a failed append to the coordinator error Kafka uses (GroupMetadataManager): not leader
// -> NOT_COORDINATOR; no quorum, timeout, back-pressure -> COORDINATOR_NOT_AVAILABLE; too big
// -> INVALID_COMMIT_OFFSET_SIZE (for offsets) ; else UNKNOWN_SERVER_ERROR.
std::int16_t write_error(const Status& status);

}  // namespace mq::groups
