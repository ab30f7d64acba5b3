// A real full disk: a 4 MiB tmpfs of the test's own, filled to the brim during appends.
// The append fails with kNoSpace, the tail is rolled back, everything durable before stays
// intact, and appends resume once space is freed (by deleting a filler file and by retention).
#include <sys/mount.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "storage/log.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

class TmpfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::mount("tmpfs", temp_.path().c_str(), "tmpfs", 0, "size=4m") != 0) {
      GTEST_SKIP() << "cannot mount a 4 MiB tmpfs (" << std::strerror(errno)
                   << "); the ENOSPC test needs root or CAP_SYS_ADMIN";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(temp_.path().c_str(), MNT_DETACH);
  }
  std::string path(const std::string& name) const { return temp_.path() + "/" + name; }

  testing::TempDir temp_;
  bool mounted_ = false;
  ManualClock clock_{1'000'000};
};

void expect_intact(Log& log, LogIndex through) {
  ASSERT_GE(log.last_index(), through);
  LogIndex index = log.first_index();
  while (index <= through) {
    auto entries = log.read(index, through + 1, 1 << 20);
    ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
    for (const auto& e : *entries) {
      ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, Term(1), e.payload.size())));
      ++index;
    }
  }
}

TEST_F(TmpfsTest, FullDiskFailsCleanlyKeepsDurableDataAndRecovers) {
  FileSystem* fs = posix_file_system();
  {  // a filler file to free later
    auto filler = fs->open(path("filler"), OpenOptions{.create = true}).value();
    Buffer megabyte(1 << 20);
    ASSERT_TRUE(filler->write_at(0, megabyte.view()).is_ok());
  }
  LogOptions options;
  options.directory = path("log");
  options.name = "enospc-0";
  options.segment_size_bytes_max = 256 << 10;
  auto log = Log::open(fs, &clock_, options).value();
  Status status;
  for (int i = 0; i < 10'000 && status.is_ok(); ++i) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 4, 3000);
    status = log->append(b.entries);
    if (status.is_ok()) {
      ASSERT_TRUE(log->sync().is_ok());
    }
  }
  ASSERT_EQ(status.code(), ErrorCode::kNoSpace) << status.to_string();
  EXPECT_TRUE(log->health().is_ok()) << log->health().to_string();
  LogIndex durable = log->durable_index();
  EXPECT_EQ(durable, log->last_index());
  EXPECT_GT(durable, LogIndex(100));
  expect_intact(*log, durable);
  // The tail holds only whole entries (the partial write was cut back).
  auto tail = log->segments().back();
  auto tail_file = fs->open(join_path(options.directory, segment_format::file_stem(tail.base_index) + ".log"), {}).value();
  EXPECT_EQ(tail_file->size().value(), tail.size_bytes);
  // Still full: appending keeps failing cleanly.
  Batch again = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 4, 3000);
  EXPECT_EQ(log->append(again.entries).code(), ErrorCode::kNoSpace);
  // Free space; appends resume.
  ASSERT_TRUE(fs->remove(path("filler")).is_ok());
  for (int i = 0; i < 20; ++i) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 4, 3000);
    ASSERT_TRUE(log->append(b.entries).is_ok()) << i;
  }
  ASSERT_TRUE(log->sync().is_ok());
  LogIndex last = log->last_index();
  // Fill again, then free by retention.
  status = Status::ok();
  while (status.is_ok()) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 4, 3000);
    status = log->append(b.entries);
  }
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace);
  ASSERT_TRUE(log->sync().is_ok());
  last = log->last_index();
  RetentionPolicy policy;
  policy.bytes_max = 1 << 20;
  ASSERT_TRUE(log->apply_retention(policy).has_value());
  Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 4, 3000);
  EXPECT_TRUE(log->append(b.entries).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  // Recovery after all that.
  LogIndex first = log->first_index();
  last = log->last_index();
  log.reset();
  log = Log::open(fs, &clock_, options).value();
  EXPECT_EQ(log->first_index(), first);
  EXPECT_EQ(log->last_index(), last);
  expect_intact(*log, last);
}

TEST_F(TmpfsTest, FreeSpaceReserveStopsAppendsEarly) {
  LogOptions options;
  options.directory = path("log");
  options.segment_size_bytes_max = 256 << 10;
  options.free_space_reserve_bytes = 1 << 20;
  auto log = Log::open(posix_file_system(), &clock_, options).value();
  Status status;
  while (status.is_ok()) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 4, 3000);
    status = log->append(b.entries);
  }
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace);
  EXPECT_NE(status.message().find("reserve"), std::string::npos) << status.to_string();
  EXPECT_GE(posix_file_system()->free_bytes(options.directory).value(), (1u << 20) - (64u << 10));
}

}  // namespace
}  // namespace mq::storage
