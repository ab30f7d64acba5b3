// Little-endian fixed-width codecs for raftmq's own on-disk and inter-broker formats
// (STYLE.md F: our formats are little-endian; Kafka's big-endian codecs live elsewhere so
// the two cannot be mixed by accident). Families as in leveldb util/coding.h:
//   put_*    append to a Buffer
//   encode_* write into raw memory (caller guarantees room)
//   decode_* read from raw memory (caller guarantees room)
// and LeReader, a bounds-checked cursor over a BufferView whose reads fail (return false)
// instead of running past the end; StickyReader, the same remembering its first failure, so a
// decoder reads a run of fields and checks ok() once. Strings are u16 length | bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

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
inline void put_i32(Buffer& out, std::int32_t v) { put_u32(out, static_cast<std::uint32_t>(v)); }
// u16 length | bytes; a string longer than 65,535 bytes is cut there (callers bound theirs).
inline void put_str16(Buffer& out, std::string_view s) {
  std::size_t n = std::min<std::size_t>(s.size(), 0xffff);
  put_u16(out, static_cast<std::uint16_t>(n));
  out.append(s.data(), n);
}
// count u32 | i32 * (ids as signed 32-bit values: broker ids, partitions).
template <typename Id>
inline void put_i32_list(Buffer& out, const std::vector<Id>& ids) {
  put_u32(out, static_cast<std::uint32_t>(ids.size()));
  for (Id id : ids) put_i32(out, static_cast<std::int32_t>(id.value()));
}

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

// LeReader that remembers the first failure: after it, every read returns a zero value and
// ok() stays false. count() also fails a count above `max` or above the bytes left (each item
// takes at least one byte), so no decoder reserves memory for a count the input cannot hold.
class StickyReader {
 public:
  explicit StickyReader(BufferView bytes) : r_(bytes) {}
  bool ok() const { return ok_; }
  bool at_end() const { return r_.at_end(); }
  std::size_t remaining() const { return r_.remaining(); }
  void fail() { ok_ = false; }

  std::uint8_t u8() { return get<std::uint8_t>(); }
  std::uint16_t u16() { return get<std::uint16_t>(); }
  std::uint32_t u32() { return get<std::uint32_t>(); }
  std::uint64_t u64() { return get<std::uint64_t>(); }
  std::int16_t i16() { return static_cast<std::int16_t>(get<std::uint16_t>()); }
  std::int32_t i32() { return static_cast<std::int32_t>(get<std::uint32_t>()); }
  std::int64_t i64() { return static_cast<std::int64_t>(get<std::uint64_t>()); }
  BufferView bytes(std::size_t n) {
    BufferView out;
    ok_ = ok_ && r_.read_bytes(n, &out);
    return out;
  }
  std::uint32_t count(std::uint32_t max) {
    std::uint32_t n = u32();
    ok_ = ok_ && n <= max && n <= r_.remaining();
    return ok_ ? n : 0;
  }
  std::string str16() {
    std::uint16_t n = u16();
    BufferView view = bytes(n);
    return ok_ ? std::string(reinterpret_cast<const char*>(view.data()), view.size()) : "";
  }
  // count u32 (at most max) | i32 *, as put_i32_list writes it.
  template <typename Id>
  std::vector<Id> i32_list(std::uint32_t max) {
    std::vector<Id> out;
    std::uint32_t n = count(max);
    for (std::uint32_t i = 0; i < n && ok_; ++i) out.push_back(Id(i32()));
    return out;
  }

 private:
  template <typename T>
  T get() {
    T v{};
    ok_ = ok_ && r_.read(&v);
    return ok_ ? v : T{};
  }
  LeReader r_;
  bool ok_ = true;
};

}  // namespace mq::le
