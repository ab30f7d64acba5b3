#include "storage/segment.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/crc32c.h"
#include "base/le_codec.h"
#include "storage/read_cache.h"

namespace mq::storage {
namespace {

using segment_format::kEntryHeaderSize;
using segment_format::kSegmentHeaderSize;

constexpr std::size_t kScanBufferBytes = 256 << 10;
// The window of a lookup (locate_*): it steps over entry headers from an index point, which
// lies at most index_interval_bytes (4 KiB by default) before the entry looked for, so a small
// window holds all the headers it reads, and a large entry costs one more small read. With the
// 256 KiB window every fetch at the tail zeroed 256 KiB and copied up to 256 KiB of payload
// out of the page cache to read one 40-byte header (docs/benchmarks.md, "Fetch lookups").
constexpr std::size_t kLookupWindowBytes = 8 << 10;

// Buffered sequential reader over [.., end) of a segment file: entry headers, and payload
// checksums computed in chunks (never a whole large entry in memory). `window`: bytes read at
// once (kScanBufferBytes for scans that verify payloads, kLookupWindowBytes for lookups).
class Scanner {
 public:
  Scanner(File& file, std::uint64_t end, std::size_t window = kScanBufferBytes)
      : file_(file), end_(end), window_(window) {
    MQ_ASSERT(window_ >= kEntryHeaderSize);
  }

  Result<EntryHeader> header_at(std::uint64_t position) {
    if (position + kEntryHeaderSize > end_) {
      return Status::corruption("entry header truncated (" + std::to_string(end_ - position) +
                                " bytes left)");
    }
    MQ_ASSIGN_OR_RETURN(const std::uint8_t* p, view(position, kEntryHeaderSize));
    MQ_ASSIGN_OR_RETURN(EntryHeader header, EntryHeader::decode_from(BufferView(p, kEntryHeaderSize)));
    if (position + header.stored_size() > end_) {
      return Status::corruption("entry " + std::to_string(header.index.value()) +
                                ": payload truncated");
    }
    return header;
  }

  Status verify_payload(std::uint64_t position, const EntryHeader& header) {
    std::uint32_t crc = 0;
    std::uint64_t at = position + kEntryHeaderSize;
    std::uint64_t left = header.payload_length;
    while (left > 0) {
      std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(left, window_));
      MQ_ASSIGN_OR_RETURN(const std::uint8_t* p, view(at, chunk));
      crc = crc32c::extend(crc, p, chunk);
      at += chunk;
      left -= chunk;
    }
    if (crc != header.payload_crc) {
      return Status::corruption("entry " + std::to_string(header.index.value()) +
                                ": payload checksum mismatch");
    }
    return Status::ok();
  }

 private:
  Result<const std::uint8_t*> view(std::uint64_t position, std::size_t n) {
    MQ_ASSERT(n <= window_);
    if (position >= start_ && position + n <= start_ + length_) {
      return buffer_.data() + (position - start_);
    }
    if (buffer_.size() < window_) buffer_.resize(window_);
    std::size_t want = static_cast<std::size_t>(
        std::min<std::uint64_t>(window_, end_ > position ? end_ - position : 0));
    MQ_ASSIGN_OR_RETURN(std::size_t got,
                        file_.read_at(position, std::span<std::uint8_t>(buffer_.data(), want)));
    start_ = position;
    length_ = got;
    if (got < n) return Status::corruption("file ends inside an entry");
    return buffer_.data();
  }

  File& file_;
  std::uint64_t end_;
  std::size_t window_;
  Buffer buffer_;
  std::uint64_t start_ = 0;
  std::size_t length_ = 0;
};

// Looks for a valid entry (header and payload checksums good, index above after_index)
// starting anywhere in [from, end) of a tail segment whose entry at `damaged_at` failed its
// checks. Returns its position, or nullopt when only garbage, zeros or a partial entry
// follow. When the damaged entry's header is intact (`length_known`), only the position
// right after it is tried (that is where its successor must be); otherwise every byte
// position is tried, filtered cheaply by the index field before any checksum.
Result<std::optional<std::uint64_t>> find_valid_entry_after(File& file, std::uint64_t from,
                                                            std::uint64_t end,
                                                            LogIndex after_index,
                                                            bool length_known) {
  using Found = std::optional<std::uint64_t>;
  // Indexes that could follow in the remaining bytes (every entry takes >= a header).
  const std::uint64_t max_index = after_index.value() + (end - std::min(end, from)) / kEntryHeaderSize + 1;
  auto plausible = [&](const std::uint8_t* p) {
    std::uint64_t index = le::decode_u64(p + 24);
    return index > after_index.value() && index <= max_index;
  };
  auto valid_at = [&](std::uint64_t position, const std::uint8_t* p) -> Result<bool> {
    auto header = EntryHeader::decode_from(BufferView(p, kEntryHeaderSize));
    if (!header.has_value() || position + header->stored_size() > end) return false;
    Scanner scanner(file, end);
    Status payload = scanner.verify_payload(position, *header);
    if (payload.code() != ErrorCode::kCorruption && !payload.is_ok()) return payload;
    return payload.is_ok();
  };
  if (length_known) {
    if (from + kEntryHeaderSize > end) return Found();
    std::uint8_t bytes[kEntryHeaderSize];
    MQ_RETURN_IF_ERROR(read_exact(file, from, std::span(bytes), "segment"));
    if (!plausible(bytes)) return Found();
    MQ_ASSIGN_OR_RETURN(bool valid, valid_at(from, bytes));
    return valid ? Found(from) : Found();
  }
  Buffer window(kScanBufferBytes + kEntryHeaderSize);
  for (std::uint64_t start = from; start + kEntryHeaderSize <= end; start += kScanBufferBytes) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(window.size(), end - start));
    MQ_ASSIGN_OR_RETURN(std::size_t got, file.read_at(start, std::span(window.data(), want)));
    for (std::size_t i = 0; i + kEntryHeaderSize <= got && i < kScanBufferBytes; ++i) {
      if (!plausible(window.data() + i)) continue;
      MQ_ASSIGN_OR_RETURN(bool valid, valid_at(start + i, window.data() + i));
      if (valid) return Found(start + i);
    }
  }
  return Found();
}

