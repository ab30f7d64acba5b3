// PartitionGroup: one replica of one Kafka partition = one Raft group whose log is the
// partition log (docs/cluster.md, "Produce path" and "Fetch path").
//
// Offsets. Each Raft entry holds one record batch; its base offset is the log's next offset
// when it is appended, stamped into the stored batch by GroupStorage (offsets and the
// partition leader epoch lie outside the batch CRC). Raft's no-op and configuration entries
// are control batches and take one offset each, so offsets are dense.
//
// High watermark = (last offset + 1) of the last applied (= committed and applied) entry.
// Consumers never see beyond it. A new leader reports is_leader() only once it has applied
// an entry of its own term (its no-op, §8): before that its commit index may lag the old
// leader's and the high watermark would go backwards.
//
// Produce acknowledgements: kAll when the entry is applied with the term it was proposed in;
// kLeader when the leader's own copy is durable; kNone at once. An entry replaced by another
// leader's (truncation, or applied with another term) fails with kNotLeader; a waiter older
// than produce_timeout_ms fails with kTimeout (the entry may still commit later, as in Kafka).
//
// Idempotent producer (docs/cluster.md, "Idempotent producer"). The ProducerStateTable is
// part of the replicated state: every replica updates it when it applies a committed entry,
// so a new leader holds it for the whole committed prefix once it has applied an entry of
// its own term (the condition for is_leader()). The leader checks a batch of an idempotent
// producer against that table extended by its own proposals not yet applied (`pending_`):
// a duplicate of a committed batch is answered with the original offsets and not written; a
// duplicate of a proposal still in flight waits for that entry; gaps and fenced epochs are
// refused. The table is persisted (file `producer.state`) with each applied-index
// checkpoint and rebuilt at start-up by re-applying the log above it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cluster/api.h"
#include "cluster/compaction.h"
#include "cluster/fetch_read_ahead.h"
#include "cluster/producer_state.h"
#include "cluster/raft_group.h"

namespace mq::cluster {

struct PartitionOptions {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t produce_timeout_ms = 30000;
  std::uint32_t produce_waiters_max = 16384;  // proposals awaiting an ack, per partition
  std::uint32_t fetch_waiters_max = 4096;     // parked long-polls, per partition
  std::uint32_t batch_bytes_max = 16u << 20;  // one produced batch (also the entry bound)
  ProducerStateOptions producer_state;        // producers per partition, expiration
  // Monotonic milliseconds for the sequence-gap windows (tests); empty: steady_now_ms().
  std::function<std::int64_t()> steady_clock_ms;
};

// The producer state file of a partition directory (docs/formats/producer_state.md).
inline constexpr char kProducerStateFileName[] = "producer.state";
inline constexpr std::uint64_t kProducerStateFileBytesMax = 256ull << 20;

struct ReplicaLag {
  BrokerId broker;
  LogIndex match;
  std::uint64_t lag_entries = 0;  // leader's last index - match
  bool learner = false;
};

// For `raftmq cluster status` and metrics.
struct PartitionStatus {
  std::string topic;
  std::int32_t partition = 0;
  GroupId group;
  BrokerId leader{-1};
  Term term;
  LogIndex commit_index;
  LogIndex applied_index;
  LogIndex last_index;
  KafkaOffset high_watermark;
  KafkaOffset log_start_offset;
  KafkaOffset log_end_offset;
  std::vector<BrokerId> voters;
  std::vector<BrokerId> learners;
  std::vector<ReplicaLag> replicas;  // leader only
  bool is_leader = false;
  bool failed = false;
};

std::int64_t steady_now_ms();

// Read-ahead for consumers that read from the file (data older than the log's in-memory
// tail): after a fetch whose last chunk comes from a file, the kernel is asked to read the
// next `bytes` of that file into the page cache (POSIX_FADV_WILLNEED, no wait), so the next
// fetch of a sequential consumer finds them there instead of reading the disk in sendfile on
// the event loop. The log's writes are direct, so nothing else puts them there.
// fetch_readahead_bytes(): RAFTMQ_FETCH_READAHEAD_KIB (default 4096, 0: off, at most 1 GiB).
std::uint64_t fetch_readahead_bytes();
void read_ahead_after_last_chunk(const FetchResult& result, std::uint64_t bytes);

// Drop-behind for the same consumers: after a fetch whose first chunk comes from a file, the
// pages of that file before the chunk leave the page cache (POSIX_FADV_DONTNEED), from where
// the previous call on that file stopped (rounded down to 2 MiB, so that the kernel's large
// folios there are dropped whole: it skips a folio that straddles either end of the range).
// A consumer reading from the file asks for the bytes after those it has received, so what is
// dropped has been sent. Without it every byte read from the file stays cached until memory
// runs short: a catch-up read fills the page cache with data read once, and each new read
// takes pages the kernel has not handed out recently, which on some virtual machines costs
// several µs per page at first touch (docs/benchmarks.md, "Consume: drop-behind"); with it, a
// sequential read reuses the few MiB it frees. One reader's drops can cost a second reader
// further behind in the same file a disk read (with the read-ahead above). A fetch starting
// before the point already dropped drops nothing; another file starts again from its start.
// fetch_drop_behind_enabled(): RAFTMQ_FETCH_DROP_BEHIND (default 1; 0: off).
bool fetch_drop_behind_enabled();
class FetchDropBehind {
 public:
  void after_fetch(const FetchResult& result);
  std::uint64_t dropped_until() const { return dropped_until_; }

