// Kafka wire primitives: big-endian integers, unsigned/zigzag varints, non-compact and compact
// ("flexible", KIP-482) strings, bytes and arrays with their null encodings, UUIDs and the
// tagged-field section. Kafka is big-endian; raftmq's own formats are little-endian and live in
// base/le_codec.h, so the two cannot be mixed by accident (STYLE.md section F).
//
// KafkaReader is strictly bounds-checked: every read fails with a Corruption status instead of
// reading past the end, and every length or element count is validated against the bytes that
// remain BEFORE anything is allocated, so a hostile count of 2^31 costs nothing.
// KafkaWriter appends to a Buffer.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "base/buffer.h"
#include "base/result.h"
#include "base/varint.h"

namespace mq {

// A Kafka UUID (topic ids, directory ids): 16 bytes, written most significant byte first.
struct Uuid {
  std::array<std::uint8_t, 16> bytes{};
  bool is_zero() const {
    for (auto b : bytes) {
      if (b != 0) return false;
    }
    return true;
  }
  bool operator==(const Uuid& other) const = default;
};

// Bound on the memory decoded structures may take for array elements. Input bytes bound the
// element counts, but a decoded element can be many times larger than its smallest encoding
// (a 2-byte empty string becomes a 32-byte std::string), so a 100 MiB frame could otherwise
// cost gigabytes.
inline constexpr std::size_t kDecodedBytesBudgetDefault = 256 * 1024 * 1024;

class KafkaReader {
 public:
  explicit KafkaReader(BufferView bytes,
                       std::size_t decoded_bytes_budget = kDecodedBytesBudgetDefault)
      : bytes_(bytes), decoded_bytes_budget_(decoded_bytes_budget) {}

  std::size_t remaining() const { return bytes_.size() - position_; }
  std::size_t position() const { return position_; }
  bool at_end() const { return position_ == bytes_.size(); }
  BufferView rest() const { return bytes_.subspan(position_); }

  Status read_int8(std::int8_t* v) { return read_be(v); }
  Status read_int16(std::int16_t* v) { return read_be(v); }
  Status read_int32(std::int32_t* v) { return read_be(v); }
  Status read_int64(std::int64_t* v) { return read_be(v); }
  Status read_uint16(std::uint16_t* v) { return read_be(v); }
  Status read_uint32(std::uint32_t* v) { return read_be(v); }
  Status read_bool(bool* v) {
    std::uint8_t b = 0;
    MQ_RETURN_IF_ERROR(read_be(&b));
    *v = b != 0;  // Kafka reads any non-zero byte as true
    return Status::ok();
  }
  Status read_float64(double* v) {
    std::uint64_t bits = 0;
    MQ_RETURN_IF_ERROR(read_be(&bits));
    *v = std::bit_cast<double>(bits);
    return Status::ok();
  }
  Status read_uuid(Uuid* v) {
    MQ_RETURN_IF_ERROR(need(16, "uuid"));
    std::memcpy(v->bytes.data(), bytes_.data() + position_, 16);
    position_ += 16;
    return Status::ok();
  }
  Status read_uvarint(std::uint64_t* v) {
    std::size_t n = varint::decode_unsigned(cursor(), end(), v);
    if (n == 0) return Status::corruption("kafka: bad or truncated unsigned varint");
    position_ += n;
    return Status::ok();
  }
  Status read_uvarint32(std::uint32_t* v) {
    std::size_t n = varint::decode_unsigned32(cursor(), end(), v);
    if (n == 0) return Status::corruption("kafka: bad or truncated unsigned varint");
    position_ += n;
    return Status::ok();
  }
  Status read_varint(std::int32_t* v) {
    std::size_t n = varint::decode_signed32(cursor(), end(), v);
    if (n == 0) return Status::corruption("kafka: bad or truncated varint");
    position_ += n;
    return Status::ok();
  }
  Status read_varlong(std::int64_t* v) {
    std::size_t n = varint::decode_signed64(cursor(), end(), v);
    if (n == 0) return Status::corruption("kafka: bad or truncated varlong");
    position_ += n;
    return Status::ok();
  }
  // A view of the next n bytes (valid while the underlying bytes live).
  Status read_raw(std::size_t n, BufferView* v) {
    MQ_RETURN_IF_ERROR(need(n, "raw bytes"));
    *v = bytes_.subspan(position_, n);
    position_ += n;
    return Status::ok();
  }
  Status skip(std::size_t n) {
    MQ_RETURN_IF_ERROR(need(n, "skipped bytes"));
    position_ += n;
    return Status::ok();
  }

