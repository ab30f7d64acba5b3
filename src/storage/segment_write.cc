// The write path of a segment: appends through the page cache, direct appends, and the
// write-behind buffer that coalesces appends into large aligned writes (segment.h).
//
// Why the write-behind buffer: in mode `always` every append is followed by an fdatasync, and
// a direct write of one batch (say 256 KiB) at a time, at queue depth 1, reaches only a
// fraction of the device's sequential bandwidth (per-write latency). Appends therefore only
// copy (and checksum) into an aligned per-segment buffer; the buffer goes to the file as one
// large direct write when it fills and when the flusher is about to fdatasync, so write sizes
// follow the buffer and the sync rate, not the batch size (docs/storage_testing.md).
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "base/crc32c.h"
#include "storage/segment.h"

namespace mq::storage {

using segment_format::kEntryHeaderSize;

namespace {

constexpr std::uint64_t kAlign = kDirectIoAlignment;

std::uint64_t align_down(std::uint64_t n) { return n - n % kAlign; }
std::uint64_t align_up(std::uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::atomic<std::uint64_t> g_buffer_budget{128ull << 20};
std::atomic<std::uint64_t> g_buffer_in_use{0};

// Takes `bytes` from the process-wide budget; false when it would be exceeded.
bool take_budget(std::uint64_t bytes) {
  std::uint64_t used = g_buffer_in_use.load();
  do {
    if (used + bytes > g_buffer_budget.load()) return false;
  } while (!g_buffer_in_use.compare_exchange_weak(used, used + bytes));
  return true;
}

}  // namespace

void set_write_buffer_budget_bytes(std::uint64_t bytes) { g_buffer_budget.store(bytes); }
std::uint64_t write_buffer_bytes_in_use() { return g_buffer_in_use.load(); }

// Shared by the segment (the only writer, under the log's mutex) and its read view (any
// thread). `mutex` guards `data` (allocation), `start` and `fill`, and every change of bytes
// that a reader may read: bytes below `start + fill` (readers never read at or beyond the
// size they snapshotted, and the writer only appends beyond it).
struct Segment::TailBuffer {
  std::mutex mutex;
  std::uint8_t* data = nullptr;  // null: inactive
  std::size_t capacity = 0;
  std::uint64_t start = 0;  // file position of data[0], block-aligned
  std::size_t fill = 0;     // data holds the file bytes [start, start + fill)

  ~TailBuffer() { release(); }
  void release() {
    std::lock_guard lock(mutex);
    if (data == nullptr) return;
    std::free(data);
    data = nullptr;
    g_buffer_in_use.fetch_sub(capacity);
    capacity = 0;
    fill = 0;
  }
};

namespace {

// The segment's reads: the file, with the write-behind buffer's bytes on top (they are newer
// than, or equal to, what the file holds at the same positions).
class TailReader final : public File {
 public:
  TailReader(std::shared_ptr<File> file, std::shared_ptr<void> keep, Segment::TailBuffer* buffer)
      : file_(std::move(file)), keep_(std::move(keep)), buffer_(buffer) {}

  Result<std::size_t> read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;
  Status write_at(std::uint64_t, std::span<const BufferView>) override {
    return Status::internal("segment read view: not writable");
  }
  Status sync() override { return Status::internal("segment read view: not writable"); }
  Status truncate(std::uint64_t) override {
    return Status::internal("segment read view: not writable");
  }
  Result<std::uint64_t> size() override { return file_->size(); }
  int native_handle() const override { return -1; }

