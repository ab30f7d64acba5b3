// Rolls in the broker's configuration (a Flusher, mode kAlways; log.cc roll_locked): the
// append path syncs only the old segment; the new segment's header and name are made durable
// by the next sync of the log, before it reports any of its entries durable (finish_sync),
// and the old segment's index files are written after a sync (after_sync), off the append
// path.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "base/prng.h"
#include "storage/flusher.h"
#include "storage/log_fixture.h"
#include "storage/memory_file_system.h"
#include "storage/segment_format.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::expect_log_entries;

constexpr const char* kDir = "/data/log";

std::string segment_path(LogIndex base) {
  return std::string(kDir) + "/" + segment_format::file_stem(base) + segment_format::kSegmentSuffix;
}
std::string index_path(LogIndex base) {
  return std::string(kDir) + "/" + segment_format::file_stem(base) +
         segment_format::kOffsetIndexSuffix;
}

// Counts the fdatasyncs and directory syncs made by one thread (the test's: the append path).
class ThreadSyncCounter final : public FileSystem {
 public:
  explicit ThreadSyncCounter(FileSystem* base) : base_(base), thread_(std::this_thread::get_id()) {}
  std::uint64_t file_syncs() const { return file_syncs_; }
  std::uint64_t dir_syncs() const { return dir_syncs_; }

  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override {
    MQ_ASSIGN_OR_RETURN(auto file, base_->open(path, options));
    return std::shared_ptr<File>(std::make_shared<CountedFile>(this, std::move(file)));
  }
  Status create_dirs(const std::string& path) override { return base_->create_dirs(path); }
  Result<std::vector<std::string>> list(const std::string& dir) override {
    return base_->list(dir);
  }
  Status remove(const std::string& path) override { return base_->remove(path); }
  Status rename(const std::string& from, const std::string& to) override {
    return base_->rename(from, to);
  }
  Status sync_dir(const std::string& dir) override {
    if (std::this_thread::get_id() == thread_) ++dir_syncs_;
    return base_->sync_dir(dir);
  }
  Result<bool> exists(const std::string& path) override { return base_->exists(path); }
  Result<std::uint64_t> free_bytes(const std::string& path) override {
    return base_->free_bytes(path);
  }

 private:
  class CountedFile final : public File {
   public:
    CountedFile(ThreadSyncCounter* fs, std::shared_ptr<File> base)
        : fs_(fs), base_(std::move(base)) {}
    Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
      return base_->read_at(offset, out);
    }
    Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
      return base_->write_at(offset, pieces);
    }
    Status write_direct(std::uint64_t offset, BufferView bytes) override {
      return base_->write_direct(offset, bytes);
    }
    Result<std::size_t> read_direct(std::uint64_t offset, std::span<std::uint8_t> out) override {
      return base_->read_direct(offset, out);
    }
    Status reserve(std::uint64_t offset, std::uint64_t length) override {
      return base_->reserve(offset, length);
    }
    Status allocate(std::uint64_t offset, std::uint64_t length) override {
      return base_->allocate(offset, length);
    }
    Status sync() override {
      if (std::this_thread::get_id() == fs_->thread_) ++fs_->file_syncs_;
      return base_->sync();
    }
    std::uint64_t flush_domain() const override { return base_->flush_domain(); }
    Status write_out() override { return base_->write_out(); }
    void start_writeback(std::uint64_t offset, std::uint64_t length) override {
      base_->start_writeback(offset, length);
    }
    Status truncate(std::uint64_t size) override { return base_->truncate(size); }
    Result<std::uint64_t> size() override { return base_->size(); }
    int native_handle() const override { return base_->native_handle(); }

   private:
    ThreadSyncCounter* fs_;
    std::shared_ptr<File> base_;
  };
  FileSystem* base_;
  std::thread::id thread_;
  std::atomic<std::uint64_t> file_syncs_{0};
  std::atomic<std::uint64_t> dir_syncs_{0};
};

LogOptions small_segments(const std::string& dir = kDir) {
  LogOptions options;
  options.directory = dir;
  options.segment_size_bytes_max = 16 << 10;
  options.index_interval_bytes = 1024;
  return options;
}

