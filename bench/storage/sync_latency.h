// storage_bench section `synclat` (sync_latency.cc): the latency of one small append made
// durable (append + fdatasync, one at a time), with pre-written segment space
// (LogOptions::zero_fill_window_bytes) off and on, interleaved.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "storage/log.h"

namespace mq::storage::bench {

struct SyncLatencyOptions {
  std::string dir;
  int rounds = 3;                       // pairs (off, on), alternating
  int appends = 2000;                   // per run
  std::size_t entry_bytes = 4000;       // payload bytes of each append
  std::uint64_t window_bytes = 2 << 20;  // the "on" window
  std::function<void(LogOptions&)> configure;  // command-line overrides of the log options
};

void run_sync_latency(const SyncLatencyOptions& options);

}  // namespace mq::storage::bench
