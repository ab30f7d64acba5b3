// File-level faults: torn tails at every byte, bit flips anywhere, damaged index files,
// corruption in the middle of the log, full disks and I/O errors.
#include <gtest/gtest.h>

#include <map>

#include "storage/log.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

constexpr const char* kDir = "/data/log";

LogOptions small_options() {
  LogOptions options;
  options.directory = kDir;
  options.name = "orders-7";
  options.segment_size_bytes_max = 8 << 10;
  options.index_interval_bytes = 512;
  return options;
}

// Builds a log of `count` entries of varying sizes in fs, synced, and closes it.
void build(MemoryFileSystem& fs, ManualClock& clock, std::size_t count, Term term = Term(1)) {
  auto log = Log::open(&fs, &clock, small_options()).value();
  for (std::size_t i = 0; i < count; ++i) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), term, 1, 100 + (i * 37) % 400);
    ASSERT_TRUE(log->append(b.entries).is_ok());
  }
  ASSERT_TRUE(log->sync().is_ok());
}

std::string segment_path(LogIndex base) {
  return join_path(kDir, segment_format::file_stem(base) + ".log");
}

// Every entry the log returns must be exactly what was written.
void expect_prefix_intact(Log& log, Term term = Term(1)) {
  auto entries = log.read(log.first_index(), log.last_index() + 1, UINT64_MAX);
  ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
  for (const ReadEntry& e : *entries) {
    ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, term, e.payload.size())))
        << "entry " << e.header.index;
  }
}

TEST(LogFaultTest, TornLastEntryAtEveryByteIsCut) {
  ManualClock clock;
  MemoryFileSystem reference;
  build(reference, clock, 20);
  auto log = Log::open(&reference, &clock, small_options()).value();
  auto tail = log->segments().back();
  std::uint64_t full = tail.size_bytes;
  auto last = log->read(log->last_index(), log->last_index() + 1, UINT64_MAX).value();
  std::uint64_t last_size = last[0].header.stored_size();
  LogIndex last_index = log->last_index();
  log.reset();
  for (std::uint64_t cut = 1; cut <= last_size; ++cut) {
    MemoryFileSystem fs;
    build(fs, clock, 20);
    ASSERT_TRUE(fs.truncate_file(segment_path(tail.base_index), full - cut).is_ok());
    auto reopened = Log::open(&fs, &clock, small_options());
    ASSERT_TRUE(reopened.has_value()) << reopened.status().to_string();
    EXPECT_EQ((*reopened)->last_index(), last_index - 1) << "cut " << cut;
    expect_prefix_intact(**reopened);
    EXPECT_EQ(fs.read_file(segment_path(tail.base_index)).value().size(), full - last_size);
    Batch b = Batch::make(last_index, (*reopened)->next_offset(), Term(1), 1, 10);
    EXPECT_TRUE((*reopened)->append(b.entries).is_ok());
  }
}

