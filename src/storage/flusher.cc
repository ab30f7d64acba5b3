#include "storage/flusher.h"

#include <chrono>

#include "base/trace.h"

namespace mq::storage {

Flusher::Flusher(FlusherOptions options, Clock* clock) : options_(options), clock_(clock) {
  MQ_ASSERT(clock != nullptr);
  MQ_ASSERT(options.interval_ms >= 0);
}

Flusher::~Flusher() { stop(); }

void Flusher::start() {
  std::lock_guard lock(mutex_);
  MQ_ASSERT(!thread_.joinable(), "flusher started twice");
  stopping_ = false;
  thread_ = std::thread([this] { thread_main(); });
}

void Flusher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  if (thread_.joinable()) thread_.join();
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

std::size_t Flusher::sync_batch(std::vector<Log*>& batch) {
  std::size_t syncs = 0;
  std::uint64_t errors = 0;
  for (Log* log : batch) {
    trace::point(trace::Stage::kSyncStart);
    auto synced = log->sync_internal(false);  // the log reports its durable index itself
    trace::point(trace::Stage::kSyncEnd);
    if (!synced.has_value()) {
      ++errors;
    } else if (*synced) {
      ++syncs;
    }
  }
  std::lock_guard lock(mutex_);
  for (Log* log : batch) in_round_.erase(log);
  stats_.rounds += 1;
  stats_.fdatasyncs += syncs;
  stats_.sync_errors += errors;
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
  return sync_batch(batch);
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
    sync_batch(batch);
    lock.lock();
  }
}

FlusherStats Flusher::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace mq::storage
