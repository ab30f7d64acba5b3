// Log behaviour against both file systems (in-memory and real, in a temp directory).
#include "storage/log.h"

#include <gtest/gtest.h>

#include <map>

#include "storage/log_fixture.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

class LogTest : public testing::LogFixture {
 protected:
  void SetUp() override {
    LogFixture::SetUp();
    options_.name = "topic-0";
    options_.segment_size_bytes_max = 16 << 10;
    options_.index_interval_bytes = 1024;
  }
  // Appends count entries of `size` bytes after the log's end, with `records` records each.
  void append(Log& log, std::size_t count, std::size_t size, Term term = Term(1),
              std::uint32_t records = 1) {
    Batch b = Batch::make(log.last_index() + 1, log.next_offset(), term, count, size,
                          1000 + static_cast<std::int64_t>(log.last_index().value()), records);
    ASSERT_TRUE(log.append(b.entries).is_ok());
  }
};

TEST_P(LogTest, FreshLogIsEmpty) {
  auto log = open_log();
  EXPECT_EQ(log->first_index(), LogIndex(1));
  EXPECT_EQ(log->last_index(), LogIndex(0));
  EXPECT_EQ(log->next_offset(), KafkaOffset(0));
  EXPECT_EQ(log->term(LogIndex(1)).status().code(), ErrorCode::kOutOfRange);
  EXPECT_TRUE(log->read(LogIndex(1), LogIndex(1), 100).value().empty());
}

TEST_P(LogTest, AppendReadAndReopen) {
  auto log = open_log();
  append(*log, 50, 700, Term(1), 3);
  EXPECT_EQ(log->last_index(), LogIndex(50));
  EXPECT_EQ(log->next_offset(), KafkaOffset(150));
  EXPECT_LT(log->synced_index(), LogIndex(50));  // not synced yet... unless rolled
  ASSERT_TRUE(log->sync().is_ok());
  EXPECT_EQ(log->durable_index(), LogIndex(50));
  expect_entries(*log, LogIndex(1), LogIndex(51));
  EXPECT_GT(log->segments().size(), 1u);  // 35 KiB over 16 KiB segments
  log.reset();
  log = open_log();
  EXPECT_EQ(log->last_index(), LogIndex(50));
  EXPECT_EQ(log->next_offset(), KafkaOffset(150));
  expect_entries(*log, LogIndex(1), LogIndex(51));
  append(*log, 1, 10);
  EXPECT_EQ(log->last_index(), LogIndex(51));
}

TEST_P(LogTest, ClosedSegmentsHaveIndexFilesAndTheTailDoesNot) {
  auto log = open_log();
  append(*log, 60, 500);
  auto segments = log->segments();
  ASSERT_GE(segments.size(), 2u);
  for (std::size_t k = 0; k + 1 < segments.size(); ++k) {
    EXPECT_TRUE(segments[k].closed);
    std::string stem = join_path(dir_, segment_format::file_stem(segments[k].base_index));
    EXPECT_TRUE(fs_->exists(stem + ".index").value());
    EXPECT_TRUE(fs_->exists(stem + ".timeindex").value());
    EXPECT_GT(segments[k].index_entries, 5u);  // sparse: one per KiB
    EXPECT_LT(segments[k].index_entries, 20u);
  }
  EXPECT_FALSE(segments.back().closed);
  std::string tail_stem = join_path(dir_, segment_format::file_stem(segments.back().base_index));
  EXPECT_FALSE(fs_->exists(tail_stem + ".index").value());
}

TEST_P(LogTest, RollsByAgeFromTheInjectedClock) {
  options_.segment_size_bytes_max = 1 << 20;
  options_.segment_age_ms_max = 1000;
  auto log = open_log();
  append(*log, 3, 100);
  clock_.advance_ms(999);
  append(*log, 1, 100);
  EXPECT_EQ(log->segments().size(), 1u);
  clock_.advance_ms(1);
  append(*log, 1, 100);
  EXPECT_EQ(log->segments().size(), 2u);
  EXPECT_EQ(log->segments()[1].base_index, LogIndex(5));
}

