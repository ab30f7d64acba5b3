// GroupStorage: the durable state of one Raft group replica, seen by the Raft core through
// raft::StorageView (docs/cluster.md, "Storage of a group").
//
// Directory "<dir>/":
//   segment files, log.meta   the storage::Log: the Raft log, which for a partition IS the
//                             Kafka partition log (DESIGN.md principle 2)
//   raft.state                hard state (term, vote, commit), storage/metadata.h
//   snapshot                  the compaction point: (index, term, membership, data)
//   conf                      the membership as of the last applied configuration change
//
// Payload formats. A partition group (PayloadFormat::kKafkaBatches) stores every entry as a
// Kafka record batch v2 so that consumers are served from the same bytes: a normal entry's
// batch is stamped with its base offset (the log's next offset when it is appended, so every
// replica derives the same offsets from the same log prefix) and with the entry's term as the
// partition leader epoch; Raft's no-op and configuration entries become control batches
// (ControlType::kLeaderChange; a configuration entry carries the encoded ConfChange as the
// control record's value). Offsets thus stay dense and clients skip Raft's own entries.
// The controller group (PayloadFormat::kRaw) stores its command bytes as they are, one offset
// per entry.
//
// Durability. append() only writes to the page cache; the storage Flusher thread fsyncs
// (group commit over all logs) and LogOptions::on_durable reports it (the host posts that
// back to its event loop). The hard state is written synchronously (write, fsync, rename),
// but only when the term or vote changes (rare) or when the host checkpoints its applied
// index; the commit index alone is not written on every Ready: after a restart the group
// re-applies from the last checkpoint, which is safe because applying is idempotent.
//
// Not thread-safe: used on the broker's event loop only (the Log itself is thread-safe for
// the flusher).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "raft/storage_view.h"
#include "raft/types.h"
#include "storage/clock.h"
#include "storage/file_system.h"
#include "storage/flusher.h"
#include "storage/log.h"
#include "storage/sync_ledger.h"

namespace mq::cluster {

enum class PayloadFormat : std::uint8_t { kKafkaBatches, kRaw };

struct GroupStorageOptions {
  std::string directory;
  std::string name;  // for messages: "orders-3" or "controller"
  PayloadFormat format = PayloadFormat::kKafkaBatches;
  raft::ConfState bootstrap;  // the membership of a brand-new group (nothing on disk)
  std::uint64_t segment_size_bytes_max = 128ull << 20;
  std::uint32_t entry_payload_bytes_max = 16u << 20;
  std::uint64_t snapshot_data_bytes_max = 64u << 20;
  // storage::LogOptions::zero_fill_window_bytes (pre-written space after the tail).
  std::uint64_t zero_fill_window_bytes = storage::default_zero_fill_window_bytes();
  // storage::LogOptions::direct_write_depth (O_DIRECT writes in flight per log).
  std::uint32_t direct_write_depth = 1;
  std::function<void(LogIndex)> on_durable;  // Flusher thread
  // Repair mode: storage::LogOptions::on_damaged_tail_cut (null: a damaged tail fails open).
  std::function<Status(const storage::DamagedTailCut&)> on_damaged_tail_cut;
  // The broker's sync ledger (storage/sync_ledger.h) and this group's key in it (its group
  // id); null: none. Each sync that advances the log's synced index records it there before
  // on_durable runs, and open() compares the log's end with the recorded value
  // (lost_synced_end()).
  storage::SyncLedger* sync_ledger = nullptr;
  std::uint64_t sync_ledger_key = 0;
};

// Where an appended entry landed in Kafka offsets.
struct AppendedEntry {
  LogIndex index;
  Term term;
  KafkaOffset base_offset;
  KafkaOffset next_offset;  // last offset + 1
  raft::EntryType type = raft::EntryType::kNormal;
};

// Encoding of the membership (the snapshot's config field and the conf file): versioned,
// little-endian. decode_conf_state fails with kCorruption on malformed bytes.
Buffer encode_conf_state(const raft::ConfState& conf_state);
Result<raft::ConfState> decode_conf_state(BufferView bytes);

class GroupStorage final : public raft::StorageView {
 public:
  static Result<std::unique_ptr<GroupStorage>> open(storage::FileSystem* fs,
                                                    storage::Clock* clock,
                                                    storage::Flusher* flusher,
                                                    GroupStorageOptions options);

