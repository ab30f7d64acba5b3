// The crash semantics of the in-memory file system are what the fuzzer and the simulator
// rely on: each rule is pinned here.
#include "storage/memory_file_system.h"

#include <gtest/gtest.h>

namespace mq::storage {
namespace {

Buffer contents(MemoryFileSystem& fs, const std::string& path) { return fs.read_file(path).value(); }

class MemoryFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.create_dirs("/d").is_ok()); }
  std::shared_ptr<File> create(const std::string& path) {
    return fs_.open(path, OpenOptions{.create = true}).value();
  }
  MemoryFileSystem fs_;
};

TEST_F(MemoryFileSystemTest, UnsyncedWritesAndNamesAreLostOnCrash) {
  auto f = create("/d/a");
  ASSERT_TRUE(f->write_at(0, as_bytes("hello")).is_ok());
  fs_.crash();
  EXPECT_FALSE(fs_.exists("/d/a").value());  // the name was never synced
}

TEST_F(MemoryFileSystemTest, SyncedDataAndSyncedNameSurvive) {
  auto f = create("/d/a");
  ASSERT_TRUE(f->write_at(0, as_bytes("hello")).is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(fs_.sync_dir("/d").is_ok());
  ASSERT_TRUE(f->write_at(5, as_bytes(" world")).is_ok());  // not synced
  fs_.crash();
  EXPECT_EQ(contents(fs_, "/d/a").as_string_view(), "hello");
}

TEST_F(MemoryFileSystemTest, SyncedDataUnderUnsyncedNameIsLost) {
  auto f = create("/d/a");
  ASSERT_TRUE(f->write_at(0, as_bytes("hello")).is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  fs_.crash();
  EXPECT_FALSE(fs_.exists("/d/a").value());
}

TEST_F(MemoryFileSystemTest, HandlesFromBeforeACrashFail) {
  auto f = create("/d/a");
  ASSERT_TRUE(fs_.sync_dir("/d").is_ok());
  fs_.crash();
  EXPECT_EQ(f->write_at(0, as_bytes("x")).code(), ErrorCode::kIoError);
}

TEST_F(MemoryFileSystemTest, RenameIsAtomicAcrossCrash) {
  ASSERT_TRUE(fs_.write_file_durably("/d/target", as_bytes("old")).is_ok());
  auto f = create("/d/target.tmp");
  ASSERT_TRUE(f->write_at(0, as_bytes("new")).is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(fs_.rename("/d/target.tmp", "/d/target").is_ok());
  fs_.crash();  // rename not synced: old content
  EXPECT_EQ(contents(fs_, "/d/target").as_string_view(), "old");
  auto g = create("/d/target.tmp");
  ASSERT_TRUE(g->write_at(0, as_bytes("new")).is_ok());
  ASSERT_TRUE(g->sync().is_ok());
  ASSERT_TRUE(fs_.rename("/d/target.tmp", "/d/target").is_ok());
  ASSERT_TRUE(fs_.sync_dir("/d").is_ok());
  fs_.crash();
  EXPECT_EQ(contents(fs_, "/d/target").as_string_view(), "new");
  EXPECT_FALSE(fs_.exists("/d/target.tmp").value());
}

TEST_F(MemoryFileSystemTest, TruncateIsDurableOnlyAfterSync) {
  ASSERT_TRUE(fs_.write_file_durably("/d/a", as_bytes("0123456789")).is_ok());
  auto f = fs_.open("/d/a", {}).value();
  ASSERT_TRUE(f->truncate(4).is_ok());
  EXPECT_EQ(f->size().value(), 4u);
  fs_.crash();
  EXPECT_EQ(contents(fs_, "/d/a").size(), 10u);
  f = fs_.open("/d/a", {}).value();
  ASSERT_TRUE(f->truncate(4).is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  fs_.crash();
  EXPECT_EQ(contents(fs_, "/d/a").as_string_view(), "0123");
}

TEST_F(MemoryFileSystemTest, AdversarialCrashKeepsSyncedPrefixAndTearsTheRest) {
  Prng prng(7);
  bool saw_torn = false, saw_lost = false;
  for (int round = 0; round < 200; ++round) {
    ASSERT_TRUE(fs_.write_file_durably("/d/a", as_bytes("durable|")).is_ok());
    auto f = fs_.open("/d/a", {}).value();
    ASSERT_TRUE(f->write_at(8, as_bytes("unsynced-tail")).is_ok());
    fs_.crash(&prng);
    Buffer after = contents(fs_, "/d/a");
    ASSERT_GE(after.size(), 8u);
    EXPECT_EQ(after.view(0, 8).size(), 8u);
    EXPECT_EQ(std::string(after.as_string_view().substr(0, 8)), "durable|");
    std::string tail(after.as_string_view().substr(8));
    EXPECT_EQ(tail, std::string("unsynced-tail").substr(0, tail.size()));
    if (tail.empty()) saw_lost = true;
    if (!tail.empty() && tail.size() < 13) saw_torn = true;
  }
  EXPECT_TRUE(saw_torn);
  EXPECT_TRUE(saw_lost);
}

TEST_F(MemoryFileSystemTest, CapacityGivesShortWriteAndNoSpace) {
  fs_.set_capacity_bytes(10);
  auto f = create("/d/a");
  ASSERT_TRUE(f->write_at(0, as_bytes("123456")).is_ok());
  Status s = f->write_at(6, as_bytes("789abc"));
  EXPECT_EQ(s.code(), ErrorCode::kNoSpace);
  EXPECT_EQ(contents(fs_, "/d/a").as_string_view(), "123456789a");
  EXPECT_EQ(fs_.free_bytes("/d").value(), 0u);
  ASSERT_TRUE(f->truncate(6).is_ok());
  EXPECT_EQ(fs_.free_bytes("/d").value(), 4u);
  // Overwriting in place needs no new space.
  EXPECT_TRUE(f->write_at(0, as_bytes("abcdef")).is_ok());
}

TEST_F(MemoryFileSystemTest, InjectedFaults) {
  auto f = create("/d/a");
  fs_.fail_next_writes(1);
  EXPECT_EQ(f->write_at(0, as_bytes("x")).code(), ErrorCode::kIoError);
  EXPECT_TRUE(f->write_at(0, as_bytes("xyz")).is_ok());
  fs_.fail_next_syncs(1);
  EXPECT_EQ(f->sync().code(), ErrorCode::kIoError);
  fs_.fail_next_reads(1);
  std::uint8_t buf[3];
  EXPECT_EQ(f->read_at(0, std::span(buf)).status().code(), ErrorCode::kIoError);
  fs_.set_read_error("/d/a", 2);
  EXPECT_EQ(f->read_at(0, std::span(buf)).status().code(), ErrorCode::kIoError);
  EXPECT_EQ(f->read_at(0, std::span(buf, 2)).value(), 2u);
  fs_.clear_read_errors();
  ASSERT_TRUE(fs_.corrupt_byte("/d/a", 1, 0x01).is_ok());
  EXPECT_EQ(f->read_at(0, std::span(buf)).value(), 3u);
  EXPECT_EQ(buf[1], 'y' ^ 1);
}

TEST_F(MemoryFileSystemTest, ListShowsOnlyDirectChildren) {
  create("/d/a");
  ASSERT_TRUE(fs_.create_dirs("/d/sub").is_ok());
  create("/d/sub/b");
  auto names = fs_.list("/d").value();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "sub"}));
  EXPECT_EQ(fs_.list("/nope").status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace mq::storage
