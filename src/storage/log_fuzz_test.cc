// Operation fuzzer (Redpanda opfuzz style): random appends, syncs, suffix truncations, prefix
// removals, rolls, resets, disk-full and write faults, and crash-restarts on the fault-
// injecting in-memory file system (dropping or tearing unsynced data), checked after every
// step against an in-memory model of the log:
//   - every entry reported durable survives a crash, byte for byte;
//   - nothing that was not appended ever appears (every entry read equals the model's);
//   - first/last index and next offset always agree with the model;
//   - lookups by offset agree with a brute-force search of the model.
// Seeds: RAFTMQ_FUZZ_SEEDS (default 30) x RAFTMQ_FUZZ_STEPS (default 400). A failure prints
// the seed and step.
#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>

#include "storage/log.h"
#include "storage/memory_file_system.h"
#include "storage/test_util.h"

namespace mq::storage {
namespace {

using testing::make_payload;

struct ModelEntry {
  Term term;
  KafkaOffset base_offset;
  std::uint32_t last_offset_delta;
  std::int64_t timestamp;
  std::size_t size;
  EntryKind kind;
};

class Fuzzer {
 public:
  explicit Fuzzer(std::uint64_t seed, bool zero_fill = false) : prng_(seed), clock_(1'000'000) {
    options_.directory = "/data/fuzz";
    options_.name = "fuzz";
    options_.segment_size_bytes_max = 4096 + prng_.uniform(8192);
    options_.index_interval_bytes = 64 + prng_.uniform(1024);
    options_.segment_age_ms_max = 50'000;
    // Some runs send the larger appends through the direct-I/O path (padding, partial-block
    // rewrites, trimming at roll), others never.
    options_.direct_append_min_bytes = prng_.chance(1, 2) ? 0 : prng_.range(512, 4096);
    // and some of those through a write-behind buffer of one to four blocks (filled and
    // written out often: partial blocks, writes when full, flushes before syncs and cuts).
    options_.write_buffer_bytes = prng_.chance(1, 3) ? 0 : prng_.range(1, 4) * kDirectIoAlignment;
    // Pre-written space (zero_fill.cc) of one to four blocks, refilled after every sync
    // that left less than half of it: fills, overwrites of the zeros, zero tails at
    // crashes, cuts at truncations and rolls, fills refused or failing on a full disk.
    options_.zero_fill_window_bytes = zero_fill ? prng_.range(1, 4) * kDirectIoAlignment : 0;
    options_.zero_fill_sync_bytes_max = UINT64_MAX;
  }

  void run(int steps) {
    reopen();
    for (step_ = 0; step_ < steps && !::testing::Test::HasFatalFailure(); ++step_) {
      std::uint64_t op = prng_.uniform(100);
      if (trace_) std::fprintf(stderr, "step %d op %lu %s\n", step_, op, where().c_str());
      if (op < 40) {
        do_append();
      } else if (op < 55) {
        do_sync();
      } else if (op < 62) {
        do_truncate();
      } else if (op < 67) {
        do_remove_prefix();
      } else if (op < 70) {
        do_roll();
      } else if (op < 78) {
        do_crash();
      } else if (op < 88) {
        check_read();
      } else if (op < 94) {
        check_lookup();
      } else if (op < 96) {
        do_reset();
      } else {
        inject_fault();
      }
      clock_.advance_ms(static_cast<std::int64_t>(prng_.uniform(2000)));
      if (!::testing::Test::HasFatalFailure()) check_bounds();
    }
  }

 private:
  std::string where() const {
    return "seed step " + std::to_string(step_) + " (model [" + std::to_string(first_.value()) +
           ", " + std::to_string(last().value()) + "], durable " + std::to_string(durable_.value()) + ")";
  }
  LogIndex last() const { return first_ + entries_.size() - 1; }

  void reopen() {
    log_.reset();
    auto log = Log::open(&fs_, &clock_, options_);
    ASSERT_TRUE(log.has_value()) << log.status().to_string() << " at " << where();
    log_ = std::move(*log);
  }

