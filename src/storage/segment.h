// One segment: a file of Raft entries (segment_format.h) with its sparse offset and time
// indexes. A Segment is either the tail (the log's last segment: appended to, its index kept
// in memory, no index files on disk) or closed (immutable; its index in "<stem>.index" and
// "<stem>.timeindex", read with pread binary searches, so memory does not grow with the log).
// If a closed segment's index files cannot be written or read back, its index is kept in
// memory instead (rebuilt by scanning the segment once).
//
// Not thread-safe: the owning Log serializes calls. File handles are shared_ptrs so a
// concurrent fdatasync (the flusher) or a file slice being sent keeps them alive.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"
#include "storage/file_system.h"
#include "storage/index_format.h"
#include "storage/segment_format.h"

namespace mq::storage {

// An entry handed to Log::append. The payload is stored verbatim (for kRecordBatch a Kafka v2
// record batch whose offsets and leader epoch the caller has already stamped).
struct AppendEntry {
  Term term;
  LogIndex index;
  EntryKind kind = EntryKind::kRecordBatch;
  KafkaOffset base_offset;
  std::uint32_t last_offset_delta = 0;  // records in the batch - 1
  std::int64_t max_timestamp = -1;
  BufferView payload;
};

// An entry read back, checksums verified.
struct ReadEntry {
  EntryHeader header;
  SharedBuffer payload;
};

struct EntryLocation {
  std::uint64_t position = 0;  // of the entry header within the segment file
  EntryHeader header;
};

// Recovery mode "cut at the first damaged entry" (LogOptions::on_damaged_tail_cut): what a
// cut of a tail segment at a damaged entry that has valid entries after it removes.
struct DamagedTailCut {
  std::string segment;             // path of the tail segment
  std::uint64_t position = 0;      // where the damaged entry starts: the file is cut here
  std::uint64_t bytes_removed = 0;
  LogIndex first_cut;              // index of the damaged entry: the first index removed
  // The highest index a valid entry after the damage carries: the log held (and this replica
  // may have acknowledged) entries up to here before the damage.
  LogIndex last_index_before;
  std::string damage;              // the kCorruption message a normal open reports
};

struct SegmentOptions {
  std::string log_name;                       // for error messages
  std::uint64_t index_interval_bytes = 4096;  // bytes of entries between two index entries
  // Appends of at least this many bytes go through File::write_direct (bypassing the page
  // cache, see append_direct); 0: never.
  std::uint64_t direct_append_min_bytes = 0;
  // Write-behind buffer of the tail (segment_write.cc), a multiple of kDirectIoAlignment; 0:
  // none. Direct appends, and every append after one while the buffer holds data, are copied
  // into it and written to the file in large aligned writes: when it is full, and by
  // flush_buffer() (before every sync). The space is reserved (File::reserve) before an
  // append is accepted, so a full disk fails the append, never the later write.
  std::uint64_t write_buffer_bytes = 0;
  // Part writes of the write-behind buffer in flight at once (1..3, LogOptions). Above 1,
  // space is allocated with File::allocate (the file size moves ahead of the entries) where
  // the file system offers it, and load_tail cuts a concurrent-write hole as a torn tail.
  std::uint32_t direct_write_depth = 1;
  // Pre-written space (segment_fill.cc): keep about this many bytes of zeros, written and
  // fdatasynced, after the last entry of the tail, so that page-cache appends overwrite
  // allocated, written blocks and their fdatasync needs no journal commit. 0: none. The
  // zeros are written by fill jobs (plan_fill/run_fill), off the append path.
  std::uint64_t zero_fill_window_bytes = 0;
  // Null: a damaged tail entry followed by a valid one is kCorruption (the default). Set: it
  // is called with what would be cut, before anything is cut; if it returns OK the tail is
  // cut at the damaged entry (durably) and OpenReport::damaged_cut says so.
  std::function<Status(const DamagedTailCut&)> on_damaged_tail_cut;
};

// Process-wide cap on the memory of all write-behind buffers (default 128 MiB). A segment
// that cannot get a buffer within it writes its direct appends at once instead.
void set_write_buffer_budget_bytes(std::uint64_t bytes);
std::uint64_t write_buffer_bytes_in_use();

class Segment {
 public:
  // Creates "<dir>/<stem>.log" with its header, fsyncs it (the caller fsyncs the directory).
  // On error the file is removed; *sync_failed says the error came from fdatasync (after
  // which the caller must treat the directory state as unknown). With sync = false the
  // header is only written: the first sync of the file makes it durable (until then a crash
  // leaves a leftover, see open()).
  static Result<std::unique_ptr<Segment>> create(FileSystem* fs, const std::string& dir,
                                                 LogIndex base_index, std::int64_t created_ms,
                                                 const SegmentOptions& options, bool* sync_failed,
                                                 bool sync = true);

