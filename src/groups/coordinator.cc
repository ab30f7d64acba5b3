// Coordinator: ownership of the __consumer_offsets partitions, loading them, writing records.
#include "groups/coordinator.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <random>

#include <asio/post.hpp>

#include "protocol/gen/error_codes.h"
#include "protocol/record_batch.h"

namespace mq::groups {
namespace {

using KErr = protocol::ErrorCode;
constexpr std::int16_t kcode(KErr e) { return static_cast<std::int16_t>(e); }

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The bytes of a fetched chunk (file chunks are read with pread).
Result<Buffer> chunk_bytes(const cluster::RecordsChunk& chunk) {
  if (chunk.fd < 0) return Buffer(chunk.bytes.view());
  Buffer out(static_cast<std::size_t>(chunk.length));
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(chunk.fd, out.data() + done, out.size() - done,
                        static_cast<off_t>(chunk.file_offset + done));
    if (n < 0) return Status::from_errno(errno, "reading __consumer_offsets");
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  out.resize(done);
  return out;
}

}  // namespace

std::int16_t write_error(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kOk:
      return 0;
    case ErrorCode::kNotLeader:
    case ErrorCode::kAborted:
    case ErrorCode::kNotFound:
      return kcode(KErr::kNotCoordinator);
    case ErrorCode::kUnavailable:
    case ErrorCode::kLimitExceeded:
    case ErrorCode::kTimeout:
      return kcode(KErr::kCoordinatorNotAvailable);
    default:
      return kcode(KErr::kUnknownServerError);
  }
}

