// Group commit: one flusher thread serves many logs (many partitions). Appends only write to
// the page cache and enqueue their log here; the flusher takes every queued log, issues one
// fdatasync per log for everything appended to it so far, and each log then reports its new
// durable index (LogOptions::on_durable, and Log::durable_index() for polling). Appends that
// arrive while a sync runs are covered by the next round, so under load many appends share
// one fdatasync (the batch grows with the sync latency, as in leveldb/Kafka group commit).
//
// Modes (FlusherOptions::mode):
//   kAlways   (default) a round starts as soon as a log is queued;
//   kInterval (opt-in)  rounds start at most every interval_ms (time from the injected
//             Clock). Logs opened with DurabilityMode::kInterval treat written entries as
//             durable at once; see log.h for the risk (power loss loses up to interval_ms).
//
// Without start(), nothing runs in the background: run_once() performs a round in the
// calling thread (deterministic tests and the simulator).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "storage/clock.h"
#include "storage/log.h"

namespace mq::storage {

struct FlusherOptions {
  DurabilityMode mode = DurabilityMode::kAlways;
  std::int64_t interval_ms = 0;  // kInterval: minimum time between two rounds
};

struct FlusherStats {
  std::uint64_t rounds = 0;
  std::uint64_t fdatasyncs = 0;     // syncs issued (one per dirty log per round)
  std::uint64_t sync_errors = 0;
};

class Flusher {
 public:
  Flusher(FlusherOptions options, Clock* clock);
  ~Flusher();  // stops the thread
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;

  void start();
  void stop();

  // Called by Log::append: `log` has unsynced entries.
  void enqueue(Log* log);
  // Called by ~Log: forget `log`, waiting if a round is syncing it right now.
  void remove(Log* log);
  // One round in the calling thread; returns the number of fdatasyncs issued.
  std::size_t run_once();

  FlusherStats stats() const;

 private:
  void thread_main();
  std::size_t sync_batch(std::vector<Log*>& batch);

  FlusherOptions options_;
  Clock* clock_;
  mutable std::mutex mutex_;
  std::condition_variable work_;  // queue non-empty or stopping
  std::condition_variable idle_;  // a round finished
  std::vector<Log*> queue_;
  std::unordered_set<Log*> queued_;
  std::unordered_set<Log*> in_round_;
  bool stopping_ = false;
  std::thread thread_;
  std::int64_t last_round_ms_ = INT64_MIN / 2;
  FlusherStats stats_;
};

}  // namespace mq::storage
