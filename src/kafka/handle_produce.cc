// Produce (key 0; ProduceRequest.json). v0-v10 advertised (librdkafka needs 3 for record batch
// v2 and 7 for zstd); v0-v2 carry legacy message sets, which raftmq refuses per partition with
// UNSUPPORTED_FOR_MESSAGE_FORMAT (it stores record batch v2 only). Every batch is validated
// (lengths, magic, CRC-32C, record framing and offset deltas, decompression with the bomb
// guard) before anything of that partition is appended; a failure appends nothing and answers
// CORRUPT_MESSAGE. acks 0/1/-1 map to cluster::Acks; acks=0 gets no response at all (Kafka
// protocol guide). NOT_LEADER_OR_FOLLOWER carries the leader hint from v10 (KIP-951).
// Idempotent producers (KIP-98): the partition leader checks producer id, epoch and sequence
// (cluster/partition.h); a duplicate is answered with its original base offset, a gap with
// NOT_ENOUGH_REPLICAS for a bounded time and then OUT_OF_ORDER_SEQUENCE_NUMBER (docs/cluster.md
// "Sequence gaps"), an older epoch with INVALID_PRODUCER_EPOCH, a transactional batch with
// INVALID_RECORD (no transactions).
#include <memory>
#include <set>

#include "kafka/error_codes.h"
#include "kafka/handlers.h"
#include "protocol/record_batch.h"

namespace mq::kafka {
namespace {

using Response = protocol::ProduceResponse;
using PartitionResponse = Response::PartitionProduceResponse;

// Collects the per-partition outcomes; the response goes out when the last one arrives.
struct ProduceState {
  Response response;
  std::size_t pending = 0;
  bool respond_when_done = true;
  Respond respond;
  std::int16_t version = 0;
  cluster::ClusterApi* cluster = nullptr;
  std::shared_ptr<ProduceErrors> errors;  // may be null
  std::string client_id;

  void finish_one() {
    MQ_ASSERT(pending > 0);
    if (--pending > 0) return;
    count_errors();
    if (!respond_when_done) return;
    add_leader_hints();
    respond(protocol::AnyResponse(std::move(response)));
  }

  void count_errors() {
    if (!errors) return;
    for (const auto& topic : response.responses) {
      for (const auto& part : topic.partition_responses) {
        if (part.error_code == 0) continue;
        errors->record(topic.name, part.index, part.error_code, client_id,
                       part.error_message.value_or(""));
      }
    }
  }

