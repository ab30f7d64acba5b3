// Log compaction (compaction.h) on a real storage::Log over the in-memory file system.
#include "cluster/compaction.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <variant>

#include "groups/records.h"
#include "protocol/record_batch.h"
#include "storage/memory_file_system.h"

namespace mq::cluster {
namespace {

constexpr std::int64_t kDay = 24ll * 3600 * 1000;

storage::LogOptions log_options() {
  storage::LogOptions o;
  o.directory = "/data/__consumer_offsets-0";
  o.name = "__consumer_offsets-0";
  o.segment_size_bytes_max = 8 << 10;
  o.index_interval_bytes = 256;
  return o;
}

struct Rec {
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::int64_t timestamp = 0;
  std::size_t headers = 0;
};

class CompactionTest : public ::testing::Test {
 protected:
  void SetUp() override { log_ = storage::Log::open(&fs_, &clock_, log_options()).value(); }

  // Appends one batch (as GroupStorage stores it: base offset and epoch stamped).
  void append(const std::vector<Rec>& recs, Term term = Term(1),
              protocol::RecordBatchOptions opts = {}) {
    std::vector<protocol::RecordInput> in;
    for (const Rec& r : recs) {
      protocol::RecordInput ri;
      if (r.key) ri.key = Buffer(std::string_view(*r.key));
      if (r.value) ri.value = Buffer(std::string_view(*r.value));
      ri.headers.push_back({"h", Buffer(std::string_view("v"))});
      ri.timestamp = r.timestamp;
      in.push_back(std::move(ri));
    }
    opts.base_offset = log_->next_offset().value();
    opts.partition_leader_epoch = static_cast<std::int32_t>(term.value());
    Buffer batch = protocol::build_record_batch(opts, in).value();
    auto view = protocol::RecordBatchView::parse(batch.view()).value();
    storage::AppendEntry e;
    e.term = term;
    e.index = log_->last_index() + 1;
    e.base_offset = log_->next_offset();
    e.last_offset_delta = static_cast<std::uint32_t>(view.header().last_offset_delta);
    e.max_timestamp = view.header().max_timestamp;
    e.payload = batch.view();
    ASSERT_TRUE(log_->append(std::span<const storage::AppendEntry>(&e, 1)).is_ok());
  }

  void append_control(Term term) {
    protocol::ControlBatchOptions c;
    c.base_offset = log_->next_offset().value();
    Buffer batch = protocol::build_control_batch(c, BufferView()).value();
    storage::AppendEntry e;
    e.term = term;
    e.index = log_->last_index() + 1;
    e.kind = storage::EntryKind::kRaftNoop;
    e.base_offset = log_->next_offset();
    e.payload = batch.view();
    ASSERT_TRUE(log_->append(std::span<const storage::AppendEntry>(&e, 1)).is_ok());
  }

  std::vector<storage::ReadEntry> read_all() {
    return log_->read(log_->first_index(), log_->last_index() + 1, UINT64_MAX).value();
  }

  // offset -> (key, value) of every record a consumer would see, checking every batch.
  std::map<std::int64_t, Rec> visible() {
    std::map<std::int64_t, Rec> out;
    std::int64_t next = log_->start_offset().value();
    for (const storage::ReadEntry& e : read_all()) {
      auto view = protocol::RecordBatchView::parse(e.payload.view());
      EXPECT_TRUE(view.has_value()) << e.header.index.value();
      if (!view.has_value()) continue;
      EXPECT_EQ(view->bytes().size(), e.payload.size());
      EXPECT_EQ(view->header().base_offset, e.header.base_offset.value());
      EXPECT_EQ(view->header().base_offset, next);  // dense, monotonic, next offset unchanged
      next = view->header().last_offset() + 1;
      if (view->header().is_control()) continue;
      auto records = view->decode_records();
      EXPECT_TRUE(records.has_value());
      if (!records.has_value()) continue;
      std::int64_t prev = -1;
      for (const protocol::Record& r : records->records) {
        std::int64_t off = view->header().base_offset + r.offset_delta;
        EXPECT_GT(off, prev);
        prev = off;
        Rec rec;
        if (r.key) rec.key = std::string(as_chars(*r.key));
        if (r.value) rec.value = std::string(as_chars(*r.value));
        rec.timestamp = view->header().base_timestamp + r.timestamp_delta;
        rec.headers = r.headers.size();
        out[off] = rec;
      }
    }
    EXPECT_EQ(next, log_->next_offset().value());
    return out;
  }

