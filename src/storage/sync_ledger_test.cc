// The sync ledger (sync_ledger.h): records survive a reopen, the last record of a key wins,
// a torn last record and a damaged record in the middle are ignored, compaction keeps every
// key, and a crash keeps exactly the synced records. On the in-memory and the real file system.
#include "storage/sync_ledger.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "base/crc32c.h"
#include "base/le_codec.h"
#include "storage/memory_file_system.h"
#include "storage/metadata.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

namespace fmt = sync_ledger_format;

class SyncLedgerTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      temp_ = std::make_unique<testing::TempDir>();
      fs_ = posix_file_system();
      dir_ = temp_->path() + "/partitions";
    } else {
      fs_ = &memory_fs_;
      dir_ = "/data/partitions";
    }
  }

  std::unique_ptr<SyncLedger> open(std::uint64_t compact_bytes = fmt::kDefaultCompactBytes) {
    SyncLedgerOptions o;
    o.directory = dir_;
    o.compact_bytes = compact_bytes;
    o.sync_thread = false;
    auto ledger = SyncLedger::open(fs_, o);
    EXPECT_TRUE(ledger.has_value()) << ledger.status().to_string();
    return ledger.has_value() ? std::move(*ledger) : nullptr;
  }

  std::string path() const { return join_path(dir_, fmt::kFileName); }

  // The file's bytes with `extra` appended (a torn append) or cut to `size`.
  Buffer read_all() {
    auto bytes = read_whole_file(fs_, path(), fmt::kFileBytesMax);
    EXPECT_TRUE(bytes.has_value() && bytes->has_value());
    return bytes.has_value() && bytes->has_value() ? std::move(**bytes) : Buffer();
  }
  void replace(const Buffer& bytes) {
    if (!GetParam()) {
      ASSERT_TRUE(memory_fs_.write_file_durably(path(), bytes.view()).is_ok());
      return;
    }
    std::ofstream out(path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }

  MemoryFileSystem memory_fs_;
  std::unique_ptr<testing::TempDir> temp_;
  FileSystem* fs_ = nullptr;
  std::string dir_;
};

TEST_P(SyncLedgerTest, RecordsSurviveAReopenAndTheLastRecordOfAKeyWins) {
  {
    auto ledger = open();
    ASSERT_TRUE(ledger);
    EXPECT_FALSE(ledger->synced_end(7).has_value());
    ASSERT_TRUE(ledger->record_synced(7, LogIndex(10)).is_ok());
    ASSERT_TRUE(ledger->record_synced(8, LogIndex(3)).is_ok());
    ASSERT_TRUE(ledger->record_synced(7, LogIndex(25)).is_ok());
    ASSERT_TRUE(ledger->record_synced(7, LogIndex(25)).is_ok());  // unchanged: no record
    ASSERT_TRUE(ledger->record_synced(8, LogIndex(2), /*durable=*/true).is_ok());  // truncated
    ASSERT_TRUE(ledger->record_synced(9, LogIndex(4)).is_ok());
    ASSERT_TRUE(ledger->forget(9).is_ok());
    EXPECT_EQ(ledger->stats().records_written, 6u);  // the repeated value wrote nothing
    EXPECT_EQ(ledger->file_bytes(), fmt::kHeaderBytes + 6 * fmt::kRecordBytes);
    ASSERT_TRUE(ledger->sync().is_ok());
  }
  auto ledger = open();
  ASSERT_TRUE(ledger);
  EXPECT_EQ(ledger->synced_end(7), LogIndex(25));
  EXPECT_EQ(ledger->synced_end(8), LogIndex(2));
  EXPECT_FALSE(ledger->synced_end(9).has_value());
  EXPECT_TRUE(ledger->open_warnings().empty());
  EXPECT_EQ(ledger->stats().torn_records, 0u);
  // Open compacted the file: one record per live key.
  EXPECT_EQ(ledger->file_bytes(), fmt::kHeaderBytes + 2 * fmt::kRecordBytes);
}

