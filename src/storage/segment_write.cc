// The write path of a segment: appends through the page cache, direct appends, and the
// write-behind buffer that coalesces appends into large aligned writes (segment.h).
//
// Why the write-behind buffer: in mode `always` every append is followed by an fdatasync, and
// a direct write of one batch (say 256 KiB) at a time, at queue depth 1, reaches only a
// fraction of the device's sequential bandwidth (per-write latency). Appends therefore only
// copy (and checksum) into an aligned per-segment buffer; the buffer goes to the file as one
// large direct write when it fills and when the flusher is about to fdatasync, so write sizes
// follow the buffer and the sync rate, not the batch size (docs/storage_testing.md).
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "base/crc32c.h"
#include "base/thread_name.h"
#include "storage/read_cache.h"
#include "storage/segment.h"

namespace mq::storage {

using segment_format::kEntryHeaderSize;

namespace {

constexpr std::uint64_t kAlign = kDirectIoAlignment;

std::uint64_t align_down(std::uint64_t n) { return n - n % kAlign; }
std::uint64_t align_up(std::uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::atomic<std::uint64_t> g_buffer_budget{128ull << 20};
std::atomic<std::uint64_t> g_buffer_in_use{0};

// Takes `bytes` from the process-wide budget; false when it would be exceeded.
bool take_budget(std::uint64_t bytes) {
  std::uint64_t used = g_buffer_in_use.load();
  do {
    if (used + bytes > g_buffer_budget.load()) return false;
  } while (!g_buffer_in_use.compare_exchange_weak(used, used + bytes));
  return true;
}

// The background writes of full buffer parts: a few long-lived threads shared by every
// segment, fed through a queue. (A thread per write cost a clone, a stack and a fresh
// scheduling per 2 MiB; a segment has at most one write in flight, so the order of writes
// within a segment never depends on the pool.) Never destroyed: its threads may still be
// waiting for work while the process exits.
class WriterPool {
 public:
  static WriterPool& instance() {
    static WriterPool* pool = new WriterPool;
    return *pool;
  }

  void submit(std::function<void()> job) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(job));
      if (idle_ > 0) {
        cv_.notify_one();
        return;
      }
      if (threads_ >= kMaxThreads) return;  // a busy thread takes it next
      try {
        std::thread([this] {
          name_this_thread("rmq-write");
          run();
        }).detach();
        ++threads_;
        return;
      } catch (const std::system_error&) {
        if (threads_ > 0) return;
        job = std::move(queue_.back());  // no thread to be had: write it here
        queue_.pop_back();
      }
    }
    job();
  }

  // Whether jobs wait for a thread (another log's writes are queued).
  bool has_waiting() {
    std::lock_guard lock(mutex_);
    return !queue_.empty();
  }

 private:
  static constexpr std::size_t kMaxThreads = 4;

  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      ++idle_;
      cv_.wait(lock, [&] { return !queue_.empty(); });
      --idle_;
      std::function<void()> job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
};

// The writes of one segment, run on the pool in file order, with at most `depth` of them in
// flight at once (LogOptions::direct_write_depth): write j starts only once every write up
// to j - depth has completed, so at any moment the writes not yet completed all lie within
// `depth` consecutive parts after the last completed prefix. With depth 1 the file is always
// written as a prefix of what was issued; with more, a crash (or a failed write) can leave a
// hole of at most depth - 1 parts before later written bytes, none of them ever reported
// durable (Segment::retire_oldest counts a write only after every earlier one completed OK)
// and recognised as such by recovery (segment.cc, "concurrent-write hole"). Several writes
// in flight keep the device's queue non-empty while the next write is submitted.
// One turn per write while other logs' writes wait: after it, the queue goes to the back of
// the pool's queue, so a log that keeps its queue full cannot hold a thread while other
// logs' writes wait. When nothing else waits, the same thread goes on with the next write
// at once: handing it to another thread costs a wake-up, and on a busy machine that thread
// may wait milliseconds for a CPU while the device idles.
class WriteQueue : public std::enable_shared_from_this<WriteQueue> {
 public:
  explicit WriteQueue(std::size_t depth) : depth_(std::max<std::size_t>(1, depth)) {}

