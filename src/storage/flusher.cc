#include "storage/flusher.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "base/thread_name.h"
#include "base/trace.h"

namespace mq::storage {

namespace {
constexpr int kSyncThreadsMax = 16;
}  // namespace

int flusher_sync_threads_from_env() {
  if (const char* env = std::getenv("RAFTMQ_FLUSHER_THREADS"); env != nullptr) {
    long n = std::strtol(env, nullptr, 10);
    if (n >= 1 && n <= kSyncThreadsMax) return static_cast<int>(n);
  }
  return kFlusherSyncThreadsDefault;
}

bool flusher_shared_flush_from_env() {
  const char* env = std::getenv("RAFTMQ_SHARED_FLUSH");
  if (env == nullptr || std::strcmp(env, "1") == 0) return true;
  if (std::strcmp(env, "0") == 0) return false;
  std::fprintf(stderr, "RAFTMQ_SHARED_FLUSH=%s: expected 0 or 1; one flush per round stays on\n",
               env);
  return true;
}

Flusher::Flusher(FlusherOptions options, Clock* clock) : options_(options), clock_(clock) {
  MQ_ASSERT(clock != nullptr);
  MQ_ASSERT(options.interval_ms >= 0);
  MQ_ASSERT(options.sync_threads >= 1 && options.sync_threads <= kSyncThreadsMax,
            "FlusherOptions::sync_threads out of range");
}

Flusher::~Flusher() { stop(); }

void Flusher::start() {
  std::lock_guard lock(mutex_);
  MQ_ASSERT(!thread_.joinable(), "flusher started twice");
  stopping_ = false;
  // Interval mode batches on purpose (at most a round per interval): one thread is enough.
  // The helpers exist before the flusher thread reads helpers_.
  if (options_.mode == DurabilityMode::kAlways) {
    for (int i = 1; i < options_.sync_threads; ++i) {
      helpers_.emplace_back([this, i] {
        name_this_thread("rmq-flush-help");
        helper_main(i);
      });
    }
  }
  thread_ = std::thread([this] {
    name_this_thread("rmq-flusher");
    thread_main();
  });
}

void Flusher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  helper_work_.notify_all();
  // The flusher thread finishes its round first (the helpers take what is left of it).
  if (thread_.joinable()) thread_.join();
  for (std::thread& t : helpers_) t.join();
  helpers_.clear();
}

void Flusher::enqueue(Log* log) {
  {
    std::lock_guard lock(mutex_);
    if (!queued_.insert(log).second) return;
    queue_.push_back(log);
  }
  trace::point(trace::Stage::kFlushEnqueue);
  work_.notify_one();
}

void Flusher::remove(Log* log) {
  std::unique_lock lock(mutex_);
  if (queued_.erase(log) > 0) std::erase(queue_, log);
  idle_.wait(lock, [&] { return in_round_.count(log) == 0; });
}

int Flusher::sync_one(Log* log, int thread_id) {
  trace::point(trace::Stage::kSyncStart, static_cast<std::uint64_t>(thread_id));
  auto synced = log->sync_internal(false);  // the log reports its durable index itself
  trace::point(trace::Stage::kSyncEnd, static_cast<std::uint64_t>(thread_id));
  if (!synced.has_value()) return -1;
  return *synced ? 1 : 0;
}

std::pair<std::size_t, std::uint64_t> Flusher::sync_parallel(const std::vector<Log*>& batch) {
  std::unique_lock lock(mutex_);
  round_logs_ = &batch;
  round_next_ = 0;
  round_pending_ = batch.size();
  round_syncs_ = 0;
  round_errors_ = 0;
  // One helper per log beyond the one this thread takes.
  const std::size_t wake = std::min(batch.size() - 1, helpers_.size());
  for (std::size_t i = 0; i < wake; ++i) helper_work_.notify_one();
  while (round_next_ < batch.size()) {
    Log* log = batch[round_next_++];
    lock.unlock();
    int r = sync_one(log, 0);
    lock.lock();
    round_syncs_ += r > 0 ? 1 : 0;
    round_errors_ += r < 0 ? 1 : 0;
    --round_pending_;
  }
  round_done_.wait(lock, [&] { return round_pending_ == 0; });
  round_logs_ = nullptr;
  stats_.parallel_rounds += 1;
  return {round_syncs_, round_errors_};
}

void Flusher::helper_main(int id) {
  std::unique_lock lock(mutex_);
  while (true) {
    helper_work_.wait(lock, [&] {
      return stopping_ || (round_logs_ != nullptr && round_next_ < round_logs_->size());
    });
    if (round_logs_ == nullptr || round_next_ >= round_logs_->size()) {
      if (stopping_) return;
      continue;
    }
    Log* log = (*round_logs_)[round_next_++];
    lock.unlock();
    int r = sync_one(log, id);
    lock.lock();
    round_syncs_ += r > 0 ? 1 : 0;
    round_errors_ += r < 0 ? 1 : 0;
    if (--round_pending_ == 0) round_done_.notify_one();
  }
}

