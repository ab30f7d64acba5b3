// Sync coalescing (LogOptions::sync_coalesce_bytes, Log::sync_internal): while a log's
// write-behind buffer streams full parts to the file, the flusher lets one fdatasync cover
// many of them, and what it reports durable is exactly what its fdatasync covered.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "base/prng.h"
#include "storage/flusher.h"
#include "storage/log.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using segment_format::kEntryHeaderSize;
using testing::Batch;

// Wraps the in-memory file system. While armed, every write waits for a release (in the
// order the writes arrive) or, as a safety net against a hung test, 5 s (then timed_out()).
// Optionally sleeps a random 0..max_delay_us in each write instead (a slow device).
class GatedFileSystem final : public FileSystem {
 public:
  explicit GatedFileSystem(MemoryFileSystem* inner) : inner_(inner) {}

  void arm() {
    std::lock_guard lock(mutex_);
    armed_ = true;
  }
  void release(int writes) {
    std::lock_guard lock(mutex_);
    released_ += writes;
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard lock(mutex_);
    armed_ = false;
    cv_.notify_all();
  }
  bool timed_out() const { return timed_out_.load(); }
  void set_max_delay_us(int us) { max_delay_us_ = us; }

  void before_write() {
    if (max_delay_us_ > 0) {
      int us;
      {
        std::lock_guard lock(mutex_);
        us = static_cast<int>(prng_.uniform(static_cast<std::uint64_t>(max_delay_us_) + 1));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(us));
    }
    std::unique_lock lock(mutex_);
    if (!armed_) return;
    std::uint64_t ticket = entered_++;
    if (!cv_.wait_for(lock, std::chrono::seconds(5), [&] { return !armed_ || ticket < released_; })) {
      timed_out_.store(true);
    }
  }

  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override;
  Status create_dirs(const std::string& path) override { return inner_->create_dirs(path); }
  Result<std::vector<std::string>> list(const std::string& dir) override { return inner_->list(dir); }
  Status remove(const std::string& path) override { return inner_->remove(path); }
  Status rename(const std::string& from, const std::string& to) override {
    return inner_->rename(from, to);
  }
  Status sync_dir(const std::string& dir) override { return inner_->sync_dir(dir); }
  Result<bool> exists(const std::string& path) override { return inner_->exists(path); }
  Result<std::uint64_t> free_bytes(const std::string& path) override { return inner_->free_bytes(path); }

 private:
  MemoryFileSystem* inner_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool armed_ = false;
  std::uint64_t entered_ = 0;
  std::uint64_t released_ = 0;
  std::atomic<bool> timed_out_{false};
  int max_delay_us_ = 0;
  Prng prng_{7};
};

class GatedFile final : public File {
 public:
  GatedFile(std::shared_ptr<File> inner, GatedFileSystem* fs) : inner_(std::move(inner)), fs_(fs) {}
  Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    return inner_->read_at(offset, out);
  }
  Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
    fs_->before_write();
    return inner_->write_at(offset, pieces);
  }
  Status write_direct(std::uint64_t offset, BufferView bytes) override {
    fs_->before_write();
    return inner_->write_direct(offset, bytes);
  }
  Status reserve(std::uint64_t offset, std::uint64_t length) override {
    return inner_->reserve(offset, length);
  }
  Status sync() override { return inner_->sync(); }
  Status truncate(std::uint64_t size) override { return inner_->truncate(size); }
  Result<std::uint64_t> size() override { return inner_->size(); }
  int native_handle() const override { return -1; }

 private:
  std::shared_ptr<File> inner_;
  GatedFileSystem* fs_;
};

Result<std::shared_ptr<File>> GatedFileSystem::open(const std::string& path, OpenOptions options) {
  MQ_ASSIGN_OR_RETURN(std::shared_ptr<File> file, inner_->open(path, options));
  return std::shared_ptr<File>(std::make_shared<GatedFile>(std::move(file), this));
}

class LogSyncCoalesceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.directory = "/data/log";
    options_.name = "coalesce-0";
    options_.segment_size_bytes_max = 8 << 20;
    options_.direct_append_min_bytes = 2000;
    options_.write_buffer_bytes = 4 * kPart;  // four parts
    options_.sync_coalesce_bytes = 1 << 20;
    options_.sync_coalesce_us_max = 10'000'000;
  }

  std::unique_ptr<Log> open_log(Flusher* flusher) {
    auto log = Log::open(&gated_, &clock_, options_, flusher);
    EXPECT_TRUE(log.has_value()) << log.status().to_string();
    return log.has_value() ? std::move(*log) : nullptr;
  }
  // One entry of exactly one part's size (header included): each append crosses exactly one
  // part boundary, so it seals and queues exactly one part.
  Status append_part(Log& log) {
    Batch b = Batch::make(log.last_index() + 1, log.next_offset(), Term(1), 1,
                          kPart - kEntryHeaderSize, 1000);
    return log.append(b.entries);
  }

  static constexpr std::size_t kPart = 4096;
  MemoryFileSystem memory_fs_;
  GatedFileSystem gated_{&memory_fs_};
  ManualClock clock_{1'000'000};
  LogOptions options_;
};

