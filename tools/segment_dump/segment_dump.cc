// raftmq-segment-dump: offline inspector for a partition replica's storage files.
//
//   raftmq-segment-dump [--quiet] <file or directory>...
//
// Prints, for each file (a directory means every file in it, sorted):
//   <base>.log        the segment header and one line per entry header (position, index,
//                     term, kind, offsets, timestamp, payload length); every checksum verified
//   <base>.index      the offset index entries (relative index/offset, position)
//   <base>.timeindex  the time index entries (running max timestamp, position)
//   raft.state        the Raft hard state (term, vote, commit)
//   log.meta          the log's start index/offset and pending truncation
//   snapshot          the snapshot header, with its body checksum verified
// --quiet prints only a summary line per file and the problems.
// Exit status: 0 when everything verifies, 1 on any corruption or torn data, 2 on usage or
// I/O errors. Reads files in bounded chunks (a segment is never loaded whole).
#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "storage/file_system.h"
#include "storage/index_format.h"
#include "storage/metadata.h"
#include "storage/metadata_format.h"
#include "storage/segment_format.h"

namespace mq::storage {
namespace {

bool quiet = false;
int worst = 0;  // 0 ok, 1 corruption, 2 error

void problem(int severity, const std::string& file, const std::string& what) {
  std::printf("  PROBLEM %s: %s\n", file.c_str(), what.c_str());
  worst = std::max(worst, severity);
}

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Whether [from, end) of the file holds only zeros (the pre-written space after the last
// entry of a tail segment, docs/formats/segment_format.md; also direct appends' padding).
bool zeros_to_end(File& file, std::uint64_t from, std::uint64_t end, Buffer& chunk) {
  for (std::uint64_t at = from; at < end;) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), end - at));
    if (!read_exact(file, at, std::span(chunk.data(), n), "segment").is_ok()) return false;
    if (std::any_of(chunk.data(), chunk.data() + n, [](std::uint8_t b) { return b != 0; })) return false;
    at += n;
  }
  return true;
}

void dump_segment(const std::string& path) {
  auto opened = posix_file_system()->open(path, OpenOptions{.read_only = true});
  if (!opened.has_value()) return problem(2, path, opened.error().to_string());
  File& file = **opened;
  std::uint64_t size = file.size().value_or(0);
  std::uint8_t head[SegmentHeader::kEncodedSize];
  if (!read_exact(file, 0, std::span(head), path).is_ok()) return problem(1, path, "shorter than a segment header");
  auto header = SegmentHeader::decode_from(BufferView(head, sizeof head));
  if (!header.has_value()) return problem(1, path, "segment header: " + header.error().message());
  std::printf("segment %s: version %u base_index %" PRIu64 " created_ms %" PRId64 " size %" PRIu64 "\n",
              path.c_str(), header->version, header->base_index.value(), header->created_ms, size);
  std::uint64_t position = SegmentHeader::kEncodedSize;
  LogIndex expected = header->base_index;
  std::uint64_t count = 0;
  Buffer chunk(256 << 10);
  std::uint64_t zero_tail = 0;
  while (position < size) {
    std::uint8_t bytes[EntryHeader::kEncodedSize];
    // An all-zero entry header never verifies: a run of zeros to the end of the file is the
    // clean end of a tail segment, not a torn entry.
    if (zeros_to_end(file, position, std::min(size, position + sizeof bytes), chunk) &&
        zeros_to_end(file, position, size, chunk)) {
      zero_tail = size - position;
      break;
    }
    if (position + sizeof bytes > size) {
      return problem(1, path, "partial entry header at position " + std::to_string(position) +
                                  " (" + std::to_string(size - position) + " bytes: torn tail)");
    }
    if (!read_exact(file, position, std::span(bytes), path).is_ok()) return problem(2, path, "read error");
    auto entry = EntryHeader::decode_from(BufferView(bytes, sizeof bytes));
    if (!entry.has_value()) {
      return problem(1, path, "position " + std::to_string(position) + ": " + entry.error().message());
    }
    if (entry->index != expected) {
      problem(1, path, "position " + std::to_string(position) + ": index " +
                           std::to_string(entry->index.value()) + ", expected " +
                           std::to_string(expected.value()));
    }
    if (position + entry->stored_size() > size) {
      return problem(1, path, "position " + std::to_string(position) + ": payload truncated (torn tail)");
    }
    std::uint32_t crc = 0;
    for (std::uint64_t done = 0; done < entry->payload_length;) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), entry->payload_length - done));
      if (!read_exact(file, position + sizeof bytes + done, std::span(chunk.data(), n), path).is_ok()) {
        return problem(2, path, "read error");
      }
      crc = crc32c::extend(crc, chunk.data(), n);
      done += n;
    }
    bool crc_ok = crc == entry->payload_crc;
    if (!quiet) {
      std::printf("  pos %" PRIu64 " index %" PRIu64 " term %" PRIu64 " kind %s offsets [%" PRId64
                  ", %" PRId64 "] max_ts %" PRId64 " payload %u crc %s\n",
                  position, entry->index.value(), entry->term.value(), entry_kind_name(entry->kind),
                  entry->base_offset.value(), entry->last_offset().value(), entry->max_timestamp,
                  entry->payload_length, crc_ok ? "ok" : "BAD");
    }
    if (!crc_ok) problem(1, path, "position " + std::to_string(position) + ": payload checksum mismatch");
    position += entry->stored_size();
    expected = entry->index + 1;
    ++count;
  }
  std::printf("  %" PRIu64 " entries, last index %" PRIu64 "\n", count, (expected - 1).value());
  if (zero_tail > 0) {
    std::printf("  %" PRIu64 " zero bytes after the last entry at position %" PRIu64
                " (pre-written space or direct-append padding: the clean end of a tail segment)\n",
                zero_tail, position);
  }
}

