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

// True when `seq` lies ahead of `expected` by less than 2^30 in the wrapping sequence space
// [0, INT32_MAX]: a gap rather than a sequence already used.
bool sequence_ahead(std::int32_t expected, std::int32_t seq);

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
  kSequenceGap,  // ahead of the expected sequence: OUT_OF_ORDER_SEQUENCE_NUMBER for Kafka,
                 // the partition may answer retriably for a while (SequenceGapWindows)
  kFencedEpoch,  // INVALID_PRODUCER_EPOCH: the batch's epoch is older than the producer's
};

struct SequenceCheck {
  SequenceVerdict verdict = SequenceVerdict::kAppend;
  ProducerBatch duplicate_of;
  std::int32_t expected_seq = -1;  // kOutOfOrder / kSequenceGap: the sequence expected next
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
// A refusal whose batch starts AHEAD of the expected sequence (same epoch: first_seq above
// last_seq + 1, less than 2^30 ahead modulo the wrap; newer epoch: first_seq above 0) is
// kSequenceGap, every other one kOutOfOrder: a gap can close by itself (the earlier batches
// are still in flight or being retried), a sequence at or behind the expected one cannot.
SequenceCheck check_sequence(const ProducerEntry* entry, const BatchIdentity& batch);

struct ProducerStateOptions {
  std::uint32_t producers_max = 10000;                   // per partition
  std::int64_t expiration_ms = 24ll * 3600 * 1000;       // producer.id.expiration.ms
  // How long a leader answers a producer's sequence gap with the retriable
  // NOT_ENOUGH_REPLICAS before OUT_OF_ORDER_SEQUENCE_NUMBER (SequenceGapWindows); 0: at once,
  // as Kafka does. 30 s: the default request.timeout.ms of librdkafka and the Java client, the
  // longest a default client leaves the earlier request unresolved before retrying it.
  std::int64_t sequence_gap_retry_ms = 30000;
};

// Sequence gaps answered retriably, per producer, on the leader (volatile, not replicated).
//
// Why (tests/chaos/FINDINGS.md F9, librdkafka issue #4953): with up to 5 requests in flight,
// a leader that becomes ready between them answers the head R1 NOT_LEADER_FOR_PARTITION and
// R2..R5 a gap. Kafka's answer, OUT_OF_ORDER_SEQUENCE_NUMBER on a non-head request, makes
// librdkafka (<= 2.x) re-queue R2..R5 AND bump the epoch of the whole producer, restarting
// every partition's sequences at 0: messages of other partitions whose requests failed
// "possibly persisted" at that moment (a disconnection) are then re-sent as new data and
// stored twice. NOT_ENOUGH_REPLICAS is retriable and "not persisted" in librdkafka
// (rd_kafka_handle_Produce_error: RETRY|MSG_NOT_PERSISTED), the Java client and kafkajs: each
// re-queues the batches in sequence order and retries, R1 first, with no epoch bump.
//
// The bound: a gap that does not close is real (a broken client, or state lost on this side)
// and must fail as OUT_OF_ORDER_SEQUENCE_NUMBER, not retry forever. A producer's window opens
// at the first gap answered to it and closes `window_ms` later; only an append of one of its
// batches (progress: the gap closed) or a leadership change resets it. So a producer gets the
// retriable answer for at most window_ms per leader term without progress, then the Kafka
// answer. Tracking is capped (`max_tracked`): a gap that finds no room is answered
// OUT_OF_ORDER at once, so the cap never extends a window.
class SequenceGapWindows {
 public:
  SequenceGapWindows(std::int64_t window_ms, std::size_t max_tracked)
      : window_ms_(window_ms), max_tracked_(max_tracked) {}

  // A gap of `producer_id` seen at `now_ms` (a monotonic clock): true while its window is
  // open (the first gap opens it), false once closed or when tracking is full or disabled.
  bool retriable(std::int64_t producer_id, std::int64_t now_ms);
  // The producer made progress (a batch of it was appended): its window is closed.
  void forget(std::int64_t producer_id) {
    if (!since_.empty()) since_.erase(producer_id);
  }
  void clear() { since_.clear(); }
  bool tracked(std::int64_t producer_id) const { return since_.count(producer_id) != 0; }
  std::size_t size() const { return since_.size(); }
  std::int64_t window_ms() const { return window_ms_; }

 private:
  std::int64_t window_ms_;
  std::size_t max_tracked_;
  std::map<std::int64_t, std::int64_t> since_;  // producer id -> first gap answered (ms)
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
