// The read cache (read_cache.h): written parts of a leader's log kept in memory for readers.
// The cache alone (exchange, lookups, budget, eviction order, blocks still referenced, memory
// pressure), then logs that use it: every read and file slice returns the bytes of the
// entries as appended last, through truncations (a cut must never leave stale bytes to be
// read), rolls and retention, and a log that does not ask for the cache hands nothing over.
#include "storage/read_cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "storage/log.h"
#include "storage/log_fixture.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::Batch;
using testing::make_payload;

constexpr std::size_t kBlock = 64 << 10;

std::uint64_t g_available = 0;
std::uint64_t g_total = 0;
bool fake_memory(std::uint64_t* available, std::uint64_t* total) {
  *available = g_available;
  *total = g_total;
  return true;
}

class ReadCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_available = 8ull << 30;
    g_total = 16ull << 30;
    cache().set_budget_bytes(0);  // clears what an earlier test left
    cache().set_memory_source(&fake_memory);
    cache().set_grow_inline(true);
    base_ = cache().stats();  // the counters are the process's: tests look at their changes
  }
  void TearDown() override {
    cache().set_budget_bytes(0);
    cache().set_memory_source(nullptr);
    cache().set_grow_inline(false);
  }
  static ReadCache& cache() { return ReadCache::instance(); }
  ReadCacheStats base_;

  // A block filled with bytes that depend on (key, start).
  static std::shared_ptr<AlignedBlock> filled(std::uint64_t key, std::uint64_t start) {
    auto block = AlignedBlock::allocate(kBlock);
    for (std::size_t i = 0; i < kBlock; ++i) block->data()[i] = byte_at(key, start + i);
    return block;
  }
  static std::uint8_t byte_at(std::uint64_t key, std::uint64_t position) {
    return static_cast<std::uint8_t>((position * 31 + key * 7) >> 3);
  }
  static void expect_bytes(std::uint64_t key, std::uint64_t position, const SharedBuffer& b) {
    for (std::size_t i = 0; i < b.size(); ++i) {
      ASSERT_EQ(b.data()[i], byte_at(key, position + i)) << "byte " << i;
    }
  }
};

TEST_F(ReadCacheTest, OffWithoutABudget) {
  std::uint64_t key = ReadCache::new_key();
  auto block = filled(key, 0);
  AlignedBlock* given = block.get();
  auto back = cache().exchange(key, 0, kBlock, std::move(block));
  EXPECT_EQ(back.get(), given);  // nothing kept: the ring goes on with its own block
  EXPECT_FALSE(cache().find(key, 0, 100).has_value());
  EXPECT_EQ(cache().stats().kept, base_.kept);
}

// A kept block is found without a copy when one block holds the range, copied across two
// contiguous blocks, and not at all across a gap or beyond the cached bytes.
TEST_F(ReadCacheTest, FindsWhatItKeeps) {
  cache().set_budget_bytes(8 * kBlock);
  std::uint64_t key = ReadCache::new_key();
  auto a = filled(key, 0);
  const std::uint8_t* a_data = a->data();
  auto back = cache().exchange(key, 0, kBlock, std::move(a));
  ASSERT_NE(back, nullptr);
  EXPECT_NE(back->data(), a_data);  // a fresh block for the ring
  EXPECT_EQ(back->capacity(), kBlock);
  cache().exchange(key, kBlock, kBlock, filled(key, kBlock));
  cache().exchange(key, 3 * kBlock, kBlock, filled(key, 3 * kBlock));  // a gap before it

  auto one = cache().find(key, 100, 5000);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->data(), a_data + 100);  // shared, not copied
  expect_bytes(key, 100, *one);
  auto across = cache().find(key, kBlock - 10, 30);
  ASSERT_TRUE(across.has_value());
  expect_bytes(key, kBlock - 10, *across);
  EXPECT_FALSE(cache().find(key, 2 * kBlock - 10, 30).has_value());     // into the gap
  EXPECT_FALSE(cache().find(key, 4 * kBlock - 10, 30).has_value());     // beyond the end
  EXPECT_FALSE(cache().find(ReadCache::new_key(), 0, 10).has_value());  // another segment
  std::uint8_t out[40];
  ASSERT_TRUE(cache().copy_out(key, 3 * kBlock + 7, out));
  for (std::size_t i = 0; i < sizeof out; ++i) ASSERT_EQ(out[i], byte_at(key, 3 * kBlock + 7 + i));
  EXPECT_FALSE(cache().copy_out(key, 2 * kBlock, out));
  EXPECT_EQ(cache().stats().blocks, 3u);
  EXPECT_EQ(cache().stats().cached_bytes, 3 * kBlock);
}

