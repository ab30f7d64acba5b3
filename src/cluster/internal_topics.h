// Internal topics the controller leader creates by itself: `__consumer_offsets`, where group
// coordinators keep committed offsets and group metadata (docs/groups.md). No client request
// has to create it, so the first consumer group finds a coordinator without an admin step.
#pragma once

#include <cstdint>

namespace mq::cluster {

class Node;

inline constexpr std::int32_t kOffsetsTopicPartitionsDefault = 16;

// Off by default, so that in-process test clusters (cluster::Node tests, which count replicas
// and directories) keep exactly the topics they create; `raftmq serve` turns it on.
void enable_internal_topics(bool enabled);

// Called from the controller's reconcile path on every broker; acts only when enabled, on the controller
// leader, once min(3, configured brokers) brokers are alive and the topic does not exist yet.
// Partitions: RAFTMQ_OFFSETS_TOPIC_PARTITIONS (1..1000) or 16; replication factor
// min(3, brokers); cleanup.policy=compact. Retries at most every 2 s while creation fails.
void ensure_internal_topics(Node& node);

}  // namespace mq::cluster
