// Group commit: many logs, many appending threads, one flusher thread.
#include "storage/flusher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;

LogOptions options_for(const std::string& dir) {
  LogOptions options;
  options.directory = dir;
  return options;
}

// Logs whose durability reports go to `durable` (declared first: it outlives the logs).
struct DurableLogs {
  explicit DurableLogs(int count) : durable(static_cast<std::size_t>(count)) {}
  std::vector<std::atomic<std::uint64_t>> durable;
  std::vector<std::unique_ptr<Log>> logs;
};

// Opens `count` logs under `root` on `flusher` and has one thread per log append `appends`
// single 1 KiB entries, each waiting for its own durability report (an acks=all producer;
// at most 20 s per append).
std::unique_ptr<DurableLogs> run_acks_all_appenders(Flusher& flusher, Clock* clock,
                                                    const std::string& root, int count,
                                                    int appends) {
  auto out = std::make_unique<DurableLogs>(count);
  auto& durable = out->durable;
  auto& logs = out->logs;
  for (int i = 0; i < count; ++i) {
    LogOptions options = options_for(root + "/p" + std::to_string(i));
    options.on_durable = [&durable, i](LogIndex d) {
      std::uint64_t seen = durable[i].load();
      while (d.value() > seen && !durable[i].compare_exchange_weak(seen, d.value())) {
      }
    };
    logs.push_back(Log::open(posix_file_system(), clock, options, &flusher).value());
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&, i] {
      Log& log = *logs[i];
      for (int n = 0; n < appends; ++n) {
        Batch b = Batch::make(log.last_index() + 1, log.next_offset(), Term(1), 1, 1024);
        ASSERT_TRUE(log.append(b.entries).is_ok());
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (durable[i].load() < log.last_index().value()) {
          ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "log " << i << " stuck";
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

TEST(FlusherTest, RunOnceSyncsEveryQueuedLogAndReportsDurability) {
  MemoryFileSystem fs;
  ManualClock clock;
  Flusher flusher(FlusherOptions{}, &clock);
  std::vector<std::unique_ptr<Log>> logs;
  std::vector<LogIndex> reported(3);
  for (int i = 0; i < 3; ++i) {
    LogOptions options;
    options.directory = "/data/p" + std::to_string(i);
    options.on_durable = [&reported, i](LogIndex durable) { reported[i] = durable; };
    logs.push_back(Log::open(&fs, &clock, options, &flusher).value());
  }
  for (int round = 0; round < 5; ++round) {
    for (auto& log : logs) {
      Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 2, 100);
      ASSERT_TRUE(log->append(b.entries).is_ok());
    }
  }
  EXPECT_EQ(logs[0]->durable_index(), LogIndex(0));
  std::uint64_t syncs_before = fs.sync_count();
  EXPECT_EQ(flusher.run_once(), 3u);  // one fdatasync per log for 5 appends each
  EXPECT_EQ(fs.sync_count() - syncs_before, 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(logs[i]->durable_index(), LogIndex(10));
    EXPECT_EQ(reported[i], LogIndex(10));
  }
  EXPECT_EQ(flusher.run_once(), 0u);
  // What the flusher reported durable survives a crash.
  Batch extra = Batch::make(LogIndex(11), KafkaOffset(10), Term(1), 1, 100);
  ASSERT_TRUE(logs[0]->append(extra.entries).is_ok());
  logs.clear();
  fs.crash();
  auto reopened = Log::open(&fs, &clock, options_for("/data/p0")).value();
  EXPECT_EQ(reopened->last_index(), LogIndex(10));
}

TEST(FlusherTest, ConcurrentAppendersShareFdatasyncs) {
  testing::TempDir dir;
  SystemClock* clock = SystemClock::instance();
  Flusher flusher(FlusherOptions{}, clock);
  flusher.start();
  constexpr int kLogs = 4;
  constexpr int kAppendsPerLog = 100;
  std::unique_ptr<DurableLogs> run =
      run_acks_all_appenders(flusher, clock, dir.path(), kLogs, kAppendsPerLog);
  std::vector<std::unique_ptr<Log>>& logs = run->logs;
  FlusherStats stats = flusher.stats();
  for (int i = 0; i < kLogs; ++i) {
    EXPECT_EQ(logs[i]->durable_index(), LogIndex(kAppendsPerLog));
    EXPECT_EQ(logs[i]->synced_index(), LogIndex(kAppendsPerLog));
  }
  EXPECT_LE(stats.fdatasyncs, static_cast<std::uint64_t>(kLogs * kAppendsPerLog));
  EXPECT_EQ(stats.sync_errors, 0u);
  EXPECT_LT(stats.rounds, static_cast<std::uint64_t>(kLogs * kAppendsPerLog));  // batched rounds
  logs.clear();
  flusher.stop();
}

TEST(FlusherTest, IntervalModeCountsWrittenEntriesAsDurableAndSyncsLater) {
  MemoryFileSystem fs;
  ManualClock clock;
  Flusher flusher(FlusherOptions{DurabilityMode::kInterval, 50}, &clock);
  LogOptions options;
  options.directory = "/data/relaxed";
  options.durability = DurabilityMode::kInterval;
  auto log = Log::open(&fs, &clock, options, &flusher).value();
  Batch b = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 4, 100);
  ASSERT_TRUE(log->append(b.entries).is_ok());
  EXPECT_EQ(log->durable_index(), LogIndex(4));  // the documented risk: not yet on disk
  EXPECT_EQ(log->synced_index(), LogIndex(0));
  flusher.run_once();
  EXPECT_EQ(log->synced_index(), LogIndex(4));
}

TEST(FlusherTest, DestroyingALogWhileQueuedIsSafe) {
  MemoryFileSystem fs;
  SystemClock* clock = SystemClock::instance();
  Flusher flusher(FlusherOptions{}, clock);
  flusher.start();
  for (int i = 0; i < 50; ++i) {
    auto log = Log::open(&fs, clock, options_for("/data/x" + std::to_string(i)),
                         &flusher).value();
    Batch b = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 1, 100);
    ASSERT_TRUE(log->append(b.entries).is_ok());
  }
  flusher.stop();
}

// A file system whose File::sync() takes `sync_ms` and records how many syncs ran at once.
class SlowSyncFileSystem final : public FileSystem {
 public:
  explicit SlowSyncFileSystem(int sync_ms) : sync_ms_(sync_ms) {}
  int max_concurrent() const { return max_concurrent_.load(); }
  void reset_max() { max_concurrent_.store(0); }

  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override {
    MQ_ASSIGN_OR_RETURN(std::shared_ptr<File> inner, fs_.open(path, options));
    return std::shared_ptr<File>(std::make_shared<SlowFile>(this, std::move(inner)));
  }
  Status create_dirs(const std::string& path) override { return fs_.create_dirs(path); }
  Result<std::vector<std::string>> list(const std::string& dir) override { return fs_.list(dir); }
  Status remove(const std::string& path) override { return fs_.remove(path); }
  Status rename(const std::string& from, const std::string& to) override {
    return fs_.rename(from, to);
  }
  Status sync_dir(const std::string& dir) override { return fs_.sync_dir(dir); }
  Result<bool> exists(const std::string& path) override { return fs_.exists(path); }
  Result<std::uint64_t> free_bytes(const std::string& path) override {
    return fs_.free_bytes(path);
  }

 private:
  class SlowFile final : public File {
   public:
    SlowFile(SlowSyncFileSystem* fs, std::shared_ptr<File> inner)
        : fs_(fs), inner_(std::move(inner)) {}
    Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
      return inner_->read_at(offset, out);
    }
    Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
      return inner_->write_at(offset, pieces);
    }
    Status sync() override {
      int now = ++fs_->in_sync_;
      int seen = fs_->max_concurrent_.load();
      while (now > seen && !fs_->max_concurrent_.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(fs_->sync_ms_));
      --fs_->in_sync_;
      return inner_->sync();
    }
    Status truncate(std::uint64_t size) override { return inner_->truncate(size); }
    Result<std::uint64_t> size() override { return inner_->size(); }
    int native_handle() const override { return inner_->native_handle(); }

   private:
    SlowSyncFileSystem* fs_;
    std::shared_ptr<File> inner_;
  };

  MemoryFileSystem fs_;
  const int sync_ms_;
  std::atomic<int> in_sync_{0};
  std::atomic<int> max_concurrent_{0};
};

