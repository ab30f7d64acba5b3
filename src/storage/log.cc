#include "storage/log.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <thread>

#include "storage/flusher.h"
#include "storage/metadata.h"

namespace mq::storage {

using segment_format::kEntryHeaderSize;
using segment_format::kSegmentHeaderSize;

// The index files of segments closed by deferred rolls are written by one thread of the
// process (a few per second under load, each two small files and two fdatasyncs): neither
// the event loop that appends nor the flusher, whose rounds every log's acknowledgements
// wait for, spends the time.
struct Log::IndexWriterHandle {
  std::mutex mutex;  // held while the writer works for the log; ~Log takes it to detach
  Log* log = nullptr;
  std::atomic<bool> queued{false};
  void write() {
    std::lock_guard attached(mutex);
    if (log != nullptr) log->write_pending_index_files();
  }
};

namespace {

class IndexFileWriter {
 public:
  static IndexFileWriter& instance() {
    static IndexFileWriter* writer = new IndexFileWriter();  // lives as long as the process
    return *writer;
  }
  void submit(const std::shared_ptr<Log::IndexWriterHandle>& handle) {
    if (handle->queued.exchange(true)) return;  // already waiting: it will find this one too
    std::lock_guard lock(mutex_);
    queue_.push_back(handle);
    if (!started_) {
      started_ = true;
      std::thread([this] { run(); }).detach();
    }
    cv_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      std::shared_ptr<Log::IndexWriterHandle> handle;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        handle = std::move(queue_.front());
        queue_.pop_front();
      }
      handle->queued = false;  // a roll from now on queues the log again
      handle->write();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Log::IndexWriterHandle>> queue_;
  bool started_ = false;
};

}  // namespace

Log::Log(FileSystem* fs, Clock* clock, LogOptions options, Flusher* flusher)
    : fs_(fs), clock_(clock), options_(std::move(options)), flusher_(flusher) {
  segment_options_.log_name = options_.name.empty() ? options_.directory : options_.name;
  segment_options_.index_interval_bytes = options_.index_interval_bytes;
  segment_options_.direct_append_min_bytes = options_.direct_append_min_bytes;
  // kInterval counts written entries as durable at once: they must reach the OS in append().
  if (options_.durability == DurabilityMode::kAlways) {
    std::uint64_t align = kDirectIoAlignment;
    segment_options_.write_buffer_bytes = (options_.write_buffer_bytes + align - 1) / align * align;
    // Writes in flight stay within kConcurrentWriteSpanMax (what recovery accepts as a hole).
    std::uint64_t part = std::max<std::uint64_t>(align, segment_options_.write_buffer_bytes / 4);
    auto span_depth = static_cast<std::uint32_t>(
        std::max<std::uint64_t>(1, segment_format::kConcurrentWriteSpanMax / part));
    segment_options_.direct_write_depth =
        std::clamp<std::uint32_t>(options_.direct_write_depth, 1, std::min<std::uint32_t>(3, span_depth));
  }
  segment_options_.on_damaged_tail_cut = options_.on_damaged_tail_cut;
  deferred_rolls_ = flusher_ != nullptr && options_.durability == DurabilityMode::kAlways;
  if (deferred_rolls_) {
    index_writer_ = std::make_shared<IndexWriterHandle>();
    index_writer_->log = this;
  }
  if (options_.durability == DurabilityMode::kAlways) {
    segment_options_.zero_fill_window_bytes = options_.zero_fill_window_bytes;
  }
}

Log::~Log() {
  if (flusher_ != nullptr) flusher_->remove(this);
  if (index_writer_ != nullptr) {
    std::lock_guard detach(index_writer_->mutex);  // waits for the writer's work on this log
    index_writer_->log = nullptr;
  }
  write_pending_index_files();  // derived data: a clean stop leaves no index to rebuild
  // Buffered entries reach the OS (not durably: like any unsynced append).
  std::lock_guard lock(mutex_);
  if (failed_.is_ok() && !segments_.empty()) (void)segments_.back()->flush_buffer();
}

Result<std::unique_ptr<Log>> Log::open(FileSystem* fs, Clock* clock, LogOptions options,
                                       Flusher* flusher) {
  MQ_ASSERT(fs != nullptr);
  MQ_ASSERT(clock != nullptr);
  if (options.directory.empty()) return Status::invalid_argument("log: empty directory");
  if (options.segment_size_bytes_max < 4096 ||
      options.segment_size_bytes_max + segment_format::kPayloadBytesMax + kEntryHeaderSize >
          segment_format::kSegmentBytesMax) {
    return Status::invalid_argument("log: segment_size_bytes_max out of range");
  }
  if (options.entry_payload_bytes_max > segment_format::kPayloadBytesMax ||
      options.index_interval_bytes == 0 || options.segment_age_ms_max <= 0) {
    return Status::invalid_argument("log: entry_payload_bytes_max, index_interval_bytes or "
                                    "segment_age_ms_max out of range");
  }
  std::unique_ptr<Log> log(new Log(fs, clock, std::move(options), flusher));
  MQ_RETURN_IF_ERROR(log->recover());
  return log;
}

Status Log::write_meta_locked(const LogMetaRecord& meta) {
  std::uint8_t bytes[LogMetaRecord::kEncodedSize];
  meta.encode_to(bytes);
  MQ_DASSERT(LogMetaRecord::decode_from(BufferView(bytes, sizeof bytes)).value() == meta);
  const BufferView pieces[1] = {BufferView(bytes, sizeof bytes)};
  MQ_RETURN_IF_ERROR(
      write_file_atomically(fs_, options_.directory, metadata_format::kLogMetaFileName, pieces));
  meta_ = meta;
  publish_locked();
  return Status::ok();
}

void Log::update_running_max_locked(std::size_t from) {
  running_max_timestamp_.resize(segments_.size());
  for (std::size_t k = from; k < segments_.size(); ++k) {
    std::int64_t previous = k == 0 ? INT64_MIN : running_max_timestamp_[k - 1];
    running_max_timestamp_[k] = std::max(previous, segments_[k]->max_timestamp());
  }
}

void Log::refresh_tail_state_locked() {
  update_running_max_locked(0);
  // last_index_: last entry of the last non-empty segment, but never below start - 1.
  last_index_ = meta_.start_index - 1;
  last_term_ = Term(0);
  next_offset_ = meta_.start_offset;
  for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
    if ((*it)->empty()) continue;
    if ((*it)->last_index() >= meta_.start_index) {
      last_index_ = (*it)->last_index();
      last_term_ = (*it)->last_term();
      next_offset_ = (*it)->last_offset() + 1;
    }
    break;
  }
  publish_locked();
}

