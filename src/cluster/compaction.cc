// Log compaction (compaction.h; docs/cluster.md "Compaction").
#include "cluster/compaction.h"

#include <algorithm>
#include <vector>

#include "base/kafka_wire.h"
#include "protocol/compression.h"
#include "protocol/record_batch.h"

namespace mq::cluster {
namespace {

// Bytes of one pass-1/pass-2 read: bounds the memory of a step, not the run.
constexpr std::uint64_t kReadChunkBytes = 4ull << 20;
// Per-entry overhead charged to the key map (node, bucket, string header, offset).
constexpr std::uint64_t kKeyEntryOverheadBytes = 64;

std::string key_string(BufferView key) {
  return std::string(reinterpret_cast<const char*>(key.data()), key.size());
}

void write_optional_bytes(KafkaWriter& w, const std::optional<BufferView>& bytes) {
  if (!bytes) {
    w.write_varint(-1);
    return;
  }
  w.write_varint(static_cast<std::int32_t>(bytes->size()));
  w.write_raw(*bytes);
}

// A kept record, re-encoded with its original attributes, timestamp delta and offset delta
// (record := length, attributes, timestampDelta, offsetDelta, key, value, headers; KIP-98).
void encode_kept_record(KafkaWriter& out, const protocol::Record& r) {
  Buffer body;
  KafkaWriter b(&body);
  b.write_int8(r.attributes);
  b.write_varlong(r.timestamp_delta);
  b.write_varint(r.offset_delta);
  write_optional_bytes(b, r.key);
  write_optional_bytes(b, r.value);
  b.write_varint(static_cast<std::int32_t>(r.headers.size()));
  for (const protocol::RecordHeader& h : r.headers) {
    b.write_varint(static_cast<std::int32_t>(h.key.size()));
    b.write_raw(as_bytes(h.key));
    write_optional_bytes(b, h.value);
  }
  out.write_varint(static_cast<std::int32_t>(body.size()));
  out.write_raw(body.view());
}

// The batch `h` with only `kept` records. Everything in the header but batchLength,
// recordCount and the CRC stays (lastOffsetDelta too: the next offset does not move). With no
// record left the batch is a zero-record batch without compression, as Kafka writes it.
Result<Buffer> rebuild_batch(const protocol::RecordBatchHeader& h,
                             const std::vector<const protocol::Record*>& kept) {
  Buffer section;
  std::int16_t attributes = h.attributes;
  if (kept.empty()) {
    attributes = static_cast<std::int16_t>(attributes & ~protocol::kAttributeCompressionMask);
  } else {
    Buffer plain;
    KafkaWriter pw(&plain);
    for (const protocol::Record* r : kept) encode_kept_record(pw, *r);
    MQ_RETURN_IF_ERROR(protocol::compress(h.compression(), plain.view(), &section));
  }
  std::size_t total = protocol::kRecordBatchHeaderBytes + section.size();
  if (total - protocol::kRecordBatchLengthOverhead > 0x7fffffff) {
    return Status::invalid_argument("compaction: rewritten batch too large");
  }
  Buffer out;
  out.reserve(total);
  KafkaWriter w(&out);
  w.write_int64(h.base_offset);
  w.write_int32(static_cast<std::int32_t>(total - protocol::kRecordBatchLengthOverhead));
  w.write_int32(h.partition_leader_epoch);
  w.write_int8(protocol::kRecordBatchMagic);
  w.write_uint32(0);  // CRC, below
  w.write_int16(attributes);
  w.write_int32(h.last_offset_delta);
  w.write_int64(h.base_timestamp);
  w.write_int64(h.max_timestamp);
  w.write_int64(h.producer_id);
  w.write_int16(h.producer_epoch);
  w.write_int32(h.base_sequence);
  w.write_int32(static_cast<std::int32_t>(kept.size()));
  w.write_raw(section.view());
  protocol::update_crc(std::span<std::uint8_t>(out.data(), out.size()));
  return out;
}

// Pass 1: key -> latest offset over the entries from the first up to `applied`, within the
// read budget. Returns the first index not scanned.
Result<LogIndex> build_key_map(storage::Log& log, LogIndex applied, std::uint64_t scan_bytes_max,
                               KeyOffsetMap* map) {
  LogIndex next = log.first_index();
  LogIndex hi = std::min(applied, log.last_index()) + 1;
  std::uint64_t scanned = 0;
  while (next < hi && scanned < scan_bytes_max) {
    MQ_ASSIGN_OR_RETURN(auto entries, log.read(next, hi, kReadChunkBytes));
    if (entries.empty()) break;
    for (const storage::ReadEntry& e : entries) {
      next = e.header.index + 1;
      scanned += e.header.stored_size();
      if (e.header.kind != storage::EntryKind::kRecordBatch || e.payload.size() == 0) continue;
      auto view = protocol::RecordBatchView::parse(e.payload.view());
      // An undecodable batch adds no key: what it would supersede is kept (safe side).
      if (!view.has_value() || view->header().is_control()) continue;
      auto records = view->decode_records();
      if (!records.has_value()) continue;
      for (const protocol::Record& r : records->records) {
        if (r.key) map->put(*r.key, view->header().base_offset + r.offset_delta);
      }
      if (scanned >= scan_bytes_max) break;
    }
  }
  return next;
}

struct SegmentOutcome {
  bool changes = false;
  CompactionStats stats;
};

// Pass 2 for one entry: the rewrite decision and its effect on the counters.
Result<storage::RewriteDecision> decide(const storage::EntryHeader& header, BufferView payload,
                                        const KeyOffsetMap& map, std::int64_t now_ms,
                                        const CompactionOptions& options, SegmentOutcome* outcome) {
  storage::RewriteDecision d;
  if (header.kind != storage::EntryKind::kRecordBatch || payload.empty()) return d;
  auto filtered = filter_batch(payload, map, now_ms, options.delete_retention_ms);
  if (!filtered.has_value()) return d;  // not ours to judge: keep it as it is
  outcome->stats.records_kept += filtered->kept;
  outcome->stats.records_removed += filtered->removed;
  outcome->stats.tombstones_removed += filtered->tombstones_removed;
  if (!filtered->batch) return d;
  outcome->changes = true;
  d.action = storage::RewriteDecision::Action::kReplace;
  d.replacement = std::move(*filtered->batch);
  return d;
}

// Whether compacting the segment [base, last] would change anything (read in chunks).
Result<SegmentOutcome> dry_run(storage::Log& log, const storage::SegmentSummary& segment,
                               const KeyOffsetMap& map, std::int64_t now_ms,
                               const CompactionOptions& options) {
  SegmentOutcome outcome;
  LogIndex next = segment.base_index;
  while (next <= segment.last_index && !outcome.changes) {
    MQ_ASSIGN_OR_RETURN(auto entries, log.read(next, segment.last_index + 1, kReadChunkBytes));
    if (entries.empty()) break;
    for (const storage::ReadEntry& e : entries) {
      next = e.header.index + 1;
      auto decision = decide(e.header, e.payload.view(), map, now_ms, options, &outcome);
      if (!decision.has_value()) return decision.error();
      if (outcome.changes) break;
    }
  }
  return outcome;
}

}  // namespace

bool cleanup_policy_compacts(std::string_view cleanup_policy) {
  std::size_t pos = 0;
  while (pos <= cleanup_policy.size()) {
    std::size_t comma = cleanup_policy.find(',', pos);
    if (comma == std::string_view::npos) comma = cleanup_policy.size();
    std::string_view item = cleanup_policy.substr(pos, comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == "compact") return true;
    pos = comma + 1;
  }
  return false;
}

bool KeyOffsetMap::put(BufferView key, std::int64_t offset) {
  std::string k = key_string(key);
  auto it = map_.find(k);
  if (it != map_.end()) {
    it->second = std::max(it->second, offset);
    return true;
  }
  std::uint64_t cost = k.size() + kKeyEntryOverheadBytes;
  if (bytes_ + cost > bytes_max_) {
    full_ = true;
    return false;
  }
  bytes_ += cost;
  map_.emplace(std::move(k), offset);
  return true;
}

std::optional<std::int64_t> KeyOffsetMap::latest(BufferView key) const {
  auto it = map_.find(key_string(key));
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

Result<RecordFilterResult> filter_batch(BufferView batch, const KeyOffsetMap& map,
                                        std::int64_t now_ms, std::int64_t delete_retention_ms) {
  MQ_ASSIGN_OR_RETURN(auto view, protocol::RecordBatchView::parse(batch));
  const protocol::RecordBatchHeader& h = view.header();
  RecordFilterResult out;
  if (h.is_control()) return out;  // markers and Raft's own entries stay as they are
  MQ_ASSIGN_OR_RETURN(auto records, view.decode_records());
  std::vector<const protocol::Record*> kept;
  kept.reserve(records.records.size());
  for (const protocol::Record& r : records.records) {
    std::int64_t offset = h.base_offset + r.offset_delta;
    bool keep = true;
    if (!r.key) {
      keep = false;  // KIP-58: compacted topics hold keyed records only
    } else if (auto latest = map.latest(*r.key); latest && *latest > offset) {
      keep = false;  // superseded by a later record of the key
    } else if (latest && *latest == offset && !r.value) {
      // The latest record of its key is a tombstone: it goes once delete.retention.ms has
      // passed since its timestamp (Kafka "delete.retention.ms"; KIP-32 timestamps).
      std::int64_t ts =
          h.is_log_append_time() ? h.max_timestamp : h.base_timestamp + r.timestamp_delta;
      if (now_ms - ts >= delete_retention_ms) {
        keep = false;
        ++out.tombstones_removed;
      }
    }
    if (keep) {
      kept.push_back(&r);
    } else {
      ++out.removed;
    }
  }
  out.kept = static_cast<std::uint32_t>(kept.size());
  if (kept.size() == records.records.size()) return out;
  MQ_ASSIGN_OR_RETURN(Buffer rebuilt, rebuild_batch(h, kept));
  out.batch = std::move(rebuilt);
  return out;
}

Result<LogIndex> first_live_segment(storage::Log& log, LogIndex applied) {
  for (const storage::SegmentSummary& segment : log.segments()) {
    if (!segment.closed || segment.last_index > applied) return segment.base_index;
    LogIndex next = segment.base_index;
    while (next <= segment.last_index) {
      MQ_ASSIGN_OR_RETURN(auto entries, log.read(next, segment.last_index + 1, kReadChunkBytes));
      if (entries.empty()) return segment.base_index;
      for (const storage::ReadEntry& e : entries) {
        next = e.header.index + 1;
        if (e.header.kind != storage::EntryKind::kRecordBatch) continue;
        auto view = protocol::RecordBatchView::parse(e.payload.view());
        if (!view.has_value()) return segment.base_index;
        if (!view->header().is_control() && view->header().record_count > 0)
          return segment.base_index;
      }
    }
  }
  return log.last_index() + 1;
}

Result<CompactionStats> compact_log(storage::Log& log, LogIndex applied, std::int64_t now_ms,
                                    const CompactionOptions& options) {
  CompactionStats total;
  KeyOffsetMap map(options.key_map_bytes_max);
  MQ_ASSIGN_OR_RETURN(LogIndex scan_end, build_key_map(log, applied, options.scan_bytes_max, &map));
  total.key_map_full = map.full();
  // Segments in order from the first: a tombstone may go only once every earlier record of
  // its key went, which this order guarantees within the run (compaction.h).
  for (const storage::SegmentSummary& segment : log.segments()) {
    if (!segment.closed || segment.last_index >= scan_end || segment.last_index > applied) break;
    if (total.segments_rewritten >= options.segments_per_run_max) break;
    MQ_ASSIGN_OR_RETURN(SegmentOutcome dry, dry_run(log, segment, map, now_ms, options));
    if (!dry.changes) continue;
    SegmentOutcome outcome;
    Status s = log.rewrite_segment(segment.base_index, applied + 1,
                                   [&](const storage::EntryHeader& h, BufferView payload) {
                                     return decide(h, payload, map, now_ms, options, &outcome);
                                   });
    MQ_RETURN_IF_ERROR(s);
    std::uint64_t after = 0;
    for (const storage::SegmentSummary& now : log.segments()) {
      if (now.base_index == segment.base_index) after = now.size_bytes;
    }
    ++total.segments_rewritten;
    total.records_kept += outcome.stats.records_kept;
    total.records_removed += outcome.stats.records_removed;
    total.tombstones_removed += outcome.stats.tombstones_removed;
    total.bytes_before += segment.size_bytes;
    total.bytes_after += after;
  }
  return total;
}

}  // namespace mq::cluster
