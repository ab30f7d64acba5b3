// storage_bench section `ratio` (append_vs_raw.cc): durable appends against raw sequential
// O_DIRECT writes of the same file system, interleaved over several rounds.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "storage/log.h"

namespace mq::storage::bench {

struct AppendVsRawOptions {
  std::string dir;
  int rounds = 5;
  std::uint64_t round_mib = 1024;   // bytes of every run (raw and append alike)
  std::uint64_t segment_mib = 256;  // the log's segment size and the raw runs' file size
  std::uint64_t window_mib = 64;    // appended but not yet durable, at most
  double max_seconds = 0;           // stop after the round that crosses it (0: no bound)
  std::vector<std::size_t> batches;
  std::function<void(LogOptions&)> configure;  // command-line overrides of the log options
  // When set, every round also runs the append with these options on top ("B"), next to the
  // default ("A"): an A/B comparison under the same disk conditions.
  std::function<void(LogOptions&)> configure_b;
  std::string label_b;
  // > 0: each round also measures raw writes with this many in flight (raw_depth_run).
  int raw_depth = 0;
};

void run_append_vs_raw(const AppendVsRawOptions& options);

// 4 KiB appended + fdatasync in a loop for `seconds` in `dir` (created if missing): the raw
// fdatasync rate per second. Also storage_bench's "sync" figure.
double raw_fdatasync_rate(const std::string& dir, double seconds);

}  // namespace mq::storage::bench
