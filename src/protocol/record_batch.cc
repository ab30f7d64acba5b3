#include "protocol/record_batch.h"

#include <algorithm>
#include <string>

#include "base/crc32c.h"
#include "base/kafka_wire.h"

namespace mq::protocol {

namespace {

constexpr std::size_t kCrcStart = kRecordBatchAttributesOffset;
constexpr std::int32_t kBatchLengthMin =
    static_cast<std::int32_t>(kRecordBatchHeaderBytes - kRecordBatchLengthOverhead);

void store_be(std::span<std::uint8_t> bytes, std::size_t at, std::uint64_t v, int width) {
  MQ_ASSERT(at + static_cast<std::size_t>(width) <= bytes.size());
  for (int i = 0; i < width; ++i) {
    bytes[at + i] = static_cast<std::uint8_t>(v >> (8 * (width - 1 - i)));
  }
}

Status read_header(BufferView bytes, RecordBatchHeader* h) {
  KafkaReader r(bytes);
  MQ_RETURN_IF_ERROR(r.read_int64(&h->base_offset));
  MQ_RETURN_IF_ERROR(r.read_int32(&h->batch_length));
  MQ_RETURN_IF_ERROR(r.read_int32(&h->partition_leader_epoch));
  MQ_RETURN_IF_ERROR(r.read_int8(&h->magic));
  MQ_RETURN_IF_ERROR(r.read_uint32(&h->crc));
  MQ_RETURN_IF_ERROR(r.read_int16(&h->attributes));
  MQ_RETURN_IF_ERROR(r.read_int32(&h->last_offset_delta));
  MQ_RETURN_IF_ERROR(r.read_int64(&h->base_timestamp));
  MQ_RETURN_IF_ERROR(r.read_int64(&h->max_timestamp));
  MQ_RETURN_IF_ERROR(r.read_int64(&h->producer_id));
  MQ_RETURN_IF_ERROR(r.read_int16(&h->producer_epoch));
  MQ_RETURN_IF_ERROR(r.read_int32(&h->base_sequence));
  MQ_RETURN_IF_ERROR(r.read_int32(&h->record_count));
  MQ_ASSERT(r.position() == kRecordBatchHeaderBytes);
  return Status::ok();
}

// A varint length: -1 = null, otherwise 0..remaining.
Status read_varint_bytes(KafkaReader& r, const char* what, std::optional<BufferView>* out) {
  std::int32_t n = 0;
  MQ_RETURN_IF_ERROR(r.read_varint(&n));
  if (n < -1) return Status::corruption(std::string("record: negative ") + what + " length");
  if (n < 0) {
    out->reset();
    return Status::ok();
  }
  BufferView v;
  MQ_RETURN_IF_ERROR(r.read_raw(static_cast<std::size_t>(n), &v));
  *out = v;
  return Status::ok();
}

Status decode_record(KafkaReader& r, Record* rec) {
  std::int32_t length = 0;
  MQ_RETURN_IF_ERROR(r.read_varint(&length));
  if (length < 0) return Status::corruption("record: negative length");
  BufferView body;
  MQ_RETURN_IF_ERROR(r.read_raw(static_cast<std::size_t>(length), &body));
  KafkaReader b(body);
  MQ_RETURN_IF_ERROR(b.read_int8(&rec->attributes));
  MQ_RETURN_IF_ERROR(b.read_varlong(&rec->timestamp_delta));
  MQ_RETURN_IF_ERROR(b.read_varint(&rec->offset_delta));
  MQ_RETURN_IF_ERROR(read_varint_bytes(b, "key", &rec->key));
  MQ_RETURN_IF_ERROR(read_varint_bytes(b, "value", &rec->value));
  std::int32_t header_count = 0;
  MQ_RETURN_IF_ERROR(b.read_varint(&header_count));
  // Each header takes at least two bytes (two one-byte varint lengths).
  if (header_count < 0 || static_cast<std::size_t>(header_count) > b.remaining() / 2) {
    return Status::corruption("record: bad header count " + std::to_string(header_count));
  }
  rec->headers.clear();
  rec->headers.reserve(static_cast<std::size_t>(header_count));
  for (std::int32_t i = 0; i < header_count; ++i) {
    std::optional<BufferView> key;
    RecordHeader h;
    MQ_RETURN_IF_ERROR(read_varint_bytes(b, "header key", &key));
    if (!key) return Status::corruption("record: null header key");
    h.key = as_chars(*key);
    MQ_RETURN_IF_ERROR(read_varint_bytes(b, "header value", &h.value));
    rec->headers.push_back(h);
  }
  if (!b.at_end()) return Status::corruption("record: length does not match its fields");
  return Status::ok();
}

}  // namespace

Result<RecordBatchView> RecordBatchView::parse(BufferView bytes) {
  return parse_checked(bytes, true);
}

Result<RecordBatchView> RecordBatchView::parse_verified_earlier(BufferView bytes) {
  return parse_checked(bytes, false);
}

Result<RecordBatchView> RecordBatchView::parse_checked(BufferView bytes, bool verify_crc) {
  if (bytes.size() <= kRecordBatchMagicOffset) {
    return Status::out_of_range("record batch: incomplete (" + std::to_string(bytes.size()) +
                                " bytes)");
  }
  auto magic = static_cast<std::int8_t>(bytes[kRecordBatchMagicOffset]);
  if (magic == 0 || magic == 1) {
    return Status::unsupported("record batch: legacy message format v" + std::to_string(magic) +
                               " (magic " + std::to_string(magic) +
                               "); only record batch v2 is stored (Produce v3+)");
  }
  if (magic != kRecordBatchMagic) {
    return Status::unsupported("record batch: unsupported magic " + std::to_string(magic));
  }
  RecordBatchHeader h;
  KafkaReader prefix(bytes);
  MQ_RETURN_IF_ERROR(prefix.read_int64(&h.base_offset));
  MQ_RETURN_IF_ERROR(prefix.read_int32(&h.batch_length));
  if (h.batch_length < kBatchLengthMin) {
    return Status::corruption("record batch: invalid length " + std::to_string(h.batch_length));
  }
  if (h.size_bytes() > bytes.size()) {
    return Status::out_of_range("record batch: incomplete, " + std::to_string(h.size_bytes()) +
                                " bytes announced, " + std::to_string(bytes.size()) + " present");
  }
  BufferView batch = bytes.subspan(0, h.size_bytes());
  MQ_RETURN_IF_ERROR(read_header(batch, &h));
  std::uint32_t actual = verify_crc ? crc32c::value(batch.subspan(kCrcStart)) : h.crc;
  if (actual != h.crc) {
    return Status::corruption("record batch: CRC-32C mismatch (stored " + std::to_string(h.crc) +
                              ", computed " + std::to_string(actual) + ")");
  }
  if (h.record_count < 0 || h.last_offset_delta < 0) {
    return Status::corruption("record batch: negative record count or lastOffsetDelta");
  }
  if (h.record_count > 0 && h.record_count - 1 > h.last_offset_delta) {
    return Status::corruption("record batch: " + std::to_string(h.record_count) +
                              " records but lastOffsetDelta " +
                              std::to_string(h.last_offset_delta));
  }
  if (static_cast<std::uint8_t>(h.compression()) > static_cast<std::uint8_t>(Compression::kZstd)) {
    return Status::unsupported("record batch: unknown compression codec " +
                               std::to_string(h.attributes & kAttributeCompressionMask));
  }
  std::size_t records_bytes = h.size_bytes() - kRecordBatchHeaderBytes;
  if (h.compression() == Compression::kNone &&
      static_cast<std::size_t>(h.record_count) > records_bytes / kRecordBytesMin) {
    return Status::corruption("record batch: record count " + std::to_string(h.record_count) +
                              " cannot fit in " + std::to_string(records_bytes) + " bytes");
  }
  return RecordBatchView(batch, h);
}

Result<RecordSet> RecordBatchView::decode_records(const RecordBatchLimits& limits) const {
  RecordSet set;
  BufferView section = records_section();
  if (header_.compression() != Compression::kNone) {
    if (static_cast<std::size_t>(header_.record_count) >
        limits.decompressed_size_bytes_max / kRecordBytesMin) {
      return Status::limit_exceeded("record batch: record count above the decompression limit");
    }
    MQ_RETURN_IF_ERROR(decompress(header_.compression(), section,
                                  limits.decompressed_size_bytes_max, &set.storage));
    section = set.storage.view();
  }
  auto count = static_cast<std::size_t>(header_.record_count);
  if (count > section.size() / kRecordBytesMin) {
    return Status::corruption("record batch: record count " + std::to_string(count) +
                              " cannot fit in " + std::to_string(section.size()) + " bytes");
  }
  if (count > limits.decoded_bytes_max / sizeof(Record)) {
    return Status::limit_exceeded("record batch: " + std::to_string(count) +
                                  " records exceed the decoded-bytes limit");
  }
  set.records.resize(count);
  KafkaReader r(section);
  std::int64_t previous_delta = -1;
  for (Record& rec : set.records) {
    MQ_RETURN_IF_ERROR(decode_record(r, &rec));
    if (rec.offset_delta <= previous_delta || rec.offset_delta > header_.last_offset_delta) {
      return Status::corruption("record batch: offset delta " + std::to_string(rec.offset_delta) +
                                " out of order or beyond lastOffsetDelta");
    }
    previous_delta = rec.offset_delta;
  }
  if (!r.at_end()) {
    return Status::corruption("record batch: " + std::to_string(r.remaining()) +
                              " bytes after the last record");
  }
  return set;
}

Status RecordBatchView::validate_for_produce(const RecordBatchLimits& limits) const {
  if (header_.is_control()) return Status::invalid_argument("record batch: producers may not send control batches");
  if (header_.record_count < 1) return Status::corruption("record batch: no records");
  if (header_.last_offset_delta != header_.record_count - 1) {
    return Status::corruption("record batch: lastOffsetDelta != recordCount - 1");
  }
  MQ_ASSIGN_OR_RETURN(RecordSet set, decode_records(limits));
  for (std::size_t i = 0; i < set.records.size(); ++i) {
    if (set.records[i].offset_delta != static_cast<std::int32_t>(i)) {
      return Status::corruption("record batch: offset deltas are not 0..n-1");
    }
  }
  return Status::ok();
}

Result<std::vector<RecordBatchView>> parse_record_batches(BufferView bytes,
                                                          bool allow_partial_tail) {
  std::vector<RecordBatchView> batches;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    Result<RecordBatchView> batch = RecordBatchView::parse(bytes.subspan(pos));
    if (!batch.has_value()) {
      if (batch.error().code() == ErrorCode::kOutOfRange) {
        if (allow_partial_tail) break;
        return Status::corruption(batch.error().message());
      }
      return std::move(batch).error();
    }
    pos += batch->bytes().size();
    batches.push_back(*batch);
  }
  return batches;
}

