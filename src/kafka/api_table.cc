#include "kafka/api_table.h"

#include <array>

#include "base/assert.h"
#include "protocol/gen/messages.h"

namespace mq::kafka {
namespace {

constexpr std::array kSupported = {
    SupportedApi{0, "Produce", 0, 10},        // v10: current leader + node endpoints (KIP-951)
    SupportedApi{1, "Fetch", 0, 15},          // v13: topic ids; v15: replica state
    SupportedApi{2, "ListOffsets", 0, 6},     // v7 (max timestamp, -3) not implemented
    SupportedApi{3, "Metadata", 0, 12},       // v10+: topic ids
    SupportedApi{8, "OffsetCommit", 0, 8},    // groups (docs/groups.md); v9 is KIP-848
    // v8: several groups (KIP-709). librdkafka 2.0.2's flexible v7 "all topics" request has 3
    // stray bytes after its body, ignored as Kafka ignores them (protocol/headers.h).
    SupportedApi{9, "OffsetFetch", 0, 8},
    SupportedApi{10, "FindCoordinator", 0, 4},  // v4: batched keys (KIP-699)
    SupportedApi{11, "JoinGroup", 0, 9},
    SupportedApi{12, "Heartbeat", 0, 4},
    SupportedApi{13, "LeaveGroup", 0, 5},
    SupportedApi{14, "SyncGroup", 0, 5},
    SupportedApi{15, "DescribeGroups", 0, 5},
    SupportedApi{16, "ListGroups", 0, 4},  // v4: state filter (KIP-518); v5 is KIP-848
    SupportedApi{18, "ApiVersions", 0, 3},    // v3: flexible (KIP-511)
    SupportedApi{19, "CreateTopics", 0, 7},   // v7: topic ids in the response
    SupportedApi{20, "DeleteTopics", 0, 6},   // v6: delete by topic id
    SupportedApi{22, "InitProducerId", 0, 4}, // idempotent producers only (no transactions)
    SupportedApi{23, "OffsetForLeaderEpoch", 0, 4},
    SupportedApi{32, "DescribeConfigs", 0, 4},
    SupportedApi{37, "CreatePartitions", 0, 3},
    SupportedApi{42, "DeleteGroups", 0, 2},
    SupportedApi{45, "AlterPartitionReassignments", 0, 0},  // KIP-455
    SupportedApi{46, "ListPartitionReassignments", 0, 0},
    SupportedApi{60, "DescribeCluster", 0, 1},
    SupportedApi{64, "UnregisterBroker", 0, 0},  // KIP-500; `raftmq broker remove`
    SupportedApi{10000, "RaftmqClusterStatus", 0, 0},  // raftmq's own (docs/operations.md)
    SupportedApi{10001, "RaftmqControllerVoters", 0, 0},  // raftmq's own (docs/cluster.md)
};

}  // namespace

std::span<const SupportedApi> supported_apis() {
  // Every served version must be decodable by the generated codec.
  static const bool checked = [] {
    for (const SupportedApi& api : kSupported) {
      const protocol::ApiSpec* spec = protocol::find_api(api.api_key);
      MQ_ASSERT(spec != nullptr, "api %d not generated", api.api_key);
      MQ_ASSERT(spec->min_version <= api.min_version && api.max_version <= spec->max_version,
                "api %d: advertised range outside the schema", api.api_key);
    }
    return true;
  }();
  (void)checked;
  return kSupported;
}

const SupportedApi* find_supported_api(std::int16_t api_key) {
  for (const SupportedApi& api : supported_apis()) {
    if (api.api_key == api_key) return &api;
  }
  return nullptr;
}

}  // namespace mq::kafka
