// Several part writes in flight per log (LogOptions::direct_write_depth > 1, segment_write.cc):
// the failure orders one write at a time could not produce. Write k fails (EIO, ENOSPC) after
// write k + 1 completed: nothing from k on is ever reported durable, the log fails, and a
// reopen cuts the hole and appends again. A crash with a hole (k + 1 reached the medium, k
// did not): the reopened log holds exactly the entries before the hole, every entry reported
// durable among them, and appends again. Recovery still reports real damage (a damaged entry
// followed by valid ones beyond the concurrent-write span, or without zero blocks) as
// corruption.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "storage/log.h"
#include "storage/log_fixture.h"
#include "storage/memory_file_system.h"
#include "storage/segment_format.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::expect_log_entries;
using testing::make_payload;

// The in-memory file system, with one direct write to a segment file (the `target`-th, from
// 1) held back: it waits until released, then writes and returns OK, or writes nothing and
// returns `result`.
class HoldingFileSystem final : public FileSystem {
 public:
  explicit HoldingFileSystem(MemoryFileSystem* base) : base_(base) {}

  struct Gate {
    std::mutex mutex;
    std::condition_variable cv;
    int target = 0;          // 0: hold nothing
    int direct_writes = 0;   // direct writes to segment files started
    int completed = 0;       // ... and completed (any result)
    bool held = false;       // the target write is waiting
    bool released = false;
    Status result;           // what the held write returns (OK: it writes)
    std::vector<int> completion_order;
  };
  Gate gate;

  void release(Status result) {
    std::lock_guard lock(gate.mutex);
    gate.result = std::move(result);
    gate.released = true;
    gate.cv.notify_all();
  }
  // Waits until `pred` holds (bounded: 10 s by default).
  template <typename Pred>
  bool wait(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds(10)) {
    std::unique_lock lock(gate.mutex);
    return gate.cv.wait_for(lock, bound, [&] { return pred(gate); });
  }

  Result<std::shared_ptr<File>> open(const std::string& path, OpenOptions options) override;
  Status create_dirs(const std::string& path) override { return base_->create_dirs(path); }
  Result<std::vector<std::string>> list(const std::string& dir) override { return base_->list(dir); }
  Status remove(const std::string& path) override { return base_->remove(path); }
  Status rename(const std::string& from, const std::string& to) override {
    return base_->rename(from, to);
  }
  Status sync_dir(const std::string& dir) override { return base_->sync_dir(dir); }
  Result<bool> exists(const std::string& path) override { return base_->exists(path); }
  Result<std::uint64_t> free_bytes(const std::string& path) override {
    return base_->free_bytes(path);
  }

 private:
  MemoryFileSystem* base_;
};

class HoldingFile final : public File {
 public:
  HoldingFile(std::shared_ptr<File> base, HoldingFileSystem::Gate* gate, bool segment)
      : base_(std::move(base)), gate_(gate), segment_(segment) {}

  Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    return base_->read_at(offset, out);
  }
  Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
    return base_->write_at(offset, pieces);
  }
  Status write_direct(std::uint64_t offset, BufferView bytes) override {
    if (!segment_) return base_->write_direct(offset, bytes);
    int number = 0;
    bool hold = false;
    {
      std::unique_lock lock(gate_->mutex);
      number = ++gate_->direct_writes;
      hold = number == gate_->target;
      if (hold) {
        gate_->held = true;
        gate_->cv.notify_all();
        gate_->cv.wait(lock, [&] { return gate_->released; });
      }
    }
    Status status = Status::ok();
    if (hold) {
      std::lock_guard lock(gate_->mutex);
      status = gate_->result;
    }
    if (status.is_ok()) status = base_->write_direct(offset, bytes);
    std::lock_guard lock(gate_->mutex);
    ++gate_->completed;
    gate_->completion_order.push_back(number);
    gate_->cv.notify_all();
    return status;
  }
  Status reserve(std::uint64_t offset, std::uint64_t length) override {
    return base_->reserve(offset, length);
  }
  Status sync() override { return base_->sync(); }
  Status truncate(std::uint64_t size) override { return base_->truncate(size); }
  Result<std::uint64_t> size() override { return base_->size(); }
  int native_handle() const override { return -1; }

 private:
  std::shared_ptr<File> base_;
  HoldingFileSystem::Gate* gate_;
  bool segment_;
};