// Full: the oldest block (of any segment) goes, and is the ring's next block (no allocation).
TEST_F(ReadCacheTest, EvictsTheOldestAndRecyclesIt) {
  cache().set_budget_bytes(2 * kBlock);
  std::uint64_t k1 = ReadCache::new_key(), k2 = ReadCache::new_key();
  auto first = filled(k1, 0);
  const std::uint8_t* first_data = first->data();
  cache().exchange(k1, 0, kBlock, std::move(first));
  cache().exchange(k2, 0, kBlock, filled(k2, 0));
  auto back = cache().exchange(k2, kBlock, kBlock, filled(k2, kBlock));
  EXPECT_EQ(back->data(), first_data);  // k1's block, recycled
  EXPECT_FALSE(cache().find(k1, 0, 10).has_value());
  EXPECT_TRUE(cache().find(k2, 0, 10).has_value());
  EXPECT_TRUE(cache().find(k2, kBlock, 10).has_value());
  ReadCacheStats s = cache().stats();
  EXPECT_EQ(s.cached_bytes, 2 * kBlock);
  EXPECT_EQ(s.recycled - base_.recycled, 1u);
  EXPECT_EQ(s.evicted - base_.evicted, 1u);
}

// A block a reader still holds (a response being sent) is evicted but never handed to a ring
// to be overwritten: the reader's bytes stay what they were.
TEST_F(ReadCacheTest, ABlockAReaderHoldsIsNeverRecycled) {
  cache().set_budget_bytes(kBlock);
  std::uint64_t key = ReadCache::new_key();
  cache().exchange(key, 0, kBlock, filled(key, 0));
  auto held = cache().find(key, 0, kBlock);
  ASSERT_TRUE(held.has_value());
  auto back = cache().exchange(key, kBlock, kBlock, filled(key, kBlock));
  EXPECT_NE(back->data(), held->data());
  std::memset(back->data(), 0xee, kBlock);  // the ring writes its new block
  expect_bytes(key, 0, *held);
  EXPECT_FALSE(cache().find(key, 0, 10).has_value());
  EXPECT_EQ(cache().stats().recycled, base_.recycled);
  EXPECT_EQ(cache().stats().cached_bytes, kBlock);
}

TEST_F(ReadCacheTest, DropsFromACutAndAll) {
  cache().set_budget_bytes(8 * kBlock);
  std::uint64_t key = ReadCache::new_key();
  for (std::uint64_t i = 0; i < 4; ++i)
    cache().exchange(key, i * kBlock, kBlock, filled(key, i * kBlock));
  cache().drop_from(key, 2 * kBlock + 1);  // the third block holds a cut byte: it goes too
  EXPECT_TRUE(cache().find(key, kBlock, kBlock).has_value());
  EXPECT_FALSE(cache().find(key, 2 * kBlock, 1).has_value());
  EXPECT_EQ(cache().stats().blocks, 2u);
  // Appends after the cut bring new bytes at the same positions: found, not the old ones.
  auto fresh = AlignedBlock::allocate(kBlock);
  std::memset(fresh->data(), 0x5a, kBlock);
  cache().exchange(key, 2 * kBlock, kBlock, std::move(fresh));
  auto b = cache().find(key, 2 * kBlock, 16);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->data()[0], 0x5a);
  cache().drop(key);
  EXPECT_EQ(cache().stats().blocks, 0u);
  EXPECT_EQ(cache().stats().cached_bytes, 0u);
  // Eviction passes over the dropped blocks' places in its order.
  cache().set_budget_bytes(kBlock);
  cache().exchange(key, 0, kBlock, filled(key, 0));
  cache().exchange(key, kBlock, kBlock, filled(key, kBlock));
  EXPECT_EQ(cache().stats().blocks, 1u);
  EXPECT_TRUE(cache().find(key, kBlock, 1).has_value());
}

