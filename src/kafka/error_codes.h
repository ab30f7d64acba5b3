// The one place where raftmq's internal errors (mq::Status, STYLE.md section D) become Kafka
// protocol error codes (the int16 ErrorCode of responses; protocol/gen/error_codes.h). Handlers
// never pick a Kafka code for a Status themselves: they call one of these.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "cluster/api.h"
#include "protocol/gen/error_codes.h"

namespace mq::kafka {

using KafkaError = protocol::ErrorCode;

inline std::int16_t code(KafkaError error) { return static_cast<std::int16_t>(error); }

// Errors of partition-level data operations (local_partition, produce, fetch, list offsets,
// offsets for leader epoch):
//   kNotFound → UNKNOWN_TOPIC_OR_PARTITION       kNotLeader, kAborted → NOT_LEADER_OR_FOLLOWER
//   kCorruption → CORRUPT_MESSAGE                 kOutOfRange → OFFSET_OUT_OF_RANGE
//   kTimeout → REQUEST_TIMED_OUT                  kNoSpace, kIoError → KAFKA_STORAGE_ERROR
//   kUnavailable, kLimitExceeded → NOT_ENOUGH_REPLICAS (no quorum right now, or back-pressure:
//     a retriable error every client backs off on)
//   kUnsupported → UNSUPPORTED_FOR_MESSAGE_FORMAT  kInvalidArgument → INVALID_RECORD
//   anything else → UNKNOWN_SERVER_ERROR
KafkaError partition_error(const Status& status);

// A produced record set that failed protocol/record_batch validation: legacy message sets
// (magic 0 or 1, which raftmq does not store) → UNSUPPORTED_FOR_MESSAGE_FORMAT; anything else
// (bad CRC, bad lengths or counts, unknown magic, undecodable compression) → CORRUPT_MESSAGE.
KafkaError record_batch_error(const Status& status, std::int8_t magic);

// Errors of topic-level admin operations (CreateTopics, DeleteTopics, CreatePartitions), per
// cluster/api.h AdminResult: a specific `kafka_error` wins; otherwise kAlreadyExists →
// TOPIC_ALREADY_EXISTS, kNotFound → UNKNOWN_TOPIC_OR_PARTITION, kInvalidArgument →
// INVALID_REQUEST, kNotLeader → NOT_CONTROLLER, kTimeout → REQUEST_TIMED_OUT, kUnavailable →
// (no controller quorum) REQUEST_TIMED_OUT, others UNKNOWN_SERVER_ERROR.
KafkaError admin_error(const cluster::AdminResult& result);

// Leader-epoch fencing (KIP-320): a request that names the leader epoch it believes current is
// refused with FENCED_LEADER_EPOCH when that epoch is older than the replica's, and with
// UNKNOWN_LEADER_EPOCH when it is newer (the broker has not caught up yet). -1 = not checked.
KafkaError check_leader_epoch(std::int32_t requested_epoch, std::int32_t current_epoch);

}  // namespace mq::kafka
