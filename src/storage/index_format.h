// The sparse index files of a closed segment: "<stem>.index" (Raft index and Kafka offset →
// position) and "<stem>.timeindex" (running max timestamp → position). Specifications:
// docs/formats/offset_index_format.md and time_index_format.md. Little-endian.
//
//   index_file   := index_header index_entry*
//   index_header (32 bytes) := magic u32 | version u16 | reserved u16 | base_index u64 |
//                              base_offset i64 | reserved u32 | header_crc u32
//   offset entry (16 bytes) := relative_index u32 | relative_offset u32 | position u32 | crc u32
//   time entry   (16 bytes) := max_timestamp i64 | position u32 | crc u32
//
// An index entry is written for the first entry of a segment and then for the first entry
// that starts at least index_interval_bytes after the previous indexed one. Both files hold
// one entry per indexed segment entry, in the same order. header_crc covers header bytes
// [0, 28); an entry's crc covers its first 12 bytes. Index files are derived data: any
// defect makes the log rebuild them from the segment.
#pragma once

#include <cstdint>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"

namespace mq::storage {

namespace index_format {
// DO NOT CHANGE: persisted. "MQOI" / "MQTI" as little-endian bytes.
inline constexpr std::uint32_t kOffsetIndexMagic = 0x494f514d;
inline constexpr std::uint32_t kTimeIndexMagic = 0x4954514d;
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;
inline constexpr std::size_t kEntrySize = 16;
}  // namespace index_format

struct IndexHeader {
  static constexpr std::size_t kEncodedSize = index_format::kHeaderSize;
  std::uint32_t magic = index_format::kOffsetIndexMagic;
  LogIndex base_index;       // the segment's base Raft index
  KafkaOffset base_offset;   // base offset of the segment's first entry

  void encode_to(std::uint8_t* out) const;
  static Result<IndexHeader> decode_from(BufferView bytes, std::uint32_t expected_magic);
};

// Raft index and Kafka offset of the entry starting at `position`, relative to the segment.
struct OffsetIndexEntry {
  static constexpr std::size_t kEncodedSize = index_format::kEntrySize;
  std::uint32_t relative_index = 0;   // entry index - segment base index
  std::uint32_t relative_offset = 0;  // entry base offset - segment's first base offset
  std::uint32_t position = 0;         // byte position of the entry header in the segment

  void encode_to(std::uint8_t* out) const;
  static Result<OffsetIndexEntry> decode_from(BufferView bytes);
  bool operator==(const OffsetIndexEntry&) const = default;
};

// max_timestamp is the largest max_timestamp of the segment's entries up to and including
// the entry starting at `position` (a running maximum, so it never decreases along a file).
struct TimeIndexEntry {
  static constexpr std::size_t kEncodedSize = index_format::kEntrySize;
  std::int64_t max_timestamp = -1;
  std::uint32_t position = 0;

  void encode_to(std::uint8_t* out) const;
  static Result<TimeIndexEntry> decode_from(BufferView bytes);
  bool operator==(const TimeIndexEntry&) const = default;
};

static_assert(IndexHeader::kEncodedSize == 32, "DO NOT CHANGE: persisted");
static_assert(OffsetIndexEntry::kEncodedSize == 16, "DO NOT CHANGE: persisted");
static_assert(TimeIndexEntry::kEncodedSize == 16, "DO NOT CHANGE: persisted");

}  // namespace mq::storage
