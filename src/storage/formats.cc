// encode_to / decode_from of every storage format (segment_format.h, index_format.h,
// metadata_format.h). Decoders are bounds-checked and return kCorruption (or kUnsupported
// for a newer version) instead of trusting bytes read from disk.
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "base/crc32c.h"
#include "base/le_codec.h"
#include "storage/index_format.h"
#include "storage/metadata_format.h"
#include "storage/segment_format.h"

namespace mq::storage {
namespace {

bool all_zero(const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

std::string hex32(std::uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

Status check_size(BufferView bytes, std::size_t want, const char* what) {
  if (bytes.size() < want) {
    return Status::corruption(std::string(what) + ": " + std::to_string(bytes.size()) +
                              " bytes, need " + std::to_string(want));
  }
  return Status::ok();
}

Status check_crc(const std::uint8_t* p, std::size_t covered, std::uint32_t stored,
                 const char* what) {
  std::uint32_t actual = crc32c::value(p, covered);
  if (actual != stored) {
    return Status::corruption(std::string(what) + ": checksum mismatch (stored " + hex32(stored) +
                              ", computed " + hex32(actual) + ")");
  }
  return Status::ok();
}

Status check_version(std::uint16_t version, std::uint16_t newest, const char* what) {
  if (version == 0) return Status::corruption(std::string(what) + ": version 0");
  if (version > newest) {
    return Status::unsupported(std::string(what) + ": format version " + std::to_string(version) +
                               " is newer than this build knows (" + std::to_string(newest) +
                               ")");
  }
  return Status::ok();
}

}  // namespace

const char* entry_kind_name(EntryKind kind) {
  switch (kind) {
    case EntryKind::kRecordBatch: return "record_batch";
    case EntryKind::kRaftNoop: return "raft_noop";
    case EntryKind::kConfigChange: return "config_change";
  }
  return "unknown";
}

namespace segment_format {

std::string file_stem(LogIndex base_index) {
  char text[32];
  std::snprintf(text, sizeof text, "%020" PRIu64, base_index.value());
  return text;
}

bool parse_file_name(const std::string& name, const char* suffix, LogIndex* base_index) {
  std::size_t suffix_length = std::strlen(suffix);
  if (name.size() != kIndexDigits + suffix_length) return false;
  if (name.compare(kIndexDigits, suffix_length, suffix) != 0) return false;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < kIndexDigits; ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return false;
    std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  *base_index = LogIndex(value);
  return true;
}

}  // namespace segment_format

// ---- segment header -------------------------------------------------------------------------

void SegmentHeader::encode_to(std::uint8_t* out) const {
  std::memset(out, 0, kEncodedSize);
  le::encode_u32(out + 0, segment_format::kSegmentMagic);
  le::encode_u16(out + 4, version);
  le::encode_u16(out + 6, flags);
  le::encode_u64(out + 8, base_index.value());
  le::encode_u64(out + 16, static_cast<std::uint64_t>(created_ms));
  le::encode_u32(out + 28, crc32c::value(out, segment_format::kSegmentHeaderCrcOffset));
}

Result<SegmentHeader> SegmentHeader::decode_from(BufferView bytes) {
  MQ_RETURN_IF_ERROR(check_size(bytes, kEncodedSize, "segment header"));
  const std::uint8_t* p = bytes.data();
  std::uint32_t magic = le::decode_u32(p);
  if (magic != segment_format::kSegmentMagic) {
    return Status::corruption("segment header: bad magic " + hex32(magic));
  }
  MQ_RETURN_IF_ERROR(check_crc(p, segment_format::kSegmentHeaderCrcOffset, le::decode_u32(p + 28),
                               "segment header"));
  SegmentHeader header;
  header.version = le::decode_u16(p + 4);
  MQ_RETURN_IF_ERROR(check_version(header.version, segment_format::kVersion, "segment header"));
  header.flags = le::decode_u16(p + 6);
  header.base_index = LogIndex(le::decode_u64(p + 8));
  header.created_ms = static_cast<std::int64_t>(le::decode_u64(p + 16));
  if (header.flags != 0 || le::decode_u32(p + 24) != 0) {
    return Status::corruption("segment header: non-zero flags or reserved bytes");
  }
  if (header.base_index == LogIndex(0)) return Status::corruption("segment header: base index 0");
  return header;
}

// ---- entry header ---------------------------------------------------------------------------

void EntryHeader::encode_to(std::uint8_t* out) const {
  MQ_ASSERT(payload_length <= segment_format::kPayloadBytesMax);
  MQ_ASSERT(static_cast<std::uint8_t>(kind) <= kEntryKindMax);
  std::memset(out, 0, kEncodedSize);
  le::encode_u32(out + 4, payload_crc);
  le::encode_u32(out + 8, payload_length);
  le::encode_u32(out + 12, last_offset_delta);
  le::encode_u64(out + 16, term.value());
  le::encode_u64(out + 24, index.value());
  le::encode_u64(out + 32, static_cast<std::uint64_t>(base_offset.value()));
  le::encode_u64(out + 40, static_cast<std::uint64_t>(max_timestamp));
  out[48] = static_cast<std::uint8_t>(kind);
  le::encode_u32(out + 0, crc32c::value(out + segment_format::kEntryHeaderCrcStart,
                                        kEncodedSize - segment_format::kEntryHeaderCrcStart));
}

Result<EntryHeader> EntryHeader::decode_from(BufferView bytes) {
  MQ_RETURN_IF_ERROR(check_size(bytes, kEncodedSize, "entry header"));
  const std::uint8_t* p = bytes.data();
  MQ_RETURN_IF_ERROR(check_crc(p + segment_format::kEntryHeaderCrcStart,
                               kEncodedSize - segment_format::kEntryHeaderCrcStart,
                               le::decode_u32(p), "entry header"));
  EntryHeader header;
  header.payload_crc = le::decode_u32(p + 4);
  header.payload_length = le::decode_u32(p + 8);
  header.last_offset_delta = le::decode_u32(p + 12);
  header.term = Term(le::decode_u64(p + 16));
  header.index = LogIndex(le::decode_u64(p + 24));
  header.base_offset = KafkaOffset(static_cast<std::int64_t>(le::decode_u64(p + 32)));
  header.max_timestamp = static_cast<std::int64_t>(le::decode_u64(p + 40));
  std::uint8_t kind = p[48];
  if (kind > kEntryKindMax) {
    return Status::corruption("entry header: unknown kind " + std::to_string(kind));
  }
  header.kind = static_cast<EntryKind>(kind);
  if (!all_zero(p + 49, 7)) return Status::corruption("entry header: non-zero reserved bytes");
  if (header.payload_length > segment_format::kPayloadBytesMax) {
    return Status::corruption("entry header: payload length " +
                              std::to_string(header.payload_length) + " above the format limit");
  }
  if (header.index == LogIndex(0)) return Status::corruption("entry header: index 0");
  if (header.base_offset < KafkaOffset(0) ||
      header.last_offset_delta > static_cast<std::uint32_t>(INT32_MAX) ||
      header.base_offset.value() > INT64_MAX - header.last_offset_delta) {
    return Status::corruption("entry header: offsets out of range");
  }
  return header;
}

Status EntryHeader::verify_payload(BufferView payload) const {
  if (payload.size() != payload_length) {
    return Status::corruption("entry " + std::to_string(index.value()) + ": payload is " +
                              std::to_string(payload.size()) + " bytes, header says " +
                              std::to_string(payload_length));
  }
  std::uint32_t actual = crc32c::value(payload);
  if (actual != payload_crc) {
    return Status::corruption("entry " + std::to_string(index.value()) +
                              ": payload checksum mismatch (stored " + hex32(payload_crc) +
                              ", computed " + hex32(actual) + ")");
  }
  return Status::ok();
}

// ---- index files ----------------------------------------------------------------------------

void IndexHeader::encode_to(std::uint8_t* out) const {
  std::memset(out, 0, kEncodedSize);
  le::encode_u32(out + 0, magic);
  le::encode_u16(out + 4, index_format::kVersion);
  le::encode_u64(out + 8, base_index.value());
  le::encode_u64(out + 16, static_cast<std::uint64_t>(base_offset.value()));
  le::encode_u32(out + 28, crc32c::value(out, 28));
}

Result<IndexHeader> IndexHeader::decode_from(BufferView bytes, std::uint32_t expected_magic) {
  MQ_RETURN_IF_ERROR(check_size(bytes, kEncodedSize, "index header"));
  const std::uint8_t* p = bytes.data();
  IndexHeader header;
  header.magic = le::decode_u32(p);
  if (header.magic != expected_magic) {
    return Status::corruption("index header: bad magic " + hex32(header.magic));
  }
  MQ_RETURN_IF_ERROR(check_crc(p, 28, le::decode_u32(p + 28), "index header"));
  MQ_RETURN_IF_ERROR(check_version(le::decode_u16(p + 4), index_format::kVersion, "index header"));
  if (le::decode_u16(p + 6) != 0 || le::decode_u32(p + 24) != 0) {
    return Status::corruption("index header: non-zero reserved bytes");
  }
  header.base_index = LogIndex(le::decode_u64(p + 8));
  header.base_offset = KafkaOffset(static_cast<std::int64_t>(le::decode_u64(p + 16)));
  return header;
}

void OffsetIndexEntry::encode_to(std::uint8_t* out) const {
  le::encode_u32(out + 0, relative_index);
  le::encode_u32(out + 4, relative_offset);
  le::encode_u32(out + 8, position);
  le::encode_u32(out + 12, crc32c::value(out, 12));
}

Result<OffsetIndexEntry> OffsetIndexEntry::decode_from(BufferView bytes) {
  MQ_RETURN_IF_ERROR(check_size(bytes, kEncodedSize, "offset index entry"));
  const std::uint8_t* p = bytes.data();
  MQ_RETURN_IF_ERROR(check_crc(p, 12, le::decode_u32(p + 12), "offset index entry"));
  return OffsetIndexEntry{le::decode_u32(p), le::decode_u32(p + 4), le::decode_u32(p + 8)};
}

void TimeIndexEntry::encode_to(std::uint8_t* out) const {
  le::encode_u64(out + 0, static_cast<std::uint64_t>(max_timestamp));
  le::encode_u32(out + 8, position);
  le::encode_u32(out + 12, crc32c::value(out, 12));
}

Result<TimeIndexEntry> TimeIndexEntry::decode_from(BufferView bytes) {
  MQ_RETURN_IF_ERROR(check_size(bytes, kEncodedSize, "time index entry"));
  const std::uint8_t* p = bytes.data();
  MQ_RETURN_IF_ERROR(check_crc(p, 12, le::decode_u32(p + 12), "time index entry"));
  return TimeIndexEntry{static_cast<std::int64_t>(le::decode_u64(p)), le::decode_u32(p + 8)};
}

// ---- metadata -------------------------------------------------------------------------------

namespace {
void encode_record40(std::uint8_t* out, std::uint32_t magic, std::uint64_t a, std::uint64_t b,
                     std::uint64_t c) {
  std::memset(out, 0, 40);
  le::encode_u32(out + 0, magic);
  le::encode_u16(out + 4, metadata_format::kVersion);
  le::encode_u64(out + 8, a);
  le::encode_u64(out + 16, b);
  le::encode_u64(out + 24, c);
  le::encode_u32(out + 36, crc32c::value(out, 36));
}

Status decode_record40(BufferView bytes, std::uint32_t magic, const char* what, std::uint64_t* a,
                       std::uint64_t* b, std::uint64_t* c) {
  MQ_RETURN_IF_ERROR(check_size(bytes, 40, what));
  const std::uint8_t* p = bytes.data();
  if (le::decode_u32(p) != magic) {
    return Status::corruption(std::string(what) + ": bad magic " + hex32(le::decode_u32(p)));
  }
  MQ_RETURN_IF_ERROR(check_crc(p, 36, le::decode_u32(p + 36), what));
  MQ_RETURN_IF_ERROR(check_version(le::decode_u16(p + 4), metadata_format::kVersion, what));
  if (le::decode_u16(p + 6) != 0 || le::decode_u32(p + 32) != 0) {
    return Status::corruption(std::string(what) + ": non-zero reserved bytes");
  }
  *a = le::decode_u64(p + 8);
  *b = le::decode_u64(p + 16);
  *c = le::decode_u64(p + 24);
  return Status::ok();
}
}  // namespace

void HardStateRecord::encode_to(std::uint8_t* out) const {
  encode_record40(out, metadata_format::kHardStateMagic, term.value(), vote.value(),
                  commit.value());
}

Result<HardStateRecord> HardStateRecord::decode_from(BufferView bytes) {
  std::uint64_t a, b, c;
  MQ_RETURN_IF_ERROR(decode_record40(bytes, metadata_format::kHardStateMagic, "hard state", &a, &b,
                                     &c));
  return HardStateRecord{Term(a), NodeId(b), LogIndex(c)};
}

void LogMetaRecord::encode_to(std::uint8_t* out) const {
  encode_record40(out, metadata_format::kLogMetaMagic, start_index.value(),
                  static_cast<std::uint64_t>(start_offset.value()), truncate_from.value());
}

Result<LogMetaRecord> LogMetaRecord::decode_from(BufferView bytes) {
  std::uint64_t a, b, c;
  MQ_RETURN_IF_ERROR(decode_record40(bytes, metadata_format::kLogMetaMagic, "log meta", &a, &b, &c));
  LogMetaRecord record{LogIndex(a), KafkaOffset(static_cast<std::int64_t>(b)), LogIndex(c)};
  if (record.start_index == LogIndex(0) || record.start_offset < KafkaOffset(0)) {
    return Status::corruption("log meta: start index 0 or negative start offset");
  }
  return record;
}

void SnapshotHeader::encode_to(std::uint8_t* out) const {
  std::memset(out, 0, kEncodedSize);
  le::encode_u32(out + 0, metadata_format::kSnapshotMagic);
  le::encode_u16(out + 4, metadata_format::kVersion);
  le::encode_u64(out + 8, index.value());
  le::encode_u64(out + 16, term.value());
  le::encode_u64(out + 24, data_length);
  le::encode_u32(out + 32, config_length);
  le::encode_u32(out + 44, crc32c::value(out, 44));
}

Result<SnapshotHeader> SnapshotHeader::decode_from(BufferView bytes) {
  MQ_RETURN_IF_ERROR(check_size(bytes, kEncodedSize, "snapshot header"));
  const std::uint8_t* p = bytes.data();
  if (le::decode_u32(p) != metadata_format::kSnapshotMagic) {
    return Status::corruption("snapshot header: bad magic " + hex32(le::decode_u32(p)));
  }
  MQ_RETURN_IF_ERROR(check_crc(p, 44, le::decode_u32(p + 44), "snapshot header"));
  MQ_RETURN_IF_ERROR(check_version(le::decode_u16(p + 4), metadata_format::kVersion,
                                   "snapshot header"));
  if (le::decode_u16(p + 6) != 0 || le::decode_u32(p + 36) != 0 || le::decode_u32(p + 40) != 0) {
    return Status::corruption("snapshot header: non-zero reserved bytes");
  }
  SnapshotHeader header;
  header.index = LogIndex(le::decode_u64(p + 8));
  header.term = Term(le::decode_u64(p + 16));
  header.data_length = le::decode_u64(p + 24);
  header.config_length = le::decode_u32(p + 32);
  return header;
}

}  // namespace mq::storage
