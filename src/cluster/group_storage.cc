#include "cluster/group_storage.h"

#include <algorithm>

#include "base/le_codec.h"
#include "cluster/ids.h"
#include "protocol/record_batch.h"
#include "storage/metadata.h"

namespace mq::cluster {
namespace {

constexpr std::uint16_t kConfVersion = 1;
constexpr std::uint32_t kConfMembersMax = 1024;  // bounds a corrupt count
constexpr const char* kConfFileName = "conf";

void put_ids(Buffer& out, const std::vector<NodeId>& ids) {
  le::put_u32(out, static_cast<std::uint32_t>(ids.size()));
  for (NodeId id : ids) le::put_u64(out, id.value());
}

bool read_ids(le::LeReader& r, std::vector<NodeId>* ids) {
  std::uint32_t n = 0;
  if (!r.read_u32(&n) || n > kConfMembersMax || n > r.remaining() / 8) return false;
  ids->clear();
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint64_t v = 0;
    if (!r.read_u64(&v)) return false;
    ids->push_back(NodeId(v));
  }
  return true;
}

}  // namespace

Buffer encode_conf_state(const raft::ConfState& cs) {
  Buffer out;
  le::put_u16(out, kConfVersion);
  put_ids(out, cs.voters);
  put_ids(out, cs.voters_outgoing);
  put_ids(out, cs.learners);
  put_ids(out, cs.learners_next);
  le::put_u8(out, cs.auto_leave ? 1 : 0);
  return out;
}

Result<raft::ConfState> decode_conf_state(BufferView bytes) {
  le::LeReader r(bytes);
  std::uint16_t version = 0;
  if (!r.read_u16(&version)) return Status::corruption("conf state: truncated");
  if (version != kConfVersion) {
    return Status::corruption("conf state: unsupported version " + std::to_string(version));
  }
  raft::ConfState cs;
  std::uint8_t auto_leave = 0;
  if (!read_ids(r, &cs.voters) || !read_ids(r, &cs.voters_outgoing) ||
      !read_ids(r, &cs.learners) || !read_ids(r, &cs.learners_next) || !r.read_u8(&auto_leave) ||
      auto_leave > 1 || !r.at_end()) {
    return Status::corruption("conf state: malformed");
  }
  cs.auto_leave = auto_leave == 1;
  return cs;
}

Result<std::unique_ptr<GroupStorage>> GroupStorage::open(storage::FileSystem* fs,
                                                         storage::Clock* clock,
                                                         storage::Flusher* flusher,
                                                         GroupStorageOptions options) {
  MQ_RETURN_IF_ERROR(fs->create_dirs(options.directory));
  storage::LogOptions log_options;
  log_options.directory = options.directory;
  log_options.name = options.name;
  log_options.segment_size_bytes_max = options.segment_size_bytes_max;
  log_options.entry_payload_bytes_max = options.entry_payload_bytes_max;
  log_options.zero_fill_window_bytes = options.zero_fill_window_bytes;
  log_options.direct_write_depth = options.direct_write_depth;
  log_options.on_damaged_tail_cut = options.on_damaged_tail_cut;
  std::unique_ptr<GroupStorage> gs(new GroupStorage(fs, std::move(options)));
  if (gs->options_.sync_ledger == nullptr) {
    log_options.on_durable = gs->options_.on_durable;
  } else {
    // Flusher thread, after the fdatasync and before the host (and so the Raft core) learns
    // the new durable index: the ledger's record is in the page cache before any
    // acknowledgement can leave (storage/sync_ledger.h). A failed ledger write is counted by
    // the ledger and does not hold the acknowledgement back (it only weakens the check).
    log_options.on_durable = [self = gs.get()](LogIndex durable) {
      (void)self->record_synced_end(false);
      if (self->options_.on_durable) self->options_.on_durable(durable);
    };
  }
  MQ_ASSIGN_OR_RETURN(gs->log_, storage::Log::open(fs, clock, log_options, flusher));
  MQ_RETURN_IF_ERROR(gs->load());
  MQ_RETURN_IF_ERROR(gs->check_sync_ledger());
  return gs;
}

Status GroupStorage::record_synced_end(bool durable) {
  if (options_.sync_ledger == nullptr) return Status::ok();
  return options_.sync_ledger->record_synced(
      options_.sync_ledger_key,
      [this] { return std::min(log_->synced_index(), LogIndex(ledger_clamp_.load())); },
      durable);
}