Coordinator::Coordinator(cluster::ClusterApi& cluster, asio::io_context& io,
                         CoordinatorConfig config, Clock clock)
    : cluster_(cluster),
      io_(io),
      config_(config),
      clock_(std::move(clock)),
      alive_(std::make_shared<bool>(true)) {
  std::random_device rd;
  member_id_salt_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

Coordinator::~Coordinator() {
  *alive_ = false;
  if (timer_) timer_->cancel();
}

void Coordinator::run_ticks() {
  if (!timer_) timer_ = std::make_unique<asio::steady_timer>(io_);
  timer_->expires_after(std::chrono::milliseconds(config_.tick_ms));
  timer_->async_wait([this, alive = alive_](const std::error_code& ec) {
    if (ec || !*alive) return;
    tick();
    run_ticks();
  });
}

void Coordinator::tick() {
  std::int32_t n = partition_count();
  for (auto it = owned_.begin(); it != owned_.end();) {
    std::int32_t p = (it++)->first;
    if (p >= n) drop_partition(p);
  }
  for (std::int32_t p = 0; p < n; ++p) refresh_partition(p);
  std::int64_t now = clock_();
  std::vector<std::string> ids;
  ids.reserve(groups_.size());
  for (const auto& [id, g] : groups_) ids.push_back(id);
  for (const std::string& id : ids) {
    Group* g = group_of(id);
    // A partition still replaying holds partial groups: their timers start when it is loaded
    // (finish_load), so nothing is expired or written from a partial state.
    if (g == nullptr || !loaded(g->partition)) continue;
    check_deadlines(*g, now);
    // A group that never got a member, an offset or a generation (e.g. only MEMBER_ID_REQUIRED
    // answers, or failed joins) is forgotten: nothing about it was written.
    if (g->state == GroupState::kEmpty && g->members.empty() && g->pending_members.empty() &&
        g->offsets.empty() && g->generation == 0) {
      groups_.erase(id);
    }
  }
}

bool Coordinator::any_loading() {
  std::int32_t n = partition_count();
  for (std::int32_t p = 0; p < n; ++p) refresh_partition(p);
  for (const auto& [p, owned] : owned_) {
    if (owned.status == PartitionStatus::kLoading) return true;
  }
  return false;
}

CoordinatorLocation Coordinator::locate(const cluster::MetadataSnapshot& metadata,
                                        std::string_view group_id) {
  CoordinatorLocation out;
  const cluster::TopicInfo* topic = find_offsets_topic(metadata);
  if (topic == nullptr || topic->partitions.empty()) {
    out.error = kcode(KErr::kCoordinatorNotAvailable);
    return out;
  }
  std::int32_t p = partition_for_group(group_id, static_cast<std::int32_t>(topic->partitions.size()));
  BrokerId leader{-1};
  for (const cluster::PartitionInfo& info : topic->partitions) {
    // Only a real leader: a broker named while its election still runs would answer
    // NOT_COORDINATOR if it loses, and some client calls (librdkafka's committed()) give up on
    // that, while COORDINATOR_NOT_AVAILABLE makes every client retry FindCoordinator.
    if (info.partition == p && !info.leader_expected) leader = info.leader;
  }
  for (const cluster::BrokerInfo& b : metadata.brokers) {
    if (b.id == leader && leader.value() >= 0) {
      out.node_id = b.id.value();
      out.host = b.host;
      out.port = b.kafka_port;
      return out;
    }
  }
  out.error = kcode(KErr::kCoordinatorNotAvailable);
  return out;
}

bool Coordinator::named_coordinator(std::int32_t partition) const {
  cluster::MetadataSnapshot md = cluster_.metadata();
  const cluster::TopicInfo* topic = find_offsets_topic(md);
  if (topic == nullptr) return false;
  for (const cluster::PartitionInfo& info : topic->partitions) {
    if (info.partition == partition) return info.leader == cluster_.self();
  }
  return false;
}

std::int32_t Coordinator::partition_count() const {
  cluster::MetadataSnapshot md = cluster_.metadata();
  const cluster::TopicInfo* topic = find_offsets_topic(md);
  return topic == nullptr ? 0 : static_cast<std::int32_t>(topic->partitions.size());
}

bool Coordinator::loaded(std::int32_t partition) const {
  auto it = owned_.find(partition);
  return it != owned_.end() && it->second.status == PartitionStatus::kLoaded;
}

std::int16_t Coordinator::check_group(std::string_view group_id, std::int32_t* partition) {
  std::int32_t n = partition_count();
  if (n == 0) return kcode(KErr::kCoordinatorNotAvailable);
  std::int32_t p = partition_for_group(group_id, n);
  if (partition != nullptr) *partition = p;
  refresh_partition(p);
  auto it = owned_.find(p);
  if (it == owned_.end()) {
    // Right after a leader's death, Metadata (and so FindCoordinator) may name this broker as
    // the expected winner of the election before it has won (docs/cluster.md, "Failover").
    // NOT_COORDINATOR would send the client back to FindCoordinator, which names this broker
    // again, and some client calls (librdkafka's committed()) give up on it; a retriable
    // COORDINATOR_LOAD_IN_PROGRESS makes it retry here until the election is decided.
    return named_coordinator(p) ? kcode(KErr::kCoordinatorLoadInProgress)
                                : kcode(KErr::kNotCoordinator);
  }
  if (it->second.status == PartitionStatus::kLoading) {
    return kcode(KErr::kCoordinatorLoadInProgress);
  }
  return 0;
}

void Coordinator::refresh_partition(std::int32_t p) {
  Result<cluster::LocalPartition*> local = cluster_.local_partition(kOffsetsTopic, p);
  bool leader = local.has_value() && (*local)->is_leader();
  auto it = owned_.find(p);
  if (!leader) {
    if (it != owned_.end()) drop_partition(p);
    return;
  }
  std::int32_t epoch = (*local)->leader_epoch();
  if (it != owned_.end() && it->second.epoch == epoch) return;
  // New leadership, or a new term of it: someone else may have written in between; reload.
  if (it != owned_.end()) drop_partition(p);
  start_load(p, epoch);
}

void Coordinator::start_load(std::int32_t p, std::int32_t epoch) {
  OwnedPartition& owned = owned_[p];
  owned.epoch = epoch;
  owned.status = PartitionStatus::kLoading;
  owned.incarnation = next_incarnation_++;
  Result<cluster::LocalPartition*> local = cluster_.local_partition(kOffsetsTopic, p);
  if (!local.has_value()) return drop_partition(p);
  LoadCursor cursor;
  cursor.partition = p;
  cursor.incarnation = owned.incarnation;
  cursor.next = (*local)->log_start_offset().value();
  cursor.target = (*local)->high_watermark().value();
  asio::post(io_, [this, alive = alive_, cursor] {
    if (*alive) load_step(cursor);
  });
}

void Coordinator::load_step(LoadCursor cursor) {
  auto it = owned_.find(cursor.partition);
  if (it == owned_.end() || it->second.incarnation != cursor.incarnation) return;  // dropped
  Result<cluster::LocalPartition*> local = cluster_.local_partition(kOffsetsTopic, cursor.partition);
  if (!local.has_value() || !(*local)->is_leader() ||
      (*local)->leader_epoch() != it->second.epoch) {
    return drop_partition(cursor.partition);  // the next tick starts over if leader again
  }
  if (cursor.next >= cursor.target) return finish_load(cursor.partition);
  std::int64_t start = (*local)->log_start_offset().value();
  if (cursor.next < start) cursor.next = start;  // retention/compaction moved the start
  Result<cluster::FetchResult> fetched =
      (*local)->fetch(KafkaOffset(cursor.next), config_.load_chunk_bytes);
  if (!fetched.has_value()) return drop_partition(cursor.partition);
  std::int64_t progress = cursor.next;
  for (const cluster::RecordsChunk& chunk : fetched->records) {
    Result<Buffer> bytes = chunk_bytes(chunk);
    if (!bytes.has_value()) return drop_partition(cursor.partition);
    auto batches = protocol::parse_record_batches(BufferView(*bytes), /*allow_partial_tail=*/true);
    if (!batches.has_value()) return drop_partition(cursor.partition);
    for (const protocol::RecordBatchView& batch : *batches) {
      const protocol::RecordBatchHeader& h = batch.header();
      progress = std::max(progress, h.last_offset() + 1);
      if (h.is_control()) continue;
      Result<protocol::RecordSet> records = batch.decode_records();
      if (!records.has_value()) continue;  // a corrupt batch cannot be applied; skip it
      for (const protocol::Record& r : records->records) {
        std::int64_t offset = h.base_offset + r.offset_delta;
        if (offset < cursor.next || offset >= cursor.target) continue;
        Result<LogRecord> record = decode_record(r.key, r.value);
        if (record.has_value()) apply_record(cursor.partition, *record);
      }
    }
  }
  // No batch at all below the target (a gap): nothing more to read.
  cursor.next = progress > cursor.next ? progress : cursor.target;
  asio::post(io_, [this, alive = alive_, cursor] {
    if (*alive) load_step(cursor);
  });
}

void Coordinator::finish_load(std::int32_t p) {
  owned_[p].status = PartitionStatus::kLoaded;
  // Sessions start now: members could not heartbeat while the partition was replaying (Kafka
  // schedules the heartbeat expirations of loaded members the same way).
  std::int64_t now = clock_();
  for (auto& [id, g] : groups_) {
    if (g.partition != p) continue;
    for (auto& [member_id, m] : g.members) m.heartbeat_deadline_ms = now + m.session_timeout_ms;
  }
  // Groups that exist only through deleted offsets are gone.
  for (auto it = groups_.begin(); it != groups_.end();) {
    const Group& g = it->second;
    bool gone = g.partition == p && g.state == GroupState::kEmpty && g.offsets.empty() &&
                g.members.empty() && g.generation == 0;
    it = gone ? groups_.erase(it) : std::next(it);
  }
}

void Coordinator::drop_partition(std::int32_t p) {
  owned_.erase(p);
  std::vector<std::function<void()>> replies;
  for (auto it = groups_.begin(); it != groups_.end();) {
    Group& g = it->second;
    if (g.partition != p) {
      ++it;
      continue;
    }
    for (auto& [id, m] : g.members) {
      if (m.pending_join) {
        JoinResult r;
        r.error = kcode(KErr::kNotCoordinator);
        r.member_id = id;
        replies.push_back([cb = std::move(m.pending_join), r] { cb(r); });
      }
      if (m.pending_sync) {
        SyncResult r;
        r.error = kcode(KErr::kNotCoordinator);
        replies.push_back([cb = std::move(m.pending_sync), r] { cb(r); });
      }
    }
    it = groups_.erase(it);
  }
  for (auto& reply : replies) reply();
}

Group* Coordinator::group_of(std::string_view group_id) {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : &it->second;
}

const Group* Coordinator::find_group(std::string_view group_id) const {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : &it->second;
}

Group& Coordinator::create_group(const std::string& group_id, std::int32_t partition) {
  Group& g = groups_[group_id];
  g.id = group_id;
  g.partition = partition;
  g.state_timestamp_ms = wall_now_ms();
  return g;
}

void Coordinator::apply_record(std::int32_t p, const LogRecord& record) {
  if (const auto* o = std::get_if<OffsetRecord>(&record)) {
    Group* g = group_of(o->key.group);
    auto key = std::make_pair(o->key.topic, o->key.partition);
    if (!o->value.has_value()) {
      if (g != nullptr) g->offsets.erase(key);
      return;
    }
    if (g == nullptr) g = &create_group(o->key.group, p);
    CommittedOffset& c = g->offsets[key];
    c.offset = o->value->offset;
    c.leader_epoch = o->value->leader_epoch;
    c.metadata = o->value->metadata;
    c.commit_timestamp_ms = o->value->commit_timestamp;
    return;
  }
  const auto& gr = std::get<GroupRecord>(record);
  if (!gr.value.has_value()) {
    groups_.erase(gr.key.group);
    return;
  }
  restore_group(p, *gr.value, gr.key.group);
}

void Coordinator::restore_group(std::int32_t p, const protocol::GroupMetadataValue& v,
                                const std::string& group_id) {
  Group* existing = group_of(group_id);
  Group& g = existing != nullptr ? *existing : create_group(group_id, p);
  std::int64_t now = clock_();
  g.generation = v.generation;
  g.protocol_type = v.protocol_type;
  g.protocol = v.protocol.value_or("");
  g.leader = v.leader.value_or("");
  g.state_timestamp_ms = v.current_state_timestamp;
  g.members.clear();
  g.static_members.clear();
  g.pending_members.clear();
  for (const auto& in : v.members) {
    Member m;
    m.member_id = in.member_id;
    m.instance_id = in.group_instance_id;
    m.client_id = in.client_id;
    m.client_host = in.client_host;
    m.session_timeout_ms = in.session_timeout;
    m.rebalance_timeout_ms = in.rebalance_timeout < 0 ? in.session_timeout : in.rebalance_timeout;
    m.protocol_type = v.protocol_type;
    m.protocols.push_back(Protocol{g.protocol, Buffer(BufferView(in.subscription))});
    m.assignment = Buffer(BufferView(in.assignment));
    // Members keep their session: those that heartbeat to this coordinator carry on.
    m.heartbeat_deadline_ms = now + m.session_timeout_ms;
    if (m.instance_id) g.static_members[*m.instance_id] = m.member_id;
    g.members.emplace(m.member_id, std::move(m));
  }
  g.state = g.members.empty() ? GroupState::kEmpty : GroupState::kStable;
  if (g.members.count(g.leader) == 0) g.leader.clear();
}

void Coordinator::write(std::int32_t p,
                        std::vector<std::pair<Buffer, std::optional<Buffer>>> records,
                        std::function<void(std::int16_t)> done) {
  Result<cluster::LocalPartition*> local = cluster_.local_partition(kOffsetsTopic, p);
  if (!local.has_value()) return done(write_error(local.error()));
  std::int64_t now = wall_now_ms();
  std::vector<protocol::RecordInput> inputs;
  inputs.reserve(records.size());
  for (auto& [key, value] : records) {
    protocol::RecordInput& in = inputs.emplace_back();
    in.key = std::move(key);
    in.value = std::move(value);
    in.timestamp = now;
  }
  protocol::RecordBatchOptions options;
  Result<Buffer> batch = protocol::build_record_batch(options, inputs);
  if (!batch.has_value()) return done(kcode(KErr::kUnknownServerError));
  (*local)->produce(SharedBuffer(std::move(*batch)), cluster::Acks::kAll,
                    [alive = alive_, done = std::move(done)](Result<cluster::ProduceResult> r) {
                      if (!*alive) return;
                      done(r.has_value() ? std::int16_t{0} : write_error(r.error()));
                    });
}

void Coordinator::write_group(Group& group, std::function<void(std::int16_t)> done) {
  group.state_timestamp_ms = wall_now_ms();
  Result<Buffer> value = encode_group_value(group.to_record());
  if (!value.has_value()) return done(kcode(KErr::kUnknownServerError));
  std::vector<std::pair<Buffer, std::optional<Buffer>>> records;
  records.emplace_back(encode_group_key(group.id), std::move(*value));
  write(group.partition, std::move(records), std::move(done));
}

std::string Coordinator::new_member_id(std::string_view prefix) {
  // Kafka: clientId (or group.instance.id) + "-" + a UUID. Unique per coordinator and, through
  // the random salt, across coordinators and restarts.
  std::uint64_t n = ++member_counter_;
  std::uint64_t mix = member_id_salt_ ^ (n * 0x9E3779B97F4A7C15ull);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx-%08llx", static_cast<unsigned long long>(mix),
                static_cast<unsigned long long>(n));
  return std::string(prefix) + "-" + buf;
}

}  // namespace mq::groups