TEST_P(SyncLedgerTest, ATornLastRecordIsIgnoredAndTheKeyKeepsItsPreviousValue) {
  {
    auto ledger = open();
    ASSERT_TRUE(ledger->record_synced(1, LogIndex(5)).is_ok());
    ASSERT_TRUE(ledger->record_synced(1, LogIndex(9)).is_ok());
    ASSERT_TRUE(ledger->sync().is_ok());
  }
  Buffer bytes = read_all();
  const std::size_t used = fmt::kHeaderBytes + 2 * fmt::kRecordBytes;
  ASSERT_EQ(bytes.size(), fmt::kHeaderBytes + fmt::kPreallocateBytes);  // records written in place
  // Half of the last record made it.
  Buffer torn(bytes.view(0, used - fmt::kRecordBytes / 2));
  replace(torn);
  {
    auto ledger = open();
    EXPECT_EQ(ledger->synced_end(1), LogIndex(5));
    EXPECT_EQ(ledger->stats().torn_records, 1u);
    EXPECT_EQ(ledger->stats().damaged_records, 0u);
    EXPECT_TRUE(ledger->open_warnings().empty());
    // Appends continue after the last valid record.
    ASSERT_TRUE(ledger->record_synced(1, LogIndex(6)).is_ok());
    ASSERT_TRUE(ledger->sync().is_ok());
  }
  EXPECT_EQ(open()->synced_end(1), LogIndex(6));
  // A complete last record failing its CRC (its sectors reached the disk in part).
  bytes = read_all();
  bytes[fmt::kHeaderBytes + fmt::kRecordBytes - 3] ^= 0x40;  // the compacted file's one record
  replace(bytes);
  auto ledger = open();
  EXPECT_EQ(ledger->stats().torn_records, 1u);
  EXPECT_FALSE(ledger->synced_end(1).has_value());  // the compacted file held one record
}

TEST_P(SyncLedgerTest, TheZeroFilledSpaceIsNotTornAndAppendsNeverChangeTheSizeUntilItIsFull) {
  auto ledger = open();
  ASSERT_TRUE(ledger->record_synced(1, LogIndex(1)).is_ok());
  ASSERT_TRUE(ledger->sync().is_ok());
  auto file = fs_->open(path(), OpenOptions{.read_only = true});
  ASSERT_TRUE(file.has_value());
  const std::uint64_t allocated = (*file)->size().value();
  EXPECT_EQ(allocated, fmt::kHeaderBytes + fmt::kPreallocateBytes);
  const std::uint64_t fit = fmt::kPreallocateBytes / fmt::kRecordBytes;
  for (std::uint64_t i = 2; i < fit; ++i) {
    ASSERT_TRUE(ledger->record_synced(1, LogIndex(i)).is_ok());
  }
  EXPECT_EQ((*file)->size().value(), allocated);
  for (std::uint64_t i = fit; i < fit + 3; ++i) {
    ASSERT_TRUE(ledger->record_synced(1, LogIndex(i)).is_ok());
  }
  EXPECT_EQ((*file)->size().value(), allocated + fmt::kPreallocateBytes);
  ASSERT_TRUE(ledger->sync().is_ok());
  file->reset();
  ledger.reset();
  ledger = open();
  EXPECT_EQ(ledger->synced_end(1), LogIndex(fit + 2));
  EXPECT_EQ(ledger->stats().torn_records, 0u);
  EXPECT_EQ(ledger->stats().damaged_records, 0u);
}

TEST_P(SyncLedgerTest, ABitFlipInAMiddleRecordIsSkippedAndReported) {
  {
    auto ledger = open();
    ASSERT_TRUE(ledger->record_synced(1, LogIndex(5)).is_ok());
    ASSERT_TRUE(ledger->record_synced(2, LogIndex(7)).is_ok());
    ASSERT_TRUE(ledger->record_synced(1, LogIndex(8)).is_ok());
    ASSERT_TRUE(ledger->record_synced(3, LogIndex(1)).is_ok());
    ASSERT_TRUE(ledger->sync().is_ok());
  }
  Buffer bytes = read_all();
  // Record 2 (key 1 -> 8): flip a bit of its synced end.
  bytes[fmt::kHeaderBytes + 2 * fmt::kRecordBytes + fmt::kRecordSyncedEndAt] ^= 0x01;
  replace(bytes);
  auto ledger = open();
  EXPECT_EQ(ledger->stats().damaged_records, 1u);
  EXPECT_EQ(ledger->stats().torn_records, 0u);
  ASSERT_EQ(ledger->open_warnings().size(), 1u);
  EXPECT_NE(ledger->open_warnings()[0].find("record 2"), std::string::npos);
  EXPECT_EQ(ledger->synced_end(1), LogIndex(5));  // its previous record
  EXPECT_EQ(ledger->synced_end(2), LogIndex(7));
  EXPECT_EQ(ledger->synced_end(3), LogIndex(1));
}

