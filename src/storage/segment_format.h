// The segment file format, shared by the writer (segment.cc), the reader, recovery and
// raftmq-segment-dump. Specification: docs/formats/segment_format.md. Little-endian.
//
//   segment      := segment_header entry*
//   segment_header (32 bytes) := magic u32 | version u16 | flags u16 | base_index u64 |
//                                created_ms i64 | reserved u32 | header_crc u32
//   entry        := entry_header (56 bytes) payload[payload_length]
//   entry_header := header_crc u32 | payload_crc u32 | payload_length u32 |
//                   last_offset_delta u32 | term u64 | index u64 | base_offset i64 |
//                   max_timestamp i64 | kind u8 | reserved u8[7]
//
// header_crc of the segment header covers its bytes [0, 28); header_crc of an entry header
// covers its bytes [4, 56) (so it also protects payload_crc); payload_crc covers the payload.
// All CRCs are CRC-32C. Reserved bytes are written as zero and must read as zero.
#pragma once

#include <cstdint>
#include <string>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"

namespace mq::storage {

// DO NOT CHANGE: persisted.
enum class EntryKind : std::uint8_t {
  kRecordBatch = 0,   // a Kafka v2 record batch, stored verbatim
  kRaftNoop = 1,      // a new leader's no-op (§5.4.2); the caller stores a control batch
  kConfigChange = 2,  // a Raft membership change; the caller stores a control batch
};
inline constexpr std::uint8_t kEntryKindMax = 2;
const char* entry_kind_name(EntryKind kind);

namespace segment_format {

// DO NOT CHANGE: persisted. "MQSG" read as little-endian bytes 4d 51 53 47.
inline constexpr std::uint32_t kSegmentMagic = 0x4753514d;
// Version rule: a reader refuses (kUnsupported) a segment whose version is newer than the
// newest it knows; older versions are read as documented.
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kSegmentHeaderSize = 32;
inline constexpr std::size_t kSegmentHeaderCrcOffset = 28;
inline constexpr std::size_t kEntryHeaderSize = 56;
inline constexpr std::size_t kEntryHeaderCrcStart = 4;  // header_crc covers [4, 56)
// Largest payload the format allows (a configured limit may be lower). A length field
// above it is corruption, which also bounds what a corrupt length can make us allocate.
inline constexpr std::uint32_t kPayloadBytesMax = 64u << 20;
// Positions inside a segment are u32 in the index files, so a segment stays below 4 GiB.
inline constexpr std::uint64_t kSegmentBytesMax = (1ull << 32) - 1;
// Concurrent writes (LogOptions::direct_write_depth > 1): the writes of a tail not yet
// completed always lie within this many bytes (depth x part size is capped to it), so a
// crash can leave never-written (zero) blocks only with written bytes at most this far
// after them. Recovery cuts such a hole like a torn tail (segment_format.md, "Concurrent
// writes").
inline constexpr std::uint64_t kConcurrentWriteSpanMax = 8ull << 20;

// File names: the base Raft index, zero-padded to 20 digits, so names sort by index.
inline constexpr const char* kSegmentSuffix = ".log";
inline constexpr const char* kOffsetIndexSuffix = ".index";
inline constexpr const char* kTimeIndexSuffix = ".timeindex";
inline constexpr std::size_t kIndexDigits = 20;
std::string file_stem(LogIndex base_index);  // "00000000000000000001"
// Parses "<20 digits><suffix>"; false when the name does not have that shape.
bool parse_file_name(const std::string& name, const char* suffix, LogIndex* base_index);

}  // namespace segment_format

struct SegmentHeader {
  static constexpr std::size_t kEncodedSize = segment_format::kSegmentHeaderSize;
  std::uint16_t version = segment_format::kVersion;
  std::uint16_t flags = 0;
  LogIndex base_index;
  std::int64_t created_ms = 0;

  void encode_to(std::uint8_t* out) const;  // kEncodedSize bytes
  // Checks magic, CRC, version, reserved bytes.
  static Result<SegmentHeader> decode_from(BufferView bytes);
};

// The metadata of one stored entry (everything but the payload).
struct EntryHeader {
  static constexpr std::size_t kEncodedSize = segment_format::kEntryHeaderSize;
  std::uint32_t payload_crc = 0;
  std::uint32_t payload_length = 0;
  std::uint32_t last_offset_delta = 0;  // Kafka: records in the batch - 1
  Term term;
  LogIndex index;
  KafkaOffset base_offset;
  std::int64_t max_timestamp = -1;  // Kafka milliseconds; -1 when unknown
  EntryKind kind = EntryKind::kRecordBatch;

  KafkaOffset last_offset() const { return base_offset + last_offset_delta; }
  std::uint64_t stored_size() const { return kEncodedSize + payload_length; }

  void encode_to(std::uint8_t* out) const;  // kEncodedSize bytes, header_crc computed
  // Checks header_crc, kind, reserved bytes, payload_length <= kPayloadBytesMax and offset
  // sanity. Does not check the payload (see verify_payload).
  static Result<EntryHeader> decode_from(BufferView bytes);
  Status verify_payload(BufferView payload) const;
};

static_assert(SegmentHeader::kEncodedSize == 32, "DO NOT CHANGE: persisted");
static_assert(EntryHeader::kEncodedSize == 56, "DO NOT CHANGE: persisted");
static_assert(segment_format::kSegmentHeaderCrcOffset + 4 == SegmentHeader::kEncodedSize);
static_assert(sizeof(EntryKind) == 1);

}  // namespace mq::storage
