// Group commit: one flusher thread serves many logs (many partitions). Appends only write to
// the page cache and enqueue their log here; the flusher takes every queued log, issues one
// fdatasync per log for everything appended to it so far, and each log then reports its new
// durable index (LogOptions::on_durable, and Log::durable_index() for polling). Appends that
// arrive while a sync runs are covered by the next round, so under load many appends share
// one fdatasync (the batch grows with the sync latency, as in leveldb/Kafka group commit).
//
// Parallel syncs (FlusherOptions::sync_threads > 1): the logs of one round are synced by up
// to sync_threads threads at once (the flusher thread and sync_threads - 1 helpers) instead
// of one after the other. Each log is still synced by one thread at a time and a round still
// ends when every log of it is synced; what changes is that a round over k dirty logs takes
// about one fdatasync instead of k (ext4's journal commits concurrent fdatasyncs together,
// jbd2 group commit), so an append that just missed a round waits less for the next one.
// Each log reports its own durable index as soon as its own sync ends.
//
// One flush per round (FlusherOptions::shared_flush, on by default): a device's write cache
// is flushed by any fdatasync on it, for every write completed before. So the logs of a
// round whose unsynced bytes all overwrite pre-written, synced space (no metadata needed:
// Log::PendingSync::overwrites_only) and whose files share a flush domain
// (File::flush_domain: ext4/XFS, one device) are written out (File::write_out) one after
// the other and then made durable by one fdatasync of the last of them, instead of one
// fdatasync each; the others' durable indexes are reported after that one. Logs that need
// metadata (a new segment, appends beyond the pre-written space) get their own fdatasync as
// before. docs/storage_testing.md, "One flush per round".
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
#include <utility>
#include <vector>

#include "storage/clock.h"
#include "storage/log.h"

namespace mq::storage {

// Threads that sync the logs of one round at once when the environment does not say
// (RAFTMQ_FLUSHER_THREADS=<n>, 1..16; docs/benchmarks.md "e2e tail").
inline constexpr int kFlusherSyncThreadsDefault = 1;

// RAFTMQ_FLUSHER_THREADS when set to 1..16, else kFlusherSyncThreadsDefault.
int flusher_sync_threads_from_env();

// RAFTMQ_SHARED_FLUSH: "0" turns one flush per round off; unset or "1": on (anything else
// is reported on stderr and means on).
bool flusher_shared_flush_from_env();

struct FlusherOptions {
  DurabilityMode mode = DurabilityMode::kAlways;
  std::int64_t interval_ms = 0;  // kInterval: minimum time between two rounds
  // Logs of one round synced at once (kAlways; 1: one after the other). See above.
  int sync_threads = flusher_sync_threads_from_env();
  // One flush for the round's logs that need no metadata (see above; sync_threads 1 only).
  bool shared_flush = flusher_shared_flush_from_env();
};

struct FlusherStats {
  std::uint64_t rounds = 0;
  std::uint64_t fdatasyncs = 0;     // syncs issued (one per dirty log per round)
  std::uint64_t sync_errors = 0;
  std::uint64_t parallel_rounds = 0;  // rounds whose logs were synced by several threads
  // Logs made durable by another log's fdatasync (written out, then one flush for all).
  std::uint64_t shared_flush_logs = 0;
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
  void helper_main(int id);
  // parallel: the flusher thread's rounds only (run_once() syncs in the caller's thread).
  std::size_t sync_batch(std::vector<Log*>& batch, bool parallel);
  // Syncs the logs of a round with the helpers; returns {syncs issued, errors}.
  std::pair<std::size_t, std::uint64_t> sync_parallel(const std::vector<Log*>& batch);
  // One log's sync; returns 1 if an fdatasync was issued, 0 if none was needed, -1 on error.
  static int sync_one(Log* log, int thread_id);
  // A round with one flush for the logs that need no metadata (see above); returns {syncs
  // issued, errors} and adds the logs covered by another's flush to *shared.
  static std::pair<std::size_t, std::uint64_t> sync_shared(const std::vector<Log*>& batch,
                                                           std::uint64_t* shared);

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
  // Parallel rounds (under mutex_): the round's logs, the next one to take, how many are not
  // yet synced, and the counts of the syncs done by the helpers.
  std::vector<std::thread> helpers_;
  std::condition_variable helper_work_;  // a round has logs left to take, or stopping
  std::condition_variable round_done_;   // round_pending_ reached 0
  const std::vector<Log*>* round_logs_ = nullptr;
  std::size_t round_next_ = 0;
  std::size_t round_pending_ = 0;
  std::size_t round_syncs_ = 0;
  std::uint64_t round_errors_ = 0;
  std::int64_t last_round_ms_ = INT64_MIN / 2;
  FlusherStats stats_;
};

}  // namespace mq::storage