 private:
  std::shared_ptr<File> file_;
  std::shared_ptr<void> keep_;  // keeps *buffer_ alive
  Segment::TailBuffer* buffer_;
};

}  // namespace

Result<std::size_t> TailReader::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  std::uint64_t end = offset + out.size();
  std::size_t from_file = out.size();
  std::size_t from_buffer = 0;
  {
    std::lock_guard lock(buffer_->mutex);
    if (buffer_->data != nullptr && end > buffer_->start) {
      std::uint64_t lo = std::max(offset, buffer_->start);
      std::uint64_t hi = std::min(end, buffer_->start + buffer_->fill);
      from_file = static_cast<std::size_t>(lo - offset);
      if (hi > lo) {
        from_buffer = static_cast<std::size_t>(hi - lo);
        std::memcpy(out.data() + from_file, buffer_->data + (lo - buffer_->start), from_buffer);
      }
    }
  }
  if (from_file == 0) return from_buffer;
  // Below the buffer's start the file holds the bytes (and keeps them: a cut or reset is
  // detected by the caller's generation check).
  MQ_ASSIGN_OR_RETURN(std::size_t got, file_->read_at(offset, out.first(from_file)));
  return got < from_file ? got : from_file + from_buffer;
}

Status Segment::append(std::span<const AppendEntry> entries, bool* broken) {
  MQ_ASSERT(!closed_);
  MQ_ASSERT(!entries.empty());
  Buffer headers(entries.size() * kEntryHeaderSize);
  std::vector<BufferView> pieces;
  pieces.reserve(entries.size() * 2);
  std::vector<EntryHeader> written;
  written.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const AppendEntry& e = entries[i];
    EntryHeader h;
    h.payload_crc = crc32c::value(e.payload);
    h.payload_length = static_cast<std::uint32_t>(e.payload.size());
    h.last_offset_delta = e.last_offset_delta;
    h.term = e.term;
    h.index = e.index;
    h.base_offset = e.base_offset;
    h.max_timestamp = e.max_timestamp;
    h.kind = e.kind;
    std::uint8_t* out = headers.data() + i * kEntryHeaderSize;
    h.encode_to(out);
    MQ_DASSERT(EntryHeader::decode_from(BufferView(out, kEntryHeaderSize)).has_value());
    pieces.push_back(BufferView(out, kEntryHeaderSize));
    pieces.push_back(e.payload);
    written.push_back(h);
  }
  std::uint64_t bytes = headers.size();
  for (const AppendEntry& e : entries) bytes += e.payload.size();
  Status status = Status::unsupported("buffered");
  bool large = options_.direct_append_min_bytes > 0 && bytes >= options_.direct_append_min_bytes;
  // The write-behind buffer takes large appends, and every append while it holds data (a
  // write at size_ would leave the buffered bytes out).
  bool buffered = options_.write_buffer_bytes > 0 && (large || buffer_->data != nullptr);
  if (buffered) {
    status = append_buffered(pieces, bytes, broken);
    if (status.code() != ErrorCode::kUnsupported) {
      if (!status.is_ok()) return status;  // nothing accepted (or *broken)
      std::uint64_t position = size_;
      for (const EntryHeader& h : written) {
        note_entry(position, h);
        position += h.stored_size();
      }
      size_ = position;
      MQ_ASSERT(size_ <= segment_format::kSegmentBytesMax);
      MQ_ASSERT(buffer_->start + buffer_->fill == size_ && written_end_ <= size_);
      writeback_position_ = align_down(written_end_);  // nothing in the page cache
      return Status::ok();
    }
    MQ_ASSERT(buffer_->data == nullptr);  // unsupported only before activation
  }
  bool direct = large && !direct_unsupported_;
  if (direct) {
    status = append_direct(pieces, bytes);
    if (status.code() == ErrorCode::kUnsupported) direct_unsupported_ = true;
  }
  if (status.code() == ErrorCode::kUnsupported) {
    status = file_->write_at(size_, pieces);
    tail_block_valid_ = false;
  }
  if (!status.is_ok()) {
    // Roll the partially written tail back to the last good position, durably: otherwise a
    // crash could bring back whole entries of an append that was reported as failed.
    if (!file_->truncate(size_).is_ok() || !file_->sync().is_ok()) *broken = true;
    padded_ = false;
    tail_block_valid_ = false;
    return status;
  }
  std::uint64_t position = size_;
  for (const EntryHeader& h : written) {
    note_entry(position, h);
    position += h.stored_size();
  }
  size_ = position;
  written_end_ = size_;
  MQ_ASSERT(size_ <= segment_format::kSegmentBytesMax);
  // Start write-back of every full MiB behind us so the next fdatasync finds little to do.
  constexpr std::uint64_t kWritebackChunkBytes = 1 << 20;
  if (direct) {
    writeback_position_ = size_ - size_ % kWritebackChunkBytes;  // nothing in the page cache
  } else if (size_ - writeback_position_ >= kWritebackChunkBytes) {
    std::uint64_t end = size_ - size_ % kWritebackChunkBytes;
    file_->start_writeback(writeback_position_, end - writeback_position_);
    writeback_position_ = end;
  }
  return Status::ok();
}

namespace {

// The staging buffer of direct appends: one per appending thread (not per segment, so
// memory does not grow with the number of partitions), aligned for O_DIRECT.
class DirectStaging {
 public:
  static constexpr std::size_t kBytes = 1 << 20;
  DirectStaging() {
    MQ_ASSERT(::posix_memalign(reinterpret_cast<void**>(&data_), kDirectIoAlignment, kBytes) == 0);
  }
  ~DirectStaging() { std::free(data_); }
  DirectStaging(const DirectStaging&) = delete;
  DirectStaging& operator=(const DirectStaging&) = delete;
  std::uint8_t* data() { return data_; }

