// The durable log of one partition replica: the Raft log IS the Kafka partition log
// (DESIGN.md principle 2). Entries carry a Raft index (dense) and the Kafka offsets of the
// batch they hold (never reused); both lookups, and lookup by timestamp, are O(log n):
// binary search over segments, then over a segment's sparse index, then a short scan.
//
// Directory layout ("<dir>/"):
//   <20-digit base index>.log         segment files (segment_format.md)
//   <20-digit base index>.index       offset index of a closed segment (offset_index_format.md)
//   <20-digit base index>.timeindex   time index of a closed segment (time_index_format.md)
//   log.meta                          start index/offset and a pending truncation
//                                     (raft_metadata_format.md)
//   *.tmp                             leftovers of an interrupted atomic replace (removed)
//
// Durability. append() writes entries to the page cache (or, for large appends in mode
// kAlways, to a write-behind buffer that every sync writes out first); they become durable when a sync
// covering them completes: Log::sync(), or a Flusher (flusher.h) that batches fdatasyncs
// over many logs (group commit). synced_index() is the highest index known to be on disk.
// durable_index() is what the caller may acknowledge:
//   - DurabilityMode::kAlways (default): durable_index() == synced_index().
//   - DurabilityMode::kInterval (opt-in, relaxed): durable_index() == last_index(): entries
//     count as durable once written to the OS, and the flusher fsyncs at most every
//     interval_ms. RISK: a power loss or kernel crash (not a process crash) loses up to
//     interval_ms of acknowledged entries on this replica; if a majority of replicas lose
//     power together, acknowledged writes are lost.
//
// Crash rules (what start-up does after a crash at any point):
//   1. Appends: the tail segment is validated entry by entry; the first invalid or partial
//      entry and everything after it is cut (never reported durable: a sync covers whole
//      writes only after they completed). Stale *.tmp files are removed.
//   2. Rolling: the old segment is fsynced before the new one is created, and the new one is
//      created with its header fsynced and the directory fsynced before any entry goes into
//      it. So every segment but the last is complete; a defect in one is kCorruption (named
//      log, segment and position), never a truncation and never a crash of the process.
//   3. Suffix truncation from i: log.meta with truncate_from = i is made durable first, then
//      segments are removed/cut (any order, fsynced), then truncate_from is cleared. A crash
//      in between redoes the truncation at start-up, so removed entries never come back.
//   4. Prefix removal: log.meta with the new start is made durable first, then whole
//      segments below it are removed; start-up removes any that remain.
//   5. Index files are derived: missing or bad ones are rebuilt from the segment.
//   6. A write error (ENOSPC, EIO) during append cuts the segment back to the last good
//      position; the log keeps working. Buffered appends reserve their file space first
//      (File::reserve), so a full disk fails the append (kNoSpace, nothing accepted) and
//      never the later write of the buffer; a failed write of the buffer (EIO) loses entries
//      append() already accepted, so it puts the log in the failed state. A failed fdatasync or a failed roll-back puts the log
//      in a failed state (every later write returns the error) until it is reopened, since
//      the kernel may have dropped the dirty pages (fsyncgate). If the roll-back of a failed
//      append could not be made durable, that append's entries may be present after a
//      restart: an indeterminate outcome (like a timeout), never a torn or foreign entry.
//
// Thread-safety: all methods may be called from any thread (one mutex); fdatasync runs
// outside the mutex so appends continue during a sync. read() and file_slice() (the Raft
// and the Kafka fetch read paths) do their disk I/O without the mutex: it snapshots (under the mutex) the segments covering the range with their sizes
// and the truncation generation, reads and verifies the entries from the files, and keeps
// the result only if no truncation or reset happened meanwhile (appends never change bytes
// below a snapshot's size; removed segments stay readable through the snapshot's
// shared_ptr). Otherwise, or on any read error, it reads again under the mutex (which can
// also rebuild a damaged index). A segment's index structures, which the appender grows,
// have a mutex of their own (segment.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/clock.h"
#include "storage/file_system.h"
#include "storage/metadata_format.h"
#include "storage/segment.h"