LogIndex Log::first_index() const {
  std::lock_guard lock(mutex_);
  return meta_.start_index;
}
LogIndex Log::last_index() const {
  return LogIndex(last_index_published_.load(std::memory_order_relaxed));
}
KafkaOffset Log::start_offset() const {
  return KafkaOffset(start_offset_published_.load(std::memory_order_relaxed));
}
KafkaOffset Log::next_offset() const {
  return KafkaOffset(next_offset_published_.load(std::memory_order_relaxed));
}
LogIndex Log::synced_index() const {
  std::lock_guard lock(mutex_);
  return synced_index_;
}
LogIndex Log::durable_index_locked() const {
  return options_.durability == DurabilityMode::kAlways ? synced_index_ : last_index_;
}
LogIndex Log::durable_index() const {
  return LogIndex(durable_index_published_.load(std::memory_order_relaxed));
}
std::uint64_t Log::size_bytes() const {
  std::lock_guard lock(mutex_);
  std::uint64_t total = 0;
  for (const auto& s : segments_) total += s->size_bytes();
  return total;
}
std::vector<SegmentSummary> Log::segments() const {
  std::lock_guard lock(mutex_);
  std::vector<SegmentSummary> out;
  for (const auto& s : segments_) {
    out.push_back({s->base_index(), s->last_index(), s->size_bytes(), s->closed(),
                   s->index_entry_count()});
  }
  return out;
}
Status Log::health() const {
  if (!failed_published_.load(std::memory_order_relaxed)) return Status::ok();
  std::lock_guard lock(mutex_);
  return failed_;
}

void Log::publish_locked() {
  start_offset_published_.store(meta_.start_offset.value(), std::memory_order_relaxed);
  next_offset_published_.store(next_offset_.value(), std::memory_order_relaxed);
  last_index_published_.store(last_index_.value(), std::memory_order_relaxed);
  // Never above the last index, even between the steps of a truncation (another thread may
  // read it then; the invariant synced_index_ <= last_index_ holds again at its end).
  durable_index_published_.store(std::min(durable_index_locked(), last_index_).value(),
                                 std::memory_order_relaxed);
  failed_published_.store(!failed_.is_ok(), std::memory_order_relaxed);
}

void Log::check_invariants() const {
  std::lock_guard lock(mutex_);
  check_invariants_locked();
}

void Log::check_invariants_locked() const {
  MQ_ASSERT(meta_.start_index > LogIndex(0));
  MQ_ASSERT(start_offset_published_.load() == meta_.start_offset.value());
  MQ_ASSERT(next_offset_published_.load() == next_offset_.value());
  MQ_ASSERT(last_index_published_.load() == last_index_.value());
  MQ_ASSERT(durable_index_published_.load() == durable_index_locked().value());
  MQ_ASSERT(failed_published_.load() == !failed_.is_ok());
  MQ_ASSERT(last_index_ + 1 >= meta_.start_index);
  MQ_ASSERT(synced_index_ <= last_index_);
  MQ_ASSERT(synced_index_ + 1 >= meta_.start_index);
  MQ_ASSERT(next_offset_ >= meta_.start_offset);
  MQ_ASSERT(running_max_timestamp_.size() == segments_.size());
  for (std::size_t k = 0; k < segments_.size(); ++k) {
    const Segment& s = *segments_[k];
    if (k + 1 < segments_.size()) {
      // Only the tail is appended to; every other segment is complete and non-empty.
      MQ_ASSERT(s.closed());
      MQ_ASSERT(!s.empty());
      MQ_ASSERT(segments_[k + 1]->base_index() == s.last_index() + 1);
      MQ_ASSERT(segments_[k + 1]->empty() || segments_[k + 1]->first_offset() > s.last_offset());
    } else {
      MQ_ASSERT(!s.closed());
    }
    if (k > 0) MQ_ASSERT(running_max_timestamp_[k] >= running_max_timestamp_[k - 1]);
  }
  if (last_index_ >= meta_.start_index) {
    MQ_ASSERT(!segments_.empty());
    MQ_ASSERT(segments_.front()->base_index() <= meta_.start_index);
    const Segment& tail = segments_.back()->empty() && segments_.size() > 1
                              ? *segments_[segments_.size() - 2]
                              : *segments_.back();
    MQ_ASSERT(tail.last_index() == last_index_);
    MQ_ASSERT(tail.last_offset() + 1 == next_offset_);
    MQ_ASSERT(tail.last_term() == last_term_);
  }
}