 private:
  std::uint8_t* data_ = nullptr;
};

}  // namespace

// Why: on the page-cache path every byte is copied into the page cache and then written back
// by the kernel's flusher threads, which on a busy machine caps appends well below the
// device's bandwidth. Large appends instead stream through an aligned staging buffer
// straight to the device (the fdatasync that follows then only commits the size and flushes
// the device cache). The partial last block is rewritten with the same bytes it held, so a
// torn direct write cannot damage what was already there; the zero padding after the last
// entry is cut by recovery like any torn tail, and by trim_padding() before the segment is
// closed (docs/formats/segment_format.md, "Direct appends").
Status Segment::append_direct(std::span<const BufferView> pieces, std::uint64_t bytes) {
  constexpr std::uint64_t kAlign = kDirectIoAlignment;
  static thread_local DirectStaging staging;
  std::uint8_t* buffer = staging.data();
  std::uint64_t write_position = size_ - size_ % kAlign;
  std::size_t head = static_cast<std::size_t>(size_ - write_position);
  if (!tail_block_valid_) {
    tail_block_.resize(kAlign);
    MQ_RETURN_IF_ERROR(read_exact(*file_, write_position, std::span(tail_block_.data(), head),
                                  describe_position(write_position)));
    tail_block_valid_ = true;
  }
  std::memcpy(buffer, tail_block_.data(), head);
  std::size_t fill = head;
  bool first_write = true;
  auto flush = [&](std::size_t length) -> Status {
    Status status = file_->write_direct(write_position, BufferView(buffer, length));
    if (status.code() == ErrorCode::kUnsupported && !first_write) {
      return Status::io_error("direct I/O refused part-way: " + status.message());
    }
    first_write = false;
    write_position += length;
    return status;
  };
  for (BufferView piece : pieces) {
    std::size_t at = 0;
    while (at < piece.size()) {
      std::size_t n = std::min(piece.size() - at, DirectStaging::kBytes - fill);
      std::memcpy(buffer + fill, piece.data() + at, n);
      fill += n;
      at += n;
      if (fill == DirectStaging::kBytes) {
        MQ_RETURN_IF_ERROR(flush(fill));
        fill = 0;
      }
    }
  }
  std::uint64_t end = size_ + bytes;
  MQ_ASSERT(write_position + fill == end);
  std::size_t tail = static_cast<std::size_t>(end % kAlign);
  if (fill > 0) {
    std::size_t padded = static_cast<std::size_t>((fill + kAlign - 1) / kAlign * kAlign);
    std::memset(buffer + fill, 0, padded - fill);
    // The new partial block, before the buffer is reused.
    if (tail > 0) std::memcpy(tail_block_.data(), buffer + (fill - tail), tail);
    MQ_RETURN_IF_ERROR(flush(padded));
  }
  padded_ = padded_ || tail > 0;
  return Status::ok();
}

Status Segment::trim_padding() {
  MQ_RETURN_IF_ERROR(flush_buffer());
  release_buffer();
  if (!padded_ && reserved_end_ <= size_) return Status::ok();
  // Also releases space reserved beyond the end (ext4 frees preallocated blocks past the new
  // size even when the size does not change).
  MQ_RETURN_IF_ERROR(file_->truncate(size_));
  padded_ = false;
  reserved_end_ = 0;
  return Status::ok();
}

Status Segment::sync() { return file_->sync(); }

void Segment::attach_file(std::shared_ptr<File> file) {
  file_ = std::move(file);
  buffer_ = std::make_shared<TailBuffer>();
  reader_ = std::make_shared<TailReader>(file_, buffer_, buffer_.get());
}

void Segment::release_buffer() {
  MQ_ASSERT(written_end_ == size_);
  buffer_->release();
}

// Space first (crash rule 6 stays true: a full disk fails the append, not a later write of
// data already accepted): the file's space is reserved up to the end of the append plus one
// buffer, or, if that much is not free, just to the end of the append.
Status Segment::reserve_for(std::uint64_t end) {
  std::uint64_t need = align_up(end);
  if (need <= reserved_end_) return Status::ok();
  std::uint64_t from = std::max(reserved_end_, align_down(written_end_));
  std::uint64_t ahead = need + options_.write_buffer_bytes;
  Status status = file_->reserve(from, ahead - from);
  if (status.code() == ErrorCode::kNoSpace) {
    ahead = need;
    status = file_->reserve(from, ahead - from);
  }
  if (!status.is_ok()) return status;
  reserved_end_ = ahead;
  return Status::ok();
}

