// Variable-length integers: unsigned LEB128 (7 bits a byte, low group first, high bit =
// "more"), and zigzag-encoded signed varints. These are the encodings of Kafka's compact
// lengths, tagged fields and record fields, and are also used by raftmq's own formats.
// Decoding is bounds-checked and rejects over-long encodings.
#pragma once

#include <cstdint>

#include "base/buffer.h"

namespace mq::varint {

inline constexpr std::size_t kMaxLength32 = 5;
inline constexpr std::size_t kMaxLength64 = 10;

inline constexpr std::uint32_t zigzag_encode32(std::int32_t v) {
  return (static_cast<std::uint32_t>(v) << 1) ^ static_cast<std::uint32_t>(v >> 31);
}
inline constexpr std::int32_t zigzag_decode32(std::uint32_t v) {
  return static_cast<std::int32_t>(v >> 1) ^ -static_cast<std::int32_t>(v & 1);
}
inline constexpr std::uint64_t zigzag_encode64(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline constexpr std::int64_t zigzag_decode64(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

// Number of bytes the unsigned varint encoding of v takes.
inline constexpr std::size_t length(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes v to dst (room for kMaxLength64 bytes); returns the number of bytes written.
inline std::size_t encode_unsigned(std::uint8_t* dst, std::uint64_t v) {
  std::size_t n = 0;
  while (v >= 0x80) {
    dst[n++] = static_cast<std::uint8_t>(v | 0x80);
    v >>= 7;
  }
  dst[n++] = static_cast<std::uint8_t>(v);
  return n;
}
inline void put_unsigned(Buffer& out, std::uint64_t v) {
  std::uint8_t tmp[kMaxLength64];
  out.append(tmp, encode_unsigned(tmp, v));
}
inline void put_signed(Buffer& out, std::int64_t v) { put_unsigned(out, zigzag_encode64(v)); }

// Decodes an unsigned varint of at most max_bytes bytes from [p, limit). Returns the number of
// bytes consumed, or 0 if the input is truncated, over-long, or overflows 64 bits.
inline std::size_t decode_unsigned(const std::uint8_t* p, const std::uint8_t* limit,
                                   std::uint64_t* value, std::size_t max_bytes = kMaxLength64) {
  std::uint64_t result = 0;
  for (std::size_t i = 0; i < max_bytes && p + i < limit; ++i) {
    std::uint64_t byte = p[i];
    if (i == 9 && byte > 1) return 0;  // would overflow 64 bits
    result |= (byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *value = result;
      return i + 1;
    }
  }
  return 0;
}
inline std::size_t decode_unsigned32(const std::uint8_t* p, const std::uint8_t* limit,
                                     std::uint32_t* value) {
  std::uint64_t v = 0;
  std::size_t n = decode_unsigned(p, limit, &v, kMaxLength32);
  if (n == 0 || v > 0xffffffffu) return 0;
  *value = static_cast<std::uint32_t>(v);
  return n;
}
inline std::size_t decode_signed64(const std::uint8_t* p, const std::uint8_t* limit,
                                   std::int64_t* value) {
  std::uint64_t v = 0;
  std::size_t n = decode_unsigned(p, limit, &v, kMaxLength64);
  if (n != 0) *value = zigzag_decode64(v);
  return n;
}
inline std::size_t decode_signed32(const std::uint8_t* p, const std::uint8_t* limit,
                                   std::int32_t* value) {
  std::uint32_t v = 0;
  std::size_t n = decode_unsigned32(p, limit, &v);
  if (n != 0) *value = zigzag_decode32(v);
  return n;
}

}  // namespace mq::varint