Status Log::fail_locked(Status status) {
  MQ_ASSERT(!status.is_ok());
  if (failed_.is_ok()) {
    failed_ = Status(status.code(), "log " + segment_options_.log_name +
                                        " failed and must be reopened: " + status.message());
    publish_locked();
  }
  return status;
}

Status Log::check_writable_locked() const { return failed_; }

Status Log::validate_append_locked(std::span<const AppendEntry> entries) const {
  LogIndex expected = last_index_ + 1;
  Term term = last_term_;
  KafkaOffset next = next_offset_;
  std::uint64_t bytes = 0;
  for (const AppendEntry& e : entries) {
    if (e.index != expected) {
      return Status::invalid_argument("append: entry index " + std::to_string(e.index.value()) +
                                      ", expected " + std::to_string(expected.value()));
    }
    if (e.term < term) return Status::invalid_argument("append: term goes backwards");
    if (e.base_offset < next) {
      return Status::invalid_argument("append: base offset " + std::to_string(e.base_offset.value()) +
                                      " below the next offset " + std::to_string(next.value()));
    }
    if (e.last_offset_delta > static_cast<std::uint32_t>(INT32_MAX) ||
        e.base_offset.value() > INT64_MAX - 1 - e.last_offset_delta) {
      return Status::invalid_argument("append: offsets overflow");
    }
    if (static_cast<std::uint8_t>(e.kind) > kEntryKindMax) {
      return Status::invalid_argument("append: unknown entry kind");
    }
    if (e.payload.size() > options_.entry_payload_bytes_max) {
      return Status::limit_exceeded("append: payload of " + std::to_string(e.payload.size()) +
                                    " bytes exceeds entry_payload_bytes_max " +
                                    std::to_string(options_.entry_payload_bytes_max));
    }
    bytes += kEntryHeaderSize + e.payload.size();
    expected = e.index + 1;
    term = e.term;
    next = e.base_offset + e.last_offset_delta + 1;
  }
  if (options_.free_space_reserve_bytes > 0) {
    MQ_ASSIGN_OR_RETURN(std::uint64_t free, fs_->free_bytes(options_.directory));
    // Pre-written zeros of the tail are already allocated: appends into them need no space.
    if (!segments_.empty()) bytes -= std::min(bytes, segments_.back()->zero_window_bytes());
    if (free < options_.free_space_reserve_bytes + bytes) {
      return Status::no_space("log " + segment_options_.log_name + ": " + std::to_string(free) +
                              " bytes free, reserve is " +
                              std::to_string(options_.free_space_reserve_bytes));
    }
  }
  return Status::ok();
}

bool Log::needs_roll_locked(const Segment& segment, const AppendEntry& entry) const {
  if (segment.empty()) return false;
  if (segment.size_bytes() + kEntryHeaderSize + entry.payload.size() >
      options_.segment_size_bytes_max) {
    return true;
  }
  if (clock_->now_ms() - segment.created_ms() >= options_.segment_age_ms_max) return true;
  // Index entries hold u32 relative offsets and indexes.
  return entry.base_offset + entry.last_offset_delta - segment.first_offset() >= UINT32_MAX ||
         entry.index - segment.base_index() >= UINT32_MAX;
}

