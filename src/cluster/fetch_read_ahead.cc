#include "cluster/fetch_read_ahead.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>

#include "base/thread_name.h"

namespace mq::cluster {
namespace {

constexpr std::uint64_t kAlign = storage::kDirectIoAlignment;
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
constexpr std::uint64_t align_down(std::uint64_t n) { return n - n % kAlign; }
constexpr std::uint64_t align_up(std::uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

struct FetchReadAhead::Job {
  // The file: identity only (a removed segment's file is not kept open by its windows);
  // `reading` holds it open while the read runs.
  std::weak_ptr<storage::File> file;
  std::shared_ptr<storage::File> reading;
  std::uint64_t generation = 0;
  std::uint64_t from = 0;      // aligned
  std::uint64_t length = 0;    // aligned, <= kFetchReadAheadBlockBytes
  std::uint64_t valid_to = 0;  // bytes below this (and below what was read) may be served

  std::mutex mutex;
  std::condition_variable cv;
  std::shared_ptr<std::uint8_t> block;  // null once reclaimed (BlockPool::reclaim)
  bool done = false;
  std::uint64_t got = 0;                 // bytes read from `from` (0 after a failure)
  std::atomic<std::int64_t> used_ms{0};  // planned or last served

  void finish(std::uint64_t n) {
    std::lock_guard lock(mutex);
    got = n;
    done = true;
    reading.reset();
    cv.notify_all();
  }
  // Once the read is done: the end of what may be served and the block holding it (null
  // when reclaimed: nothing may be served).
  std::uint64_t wait_end(std::shared_ptr<std::uint8_t>* out) {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return done; });
    *out = block;
    return std::min(valid_to, from + got);
  }
};

namespace {

// Free blocks kept for reuse beyond this many are given back (memory of a finished catch-up
// read does not stay with the broker).
constexpr std::size_t kFreeBlocksKept = 8;

// Aligned blocks for direct reads, reused so that reads land in memory already touched.
// Never destroyed (blocks may be released by any thread while the process exits).
class BlockPool {
 public:
  static BlockPool& instance() {
    static BlockPool* pool = new BlockPool;
    return *pool;
  }

  // A block for `job` (registered, so that it can be reclaimed once idle), or null when
  // `budget` bytes of blocks are allocated and none is idle.
  std::shared_ptr<std::uint8_t> acquire(std::uint64_t budget,
                                        const std::shared_ptr<FetchReadAhead::Job>& job,
                                        std::int64_t now_ms) {
    std::uint8_t* memory = take(budget);
    if (memory == nullptr) {
      reclaim(now_ms);
      memory = take(budget);
    }
    if (memory == nullptr) {
      std::lock_guard lock(mutex_);
      ++budget_refusals_;
      return nullptr;
    }
    {
      std::lock_guard lock(mutex_);
      if (jobs_.size() >= 4 * std::max<std::uint64_t>(allocated_, 8)) {
        std::erase_if(jobs_,
                      [](const std::weak_ptr<FetchReadAhead::Job>& j) { return j.expired(); });
      }
      jobs_.push_back(job);
    }
    return std::shared_ptr<std::uint8_t>(memory, [this](std::uint8_t* m) { release(m); });
  }

  void stats(FetchReadAheadStats* out) {
    std::lock_guard lock(mutex_);
    out->blocks_in_use = allocated_;
    out->budget_refusals = budget_refusals_;
  }

 private:
  std::uint8_t* take(std::uint64_t budget) {
    std::lock_guard lock(mutex_);
    if (!free_.empty()) {
      std::uint8_t* memory = free_.back();
      free_.pop_back();
      return memory;
    }
    if ((allocated_ + 1) * kFetchReadAheadBlockBytes > budget) return nullptr;
    void* p = nullptr;
    if (::posix_memalign(&p, kAlign, kFetchReadAheadBlockBytes) != 0) return nullptr;
    ++allocated_;
    return static_cast<std::uint8_t*>(p);
  }

