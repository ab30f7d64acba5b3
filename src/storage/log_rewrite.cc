// Log::rewrite_segment: the primitive under log compaction (Kafka's cleaner for compacted
// topics such as __consumer_offsets, KIP-58 / "Log Compaction" in the Kafka docs). The Raft
// log is the partition log, so compaction may change payloads only: Raft indexes and terms
// (§5.3 Log Matching relies on them), Kafka offsets and timestamps stay as they are.
#include <algorithm>

#include "base/crc32c.h"
#include "storage/log.h"
#include "storage/metadata_format.h"

namespace mq::storage {
namespace {

using segment_format::kEntryHeaderSize;
using segment_format::kSegmentHeaderSize;

// Buffered sequential writer of the new segment file.
class SegmentWriter {
 public:
  explicit SegmentWriter(std::shared_ptr<File> file) : file_(std::move(file)) {}

  Status add(BufferView bytes) {
    buffer_.append(bytes);
    if (buffer_.size() >= kFlushBytes) return flush();
    return Status::ok();
  }
  Status flush() {
    if (buffer_.size() == 0) return Status::ok();
    MQ_RETURN_IF_ERROR(file_->write_at(position_, buffer_.view()));
    position_ += buffer_.size();
    buffer_.resize(0);
    return Status::ok();
  }
  std::uint64_t size() const { return position_ + buffer_.size(); }

 private:
  static constexpr std::size_t kFlushBytes = 1 << 20;
  std::shared_ptr<File> file_;
  Buffer buffer_;
  std::uint64_t position_ = 0;
};

// Writes the transformed copy of `old` (closed, `size` bytes) to `file`, and fsyncs it.
Status write_rewritten(Segment& old, std::uint64_t size, std::uint32_t payload_max,
                       const RewriteTransform& transform, File& file,
                       std::shared_ptr<File> file_ptr) {
  SegmentWriter writer(std::move(file_ptr));
  SegmentHeader header;
  header.base_index = old.base_index();
  header.created_ms = old.created_ms();
  std::uint8_t header_bytes[SegmentHeader::kEncodedSize];
  header.encode_to(header_bytes);
  MQ_RETURN_IF_ERROR(writer.add(BufferView(header_bytes, sizeof header_bytes)));
  std::uint64_t position = kSegmentHeaderSize;
  for (LogIndex index = old.base_index(); position < size; ++index) {
    MQ_ASSIGN_OR_RETURN(ReadEntry entry, old.read_entry_within(position, index, size));
    position += entry.header.stored_size();
    MQ_ASSIGN_OR_RETURN(RewriteDecision decision, transform(entry.header, entry.payload.view()));
    BufferView payload = entry.payload.view();
    if (decision.action == RewriteDecision::Action::kReplace) payload = decision.replacement.view();
    if (decision.action == RewriteDecision::Action::kEmpty) payload = BufferView();
    if (payload.size() > payload_max) {
      return Status::invalid_argument("rewrite_segment: replacement of entry " +
                                      std::to_string(index.value()) + " exceeds the payload limit");
    }
    EntryHeader h = entry.header;  // index, term, kind, offsets, timestamp unchanged
    h.payload_length = static_cast<std::uint32_t>(payload.size());
    h.payload_crc = crc32c::value(payload);
    std::uint8_t bytes[kEntryHeaderSize];
    h.encode_to(bytes);
    MQ_RETURN_IF_ERROR(writer.add(BufferView(bytes, sizeof bytes)));
    MQ_RETURN_IF_ERROR(writer.add(payload));
  }
  MQ_RETURN_IF_ERROR(writer.flush());
  return file.sync();
}

}  // namespace

Status Log::rewrite_segment(LogIndex segment_base, LogIndex below, const RewriteTransform& transform) {
  std::shared_ptr<Segment> old;
  std::uint64_t generation;
  std::uint64_t size;
  {
    std::lock_guard lock(mutex_);
    MQ_RETURN_IF_ERROR(check_writable_locked());
    auto it = std::find_if(segments_.begin(), segments_.end(),
                           [&](const auto& s) { return s->base_index() == segment_base; });
    if (it == segments_.end() || !(*it)->closed() || it + 1 == segments_.end()) {
      return Status::not_found("rewrite_segment: no closed segment at " +
                               std::to_string(segment_base.value()) + " in log " +
                               segment_options_.log_name);
    }
    if ((*it)->last_index() >= below) {
      return Status::invalid_argument("rewrite_segment: segment ends at " +
                                      std::to_string((*it)->last_index().value()) +
                                      ", not below " + std::to_string(below.value()));
    }
    old = *it;
    generation = generation_;
    size = old->size_bytes();
  }
  const std::string& dir = options_.directory;
  const std::string stem = join_path(dir, segment_format::file_stem(segment_base));
  const std::string path = stem + segment_format::kSegmentSuffix;
  const std::string temp = path + metadata_format::kTempSuffix;
  // 1. The new segment under a temporary name (removed by start-up if we crash), synced.
  //    This, the long part, runs without the mutex: a closed segment does not change.
  (void)fs_->remove(temp);
  MQ_ASSIGN_OR_RETURN(auto file, fs_->open(temp, OpenOptions{.create = true, .exclusive = true}));
  Status written = write_rewritten(*old, size, options_.entry_payload_bytes_max, transform, *file, file);
  if (!written.is_ok()) {
    (void)fs_->remove(temp);
    return written;
  }
  std::lock_guard lock(mutex_);
  auto it = std::find(segments_.begin(), segments_.end(), old);
  if (generation != generation_ || it == segments_.end() || !failed_.is_ok()) {
    (void)fs_->remove(temp);
    return Status::aborted("rewrite_segment: segment " + path + " was truncated or removed meanwhile");
  }
  // 2. The old index files go first, durably (derived data: start-up rebuilds them), so a
  //    crash can never pair the new segment with the old segment's positions.
  (void)fs_->remove(stem + segment_format::kOffsetIndexSuffix);
  (void)fs_->remove(stem + segment_format::kTimeIndexSuffix);
  Status status = fs_->sync_dir(dir);
  // 3. The atomic switch, made durable.
  if (status.is_ok()) status = fs_->rename(temp, path);
  if (status.is_ok()) status = fs_->sync_dir(dir);
  if (!status.is_ok()) return fail_locked(status);  // start-up sorts out old/new and indexes
  // 4. Reopen it as a closed segment: validates it and writes fresh index files.
  Segment::OpenReport report;
  auto reopened = Segment::open(fs_, dir, segment_base, /*tail=*/false, segment_options_, &report);
  if (!reopened.has_value()) return fail_locked(reopened.error());
  MQ_ASSERT((*reopened)->last_index() == old->last_index());
  MQ_ASSERT((*reopened)->last_offset() == old->last_offset());
  *it = std::move(*reopened);
  update_running_max_locked(static_cast<std::size_t>(it - segments_.begin()));
  if constexpr (kDebugAsserts) check_invariants_locked();
  return Status::ok();
}

}  // namespace mq::storage