  void submit(std::function<void()> job) {
    bool start = false;
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back({next_sequence_++, std::move(job)});
      start = runners_ < depth_ && startable();
      if (start) ++runners_;
    }
    if (start) schedule();
  }

 private:
  struct Job {
    std::uint64_t sequence = 0;
    std::function<void()> run;
  };

  // Under mutex_: the oldest queued write may start (it is within the window).
  bool startable() const {
    return !jobs_.empty() && jobs_.front().sequence < completed_prefix_ + depth_;
  }
  void schedule() {
    WriterPool::instance().submit([self = shared_from_this()] { self->run_some(); });
  }
  // A runner (runners_ counts them): runs startable writes until none is left, or hands
  // its turn back to the pool when other logs' writes wait.
  void run_some() {
    while (true) {
      Job job;
      {
        std::lock_guard lock(mutex_);
        if (!startable()) {
          --runners_;
          return;
        }
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job.run();
      bool more_runners = false;
      {
        std::lock_guard lock(mutex_);
        completed_.push_back(job.sequence);
        std::sort(completed_.begin(), completed_.end());
        while (!completed_.empty() && completed_.front() == completed_prefix_) {
          completed_.erase(completed_.begin());
          ++completed_prefix_;
        }
        if (!startable()) {
          --runners_;
          return;
        }
        // This completion may have opened the window for more than the one write this
        // runner takes next.
        std::size_t window_jobs = 0;
        for (const Job& j : jobs_) {
          if (j.sequence >= completed_prefix_ + depth_) break;
          ++window_jobs;
        }
        more_runners = window_jobs > 1 && runners_ < depth_;
        if (more_runners) ++runners_;
      }
      if (more_runners) schedule();
      if (WriterPool::instance().has_waiting()) break;
    }
    schedule();  // keeps this runner's count: it goes on from the pool's queue
  }

  const std::size_t depth_;
  std::mutex mutex_;
  std::deque<Job> jobs_;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t completed_prefix_ = 0;  // every write with a lower sequence has completed
  std::vector<std::uint64_t> completed_;  // completed writes at or above completed_prefix_
  std::size_t runners_ = 0;
};

}  // namespace

void set_write_buffer_budget_bytes(std::uint64_t bytes) { g_buffer_budget.store(bytes); }
std::uint64_t write_buffer_bytes_in_use() { return g_buffer_in_use.load(); }

// The write of a full part of the buffer, by a thread of the writer pool (so the appender
// copies into the next part while the device writes this one).
struct Segment::WriteJob {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  bool direct_refused = false;
  Status status;
  LogIndex covered;  // the last entry wholly on the file once this write is done

  void wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return done; });
  }
};

void Segment::wait_for(const std::shared_ptr<WriteJob>& job) { job->wait(); }

// A ring of kParts parts of `capacity` bytes each, each its own aligned block. The active part
// holds [start, start + fill); when it is full it is sealed (its write is queued to the
// writer pool) and the next part becomes active, starting right after it; the parts sealed
// before it hold older bytes until their writes are retired, oldest first. So up to
// kParts - 1 full parts can be queued for the device while the appender fills the next one:
// the writer threads go from one write to the next without waiting for the appender to be
// scheduled (on a busy machine that wait left the device idle between writes).
// Retired parts stay readable (`retained`, older than the sealed ones) until the ring reuses
// them, and a flush before a sync writes the active part's new blocks without moving its
// bytes: the newest 3-4 parts of the tail are read from memory. The writes are direct, so the
// page cache does not hold these bytes; without this every fetch of new data read the disk
// (docs/benchmarks.md, "Fetches of new data read the disk"). When the segment's log keeps a
// read cache (read_cache.h), a retained part about to be reused goes to the cache instead,
// and the ring continues with the block the cache gives back.
// Shared by the segment (the only writer, under the log's mutex) and its read view (any
// thread). `mutex` guards the allocation, `active`, `sealed`, each part's start and fill, and
// every change of bytes a reader may read: bytes below the active part's start + fill
// (readers never read at or beyond the size they snapshotted, and the writer only appends
// beyond it). `jobs` is touched under the log's mutex only.
struct Segment::TailBuffer {
  static constexpr std::size_t kParts = 4;
  struct Part {
    std::uint8_t* data = nullptr;
    std::uint64_t start = 0;  // file position of data[0], block-aligned
    std::size_t fill = 0;
    std::size_t written = 0;  // data[0, written) is on the file (block-aligned; active part)
  };
  std::mutex mutex;
  std::shared_ptr<AlignedBlock> blocks[kParts];  // parts[i].data is blocks[i]->data()
  Part parts[kParts];
  std::size_t capacity = 0;  // of each part
  std::size_t active = 0;
  // The `sealed` parts before the active one (ring order) hold bytes not yet retired. The
  // oldest of them have their writes in `jobs` (oldest first); the newest may have none yet
  // while append_buffered fills in the header of the entry that spans them.
  std::size_t sealed = 0;
  // Written parts before the sealed ones whose bytes are still intact: readable until the
  // ring reuses them. retained + sealed + 1 <= kParts.
  std::size_t retained = 0;
  std::deque<std::shared_ptr<WriteJob>> jobs;
  std::shared_ptr<WriteQueue> queue;  // runs `jobs` in file order (set by attach_file)
  std::atomic<bool> write_failed{false};  // a queued write failed: the later ones are skipped