  Result<CompactionStats> compact(std::int64_t now_ms, CompactionOptions o = {}) {
    MQ_RETURN_IF_ERROR(log_->roll());  // close the tail, so everything applied is compactable
    return compact_log(*log_, log_->last_index(), now_ms, o);
  }

  storage::MemoryFileSystem fs_;
  storage::ManualClock clock_{1000};
  std::unique_ptr<storage::Log> log_;
};

// key -> value of the latest record per key (nullopt: tombstone).
std::map<std::string, std::optional<std::string>> latest_state(
    const std::map<std::int64_t, Rec>& v) {
  std::map<std::string, std::optional<std::string>> s;
  for (const auto& [off, r] : v) {
    if (r.key) s[*r.key] = r.value;
  }
  return s;
}

TEST(CompactionPolicyTest, RecognisesCompactInTheList) {
  EXPECT_TRUE(cleanup_policy_compacts("compact"));
  EXPECT_TRUE(cleanup_policy_compacts("delete,compact"));
  EXPECT_TRUE(cleanup_policy_compacts("compact, delete"));
  EXPECT_FALSE(cleanup_policy_compacts("delete"));
  EXPECT_FALSE(cleanup_policy_compacts(""));
  EXPECT_FALSE(cleanup_policy_compacts("compacted"));
}

TEST_F(CompactionTest, ManyCommitsOfTheSameKeysKeepTheLatestPerKey) {
  const int kKeys = 10;
  for (int round = 0; round < 40; ++round) {
    std::vector<Rec> batch;
    for (int k = 0; k < kKeys; k += 2) {
      int key = (k + round) % kKeys;
      batch.push_back({"key-" + std::to_string(key),
                       "v" + std::to_string(round) + "-" + std::string(40, 'x'), 1000});
    }
    append(batch, Term(1 + round / 10));
    if (round % 7 == 0) append_control(Term(1 + round / 10));
  }
  auto before_entries = read_all();
  auto before = visible();
  std::uint64_t size_before = log_->size_bytes();
  auto stats = compact(2000);
  ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
  std::uint64_t size_after = log_->size_bytes();
  std::printf("compacted log: %llu -> %llu bytes, %u segments rewritten, %llu records removed\n",
              static_cast<unsigned long long>(size_before),
              static_cast<unsigned long long>(size_after), stats->segments_rewritten,
              static_cast<unsigned long long>(stats->records_removed));
  EXPECT_GT(stats->segments_rewritten, 0u);
  EXPECT_LT(size_after * 2, size_before);  // 200 records of 10 keys

  auto after_entries = read_all();
  ASSERT_EQ(after_entries.size(), before_entries.size());
  for (std::size_t i = 0; i < after_entries.size(); ++i) {
    EXPECT_EQ(after_entries[i].header.index, before_entries[i].header.index);
    EXPECT_EQ(after_entries[i].header.term, before_entries[i].header.term);
    EXPECT_EQ(after_entries[i].header.base_offset, before_entries[i].header.base_offset);
    EXPECT_EQ(after_entries[i].header.last_offset(), before_entries[i].header.last_offset());
    EXPECT_EQ(after_entries[i].header.kind, before_entries[i].header.kind);
  }
  auto after = visible();
  EXPECT_EQ(after.size(), static_cast<std::size_t>(kKeys));
  EXPECT_EQ(latest_state(after), latest_state(before));
  for (const auto& [off, r] : after) {  // every survivor is the latest of its key, same offset
    ASSERT_TRUE(before.count(off));
    EXPECT_EQ(before[off].value, r.value);
    EXPECT_EQ(before[off].timestamp, r.timestamp);
    EXPECT_EQ(r.headers, 1u);
    for (const auto& [o2, r2] : before) EXPECT_FALSE(o2 > off && r2.key == r.key);
  }
  // A second run finds nothing to do; reopening reads the same.
  auto again = compact(2000);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->segments_rewritten, 0u);
  log_.reset();
  log_ = storage::Log::open(&fs_, &clock_, log_options()).value();
  log_->check_invariants();
  EXPECT_EQ(visible().size(), after.size());
}

TEST_F(CompactionTest, TombstonesStayForDeleteRetentionThenGo) {
  append({{"a", "1", 1000}, {"b", "1", 1000}, {"c", "1", 1000}});
  append({{"a", std::nullopt, 5000}, {"b", "2", 5000}});
  append({{"c", std::nullopt, 9000}});
  append({{"d", "1", 9000}});
  auto stats = compact(5000 + kDay - 1);  // a's tombstone not yet expired
  ASSERT_TRUE(stats.has_value());
  auto v = visible();
  EXPECT_EQ(latest_state(v),
            (std::map<std::string, std::optional<std::string>>{
                {"a", std::nullopt}, {"b", "2"}, {"c", std::nullopt}, {"d", "1"}}));
  EXPECT_EQ(v.size(), 4u);
  EXPECT_EQ(stats->tombstones_removed, 0u);

  stats = compact(5000 + kDay);  // a's expired, c's not
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->tombstones_removed, 1u);
  EXPECT_EQ(latest_state(visible()), (std::map<std::string, std::optional<std::string>>{
                                         {"b", "2"}, {"c", std::nullopt}, {"d", "1"}}));
  stats = compact(9000 + kDay);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(latest_state(visible()),
            (std::map<std::string, std::optional<std::string>>{{"b", "2"}, {"d", "1"}}));
  // The first batch lost every record: it stays as a zero-record batch holding its offsets.
  auto first = protocol::RecordBatchView::parse(read_all().front().payload.view()).value();
  EXPECT_EQ(first.header().record_count, 0);
  EXPECT_EQ(first.header().last_offset_delta, 2);
}

