// AppendEntry::head (segment.h): the stored payload is the head followed by the payload's bytes
// after it, on every write path of the segment (page-cache writes, direct writes, the
// write-behind buffer and its path for entries larger than the buffer), with a payload
// checksum that a reopen verifies.
#include <gtest/gtest.h>

#include <vector>

#include "storage/log.h"
#include "storage/log_fixture.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::make_payload;

enum class WritePath { kPageCache, kDirect, kBuffered };

class LogAppendHeadTest : public testing::LogFixture {
 protected:
  // A fresh directory for each write path.
  void configure(WritePath path) {
    options_.directory = dir_ + "/path" + std::to_string(static_cast<int>(path));
    options_.segment_size_bytes_max = 1 << 20;
    options_.index_interval_bytes = 1024;
    options_.direct_write_depth = 1;
    switch (path) {
      case WritePath::kPageCache:
        options_.direct_append_min_bytes = 0;
        options_.write_buffer_bytes = 0;
        break;
      case WritePath::kDirect:
        options_.direct_append_min_bytes = 2000;
        options_.write_buffer_bytes = 0;
        break;
      case WritePath::kBuffered:
        options_.direct_append_min_bytes = 2000;
        options_.write_buffer_bytes = 8 << 10;
        break;
    }
  }

  // What entry `index` of `size` bytes stores when its head is `head_size` bytes long.
  static Buffer head_of(LogIndex index, std::size_t head_size) {
    Buffer head = make_payload(index, Term(77), head_size);
    return head;
  }
  static Buffer stored(LogIndex index, std::size_t size, std::size_t head_size) {
    Buffer bytes = make_payload(index, Term(1), size);
    Buffer head = head_of(index, head_size);
    std::copy(head.view().begin(), head.view().end(), bytes.data());
    return bytes;
  }

  // Appends one call of entries with these (size, head size) pairs.
  Status append(Log& log, const std::vector<std::pair<std::size_t, std::size_t>>& shapes) {
    std::vector<Buffer> payloads;
    std::vector<Buffer> heads;
    std::vector<AppendEntry> entries;
    payloads.reserve(shapes.size());
    heads.reserve(shapes.size());
    KafkaOffset offset = log.next_offset();
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      LogIndex index = log.last_index() + 1 + i;
      payloads.push_back(make_payload(index, Term(1), shapes[i].first));
      heads.push_back(head_of(index, shapes[i].second));
      AppendEntry e;
      e.term = Term(1);
      e.index = index;
      e.base_offset = offset + i;
      e.payload = payloads.back().view();
      e.head = heads.back().view();
      entries.push_back(e);
    }
    return log.append(entries);
  }

  void expect_stored(Log& log, const std::vector<std::pair<std::size_t, std::size_t>>& shapes) {
    auto entries = log.read(LogIndex(1), log.last_index() + 1, UINT64_MAX);
    ASSERT_TRUE(entries.has_value()) << entries.status().to_string();
    ASSERT_EQ(entries->size(), shapes.size());
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const ReadEntry& e = (*entries)[i];
      ASSERT_EQ(e.header.index, LogIndex(1 + i));
      EXPECT_TRUE(equal_bytes(e.payload, stored(e.header.index, shapes[i].first, shapes[i].second)))
          << "entry " << e.header.index << " (" << shapes[i].first << " bytes, head "
          << shapes[i].second << ")";
    }
  }
};

constexpr WritePath kPaths[] = {WritePath::kPageCache, WritePath::kDirect, WritePath::kBuffered};

// Small and large entries, with a batch header's head, no head, and a head as long as the
// payload: read back before and after a sync, and after a reopen (which re-checks every
// payload's checksum of the tail segment).
TEST_P(LogAppendHeadTest, StoredPayloadIsTheHeadThenTheRestOnEveryWritePath) {
  const std::vector<std::vector<std::pair<std::size_t, std::size_t>>> calls = {
      {{61, 61}},
      {{1024, 61}, {300, 0}, {5000, 61}},
      {{40000, 61}},  // beyond the write-behind buffer's parts: its header-first path
      {{3000, 16}, {100, 100}, {70000, 61}, {62, 61}},
  };
  for (WritePath path : kPaths) {
    SCOPED_TRACE("write path " + std::to_string(static_cast<int>(path)));
    configure(path);
    std::vector<std::pair<std::size_t, std::size_t>> all;
    {
      auto log = open_log();
      ASSERT_NE(log, nullptr);
      for (const auto& shapes : calls) {
        Status appended = append(*log, shapes);
        ASSERT_TRUE(appended.is_ok()) << appended.to_string();
        all.insert(all.end(), shapes.begin(), shapes.end());
        expect_stored(*log, all);
      }
      ASSERT_TRUE(log->sync().is_ok());
      expect_stored(*log, all);
    }
    auto reopened = open_log();
    ASSERT_NE(reopened, nullptr);
    ASSERT_EQ(reopened->last_index(), LogIndex(all.size()));
    expect_stored(*reopened, all);
  }
}

TEST_P(LogAppendHeadTest, AHeadLongerThanThePayloadIsRefusedAndChangesNothing) {
  for (WritePath path : kPaths) {
    SCOPED_TRACE("write path " + std::to_string(static_cast<int>(path)));
    configure(path);
    auto log = open_log();
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(append(*log, {{500, 61}}).is_ok());
    Status refused = append(*log, {{200, 61}, {60, 61}});
    EXPECT_EQ(refused.code(), ErrorCode::kInvalidArgument) << refused.to_string();
    EXPECT_EQ(log->last_index(), LogIndex(1));
    expect_stored(*log, {{500, 61}});
  }
}

INSTANTIATE_TEST_SUITE_P(FileSystems, LogAppendHeadTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Posix" : "Memory"; });

}  // namespace
}  // namespace mq::storage