void set_base_offset(std::span<std::uint8_t> batch, std::int64_t base_offset) {
  MQ_ASSERT(batch.size() >= kRecordBatchHeaderBytes);
  store_be(batch, 0, static_cast<std::uint64_t>(base_offset), 8);
}

void set_partition_leader_epoch(std::span<std::uint8_t> batch, std::int32_t epoch) {
  MQ_ASSERT(batch.size() >= kRecordBatchHeaderBytes);
  store_be(batch, kRecordBatchEpochOffset, static_cast<std::uint32_t>(epoch), 4);
}

void update_crc(std::span<std::uint8_t> batch) {
  MQ_ASSERT(batch.size() >= kRecordBatchHeaderBytes);
  std::uint32_t crc = crc32c::value(batch.data() + kCrcStart, batch.size() - kCrcStart);
  store_be(batch, kRecordBatchCrcOffset, crc, 4);
}

void set_log_append_time(std::span<std::uint8_t> batch, std::int64_t timestamp) {
  MQ_ASSERT(batch.size() >= kRecordBatchHeaderBytes);
  auto attributes = static_cast<std::uint16_t>((batch[kRecordBatchAttributesOffset] << 8) |
                                               batch[kRecordBatchAttributesOffset + 1]);
  attributes |= static_cast<std::uint16_t>(kAttributeLogAppendTime);
  store_be(batch, kRecordBatchAttributesOffset, attributes, 2);
  store_be(batch, kRecordBatchMaxTimestampOffset, static_cast<std::uint64_t>(timestamp), 8);
  update_crc(batch);
}

