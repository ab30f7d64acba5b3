// Pre-written segment space (LogOptions::zero_fill_window_bytes, zero_fill.cc): the zeros
// after the tail's last entry, their recovery, and the crash, roll, truncation and full-disk
// rules around them. The operation fuzzer (log_fuzz_test.cc) also runs with a window.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "storage/drop_unsynced_file_system.h"
#include "storage/flusher.h"
#include "storage/log_fixture.h"
#include "storage/segment_format.h"

namespace mq::storage {
namespace {

using segment_format::kEntryHeaderSize;
using segment_format::kSegmentHeaderSize;
using testing::Batch;
using testing::LogFixture;
using testing::make_payload;

constexpr std::uint64_t kAlign = kDirectIoAlignment;
std::uint64_t align_up(std::uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

class ZeroFillTest : public LogFixture {
 protected:
  void SetUp() override {
    LogFixture::SetUp();
    options_.zero_fill_window_bytes = 64 << 10;
    options_.zero_fill_sync_bytes_max = UINT64_MAX;  // always fill (the tests' appends are small)
  }

  std::string segment_path(LogIndex base) const {
    return join_path(dir_, segment_format::file_stem(base) + segment_format::kSegmentSuffix);
  }
  std::uint64_t file_size(LogIndex base) {
    auto file = fs_->open(segment_path(base), OpenOptions{.read_only = true});
    EXPECT_TRUE(file.has_value()) << file.status().to_string();
    if (!file.has_value()) return 0;
    return (*file)->size().value_or(0);
  }
  // Appends entries [first, first + count) of `size` bytes, term 1, and syncs them.
  void append_synced(Log& log, LogIndex first, std::size_t count, std::size_t size) {
    Batch batch = Batch::make(first, log.next_offset(), Term(1), count, size);
    ASSERT_TRUE(log.append(batch.entries).is_ok());
    ASSERT_TRUE(log.sync().is_ok());
  }
  // The whole file, and writing it back durably (memory file system or real file).
  Buffer read_all(const std::string& path) {
    auto file = fs_->open(path, OpenOptions{.read_only = true});
    EXPECT_TRUE(file.has_value());
    Buffer bytes((*file)->size().value());
    EXPECT_TRUE(read_exact(**file, 0, std::span(bytes.data(), bytes.size()), path).is_ok());
    return bytes;
  }
  void write_all(const std::string& path, BufferView bytes) {
    auto file = fs_->open(path, OpenOptions{.create = true});
    ASSERT_TRUE(file.has_value());
    ASSERT_TRUE((*file)->truncate(0).is_ok());
    ASSERT_TRUE((*file)->write_at(0, bytes).is_ok());
    ASSERT_TRUE((*file)->sync().is_ok());
  }
};

TEST_P(ZeroFillTest, FillsAheadAfterASyncAndKeepsTheZerosOnReopen) {
  auto log = open_log();
  ASSERT_TRUE(log);
  // No zeros before a quarter of the window (16 KiB) was appended since the log was opened.
  append_synced(*log, LogIndex(1), 1, 100);
  EXPECT_EQ(file_size(LogIndex(1)), log->segments().back().size_bytes);
  append_synced(*log, LogIndex(2), 9, 2000);
  std::uint64_t end = log->segments().back().size_bytes;
  EXPECT_EQ(end, kSegmentHeaderSize + 10 * kEntryHeaderSize + 100 + 9 * 2000);
  EXPECT_EQ(file_size(LogIndex(1)), align_up(end + (64 << 10)));
  // More appends go into the zeros: no refill while more than half the window is left.
  append_synced(*log, LogIndex(11), 5, 100);
  EXPECT_EQ(file_size(LogIndex(1)), align_up(end + (64 << 10)));
  log.reset();
  log = open_log();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_index(), LogIndex(15));
  expect_entries(*log, LogIndex(1), LogIndex(16));
  EXPECT_EQ(file_size(LogIndex(1)), align_up(end + (64 << 10)));  // kept, not cut
  // Fill until a refill: appends of 40 KiB take the window below half (and are more than
  // a quarter of it since the reopen).
  append_synced(*log, LogIndex(16), 10, 4000);
  std::uint64_t end2 = log->segments().back().size_bytes;
  EXPECT_EQ(file_size(LogIndex(1)), align_up(end2 + (64 << 10)));
  expect_entries(*log, LogIndex(1), LogIndex(26));
  // Without a window the zeros are cut as a torn tail (today's behaviour for old readers).
  log.reset();
  options_.zero_fill_window_bytes = 0;
  log = open_log();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_index(), LogIndex(25));
  EXPECT_EQ(file_size(LogIndex(1)), end2);
  expect_entries(*log, LogIndex(1), LogIndex(26));
}

TEST_P(ZeroFillTest, ZeroTailOfAnyLengthIsTheCleanEndOfTheLog) {
  options_.zero_fill_window_bytes = 0;
  auto log = open_log();
  ASSERT_TRUE(log);
  append_synced(*log, LogIndex(1), 3, 300);
  log.reset();
  const std::string path = segment_path(LogIndex(1));
  Buffer original = read_all(path);
  for (std::uint64_t zeros : {1ull, 55ull, 56ull, 57ull, 4095ull, 4096ull, 4097ull, 70001ull}) {
    SCOPED_TRACE("zeros " + std::to_string(zeros));
    Buffer bytes(original.size() + zeros);
    std::memcpy(bytes.data(), original.data(), original.size());
    std::memset(bytes.data() + original.size(), 0, zeros);
    write_all(path, bytes.view());
    options_.zero_fill_window_bytes = 64 << 10;
    log = open_log();
    ASSERT_TRUE(log);
    EXPECT_EQ(log->last_index(), LogIndex(3));
    EXPECT_EQ(file_size(LogIndex(1)), original.size() + zeros);  // kept as pre-written space
    expect_entries(*log, LogIndex(1), LogIndex(4));
    append_synced(*log, LogIndex(4), 2, 5000);
    log.reset();
    log = open_log();
    ASSERT_TRUE(log);
    EXPECT_EQ(log->last_index(), LogIndex(5));
    expect_entries(*log, LogIndex(1), LogIndex(6));
    log.reset();
    write_all(path, original.view());
  }
}

TEST_P(ZeroFillTest, TornLastEntryInTheWindowIsCutAtEveryByte) {
  options_.zero_fill_window_bytes = 8192;
  auto log = open_log();
  ASSERT_TRUE(log);
  append_synced(*log, LogIndex(1), 3, 1000);  // more than a quarter of the window: filled
  std::uint64_t p = log->segments().back().size_bytes;
  append_synced(*log, LogIndex(4), 1, 150);
  std::uint64_t q = log->segments().back().size_bytes;
  ASSERT_EQ(q, p + kEntryHeaderSize + 150);
  log.reset();
  const std::string path = segment_path(LogIndex(1));
  Buffer original = read_all(path);
  ASSERT_GT(original.size(), q);  // zeros after the last entry
  std::uint64_t step = GetParam() ? 7 : 1;  // every byte in memory, every 7th on the disk
  for (std::uint64_t cut = p; cut < q; cut += step) {
    SCOPED_TRACE("torn at " + std::to_string(cut));
    Buffer bytes(original.size());
    std::memcpy(bytes.data(), original.data(), cut);
    std::memset(bytes.data() + cut, 0, original.size() - cut);  // the rest never written
    write_all(path, bytes.view());
    log = open_log();
    ASSERT_TRUE(log);
    EXPECT_EQ(log->last_index(), LogIndex(3));
    expect_entries(*log, LogIndex(1), LogIndex(4));
    log.reset();
  }
  write_all(path, original.view());
  log = open_log();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_index(), LogIndex(4));
}