  // Opens an existing segment at start-up.
  //  tail:   every entry is validated (header and payload CRC, contiguous indexes, offsets);
  //          the file is cut at the first invalid or partial entry (a torn write) and the
  //          index is rebuilt in memory; stale index files are removed.
  //  closed: the index files are validated (rebuilt if missing or bad) and the entries after
  //          the last indexed one are validated; any defect is kCorruption (a closed segment
  //          was fully fsynced when the log rolled past it).
  // A file shorter than a header, or holding only a zero header, is a segment whose
  // creation never became durable (tail or not): report->leftover is set and nothing is
  // opened; the caller removes it.
  struct OpenReport {
    bool leftover = false;
    std::uint64_t torn_bytes_removed = 0;
    // The torn tail was a hole left by concurrent part writes (zero blocks before written
    // bytes of entries never reported durable), cut with it.
    bool concurrent_write_hole = false;
    bool index_rebuilt = false;
    // zero_fill_window_bytes > 0 only: zeros after the last entry kept as pre-written space
    // (a clean end of the log, not a torn tail; without a window they are cut as torn).
    std::uint64_t zero_tail_bytes = 0;
    std::optional<DamagedTailCut> damaged_cut;  // SegmentOptions::on_damaged_tail_cut only
  };
  static Result<std::unique_ptr<Segment>> open(FileSystem* fs, const std::string& dir,
                                               LogIndex base_index, bool tail,
                                               const SegmentOptions& options,
                                               OpenReport* report);

  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  LogIndex base_index() const { return base_index_; }
  LogIndex last_index() const { return last_index_; }  // base_index - 1 when empty
  bool empty() const { return last_index_ < base_index_; }
  Term last_term() const { return last_term_; }
  KafkaOffset first_offset() const { return first_offset_; }  // valid when !empty()
  KafkaOffset last_offset() const { return last_offset_; }    // valid when !empty()
  std::int64_t max_timestamp() const { return max_timestamp_; }  // -1 when none
  std::int64_t created_ms() const { return created_ms_; }
  std::uint64_t size_bytes() const { return size_; }
  bool closed() const { return closed_; }
  const std::string& path() const { return path_; }
  std::shared_ptr<File> file() const { return file_; }
  // A copy of the file's bytes [position, position + length) when the write-behind buffer
  // still holds all of them (the newest few MiB of the tail: its writes are direct, so the
  // page cache does not hold them and a read of the file goes to the disk); nullopt
  // otherwise. Any thread, like reads; the caller checks the log's generation afterwards.
  std::optional<SharedBuffer> copy_buffered(std::uint64_t position, std::uint64_t length) const;
  // The file's bytes [position, position + length) when the read cache holds all of them
  // (written parts this segment handed over, read_cache.h): shared, not copied, when one
  // block holds them. Any thread; the caller checks the log's generation afterwards.
  std::optional<SharedBuffer> cached(std::uint64_t position, std::uint64_t length) const;
  // Whether written parts of the write-behind buffer go to the read cache (a leader's log);
  // off also drops what the cache holds of this segment. Under the log's mutex.
  void set_read_cache(bool on);

