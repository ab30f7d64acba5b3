// Fetch (key 1; FetchRequest.json). v0-v15 advertised (librdkafka needs 4 for record batch v2
// and 10 for zstd). Served from the partition leader, committed data only (up to the high
// watermark). Limits: partition_max_bytes per partition and max_bytes per response (capped by
// fetch_response_bytes_max), but at least one whole batch as Kafka does (KIP-74). Long-poll:
// when fewer than min_bytes are available the request waits on LocalPartition::wait_for_data
// until data arrives or max_wait_ms (capped by fetch_wait_ms_max) passes. Fetch sessions
// (KIP-227) are not kept: session_id is always 0, so clients send full requests. v0-v3 expect
// legacy message sets: those partitions answer UNSUPPORTED_FOR_MESSAGE_FORMAT (no
// down-conversion). v13+ name topics by id.
//
// Zero copy: on a connection (ctx.respond_frame set) the record batches are not read: the
// partitions' file extents go into the frame (fetch_frame.h) and out with sendfile(2). Called
// directly (tests), the handler reads them into the response as before.
#include <unistd.h>

#include <asio/steady_timer.hpp>
#include <memory>

#include "kafka/error_codes.h"
#include "kafka/fetch_frame.h"
#include "kafka/handlers.h"

namespace mq::kafka {
namespace {

using Response = protocol::FetchResponse;

struct PartitionRef {
  std::size_t topic_index;
  std::size_t partition_index;
};

struct FetchState : std::enable_shared_from_this<FetchState> {
  RequestContext ctx;
  protocol::FetchRequest request;
  Respond respond;
  std::vector<std::string> topic_names;  // resolved (v13+: from topic ids); empty = unknown
  std::int64_t deadline_ms = 0;
  std::uint64_t response_bytes_max = 0;
  bool zero_copy = false;     // records go out as chunks (ctx.respond_frame)
  FetchRecordChunks chunks;   // of the last read_all(), when zero_copy
  bool done = false;
  bool in_wake = false;  // inside wake(): a waiter answered synchronously is not re-armed
  std::unique_ptr<asio::steady_timer> timer;

  FetchState(const RequestContext& c, protocol::FetchRequest r, Respond d)
      : ctx(c), request(std::move(r)), respond(std::move(d)) {}

