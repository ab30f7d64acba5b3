// The write-behind buffer (segment_write.cc): appends held in memory are readable at once,
// reach the file before every sync and before a file slice needs them, fail cleanly on a full
// disk (space reserved up front), and are lost in a crash only while not yet synced.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "storage/log.h"
#include "storage/log_fixture.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

class LogWriteBufferTest : public testing::LogFixture {
 protected:
  void SetUp() override {
    LogFixture::SetUp();
    options_.name = "buffered-0";
    options_.segment_size_bytes_max = 64 << 10;
    options_.index_interval_bytes = 1024;
    options_.direct_append_min_bytes = 2000;
    options_.write_buffer_bytes = 8 << 10;
    // These tests check the file layout of one write at a time (the file ends within 4 KiB
    // of the last entry); several in flight allocate ahead (log_write_hole_test.cc).
    options_.direct_write_depth = 1;
  }
  void TearDown() override { set_write_buffer_budget_bytes(128ull << 20); }

  Status append(Log& log, std::size_t count, std::size_t size) {
    Batch b = Batch::make(log.last_index() + 1, log.next_offset(), Term(1), count, size,
                          1000 + static_cast<std::int64_t>(log.last_index().value()));
    return log.append(b.entries);
  }
  std::uint64_t file_size(LogIndex base) {
    auto file = fs_->open(join_path(dir_, segment_format::file_stem(base) + ".log"), {}).value();
    return file->size().value();
  }
  // The slice of the last entry, read back from the slice's own file (what sendfile sends).
  void expect_slice_of_last_entry(Log& log) {
    LogIndex last = log.last_index();
    auto ref = log.lookup_offset(log.next_offset() - 1).value();
    ASSERT_TRUE(ref.has_value());
    ASSERT_EQ(ref->index, last);
    auto slice = log.file_slice(ref->base_offset, last + 1, UINT64_MAX);
    ASSERT_TRUE(slice.has_value()) << slice.status().to_string();
    ASSERT_EQ(slice->extents.size(), 1u);
    Buffer bytes(slice->extents[0].length);
    ASSERT_TRUE(read_exact(*slice->file, slice->extents[0].position,
                           std::span(bytes.data(), bytes.size()), "slice").is_ok());
    EXPECT_TRUE(equal_bytes(bytes, make_payload(last, Term(1), bytes.size())));
    if (!slice->extents[0].bytes.empty()) {  // from the buffer: the same bytes
      EXPECT_TRUE(equal_bytes(slice->extents[0].bytes, bytes));
    }
  }

};

// Random appends (small and large), truncations, rolls, syncs and slices: reads always see
// every entry; after a sync the tail file holds all of them (plus < 4 KiB of zero padding),
// before it possibly not (the buffer is in use); closed segments are exact; a reopen after a
// final sync finds everything.
TEST_P(LogWriteBufferTest, BufferedEntriesAreReadableAndReachTheFileAtSync) {
  auto log = open_log();
  ASSERT_NE(log, nullptr);
  Prng prng(GetParam() ? 11 : 12);
  bool saw_unwritten = false;
  for (int round = 0; round < 200; ++round) {
    std::uint64_t what = prng.uniform(20);
    if (what < 6) {
      ASSERT_TRUE(append(*log, 1, prng.range(1, 900)).is_ok());
    } else if (what < 16) {
      ASSERT_TRUE(append(*log, prng.range(1, 4), prng.range(2000, 7000)).is_ok());
    } else if (what < 17) {
      ASSERT_TRUE(log->roll().is_ok());
    } else if (what < 18 && log->last_index() > log->first_index() + 2) {
      ASSERT_TRUE(log->truncate_suffix(log->last_index() - prng.uniform(3)).is_ok());
    } else if (log->last_index() >= log->first_index()) {
      expect_slice_of_last_entry(*log);
    }
    bool synced = prng.chance(1, 4);
    if (synced) {
      ASSERT_TRUE(log->sync().is_ok());
      EXPECT_EQ(log->durable_index(), log->last_index());
    }
    for (const SegmentSummary& s : log->segments()) {
      std::uint64_t size = file_size(s.base_index);
      if (s.closed) {
        EXPECT_EQ(size, s.size_bytes) << "closed segment " << s.base_index << " round " << round;
        continue;
      }
      EXPECT_LT(size, s.size_bytes + kDirectIoAlignment) << "round " << round;
      if (synced) {
        EXPECT_GE(size, s.size_bytes) << "round " << round;
      }
      saw_unwritten = saw_unwritten || size < s.size_bytes;
    }
    expect_entries(*log, log->first_index(), log->last_index() + 1);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_TRUE(saw_unwritten) << "the write-behind buffer never held unwritten entries";
  ASSERT_GE(log->segments().size(), 3u);
  ASSERT_TRUE(log->sync().is_ok());
  LogIndex last = log->last_index();
  log.reset();
  log = open_log();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->last_index(), last);
  expect_entries(*log, log->first_index(), log->last_index() + 1);
}