  bool allocated() const { return blocks[0] != nullptr; }
  Part& current() { return parts[active]; }
  const Part& current() const { return parts[active]; }
  // back(1): the newest sealed part; back(sealed): the oldest; back(0): the active one;
  // back(sealed + retained): the oldest readable one.
  Part& back(std::size_t k) { return parts[(active + kParts - k) % kParts]; }
  const Part& back(std::size_t k) const { return parts[(active + kParts - k) % kParts]; }

  ~TailBuffer() { release(); }
  void wait_all() {
    for (const auto& job : jobs) job->wait();  // their threads read the sealed parts
  }
  void release() {
    wait_all();
    jobs.clear();
    write_failed.store(false);
    std::lock_guard lock(mutex);
    if (!allocated()) return;
    for (auto& block : blocks) block.reset();
    for (Part& p : parts) p = Part{};
    g_buffer_in_use.fetch_sub(kParts * capacity);
    capacity = 0;
    active = 0;
    sealed = 0;
    retained = 0;
  }
  // Under `mutex`: the file range the parts hold, [lowest, highest).
  std::uint64_t lowest() const { return back(sealed + retained).start; }
  std::uint64_t highest() const { return current().start + current().fill; }
};

namespace {

// The segment's reads: the file, with the write-behind buffer's bytes on top (they are newer
// than, or equal to, what the file holds at the same positions).
class TailReader final : public File {
 public:
  TailReader(std::shared_ptr<File> file, std::shared_ptr<void> keep, Segment::TailBuffer* buffer,
             std::uint64_t cache_key)
      : file_(std::move(file)), keep_(std::move(keep)), buffer_(buffer), cache_key_(cache_key) {}

  Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;
  Status write_at(std::uint64_t, std::span<const BufferView>) override {
    return Status::internal("segment read view: not writable");
  }
  Status sync() override { return Status::internal("segment read view: not writable"); }
  Status truncate(std::uint64_t) override {
    return Status::internal("segment read view: not writable");
  }
  Result<std::uint64_t> size() override { return file_->size(); }
  int native_handle() const override { return -1; }

 private:
  std::shared_ptr<File> file_;
  std::shared_ptr<void> keep_;  // keeps *buffer_ alive
  Segment::TailBuffer* buffer_;
  std::uint64_t cache_key_;  // the segment's blocks in the read cache
};

}  // namespace

Result<std::size_t> TailReader::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  std::uint64_t end = offset + out.size();
  std::size_t from_file = out.size();
  std::size_t from_buffer = 0;
  {
    std::lock_guard lock(buffer_->mutex);
    Segment::TailBuffer& b = *buffer_;
    if (b.allocated()) {
      std::uint64_t lowest = b.lowest();
      std::uint64_t highest = b.highest();  // the parts are contiguous
      if (end > lowest) {
        std::uint64_t lo = std::max(offset, lowest);
        std::uint64_t hi = std::min(end, highest);
        from_file = static_cast<std::size_t>(lo - offset);
        from_buffer = hi > lo ? static_cast<std::size_t>(hi - lo) : 0;
        for (std::size_t k = 0; k <= b.sealed + b.retained; ++k) {
          const Segment::TailBuffer::Part& h = b.back(k);
          std::uint64_t from = std::max(lo, h.start);
          std::uint64_t to = std::min(hi, h.start + h.fill);
          if (to > from) {
            std::memcpy(out.data() + (from - offset), h.data + (from - h.start),
                        static_cast<std::size_t>(to - from));
          }
        }
      }
    }
  }
  if (from_file == 0) return from_buffer;
  // Below the buffer: the read cache's blocks of written parts, or the file. Both hold the
  // bytes (and keep them: a cut or reset is detected by the caller's generation check).
  if (ReadCache::instance().copy_out(cache_key_, offset, out.first(from_file))) {
    return from_file + from_buffer;
  }
  MQ_ASSIGN_OR_RETURN(std::size_t got, file_->read_at(offset, out.first(from_file)));
  return got < from_file ? got : from_file + from_buffer;
}