TEST_P(ZeroFillTest, BitFlipBeforeAValidEntryIsCorruptionInTheLastEntryATornTail) {
  options_.zero_fill_window_bytes = 4096;
  auto log = open_log();
  ASSERT_TRUE(log);
  append_synced(*log, LogIndex(1), 4, 200);
  log.reset();
  const std::string path = segment_path(LogIndex(1));
  Buffer original = read_all(path);
  ASSERT_GT(original.size(), kSegmentHeaderSize + 4 * (kEntryHeaderSize + 200));  // zeros follow
  const std::uint64_t entry = kEntryHeaderSize + 200;
  // A payload byte of entry 2 (entries 3 and 4 follow): corruption, never cut.
  Buffer bytes(original.view());
  bytes[kSegmentHeaderSize + entry + kEntryHeaderSize + 17] ^= 0x10;
  write_all(path, bytes.view());
  auto opened = Log::open(fs_, &clock_, options_);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(opened.status().message().find("valid entry follows"), std::string::npos)
      << opened.status().to_string();
  EXPECT_EQ(read_all(path).size(), original.size());  // nothing cut
  // A header byte of entry 4 (only zeros follow): a torn tail, cut; entry 4 never served.
  bytes = Buffer(original.view());
  bytes[kSegmentHeaderSize + 3 * entry + 30] ^= 0x01;
  write_all(path, bytes.view());
  log = open_log();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_index(), LogIndex(3));
  expect_entries(*log, LogIndex(1), LogIndex(4));
}