namespace mq::storage {

class Flusher;

enum class DurabilityMode : std::uint8_t { kAlways, kInterval };

// LogOptions::zero_fill_window_bytes: the built-in default, and the default in effect
// (RAFTMQ_ZERO_FILL_BYTES overrides it).
inline constexpr std::uint64_t kZeroFillWindowDefault = 0;
// The broker's default for its partition logs (cluster::NodeConfig::zero_fill_window_bytes,
// the `zero-fill-bytes` option).
inline constexpr std::uint64_t kBrokerZeroFillWindowBytes = 2u << 20;
// The broker's default LogOptions::direct_write_depth for its partition logs
// (cluster::NodeConfig::direct_write_depth, the `write-depth` option): in-run A/B pairs put
// depth 2 ahead of depth 1 in every one of six comparisons (docs/storage_testing.md).
inline constexpr std::uint32_t kBrokerDirectWriteDepth = 2;
std::uint64_t default_zero_fill_window_bytes();
// RAFTMQ_ZERO_FILL_BYTES when set, else `fallback`: for a layer with a default of its own (the
// broker's partitions: cluster::NodeConfig::zero_fill_window_bytes).
std::uint64_t zero_fill_window_bytes_or(std::uint64_t fallback);
// LogOptions::zero_fill_sync_bytes_max's default (zero_fill.cc).
std::uint64_t default_zero_fill_sync_bytes_max();

struct LogOptions {
  std::string directory;
  std::string name;  // for error messages, e.g. "orders-3"
  std::uint64_t segment_size_bytes_max = 128ull << 20;
  std::int64_t segment_age_ms_max = 7ll * 24 * 3600 * 1000;
  std::uint64_t index_interval_bytes = 4096;
  std::uint32_t entry_payload_bytes_max = 16u << 20;  // <= segment_format::kPayloadBytesMax
  // Appends fail with kNoSpace when the file system has less free space than this plus the
  // bytes being appended (statvfs; 0 disables the check).
  std::uint64_t free_space_reserve_bytes = 0;
  DurabilityMode durability = DurabilityMode::kAlways;
  // Appends (one call, all entries) of at least this many bytes bypass the page cache
  // (O_DIRECT, where the file system allows it; segment.cc append_direct): on a busy
  // machine the page-cache copy and kernel write-back cap buffered appends far below the
  // device's bandwidth. 0 disables direct appends.
  std::uint64_t direct_append_min_bytes = 128u << 10;
  // Write-behind buffer per log (mode kAlways only; 0 disables; rounded up to 4 KiB): direct
  // appends are copied into it and written as large aligned writes when it fills and right
  // before each fdatasync, so the device sees few large writes instead of one per batch
  // (segment.h, docs/storage_testing.md). Reads see buffered entries; file_slice() writes
  // the buffer out first when asked for entries not yet synced. All buffers of the process
  // share a budget (set_write_buffer_budget_bytes); a log that gets none writes at once.
  std::uint64_t write_buffer_bytes = 4u << 20;
  // Writes of the write-behind buffer's parts (1 MiB each by default) that may be in flight
  // at once for this log (1..3; the ring has four parts). With more than one, the next part
  // is already queued at the device when one completes, and the segment's space is
  // allocated with the file size extended ahead (File::allocate) so that ext4 runs the
  // O_DIRECT writes concurrently (it serializes writes that extend a file). The durable
  // index still only covers bytes whose every earlier write completed OK; a crash can leave
  // a hole of unwritten parts before written ones, which recovery cuts like a torn tail
  // (docs/formats/segment_format.md, "Concurrent-write hole"; only a log opened with depth
  // > 1 accepts such a hole at recovery: with 1 it stays kCorruption, as before). 1 (the
  // library default): one write at a time; the broker uses kBrokerDirectWriteDepth for its
  // partitions (docs/storage_testing.md, "Round 5" and "Broker default").
  std::uint32_t direct_write_depth = 1;
  // Sync coalescing (mode kAlways, write-behind buffer): while a log's buffer parts stream to
  // the file back to back (a producer faster than the device), the flusher lets one
  // fdatasync cover at least this many appended bytes, waiting for further queued part
  // writes for at most sync_coalesce_us_max. A log whose writes stop is synced at once, so
  // this costs latency only to a log that is streaming at the device's bandwidth, where each
  // fdatasync (a device cache flush) otherwise costs a large share of that bandwidth
  // (docs/benchmarks.md, "Storage"). The flusher's round waits meanwhile, so other logs'
  // syncs in the same round wait too. 0 (the default) disables it: on the shared development
  // VM, paired runs showed no consistent throughput gain from halving the fdatasyncs
  // (docs/benchmarks.md), so the latency it may add is not spent by default.
  std::uint64_t sync_coalesce_bytes = 0;
  std::int64_t sync_coalesce_us_max = 20'000;
  // Pre-written segment space (mode kAlways only; 0 disables; src/storage/zero_fill.cc):
  // after a sync, when fewer than half this many bytes of written zeros are left after the
  // tail's last entry, zeros are written (and fdatasynced) up to this far ahead, so that
  // appends overwrite allocated, written blocks and their fdatasync needs no journal commit
  // on ext4 (docs/storage_testing.md, "Pre-written space"). The default comes from the
  // environment variable RAFTMQ_ZERO_FILL_BYTES when set (bytes; 0 disables), else
  // kZeroFillWindowDefault.
  std::uint64_t zero_fill_window_bytes = default_zero_fill_window_bytes();
  // Fills stop while the syncs cover more than this many appended bytes each (a moving
  // average): for a streaming producer the journal commit is a small share of each
  // fdatasync, and the zeros would double the bytes written (and each fill holds up the
  // flusher's round). Default: RAFTMQ_ZERO_FILL_SYNC_BYTES_MAX when set, else 8 KiB (zero_fill.cc).
  std::uint64_t zero_fill_sync_bytes_max = default_zero_fill_sync_bytes_max();
  // Called after each sync that advanced synced_index(), with durable_index(), from the
  // thread that synced (a Flusher thread or a sync() caller), without the log's mutex held.
  std::function<void(LogIndex)> on_durable;
  // Recovery mode "cut at the first damaged entry" (an explicit repair, never the default).
  // A tail segment whose entry fails its checks while a valid entry follows it is corruption,
  // not a torn write: the damaged entry was complete once and may have been acknowledged, so
  // open() fails with kCorruption. With this set, open() instead calls it with what would be
  // cut (DamagedTailCut: the damaged entry's index and the highest index the damaged log held)
  // before cutting anything; if it returns OK the tail is cut at the damaged entry (durably)
  // and the log opens without it; an error aborts the open with nothing cut. The callback
  // lets the caller first record durably what may have been lost (docs/cluster.md, "Replica
  // repair"). Only the tail segment is repaired this way; damage elsewhere stays kCorruption.
  std::function<Status(const DamagedTailCut&)> on_damaged_tail_cut;
};

// Kafka offset / timestamp lookups: the entry found.
struct EntryRef {
  LogIndex index;
  Term term;
  KafkaOffset base_offset;
  KafkaOffset last_offset;
  std::int64_t max_timestamp = -1;
};

// Bytes of a range of batches, for sendfile(): the payloads of consecutive entries of one
// segment. Entries are separated by our headers on disk, so a slice is a list of extents.
// `file` keeps the descriptor open while the slice is used (even if the segment is removed).
struct FileSlice {
  struct Extent {
    std::uint64_t position;
    std::uint64_t length;
    // The extent's bytes when the tail's write-behind buffer still held them (then the
    // caller sends these rather than reading the file: the page cache does not have them).
    SharedBuffer bytes;
  };
  std::shared_ptr<File> file;
  int fd = -1;  // file->native_handle(); -1 for in-memory files
  std::vector<Extent> extents;
  std::uint64_t total_bytes = 0;
  LogIndex first_index;
  LogIndex last_index;
  // The file's bytes below this are written to it (not only in the write-behind buffer) as of
  // the slice, and `generation` is the log's truncation generation then: bytes below
  // written_end read later from the same file are the same while the log's generation is
  // (only a truncation changes written bytes). For read-ahead (cluster/fetch_read_ahead.h).
  std::uint64_t written_end = 0;
  std::uint64_t generation = 0;
  KafkaOffset first_offset;  // base offset of the first batch
  KafkaOffset last_offset;   // last offset of the last batch
};

struct RetentionPolicy {
  std::uint64_t bytes_max = UINT64_MAX;     // keep at most this many bytes (whole segments)
  std::int64_t age_ms_max = INT64_MAX;      // remove segments whose newest data is older
  LogIndex removable_below = LogIndex::max();  // never remove entries at or above this
};

// Segment rewrite (log compaction of e.g. __consumer_offsets): what to do with one entry.
// Raft indexes, terms, Kafka offsets and timestamps of entries never change; only payloads.
struct RewriteDecision {
  enum class Action : std::uint8_t {
    kKeep,     // payload as is
    kReplace,  // payload := replacement (e.g. a batch without the superseded records)
    kEmpty,    // keep the entry with an empty payload (every record superseded)
  };
  Action action = Action::kKeep;
  Buffer replacement;
};
using RewriteTransform = std::function<Result<RewriteDecision>(const EntryHeader&, BufferView payload)>;

struct SegmentSummary {
  LogIndex base_index;
  LogIndex last_index;
  std::uint64_t size_bytes = 0;
  bool closed = false;
  std::size_t index_entries = 0;
};

class Log {
 public:
  struct IndexWriterHandle;  // log.cc: a log's place in the index writer thread's queue
  // Opens (creating if needed) and recovers the log in options.directory. flusher may be
  // null (then only sync() makes entries durable).
  static Result<std::unique_ptr<Log>> open(FileSystem* fs, Clock* clock, LogOptions options,
                                           Flusher* flusher = nullptr);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // last_index(), start_offset(), next_offset(), durable_index() and a healthy health() read
  // values published under the log's lock without taking it (the event loop calls them for
  // every Fetch and Ready while the flusher may hold the lock; see publish_locked()).
  LogIndex first_index() const;  // first entry held (start index)
  LogIndex last_index() const;   // first_index() - 1 when empty
  KafkaOffset start_offset() const;  // Kafka log start offset
  KafkaOffset next_offset() const;   // Kafka log end offset (next offset to assign)
  LogIndex synced_index() const;
  LogIndex durable_index() const;
  std::uint64_t size_bytes() const;
  std::vector<SegmentSummary> segments() const;
  Status health() const;  // OK, or the error that put the log in the failed state
  // Asserts the invariants stated on the fields (aborts on a broken one). Called after every
  // mutation in debug/sanitizer builds and by the tests.
  void check_invariants() const;
  const LogOptions& options() const { return options_; }