// The machine's memory comes first: below 1/8 available the cache only recycles, below 1/16
// it gives blocks back and keeps nothing new.
TEST_F(ReadCacheTest, YieldsWhenTheMachineIsShortOfMemory) {
  cache().set_budget_bytes(64 * kBlock);
  std::uint64_t key = ReadCache::new_key();
  std::uint64_t at = 0;
  for (; at < 8 * kBlock; at += kBlock) cache().exchange(key, at, kBlock, filled(key, at));
  EXPECT_EQ(cache().stats().blocks, 8u);
  g_available = g_total / 10;               // short: no growth, recycling goes on
  cache().set_memory_source(&fake_memory);  // re-read at once
  for (int i = 0; i < 4; ++i, at += kBlock) cache().exchange(key, at, kBlock, filled(key, at));
  EXPECT_EQ(cache().stats().blocks, 8u);
  EXPECT_TRUE(cache().find(key, at - kBlock, kBlock).has_value());  // the newest kept
  g_available = g_total / 20;                                       // very short: gives back
  cache().set_memory_source(&fake_memory);
  auto block = filled(key, at);
  AlignedBlock* given = block.get();
  auto back = cache().exchange(key, at, kBlock, std::move(block));
  EXPECT_EQ(back.get(), given);
  EXPECT_EQ(cache().stats().blocks, 4u);
  EXPECT_GE(cache().stats().low_memory_refusals - base_.low_memory_refusals, 1u);
}