// Appends one entry to each of `logs` logs, starts the flusher and waits (bounded) until
// every log reports its entry durable; returns the most syncs that ran at once meanwhile.
int round_over_logs(int sync_threads, int logs, FlusherStats* stats) {
  SlowSyncFileSystem fs(40);
  SystemClock* clock = SystemClock::instance();
  FlusherOptions fo;
  fo.sync_threads = sync_threads;
  Flusher flusher(fo, clock);
  std::vector<std::unique_ptr<Log>> open;
  std::vector<std::atomic<std::uint64_t>> durable(logs);
  for (int i = 0; i < logs; ++i) {
    LogOptions options = options_for("/data/q" + std::to_string(i));
    options.on_durable = [&durable, i](LogIndex d) { durable[i].store(d.value()); };
    open.push_back(Log::open(&fs, clock, options, &flusher).value());
  }
  for (auto& log : open) {
    Batch b = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 1, 100);
    EXPECT_TRUE(log->append(b.entries).is_ok());
  }
  fs.reset_max();  // count the flusher's syncs only
  flusher.start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (int i = 0; i < logs; ++i) {
    while (durable[i].load() < 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(durable[i].load(), 1u) << "log " << i;
    EXPECT_EQ(open[i]->synced_index(), LogIndex(1)) << "log " << i;
  }
  flusher.stop();  // the round's counts are updated after its last durability report
  *stats = flusher.stats();
  open.clear();
  return fs.max_concurrent();
}