Status Segment::append_buffered(std::span<const BufferView> pieces, std::uint64_t bytes,
                                bool* broken) {
  TailBuffer& b = *buffer_;
  if (reserve_unsupported_) return Status::unsupported("no space reservation");
  Status reserved = reserve_for(size_ + bytes);
  if (reserved.code() == ErrorCode::kUnsupported && b.data == nullptr) {
    reserve_unsupported_ = true;
    return reserved;
  }
  MQ_RETURN_IF_ERROR(reserved);
  if (b.data == nullptr) {
    // Activate: the buffer starts at the block holding the end of the file, with the bytes
    // the file already has in that block (rewritten unchanged by the next write).
    MQ_ASSERT(written_end_ == size_);
    std::size_t capacity = static_cast<std::size_t>(options_.write_buffer_bytes);
    if (!take_budget(capacity)) return Status::unsupported("write buffer budget exhausted");
    void* data = nullptr;
    if (::posix_memalign(&data, kAlign, capacity) != 0) {
      g_buffer_in_use.fetch_sub(capacity);
      return Status::unsupported("write buffer: out of memory");
    }
    std::uint64_t start = align_down(size_);
    auto head = static_cast<std::size_t>(size_ - start);
    Status read = read_exact(*file_, start, std::span(static_cast<std::uint8_t*>(data), head),
                             describe_position(start));
    if (!read.is_ok()) {
      std::free(data);
      g_buffer_in_use.fetch_sub(capacity);
      return read;
    }
    tail_block_valid_ = false;  // the buffer holds the partial block from now on
    std::lock_guard lock(b.mutex);
    b.data = static_cast<std::uint8_t*>(data);
    b.capacity = capacity;
    b.start = start;
    b.fill = head;
  }
  MQ_ASSERT(b.start + b.fill == size_);
  for (BufferView piece : pieces) {
    std::size_t at = 0;
    while (at < piece.size()) {
      std::size_t n = std::min(piece.size() - at, b.capacity - b.fill);
      {
        std::lock_guard lock(b.mutex);
        std::memcpy(b.data + b.fill, piece.data() + at, n);
        b.fill += n;
      }
      at += n;
      if (b.fill < b.capacity) continue;
      // Full: one large aligned write; the buffer then starts over after it.
      Status status = file_->write_direct(b.start, BufferView(b.data, b.capacity));
      if (status.code() == ErrorCode::kUnsupported) {
        direct_unsupported_ = true;
        status = file_->write_at(b.start, BufferView(b.data, b.capacity));
      }
      if (!status.is_ok()) {
        // Entries accepted earlier may not be on the file: the log must fail. Keep the
        // buffer consistent for reads meanwhile: it again ends at size_ (nothing of this
        // append), or, if an earlier write of this append moved it past size_ (everything
        // before this append is on the file then), it is dropped.
        if (b.start <= size_) {
          std::lock_guard lock(b.mutex);
          b.fill = static_cast<std::size_t>(size_ - b.start);
        } else {
          written_end_ = size_;
          b.release();
        }
        *broken = true;
        return status;
      }
      std::lock_guard lock(b.mutex);
      b.start += b.capacity;
      b.fill = 0;
      written_end_ = b.start;
    }
  }
  return Status::ok();
}

Status Segment::flush_buffer() {
  if (written_end_ >= size_) return Status::ok();
  TailBuffer& b = *buffer_;
  MQ_ASSERT(b.data != nullptr && b.start + b.fill == size_);
  std::size_t used = b.fill;
  auto padded = static_cast<std::size_t>(align_up(used));
  {
    std::lock_guard lock(b.mutex);
    std::memset(b.data + used, 0, padded - used);
  }
  Status status = direct_unsupported_ ? Status::unsupported("buffered")
                                      : file_->write_direct(b.start, BufferView(b.data, padded));
  if (status.code() == ErrorCode::kUnsupported) {
    direct_unsupported_ = true;
    padded = used;
    status = file_->write_at(b.start, BufferView(b.data, used));
  }
  MQ_RETURN_IF_ERROR(status);
  written_end_ = size_;
  padded_ = padded_ || padded > used;
  // Keep the partial last block: the next write starts there.
  std::uint64_t start = align_down(size_);
  std::lock_guard lock(b.mutex);
  std::memmove(b.data, b.data + (start - b.start), static_cast<std::size_t>(size_ - start));
  b.fill = static_cast<std::size_t>(size_ - start);
  b.start = start;
  return Status::ok();
}

}  // namespace mq::storage