Status Segment::append(std::span<const AppendEntry> entries, bool* broken) {
  MQ_ASSERT(!closed_);
  MQ_ASSERT(!entries.empty());
  std::vector<EntryHeader> written;
  written.reserve(entries.size());
  std::uint64_t bytes = 0;
  for (const AppendEntry& e : entries) {
    EntryHeader h;
    h.payload_length = static_cast<std::uint32_t>(e.payload.size());
    h.last_offset_delta = e.last_offset_delta;
    h.term = e.term;
    h.index = e.index;
    h.base_offset = e.base_offset;
    h.max_timestamp = e.max_timestamp;
    h.kind = e.kind;
    bytes += h.stored_size();
    written.push_back(h);
  }
  Status status = Status::unsupported("buffered");
  bool large = options_.direct_append_min_bytes > 0 && bytes >= options_.direct_append_min_bytes;
  // A fill job in flight writes zeros from fill_from_ on: an append that would reach it (or
  // that goes through direct or buffered writes) waits for it first.
  if (fill_job_ != nullptr &&
      (large || buffer_->allocated() || align_up(size_ + bytes) > fill_from_)) {
    Status filled = wait_fill();
    if (!filled.is_ok()) {
      *broken = true;
      return filled;
    }
  }
  // The write-behind buffer takes large appends, and every append while it holds data (a
  // write at size_ would leave the buffered bytes out). It computes the payload CRCs while
  // copying the payloads (one pass over the bytes).
  bool buffered = options_.write_buffer_bytes > 0 && (large || buffer_->allocated());
  if (buffered) {
    status = append_buffered(entries, written, bytes, broken);
    if (status.code() != ErrorCode::kUnsupported) {
      if (!status.is_ok()) return status;  // nothing accepted (or *broken)
      std::uint64_t position = size_;
      for (const EntryHeader& h : written) {
        note_entry(position, h);
        position += h.stored_size();
      }
      size_ = position;
      MQ_ASSERT(size_ <= segment_format::kSegmentBytesMax);
      MQ_ASSERT(buffer_->current().start + buffer_->current().fill == size_ && written_end_ <= size_);
      writeback_position_ = align_down(written_end_);  // nothing in the page cache
      return Status::ok();
    }
    MQ_ASSERT(!buffer_->allocated());  // unsupported only before activation
  }
  Buffer headers(entries.size() * kEntryHeaderSize);
  std::vector<BufferView> pieces;
  pieces.reserve(entries.size() * 2);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    EntryHeader& h = written[i];
    h.payload_crc = crc32c::value(entries[i].payload);
    std::uint8_t* out = headers.data() + i * kEntryHeaderSize;
    h.encode_to(out);
    MQ_DASSERT(EntryHeader::decode_from(BufferView(out, kEntryHeaderSize)).has_value());
    pieces.push_back(BufferView(out, kEntryHeaderSize));
    pieces.push_back(entries[i].payload);
  }
  bool direct = large && !direct_unsupported_;
  if (direct) {
    status = append_direct(pieces, bytes);
    if (status.code() == ErrorCode::kUnsupported) direct_unsupported_ = true;
  }
  if (status.code() == ErrorCode::kUnsupported) {
    status = file_->write_at(size_, pieces);
    tail_block_valid_ = false;
  }
  if (!status.is_ok()) {
    // Roll the partially written tail back to the last good position, durably: otherwise a
    // crash could bring back whole entries of an append that was reported as failed. (The
    // cut also removes pre-written zeros: none are in flight, see above.)
    if (!wait_fill().is_ok() || !file_->truncate(size_).is_ok() || !file_->sync().is_ok()) {
      *broken = true;
    }
    drop_fill_window();
    padded_ = false;
    tail_block_valid_ = false;
    return status;
  }
  std::uint64_t position = size_;
  for (const EntryHeader& h : written) {
    note_entry(position, h);
    position += h.stored_size();
  }
  size_ = position;
  written_end_ = size_;
  MQ_ASSERT(size_ <= segment_format::kSegmentBytesMax);
  // Start write-back of every full MiB behind us so the next fdatasync finds little to do.
  constexpr std::uint64_t kWritebackChunkBytes = 1 << 20;
  if (direct) {
    writeback_position_ = size_ - size_ % kWritebackChunkBytes;  // nothing in the page cache
  } else if (size_ - writeback_position_ >= kWritebackChunkBytes) {
    std::uint64_t end = size_ - size_ % kWritebackChunkBytes;
    file_->start_writeback(writeback_position_, end - writeback_position_);
    writeback_position_ = end;
  }
  return Status::ok();
}

namespace {

// The staging buffer of direct appends: one per appending thread (not per segment, so
// memory does not grow with the number of partitions), aligned for O_DIRECT.
class DirectStaging {
 public:
  static constexpr std::size_t kBytes = 1 << 20;
  DirectStaging() {
    MQ_ASSERT(::posix_memalign(reinterpret_cast<void**>(&data_), kDirectIoAlignment, kBytes) == 0);
  }
  ~DirectStaging() { std::free(data_); }
  DirectStaging(const DirectStaging&) = delete;
  DirectStaging& operator=(const DirectStaging&) = delete;
  std::uint8_t* data() { return data_; }

 private:
  std::uint8_t* data_ = nullptr;
};

}  // namespace

