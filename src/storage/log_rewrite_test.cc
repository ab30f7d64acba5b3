// Log::rewrite_segment: payloads change, indexes/terms/offsets never; crash-safe at every step.
#include <gtest/gtest.h>

#include "storage/log.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

constexpr const char* kDir = "/data/offsets";

LogOptions rewrite_options() {
  LogOptions options;
  options.directory = kDir;
  options.name = "__consumer_offsets-0";
  options.segment_size_bytes_max = 8 << 10;
  options.index_interval_bytes = 256;
  return options;
}

void build(MemoryFileSystem& fs, ManualClock& clock) {
  auto log = Log::open(&fs, &clock, rewrite_options()).value();
  for (int i = 0; i < 60; ++i) {
    Batch b = Batch::make(log->last_index() + 1, log->next_offset(), Term(1 + i / 20), 1,
                          100 + (i * 53) % 300, 5000 + i, /*records=*/3);
    ASSERT_TRUE(log->append(b.entries).is_ok());
  }
  ASSERT_TRUE(log->sync().is_ok());
  ASSERT_GE(log->segments().size(), 3u);
}

// Empties every third entry, replaces the next one, keeps the rest.
Result<RewriteDecision> compact(const EntryHeader& h, BufferView) {
  RewriteDecision d;
  if (h.index.value() % 3 == 0) d.action = RewriteDecision::Action::kEmpty;
  if (h.index.value() % 3 == 1) {
    d.action = RewriteDecision::Action::kReplace;
    d.replacement = make_payload(h.index, Term(99), 40);
  }
  return d;
}

bool is_compacted(const ReadEntry& e) {
  switch (e.header.index.value() % 3) {
    case 0: return e.payload.size() == 0;
    case 1: return equal_bytes(e.payload, make_payload(e.header.index, Term(99), 40));
    default: return equal_bytes(e.payload, make_payload(e.header.index, e.header.term, e.payload.size()));
  }
}
bool is_original(const ReadEntry& e) {
  return equal_bytes(e.payload, make_payload(e.header.index, e.header.term, e.payload.size())) &&
         e.payload.size() >= 100;
}

TEST(LogRewriteTest, RewritesPayloadsAndKeepsIndexesTermsOffsetsAndLookups) {
  MemoryFileSystem fs;
  ManualClock clock;
  build(fs, clock);
  auto log = Log::open(&fs, &clock, rewrite_options()).value();
  auto before = log->read(log->first_index(), log->last_index() + 1, UINT64_MAX).value();
  SegmentSummary first = log->segments()[0];
  ASSERT_TRUE(log->rewrite_segment(first.base_index, log->last_index() + 1, compact).is_ok());
  SegmentSummary rewritten = log->segments()[0];
  EXPECT_LT(rewritten.size_bytes, first.size_bytes);
  EXPECT_EQ(rewritten.last_index, first.last_index);
  EXPECT_TRUE(rewritten.closed);
  EXPECT_TRUE(fs.exists(join_path(kDir, segment_format::file_stem(first.base_index) + ".index")).value());
  for (int pass = 0; pass < 2; ++pass) {  // live, then after a reopen
    auto after = log->read(log->first_index(), log->last_index() + 1, UINT64_MAX).value();
    ASSERT_EQ(after.size(), before.size());
    for (std::size_t i = 0; i < after.size(); ++i) {
      const EntryHeader& a = after[i].header;
      const EntryHeader& b = before[i].header;
      EXPECT_EQ(a.index, b.index);
      EXPECT_EQ(a.term, b.term);
      EXPECT_EQ(a.base_offset, b.base_offset);
      EXPECT_EQ(a.last_offset_delta, b.last_offset_delta);
      EXPECT_EQ(a.max_timestamp, b.max_timestamp);
      if (a.index <= first.last_index) {
        EXPECT_TRUE(is_compacted(after[i])) << "entry " << a.index;
      } else {
        EXPECT_TRUE(is_original(after[i])) << "entry " << a.index;
      }
      auto ref = log->lookup_offset(b.base_offset + 1).value();
      ASSERT_TRUE(ref.has_value());
      EXPECT_EQ(ref->index, b.index);
    }
    log.reset();
    log = Log::open(&fs, &clock, rewrite_options()).value();
  }
}

