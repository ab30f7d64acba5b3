// Reads do their disk I/O without the log's mutex, concurrently with appends, truncations and
// prefix removals; the event loop's getters do not wait for a writer holding the mutex (run
// under TSan: build-tsan/tests/storage_test).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <thread>

#include "storage/log.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;
using SteadyClock = std::chrono::steady_clock;

// A file system whose segment reads can be held at a gate, to prove that a read blocked in
// the middle of its I/O does not block appends.
class GatedFileSystem final : public FileSystem {
 public:
  explicit GatedFileSystem(FileSystem* base) : base_(base) {}

  // Reads (or, with `writes`, writes) of the calling thread (only) stop at the gate until
  // open_gate().
  void close_gate_for_this_thread(bool writes = false) {
    std::lock_guard lock(mutex_);
    closed_ = true;
    writes_ = writes;
    waiting_ = false;
    gated_thread_ = std::this_thread::get_id();
  }
  void open_gate() {
    {
      std::lock_guard lock(mutex_);
      closed_ = false;
    }
    changed_.notify_all();
  }
  bool wait_until_a_reader_waits(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return waiting_; });
  }
  void pass_gate(bool write) {
    std::unique_lock lock(mutex_);
    if (!closed_ || write != writes_ || std::this_thread::get_id() != gated_thread_) return;
    waiting_ = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !closed_; });
  }

  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override {
    MQ_ASSIGN_OR_RETURN(auto file, base_->open(path, options));
    if (!path.ends_with(".log")) return file;
    return std::shared_ptr<File>(std::make_shared<GatedFile>(this, std::move(file)));
  }
  Status create_dirs(const std::string& path) override { return base_->create_dirs(path); }
  Result<std::vector<std::string>> list(const std::string& dir) override { return base_->list(dir); }
  Status remove(const std::string& path) override { return base_->remove(path); }
  Status rename(const std::string& from, const std::string& to) override { return base_->rename(from, to); }
  Status sync_dir(const std::string& dir) override { return base_->sync_dir(dir); }
  Result<bool> exists(const std::string& path) override { return base_->exists(path); }
  Result<std::uint64_t> free_bytes(const std::string& path) override { return base_->free_bytes(path); }

 private:
  class GatedFile final : public File {
   public:
    GatedFile(GatedFileSystem* fs, std::shared_ptr<File> base) : fs_(fs), base_(std::move(base)) {}
    Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
      fs_->pass_gate(false);
      return base_->read_at(offset, out);
    }
    Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
      fs_->pass_gate(true);
      return base_->write_at(offset, pieces);
    }
    Status sync() override { return base_->sync(); }
    Status truncate(std::uint64_t size) override { return base_->truncate(size); }
    Result<std::uint64_t> size() override { return base_->size(); }
    int native_handle() const override { return base_->native_handle(); }

   private:
    GatedFileSystem* fs_;
    std::shared_ptr<File> base_;
  };

  FileSystem* base_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool closed_ = false;
  bool writes_ = false;
  bool waiting_ = false;
  std::thread::id gated_thread_;
};

LogOptions options_for(const std::string& dir) {
  LogOptions options;
  options.directory = dir;
  options.name = "conc-0";
  options.segment_size_bytes_max = 16 << 10;
  options.index_interval_bytes = 512;
  options.direct_append_min_bytes = 4096;
  return options;
}

// A log on a gated in-memory file system holding entries 1-20 (offsets 0-19, 300 bytes each).
struct GatedLog {
  GatedLog() : fs(&memory), log(Log::open(&fs, &clock, options_for("/data/log")).value()) {
    Batch first = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 20, 300);
    appended = log->append(first.entries);
  }
  MemoryFileSystem memory;
  GatedFileSystem fs;
  ManualClock clock;
  std::unique_ptr<Log> log;
  Status appended;
};