bool all_zero(BufferView bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

// Whether the damage of a tail whose first damaged entry starts at `position` (known to
// reach at least `entry_end`) and is followed by a valid entry is a hole left by concurrent
// part writes (segment_format.md, "Concurrent writes") rather than corruption: an aligned
// block of zeros (a part whose write never completed reads as zeros; in the block holding
// `position`, the bytes from `position` on) overlaps the damaged entry, and every non-zero
// byte after that block lies within kConcurrentWriteSpanMax of it (no later write can have
// been issued before the hole's write completed). Conservative where it cannot tell: the
// first zero block is taken, which may be zeros inside a payload before the real hole, so a
// legitimate hole can still be reported as corruption, as before concurrent writes. What
// it cannot tell from a hole: a damaged entry with an aligned block of zeros in its payload,
// in the last kConcurrentWriteSpanMax bytes of the tail; the sync ledger (cluster layer)
// still tells a replica that lost synced entries.
Result<bool> concurrent_write_hole(File& file, std::uint64_t position, std::uint64_t entry_end,
                                   std::uint64_t file_size) {
  constexpr std::uint64_t kBlock = kDirectIoAlignment;
  entry_end = std::min(entry_end, file_size);
  std::optional<std::uint64_t> zero_block;
  Buffer block(kBlock);
  for (std::uint64_t at = position - position % kBlock; at < entry_end && at + kBlock <= file_size;
       at += kBlock) {
    // The block holding `position` counts from there (the bytes before it are entries).
    std::uint64_t from = std::max(at, position);
    auto n = static_cast<std::size_t>(at + kBlock - from);
    MQ_RETURN_IF_ERROR(read_exact(file, from, std::span(block.data(), n), "segment"));
    if (all_zero(BufferView(block.data(), n))) {
      zero_block = at;
      break;
    }
  }
  if (!zero_block) return false;
  // The last non-zero byte of the file, searched backwards in blocks.
  std::uint64_t limit = *zero_block + segment_format::kConcurrentWriteSpanMax;
  for (std::uint64_t end = file_size; end > *zero_block;) {
    std::uint64_t from = end > kBlock ? end - kBlock : 0;
    from = std::max(from, *zero_block);
    auto n = static_cast<std::size_t>(end - from);
    MQ_RETURN_IF_ERROR(read_exact(file, from, std::span(block.data(), n), "segment"));
    if (!all_zero(BufferView(block.data(), n))) {
      std::size_t last = n;
      while (last > 0 && block.data()[last - 1] == 0) --last;
      return from + last <= limit;
    }
    end = from;
  }
  return true;
}

// Whether [from, end) of the file holds only zeros.
Result<bool> all_zero_range(File& file, std::uint64_t from, std::uint64_t end) {
  Buffer chunk(kScanBufferBytes);
  for (std::uint64_t at = from; at < end;) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), end - at));
    MQ_ASSIGN_OR_RETURN(std::size_t got, file.read_at(at, std::span(chunk.data(), want)));
    if (got == 0) return false;  // shorter than its size: not ours to keep
    if (!all_zero(BufferView(chunk.data(), got))) return false;
    at += got;
  }
  return true;
}

}  // namespace

Segment::Segment(FileSystem* fs, std::string dir, LogIndex base_index, SegmentOptions options)
    : fs_(fs),
      cache_key_(ReadCache::new_key()),
      dir_(std::move(dir)),
      path_(
          join_path(dir_, segment_format::file_stem(base_index) + segment_format::kSegmentSuffix)),
      options_(std::move(options)),
      base_index_(base_index),
      last_index_(base_index - 1) {
  MQ_ASSERT(base_index > LogIndex(0));
  MQ_ASSERT(options_.index_interval_bytes > 0);
}

std::string Segment::describe_position(std::uint64_t position) const {
  return "log " + options_.log_name + " segment " + path_ + " position " +
         std::to_string(position);
}

Status Segment::corruption_at(std::uint64_t position, const Status& cause) const {
  if (cause.code() != ErrorCode::kCorruption) return cause;  // I/O errors stay I/O errors
  return Status::corruption(describe_position(position) + ": " + cause.message());
}

Result<std::unique_ptr<Segment>> Segment::create(FileSystem* fs, const std::string& dir,
                                                 LogIndex base_index, std::int64_t created_ms,
                                                 const SegmentOptions& options, bool* sync_failed,
                                                 bool sync) {
  std::unique_ptr<Segment> segment(new Segment(fs, dir, base_index, options));
  MQ_ASSIGN_OR_RETURN(auto file, fs->open(segment->path_, OpenOptions{.create = true, .exclusive = true}));
  segment->attach_file(std::move(file));
  SegmentHeader header;
  header.base_index = base_index;
  header.created_ms = created_ms;
  std::uint8_t bytes[SegmentHeader::kEncodedSize];
  header.encode_to(bytes);
  Status status = segment->file_->write_at(0, BufferView(bytes, sizeof bytes));
  if (status.is_ok() && sync) {
    status = segment->file_->sync();
    *sync_failed = !status.is_ok();
  }
  if (!status.is_ok()) {
    segment->file_.reset();
    // Best effort, and made durable so the empty name cannot come back after a crash
    // (start-up also removes such leftovers).
    if (fs->remove(segment->path_).is_ok() && !fs->sync_dir(dir).is_ok()) *sync_failed = true;
    return status;
  }
  segment->created_ms_ = created_ms;
  segment->size_ = kSegmentHeaderSize;
  segment->written_end_ = kSegmentHeaderSize;
  return segment;
}