  // Appends entries (already validated by the log: contiguous, monotonic) without syncing.
  // On error nothing of this call remains: the file is cut back to its previous size. If
  // even that fails, *broken is set and the segment must not be used any more.
  // With a write-behind buffer, appended bytes may only be in memory until flush_buffer();
  // reads see them (reads go through a view of the file with the buffer on top).
  Status append(std::span<const AppendEntry> entries, bool* broken);
  // Writes what the write-behind buffer holds to the file (no sync; the caller syncs after
  // it). An error leaves the buffered entries unwritten: the caller fails the log.
  Status flush_buffer();
  // Bytes below size_bytes() that are only in the write-behind buffer.
  bool has_unwritten_bytes() const { return written_end_ < size_; }
  // The file holds every byte below this (the rest of size_bytes() is in the buffer).
  std::uint64_t written_bytes() const { return written_end_; }
  // The last entry wholly on the file (the flusher may sync just those while the buffer
  // keeps filling).
  LogIndex written_index() const { return written_end_ < size_ ? written_index_ : last_index_; }
  // After the write in flight is done (wait_for): takes the results of every queued write
  // (waiting for any still running). An error: the caller fails the log.
  Status finish_write_in_flight();
  Status sync();
  // Before the tail is closed: writes the write-behind buffer out and releases it, then cuts
  // the zero padding that direct appends leave after the last entry and any reserved space
  // (the file then ends at size_bytes()); the caller syncs.
  Status trim_padding();

  // Closes the tail, which the caller has fsynced: writes and fsyncs the index files (the
  // index stays in memory if that fails; index files are derived data).
  void close_for_append();
  // Closes the tail like close_for_append() but leaves its index files to a later
  // write_index_files_unlocked() (off the append path, see Log::write_pending_index_files):
  // until then the index stays in memory, as after a failed index write.
  void close_for_append_deferred();
  bool index_files_pending() const { return index_files_pending_; }
  // Under the log's mutex: takes the pending index write (index_files_pending() is then
  // false) and returns its ticket for the two calls below.
  std::uint64_t take_index_job();
  // Index files written by write_index_files_unlocked(), not yet in use.
  struct IndexFiles {
    std::shared_ptr<File> offsets;
    std::shared_ptr<File> times;
    std::size_t count = 0;
  };
  // Without the log's mutex: writes and fdatasyncs the index files of this closed segment.
  // nullopt when the ticket is stale (the segment was cut or removed since take_index_job()).
  Result<std::optional<IndexFiles>> write_index_files_unlocked(std::uint64_t ticket);
  // Under the log's mutex: the index moves to `files` if the ticket is still current;
  // otherwise the files are removed (the segment was cut or removed meanwhile).
  void install_index_files(std::uint64_t ticket, IndexFiles files);

  // Cuts the file so that `from` (base_index <= from <= last_index + 1) becomes the next
  // index, and fsyncs it. A closed segment becomes a tail again (index files removed).
  Status truncate_from(FileSystem* fs, LogIndex from);

  Status remove_files(FileSystem* fs);

  // Lookups (precondition: not empty). O(log n) over the sparse index, then a scan of at most
  // about index_interval_bytes of headers.
  Result<EntryLocation> locate_index(LogIndex index);
  // The first entry whose last offset is >= offset; nullopt if none in this segment.
  Result<std::optional<EntryLocation>> locate_offset(KafkaOffset offset);
  // The first entry whose max_timestamp is >= timestamp; nullopt if none in this segment.
  Result<std::optional<EntryLocation>> locate_timestamp(std::int64_t timestamp);

  // Reads and verifies the entry at `position` (its header must say `expected_index`).
  Result<ReadEntry> read_entry(std::uint64_t position, LogIndex expected_index);
  Result<EntryHeader> read_header(std::uint64_t position, LogIndex expected_index);