namespace {

void write_varint_bytes(KafkaWriter& w, const std::optional<Buffer>& v) {
  if (!v) {
    w.write_varint(-1);
    return;
  }
  w.write_varint(static_cast<std::int32_t>(v->size()));
  w.write_raw(v->view());
}

void encode_record(KafkaWriter& out, const RecordInput& in, std::int64_t base_timestamp,
                   std::int32_t offset_delta) {
  Buffer body;
  KafkaWriter b(&body);
  b.write_int8(0);
  b.write_varlong(in.timestamp - base_timestamp);
  b.write_varint(offset_delta);
  write_varint_bytes(b, in.key);
  write_varint_bytes(b, in.value);
  b.write_varint(static_cast<std::int32_t>(in.headers.size()));
  for (const auto& [key, value] : in.headers) {
    b.write_varint(static_cast<std::int32_t>(key.size()));
    b.write_raw(as_bytes(key));
    write_varint_bytes(b, value);
  }
  out.write_varint(static_cast<std::int32_t>(body.size()));
  out.write_raw(body.view());
}

}  // namespace

Result<Buffer> build_record_batch(const RecordBatchOptions& options,
                                  std::span<const RecordInput> records) {
  if (records.empty()) return Status::invalid_argument("record batch: no records");
  if (records.size() > 0x7fffffff) return Status::invalid_argument("record batch: too many records");
  std::int64_t base_timestamp = records.front().timestamp;
  std::int64_t max_timestamp = base_timestamp;
  Buffer plain;
  KafkaWriter pw(&plain);
  for (std::size_t i = 0; i < records.size(); ++i) {
    max_timestamp = std::max(max_timestamp, records[i].timestamp);
    encode_record(pw, records[i], base_timestamp, static_cast<std::int32_t>(i));
  }
  Buffer section;
  MQ_RETURN_IF_ERROR(compress(options.compression, plain.view(), &section));
  std::size_t total = kRecordBatchHeaderBytes + section.size();
  if (total - kRecordBatchLengthOverhead > 0x7fffffff) {
    return Status::invalid_argument("record batch: too large");
  }
  std::int16_t attributes = static_cast<std::int16_t>(options.compression);
  if (options.log_append_time) attributes |= kAttributeLogAppendTime;
  if (options.transactional) attributes |= kAttributeTransactional;
  if (options.control) attributes |= kAttributeControl;

  Buffer out;
  out.reserve(total);
  KafkaWriter w(&out);
  w.write_int64(options.base_offset);
  w.write_int32(static_cast<std::int32_t>(total - kRecordBatchLengthOverhead));
  w.write_int32(options.partition_leader_epoch);
  w.write_int8(kRecordBatchMagic);
  w.write_uint32(0);  // CRC, filled below
  w.write_int16(attributes);
  w.write_int32(static_cast<std::int32_t>(records.size() - 1));
  w.write_int64(base_timestamp);
  w.write_int64(max_timestamp);
  w.write_int64(options.producer_id);
  w.write_int16(options.producer_epoch);
  w.write_int32(options.base_sequence);
  w.write_int32(static_cast<std::int32_t>(records.size()));
  MQ_ASSERT(out.size() == kRecordBatchHeaderBytes);
  w.write_raw(section.view());
  update_crc(std::span<std::uint8_t>(out.data(), out.size()));
  return out;
}