  void do_append() {
    std::size_t count = prng_.range(1, 6);
    Term term = log_->last_index() >= log_->first_index() ? log_->term(log_->last_index()).value()
                                                         : term_floor_;
    if (prng_.chance(1, 10)) term = term + 1;
    term = std::max(term, term_floor_);
    term_floor_ = term;
    std::vector<Buffer> payloads;
    std::vector<AppendEntry> batch;
    std::vector<ModelEntry> modeled;
    KafkaOffset offset = next_offset_ + prng_.uniform(2);
    for (std::size_t i = 0; i < count; ++i) {
      LogIndex index = last() + 1 + i;
      // Sizes up to 9000 bytes: entries larger than a half of the write buffer (4 or 8 KiB)
      // take its checksum-first path, the others its copy-and-checksum path.
      std::size_t size = prng_.uniform(12) == 0  ? prng_.range(3000, 9000)
                         : prng_.uniform(4) == 0 ? prng_.range(1000, 3000)
                                                 : prng_.uniform(400);
      auto kind = static_cast<EntryKind>(prng_.uniform(10) == 0 ? 1 : 0);
      auto delta = static_cast<std::uint32_t>(prng_.uniform(4));
      std::int64_t ts = clock_.now_ms() - static_cast<std::int64_t>(prng_.uniform(5000));
      payloads.push_back(make_payload(index, term, size));
      batch.push_back({term, index, kind, offset, delta, ts, payloads.back().view()});
      modeled.push_back({term, offset, delta, ts, size, kind});
      offset = offset + delta + 1;
    }
    Status status = log_->append(batch);
    LogIndex now_last = log_->last_index();
    ASSERT_GE(now_last, last()) << where();
    ASSERT_LE(now_last, last() + count) << where();
    if (trace_) std::fprintf(stderr, "append of %zu: %s, log last %lu health %s\n", count, status.to_string().c_str(), now_last.value(), log_->health().to_string().c_str());
    if (!status.is_ok()) {
      ASSERT_TRUE(status.code() == ErrorCode::kNoSpace || status.code() == ErrorCode::kIoError)
          << status.to_string();
    } else {
      ASSERT_EQ(now_last, last() + count) << where();
    }
    std::size_t kept = now_last - last();
    for (std::size_t i = 0; i < kept; ++i) entries_.push_back(modeled[i]);
    if (kept > 0) next_offset_ = modeled[kept - 1].base_offset + modeled[kept - 1].last_offset_delta + 1;
    if (!log_->health().is_ok()) {
      // The roll-back of the failed append could not be made durable: after a restart the
      // attempted entries may be there (an indeterminate outcome, like a timeout).
      maybe_.assign(modeled.begin() + static_cast<std::ptrdiff_t>(kept), modeled.end());
      do_crash();
    }
  }

  void do_roll() {
    Status status = log_->roll();
    if (status.is_ok()) return;
    ASSERT_TRUE(status.code() == ErrorCode::kNoSpace || status.code() == ErrorCode::kIoError)
        << status.to_string();
    if (!log_->health().is_ok()) do_crash();
  }

  void do_sync() {
    Status status = log_->sync();
    if (status.is_ok()) {
      ASSERT_EQ(log_->durable_index(), last()) << where();
      durable_ = last();
    } else {
      ASSERT_FALSE(log_->health().is_ok());
      do_crash();
    }
  }

  void do_truncate() {
    LogIndex from = first_ + prng_.uniform(entries_.size() + 1);
    Status status = log_->truncate_suffix(from);
    if (!status.is_ok()) {
      // Injected faults: the log is unchanged, or failed after recording the truncation,
      // which start-up then completes. Either outcome is allowed.
      durable_ = std::min(durable_, from - 1);
      do_crash();
      return;
    }
    entries_.resize(from - first_);
    durable_ = std::min(durable_, last());
    recompute_next_offset();
  }

  void do_remove_prefix() {
    LogIndex new_first = first_ + prng_.uniform(entries_.size() + 1);
    Status status = log_->remove_prefix(new_first);
    if (!status.is_ok()) {
      maybe_first_ = new_first;  // the removal may or may not have been recorded
      do_crash();
      return;
    }
    drop_prefix(new_first);
  }

  void drop_prefix(LogIndex new_first) {
    std::size_t drop = new_first - first_;
    if (drop == 0) return;  // nothing removed: the start offset stays
    KafkaOffset start = drop < entries_.size() ? entries_[drop].base_offset : next_offset_;
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(drop));
    first_ = new_first;
    start_offset_ = start;
    durable_ = std::max(durable_, first_ - 1);
  }

  void do_reset() {
    LogIndex next = last() + 1 + prng_.uniform(100);
    KafkaOffset offset = next_offset_ + prng_.uniform(100);
    if (!log_->reset(next, offset).is_ok()) {
      maybe_reset_ = std::pair(next, offset);  // may or may not have been recorded
      do_crash();
      return;
    }
    adopt_reset(next, offset);
  }

  void adopt_reset(LogIndex next, KafkaOffset offset) {
    entries_.clear();
    first_ = next;
    start_offset_ = offset;
    next_offset_ = offset;
    durable_ = last();
  }