  // Lock-free reads (Log::read without the log's mutex, concurrent with appends to this
  // segment): the caller passes the segment's size as of a snapshot taken under the log's
  // mutex and reads only below it; the index is consulted under index_mutex_. Errors
  // (including those of a concurrent truncation) send the caller back to the locked path.
  Result<EntryLocation> locate_index_within(LogIndex index, std::uint64_t size_limit);
  Result<EntryHeader> read_header_within(std::uint64_t position, LogIndex expected_index,
                                         std::uint64_t size_limit);
  Result<ReadEntry> read_entry_within(std::uint64_t position, LogIndex expected_index,
                                      std::uint64_t size_limit);
  // The first entry below size_limit whose last offset is >= offset; nullopt if none.
  // first_offset: the segment's first offset (snapshot; the segment is not empty).
  Result<std::optional<EntryLocation>> locate_offset_within(KafkaOffset offset,
                                                            KafkaOffset first_offset,
                                                            std::uint64_t size_limit);

  // Index introspection for tests and the dump tool.
  std::size_t index_entry_count() const;
  bool index_in_memory() const { return index_in_memory_; }

  std::string describe_position(std::uint64_t position) const;  // "log x segment y position z"

  // Pre-written space (segment_fill.cc). A fill job writes zeros over [from, to) of the
  // file and fdatasyncs them, without the log's mutex; meanwhile appends stay below `from`
  // (an append that would reach it waits for the job first).
  struct FillJob;
  // Under the log's mutex: takes the result of a finished fill job (an error: the fill's
  // fdatasync failed, the log must fail), then, when the tail's zero window has shrunk
  // below half and at most `bytes_allowed` bytes are needed, starts a new job (null if none)
  // filling up to about window bytes past the last entry (never past end_max).
  Result<std::shared_ptr<FillJob>> plan_fill(std::uint64_t end_max, std::uint64_t bytes_allowed);
  // The bytes plan_fill would fill now (0: none).
  std::uint64_t fill_bytes_needed(std::uint64_t end_max) const;
  // Without the log's mutex: writes the zeros and syncs them. A failed write is cut back.
  static void run_fill(const std::shared_ptr<FillJob>& job);
  // Under the log's mutex, after run_fill: takes the job's result (see plan_fill).
  Status collect_fill(const std::shared_ptr<FillJob>& job);
  // Zeros known to be written after the last entry (what appends can use without growing
  // the file).
  std::uint64_t zero_window_bytes() const { return filled_end_ > size_ ? filled_end_ - size_ : 0; }
  // The file's length as written (entries plus pre-written zeros): for tests and the
  // dump tool's checks.
  std::uint64_t filled_end() const { return filled_end_; }
  // Under the log's mutex, right before the file is synced for the bytes on it
  // (written_end_): whether every byte written since the previous call overwrote pre-written
  // zeros that this process wrote and synced (a completed fill job, not zeros merely found
  // at recovery, which may be fallocate()d space), so that no metadata is needed to read them
  // back after a crash and a device flush makes them durable (File::write_out, then any
  // sync() of the same flush domain; docs/storage_testing.md, "One flush per round").
  bool begin_sync_overwrites_only();

  struct TailBuffer;  // the write-behind buffer (defined in segment_write.cc)
  struct WriteJob;    // a background write of a full part of it
  // The newest queued background write, if any (to wait for it without the log's mutex,
  // then call finish_write_in_flight() or flush_buffer() under it).
  std::shared_ptr<WriteJob> write_in_flight() const;
  static void wait_for(const std::shared_ptr<WriteJob>& job);

 private:
  Segment(FileSystem* fs, std::string dir, LogIndex base_index, SegmentOptions options);

