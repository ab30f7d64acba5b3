// The power-loss test hook: un-synced writes live in memory until the file is synced; dropping
// the wrapper is a "crash" that loses exactly them.
#include "storage/drop_unsynced_file_system.h"

#include <gtest/gtest.h>

#include "storage/log.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

std::string read_all(FileSystem* fs, const std::string& path) {
  auto file = fs->open(path, {}).value();
  std::uint64_t size = file->size().value();
  std::string out(size, '\0');
  auto got = file->read_at(0, std::span(reinterpret_cast<std::uint8_t*>(out.data()), out.size()));
  EXPECT_EQ(got.value(), size);
  return out;
}

BufferView view_of(const std::string& s) {
  return BufferView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

TEST(DropUnsyncedFileSystemTest, UnsyncedWritesAreVisibleThenLostSyncedOnesStay) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/f";
  {
    auto fs = make_drop_unsynced_file_system(posix_file_system());
    auto file = fs->open(path, OpenOptions{.create = true}).value();
    ASSERT_TRUE(file->write_at(0, view_of("durable-")).is_ok());
    ASSERT_TRUE(file->sync().is_ok());
    ASSERT_TRUE(file->write_at(8, view_of("volatile")).is_ok());
    EXPECT_EQ(file->native_handle(), -1);
    // Readers (also through a second handle) see the buffered bytes; the disk does not.
    EXPECT_EQ(read_all(fs.get(), path), "durable-volatile");
    EXPECT_EQ(read_all(posix_file_system(), path), "durable-");
    // "Crash": the wrapper and its files are dropped without a sync.
  }
  EXPECT_EQ(read_all(posix_file_system(), path), "durable-");
  {
    auto fs = make_drop_unsynced_file_system(posix_file_system());
    auto file = fs->open(path, {}).value();
    ASSERT_TRUE(file->write_at(8, view_of("now-kept")).is_ok());
    ASSERT_TRUE(file->sync().is_ok());
  }
  EXPECT_EQ(read_all(posix_file_system(), path), "durable-now-kept");
}

// One flush for several files (file_system.h): a written-out overwrite of file A survives the
// "crash" once file B of the same flush domain is synced; an overwrite only written (no
// write_out), an extension past A's durable size and whatever follows it in A's order do not.
TEST(DropUnsyncedFileSystemTest, ASyncOfOneFileKeepsTheOthersWrittenOutOverwrites) {
  testing::TempDir dir;
  const std::string a = dir.path() + "/a", b = dir.path() + "/b", c = dir.path() + "/c";
  {
    auto fs = make_drop_unsynced_file_system(posix_file_system());
    auto fa = fs->open(a, OpenOptions{.create = true}).value();
    auto fb = fs->open(b, OpenOptions{.create = true}).value();
    auto fc = fs->open(c, OpenOptions{.create = true}).value();
    // The real file's domain, or a simulated one where it has none (tmpfs).
    std::uint64_t real = posix_file_system()->open(a, {}).value()->flush_domain();
    EXPECT_EQ(fa->flush_domain(), real != 0 ? real : UINT64_MAX);
    EXPECT_EQ(fa->flush_domain(), fb->flush_domain());
    for (auto* f : {fa.get(), fb.get(), fc.get()}) {
      ASSERT_TRUE(f->write_at(0, view_of("........")).is_ok());
      ASSERT_TRUE(f->sync().is_ok());
    }
    ASSERT_TRUE(fa->write_at(0, view_of("AA")).is_ok());  // overwrite, written out
    ASSERT_TRUE(fa->write_out().is_ok());
    ASSERT_TRUE(fc->write_at(0, view_of("CC")).is_ok());  // overwrite, then an extension
    ASSERT_TRUE(fc->write_at(8, view_of("cc")).is_ok());
    ASSERT_TRUE(fc->write_at(4, view_of("CC")).is_ok());  // after the extension: not kept
    ASSERT_TRUE(fc->write_out().is_ok());
    ASSERT_TRUE(fb->write_at(2, view_of("BB")).is_ok());  // written, never written out
    ASSERT_TRUE(fa->write_at(4, view_of("aa")).is_ok());  // after A's write-out: not kept
    // Before any sync of the domain nothing of it reached the disk.
    EXPECT_EQ(read_all(posix_file_system(), a), "........");
    auto fd = fs->open(dir.path() + "/d", OpenOptions{.create = true}).value();
    ASSERT_TRUE(fd->write_at(0, view_of("d")).is_ok());
    ASSERT_TRUE(fd->sync().is_ok());               // the flush
    EXPECT_EQ(read_all(fs.get(), a), "AA..aa..");  // readers still see everything
    EXPECT_EQ(read_all(fs.get(), c), "CC..CC..cc");
    // "Crash".
  }
  EXPECT_EQ(read_all(posix_file_system(), a), "AA......");
  EXPECT_EQ(read_all(posix_file_system(), b), "........");
  EXPECT_EQ(read_all(posix_file_system(), c), "CC......");
  {
    // Written out but no later sync in the domain: lost.
    auto fs = make_drop_unsynced_file_system(posix_file_system());
    auto fb = fs->open(b, {}).value();
    ASSERT_TRUE(fb->write_at(0, view_of("bb")).is_ok());
    ASSERT_TRUE(fb->write_out().is_ok());
  }
  EXPECT_EQ(read_all(posix_file_system(), b), "........");
}

