// Recovery mode "cut at the first damaged entry" (LogOptions::on_damaged_tail_cut): explicit,
// reported, and only for a damaged tail entry followed by valid entries (corruption, which a
// normal open refuses). FINDINGS-chaos2 F8.
#include <gtest/gtest.h>

#include <map>

#include "storage/log.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

constexpr const char* kDir = "/data/repair";

LogOptions options(std::function<Status(const DamagedTailCut&)> on_cut = nullptr) {
  LogOptions o;
  o.directory = kDir;
  o.name = "orders-9";
  o.segment_size_bytes_max = 16 << 10;
  o.index_interval_bytes = 512;
  o.on_damaged_tail_cut = std::move(on_cut);
  return o;
}

struct Built {
  LogIndex tail_base;
  LogIndex last_index;
  std::string tail_path;
  std::map<LogIndex, std::uint64_t> position;  // entry -> position in the tail segment
  std::uint64_t tail_size = 0;
};

Built build(MemoryFileSystem& fs, ManualClock& clock, std::size_t count) {
  Built out;
  auto log = Log::open(&fs, &clock, options()).value();
  for (std::size_t i = 0; i < count; ++i) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1), 1, 100 + (i * 37) % 400);
    EXPECT_TRUE(log->append(b.entries).is_ok());
  }
  EXPECT_TRUE(log->sync().is_ok());
  auto tail = log->segments().back();
  out.tail_base = tail.base_index;
  out.last_index = log->last_index();
  out.tail_path = join_path(kDir, segment_format::file_stem(tail.base_index) + ".log");
  out.tail_size = tail.size_bytes;
  std::uint64_t at = segment_format::kSegmentHeaderSize;
  auto entries = log->read(tail.base_index, log->last_index() + 1, UINT64_MAX);
  EXPECT_TRUE(entries.has_value());
  if (!entries.has_value()) return out;
  const std::vector<ReadEntry> read = std::move(*entries);
  for (const ReadEntry& e : read) {
    out.position[e.header.index] = at;
    at += e.header.stored_size();
  }
  EXPECT_EQ(at, out.tail_size);
  return out;
}

void expect_intact(Log& log) {
  auto entries = log.read(log.first_index(), log.last_index() + 1, UINT64_MAX);
  ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
  for (const ReadEntry& e : *entries) {
    ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, Term(1), e.payload.size())))
        << "entry " << e.header.index;
  }
}

TEST(LogRepairTest, CutsAtTheDamagedEntryReportsItAndLeavesACleanLog) {
  ManualClock clock;
  MemoryFileSystem fs;
  Built built = build(fs, clock, 30);
  ASSERT_GE(built.position.size(), 10u) << "tail too short for the test";
  // A flip in the payload of an entry in the middle of the tail segment.
  LogIndex damaged = built.tail_base + static_cast<std::uint64_t>(built.position.size() / 2);
  std::uint64_t at = built.position[damaged];
  ASSERT_TRUE(fs.corrupt_byte(built.tail_path, at + segment_format::kEntryHeaderSize + 7, 0x04).is_ok());

  // The normal open refuses it and cuts nothing.
  auto plain = Log::open(&fs, &clock, options());
  ASSERT_FALSE(plain.has_value());
  EXPECT_EQ(plain.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(plain.error().message().find("not a torn write"), std::string::npos);
  EXPECT_EQ(fs.read_file(built.tail_path).value().size(), built.tail_size);

  // Cut mode: the callback sees the cut before it is made, then the log opens without it.
  std::vector<DamagedTailCut> seen;
  auto repaired = Log::open(&fs, &clock, options([&](const DamagedTailCut& cut) {
    EXPECT_EQ(fs.read_file(built.tail_path).value().size(), built.tail_size) << "cut too early";
    seen.push_back(cut);
    return Status::ok();
  }));
  ASSERT_TRUE(repaired.has_value()) << repaired.error().to_string();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first_cut, damaged);
  EXPECT_EQ(seen[0].last_index_before, built.last_index);
  EXPECT_EQ(seen[0].position, at);
  EXPECT_EQ(seen[0].bytes_removed, built.tail_size - at);
  EXPECT_EQ(seen[0].segment, built.tail_path);
  EXPECT_NE(seen[0].damage.find("not a torn write"), std::string::npos);
  EXPECT_EQ((*repaired)->last_index(), damaged - 1);
  expect_intact(**repaired);
  // Appends continue at the damaged index (the leader re-sends it).
  Batch b = Batch::make(damaged, (*repaired)->next_offset(), Term(2), 1, 50);
  ASSERT_TRUE((*repaired)->append(b.entries).is_ok());
  ASSERT_TRUE((*repaired)->sync().is_ok());
  repaired->reset();

  // What is left is a clean log: a normal open accepts it.
  auto again = Log::open(&fs, &clock, options());
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  EXPECT_EQ((*again)->last_index(), damaged);
}

