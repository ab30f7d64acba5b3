// One flush per round (FlusherOptions::shared_flush, File::write_out / flush_domain): the logs
// of a flusher round whose unsynced bytes overwrite pre-written, synced space share one
// fdatasync; the others keep their own. The in-memory file system models the device flush
// strictly (memory_file_system.h), so a log that leaned on another's flush for a write that
// needed metadata would lose it at the crashes below.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "storage/flusher.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

constexpr std::uint64_t kWindow = 64 << 10;

Buffer filled(std::size_t n, std::uint8_t value) {
  Buffer b(n);
  std::memset(b.data(), value, n);
  return b;
}

TEST(MemoryFileSystemSharedFlush, AnotherFilesSyncMakesWrittenOutOverwritesDurableOnly) {
  for (bool written_out : {false, true}) {
    SCOPED_TRACE(written_out ? "written out" : "not written out");
    MemoryFileSystem fs;
    ASSERT_TRUE(fs.create_dirs("/d").is_ok());
    auto a = fs.open("/d/a", OpenOptions{.create = true}).value();
    auto b = fs.open("/d/b", OpenOptions{.create = true}).value();
    EXPECT_NE(a->flush_domain(), 0u);
    EXPECT_EQ(a->flush_domain(), b->flush_domain());
    ASSERT_TRUE(fs.sync_dir("/d").is_ok());
    ASSERT_TRUE(a->write_at(0, filled(8192, 1).view()).is_ok());
    ASSERT_TRUE(a->sync().is_ok());
    // An overwrite inside the durable size, then an extension (needs the new size: metadata).
    ASSERT_TRUE(a->write_at(0, filled(4096, 2).view()).is_ok());
    ASSERT_TRUE(a->write_at(8192, filled(4096, 3).view()).is_ok());
    if (written_out) {
      ASSERT_TRUE(a->write_out().is_ok());
    }
    ASSERT_TRUE(b->write_at(0, filled(100, 9).view()).is_ok());
    ASSERT_TRUE(b->sync().is_ok());  // the device flush
    fs.crash();
    Buffer after = fs.read_file("/d/a").value();
    ASSERT_EQ(after.size(), 8192u);  // the extension is gone either way
    EXPECT_EQ(after.data()[0], written_out ? 2 : 1);
    EXPECT_EQ(after.data()[4096], 1);
  }
}

TEST(MemoryFileSystemSharedFlush, ATruncationAndWhatFollowsItWaitForTheFilesOwnSync) {
  MemoryFileSystem fs;
  ASSERT_TRUE(fs.create_dirs("/d").is_ok());
  auto a = fs.open("/d/a", OpenOptions{.create = true}).value();
  auto b = fs.open("/d/b", OpenOptions{.create = true}).value();
  ASSERT_TRUE(fs.sync_dir("/d").is_ok());
  ASSERT_TRUE(a->write_at(0, filled(8192, 1).view()).is_ok());
  ASSERT_TRUE(a->sync().is_ok());
  ASSERT_TRUE(a->write_at(0, filled(10, 2).view()).is_ok());    // made durable by b's sync
  ASSERT_TRUE(a->truncate(4096).is_ok());                       // metadata: not
  ASSERT_TRUE(a->write_at(100, filled(10, 3).view()).is_ok());  // after it: not
  ASSERT_TRUE(a->write_out().is_ok());
  ASSERT_TRUE(b->sync().is_ok());
  fs.crash();
  Buffer after = fs.read_file("/d/a").value();
  ASSERT_EQ(after.size(), 8192u);
  EXPECT_EQ(after.data()[0], 2);
  EXPECT_EQ(after.data()[100], 1);
}

TEST(MemoryFileSystemSharedFlush, OffMeansNoDomainAndNoWriteOut) {
  MemoryFileSystem fs;
  fs.set_flush_domain(false);
  ASSERT_TRUE(fs.create_dirs("/d").is_ok());
  auto a = fs.open("/d/a", OpenOptions{.create = true}).value();
  EXPECT_EQ(a->flush_domain(), 0u);
  EXPECT_EQ(a->write_out().code(), ErrorCode::kUnsupported);
}