// The newest entries stay in the buffer after they are written and synced (its parts are
// reused only when the ring wraps): a slice carries their bytes, so a fetch of new data does
// not read the file (direct writes leave nothing in the page cache). Older entries come from
// the file. Both are the appended bytes, and the file holds every entry.
TEST_P(LogWriteBufferTest, NewestSyncedEntriesAreSlicedFromMemoryOlderOnesFromTheFile) {
  options_.segment_size_bytes_max = 1 << 20;
  options_.write_buffer_bytes = 16 << 10;  // 4 parts of 4 KiB
  auto log = open_log();
  ASSERT_TRUE(append(*log, 1, 2500).is_ok());  // a large append activates the buffer
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(append(*log, 1, 1000).is_ok());
    if (i % 3 == 2) {
      ASSERT_TRUE(log->sync().is_ok());
    }
  }
  ASSERT_TRUE(log->sync().is_ok());
  const LogIndex last = log->last_index();
  auto slice = log->file_slice(KafkaOffset(0), last + 1, UINT64_MAX);
  ASSERT_TRUE(slice.has_value()) << slice.status().to_string();
  ASSERT_EQ(slice->extents.size(), last.value());
  std::size_t in_memory = 0;
  for (std::size_t i = 0; i < slice->extents.size(); ++i) {
    const FileSlice::Extent& e = slice->extents[i];
    const Buffer expected = make_payload(LogIndex(i + 1), Term(1), e.length);
    Buffer from_file(e.length);
    ASSERT_TRUE(read_exact(*slice->file, e.position, std::span(from_file.data(), from_file.size()),
                           "slice").is_ok());
    EXPECT_TRUE(equal_bytes(from_file, expected)) << "entry " << i + 1;
    if (e.bytes.empty()) {
      EXPECT_EQ(in_memory, 0u) << "entry " << i + 1 << ": the buffered ones are the newest";
      continue;
    }
    EXPECT_TRUE(equal_bytes(e.bytes, expected)) << "entry " << i + 1;
    ++in_memory;
  }
  // The ring holds 12-16 KiB of the newest bytes: 11-16 entries of about 1 KiB.
  EXPECT_GE(in_memory, 11u);
  EXPECT_LE(in_memory, 17u);
  EXPECT_FALSE(slice->extents.back().bytes.empty());
  EXPECT_TRUE(slice->extents.front().bytes.empty());
  log.reset();
  log = open_log();
  EXPECT_EQ(log->last_index(), last);
  expect_entries(*log, LogIndex(1), last + 1);
}

// Closing the log (no crash) writes the buffer out: nothing appended is lost on a clean
// close, as with page-cache appends.
TEST_P(LogWriteBufferTest, ClosingTheLogWritesTheBufferOut) {
  auto log = open_log();
  ASSERT_TRUE(append(*log, 3, 2500).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  ASSERT_TRUE(append(*log, 2, 3000).is_ok());
  auto tail = log->segments().back();
  EXPECT_LT(file_size(tail.base_index), tail.size_bytes);
  log.reset();
  log = open_log();
  EXPECT_EQ(log->last_index(), LogIndex(5));
  expect_entries(*log, LogIndex(1), LogIndex(6));
}

// Without a buffer from the process-wide budget, and in mode kInterval (durable once
// written), appends reach the file at once.
TEST_P(LogWriteBufferTest, NoBudgetOrIntervalModeWritesAtOnce) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "no budget" : "interval mode");
    if (variant == 0) {
      set_write_buffer_budget_bytes(0);
    } else {
      set_write_buffer_budget_bytes(128ull << 20);
      options_.durability = DurabilityMode::kInterval;
      options_.directory = dir_ + "-interval";
    }
    auto log = open_log();
    std::uint64_t in_use = write_buffer_bytes_in_use();
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(append(*log, 2, 3000).is_ok());
      auto tail = log->segments().back();
      auto file = fs_->open(join_path(options_.directory, segment_format::file_stem(tail.base_index) + ".log"), {}).value();
      EXPECT_GE(file->size().value(), tail.size_bytes);
    }
    EXPECT_EQ(write_buffer_bytes_in_use(), in_use);
  }
}