TEST(LogConcurrencyTest, AReadBlockedInItsDiskIoDoesNotBlockAppendsOrTruncations) {
  GatedLog gated;
  ASSERT_TRUE(gated.appended.is_ok());
  GatedFileSystem& fs = gated.fs;
  auto& log = gated.log;
  auto reader = std::async(std::launch::async, [&] {
    fs.close_gate_for_this_thread();
    return log->read(LogIndex(1), LogIndex(21), UINT64_MAX);
  });
  ASSERT_TRUE(fs.wait_until_a_reader_waits(std::chrono::seconds(10)));
  // The reader is parked inside a pread: the log must still take appends, syncs and
  // truncations (with the old lock-held read these would deadlock until the gate opens).
  auto writer = std::async(std::launch::async, [&] {
    Batch more = Batch::make(LogIndex(21), KafkaOffset(20), Term(1), 5, 300);
    Status appended = log->append(more.entries);
    Status synced = log->sync();
    Status truncated = log->truncate_suffix(LogIndex(24));
    return appended.is_ok() && synced.is_ok() && truncated.is_ok() && log->last_index() == LogIndex(23);
  });
  bool writer_done = writer.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  fs.open_gate();
  EXPECT_TRUE(writer_done) << "an append waited for a read's disk I/O";
  EXPECT_TRUE(writer.get());
  auto entries = reader.get();
  ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
  ASSERT_EQ(entries->size(), 20u);
  for (const ReadEntry& e : *entries) {
    EXPECT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, Term(1), 300)));
  }
}

// The event loop asks a log for its bounds on every Fetch and Ready, while the flusher may hold
// the log's mutex across a write of hundreds of KiB before an fdatasync. Those getters read
// published copies: an append parked inside its write, holding the mutex, does not hold them.
TEST(LogConcurrencyTest, BoundsAndHealthDoNotWaitForAWriteHoldingTheLock) {
  GatedLog gated;
  ASSERT_TRUE(gated.appended.is_ok());
  GatedFileSystem& fs = gated.fs;
  auto& log = gated.log;
  ASSERT_TRUE(log->sync().is_ok());
  auto writer = std::async(std::launch::async, [&] {
    fs.close_gate_for_this_thread(/*writes=*/true);
    Batch more = Batch::make(LogIndex(21), KafkaOffset(20), Term(1), 5, 300);
    return log->append(more.entries);
  });
  ASSERT_TRUE(fs.wait_until_a_reader_waits(std::chrono::seconds(10)));
  auto getters = std::async(std::launch::async, [&] {
    return log->last_index() == LogIndex(20) && log->next_offset() == KafkaOffset(20) &&
           log->start_offset() == KafkaOffset(0) && log->durable_index() == LogIndex(20) &&
           log->health().is_ok();
  });
  bool done = getters.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  fs.open_gate();
  EXPECT_TRUE(done) << "a getter waited for a write holding the log's mutex";
  EXPECT_TRUE(getters.get());
  ASSERT_TRUE(writer.get().is_ok());
  // The append's result is published once it returns.
  EXPECT_EQ(log->last_index(), LogIndex(25));
  EXPECT_EQ(log->next_offset(), KafkaOffset(25));
  ASSERT_TRUE(log->sync().is_ok());
  EXPECT_EQ(log->durable_index(), LogIndex(25));
  log->check_invariants();
}