Result<std::shared_ptr<File>> HoldingFileSystem::open(const std::string& path,
                                                      OpenOptions options) {
  MQ_ASSIGN_OR_RETURN(auto file, base_->open(path, options));
  bool segment = path.size() > 4 && path.compare(path.size() - 4, 4, ".log") == 0;
  return std::shared_ptr<File>(std::make_shared<HoldingFile>(std::move(file), &gate, segment));
}

// Entries of 6056 bytes, parts of 8 KiB: an entry spans at most two parts, so the write of
// the part after the held one is queued before the ring (three sealed parts) is full.
constexpr std::size_t kPayload = 6000;

class LogWriteHoleTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    options_.directory = "/data/log";
    options_.name = "hole-0";
    options_.segment_size_bytes_max = 1 << 20;
    options_.index_interval_bytes = 1024;
    options_.direct_append_min_bytes = 1;   // every append through the write-behind buffer
    options_.write_buffer_bytes = 32 << 10;  // four parts of 8 KiB
    options_.direct_write_depth = static_cast<std::uint32_t>(GetParam());
  }
  void TearDown() override { set_write_buffer_budget_bytes(128ull << 20); }

  std::unique_ptr<Log> open_log(FileSystem* fs) {
    auto log = Log::open(fs, &clock_, options_);
    EXPECT_TRUE(log.has_value()) << log.status().to_string();
    return log.has_value() ? std::move(*log) : nullptr;
  }
  static Status append(Log& log, std::size_t count) {
    Batch b = Batch::make(log.last_index() + 1, log.next_offset(), Term(1), count, kPayload);
    return log.append(b.entries);
  }

  // Re-opens the log: it holds at least every durable entry (and, if `below` is set, fewer
  // than `below`), all intact; it appends and syncs `more` entries, and a second re-open finds
  // exactly those.
  void expect_reopen_keeps_durable_and_appends(FileSystem* fs, LogIndex durable, std::size_t more,
                                               std::optional<LogIndex> below = std::nullopt) {
    auto reopened = open_log(fs);
    ASSERT_NE(reopened, nullptr);
    EXPECT_GE(reopened->last_index(), durable);
    if (below) {
      EXPECT_LT(reopened->last_index(), *below);
    }
    expect_log_entries(*reopened, LogIndex(1), reopened->last_index() + 1);
    ASSERT_TRUE(append(*reopened, more).is_ok());
    ASSERT_TRUE(reopened->sync().is_ok());
    LogIndex last = reopened->last_index();
    reopened.reset();
    auto again = open_log(fs);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->last_index(), last);
    expect_log_entries(*again, LogIndex(1), last + 1);
  }
  // Appends until the held write (the `target`-th direct write) is waiting and the next one
  // has completed; returns false if that never happens (depth 1 never runs it).
  bool hold_and_complete_next(Log& log, HoldingFileSystem& fs, int target) {
    {
      std::lock_guard lock(fs.gate.mutex);
      fs.gate.target = fs.gate.direct_writes + target;
    }
    // One entry at a time, stopping once write k + 1 started: the ring holds three sealed
    // parts, further appends would wait for the held write.
    // (A write is started by a pool thread: give it time to arrive before appending more.)
    for (int i = 0; i < 6; ++i) {
      EXPECT_TRUE(append(log, 1).is_ok());
      if (fs.wait([](const HoldingFileSystem::Gate& g) { return g.held && g.direct_writes > g.target; },
                  std::chrono::milliseconds(300))) {
        break;
      }
    }
    return fs.wait([](const HoldingFileSystem::Gate& g) {
      for (int n : g.completion_order) {
        if (n == g.target + 1) return true;
      }
      return false;
    });
  }

  ManualClock clock_{1'000'000};
  LogOptions options_;
};

