// The deterministic workload shared by the crash writer and its checker: the content of
// entry i is a pure function of i, so the checker can verify any entry it finds.
#pragma once

#include "storage/log.h"
#include "storage/test_util.h"

namespace mq::storage::crash {

inline Term term_of(LogIndex index) { return Term(1 + index.value() / 500); }
inline KafkaOffset offset_of(LogIndex index) {
  return KafkaOffset(static_cast<std::int64_t>(index.value()) - 1);
}
inline std::int64_t timestamp_of(LogIndex index) {
  return 1'700'000'000'000 + static_cast<std::int64_t>(index.value());
}

inline LogOptions options(const std::string& dir) {
  LogOptions options;
  options.directory = dir;
  options.name = "crash";
  options.segment_size_bytes_max = 64 << 10;
  options.index_interval_bytes = 1024;
  // Bursts of 8 KiB+ go through the write-behind buffer (halves of 8 KiB: written in the
  // background between syncs, partial halves written out by the flusher).
  options.direct_append_min_bytes = 8 << 10;
  options.write_buffer_bytes = 16 << 10;
  return options;
}

// Checks one entry; returns an empty string or what is wrong.
inline std::string check_entry(const ReadEntry& e) {
  LogIndex i = e.header.index;
  if (e.header.term != term_of(i)) return "wrong term at " + std::to_string(i.value());
  if (e.header.base_offset != offset_of(i) || e.header.last_offset_delta != 0) {
    return "wrong offsets at " + std::to_string(i.value());
  }
  if (e.header.max_timestamp != timestamp_of(i)) return "wrong timestamp at " + std::to_string(i.value());
  if (!equal_bytes(e.payload, testing::make_payload(i, term_of(i), e.payload.size()))) {
    return "wrong payload at " + std::to_string(i.value());
  }
  return "";
}

}  // namespace mq::storage::crash