Result<std::unique_ptr<Segment>> Segment::open(FileSystem* fs, const std::string& dir,
                                               LogIndex base_index, bool tail,
                                               const SegmentOptions& options, OpenReport* report) {
  std::unique_ptr<Segment> segment(new Segment(fs, dir, base_index, options));
  MQ_ASSIGN_OR_RETURN(auto file, fs->open(segment->path_, OpenOptions{}));
  segment->attach_file(std::move(file));
  Status status = tail ? segment->load_tail(report) : segment->load_closed(report);
  if (!status.is_ok()) return status;
  if (report->leftover) return std::unique_ptr<Segment>();
  segment->written_end_ = segment->size_;
  return segment;
}

void Segment::note_entry(std::uint64_t position, const EntryHeader& header) {
  MQ_ASSERT(header.index == last_index_ + 1, "entry %lu after %lu", header.index.value(),
            last_index_.value());
  bool first = empty();
  if (first) first_offset_ = header.base_offset;
  MQ_ASSERT(header.base_offset >= first_offset_);
  last_index_ = header.index;
  last_term_ = header.term;
  last_offset_ = header.last_offset();
  max_timestamp_ = std::max(max_timestamp_, header.max_timestamp);
  if (!index_in_memory_) return;  // a closed segment's points are in its index files
  if (first || position - last_indexed_position_ >= options_.index_interval_bytes) {
    std::uint64_t relative_offset = header.base_offset - first_offset_;
    std::uint64_t relative_index = header.index - base_index_;
    MQ_ASSERT(relative_offset <= UINT32_MAX);
    MQ_ASSERT(relative_index <= UINT32_MAX);
    MQ_ASSERT(position <= UINT32_MAX);
    IndexPoint point;
    point.offset = {static_cast<std::uint32_t>(relative_index),
                    static_cast<std::uint32_t>(relative_offset),
                    static_cast<std::uint32_t>(position)};
    point.time = {max_timestamp_, static_cast<std::uint32_t>(position)};
    std::lock_guard lock(index_mutex_);
    points_.push_back(point);
    last_indexed_position_ = position;
  }
}

Status Segment::load_tail(OpenReport* report) {
  MQ_ASSIGN_OR_RETURN(std::uint64_t file_size, file_->size());
  Buffer header_bytes(kSegmentHeaderSize);
  MQ_ASSIGN_OR_RETURN(std::size_t got, file_->read_at(0, std::span(header_bytes.data(), header_bytes.size())));
  if (got < kSegmentHeaderSize || (file_size == kSegmentHeaderSize && all_zero(header_bytes))) {
    report->leftover = true;  // created, but the creation never became durable
    return Status::ok();
  }
  auto header = SegmentHeader::decode_from(header_bytes);
  if (!header.has_value()) return corruption_at(0, header.error());
  if (header->base_index != base_index_) {
    return Status::corruption(describe_position(0) + ": header says base index " +
                              std::to_string(header->base_index.value()));
  }
  created_ms_ = header->created_ms;
  Scanner scanner(*file_, file_size);
  std::uint64_t position = kSegmentHeaderSize;
  // The first entry that fails its checks, and where its successor would start if its
  // header is intact.
  std::optional<std::uint64_t> damaged_successor;
  bool damaged = false;
  while (position < file_size) {
    auto entry = scanner.header_at(position);
    if (!entry.has_value()) {
      if (entry.error().code() != ErrorCode::kCorruption) return entry.error();
      damaged = true;
      break;
    }
    // A whole, checksummed header that does not continue the log cannot come from a torn
    // write (the file is only ever appended at its end, and cuts are synced before the next
    // append): it is corruption, not a tail to cut.
    if (entry->index != last_index_ + 1) {
      return Status::corruption(describe_position(position) + ": entry index " +
                                std::to_string(entry->index.value()) + ", expected " +
                                std::to_string((last_index_ + 1).value()));
    }
    if (!empty() && (entry->term < last_term_ || entry->base_offset <= last_offset_)) {
      return Status::corruption(describe_position(position) + ": term or offset goes backwards");
    }
    Status payload = scanner.verify_payload(position, *entry);
    if (!payload.is_ok()) {
      if (payload.code() != ErrorCode::kCorruption) return payload;
      damaged = true;
      damaged_successor = position + entry->stored_size();
      break;
    }
    note_entry(position, *entry);
    position += entry->stored_size();
  }
  if (damaged && options_.zero_fill_window_bytes > 0) {
    // Only zeros after the last entry: pre-written space (zero_fill.cc), a clean end of the
    // log. Kept, to be appended over.
    MQ_ASSIGN_OR_RETURN(bool zeros, all_zero_range(*file_, position, file_size));
    if (zeros) {
      report->zero_tail_bytes = file_size - position;
      filled_end_ = file_size;
      size_ = position;
      remove_index_files_quietly();
      return Status::ok();
    }
  }
  if (damaged) {
    // A torn write damages only the end of what was being written: the damaged entry is the
    // last one in the file. A valid entry after it means the damaged one was complete once,
    // possibly synced and acknowledged: corruption, reported, never cut.
    MQ_ASSIGN_OR_RETURN(auto follower,
                        find_valid_entry_after(*file_, damaged_successor.value_or(position + 1),
                                               file_size, last_index_ + 1,
                                               damaged_successor.has_value()));
    std::uint64_t entry_end = damaged_successor.value_or(position + kEntryHeaderSize);
    bool hole = false;
    if (follower && options_.direct_write_depth > 1) {
      MQ_ASSIGN_OR_RETURN(hole, concurrent_write_hole(*file_, position, entry_end, file_size));
      report->concurrent_write_hole = hole;
    }
    if (follower && !hole) {
      Status damage = Status::corruption(describe_position(position) + ": entry " +
                                         std::to_string((last_index_ + 1).value()) +
                                         " fails its checksum but a valid entry follows at position " +
                                         std::to_string(*follower) + " (corruption, not a torn write)");
      if (!options_.on_damaged_tail_cut) return damage;
      // Explicit repair mode only: cut below (reported), never implicitly.
      MQ_RETURN_IF_ERROR(accept_damaged_tail_cut(position, *follower, file_size, damage, report));
    }
  }
  if (position < file_size) {
    // A torn or partial tail (or garbage after it): cut it, durably, before anything is
    // appended after it.
    report->torn_bytes_removed = file_size - position;
    MQ_RETURN_IF_ERROR(file_->truncate(position));
    MQ_RETURN_IF_ERROR(file_->sync());
  }
  size_ = position;
  remove_index_files_quietly();
  return Status::ok();
}