TEST_P(ZeroFillTest, RollTrimsTheWindowAndTruncationCutsIt) {
  options_.segment_size_bytes_max = 16 << 10;
  options_.zero_fill_window_bytes = 8192;
  auto log = open_log();
  ASSERT_TRUE(log);
  for (int i = 0; i < 100; ++i) append_synced(*log, LogIndex(1 + i), 1, 300);
  auto segments = log->segments();
  ASSERT_GT(segments.size(), 2u);
  for (const SegmentSummary& s : segments) {
    if (s.closed) {
      EXPECT_EQ(file_size(s.base_index), s.size_bytes) << s.base_index;  // trimmed
    }
  }
  EXPECT_GT(file_size(segments.back().base_index), segments.back().size_bytes);
  ASSERT_TRUE(log->truncate_suffix(LogIndex(90)).is_ok());
  segments = log->segments();
  EXPECT_EQ(file_size(segments.back().base_index), segments.back().size_bytes);  // window cut
  // Different entries at the truncated indexes (term 2) land in a refilled window.
  for (int i = 0; i < 5; ++i) {
    Batch batch = Batch::make(LogIndex(90 + i), log->next_offset(), Term(2), 1, 300);
    ASSERT_TRUE(log->append(batch.entries).is_ok());
    ASSERT_TRUE(log->sync().is_ok());
  }
  EXPECT_GT(file_size(log->segments().back().base_index), log->segments().back().size_bytes);
  log.reset();
  log = open_log();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_index(), LogIndex(94));
  expect_entries(*log, LogIndex(1), LogIndex(90));
  expect_entries(*log, LogIndex(90), LogIndex(95), Term(2));
  ASSERT_TRUE(log->remove_prefix(LogIndex(50)).is_ok());
  expect_entries(*log, LogIndex(50), LogIndex(90));
}

TEST_P(ZeroFillTest, AppendersRacingTheFlusherSeeEveryEntry) {
  Flusher flusher(FlusherOptions{}, &clock_);
  flusher.start();
  options_.zero_fill_window_bytes = 16 << 10;
  auto log = Log::open(fs_, &clock_, options_, &flusher);
  ASSERT_TRUE(log.has_value());
  const int kEntries = 600;
  for (int i = 0; i < kEntries; ++i) {
    Batch batch = Batch::make(LogIndex(1 + i), (*log)->next_offset(), Term(1), 1, 700 + (i % 7) * 300);
    ASSERT_TRUE((*log)->append(batch.entries).is_ok());
  }
  ASSERT_TRUE((*log)->sync().is_ok());
  flusher.stop();
  EXPECT_TRUE((*log)->health().is_ok());
  expect_entries(**log, LogIndex(1), LogIndex(kEntries + 1));
  log->reset();
  auto reopened = open_log();
  ASSERT_TRUE(reopened);
  expect_entries(*reopened, LogIndex(1), LogIndex(kEntries + 1));
}