// Torn write vs corruption in the tail segment: a torn write can only damage the last entry,
// so a flip there is cut like a torn tail; a flip in any earlier entry (followed by valid
// entries) is kCorruption naming the partition, and nothing is truncated.
TEST(LogFaultTest, BitFlipsInTheTailSegmentBeforeTheLastEntryAreCorruptionNotTornWrites) {
  ManualClock clock;
  MemoryFileSystem reference;
  build(reference, clock, 40);
  LogIndex last_index;
  std::uint64_t last_position = 0;
  std::string tail_path;
  {
    auto log = Log::open(&reference, &clock, small_options()).value();
    auto tail = log->segments().back();
    ASSERT_GE(tail.last_index.value(), tail.base_index.value() + 3) << "tail too short for the test";
    last_index = log->last_index();
    auto last = log->read(last_index, last_index + 1, UINT64_MAX).value();
    last_position = tail.size_bytes - last[0].header.stored_size();
    tail_path = segment_path(tail.base_index);
  }
  std::map<std::string, Buffer> files;
  std::vector<std::string> names = reference.list(kDir).value();
  for (const std::string& name : names) {
    files[join_path(kDir, name)] = reference.read_file(join_path(kDir, name)).value();
  }
  const std::uint64_t tail_size = files[tail_path].size();
  int corrupt = 0, cut = 0;
  // Every 5th byte before the last entry, every byte of the last entry's header and every
  // 3rd of its payload; each bit position in turn.
  for (std::uint64_t position = 0; position < tail_size;
       position += position < last_position ? 5 : (position < last_position + 56 ? 1 : 3)) {
    MemoryFileSystem fs;
    ASSERT_TRUE(fs.create_dirs(kDir).is_ok());
    for (const auto& [path, bytes] : files) ASSERT_TRUE(fs.write_file_durably(path, bytes.view()).is_ok());
    auto mask = static_cast<std::uint8_t>(1u << (position % 8));
    ASSERT_TRUE(fs.corrupt_byte(tail_path, position, mask).is_ok());
    auto log = Log::open(&fs, &clock, small_options());
    if (position < last_position) {
      ASSERT_FALSE(log.has_value()) << "flip at " << position << " was not detected";
      EXPECT_EQ(log.error().code(), ErrorCode::kCorruption) << log.error().to_string();
      EXPECT_NE(log.error().message().find("orders-7"), std::string::npos) << log.error().to_string();
      if (position >= segment_format::kSegmentHeaderSize) {
        EXPECT_NE(log.error().message().find("not a torn write"), std::string::npos)
            << log.error().to_string();
      }
      // Nothing acknowledged was cut.
      EXPECT_EQ(fs.read_file(tail_path).value().size(), tail_size) << "flip at " << position;
      ++corrupt;
    } else {
      ASSERT_TRUE(log.has_value()) << "flip at " << position << ": " << log.error().to_string();
      EXPECT_EQ((*log)->last_index(), last_index - 1) << "flip at " << position;
      expect_prefix_intact(**log);
      EXPECT_EQ(fs.read_file(tail_path).value().size(), last_position);
      ++cut;
    }
  }
  EXPECT_GT(corrupt, 100);
  EXPECT_GT(cut, 56);
}

TEST(LogFaultTest, GarbageAfterTheTailIsCut) {
  ManualClock clock;
  MemoryFileSystem fs;
  build(fs, clock, 10);
  std::string path;
  {
    auto log = Log::open(&fs, &clock, small_options()).value();
    path = segment_path(log->segments().back().base_index);
  }
  Buffer contents = fs.read_file(path).value();
  Buffer zeros(300);
  contents.append(zeros.view());
  ASSERT_TRUE(fs.write_file_durably(path, contents.view()).is_ok());
  auto log = Log::open(&fs, &clock, small_options()).value();
  EXPECT_EQ(log->last_index(), LogIndex(10));
  expect_prefix_intact(*log);
}