// Appends one 1,000-byte entry at a time until one of them starts a new segment; returns
// its index (the new segment's base).
// *syncs_in_roll: fdatasyncs and directory syncs that append made (this thread only).
LogIndex append_until_roll(Log& log, MemoryFileSystem& fs, ThreadSyncCounter* counter,
                           std::uint64_t* syncs_in_roll, std::uint64_t* dir_syncs_in_roll) {
  for (int i = 0; i < 100; ++i) {
    LogIndex next = log.last_index() + 1;
    Batch b = Batch::make(next, log.next_offset(), Term(1), 1, 1000);
    std::uint64_t before = counter->file_syncs();
    std::uint64_t dir_before = counter->dir_syncs();
    EXPECT_TRUE(log.append(b.entries).is_ok());
    if (next > LogIndex(1) && fs.read_file(segment_path(next)).has_value()) {
      *syncs_in_roll = counter->file_syncs() - before;
      *dir_syncs_in_roll = counter->dir_syncs() - dir_before;
      return next;
    }
  }
  ADD_FAILURE() << "no roll after 100 entries";
  return LogIndex(0);
}

TEST(LogDeferredRollTest, TheAppendPathSyncsOnlyTheOldSegment) {
  MemoryFileSystem fs;
  ManualClock clock;
  Flusher flusher(FlusherOptions{}, &clock);  // not started: run_once() is the flusher
  LogIndex reported(0);
  bool new_name_durable_when_reported = false;
  LogIndex base(0);
  LogOptions options = small_segments();
  options.on_durable = [&](LogIndex durable) {
    reported = durable;
    if (base != LogIndex(0) && durable >= base) {
      new_name_durable_when_reported = fs.durable_size(segment_path(base)).has_value();
    }
  };
  ThreadSyncCounter counter(&fs);
  auto log = Log::open(&counter, &clock, options, &flusher).value();
  std::uint64_t syncs_in_roll = 0, dir_syncs_in_roll = 0;
  base = append_until_roll(*log, fs, &counter, &syncs_in_roll, &dir_syncs_in_roll);
  ASSERT_NE(base, LogIndex(0));
  // One fdatasync (the old segment's, crash rule 2), not the new segment's, the directory's
  // or the two index files' (the index writer thread's).
  EXPECT_EQ(syncs_in_roll, 1u);
  EXPECT_EQ(dir_syncs_in_roll, 0u);
  EXPECT_FALSE(fs.durable_size(segment_path(base)).has_value());
  EXPECT_EQ(log->durable_index(), base - 1);  // the roll's sync covered the old segment

  EXPECT_EQ(flusher.run_once(), 1u);
  EXPECT_EQ(reported, base);
  EXPECT_TRUE(new_name_durable_when_reported);
  // The index writer thread wrote them (their names become durable with the directory's
  // next sync, as before: index files are derived data, rebuilt by a scan when missing).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!fs.read_file(index_path(LogIndex(1))).has_value() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto index = fs.read_file(index_path(LogIndex(1)));
  ASSERT_TRUE(index.has_value());
  EXPECT_GT(index->size(), 0u);

  // A crash now keeps every entry reported durable.
  log.reset();
  fs.crash();
  auto reopened = Log::open(&fs, &clock, small_segments()).value();
  EXPECT_EQ(reopened->last_index(), base);
  expect_log_entries(*reopened, LogIndex(1), base + 1);
}

TEST(LogDeferredRollTest, ACrashBeforeTheNextSyncKeepsTheOldSegmentWhole) {
  ManualClock clock;
  Prng prng(2026);
  for (int round = 0; round < 40; ++round) {
    MemoryFileSystem fs;
    Flusher flusher(FlusherOptions{}, &clock);
    ThreadSyncCounter counter(&fs);
    auto log = Log::open(&counter, &clock, small_segments(), &flusher).value();
    std::uint64_t syncs = 0, dir_syncs = 0;
    LogIndex base = append_until_roll(*log, fs, &counter, &syncs, &dir_syncs);
    ASSERT_NE(base, LogIndex(0));
    // A few more entries in the new segment, never synced.
    Batch more = Batch::make(base + 1, log->next_offset(), Term(1), prng.range(0, 4), 700);
    if (!more.entries.empty()) {
      ASSERT_TRUE(log->append(more.entries).is_ok());
    }
    log.reset();  // no flusher round: the new segment's header and name are not durable
    fs.crash(prng.chance(1, 3) ? nullptr : &prng, prng.chance(1, 2));
    auto reopened = Log::open(&fs, &clock, small_segments());
    ASSERT_TRUE(reopened.has_value()) << reopened.status().to_string() << " round " << round;
    EXPECT_GE((*reopened)->last_index(), base - 1);
    expect_log_entries(**reopened, LogIndex(1), (*reopened)->last_index() + 1);
  }
}