 private:
  // Identity only (the chunk's keep_alive), never dereferenced. A new file at the address of
  // a closed one keeps the old drop point: its first drops wait until readers pass it.
  const void* file_ = nullptr;
  std::uint64_t dropped_until_ = 0;
};

class PartitionGroup final : public RaftGroup, public LocalPartition {
 public:
  PartitionGroup(GroupHost* host, RaftGroupOptions group_options, PartitionOptions options,
                 std::unique_ptr<GroupStorage> storage);
  ~PartitionGroup() override;

  // After RaftGroup::start(): computes the high watermark from the applied index.
  Status init();
  // Times out produce waiters and long-polls; call periodically.
  void sweep(std::int64_t now_ms);
  bool has_waiters() const { return !produce_waiters_.empty() || !fetch_waiters_.empty(); }
  // Fails every waiter (the group is being removed or the broker stops).
  void abort_all(const Status& status);
  Result<bool> apply_retention(std::uint64_t bytes_max, std::int64_t age_ms_max);
  // Log compaction of the applied prefix (compaction.h), for cleanup.policy=compact topics.
  // A run is skipped (nullopt) when nothing was applied since the last complete one.
  Result<std::optional<CompactionStats>> compact(std::int64_t now_ms,
                                                 const CompactionOptions& options);
  PartitionStatus status() const;
  const PartitionOptions& partition_options() const { return options_; }
  const ProducerStateTable& producer_state() const { return producers_; }
  const SequenceGapWindows& sequence_gaps() const { return sequence_gaps_; }
  // Fires when the group needs pump() (a proposal was made).
  std::function<void(PartitionGroup*)> on_proposed;

  // LocalPartition.
  bool is_leader() const override { return is_raft_leader() && leader_ready_; }
  std::int32_t leader_epoch() const override;
  void produce(SharedBuffer batch, Acks acks,
               std::function<void(Result<ProduceResult>)> done) override;
  Result<FetchResult> fetch(KafkaOffset offset, std::uint64_t max_bytes) override;
  void wait_for_data(KafkaOffset offset, std::int64_t deadline_ms,
                     std::function<void()> ready) override;
  KafkaOffset high_watermark() const override { return high_watermark_; }
  KafkaOffset log_start_offset() const override;
  Result<std::optional<KafkaOffset>> offset_for_timestamp(std::int64_t timestamp_ms) override;
  Result<OffsetForEpochResult> end_offset_for_epoch(std::int32_t leader_epoch) override;

 protected:
  void on_appended(const std::vector<AppendedEntry>& appended) override;
  void on_apply(const raft::Entry& entry) override;
  void on_applied() override;
  void on_local_durable(LogIndex index) override;
  void on_soft_state(const raft::SoftState& soft_state) override;
  void on_snapshot_installed(const raft::Snapshot& snapshot) override;
  void on_failed(const Status& status) override;
  Status on_checkpoint(LogIndex applied) override;

 private:
  struct ProduceWaiter {
    Term term;
    Acks acks = Acks::kAll;
    KafkaOffset base_offset{-1};
    std::int64_t deadline_ms = 0;
    std::function<void(Result<ProduceResult>)> done;
  };
  struct FetchWaiter {
    KafkaOffset offset;
    std::int64_t deadline_ms = 0;
    std::function<void()> ready;
  };
  // A proposal of an idempotent producer not yet applied (leader only).
  struct PendingBatch {
    LogIndex index;
    Term term;
    BatchIdentity batch;
  };
  using WaiterMap = std::multimap<LogIndex, ProduceWaiter>;
  Result<KafkaOffset> next_offset_after(LogIndex index);
  void complete(WaiterMap::iterator it, Result<ProduceResult> result);
  void park_waiter(LogIndex index, Acks acks, KafkaOffset base_offset,
                   std::function<void(Result<ProduceResult>)> done);
  // Sequence/epoch check of an idempotent batch; true when `done` was answered or parked.
  bool check_producer(const BatchIdentity& batch, Acks acks,
                      std::function<void(Result<ProduceResult>)>& done);
  ProducerEntry leader_view(std::int64_t producer_id) const;
  void answer_sequence_gap(const BatchIdentity& batch, const SequenceCheck& check,
                           std::function<void(Result<ProduceResult>)>& done);
  void apply_producer_state(const raft::Entry& entry, KafkaOffset next_offset);
  // Answers produce waiters beyond `last` left by an older term (their entries were truncated).
  void fail_truncated_waiters(const AppendedEntry& last);
  void forget_pending(LogIndex up_to);
  void clear_pending();
  Status load_producer_state();
  void discard_producer_state_ahead_of_log();
  void notify_fetchers();
  // The slice's extents as chunks of `out`: in memory when the write-behind buffer or the
  // read-ahead holds them, else file extents; *file_end: the end of the last extent that was
  // not in the write-behind buffer (0: none).
  Status append_chunks(const storage::FileSlice& slice, FetchResult* out, std::uint64_t* file_end);

  PartitionOptions options_;
  WaiterMap produce_waiters_;  // several at one index: in-flight duplicates wait too
  // Offsets of appended entries not yet applied (next offset after each).
  std::map<LogIndex, KafkaOffset> next_offset_by_index_;
  KafkaOffset high_watermark_{0};
  bool leader_ready_ = false;
  std::vector<FetchWaiter> fetch_waiters_;
  FetchDropBehind drop_behind_;
  FetchReadAhead read_ahead_{fetch_read_ahead_budget_bytes()};
  ProducerStateTable producers_;
  std::map<std::int64_t, std::deque<PendingBatch>> pending_;  // by producer id, index order
  std::map<LogIndex, std::int64_t> pending_by_index_;
  SequenceGapWindows sequence_gaps_;  // leader-local: gaps answered retriably (F9)
  bool producer_state_on_disk_ = false;
  LogIndex compacted_at_applied_;  // applied index of the last complete compaction run
};

}  // namespace mq::cluster