Status Log::roll_locked() {
  MQ_ASSERT(!segments_.empty());
  Segment& old = *segments_.back();
  MQ_ASSERT(!old.closed());
  // Crash rule 2: the old segment is complete on disk before the new one exists (without
  // the zero padding of direct appends: a closed segment ends with its last entry).
  Status trimmed = old.trim_padding();
  if (!trimmed.is_ok()) return fail_locked(trimmed);
  Status synced = old.sync();
  if (!synced.is_ok()) return fail_locked(synced);
  if (deferred_rolls_ && dir_synced_epoch_ < dir_created_epoch_) {
    // The old segment's own name (a deferred creation no sync has covered yet) is durable
    // before the next name can be.
    Status dir_synced = fs_->sync_dir(options_.directory);
    if (!dir_synced.is_ok()) return fail_locked(dir_synced);
    dir_synced_epoch_ = dir_created_epoch_;
  }
  synced_index_ = std::max(synced_index_, old.last_index());
  publish_locked();
  // Deferred (the broker): the new segment's header and name become durable with the first
  // sync of its entries (finish_sync), and the old segment's index files are written by the
  // index writer thread: until then its index stays in memory. A crash before that sync
  // leaves a new segment without durable entries (a leftover, or an empty tail); one before
  // the index files are written, a closed segment without them (rebuilt by a scan).
  MQ_ASSIGN_OR_RETURN(auto fresh, create_segment_locked(last_index_ + 1, deferred_rolls_));
  if (deferred_rolls_) {
    old.close_for_append_deferred();
    IndexFileWriter::instance().submit(index_writer_);
  } else {
    old.close_for_append();
  }
  segments_.push_back(std::move(fresh));
  update_running_max_locked(segments_.size() - 1);
  return Status::ok();
}

Result<std::unique_ptr<Segment>> Log::create_segment_locked(LogIndex base_index, bool deferred) {
  bool sync_failed = false;
  auto fresh = Segment::create(fs_, options_.directory, base_index, clock_->now_ms(),
                               segment_options_, &sync_failed, !deferred);
  if (!fresh.has_value()) {
    // A failed write (ENOSPC) is a clean error; a failed fdatasync leaves the directory in
    // an unknown state: fail the log so start-up sorts it out.
    if (sync_failed) return fail_locked(fresh.error());
    return fresh.error();
  }
  if (deferred) {
    ++dir_created_epoch_;
  } else {
    Status dir_synced = fs_->sync_dir(options_.directory);
    if (!dir_synced.is_ok()) return fail_locked(dir_synced);
    dir_synced_epoch_ = dir_created_epoch_;
  }
  (*fresh)->set_read_cache(read_cache_);
  return fresh;
}

void Log::set_read_cache(bool on) {
  std::lock_guard lock(mutex_);
  if (on == read_cache_) return;
  read_cache_ = on;
  for (const auto& segment : segments_) segment->set_read_cache(on);
}

Status Log::roll() {
  std::lock_guard lock(mutex_);
  MQ_RETURN_IF_ERROR(check_writable_locked());
  if (segments_.empty() || segments_.back()->empty()) return Status::ok();
  return roll_locked();
}

Status Log::append(std::span<const AppendEntry> entries) {
  if (entries.empty()) return Status::ok();
  {
    std::lock_guard lock(mutex_);
    MQ_RETURN_IF_ERROR(check_writable_locked());
    MQ_RETURN_IF_ERROR(validate_append_locked(entries));
    std::size_t done = 0;
    while (done < entries.size()) {
      if (segments_.empty()) {
        MQ_ASSIGN_OR_RETURN(auto fresh, create_segment_locked(entries[done].index));
        segments_.push_back(std::move(fresh));
        update_running_max_locked(segments_.size() - 1);
      } else if (needs_roll_locked(*segments_.back(), entries[done])) {
        MQ_RETURN_IF_ERROR(roll_locked());
      }
      Segment& tail = *segments_.back();
      // The run of entries that fits this segment (at least one).
      std::uint64_t size = tail.size_bytes();
      std::size_t end = done;
      while (end < entries.size()) {
        std::uint64_t stored = kEntryHeaderSize + entries[end].payload.size();
        if (end > done && (size + stored > options_.segment_size_bytes_max ||
                           needs_roll_locked(tail, entries[end]))) {
          break;
        }
        size += stored;
        ++end;
      }
      bool broken = false;
      std::uint64_t size_before = tail.size_bytes();
      Status status = tail.append(entries.subspan(done, end - done), &broken);
      if (!status.is_ok()) {
        if (broken) return fail_locked(status);
        return status;
      }
      appended_bytes_ += tail.size_bytes() - size_before;
      done = end;
      update_running_max_locked(segments_.size() >= 2 ? segments_.size() - 2 : 0);
      last_index_ = tail.last_index();
      last_term_ = tail.last_term();
      next_offset_ = tail.last_offset() + 1;
      publish_locked();
    }
    MQ_ASSERT(last_index_ == entries.back().index);
    if constexpr (kDebugAsserts) check_invariants_locked();
  }
  if (flusher_ != nullptr) flusher_->enqueue(this);
  return Status::ok();
}