  struct IndexPoint {
    OffsetIndexEntry offset;
    TimeIndexEntry time;
  };
  Status load_tail(OpenReport* report);
  Status load_closed(OpenReport* report);
  // Cut mode of load_tail: the entry at `position` is damaged and a valid one follows at
  // `follower`; describes the cut, asks options_.on_damaged_tail_cut, records it in `report`.
  Status accept_damaged_tail_cut(std::uint64_t position, std::uint64_t follower,
                                 std::uint64_t file_size, Status damage, OpenReport* report);
  Status load_index_files();
  Status rebuild_index_by_scan(std::uint64_t end);
  Status write_index_files();
  // Encodes the in-memory index and writes and fdatasyncs both index files (no install).
  Result<IndexFiles> write_index_file_pair();
  // The index moves from memory to `files` (under the log's mutex).
  void use_index_files(IndexFiles files);
  // Makes every ticket taken so far stale (a cut, a removal, a new close), waiting for a
  // write_index_files_unlocked() in progress.
  void invalidate_index_jobs();
  void remove_index_files_quietly();
  void note_entry(std::uint64_t position, const EntryHeader& header);
  Result<IndexPoint> index_point(std::size_t i);
  std::size_t index_count() const;
  // Largest i with pred(point i) true, assuming pred is true then false along the index;
  // nullopt when false at 0. Falls back to an in-memory rebuild on a bad index entry.
  template <typename Pred>
  Result<std::optional<std::size_t>> index_floor(Pred pred);
  // File position where a forward scan for the entry that `pred` locates starts: the last
  // sparse-index point satisfying `pred`, or the first entry when none does.
  template <typename Pred>
  Result<std::uint64_t> scan_start(Pred pred);
  Status corruption_at(std::uint64_t position, const Status& cause) const;
  // Writes headers and payloads through aligned direct-I/O writes. kUnsupported: nothing
  // was written, use write_at.
  Status append_direct(std::span<const BufferView> pieces, std::uint64_t bytes);
  // Copies into the write-behind buffer (writing it whenever it fills), computing the
  // payload CRCs (headers[i].payload_crc) while copying. kUnsupported: nothing changed, write
  // at once instead (no buffer within the budget, or no space reservation). kNoSpace and
  // other errors before any write: nothing changed; *broken after a failed write.
  Status append_buffered(std::span<const AppendEntry> entries, std::span<EntryHeader> headers,
                         std::uint64_t bytes, bool* broken);
  Status put_buffered(const std::uint8_t* src, std::size_t n, std::uint32_t* crc,
                      LogIndex covered, std::size_t* pending);
  void patch_buffered(std::uint64_t position, const std::uint8_t* src, std::size_t n);
  Status reserve_for(std::uint64_t end);
  // Waits for the fill job in flight, if any, and takes its result.
  Status wait_fill();
  // The file was cut at or below size_: no zeros are known after it any more.
  void drop_fill_window() {
    filled_end_ = 0;
    prewritten_from_ = 0;
    prewritten_to_ = 0;
  }
  bool buffer_active() const;  // the write-behind buffer is allocated
  Status activate_buffer();
  Status retire_sealed();
  Status retire_oldest();
  Status switch_parts();
  void start_write(std::size_t k, LogIndex covered);
  void release_buffer();
  // Sets file_ and the read view over it (reader_); called once the file is open.
  void attach_file(std::shared_ptr<File> file);