Status GroupStorage::check_sync_ledger() {
  storage::SyncLedger* ledger = options_.sync_ledger;
  if (ledger == nullptr) return Status::ok();
  // A record also counts for a brand-new directory: the group's earlier replica on this
  // broker (moved away and back, or deleted while the group still counted it as a voter) may
  // have acknowledged entries up to it, and an empty replica voting before it holds them again
  // could elect a candidate that lacks a committed entry (§5.4.3). The record goes
  // only with the group (a deleted topic's group id is never reused).
  auto recorded = ledger->synced_end(options_.sync_ledger_key);
  // Below the recorded value the log lost entries it had synced: only a fault does that (a
  // crash loses unsynced entries only, and the ledger never records unsynced ones).
  if (recorded && last_index() < *recorded) lost_synced_end_ = *recorded;
  return Status::ok();
}

// GCC 12 reports a false -Wmaybe-uninitialized on std::optional<StoredSnapshot> (vectors
// inside an optional inside a Result) at -O2.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
Status GroupStorage::load() {
  const std::string& dir = options_.directory;
  MQ_ASSIGN_OR_RETURN(auto hs, storage::load_hard_state(fs_, dir));
  if (hs) hard_state_ = raft::HardState{hs->term, hs->vote, hs->commit};
  MQ_ASSIGN_OR_RETURN(auto snap, storage::load_snapshot(fs_, dir, options_.snapshot_data_bytes_max));
  snapshot_index_ = log_->first_index() - 1;
  snapshot_term_ = Term(0);
  snapshot_conf_ = options_.bootstrap;
  if (snap) {
    MQ_ASSIGN_OR_RETURN(snapshot_conf_, decode_conf_state(snap->config.view()));
    snapshot_index_ = snap->index;
    snapshot_term_ = snap->term;
    snapshot_data_ = SharedBuffer(std::move(snap->data));
    if (snapshot_index_ + 1 < log_->first_index()) recover_compaction_point();
    if (snapshot_index_ > log_->last_index()) {
      // A snapshot installed from the leader whose log reset did not survive: restart after it.
      MQ_RETURN_IF_ERROR(log_->reset(snapshot_index_ + 1, log_->next_offset()));
    }
  } else if (log_->first_index() > LogIndex(1)) {
    recover_compaction_point();
  }
  conf_state_ = snapshot_conf_;
  conf_index_ = snapshot_index_;
  if (options_.format == PayloadFormat::kKafkaBatches) {
    MQ_ASSIGN_OR_RETURN(auto conf, storage::read_whole_file(
                                       fs_, storage::join_path(dir, kConfFileName), 1u << 20));
    if (conf) {
      if (conf->size() < 8) return Status::corruption(options_.name + ": conf file truncated");
      LogIndex index(le::decode_u64(conf->data()));
      MQ_ASSIGN_OR_RETURN(raft::ConfState cs, decode_conf_state(conf->view(8, conf->size() - 8)));
      if (index > snapshot_index_) {
        conf_state_ = std::move(cs);
        conf_index_ = index;
      }
    }
  }
  return Status::ok();
}

#pragma GCC diagnostic pop

void GroupStorage::recover_compaction_point() {
  // A crash fell between retention removing segments and the snapshot file recording the new
  // compaction point. The term of the removed entry is lost; the first retained entry's term
  // stands in for it. At worst a follower's consistency check on that index fails and the
  // follower is sent the (log-start) snapshot again: slower, never unsafe, because a
  // partition snapshot carries no state beyond the log start offset.
  snapshot_index_ = log_->first_index() - 1;
  auto t = log_->last_index() < log_->first_index() ? Result<Term>(Term(0)) : log_->term(log_->first_index());
  snapshot_term_ = t.has_value() ? *t : Term(0);
}

LogIndex GroupStorage::restart_applied() const {
  if (options_.format == PayloadFormat::kRaw) return snapshot_index_;  // state is in memory
  LogIndex applied = std::max({hard_state_.commit, conf_index_, snapshot_index_});
  return std::min(applied, log_->last_index() < snapshot_index_ ? snapshot_index_
                                                                : log_->last_index());
}

std::pair<raft::HardState, raft::ConfState> GroupStorage::initial_state() const {
  raft::HardState hs = hard_state_;
  hs.commit = restart_applied();
  return {hs, conf_state_};
}

LogIndex GroupStorage::first_index() const { return snapshot_index_ + 1; }

LogIndex GroupStorage::last_index() const {
  return std::max(log_->last_index(), snapshot_index_);
}

Result<Term> GroupStorage::term(LogIndex i) const {
  if (i == snapshot_index_) return snapshot_term_;
  if (i < snapshot_index_) return Status::out_of_range("compacted");
  if (i > last_index()) return Status::out_of_range("beyond the log");
  return log_->term(i);
}

