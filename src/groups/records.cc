#include "groups/records.h"

#include <vector>

#include "base/kafka_wire.h"

namespace mq::groups {
namespace {

constexpr std::uint32_t kReplacement = 0xFFFD;

// Decodes one UTF-8 sequence at text[*i]; malformed input yields U+FFFD and consumes one byte.
std::uint32_t next_code_point(std::string_view text, std::size_t* i) {
  auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
  std::uint8_t b0 = byte(*i);
  int extra = 0;
  std::uint32_t cp = 0;
  if (b0 < 0x80) {
    ++*i;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    extra = 1;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    extra = 2;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    extra = 3;
    cp = b0 & 0x07;
  } else {
    ++*i;
    return kReplacement;
  }
  if (*i + static_cast<std::size_t>(extra) >= text.size()) {
    ++*i;
    return kReplacement;
  }
  for (int k = 1; k <= extra; ++k) {
    std::uint8_t b = byte(*i + static_cast<std::size_t>(k));
    if ((b & 0xC0) != 0x80) {
      ++*i;
      return kReplacement;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++*i;
    return kReplacement;
  }
  *i += static_cast<std::size_t>(extra) + 1;
  return cp;
}

template <typename T>
Buffer encode_versioned(const T& message, std::int16_t version) {
  Buffer out;
  KafkaWriter writer(&out);
  writer.write_int16(version);
  Status s = message.encode(writer, version);
  MQ_ASSERT(s.is_ok(), "encoding an internal record failed: %s", s.to_string().c_str());
  return out;
}

template <typename T>
Result<T> decode_versioned(BufferView bytes, std::int16_t version, const char* what) {
  KafkaReader reader(bytes);
  T message;
  Status s = message.decode(reader, version);
  if (!s.is_ok()) return Status::corruption(std::string(what) + ": " + s.to_string());
  return message;
}

}  // namespace

const cluster::TopicInfo* find_topic(const cluster::MetadataSnapshot& metadata,
                                     std::string_view name) {
  for (const cluster::TopicInfo& t : metadata.topics) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::int32_t java_string_hash(std::string_view text) {
  std::uint32_t h = 0;
  auto add = [&](std::uint32_t unit) { h = 31 * h + unit; };
  std::size_t i = 0;
  while (i < text.size()) {
    std::uint32_t cp = next_code_point(text, &i);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      add(0xD800 + (cp >> 10));
      add(0xDC00 + (cp & 0x3FF));
    } else {
      add(cp);
    }
  }
  return static_cast<std::int32_t>(h);
}

std::int32_t partition_for_group(std::string_view group_id, std::int32_t partitions) {
  MQ_ASSERT(partitions > 0);
  return (java_string_hash(group_id) & 0x7fffffff) % partitions;
}

Buffer encode_offset_key(std::string_view group, std::string_view topic, std::int32_t partition) {
  protocol::OffsetCommitKey key;
  key.group = std::string(group);
  key.topic = std::string(topic);
  key.partition = partition;
  return encode_versioned(key, kOffsetKeyVersion);
}

Buffer encode_offset_value(const protocol::OffsetCommitValue& value) {
  protocol::OffsetCommitValue v = value;
  v.expire_timestamp = -1;  // only in v1
  return encode_versioned(v, kOffsetValueVersion);
}

Buffer encode_group_key(std::string_view group) {
  protocol::GroupMetadataKey key;
  key.group = std::string(group);
  return encode_versioned(key, kGroupKeyVersion);
}

Result<Buffer> encode_group_value(const protocol::GroupMetadataValue& value) {
  Buffer out;
  KafkaWriter writer(&out);
  writer.write_int16(kGroupValueVersion);
  MQ_RETURN_IF_ERROR(value.encode(writer, kGroupValueVersion));
  return out;
}

Result<LogRecord> decode_record(std::optional<BufferView> key, std::optional<BufferView> value) {
  if (!key.has_value() || key->size() < 2) return Status::corruption("record without a key");
  std::int16_t key_version = static_cast<std::int16_t>(((*key)[0] << 8) | (*key)[1]);
  BufferView key_body = key->subspan(2);
  std::optional<std::int16_t> value_version;
  BufferView value_body;
  if (value.has_value()) {
    if (value->size() < 2) return Status::corruption("value shorter than its version");
    value_version = static_cast<std::int16_t>(((*value)[0] << 8) | (*value)[1]);
    value_body = value->subspan(2);
  }
  if (key_version == 0 || key_version == 1) {
    OffsetRecord record;
    MQ_ASSIGN_OR_RETURN(record.key, decode_versioned<protocol::OffsetCommitKey>(
                                        key_body, key_version, "offset commit key"));
    if (value_version.has_value()) {
      if (*value_version < 0 || *value_version > protocol::OffsetCommitValue::kHighestVersion) {
        return Status::unsupported("offset commit value version " +
                                   std::to_string(*value_version));
      }
      MQ_ASSIGN_OR_RETURN(record.value, decode_versioned<protocol::OffsetCommitValue>(
                                            value_body, *value_version, "offset commit value"));
    }
    return LogRecord(std::move(record));
  }
  if (key_version == 2) {
    GroupRecord record;
    MQ_ASSIGN_OR_RETURN(record.key, decode_versioned<protocol::GroupMetadataKey>(
                                        key_body, key_version, "group metadata key"));
    if (value_version.has_value()) {
      if (*value_version < 0 || *value_version > protocol::GroupMetadataValue::kHighestVersion) {
        return Status::unsupported("group metadata value version " +
                                   std::to_string(*value_version));
      }
      MQ_ASSIGN_OR_RETURN(record.value, decode_versioned<protocol::GroupMetadataValue>(
                                            value_body, *value_version, "group metadata value"));
    }
    return LogRecord(std::move(record));
  }
  return Status::unsupported("key version " + std::to_string(key_version));
}

}  // namespace mq::groups