// Write k fails (EIO, then ENOSPC) after write k + 1 completed: the sync that needs them
// fails, the durable index stays where it was, the log refuses further appends; a reopen
// finds the hole (k never written, k + 1 written) and cuts it as a torn tail, not as
// corruption; the log then appends and syncs again.
TEST_P(LogWriteHoleTest, AFailedWriteAfterALaterCompletedOneIsNeverCountedAndIsCutAtReopen) {
  if (GetParam() < 2) GTEST_SKIP() << "one write at a time cannot complete k + 1 before k";
  for (bool no_space : {false, true}) {
    SCOPED_TRACE(no_space ? "ENOSPC" : "EIO");
    MemoryFileSystem memory;
    HoldingFileSystem fs(&memory);
    auto log = open_log(&fs);
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(append(*log, 10).is_ok());
    ASSERT_TRUE(log->sync().is_ok());
    const LogIndex durable = log->durable_index();
    ASSERT_EQ(durable, LogIndex(10));

    ASSERT_TRUE(hold_and_complete_next(*log, fs, 1)) << "write k + 1 never completed";
    const LogIndex appended = log->last_index();
    fs.release(no_space ? Status::no_space("injected: no space left on device")
                        : Status::io_error("injected: EIO"));
    Status synced = log->sync();
    EXPECT_FALSE(synced.is_ok());
    EXPECT_EQ(log->durable_index(), durable);
    EXPECT_FALSE(log->health().is_ok());
    EXPECT_FALSE(append(*log, 1).is_ok());
    log.reset();

    // The file: written up to part k, zeros where k belongs, k + 1's bytes after them.
    expect_reopen_keeps_durable_and_appends(&fs, durable, 6, appended);
  }
}

// Power loss with a hole: write k + 1 reached the medium (a sync of the file by someone else
// made it durable: the device may persist writes in any order), write k did not. After the
// crash the log holds exactly a prefix: every entry reported durable, nothing after the hole.
TEST_P(LogWriteHoleTest, ACrashWithAHoleKeepsEveryDurableEntryAndCutsTheRest) {
  if (GetParam() < 2) GTEST_SKIP() << "one write at a time cannot complete k + 1 before k";
  MemoryFileSystem memory;
  HoldingFileSystem fs(&memory);
  auto log = open_log(&fs);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(append(*log, 9).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  const LogIndex durable = log->durable_index();
  ASSERT_EQ(durable, LogIndex(9));
  ASSERT_TRUE(hold_and_complete_next(*log, fs, 1)) << "write k + 1 never completed";
  // The medium gets k + 1's bytes, not k's: sync the segment through another handle.
  {
    auto names = memory.list("/data/log").value();
    for (const std::string& name : names) {
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0) {
        ASSERT_TRUE(memory.open("/data/log/" + name, {}).value()->sync().is_ok());
      }
    }
  }
  EXPECT_EQ(log->durable_index(), durable);
  memory.crash();
  fs.release(Status::ok());  // the held write now meets the crashed handle: kIoError
  ASSERT_TRUE(fs.wait([](const HoldingFileSystem::Gate& g) { return g.completed >= g.target; }));
  log.reset();

  expect_reopen_keeps_durable_and_appends(&fs, durable, 5);
}

// Without a zero block in the damaged entry, or with valid bytes beyond the concurrent-write
// span, a damaged entry followed by valid ones is still corruption (never cut implicitly);
// and always at depth 1.
TEST_P(LogWriteHoleTest, DamageThatIsNotAConcurrentWriteHoleIsStillCorruption) {
  MemoryFileSystem memory;
  std::string path;
  {
    auto log = open_log(&memory);
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(append(*log, 20).is_ok());
    ASSERT_TRUE(log->sync().is_ok());
    path = "/data/log/" + segment_format::file_stem(LogIndex(1)) + segment_format::kSegmentSuffix;
  }
  // A bit flip in the payload of entry 3 (valid entries follow, no zero block): corruption.
  const std::uint64_t entry3 = segment_format::kSegmentHeaderSize +
                         2 * (segment_format::kEntryHeaderSize + kPayload);
  ASSERT_TRUE(memory.corrupt_byte(path, entry3 + segment_format::kEntryHeaderSize + 100, 0x10).is_ok());
  {
    auto log = Log::open(&memory, &clock_, options_);
    ASSERT_FALSE(log.has_value());
    EXPECT_EQ(log.status().code(), ErrorCode::kCorruption) << log.status().to_string();
  }
  ASSERT_TRUE(memory.corrupt_byte(path, entry3 + segment_format::kEntryHeaderSize + 100, 0x10).is_ok());
  // A zero block in entry 3, but valid entries continue beyond the span: corruption.
  Buffer file = memory.read_file(path).value();
  const std::uint64_t block = (entry3 + segment_format::kEntryHeaderSize + 4095) / 4096 * 4096;
  ASSERT_LE(block + 4096, entry3 + segment_format::kEntryHeaderSize + kPayload);
  std::uint64_t end = block + segment_format::kConcurrentWriteSpanMax + (64 << 10);
  Buffer grown(end);
  std::memcpy(grown.data(), file.data(), file.size());
  std::memset(grown.data() + block, 0, 4096);
  // Valid entries far beyond: a copy of the file's entries placed past the span.
  std::memcpy(grown.data() + end - (file.size() - segment_format::kSegmentHeaderSize),
              file.data() + segment_format::kSegmentHeaderSize,
              file.size() - segment_format::kSegmentHeaderSize);
  ASSERT_TRUE(memory.write_file_durably(path, grown).is_ok());
  {
    auto log = Log::open(&memory, &clock_, options_);
    ASSERT_FALSE(log.has_value());
    EXPECT_EQ(log.status().code(), ErrorCode::kCorruption) << log.status().to_string();
  }
  // The same zero block with the rest of the file as written (within the span): a hole, cut
  // by a log opened with several writes in flight; corruption with one at a time (no hole
  // can come from its own writes).
  Buffer holed(file.size());
  std::memcpy(holed.data(), file.data(), file.size());
  std::memset(holed.data() + block, 0, 4096);
  ASSERT_TRUE(memory.write_file_durably(path, holed).is_ok());
  if (GetParam() == 1) {
    auto refused = Log::open(&memory, &clock_, options_);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.status().code(), ErrorCode::kCorruption) << refused.status().to_string();
    return;
  }
  auto log = open_log(&memory);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->last_index(), LogIndex(2));
  expect_log_entries(*log, LogIndex(1), LogIndex(3));
}