// all=false (the flusher): while full parts of the write-behind buffer are being written in
// the background, wait for the newest without the mutex (appends continue) and sync just the
// entries they completed, leaving the rest in the buffer to grow into the next large write
// (the log is queued again). Only when no such write is queued is the partial buffer written
// out. So a fast producer gets large writes and one fdatasync per round of written parts,
// and a slow one gets everything synced at once. all=true (sync()): everything appended so
// far.
Result<std::optional<Log::PendingSync>> Log::prepare_sync(bool all) {
  std::unique_lock lock(mutex_);
  MQ_RETURN_IF_ERROR(check_writable_locked());
  if (synced_index_ >= last_index_ || segments_.empty()) return std::optional<PendingSync>();
  LogIndex target = last_index_;
  bool more = false;
  auto in_flight = segments_.back()->write_in_flight();
  auto coalesce_until = std::chrono::steady_clock::now() +
                        std::chrono::microseconds(options_.sync_coalesce_us_max);
  bool waited = false;
  while (in_flight) {
    waited = true;
    lock.unlock();
    Segment::wait_for(in_flight);
    lock.lock();
    MQ_RETURN_IF_ERROR(check_writable_locked());
    if (synced_index_ >= last_index_ || segments_.empty()) return std::optional<PendingSync>();
    // Coalescing: while this log's writes stream (a newer part's write was queued while we
    // waited), one fdatasync should cover at least sync_coalesce_bytes, bounded in time: on
    // a device where each fdatasync stalls the writes (a cache flush), syncing after every
    // few MiB costs a large share of the bandwidth (docs/benchmarks.md, "Storage"). A
    // producer that stops (no newer queued write) is synced at once, so light load gets no
    // extra latency.
    auto newest = all ? nullptr : segments_.back()->write_in_flight();
    if (!newest || newest == in_flight ||
        appended_bytes_ - synced_bytes_mark_ >= options_.sync_coalesce_bytes ||
        std::chrono::steady_clock::now() >= coalesce_until) {
      break;
    }
    in_flight = std::move(newest);
  }
  if (waited) {
    Status finished = segments_.back()->finish_write_in_flight();
    if (!finished.is_ok()) return fail_locked(finished);
    target = std::max(synced_index_, segments_.back()->written_index());
    more = target < last_index_;
  }
  if (all || !waited || target <= synced_index_) {
    // Everything appended so far goes to the file before the fdatasync that covers it.
    Status flushed = segments_.back()->flush_buffer();
    if (!flushed.is_ok()) return fail_locked(flushed);
    target = last_index_;
    more = false;
  }
  PendingSync pending;
  pending.file = segments_.back()->file();
  pending.target = target;
  pending.generation = generation_;
  pending.mark = appended_bytes_;
  pending.more = more;
  pending.overwrites_only = segments_.back()->begin_sync_overwrites_only();
  if (dir_synced_epoch_ < dir_created_epoch_) pending.dir_epoch = dir_created_epoch_;
  return std::optional<PendingSync>(std::move(pending));
}

Result<std::optional<std::uint64_t>> Log::finish_sync(const PendingSync& pending,
                                                      const Status& file_synced) {
  // A segment created by a roll: its name is made durable before its entries are reported.
  Status synced = file_synced;
  if (synced.is_ok() && pending.dir_epoch != 0) synced = fs_->sync_dir(options_.directory);
  std::unique_lock lock(mutex_);
  if (!synced.is_ok()) return fail_locked(synced);
  dir_synced_epoch_ = std::max(dir_synced_epoch_, pending.dir_epoch);
  // Truncated meanwhile: the truncation synced.
  if (pending.generation != generation_) return std::optional<std::uint64_t>();
  synced_index_ = std::max(synced_index_, pending.target);
  publish_locked();
  std::uint64_t bytes_synced =
      pending.mark > synced_bytes_mark_ ? pending.mark - synced_bytes_mark_ : 0;
  synced_bytes_mark_ = std::max(synced_bytes_mark_, pending.mark);
  LogIndex durable = durable_index_locked();
  auto callback = options_.on_durable;
  lock.unlock();
  if (pending.more && flusher_ != nullptr) flusher_->enqueue(this);
  if (callback) callback(durable);
  return std::optional<std::uint64_t>(bytes_synced);
}

void Log::after_sync(std::uint64_t bytes_synced) {
  // Off the acknowledgement's path: the durable index is already reported.
  if (segment_options_.zero_fill_window_bytes > 0) fill_zero_window(bytes_synced);
}

void Log::write_pending_index_files() {
  std::unique_lock writer(index_writer_mutex_, std::try_to_lock);
  if (!writer.owns_lock()) return;  // another thread is at it; it finds this one's too
  for (;;) {
    std::shared_ptr<Segment> segment;
    std::uint64_t ticket = 0;
    {
      std::lock_guard lock(mutex_);
      for (std::size_t k = 0; k + 1 < segments_.size() && segment == nullptr; ++k) {
        if (segments_[k]->index_files_pending()) segment = segments_[k];
      }
      if (segment == nullptr) return;
      ticket = segment->take_index_job();
    }
    // Without the log's mutex: appends and reads go on while the files are written.
    auto files = segment->write_index_files_unlocked(ticket);
    if (!files.has_value() || !files->has_value()) continue;  // the index stays in memory
    std::lock_guard lock(mutex_);
    segment->install_index_files(ticket, std::move(**files));
  }
}