  // raft::StorageView.
  std::pair<raft::HardState, raft::ConfState> initial_state() const override;
  Result<std::vector<raft::Entry>> entries(LogIndex lo, LogIndex hi,
                                           std::uint64_t bytes_max) const override;
  Result<Term> term(LogIndex i) const override;
  LogIndex first_index() const override;
  LogIndex last_index() const override;
  Result<raft::Snapshot> snapshot() const override;

  // The applied index to restart from (Config::applied): the last checkpoint, capped by the
  // log's end. The membership from initial_state() is the one as of this index.
  LogIndex restart_applied() const;

  // Appends entries from a Ready (suffix truncation first when they overlap, §5.3).
  // Fills `appended` with the Kafka offsets each entry got.
  Status append(const std::vector<raft::Entry>& entries, std::vector<AppendedEntry>* appended);
  // Persists the hard state when term or vote changed (synchronously); otherwise only
  // remembers it. Returns whether a write happened.
  Result<bool> save_hard_state(const raft::HardState& hard_state);
  // Checkpoints the applied index (written as the hard state's commit) and, when it changed,
  // the membership (written first, so a crash never leaves a checkpoint ahead of it).
  Status checkpoint(LogIndex applied, const raft::ConfState& conf_state, bool conf_changed);
  // Installs a snapshot received from the leader: the log restarts after it.
  Status install_snapshot(const raft::Snapshot& snapshot);
  // Records a snapshot of the state machine at `index` (controller) and drops the log up to
  // it. `data` is what a lagging follower receives.
  Status compact(LogIndex index, Term term, const raft::ConfState& conf_state,
                 SharedBuffer data);
  // Size/age retention for partitions below `removable_below` (never at or above it).
  Result<bool> apply_retention(const storage::RetentionPolicy& policy,
                               const raft::ConfState& conf_state);

  storage::Log& log() { return *log_; }
  const storage::Log& log() const { return *log_; }
  LogIndex durable_index() const { return log_->durable_index(); }
  const raft::HardState& hard_state() const { return hard_state_; }
  // Set by open() when the sync ledger records a synced end beyond the log's last index: the
  // log lost entries it had synced (and may have acknowledged); the caller makes the replica
  // abstain until its log reaches this index again (replica_repair.h).
  std::optional<LogIndex> lost_synced_end() const { return lost_synced_end_; }
  const GroupStorageOptions& options() const { return options_; }
  storage::FileSystem* file_system() const { return fs_; }

 private:
  GroupStorage(storage::FileSystem* fs, GroupStorageOptions options)
      : fs_(fs), options_(std::move(options)) {}
  Status load();
  void recover_compaction_point();
  Status save_snapshot_file(LogIndex index, Term term, const raft::ConfState& conf_state,
                            BufferView data);
  Result<raft::Entry> to_raft_entry(storage::ReadEntry entry) const;
  // Records the log's synced index in the sync ledger (no-op without one). durable: after a
  // truncation or reset lowered it (fdatasync of the ledger before returning).
  Status record_synced_end(bool durable);
  Status check_sync_ledger();
  Result<Buffer> to_stored_payload(const raft::Entry& entry, KafkaOffset base_offset,
                                   storage::AppendEntry* out) const;
  Status stamp_record_batch(const raft::Entry& entry, KafkaOffset base_offset,
                            storage::AppendEntry* out, Buffer& to) const;

  storage::FileSystem* fs_;
  GroupStorageOptions options_;
  std::unique_ptr<storage::Log> log_;
  raft::HardState hard_state_;       // as persisted (term, vote) + last checkpoint commit
  raft::ConfState conf_state_;       // membership as of restart_applied()
  LogIndex conf_index_;              // index of the conf file's membership
  // The compaction point. Invariant: snapshot_index_ + 1 >= log_->first_index().
  LogIndex snapshot_index_;
  Term snapshot_term_;
  raft::ConfState snapshot_conf_;
  SharedBuffer snapshot_data_;  // kRaw: the controller image; kKafkaBatches: unused
  std::optional<LogIndex> lost_synced_end_;
  // While a truncation or reset runs: the highest synced end the ledger may record (the
  // flusher thread reads it in record_synced_end).
  static constexpr std::uint64_t kNoClamp = UINT64_MAX;
  std::atomic<std::uint64_t> ledger_clamp_{kNoClamp};
};

}  // namespace mq::cluster