// On the real file system, several writes in flight allocate the tail's space with its size
// moved ahead (File::allocate): after a sync the tail holds every entry followed by zeros
// only; a rolled (closed) segment ends exactly at its last entry; a reopen (the zeros cut as
// a torn tail) finds every entry, and appends continue.
TEST_P(LogWriteHoleTest, AllocatedSpaceOnTheRealFileSystemHoldsOnlyZerosAfterTheEntries) {
  testing::TempDir temp;
  options_.directory = temp.path() + "/log";
  auto log = open_log(posix_file_system());
  ASSERT_NE(log, nullptr);
  auto check_tail = [&](Log& l, std::uint64_t* file_size) {
    SegmentSummary tail = l.segments().back();
    std::string path = join_path(options_.directory, segment_format::file_stem(tail.base_index) + ".log");
    auto file = posix_file_system()->open(path, {}).value();
    std::uint64_t size = file->size().value();
    ASSERT_GE(size, tail.size_bytes);
    Buffer rest(size - tail.size_bytes);
    ASSERT_TRUE(read_exact(*file, tail.size_bytes, std::span(rest.data(), rest.size()), "tail").is_ok());
    for (std::size_t i = 0; i < rest.size(); ++i) ASSERT_EQ(rest.data()[i], 0) << "byte " << i;
    *file_size = size;
  };
  std::uint64_t largest = 0;
  for (int round = 0; round < 12; ++round) {
    ASSERT_TRUE(append(*log, 1 + round % 3).is_ok());
    ASSERT_TRUE(log->sync().is_ok());
    std::uint64_t size = 0;
    ASSERT_NO_FATAL_FAILURE(check_tail(*log, &size));
    largest = std::max(largest, size - log->segments().back().size_bytes);
  }
  // Depth 1 pads to 4 KiB at most; more allocates ahead.
  if (GetParam() == 1) {
    EXPECT_LT(largest, kDirectIoAlignment);
  } else {
    EXPECT_GE(largest, kDirectIoAlignment);
  }
  ASSERT_TRUE(log->roll().is_ok());
  SegmentSummary closed = log->segments().front();
  std::string closed_path =
      join_path(options_.directory, segment_format::file_stem(closed.base_index) + ".log");
  EXPECT_EQ(posix_file_system()->open(closed_path, {}).value()->size().value(), closed.size_bytes);
  ASSERT_TRUE(append(*log, 4).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  std::uint64_t size = 0;
  ASSERT_NO_FATAL_FAILURE(check_tail(*log, &size));
  LogIndex last = log->last_index();
  log.reset();
  auto reopened = open_log(posix_file_system());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->last_index(), last);
  expect_log_entries(*reopened, LogIndex(1), last + 1);
  ASSERT_TRUE(append(*reopened, 2).is_ok());
  ASSERT_TRUE(reopened->sync().is_ok());
  expect_log_entries(*reopened, LogIndex(1), reopened->last_index() + 1);
}

INSTANTIATE_TEST_SUITE_P(Depth, LogWriteHoleTest, ::testing::Values(1, 2, 3),
                         [](const auto& info) { return "depth" + std::to_string(info.param); });

}  // namespace
}  // namespace mq::storage
