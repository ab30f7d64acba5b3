// Log compaction of partitions whose topic has cleanup.policy=compact (e.g.
// __consumer_offsets; docs/cluster.md "Compaction", docs/groups.md). Kafka semantics (KIP-58
// log compaction, Kafka docs "Log Compaction"): for every key only the record with the latest
// offset survives; a tombstone (null value) survives delete.retention.ms, then goes too.
//
// Each replica compacts its own log independently (like retention), only closed segments
// that lie entirely at or below its applied index (committed data never changes under
// Raft, §5.4: every replica holds the same committed entries, so every replica reaches the
// same result for the same inputs, but nothing requires that; fetch reads whichever it has).
//
//   pass 1  reads the applied log from its first entry (at most scan_bytes_max bytes, at
//           entry granularity) and builds key -> latest offset. The map is capped
//           (key_map_bytes_max): once full, new keys are not added, known keys still advance.
//           A record whose key is not in the map is kept (never wrongly dropped).
//   pass 2  rewrites (storage::Log::rewrite_segment) each closed segment whose last index is
//           below the scanned end, in order from the first, keeping a record iff its offset
//           is the latest for its key; a latest tombstone older than delete.retention.ms (by
//           its record timestamp) is dropped too. Segments where nothing changes are skipped.
//
// Why dropping is safe with a partial scan: a record is dropped only if a later record of the
// same key was seen (it is superseded whatever follows), or it is an expired tombstone that is
// the latest seen; every earlier record of that key in the rewritten prefix goes in the same
// run (the prefix always starts at the first segment), so nothing resurrects.
//
// Rewritten batches keep base offset, lastOffsetDelta (the next offset stays the same, as
// Kafka's cleaner does), base/max timestamps, attributes, producer id/epoch/base sequence and
// the partition leader epoch; kept records keep their offset and timestamp deltas; the
// records are recompressed with the batch's codec and the CRC recomputed. A batch with no
// record left becomes a zero-record batch with the same header (Kafka does the same to keep
// producer state, KIP-98): fetch, followers (GroupStorage::to_stored_payload), the producer
// state table and the group loader all accept it and skip to lastOffset + 1. Control batches
// (Raft no-ops, configuration entries, transaction markers) are never changed.
//
// Records without a key are dropped: Kafka refuses them on compacted topics (KIP-58
// InvalidRecordException), so only data written before the policy changed can hold them.
//
// Threading: compact_log() runs synchronously on the broker's event loop (Node::run_retention
// cadence). Its work per run is bounded by scan_bytes_max (read) and segments_per_run_max
// (rewrites, each an fsync'd file write); a run is skipped when nothing was applied since the
// last one (PartitionGroup::compact).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"
#include "storage/log.h"

namespace mq::cluster {

struct CompactionOptions {
  std::int64_t delete_retention_ms = 24ll * 3600 * 1000;  // Kafka default: 1 day
  std::uint64_t key_map_bytes_max = 32ull << 20;          // key bytes + ~64 per entry
  std::uint64_t scan_bytes_max = 256ull << 20;            // pass 1 read budget per run
  std::uint32_t segments_per_run_max = 16;                // pass 2 rewrite budget per run
  // Internal topics only (see docs/cluster.md "Compaction"): afterwards, remove the leading
  // closed segments that hold no record any more (empty batches and control batches only),
  // moving the log start offset, as retention does.
  bool trim_empty_prefix = false;
};

struct CompactionStats {
  std::uint32_t segments_rewritten = 0;
  std::uint64_t records_kept = 0;
  std::uint64_t records_removed = 0;  // superseded, keyless or expired tombstones
  std::uint64_t tombstones_removed = 0;
  std::uint64_t bytes_before = 0;  // of the rewritten segments
  std::uint64_t bytes_after = 0;
  bool key_map_full = false;
  bool prefix_trimmed = false;  // trim_empty_prefix removed segments (PartitionGroup::compact)
};

// True when a topic's cleanup.policy (a comma-separated list: "compact", "delete",
// "compact,delete") contains compact.
bool cleanup_policy_compacts(std::string_view cleanup_policy);

// Key -> offset of the latest record with that key, bounded in bytes.
class KeyOffsetMap {
 public:
  explicit KeyOffsetMap(std::uint64_t bytes_max) : bytes_max_(bytes_max) {}
  // Records that `key` appears at `offset` (offsets increase). False when the key is new and
  // the map is full (then it is not recorded).
  bool put(BufferView key, std::int64_t offset);
  std::optional<std::int64_t> latest(BufferView key) const;
  std::size_t size() const { return map_.size(); }
  bool full() const { return full_; }

 private:
  std::unordered_map<std::string, std::int64_t> map_;
  std::uint64_t bytes_ = 0;
  std::uint64_t bytes_max_;
  bool full_ = false;
};

// The decision for one record of a batch.
struct RecordFilterResult {
  std::optional<Buffer> batch;  // nullopt: the batch is unchanged
  std::uint32_t kept = 0;
  std::uint32_t removed = 0;
  std::uint32_t tombstones_removed = 0;
};

// Filters the records of one v2 batch against `map` (pass 2 for one entry). Unchanged control
// batches. Errors: the batch does not parse or decode (kCorruption/kUnsupported).
Result<RecordFilterResult> filter_batch(BufferView batch, const KeyOffsetMap& map,
                                        std::int64_t now_ms, std::int64_t delete_retention_ms);

// The base index of the first segment at or below `applied` that is open or still holds a
// record (a non-control batch with records, or one that does not parse); every segment
// before it is closed and holds empty/control batches only (the log start when none is).
Result<LogIndex> first_live_segment(storage::Log& log, LogIndex applied);

// One compaction run over `log` up to (and including) index `applied`. Returns what it did.
Result<CompactionStats> compact_log(storage::Log& log, LogIndex applied, std::int64_t now_ms,
                                    const CompactionOptions& options);

}  // namespace mq::cluster
