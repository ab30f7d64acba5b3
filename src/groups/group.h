// The state of one consumer group as its coordinator holds it (Kafka's GroupMetadata): members,
// generation, chosen protocol, committed offsets, and the requests parked while a rebalance
// runs. Pure data plus small helpers; the transitions are in coordinator_membership.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/buffer.h"
#include "protocol/gen/messages.h"

namespace mq::groups {

enum class GroupState { kEmpty, kPreparingRebalance, kCompletingRebalance, kStable, kDead };
std::string_view state_name(GroupState state);
// Parses a ListGroups states filter entry (case-insensitive, Kafka's names); nullopt if unknown.
std::optional<GroupState> parse_state(std::string_view name);

struct JoinResult {
  std::int16_t error = 0;
  std::int32_t generation = -1;
  std::string protocol_type;
  std::string protocol_name;
  std::string leader;
  std::string member_id;
  bool skip_assignment = false;
  struct Member {
    std::string member_id;
    std::optional<std::string> instance_id;
    Buffer metadata;
  };
  std::vector<Member> members;  // the leader only
};
struct SyncResult {
  std::int16_t error = 0;
  std::string protocol_type;
  std::string protocol_name;
  Buffer assignment;
};
using JoinCallback = std::function<void(JoinResult)>;
using SyncCallback = std::function<void(SyncResult)>;

struct Protocol {
  std::string name;
  Buffer metadata;
};

struct Member {
  std::string member_id;
  std::optional<std::string> instance_id;
  std::string client_id;
  std::string client_host;
  std::int32_t session_timeout_ms = 0;
  std::int32_t rebalance_timeout_ms = 0;
  std::string protocol_type;
  std::vector<Protocol> protocols;  // preference order
  Buffer assignment;
  std::int64_t heartbeat_deadline_ms = 0;
  JoinCallback pending_join;  // set while the member waits for the join to complete
  SyncCallback pending_sync;  // set while the member waits for the leader's assignment
  bool is_new = false;        // joined during the current rebalance (Kafka's isNew)

  const Buffer* metadata_for(std::string_view protocol) const;
  std::size_t metadata_bytes() const;
};

struct CommittedOffset {
  std::int64_t offset = -1;
  std::int32_t leader_epoch = -1;
  std::string metadata;
  std::int64_t commit_timestamp_ms = -1;
};

struct Group {
  std::string id;
  std::int32_t partition = 0;  // of __consumer_offsets
  GroupState state = GroupState::kEmpty;
  std::int32_t generation = 0;
  std::string protocol_type;
  std::string protocol;  // chosen for the current generation ("" when Empty)
  std::string leader;    // member id ("" when none)
  std::int64_t state_timestamp_ms = -1;
  std::map<std::string, Member> members;
  std::map<std::string, std::string> static_members;  // instance id -> member id
  // Member ids handed out with MEMBER_ID_REQUIRED (KIP-394) and not yet joined: deadline.
  std::map<std::string, std::int64_t> pending_members;
  std::int64_t rebalance_deadline_ms = 0;  // PreparingRebalance: join deadline; Completing: sync
  std::int64_t join_not_before_ms = 0;     // the initial rebalance delay of a group from Empty
  std::map<std::pair<std::string, std::int32_t>, CommittedOffset> offsets;
  std::uint64_t writes_in_flight = 0;

  bool all_members_joined() const;
  std::int32_t max_rebalance_timeout_ms() const;
  // The protocol every member supports, chosen by vote over member preference (Kafka's
  // selectProtocol); nullopt when none is common to all members.
  std::optional<std::string> select_protocol() const;
  // Whether a (new or changed) member with these protocols could join: same protocol type and
  // at least one protocol shared with every other member.
  bool supports(std::string_view protocol_type, const std::vector<Protocol>& protocols,
                std::string_view except_member) const;

  // The group metadata record value (GroupMetadataValue v3) for the current generation.
  protocol::GroupMetadataValue to_record() const;
};

}  // namespace mq::groups