  void inject_fault() {
    std::uint64_t kind = prng_.uniform(4);
    if (trace_) std::fprintf(stderr, "fault %lu\n", kind);
    if (kind == 0) {
      fs_.set_capacity_bytes(fs_.used_bytes() + prng_.uniform(6000));
      fault_steps_ = 10;
    } else if (kind == 1) {
      fs_.fail_next_writes(1);
    } else if (kind == 2) {
      fs_.fail_next_syncs(1);
    } else {
      fs_.fail_sync_after(static_cast<int>(prng_.uniform(5)));  // fail mid-operation
    }
  }

  void do_crash() {
    log_.reset();
    fs_.fail_next_writes(0);
    fs_.fail_next_syncs(0);
    fs_.set_capacity_bytes(UINT64_MAX);
    std::uint64_t mode = prng_.uniform(3);  // clean, adversarial ordered, any name order
    fs_.crash(mode == 0 ? nullptr : &prng_, mode == 2);
    reopen();
    if (::testing::Test::HasFatalFailure()) return;
    if (maybe_first_ && log_->first_index() == *maybe_first_) drop_prefix(*maybe_first_);
    if (maybe_reset_ && log_->first_index() == maybe_reset_->first &&
        log_->start_offset() == maybe_reset_->second && log_->last_index() < log_->first_index()) {
      adopt_reset(maybe_reset_->first, maybe_reset_->second);
    }
    maybe_first_.reset();
    maybe_reset_.reset();
    LogIndex recovered = log_->last_index();
    ASSERT_EQ(log_->first_index(), first_) << where();
    ASSERT_GE(recovered, durable_) << "durable entries lost: " << where();
    ASSERT_LE(recovered, last() + maybe_.size())
        << "entries appeared that were never appended: " << where();
    for (std::size_t i = 0; last() < recovered; ++i) entries_.push_back(maybe_[i]);
    maybe_.clear();
    entries_.resize(recovered + 1 - first_);
    recompute_next_offset();
    durable_ = recovered;
    check_all();
  }

  void recompute_next_offset() {
    next_offset_ = entries_.empty()
                       ? start_offset_
                       : entries_.back().base_offset + entries_.back().last_offset_delta + 1;
  }

  void check_bounds() {
    if (fault_steps_ > 0 && --fault_steps_ == 0) fs_.set_capacity_bytes(UINT64_MAX);
    log_->check_invariants();
    ASSERT_EQ(log_->first_index(), first_) << where();
    ASSERT_EQ(log_->last_index(), last()) << where();
    ASSERT_EQ(log_->next_offset(), next_offset_) << where();
    ASSERT_EQ(log_->start_offset(), start_offset_) << where();
  }

  void check_entry(const ReadEntry& e) {
    ASSERT_GE(e.header.index, first_);
    ASSERT_LE(e.header.index, last());
    const ModelEntry& m = entries_[e.header.index - first_];
    ASSERT_EQ(e.header.term, m.term) << "index " << e.header.index << " " << where();
    ASSERT_EQ(e.header.base_offset, m.base_offset) << where();
    ASSERT_EQ(e.header.last_offset_delta, m.last_offset_delta);
    ASSERT_EQ(e.header.max_timestamp, m.timestamp);
    ASSERT_EQ(e.header.kind, m.kind);
    ASSERT_TRUE(equal_bytes(e.payload, make_payload(e.header.index, m.term, m.size))) << where();
  }

  void check_all() {
    auto all = log_->read(first_, last() + 1, UINT64_MAX);
    ASSERT_TRUE(all.has_value()) << all.status().to_string() << " " << where();
    ASSERT_EQ(all->size(), entries_.size());
    for (const auto& e : *all) check_entry(e);
  }

  void check_read() {
    if (entries_.empty()) return;
    LogIndex lo = first_ + prng_.uniform(entries_.size());
    LogIndex hi = lo + prng_.range(1, last() + 1 - lo);
    auto got = log_->read(lo, hi, prng_.uniform(8000));
    ASSERT_TRUE(got.has_value()) << got.status().to_string() << " " << where();
    ASSERT_GE(got->size(), 1u);
    ASSERT_LE(got->size(), hi - lo);
    for (std::size_t i = 0; i < got->size(); ++i) {
      ASSERT_EQ((*got)[i].header.index, lo + i);
      check_entry((*got)[i]);
    }
    LogIndex probe = first_ + prng_.uniform(entries_.size());
    ASSERT_EQ(log_->term(probe).value(), entries_[probe - first_].term) << where();
  }