void dump_index(const std::string& path, bool time) {
  auto bytes = read_whole_file(posix_file_system(), path, 1ull << 32);
  if (!bytes.has_value() || !*bytes) return problem(2, path, "cannot read");
  const Buffer& b = **bytes;
  auto header = IndexHeader::decode_from(b.view(), time ? index_format::kTimeIndexMagic
                                                        : index_format::kOffsetIndexMagic);
  if (!header.has_value()) return problem(1, path, header.error().message());
  std::printf("%s %s: base_index %" PRIu64 " base_offset %" PRId64 "\n", time ? "time index" : "offset index",
              path.c_str(), header->base_index.value(), header->base_offset.value());
  if ((b.size() - IndexHeader::kEncodedSize) % index_format::kEntrySize != 0) {
    problem(1, path, "size is not header + whole entries");
  }
  std::size_t count = (b.size() - IndexHeader::kEncodedSize) / index_format::kEntrySize;
  for (std::size_t i = 0; i < count; ++i) {
    BufferView e = b.view(IndexHeader::kEncodedSize + i * index_format::kEntrySize, index_format::kEntrySize);
    if (time) {
      auto t = TimeIndexEntry::decode_from(e);
      if (!t.has_value()) { problem(1, path, "entry " + std::to_string(i) + ": " + t.error().message()); continue; }
      if (!quiet) std::printf("  [%zu] max_ts %" PRId64 " pos %u\n", i, t->max_timestamp, t->position);
    } else {
      auto o = OffsetIndexEntry::decode_from(e);
      if (!o.has_value()) { problem(1, path, "entry " + std::to_string(i) + ": " + o.error().message()); continue; }
      if (!quiet) {
        std::printf("  [%zu] index %" PRIu64 " offset %" PRId64 " pos %u\n", i,
                    (header->base_index + o->relative_index).value(),
                    (header->base_offset + o->relative_offset).value(), o->position);
      }
    }
  }
  std::printf("  %zu entries\n", count);
}

void dump_small(const std::string& path, const std::string& name) {
  std::string dir = path.substr(0, path.size() - name.size());
  if (dir.empty()) dir = ".";
  if (name == metadata_format::kHardStateFileName) {
    auto hs = load_hard_state(posix_file_system(), dir);
    if (!hs.has_value()) return problem(1, path, hs.error().message());
    if (!*hs) return problem(2, path, "missing");
    std::printf("hard state %s: term %" PRIu64 " vote %" PRIu64 " commit %" PRIu64 "\n", path.c_str(),
                (*hs)->term.value(), (*hs)->vote.value(), (*hs)->commit.value());
  } else if (name == metadata_format::kLogMetaFileName) {
    auto bytes = read_whole_file(posix_file_system(), path, LogMetaRecord::kEncodedSize);
    if (!bytes.has_value() || !*bytes) return problem(1, path, "unreadable or too large");
    auto meta = LogMetaRecord::decode_from((*bytes)->view());
    if (!meta.has_value()) return problem(1, path, meta.error().message());
    std::printf("log meta %s: start_index %" PRIu64 " start_offset %" PRId64 " truncate_from %" PRIu64 "\n",
                path.c_str(), meta->start_index.value(), meta->start_offset.value(), meta->truncate_from.value());
  } else {
    auto snapshot = load_snapshot(posix_file_system(), dir, 1ull << 40);
    if (!snapshot.has_value()) return problem(1, path, snapshot.error().message());
    if (!*snapshot) return problem(2, path, "missing");
    std::printf("snapshot %s: index %" PRIu64 " term %" PRIu64 " config %zu bytes data %zu bytes, checksum ok\n",
                path.c_str(), (*snapshot)->index.value(), (*snapshot)->term.value(),
                (*snapshot)->config.size(), (*snapshot)->data.size());
  }
}

void dump_file(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  if (has_suffix(name, segment_format::kSegmentSuffix)) return dump_segment(path);
  if (has_suffix(name, segment_format::kOffsetIndexSuffix)) return dump_index(path, false);
  if (has_suffix(name, segment_format::kTimeIndexSuffix)) return dump_index(path, true);
  if (name == metadata_format::kHardStateFileName || name == metadata_format::kLogMetaFileName ||
      name == metadata_format::kSnapshotFileName) {
    return dump_small(path, name);
  }
  std::printf("skipping %s (unknown file type)\n", path.c_str());
}

}  // namespace
}  // namespace mq::storage

int main(int argc, char** argv) {
  using namespace mq::storage;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "-h" || arg == "--help") {
      std::printf("usage: %s [--quiet] <file or directory>...\n", argv[0]);
      return 0;
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.empty()) {
    std::fprintf(stderr, "usage: %s [--quiet] <file or directory>...\n", argv[0]);
    return 2;
  }
  for (const std::string& path : paths) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      problem(2, path, std::strerror(errno));
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      auto names = posix_file_system()->list(path);
      if (!names.has_value()) {
        problem(2, path, names.error().to_string());
        continue;
      }
      std::sort(names->begin(), names->end());
      for (const auto& name : *names) dump_file(join_path(path, name));
    } else {
      dump_file(path);
    }
  }
  if (worst != 0) std::printf("%s\n", worst == 1 ? "CORRUPTION FOUND" : "ERRORS");
  return worst;
}