// Why: on the page-cache path every byte is copied into the page cache and then written back
// by the kernel's flusher threads, which on a busy machine caps appends well below the
// device's bandwidth. Large appends instead stream through an aligned staging buffer
// straight to the device (the fdatasync that follows then only commits the size and flushes
// the device cache). The partial last block is rewritten with the same bytes it held, so a
// torn direct write cannot damage what was already there; the zero padding after the last
// entry is cut by recovery like any torn tail, and by trim_padding() before the segment is
// closed (docs/formats/segment_format.md, "Direct appends").
Status Segment::append_direct(std::span<const BufferView> pieces, std::uint64_t bytes) {
  constexpr std::uint64_t kAlign = kDirectIoAlignment;
  static thread_local DirectStaging staging;
  std::uint8_t* buffer = staging.data();
  std::uint64_t write_position = size_ - size_ % kAlign;
  std::size_t head = static_cast<std::size_t>(size_ - write_position);
  if (!tail_block_valid_) {
    tail_block_.resize(kAlign);
    MQ_RETURN_IF_ERROR(read_exact(*file_, write_position, std::span(tail_block_.data(), head),
                                  describe_position(write_position)));
    tail_block_valid_ = true;
  }
  std::memcpy(buffer, tail_block_.data(), head);
  std::size_t fill = head;
  bool first_write = true;
  auto flush = [&](std::size_t length) -> Status {
    Status status = file_->write_direct(write_position, BufferView(buffer, length));
    if (status.code() == ErrorCode::kUnsupported && !first_write) {
      return Status::io_error("direct I/O refused part-way: " + status.message());
    }
    first_write = false;
    write_position += length;
    return status;
  };
  for (BufferView piece : pieces) {
    std::size_t at = 0;
    while (at < piece.size()) {
      std::size_t n = std::min(piece.size() - at, DirectStaging::kBytes - fill);
      std::memcpy(buffer + fill, piece.data() + at, n);
      fill += n;
      at += n;
      if (fill == DirectStaging::kBytes) {
        MQ_RETURN_IF_ERROR(flush(fill));
        fill = 0;
      }
    }
  }
  std::uint64_t end = size_ + bytes;
  MQ_ASSERT(write_position + fill == end);
  std::size_t tail = static_cast<std::size_t>(end % kAlign);
  if (fill > 0) {
    std::size_t padded = static_cast<std::size_t>((fill + kAlign - 1) / kAlign * kAlign);
    std::memset(buffer + fill, 0, padded - fill);
    // The new partial block, before the buffer is reused.
    if (tail > 0) std::memcpy(tail_block_.data(), buffer + (fill - tail), tail);
    MQ_RETURN_IF_ERROR(flush(padded));
  }
  padded_ = padded_ || tail > 0;
  return Status::ok();
}

Status Segment::trim_padding() {
  MQ_RETURN_IF_ERROR(wait_fill());
  MQ_RETURN_IF_ERROR(flush_buffer());
  release_buffer();
  if (!padded_ && reserved_end_ <= size_ && filled_end_ <= size_) return Status::ok();
  // Also releases space reserved beyond the end (ext4 frees preallocated blocks past the new
  // size even when the size does not change).
  MQ_RETURN_IF_ERROR(file_->truncate(size_));
  padded_ = false;
  reserved_end_ = 0;
  drop_fill_window();
  return Status::ok();
}

Status Segment::sync() { return file_->sync(); }

bool Segment::begin_sync_overwrites_only() {
  std::uint64_t lo = align_down(std::min(sync_mark_, written_end_));
  std::uint64_t hi = align_up(written_end_);
  sync_mark_ = written_end_;
  return prewritten_to_ > 0 && lo >= prewritten_from_ && hi <= prewritten_to_;
}

// A background write still running finishes first (its bytes land before anything that
// follows, e.g. a simulated crash of the in-memory file system).
Segment::~Segment() {
  if (buffer_) buffer_->wait_all();
  (void)wait_fill();
  ReadCache::instance().drop(cache_key_);
}

void Segment::set_read_cache(bool on) {
  read_cache_ = on;
  if (!on) ReadCache::instance().drop(cache_key_);
}

std::optional<SharedBuffer> Segment::cached(std::uint64_t position, std::uint64_t length) const {
  return ReadCache::instance().find(cache_key_, position, length);
}

bool Segment::buffer_active() const { return buffer_->allocated(); }

std::optional<SharedBuffer> Segment::copy_buffered(std::uint64_t position,
                                                   std::uint64_t length) const {
  if (!buffer_) return std::nullopt;
  TailBuffer& b = *buffer_;
  std::lock_guard lock(b.mutex);
  if (!b.allocated() || position < b.lowest() || position + length > b.highest()) {
    return std::nullopt;
  }
  Buffer out;
  out.reserve(static_cast<std::size_t>(length));
  for (std::size_t k = b.sealed + b.retained + 1; k-- > 0 && length > 0;) {
    const TailBuffer::Part& h = b.back(k);  // oldest first: the parts are contiguous
    if (position >= h.start + h.fill) continue;
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(length, h.start + h.fill - position));
    out.append(h.data + (position - h.start), n);
    position += n;
    length -= n;
  }
  MQ_ASSERT(length == 0);
  return SharedBuffer(std::move(out));
}