TEST_P(LogTest, LookupByOffsetMatchesBruteForce) {
  auto log = open_log();
  Prng prng(11);
  std::vector<std::pair<KafkaOffset, KafkaOffset>> ranges;  // per index-1
  for (int i = 0; i < 120; ++i) {
    auto records = static_cast<std::uint32_t>(prng.range(1, 5));
    KafkaOffset base = log->next_offset() + prng.uniform(3);  // gaps are allowed
    Buffer payload = make_payload(log->last_index() + 1, Term(1), prng.range(50, 600));
    AppendEntry e{Term(1), log->last_index() + 1, EntryKind::kRecordBatch, base, records - 1,
                  1000 + i, payload.view()};
    ASSERT_TRUE(log->append(std::span(&e, 1)).is_ok());
    ranges.push_back({base, base + (records - 1)});
  }
  for (int pass = 0; pass < 2; ++pass) {
    for (std::int64_t o = 0; o < log->next_offset().value(); ++o) {
      auto found = log->lookup_offset(KafkaOffset(o));
      ASSERT_TRUE(found.has_value()) << found.status().to_string();
      ASSERT_TRUE(found->has_value());
      std::size_t expect = 0;
      while (ranges[expect].second < KafkaOffset(o)) ++expect;
      EXPECT_EQ((*found)->index, LogIndex(expect + 1)) << "offset " << o;
    }
    EXPECT_FALSE(log->lookup_offset(log->next_offset()).value().has_value());
    ASSERT_TRUE(log->sync().is_ok());
    log.reset();
    log = open_log();  // second pass: closed segments answer from their index files
  }
}

TEST_P(LogTest, LookupByTimestampMatchesBruteForce) {
  auto log = open_log();
  Prng prng(5);
  std::vector<std::int64_t> stamps;
  for (int i = 0; i < 150; ++i) {
    std::int64_t ts = 10'000 + static_cast<std::int64_t>(i) * 10 - static_cast<std::int64_t>(prng.uniform(40));
    Buffer payload = make_payload(log->last_index() + 1, Term(1), prng.range(50, 400));
    AppendEntry e{Term(1), log->last_index() + 1, EntryKind::kRecordBatch, log->next_offset(), 0,
                  ts, payload.view()};
    ASSERT_TRUE(log->append(std::span(&e, 1)).is_ok());
    stamps.push_back(ts);
  }
  for (std::int64_t t = 9'900; t < 11'600; t += 7) {
    auto found = log->lookup_timestamp(t);
    ASSERT_TRUE(found.has_value()) << found.status().to_string();
    auto it = std::find_if(stamps.begin(), stamps.end(), [&](std::int64_t s) { return s >= t; });
    if (it == stamps.end()) {
      EXPECT_FALSE(found->has_value());
    } else {
      ASSERT_TRUE(found->has_value()) << t;
      EXPECT_EQ((*found)->index, LogIndex(static_cast<std::uint64_t>(it - stamps.begin()) + 1)) << t;
    }
  }
}

