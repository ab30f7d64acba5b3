// On-disk format of the sync ledger (docs/formats/sync_ledger_format.md): constants shared by
// the writer and the reader (sync_ledger.cc) and by the tests. Little-endian.
//
//   file   = header record* zero*      (zero: free space, see kPreallocateBytes)
//   header = magic:u32 version:u16 record_bytes:u16 reserved:u32 crc:u32      (16 bytes)
//            crc = CRC-32C of the 12 bytes before it
//   record = key:u64 synced_end:u64 kind:u32 crc:u32                          (24 bytes)
//            crc = CRC-32C of the 20 bytes before it
#pragma once

#include <cstddef>
#include <cstdint>

namespace mq::storage::sync_ledger_format {

inline constexpr const char* kFileName = "sync.ledger";
inline constexpr std::uint32_t kMagic = 0x4c53514d;  // "MQSL" read as little-endian bytes
inline constexpr std::uint16_t kVersion = 1;

inline constexpr std::size_t kHeaderBytes = 16;
inline constexpr std::size_t kHeaderMagicAt = 0;
inline constexpr std::size_t kHeaderVersionAt = 4;
inline constexpr std::size_t kHeaderRecordBytesAt = 6;
inline constexpr std::size_t kHeaderReservedAt = 8;
inline constexpr std::size_t kHeaderCrcAt = 12;  // covers [0, 12)

inline constexpr std::size_t kRecordBytes = 24;
inline constexpr std::size_t kRecordKeyAt = 0;
inline constexpr std::size_t kRecordSyncedEndAt = 8;
inline constexpr std::size_t kRecordKindAt = 16;
inline constexpr std::size_t kRecordCrcAt = 20;  // covers [0, 20)

// Record kinds. kSyncedEnd: the key's log was synced up to synced_end (the replica may have
// acknowledged everything up to it). kForget: the key has no log any more (synced_end 0).
inline constexpr std::uint32_t kKindSyncedEnd = 1;
inline constexpr std::uint32_t kKindForget = 2;

// The file is kept zero-filled this far ahead of its last record (written at every rewrite,
// then extended by this much when the records reach the end): appends then overwrite
// allocated bytes without changing the file's size, so the ledger's fdatasync writes data
// only and does not force a journal commit on ext4/xfs, which the segments' fdatasyncs would
// otherwise queue behind. Zero bytes after the last valid record are free space.
inline constexpr std::uint64_t kPreallocateBytes = 64u << 10;
// A ledger larger than this (bytes) is compacted: rewritten with one record per key.
inline constexpr std::uint64_t kDefaultCompactBytes = 1u << 20;
// Bounds what open() reads (a damaged size field cannot make it allocate without bound).
inline constexpr std::uint64_t kFileBytesMax = 64u << 20;

}  // namespace mq::storage::sync_ledger_format
