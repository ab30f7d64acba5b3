// Group commit: many logs, many appending threads, one flusher thread.
#include "storage/flusher.h"

#include <gtest/gtest.h>

#include <atomic>
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
  std::vector<std::unique_ptr<Log>> logs;
  std::vector<std::atomic<std::uint64_t>> durable(kLogs);
  for (int i = 0; i < kLogs; ++i) {
    LogOptions options;
    options.directory = dir.path() + "/p" + std::to_string(i);
    options.on_durable = [&durable, i](LogIndex d) {
      std::uint64_t seen = durable[i].load();
      while (d.value() > seen && !durable[i].compare_exchange_weak(seen, d.value())) {
      }
    };
    logs.push_back(Log::open(posix_file_system(), clock, options, &flusher).value());
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kLogs; ++i) {
    threads.emplace_back([&, i] {
      Log& log = *logs[i];
      for (int n = 0; n < kAppendsPerLog; ++n) {
        Batch b = Batch::make(log.last_index() + 1, log.next_offset(), Term(1), 1, 1024);
        ASSERT_TRUE(log.append(b.entries).is_ok());
        // Wait for durability of this append (like an acks=all producer).
        while (durable[i].load() < log.last_index().value()) std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();
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

}  // namespace
}  // namespace mq::storage