// Readers, an appender, a truncator and a prefix remover at once, time-bounded. Every read
// returns contiguous, checksummed entries that are exactly what was appended at that index
// and term (payloads are a function of both), or kOutOfRange when the range moved.
void run_mixed(FileSystem* fs, const std::string& dir) {
  ManualClock clock;
  auto log = Log::open(fs, &clock, options_for(dir)).value();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> term{1};
  std::atomic<std::uint64_t> reads{0}, appends{0}, truncations{0};
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex failure_mutex;
  auto fail = [&](const std::string& what) {
    std::lock_guard lock(failure_mutex);
    if (failures.fetch_add(1) == 0) first_failure = what;
  };
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(1500);
  std::thread appender([&] {
    Prng prng(1);
    while (!stop.load()) {
      std::size_t size = prng.chance(1, 3) ? prng.range(4096, 9000) : prng.range(10, 700);
      Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(term.load()),
                            prng.range(1, 4), size);
      Status status = log->append(b.entries);
      if (status.is_ok()) {
        appends.fetch_add(1);
      } else if (status.code() != ErrorCode::kInvalidArgument) {  // raced with a truncation
        fail("append: " + status.to_string());
      }
      if (prng.chance(1, 4) && !log->sync().is_ok()) fail("sync");
    }
  });
  std::thread truncator([&] {
    Prng prng(2);
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
      LogIndex last = log->last_index();
      LogIndex first = log->first_index();
      if (last < first + 8) continue;
      term.fetch_add(1);  // re-appended indexes get a new term, so stale reads are visible
      Status cut = log->truncate_suffix(last - prng.uniform(6));
      if (cut.is_ok()) truncations.fetch_add(1);
      else if (cut.code() != ErrorCode::kOutOfRange) fail("truncate: " + cut.to_string());
      if (prng.chance(1, 5) && last > first + 40) {
        Status removed = log->remove_prefix(first + 10);
        if (!removed.is_ok() && removed.code() != ErrorCode::kOutOfRange) {
          fail("remove_prefix: " + removed.to_string());
        }
      }
    }
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      Prng prng(10 + r);
      while (!stop.load()) {
        LogIndex first = log->first_index(), last = log->last_index();
        if (last < first) continue;
        LogIndex lo = first + prng.uniform(last - first + 1);
        auto got = log->read(lo, last + 1, prng.chance(1, 2) ? UINT64_MAX : prng.range(1, 20000));
        if (!got.has_value()) {
          if (got.error().code() != ErrorCode::kOutOfRange) fail("read: " + got.error().to_string());
          continue;
        }
        if (got->empty()) fail("read returned nothing");
        for (std::size_t i = 0; i < got->size(); ++i) {
          const ReadEntry& e = (*got)[i];
          if (e.header.index != lo + i ||
              !equal_bytes(e.payload, make_payload(e.header.index, e.header.term, e.payload.size())) ||
              (i > 0 && e.header.term < (*got)[i - 1].header.term)) {
            fail("read returned a wrong entry at index " + std::to_string(e.header.index.value()));
            break;
          }
        }
        reads.fetch_add(1);
      }
    });
  }
  readers.emplace_back([&] {  // the fetch path: file slices by Kafka offset
    Prng prng(30);
    while (!stop.load()) {
      KafkaOffset start = log->start_offset(), next = log->next_offset();
      if (next <= start) continue;
      KafkaOffset offset = start + prng.uniform(static_cast<std::uint64_t>(next - start));
      LogIndex hi = log->last_index() + 1;
      auto slice = log->file_slice(offset, hi, prng.range(1, 30000));
      if (!slice.has_value()) {
        if (slice.error().code() != ErrorCode::kOutOfRange) fail("file_slice: " + slice.error().to_string());
        continue;
      }
      bool ok = !slice->extents.empty() && slice->first_index <= slice->last_index &&
                slice->last_index < hi && slice->last_offset >= offset &&
                slice->extents.size() == slice->last_index - slice->first_index + 1;
      std::uint64_t total = 0;
      for (std::size_t i = 0; ok && i < slice->extents.size(); ++i) {
        total += slice->extents[i].length;
        if (i > 0) {
          ok = slice->extents[i].position == slice->extents[i - 1].position +
                                                  slice->extents[i - 1].length + 56;
        }
      }
      if (!ok || total != slice->total_bytes) fail("file_slice returned an inconsistent slice");
      reads.fetch_add(1);
    }
  });
  while (SteadyClock::now() < deadline && failures.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  appender.join();
  truncator.join();
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GT(reads.load(), 10u);
  EXPECT_GT(appends.load(), 10u);
  EXPECT_GT(truncations.load(), 2u);
  log->check_invariants();
}

TEST(LogConcurrencyTest, ReadersAppenderTruncatorAndPrefixRemovalInMemory) {
  MemoryFileSystem fs;
  run_mixed(&fs, "/data/log");
}

TEST(LogConcurrencyTest, ReadersAppenderTruncatorAndPrefixRemovalOnDisk) {
  testing::TempDir dir;
  run_mixed(posix_file_system(), dir.path() + "/log");
}

}  // namespace
}  // namespace mq::storage
