// Why: in mode `always` a single in-flight produce waits for one fdatasync per replica, and
// on ext4 an fdatasync after an append that grows the file commits the journal, while one
// after overwriting written blocks does not (zero_fill.cc). This section measures that
// difference through the log itself: append one entry, Log::sync() (which also runs the
// fill when the window needs one, so fills are inside the figures), next; p50/p99/p99.9 per
// run, window off and on alternating in the same process on the same file system.
#include "sync_latency.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "bench_common.h"
#include "storage/clock.h"

namespace mq::storage::bench {
namespace {

struct RunFigures {
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double mean_us = 0;
};

double percentile(std::vector<double>& sorted, double q) {
  auto at = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1));
  return sorted[at];
}

RunFigures one_run(const SyncLatencyOptions& o, std::uint64_t window, const std::string& dir) {
  std::filesystem::remove_all(dir);
  LogOptions options;
  options.directory = dir;
  options.segment_size_bytes_max = 256ull << 20;
  if (o.configure) o.configure(options);
  options.zero_fill_window_bytes = window;
  auto log = Log::open(posix_file_system(), SystemClock::instance(), options);
  MQ_ASSERT(log.has_value(), "%s", log.status().to_string().c_str());
  Buffer payload(o.entry_bytes);
  std::memset(payload.data(), 0x42, payload.size());
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(o.appends));
  for (int i = 0; i < o.appends; ++i) {
    AppendEntry e = batch_entry(**log, payload, 1);
    auto start = BenchClock::now();
    MQ_ASSERT((*log)->append(std::span(&e, 1)).is_ok());
    MQ_ASSERT((*log)->sync().is_ok());
    us.push_back(seconds_since(start) * 1e6);
  }
  log->reset();
  std::filesystem::remove_all(dir);
  RunFigures f;
  double sum = 0;
  for (double v : us) sum += v;
  f.mean_us = sum / static_cast<double>(us.size());
  std::sort(us.begin(), us.end());
  f.p50_us = percentile(us, 0.50);
  f.p99_us = percentile(us, 0.99);
  f.p999_us = percentile(us, 0.999);
  return f;
}

}  // namespace

void run_sync_latency(const SyncLatencyOptions& o) {
  std::printf("synclat: append %zu bytes + Log::sync(), one at a time, %d per run; window off "
              "vs %lu KiB, %d interleaved pairs (load %.2f)\n",
              o.entry_bytes, o.appends, o.window_bytes >> 10, o.rounds, load_average());
  std::vector<double> p50[2], p99[2], p999[2], mean[2];
  for (int r = 0; r < o.rounds; ++r) {
    for (int k = 0; k < 2; ++k) {
      int which = (r % 2 == 0) ? k : 1 - k;  // alternate which goes first
      RunFigures f = one_run(o, which == 0 ? 0 : o.window_bytes, o.dir + "/synclat");
      std::printf("  round %d window %-7s p50 %7.1f us  p99 %7.1f us  p99.9 %7.1f us  mean %7.1f us\n",
                  r, which == 0 ? "off" : "on", f.p50_us, f.p99_us, f.p999_us, f.mean_us);
      std::fflush(stdout);
      p50[which].push_back(f.p50_us);
      p99[which].push_back(f.p99_us);
      p999[which].push_back(f.p999_us);
      mean[which].push_back(f.mean_us);
    }
  }
  for (int which = 0; which < 2; ++which) {
    std::printf("synclat median window %-3s: p50 %7.1f us  p99 %7.1f us  p99.9 %7.1f us  mean %7.1f us\n",
                which == 0 ? "off" : "on", median(p50[which]), median(p99[which]),
                median(p999[which]), median(mean[which]));
  }
  std::printf("synclat ratio on/off (medians): p50 %.2f  p99 %.2f  mean %.2f (load %.2f)\n",
              median(p50[1]) / median(p50[0]), median(p99[1]) / median(p99[0]),
              median(mean[1]) / median(mean[0]), load_average());
}

}  // namespace mq::storage::bench