TEST_F(CompactionTest, KeylessRecordsGoProducerFieldsAndCompressionStay) {
  protocol::RecordBatchOptions idem;
  idem.producer_id = 77;
  idem.producer_epoch = 3;
  idem.base_sequence = 10;
  idem.compression = protocol::Compression::kLz4;
  append({{"k", "old", 1000}, {std::nullopt, "nokey", 1000}, {"j", "keep", 1000}}, Term(1), idem);
  append({{"k", "new", 1000}});
  ASSERT_TRUE(compact(2000).has_value());
  auto entries = read_all();
  auto view = protocol::RecordBatchView::parse(entries[0].payload.view()).value();
  const protocol::RecordBatchHeader& h = view.header();
  EXPECT_EQ(h.producer_id, 77);
  EXPECT_EQ(h.producer_epoch, 3);
  EXPECT_EQ(h.base_sequence, 10);
  EXPECT_EQ(h.last_offset_delta, 2);
  EXPECT_EQ(h.compression(), protocol::Compression::kLz4);
  EXPECT_EQ(h.partition_leader_epoch, 1);
  auto v = visible();
  EXPECT_EQ(v.size(), 2u);
  EXPECT_EQ(v.at(2).value, "keep");
  EXPECT_EQ(v.at(3).value, "new");
}

TEST_F(CompactionTest, FullKeyMapKeepsWhatItCannotJudge) {
  for (int round = 0; round < 3; ++round) {
    std::vector<Rec> batch;
    for (int k = 0; k < 50; ++k)
      batch.push_back({"key-" + std::to_string(k), std::to_string(round), 1000});
    append(batch);
  }
  CompactionOptions o;
  o.key_map_bytes_max = 10 * (64 + 6);  // about 10 keys
  auto stats = compact(2000, o);
  ASSERT_TRUE(stats.has_value());
  EXPECT_TRUE(stats->key_map_full);
  auto v = visible();
  EXPECT_GT(v.size(), 50u);
  EXPECT_LT(v.size(), 150u);
  auto state = latest_state(v);
  EXPECT_EQ(state.size(), 50u);
  for (const auto& [k, val] : state) EXPECT_EQ(val, "2") << k;
}

TEST_F(CompactionTest, OnlyClosedSegmentsAtOrBelowAppliedChange) {
  for (int i = 0; i < 30; ++i) append({{"k", std::to_string(i) + std::string(200, 'y'), 1000}});
  ASSERT_TRUE(log_->roll().is_ok());
  LogIndex applied = log_->last_index() - 10;
  auto stats = compact_log(*log_, applied, 2000, CompactionOptions{});
  ASSERT_TRUE(stats.has_value());
  for (const storage::ReadEntry& e : read_all()) {
    auto view = protocol::RecordBatchView::parse(e.payload.view()).value();
    if (e.header.index > applied) {
      EXPECT_EQ(view.header().record_count, 1) << e.header.index.value();
    }
  }
}