Result<std::vector<raft::Entry>> GroupStorage::entries(LogIndex lo, LogIndex hi,
                                                       std::uint64_t bytes_max) const {
  if (lo <= snapshot_index_) return Status::out_of_range("compacted");
  if (hi > last_index() + 1) return Status::out_of_range("beyond the log");
  std::vector<raft::Entry> out;
  if (lo >= hi) return out;
  MQ_ASSIGN_OR_RETURN(auto read, log_->read(lo, hi, bytes_max));
  out.reserve(read.size());
  for (storage::ReadEntry& e : read) {
    MQ_ASSIGN_OR_RETURN(raft::Entry entry, to_raft_entry(std::move(e)));
    out.push_back(std::move(entry));
  }
  return out;
}

Result<raft::Entry> GroupStorage::to_raft_entry(storage::ReadEntry e) const {
  raft::Entry entry;
  entry.term = e.header.term;
  entry.index = e.header.index;
  switch (e.header.kind) {
    case storage::EntryKind::kRecordBatch:
      entry.type = raft::EntryType::kNormal;
      entry.payload = std::move(e.payload);
      return entry;
    case storage::EntryKind::kRaftNoop:
      entry.type = raft::EntryType::kNoop;
      return entry;
    case storage::EntryKind::kConfigChange:
      entry.type = raft::EntryType::kConfChange;
      break;
  }
  if (options_.format == PayloadFormat::kRaw) {
    entry.payload = std::move(e.payload);
    return entry;
  }
  // The ConfChange is the value of the control batch's single record.
  MQ_ASSIGN_OR_RETURN(auto view, protocol::RecordBatchView::parse(e.payload.view()));
  MQ_ASSIGN_OR_RETURN(auto records, view.decode_records());
  if (records.records.size() != 1 || !records.records[0].value) {
    return Status::corruption(options_.name + ": configuration entry " +
                              std::to_string(entry.index.value()) + " is not a control record");
  }
  entry.payload = SharedBuffer(*records.records[0].value);
  return entry;
}

Result<Buffer> GroupStorage::to_stored_payload(const raft::Entry& entry, KafkaOffset base_offset,
                                               storage::AppendEntry* out) const {
  out->term = entry.term;
  out->index = entry.index;
  out->base_offset = base_offset;
  out->last_offset_delta = 0;
  out->max_timestamp = -1;
  switch (entry.type) {
    case raft::EntryType::kNormal: out->kind = storage::EntryKind::kRecordBatch; break;
    case raft::EntryType::kNoop: out->kind = storage::EntryKind::kRaftNoop; break;
    case raft::EntryType::kConfChange: out->kind = storage::EntryKind::kConfigChange; break;
  }
  if (options_.format == PayloadFormat::kRaw) return Buffer(entry.payload.view());
  if (entry.type == raft::EntryType::kNormal) {
    Buffer batch;
    MQ_RETURN_IF_ERROR(stamp_record_batch(entry, base_offset, out, batch));
    return batch;
  }
  protocol::ControlBatchOptions control;
  control.base_offset = base_offset.value();
  control.partition_leader_epoch = epoch_of_term(entry.term);
  control.type = protocol::ControlType::kLeaderChange;
  return protocol::build_control_batch(control, entry.payload.view());
}

// Appends a copy of a normal entry's record batch to `to`, stamped with its base offset and
// the entry's term as partition leader epoch (both outside the batch CRC), and fills the
// header fields of *out from the batch.
Status GroupStorage::stamp_record_batch(const raft::Entry& entry, KafkaOffset base_offset,
                                        storage::AppendEntry* out, Buffer& to) const {
  out->term = entry.term;
  out->index = entry.index;
  out->base_offset = base_offset;
  out->kind = storage::EntryKind::kRecordBatch;
  // The batch's CRC-32C was checked when it entered this process (Produce validation, the
  // transport frame's checksum, the segment's entry checksum): only its shape here.
  MQ_ASSIGN_OR_RETURN(auto view, protocol::RecordBatchView::parse_verified_earlier(entry.payload.view()));
  if (view.bytes().size() != entry.payload.size()) {
    return Status::corruption(options_.name + ": entry " + std::to_string(entry.index.value()) +
                              " holds trailing bytes after its batch");
  }
  const protocol::RecordBatchHeader& h = view.header();
  out->last_offset_delta = static_cast<std::uint32_t>(std::max(h.last_offset_delta, 0));
  out->max_timestamp = h.max_timestamp;
  const std::size_t at = to.size();
  to.append(entry.payload.view());
  std::span<std::uint8_t> bytes(to.data() + at, entry.payload.size());
  protocol::set_base_offset(bytes, base_offset.value());
  protocol::set_partition_leader_epoch(bytes, epoch_of_term(entry.term));
  return Status::ok();
}