TEST(LogRewriteTest, RefusesTheTailUnknownSegmentsAndSegmentsNotBelowTheBound) {
  MemoryFileSystem fs;
  ManualClock clock;
  build(fs, clock);
  auto log = Log::open(&fs, &clock, rewrite_options()).value();
  auto segments = log->segments();
  EXPECT_EQ(log->rewrite_segment(segments.back().base_index, LogIndex::max(), compact).code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(log->rewrite_segment(segments[0].base_index + 1, LogIndex::max(), compact).code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(log->rewrite_segment(segments[0].base_index, segments[0].last_index, compact).code(),
            ErrorCode::kInvalidArgument);
  auto failing = [](const EntryHeader&, BufferView) -> Result<RewriteDecision> {
    return Status::invalid_argument("transform refused");
  };
  EXPECT_EQ(log->rewrite_segment(segments[0].base_index, LogIndex::max(), failing).code(),
            ErrorCode::kInvalidArgument);
  // Nothing changed, no temp file left.
  auto all = log->read(log->first_index(), log->last_index() + 1, UINT64_MAX).value();
  for (const ReadEntry& e : all) EXPECT_TRUE(is_original(e));
  std::vector<std::string> names = fs.list(kDir).value();
  for (const std::string& name : names) EXPECT_FALSE(name.ends_with(".tmp")) << name;
}

// A crash (clean or adversarial) after the k-th sync of the rewrite, for every k: the log
// opens, the segment is entirely old or entirely new, and every other entry is intact.
TEST(LogRewriteTest, ACrashAtAnyStepLeavesTheOldSegmentOrTheNewOne) {
  ManualClock clock;
  Prng prng(5);
  int saw_old = 0, saw_new = 0;
  for (int successful_syncs = 0; successful_syncs < 8; ++successful_syncs) {
    for (int variant = 0; variant < 3; ++variant) {
      MemoryFileSystem fs;
      build(fs, clock);
      LogIndex base;
      {
        auto log = Log::open(&fs, &clock, rewrite_options()).value();
        base = log->segments()[0].base_index;
        fs.fail_sync_after(successful_syncs);
        (void)log->rewrite_segment(base, log->last_index() + 1, compact);
      }
      fs.fail_next_syncs(0);
      fs.fail_sync_after(-1);
      fs.crash(variant == 0 ? nullptr : &prng, variant == 2);
      auto log = Log::open(&fs, &clock, rewrite_options());
      ASSERT_TRUE(log.has_value()) << "syncs " << successful_syncs << ": " << log.error().to_string();
      auto all = (*log)->read((*log)->first_index(), (*log)->last_index() + 1, UINT64_MAX);
      ASSERT_TRUE(all.has_value()) << all.error().to_string();
      ASSERT_EQ(all->size(), 60u);
      LogIndex segment_last = (*log)->segments()[0].last_index;
      bool all_new = true, all_old = true;
      for (const ReadEntry& e : *all) {
        if (e.header.index <= segment_last) {
          all_new = all_new && is_compacted(e);
          all_old = all_old && is_original(e);
        } else {
          EXPECT_TRUE(is_original(e)) << "entry " << e.header.index;
        }
      }
      EXPECT_TRUE(all_new != all_old) << "a mix after " << successful_syncs << " syncs";
      saw_new += all_new;
      saw_old += all_old;
      std::vector<std::string> names = fs.list(kDir).value();
  for (const std::string& name : names) EXPECT_FALSE(name.ends_with(".tmp")) << name;
    }
  }
  EXPECT_GT(saw_old, 0);
  EXPECT_GT(saw_new, 0);
}

}  // namespace
}  // namespace mq::storage