  // Appends entries: indexes contiguous from last_index()+1, terms non-decreasing, Kafka
  // offsets increasing (base_offset >= next_offset()). Errors: kInvalidArgument,
  // kLimitExceeded (payload too large), kNoSpace (disk full or reserve reached), kIoError.
  // On error the log holds a prefix of `entries` (possibly none): last_index() says which.
  Status append(std::span<const AppendEntry> entries);
  // Makes everything appended so far durable (fdatasync), then calls on_durable.
  Status sync();
  // Closes the tail segment and starts a new one at the next append.
  Status roll();
  // Whether the tail's written parts are kept in the process's read cache for readers
  // (storage/read_cache.h; a partition's leader). Off (the default) also drops what the cache
  // holds of this log.
  void set_read_cache(bool on);

  // Term of entry i (first_index() <= i <= last_index()), else kOutOfRange.
  Result<Term> term(LogIndex index);
  // Entries in [lo, hi): at least one if lo < hi, then no more than bytes_max in total
  // (stored sizes). Every entry's checksums are verified (kCorruption otherwise).
  Result<std::vector<ReadEntry>> read(LogIndex lo, LogIndex hi, std::uint64_t bytes_max);
  // The first entry whose last offset is >= offset. kOutOfRange below start_offset();
  // nullopt at or above next_offset().
  Result<std::optional<EntryRef>> lookup_offset(KafkaOffset offset);
  // The first entry whose max timestamp is >= timestamp; nullopt if none.
  Result<std::optional<EntryRef>> lookup_timestamp(std::int64_t timestamp);
  // Payload extents of the entries from the one holding `offset`, below index hi, within one
  // segment, at least one entry and then no more than bytes_max payload bytes.
  Result<FileSlice> file_slice(KafkaOffset offset, LogIndex hi, std::uint64_t bytes_max);

