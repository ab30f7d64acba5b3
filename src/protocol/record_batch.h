// A view over Kafka record batch v2 bytes (KIP-98 format; magic 2), the unit raftmq stores and
// replicates. Layout (big-endian; offsets in bytes):
//
//    0 baseOffset int64        -- outside the CRC: the leader stamps it
//    8 batchLength int32       -- bytes after this field (total size - 12)
//   12 partitionLeaderEpoch int32  -- outside the CRC: the leader stamps its term/epoch
//   16 magic int8 (= 2)
//   17 crc uint32              -- CRC-32C of bytes [21, end)
//   21 attributes int16        -- bits 0-2 compression, 3 timestamp type, 4 transactional,
//                                 5 control, 6 delete horizon
//   23 lastOffsetDelta int32
//   27 baseTimestamp int64
//   35 maxTimestamp int64
//   43 producerId int64
//   51 producerEpoch int16
//   53 baseSequence int32
//   57 recordCount int32
//   61 records (compressed as a whole when the codec is not none)
//
// record := length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
//           keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
//           headerCount varint, (keyLength varint, key, valueLength varint, value)*
//
// Legacy message sets (magic 0 and 1, Produce v0-2) keep the magic byte at offset 16 too; they
// are recognised and refused with Unsupported (raftmq stores v2 only; docs/kafka_apis.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/buffer.h"
#include "base/result.h"
#include "protocol/compression.h"

namespace mq::protocol {

inline constexpr std::size_t kRecordBatchHeaderBytes = 61;
inline constexpr std::size_t kRecordBatchLengthOffset = 8;
inline constexpr std::size_t kRecordBatchEpochOffset = 12;
inline constexpr std::size_t kRecordBatchMagicOffset = 16;
inline constexpr std::size_t kRecordBatchCrcOffset = 17;
inline constexpr std::size_t kRecordBatchAttributesOffset = 21;
inline constexpr std::size_t kRecordBatchMaxTimestampOffset = 35;
// batchLength counts the bytes after itself.
inline constexpr std::size_t kRecordBatchLengthOverhead = 12;
inline constexpr std::int8_t kRecordBatchMagic = 2;
// The smallest encoded record: seven one-byte varints/ints.
inline constexpr std::size_t kRecordBytesMin = 7;

inline constexpr std::int16_t kAttributeCompressionMask = 0x07;
inline constexpr std::int16_t kAttributeLogAppendTime = 0x08;
inline constexpr std::int16_t kAttributeTransactional = 0x10;
inline constexpr std::int16_t kAttributeControl = 0x20;
inline constexpr std::int16_t kAttributeDeleteHorizon = 0x40;

// Control record types (the key of a control record: int16 version 0, int16 type).
enum class ControlType : std::int16_t {
  kAbort = 0,
  kCommit = 1,
  kLeaderChange = 2,  // KRaft uses it for a new leader's first entry; raftmq for its no-ops
};

struct RecordBatchLimits {
  // Bomb guard: a compressed batch may not inflate beyond this.
  std::size_t decompressed_size_bytes_max = 64 * 1024 * 1024;
  // Memory for the decoded Record entries (each ~100 bytes, from as little as 7 wire bytes).
  std::size_t decoded_bytes_max = 256 * 1024 * 1024;
};

struct RecordBatchHeader {
  std::int64_t base_offset = 0;
  std::int32_t batch_length = 0;
  std::int32_t partition_leader_epoch = -1;
  std::int8_t magic = kRecordBatchMagic;
  std::uint32_t crc = 0;
  std::int16_t attributes = 0;
  std::int32_t last_offset_delta = 0;
  std::int64_t base_timestamp = 0;
  std::int64_t max_timestamp = 0;
  std::int64_t producer_id = -1;
  std::int16_t producer_epoch = -1;
  std::int32_t base_sequence = -1;
  std::int32_t record_count = 0;

