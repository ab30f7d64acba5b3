// FetchReadAhead (fetch_read_ahead.h): what a fetch may be served from memory read ahead, and
// what it must still read from the file.
#include "cluster/fetch_read_ahead.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::cluster {
namespace {

constexpr std::uint64_t kMiB = 1 << 20;

// Byte i of the test files.
std::uint8_t pattern(std::uint64_t i) {
  return static_cast<std::uint8_t>((i * 131 + i / 4096) % 251);
}

std::vector<std::uint8_t> expected(std::uint64_t position, std::uint64_t length) {
  std::vector<std::uint8_t> out(length);
  for (std::uint64_t i = 0; i < length; ++i) out[i] = pattern(position + i);
  return out;
}

std::vector<std::uint8_t> joined(const std::vector<SharedBuffer>& pieces) {
  std::vector<std::uint8_t> out;
  for (const SharedBuffer& p : pieces) out.insert(out.end(), p.data(), p.data() + p.size());
  return out;
}

std::shared_ptr<storage::File> make_file(storage::FileSystem* fs, const std::string& path,
                                         std::uint64_t size) {
  auto file = fs->open(path, storage::OpenOptions{.create = true});
  MQ_ASSERT(file.has_value());
  Buffer bytes(size);
  for (std::uint64_t i = 0; i < size; ++i) bytes.data()[i] = pattern(i);
  MQ_ASSERT((*file)->write_at(0, bytes.view()).is_ok());
  MQ_ASSERT((*file)->sync().is_ok());
  return *file;
}

storage::FileSlice slice_of(std::shared_ptr<storage::File> file, std::uint64_t written_end,
                            std::uint64_t generation) {
  storage::FileSlice s;
  s.file = std::move(file);
  s.fd = s.file->native_handle();
  s.written_end = written_end;
  s.generation = generation;
  return s;
}

class FetchReadAheadWindows : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      fs_ = storage::posix_file_system();
      path_ = dir_.path() + "/segment";
    } else {
      memory_ = std::make_unique<storage::MemoryFileSystem>();
      fs_ = memory_.get();
      ASSERT_TRUE(fs_->create_dirs("/d").is_ok());
      path_ = "/d/segment";
    }
  }
  storage::testing::TempDir dir_;
  std::unique_ptr<storage::MemoryFileSystem> memory_;
  storage::FileSystem* fs_ = nullptr;
  std::string path_;
};