TEST(DropUnsyncedFileSystemTest, TruncationsAndRenamesFollowTheBufferedState) {
  testing::TempDir dir;
  auto fs = make_drop_unsynced_file_system(posix_file_system());
  const std::string a = dir.path() + "/a", b = dir.path() + "/b";
  auto file = fs->open(a, OpenOptions{.create = true}).value();
  ASSERT_TRUE(file->write_at(0, view_of("0123456789")).is_ok());
  ASSERT_TRUE(file->sync().is_ok());
  ASSERT_TRUE(file->truncate(4).is_ok());
  ASSERT_TRUE(file->write_at(6, view_of("xy")).is_ok());  // gap after a cut reads as zeros
  EXPECT_EQ(file->size().value(), 8u);
  EXPECT_EQ(read_all(fs.get(), a), std::string("0123\0\0xy", 8));
  EXPECT_EQ(read_all(posix_file_system(), a), "0123456789");
  ASSERT_TRUE(fs->rename(a, b).is_ok());
  EXPECT_EQ(read_all(fs.get(), b), std::string("0123\0\0xy", 8));  // moved with the name
  ASSERT_TRUE(file->sync().is_ok());
  EXPECT_EQ(read_all(posix_file_system(), b), std::string("0123\0\0xy", 8));
}

// The log on top of it: entries appended after the last sync are served while the process
// lives and gone after the crash; synced entries survive byte for byte.
TEST(DropUnsyncedFileSystemTest, ALogLosesExactlyItsUnsyncedEntries) {
  testing::TempDir dir;
  ManualClock clock;
  LogOptions options;
  options.directory = dir.path() + "/log";
  options.segment_size_bytes_max = 64 << 10;
  options.direct_append_min_bytes = 8 << 10;  // some appends take the direct path
  {
    auto fs = make_drop_unsynced_file_system(posix_file_system());
    auto log = Log::open(fs.get(), &clock, options).value();
    for (int i = 0; i < 30; ++i) {
      Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 1 + i % 3,
                            i % 4 == 0 ? 9000 : 700);
      ASSERT_TRUE(log->append(b.entries).is_ok());
    }
    ASSERT_TRUE(log->sync().is_ok());
    ASSERT_GT(log->segments().size(), 1u);
    ASSERT_EQ(log->synced_index(), log->last_index());
    Batch more = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 5, 3000);
    ASSERT_TRUE(log->append(more.entries).is_ok());
    auto all = log->read(log->first_index(), log->last_index() + 1, UINT64_MAX).value();
    EXPECT_EQ(all.size(), log->last_index().value());
    EXPECT_TRUE(equal_bytes(all.back().payload, make_payload(all.back().header.index, Term(1), 3000)));
    options.name = std::to_string(log->synced_index().value());  // remember it
  }
  auto log = Log::open(posix_file_system(), &clock, options).value();
  EXPECT_EQ(log->last_index(), LogIndex(std::stoull(options.name)));
  auto all = log->read(log->first_index(), log->last_index() + 1, UINT64_MAX).value();
  for (const ReadEntry& e : all) {
    ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, Term(1), e.payload.size())));
  }
}

}  // namespace
}  // namespace mq::storage