void Segment::attach_file(std::shared_ptr<File> file) {
  file_ = std::move(file);
  buffer_ = std::make_shared<TailBuffer>();
  buffer_->queue = std::make_shared<WriteQueue>(options_.direct_write_depth);
  reader_ = std::make_shared<TailReader>(file_, buffer_, buffer_.get(), cache_key_);
}

void Segment::release_buffer() {
  MQ_ASSERT(written_end_ == size_ && buffer_->jobs.empty());
  buffer_->release();
}

std::shared_ptr<Segment::WriteJob> Segment::write_in_flight() const {
  return buffer_->jobs.empty() ? nullptr : buffer_->jobs.back();
}

// Space first (crash rule 6 stays true: a full disk fails the append, not a later write of
// data already accepted): the file's space is reserved up to the end of the append plus four
// buffers, or, if that much is not free, just to the end of the append.
Status Segment::reserve_for(std::uint64_t end) {
  std::uint64_t need = align_up(end);
  if (need <= reserved_end_) return Status::ok();
  std::uint64_t from = std::max(reserved_end_, align_down(written_end_));
  std::uint64_t ahead = need + 4 * options_.write_buffer_bytes;  // fewer fallocate calls
  // Several part writes in flight: allocate with the file's size moved ahead, so that the
  // direct writes do not extend the file (ext4 runs extending O_DIRECT writes one at a time,
  // under the inode's lock, waiting for each). The file then ends in zeros after the last
  // entry until trim_padding() (or recovery, which cuts them like a torn tail).
  bool allocate = options_.direct_write_depth > 1 && !allocate_unsupported_ && !direct_unsupported_;
  auto reserve = [&](std::uint64_t length) {
    if (allocate) {
      Status allocated = file_->allocate(from, length);
      if (allocated.code() != ErrorCode::kUnsupported) {
        if (allocated.is_ok()) padded_ = true;
        return allocated;
      }
      allocate = false;
      allocate_unsupported_ = true;
    }
    return file_->reserve(from, length);
  };
  Status status = reserve(ahead - from);
  if (status.code() == ErrorCode::kNoSpace) {
    ahead = need;
    status = reserve(ahead - from);
  }
  if (!status.is_ok()) return status;
  reserved_end_ = ahead;
  return Status::ok();
}

Status Segment::activate_buffer() {
  TailBuffer& b = *buffer_;
  // Activate: the buffer starts at the block holding the end of the file, with the bytes the
  // file already has in that block (rewritten unchanged by the next write).
  MQ_ASSERT(written_end_ == size_ && b.jobs.empty());
  constexpr std::size_t kParts = TailBuffer::kParts;
  std::size_t capacity = static_cast<std::size_t>(
      std::max(kAlign, align_down(options_.write_buffer_bytes / kParts)));
  if (!take_budget(kParts * capacity)) return Status::unsupported("write buffer budget exhausted");
  std::shared_ptr<AlignedBlock> blocks[kParts];
  bool have_memory = true;
  for (auto& block : blocks) {
    block = AlignedBlock::allocate(capacity);
    have_memory = have_memory && block != nullptr;
  }
  std::uint64_t start = align_down(size_);
  auto head = static_cast<std::size_t>(size_ - start);
  Status status = !have_memory ? Status::unsupported("write buffer: out of memory")
                               : read_exact(*file_, start, std::span(blocks[0]->data(), head),
                                            describe_position(start));
  if (!status.is_ok()) {
    g_buffer_in_use.fetch_sub(kParts * capacity);
    return status;
  }
  tail_block_valid_ = false;  // the buffer holds the partial block from now on
  std::lock_guard lock(b.mutex);
  for (std::size_t i = 0; i < kParts; ++i) {
    b.blocks[i] = std::move(blocks[i]);
    b.parts[i] = {b.blocks[i]->data(), 0, 0, 0};
  }
  b.parts[0].start = start;
  b.parts[0].fill = head;
  b.capacity = capacity;
  b.active = 0;
  b.sealed = 0;
  b.retained = 0;
  return Status::ok();
}

// Waits for every queued write and frees those parts. An error means entries accepted
// earlier are not on the file: the caller fails the log.
Status Segment::finish_write_in_flight() { return retire_sealed(); }

Status Segment::retire_sealed() {
  while (!buffer_->jobs.empty()) MQ_RETURN_IF_ERROR(retire_oldest());
  return Status::ok();
}

// Waits for the oldest queued write and frees its part.
Status Segment::retire_oldest() {
  TailBuffer& b = *buffer_;
  MQ_ASSERT(!b.jobs.empty() && b.sealed > 0);
  std::shared_ptr<WriteJob> job = std::move(b.jobs.front());
  b.jobs.pop_front();
  job->wait();
  if (job->direct_refused) direct_unsupported_ = true;
  MQ_RETURN_IF_ERROR(job->status);
  std::lock_guard lock(b.mutex);
  const TailBuffer::Part& oldest = b.back(b.sealed);
  written_end_ = std::max(written_end_, std::min(oldest.start + oldest.fill, size_));
  written_index_ = std::max(written_index_, job->covered);
  --b.sealed;
  ++b.retained;  // still readable until reused
  return Status::ok();
}