// all=false (the flusher): while full parts of the write-behind buffer are being written in
// the background, wait for the newest without the mutex (appends continue) and sync just the
// entries they completed, leaving the rest in the buffer to grow into the next large write
// (the log is queued again). Only when no such write is queued is the partial buffer written
// out. So a fast producer gets large writes and one fdatasync per round of written parts,
// and a slow one gets everything synced at once. all=true (sync()): everything appended so
// far.
Result<bool> Log::sync_internal(bool all) {
  MQ_ASSIGN_OR_RETURN(std::optional<PendingSync> pending, prepare_sync(all));
  if (!pending) return false;
  Status status = pending->file->sync();  // appends continue meanwhile
  MQ_ASSIGN_OR_RETURN(std::optional<std::uint64_t> bytes_synced, finish_sync(*pending, status));
  if (bytes_synced) after_sync(*bytes_synced);
  return true;
}

Status Log::sync() {
  auto result = sync_internal(true);
  return result.status();
}

std::size_t Log::segment_for_index_locked(LogIndex index) const {
  MQ_ASSERT(!segments_.empty());
  auto it = std::upper_bound(segments_.begin(), segments_.end(), index,
                             [](LogIndex i, const std::shared_ptr<Segment>& s) {
                               return i < s->base_index();
                             });
  MQ_ASSERT(it != segments_.begin());
  return static_cast<std::size_t>(it - segments_.begin()) - 1;
}

Result<Term> Log::term(LogIndex index) {
  std::lock_guard lock(mutex_);
  if (index < meta_.start_index || index > last_index_) {
    return Status::out_of_range("term: index " + std::to_string(index.value()) +
                                " outside [" + std::to_string(meta_.start_index.value()) + ", " +
                                std::to_string(last_index_.value()) + "]");
  }
  if (index == last_index_) return last_term_;
  Segment& segment = *segments_[segment_for_index_locked(index)];
  MQ_ASSIGN_OR_RETURN(EntryLocation location, segment.locate_index(index));
  return location.header.term;
}

Status Log::check_read_range_locked(LogIndex lo, LogIndex hi) const {
  if (lo < meta_.start_index || hi > last_index_ + 1 || lo > hi) {
    return Status::out_of_range("read [" + std::to_string(lo.value()) + ", " +
                                std::to_string(hi.value()) + ") outside [" +
                                std::to_string(meta_.start_index.value()) + ", " +
                                std::to_string((last_index_ + 1).value()) + ")");
  }
  return Status::ok();
}

