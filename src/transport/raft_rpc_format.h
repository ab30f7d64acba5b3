// Constants shared by the writer and the reader of the inter-broker Raft RPC wire format
// (docs/formats/raft_rpc_format.md is the specification; this header only names its numbers,
// in the manner of leveldb db/log_format.h). All integers on this wire are little-endian.
//
// Values marked "DO NOT CHANGE: on the wire" are understood by every broker of a cluster; a
// change needs a new protocol version (see the version rule in the format document).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mq::transport {

// ---- Connection handshake -------------------------------------------------------------------
// hello     := magic u32 | version u16 | body_length u16 | body | crc u32
// hello_ack := magic u32 | version u16 | status u16 | broker_id i32 | crc u32

// DO NOT CHANGE: on the wire. Bytes "MQRT" in stream order.
inline constexpr std::uint32_t kHelloMagic = 0x5452514d;
// DO NOT CHANGE: on the wire. Bytes "MQAK" in stream order.
inline constexpr std::uint32_t kHelloAckMagic = 0x4b41514d;

// Protocol versions this build speaks. A hello whose version is outside
// [kMinProtocolVersion, kMaxProtocolVersion] is refused with HelloStatus::kUnsupportedVersion.
inline constexpr std::uint16_t kMinProtocolVersion = 1;
inline constexpr std::uint16_t kMaxProtocolVersion = 1;

// A hello whose target is this value is meant for whichever broker listens at the address (a
// broker contacting a seed whose id it does not know yet: cluster::Node's join); the ack names
// the responder. Any other negative target is refused (kWrongTarget).
inline constexpr std::int32_t kAnyBrokerTarget = -1;

inline constexpr std::size_t kHelloPrefixSize = 8;  // magic, version, body_length
inline constexpr std::size_t kHelloFixedBodySize = 4 + 4 + 2;  // source, target, id length
inline constexpr std::size_t kClusterIdBytesMax = 255;
inline constexpr std::size_t kHelloBodyBytesMax = kHelloFixedBodySize + kClusterIdBytesMax;
inline constexpr std::size_t kHelloAckSize = 16;
static_assert(kHelloAckSize == 4 + 2 + 2 + 4 + 4);

// DO NOT CHANGE: on the wire.
enum class HelloStatus : std::uint16_t {
  kOk = 0,
  kUnsupportedVersion = 1,  // the ack's version field holds the responder's max version
  kClusterMismatch = 2,     // the sender belongs to another cluster
  kWrongTarget = 3,         // the sender meant another broker (stale address)
  kMalformed = 4,           // bad crc, length or field
  kTooManyConnections = 5,  // the responder's inbound connection limit is reached
  kSelfConnection = 6,      // source == responder's own broker id
};
const char* hello_status_name(HelloStatus status);

// ---- Frames ---------------------------------------------------------------------------------
// frame := crc u32 | length u32 | type u8 | flags u8 | reserved u16 | body[length]
// crc is the CRC-32C of the 8 bytes length..reserved followed by the body (every frame byte
// after the crc field).

inline constexpr std::size_t kFrameHeaderSize = 12;
inline constexpr std::size_t kFrameCrcCoveredHeaderBytes = kFrameHeaderSize - 4;
static_assert(kFrameHeaderSize == 4 + 4 + 1 + 1 + 2);

// Default bound on a frame body; configured per Transport. A header announcing more is refused
// before anything is allocated for the body.
inline constexpr std::uint32_t kDefaultFrameBytesMax = 64u << 20;

// DO NOT CHANGE: on the wire.
enum class FrameType : std::uint8_t {
  kMessageBatch = 1,        // count u32, then (group u64, message_length u32, message)*
  kHeartbeats = 2,          // count u32, then heartbeat_record* (kHeartbeat messages)
  kHeartbeatResponses = 3,  // count u32, then heartbeat_record* (kHeartbeatResponse)
  kMessageChunk = 4,        // one piece of a message too large for a single frame
  kKeepalive = 5,           // empty body; keeps an idle connection from timing out
};
inline constexpr std::uint8_t kFrameTypeMin = 1;
inline constexpr std::uint8_t kFrameTypeMax = 5;
const char* frame_type_name(FrameType type);

// No frame flag is defined in version 1; a reader refuses a frame with any flag bit set or a
// non-zero reserved field (so a future flag cannot be silently misread).
inline constexpr std::uint8_t kFrameFlagsKnown = 0;

// ---- Bodies ---------------------------------------------------------------------------------

inline constexpr std::size_t kBatchItemHeaderSize = 8 + 4;  // group, message_length

// message := type u8 | flags u8 | from u64 | to u64 | term u64 | index u64 | log_term u64
//            | commit u64 | reject_hint u64 | context u64 | entry_count u32 | entry*
//            | [snapshot]            (present iff flags has kMessageFlagSnapshot)
inline constexpr std::size_t kMessageFixedSize = 1 + 1 + 8 * 8 + 4;
static_assert(kMessageFixedSize == 70);
inline constexpr std::uint8_t kMessageFlagReject = 1u << 0;
inline constexpr std::uint8_t kMessageFlagSnapshot = 1u << 1;
inline constexpr std::uint8_t kMessageFlagsKnown = kMessageFlagReject | kMessageFlagSnapshot;
inline constexpr std::uint8_t kMessageTypeMax = 11;  // raft::MessageType::kReadIndexResponse

// entry := term u64 | index u64 | type u8 | payload_length u32 | payload
inline constexpr std::size_t kEntryFixedSize = 8 + 8 + 1 + 4;
static_assert(kEntryFixedSize == 21);
inline constexpr std::uint8_t kEntryTypeMax = 2;  // raft::EntryType::kConfChange

// snapshot := index u64 | term u64 | node_list{4} | auto_leave u8 | data_length u32 | data
// node_list := count u32 | node u64*
inline constexpr std::size_t kSnapshotFixedSize = 8 + 8 + 4 * 4 + 1 + 4;

// heartbeat_record := group | from | to | term | commit | context   (each an unsigned varint)
inline constexpr std::size_t kHeartbeatRecordSizeMin = 6;
inline constexpr std::size_t kHeartbeatRecordSizeMax = 6 * 10;

// chunk := group u64 | message_id u64 | total_length u32 | offset u32 | data
inline constexpr std::size_t kChunkHeaderSize = 8 + 8 + 4 + 4;

}  // namespace mq::transport