INSTANTIATE_TEST_SUITE_P(FileSystems, ZeroFillTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "RealDisk" : "InMemory"; });

// In memory only: crashes and faults.
class ZeroFillMemoryTest : public ::testing::Test {
 protected:
  ZeroFillMemoryTest() {
    options_.directory = "/data/log";
    options_.zero_fill_window_bytes = 8192;
    options_.zero_fill_sync_bytes_max = UINT64_MAX;
  }
  std::unique_ptr<Log> open_log() {
    auto log = Log::open(fs_.get(), &clock_, options_);
    EXPECT_TRUE(log.has_value()) << log.status().to_string();
    return log.has_value() ? std::move(*log) : nullptr;
  }
  void expect_entries(Log& log, LogIndex hi) {
    auto entries = log.read(LogIndex(1), hi, UINT64_MAX);
    ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
    ASSERT_EQ(entries->size(), hi - LogIndex(1));
    for (const ReadEntry& e : *entries) {
      ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, Term(1), e.payload.size())));
    }
  }
  std::unique_ptr<MemoryFileSystem> fs_ = std::make_unique<MemoryFileSystem>();
  ManualClock clock_{1'000'000};
  LogOptions options_;
};

// A crash after each sync (append or fill) that the disk let through: whatever was reported
// durable survives, whatever the crash kept of the unsynced zeros and entries.
TEST_F(ZeroFillMemoryTest, CrashAtEveryStepOfAFillKeepsWhatWasDurable) {
  int fill_sync_failures = 0;
  for (int failing = 0; failing < 40; ++failing) {
    for (std::uint64_t seed : {0ull, 1ull, 2ull}) {
      SCOPED_TRACE("sync " + std::to_string(failing) + " seed " + std::to_string(seed));
      fs_ = std::make_unique<MemoryFileSystem>();
      auto log = open_log();
      ASSERT_TRUE(log);
      fs_->fail_sync_after(failing);
      LogIndex durable(0);
      for (int i = 0; i < 12 && log->health().is_ok(); ++i) {
        Batch batch = Batch::make(LogIndex(1 + i), log->next_offset(), Term(1), 1, 1500);
        if (!log->append(batch.entries).is_ok()) break;
        if (log->sync().is_ok()) {
          durable = log->durable_index();
          if (!log->health().is_ok()) ++fill_sync_failures;  // the fill's own sync failed
        }
      }
      log.reset();
      fs_->fail_next_syncs(0);
      Prng prng(seed);
      fs_->crash(seed == 0 ? nullptr : &prng);
      log = open_log();
      ASSERT_TRUE(log);
      ASSERT_GE(log->last_index(), durable);
      expect_entries(*log, log->last_index() + 1);
      // And it keeps working, refilling its window.
      Batch more = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 3, 1500);
      ASSERT_TRUE(log->append(more.entries).is_ok());
      ASSERT_TRUE(log->sync().is_ok());
      expect_entries(*log, log->last_index() + 1);
    }
  }
  EXPECT_GT(fill_sync_failures, 0);  // the fill's fdatasync failing was among the cases
}

TEST_F(ZeroFillMemoryTest, FailedFillWriteIsCutBackAndAppendsGoOn) {
  auto log = open_log();
  ASSERT_TRUE(log);
  Batch first = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 1, 2100);  // > window / 4
  ASSERT_TRUE(log->append(first.entries).is_ok());
  fs_->fail_next_writes(1);  // the fill's write after this sync
  ASSERT_TRUE(log->sync().is_ok());
  EXPECT_TRUE(log->health().is_ok());
  auto size = fs_->read_file("/data/log/" + segment_format::file_stem(LogIndex(1)) + ".log");
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->size(), log->segments().back().size_bytes);  // no zeros left behind
  for (int i = 0; i < 20; ++i) {
    Batch batch = Batch::make(LogIndex(2 + i), log->next_offset(), Term(1), 1, 500);
    ASSERT_TRUE(log->append(batch.entries).is_ok());
    ASSERT_TRUE(log->sync().is_ok());
  }
  log.reset();
  fs_->crash();
  log = open_log();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_index(), LogIndex(21));
  expect_entries(*log, LogIndex(22));
}