// After a fetch up to `end`, the bytes after it (up to the written end) come from memory, in
// one piece or, across two windows, in two; the same bytes as the file's.
TEST_P(FetchReadAheadWindows, ServesTheBytesAfterTheFetchFromMemory) {
  constexpr std::uint64_t kCover = kFetchReadAheadBlocks * kFetchReadAheadBlockBytes;
  auto file = make_file(fs_, path_, kCover + 2 * kMiB);
  const auto slice = slice_of(file, kCover + kMiB + 123, 5);
  FetchReadAhead ahead(64 * kMiB);
  const std::uint64_t reads_before = fetch_read_ahead_stats().reads;
  ahead.advance(slice, 100'000);  // a consumer fetched up to here
  EXPECT_EQ(ahead.windows(), kFetchReadAheadBlocks);

  auto one = ahead.take(slice, 100'000, 500'000);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->size(), 1u);
  EXPECT_EQ(joined(*one), expected(100'000, 500'000));

  // 100,000 rounds down to 98,304: the first window ends at 98,304 + one block.
  const std::uint64_t boundary = 98'304 + kFetchReadAheadBlockBytes;
  auto two = ahead.take(slice, boundary - 1000, 5000);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->size(), 2u) << "an extent across two windows comes in two pieces";
  EXPECT_EQ(joined(*two), expected(boundary - 1000, 5000));
  EXPECT_GE(fetch_read_ahead_stats().reads, reads_before + 2);

  // Beyond what the windows cover: from the file.
  EXPECT_FALSE(ahead.take(slice, 98'304 + kCover - 10, 100).has_value());
  EXPECT_FALSE(ahead.take(slice, 50'000, 100).has_value()) << "before the first window";
}

// Bytes at or beyond the slice's written end are never served (they may not be on the file
// yet), and the windows stop there; the next fetch's larger written end continues them.
TEST_P(FetchReadAheadWindows, NothingAtOrBeyondTheWrittenEnd) {
  auto file = make_file(fs_, path_, 16 * kMiB);
  const std::uint64_t written = 9 * kMiB + 1000;
  FetchReadAhead ahead(64 * kMiB);
  ahead.advance(slice_of(file, written, 1), 0);
  EXPECT_EQ(ahead.windows(), kFetchReadAheadBlocks);
  // The consumer passed the first window: the next one ends at the written end.
  ahead.advance(slice_of(file, written, 1), kFetchReadAheadBlockBytes + 10);
  auto below = ahead.take(slice_of(file, written, 1), written - 2000, 2000);
  ASSERT_TRUE(below.has_value());
  EXPECT_EQ(joined(*below), expected(written - 2000, 2000));
  EXPECT_FALSE(ahead.take(slice_of(file, written, 1), written - 2000, 2001).has_value());

  // Less than kFetchReadAheadMinBytes more: no new window.
  const std::size_t windows = ahead.windows();
  ahead.advance(slice_of(file, written + 4096, 1), 2 * kFetchReadAheadBlockBytes + 10);
  EXPECT_LE(ahead.windows(), windows);
  // More: continues from the block holding the old end (overlapping it).
  ahead.advance(slice_of(file, 14 * kMiB, 1), 2 * kFetchReadAheadBlockBytes + 10);
  auto across = ahead.take(slice_of(file, 14 * kMiB, 1), written - 500, 1000);
  ASSERT_TRUE(across.has_value());
  EXPECT_EQ(joined(*across), expected(written - 500, 1000));
}

// A consumer less than kFetchReadAheadStartBytes behind the written end gets no windows (the
// page cache serves it); once windows run they go on to the end.
TEST_P(FetchReadAheadWindows, OnlyACatchUpReadStartsWindows) {
  auto file = make_file(fs_, path_, 16 * kMiB);
  FetchReadAhead ahead(64 * kMiB);
  ahead.advance(slice_of(file, 16 * kMiB, 1), 16 * kMiB - kFetchReadAheadStartBytes + 4096);
  EXPECT_EQ(ahead.windows(), 0u);
  EXPECT_FALSE(ahead.restart_at(slice_of(file, 16 * kMiB, 1), 16 * kMiB - kMiB));
  ahead.advance(slice_of(file, 16 * kMiB, 1), 16 * kMiB - kFetchReadAheadStartBytes);
  EXPECT_EQ(ahead.windows(), kFetchReadAheadBlocks);
}

// Another generation (the log was truncated since the read was planned) or another file
// finds nothing: those bytes come from the file.
TEST_P(FetchReadAheadWindows, AnotherGenerationOrFileFindsNothing) {
  auto file = make_file(fs_, path_, 12 * kMiB);
  auto other = make_file(fs_, path_ + "-2", 12 * kMiB);
  FetchReadAhead ahead(64 * kMiB);
  ahead.advance(slice_of(file, 12 * kMiB, 7), 0);
  ASSERT_TRUE(ahead.take(slice_of(file, 12 * kMiB, 7), 0, 4096).has_value());
  EXPECT_FALSE(ahead.take(slice_of(file, 12 * kMiB, 8), 0, 4096).has_value());
  EXPECT_FALSE(ahead.take(slice_of(other, 12 * kMiB, 7), 0, 4096).has_value());
  // A fetch of the new generation replaces the windows.
  ahead.advance(slice_of(file, 12 * kMiB, 8), 0);
  EXPECT_TRUE(ahead.take(slice_of(file, 12 * kMiB, 8), 0, 4096).has_value());
  EXPECT_FALSE(ahead.take(slice_of(file, 12 * kMiB, 7), 0, 4096).has_value());
}

// A position no window holds (another file, or a consumer that outran its windows): the
// windows start again there, and the bytes are served once read.
TEST_P(FetchReadAheadWindows, RestartAtAPositionNoWindowHolds) {
  constexpr std::uint64_t kCover = kFetchReadAheadBlocks * kFetchReadAheadBlockBytes;
  auto file = make_file(fs_, path_, 2 * kCover + 4 * kMiB);
  const auto slice = slice_of(file, 2 * kCover + 4 * kMiB, 3);
  FetchReadAhead ahead(64 * kMiB);
  ahead.advance(slice, 0);
  const std::uint64_t far = kCover + kMiB + 1234;
  ASSERT_FALSE(ahead.take(slice, far, 1000).has_value());
  ASSERT_TRUE(ahead.restart_at(slice, far));
  auto served = ahead.take(slice, far, 1000);
  ASSERT_TRUE(served.has_value());
  EXPECT_EQ(joined(*served), expected(far, 1000));
  // Less than kFetchReadAheadMinBytes after the position: no window, the file serves it.
  EXPECT_FALSE(ahead.restart_at(slice, 2 * kCover + 4 * kMiB - 1000));
  EXPECT_FALSE(FetchReadAhead(0).restart_at(slice, 0));
}

// Pieces handed out stay valid (and unchanged) after the windows are forgotten and their
// blocks would be reused.
TEST_P(FetchReadAheadWindows, PiecesOutliveTheirWindows) {
  auto file = make_file(fs_, path_, 12 * kMiB);
  auto other = make_file(fs_, path_ + "-2", 12 * kMiB);
  FetchReadAhead ahead(64 * kMiB);
  ahead.advance(slice_of(file, 12 * kMiB, 1), 0);
  auto held = ahead.take(slice_of(file, 12 * kMiB, 1), 4096, 100'000);
  ASSERT_TRUE(held.has_value());
  ahead.clear();
  // Other windows, over other bytes (the other file at another position).
  ahead.advance(slice_of(other, 12 * kMiB, 1), 3 * kMiB);
  ASSERT_TRUE(ahead.take(slice_of(other, 12 * kMiB, 1), 3 * kMiB, 4096).has_value());
  EXPECT_EQ(joined(*held), expected(4096, 100'000));
}

// With no budget nothing is read ahead (RAFTMQ_FETCH_READ_AHEAD_MIB=0).
TEST_P(FetchReadAheadWindows, NoBudgetNoReadAhead) {
  auto file = make_file(fs_, path_, 8 * kMiB);
  FetchReadAhead none(0);
  none.advance(slice_of(file, 8 * kMiB, 1), 0);
  EXPECT_EQ(none.windows(), 0u);
  EXPECT_FALSE(none.take(slice_of(file, 8 * kMiB, 1), 0, 10).has_value());
}

INSTANTIATE_TEST_SUITE_P(FileSystems, FetchReadAheadWindows, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "posix" : "memory"; });

// A direct read that fails serves nothing (the fetch reads the file), and that file gets no
// more windows.
TEST(FetchReadAheadFailures, AFailedReadServesNothing) {
  storage::MemoryFileSystem fs;
  ASSERT_TRUE(fs.create_dirs("/d").is_ok());
  auto file = make_file(&fs, "/d/segment", 16 * kMiB);
  FetchReadAhead ahead(64 * kMiB);
  fs.fail_next_reads(1);
  ahead.advance(slice_of(file, 16 * kMiB, 1), 0);
  ASSERT_EQ(ahead.windows(), kFetchReadAheadBlocks);
  // One window's read failed: nothing served from it, whichever window that was.
  int served = 0;
  for (std::size_t k = 0; k < kFetchReadAheadBlocks; ++k) {
    served +=
        ahead.take(slice_of(file, 16 * kMiB, 1), k * kFetchReadAheadBlockBytes, 100).has_value();
  }
  EXPECT_EQ(served, static_cast<int>(kFetchReadAheadBlocks) - 1) << "exactly one read failed";
  ahead.clear();
  ahead.advance(slice_of(file, 16 * kMiB, 1), 4 * kMiB);
  EXPECT_EQ(ahead.windows(), 0u) << "no more read-ahead of a file whose read failed";
}

// A file system without direct reads: nothing served, nothing more tried for that file.
TEST(FetchReadAheadFailures, NoDirectReadsMeansNoReadAhead) {
  class PlainFile final : public storage::File {
   public:
    explicit PlainFile(std::shared_ptr<storage::File> inner) : inner_(std::move(inner)) {}
    Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
      return inner_->read_at(offset, out);
    }
    Status write_at(std::uint64_t offset, std::span<const BufferView> pieces) override {
      return inner_->write_at(offset, pieces);
    }
    Status sync() override { return inner_->sync(); }
    Status truncate(std::uint64_t size) override { return inner_->truncate(size); }
    Result<std::uint64_t> size() override { return inner_->size(); }
    int native_handle() const override { return -1; }

   private:
    std::shared_ptr<storage::File> inner_;
  };
  storage::MemoryFileSystem fs;
  ASSERT_TRUE(fs.create_dirs("/d").is_ok());
  auto file = std::make_shared<PlainFile>(make_file(&fs, "/d/segment", 8 * kMiB));
  FetchReadAhead ahead(64 * kMiB);
  ahead.advance(slice_of(file, 8 * kMiB, 1), 0);
  EXPECT_FALSE(ahead.take(slice_of(file, 8 * kMiB, 1), 0, 100).has_value());
  ahead.clear();
  ahead.advance(slice_of(file, 8 * kMiB, 1), 0);
  EXPECT_EQ(ahead.windows(), 0u);
}

// An exhausted pool: windows not served for 2 s (a consumer that stopped) give their blocks
// to a partition that needs them, and serve nothing afterwards.
TEST(FetchReadAheadFailures, IdleWindowsGiveTheirBlocksBack) {
  storage::MemoryFileSystem fs;
  ASSERT_TRUE(fs.create_dirs("/d").is_ok());
  auto file = make_file(&fs, "/d/segment", 8 * kMiB);
  const auto slice = slice_of(file, 8 * kMiB, 1);
  const std::uint64_t budget = std::max<std::uint64_t>(fetch_read_ahead_stats().blocks_in_use, 2) *
                               kFetchReadAheadBlockBytes;
  std::vector<std::unique_ptr<FetchReadAhead>> holders;
  while (true) {  // every block of the budget held by a window
    auto h = std::make_unique<FetchReadAhead>(budget);
    h->advance(slice, 0);
    if (h->windows() == 0) break;
    ASSERT_TRUE(h->take(slice, 0, 100).has_value());
    holders.push_back(std::move(h));
    ASSERT_LT(holders.size(), 100u);
  }
  ASSERT_FALSE(holders.empty());
  const std::uint64_t refusals = fetch_read_ahead_stats().budget_refusals;
  FetchReadAhead late(budget);
  late.advance(slice, 0);
  EXPECT_EQ(late.windows(), 0u) << "nothing idle yet";
  EXPECT_GT(fetch_read_ahead_stats().budget_refusals, refusals);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  late.advance(slice, 0);
  EXPECT_GE(late.windows(), 1u);
  auto served = late.take(slice, 4096, 1000);
  ASSERT_TRUE(served.has_value());
  EXPECT_EQ(joined(*served), expected(4096, 1000));
  EXPECT_FALSE(holders.front()->take(slice, 0, 100).has_value()) << "its block was reclaimed";
}

TEST(FetchReadAheadFailures, BudgetComesFromTheEnvironment) {
  // Read once per process: only the default can be checked without a new process.
  if (std::getenv("RAFTMQ_FETCH_READ_AHEAD_MIB") != nullptr) GTEST_SKIP() << "set outside";
  EXPECT_EQ(fetch_read_ahead_budget_bytes(), 64 * kMiB);
}

}  // namespace
}  // namespace mq::cluster
