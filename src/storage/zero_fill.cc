// Pre-written segment space (LogOptions::zero_fill_window_bytes, segment.h).
//
// Why: in mode `always` every append waits for an fdatasync. On ext4 an fdatasync after a
// write that grows the file, or that lands in fallocate()d (unwritten) space, must commit the
// journal (the size or the extent state changed); an fdatasync after overwriting blocks that
// are allocated AND written only writes the data and flushes the device cache. So the tail
// keeps a bounded window of written zeros after its last entry: appends overwrite them, and
// only the fill (one fdatasync per window/2 bytes of appends) pays the journal commit.
//
// When: after a sync of the log (the flusher's thread, or a sync() caller), after the
// durable index was reported, so no acknowledgement waits for it. The zeros go through the
// page cache (the next append's partial block is then cached: a direct write would leave it
// to be read back from the device on the append path). The fill's own fdatasync commits the
// new size before any append relies on the window.
//
// Format and crash rules: docs/formats/segment_format.md, "Pre-written space".
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <mutex>

#include "storage/log.h"

namespace mq::storage {

namespace {

constexpr std::uint64_t kAlign = kDirectIoAlignment;
constexpr std::size_t kZeroChunkBytes = 64 << 10;
// After a fill failed (ENOSPC, EIO), this many later chances are skipped before trying again.
constexpr std::uint32_t kFillBackoffSyncs = 256;
// The bytes-per-sync average that disables fills (LogOptions::zero_fill_sync_bytes_max) is an
// exponentially weighted average with weight 1/kAverageWeight for the newest sync.
constexpr std::uint64_t kAverageWeight = 8;
// No fills before a quarter of the window was appended to the log since it was opened.
constexpr std::uint64_t kWarmupFraction = 4;

std::uint64_t align_up(std::uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

namespace {

// A byte count from the environment; `fallback` when unset, not a plain number, or > 1 GiB.
std::uint64_t env_bytes(const char* name, std::uint64_t fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(env, &end, 10);
  if (errno != 0 || *end != '\0' || value > (1ull << 30)) return fallback;
  return static_cast<std::uint64_t>(value);
}

}  // namespace

std::uint64_t default_zero_fill_window_bytes() {
  static const std::uint64_t bytes = env_bytes("RAFTMQ_ZERO_FILL_BYTES", kZeroFillWindowDefault);
  return bytes;
}

std::uint64_t zero_fill_window_bytes_or(std::uint64_t fallback) {
  return env_bytes("RAFTMQ_ZERO_FILL_BYTES", fallback);
}

std::uint64_t default_zero_fill_sync_bytes_max() {
  // 8 KiB: a single in-flight produce of small batches (1-4 KiB per sync) fills; a loaded
  // broker (tens of KiB per sync) does not: the paired produce runs lost 12-33 % of
  // throughput with fills up to 256 KiB per sync (docs/storage_testing.md).
  static const std::uint64_t bytes = env_bytes("RAFTMQ_ZERO_FILL_SYNC_BYTES_MAX", 8u << 10);
  return bytes;
}

struct Segment::FillJob {
  std::shared_ptr<File> file;
  std::uint64_t from = 0;  // zeros go over [from, to)
  std::uint64_t to = 0;
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  Status status;
  bool sync_failed = false;  // the zeros were written but their fdatasync failed

  void wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return done; });
  }
  bool finished() {
    std::lock_guard lock(mutex);
    return done;
  }
};

void Segment::run_fill(const std::shared_ptr<FillJob>& job) {
  static const std::uint8_t kZeros[kZeroChunkBytes] = {};
  std::vector<BufferView> pieces;
  for (std::uint64_t at = job->from; at < job->to; at += kZeroChunkBytes) {
    pieces.emplace_back(kZeros, static_cast<std::size_t>(std::min<std::uint64_t>(kZeroChunkBytes, job->to - at)));
  }
  Status status = job->file->write_at(job->from, pieces);
  bool sync_failed = false;
  if (!status.is_ok()) {
    // Nothing but zeros lies at or beyond `from` (appends stay below it while the job runs):
    // cutting them back keeps the file as it was; if even that fails, the zeros left are a
    // clean end of the log like any other.
    (void)job->file->truncate(job->from);
  } else {
    status = job->file->sync();
    sync_failed = !status.is_ok();
  }
  std::lock_guard lock(job->mutex);
  job->status = status;
  job->sync_failed = sync_failed;
  job->done = true;
  job->cv.notify_all();
}