// A bit flipped anywhere in any file is never served as valid data: the log refuses to open
// (kCorruption naming the place), a read fails with kCorruption, or (in the tail or an index
// file) the damage is cut/rebuilt and what is served is still exactly what was written.
TEST(LogFaultTest, RandomBitFlipsAreAlwaysDetected) {
  ManualClock clock;
  Prng prng(2024);
  int refused = 0, read_failed = 0, repaired = 0;
  for (int round = 0; round < 150; ++round) {
    MemoryFileSystem fs;
    build(fs, clock, 40);
    auto names = fs.list(kDir).value();
    std::sort(names.begin(), names.end());
    std::string victim = join_path(kDir, names[prng.uniform(names.size())]);
    Buffer contents = fs.read_file(victim).value();
    std::uint64_t position = prng.uniform(contents.size());
    ASSERT_TRUE(fs.corrupt_byte(victim, position, static_cast<std::uint8_t>(1u << prng.uniform(8))).is_ok());
    auto log = Log::open(&fs, &clock, small_options());
    if (!log.has_value()) {
      EXPECT_EQ(log.error().code(), ErrorCode::kCorruption) << log.error().to_string();
      ++refused;
      continue;
    }
    auto entries = (*log)->read((*log)->first_index(), (*log)->last_index() + 1, UINT64_MAX);
    if (!entries.has_value()) {
      EXPECT_EQ(entries.error().code(), ErrorCode::kCorruption);
      EXPECT_NE(entries.error().message().find("orders-7"), std::string::npos);
      EXPECT_NE(entries.error().message().find("position"), std::string::npos);
      ++read_failed;
      continue;
    }
    for (const ReadEntry& e : *entries) {
      ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, Term(1), e.payload.size())))
          << victim << " flipped at " << position;
    }
    // Lookups still agree with the data.
    for (LogIndex i = (*log)->first_index(); i <= (*log)->last_index(); ++i) {
      auto ref = (*log)->lookup_offset(KafkaOffset(static_cast<std::int64_t>(i.value()) - 1));
      if (ref.has_value() && ref->has_value()) {
        EXPECT_EQ((*ref)->index, i);
      }
    }
    ++repaired;
  }
  EXPECT_GT(refused + read_failed, 0);
  EXPECT_GT(repaired, 0);
}

TEST(LogFaultTest, MissingOrGarbageIndexFilesAreRebuilt) {
  ManualClock clock;
  MemoryFileSystem fs;
  build(fs, clock, 80);
  LogIndex base;
  {
    auto log = Log::open(&fs, &clock, small_options()).value();
    ASSERT_GE(log->segments().size(), 3u);
    base = log->segments()[1].base_index;
  }
  std::string stem = join_path(kDir, segment_format::file_stem(base));
  ASSERT_TRUE(fs.remove(stem + ".index").is_ok());
  ASSERT_TRUE(fs.write_file_durably(stem + ".timeindex", as_bytes("garbage garbage garbage")).is_ok());
  auto log = Log::open(&fs, &clock, small_options()).value();
  EXPECT_TRUE(fs.exists(stem + ".index").value());
  EXPECT_GT(fs.read_file(stem + ".timeindex").value().size(), 32u);
  for (std::int64_t o = 0; o < 80; ++o) {
    EXPECT_EQ(log->lookup_offset(KafkaOffset(o)).value()->index, LogIndex(o + 1));
  }
  // Damage an index entry after opening: the lookup falls back to a rebuilt index.
  ASSERT_TRUE(fs.corrupt_byte(stem + ".index", 32 + 16 + 3, 0xff).is_ok());
  for (std::int64_t o = 0; o < 80; ++o) {
    auto found = log->lookup_offset(KafkaOffset(o));
    ASSERT_TRUE(found.has_value()) << found.status().to_string();
    EXPECT_EQ((*found)->index, LogIndex(o + 1));
  }
}

TEST(LogFaultTest, CorruptionInAClosedSegmentIsANamedErrorNotACrash) {
  ManualClock clock;
  MemoryFileSystem fs;
  build(fs, clock, 80);
  SegmentSummary victim;
  {
    auto log = Log::open(&fs, &clock, small_options()).value();
    victim = log->segments()[1];
  }
  std::string path = segment_path(victim.base_index);
  std::uint64_t size = fs.read_file(path).value().size();
  // The last bytes of a closed segment are validated at open: refuse to open.
  ASSERT_TRUE(fs.corrupt_byte(path, size - 2, 0x10).is_ok());
  auto log = Log::open(&fs, &clock, small_options());
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(log.error().message().find("orders-7"), std::string::npos) << log.error().to_string();
  EXPECT_NE(log.error().message().find(path), std::string::npos) << log.error().to_string();
  EXPECT_NE(log.error().message().find("position"), std::string::npos);
  ASSERT_TRUE(fs.corrupt_byte(path, size - 2, 0x10).is_ok());  // repair
  // Damage early in the segment (not validated at open): reads of it fail, others work.
  ASSERT_TRUE(fs.corrupt_byte(path, 32 + 56 + 5, 0x01).is_ok());
  auto reopened = Log::open(&fs, &clock, small_options()).value();
  auto bad = reopened->read(victim.base_index, victim.base_index + 1, UINT64_MAX);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(bad.error().message().find(path), std::string::npos);
  EXPECT_TRUE(reopened->read(victim.base_index + 1, victim.last_index + 1, UINT64_MAX).has_value());
}