Status Segment::accept_damaged_tail_cut(std::uint64_t position, std::uint64_t follower,
                                        std::uint64_t file_size, Status damage,
                                        OpenReport* report) {
  // The highest index any valid entry after the damage carries: walk the valid run from the
  // follower, and after each further damaged stretch resynchronize on the next valid entry
  // (each step advances, so this ends within the file).
  Scanner scanner(*file_, file_size);
  LogIndex highest = last_index_ + 1;  // the damaged entry itself was held
  std::optional<std::uint64_t> at = follower;
  while (at && *at < file_size) {
    auto entry = scanner.header_at(*at);
    Status payload = entry.has_value() ? scanner.verify_payload(*at, *entry) : entry.error();
    if (payload.is_ok()) {
      highest = std::max(highest, entry->index);
      *at += entry->stored_size();
      continue;
    }
    if (payload.code() != ErrorCode::kCorruption) return payload;
    MQ_ASSIGN_OR_RETURN(at, find_valid_entry_after(*file_, *at + 1, file_size, highest, false));
  }
  DamagedTailCut cut;
  cut.segment = path_;
  cut.position = position;
  cut.bytes_removed = file_size - position;
  cut.first_cut = last_index_ + 1;
  cut.last_index_before = highest;
  cut.damage = damage.message();
  MQ_RETURN_IF_ERROR(options_.on_damaged_tail_cut(cut));
  report->damaged_cut = std::move(cut);
  return Status::ok();
}

Status Segment::load_closed(OpenReport* report) {
  MQ_ASSIGN_OR_RETURN(size_, file_->size());
  if (size_ > segment_format::kSegmentBytesMax) {
    return Status::corruption(describe_position(0) + ": segment larger than 4 GiB");
  }
  Buffer header_bytes(kSegmentHeaderSize);
  MQ_ASSIGN_OR_RETURN(std::size_t got, file_->read_at(0, std::span(header_bytes.data(), header_bytes.size())));
  if (got < kSegmentHeaderSize || (size_ == kSegmentHeaderSize && all_zero(header_bytes))) {
    // A creation that never became durable (its removal was not durable either); it holds
    // no entry, so it is a leftover wherever it sits.
    report->leftover = true;
    return Status::ok();
  }
  auto header = SegmentHeader::decode_from(header_bytes);
  if (!header.has_value()) return corruption_at(0, header.error());
  if (header->base_index != base_index_) {
    return Status::corruption(describe_position(0) + ": header says base index " +
                              std::to_string(header->base_index.value()));
  }
  created_ms_ = header->created_ms;
  closed_ = true;
  if (size_ == kSegmentHeaderSize) return Status::ok();  // empty
  Status loaded = load_index_files();
  if (loaded.is_ok()) {
    // Check the ends of the index against the segment, then validate the unindexed rest.
    auto last_point = index_point(file_index_count_ - 1);
    if (!last_point.has_value()) return corruption_at(0, last_point.error());
    std::uint64_t from = last_point->offset.position;
    auto first_header = read_header(kSegmentHeaderSize, base_index_);
    auto last_header = read_header(from, base_index_ + last_point->offset.relative_index);
    if (first_header.has_value() && last_header.has_value() &&
        last_header->base_offset == first_header->base_offset + last_point->offset.relative_offset) {
      Scanner scanner(*reader_, size_);
      first_offset_ = first_header->base_offset;
      last_index_ = last_header->index - 1;
      max_timestamp_ = last_point->time.max_timestamp;
      std::uint64_t position = from;
      while (position < size_) {
        auto entry = scanner.header_at(position);
        if (!entry.has_value()) return corruption_at(position, entry.error());
        if (entry->index != last_index_ + 1) {
          return Status::corruption(describe_position(position) + ": entry index " +
                                    std::to_string(entry->index.value()) + ", expected " +
                                    std::to_string((last_index_ + 1).value()));
        }
        Status payload = scanner.verify_payload(position, *entry);
        if (!payload.is_ok()) return corruption_at(position, payload);
        note_entry(position, *entry);
        position += entry->stored_size();
      }
      return Status::ok();
    }
  }
  // Index files missing or inconsistent: rebuild them from the segment.
  report->index_rebuilt = true;
  remove_index_files_quietly();
  MQ_RETURN_IF_ERROR(rebuild_index_by_scan(size_));
  (void)write_index_files();  // derived data: on failure the index stays in memory
  return Status::ok();
}