  // Windows whose read is done and that were not served for kIdleMs (a consumer that stopped
  // or went away) give their blocks back; a response still being sent keeps its block until
  // it is sent. The blocks are dropped outside the pool's mutex (their release takes it).
  void reclaim(std::int64_t now_ms) {
    std::vector<std::shared_ptr<FetchReadAhead::Job>> idle;
    {
      std::lock_guard lock(mutex_);
      std::erase_if(jobs_, [&](const std::weak_ptr<FetchReadAhead::Job>& weak) {
        auto job = weak.lock();
        if (job == nullptr) return true;
        if (now_ms - job->used_ms < kIdleMs) return false;
        idle.push_back(std::move(job));
        return true;
      });
    }
    for (const auto& job : idle) {
      std::shared_ptr<std::uint8_t> block;
      {
        std::lock_guard lock(job->mutex);
        if (!job->done) continue;  // still being read into: left alone
        block = std::move(job->block);
      }
      block.reset();  // back to the pool unless a response still holds it
    }
  }

  void release(std::uint8_t* memory) {
    std::lock_guard lock(mutex_);
    if (free_.size() < kFreeBlocksKept) {
      free_.push_back(memory);
      return;
    }
    std::free(memory);
    --allocated_;
  }

  static constexpr std::int64_t kIdleMs = 2000;
  std::mutex mutex_;
  std::vector<std::weak_ptr<FetchReadAhead::Job>> jobs_;  // blocks handed out, for reclaim
  std::vector<std::uint8_t*> free_;
  std::uint64_t allocated_ = 0;
  std::uint64_t budget_refusals_ = 0;
};

// The reader threads (rmq-readahead): direct reads run here, off the event loop.
class ReaderPool {
 public:
  static ReaderPool& instance() {
    static ReaderPool* pool = new ReaderPool;
    return *pool;
  }

  // False when no thread could be started (the caller reads nothing ahead).
  bool submit(std::shared_ptr<FetchReadAhead::Job> job) {
    std::lock_guard lock(mutex_);
    if (threads_ == 0) {
      for (std::size_t i = 0; i < kThreads; ++i) {
        try {
          std::thread([this] {
            name_this_thread("rmq-readahead");
            run();
          }).detach();
          ++threads_;
        } catch (const std::system_error&) {
          break;
        }
      }
      if (threads_ == 0) return false;
    }
    queue_.push_back(std::move(job));
    cv_.notify_one();
    return true;
  }

  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> bytes{0};

 private:
  static constexpr std::size_t kThreads = 4;
  void run();

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<FetchReadAhead::Job>> queue_;
  std::size_t threads_ = 0;
};

}  // namespace

namespace {

void ReaderPool::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] { return !queue_.empty(); });
    std::shared_ptr<FetchReadAhead::Job> job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    // The block cannot be reclaimed before the job is done.
    auto read = job->reading->read_direct(
        job->from,
        std::span<std::uint8_t>(job->block.get(), static_cast<std::size_t>(job->length)));
    reads.fetch_add(1, std::memory_order_relaxed);
    if (read.has_value()) {
      bytes.fetch_add(*read, std::memory_order_relaxed);
      job->finish(*read);
    } else {
      failures.fetch_add(1, std::memory_order_relaxed);
      job->finish(0);  // serves nothing: the fetch sends from the file
    }
    lock.lock();
  }
}

}  // namespace

std::uint64_t fetch_read_ahead_budget_bytes() {
  static const std::uint64_t bytes = [] {
    constexpr std::uint64_t kDefaultMib = 64, kMaxMib = 4096;
    const char* v = std::getenv("RAFTMQ_FETCH_READ_AHEAD_MIB");
    if (v == nullptr || *v == '\0') return kDefaultMib << 20;
    char* end = nullptr;
    unsigned long long mib = std::strtoull(v, &end, 10);
    if (*end != '\0' || v[0] == '-' || mib > kMaxMib) {
      std::fprintf(stderr, "RAFTMQ_FETCH_READ_AHEAD_MIB=%s: expected 0-%llu MiB; %llu MiB used\n",
                   v, static_cast<unsigned long long>(kMaxMib),
                   static_cast<unsigned long long>(kDefaultMib));
      return kDefaultMib << 20;
    }
    return static_cast<std::uint64_t>(mib) << 20;
  }();
  return bytes;
}