// The active part is full: seal it (readers keep reading it from memory until it is
// retired) and make the next part, retiring its previous bytes first if the ring is full,
// the active one, continuing right after it. The sealed part's write is queued by
// start_write().
Status Segment::switch_parts() {
  TailBuffer& b = *buffer_;
  if (b.sealed == TailBuffer::kParts - 1) MQ_RETURN_IF_ERROR(retire_oldest());
  std::lock_guard lock(b.mutex);
  MQ_ASSERT(b.current().fill == b.capacity);
  std::uint64_t next = b.current().start + b.capacity;
  // The ring is full: the part to reuse is the oldest retained one (its bytes are on the
  // file). With a read cache it goes there and the ring takes the block given back.
  if (b.retained + b.sealed + 1 == TailBuffer::kParts) {
    --b.retained;
    std::size_t reuse = (b.active + 1) % TailBuffer::kParts;
    TailBuffer::Part& old = b.parts[reuse];
    if (read_cache_ && old.fill == b.capacity) {
      b.blocks[reuse] = ReadCache::instance().exchange(cache_key_, old.start, old.fill,
                                                       std::move(b.blocks[reuse]));
      old.data = b.blocks[reuse]->data();
    }
  }
  ++b.sealed;
  b.active = (b.active + 1) % TailBuffer::kParts;
  b.current().start = next;
  b.current().fill = 0;
  b.current().written = 0;
  return Status::ok();
}

// Queues the write of the sealed part back(k); `covered`: the last entry wholly on the file
// once it (and every older part) is written.
void Segment::start_write(std::size_t k, LogIndex covered) {
  TailBuffer& b = *buffer_;
  MQ_ASSERT(k >= 1 && k <= b.sealed && b.jobs.size() == b.sealed - k);
  const TailBuffer::Part& full = b.back(k);
  auto job = std::make_shared<WriteJob>();
  job->covered = covered;
  // Its first `written` bytes went to the file with a flush before a sync.
  auto write = [job, keep = buffer_, file = file_, data = full.data + full.written,
                start = full.start + full.written, length = full.fill - full.written,
                direct = !direct_unsupported_] {
    // After a failed write nothing later is written: the file must stay a prefix of what
    // was appended (a crash must not find later entries after a hole).
    Status status = keep->write_failed.load()
                        ? Status::io_error("an earlier write of the write-behind buffer failed")
                    : length == 0 ? Status::ok()
                    : direct      ? file->write_direct(start, BufferView(data, length))
                                  : Status::unsupported("buffered");
    bool refused = status.code() == ErrorCode::kUnsupported;
    if (refused) status = file->write_at(start, BufferView(data, length));
    if (!status.is_ok()) keep->write_failed.store(true);
    std::lock_guard lock(job->mutex);
    job->status = status;
    job->direct_refused = refused && direct;
    job->done = true;
    job->cv.notify_all();
  };
  b.jobs.push_back(job);
  b.queue->submit(std::move(write));
}

// Copies `n` bytes to the end of the buffered bytes, moving to the next part as parts fill.
// With `crc`, the bytes are checksummed while copied (*crc extended). A part that fills is
// queued for writing at once (covered: the last entry wholly on the file after it), unless
// `pending` is given: then its write waits until the caller has filled in the entry header
// (*pending counts such parts).
Status Segment::put_buffered(const std::uint8_t* src, std::size_t n, std::uint32_t* crc,
                             LogIndex covered, std::size_t* pending) {
  TailBuffer& b = *buffer_;
  while (n > 0) {
    if (b.current().fill == b.capacity) {
      MQ_RETURN_IF_ERROR(switch_parts());
      if (pending != nullptr) {
        ++*pending;
      } else {
        start_write(1, covered);
      }
    }
    TailBuffer::Part& part = b.current();
    std::size_t k = std::min(n, b.capacity - part.fill);
    // Beyond size_: no reader reads these bytes, so the copy needs no lock.
    if (src == nullptr) {
      // room for a header filled in later
    } else if (crc != nullptr) {
      *crc = crc32c::extend_copy(*crc, part.data + part.fill, src, k);
    } else {
      std::memcpy(part.data + part.fill, src, k);
    }
    {
      std::lock_guard lock(b.mutex);
      part.fill += k;
    }
    if (src != nullptr) src += k;
    n -= k;
  }
  return Status::ok();
}

