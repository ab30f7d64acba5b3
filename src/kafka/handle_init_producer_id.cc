// InitProducerId (key 22; InitProducerIdRequest.json, KIP-98, KIP-360). v0-v4 served
// (librdkafka 2.0.2 enables idempotence only when v0 is in the advertised range; kafkajs
// uses v0-v1; v3 adds ProducerId/ProducerEpoch for the KIP-360 epoch bump; v4 only allows
// the PRODUCER_FENCED code, which a non-transactional producer never gets here; v5 is not
// advertised (its TRANSACTION_ABORTABLE belongs to transactions).
//
// Idempotent (non-transactional) producers only: TransactionalId null → a new producer id
// with epoch 0, or, with ProducerId/ProducerEpoch set (v3+), the same id with the epoch
// bumped (cluster/producer_id_allocator.h). Any broker answers (librdkafka asks any broker,
// kafkajs the controller named in Metadata); ids come from controller-allocated blocks.
//
// Errors:
//   TransactionalId set (non-empty) → INVALID_REQUEST: raftmq has no transaction
//     coordinator. None of Kafka's codes means "transactions unsupported"; the retriable
//     coordinator codes would make a client retry forever and
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED would claim an ACL problem. librdkafka never
//     gets here (it refuses init_transactions() itself when the broker does not advertise
//     the transaction APIs).
//   TransactionalId "" → INVALID_REQUEST (as Kafka).
//   only one of ProducerId/ProducerEpoch set → INVALID_REQUEST (as Kafka).
//   no id block from the controller in time (no controller quorum) → COORDINATOR_NOT_AVAILABLE,
//     retriable: clients retry InitProducerId.
#include "kafka/error_codes.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

constexpr std::int64_t kInitProducerIdTimeoutMs = 5000;

void answer(const Respond& respond, KafkaError error, std::int64_t producer_id = -1,
            std::int16_t epoch = -1) {
  protocol::InitProducerIdResponse response;
  response.error_code = code(error);
  response.producer_id = producer_id;
  response.producer_epoch = epoch;
  respond(protocol::AnyResponse(std::move(response)));
}

KafkaError init_producer_id_error(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kTimeout:
    case ErrorCode::kUnavailable:
    case ErrorCode::kLimitExceeded:
    case ErrorCode::kNotLeader:
      return KafkaError::kCoordinatorNotAvailable;
    default:
      return KafkaError::kUnknownServerError;
  }
}

}  // namespace

void handle_init_producer_id(const RequestContext& ctx, protocol::InitProducerIdRequest request,
                             Respond respond) {
  if (request.transactional_id.has_value()) return answer(respond, KafkaError::kInvalidRequest);
  bool has_id = request.producer_id != -1;
  bool has_epoch = request.producer_epoch != -1;
  if (has_id != has_epoch || request.producer_id < -1 || request.producer_epoch < -1) {
    return answer(respond, KafkaError::kInvalidRequest);
  }
  ctx.cluster->init_producer_id(
      request.producer_id, request.producer_epoch, kInitProducerIdTimeoutMs,
      [respond](Result<cluster::ProducerIdResult> result) {
        if (!result.has_value()) return answer(respond, init_producer_id_error(result.error()));
        if (result->kafka_error != 0) {
          return answer(respond, static_cast<KafkaError>(result->kafka_error));
        }
        answer(respond, KafkaError::kNone, result->producer_id, result->producer_epoch);
      });
}

}  // namespace mq::kafka