FetchReadAheadStats fetch_read_ahead_stats() {
  FetchReadAheadStats s;
  ReaderPool& readers = ReaderPool::instance();
  s.reads = readers.reads.load();
  s.read_failures = readers.failures.load();
  s.bytes_read = readers.bytes.load();
  BlockPool::instance().stats(&s);
  return s;
}

FetchReadAhead::FetchReadAhead(std::uint64_t budget_bytes) : budget_bytes_(budget_bytes) {}
FetchReadAhead::~FetchReadAhead() {
  clear();
  for (const std::shared_ptr<Job>& job : retired_) {
    std::unique_lock lock(job->mutex);
    job->cv.wait(lock, [&] { return job->done; });
  }
}

template <typename Pred>
void FetchReadAhead::forget_if(Pred pred) {
  std::erase_if(retired_, [](const std::shared_ptr<Job>& job) {
    std::lock_guard lock(job->mutex);
    return job->done;
  });
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (pred(**it)) {
      retired_.push_back(std::move(*it));
      it = windows_.erase(it);
    } else {
      ++it;
    }
  }
}

void FetchReadAhead::clear() {
  forget_if([](const Job&) { return true; });
}

std::optional<std::vector<SharedBuffer>> FetchReadAhead::take(const storage::FileSlice& slice,
                                                              std::uint64_t position,
                                                              std::uint64_t length) {
  const std::uint64_t end = position + length;
  std::uint64_t covered = position;
  std::vector<SharedBuffer> pieces;
  for (const std::shared_ptr<Job>& w : windows_) {
    if (covered == end) break;
    if (w->generation != slice.generation || covered < w->from || covered >= w->valid_to) continue;
    if (w->file.lock() != slice.file) continue;
    std::shared_ptr<std::uint8_t> block;
    std::uint64_t served_to = std::min(end, w->wait_end(&block));
    if (served_to <= covered || block == nullptr) {  // a failed or short read, or reclaimed
      if (w->got == 0) failed_file_ = w->file;
      return std::nullopt;
    }
    w->used_ms = now_ms();
    BufferView bytes(block.get() + (covered - w->from),
                     static_cast<std::size_t>(served_to - covered));
    pieces.push_back(SharedBuffer::alias(std::move(block), bytes));
    covered = served_to;
  }
  if (covered != end) return std::nullopt;
  return pieces;
}

void FetchReadAhead::advance(const storage::FileSlice& slice, std::uint64_t end) {
  if (budget_bytes_ == 0 || slice.file == nullptr) return;
  if (!failed_file_.expired() && failed_file_.lock() == slice.file) return;
  // Forget what the consumer has passed, and windows of another file or generation.
  forget_if([&](const Job& w) {
    return w.generation != slice.generation || w.valid_to <= end || w.file.lock() != slice.file;
  });
  if (windows_.empty() &&
      (end >= slice.written_end || slice.written_end - end < kFetchReadAheadStartBytes)) {
    return;
  }
  std::uint64_t next = windows_.empty() ? align_down(end) : align_down(windows_.back()->valid_to);
  const std::int64_t now = now_ms();
  while (windows_.size() < kFetchReadAheadBlocks && next < slice.written_end &&
         slice.written_end - std::max(next, end) >= kFetchReadAheadMinBytes) {
    auto job = std::make_shared<Job>();
    job->file = slice.file;
    job->reading = slice.file;
    job->generation = slice.generation;
    job->from = next;
    job->length =
        std::min<std::uint64_t>(kFetchReadAheadBlockBytes, align_up(slice.written_end) - next);
    job->valid_to = std::min(next + job->length, slice.written_end);
    job->used_ms = now;
    job->block = BlockPool::instance().acquire(budget_bytes_, job, now);
    if (job->block == nullptr) return;
    if (!ReaderPool::instance().submit(job)) return;
    windows_.push_back(job);
    next = align_down(job->valid_to);
  }
}

bool FetchReadAhead::restart_at(const storage::FileSlice& slice, std::uint64_t position) {
  if (budget_bytes_ == 0) return false;
  clear();
  advance(slice, position);
  return !windows_.empty();
}

}  // namespace mq::cluster