Status Segment::rebuild_index_by_scan(std::uint64_t end) {
  {
    std::lock_guard lock(index_mutex_);
    index_in_memory_ = true;
    points_.clear();
    offset_index_file_.reset();
    time_index_file_.reset();
    file_index_count_ = 0;
  }
  last_index_ = base_index_ - 1;
  max_timestamp_ = -1;
  Scanner scanner(*reader_, end);
  std::uint64_t position = kSegmentHeaderSize;
  while (position < end) {
    auto entry = scanner.header_at(position);
    if (!entry.has_value()) return corruption_at(position, entry.error());
    if (entry->index != last_index_ + 1) {
      return Status::corruption(describe_position(position) + ": entry index " +
                                std::to_string(entry->index.value()) + ", expected " +
                                std::to_string((last_index_ + 1).value()));
    }
    if (!empty() && (entry->term < last_term_ || entry->base_offset <= last_offset_)) {
      return Status::corruption(describe_position(position) + ": term or offset goes backwards");
    }
    Status payload = scanner.verify_payload(position, *entry);
    if (!payload.is_ok()) return corruption_at(position, payload);
    note_entry(position, *entry);
    position += entry->stored_size();
  }
  return Status::ok();
}

Status Segment::load_index_files() {
  std::string stem = path_.substr(0, path_.size() - std::strlen(segment_format::kSegmentSuffix));
  MQ_ASSIGN_OR_RETURN(auto offsets, fs_->open(stem + segment_format::kOffsetIndexSuffix, {}));
  MQ_ASSIGN_OR_RETURN(auto times, fs_->open(stem + segment_format::kTimeIndexSuffix, {}));
  MQ_ASSIGN_OR_RETURN(std::uint64_t offsets_size, offsets->size());
  MQ_ASSIGN_OR_RETURN(std::uint64_t times_size, times->size());
  using index_format::kEntrySize;
  using index_format::kHeaderSize;
  if (offsets_size != times_size || offsets_size < kHeaderSize + kEntrySize ||
      (offsets_size - kHeaderSize) % kEntrySize != 0 || offsets_size > size_) {
    return Status::corruption("index files have inconsistent sizes");
  }
  // Validate everything once (about 0.4% of the segment at the default interval).
  Buffer a(offsets_size), b(times_size);
  MQ_RETURN_IF_ERROR(read_exact(*offsets, 0, std::span(a.data(), a.size()), "offset index"));
  MQ_RETURN_IF_ERROR(read_exact(*times, 0, std::span(b.data(), b.size()), "time index"));
  MQ_ASSIGN_OR_RETURN(auto offset_header, IndexHeader::decode_from(a.view(0, kHeaderSize),
                                                                   index_format::kOffsetIndexMagic));
  MQ_ASSIGN_OR_RETURN(auto time_header, IndexHeader::decode_from(b.view(0, kHeaderSize),
                                                                 index_format::kTimeIndexMagic));
  if (offset_header.base_index != base_index_ || time_header.base_index != base_index_ ||
      offset_header.base_offset != time_header.base_offset) {
    return Status::corruption("index headers do not match the segment");
  }
  std::size_t count = (offsets_size - kHeaderSize) / kEntrySize;
  IndexPoint previous;
  for (std::size_t i = 0; i < count; ++i) {
    MQ_ASSIGN_OR_RETURN(auto o, OffsetIndexEntry::decode_from(a.view(kHeaderSize + i * kEntrySize, kEntrySize)));
    MQ_ASSIGN_OR_RETURN(auto t, TimeIndexEntry::decode_from(b.view(kHeaderSize + i * kEntrySize, kEntrySize)));
    bool ok = o.position == t.position && o.position < size_;
    if (i == 0) {
      ok = ok && o.relative_index == 0 && o.relative_offset == 0 && o.position == kSegmentHeaderSize;
    } else {
      ok = ok && o.relative_index > previous.offset.relative_index &&
           o.relative_offset > previous.offset.relative_offset &&
           o.position > previous.offset.position && t.max_timestamp >= previous.time.max_timestamp;
    }
    if (!ok) return Status::corruption("index entry " + std::to_string(i) + " out of order");
    previous = {o, t};
  }
  std::lock_guard lock(index_mutex_);
  offset_index_file_ = std::move(offsets);
  time_index_file_ = std::move(times);
  file_index_count_ = count;
  index_in_memory_ = false;
  points_.clear();
  return Status::ok();
}

Result<Segment::IndexFiles> Segment::write_index_file_pair() {
  MQ_ASSERT(index_in_memory_ && !empty());
  std::string stem = path_.substr(0, path_.size() - std::strlen(segment_format::kSegmentSuffix));
  std::string offsets_path = stem + segment_format::kOffsetIndexSuffix;
  std::string times_path = stem + segment_format::kTimeIndexSuffix;
  using index_format::kEntrySize;
  using index_format::kHeaderSize;
  Buffer a(kHeaderSize + points_.size() * kEntrySize), b(a.size());
  IndexHeader header;
  header.base_index = base_index_;
  header.base_offset = first_offset_;
  header.magic = index_format::kOffsetIndexMagic;
  header.encode_to(a.data());
  header.magic = index_format::kTimeIndexMagic;
  header.encode_to(b.data());
  for (std::size_t i = 0; i < points_.size(); ++i) {
    points_[i].offset.encode_to(a.data() + kHeaderSize + i * kEntrySize);
    points_[i].time.encode_to(b.data() + kHeaderSize + i * kEntrySize);
  }
  auto write_one = [&](const std::string& path, const Buffer& bytes) -> Result<std::shared_ptr<File>> {
    MQ_ASSIGN_OR_RETURN(auto file, fs_->open(path, OpenOptions{.create = true}));
    MQ_RETURN_IF_ERROR(file->truncate(0));
    MQ_RETURN_IF_ERROR(file->write_at(0, bytes.view()));
    MQ_RETURN_IF_ERROR(file->sync());
    return file;
  };
  auto offsets = write_one(offsets_path, a);
  auto times = offsets.has_value() ? write_one(times_path, b) : Result<std::shared_ptr<File>>(offsets.error());
  if (!offsets.has_value() || !times.has_value()) {
    remove_index_files_quietly();  // a partial index would only be rebuilt later
    return offsets.has_value() ? times.error() : offsets.error();
  }
  return IndexFiles{std::move(*offsets), std::move(*times), points_.size()};
}