Status GroupStorage::append(const std::vector<raft::Entry>& entries,
                            std::vector<AppendedEntry>* appended) {
  if (entries.empty()) return Status::ok();
  LogIndex first = entries.front().index;
  if (first <= snapshot_index_) {
    return Status::invalid_argument(options_.name + ": append below the snapshot");
  }
  if (first <= log_->last_index()) {
    // The lower synced end goes to the ledger durably BEFORE the truncation (and no higher
    // one is written meanwhile): otherwise a crash could leave the higher one with the cut
    // log, and the replica would abstain for entries it rightly dropped (they conflict with
    // the leader's log, so they were never committed, §5.3/§5.4). A failure is counted by the
    // ledger (write_errors) and never fails the append.
    ledger_clamp_.store(first.value() - 1);
    (void)record_synced_end(true);
    Status truncated = log_->truncate_suffix(first);
    ledger_clamp_.store(kNoClamp);
    MQ_RETURN_IF_ERROR(truncated);
  }
  KafkaOffset next = log_->next_offset();
  // The stamped copies of the record batches go into one buffer reused from call to call (the
  // log copies the payloads before append returns): a fresh buffer per batch of up to 1 MB
  // cost an allocation and its page faults, more than the copy itself. Event loop only.
  static thread_local Buffer stamped;
  std::size_t stamped_bytes = 0;
  for (const raft::Entry& e : entries) {
    if (e.type == raft::EntryType::kNormal) stamped_bytes += e.payload.size();
  }
  constexpr std::size_t kStampedKeepBytes = 32u << 20;
  if (stamped.capacity() > kStampedKeepBytes && stamped_bytes <= kStampedKeepBytes) stamped = Buffer();
  stamped.clear();
  stamped.reserve(stamped_bytes);  // no reallocation below: views stay valid
  std::vector<Buffer> payloads;  // control batches and raw payloads
  std::vector<storage::AppendEntry> batch;
  payloads.reserve(entries.size());
  batch.reserve(entries.size());
  for (const raft::Entry& e : entries) {
    storage::AppendEntry ae;
    if (e.type == raft::EntryType::kNormal && options_.format == PayloadFormat::kKafkaBatches) {
      const std::size_t at = stamped.size();
      MQ_RETURN_IF_ERROR(stamp_record_batch(e, next, &ae, stamped));
      ae.payload = stamped.view(at, stamped.size() - at);
    } else {
      MQ_ASSIGN_OR_RETURN(Buffer payload, to_stored_payload(e, next, &ae));
      payloads.push_back(std::move(payload));
    }
    batch.push_back(ae);
    if (appended) {
      appended->push_back(AppendedEntry{e.index, e.term, next,
                                        next + (ae.last_offset_delta + 1), e.type});
    }
    next = next + (ae.last_offset_delta + 1);
  }
  std::size_t owned = 0;
  for (storage::AppendEntry& ae : batch) {
    if (ae.payload.data() == nullptr) ae.payload = payloads[owned++].view();
  }
  MQ_DASSERT(owned == payloads.size());
  return log_->append(batch);
}

Result<bool> GroupStorage::save_hard_state(const raft::HardState& hs) {
  bool changed = hs.term != hard_state_.term || hs.vote != hard_state_.vote;
  if (!changed) return false;
  raft::HardState to_write = hs;
  to_write.commit = hard_state_.commit;  // the checkpoint; see checkpoint()
  MQ_RETURN_IF_ERROR(storage::save_hard_state(
      fs_, options_.directory, storage::HardStateRecord{to_write.term, to_write.vote, to_write.commit}));
  hard_state_ = to_write;
  return true;
}

Status GroupStorage::checkpoint(LogIndex applied, const raft::ConfState& conf_state,
                                bool conf_changed) {
  // Only what is locally durable may be recorded as applied (a follower may apply entries
  // committed by the leader before its own copy is on disk).
  applied = std::min(applied, std::max(log_->durable_index(), snapshot_index_));
  if (conf_changed && options_.format == PayloadFormat::kKafkaBatches) {
    Buffer body;
    le::put_u64(body, applied.value());
    body.append(encode_conf_state(conf_state).view());
    const BufferView pieces[1] = {body.view()};
    MQ_RETURN_IF_ERROR(storage::write_file_atomically(fs_, options_.directory, kConfFileName, pieces));
    conf_state_ = conf_state;
    conf_index_ = applied;
  }
  if (applied <= hard_state_.commit) return Status::ok();
  MQ_RETURN_IF_ERROR(storage::save_hard_state(
      fs_, options_.directory,
      storage::HardStateRecord{hard_state_.term, hard_state_.vote, applied}));
  hard_state_.commit = applied;
  return Status::ok();
}

