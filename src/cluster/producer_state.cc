#include "cluster/producer_state.h"

#include <algorithm>
#include <limits>

#include "base/crc32c.h"
#include "base/le_codec.h"

namespace mq::cluster {
namespace {

// Record batch v2 header positions (Kafka protocol guide, "Record Batch").
constexpr std::size_t kBatchHeaderBytes = 61;
constexpr std::size_t kMagicAt = 16;
constexpr std::size_t kAttributesAt = 21;
constexpr std::size_t kLastOffsetDeltaAt = 23;
constexpr std::size_t kMaxTimestampAt = 35;
constexpr std::size_t kProducerIdAt = 43;
constexpr std::size_t kProducerEpochAt = 51;
constexpr std::size_t kBaseSequenceAt = 53;
constexpr std::int16_t kTransactionalBit = 0x10;
constexpr std::int16_t kControlBit = 0x20;

std::uint64_t read_be(const std::uint8_t* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// docs/formats/producer_state.md
constexpr std::uint8_t kMagic[4] = {'M', 'Q', 'P', 'S'};
constexpr std::uint8_t kFormatVersion = 1;
constexpr std::size_t kProducerRecordBytes = 8 + 2 + 8 + 1;
constexpr std::size_t kBatchRecordBytes = 4 + 4 + 8 + 8 + 8;

}  // namespace

std::optional<BatchIdentity> read_batch_identity(BufferView batch) {
  if (batch.size() < kBatchHeaderBytes || batch[kMagicAt] != 2) return std::nullopt;
  const std::uint8_t* p = batch.data();
  BatchIdentity id;
  auto attributes = static_cast<std::int16_t>(read_be(p + kAttributesAt, 2));
  id.transactional = (attributes & kTransactionalBit) != 0;
  id.control = (attributes & kControlBit) != 0;
  id.last_offset_delta = static_cast<std::int32_t>(read_be(p + kLastOffsetDeltaAt, 4));
  id.max_timestamp_ms = static_cast<std::int64_t>(read_be(p + kMaxTimestampAt, 8));
  id.producer_id = static_cast<std::int64_t>(read_be(p + kProducerIdAt, 8));
  id.epoch = static_cast<std::int16_t>(read_be(p + kProducerEpochAt, 2));
  id.first_seq = static_cast<std::int32_t>(read_be(p + kBaseSequenceAt, 4));
  if (id.last_offset_delta < 0) return std::nullopt;
  id.last_seq = id.first_seq < 0 ? -1 : advance_sequence(id.first_seq, id.last_offset_delta);
  return id;
}

bool sequence_ahead(std::int32_t expected, std::int32_t seq) {
  constexpr std::int64_t kSpace = std::int64_t{std::numeric_limits<std::int32_t>::max()} + 1;
  std::int64_t ahead = (std::int64_t{seq} - expected + kSpace) % kSpace;
  return ahead > 0 && ahead < (std::int64_t{1} << 30);
}

std::int32_t advance_sequence(std::int32_t seq, std::int32_t count) {
  // Kafka DefaultRecordBatch.incrementSequence: sequences wrap from INT32_MAX to 0.
  constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();
  if (seq > kMax - count) return count - (kMax - seq) - 1;
  return seq + count;
}

void ProducerEntry::extend(std::int16_t batch_epoch, const ProducerBatch& batch,
                           std::int64_t timestamp_ms) {
  if (batch_epoch != epoch) {
    // A new epoch (KIP-360 bump or a new InitProducerId): sequences restart at 0.
    epoch = batch_epoch;
    batches.clear();
  }
  batches.push_back(batch);
  while (batches.size() > kProducerBatchesCached) batches.pop_front();
  if (timestamp_ms >= 0) last_timestamp_ms = timestamp_ms;
}

SequenceCheck check_sequence(const ProducerEntry* entry, const BatchIdentity& batch) {
  SequenceCheck out;
  if (entry == nullptr || entry->epoch == kNoProducerEpoch) return out;  // unknown: accept
  if (batch.epoch == entry->epoch) {
    for (const ProducerBatch& cached : entry->batches) {
      if (cached.first_seq == batch.first_seq && cached.last_seq == batch.last_seq) {
        out.verdict = SequenceVerdict::kDuplicate;
        out.duplicate_of = cached;
        return out;
      }
    }
  }
  if (batch.epoch < entry->epoch) {
    out.verdict = SequenceVerdict::kFencedEpoch;
    out.message = "producer " + std::to_string(batch.producer_id) + ": epoch " +
                  std::to_string(batch.epoch) + " is older than the current epoch " +
                  std::to_string(entry->epoch);
    return out;
  }
  if (batch.epoch > entry->epoch) {
    if (batch.first_seq != 0) {
      // first_seq > 0 (read_batch_identity and the produce path refuse negatives): the new
      // epoch's first batches may still be in flight, a gap.
      out.verdict = SequenceVerdict::kSequenceGap;
      out.expected_seq = 0;
      out.message = "producer " + std::to_string(batch.producer_id) + ": new epoch " +
                    std::to_string(batch.epoch) + " must start at sequence 0, got " +
                    std::to_string(batch.first_seq);
    }
    return out;
  }
  std::int32_t last = entry->batches.empty() ? -1 : entry->batches.back().last_seq;
  std::int32_t expected = last < 0 ? 0 : advance_sequence(last, 1);
  if (batch.first_seq != expected) {
    out.verdict = sequence_ahead(expected, batch.first_seq) ? SequenceVerdict::kSequenceGap
                                                            : SequenceVerdict::kOutOfOrder;
    out.expected_seq = expected;
    out.message = "producer " + std::to_string(batch.producer_id) + " epoch " +
                  std::to_string(batch.epoch) + ": expected sequence " + std::to_string(expected) +
                  ", got " + std::to_string(batch.first_seq);
  }
  return out;
}

bool SequenceGapWindows::retriable(std::int64_t producer_id, std::int64_t now_ms) {
  if (window_ms_ <= 0) return false;
  auto it = since_.find(producer_id);
  if (it == since_.end()) {
    if (since_.size() >= max_tracked_) return false;
    since_.emplace(producer_id, now_ms);
    return true;
  }
  return now_ms - it->second < window_ms_;
}

const ProducerEntry* ProducerStateTable::find(std::int64_t producer_id) const {
  auto it = producers_.find(producer_id);
  return it == producers_.end() ? nullptr : &it->second;
}

void ProducerStateTable::reset(LogIndex index) {
  producers_.clear();
  by_age_.clear();
  applied_ = index;
  // log_time_ms_ is kept: it only ever grows, and the expiry it drives is monotonic.
}

void ProducerStateTable::apply(LogIndex index, const std::optional<BatchIdentity>& batch,
                               KafkaOffset base_offset) {
  if (index <= applied_) return;
  applied_ = index;
  if (!batch.has_value() || batch->control || batch->producer_id < 0 || batch->epoch < 0 ||
      batch->first_seq < 0) {
    return;
  }
  log_time_ms_ = std::max(log_time_ms_, batch->max_timestamp_ms);
  auto [it, inserted] = producers_.try_emplace(batch->producer_id);
  ProducerEntry& entry = it->second;
  // The leader fenced older epochs before proposing; a committed batch of an older epoch can
  // only come from a deposed leader's entry that committed first — it does not roll back.
  if (!inserted && batch->epoch < entry.epoch) return;
  std::int64_t old_timestamp = entry.last_timestamp_ms;
  ProducerBatch cached;
  cached.first_seq = batch->first_seq;
  cached.last_seq = batch->last_seq;
  cached.base_offset = base_offset;
  cached.last_offset = base_offset + batch->last_offset_delta;
  cached.index = index;
  entry.extend(batch->epoch, cached, batch->max_timestamp_ms);
  if (!inserted) by_age_.erase({old_timestamp, batch->producer_id});
  by_age_.insert({entry.last_timestamp_ms, batch->producer_id});
  expire_and_bound(batch->producer_id);
}

void ProducerStateTable::erase(std::int64_t producer_id) {
  auto it = producers_.find(producer_id);
  if (it == producers_.end()) return;
  by_age_.erase({it->second.last_timestamp_ms, producer_id});
  producers_.erase(it);
}

// producer.id.expiration.ms against log time, then the cap (oldest first). The producer just
// written is never the victim.
void ProducerStateTable::expire_and_bound(std::int64_t keep_producer_id) {
  if (log_time_ms_ >= 0 && options_.expiration_ms >= 0) {
    std::int64_t horizon = log_time_ms_ - options_.expiration_ms;
    for (auto it = by_age_.begin(); it != by_age_.end() && it->first < horizon;) {
      std::int64_t id = it->second;
      ++it;
      if (id == keep_producer_id) continue;
      erase(id);
      ++expired_;
    }
  }
  std::size_t cap = std::max<std::uint32_t>(options_.producers_max, 1);
  while (producers_.size() > cap) {
    auto victim = by_age_.begin();
    if (victim->second == keep_producer_id) ++victim;
    erase(victim->second);
    ++evicted_;
  }
}

Buffer ProducerStateTable::encode() const {
  Buffer out;
  out.append(kMagic, sizeof(kMagic));
  le::put_u8(out, kFormatVersion);
  le::put_u64(out, applied_.value());
  le::put_i64(out, log_time_ms_);
  le::put_u32(out, static_cast<std::uint32_t>(producers_.size()));
  for (const auto& [id, entry] : producers_) {
    le::put_i64(out, id);
    le::put_u16(out, static_cast<std::uint16_t>(entry.epoch));
    le::put_i64(out, entry.last_timestamp_ms);
    le::put_u8(out, static_cast<std::uint8_t>(entry.batches.size()));
    for (const ProducerBatch& b : entry.batches) {
      le::put_u32(out, static_cast<std::uint32_t>(b.first_seq));
      le::put_u32(out, static_cast<std::uint32_t>(b.last_seq));
      le::put_i64(out, b.base_offset.value());
      le::put_i64(out, b.last_offset.value());
      le::put_u64(out, b.index.value());
    }
  }
  le::put_u32(out, crc32c::value(out.view()));
  return out;
}

Result<ProducerStateTable> ProducerStateTable::decode(BufferView bytes,
                                                      ProducerStateOptions options) {
  auto bad = [](const std::string& what) {
    return Status::corruption("producer state: " + what);
  };
  if (bytes.size() < sizeof(kMagic) + 1 + 8 + 8 + 4 + 4) return bad("truncated");
  BufferView body = bytes.subspan(0, bytes.size() - 4);
  if (le::decode_u32(bytes.data() + body.size()) != crc32c::value(body)) return bad("bad crc");
  if (!std::equal(std::begin(kMagic), std::end(kMagic), body.begin())) return bad("bad magic");
  le::LeReader r(body.subspan(sizeof(kMagic)));
  std::uint8_t version = 0;
  std::uint64_t applied = 0;
  std::uint32_t count = 0;
  ProducerStateTable table(options);
  if (!r.read_u8(&version) || version != kFormatVersion) return bad("unsupported version");
  if (!r.read_u64(&applied) || !r.read_i64(&table.log_time_ms_) || !r.read_u32(&count) ||
      count > r.remaining() / kProducerRecordBytes) {
    return bad("bad header");
  }
  table.applied_ = LogIndex(applied);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::int64_t id = 0;
    std::uint16_t epoch = 0;
    std::uint8_t batches = 0;
    ProducerEntry entry;
    if (!r.read_i64(&id) || !r.read_u16(&epoch) || !r.read_i64(&entry.last_timestamp_ms) ||
        !r.read_u8(&batches) || id < 0 || batches > kProducerBatchesCached ||
        static_cast<std::int16_t>(epoch) < 0) {
      return bad("bad producer record");
    }
    entry.epoch = static_cast<std::int16_t>(epoch);
    for (std::uint8_t j = 0; j < batches; ++j) {
      std::uint32_t first = 0, last = 0;
      std::int64_t base = 0, last_offset = 0;
      std::uint64_t index = 0;
      if (!r.read_u32(&first) || !r.read_u32(&last) || !r.read_i64(&base) ||
          !r.read_i64(&last_offset) || !r.read_u64(&index)) {
        return bad("bad batch record");
      }
      entry.batches.push_back(ProducerBatch{static_cast<std::int32_t>(first),
                                            static_cast<std::int32_t>(last), KafkaOffset(base),
                                            KafkaOffset(last_offset), LogIndex(index)});
    }
    if (!table.producers_.emplace(id, entry).second) return bad("duplicate producer id");
    table.by_age_.insert({entry.last_timestamp_ms, id});
  }
  if (!r.at_end()) return bad("trailing bytes");
  return table;
}

}  // namespace mq::cluster