TEST(LogFaultTest, FullDiskFailsCleanlyAndAppendsResumeAfterSpaceIsBack) {
  ManualClock clock;
  MemoryFileSystem fs;
  auto log = Log::open(&fs, &clock, small_options()).value();
  fs.set_capacity_bytes(fs.used_bytes() + 30'000);
  Status status;
  int appended = 0;
  while (true) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 3, 700);
    status = log->append(b.entries);
    if (!status.is_ok()) break;
    ASSERT_TRUE(log->sync().is_ok());
    ++appended;
    ASSERT_LT(appended, 1000);
  }
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace) << status.to_string();
  EXPECT_TRUE(log->health().is_ok());
  LogIndex last = log->last_index();
  expect_prefix_intact(*log);
  // The partial write was rolled back: the tail ends at the last whole entry.
  auto tail = log->segments().back();
  EXPECT_EQ(fs.read_file(segment_path(tail.base_index)).value().size(), tail.size_bytes);
  ASSERT_TRUE(log->sync().is_ok());
  fs.set_capacity_bytes(UINT64_MAX);
  for (int i = 0; i < 10; ++i) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 3, 700);
    ASSERT_TRUE(log->append(b.entries).is_ok());
  }
  ASSERT_TRUE(log->sync().is_ok());
  log.reset();
  fs.crash();
  log = Log::open(&fs, &clock, small_options()).value();
  EXPECT_GE(log->last_index(), last + 30);
  expect_prefix_intact(*log);
}

TEST(LogFaultTest, FreeSpaceReserveRefusesAppendsBeforeTheDiskIsFull) {
  ManualClock clock;
  MemoryFileSystem fs;
  LogOptions options = small_options();
  options.free_space_reserve_bytes = 10'000;
  auto log = Log::open(&fs, &clock, options).value();
  fs.set_capacity_bytes(fs.used_bytes() + 20'000);
  Status status;
  while (status.is_ok()) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 1, 500);
    status = log->append(b.entries);
  }
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace);
  EXPECT_NE(status.message().find("reserve"), std::string::npos) << status.to_string();
  EXPECT_GE(fs.free_bytes(kDir).value(), 9'000u);
}

TEST(LogFaultTest, WriteErrorRollsBackAndTheLogKeepsWorking) {
  ManualClock clock;
  MemoryFileSystem fs;
  auto log = Log::open(&fs, &clock, small_options()).value();
  Batch a = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 5, 200);
  ASSERT_TRUE(log->append(a.entries).is_ok());
  fs.fail_next_writes(1);
  Batch b = Batch::make(LogIndex(6), KafkaOffset(5), Term(1), 5, 200);
  EXPECT_EQ(log->append(b.entries).code(), ErrorCode::kIoError);
  EXPECT_EQ(log->last_index(), LogIndex(5));
  ASSERT_TRUE(log->append(b.entries).is_ok());
  ASSERT_TRUE(log->sync().is_ok());
  expect_prefix_intact(*log);
}

