#include "cluster/partition.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "base/trace.h"
#include "cluster/ids.h"
#include "protocol/gen/error_codes.h"
#include "protocol/record_batch.h"
#include "storage/metadata.h"

namespace mq::cluster {

std::int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

PartitionGroup::PartitionGroup(GroupHost* host, RaftGroupOptions group_options,
                               PartitionOptions options, std::unique_ptr<GroupStorage> storage)
    : RaftGroup(host, std::move(group_options), std::move(storage)),
      options_(std::move(options)),
      producers_(options_.producer_state),
      sequence_gaps_(options_.producer_state.sequence_gap_retry_ms,
                     std::max<std::uint32_t>(options_.producer_state.producers_max, 1)) {}

PartitionGroup::~PartitionGroup() { abort_all(Status::unavailable("partition replica removed")); }

Status PartitionGroup::init() {
  MQ_ASSIGN_OR_RETURN(high_watermark_, next_offset_after(applied()));
  return load_producer_state();
}

std::int32_t PartitionGroup::leader_epoch() const { return epoch_of_term(term()); }

KafkaOffset PartitionGroup::log_start_offset() const {
  return storage().log().start_offset();
}

// The Kafka offset following entry `index` (the high watermark once it is applied).
Result<KafkaOffset> PartitionGroup::next_offset_after(LogIndex index) {
  auto it = next_offset_by_index_.find(index);
  if (it != next_offset_by_index_.end()) return it->second;
  storage::Log& log = storage().log();
  if (index < log.first_index()) return log.start_offset();  // at or below the snapshot
  if (index > log.last_index()) return log.next_offset();
  // A miss: entries stored before this replica opened its log (a restart, a replica re-opened
  // after a storage error) and applied now, usually thousands in a row. One read for the next
  // entries too: a read per applied entry (2,000-2,900 per Ready) held the event loop for
  // ~100 ms of CPU per Ready (tests/chaos/FINDINGS.md F2, "loop stalls"). The offsets read
  // ahead stay valid: a suffix truncation erases them (on_appended), a snapshot clears them.
  LoopWatch::Section section(host_->loop_watch(), "read_offsets");
  constexpr std::uint64_t kReadAheadEntries = 1024;
  constexpr std::uint64_t kReadAheadBytes = 1u << 20;
  const LogIndex hi = std::min(log.last_index() + 1, index + kReadAheadEntries);
  MQ_ASSIGN_OR_RETURN(auto read, log.read(index, hi, kReadAheadBytes));
  if (read.empty() || read.front().header.index != index) {
    return Status::internal("entry " + std::to_string(index.value()) + " missing");
  }
  for (const storage::ReadEntry& e : read) {
    next_offset_by_index_.emplace(e.header.index, e.header.last_offset() + 1);
  }
  return read.front().header.last_offset() + 1;
}

void PartitionGroup::complete(WaiterMap::iterator it, Result<ProduceResult> result) {
  auto done = std::move(it->second.done);
  produce_waiters_.erase(it);
  LoopWatch::Section section(host_->loop_watch(), "answer_produce");
  if (done) done(std::move(result));
}

void PartitionGroup::produce(SharedBuffer batch, Acks acks,
                             std::function<void(Result<ProduceResult>)> done) {
  if (failed()) return done(Status::unavailable(name() + ": replica failed: " + failure().message()));
  if (!is_leader()) {
    NodeId lead = leader();
    return done(Status::not_leader(name() + ": not the leader" +
                                   (lead == kNoNode ? std::string()
                                                    : "; leader is broker " +
                                                          std::to_string(broker_of(lead).value()))));
  }
  if (batch.size() > options_.batch_bytes_max) {
    return done(Status::invalid_argument("batch of " + std::to_string(batch.size()) +
                                         " bytes exceeds the limit of " +
                                         std::to_string(options_.batch_bytes_max)));
  }
  // Re-check the shape: a batch the followers cannot store would stop every replica. The CRC
  // was verified by the caller (the contract of LocalPartition::produce: a validated batch).
  auto view = protocol::RecordBatchView::parse_verified_earlier(batch.view());
  if (!view.has_value()) return done(view.error());
  if (view->bytes().size() != batch.size() || view->header().is_control()) {
    return done(Status::invalid_argument("produce: exactly one non-control record batch expected"));
  }
  if (produce_waiters_.size() >= options_.produce_waiters_max) {
    return done(Status::limit_exceeded(name() + ": too many produce requests in flight"));
  }
  std::optional<BatchIdentity> identity = read_batch_identity(batch.view());
  bool idempotent = identity.has_value() && identity->producer_id != kNoProducerId;
  if (idempotent && check_producer(*identity, acks, done)) return;
  Result<LogIndex> index = node().propose(std::move(batch));
  if (!index.has_value()) return done(index.error());
  trace::point(trace::Stage::kPropose, index->value(), id().value());
  if (on_proposed) on_proposed(this);
  if (idempotent) {
    pending_[identity->producer_id].push_back(PendingBatch{*index, term(), *identity});
    pending_by_index_[*index] = identity->producer_id;
    sequence_gaps_.forget(identity->producer_id);  // progress: a gap it had is closed
  }
  if (acks == Acks::kNone) {
    return done(ProduceResult{KafkaOffset(-1), -1, log_start_offset()});
  }
  park_waiter(*index, acks, KafkaOffset(-1), std::move(done));
}

void PartitionGroup::park_waiter(LogIndex index, Acks acks, KafkaOffset base_offset,
                                 std::function<void(Result<ProduceResult>)> done) {
  ProduceWaiter w;
  w.term = term();
  w.acks = acks;
  w.base_offset = base_offset;
  w.deadline_ms = steady_now_ms() + options_.produce_timeout_ms;
  w.done = std::move(done);
  produce_waiters_.emplace(index, std::move(w));
  host_->on_waiter(id());
}

// ---- Idempotent producer (KIP-98) ----

namespace {
ProduceResult refused(protocol::ErrorCode error, std::string message) {
  ProduceResult r;
  r.base_offset = KafkaOffset(-1);
  r.log_start_offset = KafkaOffset(-1);
  r.kafka_error = static_cast<std::int16_t>(error);
  r.error_message = std::move(message);
  return r;
}
}  // namespace

// The producer's committed entry extended by this leader's proposals not yet applied.
ProducerEntry PartitionGroup::leader_view(std::int64_t producer_id) const {
  const ProducerEntry* committed = producers_.find(producer_id);
  ProducerEntry view = committed != nullptr ? *committed : ProducerEntry{};
  auto it = pending_.find(producer_id);
  if (it == pending_.end()) return view;
  for (const PendingBatch& p : it->second) {
    view.extend(p.batch.epoch,
                ProducerBatch{p.batch.first_seq, p.batch.last_seq, KafkaOffset(-1),
                              KafkaOffset(-1), p.index},
                p.batch.max_timestamp_ms);
  }
  return view;
}

bool PartitionGroup::check_producer(const BatchIdentity& batch, Acks acks,
                                    std::function<void(Result<ProduceResult>)>& done) {
  if (batch.transactional) {
    done(refused(protocol::ErrorCode::kInvalidRecord,
                 "transactional batches are not supported (raftmq has no transactions)"));
    return true;
  }
  if (batch.epoch < 0 || batch.first_seq < 0) {
    done(refused(protocol::ErrorCode::kInvalidRecord,
                 "a batch with a producer id needs a producer epoch and a base sequence"));
    return true;
  }
  ProducerEntry view = leader_view(batch.producer_id);
  bool known = view.epoch != kNoProducerEpoch;
  SequenceCheck check = check_sequence(known ? &view : nullptr, batch);
  switch (check.verdict) {
    case SequenceVerdict::kAppend:
      return false;
    case SequenceVerdict::kOutOfOrder:
      done(refused(protocol::ErrorCode::kOutOfOrderSequenceNumber, name() + ": " + check.message));
      return true;
    case SequenceVerdict::kSequenceGap:
      answer_sequence_gap(batch, check, done);
      return true;
    case SequenceVerdict::kFencedEpoch:
      // Produce answers INVALID_PRODUCER_EPOCH at every version (KIP-588 keeps
      // PRODUCER_FENCED for the transactional APIs).
      done(refused(protocol::ErrorCode::kInvalidProducerEpoch, name() + ": " + check.message));
      return true;
    case SequenceVerdict::kDuplicate:
      break;
  }
  const ProducerBatch& original = check.duplicate_of;
  if (original.index <= applied()) {
    // Committed: the original offsets, nothing written (Kafka answers a duplicate this way).
    done(ProduceResult{original.base_offset, -1, log_start_offset()});
    return true;
  }
  // Still in flight (proposed by this leader, not yet committed): answer with its outcome.
  if (acks == Acks::kNone) {
    done(ProduceResult{KafkaOffset(-1), -1, log_start_offset()});
    return true;
  }
  KafkaOffset base{-1};
  auto next = next_offset_by_index_.find(original.index);
  if (next != next_offset_by_index_.end()) base = next->second - (batch.last_offset_delta + 1);
  park_waiter(original.index, acks, base, std::move(done));
  return true;
}

// A batch ahead of the producer's expected sequence (docs/cluster.md, "Idempotent producer";
// FINDINGS.md F9). Kafka answers OUT_OF_ORDER_SEQUENCE_NUMBER; while the producer's gap window
// is open this leader answers NOT_ENOUGH_REPLICAS instead: retriable and "not persisted" for
// librdkafka (rd_kafka_handle_Produce_error), the Java client and kafkajs, so the client
// re-queues the batch behind the missing one without librdkafka's producer-wide epoch bump.
void PartitionGroup::answer_sequence_gap(const BatchIdentity& batch, const SequenceCheck& check,
                                         std::function<void(Result<ProduceResult>)>& done) {
  std::int64_t now = options_.steady_clock_ms ? options_.steady_clock_ms() : steady_now_ms();
  bool was_open = sequence_gaps_.tracked(batch.producer_id);
  if (sequence_gaps_.retriable(batch.producer_id, now)) {
    // Logged once per window (rare: a leader change under pipelined requests).
    if (!was_open) {
      host_->log(name() + ": " + check.message +
                 ": sequence gap, answered NOT_ENOUGH_REPLICAS for up to " +
                 std::to_string(sequence_gaps_.window_ms()) + " ms");
    }
    done(refused(protocol::ErrorCode::kNotEnoughReplicas,
                 name() + ": " + check.message + " (sequence gap: retry after sequence " +
                     std::to_string(check.expected_seq) + ")"));
    return;
  }
  if (was_open) {  // a real gap: every answer from now on is Kafka's
    host_->log(name() + ": " + check.message +
               ": sequence gap still open after the window: OUT_OF_ORDER_SEQUENCE_NUMBER");
  }
  done(refused(protocol::ErrorCode::kOutOfOrderSequenceNumber, name() + ": " + check.message));
}

void PartitionGroup::apply_producer_state(const raft::Entry& entry, KafkaOffset next_offset) {
  std::optional<BatchIdentity> batch;
  if (entry.type == raft::EntryType::kNormal) batch = read_batch_identity(entry.payload.view());
  KafkaOffset base{-1};
  if (batch) base = next_offset - (batch->last_offset_delta + 1);
  producers_.apply(entry.index, batch, base);
  auto pending = pending_by_index_.find(entry.index);
  if (pending != pending_by_index_.end()) {
    auto& queue = pending_[pending->second];
    if (queue.empty() || queue.front().index != entry.index || queue.front().term != entry.term) {
      clear_pending();  // not our proposal after all: leadership changed
      return;
    }
  }
  forget_pending(entry.index);
}

void PartitionGroup::forget_pending(LogIndex up_to) {
  while (!pending_by_index_.empty() && pending_by_index_.begin()->first <= up_to) {
    auto it = pending_by_index_.begin();
    auto queue = pending_.find(it->second);
    if (queue != pending_.end()) {
      while (!queue->second.empty() && queue->second.front().index <= up_to) {
        queue->second.pop_front();
      }
      if (queue->second.empty()) pending_.erase(queue);
    }
    pending_by_index_.erase(it);
  }
}

void PartitionGroup::clear_pending() {
  pending_.clear();
  pending_by_index_.clear();
  sequence_gaps_.clear();  // leadership changed: a new leader opens new windows
}

Status PartitionGroup::load_producer_state() {
  GroupStorage& gs = storage();
  producers_ = ProducerStateTable(options_.producer_state);
  std::string path = gs.options().directory + "/" + kProducerStateFileName;
  MQ_ASSIGN_OR_RETURN(auto bytes, storage::read_whole_file(gs.file_system(), path,
                                                           kProducerStateFileBytesMax));
  producer_state_on_disk_ = bytes.has_value();
  if (bytes.has_value()) {
    auto decoded = ProducerStateTable::decode(bytes->view(), options_.producer_state);
    if (decoded.has_value()) {
      producers_ = std::move(decoded).value();
    } else {
      // Derived data: rebuild from the log rather than refuse to start.
      host_->log(name() + ": " + decoded.error().to_string() + "; rebuilding from the log");
    }
  }
  discard_producer_state_ahead_of_log();
  // Re-apply the committed entries above the table (up to the restart point; Raft applies
  // the rest). Entries below the log start are gone: their producers are forgotten, as
  // Kafka forgets producers whose batches were all removed.
  storage::Log& log = gs.log();
  if (producers_.applied_index() + 1 < log.first_index()) producers_.reset(log.first_index() - 1);
  LogIndex from = producers_.applied_index() + 1;
  LogIndex hi = std::min(applied(), log.last_index()) + 1;
  while (from < hi) {  // bounded: each round consumes at least one entry
    MQ_ASSIGN_OR_RETURN(auto entries, log.read(from, hi, 1u << 20));
    if (entries.empty()) break;
    for (const storage::ReadEntry& e : entries) {
      std::optional<BatchIdentity> batch;
      if (e.header.kind == storage::EntryKind::kRecordBatch) {
        batch = read_batch_identity(e.payload.view());
      }
      producers_.apply(e.header.index, batch, e.header.base_offset);
      from = e.header.index + 1;
    }
  }
  return Status::ok();
}

// The table covers the committed prefix up to its applied index, and Raft re-applies from its
// restart point, min(persisted commit, log end) (GroupStorage::restart_applied). A table
// applied beyond that point was computed from entries this log no longer holds (its tail was
// lost: a damaged or truncated segment) or holds but Raft will deliver again: apply() would
// skip the re-delivered indexes, whose content may differ (a new leader that never had the
// lost entries fills those indexes with others, e.g. a client's retry of a batch), so the
// table would miss batches the log holds and accept their retries as new (issue 6, chaos
// F9). Such a table is not trusted: it is rebuilt from the whole log below the restart point.
// A Ready is applied only once its entries are durable (RaftGroup parks it), so the persisted
// table never runs ahead of the durable log: this only happens when the disk lost entries.
void PartitionGroup::discard_producer_state_ahead_of_log() {
  if (producers_.applied_index() <= applied()) return;
  host_->log(name() + ": producer state is as of entry " +
             std::to_string(producers_.applied_index().value()) +
             " but the log restarts at entry " + std::to_string(applied().value()) +
             " (entries were lost); rebuilding it from the log");
  producers_ = ProducerStateTable(options_.producer_state);
}

Status PartitionGroup::on_checkpoint(LogIndex applied_index) {
  (void)applied_index;  // the table is as of producers_.applied_index() (== applied)
  if (producers_.size() == 0 && !producer_state_on_disk_) return Status::ok();
  Buffer bytes = producers_.encode();
  const BufferView pieces[1] = {bytes.view()};
  MQ_RETURN_IF_ERROR(storage::write_file_atomically(storage().file_system(),
                                                    storage().options().directory,
                                                    kProducerStateFileName, pieces));
  producer_state_on_disk_ = true;
  return Status::ok();
}

void PartitionGroup::on_appended(const std::vector<AppendedEntry>& appended) {
  if (appended.empty()) return;
  LogIndex first = appended.front().index;
  // A suffix truncation (§5.3): forget offsets from `first` on.
  next_offset_by_index_.erase(next_offset_by_index_.lower_bound(first), next_offset_by_index_.end());
  for (const AppendedEntry& a : appended) {
    next_offset_by_index_[a.index] = a.next_offset;
    auto [it, end] = produce_waiters_.equal_range(a.index);
    while (it != end) {
      auto next = std::next(it);
      if (it->second.term == a.term) {
        it->second.base_offset = a.base_offset;
      } else {
        complete(it, Status::not_leader(name() + ": entry replaced by a newer leader"));
      }
      it = next;
    }
  }
  fail_truncated_waiters(appended.back());
}

// An append at `first` deletes the log's suffix from `first` on (§5.3), also the entries past
// the last appended one. A waiter parked there by an older term's leader would otherwise wait
// until a later entry is applied at its index (or the produce timeout): answer it now, so the
// client retries at once. Proposals of the appended entries' own term beyond them (this
// leader's, not yet persisted) stay parked. Terms never decrease along a Raft log, so no entry
// of an older term can follow `last` once it is stored.
void PartitionGroup::fail_truncated_waiters(const AppendedEntry& last) {
  for (auto it = produce_waiters_.upper_bound(last.index); it != produce_waiters_.end();) {
    auto next = std::next(it);
    if (it->second.term < last.term) {
      complete(it, Status::not_leader(name() + ": entry removed by a newer leader"));
    }
    it = next;
  }
}

void PartitionGroup::on_local_durable(LogIndex index) {
  if (!is_raft_leader()) return;
  for (auto it = produce_waiters_.begin(); it != produce_waiters_.end() && it->first <= index;) {
    auto next = std::next(it);
    if (it->second.acks == Acks::kLeader && it->second.base_offset >= KafkaOffset(0) &&
        it->second.term == term()) {
      complete(it, ProduceResult{it->second.base_offset, -1, log_start_offset()});
    }
    it = next;
  }
}

void PartitionGroup::on_apply(const raft::Entry& entry) {
  trace::point(trace::Stage::kApply, entry.index.value());
  auto hw = next_offset_after(entry.index);
  if (hw.has_value()) {
    high_watermark_ = std::max(high_watermark_, *hw);
    apply_producer_state(entry, *hw);
  } else {
    host_->log(name() + ": cannot find offsets of entry " +
               std::to_string(entry.index.value()) + ": " + hw.error().to_string());
  }
  next_offset_by_index_.erase(next_offset_by_index_.begin(),
                              next_offset_by_index_.upper_bound(entry.index));
  if (is_raft_leader() && entry.term == term()) leader_ready_ = true;
  // Waiters at or below this index are decided now.
  for (auto it = produce_waiters_.begin(); it != produce_waiters_.end() && it->first <= entry.index;) {
    auto next = std::next(it);
    if (it->first == entry.index && it->second.term == entry.term &&
        it->second.base_offset >= KafkaOffset(0)) {
      complete(it, ProduceResult{it->second.base_offset, -1, log_start_offset()});
    } else {
      complete(it, Status::not_leader(name() + ": entry replaced by a newer leader"));
    }
    it = next;
  }
}

// Parked fetches wake once per Ready's applied entries, not per entry: a long-poll woken by
// the first of several entries committed together would answer with that one alone and the
// consumer would need another round trip for the rest.
void PartitionGroup::on_applied() { notify_fetchers(); }

void PartitionGroup::on_soft_state(const raft::SoftState& soft_state) {
  // The leader serves the consumers: its log keeps written parts in the read cache
  // (storage/read_cache.h); a follower's would only take the leaders' space.
  storage().log().set_read_cache(soft_state.role == raft::Role::kLeader);
  if (soft_state.role != raft::Role::kLeader) {
    leader_ready_ = false;
    clear_pending();
  }
}

void PartitionGroup::on_snapshot_installed(const raft::Snapshot& snapshot) {
  // The log restarts after the snapshot: producers whose batches were all below it are
  // forgotten (as Kafka drops producers below the log start); later entries rebuild the rest.
  producers_.reset(snapshot.meta.index);
  clear_pending();
  next_offset_by_index_.clear();
  high_watermark_ = std::max(high_watermark_, storage().log().start_offset());
  for (auto it = produce_waiters_.begin(); it != produce_waiters_.end();) {
    auto next = std::next(it);
    complete(it, Status::not_leader(name() + ": replaced by a snapshot"));
    it = next;
  }
}

void PartitionGroup::on_failed(const Status& status) {
  leader_ready_ = false;
  abort_all(status);
}

void PartitionGroup::abort_all(const Status& status) {
  while (!produce_waiters_.empty()) complete(produce_waiters_.begin(), status);
  std::vector<FetchWaiter> waiters;
  waiters.swap(fetch_waiters_);
  for (FetchWaiter& w : waiters) w.ready();
}

void PartitionGroup::sweep(std::int64_t now_ms) {
  for (auto it = produce_waiters_.begin(); it != produce_waiters_.end();) {
    auto next = std::next(it);
    if (it->second.deadline_ms <= now_ms) {
      complete(it, Status::timeout(name() + ": not committed within " +
                                   std::to_string(options_.produce_timeout_ms) + " ms"));
    }
    it = next;
  }
  std::vector<FetchWaiter> due;
  for (auto it = fetch_waiters_.begin(); it != fetch_waiters_.end();) {
    if (it->deadline_ms <= now_ms) {
      due.push_back(std::move(*it));
      it = fetch_waiters_.erase(it);
    } else {
      ++it;
    }
  }
  LoopWatch::Section section(host_->loop_watch(), "wake_fetchers");
  for (FetchWaiter& w : due) w.ready();
}

void PartitionGroup::wait_for_data(KafkaOffset offset, std::int64_t deadline_ms,
                                   std::function<void()> ready) {
  if (high_watermark_ > offset || deadline_ms <= steady_now_ms() || failed() ||
      fetch_waiters_.size() >= options_.fetch_waiters_max) {
    ready();  // data is there, the deadline passed, or no room to park: answer now
    return;
  }
  fetch_waiters_.push_back(FetchWaiter{offset, deadline_ms, std::move(ready)});
  host_->on_waiter(id());
}

void PartitionGroup::notify_fetchers() {
  if (fetch_waiters_.empty()) return;
  std::vector<FetchWaiter> due;
  for (auto it = fetch_waiters_.begin(); it != fetch_waiters_.end();) {
    if (high_watermark_ > it->offset) {
      due.push_back(std::move(*it));
      it = fetch_waiters_.erase(it);
    } else {
      ++it;
    }
  }
  LoopWatch::Section section(host_->loop_watch(), "wake_fetchers");
  for (FetchWaiter& w : due) w.ready();
}

Status PartitionGroup::append_chunks(const storage::FileSlice& slice, FetchResult* out,
                                     std::uint64_t* file_end) {
  for (const storage::FileSlice::Extent& e : slice.extents) {
    RecordsChunk chunk;
    chunk.length = e.length;
    if (!e.bytes.empty()) {
      chunk.bytes = e.bytes;  // still in memory: no read of the file
      out->records.push_back(std::move(chunk));
      continue;
    }
    *file_end = e.position + e.length;
    auto pieces = read_ahead_.take(slice, e.position, e.length);
    if (!pieces && read_ahead_.restart_at(slice, e.position)) {
      pieces = read_ahead_.take(slice, e.position, e.length);
    }
    if (pieces) {
      for (SharedBuffer& piece : *pieces) {  // read ahead into memory (fetch_read_ahead.h)
        RecordsChunk part;
        part.length = piece.size();
        part.bytes = std::move(piece);
        out->records.push_back(std::move(part));
      }
      continue;
    }
    if (slice.fd >= 0) {
      chunk.fd = slice.fd;
      chunk.file_offset = e.position;
      chunk.keep_alive = slice.file;
    } else {
      Buffer bytes(e.length);
      MQ_RETURN_IF_ERROR(storage::read_exact(*slice.file, e.position,
                                             std::span<std::uint8_t>(bytes.data(), bytes.size()),
                                             name() + " fetch"));
      chunk.bytes = SharedBuffer(std::move(bytes));
    }
    out->records.push_back(std::move(chunk));
  }
  out->bytes += slice.total_bytes;
  return Status::ok();
}

Result<FetchResult> PartitionGroup::fetch(KafkaOffset offset, std::uint64_t max_bytes) {
  FetchResult result;
  result.high_watermark = high_watermark_;
  result.last_stable_offset = high_watermark_;
  result.log_start_offset = log_start_offset();
  storage::Log& log = storage().log();
  // Out of range only below the log start or beyond the log end, as in Kafka. Between the high
  // watermark and the log end the answer is empty: a new leader's high watermark can lag the
  // previous leader's until it applies an entry of its own term, and a consumer already past it
  // must wait, not be reset (with auto.offset.reset=latest it would skip committed data).
  const KafkaOffset log_end = std::max(high_watermark_, log.next_offset());
  if (offset < result.log_start_offset || offset > log_end) {
    return Status::out_of_range(name() + ": offset " + std::to_string(offset.value()) +
                                " outside [" + std::to_string(result.log_start_offset.value()) +
                                ", " + std::to_string(log_end.value()) + "]");
  }
  LogIndex hi = applied() + 1;  // committed and applied entries only
  KafkaOffset position = offset;
  // The last slice with extents on the file (not in the write-behind buffer), and the end of
  // its last such extent: where the read-ahead continues.
  storage::FileSlice from_file;
  std::uint64_t file_end = 0;
  // Bounded by the batches below the high watermark; each round consumes at least one.
  while (position < high_watermark_) {
    std::uint64_t room = max_bytes > result.bytes ? max_bytes - result.bytes : 0;
    if (room == 0 && !result.records.empty()) break;
    MQ_ASSIGN_OR_RETURN(storage::FileSlice slice, log.file_slice(position, hi, std::max<std::uint64_t>(room, 1)));
    if (slice.extents.empty()) break;
    // Only the first batch of a response may exceed max_bytes (KIP-74).
    if (!result.records.empty() && slice.total_bytes > room) break;
    std::uint64_t end = 0;
    MQ_RETURN_IF_ERROR(append_chunks(slice, &result, &end));
    if (end > 0) {
      from_file.file = slice.file;
      from_file.generation = slice.generation;
      from_file.written_end = slice.written_end;
      file_end = end;
    }
    position = slice.last_offset + 1;
  }
  if (file_end > 0) {
    read_ahead_.advance(from_file, file_end);
  } else if (!result.records.empty()) {
    read_ahead_.clear();  // reading from memory: nothing to read ahead
  }
  static const std::uint64_t readahead_bytes = fetch_readahead_bytes();
  static const bool drop_behind = fetch_drop_behind_enabled();
  if (drop_behind) drop_behind_.after_fetch(result);
  // The kernel's read-ahead only where the memory read-ahead has no windows (it is off, out of
  // blocks, or the file has no direct reads): both would read the same bytes from the disk.
  if (read_ahead_.windows() == 0) read_ahead_after_last_chunk(result, readahead_bytes);
  return result;
}

std::uint64_t fetch_readahead_bytes() {
  constexpr std::uint64_t kDefaultKib = 4096, kMaxKib = 1u << 20;
  const char* v = std::getenv("RAFTMQ_FETCH_READAHEAD_KIB");
  if (v == nullptr || *v == '\0') return kDefaultKib * 1024;
  char* end = nullptr;
  unsigned long long kib = std::strtoull(v, &end, 10);
  if (*end != '\0' || v[0] == '-') {
    std::fprintf(stderr, "RAFTMQ_FETCH_READAHEAD_KIB=%s: not a number of KiB; %llu KiB used\n", v,
                 static_cast<unsigned long long>(kDefaultKib));
    return kDefaultKib * 1024;
  }
  return std::min<std::uint64_t>(kib, kMaxKib) * 1024;
}

void read_ahead_after_last_chunk(const FetchResult& result, std::uint64_t bytes) {
  if (bytes == 0 || result.records.empty() || result.records.back().fd < 0) return;
  const RecordsChunk& last = result.records.back();
  // Advice only: an error (say, a file system without read-ahead) changes nothing else.
  (void)::posix_fadvise(last.fd, static_cast<off_t>(last.file_offset + last.length),
                        static_cast<off_t>(bytes), POSIX_FADV_WILLNEED);
}

bool fetch_drop_behind_enabled() {
  const char* v = std::getenv("RAFTMQ_FETCH_DROP_BEHIND");
  if (v == nullptr || *v == '\0' || std::string_view(v) == "1") return true;
  if (std::string_view(v) == "0") return false;
  std::fprintf(stderr, "RAFTMQ_FETCH_DROP_BEHIND=%s: 0 or 1 expected; 1 used\n", v);
  return true;
}

void FetchDropBehind::after_fetch(const FetchResult& result) {
  if (result.records.empty() || result.records.front().fd < 0) return;
  const RecordsChunk& first = result.records.front();
  if (first.keep_alive.get() != file_) {
    file_ = first.keep_alive.get();
    dropped_until_ = 0;
  }
  constexpr std::uint64_t kPage = 4096, kFolioMax = 2u << 20;
  const std::uint64_t until = first.file_offset & ~(kPage - 1);
  if (until <= dropped_until_) return;
  const std::uint64_t from = dropped_until_ & ~(kFolioMax - 1);
  // Advice only: an error (a file system that keeps its pages) changes nothing else.
  (void)::posix_fadvise(first.fd, static_cast<off_t>(from), static_cast<off_t>(until - from),
                        POSIX_FADV_DONTNEED);
  dropped_until_ = until;
}

Result<std::optional<KafkaOffset>> PartitionGroup::offset_for_timestamp(std::int64_t timestamp_ms) {
  if (timestamp_ms == -2) return std::optional<KafkaOffset>(log_start_offset());  // EARLIEST
  if (timestamp_ms == -1) return std::optional<KafkaOffset>(high_watermark_);     // LATEST
  MQ_ASSIGN_OR_RETURN(auto ref, storage().log().lookup_timestamp(timestamp_ms));
  if (!ref || ref->index > applied()) return std::optional<KafkaOffset>();
  // ListOffsets wants the first *record* with timestamp >= the target (KIP-79), not the
  // batch: decode the batch the time index found and pick the record.
  KafkaOffset found = ref->base_offset;
  MQ_ASSIGN_OR_RETURN(auto read, storage().log().read(ref->index, ref->index + 1, 1));
  if (!read.empty()) {
    auto view = protocol::RecordBatchView::parse(read.front().payload.view());
    if (view.has_value() && !view->header().is_control() && !view->header().is_log_append_time()) {
      auto records = view->decode_records();
      if (records.has_value()) {
        for (const protocol::Record& r : records->records) {
          if (view->header().base_timestamp + r.timestamp_delta >= timestamp_ms) {
            found = ref->base_offset + r.offset_delta;
            break;
          }
        }
      }
    }
  }
  return std::optional<KafkaOffset>(std::max(found, log_start_offset()));
}

Result<OffsetForEpochResult> PartitionGroup::end_offset_for_epoch(std::int32_t leader_epoch) {
  // KIP-101/KIP-279: the end offset of the largest epoch <= the requested one, i.e. the start
  // offset of the first entry of a larger epoch, or the log end when there is none. Epochs
  // are Raft terms, non-decreasing along the log, so a binary search over indexes finds it.
  storage::Log& log = storage().log();
  if (leader_epoch < 0) return OffsetForEpochResult{-1, KafkaOffset(-1)};
  Term wanted(static_cast<std::uint64_t>(leader_epoch));
  LogIndex lo = log.first_index();
  LogIndex hi = log.last_index() + 1;  // first index with term > wanted, in [lo, hi]
  if (lo >= hi) return OffsetForEpochResult{-1, KafkaOffset(-1)};
  while (lo < hi) {
    LogIndex mid = lo + (hi - lo) / 2;
    MQ_ASSIGN_OR_RETURN(Term t, log.term(mid));
    if (t > wanted) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  if (lo == log.first_index()) return OffsetForEpochResult{-1, KafkaOffset(-1)};
  MQ_ASSIGN_OR_RETURN(Term found, log.term(lo - 1));
  OffsetForEpochResult result;
  result.leader_epoch = epoch_of_term(found);
  if (lo > log.last_index()) {
    result.end_offset = log.next_offset();
  } else {
    MQ_ASSIGN_OR_RETURN(auto read, log.read(lo, lo + 1, 1));
    if (read.empty()) return Status::internal("entry missing");
    result.end_offset = read.front().header.base_offset;
  }
  return result;
}

Result<bool> PartitionGroup::apply_retention(std::uint64_t bytes_max, std::int64_t age_ms_max) {
  storage::RetentionPolicy policy;
  policy.bytes_max = bytes_max;
  policy.age_ms_max = age_ms_max;
  policy.removable_below = applied() + 1;  // only committed (and applied) data goes
  return storage().apply_retention(policy, node().conf_state());
}

Result<std::optional<CompactionStats>> PartitionGroup::compact(std::int64_t now_ms,
                                                              const CompactionOptions& options) {
  if (!started() || failed()) return std::optional<CompactionStats>();
  LogIndex applied_now = applied();
  if (applied_now == compacted_at_applied_) return std::optional<CompactionStats>();
  MQ_ASSIGN_OR_RETURN(CompactionStats stats,
                      compact_log(storage().log(), applied_now, now_ms, options));
  // A run cut short by its rewrite budget goes on at the next one even with nothing new.
  if (stats.segments_rewritten < options.segments_per_run_max) compacted_at_applied_ = applied_now;
  if (options.trim_empty_prefix) {
    MQ_ASSIGN_OR_RETURN(LogIndex live, first_live_segment(storage().log(), applied_now));
    storage::RetentionPolicy policy;
    policy.bytes_max = 0;          // every whole closed segment ...
    policy.removable_below = live;  // ... before the first one still holding a record
    MQ_ASSIGN_OR_RETURN(bool trimmed, storage().apply_retention(policy, node().conf_state()));
    stats.prefix_trimmed = trimmed;
  }
  return std::optional<CompactionStats>(stats);
}

PartitionStatus PartitionGroup::status() const {
  PartitionStatus s;
  s.topic = options_.topic;
  s.partition = options_.partition;
  s.group = id();
  s.failed = failed();
  s.high_watermark = high_watermark_;
  s.log_start_offset = log_start_offset();
  s.log_end_offset = storage().log().next_offset();
  s.is_leader = is_leader();
  if (!started()) return s;
  raft::NodeStatus ns = node().status();
  s.term = ns.hard_state.term;
  s.commit_index = ns.hard_state.commit;
  s.applied_index = ns.applied;
  s.last_index = ns.last_index;
  if (ns.soft_state.leader != kNoNode) s.leader = broker_of(ns.soft_state.leader);
  for (NodeId v : ns.conf_state.voters) s.voters.push_back(broker_of(v));
  for (NodeId l : ns.conf_state.learners) s.learners.push_back(broker_of(l));
  for (const auto& [node, progress] : ns.progress) {
    ReplicaLag lag;
    lag.broker = broker_of(node);
    lag.match = progress.match;
    lag.lag_entries = ns.last_index > progress.match ? ns.last_index - progress.match : 0;
    lag.learner = progress.learner;
    s.replicas.push_back(lag);
  }
  return s;
}

}  // namespace mq::cluster