std::pair<std::size_t, std::uint64_t> Flusher::sync_shared(const std::vector<Log*>& batch,
                                                           std::uint64_t* shared) {
  struct Item {
    Log* log;
    Log::PendingSync pending;
  };
  std::size_t syncs = 0;
  std::uint64_t errors = 0;
  std::vector<std::pair<Log*, std::uint64_t>> synced;  // for after_sync, once all reported
  auto finish = [&](const Item& item, const Status& status) {
    auto reported = item.log->finish_sync(item.pending, status);
    if (!reported.has_value()) {
      ++errors;
    } else if (*reported) {
      synced.emplace_back(item.log, **reported);
    }
  };
  auto sync_file = [&](File& file) {
    trace::point(trace::Stage::kSyncStart, 0);
    Status status = file.sync();
    trace::point(trace::Stage::kSyncEnd, 0);
    if (status.is_ok()) ++syncs;
    return status;
  };
  // Prepare every log: its bytes go to its file; sort out who can share a flush.
  std::vector<Item> own;
  std::vector<std::pair<std::uint64_t, std::vector<Item>>> groups;  // by flush domain
  for (Log* log : batch) {
    auto prepared = log->prepare_sync(false);
    if (!prepared.has_value()) {
      ++errors;
      continue;
    }
    if (!*prepared) continue;
    Item item{log, std::move(**prepared)};
    std::uint64_t domain = item.pending.overwrites_only ? item.pending.file->flush_domain() : 0;
    if (domain == 0) {
      own.push_back(std::move(item));
      continue;
    }
    auto group = std::find_if(groups.begin(), groups.end(),
                              [&](const auto& g) { return g.first == domain; });
    if (group == groups.end()) {
      groups.emplace_back(domain, std::vector<Item>());
      group = groups.end() - 1;
    }
    group->second.push_back(std::move(item));
  }
  // The device gets every file's cached bytes at once (page-cache appends; direct writes are
  // already there), rather than one file's after another's as each write-out or sync waits.
  for (auto& [domain, items] : groups) {
    for (const Item& item : items) item.pending.file->start_writeback(0, 0);
  }
  for (const Item& item : own) item.pending.file->start_writeback(0, 0);
  for (auto& [domain, items] : groups) {
    // Every file but the one whose fdatasync flushes the device writes out its cached bytes.
    std::vector<Item> ready;
    for (std::size_t i = 0; i + 1 < items.size(); ++i) {
      Status written = items[i].pending.file->write_out();
      if (written.code() == ErrorCode::kUnsupported) {
        own.push_back(std::move(items[i]));
      } else if (!written.is_ok()) {
        finish(items[i], written);  // the log fails: its cached bytes may be lost
      } else {
        ready.push_back(std::move(items[i]));
      }
    }
    Item& last = items.back();
    Status status = sync_file(*last.pending.file);
    finish(last, status);
    for (const Item& item : ready) finish(item, status);
    if (status.is_ok()) *shared += ready.size();
  }
  for (const Item& item : own) finish(item, sync_file(*item.pending.file));
  for (auto [log, bytes] : synced) log->after_sync(bytes);
  return {syncs, errors};
}

std::size_t Flusher::sync_batch(std::vector<Log*>& batch, bool parallel) {
  std::size_t syncs = 0;
  std::uint64_t errors = 0;
  std::uint64_t shared = 0;
  if (parallel && batch.size() > 1 && !helpers_.empty()) {
    std::tie(syncs, errors) = sync_parallel(batch);
  } else if (options_.shared_flush && batch.size() > 1 &&
             options_.mode == DurabilityMode::kAlways) {
    std::tie(syncs, errors) = sync_shared(batch, &shared);
  } else {
    for (Log* log : batch) {
      int r = sync_one(log, 0);
      syncs += r > 0 ? 1 : 0;
      errors += r < 0 ? 1 : 0;
    }
  }
  std::lock_guard lock(mutex_);
  for (Log* log : batch) in_round_.erase(log);
  stats_.rounds += 1;
  stats_.fdatasyncs += syncs;
  stats_.sync_errors += errors;
  stats_.shared_flush_logs += shared;
  idle_.notify_all();
  return syncs;
}

std::size_t Flusher::run_once() {
  std::vector<Log*> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
    queued_.clear();
    for (Log* log : batch) in_round_.insert(log);
  }
  return sync_batch(batch, false);  // the caller's thread: no round of the helpers
}

void Flusher::thread_main() {
  std::unique_lock lock(mutex_);
  while (true) {
    work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_ && queue_.empty()) return;
    trace::point(trace::Stage::kFlusherWake);
    if (options_.mode == DurabilityMode::kInterval) {
      // At most one round every interval_ms (a stop request ends the wait early).
      std::int64_t due = last_round_ms_ + options_.interval_ms;
      std::int64_t now = clock_->now_ms();
      if (now < due && !stopping_) {
        work_.wait_for(lock, std::chrono::milliseconds(due - now), [&] { return stopping_; });
        continue;
      }
    }
    last_round_ms_ = clock_->now_ms();
    std::vector<Log*> batch;
    batch.swap(queue_);
    queued_.clear();
    for (Log* log : batch) in_round_.insert(log);
    lock.unlock();
    sync_batch(batch, true);
    lock.lock();
  }
}

FlusherStats Flusher::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace mq::storage
