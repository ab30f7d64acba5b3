// Byte buffers. BufferView is a non-owning view (valid while its owner lives and is not
// mutated); Buffer is an owning, growable byte vector. Bytes are std::uint8_t throughout.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/assert.h"

namespace mq {

using BufferView = std::span<const std::uint8_t>;

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t size) : bytes_(size) {}
  explicit Buffer(BufferView view) : bytes_(view.begin(), view.end()) {}
  explicit Buffer(std::string_view text)
      : bytes_(reinterpret_cast<const std::uint8_t*>(text.data()),
               reinterpret_cast<const std::uint8_t*>(text.data()) + text.size()) {}

  std::uint8_t* data() { return bytes_.data(); }
  const std::uint8_t* data() const { return bytes_.data(); }
  std::size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  void clear() { bytes_.clear(); }
  void reserve(std::size_t n) { bytes_.reserve(n); }
  void resize(std::size_t n) { bytes_.resize(n); }
  std::size_t capacity() const { return bytes_.capacity(); }

  void append(BufferView view) { bytes_.insert(bytes_.end(), view.begin(), view.end()); }
  void append(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + n);
  }
  void push_back(std::uint8_t byte) { bytes_.push_back(byte); }

  std::uint8_t& operator[](std::size_t i) {
    MQ_DASSERT(i < bytes_.size());
    return bytes_[i];
  }
  std::uint8_t operator[](std::size_t i) const {
    MQ_DASSERT(i < bytes_.size());
    return bytes_[i];
  }

  BufferView view() const { return BufferView(bytes_.data(), bytes_.size()); }
  BufferView view(std::size_t offset, std::size_t length) const {
    MQ_ASSERT(offset <= bytes_.size() && length <= bytes_.size() - offset);
    return BufferView(bytes_.data() + offset, length);
  }
  operator BufferView() const { return view(); }  // NOLINT implicit: a view of owned bytes
  std::string_view as_string_view() const {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }
  std::vector<std::uint8_t>& vector() { return bytes_; }

  bool operator==(const Buffer& other) const = default;

 private:
  std::vector<std::uint8_t> bytes_;
};

inline BufferView as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}
inline std::string_view as_chars(BufferView bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline bool equal_bytes(BufferView a, BufferView b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// "0a1b..." lower-case hex, for traces and dumps.
std::string to_hex(BufferView bytes);

}  // namespace mq

namespace mq {

// Immutable, reference-counted bytes: copying a SharedBuffer copies a pointer, not the bytes.
// Used for payloads that travel through several owners (a Raft entry sits in the unstable log,
// in messages to each follower and in the committed batch at once). A default SharedBuffer is
// empty.
class SharedBuffer {
 public:
  SharedBuffer() = default;
  explicit SharedBuffer(Buffer bytes) {
    own(std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes.vector())));
  }
  explicit SharedBuffer(BufferView bytes) {
    own(std::make_shared<const std::vector<std::uint8_t>>(bytes.begin(), bytes.end()));
  }
  explicit SharedBuffer(std::string_view text) : SharedBuffer(as_bytes_view(text)) {}
  SharedBuffer(const SharedBuffer&) = default;
  SharedBuffer& operator=(const SharedBuffer&) = default;
  // A moved-from SharedBuffer is empty (as a moved-from shared_ptr is null).
  SharedBuffer(SharedBuffer&& other) noexcept
      : owner_(std::move(other.owner_)), data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  SharedBuffer& operator=(SharedBuffer&& other) noexcept {
    if (this != &other) {
      owner_ = std::move(other.owner_);
      data_ = other.data_;
      size_ = other.size_;
      other.data_ = nullptr;
      other.size_ = 0;
    }
    return *this;
  }
  // Bytes that `owner` keeps alive (memory the caller manages, e.g. a pooled read buffer):
  // no copy; the bytes must not change while any copy of the result exists.
  static SharedBuffer alias(std::shared_ptr<const void> owner, BufferView bytes) {
    SharedBuffer b;
    b.owner_ = std::move(owner);
    b.data_ = bytes.data();
    b.size_ = bytes.size();
    return b;
  }

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size() == 0; }
  BufferView view() const { return BufferView(data_, size_); }
  operator BufferView() const { return view(); }  // NOLINT implicit
  bool operator==(const SharedBuffer& other) const { return equal_bytes(view(), other.view()); }

 private:
  static BufferView as_bytes_view(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
  }
  void own(std::shared_ptr<const std::vector<std::uint8_t>> bytes) {
    data_ = bytes->data();
    size_ = bytes->size();
    owner_ = std::move(bytes);
  }
  // Keeps data_ valid; data_/size_ point into it (a vector's heap storage, or the alias's
  // memory), so copies and moves of the SharedBuffer keep them valid too.
  std::shared_ptr<const void> owner_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace mq