Status Segment::write_index_files() {
  MQ_ASSERT(index_in_memory_);
  if (empty()) return Status::ok();
  MQ_ASSIGN_OR_RETURN(IndexFiles files, write_index_file_pair());
  use_index_files(std::move(files));
  return Status::ok();
}

void Segment::use_index_files(IndexFiles files) {
  std::lock_guard lock(index_mutex_);
  offset_index_file_ = std::move(files.offsets);
  time_index_file_ = std::move(files.times);
  file_index_count_ = files.count;
  index_in_memory_ = false;
  points_.clear();
  points_.shrink_to_fit();
}

void Segment::invalidate_index_jobs() {
  std::lock_guard job(index_job_mutex_);
  ++index_job_epoch_;
  index_files_pending_ = false;
}

std::uint64_t Segment::take_index_job() {
  std::lock_guard job(index_job_mutex_);
  index_files_pending_ = false;
  return index_job_epoch_;
}

Result<std::optional<Segment::IndexFiles>> Segment::write_index_files_unlocked(
    std::uint64_t ticket) {
  // The ticket is current only while the segment stays closed and uncut: its in-memory index
  // does not change meanwhile (a cut or removal waits for this write, then invalidates it).
  std::lock_guard job(index_job_mutex_);
  if (ticket != index_job_epoch_ || !closed_ || !index_in_memory_ || empty()) {
    return std::optional<IndexFiles>();
  }
  MQ_ASSIGN_OR_RETURN(IndexFiles files, write_index_file_pair());
  return std::optional<IndexFiles>(std::move(files));
}

void Segment::install_index_files(std::uint64_t ticket, IndexFiles files) {
  std::lock_guard job(index_job_mutex_);
  if (ticket != index_job_epoch_ || !closed_ || !index_in_memory_) {
    // Cut, removed or closed again meanwhile: the files may describe entries that are gone.
    // Unless files written since are in use, the names go (a tail keeps no index files; a
    // segment closed again gets its own).
    if (index_in_memory_) remove_index_files_quietly();
    return;
  }
  use_index_files(std::move(files));
}

void Segment::remove_index_files_quietly() {
  std::string stem = path_.substr(0, path_.size() - std::strlen(segment_format::kSegmentSuffix));
  (void)fs_->remove(stem + segment_format::kOffsetIndexSuffix);
  (void)fs_->remove(stem + segment_format::kTimeIndexSuffix);
  std::lock_guard lock(index_mutex_);
  offset_index_file_.reset();
  time_index_file_.reset();
}

std::size_t Segment::index_count() const {
  return index_in_memory_ ? points_.size() : file_index_count_;
}
std::size_t Segment::index_entry_count() const { return index_count(); }

Result<Segment::IndexPoint> Segment::index_point(std::size_t i) {
  MQ_ASSERT(i < index_count());
  if (index_in_memory_) return points_[i];
  std::uint8_t a[index_format::kEntrySize], b[index_format::kEntrySize];
  std::uint64_t at = index_format::kHeaderSize + i * index_format::kEntrySize;
  MQ_RETURN_IF_ERROR(read_exact(*offset_index_file_, at, std::span(a), "offset index"));
  MQ_RETURN_IF_ERROR(read_exact(*time_index_file_, at, std::span(b), "time index"));
  MQ_ASSIGN_OR_RETURN(auto o, OffsetIndexEntry::decode_from(BufferView(a, sizeof a)));
  MQ_ASSIGN_OR_RETURN(auto t, TimeIndexEntry::decode_from(BufferView(b, sizeof b)));
  if (o.position != t.position || o.position >= size_) {
    return Status::corruption("index entry " + std::to_string(i) + " inconsistent");
  }
  return IndexPoint{o, t};
}

template <typename Pred>
Result<std::optional<std::size_t>> Segment::index_floor(Pred pred) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::size_t lo = 0, hi = index_count();  // answer in [lo, hi): last true
    std::optional<std::size_t> best;
    Status failure;
    while (lo < hi) {
      std::size_t mid = lo + (hi - lo) / 2;
      auto point = index_point(mid);
      if (!point.has_value()) {
        failure = point.error();
        break;
      }
      if (pred(*point)) {
        best = mid;
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (failure.is_ok()) return best;
    if (failure.code() != ErrorCode::kCorruption || attempt == 1) return failure;
    // A damaged index file: fall back to an in-memory index rebuilt from the segment.
    LogIndex last = last_index_;
    MQ_RETURN_IF_ERROR(rebuild_index_by_scan(size_));
    MQ_ASSERT(last_index_ == last);
  }
  MQ_UNREACHABLE();
}

Result<EntryHeader> Segment::read_header(std::uint64_t position, LogIndex expected_index) {
  return read_header_within(position, expected_index, size_);
}