Status Segment::collect_fill(const std::shared_ptr<FillJob>& taken) {
  if (taken == nullptr || fill_job_ != taken) return Status::ok();  // already taken
  // A copy: `taken` may be fill_job_ itself (plan_fill), which the reset below empties.
  std::shared_ptr<FillJob> job = taken;
  job->wait();
  fill_job_.reset();
  // A failed fdatasync may have dropped dirty pages of this file, appended entries among
  // them, and a later fdatasync may not report it again (fsyncgate): the log must fail.
  if (job->sync_failed) return job->status;
  if (job->status.is_ok()) {
    filled_end_ = std::max(filled_end_, job->to);
    // The fill's fdatasync also made the bytes before `from` in its first block durable
    // (entries appended before the fill was planned), size included.
    std::uint64_t from = job->from - job->from % kDirectIoAlignment;
    if (prewritten_to_ > 0 && from <= prewritten_to_ && from >= prewritten_from_) {
      prewritten_to_ = std::max(prewritten_to_, job->to);
    } else {
      prewritten_from_ = from;
      prewritten_to_ = job->to;
    }
  } else {
    fill_backoff_ = kFillBackoffSyncs;  // a full disk (or EIO): appends still work, unfilled
  }
  return Status::ok();
}

Status Segment::wait_fill() {
  if (fill_job_ == nullptr) return Status::ok();
  std::shared_ptr<FillJob> job = fill_job_;
  job->wait();
  return collect_fill(job);
}

std::uint64_t Segment::fill_bytes_needed(std::uint64_t end_max) const {
  std::uint64_t window = options_.zero_fill_window_bytes;
  if (window == 0 || closed_ || fill_job_ != nullptr || buffer_active()) return 0;
  if (fill_backoff_ > 0 || zero_window_bytes() >= window / 2) return 0;
  std::uint64_t from = std::max(filled_end_, size_);
  std::uint64_t to = std::min(align_up(size_ + window), align_up(end_max));
  return to > from ? to - from : 0;
}

Result<std::shared_ptr<Segment::FillJob>> Segment::plan_fill(std::uint64_t end_max,
                                                             std::uint64_t bytes_allowed) {
  if (fill_job_ != nullptr) {
    if (!fill_job_->finished()) return std::shared_ptr<FillJob>();  // one at a time
    MQ_RETURN_IF_ERROR(collect_fill(fill_job_));
  }
  std::uint64_t bytes = fill_bytes_needed(end_max);
  if (bytes == 0) {
    if (fill_backoff_ > 0) --fill_backoff_;
    return std::shared_ptr<FillJob>();
  }
  if (bytes > bytes_allowed) return std::shared_ptr<FillJob>();
  auto job = std::make_shared<FillJob>();
  job->file = file_;
  job->from = std::max(filled_end_, size_);
  job->to = job->from + bytes;
  fill_job_ = job;
  fill_from_ = job->from;
  return job;
}

// After a sync (see the file comment): refills the tail's window when it has shrunk below
// half, unless the syncs cover many bytes each (a streaming producer: the journal commit is
// then a small share of each fdatasync, and writing every byte twice would cost bandwidth)
// or the disk is nearly full.
void Log::fill_zero_window(std::uint64_t bytes_synced) {
  std::shared_ptr<Segment> tail;
  std::shared_ptr<Segment::FillJob> job;
  {
    std::lock_guard lock(mutex_);
    sync_bytes_average_ = (sync_bytes_average_ * (kAverageWeight - 1) + bytes_synced) / kAverageWeight;
    const std::uint64_t window = segment_options_.zero_fill_window_bytes;
    if (window == 0 || !failed_.is_ok() || segments_.empty()) return;
    if (sync_bytes_average_ > options_.zero_fill_sync_bytes_max) return;
    // Only a log that has been written to since it was opened: a broker holds many idle
    // partitions (a Raft no-op each after an election), and zeros for each would cost
    // window bytes of disk writes and page cache per partition for nothing.
    if (appended_bytes_ < window / kWarmupFraction) return;
    tail = segments_.back();
    std::uint64_t end_max = options_.segment_size_bytes_max;
    std::uint64_t needed = tail->fill_bytes_needed(end_max);
    std::uint64_t allowed = UINT64_MAX;
    if (needed > 0) {
      // The zeros never take more than half the space above the free-space reserve: appends
      // that fit without the window still fit with it (and the window itself is theirs).
      auto free = fs_->free_bytes(options_.directory);
      if (!free.has_value()) return;
      std::uint64_t reserve = options_.free_space_reserve_bytes;
      allowed = *free > reserve ? (*free - reserve) / 2 : 0;
    }
    auto planned = tail->plan_fill(end_max, allowed);
    if (!planned.has_value()) {
      (void)fail_locked(planned.error());
      return;
    }
    job = std::move(*planned);
    if (job == nullptr) return;
  }
  Segment::run_fill(job);  // appends continue meanwhile (below the job's range)
  std::lock_guard lock(mutex_);
  Status collected = tail->collect_fill(job);
  if (!collected.is_ok()) (void)fail_locked(collected);
}

}  // namespace mq::storage
