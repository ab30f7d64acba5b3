// Little-endian fixed-width codecs for raftmq's own on-disk and inter-broker formats
// (STYLE.md F: our formats are little-endian; Kafka's big-endian codecs live elsewhere so
// the two cannot be mixed by accident). Families as in leveldb util/coding.h:
//   put_*    append to a Buffer
//   encode_* write into raw memory (caller guarantees room)
//   decode_* read from raw memory (caller guarantees room)
// and LeReader, a bounds-checked cursor over a BufferView whose reads fail (return false)
// instead of running past the end.
#pragma once

#include <cstdint>
#include <cstring>

#include "base/buffer.h"

namespace mq::le {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host assumed");

template <typename T>
inline void encode(std::uint8_t* dst, T value) {
  static_assert(std::is_integral_v<T>);
  std::memcpy(dst, &value, sizeof(T));
}
template <typename T>
inline T decode(const std::uint8_t* src) {
  static_assert(std::is_integral_v<T>);
  T value;
  std::memcpy(&value, src, sizeof(T));
  return value;
}

inline void encode_u16(std::uint8_t* d, std::uint16_t v) { encode(d, v); }
inline void encode_u32(std::uint8_t* d, std::uint32_t v) { encode(d, v); }
inline void encode_u64(std::uint8_t* d, std::uint64_t v) { encode(d, v); }
inline std::uint16_t decode_u16(const std::uint8_t* s) { return decode<std::uint16_t>(s); }
inline std::uint32_t decode_u32(const std::uint8_t* s) { return decode<std::uint32_t>(s); }
inline std::uint64_t decode_u64(const std::uint8_t* s) { return decode<std::uint64_t>(s); }

template <typename T>
inline void put(Buffer& out, T value) {
  std::uint8_t tmp[sizeof(T)];
  encode(tmp, value);
  out.append(tmp, sizeof(T));
}
inline void put_u8(Buffer& out, std::uint8_t v) { out.push_back(v); }
inline void put_u16(Buffer& out, std::uint16_t v) { put(out, v); }
inline void put_u32(Buffer& out, std::uint32_t v) { put(out, v); }
inline void put_u64(Buffer& out, std::uint64_t v) { put(out, v); }
inline void put_i64(Buffer& out, std::int64_t v) { put(out, v); }

// Bounds-checked reading cursor. Every read returns false (and leaves the cursor unchanged)
// when fewer bytes remain than it needs.
class LeReader {
 public:
  explicit LeReader(BufferView bytes) : bytes_(bytes) {}
  std::size_t remaining() const { return bytes_.size() - position_; }
  std::size_t position() const { return position_; }
  bool at_end() const { return position_ == bytes_.size(); }

  template <typename T>
  bool read(T* value) {
    if (remaining() < sizeof(T)) return false;
    *value = decode<T>(bytes_.data() + position_);
    position_ += sizeof(T);
    return true;
  }
  bool read_u8(std::uint8_t* v) { return read(v); }
  bool read_u16(std::uint16_t* v) { return read(v); }
  bool read_u32(std::uint32_t* v) { return read(v); }
  bool read_u64(std::uint64_t* v) { return read(v); }
  bool read_i64(std::int64_t* v) { return read(v); }
  // A view of the next n bytes (valid while the underlying bytes are).
  bool read_bytes(std::size_t n, BufferView* out) {
    if (remaining() < n) return false;
    *out = bytes_.subspan(position_, n);
    position_ += n;
    return true;
  }
  bool skip(std::size_t n) {
    if (remaining() < n) return false;
    position_ += n;
    return true;
  }

 private:
  BufferView bytes_;
  std::size_t position_ = 0;
};

}  // namespace mq::le