  // Removes entries [from, last_index()] (Raft conflict, §5.3). first_index() <= from.
  Status truncate_suffix(LogIndex from);
  // Removes entries below new_first (first_index() <= new_first <= last_index() + 1).
  Status remove_prefix(LogIndex new_first);
  // Drops everything; the next append is at next_index with offsets from next_offset
  // (installing a snapshot that is ahead of the log, §7).
  Status reset(LogIndex next_index, KafkaOffset next_offset);
  // Removes whole old segments by size and age (never the tail). Returns the new first index.
  Result<LogIndex> apply_retention(const RetentionPolicy& policy);

  // Rewrites the closed segment whose base index is segment_base (log_rewrite.cc), calling
  // `transform` on each entry's payload in order. The segment must end below `below` (e.g.
  // the index up to which the compacting state machine has applied). The new segment is
  // written to "<stem>.log.tmp", fsynced, its old index files removed (durably), renamed
  // over the old one, the directory fsynced, and its indexes rebuilt: a crash at any step
  // leaves the old segment or the new one, never a mix (a leftover *.tmp is removed at
  // start-up). Errors: kNotFound (no such closed segment), kInvalidArgument (not below
  // `below`, or a replacement too large), kAborted (truncated or removed meanwhile; nothing
  // changed), the transform's own error, I/O errors. Reads continue meanwhile; the final swap
  // holds the log's mutex.
  Status rewrite_segment(LogIndex segment_base, LogIndex below, const RewriteTransform& transform);