  Compression compression() const {
    return static_cast<Compression>(attributes & kAttributeCompressionMask);
  }
  bool is_log_append_time() const { return (attributes & kAttributeLogAppendTime) != 0; }
  bool is_transactional() const { return (attributes & kAttributeTransactional) != 0; }
  bool is_control() const { return (attributes & kAttributeControl) != 0; }
  std::int64_t last_offset() const { return base_offset + last_offset_delta; }
  std::size_t size_bytes() const {
    return static_cast<std::size_t>(batch_length) + kRecordBatchLengthOverhead;
  }
};

struct RecordHeader {
  std::string_view key;
  std::optional<BufferView> value;
};

// Views into the batch bytes (uncompressed) or into RecordSet::storage (compressed).
struct Record {
  std::int8_t attributes = 0;
  std::int64_t timestamp_delta = 0;
  std::int32_t offset_delta = 0;
  std::optional<BufferView> key;
  std::optional<BufferView> value;
  std::vector<RecordHeader> headers;
};

// Decoded records of one batch. Move-only: the views point into `storage` when the batch was
// compressed (moving keeps the heap block, copying would not).
struct RecordSet {
  RecordSet() = default;
  RecordSet(RecordSet&&) = default;
  RecordSet& operator=(RecordSet&&) = default;
  RecordSet(const RecordSet&) = delete;
  RecordSet& operator=(const RecordSet&) = delete;
  Buffer storage;
  std::vector<Record> records;
};

class RecordBatchView {
 public:
  // Parses and validates the batch at the start of `bytes` (more bytes may follow): lengths,
  // magic, CRC-32C, record count against the available bytes, lastOffsetDelta. Errors:
  // Corruption (bad CRC, inconsistent lengths or counts), Unsupported (magic 0/1 or unknown
  // magic or codec), OutOfRange (the batch is incomplete: fewer bytes than batchLength says).
  static Result<RecordBatchView> parse(BufferView bytes);
  // The same checks but the CRC-32C, for bytes whose CRC was verified before by this process
  // (a produce request's batch after validation, an entry received in a checksummed frame):
  // the CRC pass is most of the cost of parsing a large batch.
  static Result<RecordBatchView> parse_verified_earlier(BufferView bytes);

  const RecordBatchHeader& header() const { return header_; }
  BufferView bytes() const { return bytes_; }
  // The (possibly compressed) records section.
  BufferView records_section() const { return bytes_.subspan(kRecordBatchHeaderBytes); }

  // Decodes every record, decompressing if needed; validates each record's length, that their
  // number equals recordCount and that offset deltas increase and stay <= lastOffsetDelta.
  Result<RecordSet> decode_records(const RecordBatchLimits& limits = {}) const;
  // Extra checks for a batch a producer sends: offset deltas are exactly 0..n-1, n >= 1 and
  // lastOffsetDelta == n-1 (KIP-98), not a control batch.
  Status validate_for_produce(const RecordBatchLimits& limits = {}) const;

 private:
  static Result<RecordBatchView> parse_checked(BufferView bytes, bool verify_crc);
  RecordBatchView(BufferView bytes, const RecordBatchHeader& header)
      : bytes_(bytes), header_(header) {}
  BufferView bytes_;
  RecordBatchHeader header_;
};

// A set of concatenated batches (the `records` field of Produce and Fetch).
// allow_partial_tail: a fetch response may end in a truncated batch, which consumers ignore;
// a produce request may not.
Result<std::vector<RecordBatchView>> parse_record_batches(BufferView bytes,
                                                          bool allow_partial_tail = false);

// Stamping, as the partition leader does: both fields lie before the CRC'd range, so the CRC
// stays valid. `batch` must hold a parsed batch.
void set_base_offset(std::span<std::uint8_t> batch, std::int64_t base_offset);
void set_partition_leader_epoch(std::span<std::uint8_t> batch, std::int32_t epoch);
// Recomputes the CRC-32C after a change inside the CRC'd range (e.g. max timestamp).
void update_crc(std::span<std::uint8_t> batch);
// For topics with message.timestamp.type=LogAppendTime: sets the timestamp-type attribute and
// maxTimestamp to the broker's time (consumers then read every record's timestamp as it,
// KIP-32), and recomputes the CRC.
void set_log_append_time(std::span<std::uint8_t> batch, std::int64_t timestamp);

// Building batches (tools, tests, control batches).
struct RecordInput {
  std::optional<Buffer> key;
  std::optional<Buffer> value;
  std::vector<std::pair<std::string, std::optional<Buffer>>> headers;
  std::int64_t timestamp = 0;
};
struct RecordBatchOptions {
  Compression compression = Compression::kNone;
  std::int64_t base_offset = 0;
  std::int32_t partition_leader_epoch = -1;
  std::int64_t producer_id = -1;
  std::int16_t producer_epoch = -1;
  std::int32_t base_sequence = -1;
  bool transactional = false;
  bool control = false;
  bool log_append_time = false;
};
Result<Buffer> build_record_batch(const RecordBatchOptions& options,
                                  std::span<const RecordInput> records);

// A control batch holding one control record (key: version 0, type; value as given). Clients
// skip control batches, so raftmq stores Raft's own entries (a new leader's no-op, config
// changes) as these and they still occupy a Kafka offset (DESIGN.md "Indexes and offsets").
struct ControlBatchOptions {
  std::int64_t base_offset = 0;
  std::int32_t partition_leader_epoch = -1;
  std::int64_t timestamp = 0;
  std::int64_t producer_id = -1;
  std::int16_t producer_epoch = -1;
  ControlType type = ControlType::kLeaderChange;
};
Result<Buffer> build_control_batch(const ControlBatchOptions& options, BufferView value);
// The type of a control record's key (version int16 must be 0).
Result<ControlType> parse_control_key(BufferView key);

}  // namespace mq::protocol