  // Length of a string (int16 or compact uvarint length+1); -1 means null. A non-null length is
  // checked against the remaining bytes.
  Status read_string_length(bool compact, std::int32_t* length) {
    if (compact) return read_compact_length(length, "string");
    std::int16_t n = 0;
    MQ_RETURN_IF_ERROR(read_int16(&n));
    if (n < -1) return Status::corruption("kafka: negative string length");
    *length = n;
    return n < 0 ? Status::ok() : need(static_cast<std::size_t>(n), "string");
  }
  // Length of bytes/records (int32 or compact); -1 means null. Checked like strings.
  Status read_bytes_length(bool compact, std::int32_t* length) {
    if (compact) return read_compact_length(length, "bytes");
    MQ_RETURN_IF_ERROR(read_int32(length));
    if (*length < -1) return Status::corruption("kafka: negative bytes length");
    return *length < 0 ? Status::ok() : need(static_cast<std::size_t>(*length), "bytes");
  }
  // Element count of an array (int32 or compact); -1 means null. A non-null count must satisfy
  // count * element_size_min <= remaining (element_size_min >= 1 bounds the count by the input).
  Status read_array_length(bool compact, std::size_t element_size_min, std::int32_t* count) {
    if (compact) {
      std::uint32_t n = 0;
      MQ_RETURN_IF_ERROR(read_uvarint32(&n));
      if (n > 0x7fffffffu) return Status::corruption("kafka: compact array count overflows");
      *count = static_cast<std::int32_t>(n) - 1;
    } else {
      MQ_RETURN_IF_ERROR(read_int32(count));
      if (*count < -1) return Status::corruption("kafka: negative array count");
    }
    if (*count <= 0) return Status::ok();
    std::size_t min = element_size_min == 0 ? 1 : element_size_min;
    if (static_cast<std::size_t>(*count) > remaining() / min) {
      return Status::corruption("kafka: array count " + std::to_string(*count) +
                                " exceeds the remaining " + std::to_string(remaining()) + " bytes");
    }
    return Status::ok();
  }

  Status read_string(bool compact, std::string* v) {
    std::int32_t n = 0;
    MQ_RETURN_IF_ERROR(read_string_length(compact, &n));
    if (n < 0) return Status::corruption("kafka: null string in a non-nullable field");
    take_string(static_cast<std::size_t>(n), v);
    return Status::ok();
  }
  Status read_nullable_string(bool compact, std::optional<std::string>* v) {
    std::int32_t n = 0;
    MQ_RETURN_IF_ERROR(read_string_length(compact, &n));
    if (n < 0) {
      v->reset();
    } else {
      v->emplace();
      take_string(static_cast<std::size_t>(n), &**v);
    }
    return Status::ok();
  }
  Status read_bytes(bool compact, Buffer* v) {
    std::int32_t n = 0;
    MQ_RETURN_IF_ERROR(read_bytes_length(compact, &n));
    if (n < 0) return Status::corruption("kafka: null bytes in a non-nullable field");
    take_bytes(static_cast<std::size_t>(n), v);
    return Status::ok();
  }
  Status read_nullable_bytes(bool compact, std::optional<Buffer>* v) {
    std::int32_t n = 0;
    MQ_RETURN_IF_ERROR(read_bytes_length(compact, &n));
    if (n < 0) {
      v->reset();
    } else {
      v->emplace();
      take_bytes(static_cast<std::size_t>(n), &**v);
    }
    return Status::ok();
  }

  // Charges count elements of element_bytes each against the decoded-bytes budget, before
  // they are allocated.
  Status charge_decoded_bytes(std::size_t count, std::size_t element_bytes) {
    if (element_bytes != 0 && count > decoded_bytes_budget_ / element_bytes) {
      return Status::limit_exceeded("kafka: decoded message would exceed " +
                                    std::to_string(kDecodedBytesBudgetDefault) + " bytes");
    }
    decoded_bytes_budget_ -= count * element_bytes;
    return Status::ok();
  }
  std::size_t decoded_bytes_budget() const { return decoded_bytes_budget_; }
  // A reader over a nested region (a tagged field) sharing this reader's budget; hand the
  // budget back with take_budget_from() when done.
  KafkaReader sub_reader(BufferView bytes) const { return KafkaReader(bytes, decoded_bytes_budget_); }
  void take_budget_from(const KafkaReader& sub) { decoded_bytes_budget_ = sub.decoded_bytes_budget_; }

  // Skips a whole tagged-field section (KIP-482): uvarint count, then (tag, size, bytes)*.
  Status skip_tagged_fields() {
    std::uint32_t count = 0;
    MQ_RETURN_IF_ERROR(read_uvarint32(&count));
    if (count > remaining()) return Status::corruption("kafka: tagged field count too large");
    for (std::uint32_t i = 0; i < count; ++i) {
      std::uint32_t tag = 0;
      std::uint32_t size = 0;
      MQ_RETURN_IF_ERROR(read_uvarint32(&tag));
      MQ_RETURN_IF_ERROR(read_uvarint32(&size));
      MQ_RETURN_IF_ERROR(skip(size));
    }
    return Status::ok();
  }