 private:
  friend class Flusher;
  Log(FileSystem* fs, Clock* clock, LogOptions options, Flusher* flusher);
  Status recover();
  Result<std::vector<LogIndex>> scan_directory_locked();
  Status load_meta_locked(bool segments_exist);
  Result<std::vector<LogIndex>> drop_interrupted_by_name_locked(const std::vector<LogIndex>& bases);
  Status finish_interrupted_locked();
  Status load_segments(const std::vector<LogIndex>& bases);
  Status write_meta_locked(const LogMetaRecord& meta);
  Status physical_truncate_locked(LogIndex from);
  Status roll_locked();
  // deferred: neither the new file nor the directory is synced here; the next sync of the log
  // does both before it reports anything durable (roll_locked, on the append path).
  Result<std::unique_ptr<Segment>> create_segment_locked(LogIndex base_index,
                                                         bool deferred = false);
  // Writes the index files of closed segments that roll_locked left to it, off the append
  // path and off the flusher's thread: the process's index writer thread (log.cc), and ~Log.
  // One call at a time per log.
  void write_pending_index_files();
  Status validate_append_locked(std::span<const AppendEntry> entries) const;
  bool needs_roll_locked(const Segment& segment, const AppendEntry& entry) const;
  void refresh_tail_state_locked();
  // Copies what last_index(), start_offset(), next_offset(), durable_index() and health()
  // report into their lock-free mirrors; called under mutex_ after every change of meta_,
  // next_offset_, synced_index_, last_index_ or failed_ (check_invariants_locked() checks the
  // mirrors).
  void publish_locked();
  void update_running_max_locked(std::size_t from);
  std::size_t segment_for_index_locked(LogIndex index) const;
  Result<std::optional<std::pair<std::size_t, EntryLocation>>> locate_offset_locked(KafkaOffset offset);
  Status check_read_range_locked(LogIndex lo, LogIndex hi) const;
  Result<std::vector<ReadEntry>> read_locked(LogIndex lo, LogIndex hi, std::uint64_t bytes_max);
  Result<FileSlice> file_slice_locked(KafkaOffset offset, LogIndex hi, std::uint64_t bytes_max);
  Status write_out_below_locked(LogIndex hi);
  Status fail_locked(Status status);
  void check_invariants_locked() const;
  Status check_writable_locked() const;
  LogIndex durable_index_locked() const;
  // Sync for the flusher (all=false) and sync() (all=true): returns whether an fdatasync was
  // issued. It is prepare_sync(), File::sync() of the pending file, finish_sync() and
  // after_sync(); the flusher calls the steps itself to share one flush among logs.
  Result<bool> sync_internal(bool all);
  struct PendingSync {
    std::shared_ptr<File> file;  // the tail segment's file, its bytes for `target` written
    LogIndex target;             // the sync makes entries up to here durable
    std::uint64_t generation = 0;
    std::uint64_t mark = 0;  // appended_bytes_ when prepared
    bool more = false;       // entries beyond target wait in the write-behind buffer
    // Every byte written since the last sync overwrote pre-written, synced space
    // (Segment::begin_sync_overwrites_only): write_out() and a sync() of another file of the
    // same flush domain make them durable.
    bool overwrites_only = false;
    // Non-zero: the directory must be synced too (a segment created by a roll since the last
    // directory sync), before anything is reported durable.
    std::uint64_t dir_epoch = 0;
  };
  // Writes what the sync of `all` covers to the file; nullopt when nothing is unsynced.
  Result<std::optional<PendingSync>> prepare_sync(bool all);
  // After the sync (or the shared flush) of `pending` ended with `synced`: records the
  // durable index and reports it (on_durable); a failure fails the log. Returns the bytes
  // the sync covered (for after_sync); nullopt when the log was truncated meanwhile.
  Result<std::optional<std::uint64_t>> finish_sync(const PendingSync& pending,
                                                   const Status& synced);
  // Work after a sync, off the acknowledgement's path (refilling pre-written space).
  void after_sync(std::uint64_t bytes_synced);
  // After a sync that covered `bytes_synced` appended bytes: refills the tail's pre-written
  // zeros if needed (zero_fill.cc).
  void fill_zero_window(std::uint64_t bytes_synced);