TEST_P(SyncLedgerTest, ADamagedHeaderStartsEmptyWithAWarningAndAnUnknownVersionIsAnError) {
  {
    auto ledger = open();
    ASSERT_TRUE(ledger->record_synced(1, LogIndex(5)).is_ok());
    ASSERT_TRUE(ledger->sync().is_ok());
  }
  Buffer bytes = read_all();
  bytes[1] ^= 0x10;  // magic
  replace(bytes);
  {
    auto ledger = open();
    ASSERT_TRUE(ledger);
    EXPECT_FALSE(ledger->synced_end(1).has_value());
    ASSERT_EQ(ledger->open_warnings().size(), 1u);
    EXPECT_NE(ledger->open_warnings()[0].find("damaged header"), std::string::npos);
  }
  bytes = read_all();
  le::encode_u16(bytes.data() + fmt::kHeaderVersionAt, 2);
  le::encode_u32(bytes.data() + fmt::kHeaderCrcAt, crc32c::value(bytes.data(), fmt::kHeaderCrcAt));
  replace(bytes);
  SyncLedgerOptions o;
  o.directory = dir_;
  o.sync_thread = false;
  auto ledger = SyncLedger::open(fs_, o);
  ASSERT_FALSE(ledger.has_value());
  EXPECT_EQ(ledger.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(ledger.error().to_string().find("unsupported version 2"), std::string::npos);
}

TEST_P(SyncLedgerTest, CompactionKeepsTheFileSmallAndEveryKey) {
  constexpr std::uint64_t kCompactBytes = 4096;
  {
    auto ledger = open(kCompactBytes);
    for (std::uint64_t i = 1; i <= 2000; ++i) {
      ASSERT_TRUE(ledger->record_synced(i % 5, LogIndex(i)).is_ok());
      if (i % 50 == 0) {
        ASSERT_TRUE(ledger->sync().is_ok());
      }
      ASSERT_LE(ledger->file_bytes(), kCompactBytes + 50 * fmt::kRecordBytes);
    }
    EXPECT_GE(ledger->stats().compactions, 10u);
    ASSERT_TRUE(ledger->sync().is_ok());
  }
  auto ledger = open(kCompactBytes);
  for (std::uint64_t k = 0; k < 5; ++k) {
    const LogIndex expected(k == 0 ? 2000 : 1995 + k);  // the last i with i % 5 == k
    EXPECT_EQ(ledger->synced_end(k), expected) << k;
  }
}

TEST_P(SyncLedgerTest, TheSyncThreadMakesRecordsDurable) {
  SyncLedgerOptions o;
  o.directory = dir_;
  o.sync_thread = true;
  auto ledger = SyncLedger::open(fs_, o);
  ASSERT_TRUE(ledger.has_value());
  ASSERT_TRUE((*ledger)->record_synced(4, LogIndex(11)).is_ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((*ledger)->stats().syncs == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE((*ledger)->stats().syncs, 1u);
  if (!GetParam()) {
    ledger->reset();
    memory_fs_.crash();
    EXPECT_EQ(open()->synced_end(4), LogIndex(11));
  }
}

TEST_P(SyncLedgerTest, TheSyncThreadSyncsAtMostOncePerInterval) {
  SyncLedgerOptions o;
  o.directory = dir_;
  o.sync_thread = true;
  o.sync_interval_ms = 400;
  auto ledger = SyncLedger::open(fs_, o);
  ASSERT_TRUE(ledger.has_value());
  ASSERT_TRUE((*ledger)->record_synced(4, LogIndex(11)).is_ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((*ledger)->stats().syncs == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ((*ledger)->stats().syncs, 1u);  // the first record is synced at once
  const auto first_sync = std::chrono::steady_clock::now();
  // Records written right after it wait for the interval: one more fdatasync covers them all.
  for (std::uint64_t i = 12; i < 40; ++i) {
    ASSERT_TRUE((*ledger)->record_synced(4, LogIndex(i)).is_ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  while ((*ledger)->stats().syncs < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ((*ledger)->stats().syncs, 2u);
  EXPECT_GE(std::chrono::steady_clock::now() - first_sync, std::chrono::milliseconds(390));
  // The 28 records of the pause did not wake the thread one by one: the first record and the
  // pause's end are its only returns from a wait (a few spurious wake-ups allowed).
  EXPECT_LE((*ledger)->stats().thread_wakeups, 6u) << (*ledger)->stats().thread_wakeups;
  // Closing syncs what was written since.
  ASSERT_TRUE((*ledger)->record_synced(4, LogIndex(50)).is_ok());
  ledger->reset();
  if (!GetParam()) {
    memory_fs_.crash();
    EXPECT_EQ(open()->synced_end(4), LogIndex(50));
  }
}

INSTANTIATE_TEST_SUITE_P(FileSystems, SyncLedgerTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Posix" : "Memory"; });

// Crash semantics (in-memory file system): synced records survive, unsynced ones may not, and
// whatever survives is a prefix of valid records (never a record that was not written).
TEST(SyncLedgerCrash, ACrashKeepsTheSyncedRecordsAndNeverInventsOne) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    MemoryFileSystem fs;
    SyncLedgerOptions o;
    o.directory = "/d";
    o.sync_thread = false;
    {
      auto ledger = SyncLedger::open(&fs, o);
      ASSERT_TRUE(ledger.has_value());
      ASSERT_TRUE((*ledger)->record_synced(1, LogIndex(10)).is_ok());
      ASSERT_TRUE((*ledger)->sync().is_ok());
      ASSERT_TRUE((*ledger)->record_synced(1, LogIndex(20)).is_ok());  // not synced
      ASSERT_TRUE((*ledger)->record_synced(2, LogIndex(30)).is_ok());  // not synced
    }
    Prng prng(seed);
    fs.crash(&prng);
    auto ledger = SyncLedger::open(&fs, o);
    ASSERT_TRUE(ledger.has_value()) << ledger.status().to_string();
    auto one = (*ledger)->synced_end(1);
    auto two = (*ledger)->synced_end(2);
    ASSERT_TRUE(one.has_value());
    EXPECT_TRUE(*one == LogIndex(10) || *one == LogIndex(20)) << one->value();
    EXPECT_TRUE(!two.has_value() || *two == LogIndex(30));
    if (two.has_value()) {
      EXPECT_EQ(*one, LogIndex(20)) << "records survive as a prefix";
    }
    EXPECT_EQ((*ledger)->stats().damaged_records, 0u);
  }
}

TEST(SyncLedgerCrash, AFailedSyncRewritesTheWholeFile) {
  MemoryFileSystem fs;
  SyncLedgerOptions o;
  o.directory = "/d";
  o.sync_thread = false;
  {
    auto ledger = SyncLedger::open(&fs, o);
    ASSERT_TRUE(ledger.has_value());
    ASSERT_TRUE((*ledger)->record_synced(1, LogIndex(10)).is_ok());
    fs.fail_next_syncs(1);
    // The failed fdatasync may have dropped the record's pages: the ledger rewrites the file
    // from memory (atomically, synced) at once.
    EXPECT_TRUE((*ledger)->sync().is_ok());
    EXPECT_EQ((*ledger)->stats().write_errors, 1u);
    EXPECT_GE((*ledger)->stats().compactions, 2u);
  }
  fs.crash();
  auto ledger = SyncLedger::open(&fs, o);
  ASSERT_TRUE(ledger.has_value());
  EXPECT_EQ((*ledger)->synced_end(1), LogIndex(10));
}

// The example of docs/formats/sync_ledger_format.md, byte for byte.
TEST(SyncLedgerFormat, EncodesTheDocumentedExample) {
  auto hex = [](const std::uint8_t* p, std::size_t n) {
    std::string out;
    char b[4];
    for (std::size_t i = 0; i < n; ++i) {
      std::snprintf(b, sizeof b, i == 0 ? "%02x" : " %02x", p[i]);
      out += b;
    }
    return out;
  };
  std::uint8_t header[fmt::kHeaderBytes];
  encode_sync_ledger_header(header);
  EXPECT_EQ(hex(header, sizeof header), "4d 51 53 4c 01 00 18 00 00 00 00 00 d2 8a b8 3a");
  std::uint8_t record[fmt::kRecordBytes];
  encode_sync_ledger_record(record, 3, 1234, fmt::kKindSyncedEnd);
  EXPECT_EQ(hex(record, sizeof record),
            "03 00 00 00 00 00 00 00 d2 04 00 00 00 00 00 00 01 00 00 00 00 06 78 b8");
  encode_sync_ledger_record(record, 7, 0, fmt::kKindForget);
  EXPECT_EQ(hex(record, sizeof record),
            "07 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00 8c b3 69 87");
}

}  // namespace
}  // namespace mq::storage