// Random appends, flusher rounds, Raft truncations and prefix removals (which cut or remove
// segments whose index files are still to be written), then a crash: every entry reported
// durable (and not cut since) is there after the restart, and nothing else is wrong.
TEST(LogDeferredRollTest, RandomRollsTruncationsAndCrashesLoseNothingDurable) {
  ManualClock clock;
  Prng prng(77);
  for (int round = 0; round < 150; ++round) {
    MemoryFileSystem fs;
    Flusher flusher(FlusherOptions{}, &clock);
    std::vector<Term> terms(1);  // terms[i]: the term entry i was written with (model)
    LogIndex durable(0);         // reported durable and not cut since
    LogIndex first(1);
    LogOptions options = small_segments();
    options.on_durable = [&](LogIndex d) { durable = std::max(durable, d); };
    auto log = Log::open(&fs, &clock, options, &flusher).value();
    Term term(1);
    const int steps = static_cast<int>(prng.range(5, 60));
    for (int step = 0; step < steps; ++step) {
      std::uint64_t op = prng.range(0, 9);
      if (op < 6) {
        Batch b = Batch::make(log->last_index() + 1, log->next_offset(), term, prng.range(1, 3),
                              prng.range(50, 3000));
        ASSERT_TRUE(log->append(b.entries).is_ok());
        for (std::size_t i = 0; i < b.entries.size(); ++i) terms.push_back(term);
      } else if (op < 8) {
        flusher.run_once();
      } else if (op == 8 && log->last_index() >= first) {
        LogIndex from(prng.range(first.value(), log->last_index().value()));
        ASSERT_TRUE(log->truncate_suffix(from).is_ok());
        terms.resize(from.value());
        durable = std::min(durable, from - 1);
        term = term + 1;  // what is appended at those indexes now differs
      } else if (op == 9 && durable > first) {
        LogIndex to(prng.range(first.value() + 1, durable.value()));
        ASSERT_TRUE(log->remove_prefix(to).is_ok());
        first = to;
      }
    }
    LogIndex durable_at_crash = durable;
    log.reset();
    fs.crash(prng.chance(1, 4) ? nullptr : &prng, prng.chance(1, 2));
    auto reopened = Log::open(&fs, &clock, small_segments());
    ASSERT_TRUE(reopened.has_value()) << reopened.status().to_string() << " round " << round;
    Log& r = **reopened;
    ASSERT_GE(r.last_index(), durable_at_crash) << "round " << round;
    ASSERT_LE(r.first_index(), first) << "round " << round;
    LogIndex hi = std::min(r.last_index(), LogIndex(terms.size() - 1));
    for (LogIndex i = std::max(first, r.first_index()); i <= hi; i = i + 1) {
      auto entries = r.read(i, i + 1, UINT64_MAX);
      ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
      ASSERT_EQ(entries->size(), 1u);
      const ReadEntry& e = entries->front();
      if (i <= durable_at_crash) {
        ASSERT_EQ(e.header.term, terms[i.value()]) << "entry " << i << " round " << round;
      }
      ASSERT_TRUE(equal_bytes(e.payload, testing::make_payload(i, e.header.term, e.payload.size())))
          << "entry " << i << " round " << round;
    }
  }
}

// The flusher's thread writes index files while the appender rolls and cuts the log.
TEST(LogDeferredRollTest, IndexWritesRaceRollsAndTruncationsSafely) {
  testing::TempDir dir;
  SystemClock* clock = SystemClock::instance();
  Flusher flusher(FlusherOptions{}, clock);
  flusher.start();
  std::atomic<std::uint64_t> durable{0};
  LogOptions options = small_segments(dir.path() + "/log");
  options.on_durable = [&](LogIndex d) {
    std::uint64_t seen = durable.load();
    while (d.value() > seen && !durable.compare_exchange_weak(seen, d.value())) {
    }
  };
  auto log = Log::open(posix_file_system(), clock, options, &flusher).value();
  Prng prng(5);
  Term term(1);
  for (int step = 0; step < 3000; ++step) {
    if (prng.chance(1, 40) && log->last_index() > LogIndex(30)) {
      LogIndex from = log->last_index() - prng.range(0, 25);
      ASSERT_TRUE(log->truncate_suffix(from).is_ok());
      term = term + 1;
    } else {
      Batch b =
          Batch::make(log->last_index() + 1, log->next_offset(), term, 1, prng.range(200, 2000));
      ASSERT_TRUE(log->append(b.entries).is_ok());
    }
  }
  ASSERT_TRUE(log->sync().is_ok());
  LogIndex last = log->last_index();
  flusher.stop();
  log.reset();
  auto reopened = Log::open(posix_file_system(), clock, small_segments(dir.path() + "/log"));
  ASSERT_TRUE(reopened.has_value()) << reopened.status().to_string();
  EXPECT_EQ((*reopened)->last_index(), last);
  expect_log_entries(**reopened, LogIndex(1), last + 1, Term(0));
}

}  // namespace
}  // namespace mq::storage