TEST_P(LogTest, TermsAndByteLimitedReads) {
  auto log = open_log();
  append(*log, 10, 300, Term(1));
  append(*log, 10, 300, Term(2));
  append(*log, 10, 300, Term(5));
  EXPECT_EQ(log->term(LogIndex(1)).value(), Term(1));
  EXPECT_EQ(log->term(LogIndex(15)).value(), Term(2));
  EXPECT_EQ(log->term(LogIndex(30)).value(), Term(5));
  EXPECT_EQ(log->term(LogIndex(31)).status().code(), ErrorCode::kOutOfRange);
  auto some = log->read(LogIndex(5), LogIndex(31), 3 * (300 + 56)).value();
  ASSERT_EQ(some.size(), 3u);
  EXPECT_EQ(some[0].header.index, LogIndex(5));
  auto one = log->read(LogIndex(7), LogIndex(31), 1).value();  // at least one entry
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(log->read(LogIndex(0), LogIndex(3), 10).status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(log->read(LogIndex(3), LogIndex(32), 10).status().code(), ErrorCode::kOutOfRange);
}

TEST_P(LogTest, AppendRejectsInvalidEntries) {
  auto log = open_log();
  append(*log, 3, 100, Term(2));
  Buffer p(as_bytes("x"));
  AppendEntry gap{Term(2), LogIndex(5), EntryKind::kRecordBatch, KafkaOffset(10), 0, 0, p.view()};
  EXPECT_EQ(log->append(std::span(&gap, 1)).code(), ErrorCode::kInvalidArgument);
  AppendEntry old_term{Term(1), LogIndex(4), EntryKind::kRecordBatch, KafkaOffset(10), 0, 0, p.view()};
  EXPECT_EQ(log->append(std::span(&old_term, 1)).code(), ErrorCode::kInvalidArgument);
  AppendEntry offset_back{Term(2), LogIndex(4), EntryKind::kRecordBatch, KafkaOffset(2), 0, 0, p.view()};
  EXPECT_EQ(log->append(std::span(&offset_back, 1)).code(), ErrorCode::kInvalidArgument);
  Buffer big(options_.entry_payload_bytes_max + 1);
  AppendEntry too_big{Term(2), LogIndex(4), EntryKind::kRecordBatch, KafkaOffset(3), 0, 0, big.view()};
  EXPECT_EQ(log->append(std::span(&too_big, 1)).code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(log->last_index(), LogIndex(3));
  AppendEntry noop{Term(3), LogIndex(4), EntryKind::kRaftNoop, KafkaOffset(3), 0, 0, p.view()};
  EXPECT_TRUE(log->append(std::span(&noop, 1)).is_ok());
  EXPECT_EQ(log->read(LogIndex(4), LogIndex(5), 100).value()[0].header.kind, EntryKind::kRaftNoop);
}

TEST_P(LogTest, TruncateSuffixInsideAndAtSegmentBoundaries) {
  auto log = open_log();
  append(*log, 60, 500, Term(1));
  auto segments = log->segments();
  ASSERT_GE(segments.size(), 3u);
  // Inside the tail.
  ASSERT_TRUE(log->truncate_suffix(LogIndex(59)).is_ok());
  EXPECT_EQ(log->last_index(), LogIndex(58));
  // Exactly at a segment boundary: the segment goes, the previous one becomes the tail.
  LogIndex boundary = segments[2].base_index;
  ASSERT_TRUE(log->truncate_suffix(boundary).is_ok());
  EXPECT_EQ(log->last_index(), boundary - 1);
  EXPECT_EQ(log->segments().size(), 2u);
  EXPECT_FALSE(log->segments().back().closed);
  // Inside a closed segment.
  LogIndex inside = segments[0].base_index + 5;
  ASSERT_TRUE(log->truncate_suffix(inside).is_ok());
  EXPECT_EQ(log->last_index(), inside - 1);
  EXPECT_EQ(log->next_offset(), KafkaOffset(static_cast<std::int64_t>(inside.value()) - 1));
  append(*log, 40, 500, Term(2));
  expect_entries(*log, LogIndex(1), inside, Term(1));
  expect_entries(*log, inside, log->last_index() + 1, Term(2));
  ASSERT_TRUE(log->sync().is_ok());
  LogIndex last = log->last_index();
  log.reset();
  log = open_log();
  EXPECT_EQ(log->last_index(), last);
  expect_entries(*log, inside, last + 1, Term(2));
  EXPECT_EQ(log->truncate_suffix(LogIndex(0)).code(), ErrorCode::kOutOfRange);
  ASSERT_TRUE(log->truncate_suffix(LogIndex(1)).is_ok());
  EXPECT_EQ(log->last_index(), LogIndex(0));
  EXPECT_EQ(log->next_offset(), KafkaOffset(0));
}

TEST_P(LogTest, RemovePrefixAndRetention) {
  auto log = open_log();
  append(*log, 80, 500);
  ASSERT_TRUE(log->remove_prefix(LogIndex(10)).is_ok());
  EXPECT_EQ(log->first_index(), LogIndex(10));
  EXPECT_EQ(log->start_offset(), KafkaOffset(9));
  EXPECT_EQ(log->read(LogIndex(9), LogIndex(10), 10).status().code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(log->lookup_offset(KafkaOffset(3)).status().code(), ErrorCode::kOutOfRange);
  expect_entries(*log, LogIndex(10), LogIndex(81));
  std::size_t before = log->segments().size();
  RetentionPolicy by_bytes;
  by_bytes.bytes_max = 20 << 10;
  LogIndex first = log->apply_retention(by_bytes).value();
  EXPECT_GT(first, LogIndex(10));
  EXPECT_LT(log->segments().size(), before);
  EXPECT_GE(log->size_bytes(), 20u << 10);
  expect_entries(*log, first, LogIndex(81));
  // Age: every closed segment is old, the tail is kept.
  clock_.advance_ms(10'000'000);
  RetentionPolicy by_age;
  by_age.age_ms_max = 1000;
  by_age.removable_below = LogIndex(75);
  first = log->apply_retention(by_age).value();
  EXPECT_LE(first, LogIndex(75));
  log.reset();
  log = open_log();
  EXPECT_EQ(log->first_index(), first);
  expect_entries(*log, first, LogIndex(81));
  ASSERT_TRUE(log->remove_prefix(LogIndex(81)).is_ok());  // everything
  EXPECT_EQ(log->last_index(), LogIndex(80));
  EXPECT_EQ(log->next_offset(), KafkaOffset(80));
  append(*log, 2, 100);
  expect_entries(*log, LogIndex(81), LogIndex(83));
}

TEST_P(LogTest, ResetStartsOverAtTheGivenPlace) {
  auto log = open_log();
  append(*log, 30, 500);
  ASSERT_TRUE(log->reset(LogIndex(1000), KafkaOffset(5000)).is_ok());
  EXPECT_EQ(log->first_index(), LogIndex(1000));
  EXPECT_EQ(log->last_index(), LogIndex(999));
  EXPECT_EQ(log->next_offset(), KafkaOffset(5000));
  append(*log, 5, 100, Term(4));
  log.reset();
  log = open_log();
  EXPECT_EQ(log->first_index(), LogIndex(1000));
  expect_entries(*log, LogIndex(1000), LogIndex(1005), Term(4));
}

TEST_P(LogTest, FileSliceCoversThePayloads) {
  auto log = open_log();
  append(*log, 40, 700, Term(1), 2);
  auto slice = log->file_slice(KafkaOffset(21), LogIndex(41), 2000);
  ASSERT_TRUE(slice.has_value()) << slice.status().to_string();
  EXPECT_EQ(slice->first_index, LogIndex(11));  // offsets 20..21
  EXPECT_EQ(slice->first_offset, KafkaOffset(20));
  ASSERT_EQ(slice->extents.size(), 2u);
  EXPECT_EQ(slice->total_bytes, 1400u);
  for (std::size_t i = 0; i < slice->extents.size(); ++i) {
    Buffer got(slice->extents[i].length);
    ASSERT_EQ(slice->file->read_at(slice->extents[i].position, std::span(got.data(), got.size())).value(),
              got.size());
    EXPECT_TRUE(equal_bytes(got, make_payload(slice->first_index + i, Term(1), 700)));
  }
  EXPECT_EQ(slice->fd >= 0, GetParam());
  EXPECT_EQ(log->file_slice(KafkaOffset(21), LogIndex(11), 2000).status().code(),
            ErrorCode::kOutOfRange);
}

// Lookups read entry headers through a small window (kLookupWindowBytes, 8 KiB): entries
// larger than the window, runs of tiny entries between two index points, and headers that
// straddle a window's end must all be found, in the tail segment (index in memory) and in
// closed ones (index files), by offset (file_slice, lookup_offset) and by index (read, term).
TEST_P(LogTest, LookupsFindEveryEntryAroundTheReadWindow) {
  options_.segment_size_bytes_max = 256 << 10;
  options_.index_interval_bytes = 4096;
  auto log = open_log();
  struct Run { std::size_t count, size; std::uint32_t records; };
  const Run runs[] = {{3, 20000, 3}, {200, 30, 1}, {2, 12000, 2}, {150, 100, 2}, {1, 9000, 1},
                      {40, 8150, 1}, {60, 50, 3}};
  for (const Run& r : runs) append(*log, r.count, r.size, Term(1), r.records);
  const LogIndex last = log->last_index();
  const KafkaOffset end = log->next_offset();
  auto check_all = [&] {
    for (KafkaOffset o(0); o < end; o = o + 1) {
      auto slice = log->file_slice(o, last + 1, 1);
      ASSERT_TRUE(slice.has_value()) << o.value() << ": " << slice.status().to_string();
      ASSERT_EQ(slice->extents.size(), 1u) << o.value();
      ASSERT_LE(slice->first_offset, o);
      ASSERT_GE(slice->last_offset, o);
      auto ref = log->lookup_offset(o);
      ASSERT_TRUE(ref.has_value() && ref->has_value()) << o.value();
      ASSERT_EQ((*ref)->index, slice->first_index) << o.value();
      auto entries = log->read(slice->first_index, slice->first_index + 1, UINT64_MAX);
      ASSERT_TRUE(entries.has_value() && entries->size() == 1) << o.value();
      const ReadEntry& e = entries->front();
      ASSERT_EQ(e.header.base_offset, slice->first_offset);
      ASSERT_EQ(e.payload.size(), slice->extents[0].length);
      Buffer got(slice->extents[0].length);
      ASSERT_EQ(slice->file->read_at(slice->extents[0].position, std::span(got.data(), got.size()))
                    .value(),
                got.size());
      ASSERT_TRUE(equal_bytes(got, make_payload(slice->first_index, Term(1), got.size())))
          << o.value();
    }
    for (LogIndex i(1); i <= last; i = i + 1) ASSERT_EQ(log->term(i).value(), Term(1));
  };
  check_all();
  log.reset();
  log = open_log();  // every segment but the last is closed: its index is read from its file
  check_all();
}

INSTANTIATE_TEST_SUITE_P(FileSystems, LogTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Posix" : "Memory"; });

}  // namespace
}  // namespace mq::storage

namespace mq::storage {
namespace {

// Direct appends (O_DIRECT on the real file system where it allows it) interleaved with
// buffered ones and truncations: reads always see exactly what was appended, the tail file
// holds at most zero padding after its last entry, closed segments none, and a reopen cuts
// the padding.
TEST_P(LogTest, DirectAppendsMixWithBufferedOnesAndClosedSegmentsAreTrimmed) {
  options_.segment_size_bytes_max = 48 << 10;
  options_.direct_append_min_bytes = 2000;
  options_.write_buffer_bytes = 0;  // each direct append written at once (log_write_buffer_test.cc)
  options_.zero_fill_window_bytes = 0;  // with pre-written space a reopen keeps zeros (zero_fill_test.cc)
  auto log = open_log();
  ASSERT_NE(log, nullptr);
  Prng prng(77);
  auto file_size = [&](LogIndex base) {
    auto file = fs_->open(join_path(dir_, segment_format::file_stem(base) + ".log"), {}).value();
    return file->size().value();
  };
  for (int round = 0; round < 120; ++round) {
    std::uint64_t what = prng.uniform(10);
    if (what < 4) {
      append(*log, 1, prng.range(1, 900));  // buffered
    } else if (what < 9) {
      append(*log, prng.range(1, 3), prng.range(2000, 5000));  // direct
    } else if (log->last_index() > log->first_index() + 2) {
      ASSERT_TRUE(log->truncate_suffix(log->last_index() - prng.uniform(3)).is_ok());
    }
    if (prng.chance(1, 4)) {
      ASSERT_TRUE(log->sync().is_ok());
    }
    auto segments = log->segments();
    for (const SegmentSummary& s : segments) {
      std::uint64_t size = file_size(s.base_index);
      if (s.closed) {
        EXPECT_EQ(size, s.size_bytes) << "closed segment " << s.base_index << " round " << round;
      } else {
        EXPECT_GE(size, s.size_bytes);
        EXPECT_LT(size, s.size_bytes + kDirectIoAlignment);
      }
    }
  }
  ASSERT_GE(log->segments().size(), 3u);
  expect_entries(*log, log->first_index(), log->last_index() + 1);
  LogIndex last = log->last_index();
  ASSERT_TRUE(log->sync().is_ok());
  log.reset();
  log = open_log();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->last_index(), last);
  expect_entries(*log, log->first_index(), log->last_index() + 1);
  auto tail = log->segments().back();
  EXPECT_EQ(file_size(tail.base_index), tail.size_bytes);
  append(*log, 2, 3000);
  expect_entries(*log, log->first_index(), log->last_index() + 1);
}

}  // namespace
}  // namespace mq::storage