  // KIP-951: from v10 a NOT_LEADER_OR_FOLLOWER partition names the current leader, and the
  // response lists that leader's endpoint.
  void add_leader_hints() {
    if (version < 10) return;
    cluster::MetadataSnapshot metadata = cluster->metadata();
    std::set<std::int32_t> listed;
    for (auto& topic : response.responses) {
      for (auto& part : topic.partition_responses) {
        if (part.error_code != code(KafkaError::kNotLeaderOrFollower)) continue;
        std::int32_t epoch = -1;
        std::int32_t leader = leader_of(metadata, topic.name, part.index, &epoch);
        if (leader < 0) continue;
        part.current_leader.leader_id = leader;
        part.current_leader.leader_epoch = epoch;
        const cluster::BrokerInfo* broker = find_broker(metadata, leader);
        if (broker == nullptr || !listed.insert(leader).second) continue;
        Response::NodeEndpoint endpoint;
        endpoint.node_id = leader;
        endpoint.host = broker->host;
        endpoint.port = broker->kafka_port;
        endpoint.rack = broker->rack;
        response.node_endpoints.push_back(std::move(endpoint));
      }
    }
  }
};

// Validates every batch of a partition's record set. On failure returns the Kafka error and
// fills *message.
KafkaError validate_records(const std::optional<Buffer>& records,
                            std::vector<protocol::RecordBatchView>* batches,
                            std::string* message) {
  if (!records.has_value() || records->empty()) {
    *message = "empty record set";
    return KafkaError::kCorruptMessage;
  }
  std::int8_t magic = records->size() > protocol::kRecordBatchMagicOffset
                          ? static_cast<std::int8_t>((*records)[protocol::kRecordBatchMagicOffset])
                          : -1;
  Result<std::vector<protocol::RecordBatchView>> parsed =
      protocol::parse_record_batches(records->view());
  if (!parsed.has_value()) {
    *message = parsed.error().to_string();
    return record_batch_error(parsed.error(), magic);
  }
  for (const protocol::RecordBatchView& batch : *parsed) {
    Status valid = batch.validate_for_produce();
    if (!valid.is_ok()) {
      *message = valid.to_string();
      return record_batch_error(valid, batch.header().magic);
    }
  }
  *batches = std::move(parsed).value();
  return KafkaError::kNone;
}

void produce_partition(const RequestContext& ctx, const std::string& topic,
                       protocol::ProduceRequest::PartitionProduceData& data,
                       cluster::Acks acks, const std::shared_ptr<ProduceState>& state,
                       PartitionResponse* out) {
  std::vector<protocol::RecordBatchView> batches;
  std::string message;
  KafkaError invalid = validate_records(data.records, &batches, &message);
  if (invalid != KafkaError::kNone) {
    out->error_code = code(invalid);
    out->error_message = message;
    state->finish_one();
    return;
  }
  Result<cluster::LocalPartition*> local = ctx.cluster->local_partition(topic, data.index);
  if (local.has_value() && !(*local)->is_leader()) {
    local = Status::not_leader("not the leader of " + topic);
  }
  if (!local.has_value()) {
    out->error_code = code(partition_error(local.error()));
    out->error_message = local.error().message();
    state->finish_one();
    return;
  }
  // All batches of the partition are appended in order; the partition's answer is the first
  // batch's base offset, or the first error.
  struct Outcome {
    std::size_t remaining;
    bool failed = false;
  };
  auto outcome = std::make_shared<Outcome>(Outcome{batches.size()});
  // One batch spanning the whole record set (what producers send): its buffer is handed
  // over as it is, without a copy. Several batches are copied out one by one.
  const bool whole = batches.size() == 1 && batches[0].bytes().size() == data.records->size();
  for (std::size_t i = 0; i < batches.size(); ++i) {
    SharedBuffer bytes = whole ? SharedBuffer(std::move(*data.records))
                               : SharedBuffer(batches[i].bytes());
    (*local)->produce(std::move(bytes), acks,
                      [state, outcome, out, first = i == 0](Result<cluster::ProduceResult> r) {
                        if (!r.has_value()) {
                          if (!outcome->failed) {
                            outcome->failed = true;
                            out->error_code = code(partition_error(r.error()));
                            out->error_message = r.error().message();
                          }
                        } else if (r->kafka_error != 0) {
                          // Idempotent producer refusals (KIP-98): sequence, epoch.
                          if (!outcome->failed) {
                            outcome->failed = true;
                            out->error_code = r->kafka_error;
                            out->error_message = r->error_message;
                          }
                        } else if (first) {
                          out->base_offset = r->base_offset.value();
                          out->log_append_time_ms = r->log_append_time_ms;
                          out->log_start_offset = r->log_start_offset.value();
                        }
                        if (--outcome->remaining == 0) state->finish_one();
                      });
  }
}

}  // namespace

void handle_produce(const RequestContext& ctx, protocol::ProduceRequest request,
                    Respond respond) {
  auto state = std::make_shared<ProduceState>();
  state->version = ctx.api_version;
  state->cluster = ctx.cluster;
  state->errors = ctx.produce_errors;
  if (state->errors) state->client_id = ctx.client_id;
  state->respond = std::move(respond);
  bool valid_acks = request.acks == 0 || request.acks == 1 || request.acks == -1;
  state->respond_when_done = request.acks != 0 || !valid_acks;
  cluster::Acks acks = static_cast<cluster::Acks>(request.acks);

  // Lay out the whole response first: callbacks fill their slot (vectors are not resized
  // afterwards, so the pointers stay valid).
  std::size_t partitions = 0;
  state->response.responses.reserve(request.topic_data.size());
  for (const auto& topic : request.topic_data) {
    Response::TopicProduceResponse& out = state->response.responses.emplace_back();
    out.name = topic.name;
    out.partition_responses.resize(topic.partition_data.size());
    for (std::size_t i = 0; i < topic.partition_data.size(); ++i) {
      out.partition_responses[i].index = topic.partition_data[i].index;
      out.partition_responses[i].base_offset = -1;
    }
    partitions += topic.partition_data.size();
  }
  state->pending = partitions + 1;  // +1: held until every partition was started
  for (std::size_t t = 0; t < request.topic_data.size(); ++t) {
    auto& topic = request.topic_data[t];
    auto& out = state->response.responses[t];
    for (std::size_t i = 0; i < topic.partition_data.size(); ++i) {
      if (!valid_acks) {
        out.partition_responses[i].error_code = code(KafkaError::kInvalidRequiredAcks);
        state->finish_one();
        continue;
      }
      produce_partition(ctx, topic.name, topic.partition_data[i], acks, state,
                        &out.partition_responses[i]);
    }
  }
  if (!state->respond_when_done) {
    state->respond(std::nullopt);  // acks=0: the client expects no response
  }
  state->finish_one();
}

}  // namespace mq::kafka