// The flusher waits for the newest queued part write; while it waits the producer keeps
// queueing parts (the device is the bottleneck). With coalescing it keeps waiting for the
// newer writes (without the log's mutex, so appends continue) and issues ONE fdatasync for
// all of them once the producer pauses, reporting durable exactly the entries wholly
// written. Without coalescing it would sync after the first write it waited for and block
// the producer meanwhile (this test then times out in the gate and fails).
TEST_F(LogSyncCoalesceTest, StreamingPartWritesShareOneFdatasync) {
  Flusher flusher(FlusherOptions{}, &clock_);  // not started: run_once() below
  auto log = open_log(&flusher);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(append_part(*log).is_ok());
  ASSERT_TRUE(log->sync().is_ok());  // buffer active, everything durable
  std::uint64_t syncs_before = memory_fs_.sync_count();
  gated_.arm();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(append_part(*log).is_ok());  // 3 parts queued
  std::thread flusher_thread([&] { flusher.run_once(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it wait for a write
  for (int i = 0; i < 12; ++i) {
    gated_.release(1);  // the oldest queued write completes
    ASSERT_TRUE(append_part(*log).is_ok());  // retires it, queues one more
    EXPECT_EQ(memory_fs_.sync_count(), syncs_before) << "synced while the writes streamed";
  }
  gated_.disarm();  // the producer pauses: every queued write completes
  flusher_thread.join();
  EXPECT_FALSE(gated_.timed_out()) << "the flusher held the log's mutex while waiting for a write";
  EXPECT_EQ(memory_fs_.sync_count(), syncs_before + 1);
  // Every entry wholly in a written part is durable; the last one ends in the active part.
  EXPECT_EQ(log->durable_index(), log->last_index() - 1);
  ASSERT_TRUE(log->sync().is_ok());
  EXPECT_EQ(log->durable_index(), log->last_index());
}

// Once sync_coalesce_bytes are covered the flusher syncs although writes keep streaming.
TEST_F(LogSyncCoalesceTest, CoalescingStopsAtTheByteBound) {
  options_.sync_coalesce_bytes = 6 * kPart;
  Flusher flusher(FlusherOptions{}, &clock_);
  auto log = open_log(&flusher);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(append_part(*log).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  std::uint64_t syncs_before = memory_fs_.sync_count();
  gated_.set_max_delay_us(200);
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    for (int i = 0; i < 400 && !stop.load(); ++i) ASSERT_TRUE(append_part(*log).is_ok());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  flusher.run_once();  // returns after one fdatasync although the producer may go on
  LogIndex durable = log->durable_index();
  stop.store(true);
  producer.join();
  EXPECT_EQ(memory_fs_.sync_count(), syncs_before + 1);
  EXPECT_GT(durable, LogIndex(1));
  ASSERT_TRUE(log->sync().is_ok());
}

// A producer streaming through the buffer into a slow device, a flusher thread syncing with
// coalescing: the reported durable index only grows, and after a crash that loses every
// unsynced write the log holds at least everything ever reported durable.
TEST_F(LogSyncCoalesceTest, ReportedDurableEntriesSurviveACrash) {
  for (std::uint64_t coalesce : {std::uint64_t{0}, std::uint64_t{5 * kPart}, std::uint64_t{1 << 20}}) {
    SCOPED_TRACE(coalesce);
    options_.directory = "/data/log-" + std::to_string(coalesce);
    options_.sync_coalesce_bytes = coalesce;
    options_.sync_coalesce_us_max = 2000;
    std::atomic<std::uint64_t> reported{0};
    std::atomic<bool> went_back{false};
    options_.on_durable = [&](LogIndex d) {
      std::uint64_t seen = reported.load();
      if (d.value() < seen) went_back.store(true);
      while (d.value() > seen && !reported.compare_exchange_weak(seen, d.value())) {
      }
    };
    gated_.set_max_delay_us(100);
    Flusher flusher(FlusherOptions{}, &clock_);
    flusher.start();
    auto log = open_log(&flusher);
    ASSERT_NE(log, nullptr);
    Prng prng(coalesce + 1);
    for (int i = 0; i < 300; ++i) {
      std::size_t size = 100 + prng.uniform(3 * kPart);
      Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 1 + prng.uniform(3),
                            size, 1000);
      ASSERT_TRUE(log->append(b.entries).is_ok());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    flusher.stop();
    std::uint64_t durable = reported.load();
    log.reset();  // writes the buffer out, unsynced
    memory_fs_.crash();
    options_.on_durable = nullptr;
    auto reopened = open_log(nullptr);
    ASSERT_NE(reopened, nullptr);
    EXPECT_FALSE(went_back.load());
    EXPECT_GE(reopened->last_index().value(), durable);
    EXPECT_GT(durable, 0u);
  }
}

}  // namespace
}  // namespace mq::storage