TEST(LogFaultTest, FailedSyncPutsTheLogInAFailedStateUntilReopened) {
  ManualClock clock;
  MemoryFileSystem fs;
  auto log = Log::open(&fs, &clock, small_options()).value();
  Batch a = Batch::make(LogIndex(1), KafkaOffset(0), Term(1), 5, 200);
  ASSERT_TRUE(log->append(a.entries).is_ok());
  fs.fail_next_syncs(1);
  EXPECT_EQ(log->sync().code(), ErrorCode::kIoError);
  EXPECT_EQ(log->durable_index(), LogIndex(0));
  EXPECT_FALSE(log->health().is_ok());
  Batch b = Batch::make(LogIndex(6), KafkaOffset(5), Term(1), 1, 200);
  EXPECT_EQ(log->append(b.entries).code(), ErrorCode::kIoError);
  log.reset();
  log = Log::open(&fs, &clock, small_options()).value();
  EXPECT_TRUE(log->health().is_ok());
  EXPECT_TRUE(log->append(b.entries).is_ok());
}

TEST(LogFaultTest, ReadErrorsAreReportedNotFatal) {
  ManualClock clock;
  MemoryFileSystem fs;
  build(fs, clock, 10);
  auto log = Log::open(&fs, &clock, small_options()).value();
  fs.set_read_error(segment_path(LogIndex(1)), 40);
  auto entries = log->read(LogIndex(1), LogIndex(3), UINT64_MAX);
  ASSERT_FALSE(entries.has_value());
  EXPECT_EQ(entries.error().code(), ErrorCode::kIoError);
  fs.clear_read_errors();
  EXPECT_TRUE(log->read(LogIndex(1), LogIndex(3), UINT64_MAX).has_value());
}

TEST(LogFaultTest, ACrashDuringTruncationNeverResurrectsEntries) {
  ManualClock clock;
  Prng prng(99);
  for (int round = 0; round < 60; ++round) {
    MemoryFileSystem fs;
    build(fs, clock, 60);
    auto log = Log::open(&fs, &clock, small_options()).value();
    LogIndex from(prng.range(1, 60));
    // Fail the operation part-way (after the record), then crash.
    fs.fail_sync_after(static_cast<int>(prng.range(0, 6)));
    Status truncated = log->truncate_suffix(from);
    fs.fail_next_syncs(0);
    log.reset();
    fs.crash(&prng, /*names_in_any_order=*/prng.chance(1, 2));
    auto reopened = Log::open(&fs, &clock, small_options());
    ASSERT_TRUE(reopened.has_value()) << reopened.status().to_string();
    if (truncated.is_ok()) {
      EXPECT_EQ((*reopened)->last_index(), from - 1);
    }
    // Either the truncation happened completely or not at all.
    EXPECT_TRUE((*reopened)->last_index() == from - 1 || (*reopened)->last_index() == LogIndex(60))
        << "from " << from << " last " << (*reopened)->last_index();
    expect_prefix_intact(**reopened);
  }
}

TEST(LogFaultTest, ACrashDuringPrefixRemovalNeverLeavesAGap) {
  ManualClock clock;
  Prng prng(7);
  for (int round = 0; round < 60; ++round) {
    MemoryFileSystem fs;
    build(fs, clock, 80);
    auto log = Log::open(&fs, &clock, small_options()).value();
    LogIndex new_first(prng.range(2, 81));
    fs.fail_sync_after(static_cast<int>(prng.range(0, 4)));
    Status removed = log->remove_prefix(new_first);
    fs.fail_next_syncs(0);
    log.reset();
    fs.crash(&prng, /*names_in_any_order=*/true);
    auto reopened = Log::open(&fs, &clock, small_options());
    ASSERT_TRUE(reopened.has_value()) << reopened.status().to_string() << " new_first " << new_first;
    if (removed.is_ok()) {
      EXPECT_EQ((*reopened)->first_index(), new_first);
    }
    EXPECT_TRUE((*reopened)->first_index() == new_first ||
                (*reopened)->first_index() == LogIndex(1));
    EXPECT_EQ((*reopened)->last_index(), LogIndex(80));
    expect_prefix_intact(**reopened);
  }
}

}  // namespace
}  // namespace mq::storage