Result<EntryHeader> Segment::read_header_within(std::uint64_t position, LogIndex expected_index,
                                                std::uint64_t size_limit) {
  if (position + kEntryHeaderSize > size_limit) {
    return Status::corruption(describe_position(position) + ": entry header beyond the end");
  }
  std::uint8_t bytes[kEntryHeaderSize];
  MQ_RETURN_IF_ERROR(read_exact(*reader_, position, std::span(bytes), describe_position(position)));
  auto header = EntryHeader::decode_from(BufferView(bytes, sizeof bytes));
  if (!header.has_value()) return corruption_at(position, header.error());
  if (header->index != expected_index || position + header->stored_size() > size_limit) {
    return Status::corruption(describe_position(position) + ": expected entry " +
                              std::to_string(expected_index.value()) + ", found " +
                              std::to_string(header->index.value()));
  }
  return header;
}

Result<ReadEntry> Segment::read_entry(std::uint64_t position, LogIndex expected_index) {
  return read_entry_within(position, expected_index, size_);
}

Result<ReadEntry> Segment::read_entry_within(std::uint64_t position, LogIndex expected_index,
                                             std::uint64_t size_limit) {
  MQ_ASSIGN_OR_RETURN(EntryHeader header, read_header_within(position, expected_index, size_limit));
  Buffer payload(header.payload_length);
  MQ_RETURN_IF_ERROR(read_exact(*reader_, position + kEntryHeaderSize,
                                std::span(payload.data(), payload.size()),
                                describe_position(position)));
  Status verified = header.verify_payload(payload);
  if (!verified.is_ok()) return corruption_at(position, verified);
  return ReadEntry{header, SharedBuffer(std::move(payload))};
}