// By default the cache grows only with blocks its filler thread touched beforehand: until
// one is ready an offer is refused (nothing cached yet) or recycles the oldest block.
TEST_F(ReadCacheTest, GrowsWithBlocksTouchedAheadByTheFiller) {
  cache().set_grow_inline(false);
  cache().set_budget_bytes(8 * kBlock);
  std::uint64_t key = ReadCache::new_key();
  auto first = filled(key, 0);
  AlignedBlock* given = first.get();
  // The very first offer: no touched block is ready (the filler starts now).
  auto back = cache().exchange(key, 0, kBlock, std::move(first));
  bool ready = back.get() != given;
  for (int i = 0; i < 500 && !ready && cache().stats().fresh_bytes < kBlock; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(cache().stats().fresh_bytes + (ready ? kBlock : 0), kBlock)
      << "the filler touched no block in 5 s";
  std::uint64_t at = ready ? kBlock : 0;
  back = cache().exchange(key, at, kBlock, filled(key, at));
  EXPECT_TRUE(cache().find(key, at, kBlock).has_value());
  EXPECT_EQ(back->capacity(), kBlock);
  EXPECT_GE(cache().stats().filled - base_.filled, 1u);
  // Never more than the budget, touched blocks included.
  for (int i = 0; i < 200; ++i) {
    at += kBlock;
    cache().exchange(key, at, kBlock, filled(key, at));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ReadCacheStats s = cache().stats();
  EXPECT_LE(s.cached_bytes + s.fresh_bytes, 8 * kBlock);
  EXPECT_TRUE(cache().find(key, at, kBlock).has_value());  // the newest is kept
}

// The broker's defaults come from the environment; a value that is not a number is reported
// and the default used.
TEST(ReadCacheSettings, DefaultsComeFromTheEnvironment) {
  auto with = [](const char* name, const char* value, auto read) {
    const char* old = std::getenv(name);
    std::string saved = old != nullptr ? old : "";
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
    auto got = read();
    if (old != nullptr) {
      ::setenv(name, saved.c_str(), 1);
    } else {
      ::unsetenv(name);
    }
    return got;
  };
  auto mib = [&](const char* v) {
    return with("RAFTMQ_READ_CACHE_MIB", v, read_cache_default_mib);
  };
  auto pace = [&](const char* v) {
    return with("RAFTMQ_READ_CACHE_GROW_MIBS", v, read_cache_grow_bytes_per_s);
  };
  std::uint64_t machine = mib(nullptr);
  EXPECT_GT(machine, 0u);  // 1/8 of this machine's memory
  EXPECT_EQ(mib("0"), 0u);
  EXPECT_EQ(mib("512"), 512u);
  EXPECT_EQ(mib("lots"), machine);
  EXPECT_EQ(mib("-3"), machine);
  EXPECT_EQ(pace(nullptr), 64u << 20);
  EXPECT_EQ(pace("0"), 0u);
  EXPECT_EQ(pace("8"), 8u << 20);
  EXPECT_EQ(pace("fast"), 64u << 20);
}

// Logs: the tail's ring hands its written parts over; reads and slices see the newest bytes.
class LogReadCacheTest : public testing::LogFixture {
 protected:
  void SetUp() override {
    LogFixture::SetUp();
    options_.name = "cached-0";
    options_.segment_size_bytes_max = 1 << 20;
    options_.index_interval_bytes = 4096;
    options_.direct_append_min_bytes = 2000;
    options_.write_buffer_bytes = 64 << 10;  // parts of 16 KiB
    options_.direct_write_depth = 1;
    g_available = 8ull << 30;
    g_total = 16ull << 30;
    ReadCache::instance().set_budget_bytes(0);
    ReadCache::instance().set_memory_source(&fake_memory);
    ReadCache::instance().set_grow_inline(true);
    ReadCache::instance().set_budget_bytes(256 << 10);
  }
  void TearDown() override {
    ReadCache::instance().set_budget_bytes(0);
    ReadCache::instance().set_memory_source(nullptr);
    ReadCache::instance().set_grow_inline(false);
  }

  void append(Log& log, std::size_t count, std::size_t size, Term term) {
    LogIndex first = log.last_index() + 1;
    Batch b = Batch::make(first, log.next_offset(), term, count, size);
    ASSERT_TRUE(log.append(b.entries).is_ok());
    for (std::size_t i = 0; i < count; ++i) terms_[first + i] = term;
  }

  // Every entry, read and sliced: the payload make_payload gives for its latest term. Returns
  // how many slice extents came from memory below the ring (the read cache).
  std::size_t check_all(Log& log) {
    std::size_t from_cache = 0;
    auto entries = log.read(log.first_index(), log.last_index() + 1, UINT64_MAX);
    EXPECT_TRUE(entries.has_value());
    if (!entries.has_value()) return 0;
    for (const ReadEntry& e : *entries) {
      EXPECT_TRUE(equal_bytes(
          e.payload, make_payload(e.header.index, terms_[e.header.index], e.payload.size())))
          << "read of entry " << e.header.index;
    }
    std::uint64_t before = ReadCache::instance().stats().hits;
    KafkaOffset offset = log.start_offset();
    while (offset < log.next_offset()) {
      auto slice = log.file_slice(offset, log.last_index() + 1, 40 << 10);
      EXPECT_TRUE(slice.has_value()) << slice.status().to_string();
      if (!slice.has_value() || slice->extents.empty()) break;
      LogIndex index = slice->first_index;
      for (const FileSlice::Extent& x : slice->extents) {
        Buffer expected = make_payload(index, terms_[index], x.length);
        if (!x.bytes.empty()) {
          EXPECT_TRUE(equal_bytes(x.bytes, expected)) << "memory extent of entry " << index;
        } else {
          Buffer bytes(x.length);
          EXPECT_TRUE(
              read_exact(*slice->file, x.position, std::span(bytes.data(), bytes.size()), "slice")
                  .is_ok());
          EXPECT_TRUE(equal_bytes(bytes, expected)) << "file extent of entry " << index;
        }
        ++index;
      }
      offset = slice->last_offset + 1;
    }
    from_cache = ReadCache::instance().stats().hits - before;
    return from_cache;
  }

  std::map<LogIndex, Term> terms_;
};

TEST_P(LogReadCacheTest, ReadsSeeTheNewestBytesThroughCutsRollsAndRetention) {
  auto log = open_log();
  ASSERT_NE(log, nullptr);
  log->set_read_cache(true);
  std::uint64_t kept = ReadCache::instance().stats().kept;
  Prng prng(GetParam() ? 21 : 22);
  Term term(1);
  std::size_t hits = 0;
  for (int round = 0; round < 120; ++round) {
    std::uint64_t what = prng.uniform(20);
    if (what < 12) {
      append(*log, prng.range(1, 5), prng.range(2000, 9000), term);
    } else if (what < 14) {
      append(*log, 1, prng.range(10, 900), term);
    } else if (what < 16 && log->last_index() > log->first_index() + 4) {
      // A new leader's entries replace the tail (Raft §5.3): cut, then append with a new term.
      LogIndex from = log->last_index() - prng.uniform(std::min<std::uint64_t>(
                                              40, log->last_index() - log->first_index()));
      ASSERT_TRUE(log->truncate_suffix(from).is_ok());
      term = term + 1;
      append(*log, prng.range(1, 6), prng.range(2000, 9000), term);
    } else if (what < 17) {
      ASSERT_TRUE(log->roll().is_ok());
    } else if (what < 18) {
      RetentionPolicy policy;
      policy.bytes_max = 3 << 20;
      ASSERT_TRUE(log->apply_retention(policy).has_value());
    } else {
      ASSERT_TRUE(log->sync().is_ok());
    }
    bool cut = what >= 14 && what < 16;
    if (cut || prng.chance(1, 3)) hits += check_all(*log);
    if (::testing::Test::HasFailure()) return;
  }
  hits += check_all(*log);
  EXPECT_GT(hits, 0u) << "no slice extent came from the read cache";
  EXPECT_GT(ReadCache::instance().stats().kept, kept);
  // Off: the log's blocks leave the cache.
  log->set_read_cache(false);
  EXPECT_EQ(ReadCache::instance().stats().blocks, 0u);
  check_all(*log);
}

// A follower's log (the default) hands nothing over.
TEST_P(LogReadCacheTest, ALogThatDoesNotAskKeepsNothing) {
  auto log = open_log();
  ASSERT_NE(log, nullptr);
  std::uint64_t kept = ReadCache::instance().stats().kept;
  for (int i = 0; i < 40; ++i) append(*log, 4, 4000, Term(1));
  EXPECT_EQ(ReadCache::instance().stats().kept, kept);
  EXPECT_EQ(ReadCache::instance().stats().blocks, 0u);
  check_all(*log);
}

// The cache outlives nothing: a log closed and reopened starts with no blocks of its own.
TEST_P(LogReadCacheTest, ClosingTheLogDropsItsBlocks) {
  {
    auto log = open_log();
    ASSERT_NE(log, nullptr);
    log->set_read_cache(true);
    for (int i = 0; i < 40; ++i) append(*log, 4, 4000, Term(1));
    EXPECT_GT(ReadCache::instance().stats().blocks, 0u);
    ASSERT_TRUE(log->sync().is_ok());
  }
  EXPECT_EQ(ReadCache::instance().stats().blocks, 0u);
  auto log = open_log();
  ASSERT_NE(log, nullptr);
  check_all(*log);
}

INSTANTIATE_TEST_SUITE_P(FileSystems, LogReadCacheTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Posix" : "Memory"; });

}  // namespace
}  // namespace mq::storage
