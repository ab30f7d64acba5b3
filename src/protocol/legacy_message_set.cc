#include "protocol/legacy_message_set.h"

#include <zlib.h>

#include <string>
#include <vector>

#include "base/kafka_wire.h"

namespace mq::protocol {

namespace {

constexpr std::size_t kLogOverheadBytes = 12;   // offset int64 + message_size int32
constexpr std::size_t kMessageV0BytesMin = 14;  // crc, magic, attributes, two -1 lengths
constexpr int kLegacyCodecMax = 3;              // lz4 (zstd exists only for magic 2)

struct Converter {
  const RecordBatchLimits& limits;
  std::vector<RecordInput> records;
  Compression outer_codec = Compression::kNone;

  Status read_bytes_field(KafkaReader& r, std::optional<Buffer>* out) {
    std::optional<Buffer> v;
    MQ_RETURN_IF_ERROR(r.read_nullable_bytes(false, &v));
    *out = std::move(v);
    return Status::ok();
  }

  // depth 0: the produced set; depth 1: the inner set of a compressed wrapper.
  Status convert_set(BufferView set, int depth, std::optional<std::int64_t> wrapper_time) {
    KafkaReader r(set);
    while (!r.at_end()) {
      std::int64_t offset = 0;
      std::int32_t size = 0;
      MQ_RETURN_IF_ERROR(r.read_int64(&offset));
      MQ_RETURN_IF_ERROR(r.read_int32(&size));
      if (size < static_cast<std::int32_t>(kMessageV0BytesMin)) {
        return Status::corruption("legacy message: size " + std::to_string(size) + " too small");
      }
      BufferView message;
      MQ_RETURN_IF_ERROR(r.read_raw(static_cast<std::size_t>(size), &message));
      MQ_RETURN_IF_ERROR(convert_message(message, depth, wrapper_time));
    }
    return Status::ok();
  }

  Status convert_message(BufferView message, int depth, std::optional<std::int64_t> wrapper_time) {
    KafkaReader m(message);
    std::uint32_t stored_crc = 0;
    std::int8_t magic = 0;
    std::int8_t attributes = 0;
    std::int64_t timestamp = -1;
    MQ_RETURN_IF_ERROR(m.read_uint32(&stored_crc));
    BufferView covered = m.rest();
    auto actual = static_cast<std::uint32_t>(
        crc32(0L, covered.data(), static_cast<uInt>(covered.size())));
    if (actual != stored_crc) return Status::corruption("legacy message: CRC-32 mismatch");
    MQ_RETURN_IF_ERROR(m.read_int8(&magic));
    if (magic != 0 && magic != 1) {
      return Status::unsupported("legacy message set: magic " + std::to_string(magic) + " mixed in");
    }
    MQ_RETURN_IF_ERROR(m.read_int8(&attributes));
    if (magic == 1) MQ_RETURN_IF_ERROR(m.read_int64(&timestamp));
    RecordInput rec;
    MQ_RETURN_IF_ERROR(read_bytes_field(m, &rec.key));
    MQ_RETURN_IF_ERROR(read_bytes_field(m, &rec.value));
    if (!m.at_end()) return Status::corruption("legacy message: size does not match its fields");
    int codec = attributes & kAttributeCompressionMask;
    if (codec > kLegacyCodecMax) {
      return Status::unsupported("legacy message: unknown codec " + std::to_string(codec));
    }
    if (codec != 0) {
      if (depth > 0) return Status::corruption("legacy message: nested compression");
      if (!rec.value) return Status::corruption("legacy message: compressed wrapper without value");
      outer_codec = static_cast<Compression>(codec);
      Buffer inner;
      MQ_RETURN_IF_ERROR(decompress(outer_codec, rec.value->view(),
                                    limits.decompressed_size_bytes_max, &inner));
      bool log_append = magic == 1 && (attributes & kAttributeLogAppendTime) != 0;
      return convert_set(inner, depth + 1,
                         log_append ? std::optional<std::int64_t>(timestamp) : std::nullopt);
    }
    rec.timestamp = wrapper_time.value_or(timestamp);
    records.push_back(std::move(rec));
    return Status::ok();
  }
};

}  // namespace

bool is_legacy_message_set(BufferView bytes) {
  return bytes.size() > kRecordBatchMagicOffset &&
         (bytes[kRecordBatchMagicOffset] == 0 || bytes[kRecordBatchMagicOffset] == 1);
}

Result<Buffer> convert_legacy_message_set(BufferView bytes, const RecordBatchLimits& limits) {
  static_assert(kLogOverheadBytes + 4 == kRecordBatchMagicOffset, "magic offset shared by formats");
  Converter c{limits, {}, Compression::kNone};
  MQ_RETURN_IF_ERROR(c.convert_set(bytes, 0, std::nullopt));
  if (c.records.empty()) return Status::corruption("legacy message set: no messages");
  RecordBatchOptions options;
  options.compression = c.outer_codec;
  return build_record_batch(options, c.records);
}

}  // namespace mq::protocol