 private:
  const std::uint8_t* cursor() const { return bytes_.data() + position_; }
  const std::uint8_t* end() const { return bytes_.data() + bytes_.size(); }
  Status need(std::size_t n, const char* what) const {
    if (n > remaining()) {
      return Status::corruption(std::string("kafka: truncated ") + what + ": need " +
                                std::to_string(n) + " bytes, " + std::to_string(remaining()) +
                                " remain");
    }
    return Status::ok();
  }
  template <typename T>
  Status read_be(T* v) {
    MQ_RETURN_IF_ERROR(need(sizeof(T), "integer"));
    std::make_unsigned_t<T> u = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      u = static_cast<std::make_unsigned_t<T>>((u << 8) | bytes_[position_ + i]);
    }
    position_ += sizeof(T);
    *v = static_cast<T>(u);
    return Status::ok();
  }
  Status read_compact_length(std::int32_t* length, const char* what) {
    std::uint32_t n = 0;
    MQ_RETURN_IF_ERROR(read_uvarint32(&n));
    if (n > 0x7fffffffu) return Status::corruption("kafka: compact length overflows");
    *length = static_cast<std::int32_t>(n) - 1;
    return *length < 0 ? Status::ok() : need(static_cast<std::size_t>(*length), what);
  }
  void take_string(std::size_t n, std::string* v) {
    v->assign(reinterpret_cast<const char*>(cursor()), n);
    position_ += n;
  }
  void take_bytes(std::size_t n, Buffer* v) {
    v->clear();
    v->append(cursor(), n);
    position_ += n;
  }

  BufferView bytes_;
  std::size_t position_ = 0;
  std::size_t decoded_bytes_budget_;
};

class KafkaWriter {
 public:
  explicit KafkaWriter(Buffer* out) : out_(out) { MQ_ASSERT(out != nullptr); }

  Buffer& buffer() { return *out_; }
  std::size_t size() const { return out_->size(); }

  void write_int8(std::int8_t v) { write_be(v); }
  void write_int16(std::int16_t v) { write_be(v); }
  void write_int32(std::int32_t v) { write_be(v); }
  void write_int64(std::int64_t v) { write_be(v); }
  void write_uint16(std::uint16_t v) { write_be(v); }
  void write_uint32(std::uint32_t v) { write_be(v); }
  void write_bool(bool v) { out_->push_back(v ? 1 : 0); }
  void write_float64(double v) { write_be(std::bit_cast<std::uint64_t>(v)); }
  void write_uuid(const Uuid& v) { out_->append(v.bytes.data(), v.bytes.size()); }
  void write_uvarint(std::uint64_t v) { varint::put_unsigned(*out_, v); }
  void write_varint(std::int32_t v) { varint::put_unsigned(*out_, varint::zigzag_encode32(v)); }
  void write_varlong(std::int64_t v) { varint::put_signed(*out_, v); }
  void write_raw(BufferView v) { out_->append(v); }
  // Overwrites 4 bytes at `at` (a length prefix reserved earlier) with v, big-endian.
  void patch_int32(std::size_t at, std::int32_t v) {
    MQ_ASSERT(at + 4 <= out_->size());
    auto u = static_cast<std::uint32_t>(v);
    for (int i = 0; i < 4; ++i) (*out_)[at + i] = static_cast<std::uint8_t>(u >> (24 - 8 * i));
  }

  Status write_string(bool compact, std::string_view v) {
    if (!compact && v.size() > 0x7fff) {
      return Status::invalid_argument("kafka: string of " + std::to_string(v.size()) +
                                      " bytes does not fit an int16 length");
    }
    if (compact) {
      write_uvarint(v.size() + 1);
    } else {
      write_int16(static_cast<std::int16_t>(v.size()));
    }
    out_->append(v.data(), v.size());
    return Status::ok();
  }
  void write_null_string(bool compact) {
    if (compact) {
      write_uvarint(0);
    } else {
      write_int16(-1);
    }
  }
  Status write_bytes(bool compact, BufferView v) {
    if (v.size() > 0x7ffffffe) return Status::invalid_argument("kafka: bytes field too large");
    write_length(compact, static_cast<std::int32_t>(v.size()));
    out_->append(v);
    return Status::ok();
  }
  void write_null_bytes(bool compact) { write_length(compact, -1); }
  Status write_array_length(bool compact, std::size_t count) {
    if (count > 0x7ffffffe) return Status::invalid_argument("kafka: array too large");
    write_length(compact, static_cast<std::int32_t>(count));
    return Status::ok();
  }
  void write_null_array(bool compact) { write_length(compact, -1); }

 private:
  // int32 length, or compact uvarint length+1 (0 = null).
  void write_length(bool compact, std::int32_t n) {
    if (compact) {
      write_uvarint(static_cast<std::uint64_t>(static_cast<std::int64_t>(n) + 1));
    } else {
      write_int32(n);
    }
  }
  template <typename T>
  void write_be(T v) {
    auto u = static_cast<std::make_unsigned_t<T>>(v);
    std::uint8_t tmp[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      tmp[i] = static_cast<std::uint8_t>(u >> (8 * (sizeof(T) - 1 - i)));
    }
    out_->append(tmp, sizeof(T));
  }

  Buffer* out_;
};

}  // namespace mq