TEST(PosixSharedFlush, WriteOutWorksAndFilesOfOneDirectoryShareTheirDomain) {
  testing::TempDir dir;
  auto a = posix_file_system()->open(dir.path() + "/a", OpenOptions{.create = true}).value();
  auto b = posix_file_system()->open(dir.path() + "/b", OpenOptions{.create = true}).value();
  ASSERT_TRUE(a->write_at(0, filled(10000, 1).view()).is_ok());
  EXPECT_TRUE(a->write_out().is_ok());
  EXPECT_EQ(a->flush_domain(), b->flush_domain());
  if (std::filesystem::is_directory("/dev/shm")) {
    // tmpfs is not a file system whose fdatasync is known to flush for every file.
    std::string path = "/dev/shm/raftmq-shared-flush-test-" + std::to_string(::getpid());
    auto shm = posix_file_system()->open(path, OpenOptions{.create = true});
    if (shm.has_value()) {
      EXPECT_EQ((*shm)->flush_domain(), 0u);
      ::unlink(path.c_str());
    }
  }
}

class SharedFlushTest : public ::testing::Test {
 protected:
  static constexpr int kLogs = 3;

  LogOptions options_for(int i) {
    LogOptions options;
    options.directory = "/data/p" + std::to_string(i);
    options.zero_fill_window_bytes = kWindow;
    options.zero_fill_sync_bytes_max = UINT64_MAX;
    options.on_durable = [this, i](LogIndex d) { reported_[i] = d; };
    return options;
  }
  void open_logs(FlusherOptions flusher_options = FlusherOptions{}) {
    flusher_options.shared_flush = shared_;
    flusher_ = std::make_unique<Flusher>(flusher_options, &clock_);
    for (int i = 0; i < kLogs; ++i) {
      logs_.push_back(Log::open(fs_.get(), &clock_, options_for(i), flusher_.get()).value());
    }
  }
  void append(int i, std::size_t count, std::size_t size) {
    Log& log = *logs_[i];
    Batch batch = Batch::make(log.last_index() + 1, log.next_offset(), Term(1), count, size);
    ASSERT_TRUE(log.append(batch.entries).is_ok());
  }
  // Enough appended and synced that every log has a pre-written window from a fill.
  void warm_up() {
    for (int i = 0; i < kLogs; ++i) append(i, 1, kWindow / 4 + 100);
    flusher_->run_once();
    for (int i = 0; i < kLogs; ++i) {
      std::string path = options_for(i).directory + "/00000000000000000001.log";
      ASSERT_GE(fs_->read_file(path).value().size(),
                logs_[i]->segments().back().size_bytes + kWindow / 2)
          << "log " << i << " has no window";
    }
  }
  // Crashes (every unsynced operation lost, or an adversarial prefix of them) and checks
  // that each log kept at least what was reported durable, with the right bytes.
  void crash_and_check(Prng* prng) {
    std::vector<LogIndex> durable = reported_;
    logs_.clear();
    flusher_.reset();
    fs_->crash(prng);
    for (int i = 0; i < kLogs; ++i) {
      LogOptions options = options_for(i);
      options.on_durable = nullptr;
      auto log = Log::open(fs_.get(), &clock_, options);
      ASSERT_TRUE(log.has_value()) << log.status().to_string();
      ASSERT_GE((*log)->last_index(), durable[i]) << "log " << i;
      auto entries = (*log)->read(LogIndex(1), (*log)->last_index() + 1, UINT64_MAX);
      ASSERT_TRUE(entries.has_value());
      for (const ReadEntry& e : *entries) {
        ASSERT_TRUE(
            equal_bytes(e.payload, make_payload(e.header.index, Term(1), e.payload.size())));
      }
    }
  }

  std::unique_ptr<MemoryFileSystem> fs_ = std::make_unique<MemoryFileSystem>();
  ManualClock clock_{1'000'000};
  bool shared_ = true;
  std::unique_ptr<Flusher> flusher_;
  std::vector<std::unique_ptr<Log>> logs_;
  std::vector<LogIndex> reported_ = std::vector<LogIndex>(kLogs);
};

