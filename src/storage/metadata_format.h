// Small metadata files, each replaced atomically (write "<name>.tmp", fsync, rename, fsync
// the directory): the Raft hard state, the log's own state, and snapshots. Specifications:
// docs/formats/raft_metadata_format.md and snapshot_format.md. Little-endian.
//
//   hard_state (40 bytes) := magic u32 "MQHS" | version u16 | reserved u16 | term u64 |
//                            vote u64 | commit u64 | reserved u32 | crc u32
//   log_meta   (40 bytes) := magic u32 "MQLM" | version u16 | reserved u16 | start_index u64 |
//                            start_offset i64 | truncate_from u64 | reserved u32 | crc u32
//   snapshot := snapshot_header (48 bytes) config[config_length] data[data_length] body_crc u32
//   snapshot_header := magic u32 "MQSN" | version u16 | reserved u16 | index u64 | term u64 |
//                      data_length u64 | config_length u32 | reserved u32 | reserved u32 |
//                      header_crc u32
//
// crc / header_crc cover every byte of the structure before them; body_crc covers config
// followed by data.
#pragma once

#include <cstdint>

#include "base/buffer.h"
#include "base/result.h"
#include "base/strong_id.h"

namespace mq::storage {

namespace metadata_format {
// DO NOT CHANGE: persisted.
inline constexpr std::uint32_t kHardStateMagic = 0x5348514d;  // "MQHS"
inline constexpr std::uint32_t kLogMetaMagic = 0x4d4c514d;    // "MQLM"
inline constexpr std::uint32_t kSnapshotMagic = 0x4e53514d;   // "MQSN"
inline constexpr std::uint16_t kVersion = 1;
inline constexpr const char* kHardStateFileName = "raft.state";
inline constexpr const char* kLogMetaFileName = "log.meta";
inline constexpr const char* kSnapshotFileName = "snapshot";
inline constexpr const char* kTempSuffix = ".tmp";
}  // namespace metadata_format

struct HardStateRecord {
  static constexpr std::size_t kEncodedSize = 40;
  Term term;
  NodeId vote;
  LogIndex commit;

  void encode_to(std::uint8_t* out) const;
  static Result<HardStateRecord> decode_from(BufferView bytes);
  bool operator==(const HardStateRecord&) const = default;
};

// The log's own durable state (see log.h, "Crash rules").
struct LogMetaRecord {
  static constexpr std::size_t kEncodedSize = 40;
  LogIndex start_index{1};     // first Raft index logically in the log
  KafkaOffset start_offset{0}; // Kafka offset of start_index's entry, or the next offset if empty
  LogIndex truncate_from{0};   // 0, or a suffix truncation that must be (re)done at start-up

  void encode_to(std::uint8_t* out) const;
  static Result<LogMetaRecord> decode_from(BufferView bytes);
  bool operator==(const LogMetaRecord&) const = default;
};

struct SnapshotHeader {
  static constexpr std::size_t kEncodedSize = 48;
  static constexpr std::size_t kTrailerSize = 4;  // body_crc
  LogIndex index;
  Term term;
  std::uint64_t data_length = 0;
  std::uint32_t config_length = 0;

  void encode_to(std::uint8_t* out) const;
  static Result<SnapshotHeader> decode_from(BufferView bytes);
};

static_assert(HardStateRecord::kEncodedSize == 40, "DO NOT CHANGE: persisted");
static_assert(LogMetaRecord::kEncodedSize == 40, "DO NOT CHANGE: persisted");
static_assert(SnapshotHeader::kEncodedSize == 48, "DO NOT CHANGE: persisted");

}  // namespace mq::storage