TEST(LogRepairTest, TheBoundCoversEveryValidEntryAfterSeveralDamagedStretches) {
  ManualClock clock;
  MemoryFileSystem fs;
  Built built = build(fs, clock, 30);
  ASSERT_GE(built.position.size(), 10u);
  LogIndex first = built.tail_base + 2;
  LogIndex second = built.tail_base + static_cast<std::uint64_t>(built.position.size() - 3);
  // The first damage hits a header (its length is unknown: the scan resynchronizes), the
  // second a payload further on.
  ASSERT_TRUE(fs.corrupt_byte(built.tail_path, built.position[first] + 30, 0x80).is_ok());
  ASSERT_TRUE(fs.corrupt_byte(built.tail_path, built.position[second] +
                                                   segment_format::kEntryHeaderSize + 1, 0x01).is_ok());
  std::optional<DamagedTailCut> seen;
  auto repaired = Log::open(&fs, &clock, options([&](const DamagedTailCut& cut) {
    seen = cut;
    return Status::ok();
  }));
  ASSERT_TRUE(repaired.has_value()) << repaired.error().to_string();
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->first_cut, first);
  EXPECT_EQ(seen->last_index_before, built.last_index);
  EXPECT_EQ((*repaired)->last_index(), first - 1);
  expect_intact(**repaired);
}

TEST(LogRepairTest, ACallbackErrorAbortsTheOpenWithNothingCut) {
  ManualClock clock;
  MemoryFileSystem fs;
  Built built = build(fs, clock, 30);
  LogIndex damaged = built.tail_base + 3;
  ASSERT_TRUE(fs.corrupt_byte(built.tail_path, built.position[damaged] + segment_format::kEntryHeaderSize,
                              0x02).is_ok());
  auto failed = Log::open(&fs, &clock, options([](const DamagedTailCut&) {
    return Status::io_error("cannot record the bound");
  }));
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code(), ErrorCode::kIoError);
  EXPECT_EQ(fs.read_file(built.tail_path).value().size(), built.tail_size);
  EXPECT_FALSE(Log::open(&fs, &clock, options()).has_value());  // still damaged
}

TEST(LogRepairTest, ATornTailIsCutAsBeforeWithoutCallingTheRepair) {
  ManualClock clock;
  MemoryFileSystem fs;
  Built built = build(fs, clock, 30);
  // A flip in the last entry: indistinguishable from a torn write, cut by every open.
  ASSERT_TRUE(fs.corrupt_byte(built.tail_path, built.position[built.last_index] +
                                                   segment_format::kEntryHeaderSize + 3, 0x08).is_ok());
  bool called = false;
  auto log = Log::open(&fs, &clock, options([&](const DamagedTailCut&) {
    called = true;
    return Status::ok();
  }));
  ASSERT_TRUE(log.has_value()) << log.error().to_string();
  EXPECT_FALSE(called);
  EXPECT_EQ((*log)->last_index(), built.last_index - 1);
}

TEST(LogRepairTest, DamageInAClosedSegmentStaysCorruption) {
  ManualClock clock;
  MemoryFileSystem fs;
  Built built = build(fs, clock, 120);
  ASSERT_GT(built.tail_base, LogIndex(1)) << "needs more than one segment";
  std::string first_path = join_path(kDir, segment_format::file_stem(LogIndex(1)) + ".log");
  ASSERT_TRUE(fs.corrupt_byte(first_path, segment_format::kSegmentHeaderSize +
                                              segment_format::kEntryHeaderSize + 5, 0x01).is_ok());
  bool called = false;
  auto log = Log::open(&fs, &clock, options([&](const DamagedTailCut&) {
    called = true;
    return Status::ok();
  }));
  // Closed segments are validated lazily (their index files are trusted at open) or at
  // open when the index must be rebuilt; either way the repair mode never cuts them.
  EXPECT_FALSE(called);
  if (log.has_value()) {
    EXPECT_EQ((*log)->last_index(), built.last_index);
    EXPECT_FALSE((*log)->read(LogIndex(1), LogIndex(2), UINT64_MAX).has_value());
  } else {
    EXPECT_EQ(log.error().code(), ErrorCode::kCorruption);
  }
}

}  // namespace
}  // namespace mq::storage