Result<Buffer> build_control_batch(const ControlBatchOptions& options, BufferView value) {
  RecordInput rec;
  Buffer key;
  KafkaWriter kw(&key);
  kw.write_int16(0);  // control key version
  kw.write_int16(static_cast<std::int16_t>(options.type));
  rec.key = std::move(key);
  rec.value = Buffer(value);
  rec.timestamp = options.timestamp;
  RecordBatchOptions batch;
  batch.base_offset = options.base_offset;
  batch.partition_leader_epoch = options.partition_leader_epoch;
  batch.producer_id = options.producer_id;
  batch.producer_epoch = options.producer_epoch;
  batch.control = true;
  // Kafka marks transaction markers (abort/commit) transactional; other control types not.
  batch.transactional =
      options.type == ControlType::kAbort || options.type == ControlType::kCommit;
  return build_record_batch(batch, std::span<const RecordInput>(&rec, 1));
}

Result<ControlType> parse_control_key(BufferView key) {
  KafkaReader r(key);
  std::int16_t version = 0;
  std::int16_t type = 0;
  MQ_RETURN_IF_ERROR(r.read_int16(&version));
  MQ_RETURN_IF_ERROR(r.read_int16(&type));
  if (version != 0) {
    return Status::unsupported("control record: key version " + std::to_string(version));
  }
  return static_cast<ControlType>(type);
}

}  // namespace mq::protocol