  FileSystem* fs_;
  const std::uint64_t cache_key_;  // this segment's blocks in the read cache
  bool read_cache_ = false;
  std::string dir_;
  std::string path_;
  SegmentOptions options_;
  std::shared_ptr<File> file_;
  LogIndex base_index_;
  LogIndex last_index_;
  Term last_term_;
  KafkaOffset first_offset_;
  KafkaOffset last_offset_;
  std::int64_t max_timestamp_ = -1;
  std::int64_t created_ms_ = 0;
  std::uint64_t size_ = 0;  // Invariant: size_ == end of the last valid entry in the file.
  bool closed_ = false;
  std::uint64_t writeback_position_ = 0;  // write-back started below this position
  // Direct appends. They rewrite the partial last block of the file (its bytes kept in
  // tail_block_: [size_ rounded down to kDirectIoAlignment, size_)) and pad the last block
  // with zeros; padded_ says the file may extend beyond size_ (zeros only).
  bool direct_unsupported_ = false;
  bool tail_block_valid_ = false;
  bool padded_ = false;
  Buffer tail_block_;
  // Write-behind buffer (segment_write.cc). Invariants: the file holds every byte below
  // written_end_ (<= size_); when the buffer is allocated its parts hold [start, size_),
  // start block-aligned and at or below written_end_ (a sealed part being written counts as
  // not written until retired). reader_ reads the file with the
  // buffer's bytes on top, for every read of entries (also the lock-free ones).
  std::shared_ptr<TailBuffer> buffer_;
  std::shared_ptr<File> reader_;
  std::uint64_t written_end_ = 0;
  LogIndex written_index_;  // every entry up to here is on the file (when written_end_ < size_)
  std::uint64_t reserved_end_ = 0;  // space reserved up to here (0: none known)
  bool reserve_unsupported_ = false;
  bool allocate_unsupported_ = false;  // File::allocate refused: reserve() instead
  // Pre-written zeros: the file holds zeros (written; synced once the fill job that wrote
  // them completed) over [size_, filled_end_) when filled_end_ > size_.
  std::uint64_t filled_end_ = 0;
  // The contiguous range of zeros written and synced by completed fill jobs of this process
  // (block-aligned; empty when prewritten_to_ == 0), and written_end_ at the last
  // begin_sync_overwrites_only(): what begin_sync_overwrites_only() checks.
  std::uint64_t prewritten_from_ = 0;
  std::uint64_t prewritten_to_ = 0;
  std::uint64_t sync_mark_ = 0;
  std::shared_ptr<FillJob> fill_job_;  // in flight (or finished, not yet collected)
  std::uint64_t fill_from_ = 0;        // where fill_job_'s zeros start
  std::uint32_t fill_backoff_ = 0;     // plans to skip after a fill failed for lack of space

  // Position of the last index point at or below `index` (the segment header's end if
  // none), for lock-free reads.
  Result<std::uint64_t> index_floor_within(LogIndex index, std::uint64_t size_limit);
  // The same by Kafka offset (relative to first_offset).
  Result<std::uint64_t> offset_floor_within(KafkaOffset offset, KafkaOffset first_offset,
                                            std::uint64_t size_limit);
  // Shared by both: the last point for which `at_or_below(relative index, relative offset)`.
  template <typename Pred>
  Result<std::uint64_t> floor_within(Pred at_or_below, std::uint64_t size_limit);

  // Index. Invariant: when index_in_memory_, points_ covers the whole segment; otherwise the
  // index files hold file_index_count_ entries and points_ is empty. Changes to the five
  // fields below happen under the log's mutex and index_mutex_; lock-free readers hold only
  // index_mutex_ (every point is the position of a real entry, so a reader that sees a
  // partly rebuilt index only scans a little further).
  mutable std::mutex index_mutex_;
  bool index_in_memory_ = true;
  std::vector<IndexPoint> points_;
  std::uint64_t last_indexed_position_ = 0;
  std::shared_ptr<File> offset_index_file_;
  // Deferred index files (close_for_append_deferred): index_job_mutex_ is held by
  // write_index_files_unlocked() for its whole write and by invalidate_index_jobs(); the
  // ticket (index_job_epoch_) says which close the write belongs to.
  bool index_files_pending_ = false;
  std::mutex index_job_mutex_;
  std::uint64_t index_job_epoch_ = 0;
  std::shared_ptr<File> time_index_file_;
  std::size_t file_index_count_ = 0;
};

}  // namespace mq::storage