// ENOSPC: the window never takes space an append would have had, nor the reserve.
TEST_F(ZeroFillMemoryTest, FullDiskNeverFailsAnAppendThatWouldFit) {
  for (std::uint64_t reserve : {0ull, 8192ull}) {
    SCOPED_TRACE("reserve " + std::to_string(reserve));
    fs_ = std::make_unique<MemoryFileSystem>();
    options_.free_space_reserve_bytes = reserve;
    options_.zero_fill_window_bytes = 16 << 10;
    auto log = open_log();
    ASSERT_TRUE(log);
    const std::uint64_t room = 40 << 10;
    fs_->set_capacity_bytes(fs_->used_bytes() + room);
    std::uint64_t appended = 0;
    Status status;
    int i = 0;
    for (; i < 1000; ++i) {
      Batch batch = Batch::make(LogIndex(1 + i), log->next_offset(), Term(1), 1, 200);
      status = log->append(batch.entries);
      if (!status.is_ok()) break;
      appended += kEntryHeaderSize + 200;
      ASSERT_TRUE(log->sync().is_ok());
    }
    EXPECT_EQ(status.code(), ErrorCode::kNoSpace) << status.to_string();
    EXPECT_TRUE(log->health().is_ok());
    // Every append that fitted beside the reserve was taken (one entry of slack).
    EXPECT_GE(appended + 2 * (kEntryHeaderSize + 200), room - reserve) << appended;
    if (reserve > 0) {
      EXPECT_GE(fs_->free_bytes("/").value() + 2 * (kEntryHeaderSize + 200), reserve);
    }
    fs_->set_capacity_bytes(UINT64_MAX);
    Batch batch = Batch::make(LogIndex(1 + i), log->next_offset(), Term(1), 1, 200);
    ASSERT_TRUE(log->append(batch.entries).is_ok());
    ASSERT_TRUE(log->sync().is_ok());
    expect_entries(*log, LogIndex(2 + i));
  }
}

// The drop-unsynced file system over a real directory (the chaos suite's SIGKILL model):
// zeros and entries that were not synced are gone, synced ones stay.
TEST(ZeroFillDropUnsyncedTest, UnsyncedZerosAndEntriesAreLostSyncedOnesKept) {
  testing::TempDir temp;
  ManualClock clock(1'000'000);
  LogOptions options;
  options.directory = temp.path() + "/log";
  options.zero_fill_window_bytes = 8192;
  options.zero_fill_sync_bytes_max = UINT64_MAX;
  {
    auto fs = make_drop_unsynced_file_system(posix_file_system());
    auto log = Log::open(fs.get(), &clock, options);
    ASSERT_TRUE(log.has_value());
    Batch a = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 20, 300);
    ASSERT_TRUE((*log)->append(a.entries).is_ok());
    ASSERT_TRUE((*log)->sync().is_ok());  // and a fill
    Batch b = Batch::make(LogIndex(21), (*log)->next_offset(), Term(1), 5, 300);
    ASSERT_TRUE((*log)->append(b.entries).is_ok());  // never synced
    log->reset();
  }  // the "crash": unsynced writes dropped
  auto fs = make_drop_unsynced_file_system(posix_file_system());
  auto log = Log::open(fs.get(), &clock, options);
  ASSERT_TRUE(log.has_value()) << log.status().to_string();
  EXPECT_EQ((*log)->last_index(), LogIndex(20));
  auto entries = (*log)->read(LogIndex(1), LogIndex(21), UINT64_MAX);
  ASSERT_TRUE(entries.has_value());
  for (const ReadEntry& e : *entries) {
    ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, Term(1), e.payload.size())));
  }
}

}  // namespace
}  // namespace mq::storage
