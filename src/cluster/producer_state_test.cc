#include "cluster/producer_state.h"

#include <gtest/gtest.h>

#include <limits>

#include "protocol/record_batch.h"

namespace mq::cluster {
namespace {

BatchIdentity batch(std::int64_t producer, std::int16_t epoch, std::int32_t first_seq,
                    std::int32_t records = 1, std::int64_t timestamp = 1000) {
  BatchIdentity b;
  b.producer_id = producer;
  b.epoch = epoch;
  b.first_seq = first_seq;
  b.last_offset_delta = records - 1;
  b.last_seq = advance_sequence(first_seq, records - 1);
  b.max_timestamp_ms = timestamp;
  return b;
}

// Applies `b` at `index` with base offset = 10 * index (distinct, checkable).
void apply(ProducerStateTable& t, std::uint64_t index, const BatchIdentity& b) {
  t.apply(LogIndex(index), b, KafkaOffset(static_cast<std::int64_t>(index) * 10));
}

TEST(AdvanceSequence, WrapsAtInt32Max) {
  constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();
  EXPECT_EQ(advance_sequence(0, 4), 4);
  EXPECT_EQ(advance_sequence(kMax, 1), 0);
  EXPECT_EQ(advance_sequence(kMax - 1, 3), 1);
}

TEST(CheckSequence, UnknownProducerAcceptsAnySequence) {
  EXPECT_EQ(check_sequence(nullptr, batch(7, 0, 0)).verdict, SequenceVerdict::kAppend);
  EXPECT_EQ(check_sequence(nullptr, batch(7, 0, 42)).verdict, SequenceVerdict::kAppend);
}

TEST(CheckSequence, InOrderGapDuplicateAndFencing) {
  ProducerStateTable t;
  apply(t, 1, batch(7, 0, 0, 5));  // seq 0..4
  apply(t, 2, batch(7, 0, 5, 5));  // seq 5..9
  const ProducerEntry* e = t.find(7);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(check_sequence(e, batch(7, 0, 10)).verdict, SequenceVerdict::kAppend);
  SequenceCheck gap = check_sequence(e, batch(7, 0, 11));
  EXPECT_EQ(gap.verdict, SequenceVerdict::kSequenceGap);  // ahead: can close by itself
  EXPECT_EQ(gap.expected_seq, 10);
  EXPECT_NE(gap.message.find("expected sequence 10"), std::string::npos);
  // Behind the expected sequence and not a cached batch: cannot close, out of order.
  SequenceCheck behind = check_sequence(e, batch(7, 0, 7));
  EXPECT_EQ(behind.verdict, SequenceVerdict::kOutOfOrder);
  EXPECT_EQ(behind.expected_seq, 10);
  SequenceCheck dup = check_sequence(e, batch(7, 0, 0, 5));
  ASSERT_EQ(dup.verdict, SequenceVerdict::kDuplicate);
  EXPECT_EQ(dup.duplicate_of.base_offset, KafkaOffset(10));
  EXPECT_EQ(dup.duplicate_of.last_offset, KafkaOffset(14));
  EXPECT_EQ(check_sequence(e, batch(7, 0, 5, 5)).duplicate_of.base_offset, KafkaOffset(20));
  // Same first sequence but another length is not a duplicate: out of order.
  EXPECT_EQ(check_sequence(e, batch(7, 0, 5, 3)).verdict, SequenceVerdict::kOutOfOrder);
  }

TEST(CheckSequence, EpochBumpResetsSequences) {
  ProducerStateTable t;
  apply(t, 1, batch(7, 3, 0, 5));
  const ProducerEntry* e = t.find(7);
  EXPECT_EQ(check_sequence(e, batch(7, 2, 5)).verdict, SequenceVerdict::kFencedEpoch);
  // A newer epoch must start at 0: a later first batch is a gap (its sequence 0 may still be
  // in flight, e.g. right after the client's own bump).
  SequenceCheck new_epoch_gap = check_sequence(e, batch(7, 4, 5));
  EXPECT_EQ(new_epoch_gap.verdict, SequenceVerdict::kSequenceGap);
  EXPECT_EQ(new_epoch_gap.expected_seq, 0);
  EXPECT_EQ(check_sequence(e, batch(7, 4, 0)).verdict, SequenceVerdict::kAppend);
  apply(t, 2, batch(7, 4, 0, 2));
  e = t.find(7);
  EXPECT_EQ(e->epoch, 4);
  ASSERT_EQ(e->batches.size(), 1u);
  // The old epoch's batches are gone: its retry is fenced, not a duplicate.
  EXPECT_EQ(check_sequence(e, batch(7, 3, 0, 5)).verdict, SequenceVerdict::kFencedEpoch);
  EXPECT_EQ(check_sequence(e, batch(7, 4, 2)).verdict, SequenceVerdict::kAppend);
}

TEST(SequenceAhead, GapOrBehindAcrossTheWrap) {
  constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();
  EXPECT_TRUE(sequence_ahead(10, 11));
  EXPECT_TRUE(sequence_ahead(10, 10 + (1 << 30) - 1));
  EXPECT_FALSE(sequence_ahead(10, 10 + (1 << 30)));  // half the space away: behind
  EXPECT_FALSE(sequence_ahead(10, 10));
  EXPECT_FALSE(sequence_ahead(10, 9));
  EXPECT_FALSE(sequence_ahead(10, 0));
  EXPECT_TRUE(sequence_ahead(kMax - 1, kMax));
  EXPECT_TRUE(sequence_ahead(kMax - 1, 3));   // wrapped: 5 ahead
  EXPECT_FALSE(sequence_ahead(3, kMax - 1));  // wrapped: 5 behind
  EXPECT_TRUE(sequence_ahead(kMax, 0));
}

TEST(CheckSequence, GapAcrossTheSequenceWrap) {
  constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();
  ProducerStateTable t;
  apply(t, 1, batch(7, 0, kMax - 2, 2));  // kMax-2, kMax-1
  const ProducerEntry* e = t.find(7);
  EXPECT_EQ(check_sequence(e, batch(7, 0, kMax, 3)).verdict, SequenceVerdict::kAppend);
  SequenceCheck gap = check_sequence(e, batch(7, 0, 1));
  EXPECT_EQ(gap.verdict, SequenceVerdict::kSequenceGap);
  EXPECT_EQ(gap.expected_seq, kMax);
  EXPECT_EQ(check_sequence(e, batch(7, 0, kMax - 5)).verdict, SequenceVerdict::kOutOfOrder);
}

TEST(SequenceGapWindows, RetriableUntilTheWindowCloses) {
  SequenceGapWindows w(1000, 16);
  EXPECT_TRUE(w.retriable(7, 5000));   // first gap: the window opens at 5000
  EXPECT_TRUE(w.retriable(7, 5999));   // still open
  EXPECT_FALSE(w.retriable(7, 6000));  // closed: the Kafka answer from now on
  EXPECT_FALSE(w.retriable(7, 9000));
  EXPECT_TRUE(w.retriable(8, 6000));   // windows are per producer
  EXPECT_EQ(w.size(), 2u);
  // Progress (an append of producer 7) closes the gap; a later gap opens a new window.
  w.forget(7);
  EXPECT_EQ(w.size(), 1u);
  EXPECT_TRUE(w.retriable(7, 20000));
  EXPECT_FALSE(w.retriable(7, 21000));
  w.clear();  // leadership change
  EXPECT_EQ(w.size(), 0u);
  EXPECT_TRUE(w.retriable(7, 30000));
}

TEST(SequenceGapWindows, ACapOrAZeroWindowNeverExtendsTheRetriableAnswer) {
  SequenceGapWindows capped(1000, 2);
  EXPECT_TRUE(capped.retriable(1, 0));
  EXPECT_TRUE(capped.retriable(2, 0));
  EXPECT_FALSE(capped.retriable(3, 0));  // no room: out of order at once
  EXPECT_EQ(capped.size(), 2u);
  EXPECT_TRUE(capped.retriable(1, 500));  // tracked ones keep their windows
  EXPECT_FALSE(capped.retriable(1, 1000));
  capped.forget(2);
  EXPECT_TRUE(capped.retriable(3, 1000));
  SequenceGapWindows off(0, 16);  // disabled: Kafka's answer
  EXPECT_FALSE(off.retriable(1, 0));
  EXPECT_EQ(off.size(), 0u);
}

TEST(CheckSequence, OnlyTheLastFiveBatchesAreRemembered) {
  ProducerStateTable t;
  for (int i = 0; i < 7; ++i) apply(t, 1 + i, batch(7, 0, i));
  const ProducerEntry* e = t.find(7);
  ASSERT_EQ(e->batches.size(), kProducerBatchesCached);
  EXPECT_EQ(e->batches.front().first_seq, 2);
  EXPECT_EQ(check_sequence(e, batch(7, 0, 2)).verdict, SequenceVerdict::kDuplicate);
  // Older than the cache: not provably a duplicate, so it is refused (never written twice).
  EXPECT_EQ(check_sequence(e, batch(7, 0, 1)).verdict, SequenceVerdict::kOutOfOrder);
}

TEST(CheckSequence, InFlightProposalsExtendTheCommittedEntry) {
  // The leader's view: committed entry + its own proposals (partition.cc does this).
  ProducerStateTable t;
  apply(t, 1, batch(7, 0, 0));
  ProducerEntry view = *t.find(7);
  view.extend(0, ProducerBatch{1, 1, KafkaOffset(-1), KafkaOffset(-1), LogIndex(2)}, 1000);
  SequenceCheck dup = check_sequence(&view, batch(7, 0, 1));
  ASSERT_EQ(dup.verdict, SequenceVerdict::kDuplicate);
  EXPECT_EQ(dup.duplicate_of.index, LogIndex(2));
  EXPECT_GT(dup.duplicate_of.index, t.applied_index());  // => wait for that entry
  EXPECT_EQ(check_sequence(&view, batch(7, 0, 2)).verdict, SequenceVerdict::kAppend);
}

TEST(ProducerStateTable, ReapplyingIsIdempotent) {
  ProducerStateTable a, b;
  apply(a, 1, batch(7, 0, 0));
  apply(a, 2, batch(7, 0, 1));
  b = a;
  apply(b, 2, batch(7, 0, 1));  // again (restart re-applies from an older checkpoint)
  apply(b, 1, batch(7, 0, 0));
  EXPECT_EQ(a, b);
  a.apply(LogIndex(3), std::nullopt, KafkaOffset(30));  // a no-op moves the index only
  EXPECT_EQ(a.applied_index(), LogIndex(3));
  EXPECT_EQ(a.find(7)->batches.size(), 2u);
}

TEST(ProducerStateTable, ExpiresIdleProducersByLogTime) {
  ProducerStateOptions options;
  options.expiration_ms = 1000;
  ProducerStateTable t(options);
  apply(t, 1, batch(1, 0, 0, 1, 10'000));
  apply(t, 2, batch(2, 0, 0, 1, 10'500));
  apply(t, 3, batch(3, 0, 0, 1, 11'200));  // log time 11200: producer 1 idle > 1000 ms
  EXPECT_EQ(t.find(1), nullptr);
  EXPECT_NE(t.find(2), nullptr);
  apply(t, 4, batch(2, 0, 1, 1, 11'300));  // producer 2 active again
  apply(t, 5, batch(3, 0, 1, 1, 12'400));
  EXPECT_EQ(t.find(2), nullptr);
  EXPECT_NE(t.find(3), nullptr);
  EXPECT_EQ(t.expired(), 2u);
}

TEST(ProducerStateTable, CapEvictsTheOldestDeterministically) {
  ProducerStateOptions options;
  options.producers_max = 3;
  ProducerStateTable t(options);
  for (int p = 1; p <= 5; ++p) apply(t, p, batch(p, 0, 0, 1, 1000 + p));
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.find(1), nullptr);
  EXPECT_EQ(t.find(2), nullptr);
  EXPECT_NE(t.find(5), nullptr);
  // A new producer with an old timestamp still gets in; the oldest other one goes.
  apply(t, 6, batch(9, 0, 0, 1, 1));
  EXPECT_NE(t.find(9), nullptr);
  EXPECT_EQ(t.find(3), nullptr);
  EXPECT_EQ(t.size(), 3u);
}

TEST(ProducerStateTable, EncodeDecodeRoundTripAndCorruption) {
  ProducerStateTable t;
  apply(t, 1, batch(7, 0, 0, 3));
  apply(t, 2, batch(8, 5, 100, 2));
  apply(t, 3, batch(7, 0, 3, 1));
  Buffer bytes = t.encode();
  auto decoded = ProducerStateTable::decode(bytes.view(), {});
  ASSERT_TRUE(decoded.has_value()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, t);
  // Behaviour continues identically after the round trip.
  apply(t, 4, batch(8, 5, 102));
  apply(*decoded, 4, batch(8, 5, 102));
  EXPECT_EQ(*decoded, t);
  for (std::size_t i : {std::size_t{0}, std::size_t{5}, bytes.size() / 2, bytes.size() - 1}) {
    Buffer broken(bytes.view());
    broken.data()[i] ^= 0x40;
    EXPECT_EQ(ProducerStateTable::decode(broken.view(), {}).error().code(), ErrorCode::kCorruption);
  }
  EXPECT_FALSE(ProducerStateTable::decode(bytes.view().subspan(0, 10), {}).has_value());
}

TEST(ReadBatchIdentity, ReadsTheProducerFieldsOfARealBatch) {
  protocol::RecordBatchOptions options;
  options.producer_id = 4242;
  options.producer_epoch = 3;
  options.base_sequence = 17;
  std::vector<protocol::RecordInput> records(4);
  auto built = protocol::build_record_batch(options, records);
  ASSERT_TRUE(built.has_value());
  Buffer bytes = std::move(built).value();
  auto id = read_batch_identity(bytes.view());
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->producer_id, 4242);
  EXPECT_EQ(id->epoch, 3);
  EXPECT_EQ(id->first_seq, 17);
  EXPECT_EQ(id->last_seq, 20);
  EXPECT_FALSE(id->transactional);
  EXPECT_FALSE(read_batch_identity(bytes.view().subspan(0, 30)).has_value());
}

}  // namespace
}  // namespace mq::cluster