template <typename Pred>
Result<std::uint64_t> Segment::floor_within(Pred at_or_below, std::uint64_t size_limit) {
  std::shared_ptr<File> offsets;
  std::size_t count = 0;
  {
    std::lock_guard lock(index_mutex_);
    if (index_in_memory_) {
      auto it = std::partition_point(points_.begin(), points_.end(), [&](const IndexPoint& p) {
        return at_or_below(p.offset.relative_index, p.offset.relative_offset);
      });
      return it == points_.begin() ? std::uint64_t{kSegmentHeaderSize}
                                   : std::uint64_t{std::prev(it)->offset.position};
    }
    offsets = offset_index_file_;
    count = file_index_count_;
  }
  std::uint64_t best = kSegmentHeaderSize;
  if (!offsets) return best;  // being rebuilt: scan from the first entry
  std::size_t lo = 0, hi = count;  // closed segment: its index file does not change
  while (lo < hi) {
    std::size_t mid = lo + (hi - lo) / 2;
    std::uint8_t bytes[index_format::kEntrySize];
    MQ_RETURN_IF_ERROR(read_exact(*offsets, index_format::kHeaderSize + mid * index_format::kEntrySize,
                                  std::span(bytes), "offset index"));
    MQ_ASSIGN_OR_RETURN(auto point, OffsetIndexEntry::decode_from(BufferView(bytes, sizeof bytes)));
    if (point.position >= size_limit) return Status::corruption("offset index entry beyond the end");
    if (at_or_below(point.relative_index, point.relative_offset)) {
      best = point.position;
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return best;
}

Result<std::uint64_t> Segment::index_floor_within(LogIndex index, std::uint64_t size_limit) {
  return floor_within([&](std::uint32_t relative_index, std::uint32_t) {
    return base_index_ + relative_index <= index;
  }, size_limit);
}

Result<std::uint64_t> Segment::offset_floor_within(KafkaOffset offset, KafkaOffset first_offset,
                                                   std::uint64_t size_limit) {
  return floor_within([&](std::uint32_t, std::uint32_t relative_offset) {
    return first_offset + relative_offset <= offset;
  }, size_limit);
}

Result<std::optional<EntryLocation>> Segment::locate_offset_within(KafkaOffset offset,
                                                                   KafkaOffset first_offset,
                                                                   std::uint64_t size_limit) {
  MQ_ASSIGN_OR_RETURN(std::uint64_t position, offset_floor_within(offset, first_offset, size_limit));
  Scanner scanner(*reader_, size_limit, kLookupWindowBytes);
  while (position < size_limit) {
    auto header = scanner.header_at(position);
    if (!header.has_value()) return corruption_at(position, header.error());
    if (header->last_offset() >= offset) return std::optional(EntryLocation{position, *header});
    position += header->stored_size();
  }
  return std::optional<EntryLocation>();
}

Result<EntryLocation> Segment::locate_index_within(LogIndex index, std::uint64_t size_limit) {
  MQ_ASSIGN_OR_RETURN(std::uint64_t position, index_floor_within(index, size_limit));
  Scanner scanner(*reader_, size_limit, kLookupWindowBytes);
  while (position < size_limit) {
    auto header = scanner.header_at(position);
    if (!header.has_value()) return corruption_at(position, header.error());
    if (header->index == index) return EntryLocation{position, *header};
    if (header->index > index) break;
    position += header->stored_size();
  }
  return Status::corruption(describe_position(position) + ": entry " +
                            std::to_string(index.value()) + " not found where indexed");
}

template <typename Pred>
Result<std::uint64_t> Segment::scan_start(Pred pred) {
  MQ_ASSIGN_OR_RETURN(std::optional<std::size_t> floor, index_floor(pred));
  if (!floor) return std::uint64_t{kSegmentHeaderSize};
  MQ_ASSIGN_OR_RETURN(IndexPoint point, index_point(*floor));
  return std::uint64_t{point.offset.position};
}

Result<EntryLocation> Segment::locate_index(LogIndex index) {
  MQ_ASSERT(!empty());
  MQ_ASSERT(index >= base_index_ && index <= last_index_);
  MQ_ASSIGN_OR_RETURN(std::uint64_t position, scan_start([&](const IndexPoint& p) {
                        return base_index_ + p.offset.relative_index <= index;
                      }));
  Scanner scanner(*reader_, size_, kLookupWindowBytes);
  while (position < size_) {
    auto header = scanner.header_at(position);
    if (!header.has_value()) return corruption_at(position, header.error());
    if (header->index == index) return EntryLocation{position, *header};
    if (header->index > index) break;
    position += header->stored_size();
  }
  return Status::corruption(describe_position(position) + ": entry " +
                            std::to_string(index.value()) + " not found where indexed");
}

Result<std::optional<EntryLocation>> Segment::locate_offset(KafkaOffset offset) {
  if (empty() || last_offset_ < offset) return std::optional<EntryLocation>();
  MQ_ASSIGN_OR_RETURN(std::uint64_t position, scan_start([&](const IndexPoint& p) {
                        return first_offset_ + p.offset.relative_offset <= offset;
                      }));
  Scanner scanner(*reader_, size_, kLookupWindowBytes);
  while (position < size_) {
    auto header = scanner.header_at(position);
    if (!header.has_value()) return corruption_at(position, header.error());
    if (header->last_offset() >= offset) return std::optional(EntryLocation{position, *header});
    position += header->stored_size();
  }
  return Status::corruption(describe_position(position) + ": offset " +
                            std::to_string(offset.value()) + " not found below the segment end");
}

Result<std::optional<EntryLocation>> Segment::locate_timestamp(std::int64_t timestamp) {
  if (empty() || max_timestamp_ < timestamp) return std::optional<EntryLocation>();
  MQ_ASSIGN_OR_RETURN(auto floor, index_floor([&](const IndexPoint& p) {
                        return p.time.max_timestamp < timestamp;
                      }));
  std::uint64_t position = kSegmentHeaderSize;
  if (floor) {
    MQ_ASSIGN_OR_RETURN(IndexPoint point, index_point(*floor));
    position = point.time.position;
  }
  Scanner scanner(*reader_, size_, kLookupWindowBytes);
  while (position < size_) {
    auto header = scanner.header_at(position);
    if (!header.has_value()) return corruption_at(position, header.error());
    if (header->max_timestamp >= timestamp) return std::optional(EntryLocation{position, *header});
    position += header->stored_size();
  }
  return Status::corruption(describe_position(position) + ": timestamp not found below the end");
}

void Segment::close_for_append() {
  MQ_ASSERT(!closed_);
  invalidate_index_jobs();
  closed_ = true;
  (void)write_index_files();  // on failure the index stays in memory (rebuilt at start-up)
}

void Segment::close_for_append_deferred() {
  MQ_ASSERT(!closed_);
  invalidate_index_jobs();
  closed_ = true;
  std::lock_guard job(index_job_mutex_);
  index_files_pending_ = !empty();
}

Status Segment::truncate_from(FileSystem* fs, LogIndex from) {
  MQ_ASSERT(fs == fs_);
  MQ_ASSERT(from >= base_index_ && from <= last_index_ + 1);
  std::uint64_t cut = size_;
  if (from <= last_index_) {
    MQ_ASSIGN_OR_RETURN(EntryLocation location, locate_index(from));
    cut = location.position;
  }
  // The read cache forgets the cut bytes first (any block holding some of them).
  ReadCache::instance().drop_from(cache_key_, cut);
  // Whatever the write-behind buffer holds goes to the file first (simplest correct order:
  // the cut below then applies to the file alone); the buffer is given back. A fill job
  // finishes first too (the cut removes its zeros), and a deferred index write (its files
  // would describe cut entries).
  MQ_RETURN_IF_ERROR(wait_fill());
  invalidate_index_jobs();
  MQ_RETURN_IF_ERROR(flush_buffer());
  release_buffer();
  if (!index_in_memory_) {
    // Becoming a tail again: its index moves to memory (rebuilt up to the cut).
    remove_index_files_quietly();
    MQ_RETURN_IF_ERROR(rebuild_index_by_scan(cut));
  }
  tail_block_valid_ = false;
  MQ_RETURN_IF_ERROR(file_->truncate(cut));
  padded_ = false;
  reserved_end_ = 0;  // the truncation released the reserved space beyond the cut
  drop_fill_window();
  MQ_RETURN_IF_ERROR(file_->sync());
  closed_ = false;
  size_ = cut;
  written_end_ = cut;
  writeback_position_ = std::min(writeback_position_, cut);
  {
    std::lock_guard lock(index_mutex_);
    while (!points_.empty() && points_.back().offset.position >= cut) points_.pop_back();
  }
  last_index_ = from - 1;
  max_timestamp_ = -1;
  if (points_.empty()) {
    last_indexed_position_ = 0;
    return Status::ok();  // empty now
  }
  // Recompute the tail state from the last kept index point.
  const IndexPoint& point = points_.back();
  last_indexed_position_ = point.offset.position;
  max_timestamp_ = point.time.max_timestamp;
  Scanner scanner(*reader_, size_);
  std::uint64_t position = point.offset.position;
  while (position < size_) {
    MQ_ASSIGN_OR_RETURN(EntryHeader header, scanner.header_at(position));
    last_term_ = header.term;
    last_offset_ = header.last_offset();
    max_timestamp_ = std::max(max_timestamp_, header.max_timestamp);
    position += header.stored_size();
  }
  MQ_ASSERT(position == size_);
  return Status::ok();
}

Status Segment::remove_files(FileSystem* fs) {
  MQ_ASSERT(fs == fs_);
  (void)wait_fill();  // its zeros go with the file
  invalidate_index_jobs();  // a deferred index write in progress ends first
  remove_index_files_quietly();
  Status status = fs_->remove(path_);
  if (status.code() == ErrorCode::kNotFound) return Status::ok();
  return status;
}

}  // namespace mq::storage