TEST(FlusherTest, OneThreadSyncsTheLogsOfARoundOneAfterTheOther) {
  FlusherStats stats;
  EXPECT_EQ(round_over_logs(1, 4, &stats), 1);
  EXPECT_EQ(stats.parallel_rounds, 0u);
  EXPECT_EQ(stats.fdatasyncs, 4u);
}

TEST(FlusherTest, SyncThreadsSyncTheLogsOfARoundAtOnce) {
  FlusherStats stats;
  // Four logs queued before the flusher starts: its first round holds all four, and its
  // threads sync them at once (each sync takes 40 ms, so they overlap even on a busy CPU).
  EXPECT_GE(round_over_logs(4, 4, &stats), 2);
  EXPECT_GE(stats.parallel_rounds, 1u);
  EXPECT_EQ(stats.fdatasyncs, 4u);
  EXPECT_EQ(stats.sync_errors, 0u);
  // More logs than threads: every log is still synced, never more than 3 at once.
  EXPECT_LE(round_over_logs(3, 7, &stats), 3);
  EXPECT_EQ(stats.fdatasyncs, 7u);
}

TEST(FlusherTest, ParallelRoundsKeepGroupCommitUnderConcurrentAppenders) {
  testing::TempDir dir;
  SystemClock* clock = SystemClock::instance();
  FlusherOptions fo;
  fo.sync_threads = 3;
  Flusher flusher(fo, clock);
  flusher.start();
  constexpr int kLogs = 4;
  constexpr int kAppendsPerLog = 50;
  std::unique_ptr<DurableLogs> run =
      run_acks_all_appenders(flusher, clock, dir.path(), kLogs, kAppendsPerLog);
  std::vector<std::unique_ptr<Log>>& logs = run->logs;
  FlusherStats stats = flusher.stats();
  for (int i = 0; i < kLogs; ++i) {
    // Durable is reported only after the log's own fdatasync covered it.
    EXPECT_EQ(logs[i]->synced_index(), LogIndex(kAppendsPerLog));
    EXPECT_EQ(logs[i]->durable_index(), LogIndex(kAppendsPerLog));
  }
  EXPECT_EQ(stats.sync_errors, 0u);
  EXPECT_LE(stats.fdatasyncs, static_cast<std::uint64_t>(kLogs * kAppendsPerLog));
  logs.clear();
  flusher.stop();
}

TEST(FlusherTest, StoppingDuringParallelRoundsAndDestroyingQueuedLogsIsSafe) {
  SlowSyncFileSystem fs(2);
  SystemClock* clock = SystemClock::instance();
  FlusherOptions fo;
  fo.sync_threads = 4;
  for (int round = 0; round < 3; ++round) {
    Flusher flusher(fo, clock);
    flusher.start();
    std::vector<std::unique_ptr<Log>> logs;
    for (int i = 0; i < 12; ++i) {
      logs.push_back(Log::open(&fs, clock,
                               options_for("/data/s" + std::to_string(round) + "-" +
                                           std::to_string(i)),
                               &flusher).value());
      Batch b = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 1, 100);
      ASSERT_TRUE(logs.back()->append(b.entries).is_ok());
    }
    logs.resize(6);  // destroyed while queued or being synced
    flusher.stop();  // joins the flusher and its helpers with a round possibly running
    EXPECT_EQ(flusher.stats().sync_errors, 0u);
  }
}

TEST(FlusherTest, SyncThreadsComeFromTheEnvironment) {
  ASSERT_EQ(::setenv("RAFTMQ_FLUSHER_THREADS", "3", 1), 0);
  EXPECT_EQ(flusher_sync_threads_from_env(), 3);
  ASSERT_EQ(::setenv("RAFTMQ_FLUSHER_THREADS", "0", 1), 0);  // out of range: the default
  EXPECT_EQ(flusher_sync_threads_from_env(), kFlusherSyncThreadsDefault);
  ASSERT_EQ(::setenv("RAFTMQ_FLUSHER_THREADS", "junk", 1), 0);
  EXPECT_EQ(flusher_sync_threads_from_env(), kFlusherSyncThreadsDefault);
  ASSERT_EQ(::unsetenv("RAFTMQ_FLUSHER_THREADS"), 0);
  EXPECT_EQ(flusher_sync_threads_from_env(), kFlusherSyncThreadsDefault);
}

}  // namespace
}  // namespace mq::storage
