// Log::file_slice: the payload extents of a range of batches for sendfile() (the Kafka fetch
// path), lock-free on a snapshot like read(), with the locked path as the fallback.
#include <algorithm>

#include "storage/log.h"

namespace mq::storage {

using segment_format::kEntryHeaderSize;
namespace {

struct SlicePart {
  std::shared_ptr<Segment> segment;
  std::uint64_t size = 0;
  std::uint64_t written = 0;
  KafkaOffset first_offset;
};

// Extents the segment's write-behind buffer still holds are copied from it (the newest
// ones: those from the first such extent on); older ones that the read cache holds are
// shared from there (read_cache.h). The rest is read from the file by the caller.
void take_buffered_bytes(const Segment& segment, FileSlice* slice) {
  auto it = slice->extents.rbegin();
  for (; it != slice->extents.rend(); ++it) {
    auto bytes = segment.copy_buffered(it->position, it->length);
    if (!bytes) break;  // older ones are below the buffer too
    it->bytes = std::move(*bytes);
  }
  for (; it != slice->extents.rend(); ++it) {
    auto bytes = segment.cached(it->position, it->length);
    if (!bytes) break;  // older ones were evicted before it (oldest first), or never cached
    it->bytes = std::move(*bytes);
  }
}

// The lock-free part of file_slice: locate `offset` in the snapshot's segments, then collect
// payload extents of that segment's entries below hi.
Result<std::optional<FileSlice>> slice_parts(const std::vector<SlicePart>& parts,
                                             KafkaOffset offset, LogIndex hi,
                                             std::uint64_t bytes_max, std::uint64_t generation) {
  for (const SlicePart& part : parts) {
    Segment& segment = *part.segment;
    MQ_ASSIGN_OR_RETURN(auto found, segment.locate_offset_within(offset, part.first_offset, part.size));
    if (!found) continue;
    if (found->header.index >= hi) return std::optional<FileSlice>();
    FileSlice slice;
    slice.file = segment.file();
    slice.fd = slice.file->native_handle();
    slice.written_end = part.written;
    slice.generation = generation;
    slice.first_index = found->header.index;
    slice.first_offset = found->header.base_offset;
    std::uint64_t position = found->position;
    for (LogIndex index = slice.first_index; index < hi && position < part.size; ++index) {
      // The first header was read (and checked against the bound) by the lookup.
      EntryHeader h = found->header;
      if (index != slice.first_index) {
        MQ_ASSIGN_OR_RETURN(h, segment.read_header_within(position, index, part.size));
      }
      if (!slice.extents.empty() && slice.total_bytes + h.payload_length > bytes_max) break;
      slice.extents.push_back({position + kEntryHeaderSize, h.payload_length, {}});
      slice.total_bytes += h.payload_length;
      slice.last_index = index;
      slice.last_offset = h.last_offset();
      position += h.stored_size();
    }
    take_buffered_bytes(segment, &slice);
    return std::optional(std::move(slice));
  }
  return std::optional<FileSlice>();
}

}  // namespace

// Like read(): the disk I/O runs without the mutex on a snapshot, checked against the
// truncation generation afterwards; the locked path is the fallback.
Result<FileSlice> Log::file_slice(KafkaOffset offset, LogIndex hi, std::uint64_t bytes_max) {
  std::vector<SlicePart> parts;
  std::uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    MQ_RETURN_IF_ERROR(write_out_below_locked(hi));
    if (offset < meta_.start_offset || offset >= next_offset_ || last_index_ < meta_.start_index) {
      return file_slice_locked(offset, hi, bytes_max);  // the error (or none) without I/O
    }
    generation = generation_;
    // Last non-empty segment whose first offset <= offset, then the ones after it.
    std::size_t lo = 0, end = segments_.size();
    while (end - lo > 1) {
      std::size_t mid = lo + (end - lo) / 2;
      if (segments_[mid]->empty() || segments_[mid]->first_offset() > offset) {
        end = mid;
      } else {
        lo = mid;
      }
    }
    for (std::size_t k = lo; k < segments_.size() && parts.size() < 2; ++k) {
      if (segments_[k]->empty()) continue;
      parts.push_back({segments_[k], segments_[k]->size_bytes(), segments_[k]->written_bytes(),
                       segments_[k]->first_offset()});
    }
  }
  auto result = slice_parts(parts, offset, hi, bytes_max, generation);
  if (result.has_value() && result->has_value()) {
    std::lock_guard lock(mutex_);
    if (generation == generation_) return std::move(**result);
  }
  std::lock_guard lock(mutex_);
  return file_slice_locked(offset, hi, bytes_max);
}

// A slice is read from the file itself (sendfile): entries below hi that are still only in
// the write-behind buffer are written out first. Synced entries are always written, so a
// fetch below the high watermark never forces a write.
Status Log::write_out_below_locked(LogIndex hi) {
  if (hi <= synced_index_ + 1 || segments_.empty() || !segments_.back()->has_unwritten_bytes()) {
    return Status::ok();
  }
  MQ_RETURN_IF_ERROR(check_writable_locked());
  Status flushed = segments_.back()->flush_buffer();
  if (!flushed.is_ok()) return fail_locked(flushed);
  return Status::ok();
}

Result<FileSlice> Log::file_slice_locked(KafkaOffset offset, LogIndex hi, std::uint64_t bytes_max) {
  MQ_RETURN_IF_ERROR(write_out_below_locked(hi));
  MQ_ASSIGN_OR_RETURN(auto found, locate_offset_locked(offset));
  if (!found || found->second.header.index >= hi) {
    return Status::out_of_range("file_slice: no entry at or after offset " +
                                std::to_string(offset.value()) + " below index " +
                                std::to_string(hi.value()));
  }
  Segment& segment = *segments_[found->first];
  FileSlice slice;
  slice.file = segment.file();
  slice.fd = slice.file->native_handle();
  slice.written_end = segment.written_bytes();
  slice.generation = generation_;
  slice.first_index = found->second.header.index;
  slice.first_offset = found->second.header.base_offset;
  std::uint64_t position = found->second.position;
  LogIndex end = std::min(hi, segment.last_index() + 1);
  for (LogIndex index = slice.first_index; index < end; ++index) {
    EntryHeader h = found->second.header;  // the first: read by the lookup
    if (index != slice.first_index) {
      MQ_ASSIGN_OR_RETURN(h, segment.read_header(position, index));
    }
    if (!slice.extents.empty() && slice.total_bytes + h.payload_length > bytes_max) break;
    slice.extents.push_back({position + kEntryHeaderSize, h.payload_length, {}});
    slice.total_bytes += h.payload_length;
    slice.last_index = index;
    slice.last_offset = h.last_offset();
    position += h.stored_size();
  }
  take_buffered_bytes(segment, &slice);
  return slice;
}

}  // namespace mq::storage
