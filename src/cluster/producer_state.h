// Idempotent-producer state of one partition (docs/cluster.md, "Idempotent producer";
// KIP-98, Kafka's ProducerStateManager semantics, our own code).
//
// Per producer id the partition keeps the producer epoch and the metadata of its last
// kBatchesCached (= 5, Kafka's NUM_BATCHES_TO_RETAIN, which is also the client's
// max.in.flight bound for idempotence) batches: first/last sequence, base/last offset and
// the Raft index of the entry that holds it.
//
// Replicated state. The table is a pure function of the committed log: every replica
// applies each committed entry's batch header in log order (apply()), so a new leader holds
// exactly the state its predecessor had for the committed prefix (Raft Leader Completeness,
// §5.4). Nothing here reads a clock: idle producers expire against the largest batch
// timestamp applied so far ("log time"), and the cap evicts the producer with the oldest
// last timestamp (ties: smallest id), so replicas agree on every eviction. apply() ignores
// entries at or below applied_index(), which makes re-application after a restart (from a
// checkpoint older than the persisted table, or vice versa) idempotent.
//
// The leader checks a new batch against the committed entry *plus* its own proposals not yet
// committed (check_sequence() on an entry built with extend()), see partition.cc.
//
// Persistence: encode()/decode() (docs/formats/producer_state.md), written atomically with
// the applied-index checkpoint.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"

namespace mq::cluster {

inline constexpr std::size_t kProducerBatchesCached = 5;
inline constexpr std::int16_t kNoProducerEpoch = -1;
inline constexpr std::int64_t kNoProducerId = -1;

// The producer fields of a record batch v2 header (KIP-98).
struct BatchIdentity {
  std::int64_t producer_id = kNoProducerId;
  std::int16_t epoch = kNoProducerEpoch;
  std::int32_t first_seq = -1;
  std::int32_t last_seq = -1;  // first_seq + last_offset_delta, wrapping at INT32_MAX
  std::int32_t last_offset_delta = 0;
  std::int64_t max_timestamp_ms = -1;
  bool transactional = false;
  bool control = false;
};

// Reads the batch header at the start of `batch` (record batch v2, big-endian). nullopt when
// the bytes are not a v2 batch header. Neither CRC nor records are checked (the produce path
// validated them before the entry was proposed).
std::optional<BatchIdentity> read_batch_identity(BufferView batch);

// The sequence following `seq` after `count` records (Kafka wraps at INT32_MAX to 0).
std::int32_t advance_sequence(std::int32_t seq, std::int32_t count);

struct ProducerBatch {
  std::int32_t first_seq = 0;
  std::int32_t last_seq = 0;
  KafkaOffset base_offset{-1};  // -1 while a leader's proposal is not yet appended
  KafkaOffset last_offset{-1};
  LogIndex index;  // the entry holding the batch
  bool operator==(const ProducerBatch&) const = default;
};

struct ProducerEntry {
  std::int16_t epoch = kNoProducerEpoch;
  std::deque<ProducerBatch> batches;  // oldest first, at most kProducerBatchesCached
  std::int64_t last_timestamp_ms = -1;
  bool operator==(const ProducerEntry&) const = default;

  // Records a batch of `epoch` (a newer epoch resets the cached batches: sequences restart).
  void extend(std::int16_t batch_epoch, const ProducerBatch& batch, std::int64_t timestamp_ms);
};

enum class SequenceVerdict {
  kAppend,       // write it
  kDuplicate,    // already held: answer with `duplicate_of`'s offsets, write nothing
  kOutOfOrder,   // OUT_OF_ORDER_SEQUENCE_NUMBER
  kFencedEpoch,  // INVALID_PRODUCER_EPOCH: the batch's epoch is older than the producer's
};

struct SequenceCheck {
  SequenceVerdict verdict = SequenceVerdict::kAppend;
  ProducerBatch duplicate_of;
  std::string message;  // for errors
};

// Kafka's rules (ProducerStateManager / ProducerAppendInfo, Kafka 3.x) for a batch of an
// idempotent producer against its entry (nullptr: producer unknown here):
//  - a batch whose epoch and first/last sequence equal a cached batch is a duplicate;
//  - an older epoch is fenced;
//  - a newer epoch must start at sequence 0 (unless the entry has no epoch yet);
//  - the same epoch must continue at last_seq + 1 (wrapping);
//  - an unknown producer may start at any sequence (since KIP-360 Kafka accepts it: its
//    state may have expired or been removed with the data).
SequenceCheck check_sequence(const ProducerEntry* entry, const BatchIdentity& batch);

struct ProducerStateOptions {
  std::uint32_t producers_max = 10000;                   // per partition
  std::int64_t expiration_ms = 24ll * 3600 * 1000;       // producer.id.expiration.ms
};

class ProducerStateTable {
 public:
  explicit ProducerStateTable(ProducerStateOptions options = {}) : options_(options) {}

  const ProducerEntry* find(std::int64_t producer_id) const;
  // Applies the committed entry at `index`: `batch` is nullopt for entries without a producer
  // (Raft no-ops, configuration entries, non-idempotent batches). Entries at or below
  // applied_index() are ignored (re-application is idempotent).
  void apply(LogIndex index, const std::optional<BatchIdentity>& batch, KafkaOffset base_offset);
  // An empty table whose state is as of `index` (a snapshot replaced the log below it).
  void reset(LogIndex index);

  LogIndex applied_index() const { return applied_; }
  std::int64_t log_time_ms() const { return log_time_ms_; }
  std::size_t size() const { return producers_.size(); }
  const std::map<std::int64_t, ProducerEntry>& producers() const { return producers_; }
  const ProducerStateOptions& options() const { return options_; }
  void set_options(const ProducerStateOptions& options) { options_ = options; }
  std::uint64_t expired() const { return expired_; }
  std::uint64_t evicted() const { return evicted_; }

  Buffer encode() const;
  static Result<ProducerStateTable> decode(BufferView bytes, ProducerStateOptions options);
  bool operator==(const ProducerStateTable& other) const {
    return applied_ == other.applied_ && log_time_ms_ == other.log_time_ms_ &&
           producers_ == other.producers_;
  }

 private:
  void touch(std::int64_t producer_id, std::int64_t old_timestamp, std::int64_t new_timestamp);
  void expire_and_bound(std::int64_t keep_producer_id);
  void erase(std::int64_t producer_id);

  ProducerStateOptions options_;
  std::map<std::int64_t, ProducerEntry> producers_;
  // (last timestamp, producer id), oldest first: expiry and the cap's eviction order.
  std::set<std::pair<std::int64_t, std::int64_t>> by_age_;
  LogIndex applied_;
  std::int64_t log_time_ms_ = -1;  // largest batch timestamp applied
  std::uint64_t expired_ = 0;      // counters (not persisted)
  std::uint64_t evicted_ = 0;
};

}  // namespace mq::cluster
