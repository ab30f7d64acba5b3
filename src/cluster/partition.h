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
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cluster/api.h"
#include "cluster/raft_group.h"

namespace mq::cluster {

struct PartitionOptions {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t produce_timeout_ms = 30000;
  std::uint32_t produce_waiters_max = 16384;  // proposals awaiting an ack, per partition
  std::uint32_t fetch_waiters_max = 4096;     // parked long-polls, per partition
  std::uint32_t batch_bytes_max = 16u << 20;  // one produced batch (also the entry bound)
};

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

class PartitionGroup final : public RaftGroup, public LocalPartition {
 public:
  PartitionGroup(GroupHost* host, RaftGroupOptions group_options, PartitionOptions options,
                 std::unique_ptr<GroupStorage> storage);
  ~PartitionGroup() override;

  // After RaftGroup::start(): computes the high watermark from the applied index.
  Status init();
  // Times out produce waiters and long-polls; call periodically.
  void sweep(std::int64_t now_ms);
  // Fails every waiter (the group is being removed or the broker stops).
  void abort_all(const Status& status);
  Result<bool> apply_retention(std::uint64_t bytes_max, std::int64_t age_ms_max);
  PartitionStatus status() const;
  const PartitionOptions& partition_options() const { return options_; }
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
  void on_local_durable(LogIndex index) override;
  void on_soft_state(const raft::SoftState& soft_state) override;
  void on_snapshot_installed(const raft::Snapshot& snapshot) override;
  void on_failed(const Status& status) override;

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
  Result<KafkaOffset> next_offset_after(LogIndex index);
  void complete(std::map<LogIndex, ProduceWaiter>::iterator it, Result<ProduceResult> result);
  void notify_fetchers();
  Status append_chunks(const storage::FileSlice& slice, FetchResult* out);

  PartitionOptions options_;
  std::map<LogIndex, ProduceWaiter> produce_waiters_;
  // Offsets of appended entries not yet applied (next offset after each).
  std::map<LogIndex, KafkaOffset> next_offset_by_index_;
  KafkaOffset high_watermark_{0};
  bool leader_ready_ = false;
  std::vector<FetchWaiter> fetch_waiters_;
};

}  // namespace mq::cluster
