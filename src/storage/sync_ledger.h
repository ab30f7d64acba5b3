// The sync ledger: per broker, the highest index each replica's log has SYNCED (what the
// replica may have acknowledged), so that a replica whose log lost synced entries from its end
// (a segment truncated by a fault, not by a crash: a crash only loses what was never synced)
// can tell at its next open and abstain from voting until it has them back (docs/cluster.md
// "Replica repair", "Lost synced entries"; the format: docs/formats/sync_ledger_format.md).
//
// One append-only file "<dir>/sync.ledger" of fixed-size records (key, synced end, CRC-32C),
// kept zero-filled 64 KiB ahead so that appends do not change its size (its fdatasync then
// writes data only, no journal commit); the last valid record of a key wins (its synced end may go down: a §5.3 suffix truncation
// removes entries the replica no longer holds nor acknowledges).
//
// When a record is written (the rule that makes the bound both safe and never too high):
//   - by record_synced(), which the replica's storage calls from LogOptions::on_durable, i.e.
//     AFTER the log's fdatasync covered the entries and BEFORE the durable index reaches the
//     Raft core (so before any acknowledgement). The record goes to the page cache at once
//     (one write of 24 bytes): a process crash keeps it, like every write. It never describes
//     an entry that is not already on disk, so a crash or power loss can never leave the
//     ledger ahead of the log: no false abstention.
//   - The ledger's own fdatasync runs on its own thread, never in series with an
//     acknowledgement, at most once per sync_interval_ms (1 s). Power loss loses the records
//     written since the last one: the replica then misses an abstention only if the same
//     event ALSO lost synced entries of its log (two faults at once); see the format document.
//   - before a suffix truncation or a reset the caller writes the lower value and syncs it
//     (durable=true; rare) and writes no higher one until it is done, so that a crash cannot
//     leave a higher, stale bound with the cut log (GroupStorage::append).
//
// Open reads the file (torn last record ignored; a record failing its CRC between valid ones
// is skipped and counted), then rewrites it compacted (write tmp, fsync, rename, fsync dir):
// the appends start at a clean boundary. Compaction also runs when the file outgrows
// compact_bytes (on the sync thread, or in sync() without it).
//
// Thread-safe (one mutex; the log's synced index is read under it, so of two concurrent
// writers for a key the later record always carries the later value).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/strong_id.h"
#include "storage/file_system.h"
#include "storage/sync_ledger_format.h"

namespace mq::storage {

struct SyncLedgerOptions {
  std::string directory;
  std::uint64_t compact_bytes = sync_ledger_format::kDefaultCompactBytes;
  // true: a thread fdatasyncs the file whenever records were written (and compacts);
  // false: only sync() does (deterministic tests).
  bool sync_thread = true;
  // The sync thread's pause after each fdatasync: at most one ledger fdatasync per interval.
  // A ledger fdatasync per flusher round competed with the segments' own fdatasyncs for the
  // device (single in-flight produce p50 ~690 us with it, ~540 us without, same machine); at
  // one a second its cost is nil. Only power loss is exposed: it may take the records of
  // the last interval (see the file comment).
  std::int64_t sync_interval_ms = 1000;
};

struct SyncLedgerStats {
  std::uint64_t records_written = 0;
  std::uint64_t syncs = 0;
  std::uint64_t thread_wakeups = 0;  // the sync thread's returns from its waits
  std::uint64_t compactions = 0;
  std::uint64_t write_errors = 0;  // a failed write or sync: the next compaction rewrites all
  std::uint64_t torn_records = 0;     // at open: 1 if non-zero bytes followed the last valid record
  std::uint64_t damaged_records = 0;  // at open: a record failing its CRC before valid ones
};

class SyncLedger {
 public:
  static Result<std::unique_ptr<SyncLedger>> open(FileSystem* fs, SyncLedgerOptions options);
  ~SyncLedger();  // stops the sync thread after a last sync
  SyncLedger(const SyncLedger&) = delete;
  SyncLedger& operator=(const SyncLedger&) = delete;

  // The recorded synced end of `key` (nullopt: none, or forgotten).
  std::optional<LogIndex> synced_end(std::uint64_t key) const;
  // Records read_synced_end() (called under the ledger's mutex) for `key` unless it equals
  // the current record. durable: fdatasync before returning.
  Status record_synced(std::uint64_t key, const std::function<LogIndex()>& read_synced_end,
                       bool durable = false);
  Status record_synced(std::uint64_t key, LogIndex synced_end, bool durable = false) {
    return record_synced(key, [synced_end] { return synced_end; }, durable);
  }
  // The key has no log any more (a brand-new replica directory): its record is dropped.
  Status forget(std::uint64_t key);
  // fdatasync of the records written so far; compacts when the file is over compact_bytes or
  // a write failed.
  Status sync();
  // Rewrites the file with one record per key (atomically).
  Status compact();

  std::uint64_t file_bytes() const;
  SyncLedgerStats stats() const;
  // What open() found wrong (damaged header or records), for the broker's log.
  const std::vector<std::string>& open_warnings() const { return open_warnings_; }
  std::string path() const;

 private:
  SyncLedger(FileSystem* fs, SyncLedgerOptions options) : fs_(fs), options_(std::move(options)) {}
  Status load();
  Status append_locked(std::uint64_t key, std::uint64_t synced_end, std::uint32_t kind);
  Status compact_locked();
  Status sync_and_maybe_compact();
  void thread_main();

  FileSystem* fs_;
  SyncLedgerOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable dirty_cv_;
  std::shared_ptr<File> file_;
  std::uint64_t size_ = 0;       // header and records: where the next record goes
  std::uint64_t allocated_ = 0;  // the file's size (zero-filled beyond size_)
  std::map<std::uint64_t, std::uint64_t> ends_;  // key -> synced end (live keys only)
  bool dirty_ = false;
  bool rewrite_ = false;  // a write or sync failed: compaction rewrites every record
  bool stopping_ = false;
  bool waiting_for_records_ = false;  // the sync thread waits for dirty_ (not in its pause)
  std::thread thread_;
  SyncLedgerStats stats_;
  std::vector<std::string> open_warnings_;
};

// Encodings, exposed for the tests and the format document's example.
void encode_sync_ledger_header(std::uint8_t* out);  // kHeaderBytes
void encode_sync_ledger_record(std::uint8_t* out, std::uint64_t key, std::uint64_t synced_end,
                               std::uint32_t kind);  // kRecordBytes

}  // namespace mq::storage
