// Admin request forwarding between brokers (docs/cluster.md, "Admin forwarding"): a broker
// that is not the controller leader sends an admin call (create/delete topics, create
// partitions, alter configs, move a partition) to the controller leader over the transport's
// control-plane channel and relays the answer. This header is the wire encoding of those
// requests and answers; the forwarding itself is in node_forward.cc.
//
// Encoding (little-endian, our own format): request = version u8 | op u8 | timeout_ms i64 |
// validate_only u8 | op body; answer = version u8 | count u32 | (name str | code u8 |
// message str | kafka_error i16)*. Strings are u16 length | bytes; every count is bounded
// (kAdminItemsMax) and trailing bytes are refused, so a corrupt or hostile frame is an error,
// never a crash or an unbounded allocation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "cluster/api.h"

namespace mq::cluster {

inline constexpr std::uint32_t kAdminItemsMax = 10000;

enum class AdminOp : std::uint8_t {
  kCreateTopics = 1,
  kDeleteTopics = 2,
  kCreatePartitions = 3,
  kAlterConfigs = 4,
  kMovePartition = 5,
  kRemoveBroker = 6,  // body: broker i32 (docs/cluster.md "Removing a broker")
  kControllerVoter = 7,  // body: broker i32 | choice u8 (docs/cluster.md "Controller voters")
};

struct AdminRequest {
  AdminOp op = AdminOp::kCreateTopics;
  std::int64_t timeout_ms = 0;
  bool validate_only = false;
  std::vector<TopicSpec> topics;                                    // kCreateTopics
  std::vector<std::string> names;                                   // kDeleteTopics
  std::vector<std::pair<std::string, std::int32_t>> new_totals;     // kCreatePartitions
  std::string topic;                                                // kAlterConfigs, kMove
  std::map<std::string, std::string> configs;                       // kAlterConfigs
  std::int32_t partition = 0;                                       // kMovePartition
  std::vector<BrokerId> replicas;                                   // kMovePartition
  BrokerId broker{-1};                                              // kRemoveBroker, kControllerVoter
  VoterChoice voter_choice = VoterChoice::kAuto;                    // kControllerVoter
};

Buffer encode_admin_request(const AdminRequest& request);
Result<AdminRequest> decode_admin_request(BufferView bytes);
Buffer encode_admin_results(const std::vector<AdminResult>& results);
Result<std::vector<AdminResult>> decode_admin_results(BufferView bytes);

}  // namespace mq::cluster