  void check_lookup() {
    if (entries_.empty()) return;
    KafkaOffset o = start_offset_ + prng_.uniform(next_offset_ - start_offset_ + 1);
    auto got = log_->lookup_offset(o);
    ASSERT_TRUE(got.has_value()) << got.status().to_string() << " " << where();
    std::optional<LogIndex> expect;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].base_offset + entries_[i].last_offset_delta >= o) {
        expect = first_ + i;
        break;
      }
    }
    std::int64_t t = clock_.now_ms() - static_cast<std::int64_t>(prng_.uniform(8000));
    auto by_time = log_->lookup_timestamp(t);
    ASSERT_TRUE(by_time.has_value()) << by_time.status().to_string() << " " << where();
    std::optional<LogIndex> expect_time;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].timestamp >= t) {
        expect_time = first_ + i;
        break;
      }
    }
    ASSERT_EQ(by_time->has_value(), expect_time.has_value()) << "time " << t << " " << where();
    if (expect_time) {
      ASSERT_EQ((*by_time)->index, *expect_time) << "time " << t << " " << where();
    }
    ASSERT_EQ(got->has_value(), expect.has_value()) << "offset " << o << " " << where();
    if (expect) {
      ASSERT_EQ((*got)->index, *expect) << "offset " << o << " " << where();
      if (*expect <= durable_) check_slice(o, *expect);
    }
  }

  // A file slice of synced entries (no write needed): the extents' bytes, from the
  // write-behind buffer where it still holds them, else from the file, are the payloads.
  void check_slice(KafkaOffset o, LogIndex expect) {
    auto slice = log_->file_slice(o, durable_ + 1, prng_.uniform(20000));
    ASSERT_TRUE(slice.has_value()) << slice.status().to_string() << " " << where();
    ASSERT_EQ(slice->first_index, expect) << where();
    ASSERT_GE(slice->extents.size(), 1u);
    for (std::size_t i = 0; i < slice->extents.size(); ++i) {
      const FileSlice::Extent& e = slice->extents[i];
      LogIndex index = expect + i;
      const ModelEntry& m = entries_[index - first_];
      ASSERT_EQ(e.length, m.size) << "entry " << index << " " << where();
      Buffer bytes(e.length);
      if (!e.bytes.empty()) {
        bytes = Buffer(e.bytes.view());
      } else {
        ASSERT_TRUE(read_exact(*slice->file, e.position, std::span(bytes.data(), bytes.size()),
                               "slice").is_ok()) << where();
      }
      ASSERT_TRUE(equal_bytes(bytes, make_payload(index, m.term, m.size)))
          << "entry " << index << (e.bytes.empty() ? " (file) " : " (buffer) ") << where();
    }
  }

  Prng prng_;
  MemoryFileSystem fs_;
  ManualClock clock_;
  LogOptions options_;
  std::unique_ptr<Log> log_;
  int step_ = 0;
  // The model: entries_[i] is index first_ + i.
  LogIndex first_{1};
  std::deque<ModelEntry> entries_;
  KafkaOffset start_offset_{0};
  KafkaOffset next_offset_{0};
  LogIndex durable_{0};
  Term term_floor_{1};
  int fault_steps_ = 0;
  std::vector<ModelEntry> maybe_;  // attempted by a failed append that broke the log
  std::optional<LogIndex> maybe_first_;  // a failed prefix removal
  std::optional<std::pair<LogIndex, KafkaOffset>> maybe_reset_;  // a failed reset
  bool trace_ = std::getenv("RAFTMQ_FUZZ_TRACE") != nullptr;
};

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : fallback;
}

TEST(LogFuzzTest, RandomOperationsAndCrashesMatchTheModel) {
  int seeds = env_int("RAFTMQ_FUZZ_SEEDS", 30);
  int steps = env_int("RAFTMQ_FUZZ_STEPS", 400);
  std::uint64_t base = static_cast<std::uint64_t>(env_int("RAFTMQ_FUZZ_SEED_BASE", 1));
  for (int s = 0; s < seeds; ++s) {
    std::uint64_t seed = base + static_cast<std::uint64_t>(s);
    SCOPED_TRACE("seed " + std::to_string(seed));
    Fuzzer fuzzer(seed);
    fuzzer.run(steps);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// The same with pre-written space after the tail (fewer seeds: the run above covers the rest).
TEST(LogFuzzTest, RandomOperationsAndCrashesWithZeroFillMatchTheModel) {
  int seeds = env_int("RAFTMQ_FUZZ_SEEDS", 20);
  int steps = env_int("RAFTMQ_FUZZ_STEPS", 400);
  std::uint64_t base = static_cast<std::uint64_t>(env_int("RAFTMQ_FUZZ_SEED_BASE", 1));
  for (int s = 0; s < seeds; ++s) {
    std::uint64_t seed = base + static_cast<std::uint64_t>(s);
    SCOPED_TRACE("seed " + std::to_string(seed) + " (zero fill)");
    Fuzzer fuzzer(seed, true);
    fuzzer.run(steps);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace mq::storage