  // Reads every partition once. Returns the response and sets *bytes / *has_error.
  Response read_all(std::uint64_t* bytes, bool* has_error);
  void read_partition(const std::string& topic, const protocol::FetchRequest::FetchPartition& in,
                      std::uint64_t budget, Response::PartitionData* out,
                      std::vector<cluster::RecordsChunk>* chunks_out, std::uint64_t* bytes);
  void arm_waits();
  // Parks one waiter on partition (t, i) until its high watermark passes what was read.
  void arm(std::size_t t, std::size_t i);
  // A waiter of partition (t, i) fired, or the timer (t == npos): answer or re-arm.
  void wake(std::size_t t, std::size_t i);
  void finish(Response response);
};

Status append_chunk(const cluster::RecordsChunk& chunk, Buffer* out) {
  if (chunk.fd < 0) {
    out->append(chunk.bytes.view());
    return Status::ok();
  }
  // Copy path for file chunks: pread the range (no sendfile through the generated codec).
  std::size_t start = out->size();
  out->resize(start + chunk.length);
  std::uint64_t done = 0;
  while (done < chunk.length) {
    ssize_t n = ::pread(chunk.fd, out->data() + start + done, chunk.length - done,
                        static_cast<off_t>(chunk.file_offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      out->resize(start);
      return n < 0 ? Status::from_errno(errno, "fetch: pread")
                   : Status::corruption("fetch: segment shorter than its index says");
    }
    done += static_cast<std::uint64_t>(n);
  }
  return Status::ok();
}

void FetchState::read_partition(const std::string& topic,
                                const protocol::FetchRequest::FetchPartition& in,
                                std::uint64_t budget, Response::PartitionData* out,
                                std::vector<cluster::RecordsChunk>* chunks_out,
                                std::uint64_t* bytes) {
  out->partition_index = in.partition;
  if (topic.empty()) {
    out->error_code = code(KafkaError::kUnknownTopicId);
    return;
  }
  Result<cluster::LocalPartition*> local = ctx.cluster->local_partition(topic, in.partition);
  if (local.has_value() && !(*local)->is_leader()) local = Status::not_leader(topic);
  if (!local.has_value()) {
    out->error_code = code(partition_error(local.error()));
    if (local.error().code() == ErrorCode::kNotLeader && ctx.api_version >= 12) {
      std::int32_t epoch = -1;
      out->current_leader.leader_id =
          leader_of(ctx.cluster->metadata(), topic, in.partition, &epoch);
      out->current_leader.leader_epoch = epoch;
    }
    return;
  }
  cluster::LocalPartition* partition = *local;
  out->high_watermark = partition->high_watermark().value();
  out->last_stable_offset = out->high_watermark;
  out->log_start_offset = partition->log_start_offset().value();
  KafkaError fenced = check_leader_epoch(in.current_leader_epoch, partition->leader_epoch());
  if (fenced != KafkaError::kNone) {
    out->error_code = code(fenced);
    return;
  }
  if (ctx.api_version < 4) {
    out->error_code = code(KafkaError::kUnsupportedForMessageFormat);
    return;
  }
  std::uint64_t limit = std::min<std::uint64_t>(
      budget, static_cast<std::uint64_t>(std::max(in.partition_max_bytes, 0)));
  if (limit == 0 && budget > 0) limit = 1;  // still at least one whole batch (KIP-74)
  if (budget == 0) return;                  // response full: report positions only
  Result<cluster::FetchResult> fetched = partition->fetch(KafkaOffset(in.fetch_offset), limit);
  if (!fetched.has_value()) {
    out->error_code = code(partition_error(fetched.error()));
    return;
  }
  out->high_watermark = fetched->high_watermark.value();
  out->last_stable_offset = fetched->last_stable_offset.value();
  out->log_start_offset = fetched->log_start_offset.value();
  if (zero_copy) {
    *bytes += fetched->bytes;
    *chunks_out = std::move(fetched->records);
    return;
  }
  Buffer records;
  for (const cluster::RecordsChunk& chunk : fetched->records) {
    Status appended = append_chunk(chunk, &records);
    if (!appended.is_ok()) {
      out->error_code = code(partition_error(appended));
      return;
    }
  }
  *bytes += records.size();
  out->records = std::move(records);
}

Response FetchState::read_all(std::uint64_t* bytes, bool* has_error) {
  Response response;
  *bytes = 0;
  *has_error = false;
  chunks.assign(request.topics.size(), {});
  for (std::size_t t = 0; t < request.topics.size(); ++t) {
    const auto& topic = request.topics[t];
    Response::FetchableTopicResponse& out = response.responses.emplace_back();
    out.topic = topic.topic;
    out.topic_id = topic.topic_id;
    chunks[t].resize(topic.partitions.size());
    for (std::size_t i = 0; i < topic.partitions.size(); ++i) {
      const auto& partition = topic.partitions[i];
      Response::PartitionData& part = out.partitions.emplace_back();
      std::uint64_t budget = response_bytes_max > *bytes ? response_bytes_max - *bytes : 0;
      // The first partition with data may exceed the response limit by one batch (KIP-74).
      if (*bytes == 0 && budget == 0) budget = 1;
      read_partition(topic_names[t], partition, budget, &part, &chunks[t][i], bytes);
      if (part.error_code != 0) *has_error = true;
    }
  }
  return response;
}

void FetchState::arm_waits() {
  for (std::size_t t = 0; t < request.topics.size(); ++t) {
    for (std::size_t i = 0; i < request.topics[t].partitions.size(); ++i) arm(t, i);
  }
  timer = std::make_unique<asio::steady_timer>(*ctx.io);
  timer->expires_after(std::chrono::milliseconds(std::max<std::int64_t>(
      0, deadline_ms - steady_now_ms())));
  timer->async_wait([self = shared_from_this()](const std::error_code& ec) {
    if (!ec) self->wake(std::string::npos, 0);
  });
}

void FetchState::arm(std::size_t t, std::size_t i) {
  if (topic_names[t].empty()) return;
  const auto& partition = request.topics[t].partitions[i];
  Result<cluster::LocalPartition*> local =
      ctx.cluster->local_partition(topic_names[t], partition.partition);
  if (!local.has_value()) return;
  // Wake when the high watermark passes both the fetch position and what is already counted
  // (a consumer ahead of a new leader's lagging high watermark waits for its own offset).
  KafkaOffset from(std::max<std::int64_t>(partition.fetch_offset,
                                          (*local)->high_watermark().value()));
  (*local)->wait_for_data(from, deadline_ms,
                          [self = shared_from_this(), t, i] { self->wake(t, i); });
}

void FetchState::wake(std::size_t t, std::size_t i) {
  // Answered synchronously while re-arming (the partition's waiter list is full): leave this
  // partition unarmed rather than spin; the others and the deadline timer still end the wait.
  if (done || in_wake) return;
  std::uint64_t bytes = 0;
  bool has_error = false;
  Response response = read_all(&bytes, &has_error);
  // The timer (t == npos) always ends the wait: it fires at the deadline.
  bool expired = t == std::string::npos || steady_now_ms() >= deadline_ms;
  if (expired || has_error || bytes >= static_cast<std::uint64_t>(std::max(request.min_bytes, 1))) {
    finish(std::move(response));
    return;
  }
  // min_bytes not reached: only the partition that fired lost its waiter; re-arm just that
  // one (the others' waiters are still parked), so each wake-up is one real high-watermark
  // advance and no partition stays unwatched until max_wait.
  if (t == std::string::npos) return;
  in_wake = true;
  arm(t, i);
  in_wake = false;
}

void FetchState::finish(Response response) {
  done = true;
  if (timer) timer->cancel();
  if (zero_copy) {
    ctx.respond_frame(
        encode_fetch_frame(ctx.correlation_id, ctx.api_version, std::move(response), chunks));
    chunks.clear();
    return;
  }
  respond(protocol::AnyResponse(std::move(response)));
}

}  // namespace

void handle_fetch(const RequestContext& ctx, protocol::FetchRequest request, Respond respond) {
  auto state = std::make_shared<FetchState>(ctx, std::move(request), std::move(respond));
  state->zero_copy = static_cast<bool>(ctx.respond_frame);
  // v13+: topics by id.
  cluster::MetadataSnapshot metadata;
  bool by_id = ctx.api_version >= 13;
  if (by_id) metadata = ctx.cluster->metadata();
  for (const auto& topic : state->request.topics) {
    if (!by_id) {
      state->topic_names.push_back(topic.topic);
      continue;
    }
    const cluster::TopicInfo* info = find_topic_by_id(metadata, topic.topic_id);
    state->topic_names.push_back(info != nullptr ? info->name : std::string());
  }
  std::int32_t max_bytes = ctx.api_version >= 3 ? state->request.max_bytes : 0x7fffffff;
  state->response_bytes_max = std::min<std::uint64_t>(
      static_cast<std::uint64_t>(std::max(max_bytes, 0)), ctx.config->fetch_response_bytes_max);
  std::int32_t wait_ms = std::clamp(state->request.max_wait_ms, 0, ctx.config->fetch_wait_ms_max);
  state->deadline_ms = steady_now_ms() + wait_ms;

  std::uint64_t bytes = 0;
  bool has_error = false;
  Response response = state->read_all(&bytes, &has_error);
  if (wait_ms == 0 || has_error || bytes >= static_cast<std::uint64_t>(
                                               std::max(state->request.min_bytes, 1))) {
    state->finish(std::move(response));
    return;
  }
  state->arm_waits();
}

}  // namespace mq::kafka