// The group coordinator's records: the state they fold into is the same after compaction.
TEST_F(CompactionTest, ConsumerOffsetsRecordsFoldToTheSameState) {
  using groups::encode_offset_key;
  using groups::encode_offset_value;
  auto add = [&](const std::string& g, int p, std::optional<std::int64_t> off, std::int64_t ts) {
    protocol::RecordInput r;
    r.key = encode_offset_key(g, "orders", p);
    if (off) {
      protocol::OffsetCommitValue v;
      v.offset = *off;
      v.commit_timestamp = ts;
      r.value = encode_offset_value(v);
    }
    r.timestamp = ts;
    protocol::RecordBatchOptions o;
    o.base_offset = log_->next_offset().value();
    Buffer batch =
        protocol::build_record_batch(o, std::span<const protocol::RecordInput>(&r, 1)).value();
    storage::AppendEntry e;
    e.term = Term(1);
    e.index = log_->last_index() + 1;
    e.base_offset = log_->next_offset();
    e.max_timestamp = ts;
    e.payload = batch.view();
    ASSERT_TRUE(log_->append(std::span<const storage::AppendEntry>(&e, 1)).is_ok());
  };
  for (int i = 0; i < 300; ++i) add("g" + std::to_string(i % 3), i % 4, i, 1000 + i);
  add("g2", 1, std::nullopt, 2000);  // offset deleted
  // Folds the records as the coordinator's loader does (decode_record, last one wins).
  auto fold = [&] {
    std::map<std::tuple<std::string, std::string, std::int32_t>, std::int64_t> state;
    for (const auto& [off, r] : visible()) {
      std::optional<BufferView> key = as_bytes(*r.key);
      std::optional<BufferView> value;
      if (r.value) value = as_bytes(*r.value);
      auto rec = groups::decode_record(key, value).value();
      auto& o = std::get<groups::OffsetRecord>(rec);
      auto k = std::make_tuple(o.key.group, o.key.topic, o.key.partition);
      if (o.value) {
        state[k] = o.value->offset;
      } else {
        state.erase(k);
      }
    }
    return state;
  };
  auto before = fold();
  std::uint64_t size_before = log_->size_bytes();
  ASSERT_TRUE(compact(3000).has_value());
  std::printf("__consumer_offsets test log: %llu -> %llu bytes\n",
              static_cast<unsigned long long>(size_before),
              static_cast<unsigned long long>(log_->size_bytes()));
  EXPECT_EQ(fold(), before);
  EXPECT_EQ(before.size(), 11u);
  EXPECT_EQ(visible().size(), 12u);  // 11 live offsets + the tombstone (not yet expired)
}

TEST_F(CompactionTest, FirstLiveSegmentIsAfterTheEmptiedPrefix) {
  for (int i = 0; i < 40; ++i) append({{"k" + std::to_string(i % 4), std::string(300, 'z'), 1000}});
  append_control(Term(1));
  ASSERT_TRUE(log_->roll().is_ok());
  EXPECT_EQ(first_live_segment(*log_, log_->last_index()).value(), log_->first_index());
  ASSERT_TRUE(compact(2000).has_value());
  auto segments = log_->segments();
  ASSERT_GE(segments.size(), 3u);
  LogIndex live = first_live_segment(*log_, log_->last_index()).value();
  EXPECT_GT(live, log_->first_index());
  // Every segment before `live` holds only empty batches; `live`'s segment holds a record.
  std::map<std::int64_t, Rec> v = visible();
  ASSERT_EQ(v.size(), 4u);
  auto ref = log_->lookup_offset(KafkaOffset(v.begin()->first)).value();
  ASSERT_TRUE(ref.has_value());
  LogIndex expected;
  for (const storage::SegmentSummary& s : segments) {
    if (s.base_index <= ref->index) expected = s.base_index;
  }
  EXPECT_EQ(live, expected);
  // Not beyond the applied index: an open or unapplied segment counts as live.
  EXPECT_LE(first_live_segment(*log_, log_->first_index()).value(), segments[1].base_index);
}

// With a rewrite budget of one segment per run, segments go in order and a key's old value is
// gone before its expired tombstone: the key never comes back.
TEST_F(CompactionTest, RewriteBudgetProceedsInOrderWithoutResurrectingKeys) {
  for (int i = 0; i < 40; ++i) append({{"a", std::string(600, 'a'), 1000}, {"b", "b", 1000}});
  ASSERT_TRUE(log_->roll().is_ok());
  append({{"a", std::nullopt, 1000}});
  CompactionOptions o;
  o.segments_per_run_max = 1;
  std::uint32_t runs = 0;
  for (; runs < 20; ++runs) {
    auto stats = compact(1000 + kDay, o);
    ASSERT_TRUE(stats.has_value());
    auto state = latest_state(visible());
    EXPECT_FALSE(state.count("a") && state["a"].has_value()) << "run " << runs;
    EXPECT_EQ(state["b"], "b");
    if (stats->segments_rewritten == 0) break;
    EXPECT_EQ(stats->segments_rewritten, 1u);
  }
  EXPECT_GE(runs, 3u);
  EXPECT_EQ(latest_state(visible()),
            (std::map<std::string, std::optional<std::string>>{{"b", "b"}}));
}

}  // namespace
}  // namespace mq::cluster
