// OutFrame: one response frame as the connection writes it. Most responses are one encoded
// buffer; a Fetch response is its encoded fields with the record batches spliced in from the
// partition logs without copying them: file extents go out with sendfile(2), in-memory batches
// (shared buffers) are gathered by sendmsg(2) next to the frame's own bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/buffer.h"

namespace mq::kafka {

struct OutFrame {
  enum class Source : std::uint8_t {
    kOwn,     // bytes_[offset, offset + length)
    kShared,  // shared[offset, offset + length)
    kFile,    // fd [offset, offset + length), kept open by keep_alive
  };
  struct Piece {
    Source source = Source::kOwn;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    SharedBuffer shared;
    int fd = -1;
    std::shared_ptr<const void> keep_alive;
  };

  OutFrame() = default;
  // A frame that is one buffer (every response but Fetch's zero-copy form).
  explicit OutFrame(Buffer bytes) : bytes_(std::move(bytes)) {
    if (!bytes_.empty()) pieces_.push_back(Piece{Source::kOwn, 0, bytes_.size(), {}, -1, {}});
    size_ = bytes_.size();
  }

  // Building: own bytes are appended to the frame's buffer (and to the last own piece when it
  // ends there); zero-length pieces are dropped.
  void append_own(BufferView bytes) {
    if (bytes.empty()) return;
    std::uint64_t at = bytes_.size();
    bytes_.append(bytes);
    if (!pieces_.empty() && pieces_.back().source == Source::kOwn &&
        pieces_.back().offset + pieces_.back().length == at) {
      pieces_.back().length += bytes.size();
    } else {
      pieces_.push_back(Piece{Source::kOwn, at, bytes.size(), {}, -1, {}});
    }
    size_ += bytes.size();
  }
  void append_shared(SharedBuffer shared, std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return;
    pieces_.push_back(Piece{Source::kShared, offset, length, std::move(shared), -1, {}});
    size_ += length;
  }
  void append_file(int fd, std::uint64_t offset, std::uint64_t length,
                   std::shared_ptr<const void> keep_alive) {
    if (length == 0) return;
    pieces_.push_back(Piece{Source::kFile, offset, length, {}, fd, std::move(keep_alive)});
    size_ += length;
  }
  // Overwrites own bytes already appended (the frame's size prefix once the size is known).
  std::uint8_t* own_data() { return bytes_.data(); }

  std::uint64_t size() const { return size_; }
  const std::vector<Piece>& pieces() const { return pieces_; }
  // Memory of a non-file piece.
  const std::uint8_t* data_of(const Piece& p) const {
    return (p.source == Source::kOwn ? bytes_.data() : p.shared.data()) + p.offset;
  }
  bool has_file_pieces() const {
    for (const Piece& p : pieces_) {
      if (p.source == Source::kFile) return true;
    }
    return false;
  }

 private:
  Buffer bytes_;
  std::vector<Piece> pieces_;
  std::uint64_t size_ = 0;
};

}  // namespace mq::kafka
