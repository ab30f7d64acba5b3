// The records of `__consumer_offsets`, in Kafka's own format (docs/groups.md "Records";
// ../shared/kafka-protocol/README.md "Internal topics that tools read"): a key is an int16
// schema version followed by OffsetCommitKey (versions 0, 1) or GroupMetadataKey (version 2);
// a value is an int16 version followed by OffsetCommitValue or GroupMetadataValue at that
// version, or null (a tombstone). Also Kafka's group -> partition mapping.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/buffer.h"
#include "base/result.h"
#include "cluster/api.h"
#include "protocol/gen/messages.h"

namespace mq::groups {

inline constexpr std::string_view kOffsetsTopic = "__consumer_offsets";

// Versions written (those Kafka 3.x writes): offset key v1, offset value v3 (leader epoch, no
// expire timestamp), group key v2, group value v3 (static members, KIP-345).
inline constexpr std::int16_t kOffsetKeyVersion = 1;
inline constexpr std::int16_t kOffsetValueVersion = 3;
inline constexpr std::int16_t kGroupKeyVersion = 2;
inline constexpr std::int16_t kGroupValueVersion = 3;

// Java's String.hashCode over the UTF-16 code units of `text` (UTF-8 decoded; malformed bytes
// count as U+FFFD, as Java's decoder replaces them).
std::int32_t java_string_hash(std::string_view text);
// Kafka's GroupMetadataManager.partitionFor: Utils.abs(hashCode) % partitions, where
// Utils.abs(n) = n & 0x7fffffff.
std::int32_t partition_for_group(std::string_view group_id, std::int32_t partitions);

// Lookups in a metadata snapshot (nullptr when absent).
const cluster::TopicInfo* find_topic(const cluster::MetadataSnapshot& metadata,
                                     std::string_view name);
inline const cluster::TopicInfo* find_offsets_topic(const cluster::MetadataSnapshot& metadata) {
  return find_topic(metadata, kOffsetsTopic);
}

struct OffsetRecord {
  protocol::OffsetCommitKey key;
  std::optional<protocol::OffsetCommitValue> value;  // nullopt: tombstone
};
struct GroupRecord {
  protocol::GroupMetadataKey key;
  std::optional<protocol::GroupMetadataValue> value;  // nullopt: tombstone
};
using LogRecord = std::variant<OffsetRecord, GroupRecord>;

Buffer encode_offset_key(std::string_view group, std::string_view topic, std::int32_t partition);
Buffer encode_offset_value(const protocol::OffsetCommitValue& value);
Buffer encode_group_key(std::string_view group);
Result<Buffer> encode_group_value(const protocol::GroupMetadataValue& value);

// Decodes one record of the topic. Corruption for a key or value that does not parse;
// Unsupported for a key version this broker does not know (such records are skipped by the
// loader, as Kafka skips them).
Result<LogRecord> decode_record(std::optional<BufferView> key, std::optional<BufferView> value);

}  // namespace mq::groups