Status GroupStorage::save_snapshot_file(LogIndex index, Term term,
                                        const raft::ConfState& conf_state, BufferView data) {
  Buffer config = encode_conf_state(conf_state);
  return storage::save_snapshot(fs_, options_.directory, index, term, config.view(), data);
}

Status GroupStorage::install_snapshot(const raft::Snapshot& snapshot) {
  const raft::SnapshotMeta& meta = snapshot.meta;
  if (meta.index <= snapshot_index_) return Status::out_of_range("snapshot older than ours");
  KafkaOffset next_offset = log_->next_offset();
  if (options_.format == PayloadFormat::kKafkaBatches) {
    // A partition snapshot's data is the leader's log start offset (docs/cluster.md).
    if (snapshot.data.size() != 8) return Status::corruption("partition snapshot: bad data");
    next_offset = KafkaOffset(static_cast<std::int64_t>(le::decode_u64(snapshot.data.data())));
  }
  MQ_RETURN_IF_ERROR(save_snapshot_file(meta.index, meta.term, meta.conf_state, snapshot.data));
  // As for a truncation (append): a log longer than the snapshot loses its entries after it.
  ledger_clamp_.store(meta.index.value());
  (void)record_synced_end(true);
  Status reset = log_->reset(meta.index + 1, next_offset);
  ledger_clamp_.store(kNoClamp);
  MQ_RETURN_IF_ERROR(reset);
  snapshot_index_ = meta.index;
  snapshot_term_ = meta.term;
  snapshot_conf_ = meta.conf_state;
  snapshot_data_ = snapshot.data;
  conf_state_ = meta.conf_state;
  conf_index_ = meta.index;
  return Status::ok();
}

Status GroupStorage::compact(LogIndex index, Term term, const raft::ConfState& conf_state,
                             SharedBuffer data) {
  if (index <= snapshot_index_) return Status::ok();
  if (index > log_->durable_index()) return Status::invalid_argument("compact beyond durable");
  MQ_RETURN_IF_ERROR(save_snapshot_file(index, term, conf_state, data.view()));
  snapshot_index_ = index;
  snapshot_term_ = term;
  snapshot_conf_ = conf_state;
  snapshot_data_ = std::move(data);
  return log_->remove_prefix(index + 1);
}

Result<bool> GroupStorage::apply_retention(const storage::RetentionPolicy& policy,
                                           const raft::ConfState& conf_state) {
  // Remember the term before every segment boundary: after removal the entry before the new
  // first index is gone, but Raft needs its term (the snapshot point) for §5.3 consistency
  // checks on the next append it sends.
  std::vector<std::pair<LogIndex, Term>> boundaries;
  for (const storage::SegmentSummary& s : log_->segments()) {
    if (s.base_index > log_->first_index()) {
      MQ_ASSIGN_OR_RETURN(Term t, log_->term(s.base_index - 1));
      boundaries.emplace_back(s.base_index - 1, t);
    }
  }
  LogIndex before = log_->first_index();
  // A crash between the removal and the snapshot file is repaired by load()
  // (recover_compaction_point).
  MQ_ASSIGN_OR_RETURN(LogIndex after, log_->apply_retention(policy));
  if (after == before) return false;
  Term t(0);
  for (auto& [index, term] : boundaries) {
    if (index == after - 1) t = term;
  }
  SharedBuffer data;
  {
    Buffer d;
    le::put_u64(d, static_cast<std::uint64_t>(log_->start_offset().value()));
    data = SharedBuffer(std::move(d));
  }
  MQ_RETURN_IF_ERROR(save_snapshot_file(after - 1, t, conf_state, data.view()));
  snapshot_index_ = after - 1;
  snapshot_term_ = t;
  snapshot_conf_ = conf_state;
  return true;
}

Result<raft::Snapshot> GroupStorage::snapshot() const {
  raft::Snapshot s;
  s.meta.index = snapshot_index_;
  s.meta.term = snapshot_term_;
  s.meta.conf_state = snapshot_conf_;
  if (options_.format == PayloadFormat::kKafkaBatches) {
    // The follower resets its log to start where ours does and fetches the retained log.
    Buffer d;
    le::put_u64(d, static_cast<std::uint64_t>(log_->start_offset().value()));
    s.data = SharedBuffer(std::move(d));
  } else {
    s.data = snapshot_data_;
  }
  return s;
}

}  // namespace mq::cluster
