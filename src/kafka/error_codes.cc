#include "kafka/error_codes.h"

namespace mq::kafka {

KafkaError partition_error(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kOk:
      return KafkaError::kNone;
    case ErrorCode::kNotFound:
      return KafkaError::kUnknownTopicOrPartition;
    case ErrorCode::kNotLeader:
    case ErrorCode::kAborted:
      return KafkaError::kNotLeaderOrFollower;
    case ErrorCode::kCorruption:
      return KafkaError::kCorruptMessage;
    case ErrorCode::kOutOfRange:
      return KafkaError::kOffsetOutOfRange;
    case ErrorCode::kTimeout:
      return KafkaError::kRequestTimedOut;
    case ErrorCode::kUnavailable:
    case ErrorCode::kLimitExceeded:
      return KafkaError::kNotEnoughReplicas;
    case ErrorCode::kNoSpace:
    case ErrorCode::kIoError:
      return KafkaError::kKafkaStorageError;
    case ErrorCode::kUnsupported:
      return KafkaError::kUnsupportedForMessageFormat;
    case ErrorCode::kInvalidArgument:
      return KafkaError::kInvalidRecord;
    default:
      return KafkaError::kUnknownServerError;
  }
}

KafkaError record_batch_error(const Status& status, std::int8_t magic) {
  if (status.is_ok()) return KafkaError::kNone;
  if (status.code() == ErrorCode::kUnsupported && (magic == 0 || magic == 1)) {
    return KafkaError::kUnsupportedForMessageFormat;
  }
  return KafkaError::kCorruptMessage;
}

KafkaError admin_error(const cluster::AdminResult& result) {
  if (result.kafka_error != 0) return static_cast<KafkaError>(result.kafka_error);
  switch (result.status.code()) {
    case ErrorCode::kOk:
      return KafkaError::kNone;
    case ErrorCode::kAlreadyExists:
      return KafkaError::kTopicAlreadyExists;
    case ErrorCode::kNotFound:
      return KafkaError::kUnknownTopicOrPartition;
    case ErrorCode::kInvalidArgument:
      return KafkaError::kInvalidRequest;
    case ErrorCode::kNotLeader:
      return KafkaError::kNotController;
    case ErrorCode::kTimeout:
    case ErrorCode::kUnavailable:
      return KafkaError::kRequestTimedOut;
    default:
      return KafkaError::kUnknownServerError;
  }
}

KafkaError check_leader_epoch(std::int32_t requested_epoch, std::int32_t current_epoch) {
  if (requested_epoch < 0) return KafkaError::kNone;
  if (requested_epoch < current_epoch) return KafkaError::kFencedLeaderEpoch;
  if (requested_epoch > current_epoch) return KafkaError::kUnknownLeaderEpoch;
  return KafkaError::kNone;
}

}  // namespace mq::kafka