namespace {

// What a lock-free read needs of one segment, as of the snapshot.
struct ReadPart {
  std::shared_ptr<Segment> segment;
  std::uint64_t size = 0;
};

// Reads [lo, hi) from the parts (consecutive segments, the first holding lo) without the
// log's mutex, within the snapshot sizes.
Result<std::vector<ReadEntry>> read_parts(const std::vector<ReadPart>& parts, LogIndex lo,
                                          LogIndex hi, std::uint64_t bytes_max) {
  std::vector<ReadEntry> out;
  std::size_t k = 0;
  MQ_ASSIGN_OR_RETURN(EntryLocation location, parts[0].segment->locate_index_within(lo, parts[0].size));
  std::uint64_t position = location.position;
  std::uint64_t total = 0;
  for (LogIndex index = lo; index < hi; ++index) {
    if (position >= parts[k].size) {
      if (++k == parts.size()) break;  // bytes_max reached across the snapshot's parts
      position = kSegmentHeaderSize;
    }
    Segment& segment = *parts[k].segment;
    MQ_ASSIGN_OR_RETURN(EntryHeader header, segment.read_header_within(position, index, parts[k].size));
    if (!out.empty() && total + header.stored_size() > bytes_max) break;
    MQ_ASSIGN_OR_RETURN(ReadEntry entry, segment.read_entry_within(position, index, parts[k].size));
    total += header.stored_size();
    position += header.stored_size();
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

Result<std::vector<ReadEntry>> Log::read(LogIndex lo, LogIndex hi, std::uint64_t bytes_max) {
  std::vector<ReadPart> parts;
  std::uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    MQ_RETURN_IF_ERROR(check_read_range_locked(lo, hi));
    if (lo == hi) return std::vector<ReadEntry>();
    generation = generation_;
    // The segments covering [lo, hi), no more than bytes_max needs (plus the first).
    std::uint64_t covered = 0;
    for (std::size_t k = segment_for_index_locked(lo);
         k < segments_.size() && segments_[k]->base_index() < hi && covered <= bytes_max; ++k) {
      parts.push_back({segments_[k], segments_[k]->size_bytes()});
      covered += segments_[k]->size_bytes() - kSegmentHeaderSize;
    }
  }
  auto result = read_parts(parts, lo, hi, bytes_max);
  if (result.has_value()) {
    std::lock_guard lock(mutex_);
    if (generation == generation_) return result;
  }
  // Truncated meanwhile, or a read error: read under the mutex (the authoritative answer,
  // and the path that can rebuild a damaged index).
  std::lock_guard lock(mutex_);
  return read_locked(lo, hi, bytes_max);
}

Result<std::vector<ReadEntry>> Log::read_locked(LogIndex lo, LogIndex hi, std::uint64_t bytes_max) {
  MQ_RETURN_IF_ERROR(check_read_range_locked(lo, hi));
  std::vector<ReadEntry> out;
  if (lo == hi) return out;
  std::size_t k = segment_for_index_locked(lo);
  MQ_ASSIGN_OR_RETURN(EntryLocation location, segments_[k]->locate_index(lo));
  std::uint64_t position = location.position;
  std::uint64_t total = 0;
  for (LogIndex index = lo; index < hi; ++index) {
    if (index > segments_[k]->last_index()) {
      ++k;
      MQ_ASSERT(k < segments_.size());
      position = kSegmentHeaderSize;
    }
    MQ_ASSIGN_OR_RETURN(EntryHeader header, segments_[k]->read_header(position, index));
    if (!out.empty() && total + header.stored_size() > bytes_max) break;
    MQ_ASSIGN_OR_RETURN(ReadEntry entry, segments_[k]->read_entry(position, index));
    total += header.stored_size();
    position += header.stored_size();
    out.push_back(std::move(entry));
  }
  return out;
}

Result<std::optional<std::pair<std::size_t, EntryLocation>>> Log::locate_offset_locked(
    KafkaOffset offset) {
  using Found = std::optional<std::pair<std::size_t, EntryLocation>>;
  if (offset < meta_.start_offset) {
    return Status::out_of_range("offset " + std::to_string(offset.value()) +
                                " is below the log start offset " +
                                std::to_string(meta_.start_offset.value()));
  }
  if (offset >= next_offset_ || last_index_ < meta_.start_index) return Found();
  // Last non-empty segment whose first offset <= offset (segments are few: the search is
  // over segments, then inside one segment over its sparse index).
  std::size_t lo = 0, hi = segments_.size();
  while (hi - lo > 1) {
    std::size_t mid = lo + (hi - lo) / 2;
    if (segments_[mid]->empty() || segments_[mid]->first_offset() > offset) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  for (std::size_t k = lo; k < segments_.size(); ++k) {
    MQ_ASSIGN_OR_RETURN(auto location, segments_[k]->locate_offset(offset));
    if (location) return Found(std::pair(k, *location));
  }
  return Found();
}

Result<std::optional<EntryRef>> Log::lookup_offset(KafkaOffset offset) {
  std::lock_guard lock(mutex_);
  MQ_ASSIGN_OR_RETURN(auto found, locate_offset_locked(offset));
  if (!found) return std::optional<EntryRef>();
  const EntryHeader& h = found->second.header;
  return std::optional(EntryRef{h.index, h.term, h.base_offset, h.last_offset(), h.max_timestamp});
}

Result<std::optional<EntryRef>> Log::lookup_timestamp(std::int64_t timestamp) {
  std::lock_guard lock(mutex_);
  MQ_DASSERT(running_max_timestamp_.size() == segments_.size());
  // Binary search for the first segment whose running maximum reaches the timestamp (it
  // holds the answer), then a binary search in its time index and a short scan.
  auto first = std::lower_bound(running_max_timestamp_.begin(), running_max_timestamp_.end(),
                                timestamp);
  for (auto k = static_cast<std::size_t>(first - running_max_timestamp_.begin());
       k < segments_.size(); ++k) {
    Segment* segment = segments_[k].get();
    if (segment->empty() || segment->last_index() < meta_.start_index) continue;
    MQ_ASSIGN_OR_RETURN(auto location, segment->locate_timestamp(timestamp));
    if (!location) continue;
    if (location->header.index < meta_.start_index) {
      // The match lies in the removed prefix: scan forward from the start index.
      MQ_ASSIGN_OR_RETURN(EntryLocation at, segment->locate_index(meta_.start_index));
      std::uint64_t position = at.position;
      for (LogIndex index = meta_.start_index; index <= segment->last_index(); ++index) {
        MQ_ASSIGN_OR_RETURN(EntryHeader h, segment->read_header(position, index));
        if (h.max_timestamp >= timestamp) {
          return std::optional(EntryRef{h.index, h.term, h.base_offset, h.last_offset(),
                                        h.max_timestamp});
        }
        position += h.stored_size();
      }
      continue;
    }
    const EntryHeader& h = location->header;
    return std::optional(EntryRef{h.index, h.term, h.base_offset, h.last_offset(), h.max_timestamp});
  }
  return std::optional<EntryRef>();
}

Status Log::physical_truncate_locked(LogIndex from) {
  while (!segments_.empty() && segments_.back()->base_index() >= from) {
    MQ_RETURN_IF_ERROR(segments_.back()->remove_files(fs_));
    segments_.pop_back();
  }
  if (!segments_.empty()) {
    Segment& tail = *segments_.back();
    if (tail.last_index() >= from || tail.closed()) {
      MQ_RETURN_IF_ERROR(tail.truncate_from(fs_, std::min(from, tail.last_index() + 1)));
    }
  }
  MQ_RETURN_IF_ERROR(fs_->sync_dir(options_.directory));
  refresh_tail_state_locked();
  return Status::ok();
}

Status Log::truncate_suffix(LogIndex from) {
  std::lock_guard lock(mutex_);
  MQ_RETURN_IF_ERROR(check_writable_locked());
  if (from < meta_.start_index || from > last_index_ + 1) {
    return Status::out_of_range("truncate_suffix: " + std::to_string(from.value()) +
                                " outside [" + std::to_string(meta_.start_index.value()) + ", " +
                                std::to_string((last_index_ + 1).value()) + "]");
  }
  if (from == last_index_ + 1) return Status::ok();
  // Crash rule 3: record, cut, clear.
  LogMetaRecord record = meta_;
  record.truncate_from = from;
  MQ_RETURN_IF_ERROR(write_meta_locked(record));
  ++generation_;
  Status cut = physical_truncate_locked(from);
  if (!cut.is_ok()) return fail_locked(cut);  // start-up redoes it
  record.truncate_from = LogIndex(0);
  Status cleared = write_meta_locked(record);
  if (!cleared.is_ok()) return fail_locked(cleared);
  synced_index_ = std::min(synced_index_, last_index_);
  publish_locked();
  MQ_ASSERT(last_index_ == from - 1);
  if constexpr (kDebugAsserts) check_invariants_locked();
  return Status::ok();
}

Status Log::remove_prefix(LogIndex new_first) {
  std::lock_guard lock(mutex_);
  MQ_RETURN_IF_ERROR(check_writable_locked());
  if (new_first < meta_.start_index || new_first > last_index_ + 1) {
    return Status::out_of_range("remove_prefix: " + std::to_string(new_first.value()) +
                                " outside [" + std::to_string(meta_.start_index.value()) + ", " +
                                std::to_string((last_index_ + 1).value()) + "]");
  }
  if (new_first == meta_.start_index) return Status::ok();
  LogMetaRecord record = meta_;
  record.start_index = new_first;
  if (new_first <= last_index_) {
    Segment& segment = *segments_[segment_for_index_locked(new_first)];
    MQ_ASSIGN_OR_RETURN(EntryLocation location, segment.locate_index(new_first));
    record.start_offset = location.header.base_offset;
  } else {
    record.start_offset = next_offset_;
  }
  MQ_RETURN_IF_ERROR(write_meta_locked(record));  // crash rule 4: the record first
  bool removed = false;
  while (!segments_.empty() && !segments_.front()->empty() &&
         segments_.front()->last_index() < new_first) {
    Status status = segments_.front()->remove_files(fs_);
    if (!status.is_ok()) return fail_locked(status);
    segments_.erase(segments_.begin());
    removed = true;
  }
  if (removed) {
    Status status = fs_->sync_dir(options_.directory);
    if (!status.is_ok()) return fail_locked(status);
  }
  synced_index_ = std::max(synced_index_, new_first - 1);
  refresh_tail_state_locked();
  if constexpr (kDebugAsserts) check_invariants_locked();
  return Status::ok();
}

Status Log::reset(LogIndex next_index, KafkaOffset next_offset) {
  std::lock_guard lock(mutex_);
  MQ_RETURN_IF_ERROR(check_writable_locked());
  if (next_index == LogIndex(0) || next_offset < KafkaOffset(0)) {
    return Status::invalid_argument("reset: index 0 or negative offset");
  }
  LogMetaRecord record;
  record.start_index = next_index;
  record.start_offset = next_offset;
  // Recorded as a truncation of everything as well, so a crash never leaves old segments
  // that would look like a continuation of the new start.
  record.truncate_from = LogIndex(1);
  MQ_RETURN_IF_ERROR(write_meta_locked(record));
  ++generation_;
  for (auto& segment : segments_) {
    Status status = segment->remove_files(fs_);
    if (!status.is_ok()) return fail_locked(status);
  }
  segments_.clear();
  Status status = fs_->sync_dir(options_.directory);
  if (!status.is_ok()) return fail_locked(status);
  record.truncate_from = LogIndex(0);
  status = write_meta_locked(record);
  if (!status.is_ok()) return fail_locked(status);
  refresh_tail_state_locked();
  synced_index_ = last_index_;
  publish_locked();
  if constexpr (kDebugAsserts) check_invariants_locked();
  return Status::ok();
}

Result<LogIndex> Log::apply_retention(const RetentionPolicy& policy) {
  LogIndex new_first;
  {
    std::lock_guard lock(mutex_);
    std::uint64_t total = 0;
    for (const auto& s : segments_) total += s->size_bytes();
    std::int64_t now = clock_->now_ms();
    new_first = meta_.start_index;
    for (std::size_t k = 0; k + 1 < segments_.size(); ++k) {  // never the tail
      const Segment& s = *segments_[k];
      if (s.empty() || s.last_index() >= policy.removable_below) break;
      bool too_big = total - s.size_bytes() >= policy.bytes_max && total > policy.bytes_max;
      std::int64_t newest = s.max_timestamp() >= 0 ? s.max_timestamp() : s.created_ms();
      bool too_old = policy.age_ms_max != INT64_MAX && now - newest > policy.age_ms_max;
      if (!too_big && !too_old) break;
      total -= s.size_bytes();
      new_first = std::max(new_first, s.last_index() + 1);
    }
  }
  if (new_first > first_index()) MQ_RETURN_IF_ERROR(remove_prefix(new_first));
  return first_index();
}

}  // namespace mq::storage