TEST_F(SharedFlushTest, ARoundOfLogsInPreWrittenSpaceTakesOneFdatasync) {
  for (std::uint64_t seed : {0ull, 1ull, 2ull, 3ull}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    fs_ = std::make_unique<MemoryFileSystem>();
    reported_.assign(kLogs, LogIndex(0));
    open_logs();
    warm_up();
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < kLogs; ++i) append(i, 2, 500);
      std::uint64_t syncs = fs_->sync_count();
      std::uint64_t write_outs = fs_->write_out_count();
      std::uint64_t shared = flusher_->stats().shared_flush_logs;
      EXPECT_EQ(flusher_->run_once(), 1u);
      EXPECT_EQ(fs_->sync_count() - syncs, 1u);
      EXPECT_EQ(fs_->write_out_count() - write_outs, std::uint64_t{kLogs - 1});
      EXPECT_EQ(flusher_->stats().shared_flush_logs - shared, std::uint64_t{kLogs - 1});
      for (int i = 0; i < kLogs; ++i) {
        EXPECT_EQ(reported_[i], logs_[i]->last_index());
        EXPECT_EQ(logs_[i]->durable_index(), logs_[i]->last_index());
      }
    }
    for (int i = 0; i < kLogs; ++i) append(i, 1, 300);  // unsynced: may be lost
    Prng prng(seed);
    crash_and_check(seed == 0 ? nullptr : &prng);
  }
}

TEST_F(SharedFlushTest, ALogThatNeedsMetadataGetsItsOwnFdatasyncAndKeepsItsEntries) {
  open_logs();
  warm_up();
  for (int i = 0; i < kLogs; ++i) append(i, 1, 200);
  append(0, 1, 2 * kWindow);  // beyond log 0's window: the file grows
  std::uint64_t syncs = fs_->sync_count();
  EXPECT_EQ(flusher_->run_once(), 2u);  // log 0's own, and one for logs 1 and 2
  EXPECT_EQ(flusher_->stats().shared_flush_logs, 1u);
  // Log 0's fill after that sync has its own fdatasync too.
  EXPECT_GE(fs_->sync_count() - syncs, 2u);
  for (int i = 0; i < kLogs; ++i) EXPECT_EQ(reported_[i], logs_[i]->last_index());
  crash_and_check(nullptr);
}

TEST_F(SharedFlushTest, ZerosFoundAtRecoveryAreNotTrustedUntilAFillOfThisProcess) {
  open_logs();
  warm_up();
  logs_.clear();
  flusher_.reset();
  open_logs();  // the windows' zeros are found again (they may be fallocate()d space)
  for (int i = 0; i < kLogs; ++i) append(i, 1, 200);
  EXPECT_EQ(flusher_->run_once(), std::size_t{kLogs});
  EXPECT_EQ(flusher_->stats().shared_flush_logs, 0u);
  crash_and_check(nullptr);
}

TEST_F(SharedFlushTest, OffEachLogHasItsOwnFdatasync) {
  shared_ = false;
  open_logs();
  warm_up();
  for (int i = 0; i < kLogs; ++i) append(i, 1, 200);
  EXPECT_EQ(flusher_->run_once(), std::size_t{kLogs});
  EXPECT_EQ(flusher_->stats().shared_flush_logs, 0u);
}

TEST_F(SharedFlushTest, AFailedWriteOutFailsThatLogOnly) {
  open_logs();
  warm_up();
  for (int i = 0; i < kLogs; ++i) append(i, 1, 200);
  fs_->fail_next_syncs(1);  // the first write-out of the round (log 0's)
  flusher_->run_once();
  EXPECT_FALSE(logs_[0]->health().is_ok());
  EXPECT_LT(reported_[0], logs_[0]->last_index());
  for (int i = 1; i < kLogs; ++i) {
    EXPECT_TRUE(logs_[i]->health().is_ok());
    EXPECT_EQ(reported_[i], logs_[i]->last_index());
  }
}

TEST(SharedFlushEnvironment, OnUnlessTheEnvironmentSaysZero) {
  ASSERT_EQ(::unsetenv("RAFTMQ_SHARED_FLUSH"), 0);
  EXPECT_TRUE(flusher_shared_flush_from_env());
  ASSERT_EQ(::setenv("RAFTMQ_SHARED_FLUSH", "0", 1), 0);
  EXPECT_FALSE(flusher_shared_flush_from_env());
  EXPECT_FALSE(FlusherOptions{}.shared_flush);
  ASSERT_EQ(::setenv("RAFTMQ_SHARED_FLUSH", "yes", 1), 0);  // reported, stays on
  EXPECT_TRUE(flusher_shared_flush_from_env());
  ASSERT_EQ(::unsetenv("RAFTMQ_SHARED_FLUSH"), 0);
}

}  // namespace
}  // namespace mq::storage