// Writes bytes at file position `position` (in the active part or a sealed one whose write
// is not queued yet, beyond size_): the header of the entry being appended.
void Segment::patch_buffered(std::uint64_t position, const std::uint8_t* src, std::size_t n) {
  TailBuffer& b = *buffer_;
  while (n > 0) {
    std::size_t k = 0;
    while (position < b.back(k).start) ++k;
    TailBuffer::Part& h = b.back(k);
    MQ_ASSERT(k <= b.sealed - b.jobs.size() && position < h.start + h.fill);
    std::size_t m = std::min<std::uint64_t>(n, h.start + h.fill - position);
    std::memcpy(h.data + (position - h.start), src, m);
    position += m;
    src += m;
    n -= m;
  }
}

Status Segment::append_buffered(std::span<const AppendEntry> entries,
                                std::span<EntryHeader> headers, std::uint64_t bytes,
                                bool* broken) {
  TailBuffer& b = *buffer_;
  if (reserve_unsupported_) return Status::unsupported("no space reservation");
  Status reserved = reserve_for(size_ + bytes);
  if (reserved.code() == ErrorCode::kUnsupported && !b.allocated()) {
    reserve_unsupported_ = true;
    return reserved;
  }
  MQ_RETURN_IF_ERROR(reserved);
  if (!b.allocated()) MQ_RETURN_IF_ERROR(activate_buffer());
  MQ_ASSERT(b.current().start + b.current().fill == size_);
  // Entries wholly below the end of a sealed part are on the file once its write is done.
  if (written_end_ == size_) written_index_ = last_index_;
  LogIndex done = last_index_;  // the last entry wholly copied
  std::uint64_t end = size_;
  Status status;
  for (std::size_t i = 0; i < entries.size() && status.is_ok(); ++i) {
    EntryHeader& h = headers[i];
    const auto* payload = entries[i].payload.data();
    std::uint8_t header[kEntryHeaderSize];
    if (h.stored_size() > (TailBuffer::kParts - 2) * b.capacity) {
      // Too large to hold back the writes of every part it spans until its header is filled
      // in: checksum first, then header and payload in order.
      h.payload_crc = crc32c::value(entries[i].payload);
      h.encode_to(header);
      status = put_buffered(header, kEntryHeaderSize, nullptr, done, nullptr);
      if (status.is_ok()) status = put_buffered(payload, h.payload_length, nullptr, done, nullptr);
    } else {
      // The header's room first; the payload is checksummed while it is copied, then the
      // header is filled in. Parts that fill meanwhile are queued for writing after that.
      std::size_t pending = 0;
      std::uint32_t crc = 0;
      status = put_buffered(nullptr, kEntryHeaderSize, nullptr, done, &pending);
      if (status.is_ok()) status = put_buffered(payload, h.payload_length, &crc, done, &pending);
      if (!status.is_ok()) break;
      h.payload_crc = crc;
      h.encode_to(header);
      patch_buffered(end, header, kEntryHeaderSize);
      for (std::size_t k = pending; k >= 1; --k) start_write(k, done);
    }
    if (!status.is_ok()) break;
    MQ_DASSERT(EntryHeader::decode_from(BufferView(header, kEntryHeaderSize)).has_value());
    done = h.index;
    end += h.stored_size();
    // A part filled exactly by this entry is queued now.
    if (b.current().fill == b.capacity) {
      status = switch_parts();
      if (status.is_ok()) start_write(1, done);
    }
  }
  if (!status.is_ok()) {
    // An earlier part could not be written: entries accepted before this append may not be
    // on the file, so the log must fail. Readers still see every accepted byte.
    *broken = true;
    return status;
  }
  return Status::ok();
}

Status Segment::flush_buffer() {
  MQ_RETURN_IF_ERROR(retire_sealed());
  if (written_end_ >= size_) return Status::ok();
  TailBuffer& b = *buffer_;
  TailBuffer::Part& part = b.current();
  MQ_ASSERT(b.allocated() && b.sealed == 0 && part.start + part.fill == size_);
  std::size_t used = part.fill;
  auto padded = static_cast<std::size_t>(align_up(used));
  {
    std::lock_guard lock(b.mutex);
    std::memset(part.data + used, 0, padded - used);
  }
  // From the block holding the end of the previous write (rewritten with what follows it).
  const std::size_t from = part.written;
  MQ_ASSERT(from % kAlign == 0 && from <= used);
  Status status = direct_unsupported_
                      ? Status::unsupported("buffered")
                      : file_->write_direct(part.start + from, BufferView(part.data + from, padded - from));
  if (status.code() == ErrorCode::kUnsupported) {
    direct_unsupported_ = true;
    padded = used;
    status = file_->write_at(part.start + from, BufferView(part.data + from, used - from));
  }
  MQ_RETURN_IF_ERROR(status);
  written_end_ = size_;
  padded_ = padded_ || padded > used;
  written_index_ = last_index_;
  // The bytes stay in the part (readable from memory); the next write starts at the block
  // holding the end.
  part.written = static_cast<std::size_t>(align_down(used));
  return Status::ok();
}

}  // namespace mq::storage