  FileSystem* fs_;
  Clock* clock_;
  LogOptions options_;
  Flusher* flusher_;
  SegmentOptions segment_options_;

  mutable std::mutex mutex_;
  LogMetaRecord meta_;
  // Invariant: segments_ sorted by base index, contiguous; only the last may be a tail.
  // shared_ptr: a lock-free reader (read()) keeps the segments it reads alive.
  std::vector<std::shared_ptr<Segment>> segments_;
  // running_max_timestamp_[k]: largest max_timestamp of segments 0..k (non-decreasing, so
  // lookup_timestamp can binary-search the segments). Same length as segments_.
  std::vector<std::int64_t> running_max_timestamp_;
  // Invariant: first_index_ - 1 <= synced_index_ <= last_index_.
  LogIndex last_index_;
  Term last_term_;
  KafkaOffset next_offset_;
  LogIndex synced_index_;
  bool read_cache_ = false;
  std::uint64_t generation_ = 0;  // bumped by truncation/reset: a sync in flight is stale
  // Rolls that leave the syncs of their new segment and of the directory, and the old
  // segment's index files, to the flusher's thread (a flusher and mode kAlways: the event
  // loop that appends does not wait for three fdatasyncs per roll). dir_created_epoch_
  // counts segments created so; dir_synced_epoch_ the newest a directory sync covered.
  bool deferred_rolls_ = false;
  std::uint64_t dir_created_epoch_ = 0;
  std::uint64_t dir_synced_epoch_ = 0;
  std::mutex index_writer_mutex_;                    // write_pending_index_files: one at a time
  std::shared_ptr<IndexWriterHandle> index_writer_;  // this log's place in the writer's queue
  // Bytes appended since open (entry headers included), and their count when the newest
  // completed fdatasync was taken: sync coalescing (LogOptions::sync_coalesce_bytes).
  std::uint64_t appended_bytes_ = 0;
  std::uint64_t synced_bytes_mark_ = 0;
  std::uint64_t sync_bytes_average_ = 0;  // appended bytes per sync, moving average
  Status failed_;
  // Mirrors for the event loop's frequent reads (publish_locked): they must not wait for
  // mutex_, which the flusher holds across the direct write of the buffered tail before an
  // fdatasync (hundreds of µs; docs/benchmarks.md, "The event loop waited for the log's
  // lock"). Relaxed order is enough: each is one value read on its own.
  std::atomic<std::int64_t> start_offset_published_{0};
  std::atomic<std::int64_t> next_offset_published_{0};
  std::atomic<std::uint64_t> last_index_published_{0};
  std::atomic<std::uint64_t> durable_index_published_{0};
  std::atomic<bool> failed_published_{false};
};

}  // namespace mq::storage
