// Log start-up: recovery of the directory after a clean stop or a crash (crash rules 1-5
// in log.h): list the files, read log.meta, drop what an interrupted truncation or prefix
// removal left, open and validate the segments, finish the interrupted operation.
#include <algorithm>

#include "storage/log.h"
#include "storage/metadata.h"

namespace mq::storage {
// Start-up, in order: list the directory (removing *.tmp and orphan index files), read
// log.meta, drop by name the segments of an interrupted truncation or prefix removal, open
// the segments (validating the tail), finish the interrupted operation, sync the tail.
Status Log::recover() {
  std::lock_guard lock(mutex_);
  MQ_RETURN_IF_ERROR(fs_->create_dirs(options_.directory));
  MQ_ASSIGN_OR_RETURN(std::vector<LogIndex> bases, scan_directory_locked());
  MQ_RETURN_IF_ERROR(load_meta_locked(!bases.empty()));
  MQ_ASSIGN_OR_RETURN(std::vector<LogIndex> kept, drop_interrupted_by_name_locked(bases));
  MQ_RETURN_IF_ERROR(load_segments(kept));
  refresh_tail_state_locked();
  MQ_RETURN_IF_ERROR(finish_interrupted_locked());
  refresh_tail_state_locked();
  // What was recovered may still be only in the page cache (the process, not the machine,
  // crashed): sync it once so synced_index_ is true.
  if (!segments_.empty()) MQ_RETURN_IF_ERROR(segments_.back()->sync());
  synced_index_ = last_index_;
  publish_locked();
  check_invariants_locked();
  return Status::ok();
}

Result<std::vector<LogIndex>> Log::scan_directory_locked() {
  const std::string& dir = options_.directory;
  MQ_ASSIGN_OR_RETURN(std::vector<std::string> names, fs_->list(dir));
  std::vector<LogIndex> bases;
  std::vector<std::pair<LogIndex, std::string>> index_files;
  for (const std::string& name : names) {
    LogIndex base;
    if (name.size() > 4 && name.ends_with(metadata_format::kTempSuffix)) {
      (void)fs_->remove(join_path(dir, name));  // interrupted atomic replace
    } else if (segment_format::parse_file_name(name, segment_format::kSegmentSuffix, &base)) {
      bases.push_back(base);
    } else if (segment_format::parse_file_name(name, segment_format::kOffsetIndexSuffix, &base) ||
               segment_format::parse_file_name(name, segment_format::kTimeIndexSuffix, &base)) {
      index_files.emplace_back(base, name);
    }
  }
  std::sort(bases.begin(), bases.end());
  for (const auto& [base, name] : index_files) {  // orphan index files
    if (!std::binary_search(bases.begin(), bases.end(), base)) {
      (void)fs_->remove(join_path(dir, name));
    }
  }
  return bases;
}

Status Log::load_meta_locked(bool segments_exist) {
  std::string meta_path = join_path(options_.directory, metadata_format::kLogMetaFileName);
  MQ_ASSIGN_OR_RETURN(auto meta_bytes, read_whole_file(fs_, meta_path, LogMetaRecord::kEncodedSize));
  if (!meta_bytes) {
    if (segments_exist) {
      return Status::corruption("log " + segment_options_.log_name + ": " + meta_path +
                                " is missing but segments exist");
    }
    return write_meta_locked(LogMetaRecord{});  // a new log
  }
  auto meta = LogMetaRecord::decode_from(meta_bytes->view());
  if (!meta.has_value()) {
    return Status(meta.error().code(), "log " + segment_options_.log_name + ": " + meta_path +
                                           ": " + meta.error().message());
  }
  meta_ = *meta;
  publish_locked();
  return Status::ok();
}

// Crash rules 3 and 4, by name first: a crash may have persisted the removals of an
// interrupted truncation or prefix removal in any order, leaving gaps; drop every segment
// that is wholly at/after a pending truncation or wholly below the start index.
Result<std::vector<LogIndex>> Log::drop_interrupted_by_name_locked(
    const std::vector<LogIndex>& bases) {
  std::vector<LogIndex> kept;
  bool dropped = false;
  for (std::size_t k = 0; k < bases.size(); ++k) {
    bool truncated = meta_.truncate_from != LogIndex(0) && bases[k] >= meta_.truncate_from;
    bool below_start = k + 1 < bases.size() && bases[k + 1] <= meta_.start_index;
    if (truncated || below_start) {
      std::string stem = join_path(options_.directory, segment_format::file_stem(bases[k]));
      (void)fs_->remove(stem + segment_format::kOffsetIndexSuffix);
      (void)fs_->remove(stem + segment_format::kTimeIndexSuffix);
      MQ_RETURN_IF_ERROR(fs_->remove(stem + segment_format::kSegmentSuffix));
      dropped = true;
    } else {
      kept.push_back(bases[k]);
    }
  }
  if (dropped) MQ_RETURN_IF_ERROR(fs_->sync_dir(options_.directory));
  return kept;
}

Status Log::finish_interrupted_locked() {
  if (meta_.truncate_from != LogIndex(0)) {  // crash rule 3: redo the truncation
    LogIndex from = std::max(meta_.truncate_from, meta_.start_index);
    if (from <= last_index_) MQ_RETURN_IF_ERROR(physical_truncate_locked(from));
    LogMetaRecord cleared = meta_;
    cleared.truncate_from = LogIndex(0);
    MQ_RETURN_IF_ERROR(write_meta_locked(cleared));
  }
  // Crash rule 4: remove segments wholly below the start index, and a lone empty segment at a
  // stale place (its base is not the start index).
  bool removed = false;
  while (!segments_.empty() && !segments_.front()->empty() &&
         segments_.front()->last_index() < meta_.start_index) {
    MQ_RETURN_IF_ERROR(segments_.front()->remove_files(fs_));
    segments_.erase(segments_.begin());
    removed = true;
  }
  if (segments_.size() == 1 && segments_.front()->empty() &&
      segments_.front()->base_index() != meta_.start_index) {
    MQ_RETURN_IF_ERROR(segments_.front()->remove_files(fs_));
    segments_.clear();
    removed = true;
  }
  if (removed) MQ_RETURN_IF_ERROR(fs_->sync_dir(options_.directory));
  if (!segments_.empty() && segments_.front()->base_index() > meta_.start_index) {
    return Status::corruption("log " + segment_options_.log_name + ": first segment starts at " +
                              std::to_string(segments_.front()->base_index().value()) +
                              " but the log starts at " +
                              std::to_string(meta_.start_index.value()));
  }
  return Status::ok();
}

Status Log::load_segments(const std::vector<LogIndex>& bases) {
  // The tail first: a leftover (creation never durable) is removed and the previous segment
  // becomes the tail.
  std::vector<LogIndex> remaining = bases;
  std::unique_ptr<Segment> tail;
  while (!remaining.empty() && !tail) {
    Segment::OpenReport report;
    MQ_ASSIGN_OR_RETURN(tail, Segment::open(fs_, options_.directory, remaining.back(), true,
                                            segment_options_, &report));
    if (report.leftover) {
      MQ_RETURN_IF_ERROR(fs_->remove(join_path(options_.directory,
                                                segment_format::file_stem(remaining.back()) +
                                                    segment_format::kSegmentSuffix)));
      MQ_RETURN_IF_ERROR(fs_->sync_dir(options_.directory));
    }
    remaining.pop_back();
  }
  bool removed = false;
  for (LogIndex base : remaining) {
    Segment::OpenReport report;
    MQ_ASSIGN_OR_RETURN(auto segment, Segment::open(fs_, options_.directory, base, false,
                                                    segment_options_, &report));
    if (report.leftover) {
      MQ_RETURN_IF_ERROR(fs_->remove(join_path(options_.directory, segment_format::file_stem(base) +
                                                                     segment_format::kSegmentSuffix)));
      removed = true;
      continue;
    }
    segments_.push_back(std::move(segment));
  }
  if (removed) MQ_RETURN_IF_ERROR(fs_->sync_dir(options_.directory));
  if (tail) segments_.push_back(std::move(tail));
  // Contiguity and monotonic terms and offsets across segments.
  for (std::size_t k = 1; k < segments_.size(); ++k) {
    Segment& a = *segments_[k - 1];
    Segment& b = *segments_[k];
    bool ok = !a.empty() && b.base_index() == a.last_index() + 1;
    if (ok && !b.empty()) {
      auto first = b.locate_index(b.base_index());
      if (!first.has_value()) return first.error();
      ok = first->header.term >= a.last_term() && first->header.base_offset > a.last_offset();
    }
    if (!ok) {
      return Status::corruption("log " + segment_options_.log_name + ": segment " + b.path() +
                                " does not continue " + a.path() + " (indexes, terms or offsets)");
    }
  }
  return Status::ok();
}

}  // namespace mq::storage