// More logs appending at once than the pool has writer threads (four), each queueing parts
// faster than they are written: every log's writes get their turn (no log waits forever
// behind others that keep their queues full), and every entry reads back after a sync.
TEST_P(LogWriteBufferTest, MoreBusyLogsThanWriterThreadsAllMakeProgress) {
  constexpr int kLogs = 6;
  options_.write_buffer_bytes = 16 << 10;  // four parts of 4 KiB
  std::vector<std::unique_ptr<Log>> logs;
  for (int i = 0; i < kLogs; ++i) {
    options_.directory = dir_ + "-" + std::to_string(i);
    logs.push_back(open_log());
    ASSERT_NE(logs.back(), nullptr);
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kLogs; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 60; ++k) {
        if (!append(*logs[static_cast<std::size_t>(i)], 2, 2500 + 100 * static_cast<std::size_t>(i)).is_ok()) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (auto& log : logs) {
    ASSERT_TRUE(log->sync().is_ok());
    EXPECT_EQ(log->last_index(), LogIndex(120));
    expect_entries(*log, LogIndex(1), LogIndex(121));
  }
}

INSTANTIATE_TEST_SUITE_P(FileSystems, LogWriteBufferTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Posix" : "Memory"; });

// In memory (precise crash semantics and a capacity).
class LogWriteBufferMemoryTest : public LogWriteBufferTest {};

TEST_P(LogWriteBufferMemoryTest, ACrashLosesExactlyTheUnsyncedBufferedEntries) {
  auto log = open_log();
  ASSERT_TRUE(append(*log, 4, 3000).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  ASSERT_TRUE(append(*log, 4, 3000).is_ok());  // buffered (partly written when it filled)
  ASSERT_TRUE(append(*log, 1, 100).is_ok());
  log.reset();  // the buffer reaches the file, but not durably
  Prng prng(5);
  memory_fs_.crash(&prng);
  log = open_log();
  EXPECT_GE(log->last_index(), LogIndex(4));
  EXPECT_LE(log->last_index(), LogIndex(9));
  expect_entries(*log, LogIndex(1), log->last_index() + 1);
}

// The space of buffered bytes is reserved before an append is accepted: a full disk fails
// that append with kNoSpace and the log keeps working; the sync of what was accepted never
// fails for lack of space.
TEST_P(LogWriteBufferMemoryTest, FullDiskFailsTheAppendNeverTheBufferedWrite) {
  auto log = open_log();
  ASSERT_TRUE(append(*log, 2, 3000).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  memory_fs_.set_capacity_bytes(memory_fs_.used_bytes() + 20'000);
  Status status;
  int accepted = 0;
  for (int i = 0; i < 100 && status.is_ok(); ++i) {
    status = append(*log, 1, 2500);
    if (status.is_ok()) ++accepted;
  }
  ASSERT_EQ(status.code(), ErrorCode::kNoSpace) << status.to_string();
  EXPECT_GT(accepted, 0);
  EXPECT_TRUE(log->health().is_ok());
  ASSERT_TRUE(log->sync().is_ok()) << "a sync of accepted entries failed on a full disk";
  EXPECT_EQ(log->durable_index(), log->last_index());
  expect_entries(*log, LogIndex(1), log->last_index() + 1);
  memory_fs_.set_capacity_bytes(UINT64_MAX);
  ASSERT_TRUE(append(*log, 3, 2500).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  LogIndex last = log->last_index();
  log.reset();
  memory_fs_.crash();
  log = open_log();
  EXPECT_EQ(log->last_index(), last);
  expect_entries(*log, LogIndex(1), last + 1);
}

// A failed write of the buffer loses entries append() accepted: the log fails (until
// reopened), and a restart finds at least everything synced.
TEST_P(LogWriteBufferMemoryTest, AFailedBufferWriteFailsTheLog) {
  auto log = open_log();
  ASSERT_TRUE(append(*log, 2, 3000).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  ASSERT_TRUE(append(*log, 1, 2500).is_ok());
  memory_fs_.fail_next_writes(1);
  Status synced = log->sync();
  EXPECT_EQ(synced.code(), ErrorCode::kIoError);
  EXPECT_FALSE(log->health().is_ok());
  EXPECT_FALSE(append(*log, 1, 2500).is_ok());
  expect_entries(*log, LogIndex(1), log->last_index() + 1);  // reads still work
  log.reset();
  memory_fs_.crash();
  log = open_log();
  EXPECT_EQ(log->last_index(), LogIndex(2));
  expect_entries(*log, LogIndex(1), LogIndex(3));
}

// Several full parts queued, the first write fails: the later ones are not written either
// (the file stays a prefix of what was appended; a hole followed by later entries would be
// reported as corruption at the next open, or survive a power loss that keeps later writes).
TEST_P(LogWriteBufferMemoryTest, AFailedPartWriteSkipsTheLaterQueuedWrites) {
  options_.write_buffer_bytes = 16 << 10;  // four parts of 4 KiB
  auto log = open_log();
  ASSERT_TRUE(append(*log, 2, 3000).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  std::uint64_t synced_size = file_size(LogIndex(1));
  memory_fs_.fail_next_writes(1);
  Status status = append(*log, 4, 2500);  // fills and queues parts; the first write fails
  if (status.is_ok()) status = log->sync();
  EXPECT_FALSE(status.is_ok());
  EXPECT_FALSE(log->health().is_ok());
  log.reset();
  EXPECT_EQ(file_size(LogIndex(1)), synced_size) << "a write after the failed one reached the file";
  log = open_log();  // no crash: the file as written
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->last_index(), LogIndex(2));
  expect_entries(*log, LogIndex(1), LogIndex(3));
}

INSTANTIATE_TEST_SUITE_P(InMemory, LogWriteBufferMemoryTest, ::testing::Values(false),
                         [](const auto&) { return "Memory"; });

}  // namespace
}  // namespace mq::storage
